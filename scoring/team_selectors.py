"""Reads of the team pages: the team standings (cached with the students' board), a team, its members and solves.

The live standings are cached through leaderboard.CACHE, under the same version as the
students' board: every solve and grading that moves a team's row bumps it on commit
(scoring.team_board), so a page is never stale for points. A team's name and member count
on a cached page follow on the next bump, or within the cache's five minutes. The frozen
standings (a student's view during a scoreboard freeze) come from
team_board.standings_until and are kept per freeze time in freeze.FROZEN, as the
students' frozen board is; the names and member counts of a frozen page's teams are
read live (one query), since teams change during a freeze.
"""

import html
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils.safestring import SafeString, mark_safe

from . import freeze, leaderboard, team_board
from .models import Submission, Team, TeamLeaderboard, TeamMembership
from .selectors import PAGE_SIZE, _pages

# Part of every cache key: a change to what is cached gets keys of its own.
FORMAT = 1


def public_name(first_name: str, last_name: str, user_id: int) -> str:
    """A student's name as the class sees it (the leaderboard's rule): never their e-mail address."""
    return f"{first_name} {last_name}".strip() or f"Student {user_id}"


@dataclass(frozen=True)
class TeamStanding:
    """A row of the team standings."""

    rank: int
    team_id: int
    name: str
    members: int
    points: int
    solves: int


@dataclass(frozen=True)
class TeamScore:
    """One team's place: its rank, points and solves."""

    rank: int
    points: int
    solves: int


ROW_HTML = (
    '<tr><td class="num rank" data-label="Rank">{0}</td><th scope="row"><a href="{1}{2}/">{3}</a></th>'
    '<td class="num" data-label="Members">{4}</td><td class="num" data-label="Points">{5}</td>'
    '<td class="num" data-label="Solves">{6}</td></tr>'
)
MY_ROW_HTML = (
    '<tr class="me" id="me" aria-current="true"><td class="num rank" data-label="Rank">{0}</td>'
    '<th scope="row"><a href="{1}{2}/">{3}</a> <span class="pill pill--you">Your team</span></th>'
    '<td class="num" data-label="Members">{4}</td><td class="num" data-label="Points">{5}</td>'
    '<td class="num" data-label="Solves">{6}</td></tr>'
)


@dataclass(frozen=True)
class TeamsPage:
    number: int
    rows: tuple[TeamStanding, ...]
    total: int
    page_size: int

    @property
    def pages(self) -> int:
        return _pages(self.total, self.page_size)

    def body_for(self, team_id: int | None, teams_url: str) -> SafeString:
        """The table's rows, the team `team_id` marked: formatted here rather than by a template loop.

        What the template gave (the name escaped, the numbers as numbers), in a fraction of its
        time: the page's rows were half of its CPU (scenario 19, bench/profile_page.py).
        """
        prefix = html.escape(teams_url)
        return mark_safe(  # noqa: S308  (the name is escaped, the rest are numbers)
            "".join(
                (MY_ROW_HTML if row.team_id == team_id else ROW_HTML).format(
                    int(row.rank),
                    prefix,
                    int(row.team_id),
                    html.escape(str(row.name)),
                    int(row.members),
                    int(row.points),
                    int(row.solves),
                )
                for row in self.rows
            )
        )


@dataclass(frozen=True)
class TeamsView:
    """What the team standings page shows: a page of the board, and the student's team's place on it."""

    board: TeamsPage
    mine: TeamScore | None
    my_page: int | None  # the page their team's rank is on


@dataclass(frozen=True)
class Member:
    user_id: int
    name: str
    joined_at: datetime


@dataclass(frozen=True)
class TeamWithMembers:
    team: Team
    members: tuple[Member, ...]

    def has(self, user_id: int) -> bool:
        return any(member.user_id == user_id for member in self.members)


@dataclass(frozen=True)
class TeamSolve:
    """A challenge the team solved: the member whose answer counts for it (the first), and when."""

    project_name: str
    project_slug: str
    published: bool
    user_id: int
    solver: str
    at: datetime


def _members_count(tenant_id: int, team_ref: str):
    counts = (
        TeamMembership.objects.for_tenant(tenant_id)
        .filter(team_id=OuterRef(team_ref))
        .order_by()
        .values("team_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counts, output_field=IntegerField()), 0)


# --- The live standings (leaderboard.CACHE) ------------------------------------------------


def teams_page(tenant_id: int, number: int = 1, page_size: int = PAGE_SIZE, *, version=None) -> TeamsPage:
    """One page of the tenant's team standings, from the cache when fresh; past the last page, the last.

    As selectors.leaderboard_page: a number past the end is not cached under its own key.
    """
    number = max(1, int(number))
    if version is None:
        version = leaderboard.CACHE.version(tenant_id)
    page = _cached(tenant_id, version, f"p{number}:{page_size}", lambda: _load_page(tenant_id, number, page_size))
    if page is None:  # past the end
        last = _pages(TeamLeaderboard.objects.for_tenant(tenant_id).count(), page_size)
        return teams_page(tenant_id, last, page_size, version=version)
    return page


def _load_page(tenant_id: int, number: int, page_size: int) -> TeamsPage | None:
    board = TeamLeaderboard.objects.for_tenant(tenant_id)
    total = board.count()
    if number > _pages(total, page_size):
        return None
    start = (number - 1) * page_size
    rows = (
        board.ranked()
        .annotate(members=_members_count(tenant_id, "team_id"))
        .values_list("rank", "team_id", "team__name", "members", "points", "solves")[start : start + page_size]
    )
    return TeamsPage(number, tuple(TeamStanding(*row) for row in rows), total, page_size)


def team_score(tenant_id: int, team_id: int, *, frozen_at: datetime | None = None, version=None) -> TeamScore | None:
    """The team's rank, points and solves (live, or as of `frozen_at`); None when it has no solve. Cached."""
    if frozen_at is not None:
        rows = frozen_rows(tenant_id, frozen_at)
        return next((TeamScore(rank, points, solves) for rank, team, points, solves in rows if team == team_id), None)
    if version is None:
        version = leaderboard.CACHE.version(tenant_id)

    def load():
        row = TeamLeaderboard.objects.for_tenant(tenant_id).filter(team_id=team_id)
        return tuple(TeamScore(*found) for found in row.values_list("rank", "points", "solves"))

    found = _cached(tenant_id, version, f"t{team_id}", load)
    return found[0] if found else None


def _cached(tenant_id: int, version, what: str, load):
    # the "teams:" prefix keeps these apart from the students' pages under the same version
    return leaderboard.CACHE.get_or_load(tenant_id, version, f"teams:{what}:f{FORMAT}", load)


# --- The frozen standings (freeze.FROZEN) ----------------------------------------------------


def frozen_rows(tenant_id: int, at: datetime) -> tuple[tuple[int, int, int, int], ...]:
    """(rank, team_id, points, solves) as of the freeze, best first, with competition ranks (cached per freeze)."""

    def load():
        rows, ranked, rank = team_board.standings_until(tenant_id, at), [], 0
        for position, (team_id, points, solves, _last) in enumerate(rows, start=1):
            if position == 1 or points != ranked[-1][2]:
                rank = position
            ranked.append((rank, team_id, points, solves))
        return tuple(ranked)

    key = f"{at.timestamp():.6f}:teams:f{FORMAT}"
    return freeze.FROZEN.get_or_load(tenant_id, freeze.FROZEN.version(tenant_id), key, load)


def frozen_teams_page(tenant_id: int, at: datetime, number: int = 1, page_size: int = PAGE_SIZE) -> TeamsPage:
    """A page of the frozen standings; past the last page, the last. The teams' names and sizes as they are now."""
    rows = frozen_rows(tenant_id, at)
    number = min(max(1, int(number)), _pages(len(rows), page_size))
    start = (number - 1) * page_size
    page = rows[start : start + page_size]
    names = {
        pk: (name, members)
        for pk, name, members in Team.objects.for_tenant(tenant_id)
        .filter(pk__in=[row[1] for row in page])
        .annotate(members=_members_count(tenant_id, "pk"))
        .values_list("pk", "name", "members")
    }
    standings = tuple(
        TeamStanding(rank, team_id, *names[team_id], points, solves)
        for rank, team_id, points, solves in page
        if team_id in names  # a team dissolved since the freeze has no name left to show
    )
    return TeamsPage(number, standings, len(rows), page_size)


# --- What the pages read ---------------------------------------------------------------------


def standings_view(
    tenant_id: int, page=None, *, team_id: int | None = None, frozen_at: datetime | None = None, version=None
) -> TeamsView:
    """The page `page` asks for (a number, as typed), by default the one with the student's team (as student_view).

    `version`: the cache's version, when the caller has read it already.
    """
    if frozen_at is None and version is None:
        version = leaderboard.CACHE.version(tenant_id)
    mine = team_score(tenant_id, team_id, frozen_at=frozen_at, version=version) if team_id else None
    my_page = (mine.rank - 1) // PAGE_SIZE + 1 if mine is not None else None
    try:
        number = max(1, int(page if page is not None else my_page or 1))
    except (TypeError, ValueError):
        number = 1
    if frozen_at is not None:
        board = frozen_teams_page(tenant_id, frozen_at, number)
    else:
        board = teams_page(tenant_id, number, version=version)
    return TeamsView(board=board, mine=mine, my_page=my_page)


def team_of_student(tenant_id: int, user_id: int) -> TeamWithMembers | None:
    """The student's team with all its members (one query), or None."""
    rows = list(
        TeamMembership.objects.for_tenant(tenant_id)
        .filter(team__memberships__user_id=user_id)
        .select_related("team", "user")
        .order_by("joined_at", "pk")
    )
    return _with_members(rows[0].team, rows) if rows else None


def team_with_members(tenant_id: int, team_id: int) -> TeamWithMembers | None:
    """A team of the tenant with its members (two queries), or None (another tenant's team, or none)."""
    team = Team.objects.for_tenant(tenant_id).filter(pk=team_id).first()
    if team is None:
        return None
    rows = TeamMembership.objects.for_tenant(tenant_id).filter(team_id=team.pk).select_related("user")
    return _with_members(team, list(rows.order_by("joined_at", "pk")))


def _with_members(team: Team, rows: list[TeamMembership]) -> TeamWithMembers:
    members = tuple(
        Member(row.user_id, public_name(row.user.first_name, row.user.last_name, row.user_id), row.joined_at)
        for row in rows
    )
    return TeamWithMembers(team=team, members=members)


def team_solves(tenant_id: int, team_id: int, *, until: datetime | None = None) -> list[TeamSolve]:
    """The challenges the team solved, newest first, each with its first solver (whose answer counts).

    With `until` (a freeze), only those scored by then. One query.
    """
    answers = (
        Submission.objects.for_tenant(tenant_id)
        .filter(team_id=team_id, status=Submission.Status.APPROVED)
        .annotate(scored_at=Coalesce("graded_at", "submitted_at"))
    )
    if until is not None:
        answers = answers.filter(scored_at__lte=until)
    # the first scored answer of each challenge: team_board's rule of which answer counts
    firsts = (
        answers.order_by("project_id", "scored_at", "id")
        .distinct("project_id")
        .values_list(
            "project__name",
            "project__slug",
            "project__is_published",
            "user_id",
            "user__first_name",
            "user__last_name",
            "scored_at",
        )
    )
    solves = [
        TeamSolve(name, slug, published, user_id, public_name(first, last, user_id), at)
        for name, slug, published, user_id, first, last, at in firsts
    ]
    return sorted(solves, key=lambda solve: solve.at, reverse=True)
