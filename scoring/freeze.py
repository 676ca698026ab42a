"""The scoreboard freeze: from Tenant.scoreboard_freeze_at, students see the standings as of then.

In the last hours of a competition the class should not watch each other's scores
move, so a tenant may freeze its scoreboard. From the freeze time on, students see the
standings as they were then, on the leaderboard, their dashboard and their profile,
and the solve counts and dynamic values of the challenges as they were then;
instructors and tenant admins see live ones (with a banner saying students see the
frozen board). Emptying the field unfreezes: everyone sees the live board again.

The frozen board is computed from the data, not from a copy taken at the freeze (so a
freeze set in the past, or moved, just works):

- the approved submissions scored at or before the freeze (coalesce(graded_at,
  submitted_at)); a submission graded or regraded after it counts from the unfreeze;
- each (student, challenge) scores max(0, its points - the costs of the hints the
  student unlocked on it at or before the freeze); the points are the stored
  points_awarded, except for a dynamic challenge, whose value is taken as of the
  freeze: value_with(its approvals at or before the freeze) * score / 100, halves up;
- totals per student, competition ranks (1, 2, 2, 4) and the live board's order
  (points, then who reached them first, then user id).

It does not change with what happens after the freeze, so it is cached per tenant
and freeze time (FROZEN), never invalidated by a solve: the first page after the
freeze computes it, the rest read it.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import BigIntegerField, Count, F, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from challenges.models import Project
from vulhub.lib.tenant_cache import TenantCache

from .models import Submission
from .selectors import PAGE_SIZE, LeaderboardPage, Standing, StudentView, _pages

# An hour: the board never changes for a given freeze; the TTL only bounds what a
# student's renamed name or a deleted challenge leaves behind.
FROZEN = TenantCache("frozen-board", seconds=3600)
FORMAT = 1  # part of every key: a change to what is cached gets keys of its own


def in_force(tenant, now: datetime | None = None) -> datetime | None:
    """The tenant's freeze time when the scoreboard is frozen now, else None."""
    freeze = tenant.scoreboard_freeze_at
    if freeze is None or (now or timezone.now()) < freeze:
        return None
    return freeze


def frozen_for(user, tenant, now: datetime | None = None) -> datetime | None:
    """The freeze time whose standings `user` sees, or None when they see live ones (staff always do)."""
    if user.is_staff:
        return None
    return in_force(tenant, now)


@dataclass(frozen=True)
class ChallengeAtFreeze:
    """A challenge's numbers as of the freeze: its solvers then, and its value then (its points when static)."""

    solves: int
    value: int
    dynamic: bool


@dataclass(frozen=True)
class FrozenBoard:
    at: datetime
    rows: tuple[Standing, ...]  # in board order, with competition ranks

    def standing(self, user_id: int) -> Standing | None:
        return next((row for row in self.rows if row.user_id == user_id), None)


def _key(at: datetime, what: str) -> str:
    return f"{at.timestamp():.6f}:{what}:f{FORMAT}"


def challenges(tenant_id: int, at: datetime) -> dict[int, ChallengeAtFreeze]:
    """Every challenge of the tenant as of the freeze, by pk (one query, then cached)."""
    return FROZEN.get_or_load(
        tenant_id, FROZEN.version(tenant_id), _key(at, "challenges"), lambda: _challenges(tenant_id, at)
    )


def _challenges(tenant_id: int, at: datetime) -> dict[int, ChallengeAtFreeze]:
    # solvers as of the freeze: an approval of then counts though a better grade superseded it since
    approvals = (
        Submission.objects.filter(
            project=OuterRef("pk"), status__in=[Submission.Status.APPROVED, Submission.Status.SUPERSEDED]
        )
        .alias(scored_at=Coalesce("graded_at", "submitted_at"))
        .filter(scored_at__lte=at)
        .order_by()
        .values("project")
        # a team is one solver (scoring.dynamic): its members' approvals carry its id
        .annotate(n=Count(Coalesce(F("team_id"), F("user_id") * -1, output_field=BigIntegerField()), distinct=True))
        .values("n")
    )
    projects = (
        Project.objects.for_tenant(tenant_id)
        .annotate(frozen_solves=Coalesce(Subquery(approvals, output_field=IntegerField()), 0))
        .only("pk", "points", "scoring", "initial_points", "minimum_points", "decay", "decay_function")
        .order_by()
    )
    return {
        p.pk: ChallengeAtFreeze(solves=p.frozen_solves, value=p.value_with(p.frozen_solves), dynamic=p.is_dynamic)
        for p in projects
    }


FROZEN_STANDINGS = """
    WITH frozen_values AS (
        SELECT * FROM unnest(%(projects)s::bigint[], %(values)s::int[]) AS v (project_id, value)
    ),
    approved AS (  -- what counted at the freeze: each student's latest approval of a challenge by then,
                   -- though a better grade superseded it since (a superseded row keeps its score and time)
        SELECT DISTINCT ON (s.user_id, s.project_id)
               s.user_id, s.project_id, s.score, p.points AS project_points,
               coalesce(s.graded_at, s.submitted_at) AS scored_at
        FROM submissions s JOIN projects p ON p.id = s.project_id
        WHERE s.tenant_id = %(tenant)s AND s.status IN ('APPROVED', 'SUPERSEDED')
          AND coalesce(s.graded_at, s.submitted_at) <= %(at)s
        ORDER BY s.user_id, s.project_id, coalesce(s.graded_at, s.submitted_at) DESC, s.id DESC
    ),
    costs AS (
        SELECT h.user_id, h.project_id, sum(h.cost) AS cost
        FROM hint_unlocks h
        WHERE h.tenant_id = %(tenant)s AND h.unlocked_at <= %(at)s
        GROUP BY h.user_id, h.project_id
    ),
    scored AS (
        SELECT a.user_id, a.scored_at,
               greatest((coalesce(v.value, a.project_points)::bigint * a.score + 50) / 100 - coalesce(c.cost, 0), 0)
                   AS points
        FROM approved a
        LEFT JOIN frozen_values v ON v.project_id = a.project_id
        LEFT JOIN costs c ON c.user_id = a.user_id AND c.project_id = a.project_id
    ),
    totals AS (
        SELECT user_id, sum(points)::int AS points, count(*)::int AS solves, max(scored_at) AS last_scored_at
        FROM scored
        GROUP BY user_id
    )
    SELECT rank() OVER (ORDER BY t.points DESC)::int, t.user_id, u.first_name, u.last_name,
           t.points, t.solves, t.last_scored_at
    FROM totals t
    JOIN users u ON u.id = t.user_id
    ORDER BY t.points DESC, t.last_scored_at, t.user_id
"""


def board(tenant_id: int, at: datetime) -> FrozenBoard:
    """The whole frozen board (two queries, then cached)."""
    return FROZEN.get_or_load(
        tenant_id, FROZEN.version(tenant_id), _key(at, "board"), lambda: compute_board(tenant_id, at)
    )


def compute_board(tenant_id: int, at: datetime) -> FrozenBoard:
    """The frozen board from the data (two queries; board() keeps it)."""
    # dynamic challenges score their value as of the freeze; static ones what was stored
    dynamic = {pk: c.value for pk, c in _challenges(tenant_id, at).items() if c.dynamic}
    params = {"tenant": tenant_id, "at": at, "projects": list(dynamic), "values": list(dynamic.values())}
    with connection.cursor() as cursor:
        cursor.execute(FROZEN_STANDINGS, params)
        rows = cursor.fetchall()
    return FrozenBoard(
        at=at,
        rows=tuple(Standing.of(*row) for row in rows),
    )


def standing(tenant_id: int, at: datetime, user_id: int, *, version=None) -> Standing | None:
    """The student's frozen standing (rank, points, solves); None when they had scored nothing by the freeze."""
    if version is None:
        version = FROZEN.version(tenant_id)
    found = FROZEN.get_or_load(
        tenant_id, version, _key(at, f"u{user_id}"), lambda: (board(tenant_id, at).standing(user_id),)
    )
    return found[0]


def total(tenant_id: int, at: datetime) -> int:
    """How many students the frozen board ranks."""
    return leaderboard_page(tenant_id, at, 1).total


def leaderboard_page(tenant_id: int, at: datetime, number: int = 1, page_size: int = PAGE_SIZE, *, version=None):
    """One page of the frozen board; past the last page, the last (as the live board's pages).

    A number past the end is not cached under its own key, so made-up numbers add no entries.
    """
    if version is None:
        version = FROZEN.version(tenant_id)
    number = max(1, int(number))

    def load():
        rows = board(tenant_id, at).rows
        if number > _pages(len(rows), page_size):
            return None
        start = (number - 1) * page_size
        return LeaderboardPage.of(
            number=number, rows=list(rows[start : start + page_size]), total=len(rows), page_size=page_size
        )

    page = FROZEN.get_or_load(tenant_id, version, _key(at, f"p{number}:{page_size}"), load)
    if page is None:
        last = _pages(len(board(tenant_id, at).rows), page_size)
        return leaderboard_page(tenant_id, at, last, page_size, version=version)
    return page


def student_view(tenant_id: int, at: datetime, user_id: int, page=None, page_size: int = PAGE_SIZE) -> StudentView:
    """The frozen board as selectors.student_view gives the live one: by default the page with the student."""
    version = FROZEN.version(tenant_id)
    mine = standing(tenant_id, at, user_id, version=version)
    my_page = (mine.rank - 1) // page_size + 1 if mine is not None else None
    try:
        number = max(1, int(page if page is not None else my_page or 1))
    except (TypeError, ValueError):
        number = 1
    return StudentView(
        board=leaderboard_page(tenant_id, at, number, page_size, version=version), mine=mine, my_page=my_page
    )
