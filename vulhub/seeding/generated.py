"""Generated classes for load and scale: tenants full of students of every kind.

`manage.py seed --scale large` (or --tenants/--students/--challenges/--submissions)
calls `generate_tenant()` for each tenant and hands the result to `vulhub.seeding.bulk_load`.

Everything is drawn from one random generator per tenant, seeded from the run's
--random-seed and the tenant's number, so a given seed always gives the same data
(only database ids differ). Tenants, staff, students, challenges and badges are
built by the factories the tests use (`.build()`: nothing is saved here); the
million submissions are plain row tuples, since building a model instance each
would cost more than loading them. Their audit rows and events are still those of
the apps' own definitions (`audit.created_changes`, the payload functions of the
apps' records.py): templates of them are built once per shape of row and filled
with each row's values (see `Records` and `RowTemplates`).

What makes the data realistic:
- classes of different sizes (each about 0.7 times the previous one);
- every student has a skill and an activity level: a few do a lot, many do little;
- students take challenges roughly easiest first, retry wrong flags and rejected
  write-ups and give up sooner when weaker, so every status occurs: approved and
  rejected flags, graded write-ups, and write-ups still waiting for grading at the
  end of the term;
- badges are earned by the rules at the moment a rule is first met, and a few are
  given by hand; points come in steps, so ranks have ties;
- the largest class of a run (when it has at least TEAM_CLASS_MIN students) plays in
  teams, optionally: most of its students form teams of up to TEAM_SIZE in its first
  weeks, and their answers from then on carry their team (hundreds of teams at
  `--scale large`, for the team standings' benchmark). Its teams are drawn from a
  generator of their own, so the rest of the data is the same as without them.
"""

import functools
import json
import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import factory.random
from django.contrib.auth.hashers import make_password
from factory import Transformer

from audit import api as audit
from challenges.factories import ProjectFactory
from challenges.flags import make_flag_hash
from challenges.models import Project
from challenges.records import project_payload
from scoring import records as scoring_records
from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import Badge, Submission, Team, TeamMembership, UserBadge
from scoring.teams import CODE_ALPHABET, CODE_LENGTH
from tenants.factories import InstructorFactory, StudentFactory, TenantAdminFactory, TenantFactory
from tenants.models import TeamMode, User
from tenants.records import user_payload

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
    "link", "feedback", "graded_by_id", "submitted_at", "graded_at", "team_id",
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


# Teams (issue 31): the largest class of a run plays in teams once it has this many students
TEAM_CLASS_MIN = 40
TEAM_SIZE = 4  # the class's team_size_max
TEAM_SHARE = 0.8  # of its students end up in a team; the others play alone
TEAM_SIZES = [(1, 4), (2, 16), (3, 35), (4, 45)]  # members a team ends with: (size, weight)
TEAM_WORDS = (
    ["Null", "Root", "Buffer", "Stack", "Heap", "Packet", "Cipher", "Kernel", "Shell", "Byte", "Hash", "Socket",
     "Binary", "Crypto", "Zero", "Syntax", "Vector", "Payload", "Sudo", "Quantum"],
    ["Pointers", "Cause", "Overflows", "Smashers", "Sprayers", "Sniffers", "Punks", "Panics", "Shockers",
     "Bandits", "Collisions", "Wizards", "Ninjas", "Breakers", "Days", "Errors", "Knights", "Pirates", "Owls",
     "Foxes"],
)  # fmt: skip

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
    teams: list = field(default_factory=list)
    memberships: list = field(default_factory=list)
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


def tenant_slug(seed: int, number: int) -> str:
    return f"gen{seed}-{number}"


def plays_in_teams(number: int, students: int) -> bool:
    """Whether generated tenant `number` of a run, of this many students, plays in teams: the largest, if large."""
    return number == 1 and students >= TEAM_CLASS_MIN


def generate_tenant(*, seed: int, number: int, students: int, challenges: int, submissions: int, ids: Ids,
                    request_id: str = "seed") -> GeneratedTenant:  # fmt: skip
    """Tenant `number` (1-based) of run `seed`: its people, challenges, badges, teams, submissions and records."""
    key = f"vulhub-seed:{seed}:{number}"
    teams = plays_in_teams(number, students)
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
        team_mode=TeamMode.OPTIONAL if teams else TeamMode.OFF,
        team_size_max=TEAM_SIZE,
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
    # each team member's (team id, joined at): their answers from then on carry the team
    member_of = _teams(out, people, random.Random(f"{key}:teams"), ids, records) if teams else {}

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
        team_id, joined = member_of.get(student.pk, (None, None))
        for (project, ok, score), at in zip(attempts[student], times, strict=True):
            pk = next(submission_ids)
            team = team_id if joined is not None and at >= joined else None
            if project.has_flag:
                answer = flags[project.pk] if ok else f"FLAG{{{rng.choice(WRONG_WORDS)}_{rng.getrandbits(16):04x}}}"
                row = (pk, tenant.pk, student.pk, project.pk, "FLAG", "APPROVED" if ok else "REJECTED",
                       100 if ok else 0, project.points if ok else 0, answer, "", "", None, at, at, team)  # fmt: skip
            else:
                answer = rng.choice(writeups)
                link = f"https://notes.{domain}/{student.pk}/{project.slug}" if rng.random() < 0.3 else ""
                graded_at = at + timedelta(seconds=rng.randrange(2 * 3600, 5 * 86400))
                if graded_at > TERM_END:
                    row = (pk, tenant.pk, student.pk, project.pk, "WRITEUP", "PENDING", None, 0, answer, link, "",
                           None, at, None, team)  # fmt: skip
                else:
                    points = (project.points * score + 50) // 100 if ok else 0
                    feedback = rng.choice(GOOD_FEEDBACK if ok else BAD_FEEDBACK)
                    grader = rng.choice(instructors).pk
                    row = (pk, tenant.pk, student.pk, project.pk, "WRITEUP", "APPROVED" if ok else "REJECTED",
                           score, points, answer, link, feedback, grader, at, graded_at, team)  # fmt: skip
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


def _teams(out: GeneratedTenant, people: list, rng: random.Random, ids: Ids, records) -> dict[int, tuple]:
    """The class's teams, formed in its first weeks: {student id: (team id, joined at)} of their members.

    A student creates each team (and is its first member); the others join with its
    code over the next days, as scoring.teams.team_create and team_join record it.
    """
    tenant = out.tenant
    members = rng.sample(people, int(len(people) * TEAM_SHARE))
    groups = []
    while members:
        size = rng.choices([s for s, _ in TEAM_SIZES], [w for _, w in TEAM_SIZES])[0]
        groups.append(members[:size])
        members = members[size:]
    first, second = TEAM_WORDS
    names = [f"{a} {b}" for a in first for b in second]
    rng.shuffle(names)
    codes: set[str] = set()
    member_of = {}
    for n, (group, pk) in enumerate(zip(groups, ids.take("teams", len(groups)), strict=True)):
        name = names[n % len(names)] + (f" {n // len(names) + 1}" if n >= len(names) else "")
        code = ""
        while not code or code in codes:
            code = "".join(rng.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        codes.add(code)
        creator = group[0]
        created = creator.date_joined + timedelta(seconds=rng.randrange(3600, 5 * 86400))
        team = Team(pk=pk, tenant=tenant, name=name, invite_code=code, created_at=created, created_by=creator)
        out.teams.append(team)
        records.team_created(team, creator)
        joins = [(creator, created)]
        for student in group[1:]:
            start = max(created, student.date_joined)
            joins.append((student, start + timedelta(seconds=rng.randrange(600, 7 * 86400))))
        for student, at in sorted(joins, key=lambda j: j[1]):
            out.memberships.append(TeamMembership(tenant=tenant, team=team, user=student, joined_at=at))
            member_of[student.pk] = (team.pk, at)
    for membership, pk in zip(out.memberships, ids.take("team_memberships", len(out.memberships)), strict=True):
        membership.pk = pk
        how = "created" if membership.user is membership.team.created_by else "code"
        records.team_joined(membership, how)
    return member_of


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
        ("first-solve", "First Solve", "target", R.FIRST_SOLVE, {}, "Solve your first challenge."),
        (
            "first-blood",
            "First Blood",
            "droplet",
            R.FIRST_BLOOD,
            {},
            "Be the first in your class to solve a challenge.",
        ),
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
    first: dict[int, tuple] = {}  # challenge: (approved at, submission id, student) of its first solve
    for row in out.submissions:
        if row[5] == "APPROVED":
            by_student.setdefault(row[2], []).append((row[13] or row[12], row[3], row[7]))
            first[row[3]] = min(
                first.get(row[3], (row[13] or row[12], row[0], row[2])), (row[13] or row[12], row[0], row[2])
            )
    first_solver = {project_id: student for project_id, (_at, _id, student) in first.items()}
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
                elif kind == R.FIRST_BLOOD:
                    ok = first_solver.get(project_id) == student.pk
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

    The formats come from their one definition: `audit.created_changes` and `audit.diff`
    for the audit rows' changes, the apps' records.py for the event payloads, the
    models' __str__ for the object texts. Submissions and badge awards (a million of
    them) go through templates of these (`RowTemplates`, below), built once per shape
    of row. vulhub/seeding/tests/test_seed_scale.py compares the rows with the
    receivers' own, and test_generated_payloads.py with the definitions, row by row.
    """

    def __init__(self, out: GeneratedTenant, request_id: str):
        self.out = out
        self.tenant_id = out.tenant.pk
        self.request_id = request_id
        self.versions: dict[tuple[str, int], int] = {}
        self._metadata_cache: dict = {}
        self._submissions = RowTemplates(_submission_records, constants=(_KIND, _STATUS))
        self._awards = RowTemplates(_award_records, constants=(_BADGE,))
        self._projects: dict[int, tuple] = {}

    def _metadata(self, actor) -> str:
        key = actor.pk if actor else None
        if key not in self._metadata_cache:
            self._metadata_cache[key] = _json(
                {"actor_id": key, "actor": actor.email if actor else None, "request_id": self.request_id}
            )
        return self._metadata_cache[key]

    def _event(self, aggregate_type, aggregate_id, event_type, payload: str, at, actor):
        """An event with its payload given as JSON text."""
        version = self.versions.get((aggregate_type, aggregate_id), 0) + 1
        self.versions[(aggregate_type, aggregate_id)] = version
        self.out.events.append(
            (self.tenant_id, aggregate_type, str(aggregate_id), version, event_type, payload, self._metadata(actor), at)
        )

    def _audit(self, action, object_type, object_id, object_text, changes: str, at, actor):
        """An audit row with its changes given as JSON text."""
        self.out.audits.append(
            (
                self.tenant_id,
                actor.pk if actor else None,
                actor.email if actor else "",
                action,
                object_type,
                str(object_id),
                object_text[:255],
                changes,
                "",
                self.request_id,
                at,
            )  # fmt: skip
        )

    def created(self, instance, actor, at):
        changes = _json(audit.created_changes(instance))
        self._audit("create", instance._meta.label_lower, instance.pk, str(instance), changes, at, actor)

    def user_registered(self, user):
        self.created(user, None, user.date_joined)
        self._event("User", user.pk, "UserRegistered", _json(user_payload(user)), user.date_joined, None)

    def project_created(self, project):
        self.created(project, None, project.created_at)
        if project.is_published:
            payload = _json(project_payload(project))
            self._event("Project", project.pk, "ProjectPublished", payload, project.created_at, None)

    def team_created(self, team, creator):
        """A team a student created (scoring.teams.team_create): its audit row (code redacted), TeamCreated."""
        self.created(team, creator, team.created_at)
        payload = _json(scoring_records.team_payload(team))
        self._event("Team", team.pk, "TeamCreated", payload, team.created_at, creator)

    def team_joined(self, membership, how: str):
        """A member in (its creator, or a student with the code): the membership's audit row, TeamJoined."""
        student, team = membership.user, membership.team
        self.created(membership, student, membership.joined_at)
        payload = _json(scoring_records.team_payload(team, details={"user_id": student.pk, "how": how}))
        self._event("Team", team.pk, "TeamJoined", payload, membership.joined_at, student)

    def submission(self, row, project, student, instructors):
        """A submission's records: created as the student sent it, then its grading if an instructor graded it.

        A million of them go through here: each record is the template of the row's
        shape, filled with the row's values (JSON-encoded, in `_SUBMISSION_SLOTS` order).
        """
        pk, tenant_id, user_id, project_id, _, _, score, points, answer, link, feedback, grader, at, graded_at, team = (
            row
        )
        challenge = self._projects.get(project_id)
        if challenge is None:  # the challenge's values, which the payloads copy: raw, then as JSON
            values = (project.points, project.category, project.difficulty)
            challenge = self._projects[project_id] = (values, _string(project.category), _string(project.difficulty))
        full = row + challenge[0]
        shape = self._submissions.get(full)
        used = shape.used
        submitted = f'"{at.isoformat()}"'
        values = (
            pk, tenant_id, user_id, project_id, None, None, score, points,
            _string(answer) if _ANSWER in used else None,
            _string(link) if _LINK in used else None,
            _string(feedback) if _FEEDBACK in used else None,
            grader, submitted,
            submitted if graded_at is at else f'"{graded_at.isoformat()}"' if graded_at is not None else None,
            team, challenge[0][0], challenge[1], challenge[2],
        )  # fmt: skip
        audits, events, request_id = self.out.audits, self.out.events, self.request_id
        key = str(pk)
        steps = shape.steps
        text, changes, payload = steps[0](values)
        audits.append((tenant_id, user_id, student.email, "create", _SUBMISSION_TYPE, key, text, changes, "",
                       request_id, at))  # fmt: skip
        events.append((tenant_id, "Submission", key, 1, "SubmissionCreated", payload, self._metadata(student), at))
        if len(steps) == 1:
            return
        text, changes, payload = steps[1](values)
        grader_user = next(u for u in instructors if u.pk == grader)
        audits.append((tenant_id, grader, grader_user.email, "update", _SUBMISSION_TYPE, key, text, changes, "",
                       request_id, graded_at))  # fmt: skip
        events.append((tenant_id, "Submission", key, 2, "SubmissionGraded", payload, self._metadata(grader_user),
                       graded_at))  # fmt: skip

    def badge_awarded(self, row, badge, student, by):
        pk, tenant_id, user_id, badge_id, at, by_id = row
        (award,) = self._awards.get(row, badge).steps
        text, changes, payload = award((pk, tenant_id, user_id, badge_id, f'"{at.isoformat()}"', by_id))
        self._audit("create", _AWARD_TYPE, pk, text, changes, at, by)
        self._event("User", user_id, "BadgeAwarded", payload, at, by)


# --- templates of the records -------------------------------------------------------
#
# The records of a million submissions cannot each go through the payload functions
# and json.dumps. So for each shape of row, the real definitions run once, on an
# unsaved instance whose values are unique markers (an int, a string or a time of
# their own for each column); in the JSON text they give, each marker becomes a slot,
# and a row's records are these texts with the row's own values, JSON-encoded, in the
# slots. Keys, nesting, redactions and computed values (`regrade`, `previous_*`,
# "[redacted]") all come from the definitions; only the values are the row's.
#
# A shape is everything a definition may treat differently: the row's constant
# columns (a submission's kind and status decide what is secret and its object text;
# an award's badge gives its slug and name), and which values are empty (None, "" or
# 0): a diff leaves those out, or compares them with the old ones. Those stay in the
# instance as they are; every other value is a marker. A definition that computes a
# new value from a marker, rather than copying it, cannot be a template: building
# the template raises, rather than write something else than the app would.

_EMPTY = {None: "None", "": "''", 0: "0"}
_empty = _EMPTY.get  # a value's label if it stays as it is in a shape, else None (a slot)
_MARKER_INT = 7_777_000_000_000_000  # + 1,000,000 * the slot
_MARKER_TIME = datetime(1999, 6, 15, 12, 34, 5, 987_654, tzinfo=UTC)  # + the slot in seconds
# what is left of a marker that a definition changed rather than copied (any case change, strip, truncation, other
# time zone, date alone...): the template then cannot be, and says so
_MARKER_TRACES = (str(_MARKER_INT)[:7], "\ue000", "\\ue000", "\ue001", "\\ue001", "1999-06-1")


def _marker(slot: int, value):
    """A value of the same type as `value`, unique to the slot and unlike any real one."""
    if isinstance(value, datetime):
        return _MARKER_TIME + timedelta(seconds=slot)
    if isinstance(value, int):
        return _MARKER_INT + 1_000_000 * slot
    if isinstance(value, str):
        return f" \ue000sEEd{slot}\ue001 "
    raise TypeError(f"no marker for a {type(value).__name__} (slot {slot})")


def _json_token(marker) -> str:
    """How a marker reads in the definitions' JSON, checked against how the seed writes a row's values in."""
    token = _json(audit.json_value(marker))
    if isinstance(marker, datetime):
        written = f'"{marker.isoformat()}"'
    elif isinstance(marker, str):
        written = _string(marker)
    else:
        written = str(marker)
    if token != written:
        raise ValueError(f"audit.json_value writes {marker!r} as {token}, the seed as {written}: update the seed")
    return token


class Template:
    """A text cut at its markers: `pieces[0]`, then each slot of `order` followed by the next piece."""

    def __init__(self, text: str, tokens: dict[str, int]):
        pattern = re.compile("|".join(rf"(?<!\d){re.escape(t)}(?!\d)" for t in sorted(tokens, key=len, reverse=True)))
        self.pieces, self.order, start = [], [], 0
        for found in pattern.finditer(text) if tokens else ():
            self.pieces.append(text[start : found.start()])
            self.order.append(tokens[found.group()])
            start = found.end()
        self.pieces.append(text[start:])
        if any(trace in piece for piece in self.pieces for trace in _MARKER_TRACES):
            raise ValueError(f"A definition computes a value from a marker, it cannot be a template: {text}")


def _filler(templates: list[Template]) -> Callable[[tuple], tuple[str, ...]]:
    """One function that fills these templates with a row's values: (text, ...), in their order."""
    formats = [
        (
            "%s".join(piece.replace("%", "%%") for piece in template.pieces),
            operator.itemgetter(*template.order) if len(template.order) > 1 else None,
            template.order[0] if len(template.order) == 1 else None,
        )
        for template in templates
    ]

    def fill(values: tuple) -> tuple[str, ...]:
        return tuple(
            text % (pick(values) if pick else (values[one],) if one is not None else ()) for text, pick, one in formats
        )

    return fill


@dataclass(frozen=True)
class Shape:
    # per step recorded, in the order they happen: values -> (object text, changes, payload)
    steps: tuple[Callable[[tuple], tuple[str, str, str]], ...]
    used: frozenset  # the slots they fill


class RowTemplates:
    """The records of rows of one kind, from templates that `build` makes once per shape of row.

    `build(row, *context)` gets a row of markers and constants and returns, for each
    step recorded, (instance, changes, payload) of the definitions.
    """

    def __init__(self, build: Callable, constants: tuple[int, ...]):
        self.build = build
        self.constants = constants
        self._constants = operator.itemgetter(*constants)
        self.shapes: dict[tuple, Shape] = {}

    def get(self, row: tuple, *context) -> Shape:
        """The templates of this row's shape; `context` is what else `build` needs: the same for the same constants."""
        key = (self._constants(row), *map(_empty, row))
        shape = self.shapes.get(key)
        if shape is None:
            shape = self.shapes[key] = self._templates(row, context)
        return shape

    def _templates(self, row: tuple, context: tuple) -> Shape:
        markers = tuple(
            value if i in self.constants or _empty(value) is not None else _marker(i, value)
            for i, value in enumerate(row)
        )
        marked = [i for i, m in enumerate(markers) if i not in self.constants and _empty(m) is None]
        slots = {_json_token(markers[i]): i for i in marked}
        text_slots = {str(markers[i]): i for i in marked if type(markers[i]) is int}  # __str__ shows ids at most
        steps = [
            (Template(str(instance), text_slots), Template(_json(changes), slots), Template(_json(payload), slots))
            for instance, changes, payload in self.build(markers, *context)
        ]
        return Shape(
            steps=tuple(_filler(step) for step in steps),
            used=frozenset(slot for step in steps for template in step for slot in template.order),
        )


# A submission's slots: its columns, then its challenge's points, category and difficulty.
_SUBMISSION_SLOTS = (*SUBMISSION_COLUMNS, "project_points", "category", "difficulty")
_KIND, _STATUS, _ANSWER, _LINK, _FEEDBACK, _CATEGORY, _DIFFICULTY = map(
    _SUBMISSION_SLOTS.index, ("kind", "status", "answer", "link", "feedback", "category", "difficulty")
)
# what grading sets; before it, a submission has the model's defaults there
_GRADING = ("status", "score", "points_awarded", "feedback", "graded_by_id", "graded_at")
_SUBMISSION_TYPE = Submission._meta.label_lower
_AWARD_TYPE = UserBadge._meta.label_lower
_BADGE = USER_BADGE_COLUMNS.index("badge_id")


@functools.cache
def _ungraded() -> dict[int, object]:
    """The grading columns of a submission not graded yet, by slot: the model's defaults."""
    defaults = {}
    for name in _GRADING:
        value = Submission._meta.get_field(name).get_default()
        value = getattr(value, "value", value)  # a TextChoices member: its value
        slot = _SUBMISSION_SLOTS.index(name)
        if slot != _STATUS and _empty(value) is None:  # a slot in the graded row: its value would be the grade's
            raise ValueError(f"Submission.{name} defaults to {value!r}: the seed expects it empty")
        defaults[slot] = value
    return defaults


def _submission(row: tuple) -> Submission:
    """An unsaved submission with these values, of an unsaved challenge with its points, category and difficulty."""
    values = dict(zip(_SUBMISSION_SLOTS, row, strict=True))
    project = Project(
        pk=values.pop("project_id"),
        points=values.pop("project_points"),
        category=values.pop("category"),
        difficulty=values.pop("difficulty"),
    )
    return Submission(project=project, **values)


def _submission_records(row: tuple) -> list[tuple]:
    """What the receivers record of a submission: its creation, and its grading when an instructor graded it.

    As in scoring.services: `_submit` saves the new submission, then sends
    submission_created; `submission_grade` changes the loaded submission, saves it,
    then sends submission_graded with its previous status, score and points.
    """
    submission = _submission(row)
    graded = submission.graded_by_id is not None
    sent = _submission(tuple(_ungraded().get(i, value) for i, value in enumerate(row))) if graded else submission
    student = User(pk=sent.user_id, tenant_id=sent.tenant_id)
    steps = [(sent, audit.created_changes(sent), scoring_records.submission_payload(sent, actor=student))]
    if graded:
        previous = {"status": sent.status, "score": sent.score, "points_awarded": sent.points_awarded}
        changes = audit.diff(submission, audit.current_values(sent), audit.current_values(submission))
        grader = User(pk=submission.graded_by_id, tenant_id=submission.tenant_id)
        payload = scoring_records.graded_payload(submission, previous=previous, actor=grader)
        steps.append((submission, changes, payload))
    return steps


def _award_records(row: tuple, badge) -> list[tuple]:
    """What the receivers record of a badge awarded: the award's creation and its BadgeAwarded event."""
    award = UserBadge(**dict(zip(USER_BADGE_COLUMNS, row, strict=True)))
    award.badge = badge
    actor = User(pk=award.awarded_by_id, tenant_id=award.tenant_id) if award.awarded_by_id else None
    return [(award, audit.created_changes(award), scoring_records.awarded_payload(award, actor=actor))]
