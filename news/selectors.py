"""Reads of news for pages: a student's notifications and unread count, the recent announcements."""

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db import connection, transaction
from django.db.models import Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.functional import cached_property

from challenges.markdown import render_markdown
from tenants.models import User
from vulhub.lib import replica
from vulhub.lib.tenant_cache import TenantCache

from .forms import EmailPreferenceForm
from .models import Announcement, Kind, Notification, Reader

# the header counts up to this many and shows "99+" beyond: the count stays cheap for anyone
UNREAD_CAP = 100
PAGE_SIZE = 20
# the dashboard's announcements, rendered once per change (news.receivers bumps it on every
# save and delete of an announcement): a dashboard view renders no Markdown
ANNOUNCEMENTS = TenantCache("announcements", seconds=300)
# the header's unread counts: a version per tenant (its tenant-wide news), an entry per student
UNREAD = TenantCache("news-unread", seconds=300)

logger = logging.getLogger(__name__)


def gets_notifications(user, tenant) -> bool:
    """A signed-in student of `tenant`: the people notifications are for."""
    return (
        user is not None
        and user.is_authenticated
        and tenant is not None
        and user.tenant_id == tenant.pk
        and user.role == User.Role.STUDENT
    )


def _read_mark(user):
    """Where the student's read mark is, as SQL: their reader row's, or the day they joined."""
    mark = Reader.objects.filter(user_id=user.pk).values("read_until")[:1]
    return Coalesce(Subquery(mark), Value(user.date_joined))


def unread_count(user, now: datetime | None = None) -> int:
    """How many of the student's notifications became visible after their read mark (up to UNREAD_CAP).

    From the cache (one round trip to it) while nothing has changed for the student:
    each entry carries the tenant's version of its tenant-wide news (bumped when one is
    written, moved or deleted; forget_unread) and lives until the next scheduled
    notification of theirs shows (a challenge that opens at 14:00), five minutes at
    most. A miss is one query; a cache that is down is that query every time.
    """
    now = now or timezone.now()
    if not cache_is_separate():
        return _count_and_next(user, now)[0]
    tenant_id = user.tenant_id
    version_key, entry_key = UNREAD.version_key(tenant_id), _unread_key(tenant_id, user.pk)
    try:
        found = cache.get_many([version_key, entry_key])
    except Exception:
        logger.warning("notification count cache unreachable", exc_info=True)
        return _count_and_next(user, now)[0]
    version, entry = found.get(version_key), found.get(entry_key)
    if version is not None and entry is not None and entry[0] == version:
        return entry[1]
    count, next_at = _count_and_next(user, now)
    if version is None:
        version = UNREAD.version(tenant_id)
    seconds = UNREAD.seconds if next_at is None else (next_at - now).total_seconds() + 1
    # a count made on a replica may miss what was just read or sent: never kept where the primary's pages look
    if version is not None and seconds >= 1 and not replica.reading_from_replica():
        with contextlib.suppress(Exception):
            cache.set(entry_key, (version, count), min(int(seconds), UNREAD.seconds))
    return count


def cache_is_separate() -> bool:
    """Whether the cache is a server of its own (Redis): the database cache (the embedded
    default's) would answer a cached count or list with more queries than it saves."""
    return "DatabaseCache" not in settings.CACHES["default"]["BACKEND"]


def _count_and_next(user, now: datetime) -> tuple[int, datetime | None]:
    """The unread count (capped) and when the next of the student's scheduled notifications shows: one query."""
    unread = Notification.objects.visible_to(user, now).filter(visible_at__gt=_read_mark(user))
    counted, count_params = unread.order_by().values("pk")[:UNREAD_CAP].query.sql_with_params()
    scheduled = (
        Notification.objects.for_tenant(user.tenant_id)
        .filter(Q(user_id=user.pk) | Q(user__isnull=True), visible_at__gt=now)
        .order_by("visible_at")
        .values("visible_at")[:1]
    )
    upcoming, upcoming_params = scheduled.query.sql_with_params()
    with connection.cursor() as cursor:
        # both parts are querysets compiled by Django, their values passed as parameters
        sql = f"SELECT (SELECT count(*) FROM ({counted}) AS unread), ({upcoming})"  # noqa: S608
        cursor.execute(sql, (*count_params, *upcoming_params))
        count, next_at = cursor.fetchone()
    return count, next_at


def _unread_key(tenant_id: int, user_id: int) -> str:
    return f"{UNREAD.name}:{tenant_id}:user:{user_id}"


def forget_unread(tenant_id: int, user_id: int | None = None) -> None:
    """Count again for a student (`user_id`), or for all the tenant (its tenant-wide news).

    At once, and again after the commit: a page that counted between the two, still
    without the change, does not keep its count.
    """

    def forget():
        try:
            if user_id is None:
                cache.incr(UNREAD.version_key(tenant_id))
            else:
                cache.delete(_unread_key(tenant_id, user_id))
        except ValueError:  # no version yet: no count cached either
            pass
        except Exception:
            logger.warning("notification counts of tenant %s not forgotten", tenant_id, exc_info=True)

    if cache_is_separate():
        forget()
        transaction.on_commit(forget)


def read_until(user) -> datetime:
    """The student's read mark (the day they joined before their first visit of the centre)."""
    mark = Reader.objects.for_tenant(user.tenant_id).filter(user_id=user.pk).values_list("read_until", flat=True)
    return mark.first() or user.date_joined


def notifications_page(user, page_number, now: datetime, *, new_after: datetime | None = None) -> Page:
    """A page of what the user is shown, newest first; each row knows if it is `is_new` (after `new_after`)."""
    if user.tenant_id is None:  # a platform account: nobody's notifications
        rows = Notification.objects.none()
    elif user.role == User.Role.STUDENT:
        rows = Notification.objects.visible_to(user, now)
    else:  # staff see what their class is told, none of a student's own
        rows = Notification.objects.for_tenant(user.tenant_id).filter(user__isnull=True, visible_at__lte=now)
    rows = rows.select_related("project", "announcement").order_by("-visible_at", "-id")
    page = Paginator(rows, PAGE_SIZE).get_page(page_number)
    for notification in page.object_list:
        notification.is_new = new_after is not None and notification.visible_at > new_after
        if notification.kind == Kind.ANNOUNCEMENT:
            notification.html = render_markdown(notification.announcement.body)
    return page


@dataclass(frozen=True)
class PostedAnnouncement:
    """An announcement as the dashboard shows it: its body already rendered sanitised."""

    pk: int
    title: str
    posted_at: datetime
    html: str


def recent_announcements(tenant, limit: int = 3) -> list[PostedAnnouncement]:
    """The tenant's latest announcements, newest first, rendered; from the cache, else one query."""
    tenant_id = getattr(tenant, "pk", tenant)

    def load() -> list[PostedAnnouncement]:
        rows = Announcement.objects.for_tenant(tenant_id).order_by("-posted_at", "-id")[:limit]
        return [PostedAnnouncement(a.pk, a.title, a.posted_at, render_markdown(a.body)) for a in rows]

    if not cache_is_separate():
        return load()
    return ANNOUNCEMENTS.get_or_load(tenant_id, ANNOUNCEMENTS.version(tenant_id), f"recent:{limit}", load)


def email_preference_form(user) -> EmailPreferenceForm:
    """The profile's e-mail choice, as the student has it now (off unless they turned it on). One query."""
    enabled = Reader.objects.for_tenant(user.tenant_id).filter(user_id=user.pk, email_enabled=True).exists()
    return EmailPreferenceForm(initial={"email_enabled": enabled})


@dataclass
class HeaderNotifications:
    """The header's link to the notification centre, with the unread count read only if a page shows it.

    `counting` False (settings.NOTIFICATIONS_ENABLED off): the link without a count, and no query.
    A page that knows the count already (the centre, which has just marked everything
    read) sets `request.notifications_unread`, and no query is made either.
    """

    request: object
    counting: bool = True

    @cached_property
    def unread(self) -> int:
        known = getattr(self.request, "notifications_unread", None)
        if known is not None:
            return known
        if not self.counting:
            return 0
        return unread_count(self.request.user)

    @property
    def unread_text(self) -> str:
        """The count as shown: "3", or "99+" past the cap."""
        return f"{UNREAD_CAP - 1}+" if self.unread >= UNREAD_CAP else str(self.unread)
