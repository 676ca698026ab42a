"""What becomes a notification, written in the transaction of its cause: badges, grades, openings, announcements."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from challenges.services import project_publish, project_save, project_unpublish
from news import services
from news.models import Announcement, EmailStatus, Kind, Notification
from scoring import services as scoring
from scoring.factories import BadgeFactory
from scoring.models import Submission
from tenants.factories import InstructorFactory, StudentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_hashing")]

FLAG = "FLAG{news}"


class Boom(Exception):
    pass


def personal(user, kind):
    return Notification.objects.filter(user=user, kind=kind)


@pytest.fixture
def essay(tenant):
    return ProjectFactory(tenant=tenant, name="Memory Lane", slug="memory-lane", points=300)


def graded(student, essay, instructor, score=80, feedback="Clear and complete.", status="APPROVED"):
    submission = scoring.submission_create(user=student, project=essay, writeup="malfind, then pslist")
    return scoring.submission_grade(
        submission=submission, status=status, score=score, grader=instructor, feedback=feedback
    )


# --- badges ------------------------------------------------------------------------------------


def test_a_badge_earned_by_a_right_flag_is_a_notification_for_that_student_only(tenant, student):
    BadgeFactory(tenant=tenant, name="First Blood", rule_kind="FIRST_SOLVE", description="The first to solve one.")
    classmate = StudentFactory(tenant=tenant)
    project = ProjectFactory(tenant=tenant, flag=FLAG)

    scoring.submission_create(user=student, project=project, flag=FLAG)

    [notification] = personal(student, Kind.BADGE)
    assert notification.title == "You earned the badge “First Blood”"
    assert notification.body == "The first to solve one."
    assert notification.visible_at <= timezone.now()
    assert notification.email_status == EmailStatus.PENDING
    assert not personal(classmate, Kind.BADGE).exists()


def test_a_badge_awarded_by_hand_is_a_notification(tenant, student, instructor):
    badge = BadgeFactory(tenant=tenant, name="Helper")

    scoring.badge_award(badge=badge, user=student, actor=instructor)

    assert personal(student, Kind.BADGE).get().title == "You earned the badge “Helper”"


def test_a_solve_rolled_back_leaves_no_badge_notification(tenant, student):
    BadgeFactory(tenant=tenant, rule_kind="FIRST_SOLVE")
    project = ProjectFactory(tenant=tenant, flag=FLAG)

    with pytest.raises(Boom), transaction.atomic():
        scoring.submission_create(user=student, project=project, flag=FLAG)
        assert personal(student, Kind.BADGE).exists()  # written in the solve's transaction …
        raise Boom

    assert not personal(student, Kind.BADGE).exists()  # … and gone with it


# --- grades ------------------------------------------------------------------------------------


def test_a_graded_write_up_is_a_notification_with_its_score_and_feedback(student, essay, instructor):
    graded(student, essay, instructor, score=80, feedback="Show how you found the thread.")

    [notification] = personal(student, Kind.GRADE)
    assert notification.title == "Your write-up for “Memory Lane” was graded: 80/100"
    assert notification.body == "Show how you found the thread."
    assert notification.project == essay
    assert notification.get_absolute_url() == "/challenges/memory-lane/"


def test_a_rejected_write_up_says_so(student, essay, instructor):
    graded(student, essay, instructor, score=0, status="REJECTED", feedback="Not this challenge.")

    notification = personal(student, Kind.GRADE).get()
    assert notification.title == "Your write-up for “Memory Lane” was not accepted (0/100)"
    assert notification.body == "Not this challenge."


def test_a_regrade_is_news_and_a_superseded_grade_is_not(student, essay, instructor):
    first = graded(student, essay, instructor, score=60)
    scoring.submission_grade(submission=first, status="APPROVED", score=70, grader=instructor, feedback="Better.")
    better = scoring.submission_create(user=student, project=essay, writeup="the full story")
    scoring.submission_grade(submission=better, status="APPROVED", score=90, grader=instructor)

    assert Submission.objects.get(pk=first.pk).status == Submission.Status.SUPERSEDED
    titles = list(personal(student, Kind.GRADE).order_by("id").values_list("title", flat=True))
    assert titles == [
        "Your write-up for “Memory Lane” was graded: 60/100",
        "Your write-up for “Memory Lane” was regraded: 70/100",
        "Your write-up for “Memory Lane” was graded: 90/100",
    ]


def test_a_grading_rolled_back_leaves_no_notification(student, essay, instructor):
    submission = scoring.submission_create(user=student, project=essay, writeup="steps")

    with pytest.raises(Boom), transaction.atomic():
        scoring.submission_grade(submission=submission, status="APPROVED", score=80, grader=instructor)
        assert personal(student, Kind.GRADE).exists()
        raise Boom

    assert not personal(student, Kind.GRADE).exists()
    assert Submission.objects.get(pk=submission.pk).status == Submission.Status.PENDING


def test_a_grading_that_fails_after_its_signal_leaves_no_notification(student, essay, instructor, monkeypatch):
    """The service's own transaction: what fails after the signal takes the notification with it."""
    submission = scoring.submission_create(user=student, project=essay, writeup="steps")

    def fail(**kwargs):
        raise Boom

    monkeypatch.setattr(scoring, "after_scoring", fail)  # runs after submission_graded is sent
    with pytest.raises(Boom):
        scoring.submission_grade(submission=submission, status="APPROVED", score=80, grader=instructor)

    assert not personal(student, Kind.GRADE).exists()
    assert not EventStore.objects.filter(event_type="SubmissionGraded").exists()


# --- challenge openings ------------------------------------------------------------------------


def opening(project):
    return Notification.objects.filter(kind=Kind.OPENING, project=project).first()


def test_publishing_a_challenge_is_news_for_the_whole_class_from_then(tenant):
    project = ProjectFactory(tenant=tenant, name="Cookie Jar", is_published=False)
    assert opening(project) is None

    before = timezone.now()
    project_publish(project=project, actor=None)

    row = opening(project)
    assert row.user_id is None
    assert row.title == "New challenge: Cookie Jar"
    assert before <= row.visible_at <= timezone.now()


def test_a_challenge_that_opens_later_is_news_when_it_opens_and_the_row_follows_its_window(tenant):
    at_two = timezone.now().replace(microsecond=0) + timedelta(days=1)
    project = ProjectFactory(tenant=tenant, is_published=False, opens_at=at_two)
    project_publish(project=project, actor=None)
    assert opening(project).visible_at == at_two

    project.opens_at = at_two + timedelta(hours=1)  # moved before it showed: the row follows
    project_save(project=project)
    assert opening(project).visible_at == at_two + timedelta(hours=1)

    project.opens_at = None  # opened at once: news now, not in the past
    before = timezone.now()
    project_save(project=project)
    assert before <= opening(project).visible_at <= timezone.now()

    project_unpublish(project=project, actor=None)  # hidden again: nothing to tell
    assert opening(project) is None


def test_editing_an_open_challenge_is_no_news_again(tenant):
    project = ProjectFactory(tenant=tenant, name="Cookie Jar")
    shown = opening(project)
    Notification.objects.filter(pk=shown.pk).update(
        visible_at=shown.visible_at - timedelta(days=2), email_status=EmailStatus.SENT
    )

    project.name = "Cookie Jar II"
    project.points = 200
    project_save(project=project)

    row = opening(project)
    assert row.title == "New challenge: Cookie Jar II"  # the name follows …
    assert row.visible_at == shown.visible_at - timedelta(days=2)  # … the time and the e-mail do not
    assert row.email_status == EmailStatus.SENT


def test_challenges_published_before_the_event_are_news_when_it_starts(tenant):
    start = timezone.now().replace(microsecond=0) + timedelta(days=3)
    tenant.event_starts_at = start
    tenant.save()
    project = ProjectFactory(tenant=tenant)
    assert opening(project).visible_at == start

    tenant.event_starts_at = start + timedelta(days=1)  # the event moved: the openings follow
    tenant.save(update_fields=["event_starts_at"])
    assert opening(project).visible_at == start + timedelta(days=1)

    tenant.event_starts_at = None  # no event window: open now
    before = timezone.now()
    tenant.save(update_fields=["event_starts_at"])
    assert before <= opening(project).visible_at <= timezone.now()


def test_a_deleted_challenge_takes_its_notifications_along(tenant, student, essay, instructor):
    graded(student, essay, instructor)
    assert Notification.objects.filter(project=essay).count() == 2  # its opening, the grade

    essay.delete()

    assert not Notification.objects.filter(project_id=essay.pk).exists()


# --- announcements -----------------------------------------------------------------------------


def test_an_announcement_is_posted_to_the_whole_class_recorded_and_audited(tenant, instructor):
    announcement = services.announcement_post(
        announcement=Announcement(tenant=tenant, title="Lab closed Friday", body="Use the **VPN**."),
        actor=instructor,
    )

    row = Notification.objects.get(kind=Kind.ANNOUNCEMENT)
    assert (row.announcement, row.user_id, row.title) == (announcement, None, "Lab closed Friday")
    assert row.visible_at == announcement.posted_at
    assert announcement.author == instructor
    event = EventStore.objects.get(event_type="AnnouncementPosted")
    assert event.payload["announcement_id"] == announcement.pk
    assert event.metadata["actor_id"] == instructor.pk
    assert AuditLog.objects.filter(
        object_type="news.announcement", object_id=str(announcement.pk), action="create"
    ).exists()


def test_an_edited_announcement_keeps_its_place(tenant, instructor):
    announcement = services.announcement_post(
        announcement=Announcement(tenant=tenant, title="Lab closed Fridy", body="x"), actor=instructor
    )
    row = Notification.objects.get(announcement=announcement)

    announcement.title = "Lab closed Friday"
    services.announcement_edit(announcement=announcement, actor=instructor)

    row.refresh_from_db()
    assert row.title == "Lab closed Friday"
    assert row.visible_at == announcement.posted_at
    assert EventStore.objects.filter(event_type="AnnouncementPosted").count() == 1


def test_only_staff_of_the_class_post_announcements(tenant, student, other_tenant):
    for outsider in (student, InstructorFactory(tenant=other_tenant)):
        with pytest.raises(services.NotAllowed):
            services.announcement_post(announcement=Announcement(tenant=tenant, title="Hi", body="x"), actor=outsider)
    assert not Announcement.objects.exists()
    assert not Notification.objects.filter(kind=Kind.ANNOUNCEMENT).exists()
