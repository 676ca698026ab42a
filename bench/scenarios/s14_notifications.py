"""What the header's notification count costs: the leaderboard and the dashboard with it and without.

Two gunicorns side by side on the same data, one with NOTIFICATIONS_ENABLED (the
default: every page of a signed-in student runs one more query for the unread count)
and one with it off (no count, no query); wrk reads each page at 8 connections as
students of the largest class, the two servers in turn, run by run.

So that the count has rows to look at, each viewer gets PERSONAL notifications of their
own (badges) and the class TENANT_WIDE announcements (the dashboard shows the latest
three), some of them read (before the viewer's read mark) and some not; all are removed
afterwards.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from bench.framework import Context, Figure, Series
from bench.http_load import BenchError, LoadResult, Request, get, gunicorn, page_one_students, sessions_for, wrk
from news.models import Announcement, Notification, Reader
from news.selectors import forget_unread

SCENARIO = "14 Notifications"
CONNECTIONS = 8
VIEWERS = 16
PERSONAL = 40
TENANT_WIDE = 60
PAGES = {"leaderboard": "/leaderboard/", "dashboard": "/"}


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    seconds = 1 if ctx.smoke else 5
    students = page_one_students(tenant["id"], VIEWERS)
    if not students:
        raise BenchError(f"{tenant['slug']} has nobody on its leaderboard")
    add_notifications(ctx, tenant["id"], students)
    sessions = sessions_for(ctx, students)
    host = tenant["domain"]
    results: dict[tuple[str, str], list[LoadResult]] = {}
    with gunicorn(ctx, NOTIFICATIONS_ENABLED="true") as on, gunicorn(ctx, NOTIFICATIONS_ENABLED="false") as off:
        servers = {"on": on, "off": off}
        for page, path in PAGES.items():
            requests = [Request("GET", host, path, s.cookie) for s in sessions]
            for state, server in servers.items():
                check(server, requests[0], page, counted=state == "on")
                wrk(server, requests, seconds=1, connections=CONNECTIONS)  # warm: workers, pool, cache
            for _ in range(ctx.runs):
                for state, server in servers.items():
                    result = wrk(server, requests, seconds=seconds, connections=CONNECTIONS)
                    if result.bad:
                        raise BenchError(
                            f"{page} ({state}): {result.bad} failed of {result.requests}: {result.statuses}"
                        )
                    results.setdefault((page, state), []).append(result)
                    ctx.log(f"   {page:11} {state:3} {result.rate:8.1f} req/s, p95 {result.p95_ms:6.1f} ms")

    def series(label: str, runs: list[LoadResult]) -> Series:
        return Series(label, [r.rate for r in runs], "req/s")

    size = f"{tenant['slug']}, {len(students)} signed-in students, {CONNECTIONS} connections"
    return [
        Figure(
            SCENARIO,
            f"{page} with the notification count vs without",
            ours=series(f"{path} (count on)", results[(page, "on")]),
            baseline=series(f"{path} (count off)", results[(page, "off")]),
            goal=0.9,
            note=f"{size}; {PERSONAL} personal and {TENANT_WIDE} tenant-wide notifications per viewer, half read",
            extra={state: {"p95_ms": [round(r.p95_ms, 1) for r in results[(page, state)]]} for state in ("on", "off")},
        )
        for page, path in PAGES.items()
    ]


def add_notifications(ctx: Context, tenant_id: int, students) -> None:
    """Each viewer's own notifications and the class's, spread over the last days; half before their read mark."""
    now = timezone.now()
    with transaction.atomic():
        posted = Announcement.objects.bulk_create(
            Announcement(
                tenant_id=tenant_id,
                title=f"Bench announcement {i}",
                body=f"Lab **{i}** opens *today*: read [the notes](https://example.edu/{i}).",
                posted_at=now - timedelta(hours=i),
            )
            for i in range(TENANT_WIDE)
        )
    rows = [
        Notification(
            tenant_id=tenant_id,
            user_id=None,
            kind=Notification.Kind.ANNOUNCEMENT,
            announcement=announcement,
            title=announcement.title,
            visible_at=announcement.posted_at,
            email_status=Notification.EmailStatus.SKIPPED,
        )
        for announcement in posted
    ]
    for student in students:
        rows += [
            Notification(
                tenant_id=tenant_id,
                user_id=student.pk,
                kind=Notification.Kind.BADGE,
                title=f"Bench badge {i}",
                visible_at=now - timedelta(hours=i),
                email_status=Notification.EmailStatus.SKIPPED,
            )
            for i in range(PERSONAL)
        ]
    with transaction.atomic():
        made = Notification.objects.bulk_create(rows)
        marks = Reader.objects.bulk_create(
            [
                Reader(tenant_id=tenant_id, user_id=s.pk, read_until=now - timedelta(hours=PERSONAL // 2))
                for s in students
            ],
            ignore_conflicts=True,
        )
    forget_unread(tenant_id)  # bulk inserts send no signal: counts cached before them are read afresh
    ids = [n.pk for n in made]
    readers = [s.pk for s in students]

    def remove() -> None:
        Notification.objects.filter(pk__in=ids).delete()
        Announcement.objects.filter(pk__in=[a.pk for a in posted]).delete()
        Reader.objects.filter(tenant_id=tenant_id, user_id__in=readers).delete()
        forget_unread(tenant_id)

    ctx.scratch.setdefault("cleanups", []).append(remove)
    del marks


def check(server, request: Request, name: str, *, counted: bool) -> None:
    """The page answers 200 for a signed-in student, with the unread count only where it is on."""
    response = get(server, request.host, request.path, request.cookie)
    if response.status != 200 or b"Signed in as" not in response.body:
        raise BenchError(f"{name}: {request.path} answered {response.status}: not the page\n{server.log_tail()}")
    if (b"unread" in response.body) != counted:
        raise BenchError(f"{name}: the unread count is {'missing' if counted else 'shown'} on {request.path}")
