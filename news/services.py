"""Writes on news: the notifications what happens writes, announcements, read marks and e-mail choices.

The notify_* and sync_* functions run inside the transaction of what caused them (a
grading, a badge, a challenge's save: news.receivers), so a notification commits or rolls
back with its cause. E-mail goes after the commit (news.emails), never inside it.
"""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from audit import api as audit
from challenges.models import Project
from scoring.models import Submission, UserBadge
from tenants.models import Tenant, User

from . import emails, selectors
from .models import Announcement, EmailStatus, Kind, Notification, Reader
from .signals import announcement_posted


class NewsError(Exception):
    """A refusal with a message meant for the person who asked."""


class NotAllowed(NewsError):
    pass


def _is_staff_of(actor: User, tenant_id: int) -> bool:
    return actor.is_superuser or (actor.is_staff and actor.tenant_id == tenant_id)


# --- personal notifications -------------------------------------------------------------


def notify_badge(*, user_badge: UserBadge) -> Notification:
    """Tell a student they earned a badge (in the award's transaction)."""
    badge = user_badge.badge
    notification = Notification.objects.create(
        tenant_id=user_badge.tenant_id,
        user_id=user_badge.user_id,
        kind=Kind.BADGE,
        title=f"You earned the badge “{badge.name}”",
        body=badge.description,
    )
    emails.send_after_commit(notification)
    return notification


def notify_grade(*, submission: Submission, previous: dict | None = None) -> Notification | None:
    """Tell a student their answer was graded, with the score and the feedback (in the grading's transaction).

    A submission that stops counting because a better grade replaced it (SUPERSEDED)
    is no news: the better grade is.
    """
    if submission.status not in (Submission.Status.APPROVED, Submission.Status.REJECTED):
        return None
    what = "write-up" if submission.kind == Submission.Kind.WRITEUP else "answer"
    again = (previous or {}).get("status") in (Submission.Status.APPROVED, Submission.Status.REJECTED)
    name = submission.project.name
    if submission.status == Submission.Status.APPROVED:
        title = f"Your {what} for “{name}” was {'regraded' if again else 'graded'}: {submission.score}/100"
    else:
        title = f"Your {what} for “{name}” was not accepted ({submission.score}/100)"
    notification = Notification.objects.create(
        tenant_id=submission.tenant_id,
        user_id=submission.user_id,
        kind=Kind.GRADE,
        project_id=submission.project_id,
        title=title,
        body=submission.feedback,
    )
    emails.send_after_commit(notification)
    return notification


# --- challenge openings -------------------------------------------------------------------

# a challenge save that changes none of these leaves its opening as it is
OPENING_FIELDS = frozenset({"is_published", "opens_at", "name", "category", "difficulty"})


def opening_time(*, shown_at: datetime | None, gate: datetime | None, now: datetime) -> datetime:
    """When a challenge's opening becomes news, given when it was shown so far and when students may first see it.

    - it opens later (`gate` in the future): then;
    - it is open now and its opening has already shown: it stays where it was (an edit is
      no news, and a time in the past would slip behind the students' read marks);
    - it is open now and had not shown yet (just published, or moved earlier): now.
    """
    if gate is not None and gate > now:
        return gate
    if shown_at is not None and shown_at <= now:
        return shown_at
    return now


def _gate(project: Project, event_starts_at: datetime | None) -> datetime | None:
    """When students may first see the challenge: its open time and the tenant's event start, the later."""
    times = [t for t in (project.opens_at, event_starts_at) if t is not None]
    return max(times) if times else None


def _opening_fields(project: Project) -> dict:
    return {
        "title": f"New challenge: {project.name}",
        "body": f"{project.category} · {project.get_difficulty_display()}",
    }


def sync_opening(*, project: Project, now: datetime | None = None) -> Notification | None:
    """The opening notification of a challenge, as its publication and window are now (in the save's transaction).

    Published: one tenant-wide row, visible from when students can first see the
    challenge. Unpublished: none (a row that had not shown yet never will). Moved: the
    row follows, and is e-mailed again when it shows again.
    """
    now = now or timezone.now()
    rows = Notification.objects.for_tenant(project.tenant_id).filter(kind=Kind.OPENING, project_id=project.pk)
    if not project.is_published:
        rows.delete()
        return None
    if Project.tenant.is_cached(project):
        event_starts_at = project.tenant.event_starts_at
    else:
        event_starts_at = Tenant.objects.filter(pk=project.tenant_id).values_list("event_starts_at", flat=True).first()
    row = rows.first()
    visible_at = opening_time(shown_at=row.visible_at if row else None, gate=_gate(project, event_starts_at), now=now)
    fields = _opening_fields(project)
    if row is None:
        # two saves of a new challenge at once: the second finds the first's row (uniq_notifications_opening)
        Notification.objects.bulk_create(
            [
                Notification(
                    tenant_id=project.tenant_id, kind=Kind.OPENING, project=project, visible_at=visible_at, **fields
                )
            ],
            ignore_conflicts=True,
        )
        row = rows.get()
        selectors.forget_unread(project.tenant_id)  # a bulk insert sends no post_save
        emails.send_after_commit(row)
        return row
    changes = {name: value for name, value in fields.items() if getattr(row, name) != value}
    if row.visible_at != visible_at:
        changes.update(visible_at=visible_at, **_email_again())
    if changes:
        rows.filter(pk=row.pk).update(**changes)
        if "visible_at" in changes:
            selectors.forget_unread(project.tenant_id)
        for name, value in changes.items():
            setattr(row, name, value)
        if "visible_at" in changes:
            emails.send_after_commit(row)
    return row


def _email_again() -> dict:
    return {
        "email_status": EmailStatus.PENDING,
        "email_attempts": 0,
        "email_next_try_at": None,
        "emailed_at": None,
        "email_error": "",
        "emailed_through_user_id": None,
    }


def sync_openings_of_tenant(*, tenant: Tenant, now: datetime | None = None) -> int:
    """After the tenant's event start moved: its challenges' openings follow it. Returns the rows moved."""
    now = now or timezone.now()
    rows = list(Notification.objects.for_tenant(tenant).filter(kind=Kind.OPENING).select_related("project"))
    moved = []
    for row in rows:
        visible_at = opening_time(shown_at=row.visible_at, gate=_gate(row.project, tenant.event_starts_at), now=now)
        if visible_at != row.visible_at:
            row.visible_at = visible_at
            for name, value in _email_again().items():
                setattr(row, name, value)
            moved.append(row)
    Notification.objects.bulk_update(moved, ["visible_at", *_email_again()], batch_size=500)
    for row in moved:
        emails.send_after_commit(row)
    return len(moved)


# --- announcements ------------------------------------------------------------------------


@audit.recorded
def announcement_post(*, announcement: Announcement, actor: User) -> Announcement:
    """Post a new announcement to the whole class (staff of its tenant): saved, shown to every student, e-mailed."""
    if announcement.pk is not None:
        raise NotAllowed("This announcement has been posted already; edit it instead.")
    if not _is_staff_of(actor, announcement.tenant_id):
        raise NotAllowed("Only the instructors of this class post its announcements.")
    announcement.author = actor
    announcement.posted_at = timezone.now()
    announcement.save()
    notification = Notification.objects.create(
        tenant_id=announcement.tenant_id,
        kind=Kind.ANNOUNCEMENT,
        announcement=announcement,
        title=announcement.title,
        visible_at=announcement.posted_at,
    )
    announcement_posted.send(sender=Announcement, announcement=announcement, actor=actor)
    emails.send_after_commit(notification)
    return announcement


@audit.recorded
def announcement_edit(*, announcement: Announcement, actor: User) -> Announcement:
    """Correct a posted announcement (staff of its tenant): the students see the new text; nobody is told again."""
    if not _is_staff_of(actor, announcement.tenant_id):
        raise NotAllowed("Only the instructors of this class edit its announcements.")
    announcement.save()
    Notification.objects.for_tenant(announcement.tenant_id).filter(announcement=announcement).exclude(
        title=announcement.title
    ).update(title=announcement.title)
    return announcement


# --- a student's read mark and e-mail choice ----------------------------------------------


def notifications_mark_read(*, user: User, until: datetime) -> None:
    """What became visible up to `until` has been seen by `user`. The mark never moves back."""
    moved = (
        Reader.objects.for_tenant(user.tenant_id)
        .filter(user_id=user.pk)
        .update(read_until=Greatest(F("read_until"), Value(until, output_field=DateTimeField())))
    )
    if not moved:
        Reader.objects.bulk_create(
            [Reader(user_id=user.pk, tenant_id=user.tenant_id, read_until=until)], ignore_conflicts=True
        )
    selectors.forget_unread(user.tenant_id, user.pk)


@audit.recorded
def email_preference_set(*, user: User, enabled: bool) -> Reader:
    """A student turns e-mail of their notifications on or off (audited)."""
    if user.role != User.Role.STUDENT or user.tenant_id is None:
        raise NotAllowed("Only students get notifications by e-mail.")
    readers = Reader.objects.for_tenant(user.tenant_id).filter(user_id=user.pk)
    reader = readers.select_for_update().first()
    if reader is None:
        try:
            with transaction.atomic():
                return Reader.objects.create(user_id=user.pk, tenant_id=user.tenant_id, email_enabled=enabled)
        except IntegrityError:  # their first visit of the centre made the row meanwhile
            reader = readers.select_for_update().get()
    if reader.email_enabled != enabled:
        reader.email_enabled = enabled
        reader.save(update_fields=["email_enabled"])
    return reader
