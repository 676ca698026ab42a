"""The event store's optimistic concurrency, enforced by PostgreSQL."""

import pytest
from django.db import IntegrityError, connection, transaction

from audit.models import EventStore

pytestmark = pytest.mark.django_db


def insert_event(tenant, aggregate_type, aggregate_id, version, event_type="ProjectUpdated"):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO event_store (tenant_id, aggregate_type, aggregate_id, version, event_type,
                                     payload, metadata, occurred_at)
            VALUES (%s, %s, %s, %s, %s, '{}'::jsonb, '{}'::jsonb, now())
            RETURNING position
            """,
            [tenant.pk, aggregate_type, aggregate_id, version, event_type],
        )
        return cursor.fetchone()[0]


def test_two_writers_of_the_same_aggregate_version_cannot_both_commit(tenant):
    insert_event(tenant, "project", "42", 1, event_type="ProjectCreated")

    with pytest.raises(IntegrityError, match="uniq_event_store_aggregate_version"), transaction.atomic():
        insert_event(tenant, "project", "42", 1, event_type="ProjectPublished")

    assert EventStore.objects.filter(aggregate_type="project", aggregate_id="42").count() == 1


def test_next_versions_and_other_aggregates_are_accepted(tenant, other_tenant):
    first = insert_event(tenant, "project", "42", 1, event_type="ProjectCreated")
    second = insert_event(tenant, "project", "42", 2)
    insert_event(tenant, "project", "43", 1, event_type="ProjectCreated")
    insert_event(tenant, "submission", "42", 1, event_type="SubmissionCreated")
    insert_event(other_tenant, "badge", "42", 1, event_type="BadgeCreated")

    assert second > first
    assert EventStore.objects.count() == 5
    assert list(
        EventStore.objects.filter(aggregate_type="project", aggregate_id="42").values_list("version", flat=True)
    ) == [1, 2]
