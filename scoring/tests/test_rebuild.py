"""A generated scoring history: the incremental tables must equal every way of rebuilding them.

One deterministic history (random.Random(SEED)) goes through the services only:
students register, submit right and wrong flags and write-ups (again after a partial
grade), instructors grade the pending write-ups and regrade graded work (approved ->
rejected too; a better grade supersedes the earlier approval), badges are awarded and
revoked by hand. The test keeps its own model of what each call must do
(which refusal, which status, how many points) and checks every answer of the
services against it while the history runs.

Afterwards the incremental leaderboard must equal `rebuild_leaderboards` from the
submissions and from the events, and points, ranks and badges must equal what this
module computes in plain Python, with rules written here, not imported.

The history is built once for the module, inside a transaction rolled back at the
end; each test runs in a savepoint inside it.
"""

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Count
from django.test import override_settings

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from challenges.models import Project
from scoring import services
from scoring.factories import BadgeFactory
from scoring.models import Leaderboard, Submission, UserBadge
from tenants.factories import TenantFactory
from tenants.models import User
from tenants.services import user_register

pytestmark = pytest.mark.django_db

SEED = 20250611
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MIN_GRADINGS = 1000
SLUG = "rebuild"
OTHER_SLUG = "rebuild-other"
ATTEMPTS = {"flag_attempts": {"limit": 1000, "window_minutes": 10}}

CATEGORIES = ["Web Security", "Cryptography", "Forensics", "Reverse Engineering"]
DIFFICULTIES = ["BEGINNER", "INTERMEDIATE", "ADVANCED", "EXPERT"]
# Many of these times a score lands on a half point, e.g. 45 * 10 / 100 = 4.5: up to 5 (round() gives 4).
POINTS = [15, 25, 45, 50, 75, 100, 125, 150, 250, 333, 10, 35, 55, 85, 205]
SCORES = [100, 100, 90, 70, 50, 30, 10, 5, 2, 1, 0]

AUTO_RULES = [
    ("first-blood", "FIRST_SOLVE", {}),
    ("points-150", "POINTS_AT_LEAST", {"n": 150}),
    ("points-400", "POINTS_AT_LEAST", {"n": 400}),
    ("points-700", "POINTS_AT_LEAST", {"n": 700}),
    ("solves-3", "SOLVES_AT_LEAST", {"n": 3}),
    ("solves-7", "SOLVES_AT_LEAST", {"n": 7}),
    ("web-2", "CATEGORY_SOLVES", {"n": 2, "category": "Web Security"}),
    ("crypto-3", "CATEGORY_SOLVES", {"n": 3, "category": "Cryptography"}),
    ("forensics-all", "CATEGORY_COMPLETE", {"category": "Forensics"}),
    ("reversing-all", "CATEGORY_COMPLETE", {"category": "Reverse Engineering"}),
    ("expert-1", "DIFFICULTY_SOLVES", {"n": 1, "difficulty": "EXPERT"}),
    ("beginner-3", "DIFFICULTY_SOLVES", {"n": 3, "difficulty": "BEGINNER"}),
]
HAND_BADGES = ["helpful", "mentor"]
AUTO_REVOKE_REASON = "The grade that earned it changed."


def points_for(points: int, score: int) -> int:
    """round(points * score / 100), halves up, in integers."""
    return (points * score + 50) // 100


def expected_badges(rules, solved, published_by_category) -> set[int]:
    """The rule badges earned with `solved`: (project id, category, difficulty, points awarded) rows."""
    total_points = sum(row[3] for row in solved)
    by_category = Counter(row[1] for row in solved)
    by_difficulty = Counter(row[2] for row in solved)
    solved_ids = {row[0] for row in solved}
    earned = set()
    for badge_id, kind, params in rules:
        n = params.get("n", 1)
        if kind == "FIRST_SOLVE":
            ok = len(solved) >= 1
        elif kind == "POINTS_AT_LEAST":
            ok = total_points >= n
        elif kind == "SOLVES_AT_LEAST":
            ok = len(solved) >= n
        elif kind == "CATEGORY_SOLVES":
            ok = by_category[params["category"]] >= n
        elif kind == "CATEGORY_COMPLETE":
            wanted = published_by_category.get(params["category"], set())
            ok = bool(wanted) and wanted <= solved_ids
        elif kind == "DIFFICULTY_SOLVES":
            ok = by_difficulty[params["difficulty"]] >= n
        else:
            raise AssertionError(kind)
        if ok:
            earned.add(badge_id)
    return earned


def competition_ranks(points_by_user: dict[int, int]) -> dict[int, int]:
    """1, 2, 2, 4: one more than the number of students with strictly more points."""
    return {
        user: 1 + sum(1 for other in points_by_user.values() if other > mine) for user, mine in points_by_user.items()
    }


# --- the model the history is checked against -----------------------------------------------


def first_refusal(*checks):
    """The refusal of the first check that fails, or None."""
    return next((refusal for failed, refusal in checks if failed), None)


@dataclass
class Sub:
    obj: Submission
    student: int
    project: Project
    status: str
    score: int | None
    points: int
    scored_at: object  # graded_at or submitted_at
    grades: list = field(default_factory=list)  # (previous status, previous score, status, score) per grading


@dataclass
class History:
    tenant: object
    other_tenant: object
    students: list
    instructors: list
    projects: list
    unpublished: Project
    rule_badges: list  # (id, kind, params)
    hand_badges: list
    subs: dict = field(default_factory=dict)  # submission id -> Sub
    subs_of: defaultdict = field(default_factory=lambda: defaultdict(list))  # student id -> [Sub]
    hand_held: set = field(default_factory=set)  # (user id, badge id)
    outcomes: Counter = field(default_factory=Counter)
    gradings: int = 0

    def approved(self, student_pk):
        return [s for s in self.subs_of[student_pk] if s.status == "APPROVED"]

    def counting(self, student_pk, project, besides=None):
        """The student's approved submission of the challenge (other than `besides`), or None."""
        return next((s for s in self.approved(student_pk) if s.project.pk == project.pk and s is not besides), None)

    def solved(self, student_pk, project):
        """A full score: no more answers. Below 100, the student may try again."""
        counting = self.counting(student_pk, project)
        return counting is not None and counting.score == 100

    def waiting(self, student_pk, project):
        return any(s.project.pk == project.pk and s.status == "PENDING" for s in self.subs_of[student_pk])

    def supersede(self, sub):
        """A better grade replaced this approval: no points, its score stays."""
        sub.grades.append((sub.status, sub.score, "SUPERSEDED", sub.score))
        sub.status, sub.points = "SUPERSEDED", 0
        self.outcomes["superseded"] += 1

    def published_by_category(self):
        found = defaultdict(set)
        for project in self.projects:
            found[project.category].add(project.pk)
        return found

    def expected_auto_badges(self, student_pk):
        solved = [(s.project.pk, s.project.category, s.project.difficulty, s.points) for s in self.approved(student_pk)]
        return expected_badges(self.rule_badges, solved, self.published_by_category())


class Runner:
    """Calls the services as the history says and checks each answer against the model."""

    def __init__(self, history: History, rng: random.Random):
        self.h = history
        self.rng = rng

    def expect(self, refusal, call):
        if refusal is None:
            return call()
        with pytest.raises(services.ScoringError) as caught:
            call()
        assert type(caught.value) is refusal, f"expected {refusal.__name__}, got {caught.value!r}"
        self.h.outcomes[refusal.__name__] += 1
        return None

    def check_student(self, student_pk):
        """After each scoring of a student: their leaderboard row and automatic badges."""
        approved = self.h.approved(student_pk)
        row = Leaderboard.objects.filter(tenant=self.h.tenant, user_id=student_pk).values_list("points", "solves")
        assert row.first() == ((sum(s.points for s in approved), len(approved)) if approved else None)
        held = set(
            UserBadge.objects.filter(user_id=student_pk, awarded_by__isnull=True)
            .exclude(badge__rule_kind="")
            .values_list("badge_id", flat=True)
        )
        assert held == self.h.expected_auto_badges(student_pk)

    def submit(self, student, project, flag=None, writeup=""):
        h = self.h
        # the checks in the order the service makes them
        refusal = first_refusal(
            (not project.is_published, services.NotAllowed),
            (student.role != User.Role.STUDENT, services.NotAllowed),
            (h.solved(student.pk, project), services.AlreadySolved),
            (h.waiting(student.pk, project), services.AwaitingGrading),
            (not (flag if project.has_flag else writeup or "").strip(), services.InvalidAnswer),
        )
        counting = h.counting(student.pk, project)
        created = self.expect(
            refusal,
            lambda: services.submission_create(user=student, project=project, flag=flag, writeup=writeup),
        )
        if created is None:
            return None
        if project.has_flag:
            right = flag.strip() == project.flag
            status, score = ("APPROVED", 100) if right else ("REJECTED", 0)
            assert (created.kind, created.status, created.score) == ("FLAG", status, score)
            assert created.points_awarded == (project.points if right else 0)
            if right and counting is not None:  # a right flag after a partial grade
                h.supersede(counting)
            h.gradings += 1
            h.outcomes[f"flag {status.lower()}"] += 1
        else:
            assert (created.kind, created.status, created.score, created.points_awarded) == (
                "WRITEUP",
                "PENDING",
                None,
                0,
            )
            h.outcomes["write-up submitted"] += 1
        sub = Sub(
            obj=created,
            student=student.pk,
            project=project,
            status=created.status,
            score=created.score,
            points=created.points_awarded,
            scored_at=created.graded_at or created.submitted_at,
        )
        h.subs[created.pk] = sub
        h.subs_of[student.pk].append(sub)
        self.check_student(student.pk)
        return created

    def grade(self, sub: Sub, status, score, grader=None, feedback=""):
        h = self.h
        grader = grader or self.rng.choice(h.instructors)
        counting = h.counting(sub.student, sub.project, besides=sub)
        refusal = first_refusal(
            (not grader.is_staff, services.NotAllowed),
            (status not in ("APPROVED", "REJECTED"), services.InvalidAnswer),
            (not (isinstance(score, int) and 0 <= score <= 100), services.InvalidAnswer),
            # the best grade counts: approving supersedes a lower approval, and only a lower one
            (
                status == "APPROVED"
                and counting is not None
                and (sub.status == "SUPERSEDED" or score <= counting.score),
                services.InvalidAnswer,
            ),
        )
        graded = self.expect(
            refusal,
            lambda: services.submission_grade(
                submission=sub.obj, status=status, score=score, grader=grader, feedback=feedback
            ),
        )
        if graded is None:
            return None
        points = points_for(sub.project.points, score) if status == "APPROVED" else 0
        assert (graded.status, graded.score, graded.points_awarded) == (status, score, points)
        if status == "APPROVED" and counting is not None:
            h.supersede(counting)
        sub.grades.append((sub.status, sub.score, status, score))
        kind = "regrade" if sub.status != "PENDING" else "grade"
        h.outcomes[f"{kind} {sub.status.lower()}->{status.lower()}"] += 1
        sub.status, sub.score, sub.points, sub.scored_at = status, score, points, graded.graded_at
        h.gradings += 1
        self.check_student(sub.student)
        return graded

    def hand_badge(self, student, badge, award: bool):
        h = self.h
        instructor = self.rng.choice(h.instructors)
        held = (student.pk, badge.pk) in h.hand_held
        if award:
            refusal = services.InvalidAnswer if held else None
            done = self.expect(refusal, lambda: services.badge_award(badge=badge, user=student, actor=instructor))
            if done is not None:
                h.hand_held.add((student.pk, badge.pk))
                h.outcomes["hand award"] += 1
        else:
            refusal = None if held else services.InvalidAnswer
            self.expect(
                refusal,
                lambda: services.badge_revoke(badge=badge, user=student, actor=instructor, reason="second thoughts"),
            )
            if held:
                h.hand_held.discard((student.pk, badge.pk))
                h.outcomes["hand revoke"] += 1


def score_for_approval(rng):
    return rng.choice(SCORES) if rng.random() < 0.7 else rng.randint(0, 100)


def build_history() -> History:
    rng = random.Random(SEED)
    tenant = TenantFactory(name="Rebuild Academy", slug=SLUG, domain="rebuild.localhost", settings=ATTEMPTS)
    other = TenantFactory(name="Rebuild Other", slug=OTHER_SLUG, domain="rebuild-other.localhost", settings=ATTEMPTS)

    def register(t, email, role):
        return user_register(tenant=t, email=email, password="pw", first_name=email[:3], role=role)

    students = [register(tenant, f"s{i:02d}@rebuild.test", User.Role.STUDENT) for i in range(30)]
    instructors = [register(tenant, f"teacher{i}@rebuild.test", User.Role.INSTRUCTOR) for i in range(2)]
    projects = []
    for i in range(15):
        flag = f"FLAG{{rebuild-{i}-{rng.getrandbits(32):08x}}}" if i % 5 in (0, 1, 3) else None
        project = ProjectFactory(
            tenant=tenant,
            slug=f"rebuild-{i}",
            category=CATEGORIES[i % 4],
            difficulty=DIFFICULTIES[(i // 4) % 4],
            points=POINTS[i],
            flag=flag,
        )
        project.flag = flag  # the test remembers the flag; the database keeps its digest
        projects.append(project)
    # not published, in a category a CATEGORY_COMPLETE badge counts: it must not count
    unpublished = ProjectFactory(
        tenant=tenant, slug="rebuild-hidden", category="Forensics", difficulty="EXPERT", is_published=False, flag="F{x}"
    )
    unpublished.flag = "F{x}"
    rule_badges = []
    for slug, kind, params in AUTO_RULES:
        badge = BadgeFactory(tenant=tenant, slug=slug, name=slug, rule_kind=kind, rule_params=params)
        rule_badges.append((badge.pk, kind, params))
    hand_badges = [BadgeFactory(tenant=tenant, slug=slug, name=slug) for slug in HAND_BADGES]
    h = History(
        tenant=tenant,
        other_tenant=other,
        students=students,
        instructors=instructors,
        projects=projects,
        unpublished=unpublished,
        rule_badges=rule_badges,
        hand_badges=hand_badges,
    )
    run = Runner(h, rng)
    flag_projects = [p for p in projects if p.flag]
    writeup_projects = [p for p in projects if not p.flag]

    # Scripted students. Three tie (the same three flags); two more tie after a regrade round trip;
    # the last one's only solve is taken back, so they leave the leaderboard.
    for student in students[24:27]:
        run.submit(student, flag_projects[0], flag="FLAG{nope}")
        for project in flag_projects[:3]:
            run.submit(student, project, flag=project.flag)
    for student in students[27:29]:
        run.submit(student, flag_projects[4], flag=f"  {flag_projects[4].flag}  ")
        pending = run.submit(student, writeup_projects[1], writeup="strings | grep")
        sub = h.subs[pending.pk]
        run.grade(sub, "APPROVED", 50)
        run.grade(sub, "REJECTED", 0, feedback="copied")
        run.grade(sub, "APPROVED", 50)
    ghost = students[29]
    run.submit(ghost, flag_projects[1], flag="FLAG{wrong}")
    solved = h.subs[run.submit(ghost, flag_projects[1], flag=flag_projects[1].flag).pk]
    run.grade(solved, "REJECTED", 0, feedback="flag shared in the chat")

    # Random students, each with a skill: the chance that a flag they send is right.
    randoms = students[:24]
    random_pks = {s.pk for s in randoms}
    skill = {s.pk: rng.uniform(0.1, 0.6) for s in randoms}
    steps = 0
    while h.gradings < MIN_GRADINGS + 100:
        steps += 1
        assert steps < 10_000, "the history does not make progress"
        r = rng.random()
        student = rng.choice(randoms)
        if r < 0.42:
            project = rng.choice(flag_projects)
            right = rng.random() < skill[student.pk]
            run.submit(student, project, flag=project.flag if right else f"FLAG{{guess-{rng.randint(0, 99)}}}")
        elif r < 0.58:
            run.submit(student, rng.choice(writeup_projects), writeup=f"step {steps}: how I did it", flag="ignored")
        elif r < 0.78:
            pending = [s for s in h.subs.values() if s.status == "PENDING"]
            if pending:
                sub = rng.choice(pending)
                if rng.random() < 0.75:
                    run.grade(sub, "APPROVED", score_for_approval(rng), feedback="good")
                else:
                    run.grade(sub, "REJECTED", rng.randint(0, 60), feedback="not yet")
        elif r < 0.92:
            # the scripted students' work stays as scripted
            graded = [s for s in h.subs.values() if s.status != "PENDING" and s.student in random_pks]
            approved = [s for s in graded if s.status == "APPROVED"]
            if not graded:
                continue
            # mostly approved work: taking it back is what revokes badges
            sub = rng.choice(approved if approved and rng.random() < 0.65 else graded)
            if rng.random() < (0.5 if sub.status == "APPROVED" else 0.2):
                run.grade(sub, "REJECTED", rng.randint(0, 40), feedback="regraded: not enough")
            else:
                run.grade(sub, "APPROVED", score_for_approval(rng), feedback="regraded")
        elif r < 0.97:
            run.hand_badge(rng.choice(students), rng.choice(hand_badges), award=rng.random() < 0.6)
        else:
            odd = rng.randrange(7)
            if odd == 0:
                run.submit(student, rng.choice(flag_projects), flag="   ")
            elif odd == 1:
                run.submit(student, rng.choice(writeup_projects), writeup="  ")
            elif odd == 2:
                run.submit(student, unpublished, flag=unpublished.flag)
            elif odd == 3:
                run.submit(rng.choice(instructors), rng.choice(flag_projects), flag="FLAG{staff}")
            elif h.subs:
                sub = h.subs[rng.choice(list(h.subs))]
                if odd == 4:
                    run.grade(sub, "APPROVED", 100, grader=student)  # a student cannot grade
                elif odd == 5:
                    run.grade(sub, "APPROVED", 101)
                else:
                    run.grade(sub, "PENDING", 50)

    # The other tenant: a little activity, to see that rebuilding one tenant leaves it alone.
    other_students = [register(other, f"o{i}@rebuild.test", User.Role.STUDENT) for i in range(3)]
    other_project = ProjectFactory(tenant=other, slug="other-0", points=80, flag="FLAG{other}")
    for student in other_students[:2]:
        services.submission_create(user=student, project=other_project, flag="FLAG{other}")
    return h


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHERS), transaction.atomic():
        yield build_history()
        transaction.set_rollback(True)


def board_rows(tenant):
    return sorted(
        Leaderboard.objects.filter(tenant=tenant).values_list(
            "tenant_id", "user_id", "points", "solves", "rank", "last_scored_at"
        )
    )


def expected_board(tenant) -> list[tuple]:
    """The standings computed in Python from the submissions table."""
    totals = {}
    for user_id, points, graded_at, submitted_at in Submission.objects.filter(
        tenant=tenant, status="APPROVED"
    ).values_list("user_id", "points_awarded", "graded_at", "submitted_at"):
        scored_at = graded_at or submitted_at
        row = totals.setdefault(user_id, [0, 0, scored_at])
        row[0] += points
        row[1] += 1
        row[2] = max(row[2], scored_at)
    ranks = competition_ranks({user: row[0] for user, row in totals.items()})
    return sorted((tenant.pk, user, p, n, ranks[user], last) for user, (p, n, last) in totals.items())


# --- the history itself ----------------------------------------------------------------------


def test_the_history_covers_what_it_should(history):
    h = history
    o = h.outcomes
    assert h.gradings >= MIN_GRADINGS
    assert Submission.objects.filter(tenant=h.tenant).count() == len(h.subs)
    assert o["flag approved"] > 50 and o["flag rejected"] > 300
    assert o["grade pending->approved"] > 50 and o["grade pending->rejected"] > 20
    assert o["regrade approved->rejected"] > 30 and o["regrade approved->approved"] > 30
    assert o["regrade rejected->approved"] > 10 and o["regrade rejected->rejected"] > 5
    for refusal in ("AlreadySolved", "InvalidAnswer", "NotAllowed"):
        assert o[refusal] > 5, refusal
    # a write-up while another waits for grading; better grades replacing earlier approvals
    assert o["AwaitingGrading"] > 2 and o["superseded"] > 5
    assert o["hand award"] > 5 and o["hand revoke"] > 5
    # Automatic badges were both given and taken back by grades.
    events = EventStore.objects.filter(tenant=h.tenant)
    assert events.filter(event_type="BadgeAwarded", payload__automatic=True).count() > 50
    assert events.filter(event_type="BadgeRevoked", payload__reason=AUTO_REVOKE_REASON).count() > 10
    # Every rule gave its badge to someone.
    awarded = set(UserBadge.objects.filter(tenant=h.tenant).values_list("badge_id", flat=True))
    assert {badge_id for badge_id, _, _ in h.rule_badges} <= awarded
    # Half points happened, also where round() would have rounded down to even.
    approved = [s for s in h.subs.values() if s.status == "APPROVED"]
    halves = [s for s in approved if s.project.points * s.score % 100 == 50]
    assert len(halves) > 3
    assert any(round(s.project.points * s.score / 100) != s.points for s in halves)


def test_the_database_holds_exactly_the_modelled_submissions(history):
    h = history
    stored = {
        pk: (user, project, status, score, points)
        for pk, user, project, status, score, points in Submission.objects.filter(tenant=h.tenant).values_list(
            "pk", "user_id", "project_id", "status", "score", "points_awarded"
        )
    }
    modelled = {pk: (s.student, s.project.pk, s.status, s.score, s.points) for pk, s in h.subs.items()}
    assert stored == modelled


# --- (a), (b) leaderboards -------------------------------------------------------------------


def rebuild(*options) -> str:
    out = StringIO()
    call_command("rebuild_leaderboards", "--tenant", SLUG, *options, "--no-progress", stdout=out)
    return out.getvalue()


def test_the_incremental_leaderboard_equals_a_rebuild_from_submissions_and_from_events(history):
    tenant = history.tenant
    incremental = board_rows(tenant)
    other_before = board_rows(history.other_tenant)
    n = len(incremental)
    assert n > 20
    assert len(other_before) == 2

    # A rebuild of a correct table finds nothing to write, from either source.
    assert f"{SLUG}: {n} students ranked, 0 rows written, 0 removed" in rebuild()
    assert board_rows(tenant) == incremental
    assert f"{SLUG}: {n} students ranked, 0 rows written, 0 removed" in rebuild("--from-events")
    assert board_rows(tenant) == incremental

    # From an empty table, each source computes the whole table again, and only this tenant's.
    Leaderboard.objects.filter(tenant=tenant).delete()
    assert f"{SLUG}: {n} students ranked, {n} rows written, 0 removed" in rebuild()
    assert board_rows(tenant) == incremental
    Leaderboard.objects.filter(tenant=tenant).delete()
    assert f"{SLUG}: {n} students ranked, {n} rows written, 0 removed" in rebuild("--from-events")
    assert board_rows(tenant) == incremental
    assert board_rows(history.other_tenant) == other_before

    # From a damaged table: wrong totals and ranks, a missing row, a student who has no solve.
    tied = history.students[24]
    top = Leaderboard.objects.filter(tenant=tenant).filter(rank__lte=3).exclude(user=tied)
    damaged = Leaderboard.objects.filter(pk__in=list(top.values_list("pk", flat=True))).update(points=1)
    Leaderboard.objects.filter(tenant=tenant, user=tied).delete()
    Leaderboard.objects.create(tenant=tenant, user=history.students[29], points=5, solves=1)
    assert damaged >= 3
    expected = f"{SLUG}: {n} students ranked, {damaged + 1} rows written, 1 removed"
    assert expected in rebuild("--from-events")
    assert board_rows(tenant) == incremental


def test_the_stored_ranks_followed_every_grading_and_regrade(history):
    """The rank trigger (scoring 0012) saw every write of the history: each row's rank is a fresh window rank."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id, rank, rank() OVER (PARTITION BY tenant_id ORDER BY points DESC) FROM leaderboards
            """
        )
        rows = cursor.fetchall()
    assert len(rows) > 20 and [(i, stored) for i, stored, fresh in rows if stored != fresh] == []


def test_ranks_are_competition_ranks_by_points_computed_in_python(history):
    h = history
    rows = board_rows(h.tenant)
    assert rows == expected_board(h.tenant)

    # the same from the test's own model of the history
    modelled = {}
    for student in h.students:
        approved = h.approved(student.pk)
        if approved:
            modelled[student.pk] = (
                sum(s.points for s in approved),
                len(approved),
                max(s.scored_at for s in approved),
            )
    ranks = competition_ranks({user: p for user, (p, _, _) in modelled.items()})
    assert rows == sorted((h.tenant.pk, u, p, n, ranks[u], last) for u, (p, n, last) in modelled.items())

    # 1, 2, 2, 4: a rank is one more than the number of rows above it on points, so ties share it
    ordered = sorted(((points, rank) for _, _, points, _, rank, _ in rows), reverse=True)
    for points, rank in ordered:
        assert rank == 1 + sum(1 for other, _ in ordered if other > points)
    assert [rank for _, rank in ordered] == sorted(rank for _, rank in ordered)
    # the scripted ties are there: three students on one score, two on another, with a rank skipped after each
    by_user = {user: (points, rank) for _, user, points, _, rank, _ in rows}
    for group in (h.students[24:27], h.students[27:29]):
        (points, rank), *others = {by_user[s.pk] for s in group}
        assert others == []
        below = [r for p, r in ordered if p < points]
        assert not below or min(below) == rank + len(group)
    # the student whose only solve was taken back has no row
    assert h.students[29].pk not in by_user


# --- (c), (d) badges ------------------------------------------------------------------------


def test_automatic_badges_are_exactly_what_the_rules_give_from_approved_submissions(history):
    h = history
    published = defaultdict(set)
    for pk, category in Project.objects.filter(tenant=h.tenant, is_published=True).values_list("pk", "category"):
        published[category].add(pk)
    assert h.unpublished.pk not in published["Forensics"]
    solved = defaultdict(list)
    for row in Submission.objects.filter(tenant=h.tenant, status="APPROVED").values_list(
        "user_id", "project_id", "project__category", "project__difficulty", "points_awarded"
    ):
        solved[row[0]].append(row[1:])
    held = defaultdict(set)
    for user_id, badge_id in UserBadge.objects.filter(
        tenant=h.tenant, awarded_by__isnull=True, badge__rule_kind__gt=""
    ).values_list("user_id", "badge_id"):
        held[user_id].add(badge_id)

    for student in h.students:
        assert held[student.pk] == expected_badges(h.rule_badges, solved[student.pk], published), student.email
    assert sum(len(badges) for badges in held.values()) > 60


def test_badges_by_hand_are_the_modelled_ones_and_nobody_holds_a_badge_twice(history):
    h = history
    by_hand = set(
        UserBadge.objects.filter(tenant=h.tenant, awarded_by__isnull=False).values_list("user_id", "badge_id")
    )
    assert by_hand == h.hand_held
    duplicates = (
        UserBadge.objects.filter(tenant=h.tenant).values("user_id", "badge_id").annotate(n=Count("id")).filter(n__gt=1)
    )
    assert list(duplicates) == []


def test_badge_events_replay_to_the_badges_held(history):
    h = history
    replayed = set()
    for event_type, payload in (
        EventStore.objects.filter(tenant=h.tenant, event_type__in=["BadgeAwarded", "BadgeRevoked"])
        .order_by("position")
        .values_list("event_type", "payload")
    ):
        key = (payload["user_id"], payload["badge_id"])
        if event_type == "BadgeAwarded":
            assert key not in replayed
            replayed.add(key)
        else:
            assert key in replayed
            replayed.remove(key)
    assert replayed == set(UserBadge.objects.filter(tenant=h.tenant).values_list("user_id", "badge_id"))


# --- (e) points ---------------------------------------------------------------------------


def test_points_awarded_are_points_times_score_rounded_half_up(history):
    rows = list(
        Submission.objects.filter(tenant=history.tenant).values_list(
            "status", "score", "points_awarded", "project__points"
        )
    )
    approved = [(score, awarded, points) for status, score, awarded, points in rows if status == "APPROVED"]
    assert len(approved) > 100
    assert [awarded for _, awarded, _ in approved] == [points_for(points, score) for score, _, points in approved]
    assert {awarded for status, _, awarded, _ in rows if status != "APPROVED"} == {0}


# --- (f) audit -----------------------------------------------------------------------------


def test_the_audit_chains_verify(history):
    out = StringIO()
    call_command("verify_audit", "--no-progress", stdout=out)
    assert "intact" in out.getvalue()
    assert AuditLog.objects.filter(tenant=history.tenant).count() > 1500


def test_each_grading_left_its_event_and_audit_update_in_order(history):
    h = history
    graded_events = defaultdict(list)
    for aggregate_id, payload in (
        EventStore.objects.filter(tenant=h.tenant, event_type="SubmissionGraded")
        .order_by("position")
        .values_list("aggregate_id", "payload")
    ):
        graded_events[int(aggregate_id)].append(
            (
                payload["previous_status"],
                payload["previous_score"],
                payload["status"],
                payload["score"],
                payload["regrade"],
            )
        )
    updates = defaultdict(list)
    for object_id, changes in (
        AuditLog.objects.filter(tenant=h.tenant, object_type="scoring.submission", action="update")
        .order_by("chain_seq")
        .values_list("object_id", "changes")
    ):
        updates[int(object_id)].append(changes)
    created = Counter(
        int(a)
        for a in EventStore.objects.filter(tenant=h.tenant, event_type="SubmissionCreated").values_list(
            "aggregate_id", flat=True
        )
    )
    assert created == Counter(list(h.subs))

    regrades = 0
    for pk, sub in h.subs.items():
        expected = [(*grade, grade[0] != "PENDING") for grade in sub.grades]
        assert graded_events.get(pk, []) == expected, pk
        assert len(updates.get(pk, [])) == len(sub.grades), pk
        for (before, score_before, after, score_after), changes in zip(sub.grades, updates.get(pk, []), strict=True):
            assert changes.get("status") == ([before, after] if before != after else None)
            assert changes.get("score") == ([score_before, score_after] if score_before != score_after else None)
            # superseding keeps the earlier grade's time and grader
            assert ("graded_at" in changes) == (after != "SUPERSEDED")
        regrades += sum(1 for grade in sub.grades if grade[0] != "PENDING")
    assert regrades > 100
    assert EventStore.objects.filter(tenant=h.tenant, event_type="SubmissionGraded", payload__regrade=True).count() == (
        regrades
    )
