"""Which challenges a student sees, opens and answers: the one place that decides.

A challenge is *visible* to a student when it is published, its open time has come
and the tenant's event has started; anything else is a 404 (its page, its files, its
hints). A visible challenge is *locked* while a prerequisite is unsolved, and *closed*
(read-only: seen, not answered) after its close time or after the tenant's event has
ended. Pages, file downloads, hint unlocks and the submission service all ask here.

Prerequisites count when published: an unpublished one locks nothing (students could
never solve it). One that is published but not open yet locks without being named
("a challenge that opens later"): a hidden challenge's name is not shown.

Every time in a message is written in the tenant's time zone (tenants.time_zone).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from challenges.models import Prerequisite, Project
from tenants.time_zone import when, zone_of

from .models import Submission

LATER = "a challenge that opens later"


@dataclass(frozen=True)
class Requirement:
    """An unsolved prerequisite, as the student may see it: its name and a link, or neither."""

    name: str
    slug: str = ""  # "" when the student cannot open it yet (no link)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Access:
    """Where a student stands with a challenge's gates (not their progress: see catalogue.ChallengeState)."""

    visible: bool
    locked_by: tuple[Requirement, ...] = ()  # the unsolved prerequisites (str() of each: its name)
    closed_reason: str = ""  # why no answer is taken now ("" when answers are taken)
    countdown: str = ""  # while answers are taken and it closes before the event ends: "Closes in 3 hours, on …"

    @property
    def locked(self) -> bool:
        return bool(self.locked_by)

    @property
    def usable(self) -> bool:
        """Its description shows, files may be downloaded and hints unlocked."""
        return self.visible and not self.locked

    @property
    def closed(self) -> bool:
        return bool(self.closed_reason)

    @property
    def takes_answers(self) -> bool:
        return self.refusal() is None

    @property
    def lock_text(self) -> str:
        """ "solve X and Y first" (plain text), "" when unlocked."""
        return f"solve {and_list([str(r) for r in self.locked_by])} first" if self.locked else ""

    def refusal(self) -> str | None:
        """Why an answer (or a hint unlock) is refused now, or None."""
        if not self.visible:
            return "This challenge is not open for submissions."
        if self.locked:
            return f"This challenge is locked: {self.lock_text}."
        return self.closed_reason or None


HIDDEN = Access(visible=False)


def and_list(words: list[str]) -> str:
    """ "X", "X and Y", "X, Y and Z"."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


def countdown(moment: datetime, now: datetime) -> str:
    """How long until `moment`, in its two largest units: "2 days", "1 day and 23 hours", "3 hours and
    5 minutes", "1 minute", "less than a minute" (a zero second unit is left out)."""
    seconds = int((moment - now).total_seconds())
    for n, (unit, size) in enumerate(UNITS):
        if seconds >= size:
            count, rest = divmod(seconds, size)
            text = _plural(count, unit)
            if n + 1 < len(UNITS):
                smaller, smaller_size = UNITS[n + 1]
                if rest // smaller_size:
                    text += f" and {_plural(rest // smaller_size, smaller)}"
            return text
    return "less than a minute"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


# --- The tenant's event window -------------------------------------------------------------


def event_started(tenant, now: datetime) -> bool:
    return tenant.event_starts_at is None or now >= tenant.event_starts_at


def event_ended(tenant, now: datetime) -> bool:
    return tenant.event_ends_at is not None and now >= tenant.event_ends_at


def event_notice(tenant, now: datetime) -> str:
    """What the catalogue says about the tenant's event now (plain text), "" when it has no window."""
    zone = zone_of(tenant)
    if not event_started(tenant, now):
        start = tenant.event_starts_at
        return (
            f"The event starts in {countdown(start, now)}, on {when(start, zone)}. "
            "The challenges appear here then, and answers are taken from that time."
        )
    if event_ended(tenant, now):
        ended = when(tenant.event_ends_at, zone)
        return f"The event ended on {ended}. The challenges are read-only: no more answers are taken."
    if tenant.event_ends_at is not None:
        end = tenant.event_ends_at
        return f"The event ends in {countdown(end, now)}, on {when(end, zone)}. No answers are taken after that."
    return ""


# --- One challenge -------------------------------------------------------------------------


def gates(
    *,
    tenant,
    opens_at: datetime | None,
    closes_at: datetime | None,
    now: datetime,
    unsolved: Iterable[Requirement] = (),
) -> Access:
    """The gates of a published challenge of `tenant`, given its unsolved prerequisites (no query)."""
    if (opens_at is not None and now < opens_at) or not event_started(tenant, now):
        return HIDDEN
    zone = zone_of(tenant)
    locked_by = _named(unsolved)
    if closes_at is not None and now >= closes_at:
        return Access(True, locked_by, f"Closed on {when(closes_at, zone)}: this challenge no longer takes answers.")
    if event_ended(tenant, now):
        return Access(
            True, locked_by, f"The event ended on {when(tenant.event_ends_at, zone)}: no more answers are taken."
        )
    text = ""
    # the challenge's own close, when it comes before the event's end (event_notice tells that one)
    if closes_at is not None and (tenant.event_ends_at is None or closes_at < tenant.event_ends_at):
        text = f"Closes in {countdown(closes_at, now)}, on {when(closes_at, zone)}."
    return Access(True, locked_by, "", text)


def _named(unsolved: Iterable[Requirement]) -> tuple[Requirement, ...]:
    """The requirements with the ones that open later counted, not repeated."""
    unsolved = list(unsolved)
    later = sum(1 for r in unsolved if not r.slug)
    named = [r for r in unsolved if r.slug]
    if later == 1:
        named.append(Requirement(LATER))
    elif later > 1:
        named.append(Requirement(f"{later} challenges that open later"))
    return tuple(named)


def solved_q(user) -> Q:
    """The student's solves: an approved submission with a full score (catalogue.ChallengeState.solved)."""
    return Q(user=user, status=Submission.Status.APPROVED, score__gte=100)


def with_unsolved_prerequisites(queryset, user):
    """Challenges annotated with `unsolved_ids`: the pks of their published prerequisites `user` has not solved.

    A page that loads its challenge this way (challenge_views.get_project_for) learns
    whether it is locked without a query of its own.
    """
    solved = Submission.objects.filter(solved_q(user), tenant_id=OuterRef("tenant_id"), project=OuterRef("required_id"))
    unsolved = (
        Prerequisite.objects.filter(
            tenant_id=OuterRef("tenant_id"), project=OuterRef("pk"), required__is_published=True
        )
        .filter(~Exists(solved))
        .order_by("required_id")
        .values("required_id")
    )
    return queryset.annotate(unsolved_ids=ArraySubquery(unsolved))


def unsolved_requirements(user, project: Project, now: datetime) -> list[Requirement]:
    """The published prerequisites of `project` the student has not solved, by name.

    One query; none when `project` came annotated (with_unsolved_prerequisites) with none unsolved.
    """
    rows = Project.objects.for_tenant(project.tenant_id)
    ids = getattr(project, "unsolved_ids", None)
    if ids is None:
        solved = Submission.objects.for_tenant(project.tenant_id).filter(solved_q(user), project=OuterRef("pk"))
        rows = rows.filter(unlocks=project, is_published=True).filter(~Exists(solved))
    elif ids:
        rows = rows.filter(pk__in=ids)
    else:
        return []
    return [
        Requirement(name, slug) if opens_at is None or opens_at <= now else Requirement(LATER)
        for name, slug, opens_at in rows.order_by("name").values_list("name", "slug", "opens_at")
    ]


def challenge_access(user, project: Project, now: datetime | None = None) -> Access:
    """The student's access to `project` now (one query for its prerequisites when it is visible).

    The tenant is `project.tenant`: pages set it from the request's (challenge_views),
    so reading it costs no query there.
    """
    now = now or timezone.now()
    if user.tenant_id != project.tenant_id or not project.is_published:
        return HIDDEN
    tenant = project.tenant
    if not project.is_open_at(now) or not event_started(tenant, now):
        return HIDDEN
    return gates(
        tenant=tenant,
        opens_at=project.opens_at,
        closes_at=project.closes_at,
        now=now,
        unsolved=unsolved_requirements(user, project, now),
    )


# --- Querysets -----------------------------------------------------------------------------


def visible_q(now: datetime) -> Q:
    """The published challenges whose open time has come (a filter on Project)."""
    return Q(is_published=True) & (Q(opens_at__isnull=True) | Q(opens_at__lte=now))


def visible_projects(tenant, now: datetime | None = None, *, user=None):
    """The tenant's challenges students see now (none before its event starts); with `user`, annotated
    with the prerequisites they have not solved (with_unsolved_prerequisites)."""
    now = now or timezone.now()
    if not event_started(tenant, now):
        return Project.objects.none()
    projects = Project.objects.for_tenant(tenant).filter(visible_q(now))
    return with_unsolved_prerequisites(projects, user) if user is not None else projects
