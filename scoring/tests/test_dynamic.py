"""Dynamic scoring: the value falls with each solver, and every solver's points, ranks and badges follow."""

import pytest
from django.db import IntegrityError, connection, transaction

from audit.models import EventStore
from challenges.factories import ProjectFactory
from challenges.models import Hint, Project, dynamic_value
from scoring import leaderboard, replay, services
from scoring.factories import BadgeFactory
from scoring.hints import hint_unlock
from scoring.models import Leaderboard, Submission, UserBadge
from tenants.factories import InstructorFactory, StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{dyn}"


def dynamic(tenant, **fields):
    values = {"initial_points": 500, "minimum_points": 100, "decay": 4, "decay_function": "LOGARITHMIC"} | fields
    return ProjectFactory(tenant=tenant, scoring="DYNAMIC", flag=FLAG, points=1, **values)


def board(tenant):
    return dict(Leaderboard.objects.for_tenant(tenant).values_list("user_id", "points"))


def ranks(tenant):
    return dict(Leaderboard.objects.for_tenant(tenant).values_list("user_id", "rank"))


# --- the formulas -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("solvers", "value"),
    # CTFd's logarithmic decay: ceil(500 + (100 - 500) / 4**2 * (n - 1)**2), down to the minimum
    [(0, 500), (1, 500), (2, 475), (3, 400), (4, 275), (5, 100), (6, 100), (50, 100)],
)
def test_logarithmic_decay_follows_ctfds_formula(solvers, value):
    assert dynamic_value(initial=500, minimum=100, decay=4, function="LOGARITHMIC", solvers=solvers) == value


@pytest.mark.parametrize(
    ("solvers", "value"), [(0, 500), (1, 500), (2, 470), (3, 440), (14, 110), (15, 100), (99, 100)]
)
def test_linear_decay_loses_the_same_step_per_solver(solvers, value):
    assert dynamic_value(initial=500, minimum=100, decay=30, function="LINEAR", solvers=solvers) == value


def test_a_new_dynamic_challenge_is_worth_its_initial_value(tenant):
    assert dynamic(tenant).points == 500
    assert Project.objects.get(scoring="DYNAMIC").points == 500


# --- solves move every solver -------------------------------------------------------


def test_each_solve_lowers_the_value_and_every_solvers_points(tenant):
    project = dynamic(tenant)
    students = StudentFactory.create_batch(3, tenant=tenant)

    first = services.submission_create(user=students[0], project=project, flag=FLAG)
    assert first.points_awarded == 500
    assert board(tenant) == {students[0].pk: 500}

    second = services.submission_create(user=students[1], project=project, flag=FLAG)
    assert second.points_awarded == 475
    assert board(tenant) == {students[0].pk: 475, students[1].pk: 475}

    services.submission_create(user=students[2], project=project, flag=FLAG)
    project.refresh_from_db()
    assert project.points == 400
    assert board(tenant) == dict.fromkeys([s.pk for s in students], 400)
    assert set(Submission.objects.filter(project=project).values_list("points_awarded", flat=True)) == {400}
    # the same table a rebuild from the submissions and a replay from the events make
    assert leaderboard.rebuild(tenant.pk)[1:] == (0, 0)
    assert replay.replay(tenant.pk)[1:] == (0, 0)


def test_each_change_of_value_is_one_event_a_replay_reads(tenant):
    project = dynamic(tenant)
    for student in StudentFactory.create_batch(3, tenant=tenant):
        services.submission_create(user=student, project=project, flag=FLAG)

    changes = EventStore.objects.filter(event_type="ProjectPointsChanged", aggregate_id=str(project.pk))
    assert [(e.payload["previous_points"], e.payload["points"]) for e in changes.order_by("position")] == [
        (1, 500),  # created with points=1: the value is set from its solvers
        (500, 475),
        (475, 400),
    ]


def test_a_solver_with_other_points_is_moved_from_their_true_total(tenant):
    """The solver's own row holds their new solve before the value moves: it never goes below its true total."""
    project = dynamic(tenant, decay=3, minimum_points=50, initial_points=300)
    warmup = ProjectFactory(tenant=tenant, points=50, flag="FLAG{warm}")
    early, late = StudentFactory.create_batch(2, tenant=tenant)
    third = StudentFactory(tenant=tenant)
    services.submission_create(user=third, project=warmup, flag="FLAG{warm}")
    services.submission_create(user=early, project=project, flag=FLAG)
    services.submission_create(user=late, project=project, flag=FLAG)  # 273 each

    solve = services.submission_create(user=third, project=project, flag=FLAG)

    assert solve.points_awarded == 189  # ceil(300 - 250 / 9 * 4)
    assert board(tenant) == {early.pk: 189, late.pk: 189, third.pk: 239}
    assert leaderboard.rebuild(tenant.pk)[1:] == (0, 0)


def test_a_partial_write_up_grade_follows_the_value_too(tenant):
    project = ProjectFactory(
        tenant=tenant, scoring="DYNAMIC", initial_points=300, minimum_points=100, decay=30, decay_function="LINEAR"
    )
    grader = InstructorFactory(tenant=tenant)
    alice, bob = StudentFactory.create_batch(2, tenant=tenant)
    pending = services.submission_create(user=alice, project=project, writeup="how I did it")
    services.submission_grade(submission=pending, status="APPROVED", score=50, grader=grader)
    assert board(tenant) == {alice.pk: 150}

    other = services.submission_create(user=bob, project=project, writeup="mine")
    graded = services.submission_grade(submission=other, status="APPROVED", score=100, grader=grader)

    assert graded.points_awarded == 270  # two solvers: 300 - 30
    assert board(tenant) == {alice.pk: 135, bob.pk: 270}  # round(270 * 50 / 100)


def test_rejecting_a_solve_raises_the_value_back(tenant):
    project = dynamic(tenant)
    grader = InstructorFactory(tenant=tenant)
    alice, bob = StudentFactory.create_batch(2, tenant=tenant)
    services.submission_create(user=alice, project=project, flag=FLAG)
    bobs = services.submission_create(user=bob, project=project, flag=FLAG)
    assert board(tenant) == {alice.pk: 475, bob.pk: 475}

    services.submission_grade(submission=bobs, status="REJECTED", score=0, grader=grader)

    assert board(tenant) == {alice.pk: 500}
    assert replay.replay(tenant.pk)[1:] == (0, 0)


def test_deleting_a_solver_raises_the_value_for_the_others(tenant):
    project = dynamic(tenant)
    alice, bob = StudentFactory.create_batch(2, tenant=tenant)
    services.submission_create(user=alice, project=project, flag=FLAG)
    services.submission_create(user=bob, project=project, flag=FLAG)

    bob.delete()

    assert board(tenant) == {alice.pk: 500}
    assert replay.replay(tenant.pk)[1:] == (0, 0)


def test_changing_the_decay_in_the_admin_revalues_the_solvers(tenant):
    project = dynamic(tenant)
    alice, bob = StudentFactory.create_batch(2, tenant=tenant)
    services.submission_create(user=alice, project=project, flag=FLAG)
    services.submission_create(user=bob, project=project, flag=FLAG)

    project.refresh_from_db()
    project.decay_function, project.decay = "LINEAR", 100
    project.save()

    assert project.points == 400
    assert board(tenant) == {alice.pk: 400, bob.pk: 400}
    assert replay.replay(tenant.pk)[1:] == (0, 0)


def test_ranks_stay_true_when_the_value_moves_many_solvers(tenant):
    static = ProjectFactory(tenant=tenant, points=480, flag="FLAG{static}")
    project = dynamic(tenant)
    leader = StudentFactory(tenant=tenant)  # 480 points, below the early solvers, above them after the decay
    services.submission_create(user=leader, project=static, flag="FLAG{static}")
    solvers = StudentFactory.create_batch(4, tenant=tenant)
    for student in solvers:
        services.submission_create(user=student, project=project, flag=FLAG)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, rank() OVER (ORDER BY points DESC)::int FROM leaderboards WHERE tenant_id = %s",
            [tenant.pk],
        )
        fresh = dict(cursor.fetchall())
    assert ranks(tenant) == fresh
    assert ranks(tenant)[leader.pk] == 1  # 480 > 275


def test_hint_costs_stay_per_challenge_when_the_value_falls(tenant):
    project = dynamic(tenant)
    hint = Hint.objects.create(tenant=tenant, project=project, position=1, text="look closer", cost=480)
    alice, bob = StudentFactory.create_batch(2, tenant=tenant)
    hint_unlock(user=alice, hint=hint)
    services.submission_create(user=alice, project=project, flag=FLAG)
    assert board(tenant) == {alice.pk: 20}

    services.submission_create(user=bob, project=project, flag=FLAG)

    assert board(tenant) == {alice.pk: 0, bob.pk: 475}  # never below zero for the challenge
    assert leaderboard.rebuild(tenant.pk)[1:] == (0, 0)
    assert replay.replay(tenant.pk)[1:] == (0, 0)


def test_a_points_badge_follows_the_value_both_ways(tenant):
    project = dynamic(tenant)
    grader = InstructorFactory(tenant=tenant)
    badge = BadgeFactory(tenant=tenant, rule_kind="POINTS_AT_LEAST", rule_params={"n": 480})
    alice, bob = StudentFactory.create_batch(2, tenant=tenant)
    services.submission_create(user=alice, project=project, flag=FLAG)
    assert UserBadge.objects.filter(badge=badge, user=alice).exists()

    bobs = services.submission_create(user=bob, project=project, flag=FLAG)  # 475 each
    assert not UserBadge.objects.filter(badge=badge).exists()
    revoked = EventStore.objects.filter(event_type="BadgeRevoked", payload__user_id=alice.pk)
    assert revoked.count() == 1

    services.submission_grade(submission=bobs, status="REJECTED", score=0, grader=grader)  # 500 again
    assert list(UserBadge.objects.filter(badge=badge).values_list("user_id", flat=True)) == [alice.pk]
    assert EventStore.objects.filter(event_type="BadgeAwarded", payload__user_id=alice.pk).count() == 2


def test_a_hand_given_points_badge_is_never_taken_by_the_decay(tenant):
    project = dynamic(tenant)
    instructor = InstructorFactory(tenant=tenant)
    badge = BadgeFactory(tenant=tenant, rule_kind="POINTS_AT_LEAST", rule_params={"n": 480})
    alice, bob = StudentFactory.create_batch(2, tenant=tenant)
    services.badge_award(badge=badge, user=alice, actor=instructor)
    services.submission_create(user=alice, project=project, flag=FLAG)
    services.submission_create(user=bob, project=project, flag=FLAG)

    assert UserBadge.objects.filter(badge=badge, user=alice, awarded_by=instructor).exists()


# --- the database refuses what cannot decay -------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        {"initial_points": 100, "minimum_points": 200, "decay": 5},  # minimum above the initial value
        {"initial_points": 100, "minimum_points": 10, "decay": 0},
        {"initial_points": None, "minimum_points": 10, "decay": 5},
        {"initial_points": 100, "minimum_points": -1, "decay": 5},
    ],
)
def test_the_database_refuses_a_dynamic_challenge_that_cannot_decay(tenant, values):
    with pytest.raises(IntegrityError, match="chk_projects_dynamic_values"), transaction.atomic():
        Project.objects.bulk_create(
            [
                Project(
                    tenant=tenant, name="x", slug="x", category="c", difficulty="BEGINNER", scoring="DYNAMIC", **values
                )
            ]
        )


def test_switching_a_solved_challenge_to_dynamic_rescores_its_solvers(tenant):
    """The value the instructor typed may equal the dynamic one: the solvers' points follow all the same."""
    project = ProjectFactory(tenant=tenant, points=100, flag=FLAG)
    alice = StudentFactory(tenant=tenant)
    services.submission_create(user=alice, project=project, flag=FLAG)

    project.scoring, project.initial_points, project.minimum_points, project.decay = "DYNAMIC", 200, 50, 5
    project.points = 200  # typed: the value with one solver
    project.save()

    assert board(tenant) == {alice.pk: 200}
    assert replay.replay(tenant.pk)[1:] == (0, 0)


def test_a_stale_copy_of_the_challenge_does_not_skip_a_new_value(tenant):
    """settle() reads the stored value under the lock: a copy loaded before another settle is no guide."""
    project = dynamic(tenant)
    grader = InstructorFactory(tenant=tenant)
    alice, bob, carol = StudentFactory.create_batch(3, tenant=tenant)
    services.submission_create(user=alice, project=project, flag=FLAG)
    bobs = services.submission_create(user=bob, project=project, flag=FLAG)
    stale = Project.objects.get(pk=project.pk)  # 475: two solvers
    services.submission_grade(submission=bobs, status="REJECTED", score=0, grader=grader)  # 500: one solver

    services.submission_create(user=carol, project=stale, flag=FLAG)  # two solvers again: 475, as the copy says

    assert board(tenant) == {alice.pk: 475, carol.pk: 475}
    assert Project.objects.get(pk=project.pk).points == 475
