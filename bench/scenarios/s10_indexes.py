"""Indexes: does each hot query's plan use the index meant for it, and which indexes are never used?

Runs last, after the rest of the suite has exercised the app. Each hot query is built
the way the app builds it (the same querysets and SQL) for the largest tenant and a
busy student, and EXPLAIN (FORMAT JSON) must name the expected index somewhere in
its plan. On the smoke dataset every table fits in a page or two and a sequential
scan is cheaper, so there the plans are taken with enable_seqscan off: it proves the
query can use the index, not that the planner prefers it.

Then pg_stat_user_indexes lists the indexes with no scan at all, leaving out those
that back a primary key or a unique rule (they work without being scanned). The
counters are per database and cumulative since they were last reset: on a freshly
seeded database they reflect the seed and this suite only.
"""

import json
from importlib import import_module

from django.db import connection, transaction
from django.db.models import Count

from audit.api import AuditLog, EventStore
from bench.framework import Context, Figure, Series
from scoring.catalogue import catalogue_rows
from scoring.models import Leaderboard, Submission, UserBadge

SCENARIO = "10 Indexes"
NEIGHBOUR_WALKS = import_module("scoring.migrations.0010_ranks_read_not_stored").WINDOW_ROWS
RANKS = import_module("scoring.migrations.0012_stored_ranks")

# Why an index with no scan in the suite is kept; anything not listed is a candidate to drop.
KEEP = {
    "audit_logs_actor_id_303d1495": "deleting a user sets actor to NULL: the FK lookup needs it",
    "idx_audit_logs_tenant_created": "the audit log of a tenant, newest first (hot query above, planned here)",
    "cache_table_expires": "Django's database cache (no Redis) culls expired entries by date",
    "idx_audit_logs_object": "an object's history in the admin (object_type, object_id)",
    "idx_event_store_type_pos": "replays and readers of one event type across tenants",
    "idx_event_store_tenant_pos": "a tenant's events in order: rebuild_leaderboards --from-events (scenario 6)",
    "idx_rate_limit_hits_key": "registration and password-reset limits count a key's recent hits (none here)",
    "idx_rate_limit_hits_age": "old rate-limit hits are pruned by age (no scenario registers)",
    "submissions_graded_by_id_e069f25e": "deleting a grader sets graded_by to NULL: the FK lookup needs it",
    "user_badges_awarded_by_id_9ef3bc5a": "deleting an instructor sets awarded_by to NULL: the FK lookup needs it",
    "user_badges_badge_id_80400ca4": "deleting a badge cascades to its awards; the admin's per-badge filter",
    "leaderboards_user_id_c175945b": "deleting a user cascades to their row (the unique index leads with tenant)",
    "idx_projects_category_difficulty": "catalogue filters when the cache is cold",
    "announcements_author_id_f03fe4c4": "deleting an instructor sets an announcement's author to NULL",
    "hint_unlocks_hint_id_782e37be": "deleting a hint keeps its unlocks (SET NULL): the FK lookup needs it",
    "idx_hint_unlocks_project": "a challenge's unlocks: its hint costs on the rebuild and on deletion",
    "hints_project_id_be21d593": "a challenge's hints in order on its page (no scenario opens one)",
    "project_prerequisites_required_id_9ef1b09c": "deleting a challenge that others require; the lock check",
    "project_prerequisites_project_id_e980c734": "a challenge's own prerequisites: its page, the cycle check",
    "idx_user_badges_recent": "the admin home's recent awards and the week's count (planned above; scenario 15)",
    "notifications_project_id_e4d4f192": "deleting a challenge cascades to its notifications; its opening row",
    "idx_notifications_tenant_wide": "the header's unread count of tenant-wide news (a cache miss; scenario 14)",
    "idx_notifications_user_visible": "the header's unread count of a student's own news (a cache miss; scenario 14)",
    "django_session_expire_date_a5c62663": "clearsessions deletes expired sessions by date",
    "django_admin_log_content_type_id_c4bce8eb": "Django's admin history and content-type cascades",
    "django_admin_log_user_id_c564eba6": "Django's admin history per user and user deletion",
    "users_groups_group_id_2f3517aa": "Django's auth: group deletion and membership lookups",
    "users_groups_user_id_f500bee5": "Django's auth: a user's groups (permission checks)",
    "users_user_permissions_permission_id_6d08dcd2": "Django's auth: permission deletion",
    "users_user_permissions_user_id_92473840": "Django's auth: a user's permissions (permission checks)",
    "auth_group_permissions_group_id_b120cbf9": "Django's auth: a group's permissions",
    "auth_group_permissions_permission_id_84c5c92e": "Django's auth: permission deletion",
    "auth_permission_content_type_id_2f476e4b": "Django's auth: content-type cascades",
    "auth_group_name_a6ea08ec_like": "Django's auth: LIKE lookups on group names (admin search)",
    "django_session_session_key_c0390e0f_like": "Django default for a varchar primary key; LIKE lookups only",
    "tenants_slug_01bfd60f_like": "Django default for a unique slug; LIKE lookups only",
    "badges_slug_f58da7aa_like": "Django default for a SlugField; LIKE lookups only",
    "projects_slug_39bbe5d1_like": "Django default for a SlugField; LIKE lookups only",
    "badges_slug_f58da7aa": "SlugField default; tenant-scoped lookups use uniq_badges_tenant_slug",
    "projects_slug_39bbe5d1": "SlugField default; tenant-scoped lookups use uniq_projects_tenant_slug",
}

# Tables whose schema a package's own migrations make: their indexes serve the package's
# lookups, and they go with the package, not with a migration of ours.
PACKAGE_TABLES = {
    "axes_": "django-axes' own schema: a failed login is looked up by username, IP and user agent (none here)",
}


def keep_reason(table: str, index: str) -> str | None:
    if index in KEEP:
        return KEEP[index]
    return next((why for prefix, why in PACKAGE_TABLES.items() if table.startswith(prefix)), None)


# A student's own leaderboard row: a user belongs to one tenant, so the user_id index
# (kept for the delete cascade) finds the row as directly as the (tenant, user) one.
MY_ROW = ("uniq_leaderboards_tenant_user", "leaderboards_user_id_c175945b")

UNUSED = """
    SELECT s.relname, s.indexrelname, pg_relation_size(s.indexrelid)
    FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
    WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
    ORDER BY s.relname, s.indexrelname
"""


# A table of a few pages is read faster whole than through an index, so the planner
# rightly skips the index: such a query is planned with seq scans off, to prove the
# index is there for the day the table grows, and the note says how big the table is.
SMALL_TABLES: dict[str, str] = {}


def table_size(table: str) -> str:
    with connection.cursor() as cursor:
        # counted, not read from pg_class: a table not yet analysed has no estimate there;
        # the name comes from SMALL_TABLES above, never from input
        quoted = connection.ops.quote_name(table)
        size = "pg_relation_size(%s) / current_setting('block_size')::int"
        cursor.execute(f"SELECT count(*), {size} FROM {quoted}", [table])  # noqa: S608
        rows, pages = cursor.fetchone()
    return f"{table}: {rows} rows in {pages} page(s)"


def sql_of(queryset) -> tuple[str, list]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def hot_queries(tenant_id: int) -> list[tuple[str, str, dict | list, list[str | tuple[str, ...]]]]:
    """(name, sql, params, expected indexes): every entry must appear, a tuple by any of its names."""
    busy = (
        Submission.objects.for_tenant(tenant_id)
        .values("user_id")
        .annotate(n=Count("id"))
        .order_by("-n", "user_id")[0]["user_id"]
    )
    mine = Leaderboard.objects.for_tenant(tenant_id).filter(user_id=busy).first()
    points = mine.points if mine else 0
    ranked = Leaderboard.objects.for_tenant(tenant_id).ranked()
    position = EventStore.objects.for_tenant(tenant_id).order_by("position").values_list("position", flat=True)
    tail_from = position[max(0, position.count() - 100)] if position.exists() else 0
    queries = [
        ("leaderboard page", ranked.select_related("user")[:50], ["idx_leaderboards_tenant_points"]),
        ("my rank (my row)", Leaderboard.objects.for_tenant(tenant_id).filter(user_id=busy).order_by()[:1],
         [MY_ROW]),
        ("my page (rows above me)", ranked.filter(points__gt=points).values("pk"), ["idx_leaderboards_tenant_points"]),
        ("grading queue", Submission.objects.for_tenant(tenant_id).pending().select_related("user", "project")
         .order_by("submitted_at", "-pk")[:50], ["idx_submissions_queue"]),
        ("student's submissions", Submission.objects.for_tenant(tenant_id).filter(user_id=busy)
         .select_related("project").order_by("-submitted_at")[:25], ["idx_submissions_user_tenant"]),
        ("catalogue (challenges and solves)", catalogue_rows(tenant_id), ["idx_submissions_project_status"]),
        ("catalogue (my solved markers)", Submission.objects.for_tenant(tenant_id).filter(user_id=busy).approved()
         .values_list("project_id"), [("uniq_submissions_one_approved", "idx_submissions_user_tenant")]),
        # the admin home's recent awards (classroom.summary._recent_badges)
        ("admin home: recent badges", UserBadge.objects.for_tenant(tenant_id).order_by("-awarded_at", "-pk")
         .values("pk")[:5], ["idx_user_badges_recent"]),
        ("audit log by tenant", AuditLog.objects.filter(tenant_id=tenant_id).order_by("-created_at")[:100],
         ["idx_audit_logs_tenant_created"]),
        # a tail near the end of the log: walking the primary key from there is as short
        ("event store tail", EventStore.objects.for_tenant(tenant_id).after(tail_from)[:500],
         [("idx_event_store_tenant_pos", "event_store_pkey")]),
    ]  # fmt: skip
    found = [(name, *sql_of(qs), expected) for name, qs, expected in queries]
    # neighbours() calls a database function: its window of rows is planned here with the same values
    walks = (
        NEIGHBOUR_WALKS.replace("p_tenant", "%(tenant)s")
        .replace("p_user", "%(user)s")
        .replace("p_around", "%(around)s")
        .replace("me.points", "%(points)s")
        .replace("me.last_scored_at", "%(scored)s")
    )
    params = {"tenant": tenant_id, "user": busy, "around": 5, "points": points,
              "scored": mine.last_scored_at if mine else None}  # fmt: skip
    found.insert(3, ("neighbours (±5)", walks, params, ["idx_leaderboards_tenant_points"]))
    # leaderboard_rerank() (0012), after a grading moves a student by 100 points: the first
    # row above the span, then the span's rows
    span = {"tenant": tenant_id, "low": points, "high": points + 100}
    reads = [("rank (the row above)", RANKS.NEXT_ABOVE), ("rank (the span)", RANKS.SPAN_ROWS)]
    for at, (name, read) in enumerate(reads, start=4):
        sql = read.replace("p_tenant", "%(tenant)s").replace("p_low", "%(low)s").replace("p_high", "%(high)s")
        found.insert(at, (name, sql, span, ["idx_leaderboards_tenant_points"]))
    return found


def plan_of(sql: str, params, force_index: bool) -> dict:
    with transaction.atomic(), connection.cursor() as cursor:
        if force_index:
            cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        document = cursor.fetchone()[0]
    return (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]


def indexes_in(node: dict) -> set[str]:
    names = {node["Index Name"]} if "Index Name" in node else set()
    for child in node.get("Plans", []):
        names |= indexes_in(child)
    return names


def scan_types(node: dict) -> list[str]:
    found = [f"{node['Node Type']} on {node['Relation Name']}"] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += scan_types(child)
    return found


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    figures = []
    for name, sql, params, expected in hot_queries(tenant["id"]):
        small = SMALL_TABLES.get(name)
        plan = plan_of(sql, params, force_index=ctx.smoke or small is not None)
        used = indexes_in(plan)
        missing = [e for e in expected if not (set(e) if isinstance(e, tuple) else {e}) & used]
        wanted = " and ".join(" or ".join(e) if isinstance(e, tuple) else e for e in expected)
        figures.append(
            Figure(
                SCENARIO,
                f"plan uses index: {name}",
                ours=Series("expected index used (1/0)", [0 if missing else 1], "index"),
                compare="absolute",
                goal_op="==",
                goal=1,
                note=f"expects {wanted}"
                + (f"; missing {', '.join(map(str, missing))}" if missing else "")
                + ("; seq scans off (tiny tables)" if ctx.smoke else "")
                + (f"; seq scans off ({table_size(small)})" if small and not ctx.smoke else ""),
                extra={"indexes_used": sorted(used), "scans": scan_types(plan), "tenant": tenant["slug"]},
            )
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this session's own scans count too
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(UNUSED)
        unused = cursor.fetchall()
    reasons = {index: keep_reason(table, index) for table, index, _ in unused}
    listed = {index: {"table": table, "bytes": size, "keep": reasons[index] or "no reason on record: candidate to drop"}
              for table, index, size in unused}  # fmt: skip
    without_reason = [index for index in listed if reasons[index] is None]
    figures.append(
        Figure(
            SCENARIO,
            "never-scanned indexes with no reason to keep them",
            ours=Series("indexes with idx_scan = 0 and no reason", [len(without_reason)], "indexes"),
            compare="absolute",
            goal_op="==",
            goal=0,
            note="candidates to drop: " + (", ".join(without_reason) if without_reason else "none"),
            extra={"unused": {i: listed[i] for i in without_reason}},
        )
    )
    figures.append(
        Figure(
            SCENARIO,
            "non-constraint indexes never scanned (each with its reason to keep)",
            ours=Series("indexes with idx_scan = 0", [len(listed)], "indexes"),
            compare="absolute",
            note="pg_stat_user_indexes, cumulative for this database; the list and the reasons are in "
            "bench/results.json (extra)",
            extra={"unused": listed},
        )
    )
    return figures
