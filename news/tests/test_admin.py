"""Announcements in the admin: posted by the class's instructors, to their class only, audited."""

import pytest

from audit.models import AuditLog, EventStore
from news.factories import AnnouncementFactory
from news.models import Announcement, Kind, Notification

pytestmark = pytest.mark.usefixtures("fast_hashing")

ADD = "/admin/news/announcement/add/"
LIST = "/admin/news/announcement/"


def change(announcement):
    return f"/admin/news/announcement/{announcement.pk}/change/"


@pytest.fixture
def admin_client(tenant, instructor, client_for):
    return client_for(tenant, instructor)


def test_an_instructor_posts_an_announcement_to_the_class(admin_client, tenant, instructor):
    response = admin_client.post(ADD, {"title": "Lab closed Friday", "body": "Use the **VPN** instead."})

    assert response.status_code == 302
    announcement = Announcement.objects.get()
    assert (announcement.tenant, announcement.author) == (tenant, instructor)
    notification = Notification.objects.get(kind=Kind.ANNOUNCEMENT)
    assert (notification.announcement, notification.user) == (announcement, None)
    assert EventStore.objects.filter(event_type="AnnouncementPosted", tenant=tenant).count() == 1
    created = AuditLog.objects.get(object_type="news.announcement", action="create")
    assert created.actor_id == instructor.pk
    assert created.changes["title"] == [None, "Lab closed Friday"]


def test_a_tenant_admin_may_post_and_delete(tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)
    client.post(ADD, {"title": "Exam room", "body": "B204"})
    announcement = Announcement.objects.get()

    response = client.post(f"/admin/news/announcement/{announcement.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Announcement.objects.exists()
    assert not Notification.objects.filter(kind=Kind.ANNOUNCEMENT).exists()  # gone with it
    assert AuditLog.objects.filter(object_type="news.announcement", action="delete").exists()


def test_an_edit_changes_the_text_and_tells_nobody_again(admin_client, instructor):
    admin_client.post(ADD, {"title": "Lab closed Fridy", "body": "x"})
    announcement = Announcement.objects.get()
    posted_at = announcement.posted_at

    response = admin_client.post(change(announcement), {"title": "Lab closed Friday", "body": "Sorry: *Friday*."})

    assert response.status_code == 302
    announcement.refresh_from_db()
    assert (announcement.title, announcement.posted_at) == ("Lab closed Friday", posted_at)
    notification = Notification.objects.get(kind=Kind.ANNOUNCEMENT)
    assert (notification.title, notification.visible_at) == ("Lab closed Friday", posted_at)
    assert EventStore.objects.filter(event_type="AnnouncementPosted").count() == 1


def test_the_change_page_previews_it_sanitised(admin_client, tenant):
    announcement = AnnouncementFactory(tenant=tenant, body="**Bold** <img src=x onerror=alert(1)>")

    content = admin_client.get(change(announcement)).content.decode()

    assert "<strong>Bold</strong>" in content  # the preview, rendered …
    assert '<img src="x">' in content  # … and sanitised
    assert "<img src=x onerror" not in content  # (the text box shows the Markdown escaped)


def test_a_blank_title_is_a_form_error_not_a_500(admin_client):
    response = admin_client.post(ADD, {"title": "", "body": "x"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["title"]
    assert not Announcement.objects.exists()


def test_the_list_shows_this_class_only_and_another_class_is_a_404(admin_client, tenant, other_tenant):
    AnnouncementFactory(tenant=tenant, title="Ours")
    theirs = AnnouncementFactory(tenant=other_tenant, title="Theirs")

    listing = admin_client.get(LIST).content.decode()
    assert "Ours" in listing and "Theirs" not in listing
    assert admin_client.get(change(theirs)).status_code == 404
    assert admin_client.post(change(theirs), {"title": "Hijacked", "body": "x"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.title == "Theirs"


def test_students_do_not_reach_it(tenant, student, client_for):
    response = client_for(tenant, student).get(ADD)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
