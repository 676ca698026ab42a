"""The audit app's public API: all that the other apps and the sub-apps use of it.

A contract in pyproject.toml (import-linter) holds them to this module. It covers:

- recording a change: `recorded` (a service in one transaction with its records),
  `in_bulk`, `record` (one audit row in the current transaction) and
  `record_refusal` (an audit row of its own, for an action that was refused);
- bulk writes with their audit rows: `bulk_create_recorded`, `update_recorded`,
  `delete_recorded`;
- who acts: `acting_as`, `current_context`, `new_request_id`;
- what an app records, declared in its AppConfig.ready(): `audit_models` with
  `Audited`, `record_events` with `DomainEvent`;
- formats the bulk seed writes directly: `created_changes`, `diff`, `current_values`, `json_value`;
- reading: `events` (the event store, in order), `verify_chains` and friends.
"""

from collections.abc import Iterator

from django.db import transaction

from .bulk import bulk_create_recorded, delete_recorded, update_recorded
from .context import acting_as, new_request_id
from .context import current as current_context
from .models import AuditLog, EventStore
from .receivers import Audited, DomainEvent, audit_models, current_values, diff, record_events
from .recording import audit_row, in_bulk, json_value, recorded, write_audit
from .verify import chain_keys, chain_sizes, verify_chains

__all__ = [
    "AuditLog",
    "Audited",
    "DomainEvent",
    "EventStore",
    "acting_as",
    "audit_models",
    "bulk_create_recorded",
    "chain_keys",
    "chain_sizes",
    "created_changes",
    "current_context",
    "current_values",
    "delete_recorded",
    "diff",
    "events",
    "in_bulk",
    "json_value",
    "new_request_id",
    "record",
    "record_events",
    "record_refusal",
    "recorded",
    "update_recorded",
    "verify_chains",
]


def record(
    *, action: str, object_type: str = "", object_id="", object_text: str = "", changes=None, tenant_id=None, actor=None
) -> None:
    """One audit row in the current transaction, stamped with the current context (actor, IP, request id).

    `actor` (a user) overrides the context's; `tenant_id` defaults to the context's.
    """
    write_audit(
        audit_row(
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_text=object_text,
            changes=changes,
            tenant_id=tenant_id,
            actor=actor,
        )
    )


def record_refusal(**row) -> None:
    """Record an action that was refused, in a transaction of its own: the record stays though the action did not.

    Call it after the refused service has rolled back, then raise the refusal. The
    arguments are those of `record`.
    """
    with transaction.atomic():
        record(**row)


def created_changes(instance) -> dict:
    """The `changes` an audit "create" row records for a new instance (secrets redacted)."""
    return diff(instance, None, current_values(instance))


def events(tenant_id: int, event_types: list[str], *, chunk_size: int = 5000) -> Iterator[EventStore]:
    """A tenant's events of these types, in the order they were appended."""
    return (
        EventStore.objects.for_tenant(tenant_id)
        .filter(event_type__in=event_types)
        .order_by("position")
        .iterator(chunk_size=chunk_size)
    )
