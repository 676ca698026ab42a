"""The news tables in the database: their constraints, same-tenant references and row-level security.

Raw SQL proves each rule is the database's, not only the ORM's.
"""

import pytest
from django.db import IntegrityError, connection, transaction

from challenges.factories import ProjectFactory
from news.factories import AnnouncementFactory, NotificationFactory
from news.models import Announcement, Kind, Notification, Reader
from tenants.factories import StudentFactory
from tenants.rls import tenant_context

pytestmark = pytest.mark.django_db


def insert(sql, params):
    # the same-tenant references are deferred to commit, like Django's own: checked now
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(sql, params)


NOTIFICATION = (
    "INSERT INTO notifications (tenant_id, user_id, kind, title, body, project_id, announcement_id, visible_at, "
    "created_at) VALUES (%s, %s, %s, 'x', '', %s, %s, now(), now())"
)


def test_a_personal_notification_of_one_tenant_is_accepted(tenant, student):
    insert(NOTIFICATION, [tenant.pk, student.pk, "BADGE", None, None])


@pytest.mark.parametrize(
    ("kind", "personal", "constraint"),
    [
        ("BADGE", False, "chk_notifications_audience"),  # a badge is someone's
        ("GRADE", False, "chk_notifications_audience"),
        ("ANNOUNCEMENT", True, "chk_notifications_audience"),  # an announcement is everyone's
        ("OPENING", True, "chk_notifications_audience"),
        ("BOGUS", True, "chk_notifications_(kind|audience)"),  # refused by both
    ],
)
def test_who_a_notification_is_for_follows_its_kind(tenant, student, project, kind, personal, constraint):
    with pytest.raises(IntegrityError, match=constraint):
        insert(NOTIFICATION, [tenant.pk, student.pk if personal else None, kind, project.pk, None])


def test_an_opening_needs_its_challenge_and_an_announcement_its_announcement(tenant):
    with pytest.raises(IntegrityError, match="chk_notifications_subject"):
        insert(NOTIFICATION, [tenant.pk, None, "OPENING", None, None])
    with pytest.raises(IntegrityError, match="chk_notifications_subject"):
        insert(NOTIFICATION, [tenant.pk, None, "ANNOUNCEMENT", None, None])


def test_a_challenge_has_one_opening(tenant, project):
    assert Notification.objects.filter(kind=Kind.OPENING, project=project).count() == 1  # made when it was saved

    with pytest.raises(IntegrityError, match="uniq_notifications_opening"):
        insert(NOTIFICATION, [tenant.pk, None, "OPENING", project.pk, None])


def test_an_announcement_has_one_notification(tenant):
    announcement = AnnouncementFactory(tenant=tenant)
    insert(NOTIFICATION, [tenant.pk, None, "ANNOUNCEMENT", None, announcement.pk])

    with pytest.raises(IntegrityError, match="uniq_notifications_announcement"):
        insert(NOTIFICATION, [tenant.pk, None, "ANNOUNCEMENT", None, announcement.pk])


def test_an_unknown_email_status_is_refused(tenant, student):
    notification = NotificationFactory(tenant=tenant, user=student)

    with pytest.raises(IntegrityError, match="chk_notifications_email_status"):
        insert("UPDATE notifications SET email_status = 'LOST' WHERE id = %s", [notification.pk])


def test_an_announcement_needs_a_title(tenant):
    with pytest.raises(IntegrityError, match="chk_announcements_title"):
        insert(
            "INSERT INTO announcements (tenant_id, title, body, posted_at, updated_at) "
            "VALUES (%s, '', 'b', now(), now())",
            [tenant.pk],
        )


# --- references stay inside the tenant --------------------------------------------------


def test_a_notification_for_another_tenants_student_is_refused(tenant, other_student):
    with pytest.raises(IntegrityError, match="fk_notifications_user_same_tenant"):
        insert(NOTIFICATION, [tenant.pk, other_student.pk, "BADGE", None, None])


def test_a_notification_about_another_tenants_challenge_is_refused(tenant, student, other_tenant):
    foreign = ProjectFactory(tenant=other_tenant)

    with pytest.raises(IntegrityError, match="fk_notifications_project_same_tenant"):
        insert(NOTIFICATION, [tenant.pk, student.pk, "GRADE", foreign.pk, None])


def test_a_notification_of_another_tenants_announcement_is_refused(tenant, other_tenant):
    foreign = AnnouncementFactory(tenant=other_tenant)

    with pytest.raises(IntegrityError, match="fk_notifications_announcement_same_tenant"):
        insert(NOTIFICATION, [tenant.pk, None, "ANNOUNCEMENT", None, foreign.pk])


def test_a_read_mark_for_another_tenants_student_is_refused(tenant, other_student):
    with pytest.raises(IntegrityError, match="fk_notification_readers_user_same_tenant"):
        insert(
            "INSERT INTO notification_readers (user_id, tenant_id, email_enabled) VALUES (%s, %s, false)",
            [other_student.pk, tenant.pk],
        )


# --- row-level security, as the app role --------------------------------------------------


@pytest.fixture
def news_of_two_tenants(tenant, student, other_tenant, other_student):
    """A personal notification, an announcement with its notification and a read mark in each tenant."""
    made = {}
    for school, person in ((tenant, student), (other_tenant, other_student)):
        NotificationFactory(tenant=school, user=person)
        announcement = AnnouncementFactory(tenant=school)
        Notification.objects.create(
            tenant=school, kind=Kind.ANNOUNCEMENT, announcement=announcement, title=announcement.title
        )
        Reader.objects.create(user=person, tenant=school)
        made[school.pk] = person
    return made


def test_the_app_role_sees_only_its_tenants_news(news_of_two_tenants, tenant, other_tenant):
    with tenant_context(tenant.pk):  # a request's transaction: the app role, the tenant entered
        assert set(Notification.objects.values_list("tenant_id", flat=True)) == {tenant.pk}
        assert set(Announcement.objects.values_list("tenant_id", flat=True)) == {tenant.pk}
        assert set(Reader.objects.values_list("tenant_id", flat=True)) == {tenant.pk}
        # a statement aimed straight at the other tenant's rows touches nothing
        with connection.cursor() as cursor:
            cursor.execute("UPDATE notifications SET title = 'hijacked' WHERE tenant_id = %s", [other_tenant.pk])
            assert cursor.rowcount == 0
            cursor.execute("DELETE FROM announcements WHERE tenant_id = %s", [other_tenant.pk])
            assert cursor.rowcount == 0
    assert not Notification.objects.filter(title="hijacked").exists()
    assert Announcement.objects.filter(tenant=other_tenant).count() == 1


def test_the_app_role_cannot_write_news_for_another_tenant(news_of_two_tenants, tenant, other_tenant):
    other_student = news_of_two_tenants[other_tenant.pk]
    with tenant_context(tenant.pk):
        with pytest.raises(Exception, match="row-level security"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(NOTIFICATION, [other_tenant.pk, other_student.pk, "BADGE", None, None])
        with pytest.raises(Exception, match="row-level security"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO notification_readers (user_id, tenant_id, email_enabled) VALUES (%s, %s, true)",
                [other_student.pk, other_tenant.pk],
            )


def test_with_no_tenant_entered_the_news_tables_read_empty(news_of_two_tenants):
    with tenant_context(None):
        assert Notification.objects.count() == 0
        assert Announcement.objects.count() == 0
        assert Reader.objects.count() == 0


def test_the_app_role_updates_only_what_the_site_changes(tenant, student):
    """vulhub.ops.db_roles narrows UPDATE on these tables: a notification's title, time and e-mail state,
    a reader's mark and e-mail choice. Nothing the site does moves a row to another student or kind."""
    classmate = StudentFactory(tenant=tenant)
    notification = NotificationFactory(tenant=tenant, user=student)
    Reader.objects.create(user=student, tenant=tenant)
    with tenant_context(tenant.pk):
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE notifications SET title = 'x', visible_at = now(), email_status = 'SENT' WHERE id = %s",
                [notification.pk],
            )
            cursor.execute("UPDATE notification_readers SET read_until = now(), email_enabled = true")
        for statement in (
            f"UPDATE notifications SET user_id = {classmate.pk} WHERE id = {notification.pk}",
            "UPDATE notifications SET kind = 'GRADE'",
            "UPDATE notifications SET tenant_id = tenant_id",
            f"UPDATE notification_readers SET user_id = {classmate.pk}",
        ):
            with pytest.raises(Exception, match="permission denied"), transaction.atomic():
                connection.cursor().execute(statement)
