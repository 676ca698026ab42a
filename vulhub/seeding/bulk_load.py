"""Load generated tenants with COPY: rows, their audit rows and events, then the leaderboards.

Each tenant loads in one transaction, so a run cut short leaves whole tenants only,
and a second run skips the tenants that are there. Primary keys are drawn from the
tables' own sequences first (the audit rows and events name them), then every table
is filled by one COPY. The database still checks everything as usual: constraints,
the composite same-tenant foreign keys, and the triggers that link audit rows into
the tenant's hash chain and number the events.
"""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import JSONField

from audit.api import AuditLog, EventStore
from challenges.models import Project
from scoring import leaderboard, team_board
from scoring.models import Badge, Submission, Team, TeamMembership, UserBadge
from tenants.models import Tenant, User

from .generated import AUDIT_COLUMNS, EVENT_COLUMNS, SUBMISSION_COLUMNS, USER_BADGE_COLUMNS, GeneratedTenant, Ids

COPY_BATCH = 20_000


@dataclass
class LoadReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, table: str, n: int, seconds: float = 0.0) -> None:
        with self._lock:
            self.rows[table] = self.rows.get(table, 0) + n
            self.seconds[table] = self.seconds.get(table, 0.0) + seconds


def reserve_ids(table: str, n: int) -> list[int]:
    """n fresh primary keys of `table` from its own sequence: no one else will get them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, n])
        return [row[0] for row in cursor.fetchall()]


def ids() -> Ids:
    return Ids(reserve_ids)


def _model_rows(objs: list) -> tuple[list[str], list[tuple]]:
    fields = objs[0]._meta.concrete_fields
    columns = [f.column for f in fields]
    json_fields = {f.attname for f in fields if isinstance(f, JSONField)}
    rows = [
        tuple(json.dumps(getattr(o, f.attname)) if f.attname in json_fields else getattr(o, f.attname) for f in fields)
        for o in objs
    ]
    return columns, rows


def copy_rows(table: str, columns, rows: list[tuple], progress: Callable[[int], None] | None = None) -> int:
    if not rows:
        return 0
    statement = f"COPY {connection.ops.quote_name(table)} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for start in range(0, len(rows), COPY_BATCH):
            for row in rows[start : start + COPY_BATCH]:
                copy.write_row(row)
            if progress:
                progress(len(rows[start : start + COPY_BATCH]))
    return len(rows)


def copy_plan(data: GeneratedTenant) -> list[tuple[str, list[str] | tuple, list[tuple]]]:
    """(table, columns, rows) of a generated tenant, in the order the foreign keys need."""
    tables = [
        (Tenant, [data.tenant]),
        (User, data.users),
        (Project, data.projects),
        (Badge, data.badges),
        (Team, data.teams),
        (TeamMembership, data.memberships),
    ]
    plan = [(model._meta.db_table, *_model_rows(objs)) for model, objs in tables if objs]
    plan += [
        (Submission._meta.db_table, SUBMISSION_COLUMNS, data.submissions),
        (UserBadge._meta.db_table, USER_BADGE_COLUMNS, data.user_badges),
        (AuditLog._meta.db_table, AUDIT_COLUMNS, data.audits),
        (EventStore._meta.db_table, EVENT_COLUMNS, data.events),
    ]
    return plan


def load_tenant(data: GeneratedTenant, report: LoadReport, progress: Callable[[int], None] | None = None) -> None:
    """Write one generated tenant and everything in it, then its leaderboards, in one transaction."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            # the generated history is recorded as the recorder would (audit migration 0009)
            cursor.execute("SELECT set_config('vulhub.recording', 'on', true)")
        for table, columns, rows in copy_plan(data):
            started = time.perf_counter()
            report.add(table, copy_rows(table, columns, rows, progress), time.perf_counter() - started)
        started = time.perf_counter()
        rows, _, _ = leaderboard.rebuild(data.tenant.pk)
        report.add("leaderboards", rows, time.perf_counter() - started)
        if data.teams:
            started = time.perf_counter()
            rows, _, _ = team_board.rebuild(data.tenant.pk)
            report.add("team_leaderboards", rows, time.perf_counter() - started)


def row_count(data: GeneratedTenant) -> int:
    return (
        1
        + len(data.users)
        + len(data.projects)
        + len(data.badges)
        + len(data.teams)
        + len(data.memberships)
        + len(data.submissions)
        + len(data.user_badges)
        + len(data.audits)
        + len(data.events)
    )
