"""The challenge catalogue as a student sees it: published challenges, their solve counts, their own progress.

The tenant-wide part (published challenges, those that open later included, with
their solve counts, windows and prerequisites) is cached in challenges.selectors.CATALOGUE,
per tenant and version; every change that moves it (a solve, a regrade, publishing, an
edit) bumps the version on commit. The student's own progress (ChallengeState, per
challenge) is one query; what they see now (open, locked, closed: scoring.access.gates)
is decided from the two without another. It lives in scoring because the counts and the
progress are submissions: challenges never reads scoring.

ChallengeState is the one definition of where a student stands on a challenge: the
catalogue, a challenge's page, the dashboard, the profile and the rule that takes or
refuses a new answer (scoring.services) all read it from the same aggregates.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.postgres.expressions import ArraySubquery
from django.db import models
from django.db.models import Count, IntegerField, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from challenges.models import Prerequisite, Project
from challenges.selectors import CATALOGUE, DIFFICULTY_ORDER

from . import access, freeze
from .models import Submission


class Progress(models.TextChoices):
    NEW = "new", "Not tried yet"
    SOLVED = "solved", "Solved"
    PARTIAL = "partial", "Partly solved"
    PENDING = "pending", "Waiting for grading"
    TRIED = "tried", "Tried"


@dataclass(frozen=True)
class ChallengeState:
    """Where a student stands on one challenge, from their submissions of it.

    Solved: the approved submission has score 100 (a right flag always has). Partly
    solved: it has less (a write-up graded 60/100); a better write-up may follow.
    Waiting for grading: a write-up is pending (it can come on top of a partial grade).
    Tried: only rejected submissions. New: none at all.
    """

    score: int | None = None  # the approved submission's score: the grade that counts
    points: int = 0  # its points
    pending: bool = False  # a submission waits for grading
    attempts: int = 0  # every submission, rejected and superseded ones included

    @classmethod
    def of(cls, row: dict) -> "ChallengeState":
        """From a row of `state_aggregates()`."""
        return cls(
            score=row["approved_score"],
            points=row["approved_points"] or 0,
            pending=bool(row["pending_count"]),
            attempts=row["attempt_count"] or 0,
        )

    @property
    def progress(self) -> Progress:
        if self.score is not None:
            return Progress.SOLVED if self.score >= 100 else Progress.PARTIAL
        if self.pending:
            return Progress.PENDING
        return Progress.TRIED if self.attempts else Progress.NEW

    @property
    def solved(self) -> bool:
        return self.progress == Progress.SOLVED

    @property
    def partial(self) -> bool:
        return self.progress == Progress.PARTIAL

    @property
    def tried(self) -> bool:
        return self.progress == Progress.TRIED

    @property
    def label(self) -> str:
        """What the pages show: Partly solved (60/100), Solved, Waiting for grading, Tried or Not tried yet."""
        if self.partial:
            return f"{Progress.PARTIAL.label} ({self.score}/100)"
        return self.progress.label

    @property
    def can_submit(self) -> bool:
        """Whether a new answer is taken: not after a full score, not while one waits for grading."""
        return not self.solved and not self.pending

    def matches(self, wanted: str) -> bool:
        """Whether the catalogue's "My progress" filter value `wanted` keeps this challenge."""
        if not wanted:
            return True
        if wanted == "no":  # not solved: anything short of a full score
            return not self.solved
        if wanted == "yes":
            return self.solved
        if wanted == Progress.PENDING:
            return self.pending
        return self.progress == wanted


UNTRIED = ChallengeState()

# The catalogue's "My progress" filter: (value, label). "yes" and "no" keep the old links working.
PROGRESS_FILTERS = [
    ("yes", "Solved"),
    (Progress.PARTIAL.value, "Partly solved"),
    (Progress.PENDING.value, "Waiting for grading"),
    (Progress.TRIED.value, "Tried"),
    (Progress.NEW.value, "Not tried yet"),
    ("no", "Not solved"),
]


def state_aggregates(**whose) -> dict:
    """The aggregates ChallengeState.of reads, over submissions of one challenge.

    `whose` narrows them to one student's rows (`user_id=7`) inside a wider aggregate,
    such as a challenge's page counting every student's solves in the same query.
    There is at most one approved submission per student and challenge, so Max reads it.
    """
    mine = Q(**whose)
    approved = mine & Q(status=Submission.Status.APPROVED)
    return {
        "approved_score": Max("score", filter=approved),
        "approved_points": Max("points_awarded", filter=approved),
        "pending_count": Count("pk", filter=mine & Q(status=Submission.Status.PENDING)),
        "attempt_count": Count("pk", filter=mine) if whose else Count("pk"),
    }


def challenge_state(tenant_id: int, user, project) -> ChallengeState:
    """The student's state on one challenge (one query)."""
    row = Submission.objects.for_tenant(tenant_id).filter(user=user, project=project).aggregate(**state_aggregates())
    return ChallengeState.of(row)


@dataclass(frozen=True)
class StudentChallenges:
    """A student's state on each challenge they have submitted to, and their number of submissions."""

    states: dict[int, ChallengeState]  # by challenge pk, published challenges only
    submissions: int  # all of them, on unpublished challenges too

    def state(self, project_id: int) -> ChallengeState:
        return self.states.get(project_id, UNTRIED)


def student_challenges(tenant_id: int, user) -> StudentChallenges:
    """The student's progress on every challenge they have tried: one query, grouped by challenge."""
    rows = (
        Submission.objects.for_tenant(tenant_id)
        .filter(user=user)
        .values("project_id", "project__is_published")
        .annotate(**state_aggregates())
        .order_by()
    )
    states, total = {}, 0
    for row in rows:
        total += row["attempt_count"]
        if row["project__is_published"]:
            states[row["project_id"]] = ChallengeState.of(row)
    return StudentChallenges(states=states, submissions=total)


@dataclass(frozen=True)
class ProgressCounts:
    """How many challenges a student has in each state (a partial grade with a pending
    write-up counts as partly solved and as waiting, as the catalogue's filters do)."""

    solved: int = 0
    partial: int = 0
    pending: int = 0
    tried: int = 0

    @classmethod
    def of(cls, states: Iterable[ChallengeState]) -> "ProgressCounts":
        states = list(states)
        return cls(
            solved=sum(s.solved for s in states),
            partial=sum(s.partial for s in states),
            pending=sum(s.pending for s in states),
            tried=sum(s.tried for s in states),
        )

    def __bool__(self) -> bool:
        return bool(self.solved or self.partial or self.pending or self.tried)


@dataclass(frozen=True)
class CatalogueFilters:
    q: str = ""
    category: str = ""
    difficulty: str = ""
    solved: str = ""  # "My progress": "" or a value of PROGRESS_FILTERS


OPEN = access.Access(visible=True)


@dataclass(frozen=True)
class Entry:
    pk: int
    slug: str
    name: str
    category: str
    difficulty: str
    difficulty_label: str
    points: int
    solves: int
    search_text: str
    opens_at: datetime | None = None
    closes_at: datetime | None = None
    requires: tuple[int, ...] = ()  # the pks of its published prerequisites
    dynamic: bool = False
    initial_points: int | None = None  # a dynamic challenge's value with no solver (shown in a freeze when new)
    solved: bool = False
    state: ChallengeState = UNTRIED  # the student's progress; the cached entries hold UNTRIED
    gates: access.Access = OPEN  # its gates for the student now (scoring.access); the cached entries hold OPEN

    def get_difficulty_display(self) -> str:
        return self.difficulty_label


def catalogue_rows(tenant_id: int):
    """The tenant's published challenges with their solve counts and published prerequisites."""
    approved = (
        Submission.objects.filter(project=OuterRef("pk"), status="APPROVED")
        .order_by()
        .values("project")
        .annotate(n=Count("*"))
        .values("n")
    )
    requires = Prerequisite.objects.filter(
        tenant_id=tenant_id, project=OuterRef("pk"), required__is_published=True
    ).values("required_id")
    # one short index-only count per challenge (idx_submissions_solves, tenant included for
    # row-level security), not a join that reads every submission of the class
    return (
        Project.objects.for_tenant(tenant_id)
        .published()
        .annotate(solves=Coalesce(Subquery(approved, output_field=IntegerField()), 0), requires=ArraySubquery(requires))
        .order_by("name")
    )


def _order(entry: Entry):
    return (DIFFICULTY_ORDER.get(entry.difficulty, 9), entry.points, entry.name)


def _entries(tenant_id: int) -> list[Entry]:
    rows = catalogue_rows(tenant_id)
    entries = [
        Entry(
            pk=p.pk,
            slug=p.slug,
            name=p.name,
            category=p.category,
            difficulty=p.difficulty,
            difficulty_label=p.get_difficulty_display(),
            points=p.points,
            solves=p.solves,
            search_text=f"{p.name}\n{p.description}".lower(),
            opens_at=p.opens_at,
            closes_at=p.closes_at,
            requires=tuple(sorted(p.requires)),
            dynamic=p.is_dynamic,
            initial_points=p.value_with(0) if p.is_dynamic else None,
        )
        for p in rows
    ]
    return sorted(entries, key=_order)


# Part of the cache key: entries cached by an earlier Entry (without windows, prerequisites or
# the initial value) are never read.
ENTRIES_FORMAT = 3


def cached_entries(tenant_id: int) -> list[Entry]:
    """Every published challenge of the tenant, those that open later included (cached)."""
    version = CATALOGUE.version(tenant_id)
    return CATALOGUE.get_or_load(tenant_id, version, f"entries:f{ENTRIES_FORMAT}", lambda: _entries(tenant_id))


def _requirements(entry: Entry, by_pk: dict[int, Entry], solved: set[int], now: datetime):
    """The entry's unsolved prerequisites by name (as access.unsolved_requirements gives them)."""
    unsolved = sorted((by_pk[pk] for pk in entry.requires if pk in by_pk and pk not in solved), key=lambda e: e.name)
    for required in unsolved:
        opened = required.opens_at is None or required.opens_at <= now
        yield access.Requirement(required.name, required.slug) if opened else access.Requirement(access.LATER)


def visible_entries(tenant, user, now: datetime | None = None) -> list[Entry]:
    """The challenges the student sees now, each with their state and its gates (no query but their progress).

    During a scoreboard freeze a student sees each challenge's solves, and a dynamic
    one's value, as of the freeze (scoring.freeze): no live number shows.
    """
    now = now or timezone.now()
    if not access.event_started(tenant, now):
        return []
    mine = student_challenges(tenant.pk, user)
    every = cached_entries(tenant.pk)
    by_pk = {entry.pk: entry for entry in every}
    solved = {pk for pk, state in mine.states.items() if state.solved}
    frozen_at = freeze.frozen_for(user, tenant, now)
    at_freeze = freeze.challenges(tenant.pk, frozen_at) if frozen_at else None
    result = []
    for entry in every:
        seen = access.gates(
            tenant=tenant,
            opens_at=entry.opens_at,
            closes_at=entry.closes_at,
            now=now,
            unsolved=_requirements(entry, by_pk, solved, now),
        )
        if not seen.visible:
            continue
        state = mine.state(entry.pk)
        numbers = {}
        if at_freeze is not None:
            then = at_freeze.get(entry.pk)  # None: added since the freeze (no solve counted by then)
            numbers = {"solves": then.solves if then else 0}
            if entry.dynamic:  # never the live value: one added since the freeze shows its value with no solver
                numbers["points"] = then.value if then is not None else entry.initial_points
        result.append(Entry(**{**entry.__dict__, **numbers, "solved": state.solved, "state": state, "gates": seen}))
    if at_freeze is not None:
        result.sort(key=_order)
    return result


@dataclass(frozen=True)
class Upcoming:
    """The published challenges that open later: how many, and when the next one does."""

    count: int = 0
    next_at: datetime | None = None


def upcoming(tenant, now: datetime | None = None) -> Upcoming:
    now = now or timezone.now()
    later = [e.opens_at for e in cached_entries(tenant.pk) if e.opens_at is not None and e.opens_at > now]
    return Upcoming(count=len(later), next_at=min(later, default=None))


def catalogue(tenant, user, filters: CatalogueFilters, now: datetime | None = None) -> list[Entry]:
    """The challenges a student sees, filtered, each with the student's state on it and its gates."""
    needle = filters.q.lower()
    result = []
    for entry in visible_entries(tenant, user, now):
        # a locked challenge hides its description: a search matches its name only
        searched = entry.name.lower() if entry.gates.locked else entry.search_text
        if needle and needle not in searched:
            continue
        if filters.category and entry.category != filters.category:
            continue
        if filters.difficulty and entry.difficulty != filters.difficulty:
            continue
        if not entry.state.matches(filters.solved):
            continue
        result.append(entry)
    return result


def categories(tenant, now: datetime | None = None) -> list[str]:
    """The categories of the challenges students see now (one that opens later names none)."""
    now = now or timezone.now()
    if not access.event_started(tenant, now):
        return []
    return sorted({e.category for e in cached_entries(tenant.pk) if e.opens_at is None or e.opens_at <= now})
