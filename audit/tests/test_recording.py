"""Row changes and logins land in audit_logs, with who, where and when, secrets redacted."""

import datetime

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.context import acting_as
from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from challenges.models import Project
from scoring.factories import BadgeFactory, SubmissionFactory, UserBadgeFactory
from scoring.models import Submission
from tenants.factories import TenantFactory
from tenants.services import user_register


def rows_for(instance):
    return AuditLog.objects.filter(object_type=instance._meta.label_lower, object_id=str(instance.pk)).order_by("id")


def test_it_records_a_create_with_the_new_values(tenant, instructor):
    with acting_as(instructor):
        project = ProjectFactory(tenant=tenant, name="Heap Spray", points=300)

    row = rows_for(project).get()
    assert row.action == "create"
    assert row.tenant_id == tenant.pk
    assert row.actor_id == instructor.pk
    assert row.actor_text == instructor.email
    assert row.changes["name"] == [None, "Heap Spray"]
    assert row.changes["points"] == [None, 300]
    assert row.object_text == "Heap Spray"


def test_it_records_only_the_fields_that_changed_as_old_and_new(project, instructor):
    project.name = "Blind SQL Injection"
    project.points = 150

    with acting_as(instructor):
        project.save()

    row = rows_for(project).last()
    assert row.action == "update"
    assert row.changes == {"name": ["SQL Injection Challenge", "Blind SQL Injection"], "points": [100, 150]}


def test_a_save_without_changes_records_nothing(project):
    before = AuditLog.objects.count()

    Project.objects.get(pk=project.pk).save()

    assert AuditLog.objects.count() == before


def test_old_values_come_from_the_loaded_instance_not_an_extra_query(project):
    loaded = Project.objects.get(pk=project.pk)
    loaded.points = 250

    with CaptureQueriesContext(connection) as queries:
        loaded.save()

    statements = [q["sql"] for q in queries.captured_queries]
    assert statements[0].startswith('UPDATE "projects"')
    assert statements[1].startswith("SELECT * FROM audit_record(")  # the row, then its audit row
    assert not any(s.startswith('SELECT "projects"') for s in statements)  # no SELECT of the old values
    assert rows_for(project).last().changes == {"points": [100, 250]}


def test_consecutive_saves_diff_against_the_last_save(project):
    project.points = 110
    project.save()
    project.points = 120
    project.save()

    assert [r.changes for r in rows_for(project).filter(action="update")] == [
        {"points": [100, 110]},
        {"points": [110, 120]},
    ]


def test_a_json_field_changed_in_place_is_seen(tenant):
    loaded = type(tenant).objects.get(pk=tenant.pk)
    loaded.settings["theme"] = "dark"

    loaded.save()

    assert rows_for(tenant).last().changes == {"settings": [{"theme": "default"}, {"theme": "dark"}]}


def test_it_records_a_delete_with_the_old_values(tenant):
    badge = BadgeFactory(tenant=tenant, name="Night Owl")
    badge_id = badge.pk

    badge.delete()

    row = AuditLog.objects.filter(object_type="scoring.badge", object_id=str(badge_id), action="delete").get()
    assert row.changes["name"] == ["Night Owl", None]
    assert row.tenant_id == tenant.pk


@pytest.mark.parametrize("model", ["tenant", "user", "project", "submission", "badge", "user badge"])
def test_every_domain_model_is_audited(model, tenant):
    make = {
        "tenant": lambda: TenantFactory(),
        "user": lambda: user_register(tenant=tenant, email="new@alpha.test", password="pw-123456789"),
        "project": lambda: ProjectFactory(tenant=tenant),
        "submission": lambda: SubmissionFactory(tenant=tenant),
        "badge": lambda: BadgeFactory(tenant=tenant),
        "user badge": lambda: UserBadgeFactory(tenant=tenant),
    }[model]

    instance = make()

    assert rows_for(instance).filter(action="create").exists()


def test_leaderboard_rows_are_derived_and_not_audited(tenant, student):
    from scoring.factories import LeaderboardFactory

    row = LeaderboardFactory(tenant=tenant, user=student)

    assert not rows_for(row).exists()


def test_passwords_are_redacted(tenant):
    user = user_register(tenant=tenant, email="pat@alpha.test", password="hunter2-secret")
    user.set_password("another-secret-9")
    user.save()

    creates, updates = rows_for(user).filter(action="create").get(), rows_for(user).filter(action="update").get()
    assert creates.changes["password"] == [None, "[redacted]"]
    assert updates.changes["password"] == ["[redacted]", "[redacted]"]
    stored = AuditLog.objects.filter(pk__in=[creates.pk, updates.pk]).values_list("changes", flat=True)
    assert not any("pbkdf2" in str(c) or "secret" in str(c) for c in stored)


def test_flags_are_redacted(tenant):
    project = ProjectFactory(tenant=tenant, flag="FLAG{top_secret}")
    project.set_flag("FLAG{even_more_secret}")
    project.save()

    for row in rows_for(project):
        assert "flag_hash" in row.changes
        assert "sha256$" not in str(row.changes)
        assert set(row.changes["flag_hash"]) <= {None, "[redacted]"}


def test_a_flag_typed_by_a_student_is_redacted_but_a_write_up_is_not(tenant):
    flag = SubmissionFactory(tenant=tenant, kind=Submission.Kind.FLAG, answer="FLAG{guess}")
    writeup = SubmissionFactory(tenant=tenant, kind=Submission.Kind.WRITEUP, answer="I used sqlmap")

    assert rows_for(flag).get().changes["answer"] == [None, "[redacted]"]
    assert rows_for(writeup).get().changes["answer"] == [None, "I used sqlmap"]


def test_rows_carry_the_bound_context(instructor, project):
    # Requests bind this context in audit.middleware (see the login tests below).
    with acting_as(instructor, request_id="req-xyz", ip="198.51.100.7", user_agent="curl/8"):
        project.points = 175
        project.save()

    row = rows_for(project).last()
    assert (row.actor_id, row.ip, row.user_agent, row.request_id) == (
        instructor.pk,
        "198.51.100.7",
        "curl/8",
        "req-xyz",
    )
    assert row.created_at.utcoffset() == datetime.timedelta(0)
    assert abs(row.created_at - timezone.now()) < datetime.timedelta(minutes=1)


def test_work_outside_any_request_is_the_systems(project):
    project.points = 90
    project.save()

    row = rows_for(project).last()
    assert row.actor_id is None
    assert row.actor_text == ""


# --- request id -------------------------------------------------------------------


def test_an_incoming_request_id_is_kept_and_returned(tenant):
    response = Client(HTTP_HOST=tenant.domain).get("/admin/login/", HTTP_X_REQUEST_ID="edge-42.a")

    assert response["X-Request-ID"] == "edge-42.a"


@pytest.mark.parametrize("incoming", [None, "", "has spaces", "x" * 65, "<script>"])
def test_a_missing_or_unusable_request_id_is_replaced_by_a_fresh_one(tenant, incoming):
    headers = {} if incoming is None else {"HTTP_X_REQUEST_ID": incoming}

    response = Client(HTTP_HOST=tenant.domain).get("/admin/login/", **headers)

    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


def test_two_requests_get_different_ids(tenant):
    client = Client(HTTP_HOST=tenant.domain)

    assert client.get("/admin/login/")["X-Request-ID"] != client.get("/admin/login/")["X-Request-ID"]


# --- logins -------------------------------------------------------------------------


def login(tenant, email, password, **headers):
    client = Client(HTTP_HOST=tenant.domain)
    response = client.post(
        "/admin/login/",
        {"username": email, "password": password},
        HTTP_USER_AGENT="Mozilla/5.0 test",
        HTTP_X_REQUEST_ID="login-req-1",
        REMOTE_ADDR="192.0.2.44",
    )
    return client, response


def test_a_login_is_recorded_with_its_context(tenant, instructor, password):
    login(tenant, instructor.email, password)

    row = AuditLog.objects.get(action="login")
    assert (row.actor_id, row.actor_text, row.tenant_id) == (instructor.pk, instructor.email, tenant.pk)
    assert (row.ip, row.user_agent, row.request_id) == ("192.0.2.44", "Mozilla/5.0 test", "login-req-1")


def test_the_login_does_not_record_last_login_as_a_change(tenant, instructor, password):
    login(tenant, instructor.email, password)

    assert not AuditLog.objects.filter(action="update", object_type="tenants.user").exists()


def test_a_logout_is_recorded(tenant, instructor, password):
    client, _ = login(tenant, instructor.email, password)

    client.post("/admin/logout/")

    row = AuditLog.objects.get(action="logout")
    assert row.actor_id == instructor.pk


def test_a_failed_login_records_the_attempted_email_never_the_password(tenant, instructor):
    login(tenant, "Instructor@Alpha.test", "my-wrong-password")

    row = AuditLog.objects.get(action="login_failed")
    assert row.object_text == "Instructor@Alpha.test"
    assert row.tenant_id == tenant.pk
    assert row.ip == "192.0.2.44"
    assert "my-wrong-password" not in str(
        AuditLog.objects.filter(pk=row.pk).values("changes", "object_text", "user_agent").get()
    )


# --- one transaction ----------------------------------------------------------------


class Boom(Exception):
    pass


def test_a_failing_service_leaves_neither_the_change_nor_its_records(tenant, monkeypatch):
    from tenants import services

    def explode(**kwargs):
        raise Boom

    monkeypatch.setattr(services.user_registered, "send", explode)
    audits, events = AuditLog.objects.count(), EventStore.objects.count()

    with pytest.raises(Boom):
        user_register(tenant=tenant, email="ghost@alpha.test", password="pw-123456789")

    assert not tenant.users.filter(email="ghost@alpha.test").exists()
    assert AuditLog.objects.count() == audits
    assert EventStore.objects.count() == events


def test_records_roll_back_with_the_transaction_that_made_them(project):
    audits = AuditLog.objects.count()

    with pytest.raises(Boom), transaction.atomic():
        project.points = 999
        project.save()
        assert AuditLog.objects.count() == audits + 1
        raise Boom

    assert AuditLog.objects.count() == audits
    project.refresh_from_db()
    assert project.points == 100
