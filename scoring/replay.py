"""Standings replayed from the event store alone, without reading submissions or users.

One statement per tenant, set-based: each submission's latest event (SubmissionCreated,
then any SubmissionGraded) gives its state; the approved ones count, except those of a
challenge deleted since (ProjectDeleted) or of a student deleted since (StudentDeleted);
a challenge re-valued after a submission's latest event (ProjectPointsChanged) scores it
again at the new value, as scoring.changes and scoring.dynamic do to the table; the
costs of the hints a student unlocked on a challenge (HintUnlocked) come off its points,
never below zero. Then totals per student, as the leaderboard keeps them.
"""

from django.db import connection, transaction

from . import leaderboard

STANDINGS_FROM_EVENTS = """
    WITH latest AS (
        SELECT DISTINCT ON ((e.payload->>'submission_id')::bigint)
               e.position, e.payload->>'status' AS status, (e.payload->>'user_id')::bigint AS user_id,
               (e.payload->>'project_id')::bigint AS project_id, (e.payload->>'score')::int AS score,
               (e.payload->>'points_awarded')::int AS points,
               coalesce(e.payload->>'graded_at', e.payload->>'submitted_at') AS scored_at
        FROM event_store e
        WHERE e.tenant_id = %(tenant)s AND e.event_type IN ('SubmissionCreated', 'SubmissionGraded')
        ORDER BY (e.payload->>'submission_id')::bigint, e.position DESC
    ),
    approved AS (
        SELECT * FROM latest WHERE status = 'APPROVED'
    ),
    changes AS MATERIALIZED (
        SELECT e.position, e.event_type, (e.payload->>'project_id')::bigint AS project_id,
               (e.payload->>'user_id')::bigint AS user_id, (e.payload->>'points')::int AS points
        FROM event_store e
        WHERE e.tenant_id = %(tenant)s AND e.event_type IN ('ProjectDeleted', 'ProjectPointsChanged', 'StudentDeleted')
    ),
    hint_costs AS (
        SELECT (e.payload->>'user_id')::bigint AS user_id, (e.payload->>'project_id')::bigint AS project_id,
               sum((e.payload->>'cost')::int) AS cost
        FROM event_store e
        WHERE e.tenant_id = %(tenant)s AND e.event_type = 'HintUnlocked'
        GROUP BY 1, 2
    )
    SELECT a.user_id,
           sum(greatest(coalesce((revalued.points * a.score + 50) / 100, a.points) - coalesce(hc.cost, 0), 0))::int
               AS points,
           count(*)::int AS solves, max(a.scored_at::timestamptz) AS last_scored_at
    FROM approved a
    LEFT JOIN LATERAL (
        SELECT c.points FROM changes c
        WHERE c.event_type = 'ProjectPointsChanged' AND c.project_id = a.project_id AND c.position > a.position
        ORDER BY c.position DESC LIMIT 1
    ) AS revalued ON true
    LEFT JOIN hint_costs hc ON hc.user_id = a.user_id AND hc.project_id = a.project_id
    WHERE a.project_id NOT IN (SELECT c.project_id FROM changes c WHERE c.event_type = 'ProjectDeleted')
      AND a.user_id NOT IN (SELECT c.user_id FROM changes c WHERE c.event_type = 'StudentDeleted')
    GROUP BY a.user_id
"""


# memory for the sort of a tenant's submission events (narrow rows: a few hundred MB at
# most for millions of events), so it stays off the disk
WORK_MEM = "128MB"


def standings_from_events(tenant_id: int) -> list[tuple]:
    """(user_id, points, solves, last_scored_at) per student with an approved submission, from the events."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('work_mem', %s, true)", [WORK_MEM])
        cursor.execute(STANDINGS_FROM_EVENTS, {"tenant": tenant_id})
        return cursor.fetchall()


def replay(tenant_id: int) -> tuple[int, int, int]:
    """Set the tenant's leaderboard to what its events say: (rows, rows written, rows removed)."""
    return leaderboard.sync(tenant_id, STANDINGS_FROM_EVENTS, {}, work_mem=WORK_MEM)
