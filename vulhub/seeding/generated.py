"""Generated classes for load and scale: tenants full of students of every kind.

`manage.py seed --scale large` (or --tenants/--students/--challenges/--submissions)
calls `generate_tenant()` for each tenant and hands the result to `vulhub.seeding.bulk_load`.

Everything is drawn from one random generator per tenant, seeded from the run's
--random-seed and the tenant's number, so a given seed always gives the same data
(only database ids differ). Tenants, staff, students, challenges and badges are
built by the factories the tests use (`.build()`: nothing is saved here); the
million submissions are plain row tuples, since building a model instance each
would cost more than loading them.

What makes the data realistic:
- classes of different sizes (each about 0.7 times the previous one);
- every student has a skill and an activity level: a few do a lot, many do little;
- students take challenges roughly easiest first, retry wrong flags and rejected
  write-ups and give up sooner when weaker, so every status occurs: approved and
  rejected flags, graded write-ups, and write-ups still waiting for grading at the
  end of the term;
- badges are earned by the rules at the moment a rule is first met, and a few are
  given by hand; points come in steps, so ranks have ties.
"""

import functools
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import factory.random
from django.contrib.auth.hashers import make_password
from factory import Transformer

from challenges.factories import ProjectFactory
from challenges.flags import make_flag_hash
from challenges.models import Project
from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import Badge
from tenants.factories import InstructorFactory, StudentFactory, TenantAdminFactory, TenantFactory

# The generated term: students join in its first weeks; write-ups not graded by its
# end are still pending. Fixed, so that a seed gives the same data on any day.
TERM_START = datetime(2026, 9, 7, 8, 0, tzinfo=UTC)
TERM_END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
STUDENT_PASSWORD = "vulhub-student"
STAFF_PASSWORD = "vulhub-staff"

D = Project.Difficulty
LEVEL = {D.BEGINNER: 0, D.INTERMEDIATE: 1, D.ADVANCED: 2, D.EXPERT: 3}
BASE_POINTS = {D.BEGINNER: 100, D.INTERMEDIATE: 200, D.ADVANCED: 300, D.EXPERT: 500}
DIFFICULTY_WEIGHTS = [(D.BEGINNER, 30), (D.INTERMEDIATE, 35), (D.ADVANCED, 25), (D.EXPERT, 10)]

TOPICS = {
    "Web Security": [
        "SQL Injection",
        "Stored XSS",
        "CSRF Token Bypass",
        "Path Traversal",
        "SSRF to Metadata",
        "JWT None Algorithm",
        "Insecure Deserialization",
        "Open Redirect",
        "IDOR in the API",
        "Template Injection",
    ],
    "Cryptography": [
        "Caesar's Secret",
        "Vigenere Notes",
        "Padding Oracle",
        "ECB Penguin",
        "Weak RSA Keys",
        "Hash Length Extension",
        "Nonce Reuse",
        "Timing Leak",
    ],
    "Forensics": [
        "Memory Image",
        "Deleted Files",
        "Browser History",
        "Log Tampering",
        "Stego PNG",
        "Disk Timeline",
        "Email Headers",
    ],
    "Network Security": [
        "Packet Capture",
        "DNS Exfiltration",
        "ARP Spoofing",
        "TLS Downgrade",
        "Port Knocking",
        "Rogue DHCP",
        "SNMP Community",
    ],
    "Binary Exploitation": [
        "Stack Overflow",
        "Format String",
        "Use After Free",
        "ROP Chain",
        "Heap Feng Shui",
        "Integer Overflow",
        "Race to Root",
        "Shellcode Golf",
    ],
}
SCHOOLS = [
    "Northgate University",
    "Riverside Institute of Technology",
    "Harbor City College",
    "Westfield Security Academy",
    "Lakeshore Polytechnic",
    "Summit Cyber School",
    "Eastbrook College",
    "Pinecrest University",
]
GOOD_FEEDBACK = ["Clear and complete.", "Good write-up.", "Nice exploit, well explained.", ""]
BAD_FEEDBACK = ["The root cause is missing.", "Show the steps, not only the result.", "Incomplete."]

SUBMISSION_COLUMNS = (
    "id", "tenant_id", "user_id", "project_id", "kind", "status", "score", "points_awarded", "answer",
    "link", "feedback", "graded_by_id", "submitted_at", "graded_at",
)  # fmt: skip
USER_BADGE_COLUMNS = ("id", "tenant_id", "user_id", "badge_id", "awarded_at", "awarded_by_id")
AUDIT_COLUMNS = (
    "tenant_id", "actor_id", "actor_text", "action", "object_type", "object_id", "object_text", "changes",
    "user_agent", "request_id", "created_at",
)  # fmt: skip
EVENT_COLUMNS = (
    "tenant_id", "aggregate_type", "aggregate_id", "version", "event_type", "payload", "metadata", "occurred_at",
)  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    tenants: int
    students: int  # in all tenants together
    challenges: int  # per tenant
    submissions: int  # in all tenants together


SCALES = {
    "small": Sizes(tenants=2, students=200, challenges=20, submissions=5_000),
    "large": Sizes(tenants=5, students=20_000, challenges=40, submissions=1_000_000),
}


def split(total: int, parts: int, ratio: float = 0.7) -> list[int]:
    """`total` in `parts` shares, each about `ratio` times the previous, summing exactly to total."""
    weights = [ratio**i for i in range(parts)]
    scale = total / sum(weights)
    shares = [int(w * scale) for w in weights]
    for i in range(total - sum(shares)):
        shares[i % parts] += 1
    return shares


@dataclass
class GeneratedTenant:
    """One generated tenant: model instances (ids set) and row tuples ready to COPY."""

    tenant: object
    users: list = field(default_factory=list)
    projects: list = field(default_factory=list)
    badges: list = field(default_factory=list)
    submissions: list[tuple] = field(default_factory=list)
    user_badges: list[tuple] = field(default_factory=list)
    audits: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)


class Ids:
    """Hands out primary keys; the loader fills it from the tables' own sequences."""

    def __init__(self, reserve):
        self._reserve = reserve

    def take(self, table: str, n: int) -> list[int]:
        return self._reserve(table, n) if n else []


_json = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: json.dumps with options builds one per call
_string = json.JSONEncoder().encode  # a str as a JSON string literal, quoted and escaped


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def tenant_slug(seed: int, number: int) -> str:
    return f"gen{seed}-{number}"


def generate_tenant(*, seed: int, number: int, students: int, challenges: int, submissions: int, ids: Ids,
                    request_id: str = "seed") -> GeneratedTenant:  # fmt: skip
    """Tenant `number` (1-based) of run `seed`: its people, challenges, badges, submissions and records."""
    key = f"vulhub-seed:{seed}:{number}"
    rng = random.Random(key)
    factory.random.reseed_random(key)  # Faker's names and texts follow the seed too
    slug = tenant_slug(seed, number)
    school = SCHOOLS[(number - 1) % len(SCHOOLS)]
    if number > len(SCHOOLS):
        school += f" {number}"
    tenant = TenantFactory.build(
        name=school,
        slug=slug,
        domain=f"{slug}.localhost",
        settings={
            "theme": "default",
            "generated": {
                "seed": seed,
                "number": number,
                "students": students,
                "challenges": challenges,
                "submissions": submissions,
            },
        },  # fmt: skip
        created_at=TERM_START - timedelta(days=14),
        updated_at=TERM_START - timedelta(days=14),
    )
    tenant.pk = ids.take("tenants", 1)[0]
    out = GeneratedTenant(tenant=tenant)
    records = Records(out, request_id)
    records.created(tenant, None, tenant.created_at)

    # One hash per password and seed: hashing each of 20,000 users would take minutes.
    student_hash, staff_hash = _password_hashes(seed)
    domain = f"{slug}.example.edu"
    joined = TERM_START - timedelta(days=10)
    staff = [
        TenantAdminFactory.build(
            tenant=tenant, email=f"admin@{domain}", password=Transformer.Force(staff_hash), date_joined=joined
        ),  # fmt: skip
        *[
            InstructorFactory.build(
                tenant=tenant,
                email=f"instructor{i}@{domain}",
                password=Transformer.Force(staff_hash),
                date_joined=joined,
            )  # fmt: skip
            for i in (1, 2)
        ],
    ]
    people = []
    for n in range(1, students + 1):
        person = StudentFactory.build(
            tenant=tenant,
            email="",
            password=Transformer.Force(student_hash),
            date_joined=TERM_START + timedelta(seconds=rng.randrange(21 * 86400)),
        )
        local = "".join(c for c in f"{person.first_name}.{person.last_name}".lower() if c.isalpha() or c == ".")
        person.email = f"{local}.{n}@{domain}"
        people.append(person)
    for user, pk in zip(staff + people, ids.take("users", len(staff) + len(people)), strict=True):
        user.pk = user.id = pk
    out.users = staff + people
    for user in out.users:
        records.user_registered(user)

    out.projects = _projects(tenant, challenges, rng, ids)
    for project in out.projects:
        records.project_created(project)
    out.badges = _badges(tenant, out.projects, ids)
    for badge in out.badges:
        records.created(badge, None, badge.created_at)

    published = [p for p in out.projects if p.is_published]
    instructors = staff[1:]
    writeups = []
    if people and published:  # a pool of write-up texts from the factory (Faker paragraphs)
        writeups = [SubmissionFactory.build(tenant=tenant, user=people[0], project=published[0]).answer
                    for _ in range(40)]  # fmt: skip
    budgets = dict(zip(people, split_budget(submissions, len(people), rng), strict=True))
    plans = {student: Student(student, rng, published) for student in people}
    # first pass: each student's own budget; then whoever still has challenges left takes the rest
    attempts = {student: plans[student].take(budgets[student]) for student in people}
    missing = submissions - sum(len(a) for a in attempts.values())
    while missing > 0:
        active = [s for s in people if not plans[s].done]
        if not active:
            break
        for student in active:
            if missing <= 0:
                break
            more = plans[student].take(1)
            attempts[student] += more
            missing -= len(more)

    submission_ids = iter(ids.take("submissions", sum(len(a) for a in attempts.values())))
    flags = {p.pk: p._seed_flag for p in out.projects if p.has_flag}
    for student in people:
        times = _times(rng, student.date_joined, len(attempts[student]))
        for (project, ok, score), at in zip(attempts[student], times, strict=True):
            pk = next(submission_ids)
            if project.has_flag:
                answer = flags[project.pk] if ok else f"FLAG{{{rng.choice(WRONG_WORDS)}_{rng.getrandbits(16):04x}}}"
                row = (pk, tenant.pk, student.pk, project.pk, "FLAG", "APPROVED" if ok else "REJECTED",
                       100 if ok else 0, project.points if ok else 0, answer, "", "", None, at, at)  # fmt: skip
            else:
                answer = rng.choice(writeups)
                link = f"https://notes.{domain}/{student.pk}/{project.slug}" if rng.random() < 0.3 else ""
                graded_at = at + timedelta(seconds=rng.randrange(2 * 3600, 5 * 86400))
                if graded_at > TERM_END:
                    row = (pk, tenant.pk, student.pk, project.pk, "WRITEUP", "PENDING", None, 0, answer, link, "",
                           None, at, None)  # fmt: skip
                else:
                    points = (project.points * score + 50) // 100 if ok else 0
                    feedback = rng.choice(GOOD_FEEDBACK if ok else BAD_FEEDBACK)
                    grader = rng.choice(instructors).pk
                    row = (pk, tenant.pk, student.pk, project.pk, "WRITEUP", "APPROVED" if ok else "REJECTED",
                           score, points, answer, link, feedback, grader, at, graded_at)  # fmt: skip
            out.submissions.append(row)
            records.submission(row, project, student, instructors)

    _award_badges(out, people, staff, rng, ids, records)
    out.audits.sort(key=lambda r: r[10])  # the log reads in time order
    out.events.sort(key=lambda r: r[7])
    return out


@functools.cache
def _password_hashes(seed: int) -> tuple[str, str]:
    return make_password(STUDENT_PASSWORD, salt=f"vulhubseed{seed}s"), make_password(
        STAFF_PASSWORD, salt=f"vulhubseed{seed}t"
    )


WRONG_WORDS = ["guess", "admin", "password", "flag", "letmein", "root", "test", "secret", "maybe", "again"]


def split_budget(total: int, people: int, rng: random.Random) -> list[int]:
    """Submissions per student: heavy-tailed, a few very active students and a long quiet tail."""
    if not people:
        return []
    weights = [min(rng.paretovariate(1.3), 40.0) for _ in range(people)]
    scale = total / sum(weights)
    budgets = [int(w * scale) for w in weights]
    for i in rng.sample(range(people), min(people, total - sum(budgets))):
        budgets[i] += 1
    return budgets


def _times(rng: random.Random, joined: datetime, n: int) -> list[datetime]:
    start = joined + timedelta(hours=rng.uniform(1, 72))
    span = max((TERM_END - start).total_seconds(), 3600.0)
    # busier towards the end of the term, as deadlines come closer
    return [start + timedelta(seconds=s) for s in sorted(rng.random() ** 0.6 * span for _ in range(n))]


class Student:
    """A student working through the challenges: easiest first, more tries the stronger they are.

    A challenge they give up on comes back after the others, with a little more patience:
    they are done only when every challenge is solved.
    """

    def __init__(self, user, rng: random.Random, published: list):
        self.rng = rng
        self.skill = rng.betavariate(2.2, 2.2)
        self.patience = 2 + int(self.skill * 10) + rng.randrange(3)
        self.order = sorted(published, key=lambda p: LEVEL[p.difficulty] + rng.random() * 1.6)
        self.unsolved = []
        self.position = 0
        self.tries = 0

    @property
    def done(self) -> bool:
        return self.position >= len(self.order) and not self.unsolved

    def take(self, n: int) -> list[tuple]:
        """The next n attempts (fewer once every challenge is solved): (project, ok, score)."""
        out = []
        rng = self.rng
        while len(out) < n and not self.done:
            if self.position >= len(self.order):  # back to the ones given up on
                self.order, self.unsolved, self.position = self.unsolved, [], 0
                self.patience += 2
            project = self.order[self.position]
            level = LEVEL[project.difficulty]
            self.tries += 1
            if project.has_flag:
                ok = rng.random() < min(max(0.12 + self.skill * 0.85 - level * 0.17, 0.03), 0.95)
                score = 100 if ok else 0
            else:
                score = min(max(round(rng.gauss(38 + self.skill * 62 - level * 7, 14)), 0), 100)
                ok = score >= 50
            out.append((project, ok, score))
            if ok or self.tries >= self.patience:
                if not ok:
                    self.unsolved.append(project)
                self.position += 1
                self.tries = 0
        return out


def _projects(tenant, n: int, rng: random.Random, ids: Ids) -> list:
    topics = [(category, name) for category, names in TOPICS.items() for name in names]
    rng.shuffle(topics)
    projects = []
    for i in range(n):
        category, name = topics[i % len(topics)]
        if i >= len(topics):
            name = f"{name} {i // len(topics) + 1}"
        slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")
        difficulty = rng.choices([d for d, _ in DIFFICULTY_WEIGHTS], [w for _, w in DIFFICULTY_WEIGHTS])[0]
        created = TERM_START - timedelta(days=7, minutes=n - i)
        project = ProjectFactory.build(
            tenant=tenant,
            name=name,
            slug=slug,
            category=category,
            difficulty=difficulty,
            points=BASE_POINTS[difficulty] + rng.choice([-50, 0, 0, 50]),
            # a few drafts the students cannot see yet (never the first ones: every class has challenges)
            is_published=i < 3 or rng.random() > 0.06,
            created_at=created,
            updated_at=created,
        )
        project._seed_flag = None
        if rng.random() < 0.65:
            project._seed_flag = f"FLAG{{{slug.replace('-', '_')}_{rng.getrandbits(32):08x}}}"
            project.flag_hash = make_flag_hash(project._seed_flag, salt=f"{rng.getrandbits(64):016x}")
        projects.append(project)
    for project, pk in zip(projects, ids.take("projects", len(projects)), strict=True):
        project.pk = project.id = pk
    return projects


def _badges(tenant, projects: list, ids: Ids) -> list:
    R = Badge.RuleKind
    categories = sorted({p.category for p in projects if p.is_published})
    # the smallest published category can be completed; the largest one rewards breadth
    by_size = sorted(categories, key=lambda c: (sum(p.category == c and p.is_published for p in projects), c))
    specs = [
        ("first-blood", "First Blood", "droplet", R.FIRST_SOLVE, {}, "Solve your first challenge."),
        ("hat-trick", "Hat Trick", "award", R.SOLVES_AT_LEAST, {"n": 3}, "Solve three challenges."),
        ("marathon", "Marathon", "flag", R.SOLVES_AT_LEAST, {"n": 15}, "Solve fifteen challenges."),
        ("high-scorer", "High Scorer", "star", R.POINTS_AT_LEAST, {"n": 2500}, "Earn 2,500 points."),
        (
            "deep-diver",
            "Deep Diver",
            "anchor",
            R.DIFFICULTY_SOLVES,
            {"n": 3, "difficulty": D.ADVANCED},
            "Solve three advanced challenges.",
        ),  # fmt: skip
        (
            "specialist",
            f"{by_size[-1]} Specialist",
            "globe",
            R.CATEGORY_SOLVES,
            {"n": 4, "category": by_size[-1]},
            f"Solve four {by_size[-1]} challenges.",
        ),  # fmt: skip
        (
            "completionist",
            f"{by_size[0]} Completionist",
            "key",
            R.CATEGORY_COMPLETE,
            {"category": by_size[0]},
            f"Solve every {by_size[0]} challenge.",
        ),  # fmt: skip
        ("helpful-peer", "Helpful Peer", "heart", "", {}, "Given by an instructor for helping others."),
    ]
    created = TERM_START - timedelta(days=7)
    badges = [
        BadgeFactory.build(
            tenant=tenant,
            slug=slug,
            name=name,
            icon=icon,
            rule_kind=kind,
            rule_params=params,
            description=text,
            created_at=created,
        )  # fmt: skip
        for slug, name, icon, kind, params, text in specs
    ]
    for badge, pk in zip(badges, ids.take("badges", len(badges)), strict=True):
        badge.pk = badge.id = pk
    return badges


def _award_badges(out: GeneratedTenant, people: list, staff: list, rng: random.Random, ids: Ids, records) -> None:
    """Rule badges at the moment their rule is first met; the hand badge to a few, by an instructor."""
    R = Badge.RuleKind
    projects = {p.pk: p for p in out.projects}
    published = {}
    for p in out.projects:
        if p.is_published:
            published[p.category] = published.get(p.category, 0) + 1
    rules = [b for b in out.badges if b.rule_kind]
    by_student: dict[int, list] = {}
    for row in out.submissions:
        if row[5] == "APPROVED":
            by_student.setdefault(row[2], []).append((row[13] or row[12], row[3], row[7]))
    awards = []
    for student in people:
        points = 0
        by_category: dict[str, int] = {}
        by_difficulty: dict[str, int] = {}
        pending = list(rules)
        for solves, (at, project_id, awarded) in enumerate(sorted(by_student.get(student.pk, [])), start=1):
            project = projects[project_id]
            points += awarded
            by_category[project.category] = by_category.get(project.category, 0) + 1
            by_difficulty[project.difficulty] = by_difficulty.get(project.difficulty, 0) + 1
            for badge in list(pending):
                params, kind = badge.rule_params, badge.rule_kind
                n = max(int(params.get("n", 1)), 1)
                if kind == R.FIRST_SOLVE:
                    ok = solves >= 1
                elif kind == R.POINTS_AT_LEAST:
                    ok = points >= n
                elif kind == R.SOLVES_AT_LEAST:
                    ok = solves >= n
                elif kind == R.CATEGORY_SOLVES:
                    ok = by_category.get(params["category"], 0) >= n
                elif kind == R.CATEGORY_COMPLETE:
                    total = published.get(params["category"], 0)
                    ok = total > 0 and by_category.get(params["category"], 0) >= total
                else:
                    ok = by_difficulty.get(params["difficulty"], 0) >= n
                if ok:
                    awards.append((student, badge, at, None))
                    pending.remove(badge)
    by_hand = [b for b in out.badges if not b.rule_kind]
    if by_hand and people:
        for student in rng.sample(people, max(1, len(people) // 100)):
            at = student.date_joined + timedelta(days=rng.uniform(7, 60))
            awards.append((student, by_hand[0], min(at, TERM_END), rng.choice(staff[1:])))
    for (student, badge, at, by), pk in zip(awards, ids.take("user_badges", len(awards)), strict=True):
        row = (pk, out.tenant.pk, student.pk, badge.pk, at, by.pk if by else None)
        out.user_badges.append(row)
        records.badge_awarded(row, badge, student, by)


class Records:
    """The audit rows and domain events the app itself would have written for these rows.

    They follow audit.receivers: the same actions, field names, redactions and event
    payloads (vulhub/seeding/tests/test_seed_scale.py compares them with the receivers' own).
    """

    def __init__(self, out: GeneratedTenant, request_id: str):
        self.out = out
        self.tenant_id = out.tenant.pk
        self.request_id = request_id
        self.versions: dict[tuple[str, int], int] = {}
        self._metadata_cache: dict = {}

    def _metadata(self, actor) -> str:
        key = actor.pk if actor else None
        if key not in self._metadata_cache:
            self._metadata_cache[key] = _json(
                {"actor_id": key, "actor": actor.email if actor else None, "request_id": self.request_id}
            )
        return self._metadata_cache[key]

    def _event(self, aggregate_type, aggregate_id, event_type, payload, at, actor):
        version = self.versions.get((aggregate_type, aggregate_id), 0) + 1
        self.versions[(aggregate_type, aggregate_id)] = version
        self.out.events.append(
            (
                self.tenant_id,
                aggregate_type,
                str(aggregate_id),
                version,
                event_type,
                _json(payload),
                self._metadata(actor),
                at,
            )  # fmt: skip
        )

    def _audit(self, action, object_type, object_id, object_text, changes, at, actor):
        self.out.audits.append(
            (
                self.tenant_id,
                actor.pk if actor else None,
                actor.email if actor else "",
                action,
                object_type,
                str(object_id),
                object_text[:255],
                _json(changes),
                "",
                self.request_id,
                at,
            )  # fmt: skip
        )

    def created(self, instance, actor, at):
        from audit.receivers import current_values, diff

        changes = diff(instance, None, current_values(instance))
        self._audit("create", instance._meta.label_lower, instance.pk, str(instance), changes, at, actor)

    def user_registered(self, user):
        from audit.receivers import user_payload

        self.created(user, None, user.date_joined)
        self._event("User", user.pk, "UserRegistered", user_payload(user), user.date_joined, None)

    def project_created(self, project):
        from audit.receivers import project_payload

        self.created(project, None, project.created_at)
        if project.is_published:
            self._event("Project", project.pk, "ProjectPublished", project_payload(project), project.created_at, None)

    def submission(self, row, project, student, instructors):
        """A submission's records, written out as JSON text directly: a million of them go through here."""
        (
            pk,
            tenant_id,
            user_id,
            project_id,
            kind,
            status,
            score,
            points,
            answer,
            link,
            feedback,
            grader,
            at,
            graded_at,
        ) = row
        audits, events, request_id = self.out.audits, self.out.events, self.request_id
        submitted = at.isoformat()
        ids = f'"id":[null,{pk}],"tenant":[null,{tenant_id}],"user":[null,{user_id}],"project":[null,{project_id}]'
        about = (
            f'"submission_id":{pk},"tenant_id":{tenant_id},"user_id":{user_id},"project_id":{project_id},'
            f'"project_points":{project.points},"category":{_string(project.category)},'
            f'"difficulty":"{project.difficulty}","kind":"{kind}"'
        )
        student_meta = self._metadata(student)
        if kind == "FLAG":
            changes = (
                f'{{{ids},"kind":[null,"FLAG"],"status":[null,"{status}"],"score":[null,{score}],'
                f'"points_awarded":[null,{points}],"answer":[null,"[redacted]"],"submitted_at":[null,"{submitted}"],'
                f'"graded_at":[null,"{submitted}"]}}'
            )
            audits.append((tenant_id, user_id, student.email, "create", "scoring.submission", str(pk),
                           f"Submission {pk} ({status.lower()})", changes, "", request_id, at))  # fmt: skip
            payload = (
                f'{{{about},"status":"{status}","score":{score},"points_awarded":{points},'
                f'"submitted_at":"{submitted}"}}'
            )
            events.append((tenant_id, "Submission", str(pk), 1, "SubmissionCreated", payload, student_meta, at))
            return
        link_change = f',"link":[null,{_string(link)}]' if link else ""
        changes = (
            f'{{{ids},"kind":[null,"WRITEUP"],"status":[null,"PENDING"],"points_awarded":[null,0],'
            f'"answer":[null,{_string(answer)}],"submitted_at":[null,"{submitted}"]{link_change}}}'
        )
        audits.append((tenant_id, user_id, student.email, "create", "scoring.submission", str(pk),
                       f"Submission {pk} (pending)", changes, "", request_id, at))  # fmt: skip
        payload = f'{{{about},"status":"PENDING","score":null,"points_awarded":0,"submitted_at":"{submitted}"}}'
        events.append((tenant_id, "Submission", str(pk), 1, "SubmissionCreated", payload, student_meta, at))
        if status == "PENDING":
            return
        grader_user = next(u for u in instructors if u.pk == grader)
        graded = graded_at.isoformat()
        extra = (f',"points_awarded":[0,{points}]' if points else "") + (
            f',"feedback":["",{_string(feedback)}]' if feedback else ""
        )
        changes = (
            f'{{"status":["PENDING","{status}"],"score":[null,{score}],"graded_by":[null,{grader}],'
            f'"graded_at":[null,"{graded}"]{extra}}}'
        )
        audits.append((tenant_id, grader, grader_user.email, "update", "scoring.submission", str(pk),
                       f"Submission {pk} ({status.lower()})", changes, "", request_id, graded_at))  # fmt: skip
        payload = (
            f'{{{about},"status":"{status}","score":{score},"points_awarded":{points},"submitted_at":"{submitted}",'
            f'"feedback":{_string(feedback)},"graded_by_id":{grader},"graded_at":"{graded}",'
            f'"previous_status":"PENDING","previous_score":null,"previous_points_awarded":0,"regrade":false}}'
        )
        events.append((tenant_id, "Submission", str(pk), 2, "SubmissionGraded", payload, self._metadata(grader_user),
                       graded_at))  # fmt: skip

    def badge_awarded(self, row, badge, student, by):
        pk, tenant_id, user_id, badge_id, at, by_id = row
        changes = {"id": [None, pk], "tenant": [None, tenant_id], "user": [None, user_id], "badge": [None, badge_id],
                   "awarded_at": [None, _iso(at)]}  # fmt: skip
        if by_id:
            changes["awarded_by"] = [None, by_id]
        self._audit("create", "scoring.userbadge", pk, f"Badge {badge_id} of user {user_id}", changes, at, by)
        payload = {"badge_id": badge_id, "badge_slug": badge.slug, "badge_name": badge.name, "user_id": user_id,
                   "tenant_id": tenant_id, "awarded_at": _iso(at), "awarded_by_id": by_id,
                   "automatic": by_id is None}  # fmt: skip
        self._event("User", user_id, "BadgeAwarded", payload, at, by)
