from django.core.management import call_command

from challenges.models import Project
from scoring.models import Badge, Leaderboard, Submission
from tenants.models import Tenant, User


def table_counts():
    return {model.__name__: model.objects.count() for model in (Tenant, User, Project, Badge, Submission, Leaderboard)}


def test_it_creates_the_operators_plan_demo_data(db):
    call_command("seed")

    tenant = Tenant.objects.get(domain="localhost")
    assert tenant.name == "Default Tenant"
    assert tenant.settings == {"theme": "default"}
    admin = User.objects.get(tenant=tenant, email="admin@vulhub.com")
    assert admin.role == User.Role.ADMIN
    assert admin.check_password("vulhub-admin")
    assert User.objects.for_tenant(tenant).filter(role=User.Role.INSTRUCTOR).exists()
    assert User.objects.for_tenant(tenant).students().count() >= 3
    sql = Project.objects.get(tenant=tenant, name="SQL Injection Challenge")
    assert (sql.category, sql.difficulty, sql.points) == ("Web Security", "BEGINNER", 100)
    assert sql.check_flag("FLAG{union_select_all_the_things}")
    projects = Project.objects.for_tenant(tenant)
    assert projects.values("category").distinct().count() >= 4
    assert projects.values("difficulty").distinct().count() == 4
    assert projects.exclude(flag_hash="").exists()
    assert projects.filter(flag_hash="").exists()
    # a little activity: a leaderboard, badges and write-ups waiting for grading
    assert Leaderboard.objects.for_tenant(tenant).count() >= 2
    assert Submission.objects.for_tenant(tenant).pending().exists()


def test_running_it_twice_changes_nothing(db, capsys):
    call_command("seed")
    before = table_counts()
    admin = User.objects.get(email="admin@vulhub.com")
    admin.set_password("changed-since")
    admin.save()

    call_command("seed")

    assert table_counts() == before
    assert "nothing to do" in capsys.readouterr().out
    admin.refresh_from_db()
    assert admin.check_password("changed-since")


def test_seeding_records_its_audit_rows_and_events_in_one_write(db):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.models import AuditLog, EventStore

    with CaptureQueriesContext(connection) as queries:
        call_command("seed")

    assert len([q for q in queries.captured_queries if "audit_record(" in q["sql"]]) == 1
    assert AuditLog.objects.filter(action="create", object_type="tenants.user").count() == 10
    assert EventStore.objects.filter(event_type="UserRegistered").count() == 10
