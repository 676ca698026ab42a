"""What a deletion takes with it, and what it must leave behind.

A tenant owns its users, challenges, submissions, badges and standings: deleting
it deletes them, and nothing of another tenant. The audit trail and the event
store are history: they outlive what they describe, ids and all.
"""

import pytest
from django.db import connection

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from challenges.models import Project
from scoring.factories import BadgeFactory, LeaderboardFactory, SubmissionFactory, UserBadgeFactory
from scoring.models import Badge, Leaderboard, Submission, UserBadge
from tenants.factories import InstructorFactory
from tenants.models import Tenant, User

pytestmark = pytest.mark.django_db

TENANT_OWNED = [User, Project, Submission, Badge, UserBadge, Leaderboard]


def populate(tenant, student, instructor, project):
    """A graded submission, a pending one, an awarded badge and a leaderboard row."""
    second = ProjectFactory(tenant=tenant)
    SubmissionFactory(tenant=tenant, user=student, project=project, approved=True, graded_by=instructor)
    SubmissionFactory(tenant=tenant, user=student, project=second)
    badge = BadgeFactory(tenant=tenant)
    UserBadgeFactory(tenant=tenant, user=student, badge=badge, awarded_by=instructor)
    LeaderboardFactory(tenant=tenant, user=student, points=100, solves=1)


def rows_of(tenant_id):
    """Primary keys of every tenant-owned row of `tenant_id`, by model."""
    return {
        model.__name__: set(model.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True))
        for model in TENANT_OWNED
    }


def check_deferred_constraints():
    """Foreign keys are checked at commit, which a test never reaches: check them now."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.fixture
def two_populated_tenants(tenant, student, instructor, project, other_tenant, other_student):
    populate(tenant, student, instructor, project)
    other_project = ProjectFactory(tenant=other_tenant, slug=project.slug)
    populate(other_tenant, other_student, InstructorFactory(tenant=other_tenant), other_project)
    return tenant, other_tenant


def test_deleting_a_tenant_deletes_everything_it_owns(two_populated_tenants):
    tenant, _ = two_populated_tenants
    tenant_id = tenant.pk
    assert all(rows_of(tenant_id).values()), "every tenant-owned model has rows before the deletion"

    tenant.delete()
    check_deferred_constraints()

    assert not Tenant.objects.filter(pk=tenant_id).exists()
    assert rows_of(tenant_id) == {model.__name__: set() for model in TENANT_OWNED}


def test_deleting_a_tenant_leaves_the_other_tenant_untouched(two_populated_tenants):
    tenant, other_tenant = two_populated_tenants
    before = rows_of(other_tenant.pk)
    assert all(before.values())

    tenant.delete()
    check_deferred_constraints()

    assert Tenant.objects.filter(pk=other_tenant.pk).exists()
    assert rows_of(other_tenant.pk) == before


def test_deleting_a_project_deletes_its_submissions_only(two_populated_tenants, project):
    tenant, other_tenant = two_populated_tenants
    project_id = project.pk
    project_submissions = set(project.submissions.values_list("pk", flat=True))
    assert project_submissions
    solvers = set(project.submissions.filter(status="APPROVED").values_list("user_id", flat=True))
    owners = {
        model: dict(model.objects.filter(tenant_id=tenant.pk).values_list("pk", "user_id"))
        for model in (Leaderboard, UserBadge)
    }
    before = rows_of(tenant.pk)
    other_before = rows_of(other_tenant.pk)

    project.delete()
    check_deferred_constraints()

    after = rows_of(tenant.pk)
    assert after["Project"] == before["Project"] - {project_id}
    assert after["Submission"] == before["Submission"] - project_submissions
    assert after["Submission"], "submissions to the other challenge stay"
    for name in ("User", "Badge"):
        assert after[name] == before[name]
    # its solvers lose its points (scoring.changes): only their rows and badges may go
    for model, name in ((Leaderboard, "Leaderboard"), (UserBadge, "UserBadge")):
        assert after[name] <= before[name]
        assert {owners[model][pk] for pk in before[name] - after[name]} <= solvers
    assert rows_of(other_tenant.pk) == other_before


# --- History outlives what it describes ----------------------------------------------------


@pytest.fixture
def history(tenant, student, project):
    """An audit log row and an event about `project`, by `student`, on `tenant`."""
    log = AuditLog.objects.create(
        tenant=tenant,
        actor=student,
        actor_text=student.email,
        action="submission.create",
        object_type="challenges.project",
        object_id=str(project.pk),
        object_text=project.name,
    )
    event = EventStore.objects.create(
        tenant=tenant,
        aggregate_type="project",
        aggregate_id=str(project.pk),
        version=1,
        event_type="SubmissionCreated",
        payload={"user_id": student.pk, "project_id": project.pk},
    )
    return log, event


def stored_log(log):
    return AuditLog.objects.filter(pk=log.pk).values("tenant_id", "actor_id", "actor_text", "object_id").get()


def stored_event(event):
    return EventStore.objects.filter(pk=event.pk).values("tenant_id", "aggregate_id", "payload").get()


def test_audit_log_and_events_survive_the_deletion_of_their_tenant(history, tenant, student, project):
    log, event = history
    tenant_id, student_id, project_id = tenant.pk, student.pk, project.pk

    tenant.delete()
    check_deferred_constraints()

    assert not User.objects.filter(pk=student_id).exists()
    assert not Project.objects.filter(pk=project_id).exists()
    assert stored_log(log) == {
        "tenant_id": tenant_id,
        "actor_id": student_id,
        "actor_text": "student@alpha.test",
        "object_id": str(project_id),
    }
    assert stored_event(event) == {
        "tenant_id": tenant_id,
        "aggregate_id": str(project_id),
        "payload": {"user_id": student_id, "project_id": project_id},
    }


def test_audit_log_keeps_the_id_and_email_of_a_deleted_actor(history, tenant, student):
    """The actor is a bare id (DO_NOTHING, no constraint): deleting a user does not rewrite the log."""
    log, event = history
    student_id = student.pk
    log_before, event_before = stored_log(log), stored_event(event)

    student.delete()
    check_deferred_constraints()

    assert not User.objects.filter(pk=student_id).exists()
    assert stored_log(log) == log_before
    assert stored_log(log)["actor_id"] == student_id
    assert stored_log(log)["actor_text"] == "student@alpha.test"
    assert stored_event(event) == event_before


def test_audit_log_and_events_survive_the_deletion_of_their_project(history, project):
    log, event = history
    log_before, event_before = stored_log(log), stored_event(event)

    project.delete()
    check_deferred_constraints()

    assert stored_log(log) == log_before
    assert stored_event(event) == event_before
