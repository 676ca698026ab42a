"""Reads of news: the dashboard's announcements, and the unread count through its indexes."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from news import selectors
from news.factories import AnnouncementFactory
from news.models import Notification
from tenants.factories import StudentFactory
from vulhub.ops.db_roles import use_role

pytestmark = pytest.mark.django_db


def test_recent_announcements_are_the_classs_newest_rendered_sanitised(tenant, other_tenant, django_assert_num_queries):
    now = timezone.now()
    for n in range(5):
        AnnouncementFactory(tenant=tenant, title=f"News {n}", posted_at=now - timedelta(hours=5 - n))
    AnnouncementFactory(tenant=tenant, title="Latest", body="**Go** <script>x()</script>", posted_at=now)
    AnnouncementFactory(tenant=other_tenant, title="Not ours", posted_at=now + timedelta(hours=1))

    with django_assert_num_queries(1):
        recent = selectors.recent_announcements(tenant)

    assert [a.title for a in recent] == ["Latest", "News 4", "News 3"]
    assert str(recent[0].html) == "<p><strong>Go</strong> </p>"
    assert len(selectors.recent_announcements(tenant, limit=10)) == 6


def test_no_announcements_is_an_empty_list(tenant):
    assert selectors.recent_announcements(tenant) == []


def test_the_dashboard_include_shows_them_and_hides_when_there_are_none(tenant, rf):
    from django.template.loader import render_to_string

    AnnouncementFactory(tenant=tenant, title="Lab closed Friday", body="Use the *VPN*.")
    request = rf.get("/")
    shown = render_to_string(
        "news/_announcements.html", {"announcements": selectors.recent_announcements(tenant)}, request
    )

    assert "Lab closed Friday" in shown and "<em>VPN</em>" in shown
    assert render_to_string("news/_announcements.html", {"announcements": []}, request).strip() == ""


# --- the count's plan ---------------------------------------------------------------------------


def plan_index_names(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        (raw,) = cursor.fetchone()
    document = json.loads(raw) if isinstance(raw, str) else raw

    def walk(node):
        if "Index Name" in node:
            yield node["Index Name"]
        for child in node.get("Plans", []):
            yield from walk(child)

    return set(walk(document[0]["Plan"]))


def test_the_unread_count_reads_a_students_rows_and_the_class_rows_through_their_indexes(tenant):
    students = [StudentFactory(tenant=tenant, date_joined=timezone.now() - timedelta(days=30)) for _ in range(3)]
    with connection.cursor() as cursor:  # 200 rows of the student, 20 000 of two classmates, 2 000 of the class
        for student, rows in zip(students, (200, 10_000, 10_000), strict=True):
            cursor.execute(
                """
                INSERT INTO notifications (tenant_id, user_id, kind, title, body, visible_at, created_at)
                SELECT %s, %s, 'BADGE', 'b', '', now() - (g || ' minutes')::interval, now()
                FROM generate_series(1, %s) g
                """,
                [tenant.pk, student.pk, rows],
            )
        cursor.execute(
            """
            WITH posted AS (
                INSERT INTO announcements (tenant_id, title, body, posted_at, updated_at)
                SELECT %s, 'a', 'b', now() - (g || ' minutes')::interval, now() FROM generate_series(1, 2000) g
                RETURNING id, posted_at
            )
            INSERT INTO notifications (tenant_id, kind, title, body, announcement_id, visible_at, created_at)
            SELECT %s, 'ANNOUNCEMENT', 'a', '', id, posted_at, now() FROM posted
            """,
            [tenant.pk, tenant.pk],
        )
    with use_role("owner"), connection.cursor() as cursor:
        cursor.execute("ANALYZE notifications")
    student = students[0]
    unread = Notification.objects.visible_to(student, timezone.now()).filter(
        visible_at__gt=selectors._read_mark(student)
    )
    sql, params = unread.values("pk").query.sql_with_params()

    assert unread.count() == 2200
    assert selectors.unread_count(student) == selectors.UNREAD_CAP
    assert {"idx_notifications_user_visible", "idx_notifications_tenant_wide"} <= plan_index_names(sql, params)
