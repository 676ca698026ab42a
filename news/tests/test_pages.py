"""The notification centre, the header's count and the e-mail choice, through the pages (as the app role)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditLog
from challenges.factories import ProjectFactory
from news import selectors, services
from news.factories import NotificationFactory
from news.models import Announcement, Kind, Notification, Reader
from tenants.factories import InstructorFactory, StudentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_hashing")]


@pytest.fixture
def client(tenant, student, client_for):
    return client_for(tenant, student)


def announce(tenant, author, title, **fields):
    return services.announcement_post(
        announcement=Announcement(tenant=tenant, title=title, body=fields.pop("body", "Read **this**.")),
        actor=author,
    )


@pytest.fixture
def news(tenant, student, instructor, other_tenant, other_student):
    """Mine, a classmate's, the class's, a later one, and another tenant's."""
    NotificationFactory(tenant=tenant, user=student, title="You earned the badge “Mine”")
    NotificationFactory(tenant=tenant, user=StudentFactory(tenant=tenant), title="You earned the badge “Theirs”")
    announce(tenant, instructor, "Lab closed Friday", body="Use the **VPN** <script>alert(1)</script>")
    ProjectFactory(tenant=tenant, name="Tomorrow's Lab", opens_at=timezone.now() + timedelta(days=1))
    announce(other_tenant, InstructorFactory(tenant=other_tenant), "Beta only")
    NotificationFactory(tenant=other_tenant, user=other_student, title="Beta badge")


def test_the_centre_shows_my_news_and_my_class_news_newest_first(client, news):
    response = client.get("/news/")

    assert response.status_code == 200
    titles = [n.title for n in response.context["page"].object_list]
    assert titles == ["Lab closed Friday", "You earned the badge “Mine”"]
    content = response.content.decode()
    assert "<strong>VPN</strong>" in content  # the announcement's Markdown, rendered …
    assert "<script>alert" not in content  # … and sanitised
    for hidden in ("Theirs", "Tomorrow", "Beta only", "Beta badge"):  # a classmate's, later, another tenant's
        assert hidden not in content


def test_opening_the_centre_marks_what_it_shows_as_read(client, student, news):
    assert selectors.unread_count(student) == 2

    first = client.get("/news/")

    assert first.context["new_count"] == 2
    assert first.content.decode().count(">New</span>") == 2
    assert selectors.unread_count(student) == 0
    second = client.get("/news/")
    assert second.context["new_count"] == 0
    assert ">New</span>" not in second.content.decode()


def test_what_arrives_after_the_visit_is_unread_again(client, student, tenant, instructor):
    client.get("/news/")
    Reader.objects.filter(user=student).update(read_until=timezone.now() - timedelta(seconds=1))

    announce(tenant, instructor, "Quiz on Monday")

    assert selectors.unread_count(student) == 1
    assert 'aria-label="Notifications, 1 unread"' in client.get("/badges/").content.decode()


def test_a_new_student_starts_with_nothing_unread_from_before_they_joined(tenant, instructor, client_for):
    announce(tenant, instructor, "Welcome week")
    Notification.objects.update(visible_at=timezone.now() - timedelta(days=1))
    newcomer = StudentFactory(tenant=tenant)

    assert selectors.unread_count(newcomer) == 0
    assert "Welcome week" in client_for(tenant, newcomer).get("/news/").content.decode()  # still listed


def test_the_header_shows_the_unread_count_accessibly(client, news):
    content = client.get("/badges/").content.decode()

    assert 'aria-label="Notifications, 2 unread"' in content
    assert '<span class="nav-count" aria-hidden="true">2</span>' in content


def test_the_count_stops_at_99_plus(client, tenant, student):
    Notification.objects.bulk_create(
        [Notification(tenant=tenant, user=student, kind=Kind.BADGE, title=f"Badge {n}") for n in range(120)]
    )

    assert selectors.unread_count(student) == selectors.UNREAD_CAP
    assert 'aria-label="Notifications, 99+ unread"' in client.get("/badges/").content.decode()


def test_on_the_centre_the_header_count_is_gone_without_a_query(client, news):
    with CaptureQueriesContext(connection) as queries:
        content = client.get("/news/").content.decode()

    assert 'aria-current="page">Notifications</a>' in content  # no count beside it
    counts = [
        q["sql"] for q in queries.captured_queries if "COUNT(*)" in q["sql"] and "notification_readers" in q["sql"]
    ]
    assert counts == []


# --- the cost of the count: one query, none when it is off -------------------------------------


def page_queries(client, path):
    from django.core.cache import cache

    cache.clear()  # compare cold pages
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("path", ["/", "/badges/", "/submissions/", "/leaderboard/", "/challenges/"])
def test_the_header_count_adds_exactly_one_query_to_a_page(client, news, settings, path):
    from news.selectors import cache_is_separate

    settings.NOTIFICATIONS_ENABLED = False
    without = page_queries(client, path)
    settings.NOTIFICATIONS_ENABLED = True
    with_count = page_queries(client, path)

    # the one added, cold: SELECT (SELECT count(*) FROM (SELECT … FROM notifications WHERE …
    #   visible_at > COALESCE((SELECT read_until FROM notification_readers …), <date joined>)
    #   LIMIT 100)), (the next scheduled one's visible_at)
    assert len(with_count) == len(without) + 1
    [added] = [sql for sql in with_count if '"notifications"' in sql]
    assert "count(*)" in added.lower() and '"notification_readers"' in added
    assert not [sql for sql in without if '"notifications"' in sql]
    # warm, the count comes from a cache of its own (Redis): no query at all; with the
    # database cache (the embedded default) it is the one query every time
    with CaptureQueriesContext(connection) as warm:
        assert client.get(path).status_code == 200
    counted = [q["sql"] for q in warm.captured_queries if '"notifications"' in q["sql"]]
    assert len(counted) == (0 if cache_is_separate() else 1)


def test_the_cached_count_follows_each_change_and_the_schedule(client, tenant, student, instructor):
    import time
    from datetime import timedelta

    from django.utils import timezone

    from news.selectors import unread_count

    assert unread_count(student) == 0
    NotificationFactory(tenant=tenant, user=student)  # personal
    assert unread_count(student) == 1
    announce(tenant, instructor, "Lab 3 is up")  # tenant-wide
    assert unread_count(student) == 2
    soon = timezone.now() + timedelta(seconds=1)
    ProjectFactory(tenant=tenant, opens_at=soon)  # an opening that shows in a second
    assert unread_count(student) == 2
    time.sleep(max(0, (soon - timezone.now()).total_seconds()) + 1.1)
    assert unread_count(student) == 3  # the cached count lived only until the opening showed
    client.get("/news/")  # read
    assert unread_count(student) == 0


def test_the_header_count_costs_the_same_at_any_size(client, tenant, student, instructor):
    small = len(page_queries(client, "/badges/"))
    for n in range(15):
        announce(tenant, instructor, f"News {n}")
        NotificationFactory(tenant=tenant, user=student)
        ProjectFactory(tenant=tenant)

    assert len(page_queries(client, "/badges/")) == small


def test_a_page_that_does_not_show_the_header_makes_no_count_query(tenant, client_for, student):
    from django.test import Client

    queries = page_queries(Client(HTTP_HOST=tenant.domain), "/accounts/login/")

    assert not [sql for sql in queries if '"notifications"' in sql]


def test_staff_see_the_class_news_but_no_student_news_and_no_count(tenant, instructor, client_for, news):
    client = client_for(tenant, instructor)

    response = client.get("/news/")
    titles = [n.title for n in response.context["page"].object_list]
    assert titles == ["Lab closed Friday"]
    assert "nav-count" not in client.get("/badges/").content.decode()


def test_the_centre_is_paginated(client, tenant, student):
    Notification.objects.bulk_create(
        [Notification(tenant=tenant, user=student, kind=Kind.BADGE, title=f"Badge {n:02}") for n in range(25)]
    )

    second = client.get("/news/?page=2")
    assert len(second.context["page"].object_list) == 25 - selectors.PAGE_SIZE
    assert client.get("/news/?page=abc").context["page"].number == 1  # nonsense: the first page
    assert client.get("/news/?page=999").context["page"].number == 2  # past the end: the last


def test_the_centre_needs_a_login_and_knows_no_other_tenants_student(tenant, client_for, other_student):
    from django.test import Client

    assert Client(HTTP_HOST=tenant.domain).get("/news/")["Location"].startswith("/accounts/login/")
    outsider = client_for(tenant, other_student)  # signed in on their own tenant only
    assert outsider.get("/news/")["Location"].startswith("/accounts/login/")


def test_an_empty_centre_says_so(client):
    assert "No notifications yet." in client.get("/news/").content.decode()


# --- the e-mail choice ----------------------------------------------------------------------


def test_a_student_turns_email_on_and_off(client, student):
    response = client.post("/news/email/", {"email_enabled": "on", "next": "/profile/"})

    assert response.status_code == 302 and response["Location"] == "/profile/"
    assert Reader.objects.get(user=student).email_enabled
    assert AuditLog.objects.filter(object_type="news.reader", object_id=str(student.pk), action="create").exists()

    client.post("/news/email/", {"next": "/profile/"})  # the box unticked: not sent at all
    assert not Reader.objects.get(user=student).email_enabled
    update = AuditLog.objects.get(object_type="news.reader", action="update")
    assert update.changes == {"email_enabled": [True, False]}


def test_the_email_choice_is_off_by_default_and_shown_as_it_is(student):
    assert selectors.email_preference_form(student).initial == {"email_enabled": False}
    services.email_preference_set(user=student, enabled=True)
    assert selectors.email_preference_form(student).initial == {"email_enabled": True}


def test_the_email_choice_goes_back_only_to_this_site(client):
    response = client.post("/news/email/", {"email_enabled": "on", "next": "https://evil.example/"})

    assert response["Location"] == "/news/"


def test_the_email_choice_is_for_students_only(tenant, instructor, client_for):
    client = client_for(tenant, instructor)

    assert client.post("/news/email/", {"email_enabled": "on"}).status_code == 403
    assert not Reader.objects.exists()


def test_the_email_choice_takes_a_post_only(client):
    assert client.get("/news/email/").status_code == 405


def test_a_student_who_chose_email_before_their_first_visit_still_gets_a_read_mark(client, student, news):
    services.email_preference_set(user=student, enabled=True)
    assert Reader.objects.get(user=student).read_until is None  # never opened the centre: all since joining is new
    assert selectors.unread_count(student) == 2

    client.get("/news/")

    reader = Reader.objects.get(user=student)
    assert reader.read_until is not None and reader.email_enabled
    assert selectors.unread_count(student) == 0
