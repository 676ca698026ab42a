"""Submitting, grading, points, badges and ranks, through the services."""

import pytest
from django.core.cache import cache

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import Leaderboard, Submission, UserBadge
from scoring.selectors import leaderboard_page
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{right}"


@pytest.fixture
def flag_project(tenant):
    return ProjectFactory(tenant=tenant, points=200, category="Web Security", difficulty="BEGINNER", flag=FLAG)


@pytest.fixture
def writeup_project(tenant):
    return ProjectFactory(tenant=tenant, points=300, category="Forensics", difficulty="ADVANCED")


def board(tenant):
    return list(Leaderboard.objects.for_tenant(tenant).ranked().values_list("user_id", "points", "solves", "rank"))


# --- submitting ---------------------------------------------------------------------


def test_a_right_flag_is_approved_with_full_score_at_once(student, flag_project):
    submission = services.submission_create(user=student, project=flag_project, flag=f"  {FLAG} ")

    assert (submission.status, submission.score, submission.points_awarded) == ("APPROVED", 100, 200)
    assert submission.graded_at is not None
    assert board(student.tenant) == [(student.pk, 200, 1, 1)]


def test_a_wrong_flag_is_rejected_with_zero(student, flag_project):
    submission = services.submission_create(user=student, project=flag_project, flag="FLAG{wrong}")

    assert (submission.status, submission.score, submission.points_awarded) == ("REJECTED", 0, 0)
    assert board(student.tenant) == []


def test_a_write_up_waits_for_grading(student, writeup_project):
    submission = services.submission_create(
        user=student, project=writeup_project, writeup="Found it with volatility", link="https://gist.example/x"
    )

    assert (submission.status, submission.score, submission.kind) == ("PENDING", None, "WRITEUP")
    assert submission.link == "https://gist.example/x"


def test_submitting_again_after_an_approval_is_refused(student, flag_project):
    services.submission_create(user=student, project=flag_project, flag=FLAG)

    with pytest.raises(services.AlreadySolved, match="already solved"):
        services.submission_create(user=student, project=flag_project, flag=FLAG)

    assert Submission.objects.filter(user=student).count() == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"flag": ""}, "Enter the flag"), ({"flag": None, "writeup": "essay"}, "Enter the flag")],
)
def test_a_flag_challenge_needs_a_flag(kwargs, message, student, flag_project):
    with pytest.raises(services.InvalidAnswer, match=message):
        services.submission_create(user=student, project=flag_project, **kwargs)


def test_a_write_up_challenge_needs_text(student, writeup_project):
    with pytest.raises(services.InvalidAnswer, match="Write up"):
        services.submission_create(user=student, project=writeup_project, writeup="   ")


def test_an_unpublished_challenge_takes_no_submissions(student, tenant):
    hidden = ProjectFactory(tenant=tenant, is_published=False, flag=FLAG)

    with pytest.raises(services.NotAllowed):
        services.submission_create(user=student, project=hidden, flag=FLAG)


def test_another_tenants_challenge_takes_no_submissions(other_student, flag_project):
    with pytest.raises(services.NotAllowed):
        services.submission_create(user=other_student, project=flag_project, flag=FLAG)

    assert not Submission.objects.exists()


def test_staff_do_not_submit(instructor, flag_project):
    with pytest.raises(services.NotAllowed, match="Only students"):
        services.submission_create(user=instructor, project=flag_project, flag=FLAG)


def test_wrong_flags_are_limited_per_student_and_challenge(student, tenant, flag_project):
    tenant.settings = {"flag_attempts": {"limit": 3, "window_minutes": 10}}
    tenant.save()
    flag_project.tenant = tenant
    for _ in range(3):
        services.submission_create(user=student, project=flag_project, flag="FLAG{no}")

    with pytest.raises(services.TooManyAttempts, match="3 in 10 minutes"):
        services.submission_create(user=student, project=flag_project, flag=FLAG)

    assert Submission.objects.filter(user=student).count() == 3
    refusal = AuditLog.objects.get(action="flag_attempt_refused")
    assert (refusal.actor_id, refusal.object_id) == (student.pk, str(flag_project.pk))
    # another challenge, and another student, are not affected
    other = ProjectFactory(tenant=tenant, flag=FLAG)
    assert services.submission_create(user=student, project=other, flag=FLAG).status == "APPROVED"
    classmate = StudentFactory(tenant=tenant)
    assert services.submission_create(user=classmate, project=flag_project, flag=FLAG).status == "APPROVED"


def test_old_wrong_flags_fall_out_of_the_window(student, tenant, flag_project):
    from datetime import timedelta

    from django.utils import timezone

    tenant.settings = {"flag_attempts": {"limit": 2, "window_minutes": 10}}
    tenant.save()
    flag_project.tenant = tenant
    for _ in range(2):
        services.submission_create(user=student, project=flag_project, flag="FLAG{no}")
    Submission.objects.update(submitted_at=timezone.now() - timedelta(minutes=11))

    assert services.submission_create(user=student, project=flag_project, flag="FLAG{no}").status == "REJECTED"


def test_submitting_records_the_submission_and_its_event(student, writeup_project):
    submission = services.submission_create(user=student, project=writeup_project, writeup="notes")

    event = EventStore.objects.get(event_type="SubmissionCreated")
    assert event.payload["submission_id"] == submission.pk
    assert event.metadata["actor_id"] == student.pk
    assert AuditLog.objects.filter(object_type="scoring.submission", object_id=str(submission.pk)).exists()


# --- grading ------------------------------------------------------------------------


@pytest.fixture
def pending(student, writeup_project):
    return services.submission_create(user=student, project=writeup_project, writeup="my write-up")


@pytest.mark.parametrize(("score", "points"), [(100, 300), (75, 225), (50, 150), (1, 3), (0, 0)])
def test_grading_awards_points_in_proportion_to_the_score(score, points, pending, instructor):
    graded = services.submission_grade(submission=pending, status="APPROVED", score=score, grader=instructor)

    assert graded.points_awarded == points
    assert graded.graded_by == instructor


def test_points_round_half_up(tenant):
    project = ProjectFactory(tenant=tenant, points=5)

    assert services.points_for(project, 50) == 3  # 2.5 → 3, not Python's round-to-even 2
    assert services.points_for(project, 10) == 1  # 0.5 → 1


def test_a_rejection_awards_nothing(pending, instructor):
    graded = services.submission_grade(submission=pending, status="REJECTED", score=20, grader=instructor)

    assert graded.points_awarded == 0
    assert board(pending.tenant) == []


def test_a_regrade_replaces_the_points_and_is_recorded(pending, instructor):
    services.submission_grade(submission=pending, status="APPROVED", score=100, grader=instructor)

    services.submission_grade(submission=pending, status="APPROVED", score=40, grader=instructor, feedback="late")

    assert board(pending.tenant) == [(pending.user_id, 120, 1, 1)]
    graded = EventStore.objects.filter(event_type="SubmissionGraded").order_by("position")
    assert [e.payload["regrade"] for e in graded] == [False, True]
    assert graded.last().payload["previous_points_awarded"] == 300
    updates = AuditLog.objects.filter(object_type="scoring.submission", action="update").order_by("id")
    assert updates.last().changes["score"] == [100, 40]


def test_rejecting_an_approved_submission_takes_the_student_off_the_board(pending, instructor):
    services.submission_grade(submission=pending, status="APPROVED", score=100, grader=instructor)

    services.submission_grade(submission=pending, status="REJECTED", score=0, grader=instructor)

    assert board(pending.tenant) == []


@pytest.mark.parametrize(
    ("status", "score", "message"),
    [("PENDING", 50, "approves or rejects"), ("APPROVED", 101, "0 to 100"), ("APPROVED", -1, "0 to 100")],
)
def test_a_bad_grade_is_refused(status, score, message, pending, instructor):
    with pytest.raises(services.InvalidAnswer, match=message):
        services.submission_grade(submission=pending, status=status, score=score, grader=instructor)


def test_only_staff_of_the_same_tenant_grade(pending, student, other_tenant):
    from tenants.factories import InstructorFactory

    outsider = InstructorFactory(tenant=other_tenant)

    for grader in (student, outsider):
        with pytest.raises(services.NotAllowed):
            services.submission_grade(submission=pending, status="APPROVED", score=100, grader=grader)


def test_a_second_approval_for_the_same_challenge_is_refused(student, writeup_project, instructor):
    # two write-ups waiting at once (the site takes one at a time; older data may hold two)
    first = SubmissionFactory(tenant=student.tenant, user=student, project=writeup_project)
    second = SubmissionFactory(tenant=student.tenant, user=student, project=writeup_project)
    services.submission_grade(submission=first, status="APPROVED", score=100, grader=instructor)

    with pytest.raises(services.InvalidAnswer, match="already has an approved"):
        services.submission_grade(submission=second, status="APPROVED", score=100, grader=instructor)


# --- ranks --------------------------------------------------------------------------


def test_ranks_are_competition_ranks_and_ties_list_who_scored_first(tenant, instructor):
    projects = [ProjectFactory(tenant=tenant, points=p, flag=FLAG) for p in (100, 100, 300)]
    a, b, c, d = (StudentFactory(tenant=tenant) for _ in range(4))
    services.submission_create(user=c, project=projects[2], flag=FLAG)  # 300
    services.submission_create(user=a, project=projects[0], flag=FLAG)  # 100, first
    services.submission_create(user=b, project=projects[1], flag=FLAG)  # 100, second
    services.submission_create(user=d, project=projects[0], flag="FLAG{no}")  # nothing

    assert board(tenant) == [(c.pk, 300, 1, 1), (a.pk, 100, 1, 2), (b.pk, 100, 1, 2)]
    services.submission_create(user=b, project=projects[0], flag=FLAG)
    assert board(tenant) == [(c.pk, 300, 1, 1), (b.pk, 200, 2, 2), (a.pk, 100, 1, 3)]


def test_the_leaderboard_page_is_cached_and_refreshed_after_a_grading(
    tenant, student, flag_project, settings, django_assert_num_queries, django_capture_on_commit_callbacks
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    services.submission_create(user=student, project=flag_project, flag=FLAG)
    first = leaderboard_page(tenant.pk)

    with django_assert_num_queries(0):
        again = leaderboard_page(tenant.pk)

    assert again == first
    other = ProjectFactory(tenant=tenant, points=50, flag=FLAG)
    with django_capture_on_commit_callbacks(execute=True):
        services.submission_create(user=student, project=other, flag=FLAG)
    assert leaderboard_page(tenant.pk).rows[0].points == 250


def test_cached_leaderboards_are_per_tenant(tenant, other_tenant, student, other_student, flag_project):
    theirs = ProjectFactory(tenant=other_tenant, points=999, flag=FLAG)
    services.submission_create(user=student, project=flag_project, flag=FLAG)
    services.submission_create(user=other_student, project=theirs, flag=FLAG)

    assert [r.user_id for r in leaderboard_page(tenant.pk).rows] == [student.pk]
    assert [r.user_id for r in leaderboard_page(other_tenant.pk).rows] == [other_student.pk]


# --- badges -------------------------------------------------------------------------


def rule_badge(tenant, kind, **params):
    return BadgeFactory(tenant=tenant, rule_kind=kind, rule_params=params)


def badges_of(user):
    return set(UserBadge.objects.filter(user=user).values_list("badge__slug", flat=True))


def test_rule_badges_are_awarded_when_earned(tenant, student, instructor):
    first = rule_badge(tenant, "FIRST_SOLVE")
    rich = rule_badge(tenant, "POINTS_AT_LEAST", n=250)
    two = rule_badge(tenant, "SOLVES_AT_LEAST", n=2)
    web = rule_badge(tenant, "CATEGORY_SOLVES", n=2, category="Web Security")
    crypto = rule_badge(tenant, "CATEGORY_COMPLETE", category="Cryptography")
    hard = rule_badge(tenant, "DIFFICULTY_SOLVES", n=1, difficulty="EXPERT")
    web1 = ProjectFactory(tenant=tenant, category="Web Security", difficulty="BEGINNER", points=100, flag=FLAG)
    web2 = ProjectFactory(tenant=tenant, category="Web Security", difficulty="EXPERT", points=200, flag=FLAG)
    crypto1 = ProjectFactory(tenant=tenant, category="Cryptography", difficulty="BEGINNER", points=10, flag=FLAG)
    ProjectFactory(tenant=tenant, category="Cryptography", difficulty="BEGINNER", is_published=False)

    services.submission_create(user=student, project=web1, flag=FLAG)
    assert badges_of(student) == {first.slug}

    services.submission_create(user=student, project=web2, flag=FLAG)
    assert badges_of(student) == {first.slug, rich.slug, two.slug, web.slug, hard.slug}

    services.submission_create(user=student, project=crypto1, flag=FLAG)  # the only published one
    assert crypto.slug in badges_of(student)
    awarded = EventStore.objects.filter(event_type="BadgeAwarded", aggregate_id=str(student.pk))
    assert awarded.count() == 6
    assert all(e.payload["automatic"] for e in awarded)


def test_a_regrade_that_takes_the_criteria_away_revokes_the_badge(tenant, student, instructor, writeup_project):
    first = rule_badge(tenant, "FIRST_SOLVE")
    submission = services.submission_create(user=student, project=writeup_project, writeup="x")
    services.submission_grade(submission=submission, status="APPROVED", score=100, grader=instructor)
    assert badges_of(student) == {first.slug}

    services.submission_grade(submission=submission, status="REJECTED", score=0, grader=instructor)

    assert badges_of(student) == set()
    revoked = EventStore.objects.get(event_type="BadgeRevoked")
    assert revoked.payload["badge_id"] == first.pk
    assert revoked.metadata["actor_id"] == instructor.pk


def test_rules_are_checked_for_the_graded_student_only(tenant, student, instructor, writeup_project):
    rule_badge(tenant, "FIRST_SOLVE")
    bystander = StudentFactory(tenant=tenant)
    submission = services.submission_create(user=student, project=writeup_project, writeup="x")

    services.submission_grade(submission=submission, status="APPROVED", score=100, grader=instructor)

    assert badges_of(bystander) == set()


def test_instructors_award_and_revoke_badges_by_hand(tenant, student, instructor):
    helpful = BadgeFactory(tenant=tenant, slug="helpful", rule_kind="")

    award = services.badge_award(badge=helpful, user=student, actor=instructor)
    assert award.awarded_by == instructor
    with pytest.raises(services.InvalidAnswer, match="already has"):
        services.badge_award(badge=helpful, user=student, actor=instructor)

    services.badge_revoke(badge=helpful, user=student, actor=instructor, reason="given by mistake")
    assert badges_of(student) == set()
    assert EventStore.objects.get(event_type="BadgeRevoked").payload["reason"] == "given by mistake"


def test_a_badge_given_by_hand_survives_the_rules(tenant, student, instructor, writeup_project):
    first = rule_badge(tenant, "FIRST_SOLVE")
    services.badge_award(badge=first, user=student, actor=instructor)  # before any solve
    submission = services.submission_create(user=student, project=writeup_project, writeup="x")

    services.submission_grade(submission=submission, status="REJECTED", score=0, grader=instructor)

    assert badges_of(student) == {first.slug}


def test_badges_cannot_cross_tenants(tenant, other_student, instructor):
    helpful = BadgeFactory(tenant=tenant, rule_kind="")

    with pytest.raises(services.NotAllowed):
        services.badge_award(badge=helpful, user=other_student, actor=instructor)
    with pytest.raises(services.NotAllowed):
        services.badge_award(badge=helpful, user=other_student, actor=other_student)
