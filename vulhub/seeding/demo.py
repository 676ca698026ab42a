"""The demo data of the operators' plan: one tenant, its staff and students, sample challenges, teams.

`manage.py seed` loads it. Loading is idempotent: rows are found by their natural
keys (slug, e-mail; a file by its challenge and name, a hint by its challenge and
position) and left alone when they exist, so a second run changes nothing, not even a
password a demo user has since changed. The forensics challenges ship real files
(vulhub/seeding/files/, made by make_demo_files.py), stored in the attachments storage.
The class plays in teams, optionally: three teams (found by name) formed through the
team services, and one student who plays alone.
"""

from dataclasses import dataclass, field
from pathlib import Path

from django.core.files import File

from audit.api import recorded
from challenges.files import challenge_file_add
from challenges.models import ChallengeFile, Hint, Project
from challenges.services import project_publish
from scoring import team_board
from scoring.hints import hint_unlock
from scoring.models import Badge, Submission, Team
from scoring.services import submission_create
from scoring.teams import team_create, team_join, team_of
from tenants.models import TeamMode, Tenant, User
from tenants.services import user_register

TENANT = {
    "slug": "default",
    "name": "Default Tenant",
    "domain": "localhost",
    "settings": {"theme": "default"},
    "team_mode": TeamMode.OPTIONAL,
    "team_size_max": 4,
}

# e-mail, first name, last name, role, password (listed in the README's Demo logins)
USERS = [
    ("admin@vulhub.com", "Admin", "User", User.Role.ADMIN, "vulhub-admin"),
    ("instructor@vulhub.com", "Ingrid", "Instructor", User.Role.INSTRUCTOR, "vulhub-instructor"),
    ("alice@vulhub.com", "Alice", "Anderson", User.Role.STUDENT, "vulhub-student"),
    ("bob@vulhub.com", "Bob", "Brown", User.Role.STUDENT, "vulhub-student"),
    ("carol@vulhub.com", "Carol", "Chen", User.Role.STUDENT, "vulhub-student"),
    ("dave@vulhub.com", "Dave", "Diaz", User.Role.STUDENT, "vulhub-student"),
    ("erin@vulhub.com", "Erin", "Evans", User.Role.STUDENT, "vulhub-student"),
    ("frank@vulhub.com", "Frank", "Fischer", User.Role.STUDENT, "vulhub-student"),
    ("grace@vulhub.com", "Grace", "Garcia", User.Role.STUDENT, "vulhub-student"),
    ("heidi@vulhub.com", "Heidi", "Hughes", User.Role.STUDENT, "vulhub-student"),
]

# name, members (the first creates the team, the others join with its invite code);
# heidi plays alone, as the class's optional team mode lets her
TEAMS = [
    ("Null Pointers", ["alice@vulhub.com", "dave@vulhub.com", "erin@vulhub.com"]),
    ("Root Cause", ["bob@vulhub.com", "frank@vulhub.com"]),
    ("Packet Sniffers", ["carol@vulhub.com", "grace@vulhub.com"]),
]

D = Project.Difficulty
# slug, name, category, difficulty, points, flag (None: graded write-up), description
CHALLENGES = [
    (
        "sql-injection",
        "SQL Injection Challenge",
        "Web Security",
        D.BEGINNER,
        100,
        "FLAG{union_select_all_the_things}",
        "Learn SQL injection techniques. The login form of the target app builds its query "
        "by pasting strings together. Log in as `admin` without the password and read the flag "
        "from the dashboard.",
    ),
    (
        "stored-xss",
        "Stored Cross-Site Scripting",
        "Web Security",
        D.INTERMEDIATE,
        200,
        None,
        "The guestbook renders comments without escaping them. Show how a stored payload steals "
        "a session cookie, then explain the fix. Submit a write-up.",
    ),
    (
        "caesar-cipher",
        "Caesar's Secret",
        "Cryptography",
        D.BEGINNER,
        50,
        "FLAG{veni_vidi_decrypsi}",
        "A message was encrypted by shifting every letter. Recover it: `IODJ{yhql_ylgl_ghfubsvl}`.",
    ),
    (
        "padding-oracle",
        "Padding Oracle",
        "Cryptography",
        D.ADVANCED,
        400,
        None,
        "The API tells valid padding from invalid. Decrypt the token without the key and "
        "describe each step of the attack in a write-up.",
    ),
    (
        "memory-forensics",
        "Memory Forensics",
        "Forensics",
        D.INTERMEDIATE,
        250,
        "FLAG{volatile_memories}",
        "A memory image of a compromised workstation is attached (`memory.raw`, 256 KiB of raw memory). "
        "Find the process the attacker injected into and the flag it holds. The twist: the implant is a "
        "Windows program, and Windows keeps its text in UTF-16, two bytes per character, which a plain "
        "`strings` skips (`strings -e l` reads it).",
    ),
    (
        "packet-capture",
        "Network Traffic Analysis",
        "Network Security",
        D.BEGINNER,
        100,
        "FLAG{follow_the_tcp_stream}",
        "A capture of an FTP session is attached (`ftp-session.pcap`: open it in Wireshark, or read it with "
        "`tcpdump -A -r`). Credentials travel in clear text; so does the flag.",
    ),
    (
        "stack-overflow",
        "Stack Buffer Overflow",
        "Binary Exploitation",
        D.EXPERT,
        500,
        None,
        "A setuid binary copies its argument into a fixed buffer. Get a shell, then write up the "
        "exploit and the mitigations that would have stopped it.",
    ),
]

FILES_DIR = Path(__file__).resolve().parent / "files"
# challenge slug, the name students download it under, the file in FILES_DIR
FILES = [
    ("memory-forensics", "memory.raw", "memory.raw"),
    ("packet-capture", "ftp-session.pcap", "ftp-session.pcap"),
]
# challenge slug, position, cost, text (Markdown)
HINTS = [
    (
        "memory-forensics",
        1,
        0,
        "`strings memory.raw | grep FLAG` finds a flag someone searched for in a browser: it is not the one. "
        "Look at the text around `notepad.exe`'s injected code, read as UTF-16.",
    ),
    (
        "packet-capture",
        1,
        10,
        "The flag is not on the FTP control connection (port 21) but on the data connection the `PASV` reply "
        "announces. In Wireshark: right-click one of its packets, then Follow → TCP Stream.",
    ),
]

B = Badge.RuleKind
# slug, name, icon, rule kind ("" = by hand), rule parameters, description
BADGES = [
    ("first-solve", "First Solve", "target", B.FIRST_SOLVE, {}, "Solve your first challenge."),
    ("first-blood", "First Blood", "droplet", B.FIRST_BLOOD, {}, "First in the class on a challenge."),
    ("centurion", "Centurion", "shield", B.POINTS_AT_LEAST, {"n": 100}, "Earn 100 points."),
    ("hat-trick", "Hat Trick", "award", B.SOLVES_AT_LEAST, {"n": 3}, "Solve three challenges."),
    (
        "web-apprentice",
        "Web Apprentice",
        "globe",
        B.CATEGORY_SOLVES,
        {"n": 2, "category": "Web Security"},
        "Solve two Web Security challenges.",
    ),
    (
        "cryptographer",
        "Cryptographer",
        "key",
        B.CATEGORY_COMPLETE,
        {"category": "Cryptography"},
        "Solve every Cryptography challenge.",
    ),
    ("helpful-peer", "Helpful Peer", "heart", "", {}, "Given by an instructor for helping others."),
]


@dataclass
class SeedReport:
    created: dict[str, int] = field(default_factory=dict)
    existing: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, created: bool) -> None:
        bucket = self.created if created else self.existing
        bucket[kind] = bucket.get(kind, 0) + 1

    @property
    def total_created(self) -> int:
        return sum(self.created.values())


@recorded  # one transaction; its audit rows and events written together at the end
def load_demo_data() -> SeedReport:
    report = SeedReport()
    tenant, created = Tenant.objects.get_or_create(
        slug=TENANT["slug"], defaults={k: v for k, v in TENANT.items() if k != "slug"}
    )
    report.count("tenants", created)

    for email, first, last, role, password in USERS:
        user = User.objects.for_tenant(tenant).with_email(email).first()
        if user is None:
            user_register(tenant=tenant, email=email, password=password, first_name=first, last_name=last, role=role)
        report.count("users", user is None)

    for slug, name, category, difficulty, points, flag, description in CHALLENGES:
        project = Project.objects.filter(tenant=tenant, slug=slug).first()
        if project is None:
            project = Project(
                tenant=tenant,
                slug=slug,
                name=name,
                category=category,
                difficulty=difficulty,
                points=points,
                description=description,
            )
            project.set_flag(flag)
            project.save()
            project_publish(project=project, actor=None)
            report.count("challenges", True)
        else:
            report.count("challenges", False)

    _attach_files(tenant, report)
    _add_hints(tenant, report)

    for slug, name, icon, kind, params, description in BADGES:
        _, created = Badge.objects.get_or_create(
            tenant=tenant,
            slug=slug,
            defaults={
                "name": name,
                "icon": icon,
                "rule_kind": kind,
                "rule_params": params,
                "description": description,
            },
        )
        report.count("badges", created)

    _form_teams(tenant, report)

    if not Submission.objects.for_tenant(tenant).exists():
        _play_a_little(tenant, report)
    if Team.objects.for_tenant(tenant).exists():
        team_board.rebuild(tenant.pk)  # in this transaction: the services kept it, this proves nothing is left over
    return report


def _attach_files(tenant, report: SeedReport) -> None:
    """The demo's files, each attached unless its challenge has a file of that name already."""
    projects = {p.slug: p for p in Project.objects.for_tenant(tenant).filter(slug__in={f[0] for f in FILES})}
    present = set(
        ChallengeFile.objects.for_tenant(tenant).filter(project__in=projects.values()).values_list("project_id", "name")
    )
    for slug, name, source in FILES:
        project = projects.get(slug)
        if project is None or (project.pk, name) in present:
            report.count("files", False)
            continue
        with (FILES_DIR / source).open("rb") as content:
            challenge_file_add(project=project, name=name, content=File(content, name=source))
        report.count("files", True)


def _add_hints(tenant, report: SeedReport) -> None:
    """The demo's hints, each added unless its challenge has a hint at that position already."""
    projects = {p.slug: p for p in Project.objects.for_tenant(tenant).filter(slug__in={h[0] for h in HINTS})}
    present = set(
        Hint.objects.for_tenant(tenant).filter(project__in=projects.values()).values_list("project_id", "position")
    )
    for slug, position, cost, text in HINTS:
        project = projects.get(slug)
        created = project is not None and (project.pk, position) not in present
        if created:
            Hint.objects.create(tenant=tenant, project=project, position=position, cost=cost, text=text)
        report.count("hints", created)


def _form_teams(tenant, report: SeedReport) -> None:
    """The demo's teams, each formed unless the class has a team of that name or does not play in teams.

    A member already in another team is left there.
    """
    if tenant.team_mode == TeamMode.OFF:
        return
    users = {u.email: u for u in User.objects.for_tenant(tenant).filter(email__in={e for t in TEAMS for e in t[1]})}
    present = {name.lower() for name in Team.objects.for_tenant(tenant).values_list("name", flat=True)}
    for name, emails in TEAMS:
        free = [users[e] for e in emails if e in users and team_of(users[e]) is None]
        if name.lower() in present or not free:
            report.count("teams", False)
            continue
        team = team_create(user=free[0], name=name)
        for user in free[1:]:
            team_join(user=user, code=team.invite_code)
        report.count("teams", True)


# Who tries what first, so the demo opens on leaderboards, badges and a grading queue:
# (student, challenge slug, flag or None for a write-up, write-up text)
ACTIVITY = [
    ("alice@vulhub.com", "sql-injection", "FLAG{union_select_all_the_things}", ""),
    ("alice@vulhub.com", "caesar-cipher", "FLAG{veni_vidi_vici}", ""),
    ("alice@vulhub.com", "caesar-cipher", "FLAG{veni_vidi_decrypsi}", ""),
    ("bob@vulhub.com", "packet-capture", "FLAG{follow_the_tcp_stream}", ""),
    (
        "bob@vulhub.com",
        "stored-xss",
        None,
        "The guestbook echoes comments unescaped; a <script> posts document.cookie "
        "to my server. Fix: escape on output and set HttpOnly on the session cookie.",
    ),
    ("carol@vulhub.com", "memory-forensics", "FLAG{volatility}", ""),
    (
        "carol@vulhub.com",
        "padding-oracle",
        None,
        "Byte by byte from the last block: flip bytes of the previous "
        "block until the padding is valid, then recover the plaintext with XOR.",
    ),
    # teams: a teammate's solve of a challenge the team has solved already earns the team nothing more
    ("dave@vulhub.com", "sql-injection", "FLAG{union_select_all_the_things}", ""),
    ("erin@vulhub.com", "packet-capture", "FLAG{follow_the_tcp_stream}", ""),
    ("frank@vulhub.com", "caesar-cipher", "FLAG{veni_vidi_decrypsi}", ""),
    ("frank@vulhub.com", "sql-injection", "FLAG{union_select_all_the_things}", ""),
    ("grace@vulhub.com", "packet-capture", "FLAG{follow_the_tcp_stream}", ""),
    ("grace@vulhub.com", "caesar-cipher", "FLAG{veni_vidi_decrypsi}", ""),
    ("heidi@vulhub.com", "memory-forensics", "FLAG{volatile_memories}", ""),
]


# Hints unlocked before those answers: (student, challenge slug, position). Erin's is charged
# to her team, which then solves that challenge for 10 points less.
UNLOCKS = [("erin@vulhub.com", "packet-capture", 1)]


def _play_a_little(tenant, report: SeedReport) -> None:
    users = {u.email: u for u in User.objects.for_tenant(tenant)}
    projects = {p.slug: p for p in Project.objects.for_tenant(tenant)}
    hints = {(h.project.slug, h.position): h for h in Hint.objects.for_tenant(tenant).select_related("project")}
    for email, slug, position in UNLOCKS:
        hint_unlock(user=users[email], hint=hints[(slug, position)])
        report.count("unlocks", True)
    for email, slug, flag, writeup in ACTIVITY:
        submission_create(user=users[email], project=projects[slug], flag=flag, writeup=writeup)
        report.count("submissions", True)
