"""Notification e-mails: sent after the commit, off the request, and never lost.

A notification's row is the record of what is owed: `email_status` PENDING until it is
sent (SENT), found to have nobody to go to (SKIPPED), or given up on after
NOTIFICATION_EMAIL_MAX_ATTEMPTS failures (FAILED). Who gets it is decided when it is
sent: the students who turned e-mail on (news.models.Reader.email_enabled), the one a
personal notification names or every active student of the tenant.

Two senders share one code path (`deliver`):

- after a commit (`send_after_commit`, NOTIFICATION_EMAILS_IN_BACKGROUND): the
  notification's id goes to a queue that a thread of the web process empties. The
  request does not wait for the mail server: its response is not held by an SMTP
  exchange, and a slow server (EMAIL_TIMEOUT bounds each exchange) holds only that
  thread. The thread lives while there is work and ends when the queue stays empty.
- `manage.py send_notification_emails` (cron, every few minutes): whatever is due and
  unsent: a failed try whose retry time has come, a challenge opening whose time has
  come, or anything a stopped process left behind.

A sender claims a row before it sends (its `email_next_try_at` moves CLAIM ahead, in a
transaction of its own, skipping rows another sender holds), sends outside any
transaction, and records the outcome in another. A crash between the send and the
record sends that e-mail again when the claim lapses: at least once, never never.
A tenant-wide notification is sent in user id order and remembers the last student it
reached (`emailed_through_user_id`), so a retry after a failure part-way goes on from there.
"""

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from tenants.forms import public_host
from tenants.models import Tenant, User
from tenants.rls import tenant_context

from .models import EmailStatus, Notification

logger = logging.getLogger(__name__)

# how long a sender holds a notification it claimed: another sender may take it after that
CLAIM = timedelta(minutes=15)
# the wait before the next try after the n-th failure: 2, 4, 8 … minutes, at most a day
FIRST_RETRY = timedelta(minutes=2)
LONGEST_RETRY = timedelta(days=1)
# how long the background thread waits for more work before it ends
IDLE_SECONDS = 30


def in_background() -> bool:
    return getattr(settings, "NOTIFICATION_EMAILS_IN_BACKGROUND", True)


def max_attempts() -> int:
    return getattr(settings, "NOTIFICATION_EMAIL_MAX_ATTEMPTS", 5)


def retry_delay(attempts: int) -> timedelta:
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)


# --- after the commit: a queue and the thread that empties it -----------------------------

_outbox: queue.Queue = queue.Queue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def send_after_commit(notification: Notification) -> None:
    """Once the current transaction commits, e-mail `notification` from the background (if visible by then)."""
    if not in_background():
        return  # the command sends it
    if notification.visible_at > timezone.now():
        return  # not due yet: the command sends it once it shows
    item = (notification.tenant_id, notification.pk)
    transaction.on_commit(lambda: _enqueue(item))


def _enqueue(item: tuple[int, int]) -> None:
    global _worker
    _outbox.put(item)
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="vulhub-notification-emails", daemon=True)
            _worker.start()


def _work() -> None:
    global _worker
    while True:
        try:
            items = [_outbox.get(timeout=IDLE_SECONDS)]
        except queue.Empty:
            with _worker_lock:  # _enqueue puts before it looks at the worker: nothing is stranded
                if _outbox.empty():
                    _worker = None
                    return
            continue
        while True:
            try:
                items.append(_outbox.get_nowait())
            except queue.Empty:
                break
        by_tenant: dict[int, list[int]] = {}
        for tenant_id, notification_id in items:
            by_tenant.setdefault(tenant_id, []).append(notification_id)
        try:
            for tenant_id, ids in by_tenant.items():
                try:
                    deliver(tenant_id=tenant_id, ids=ids)
                except Exception:  # the rows stay PENDING: the command sends them
                    logger.exception(
                        "Notification e-mails of tenant %s failed; the command will retry them.", tenant_id
                    )
        finally:
            connection.close()  # this thread's connection (back to the pool, when there is one)
            for _ in items:
                _outbox.task_done()


def wait_for_background(timeout: float = 10) -> bool:
    """Wait until the background thread has handled everything queued so far (tests, shutdown)."""
    with _outbox.all_tasks_done:
        return _outbox.all_tasks_done.wait_for(lambda: not _outbox.unfinished_tasks, timeout)


# --- sending ---------------------------------------------------------------------------------


@dataclass
class Delivery:
    """What one call of `deliver` did."""

    sent: int = 0  # notifications fully sent
    emails: int = 0  # messages handed to the mail server
    skipped: int = 0  # nobody wanted them
    failed: int = 0  # failed this time (retried later, or given up: see given_up)
    given_up: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: "Delivery") -> None:
        for name in ("sent", "emails", "skipped", "failed", "given_up"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)


def recipients(notification: Notification):
    """The students who get it by e-mail now: active, e-mail turned on, and not reached by an earlier try."""
    students = (
        User.objects.for_tenant(notification.tenant_id)
        .students()
        .filter(is_active=True, news_reader__email_enabled=True)
        .order_by("pk")
    )
    if notification.user_id is not None:
        return students.filter(pk=notification.user_id)
    if notification.emailed_through_user_id is not None:
        return students.filter(pk__gt=notification.emailed_through_user_id)
    return students


def message_for(notification: Notification, user: User, tenant: Tenant) -> EmailMessage:
    site = f"{settings.PUBLIC_SCHEME}://{public_host(tenant)}"
    path = notification.get_absolute_url() or f"{reverse('news:notifications')}#notification-{notification.pk}"
    body = notification.body
    if notification.announcement_id is not None:
        body = notification.announcement.body  # the Markdown as written reads well as plain text
    text = render_to_string(
        "news/email.txt",
        {
            "user": user,
            "tenant": tenant,
            "notification": notification,
            "body": body,
            "link": f"{site}{path}",
            "preferences": f"{site}{reverse('profile')}",
        },
    )
    subject = f"{tenant.name}: {notification.title}"
    return EmailMessage(subject=subject.replace("\n", " ")[:200], body=text, to=[user.email])


def deliver(*, tenant_id: int, ids: list[int] | None = None, now: datetime | None = None) -> Delivery:
    """Send the due e-mails of these notifications of one tenant (all its due ones when `ids` is None)."""
    now = now or timezone.now()
    outcome = Delivery()
    with tenant_context(tenant_id):  # as a request would: the app role, this tenant's rows only
        due = Notification.objects.for_tenant(tenant_id).due_for_email(now)
        if ids is not None:
            due = due.filter(pk__in=ids)
        claimed = list(due.select_for_update(skip_locked=True, of=("self",)).select_related("project", "announcement"))
        if not claimed:
            return outcome
        Notification.objects.filter(pk__in=[n.pk for n in claimed]).update(
            email_next_try_at=now + CLAIM, email_attempts=F("email_attempts") + 1
        )
        tenant = Tenant.objects.get(pk=tenant_id)
        plans = [(notification, list(recipients(notification))) for notification in claimed]
    for notification, people in plans:
        notification.email_attempts += 1
        outcome.add(_send(notification, people, tenant))
    return outcome


def _send(notification: Notification, people: list[User], tenant: Tenant) -> Delivery:
    done = Delivery()
    if not people:
        if notification.emailed_through_user_id is None:
            _record(notification, status=EmailStatus.SKIPPED)
            done.skipped = 1
        else:  # a retry found everyone left reached already (or no longer wanting it)
            _record(
                notification,
                status=EmailStatus.SENT,
                emailed_at=timezone.now(),
                reached=notification.emailed_through_user_id,
            )
            done.sent = 1
        return done
    reached = notification.emailed_through_user_id
    try:
        with get_connection(fail_silently=False) as mail:  # EMAIL_TIMEOUT bounds each exchange
            for person in people:
                mail.send_messages([message_for(notification, person, tenant)])
                reached = person.pk
                done.emails += 1
    except Exception as error:  # any failure of the mail server: kept, and tried again later
        message = f"{type(error).__name__}: {error}"[:500]
        given_up = notification.email_attempts >= max_attempts()
        _record(
            notification,
            status=EmailStatus.FAILED if given_up else EmailStatus.PENDING,
            next_try_at=None if given_up else timezone.now() + retry_delay(notification.email_attempts),
            error=message,
            reached=reached,
        )
        done.failed, done.given_up = 1, int(given_up)
        done.errors.append(f"notification {notification.pk}: {message}")
        logger.warning(
            "Notification e-mail %s failed (try %s): %s", notification.pk, notification.email_attempts, message
        )
        return done
    _record(notification, status=EmailStatus.SENT, emailed_at=timezone.now(), reached=reached)
    done.sent = 1
    return done


def _record(notification, *, status, next_try_at=None, emailed_at=None, error="", reached=None) -> None:
    with tenant_context(notification.tenant_id):
        Notification.objects.filter(pk=notification.pk).update(
            email_status=status,
            email_next_try_at=next_try_at,
            emailed_at=emailed_at,
            email_error=error,
            emailed_through_user_id=reached,
        )


def due_by_tenant(now: datetime | None = None, limit: int | None = None) -> dict[int, list[int]]:
    """Every tenant's due notification ids, oldest first (the command, as the owner: across tenants)."""
    now = now or timezone.now()
    rows = Notification.objects.due_for_email(now).order_by("visible_at", "pk").values_list("tenant_id", "pk")
    if limit:
        rows = rows[:limit]
    found: dict[int, list[int]] = {}
    for tenant_id, pk in rows:
        found.setdefault(tenant_id, []).append(pk)
    return found
