"""Unlocking a hint: a confirmation that states the cost, then the unlock."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from . import access, hints, services
from .challenge_views import REFUSAL_STATUS, get_project_for


@login_required
@require_http_methods(["GET", "POST"])
def unlock(request, slug, hint_id):
    project = get_project_for(request, slug)
    gates = access.challenge_access(request.user, project)
    if not gates.usable:
        raise Http404("No such hint.")
    rows = hints.for_student(request.user, project)
    row = next((r for r in rows if r.hint.pk == hint_id), None)
    if row is None:
        raise Http404("No such hint.")
    hint, status = row.hint, 200
    shown = f"{reverse('challenges:detail', args=[project.slug])}#hint-{row.number}"
    if row.unlocked:
        return redirect(shown)
    if request.method == "POST":
        try:
            hints.hint_unlock(user=request.user, hint=hint)
        except services.ScoringError as refusal:
            messages.error(request, str(refusal))
            status = REFUSAL_STATUS.get(type(refusal), 400)
        else:
            cost = f" It cost {hint.cost} point{'s' if hint.cost != 1 else ''}." if hint.cost else ""
            messages.success(request, f"Hint {row.number} unlocked.{cost}")
            return redirect(shown)
    earlier_locked = [r.number for r in rows if r.number < row.number and not r.unlocked]
    return render(
        request,
        "challenges/hint_unlock.html",
        {"project": project, "row": row, "earlier_locked": earlier_locked, "closed": gates.closed_reason},
        status=status,
    )
