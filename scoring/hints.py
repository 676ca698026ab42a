"""Hints: a student unlocks them one by one, free or for a cost taken from that challenge's points."""

from dataclasses import dataclass

from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from audit import api as audit
from challenges.markdown import render_markdown
from challenges.models import Hint, Project
from tenants.models import TeamMode, User

from . import access, services, team_board
from .catalogue import challenge_state
from .models import HintUnlock
from .signals import hint_unlocked


@dataclass(frozen=True)
class HintRow:
    """A hint as a student sees it: its text only once unlocked."""

    hint: Hint
    number: int
    unlocked: bool
    charged: int  # what the unlock cost (its cost when charged; 0 while locked)
    html: str  # the rendered text, "" while locked
    previous_unlocked: bool  # the hint before it is unlocked (or it is the first): it can be unlocked next


def for_student(user, project) -> list[HintRow]:
    """The challenge's hints in order, with what the student has unlocked (one query)."""
    charged = HintUnlock.objects.filter(tenant_id=user.tenant_id, user_id=user.pk, hint=OuterRef("pk")).values("cost")
    rows = []
    previous = True
    hints = Hint.objects.for_tenant(project.tenant_id).filter(project=project).annotate(charged=Subquery(charged[:1]))
    for number, hint in enumerate(hints, start=1):
        is_unlocked = hint.charged is not None
        rows.append(
            HintRow(
                hint=hint,
                number=number,
                unlocked=is_unlocked,
                charged=hint.charged or 0,
                html=render_markdown(hint.text) if is_unlocked else "",
                previous_unlocked=previous,
            )
        )
        previous = is_unlocked
    return rows


@audit.recorded
def hint_unlock(*, user, hint: Hint) -> HintUnlock:
    """A student unlocks the next hint of a challenge they can use; its cost is charged.

    Hints open in order: the earlier ones first. Unlocking one twice charges nothing
    more (AlreadyUnlocked, with the hint shown). The cost comes off the student's
    points for the challenge, never below zero for it (scoring.leaderboard); on a
    challenge they have already scored, their row, rank and badges follow at once.
    """
    project = Project.objects.select_related("tenant").get(pk=hint.project_id)
    refusal = access.challenge_access(user, project).refusal()
    if refusal:
        raise services.NotAllowed(refusal)
    if user.role != User.Role.STUDENT:
        raise services.NotAllowed("Only students unlock hints.")
    services.lock_student(user)  # one unlock or answer of a student at a time
    mine = HintUnlock.objects.for_tenant(user.tenant_id).filter(user=user, project=project)
    if mine.filter(hint=hint).exists():
        raise AlreadyUnlocked("You have already unlocked this hint.")
    earlier = (
        Hint.objects.for_tenant(project.tenant_id)
        .filter(project=project)
        .filter(Q(position__lt=hint.position) | Q(position=hint.position, pk__lt=hint.pk))
    )
    if earlier.exclude(pk__in=mine.filter(hint__isnull=False).values("hint_id")).exists():
        raise services.InvalidAnswer("Unlock the earlier hints first: they open in order.")
    team_id, team_pays = team_board.unlock_team_id(user, project.tenant, hint.pk)  # a team pays for a hint once
    if team_id is None and project.tenant.team_mode == TeamMode.REQUIRED:
        raise services.NotAllowed("This class plays in teams: create a team or join one with its invite code first.")
    unlock = HintUnlock.objects.create(
        tenant_id=user.tenant_id,
        user=user,
        project=project,
        hint=hint,
        team_id=team_id if team_pays else None,
        cost=hint.cost,
        unlocked_at=timezone.now(),
    )
    hint_unlocked.send(sender=HintUnlock, unlock=unlock, actor=user)
    if unlock.cost and challenge_state(user.tenant_id, user, project).score is not None:
        services.after_scoring(user=user, actor=user)
    return unlock


class AlreadyUnlocked(services.ScoringError):
    pass
