"""Domain events: one row per event, versioned per aggregate, enough to rebuild scores."""

import pytest

from audit.context import acting_as
from audit.models import EventStore
from challenges.factories import ProjectFactory
from challenges.services import project_publish, project_unpublish
from scoring import signals
from scoring.factories import BadgeFactory, SubmissionFactory, UserBadgeFactory
from scoring.models import Submission
from tenants.services import user_register


def events(event_type=None):
    rows = EventStore.objects.order_by("position")
    return rows.filter(event_type=event_type) if event_type else rows


def test_registering_a_user_appends_user_registered(tenant, tenant_admin):
    with acting_as(tenant_admin, request_id="import-7"):
        user = user_register(
            tenant=tenant, email="new@alpha.test", password="pw-123456789", first_name="Nia", last_name="Lee"
        )

    event = events("UserRegistered").get()
    assert (event.aggregate_type, event.aggregate_id, event.version) == ("User", str(user.pk), 1)
    assert event.tenant_id == tenant.pk
    assert event.payload["email"] == "new@alpha.test"
    assert event.payload["role"] == "STUDENT"
    assert "password" not in event.payload
    assert event.metadata == {"actor_id": tenant_admin.pk, "actor": tenant_admin.email, "request_id": "import-7"}


def test_publishing_and_unpublishing_a_challenge_are_versioned_events(tenant, instructor):
    project = ProjectFactory(tenant=tenant, is_published=False, points=250, category="Forensics")

    project_publish(project=project, actor=instructor)
    project_publish(project=project, actor=instructor)  # already published: nothing new
    project_unpublish(project=project, actor=instructor)
    project_publish(project=project, actor=instructor)

    rows = list(events().filter(aggregate_type="Project", aggregate_id=str(project.pk)))
    assert [(e.event_type, e.version) for e in rows] == [
        ("ProjectPublished", 1),
        ("ProjectUnpublished", 2),
        ("ProjectPublished", 3),
    ]
    assert rows[0].payload | {"points": 250, "category": "Forensics", "is_published": True} == rows[0].payload
    assert rows[0].metadata["actor_id"] == instructor.pk


def test_a_submission_and_its_gradings_are_one_aggregate(tenant, instructor):
    submission = SubmissionFactory(tenant=tenant, project__points=200, project__category="Web Security")
    signals.submission_created.send(sender=Submission, submission=submission, actor=submission.user)

    previous = {"status": "PENDING", "score": None, "points_awarded": 0}
    submission.status, submission.score, submission.points_awarded = "APPROVED", 80, 160
    submission.graded_by = instructor
    submission.save()
    signals.submission_graded.send(sender=Submission, submission=submission, previous=previous, actor=instructor)

    previous = {"status": "APPROVED", "score": 80, "points_awarded": 160}
    submission.score, submission.points_awarded = 50, 100
    submission.save()
    signals.submission_graded.send(sender=Submission, submission=submission, previous=previous, actor=instructor)

    created, graded, regraded = events().filter(aggregate_type="Submission", aggregate_id=str(submission.pk))
    assert (created.event_type, created.version, created.payload["status"]) == ("SubmissionCreated", 1, "PENDING")
    assert (graded.event_type, graded.version, graded.payload["regrade"]) == ("SubmissionGraded", 2, False)
    assert (regraded.version, regraded.payload["regrade"]) == (3, True)
    assert regraded.payload["previous_points_awarded"] == 160
    assert regraded.payload["points_awarded"] == 100
    # enough to rebuild standings and category/difficulty badges without reading other tables
    for key in ("user_id", "project_id", "project_points", "category", "difficulty", "score", "status"):
        assert key in regraded.payload


def test_badge_awards_and_revocations_are_events_of_the_student(tenant, instructor, student):
    badge = BadgeFactory(tenant=tenant, slug="helpful")
    award = UserBadgeFactory(tenant=tenant, user=student, badge=badge, awarded_by=instructor)

    signals.badge_awarded.send(sender=type(award), user_badge=award, actor=instructor)
    signals.badge_revoked.send(sender=type(award), user_badge=award, actor=instructor, reason="regraded")

    awarded, revoked = events().filter(aggregate_type="User", aggregate_id=str(student.pk))
    assert (awarded.event_type, awarded.version) == ("BadgeAwarded", 1)
    assert awarded.payload["badge_slug"] == "helpful"
    assert awarded.payload["automatic"] is False
    assert (revoked.event_type, revoked.version, revoked.payload["reason"]) == ("BadgeRevoked", 2, "regraded")


def test_positions_grow_with_each_append(tenant):
    for n in range(3):
        user_register(tenant=tenant, email=f"p{n}@alpha.test", password="pw-123456789")

    positions = list(events().values_list("position", flat=True))
    assert positions == sorted(positions)
    assert len(set(positions)) == 3


@pytest.mark.parametrize("count", [1, 3])
def test_appending_in_bulk_numbers_versions_per_aggregate(tenant, count):
    from audit.recording import append_event, event_row, in_bulk

    with in_bulk():
        for _ in range(count):
            append_event(event_row(event_type="Ping", aggregate_type="Probe", aggregate_id="a", payload={}))
            append_event(event_row(event_type="Ping", aggregate_type="Probe", aggregate_id="b", payload={}))
    append_event(event_row(event_type="Ping", aggregate_type="Probe", aggregate_id="a", payload={}))

    assert list(events().filter(aggregate_id="a").values_list("version", flat=True)) == list(range(1, count + 2))
    assert list(events().filter(aggregate_id="b").values_list("version", flat=True)) == list(range(1, count + 1))


def test_a_reader_tails_events_after_the_last_position_it_saw(tenant):
    user_register(tenant=tenant, email="a@alpha.test", password="pw-123456789")
    seen = EventStore.objects.after(0).last().position
    user_register(tenant=tenant, email="b@alpha.test", password="pw-123456789")
    user_register(tenant=tenant, email="c@alpha.test", password="pw-123456789")

    fresh = list(EventStore.objects.after(seen))

    assert [e.payload["email"] for e in fresh] == ["b@alpha.test", "c@alpha.test"]
