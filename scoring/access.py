"""Which challenges a student sees, opens and answers: the one place that decides.

A challenge is *visible* to a student when it is published and its open time has come;
anything else is a 404 (its page, its files, its hints). A visible challenge is
*locked* while a prerequisite is unsolved, and *closed* (read-only) after its close
time or outside the tenant's event window. Pages, file downloads, hint unlocks and
the submission service all ask here.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from challenges.models import Project


@dataclass(frozen=True)
class Access:
    """Where a student stands with a challenge's gates (not their progress: see catalogue.ChallengeState)."""

    visible: bool
    locked_by: tuple[str, ...] = ()  # names of the unsolved prerequisites
    closed_reason: str = ""  # why no answer is taken now ("" when answers are taken)

    @property
    def locked(self) -> bool:
        return bool(self.locked_by)

    @property
    def usable(self) -> bool:
        """Files may be downloaded and hints unlocked."""
        return self.visible and not self.locked

    def refusal(self) -> str | None:
        """Why an answer (or a hint unlock) is refused now, or None."""
        if not self.visible:
            return "This challenge is not open for submissions."
        if self.locked:
            return f"This challenge is locked: solve {', '.join(self.locked_by)} first."
        return self.closed_reason or None


def visible_q(now: datetime) -> Q:
    """The published challenges whose open time has come (a filter on Project)."""
    return Q(is_published=True) & (Q(opens_at__isnull=True) | Q(opens_at__lte=now))


def visible_projects(tenant_id: int, now: datetime | None = None):
    return Project.objects.for_tenant(tenant_id).filter(visible_q(now or timezone.now()))


def challenge_access(user, project: Project, now: datetime | None = None) -> Access:
    """The student's access to `project` now."""
    now = now or timezone.now()
    if user.tenant_id != project.tenant_id or not project.is_published or not project.is_open_at(now):
        return Access(visible=False)
    closed = ""
    if project.is_closed_at(now):
        closed = "This challenge has closed: it no longer takes answers."
    return Access(visible=True, closed_reason=closed)
