"""The scoreboard freeze: students see the standings as of the freeze, staff see live ones.

The frozen board is computed from the data (scoring.freeze): approvals scored by the
freeze, hint costs unlocked by then, a dynamic challenge's value as of then.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from challenges.factories import ProjectFactory
from challenges.models import Hint, Project
from scoring import freeze, services
from scoring.factories import SubmissionFactory
from scoring.models import HintUnlock
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{frozen}"
MINUTE = timedelta(minutes=1)


@pytest.fixture
def locmem(settings):
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()


def solve(user, project):
    return services.submission_create(user=user, project=project, flag=FLAG)


def approved(user, project, at, *, score=100, points=None, submitted_at=None):
    """An approved submission scored at `at` (written directly: the history a freeze reads)."""
    return SubmissionFactory(
        tenant=user.tenant,
        user=user,
        project=project,
        kind="FLAG",
        approved=True,
        score=score,
        points_awarded=project.points * score // 100 if points is None else points,
        submitted_at=submitted_at or at,
        graded_at=at,
    )


def frozen(tenant, at):
    """The frozen board computed now (freeze.board would keep the first answer: it does not expect history to move)."""
    return [(row.rank, row.name, row.points, row.solves) for row in freeze.compute_board(tenant.pk, at).rows]


@pytest.fixture
def people(tenant, student):
    student.first_name, student.last_name = "Cat", "Student"
    student.save()
    return {
        "ann": StudentFactory(tenant=tenant, first_name="Ann", last_name="A"),
        "bob": StudentFactory(tenant=tenant, first_name="Bob", last_name="B"),
        "cat": student,
    }


@pytest.fixture
def frozen_class(tenant, people):
    """Ann 300, Bob 100, Cat 100 at the freeze; then Bob solves the 300 challenge (live: Bob 400, first)."""
    big = ProjectFactory(tenant=tenant, name="Big One", slug="big-one", points=300, flag=FLAG)
    small_b = ProjectFactory(tenant=tenant, name="Small B", slug="small-b", points=100, flag=FLAG)
    small_c = ProjectFactory(tenant=tenant, name="Small C", slug="small-c", points=100, flag=FLAG)
    solve(people["ann"], big)
    solve(people["bob"], small_b)
    solve(people["cat"], small_c)
    tenant.scoreboard_freeze_at = timezone.now()
    tenant.save()
    solve(people["bob"], big)
    return tenant


# --- What students and staff see ------------------------------------------------------------


def test_a_student_sees_the_standings_as_of_the_freeze(frozen_class, student, client_for, locmem):
    response = client_for(frozen_class, student).get("/leaderboard/")
    rows = response.context["board"].rows

    assert [(r.rank, r.name, r.points) for r in rows] == [(1, "Ann A", 300), (2, "Bob B", 100), (2, "Cat Student", 100)]
    assert response.context["mine"].rank == 2
    assert "The scoreboard is frozen." in response.content.decode()
    assert "400" not in response.content.decode()


def test_staff_see_live_standings_with_a_banner(frozen_class, instructor, client_for, locmem):
    response = client_for(frozen_class, instructor).get("/leaderboard/")
    rows = response.context["board"].rows

    assert [(r.name, r.points) for r in rows][0] == ("Bob B", 400)
    assert "Students see the scoreboard as frozen on" in response.content.decode()
    assert response.context["frozen_at"] is None


def test_the_dashboard_and_profile_show_the_frozen_rank(frozen_class, people, client_for, locmem):
    client = client_for(frozen_class, people["bob"])

    dashboard = client.get("/")
    profile = client.get("/profile/")

    assert (dashboard.context["standing"].rank, dashboard.context["standing"].points) == (2, 100)
    assert dashboard.context["students"] == 3
    assert (profile.context["standing"].rank, profile.context["standing"].points) == (2, 100)
    assert "your points, rank and solves are as of" in profile.content.decode()


def test_challenge_solve_counts_are_as_of_the_freeze_for_students(frozen_class, student, client_for, locmem):
    client = client_for(frozen_class, student)

    catalogue = {e.slug: e.solves for e in client.get("/challenges/").context["page"].object_list}
    page = client.get("/challenges/big-one/")

    assert catalogue["big-one"] == 1  # Bob's solve after the freeze does not show
    assert page.context["solves"] == 1
    assert "(as of the scoreboard freeze)" in page.content.decode()


def test_emptying_the_freeze_shows_everything(frozen_class, student, client_for, locmem):
    frozen_class.scoreboard_freeze_at = None
    frozen_class.save()
    client = client_for(frozen_class, student)

    rows = client.get("/leaderboard/").context["board"].rows

    assert [(r.rank, r.name, r.points) for r in rows][0] == (1, "Bob B", 400)
    assert {e.slug: e.solves for e in client.get("/challenges/").context["page"].object_list}["big-one"] == 2
    assert client.get("/").context["standing"].points == 100  # mine: Cat has 100 either way
    assert "frozen" not in client.get("/leaderboard/").content.decode()


def test_a_freeze_in_the_future_is_not_in_force_yet(frozen_class, student, client_for, locmem):
    frozen_class.scoreboard_freeze_at = timezone.now() + MINUTE
    frozen_class.save()

    rows = client_for(frozen_class, student).get("/leaderboard/").context["board"].rows

    assert rows[0].name == "Bob B"


def test_a_solve_during_the_freeze_does_not_move_the_cached_frozen_board(
    frozen_class, people, client_for, locmem, django_capture_on_commit_callbacks, django_assert_num_queries
):
    at = frozen_class.scoreboard_freeze_at
    client = client_for(frozen_class, people["cat"])
    client.get("/leaderboard/")
    with django_capture_on_commit_callbacks(execute=True):
        solve(people["cat"], Project.objects.get(slug="big-one"))

    with django_assert_num_queries(0):
        assert freeze.standing(frozen_class.pk, at, people["cat"].pk).points == 100
    assert client.get("/leaderboard/").context["mine"].points == 100
    assert client_for(frozen_class, people["ann"]).get("/leaderboard/").context["mine"].rank == 1


def test_the_frozen_board_pages_like_the_live_one(frozen_class, student, client_for, locmem):
    client = client_for(frozen_class, student)

    assert client.get("/leaderboard/?page=99").context["board"].number == 1
    assert client.get("/leaderboard/?page=x").status_code == 200
    assert freeze.total(frozen_class.pk, frozen_class.scoreboard_freeze_at) == 3


# --- What the frozen board counts -----------------------------------------------------------


def test_only_what_was_scored_by_the_freeze_counts(tenant, people):
    at = timezone.now() - 60 * MINUTE
    lab = ProjectFactory(tenant=tenant, points=200)
    essay = ProjectFactory(tenant=tenant, points=50)
    approved(people["ann"], lab, at - MINUTE)
    approved(people["bob"], lab, at)  # at the freeze itself: counts
    approved(people["cat"], lab, at + MINUTE)
    # a write-up sent before the freeze, graded after it: not yet
    approved(people["ann"], essay, at + MINUTE, submitted_at=at - 10 * MINUTE)

    assert frozen(tenant, at) == [(1, "Ann A", 200, 1), (1, "Bob B", 200, 1)]


def test_ties_share_a_rank_and_are_listed_by_who_scored_first(tenant, people):
    at = timezone.now()
    first, second, third = (ProjectFactory(tenant=tenant, points=p) for p in (100, 100, 50))
    approved(people["cat"], first, at - 3 * MINUTE)
    approved(people["bob"], second, at - 5 * MINUTE)
    approved(people["ann"], third, at - 9 * MINUTE)
    approved(people["ann"], ProjectFactory(tenant=tenant, points=50), at - 2 * MINUTE)

    assert frozen(tenant, at) == [(1, "Bob B", 100, 1), (1, "Cat Student", 100, 1), (1, "Ann A", 100, 2)]
    approved(people["ann"], ProjectFactory(tenant=tenant, points=1), at - MINUTE)
    assert frozen(tenant, at)[0] == (1, "Ann A", 101, 3)
    assert [r[0] for r in frozen(tenant, at)] == [1, 2, 2]


def test_hint_costs_count_when_unlocked_by_the_freeze_and_never_below_zero(tenant, people):
    at = timezone.now()
    lab = ProjectFactory(tenant=tenant, points=100)
    cheap = ProjectFactory(tenant=tenant, points=30)
    approved(people["ann"], lab, at - 5 * MINUTE)
    approved(people["bob"], cheap, at - 5 * MINUTE)
    hint = Hint.objects.create(tenant=tenant, project=lab, position=1, text="Look closer", cost=25)
    late = Hint.objects.create(tenant=tenant, project=lab, position=2, text="Closer still", cost=40)
    dear = Hint.objects.create(tenant=tenant, project=cheap, position=1, text="Everything", cost=50)
    HintUnlock.objects.create(tenant=tenant, user=people["ann"], project=lab, hint=hint, cost=25, unlocked_at=at)
    HintUnlock.objects.create(
        tenant=tenant, user=people["ann"], project=lab, hint=late, cost=40, unlocked_at=at + MINUTE
    )
    HintUnlock.objects.create(
        tenant=tenant, user=people["bob"], project=cheap, hint=dear, cost=50, unlocked_at=at - MINUTE
    )

    assert frozen(tenant, at) == [(1, "Ann A", 75, 1), (2, "Bob B", 0, 1)]


def test_a_dynamic_challenge_scores_its_value_as_of_the_freeze(tenant, people):
    at = timezone.now()
    dynamic = ProjectFactory(
        tenant=tenant,
        scoring=Project.Scoring.DYNAMIC,
        initial_points=500,
        minimum_points=100,
        decay=100,
        decay_function=Project.Decay.LINEAR,
        points=300,  # its value now, with three solvers
    )
    # stored points follow today's value (300); by the freeze two had solved it: the value was 400
    approved(people["ann"], dynamic, at - 2 * MINUTE, points=300)
    approved(people["bob"], dynamic, at - MINUTE, score=50, points=150)
    approved(people["cat"], dynamic, at + MINUTE, points=300)

    assert frozen(tenant, at) == [(1, "Ann A", 400, 1), (2, "Bob B", 200, 1)]
    assert freeze.challenges(tenant.pk, at)[dynamic.pk] == freeze.ChallengeAtFreeze(solves=2, value=400, dynamic=True)


def test_a_dynamic_value_times_a_partial_score_rounds_half_up(tenant, people):
    at = timezone.now()
    dynamic = ProjectFactory(
        tenant=tenant,
        scoring=Project.Scoring.DYNAMIC,
        initial_points=250,
        minimum_points=10,
        decay=1,
        decay_function=Project.Decay.LINEAR,
        points=250,
    )
    approved(people["ann"], dynamic, at - MINUTE, score=33, points=0)  # 250 * 33 / 100 = 82.5

    assert frozen(tenant, at) == [(1, "Ann A", 83, 1)]


def test_the_frozen_board_is_the_tenants_own(tenant, other_tenant, people, other_student):
    at = timezone.now()
    approved(people["ann"], ProjectFactory(tenant=tenant, points=10), at - MINUTE)
    approved(other_student, ProjectFactory(tenant=other_tenant, points=999), at - MINUTE)

    assert frozen(tenant, at) == [(1, "Ann A", 10, 1)]


def test_during_a_freeze_a_dynamic_challenges_value_is_the_one_at_the_freeze(tenant, student, client_for, locmem):
    dynamic = ProjectFactory(
        tenant=tenant,
        slug="dyn",
        scoring=Project.Scoring.DYNAMIC,
        initial_points=500,
        minimum_points=100,
        decay=100,
        decay_function=Project.Decay.LINEAR,
        points=300,
    )
    at = timezone.now() - MINUTE
    approved(StudentFactory(tenant=tenant), dynamic, at - MINUTE, points=300)
    approved(StudentFactory(tenant=tenant), dynamic, at + MINUTE // 2, points=300)
    tenant.scoreboard_freeze_at = at
    tenant.save()

    page = client_for(tenant, student).get("/challenges/dyn/")
    entry = client_for(tenant, student).get("/challenges/").context["page"].object_list[0]

    assert (page.context["value"], page.context["solves"]) == (500, 1)
    assert (entry.points, entry.solves) == (500, 1)


def test_a_grade_superseded_after_the_freeze_still_counts_on_the_frozen_board(tenant, people, instructor):
    """A 60/100 at the freeze, then the right flag after it: the frozen board keeps the 60 (nothing moves)."""
    lab = ProjectFactory(tenant=tenant, points=200)
    first = services.submission_create(user=people["ann"], project=lab, writeup="half of it")
    services.submission_grade(submission=first, status="APPROVED", score=60, grader=instructor)
    at = timezone.now()
    second = services.submission_create(user=people["ann"], project=lab, writeup="all of it")
    services.submission_grade(submission=second, status="APPROVED", score=100, grader=instructor)

    assert frozen(tenant, at) == [(1, "Ann A", 120, 1)]
    assert frozen(tenant, timezone.now()) == [(1, "Ann A", 200, 1)]
