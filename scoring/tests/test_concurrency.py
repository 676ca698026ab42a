"""The scoring services under real concurrency: threads, each on its own database connection.

Every worker is a thread (Django gives each its own connection), so these tests commit
for real (`transaction=True`); each thread closes its connections when it ends. The
services may refuse (a ScoringError); anything else a thread meets (an IntegrityError,
a deadlock) is re-raised in the test.

Foreign keys are checked at COMMIT (deferred), after a service has written its audit
rows and events, i.e. while it holds the tenant's audit chain head and the event append
lock. Those checks take FOR KEY SHARE on the rows they reference; the services lock
rows FOR NO KEY UPDATE, and only their own (`of=("self",)`), so the checks never wait
on another service. The two tests at the end once reproduced the deadlocks that came
from locking FOR UPDATE; they guard against their return.
"""

import random
import threading
import time
from collections import Counter, defaultdict
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import DatabaseError, OperationalError, connection, connections

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from scoring import leaderboard, services
from scoring.factories import BadgeFactory
from scoring.leaderboard import LEADERBOARD_LOCK
from scoring.models import Leaderboard, Submission, UserBadge
from scoring.replay import standings_from_events
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory
from vulhub.ops.db_roles import use_role
from vulhub.tests.workers import Workers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_hashing")]

TIMEOUT = 30  # seconds; any wait longer than this is a hang
SEED = 7_2025
DEADLOCK = "deadlock"


@pytest.fixture(autouse=True)
def _room_for_every_thread(pooled_connections_for):
    pooled_connections_for(60)  # the burst test runs 50 threads, each with a connection


def detect_deadlocks_quickly():
    """Check for a deadlock after 50 ms of waiting instead of 1 s: a regression fails fast.

    Only the detection delay changes (a session setting, superuser only; skipped otherwise).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET deadlock_timeout = '50ms'")
    except DatabaseError:
        pass


class ServiceWorkers(Workers):
    """Workers that call the services; ScoringErrors are counted, anything else is kept and re-raised."""

    timeout = TIMEOUT

    def __init__(self):
        super().__init__()
        self.in_flight = 0
        self.max_in_flight = 0
        self.deadlocks = []

    def prepare(self) -> None:
        connection.ensure_connection()  # connect before any barrier: the calls overlap, not the logins
        detect_deadlocks_quickly()

    def call(self, service, *, deadlock_ok=False, **kwargs):
        """Run one service call; returns (result, None) or (None, the ScoringError it raised).

        With deadlock_ok, a deadlock (see the module docstring) is kept in
        `deadlocks` and returned as (None, DEADLOCK); without, it is raised like any error.
        """
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return service(**kwargs), None
        except services.ScoringError as refusal:
            return None, refusal
        except OperationalError as error:
            if not (deadlock_ok and isinstance(error.__cause__, psycopg.errors.DeadlockDetected)):
                raise
            with self.lock:
                self.deadlocks.append(error)
            return None, DEADLOCK
        finally:
            with self.lock:
                self.in_flight -= 1


def lock_waiters() -> int:
    """Sessions of this database waiting for a lock (the owner sees every session's wait)."""
    with use_role("owner"), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


class StudentRowGate:
    """Holds a student's row lock on a connection of its own until `open()`: the services queue behind it."""

    def __init__(self, student):
        self.conn = connections.create_connection("default")
        self.cursor = self.conn.cursor()
        self.cursor.execute("BEGIN")
        self.cursor.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", [student.pk])

    def wait_for(self, waiters):
        deadline = time.monotonic() + TIMEOUT
        while lock_waiters() < waiters and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lock_waiters() == waiters

    def open(self):
        if self.conn is not None:
            self.cursor.execute("COMMIT")
            self.conn.close()
            self.conn = None


def board(tenant):
    return sorted(
        Leaderboard.objects.filter(tenant=tenant).values_list(
            "tenant_id", "user_id", "points", "solves", "rank", "last_scored_at"
        )
    )


def expected_board(tenant):
    """Standings computed in Python from the approved submissions: totals and competition ranks."""
    totals = {}
    for user_id, points, scored_at in Submission.objects.filter(tenant=tenant, status="APPROVED").values_list(
        "user_id", "points_awarded", "graded_at"
    ):
        row = totals.setdefault(user_id, [0, 0, scored_at])
        row[0] += points
        row[1] += 1
        row[2] = max(row[2], scored_at)
    rank = {u: 1 + sum(1 for o in totals.values() if o[0] > t[0]) for u, t in totals.items()}
    return sorted((tenant.pk, u, p, n, rank[u], last) for u, (p, n, last) in totals.items())


def assert_board_equals_a_rebuild(tenant):
    before = board(tenant)
    assert before == expected_board(tenant)
    assert leaderboard.rebuild(tenant.pk) == (len(before), 0, 0)  # nothing to correct
    assert board(tenant) == before
    assert leaderboard.replace(tenant.pk, standings_from_events(tenant.pk)) == (len(before), 0, 0)
    assert board(tenant) == before
    return before


# --- (a) many students submitting while instructors grade --------------------------------------


def test_concurrent_submissions_and_gradings_lose_nothing_and_keep_the_leaderboard_exact():
    rng = random.Random(SEED)
    tenant = TenantFactory(slug="race", domain="race.localhost", settings={"flag_attempts": {"limit": 1000}})
    students = [StudentFactory(tenant=tenant, email=f"s{i}@race.test") for i in range(20)]
    instructors = [InstructorFactory(tenant=tenant, email=f"t{i}@race.test") for i in range(2)]
    flags = {}
    flag_projects = []
    for i, (category, difficulty, points) in enumerate(
        [("Web Security", "BEGINNER", 100), ("Web Security", "ADVANCED", 250), ("Cryptography", "EXPERT", 45)]
    ):
        flags[i] = f"FLAG{{race-{i}}}"
        flag_projects.append(
            ProjectFactory(
                tenant=tenant, slug=f"flag-{i}", category=category, difficulty=difficulty, points=points, flag=flags[i]
            )
        )
    writeup_projects = [
        ProjectFactory(tenant=tenant, slug=f"writeup-{i}", category="Forensics", difficulty="INTERMEDIATE", points=p)
        for i, p in enumerate([150, 75])
    ]
    rules = {
        BadgeFactory(tenant=tenant, rule_kind="FIRST_SOLVE").pk: lambda solved: len(solved) >= 1,
        BadgeFactory(tenant=tenant, rule_kind="SOLVES_AT_LEAST", rule_params={"n": 3}).pk: lambda s: len(s) >= 3,
        BadgeFactory(tenant=tenant, rule_kind="CATEGORY_COMPLETE", rule_params={"category": "Forensics"}).pk: (
            lambda solved: {p.pk for p in writeup_projects} <= {pk for pk, _ in solved}
        ),
        BadgeFactory(tenant=tenant, rule_kind="POINTS_AT_LEAST", rule_params={"n": 300}).pk: (
            lambda solved: sum(points for _, points in solved) >= 300
        ),
    }

    # 200 submissions, 10 per student, dealt at random to 20 threads: a student's 10 race each other.
    tasks = []
    for student in students:
        for _ in range(10):
            r = rng.random()
            if r < 0.35:
                i = rng.randrange(3)
                tasks.append((student, flag_projects[i], {"flag": flags[i]}, "right"))
            elif r < 0.65:
                tasks.append((student, rng.choice(flag_projects), {"flag": "FLAG{guess}"}, "wrong"))
            else:
                tasks.append((student, rng.choice(writeup_projects), {"writeup": "how I did it"}, "writeup"))
    rng.shuffle(tasks)
    threads = 20
    barrier = threading.Barrier(threads + len(instructors))
    students_done = threading.Event()
    finished = []
    results = []  # (student id, project id, what, submission or None, refusal or None)
    gradings = []  # (submission id, status, score) of each grading that succeeded
    grading_refusals = []
    workers = ServiceWorkers()

    def student_worker(mine):
        barrier.wait(TIMEOUT)
        for student, project, answer, what in mine:
            created, refusal = workers.call(
                services.submission_create, user=student, project=project, deadlock_ok=True, **answer
            )
            results.append((student.pk, project.pk, what, created, refusal))
        with workers.lock:
            finished.append(1)
            if len(finished) == threads:
                students_done.set()

    def instructor_worker(instructor, seed):
        grader_rng = random.Random(seed)
        barrier.wait(TIMEOUT)
        deadline = time.monotonic() + TIMEOUT / 2  # well before join() gives up on the thread
        while time.monotonic() < deadline:
            last_pass = students_done.is_set()
            pending = list(Submission.objects.filter(tenant=tenant, status="PENDING").order_by("?"))
            if last_pass and not pending:
                return
            for submission in pending:
                if grader_rng.random() < 0.7:
                    status, score = "APPROVED", grader_rng.choice([100, 90, 50, 33, 1])
                else:
                    status, score = "REJECTED", grader_rng.randint(0, 40)
                grade = {"submission": submission, "grader": instructor, "deadlock_ok": True}
                done, refusal = workers.call(services.submission_grade, status=status, score=score, **grade)
                if isinstance(refusal, services.ScoringError):
                    # another write-up of theirs was approved first: reject this one
                    grading_refusals.append(refusal)
                    status, score = "REJECTED", 0
                    done, refusal = workers.call(services.submission_grade, status=status, score=score, **grade)
                    assert not isinstance(refusal, services.ScoringError), refusal
                if done is not None:
                    gradings.append((submission.pk, status, score))
            time.sleep(0.005)
        raise AssertionError("the instructors never caught up")

    for t in range(threads):
        workers.start(student_worker, tasks[t::threads])
    for i, instructor in enumerate(instructors):
        workers.start(instructor_worker, instructor, SEED + i)
    workers.join()  # re-raises anything that was not a ScoringError

    assert len(results) == 200
    assert workers.max_in_flight >= 10  # the calls did overlap

    # No lost submission, no phantom one: exactly the successful calls are stored
    # (a call that died in a deadlock was rolled back: it stored nothing).
    created = [c for *_, c, r in results if c is not None]
    stored = dict(Submission.objects.filter(tenant=tenant).values_list("pk", "status"))
    assert set(stored) == {c.pk for c in created}
    assert len(stored) == len(created)

    # Refusals are the expected ones: a right flag refused only because it was already solved,
    # a write-up also while an earlier one waited for grading.
    refused = Counter((what, type(r).__name__) for *_, what, _, r in results if r not in (None, DEADLOCK))
    assert set(refused) <= {
        ("right", "AlreadySolved"),
        ("wrong", "AlreadySolved"),
        ("writeup", "AlreadySolved"),
        ("writeup", "AwaitingGrading"),
    }
    assert refused[("right", "AlreadySolved")] > 0  # some right flags did race each other
    assert {type(r) for r in grading_refusals} <= {services.InvalidAnswer}

    # At most one approved submission per student and challenge; exactly one for each right flag sent.
    approved = Counter(Submission.objects.filter(tenant=tenant, status="APPROVED").values_list("user_id", "project_id"))
    assert max(approved.values()) == 1
    right = {(s, p) for s, p, what, _, r in results if what == "right" and r is not DEADLOCK}
    assert right <= set(approved)
    for *_, what, submission, _ in results:
        if submission is not None:
            assert submission.status == {"right": "APPROVED", "wrong": "REJECTED", "writeup": "PENDING"}[what]

    # Every write-up was graded, each grading recorded once.
    assert not Submission.objects.filter(tenant=tenant, status="PENDING").exists()
    assert len(gradings) > 20
    graded_events = EventStore.objects.filter(tenant=tenant, event_type="SubmissionGraded")
    # and each approval a better grade superseded, once: counted from the events, since an
    # instructor working from a list read earlier may grade a superseded one again afterwards
    superseded = graded_events.filter(payload__status="SUPERSEDED").count()
    assert superseded >= Submission.objects.filter(tenant=tenant, status="SUPERSEDED").count()
    assert graded_events.count() == len(gradings) + superseded
    last = {}
    for aggregate_id, payload in graded_events.order_by("position").values_list("aggregate_id", "payload"):
        last[int(aggregate_id)] = (payload["status"], payload["score"])
    final = {
        pk: (status, score)
        for pk, status, score in Submission.objects.filter(tenant=tenant, kind="WRITEUP").values_list(
            "pk", "status", "score"
        )
    }
    assert last == final

    # Badges: no duplicate, and the automatic ones are exactly what the rules give.
    assert UserBadge.objects.filter(tenant=tenant).count() == len(
        set(UserBadge.objects.filter(tenant=tenant).values_list("user_id", "badge_id"))
    )
    solved = defaultdict(list)
    for user_id, project_id, points in Submission.objects.filter(tenant=tenant, status="APPROVED").values_list(
        "user_id", "project_id", "points_awarded"
    ):
        solved[user_id].append((project_id, points))
    held = defaultdict(set)
    for user_id, badge_id in UserBadge.objects.filter(tenant=tenant).values_list("user_id", "badge_id"):
        held[user_id].add(badge_id)
    for student in students:
        assert held[student.pk] == {b for b, rule in rules.items() if rule(solved[student.pk])}, student.email
    assert sum(len(b) for b in held.values()) > 20

    rows = assert_board_equals_a_rebuild(tenant)
    assert len(rows) > 10
    call_command("verify_audit", "--no-progress", stdout=StringIO())

    assert workers.deadlocks == [], f"{len(workers.deadlocks)} call(s) died in a deadlock"


# --- (b) the attempt limit under a burst ---------------------------------------------------------


def test_a_burst_of_wrong_flags_stores_exactly_the_limit_and_refuses_the_rest():
    tenant = TenantFactory(
        slug="burst", domain="burst.localhost", settings={"flag_attempts": {"limit": 10, "window_minutes": 10}}
    )
    student = StudentFactory(tenant=tenant, email="burst@burst.test")
    project = ProjectFactory(tenant=tenant, slug="burst-flag", flag="FLAG{burst}")
    attempts = 50
    barrier = threading.Barrier(attempts)
    outcomes = []
    workers = ServiceWorkers()

    def attempt(n):
        barrier.wait(TIMEOUT)
        outcomes.append(workers.call(services.submission_create, user=student, project=project, flag=f"FLAG{{{n}}}"))

    gate = StudentRowGate(student)  # every attempt queues on the student's row, then they go one by one
    try:
        for n in range(attempts):
            workers.start(attempt, n)
        gate.wait_for(attempts)
    finally:
        gate.open()
        workers.join()

    stored = [s for s, _ in outcomes if s is not None]
    refusals = [r for _, r in outcomes if r is not None]
    assert len(stored) == 10
    assert {s.status for s in stored} == {"REJECTED"}
    assert len(refusals) == 40
    assert {type(r) for r in refusals} == {services.TooManyAttempts}
    assert Submission.objects.filter(tenant=tenant).count() == 10
    assert set(Submission.objects.filter(tenant=tenant).values_list("status", flat=True)) == {"REJECTED"}
    refused = AuditLog.objects.filter(tenant=tenant, action="flag_attempt_refused")
    assert refused.count() == 40
    assert set(refused.values_list("actor_id", "object_type", "object_id")) == {
        (student.pk, "challenges.project", str(project.pk))
    }
    assert not Leaderboard.objects.filter(tenant=tenant).exists()
    call_command("verify_audit", "--no-progress", stdout=StringIO())


# --- (c) two instructors regrading one submission -----------------------------------------------


def test_two_instructors_regrading_one_submission_at_once_both_apply_one_after_the_other():
    tenant = TenantFactory(slug="regrade", domain="regrade.localhost")
    student = StudentFactory(tenant=tenant, email="s@regrade.test")
    first, second = (InstructorFactory(tenant=tenant, email=f"t{i}@regrade.test") for i in range(2))
    project = ProjectFactory(tenant=tenant, slug="essay", points=150, category="Forensics")
    other = ProjectFactory(tenant=tenant, slug="other", points=45, category="Forensics", flag="FLAG{other}")
    BadgeFactory(tenant=tenant, rule_kind="FIRST_SOLVE")
    complete = BadgeFactory(tenant=tenant, rule_kind="CATEGORY_COMPLETE", rule_params={"category": "Forensics"})
    services.submission_create(user=student, project=other, flag="FLAG{other}")
    submission = services.submission_create(user=student, project=project, writeup="my essay")
    services.submission_grade(submission=submission, status="APPROVED", score=100, grader=first)
    assert UserBadge.objects.filter(user=student, badge=complete).exists()

    grades = [
        (("APPROVED", 55), ("REJECTED", 0)),
        (("REJECTED", 10), ("APPROVED", 33)),
        (("APPROVED", 1), ("APPROVED", 99)),
        (("REJECTED", 5), ("REJECTED", 20)),
        (("APPROVED", 100), ("REJECTED", 0)),
    ]
    for round_, (grade_a, grade_b) in enumerate(grades):
        events_before = EventStore.objects.filter(aggregate_type="Submission", aggregate_id=str(submission.pk)).count()
        barrier = threading.Barrier(2)
        done = []
        workers = ServiceWorkers()

        def regrade(grader, grade, barrier=barrier, done=done, workers=workers):
            barrier.wait(TIMEOUT)
            result, refusal = workers.call(
                services.submission_grade, submission=submission, status=grade[0], score=grade[1], grader=grader
            )
            assert refusal is None, refusal
            done.append((grader.pk, grade))

        gate = StudentRowGate(student)  # both regradings wait on the student's row at the same time
        try:
            workers.start(regrade, first, grade_a)
            workers.start(regrade, second, grade_b)
            gate.wait_for(2)
        finally:
            gate.open()
            workers.join()

        assert len(done) == 2, round_
        current = Submission.objects.get(pk=submission.pk)
        assert (current.status, current.score) in (grade_a, grade_b)
        # The later one is the final state, and it saw the earlier one as the grade it replaced.
        events = list(
            EventStore.objects.filter(aggregate_type="Submission", aggregate_id=str(submission.pk))
            .order_by("version")
            .values_list("version", "payload")[events_before:]
        )
        assert [v for v, _ in events] == [events_before + 1, events_before + 2]
        (_, earlier), (_, later) = events
        assert (later["status"], later["score"]) == (current.status, current.score)
        assert (later["previous_status"], later["previous_score"]) == (earlier["status"], earlier["score"])
        assert {(earlier["status"], earlier["score"]), (later["status"], later["score"])} == {grade_a, grade_b}
        assert earlier["regrade"] and later["regrade"]
        assert current.graded_by_id == later["graded_by_id"]
        assert current.points_awarded == ((150 * current.score + 50) // 100 if current.status == "APPROVED" else 0)

        # The leaderboard and the badges follow the final grade.
        rows = assert_board_equals_a_rebuild(tenant)
        expected_points = 45 + current.points_awarded
        assert rows == [(tenant.pk, student.pk, expected_points, 1 + (current.status == "APPROVED"), 1, rows[0][5])]
        assert UserBadge.objects.filter(user=student, badge=complete).exists() == (current.status == "APPROVED")
        assert UserBadge.objects.filter(user=student).count() == 1 + (current.status == "APPROVED")

    updates = AuditLog.objects.filter(object_type="scoring.submission", object_id=str(submission.pk), action="update")
    assert updates.count() == 1 + 2 * len(grades)
    call_command("verify_audit", "--no-progress", stdout=StringIO())


# --- deadlocks that once happened, step by step ----------------------------------------------------


class LeaderboardGate:
    """Holds the tenant's leaderboard lock on a connection of its own until `open()`."""

    def __init__(self, tenant):
        self.conn = connections.create_connection("default")
        self.cursor = self.conn.cursor()
        self.cursor.execute("BEGIN")
        self.cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LEADERBOARD_LOCK, tenant.pk])

    wait_for = StudentRowGate.wait_for
    open = StudentRowGate.open


def run_two_against_a_gate(gate, first, second):
    """`first` queues on the gate; `second` runs to its commit and waits; then the gate opens."""
    workers = ServiceWorkers()
    try:
        workers.start(first)
        gate.wait_for(1)
        workers.start(second)
        gate.wait_for(2)
    finally:
        gate.open()
        try:
            workers.join()
        except OperationalError as error:  # a regression shows as a deadlock, nothing else
            assert isinstance(error.__cause__, psycopg.errors.DeadlockDetected), error
            raise


def test_grading_while_another_student_submits_to_the_same_challenge():
    tenant = TenantFactory(slug="deadlock-project", domain="deadlock-project.localhost")
    solver, other = StudentFactory(tenant=tenant), StudentFactory(tenant=tenant)
    instructor = InstructorFactory(tenant=tenant)
    project = ProjectFactory(tenant=tenant, flag="FLAG{p}")
    solved = services.submission_create(user=solver, project=project, flag="FLAG{p}")

    # 1. The regrade locks the solver's row and the submission (not the challenge: of=("self",)),
    #    then queues for the leaderboard lock that the gate holds.
    # 2. A wrong flag of another student to that challenge (no leaderboard lock needed) writes its audit rows
    #    and events, then at COMMIT checks submissions.project_id: FOR KEY SHARE on the challenge row. Had the
    #    regrade locked that row FOR UPDATE, the wrong flag would wait here, holding the audit chain the
    #    regrade needs next: a deadlock once the gate opens. Now it commits at once.
    gate = LeaderboardGate(tenant)
    workers = ServiceWorkers()
    try:
        workers.start(
            lambda: services.submission_grade(submission=solved, status="APPROVED", score=50, grader=instructor)
        )
        gate.wait_for(1)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")  # a regression fails here instead of hanging
        try:
            wrong = services.submission_create(user=other, project=project, flag="FLAG{wrong}")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        assert wrong.status == "REJECTED"
        assert lock_waiters() == 1  # the regrade, still behind the gate: nothing waited on it
    finally:
        gate.open()
        workers.join()
    solved.refresh_from_db()
    assert solved.score == 50


def test_awarding_a_badge_by_hand_while_the_student_scores():
    # badge_award locks the student's row first, like every scoring service: it waits its turn.
    tenant = TenantFactory(slug="deadlock-badge", domain="deadlock-badge.localhost")
    student = StudentFactory(tenant=tenant)
    instructor = InstructorFactory(tenant=tenant)
    project = ProjectFactory(tenant=tenant, flag="FLAG{p}")
    helpful = BadgeFactory(tenant=tenant)

    run_two_against_a_gate(
        LeaderboardGate(tenant),
        lambda: services.submission_create(user=student, project=project, flag="FLAG{p}"),
        lambda: services.badge_award(badge=helpful, user=student, actor=instructor),
    )


# --- (d) first blood under a race ----------------------------------------------------------------


def test_students_solving_one_challenge_at_once_make_exactly_one_first_blood():
    """Approvals of a challenge are timed one at a time (services.lock_solves): one student is first."""
    tenant = TenantFactory(slug="blood", domain="blood.localhost")
    students = [StudentFactory(tenant=tenant, email=f"s{i}@blood.test") for i in range(12)]
    project = ProjectFactory(tenant=tenant, slug="blood-flag", flag="FLAG{blood}")
    first_blood = BadgeFactory(tenant=tenant, slug="first-blood", rule_kind="FIRST_BLOOD")
    first_solve = BadgeFactory(tenant=tenant, slug="first-solve", rule_kind="FIRST_SOLVE")
    barrier = threading.Barrier(len(students))
    outcomes = []
    workers = ServiceWorkers()

    def solve(student):
        barrier.wait(TIMEOUT)
        outcomes.append(workers.call(services.submission_create, user=student, project=project, flag="FLAG{blood}"))

    for student in students:
        workers.start(solve, student)
    workers.join()

    assert [refusal for _, refusal in outcomes if refusal is not None] == []
    assert workers.max_in_flight >= 4  # the solves did overlap
    holders = list(UserBadge.objects.filter(badge=first_blood).values_list("user_id", flat=True))
    assert len(holders) == 1  # exactly one, whatever the interleaving
    earliest = (
        Submission.objects.filter(project=project, status="APPROVED").order_by("graded_at", "pk").values_list("user_id")
    )[0][0]
    assert holders == [earliest]  # and it is the student whose approval came first
    assert UserBadge.objects.filter(badge=first_solve).count() == len(students)


# --- (e) dynamic scoring under a race ----------------------------------------------------------


def test_students_solving_a_dynamic_challenge_at_once_all_end_at_its_exact_value():
    """Each solve counts the solvers under the challenge's approvals lock: the value is exact, whoever came when."""
    tenant = TenantFactory(slug="dynamic-race", domain="dynamic-race.localhost")
    students = [StudentFactory(tenant=tenant, email=f"d{i}@dynamic.test") for i in range(10)]
    writers = [StudentFactory(tenant=tenant, email=f"w{i}@dynamic.test") for i in range(4)]
    instructors = [InstructorFactory(tenant=tenant) for _ in range(2)]
    flag = ProjectFactory(
        tenant=tenant,
        scoring="DYNAMIC",
        initial_points=1000,
        minimum_points=100,
        decay=50,
        decay_function="LINEAR",
        flag="FLAG{dyn}",
    )
    essay = ProjectFactory(tenant=tenant, scoring="DYNAMIC", initial_points=500, minimum_points=50, decay=3)
    pending = [services.submission_create(user=w, project=essay, writeup="how") for w in writers]
    BadgeFactory(tenant=tenant, rule_kind="POINTS_AT_LEAST", rule_params={"n": 800})
    barrier = threading.Barrier(len(students) + len(instructors))
    outcomes = []
    workers = ServiceWorkers()

    def solve(student):
        barrier.wait(TIMEOUT)
        outcomes.append(workers.call(services.submission_create, user=student, project=flag, flag="FLAG{dyn}"))

    def grade(instructor, submissions):
        barrier.wait(TIMEOUT)
        for submission in submissions:
            outcomes.append(
                workers.call(
                    services.submission_grade, submission=submission, status="APPROVED", score=100, grader=instructor
                )
            )

    for student in students:
        workers.start(solve, student)
    workers.start(grade, instructors[0], pending[:2])
    workers.start(grade, instructors[1], pending[2:])
    workers.join()

    assert [refusal for _, refusal in outcomes if refusal is not None] == []
    assert workers.max_in_flight >= 4
    flag.refresh_from_db()
    essay.refresh_from_db()
    assert flag.points == flag.value_with(len(students)) == 550
    assert essay.points == essay.value_with(len(writers)) == 50
    awarded = Submission.objects.filter(tenant=tenant, status="APPROVED")
    assert set(awarded.filter(project=flag).values_list("points_awarded", flat=True)) == {550}
    assert set(awarded.filter(project=essay).values_list("points_awarded", flat=True)) == {50}
    assert_board_equals_a_rebuild(tenant)
    assert not UserBadge.objects.filter(tenant=tenant).exists()  # 550 < 800: every early award went back
