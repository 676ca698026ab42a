"""Dynamic scoring: a challenge's value falls as students solve it, and every solver's points follow.

A dynamic challenge (Project.scoring == DYNAMIC) is worth
`Project.value_with(solvers)` (challenges.models.dynamic_value: CTFd's logarithmic and
linear decays), where solvers are the students with an approved submission of it. Its
`points` column always holds that value, so everything that reads a challenge's points
(a grade's share, the catalogue, exports) reads the current value.

When the number of solvers changes (a solve, a grade that approves or rejects, a
student deleted) or the instructor changes the decay, `settle()` brings the value up to
date, in the transaction that changed it and in a few set-based statements whatever the
number of solvers:

1. every approved submission of the challenge is scored again at the new value
   (round(value * score / 100), halves up, as scoring.services.points_for);
2. each solver's leaderboard row moves by the difference of their net points on the
   challenge (net of hint costs, never below zero: scoring.leaderboard.NET_POINTS), in
   the same statement; the database's rank trigger re-ranks the span that moved;
3. the automatic badges that read points (POINTS_AT_LEAST) are taken from the solvers
   who fell below and given to those who rose above, in bulk, each with its audit row
   and BadgeAwarded/BadgeRevoked event;
4. one ProjectPointsChanged event records the new value: a replay scores every approval
   recorded before it at that value (scoring.replay), as step 1 did to the table.

Lock order (scoring.services): the challenge's approvals lock (lock_solves) before any
submission row of the challenge, then the tenant's leaderboard lock.
"""

from django.db import connection

from audit import api as audit
from challenges.models import Project
from challenges.selectors import CATALOGUE

from . import leaderboard, team_board
from .badges import rule_n
from .models import Badge, UserBadge
from .signals import badge_awarded, badge_revoked, project_rescored

# a team counts as one solver (scoring.teams): its members' approvals carry its id; a student
# who played alone counts as themself (team ids and user ids kept apart by the sign)
SOLVERS = """
    SELECT count(DISTINCT coalesce(team_id, -user_id)) FROM submissions
    WHERE tenant_id = %(tenant)s AND project_id = %(project)s AND status = 'APPROVED'
"""

# Steps 1 and 2 in one statement: the approvals at the new value, the solvers' rows moved
# by the change of their net points. Answers how many submissions changed and the rows moved.
REVALUE = """
    WITH old AS MATERIALIZED (
        SELECT s.id, s.user_id, s.points_awarded AS old_points,
               ((%(value)s::bigint * s.score + 50) / 100)::int AS new_points,
               coalesce((SELECT sum(u.cost) FROM hint_unlocks u
                         WHERE u.tenant_id = s.tenant_id AND u.user_id = s.user_id
                           AND u.project_id = s.project_id), 0) AS cost
        FROM submissions s
        WHERE s.tenant_id = %(tenant)s AND s.project_id = %(project)s AND s.status = 'APPROVED'
    ),
    rescored AS (
        UPDATE submissions s SET points_awarded = o.new_points
        FROM old o
        WHERE s.id = o.id AND s.tenant_id = %(tenant)s AND s.points_awarded <> o.new_points
        RETURNING s.id
    ),
    deltas AS (
        SELECT user_id, sum(greatest(new_points - cost, 0) - greatest(old_points - cost, 0))::int AS delta
        FROM old GROUP BY user_id
    ),
    moved AS (
        UPDATE leaderboards l SET points = l.points + d.delta, updated_at = now()
        FROM deltas d
        WHERE l.tenant_id = %(tenant)s AND l.user_id = d.user_id AND d.delta <> 0
        RETURNING l.user_id, l.points
    )
    SELECT (SELECT count(*) FROM rescored),
           coalesce((SELECT json_agg(json_build_array(user_id, points)) FROM moved), '[]')
"""


# advisory lock class of a challenge's approvals ("VHSV"): taken before an approval is
# timed, so approvals of one challenge get their times in the order they commit and
# "first to solve it" (the first-blood badge) has exactly one answer under races; and
# before a dynamic challenge's value is worked out, so its count of solvers is exact
SOLVES_LOCK = 0x56485356


def lock_solves(project_id: int) -> None:
    """The challenge's approvals lock, held until commit."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SOLVES_LOCK, project_id])


def solvers(project: Project) -> int:
    with connection.cursor() as cursor:
        cursor.execute(SOLVERS, {"tenant": project.tenant_id, "project": project.pk})
        return cursor.fetchone()[0]


def settle(project: Project, *, actor=None, caches_invalidated: bool = False) -> int:
    """Bring a dynamic challenge's value, its solvers' points, ranks and badges up to date.

    The solvers' leaderboard rows must be in step with their submissions when it runs
    (a service calls it after the student's row is updated): each row moves by a difference.

    Returns the value. Does nothing for a static challenge, or when the value is already
    right (one count). `project.points` is set in memory too. `caches_invalidated`: the
    caller's transaction already invalidates the tenant's leaderboard and catalogue.
    """
    if not project.is_dynamic:
        return project.points
    lock_solves(project.pk)
    # the stored value, read under the lock: the caller's copy may be older than another settle
    project.points = Project.objects.filter(pk=project.pk).values_list("points", flat=True).get()
    value = project.value_with(solvers(project))
    if value == project.points and not _scored_otherwise(project, value):
        return value
    previous = project.points
    leaderboard.lock_tenant(project.tenant_id)
    with connection.cursor() as cursor:
        cursor.execute(REVALUE, {"tenant": project.tenant_id, "project": project.pk, "value": value})
        rescored, moved = cursor.fetchone()
    team_board.update_teams_of_project(tenant_id=project.tenant_id, project_id=project.pk)
    with audit.in_bulk():
        audit.update_recorded(Project.objects.filter(pk=project.pk), points=value)
        project.points = value
        project._vulhub_points_before = value  # scoring.changes: this is no instructor's change
        _settle_badges(project.tenant_id, dict(moved), actor=actor)
        project_rescored.send(sender=Project, project=project, previous_points=previous, rescored=rescored, actor=actor)
    if not caches_invalidated:  # a solve or a grading has asked already: readers miss once, not twice
        leaderboard.CACHE.invalidate_on_commit(project.tenant_id)
        CATALOGUE.invalidate_on_commit(project.tenant_id)
    return value


def _scored_otherwise(project: Project, value: int) -> bool:
    """Whether an approval of the challenge is scored at another value (it was static until this save)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM submissions WHERE tenant_id = %s AND project_id = %s "
            "AND status = 'APPROVED' AND points_awarded <> (%s::bigint * score + 50) / 100)",
            [project.tenant_id, project.pk, value],
        )
        return cursor.fetchone()[0]


def _settle_badges(tenant_id: int, points: dict[int, int], *, actor) -> None:
    """The automatic points badges of the students whose points moved (user id -> new points)."""
    if not points:
        return
    rules = [
        (badge, rule_n(badge))
        for badge in Badge.objects.for_tenant(tenant_id).filter(rule_kind=Badge.RuleKind.POINTS_AT_LEAST)
    ]
    for badge, threshold in rules:
        holders = dict(
            UserBadge.objects.for_tenant(tenant_id)
            .filter(badge=badge, user_id__in=list(points))
            .values_list("user_id", "awarded_by_id")
        )
        # only automatic awards are taken back (holders[user] is None: no instructor gave it)
        lost = [user for user, total in points.items() if total < threshold and user in holders and not holders[user]]
        earned = [user for user, total in points.items() if total >= threshold and user not in holders]
        if lost:
            awards = list(
                UserBadge.objects.for_tenant(tenant_id).filter(badge=badge, user_id__in=lost).select_related("badge")
            )
            audit.delete_recorded(UserBadge.objects.filter(pk__in=[a.pk for a in awards]))
            for award in awards:
                badge_revoked.send(
                    sender=UserBadge, user_badge=award, actor=actor, reason="The challenge's value fell."
                )
        if earned:
            made = audit.bulk_create_recorded(
                UserBadge, [UserBadge(tenant_id=tenant_id, user_id=user, badge=badge) for user in earned]
            )
            for award in made:
                award.badge = badge
                badge_awarded.send(sender=UserBadge, user_badge=award, actor=None)
