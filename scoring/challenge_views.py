"""The challenge pages a student plays on: the catalogue and a challenge with its answer form.

Their URLs keep the `challenges:` namespace (scoring/challenge_urls.py); they live in
scoring because they show and make submissions.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from challenges.markdown import render_markdown
from challenges.models import Project
from tenants.models import TeamMode
from vulhub.lib import drafts

from . import access, freeze, hints, services, teams
from . import catalogue as selectors
from .forms import FlagForm, WriteupForm
from .models import Submission

PAGE_SIZE = 12
# the session's note that this page kept a wrong flag itself ({"path", "flag"}): see _take_kept
KEPT_WRONG_FLAG = "scoring.kept_wrong_flag"
SIGNED_OUT_KEPT = "You were signed out before this was sent: your answer is back in the form; send it again."
# A refused answer is shown on the page again, with a status that says why.
REFUSAL_STATUS = {
    services.TooManyAttempts: 429,
    services.AlreadySolved: 409,
    services.AwaitingGrading: 409,
    services.NotAllowed: 403,
    services.InvalidAnswer: 400,
}


def get_project_for(request, slug) -> Project:
    """A challenge of the request's tenant visible to students (published, open time and event start come); else a 404.

    Its tenant is the request's, set here so that the access rules read its event
    window and time zone without a query; it comes with the prerequisites the user has
    not solved (access.with_unsolved_prerequisites), so that they do not take one either.
    """
    project = get_object_or_404(access.visible_projects(request.tenant, user=request.user), slug=slug)
    project.tenant = request.tenant
    return project


@login_required
def catalogue(request):
    tenant, now = request.tenant, timezone.now()
    filters = selectors.CatalogueFilters(
        q=request.GET.get("q", "").strip()[:100],
        category=request.GET.get("category", ""),
        difficulty=request.GET.get("difficulty", ""),
        solved=request.GET.get("solved", ""),
    )
    entries = selectors.catalogue(tenant, request.user, filters, now)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    upcoming = selectors.upcoming(tenant, now) if access.event_started(tenant, now) else selectors.Upcoming()
    return render(
        request,
        "challenges/catalogue.html",
        {
            "page": page,
            "filters": filters,
            "categories": selectors.categories(tenant, now),
            "difficulties": Project.Difficulty.choices,
            "progress_filters": selectors.PROGRESS_FILTERS,
            "query": query.urlencode(),
            "event_notice": access.event_notice(tenant, now),
            "event_started": access.event_started(tenant, now),
            "event_ended": access.event_ended(tenant, now),
            "upcoming": upcoming,
            "next_opening": access.countdown(upcoming.next_at, now) if upcoming.next_at else "",
            "frozen_at": freeze.frozen_for(request.user, tenant, now),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def detail(request, slug):
    project = get_project_for(request, slug)
    now = timezone.now()
    gates = access.challenge_access(request.user, project, now)
    frozen_at = freeze.frozen_for(request.user, request.tenant, now)
    # during a freeze a student's own points on a dynamic challenge follow its live value: not shown
    hide_points = bool(frozen_at and project.is_dynamic)
    form_class = FlagForm if project.has_flag else WriteupForm
    form, status = None, 200
    if request.method == "POST":
        form = form_class(request.POST)
        if gates.refusal():
            # closed, locked or outside the event: refused before the form is even read
            messages.error(request, gates.refusal())
            status = 403
        elif not form.is_valid():
            status = 400
        else:
            try:
                submission = services.submission_create(
                    user=request.user,
                    project=project,
                    flag=form.cleaned_data.get("flag"),
                    writeup=form.cleaned_data.get("writeup", ""),
                    link=form.cleaned_data.get("link", ""),
                )
            except services.ScoringError as refusal:
                messages.error(request, str(refusal))
                status = REFUSAL_STATUS.get(type(refusal), 400)
            else:
                _answer_taken(request, submission, hide_points)
                return redirect("challenges:detail", slug=project.slug)
    mine = Submission.objects.for_tenant(request.tenant).filter(user=request.user, project=project)
    # the class's solves and the student's own state on the challenge, in one pass over its submissions
    stats = (
        Submission.objects.for_tenant(request.tenant)
        .filter(project=project)
        .aggregate(
            solves=Count("id", filter=Q(status=Submission.Status.APPROVED)),
            **selectors.state_aggregates(user_id=request.user.pk),
        )
    )
    state = selectors.ChallengeState.of(stats)
    solves, value = stats["solves"], project.points
    if frozen_at is not None:  # the numbers as of the freeze (scoring.freeze): no live one shows
        then = freeze.challenges(request.tenant.pk, frozen_at).get(project.pk)
        solves = then.solves if then else 0
        if project.is_dynamic:  # never the live value: one added since the freeze shows its value with no solver
            value = then.value if then else project.value_with(0)
    attempts = list(mine.order_by("-submitted_at")[:20])
    # where teams are required, a student without one reads the challenge but has no form (scoring.teams)
    needs_team = (
        request.tenant.team_mode == TeamMode.REQUIRED
        and request.user.role == request.user.Role.STUDENT
        and teams.team_of(request.user) is None
    )
    # the page shows the answer form only while a new answer is taken
    takes_answer = gates.takes_answers and state.can_submit and not needs_team
    # the write-up waiting for grading (the newest attempt: nothing is taken while one waits)
    waiting = next((a for a in attempts if a.status == Submission.Status.PENDING), None)
    unsent, starts_from_last = {}, False
    if form is None:
        form, unsent, starts_from_last = _fresh_form(request, form_class, attempts, takes_answer)
    elif not takes_answer:
        # a refused answer the page has no form for (solved, waiting, closed or locked): shown back, not lost
        unsent = {name: form.data.get(name, "").strip() for name in form.fields if form.data.get(name, "").strip()}
    return render(
        request,
        "challenges/detail.html",
        {
            "project": project,
            "description": "" if gates.locked else render_markdown(project.description),
            "form": form,
            "takes_answer": takes_answer,
            "starts_from_last": starts_from_last,
            "unsent": unsent,
            "waiting": waiting,
            "attempts": attempts,
            "state": state,
            "solved": state.solved,
            "solves": solves,
            "value": value,
            "hide_points": hide_points,
            "frozen_at": frozen_at,
            # while answers are taken: when the event ends (once closed, the page says why instead)
            "event_notice": "" if gates.closed else access.event_notice(request.tenant, now),
            "access": gates,
            "needs_team": needs_team and gates.takes_answers,
            "files": list(project.files.all()) if gates.usable else [],
            "hints": hints.for_student(request.user, project) if gates.usable else [],
        },
        status=status,
    )


def _answer_taken(request, submission: Submission, hide_points: bool) -> None:
    """The message after an answer was taken; a wrong flag is kept for the form after the redirect."""
    if submission.status == Submission.Status.APPROVED and hide_points:
        messages.success(request, "Correct! Your points count; they show when the scoreboard is unfrozen.")
    elif submission.status == Submission.Status.APPROVED:
        messages.success(request, f"Correct! +{submission.points_awarded} points.")
    elif submission.status == Submission.Status.REJECTED:
        # the field comes back with what was typed, as on every refusal (the limit, a closed challenge)
        drafts.keep(request, {"flag": submission.answer})
        request.session[KEPT_WRONG_FLAG] = {"path": request.path, "flag": submission.answer}
        left = getattr(submission, "tries_left", None)
        if left == 0:
            messages.error(request, "That is not the flag, and that was your last try for now.")
        elif left is not None and left < 3:  # a warning before the limit, not only after it
            messages.error(request, f"That is not the flag. {left} tr{'y' if left == 1 else 'ies'} left.")
        else:
            messages.error(request, "That is not the flag. Try again.")
    else:
        messages.info(
            request,
            "Write-up submitted. It is waiting for an instructor to grade it; you can read it and edit it until then.",
        )


def _fresh_form(request, form_class, attempts: list[Submission], takes_answer: bool) -> tuple:
    """The answer form of a GET, never empty as if nothing was sent: (form, unsent fields, starts from the last).

    It holds what was kept for the page (a wrong flag, a form kept through a login);
    else, after a write-up graded below full marks or rejected, that write-up to improve.
    Kept fields the page has no form for now come back as `unsent`, to copy.
    """
    kept, from_elsewhere = _take_kept(request, form_class)
    if kept:
        if from_elsewhere and takes_answer:
            messages.info(request, SIGNED_OUT_KEPT)
        return form_class(initial=kept), (kept if from_elsewhere and not takes_answer else {}), False
    last = next((a for a in attempts if a.kind == Submission.Kind.WRITEUP), None)
    if takes_answer and last is not None and form_class is WriteupForm:
        return form_class(initial={"writeup": last.answer, "link": last.link}), {}, True
    return form_class(), {}, False


def _take_kept(request, form_class) -> tuple[dict, bool]:
    """The answer fields kept for this page (vulhub.lib.drafts), and whether they came from elsewhere.

    This page keeps a wrong flag itself (_answer_taken), with a note of it in the
    session; anything else kept for it (a form sent after the session expired, kept
    through the login) is news to the student, and the page says so.
    """
    kept = drafts.take(request)
    ours = request.session.get(KEPT_WRONG_FLAG)
    if ours and ours.get("path") == request.path:
        del request.session[KEPT_WRONG_FLAG]
    else:
        ours = None
    kept = {name: value for name, value in kept.items() if name in form_class.base_fields}
    from_elsewhere = bool(kept) and not (ours and kept == {"flag": ours["flag"]})
    return kept, from_elsewhere
