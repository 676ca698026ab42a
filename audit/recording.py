"""Writing audit rows and domain events, one at a time or in bulk.

Everything here runs inside the caller's transaction, so a change and its records
commit or roll back together. Inside `in_bulk()` rows are buffered and written with
one INSERT per table when the block ends, which is how admin actions, imports and
seeding record hundreds of changes in a handful of queries.
"""

import contextlib
import datetime
import decimal
import uuid
from contextvars import ContextVar

from django.db import IntegrityError, transaction
from django.db.models import Max

from . import context
from .models import AuditLog, EventStore

MAX_VERSION_RETRIES = 5

_buffer: ContextVar[list | None] = ContextVar("vulhub_audit_buffer", default=None)


def json_value(value):
    """A JSON-safe copy of a model field value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return value
    return str(value)


def audit_row(
    *, action: str, object_type: str = "", object_id="", object_text: str = "", changes=None, tenant_id=None, actor=None
) -> AuditLog:
    """An unsaved AuditLog stamped with the current context (actor, IP, request id)."""
    ctx = context.current()
    actor_id, actor_text = ctx.actor_id, ctx.actor_text
    if actor is not None:
        actor_id, actor_text = actor.pk, actor.email
    return AuditLog(
        tenant_id=tenant_id if tenant_id is not None else ctx.tenant_id,
        actor_id=actor_id,
        actor_text=actor_text or "",
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        object_text=(object_text or "")[:255],
        changes=changes or {},
        ip=ctx.ip,
        user_agent=ctx.user_agent,
        request_id=ctx.request_id,
    )


def write_audit(row: AuditLog) -> None:
    buffer = _buffer.get()
    if buffer is not None:
        buffer.append(row)
    else:
        row.save(force_insert=True)


def event_metadata(actor=None) -> dict:
    ctx = context.current()
    if actor is not None:
        actor_id, actor_text = actor.pk, actor.email
    else:
        actor_id, actor_text = ctx.actor_id, ctx.actor_text
    return {"actor_id": actor_id, "actor": actor_text or None, "request_id": ctx.request_id or None}


def event_row(
    *, event_type: str, aggregate_type: str, aggregate_id, payload: dict, tenant_id=None, actor=None
) -> EventStore:
    return EventStore(
        tenant_id=tenant_id,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        event_type=event_type,
        payload=payload,
        metadata=event_metadata(actor),
    )


def append_event(event: EventStore) -> EventStore:
    """Append one event as the next version of its aggregate.

    The version is read and written in one statement; if a concurrent writer took
    the same version first, the unique constraint fails that statement alone (a
    savepoint) and it is retried with the next version.
    """
    buffer = _buffer.get()
    if buffer is not None:
        buffer.append(event)
        return event
    for attempt in range(MAX_VERSION_RETRIES):
        latest = (
            EventStore.objects.filter(aggregate_type=event.aggregate_type, aggregate_id=event.aggregate_id).aggregate(
                v=Max("version")
            )["v"]
            or 0
        )
        event.version = latest + 1
        try:
            with transaction.atomic():
                event.save(force_insert=True)
            return event
        except IntegrityError as exc:
            if "uniq_event_store_aggregate_version" not in str(exc) or attempt == MAX_VERSION_RETRIES - 1:
                raise
            event.position = None
    raise AssertionError("unreachable")


def _flush(rows: list) -> None:
    audits = [row for row in rows if isinstance(row, AuditLog)]
    events = [row for row in rows if isinstance(row, EventStore)]
    if audits:
        AuditLog.objects.bulk_create(audits, batch_size=1000)
    if events:
        _bulk_append_events(events)


def _bulk_append_events(events: list[EventStore]) -> None:
    keys = {(e.aggregate_type, e.aggregate_id) for e in events}
    latest: dict[tuple[str, str], int] = {}
    for aggregate_type in {t for t, _ in keys}:
        ids = [i for t, i in keys if t == aggregate_type]
        rows = (
            EventStore.objects.filter(aggregate_type=aggregate_type, aggregate_id__in=ids)
            .values_list("aggregate_id")
            .annotate(v=Max("version"))
        )
        latest.update({(aggregate_type, aggregate_id): v for aggregate_id, v in rows})
    for event in events:
        key = (event.aggregate_type, event.aggregate_id)
        latest[key] = latest.get(key, 0) + 1
        event.version = latest[key]
    # A concurrent writer of the same aggregate makes this fail as a whole: the
    # caller's transaction rolls back rather than record events out of order.
    EventStore.objects.bulk_create(events, batch_size=1000)


@contextlib.contextmanager
def in_bulk():
    """Buffer the audit rows and events recorded inside; write them in bulk at the end.

    Opens a transaction (or a savepoint) around the block, so the changes and their
    records still commit together. Nested blocks share the outermost buffer.
    """
    if _buffer.get() is not None:
        yield
        return
    rows: list = []
    token = _buffer.set(rows)
    try:
        with transaction.atomic():
            yield
            _buffer.set(None)
            _flush(rows)
    finally:
        _buffer.reset(token)
