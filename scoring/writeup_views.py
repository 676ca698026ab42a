"""A student's own write-ups: one read back as it was sent, beside its grade and feedback, and
edited while it waits for grading.

Only its author sees a write-up here: anyone else's, another tenant's, a flag or a
missing one is the same 404.
"""

from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from vulhub.lib import drafts

from . import access, freeze, services
from .catalogue import challenge_state
from .forms import WriteupForm
from .models import Submission

# a refused edit is shown again with what was typed, with a status that says why
REFUSAL_STATUS = {
    services.AlreadyGraded: 409,
    services.NotAllowed: 403,
    services.InvalidAnswer: 400,
}


def get_writeup_for(request, pk) -> Submission:
    """The request's user's own write-up in the request's tenant, with its challenge; else a 404.

    The challenge's tenant is the request's, set here so that its access rules read the
    event window and time zone without a query.
    """
    submission = get_object_or_404(
        Submission.objects.for_tenant(request.tenant)
        .filter(user=request.user, kind=Submission.Kind.WRITEUP)
        .select_related("project", "graded_by"),
        pk=pk,
    )
    submission.project.tenant = request.tenant
    return submission


def safe_link(url: str) -> str:
    """The link as an address to follow when it is http(s); "" for anything else (shown as text only)."""
    return url if urlsplit(url).scheme.lower() in ("http", "https") else ""


def _context(request, submission: Submission) -> dict:
    """What both pages show about the write-up: its challenge's gates, the student's state on it, its points."""
    now = timezone.now()
    project = submission.project
    gates = access.challenge_access(request.user, project, now)
    state = challenge_state(request.tenant.pk, request.user, project)
    frozen_at = freeze.frozen_for(request.user, request.tenant, now)
    return {
        "submission": submission,
        "project": project,
        "access": gates,
        "state": state,
        "link_href": safe_link(submission.link),
        "editable": submission.status == Submission.Status.PENDING and gates.takes_answers,
        # a better write-up is taken on the challenge's page: not after a full score, not while one waits
        "can_resubmit": gates.takes_answers and state.can_submit,
        "hide_points": bool(frozen_at and project.is_dynamic),
    }


@login_required
def writeup(request, pk):
    submission = get_writeup_for(request, pk)
    return render(request, "scoring/writeup.html", _context(request, submission))


@login_required
@require_http_methods(["GET", "POST"])
def writeup_edit(request, pk):
    submission = get_writeup_for(request, pk)
    if request.method == "GET":
        # an edit sent after the session ended, kept through the login (vulhub.lib.drafts)
        kept = drafts.take(request)
        context = _context(request, submission)
        if kept and (submission.status != Submission.Status.PENDING or context["access"].refusal()):
            # no longer editable: the challenge's page shows it back, to copy or send anew
            detail = reverse("challenges:detail", args=[submission.project.slug])
            drafts.keep(request, kept, path=detail)
            return redirect(detail)
        if submission.status != Submission.Status.PENDING:
            messages.info(request, "This write-up has been graded: it can no longer be edited.")
            return redirect("scoring:writeup", pk=submission.pk)
        if context["access"].refusal():
            messages.error(request, f"{context['access'].refusal()} Your write-up can no longer be edited.")
            return redirect("scoring:writeup", pk=submission.pk)
        initial = {"writeup": submission.answer, "link": submission.link}
        if kept:
            messages.info(request, "You were signed out before your edit was saved: it is back in the form; save it.")
            initial = {"writeup": kept.get("writeup", ""), "link": kept.get("link", "")}
        form = WriteupForm(initial=initial)
        return render(request, "scoring/writeup_edit.html", context | {"form": form})
    form = WriteupForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            edited = services.writeup_edit(
                submission=submission,
                user=request.user,
                writeup=form.cleaned_data["writeup"],
                link=form.cleaned_data["link"],
            )
        except services.ScoringError as refusal:
            messages.error(request, str(refusal))
            status = REFUSAL_STATUS.get(type(refusal), 400)
            submission = get_writeup_for(request, pk)  # as it is now: graded meanwhile, perhaps
        else:
            if edited.edit_count == submission.edit_count:
                messages.info(request, "Nothing changed: your write-up is as it was.")
            else:
                messages.success(request, "Write-up saved. It is still waiting for an instructor to grade it.")
            return redirect("scoring:writeup", pk=submission.pk)
    # the typed text comes back in the form, whatever the refusal
    context = _context(request, submission) | {"form": form}
    return render(request, "scoring/writeup_edit.html", context, status=status)
