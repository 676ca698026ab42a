"""What turns into a notification: thin receivers that hand each event to a service of news.services.

Every one runs inside the transaction of its cause, so a notification commits or rolls
back with it: the scoring services send badge_awarded and submission_graded inside
their @audit.recorded transaction, and a challenge or a tenant is saved inside the
admin's (or a service's) transaction.

A challenge's opening follows its saves rather than challenges' project_published and
project_unpublished signals: publishing and unpublishing save `is_published`
(challenges.services), and a save is also what moves a challenge's window, renames it,
or creates it already published (the admin, the factories, the seed). One receiver
keeps the opening in step with all of them, and a publication is not handled twice.
"""

from django.db.models.signals import post_delete, post_save

from challenges.models import Project
from scoring.signals import badge_awarded, submission_graded
from tenants.models import Tenant

from . import selectors, services
from .models import Announcement, Notification


def on_badge_awarded(sender, user_badge, **kwargs) -> None:
    services.notify_badge(user_badge=user_badge)


def on_submission_graded(sender, submission, previous=None, **kwargs) -> None:
    services.notify_grade(submission=submission, previous=previous)


def on_project_saved(sender, instance: Project, raw=False, update_fields=None, **kwargs) -> None:
    if raw or (update_fields is not None and not services.OPENING_FIELDS & set(update_fields)):
        return  # fixtures; a save that moves no opening (points, a flag)
    services.sync_opening(project=instance)


def on_tenant_saved(sender, instance: Tenant, created=False, raw=False, update_fields=None, **kwargs) -> None:
    if raw or created or (update_fields is not None and "event_starts_at" not in update_fields):
        return
    services.sync_openings_of_tenant(tenant=instance)


def on_announcement_changed(sender, instance: Announcement, raw=False, **kwargs) -> None:
    if not raw:
        selectors.ANNOUNCEMENTS.invalidate_on_commit(instance.tenant_id)


def on_notification_changed(sender, instance: Notification, raw=False, **kwargs) -> None:
    # a count that included or missed it is read afresh (bulk inserts and updates: news.services)
    if not raw:
        selectors.forget_unread(instance.tenant_id, instance.user_id)


def connect() -> None:
    badge_awarded.connect(on_badge_awarded, dispatch_uid="news.badge_awarded")
    submission_graded.connect(on_submission_graded, dispatch_uid="news.submission_graded")
    post_save.connect(on_project_saved, sender=Project, dispatch_uid="news.project_saved")
    post_save.connect(on_tenant_saved, sender=Tenant, dispatch_uid="news.tenant_saved")
    post_save.connect(on_announcement_changed, sender=Announcement, dispatch_uid="news.announcement_saved")
    post_delete.connect(on_announcement_changed, sender=Announcement, dispatch_uid="news.announcement_deleted")
    post_save.connect(on_notification_changed, sender=Notification, dispatch_uid="news.notification_saved")
    post_delete.connect(on_notification_changed, sender=Notification, dispatch_uid="news.notification_deleted")
