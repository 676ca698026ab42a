"""What students are told: notifications, the announcements instructors post, and how far each student has read.

One table holds every notification. A personal one (a badge earned, a grade) names its
student; a tenant-wide one (a challenge opening, an announcement) names none and is
shown to every student of the tenant: no row per student. Each has a `visible_at`: a
challenge that opens at 14:00 has a row visible from 14:00. A student's unread count
is what became visible after their read mark (`Reader.read_until`), one query.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from tenants.models import Tenant
from vulhub.lib.tenancy import TenantQuerySet


class Kind(models.TextChoices):
    BADGE = "BADGE", "Badge earned"
    GRADE = "GRADE", "Graded"
    OPENING = "OPENING", "New challenge"
    ANNOUNCEMENT = "ANNOUNCEMENT", "Announcement"


# kinds that name their student; the others go to the whole tenant
PERSONAL_KINDS = (Kind.BADGE, Kind.GRADE)
TENANT_WIDE_KINDS = (Kind.OPENING, Kind.ANNOUNCEMENT)


class EmailStatus(models.TextChoices):
    PENDING = "PENDING", "To send once visible"
    SENT = "SENT", "Sent"
    SKIPPED = "SKIPPED", "Nobody to e-mail"
    FAILED = "FAILED", "Gave up"


class Announcement(models.Model):
    """A message an instructor posts to the whole class (Markdown, shown sanitised)."""

    # listed through idx_announcements_recent, which starts with tenant
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    title = models.CharField(max_length=200)
    body = models.TextField(help_text="Markdown; rendered sanitised, like a challenge's description.")
    # a platform superuser may post too: no same-tenant reference, and the text stays when they go
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    posted_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "announcements"
        ordering = ["-posted_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-posted_at", "-id"], name="idx_announcements_recent")]
        constraints = [
            models.CheckConstraint(
                condition=~Q(title=""), name="chk_announcements_title", violation_error_message="Give it a title."
            ),
        ]

    def __str__(self) -> str:
        return self.title


class NotificationQuerySet(TenantQuerySet):
    def visible_to(self, user, now):
        """What `user` (a student) is shown at `now`: their own and their tenant's, once visible."""
        return self.for_tenant(user.tenant_id).filter(Q(user_id=user.pk) | Q(user__isnull=True), visible_at__lte=now)

    def due_for_email(self, now):
        """Not e-mailed yet, visible, and not being sent nor waiting for a retry."""
        return self.filter(email_status=EmailStatus.PENDING, visible_at__lte=now).filter(
            Q(email_next_try_at__isnull=True) | Q(email_next_try_at__lte=now)
        )


class Notification(models.Model):
    """Something a student is told: theirs (`user` set) or their whole tenant's (`user` empty)."""

    Kind = Kind
    EmailStatus = EmailStatus

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    # personal rows are found through idx_notifications_user_visible, which starts with user
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, help_text="Plain text: a grade's feedback, a badge's description.")
    # the challenge it is about (an opening, a grade): the row goes with the challenge
    project = models.ForeignKey("challenges.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    announcement = models.ForeignKey(
        Announcement, on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    visible_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # e-mail to the students who asked for it (news.emails): sent once visible, retried on failure
    email_status = models.CharField(
        max_length=8, choices=EmailStatus.choices, default=EmailStatus.PENDING, db_default=EmailStatus.PENDING
    )
    email_attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    # a sender's claim (until then nobody else sends it), or the time of the next try after a failure
    email_next_try_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.CharField(max_length=500, blank=True, default="", db_default="")
    # a tenant-wide row's e-mails go out in user id order: a retry resumes after the last one sent
    emailed_through_user_id = models.BigIntegerField(null=True, blank=True)

    objects = NotificationQuerySet.as_manager()

    class Meta:
        db_table = "notifications"
        ordering = ["-visible_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=Kind.values), name="chk_notifications_kind"),
            models.CheckConstraint(
                condition=Q(email_status__in=EmailStatus.values), name="chk_notifications_email_status"
            ),
            # a badge or a grade is one student's; an opening or an announcement is everyone's
            models.CheckConstraint(
                condition=Q(kind__in=PERSONAL_KINDS, user__isnull=False)
                | Q(kind__in=TENANT_WIDE_KINDS, user__isnull=True),
                name="chk_notifications_audience",
            ),
            models.CheckConstraint(
                condition=Q(kind=Kind.BADGE)
                | Q(kind=Kind.GRADE, project__isnull=False)
                | Q(kind=Kind.OPENING, project__isnull=False)
                | Q(kind=Kind.ANNOUNCEMENT, announcement__isnull=False),
                name="chk_notifications_subject",
            ),
            # one opening per challenge (it follows the challenge's window), one row per announcement
            models.UniqueConstraint(
                fields=["project"], condition=Q(kind=Kind.OPENING), name="uniq_notifications_opening"
            ),
            models.UniqueConstraint(
                fields=["announcement"],
                condition=Q(announcement__isnull=False),
                name="uniq_notifications_announcement",
            ),
        ]
        indexes = [
            # the unread count and the list: a student's own rows, then the tenant's (OR of the two)
            models.Index(
                fields=["user", "visible_at"], condition=Q(user__isnull=False), name="idx_notifications_user_visible"
            ),
            models.Index(
                fields=["tenant", "visible_at"], condition=Q(user__isnull=True), name="idx_notifications_tenant_wide"
            ),
            models.Index(
                fields=["visible_at"],
                condition=Q(email_status=EmailStatus.PENDING),
                name="idx_notifications_email_due",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        """Where it leads: the challenge, the badges page, or nowhere (an announcement is read in full here)."""
        if self.kind == Kind.BADGE:
            return reverse("scoring:badges")
        if self.project_id is not None:
            return reverse("challenges:detail", args=[self.project.slug])
        return ""

    @property
    def link_text(self) -> str:
        """What the link says (a challenge's: its name)."""
        if self.kind == Kind.BADGE:
            return "See your badges"
        return f"Open “{self.project.name}”" if self.project_id is not None else ""


class Reader(models.Model):
    """A student as a reader of their notifications: how far they have read, and whether they want e-mail."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="news_reader"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    # what became visible up to here has been seen (opening the notification centre moves it);
    # empty: never opened, and what became visible since they joined is new
    read_until = models.DateTimeField(null=True, blank=True)
    email_enabled = models.BooleanField(default=False, db_default=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        db_table = "notification_readers"

    def __str__(self) -> str:
        return f"Reader {self.user_id}"
