"""`rebuild_leaderboards` over every tenant, against the bare SQL that computes the same ranks.

The baseline runs scoring.leaderboard.STANDINGS for every tenant of the database and
fetches the rows: the least any rebuild from submissions has to do. Ours is the
command an operator runs. On a table that is already current it computes the same
standings, compares them with the table and writes nothing; that is the case timed
(the rows written are in extra). `--from-events` replays the event store instead of
reading submissions and is reported beside it. "Into an empty table" empties the
table and rebuilds it inside a transaction that is rolled back (report only).
"""

import io

from django.core.management import call_command
from django.db import connection, transaction

from bench.framework import Context, Figure, Series, repeat_ms
from scoring import leaderboard
from tenants.models import Tenant

SCENARIO = "6 Rebuild"


def bare_standings(tenant_ids: list[int]) -> int:
    rows = 0
    with connection.cursor() as cursor:
        for tenant_id in tenant_ids:
            cursor.execute(leaderboard.STANDINGS, {"tenant": tenant_id})
            rows += len(cursor.fetchall())
    return rows


def rebuild_command(slugs: list[str] | None, *extra: str) -> str:
    """The command over every tenant (slugs None), or once per tenant of `slugs`."""
    out = io.StringIO()
    for tenant in [None] if slugs is None else slugs:
        args = ["--no-progress", *extra, *(["--tenant", tenant] if tenant else [])]
        call_command("rebuild_leaderboards", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def written(output: str) -> int:
    """Rows written and removed, summed over the command's per-tenant lines."""
    total = 0
    for line in output.splitlines():
        if "rows written" in line:
            parts = line.replace(",", "").split()
            total += int(parts[parts.index("written") - 2]) + int(parts[parts.index("removed") - 1])
    return total


def rebuild_into_empty(tenant_ids: list[int]) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM leaderboards WHERE tenant_id = ANY(%s)", [tenant_ids])
        for tenant_id in tenant_ids:
            leaderboard.rebuild(tenant_id)
        transaction.set_rollback(True)  # the dataset keeps its table


def run(ctx: Context) -> list[Figure]:
    if ctx.smoke:  # the smoke tenants only: a large dataset may share the database
        slugs = [t["slug"] for t in ctx.tenants]
        tenant_ids = [t["id"] for t in ctx.tenants]
    else:
        slugs = None
        tenant_ids = list(Tenant.objects.order_by("slug").values_list("pk", flat=True))
    rows = bare_standings(tenant_ids)
    first = rebuild_command(slugs)  # brings the table up to date if it was not, and warms up
    bare, ours, writes = [], [], []
    for _ in range(ctx.runs):
        bare += repeat_ms(lambda: bare_standings(tenant_ids), 1, warmup=0)
        outputs = []
        ours += repeat_ms(lambda o=outputs: o.append(rebuild_command(slugs)), 1, warmup=0)
        writes.append(written(outputs[0]))
    event_runs = 1 if ctx.smoke else min(ctx.runs, 2)  # a replay reads every event: fewer runs
    events = repeat_ms(lambda: rebuild_command(slugs, "--from-events"), event_runs, warmup=0)
    # --from-events rebuilt the table from the events; put it back to the submissions' view
    after_events = written(rebuild_command(slugs))
    empty = repeat_ms(lambda: rebuild_into_empty(tenant_ids), 1 if ctx.smoke else min(ctx.runs, 2), warmup=0)
    where = f"{len(tenant_ids)} tenants ({'the smoke tenants' if ctx.smoke else 'all'}), {rows:,} ranked rows"
    bare_series = Series("bare STANDINGS per tenant, fetched", bare)
    return [
        Figure(
            SCENARIO,
            "rebuild_leaderboards (table current) vs bare SQL",
            ours=Series("rebuild_leaderboards", ours),
            baseline=bare_series,
            compare="cost",
            goal_op="<=",
            goal=1.5,
            note=f"the table is current, as when an operator runs it: the command computes, compares and writes "
            f"{max(writes)} rows; the baseline also carries every row to Python, the rebuild keeps them in the "
            f"database; {where}",
            extra={"rows_written_per_run": writes, "rows_written_by_first_run": written(first)},
        ),
        Figure(
            SCENARIO,
            "rebuild_leaderboards --from-events vs bare SQL",
            ours=Series("rebuild_leaderboards --from-events", events),
            baseline=bare_series,
            compare="cost",
            goal=None,
            note=f"report: replays SubmissionCreated/SubmissionGraded events in Python; {event_runs} run(s); "
            f"a rebuild from submissions afterwards wrote {after_events} rows (0: the replay agrees)",
            extra={"runs": event_runs, "rows_changed_back_after_replay": after_events},
        ),
        Figure(
            SCENARIO,
            "rebuild into an empty table vs bare SQL",
            ours=Series("leaderboard.rebuild, empty table", empty),
            baseline=bare_series,
            compare="cost",
            goal=None,
            note="report: every row inserted, in a transaction rolled back afterwards",
            extra={"runs": len(empty)},
        ),
    ]
