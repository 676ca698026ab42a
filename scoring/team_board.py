"""The team standings: kept current by each solve, rebuilt from the tables or replayed from the events alone.

What a team scores (the rules scoring.teams enforces, in one place):

- **A solve counts once for a team: the first member's.** Each answer carries the team
  its student was in when they sent it (`submissions.team_id`). Of a team's approved
  answers to a challenge, the first scored (graded, for a write-up; sent, for a flag;
  then the lower id) is the team's solve of it and earns what it earns; a later
  member's answer earns the team nothing more.
- **Hints are charged to the team.** A hint a member unlocked for the team before the
  team's solve costs the team its cost. Each hint is charged to a team once: the first
  member's unlock carries the team (`hint_unlocks.team_id`), a later member's of the
  same hint does not (scoring.hints). A challenge never scores below zero.
- **Dynamic values follow.** An answer's points are its challenge's current value
  (scoring.dynamic counts a team as one solver), so a team's solve moves with them.
- **Points stay where they were earned.** A student who leaves or is moved takes no
  points along: their earlier answers keep scoring for the team they were made for. A
  team merged into another brings its answers and unlocks to it; a dissolved team's
  row goes (its members' own points stay on the students' board).

The writers take the tenant's leaderboard lock (scoring.leaderboard.lock_tenant) and
then compute the teams' rows in a new statement, so a second member's solve of the same
challenge, waiting on that lock, reads the first one's committed answer: a team is
never scored twice, nor from a stale read. Ranks are kept by the database (scoring 0023).
"""

from django.db import connection

from tenants.models import TeamMode

from . import freeze, leaderboard

# The student's team with its row locked ({lock}): FOR SHARE for an answer (a merge or
# dissolve, which locks the team FOR UPDATE, applies wholly before or after it), FOR NO KEY
# UPDATE for a hint unlock (two members' unlocks of one hint apply one after the other).
# The membership row is never locked: a merge or dissolve locks the team, then changes its
# memberships, so a caller holding a membership while waiting for the team would deadlock it.
LOCKED_TEAM_OF_STUDENT = """
    SELECT t.id FROM teams t
    WHERE t.tenant_id = %(tenant)s
      AND t.id = (SELECT m.team_id FROM team_memberships m WHERE m.tenant_id = %(tenant)s AND m.user_id = %(user)s)
    {lock}
"""
TEAM_OF_STUDENT = "SELECT team_id FROM team_memberships WHERE tenant_id = %(tenant)s AND user_id = %(user)s"

# A tenant's teams' totals (team_id, points, solves, last_scored_at), from the tables;
# {teams} narrows them to some teams (an empty string: every team); {points} and {values}
# (standings_until) score dynamic challenges at their value as of a freeze.
_TEAM_STANDINGS = """
    WITH firsts AS MATERIALIZED (
        SELECT DISTINCT ON (s.team_id, s.project_id)
               s.team_id, s.project_id, {points} AS points,
               coalesce(s.graded_at, s.submitted_at) AS scored_at
        FROM submissions s {values}
        WHERE s.tenant_id = %(tenant)s AND s.status = 'APPROVED' AND s.team_id IS NOT NULL {teams}
        ORDER BY s.team_id, s.project_id, coalesce(s.graded_at, s.submitted_at), s.id
    ),
    charged AS (
        SELECT f.team_id, f.project_id, sum(once.cost) AS cost
        FROM firsts f
        JOIN hint_unlocks once
          ON once.tenant_id = %(tenant)s AND once.team_id = f.team_id AND once.project_id = f.project_id
         AND once.unlocked_at <= f.scored_at
        GROUP BY f.team_id, f.project_id
    )
    SELECT f.team_id, sum(greatest(f.points - coalesce(c.cost, 0), 0))::int AS points,
           count(*)::int AS solves, max(f.scored_at) AS last_scored_at
    FROM firsts f
    LEFT JOIN charged c ON c.team_id = f.team_id AND c.project_id = f.project_id
    GROUP BY f.team_id
"""

TEAM_STANDINGS = _TEAM_STANDINGS.replace("{points}", "s.points_awarded").replace("{values}", "")
FROZEN_VALUES = """
    LEFT JOIN unnest(%(projects)s::bigint[], %(values)s::int[]) AS v (project_id, value) ON v.project_id = s.project_id
"""
TEAM_STANDINGS_UNTIL = (
    _TEAM_STANDINGS.replace("{points}", "coalesce((v.value::bigint * s.score + 50) / 100, s.points_awarded)")
    .replace("{values}", FROZEN_VALUES)
    .replace("{teams}", "AND coalesce(s.graded_at, s.submitted_at) <= %(at)s")
)

SOME_TEAMS = "AND s.team_id = ANY(%(teams)s)"

# Some teams' rows brought to their answers: written where they differ, removed where a
# team has no solve left. Teams since deleted are skipped (their rows went with them).
UPDATE_TEAMS = f"""
    WITH totals AS MATERIALIZED ({TEAM_STANDINGS.format(teams=SOME_TEAMS)}),
    unranked AS (
        DELETE FROM team_leaderboards l
        WHERE l.tenant_id = %(tenant)s AND l.team_id = ANY(%(teams)s)
          AND l.team_id NOT IN (SELECT team_id FROM totals)
    )
    INSERT INTO team_leaderboards AS l (tenant_id, team_id, points, solves, last_scored_at, updated_at)
    SELECT %(tenant)s, t.team_id, t.points, t.solves, t.last_scored_at, now()
    FROM totals t JOIN teams ON teams.id = t.team_id AND teams.tenant_id = %(tenant)s
    ON CONFLICT (tenant_id, team_id) DO UPDATE
    SET points = EXCLUDED.points, solves = EXCLUDED.solves, last_scored_at = EXCLUDED.last_scored_at,
        updated_at = now()
    WHERE (l.points, l.solves, l.last_scored_at)
          IS DISTINCT FROM (EXCLUDED.points, EXCLUDED.solves, EXCLUDED.last_scored_at)
"""  # noqa: S608  (constant SQL, values are parameters)

# The tenant's team standings replayed from the event store alone: each answer's latest
# event gives its state and team; a team merged into another (TeamMerged, followed
# through chains of merges) scores for the team it went into, a dissolved one
# (TeamDissolved) for none; answers of deleted challenges and students do not count, a
# re-valued challenge scores again at its new value, as scoring.replay does for students.
TEAM_STANDINGS_FROM_EVENTS = """
    WITH RECURSIVE latest AS (
        SELECT DISTINCT ON ((e.payload->>'submission_id')::bigint)
               (e.payload->>'submission_id')::bigint AS id, e.position, e.payload->>'status' AS status,
               (e.payload->>'user_id')::bigint AS user_id, (e.payload->>'project_id')::bigint AS project_id,
               (e.payload->>'team_id')::bigint AS team_id, (e.payload->>'score')::int AS score,
               (e.payload->>'points_awarded')::int AS points,
               coalesce(e.payload->>'graded_at', e.payload->>'submitted_at')::timestamptz AS scored_at
        FROM event_store e
        WHERE e.tenant_id = %(tenant)s AND e.event_type IN ('SubmissionCreated', 'SubmissionGraded')
        ORDER BY (e.payload->>'submission_id')::bigint, e.position DESC
    ),
    team_events AS MATERIALIZED (
        SELECT e.event_type, (e.payload->>'team_id')::bigint AS team_id,
               (e.payload->>'into_team_id')::bigint AS into_team_id
        FROM event_store e
        WHERE e.tenant_id = %(tenant)s AND e.event_type IN ('TeamMerged', 'TeamDissolved')
    ),
    -- each team to the team it ended in: itself, or where its merges led
    final (team_id, now_in) AS (
        SELECT DISTINCT team_id, team_id FROM latest WHERE team_id IS NOT NULL
        UNION
        SELECT DISTINCT (e.payload->>'team_id')::bigint, (e.payload->>'team_id')::bigint
        FROM event_store e
        WHERE e.tenant_id = %(tenant)s AND e.event_type = 'HintUnlocked' AND e.payload->>'team_id' IS NOT NULL
        UNION
        SELECT f.team_id, m.into_team_id FROM final f
        JOIN team_events m ON m.event_type = 'TeamMerged' AND m.team_id = f.now_in
    ),
    ended AS (
        SELECT f.team_id, f.now_in FROM final f
        WHERE NOT EXISTS (SELECT 1 FROM team_events m WHERE m.event_type = 'TeamMerged' AND m.team_id = f.now_in)
          AND NOT EXISTS (SELECT 1 FROM team_events d WHERE d.event_type = 'TeamDissolved' AND d.team_id = f.now_in)
    ),
    changes AS MATERIALIZED (
        SELECT e.position, e.event_type, (e.payload->>'project_id')::bigint AS project_id,
               (e.payload->>'user_id')::bigint AS user_id, (e.payload->>'points')::int AS points
        FROM event_store e
        WHERE e.tenant_id = %(tenant)s AND e.event_type IN ('ProjectDeleted', 'ProjectPointsChanged', 'StudentDeleted')
    ),
    approved AS (
        SELECT a.id, t.now_in AS team_id, a.project_id, a.scored_at,
               coalesce((revalued.points * a.score + 50) / 100, a.points) AS points
        FROM latest a
        JOIN ended t ON t.team_id = a.team_id
        LEFT JOIN LATERAL (
            SELECT c.points FROM changes c
            WHERE c.event_type = 'ProjectPointsChanged' AND c.project_id = a.project_id AND c.position > a.position
            ORDER BY c.position DESC LIMIT 1
        ) AS revalued ON true
        WHERE a.status = 'APPROVED'
          AND a.project_id NOT IN (SELECT c.project_id FROM changes c WHERE c.event_type = 'ProjectDeleted')
          AND a.user_id NOT IN (SELECT c.user_id FROM changes c WHERE c.event_type = 'StudentDeleted')
    ),
    firsts AS (
        SELECT DISTINCT ON (team_id, project_id) team_id, project_id, points, scored_at
        FROM approved ORDER BY team_id, project_id, scored_at, id
    ),
    unlocks AS (
        SELECT t.now_in AS team_id, (e.payload->>'project_id')::bigint AS project_id,
               (e.payload->>'cost')::int AS cost, (e.payload->>'unlocked_at')::timestamptz AS unlocked_at
        FROM event_store e
        JOIN ended t ON t.team_id = (e.payload->>'team_id')::bigint
        WHERE e.tenant_id = %(tenant)s AND e.event_type = 'HintUnlocked'
          AND (e.payload->>'unlock_id')::bigint NOT IN (
              SELECT jsonb_array_elements_text(m.payload->'uncharged')::bigint FROM event_store m
              WHERE m.tenant_id = %(tenant)s AND m.event_type = 'TeamMerged' AND m.payload ? 'uncharged')
          AND (e.payload->>'user_id')::bigint NOT IN (
              SELECT c.user_id FROM changes c WHERE c.event_type = 'StudentDeleted')
    ),
    charged AS (
        SELECT f.team_id, f.project_id, sum(once.cost) AS cost
        FROM firsts f
        JOIN unlocks once ON once.team_id = f.team_id AND once.project_id = f.project_id
         AND once.unlocked_at <= f.scored_at
        GROUP BY f.team_id, f.project_id
    )
    SELECT f.team_id, sum(greatest(f.points - coalesce(c.cost, 0), 0))::int AS points,
           count(*)::int AS solves, max(f.scored_at) AS last_scored_at
    FROM firsts f
    LEFT JOIN charged c ON c.team_id = f.team_id AND c.project_id = f.project_id
    GROUP BY f.team_id
"""

# Bring the tenant's table to `source` (team_id, points, solves, last_scored_at), writing
# only the rows that differ (leaderboard.SYNC, for teams)
SYNC = """
    WITH source AS MATERIALIZED (
        SELECT s.* FROM ({source}) AS s JOIN teams t ON t.id = s.team_id AND t.tenant_id = %(tenant)s
    ),
    current AS MATERIALIZED (
        SELECT team_id, points, solves, last_scored_at FROM team_leaderboards WHERE tenant_id = %(tenant)s
    ),
    changed AS (
        SELECT s.* FROM source s LEFT JOIN current c ON c.team_id = s.team_id
        WHERE c.team_id IS NULL
           OR (c.points, c.solves, c.last_scored_at) IS DISTINCT FROM (s.points, s.solves, s.last_scored_at)
    ),
    upserted AS (
        INSERT INTO team_leaderboards AS l (tenant_id, team_id, points, solves, last_scored_at, updated_at)
        SELECT %(tenant)s, team_id, points, solves, last_scored_at, now() FROM changed
        ON CONFLICT (tenant_id, team_id) DO UPDATE
        SET points = EXCLUDED.points, solves = EXCLUDED.solves, last_scored_at = EXCLUDED.last_scored_at,
            updated_at = now()
        RETURNING 1
    ),
    removed AS (
        DELETE FROM team_leaderboards l
        WHERE l.tenant_id = %(tenant)s
          AND l.team_id IN (SELECT c.team_id FROM current c LEFT JOIN source s USING (team_id) WHERE s.team_id IS NULL)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM source), (SELECT count(*) FROM upserted), (SELECT count(*) FROM removed)
"""


def _locked_team_of(user, lock: str) -> int | None:
    """The student's team with its row locked, or None (one statement for a member).

    A team merged or dissolved while the lock was awaited is gone once it is granted: the
    membership is read again (a new statement, so after that commit), and the student is
    in the team it went into, or in none. The caller holds the student's row, so they
    cannot leave, join or be moved meanwhile; each turn of the loop follows a merge or
    dissolve that committed.
    """
    params = {"tenant": user.tenant_id, "user": user.pk}
    with connection.cursor() as cursor:
        while True:
            cursor.execute(LOCKED_TEAM_OF_STUDENT.format(lock=lock), params)
            row = cursor.fetchone()
            if row is not None:
                return row[0]
            cursor.execute(TEAM_OF_STUDENT, params)  # no team, or one that went while we waited
            if cursor.fetchone() is None:
                return None


def answer_team_id(user, tenant) -> int | None:
    """The team an answer of the student scores for: theirs when the class plays in teams (its row FOR SHARE)."""
    if tenant.team_mode == TeamMode.OFF:
        return None
    return _locked_team_of(user, "FOR SHARE")


def unlock_team_id(user, tenant, hint_id: int) -> tuple[int | None, bool]:
    """The student's team for a hint unlock (its row locked FOR NO KEY UPDATE), and whether the team pays for it.

    A team pays for a hint once: not when a member has unlocked that hint already. Two
    members' unlocks of one hint apply one after the other on the team's row.
    """
    if tenant.team_mode == TeamMode.OFF:
        return None, False
    team_id = _locked_team_of(user, "FOR NO KEY UPDATE")
    if team_id is None:
        return None, False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM hint_unlocks WHERE tenant_id = %s AND team_id = %s AND hint_id = %s)",
            [user.tenant_id, team_id, hint_id],
        )
        paid = cursor.fetchone()[0]
    return team_id, not paid


def update_teams(*, tenant_id: int, team_ids, tenant_locked: bool = False) -> None:
    """Bring some teams' rows up to date from their answers (one statement), under the tenant's lock.

    `tenant_locked`: the caller's transaction holds the lock already (a solve took it for
    the student's row), so it is not asked for again.
    """
    teams = sorted({team for team in team_ids if team is not None})
    if not teams:
        return
    if not tenant_locked:
        leaderboard.lock_tenant(tenant_id)
    with connection.cursor() as cursor:
        cursor.execute(UPDATE_TEAMS, {"tenant": tenant_id, "teams": teams})
    leaderboard.CACHE.invalidate_on_commit(tenant_id)


def update_teams_of_project(*, tenant_id: int, project_id: int) -> None:
    """Every team that solved a challenge (its value moved): their rows, in one statement."""
    leaderboard.lock_tenant(tenant_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(array_agg(DISTINCT team_id), '{}') FROM submissions "
            "WHERE tenant_id = %s AND project_id = %s AND status = 'APPROVED' AND team_id IS NOT NULL",
            [tenant_id, project_id],
        )
        teams = cursor.fetchone()[0]
    update_teams(tenant_id=tenant_id, team_ids=teams)


def sync(tenant_id: int, source: str) -> tuple[int, int, int]:
    """(rows, rows written, rows removed) after bringing the tenant's team table to `source`."""
    leaderboard.lock_tenant(tenant_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('work_mem', %s, true)", ["128MB"])
        cursor.execute(SYNC.format(source=source), {"tenant": tenant_id})
        counts = cursor.fetchone()
    if counts[1] or counts[2]:
        leaderboard.CACHE.invalidate_on_commit(tenant_id)
    return counts


def rebuild(tenant_id: int) -> tuple[int, int, int]:
    """The tenant's team standings computed again from its answers (call inside a transaction)."""
    return sync(tenant_id, TEAM_STANDINGS.format(teams=""))


def replay(tenant_id: int) -> tuple[int, int, int]:
    """The tenant's team standings set to what its events say (call inside a transaction)."""
    return sync(tenant_id, TEAM_STANDINGS_FROM_EVENTS)


def standings_until(tenant_id: int, at) -> list[tuple]:
    """(team_id, points, solves, last_scored_at) from the answers scored by `at` (a frozen scoreboard), best first.

    A dynamic challenge scores its value as of the freeze, as on the students' frozen board (scoring.freeze).
    """
    dynamic = {pk: c.value for pk, c in freeze.challenges(tenant_id, at).items() if c.dynamic}
    params = {"tenant": tenant_id, "at": at, "projects": list(dynamic), "values": list(dynamic.values())}
    with connection.cursor() as cursor:
        cursor.execute(TEAM_STANDINGS_UNTIL + " ORDER BY points DESC, last_scored_at, team_id", params)
        return cursor.fetchall()


def standings_from_events(tenant_id: int) -> list[tuple]:
    """(team_id, points, solves, last_scored_at) per team with a solve, from the events alone."""
    with connection.cursor() as cursor:
        cursor.execute(TEAM_STANDINGS_FROM_EVENTS, {"tenant": tenant_id})
        return sorted(cursor.fetchall())


def standings_from_tables(tenant_id: int) -> list[tuple]:
    """(team_id, points, solves, last_scored_at) per team with a solve, from the answers."""
    with connection.cursor() as cursor:
        cursor.execute(TEAM_STANDINGS.format(teams=""), {"tenant": tenant_id})
        return sorted(cursor.fetchall())
