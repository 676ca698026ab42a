"""Writing audit rows and domain events, one at a time or in bulk.

Everything here runs inside the caller's transaction, so a change and its records
commit or roll back together. Inside `in_bulk()` rows are buffered and written with
one INSERT per table when the block ends, which is how admin actions, imports and
seeding record hundreds of changes in a handful of queries.
"""

import contextlib
import datetime
import decimal
import functools
import json
import uuid
from contextvars import ContextVar

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction

from vulhub.lib import metrics

from . import context
from .models import AuditLog, EventStore

MAX_VERSION_RETRIES = 5  # attempts at an event's version (audit_record, migration audit 0008)
FLUSH_BATCH = 1000

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
        _record([row], [])


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

    The version is read and written by one statement. If a concurrent writer took
    that version first, the unique index turns the insert into nothing (ON CONFLICT
    DO NOTHING, so the transaction is not aborted) and audit_record() tries the next,
    up to MAX_VERSION_RETRIES times; then it raises a serialization failure (an
    OperationalError: the request is answered 503, to be tried again).
    """
    buffer = _buffer.get()
    if buffer is not None:
        buffer.append(event)
        return event
    appended = _record([], [event])
    event.position, event.version = appended[0][0], appended[0][3]
    return event


def _audit_json(row: AuditLog) -> dict:
    return {
        "tenant_id": row.tenant_id,
        "actor_id": row.actor_id,
        "actor_text": row.actor_text,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "object_text": row.object_text,
        "changes": row.changes,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "created_at": row.created_at,
    }


def _event_json(event: EventStore) -> dict:
    return {
        "tenant_id": event.tenant_id,
        "aggregate_type": event.aggregate_type,
        "aggregate_id": event.aggregate_id,
        "event_type": event.event_type,
        "payload": event.payload,
        "metadata": event.metadata,
        "occurred_at": event.occurred_at,
    }


def _record(audits: list[AuditLog], events: list[EventStore], *, answer: bool = True) -> list[tuple]:
    """Insert through the database function audit_record(); returns the appended events.

    With `answer=False` the call is only sent: inside a pipeline its result (and any
    error) arrives with the next statement that waits.
    """
    with connection.cursor() as cursor, _counting_failures():
        cursor.execute(
            "SELECT * FROM audit_record(%s::jsonb, %s::jsonb)",
            [
                json.dumps([_audit_json(r) for r in audits], cls=DjangoJSONEncoder) if audits else None,
                json.dumps([_event_json(e) for e in events], cls=DjangoJSONEncoder) if events else None,
            ],
        )
        return cursor.fetchall() if answer else []


def _flush(rows: list) -> None:
    """Send buffered audit rows and events, one call of audit_record() per batch, not waiting for the answers."""
    audits = [row for row in rows if isinstance(row, AuditLog)]
    events = [row for row in rows if isinstance(row, EventStore)]
    for start in range(0, max(len(audits), len(events)), FLUSH_BATCH):
        _record(audits[start : start + FLUSH_BATCH], events[start : start + FLUSH_BATCH], answer=False)


@contextlib.contextmanager
def _counting_failures():
    """Count a failed audit_record() call (the change it records rolls back with it)."""
    try:
        yield
    except DatabaseError as exc:
        _count_failure(exc)
        raise


def _count_failure(exc: DatabaseError) -> None:
    if not getattr(exc, "vulhub_counted", False):
        exc.vulhub_counted = True  # raised through both places that count: counted once
        metrics.count(metrics.AUDIT_RECORD_FAILURES)


@contextlib.contextmanager
def _with_the_end_of_the_block():
    """Statements sent inside go with the block's RELEASE SAVEPOINT or COMMIT, in one round trip.

    psycopg's pipeline mode: nothing inside waits for an answer, so the records cost
    no round trip of their own. An error in them is raised by the COMMIT (Django then
    rolls back), or else when the pipeline ends: the surrounding transaction is then
    marked for rollback, as any database error inside an atomic block would leave it.
    """
    raw = connection.connection
    if raw is None or not psycopg.Pipeline.is_supported():  # a libpq older than 14
        yield
        return
    try:
        with connection.wrap_database_errors, raw.pipeline():
            yield
    except DatabaseError as exc:
        _count_failure(exc)
        if connection.in_atomic_block:
            connection.needs_rollback = True
        raise


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
        with contextlib.ExitStack() as pipelined, transaction.atomic():
            yield
            _buffer.set(None)
            if rows:
                pipelined.enter_context(_with_the_end_of_the_block())
                _flush(rows)
    finally:
        _buffer.reset(token)


def recorded(service):
    """Run a service in one transaction, its audit rows and events written together at the end.

    One statement records everything the service did, instead of one per row and
    event: the same records, in the same transaction, for fewer round trips.
    """

    @functools.wraps(service)
    def run(*args, **kwargs):
        with in_bulk():
            return service(*args, **kwargs)

    return run
