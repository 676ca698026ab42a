"""Hints: a student unlocks them one by one, free or for a cost taken from that challenge's points."""

from dataclasses import dataclass

from challenges.markdown import render_markdown
from challenges.models import Hint

from .models import HintUnlock


@dataclass(frozen=True)
class HintRow:
    """A hint as a student sees it: its text only once unlocked."""

    hint: Hint
    number: int
    unlocked: bool
    charged: int  # what the unlock cost (its cost when charged; 0 while locked)
    html: str  # the rendered text, "" while locked


def for_student(user, project) -> list[HintRow]:
    """The challenge's hints in order, with what the student has unlocked (two queries)."""
    unlocked = dict(
        HintUnlock.objects.for_tenant(user.tenant_id)
        .filter(user=user, project=project, hint__isnull=False)
        .values_list("hint_id", "cost")
    )
    rows = []
    for number, hint in enumerate(Hint.objects.for_tenant(project.tenant_id).filter(project=project), start=1):
        is_unlocked = hint.pk in unlocked
        rows.append(
            HintRow(
                hint=hint,
                number=number,
                unlocked=is_unlocked,
                charged=unlocked.get(hint.pk, 0),
                html=render_markdown(hint.text) if is_unlocked else "",
            )
        )
    return rows
