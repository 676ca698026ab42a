"""Points over time and the list of solves: a student's scoring moments, replayed (a selector).

A student's points move at their scoring moments: a right flag or an approved grade
(scored at coalesce(graded_at, submitted_at)), and a hint unlocked with a cost. Each
challenge counts max(0, its points - the costs of the hints the student unlocked on it),
as the leaderboard counts it (scoring.leaderboard.NET_POINTS); a grade replaces the one
before it on that challenge. Replaying those moments in order gives the total after
each one: the steps of the chart.

Which points a grade is worth:

- live, each solve counts at what it scores now: the approval that counts at its stored
  points (a dynamic challenge's are kept at its current value by scoring.dynamic), an
  earlier grade that a better one superseded at its score's share of the challenge's
  current points. Grades that no longer count at all (a regrade that rejected the one
  that counted) are left out. So the last step is the leaderboard's total, exactly;
- during a scoreboard freeze (scoring.freeze), as the frozen board counts: approvals and
  hint costs up to the freeze only, a dynamic challenge at its value as of the freeze;
  the last step is the frozen total.

`progress()` gives the lines of a chart: the top ten of the board (frozen or live) and the
student. Bounded: the top ten's and the student's histories come from one query whatever
their number of submissions (and the student's alone from one when the top ten's are
cached), kept under the leaderboard's cache version, which every scoring write bumps on
commit (or, during a freeze, under the frozen board's): a warm page reads no table.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from . import freeze, leaderboard, selectors

TOP = 10
FORMAT = 1  # part of every key: a change to what is cached gets keys of its own

# Every approval (counting or superseded) and every charged hint of some students: a
# grade with its score, stored points (amount) and its challenge's points and names; a
# hint with its cost (amount).
MOMENTS = """
    SELECT 'grade' AS kind, s.user_id, s.project_id, coalesce(s.graded_at, s.submitted_at) AS at, s.id,
           s.status = 'APPROVED' AS counting, s.score, s.points_awarded AS amount,
           p.points, p.name, p.slug, p.is_published
    FROM submissions s
    JOIN projects p ON p.id = s.project_id
    WHERE s.tenant_id = %(tenant)s AND s.user_id = ANY(%(users)s) AND s.status IN ('APPROVED', 'SUPERSEDED')
      AND (%(at)s::timestamptz IS NULL OR coalesce(s.graded_at, s.submitted_at) <= %(at)s)
    UNION ALL
    SELECT 'hint', h.user_id, h.project_id, h.unlocked_at, h.id, false, NULL, h.cost, NULL, NULL, NULL, NULL
    FROM hint_unlocks h
    WHERE h.tenant_id = %(tenant)s AND h.user_id = ANY(%(users)s) AND h.cost > 0
      AND (%(at)s::timestamptz IS NULL OR h.unlocked_at <= %(at)s)
"""


@dataclass(frozen=True)
class Solve:
    """A challenge the student scored on, as it counts now (or at the freeze)."""

    project_id: int
    name: str
    slug: str
    published: bool  # its page is open to students: the list links to it
    at: datetime  # when the grade that counts was given (a right flag: when it was sent)
    score: int  # 0 to 100: below 100 is a partial grade
    points: int  # what it counts: its share of the challenge's points, less hint costs, never below 0
    hint_costs: int

    @property
    def partial(self) -> bool:
        return self.score < 100


@dataclass(frozen=True)
class History:
    """One student's total after each scoring moment that moved it, and what they scored."""

    user_id: int
    steps: tuple[tuple[datetime, int], ...] = ()  # (moment, total after it), in time order
    solves: tuple[Solve, ...] = ()  # newest first

    @property
    def total(self) -> int:
        return self.steps[-1][1] if self.steps else 0


@dataclass(frozen=True)
class Contender:
    """A line of the chart: a student of the top ten, or the student the chart is about."""

    user_id: int
    name: str
    rank: int | None  # None: not on the board
    history: History
    subject: bool  # the student the page is about


@dataclass(frozen=True)
class Progress:
    subject: History
    lines: tuple[Contender, ...]  # the top ten in board order, then the subject when not among them
    ranked: int  # students on the board (frozen or live)
    start: datetime | None  # the chart's span: a little before the first moment; None when no one has scored
    end: datetime
    frozen_at: datetime | None


def progress(tenant, user_id: int, *, frozen_at: datetime | None = None, now: datetime) -> Progress:
    """The chart of `user_id`'s points against the top ten's, as of `frozen_at` when given (else live)."""
    if frozen_at is not None:
        board = freeze.board(tenant.pk, frozen_at).rows
        top, ranked = board[:TOP], len(board)
        cache, version = freeze.FROZEN, freeze.FROZEN.version(tenant.pk)
        prefix = f"{frozen_at.timestamp():.6f}:progress"
    else:
        version = leaderboard.CACHE.version(tenant.pk)
        page = selectors.leaderboard_page(tenant.pk, 1, version=version)
        top, ranked = page.rows[:TOP], page.total
        cache, prefix = leaderboard.CACHE, "progress"
    ids = [row.user_id for row in top]
    loaded: dict[int, History] = {}

    def load_top():
        # the subject's history comes with the top ten's: one query when nothing is cached
        loaded.update(histories(tenant.pk, [*ids, user_id], frozen_at=frozen_at))
        return {i: loaded[i] for i in ids}

    top_histories = cache.get_or_load(tenant.pk, version, f"{prefix}:top:f{FORMAT}", load_top)
    missing = [i for i in ids if i not in top_histories]
    if missing:  # a frozen board recomputed since (its entries expire on their own): fill in, uncached
        top_histories = {**top_histories, **histories(tenant.pk, missing, frozen_at=frozen_at)}
    subject = top_histories.get(user_id) or cache.get_or_load(
        tenant.pk,
        version,
        f"{prefix}:u{user_id}:f{FORMAT}",
        lambda: loaded.get(user_id) or histories(tenant.pk, [user_id], frozen_at=frozen_at)[user_id],
    )
    lines = [
        Contender(row.user_id, row.name, row.rank, top_histories[row.user_id], row.user_id == user_id) for row in top
    ]
    if user_id not in top_histories:
        lines.append(Contender(user_id, "", None, subject, True))
    start, end = _span([line.history for line in lines], frozen_at or now, tenant.event_ends_at)
    return Progress(subject, tuple(lines), ranked, start, end, frozen_at)


def history(tenant_id: int, user_id: int, *, frozen_at: datetime | None = None) -> History:
    """One student's history, uncached (one query)."""
    return histories(tenant_id, [user_id], frozen_at=frozen_at)[user_id]


def histories(tenant_id: int, user_ids: list[int], *, frozen_at: datetime | None = None) -> dict[int, History]:
    """The histories of some students (one query; two during a freeze while its challenges are not cached)."""
    values = {}
    if frozen_at is not None:  # a dynamic challenge scores its value as of the freeze
        values = {pk: c.value for pk, c in freeze.challenges(tenant_id, frozen_at).items() if c.dynamic}
    with connection.cursor() as cursor:
        cursor.execute(MOMENTS, {"tenant": tenant_id, "users": list(set(user_ids)), "at": frozen_at})
        columns = [c.name for c in cursor.description]
        rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    by_user = defaultdict(list)
    for row in rows:
        by_user[row["user_id"]].append(row)
    return {
        user_id: replay(user_id, by_user.get(user_id, []), live=frozen_at is None, values=values)
        for user_id in user_ids
    }


def share(points: int, score: int) -> int:
    """round(points * score / 100), halves up: what a grade of a challenge worth `points` scores."""
    return (points * score + 50) // 100


def replay(user_id: int, rows: list[dict], *, live: bool, values: dict[int, int] | None = None) -> History:
    """A student's history from their grades and charged hints (rows of MOMENTS), in any order."""
    values = values or {}
    if live:
        rows = _still_counting(rows)
        # in time order; at one instant the grade that counts comes after the one it superseded
        rows = sorted(rows, key=lambda r: (r["at"], r["kind"] == "grade", r["counting"], r["id"]))
    else:  # in time order; at one instant the last grade counts, as on the frozen board
        rows = sorted(rows, key=lambda r: (r["at"], r["kind"] == "grade", r["id"]))
    grade: dict[int, dict] = {}  # challenge -> the grade that counts so far
    costs: dict[int, int] = defaultdict(int)

    def net(project_id: int) -> int:
        row = grade.get(project_id)
        if row is None:
            return 0
        if live and row["counting"]:
            worth = row["amount"]
        else:
            worth = share(values.get(project_id, row["points"]), row["score"])
        return max(0, worth - costs[project_id])

    total, steps = 0, []
    for row in rows:
        project_id = row["project_id"]
        before = net(project_id)
        if row["kind"] == "hint":
            costs[project_id] += row["amount"]
        else:
            grade[project_id] = row
        delta = net(project_id) - before
        if not delta:
            continue
        total += delta
        if steps and steps[-1][0] == row["at"]:
            steps[-1] = (row["at"], total)
        else:
            steps.append((row["at"], total))
    solves = [
        Solve(
            project_id=pid,
            name=row["name"],
            slug=row["slug"],
            published=row["is_published"],
            at=row["at"],
            score=row["score"],
            points=net(pid),
            hint_costs=costs[pid],
        )
        for pid, row in grade.items()
    ]
    solves.sort(key=lambda s: (s.at, s.project_id), reverse=True)
    return History(user_id=user_id, steps=tuple(steps), solves=tuple(solves))


def _still_counting(rows: list[dict]) -> list[dict]:
    """Live: the grades of a challenge up to the one that counts now; none where none counts."""
    counting_at = {r["project_id"]: r["at"] for r in rows if r["kind"] == "grade" and r["counting"]}
    return [
        r
        for r in rows
        if r["kind"] == "hint" or (r["project_id"] in counting_at and r["at"] <= counting_at[r["project_id"]])
    ]


def _span(histories: list[History], end: datetime, event_ends_at: datetime | None):
    """The chart's span: from a little before the first moment to `end` (the event's end when it is over)."""
    moments = [moment for h in histories for moment, _ in h.steps]
    if not moments:
        return None, end
    first, last = min(moments), max(moments)
    if event_ends_at is not None and event_ends_at < end:
        end = max(event_ends_at, last)
    end = max(end, last)
    lead = max((end - first) / 25, timedelta(minutes=1))
    return first - lead, end
