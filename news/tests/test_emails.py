"""Notification e-mails: to the students who asked, after the commit, and nothing lost when the mail server fails."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from challenges.factories import ProjectFactory
from news import emails, services
from news.factories import NotificationFactory
from news.models import Announcement, EmailStatus, Kind, Notification
from news.tests.mail_backends import BlockingBackend, FlakyBackend
from scoring import services as scoring
from tenants.factories import InstructorFactory, StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

BROKEN = "news.tests.mail_backends.BrokenBackend"
FLAKY = "news.tests.mail_backends.FlakyBackend"
BLOCKING = "news.tests.mail_backends.BlockingBackend"


def wants_email(*students):
    for student in students:
        services.email_preference_set(user=student, enabled=True)


def announce(tenant, title="Lab closed Friday"):
    author = InstructorFactory(tenant=tenant)
    return services.announcement_post(
        announcement=Announcement(tenant=tenant, title=title, body="Use the **VPN**."), actor=author
    )


def deliver_all(tenant):
    return emails.deliver(tenant_id=tenant.pk)


def state(notification):
    notification.refresh_from_db()
    return notification.email_status, notification.email_attempts


# --- who gets what ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_personal_notification_goes_to_its_student_when_they_asked(tenant, student):
    wants_email(student)
    notification = NotificationFactory(tenant=tenant, user=student, title="You earned the badge “First Blood”")

    outcome = deliver_all(tenant)

    assert (outcome.sent, outcome.emails) == (1, 1)
    [message] = mail.outbox
    assert message.to == [student.email]
    assert message.subject == "Alpha Academy: You earned the badge “First Blood”"
    assert "http://alpha.localhost/badges/" in message.body
    assert "http://alpha.localhost/profile/" in message.body  # where to turn them off
    notification.refresh_from_db()
    assert notification.email_status == EmailStatus.SENT and notification.emailed_at is not None


@pytest.mark.django_db
def test_nobody_is_emailed_who_did_not_ask(tenant, student):
    notification = NotificationFactory(tenant=tenant, user=student)

    assert deliver_all(tenant).skipped == 1
    assert mail.outbox == []
    assert state(notification) == (EmailStatus.SKIPPED, 1)


@pytest.mark.django_db
def test_class_news_goes_to_every_student_of_the_class_who_asked(tenant, student, other_tenant, other_student):
    classmate, quiet, gone = StudentFactory(tenant=tenant), StudentFactory(tenant=tenant), StudentFactory(tenant=tenant)
    wants_email(student, classmate, gone, other_student)
    gone.is_active = False
    gone.save()
    announce(tenant)

    deliver_all(tenant)

    assert sorted(m.to[0] for m in mail.outbox) == sorted([student.email, classmate.email])
    assert "Use the **VPN**." in mail.outbox[0].body  # the Markdown as written
    assert quiet.email not in {m.to[0] for m in mail.outbox}


@pytest.mark.django_db
def test_a_graded_write_up_is_emailed_with_its_score_and_feedback(tenant, student, instructor):
    wants_email(student)
    essay = ProjectFactory(tenant=tenant, name="Memory Lane", slug="memory-lane")
    submission = scoring.submission_create(user=student, project=essay, writeup="steps")
    scoring.submission_grade(
        submission=submission, status="APPROVED", score=80, grader=instructor, feedback="Show the thread."
    )

    deliver_all(tenant)

    [message] = [m for m in mail.outbox if "graded" in m.subject]
    assert "Your write-up for “Memory Lane” was graded: 80/100" in message.body
    assert "Show the thread." in message.body
    assert "http://alpha.localhost/challenges/memory-lane/" in message.body


@pytest.mark.django_db
def test_an_opening_is_emailed_once_it_opens_not_before(tenant, student):
    wants_email(student)
    later = timezone.now() + timedelta(hours=2)
    project = ProjectFactory(tenant=tenant, name="Cookie Jar", opens_at=later)

    assert deliver_all(tenant).sent == 0
    assert mail.outbox == []

    emails.deliver(tenant_id=tenant.pk, now=later + timedelta(seconds=1))
    assert [m.subject for m in mail.outbox] == ["Alpha Academy: New challenge: Cookie Jar"]
    assert Notification.objects.get(project=project).email_status == EmailStatus.SENT


# --- after the commit, never inside it ----------------------------------------------------------


@pytest.mark.django_db
def test_emails_wait_for_the_commit(tenant, student, django_capture_on_commit_callbacks, settings):
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = True
    wants_email(student)
    with django_capture_on_commit_callbacks() as callbacks:
        announce(tenant)
    senders = [c for c in callbacks if "send_after_commit" in c.__qualname__]
    assert len(senders) == 1  # queued for after the commit …
    assert mail.outbox == []  # … nothing sent inside the transaction


@pytest.mark.django_db
def test_a_rolled_back_change_queues_no_email(tenant, student, django_capture_on_commit_callbacks, settings):
    from django.db import transaction

    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = True
    with django_capture_on_commit_callbacks() as callbacks:
        try:
            with transaction.atomic():
                announce(tenant)
                raise RuntimeError
        except RuntimeError:
            pass
    assert callbacks == []
    assert not Notification.objects.filter(kind=Kind.ANNOUNCEMENT).exists()


@pytest.mark.django_db
def test_off_in_the_background_nothing_is_queued_and_the_command_sends(tenant, student, settings):
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = False
    wants_email(student)

    announce(tenant)
    run()

    assert [m.to for m in mail.outbox] == [[student.email]]


# --- a failing mail server loses nothing -------------------------------------------------------


@pytest.mark.django_db
def test_a_failing_mail_server_keeps_the_notification_and_its_email_for_later(tenant, student, settings):
    settings.EMAIL_BACKEND = BROKEN
    wants_email(student)
    notification = NotificationFactory(tenant=tenant, user=student)

    outcome = deliver_all(tenant)

    assert (outcome.failed, outcome.sent) == (1, 0)
    notification.refresh_from_db()
    assert (notification.email_status, notification.email_attempts) == (EmailStatus.PENDING, 1)
    assert "Connection refused" in notification.email_error
    assert notification.email_next_try_at > timezone.now()  # not before the retry time …
    assert deliver_all(tenant).failed == 0  # … so a second try now does nothing

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    emails.deliver(tenant_id=tenant.pk, now=notification.email_next_try_at + timedelta(seconds=1))
    assert [m.to for m in mail.outbox] == [[student.email]]
    assert state(notification) == (EmailStatus.SENT, 2)


@pytest.mark.django_db
def test_after_the_last_try_it_is_given_up_and_says_why(tenant, student, settings):
    settings.EMAIL_BACKEND = BROKEN
    settings.NOTIFICATION_EMAIL_MAX_ATTEMPTS = 2
    wants_email(student)
    notification = NotificationFactory(tenant=tenant, user=student)

    deliver_all(tenant)
    outcome = emails.deliver(tenant_id=tenant.pk, now=timezone.now() + timedelta(hours=1))

    assert outcome.given_up == 1
    assert state(notification) == (EmailStatus.FAILED, 2)
    assert Notification.objects.filter(pk=notification.pk).exists()  # the notification itself stays


@pytest.mark.django_db
def test_a_class_email_that_fails_part_way_goes_on_from_where_it_stopped(tenant, settings):
    students = sorted((StudentFactory(tenant=tenant) for _ in range(3)), key=lambda s: s.pk)
    wants_email(*students)
    settings.EMAIL_BACKEND = FLAKY
    FlakyBackend.allowed = 1
    announce(tenant)

    assert deliver_all(tenant).failed == 1
    assert [m.to[0] for m in mail.outbox] == [students[0].email]

    FlakyBackend.allowed = 10
    emails.deliver(tenant_id=tenant.pk, now=timezone.now() + timedelta(hours=1))

    assert [m.to[0] for m in mail.outbox] == [s.email for s in students]  # each once
    assert Notification.objects.get(kind=Kind.ANNOUNCEMENT).email_status == EmailStatus.SENT


@pytest.mark.django_db
def test_a_claimed_notification_is_not_sent_twice(tenant, student):
    wants_email(student)
    notification = NotificationFactory(tenant=tenant, user=student)
    Notification.objects.filter(pk=notification.pk).update(email_next_try_at=timezone.now() + emails.CLAIM)

    assert deliver_all(tenant).emails == 0  # another sender holds it
    assert mail.outbox == []


# --- the command ---------------------------------------------------------------------------------


def run(*args):
    import io

    out, err = io.StringIO(), io.StringIO()
    call_command("send_notification_emails", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue()


@pytest.mark.django_db
def test_the_command_sends_what_is_due_in_every_tenant(tenant, student, other_tenant, other_student):
    wants_email(student, other_student)
    announce(tenant)
    announce(other_tenant, "Beta news")
    NotificationFactory(tenant=tenant, user=StudentFactory(tenant=tenant))  # nobody to e-mail

    out = run()

    assert "Sending 3 notifications due in 2 tenant(s)." in out
    assert "2 sent (2 e-mails), 1 with nobody to e-mail, 0 failed (tried again later), 0 given up." in out
    assert sorted(m.to[0] for m in mail.outbox) == sorted([student.email, other_student.email])
    assert run() == "No notification e-mails are due.\n"


@pytest.mark.django_db
def test_the_command_dry_run_sends_nothing(tenant, student):
    wants_email(student)
    announce(tenant)

    out = run("--dry-run")

    assert "alpha: 1 notification due, 1 e-mail to send." in out
    assert mail.outbox == []
    assert Notification.objects.get(kind=Kind.ANNOUNCEMENT).email_status == EmailStatus.PENDING


@pytest.mark.django_db
def test_the_command_fails_loudly_when_the_mail_server_does(tenant, student, settings):
    settings.EMAIL_BACKEND = BROKEN
    wants_email(student)
    announce(tenant)

    with pytest.raises(CommandError, match="1 notification e-mail failed"):
        run()
    assert Notification.objects.get(kind=Kind.ANNOUNCEMENT).email_attempts == 1


@pytest.mark.django_db
def test_the_command_refuses_a_nonsense_limit():
    with pytest.raises(CommandError, match="expected a whole number"):
        run("--limit", "0")


# --- in the background, after a real commit --------------------------------------------------


@pytest.fixture
def background(settings):
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = True
    BlockingBackend.started.clear()
    BlockingBackend.release.clear()
    yield
    BlockingBackend.release.set()
    assert emails.wait_for_background(10)


@pytest.mark.django_db(transaction=True)
def test_a_slow_mail_server_holds_up_no_grading(background, settings):
    """The grading commits and returns while the mail server is still busy with its e-mail."""
    tenant = ProjectFactory().tenant
    student, instructor = StudentFactory(tenant=tenant), InstructorFactory(tenant=tenant)
    essay = ProjectFactory(tenant=tenant, name="Memory Lane")
    wants_email(student)
    submission = scoring.submission_create(user=student, project=essay, writeup="steps")
    assert emails.wait_for_background(10)  # the challenges' openings, e-mailed or not
    mail.outbox.clear()
    settings.EMAIL_BACKEND = BLOCKING

    scoring.submission_grade(submission=submission, status="APPROVED", score=90, grader=instructor)

    # the grading has returned, committed, while its e-mail is still with the blocked mail server
    assert BlockingBackend.started.wait(10)
    grade = Notification.objects.get(kind=Kind.GRADE)
    assert grade.email_status == EmailStatus.PENDING
    assert mail.outbox == []
    BlockingBackend.release.set()
    assert emails.wait_for_background(10)
    assert [m.subject for m in mail.outbox] == [f"{tenant.name}: Your write-up for “Memory Lane” was graded: 90/100"]
    grade.refresh_from_db()
    assert grade.email_status == EmailStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_a_mail_server_that_is_down_loses_nothing(background, settings):
    settings.EMAIL_BACKEND = BROKEN
    tenant = ProjectFactory().tenant
    student = StudentFactory(tenant=tenant)
    wants_email(student)

    announcement = announce(tenant)
    assert emails.wait_for_background(10)

    row = Notification.objects.get(announcement=announcement)
    assert (row.email_status, row.email_attempts) == (EmailStatus.PENDING, 1)
    assert "Connection refused" in row.email_error
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    Notification.objects.filter(pk=row.pk).update(email_next_try_at=timezone.now())  # the retry time has come
    run()
    assert [m.to for m in mail.outbox] == [[student.email]]
