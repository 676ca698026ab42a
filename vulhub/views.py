"""The site's own pages, which combine the apps: a student's dashboard, profile and public profile."""

from datetime import UTC, datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import dateformat, timezone
from django.views.decorators.http import require_http_methods

from news import selectors as news
from scoring import access, freeze, progress, team_selectors
from scoring import selectors as scoring
from scoring.catalogue import CatalogueFilters, ProgressCounts, catalogue, student_challenges
from scoring.models import Submission, UserBadge
from tenants.forms import ProfileForm
from tenants.models import TeamMode, User
from vulhub.lib import charts


def standing_seen_by(request, student_id: int | None = None):
    """A student's standing (the user's own by default) as the user sees it, and the freeze time it is of.

    As of the freeze while the user is a student and the scoreboard is frozen (scoring.freeze).
    """
    tenant, student_id = request.tenant, student_id or request.user.pk
    frozen_at = freeze.frozen_for(request.user, tenant)
    if frozen_at is not None:
        return freeze.standing(tenant.pk, frozen_at, student_id), frozen_at
    return scoring.standing(tenant.pk, student_id), None


def public_name(user) -> str:
    """A student's name as the class sees it on the leaderboard: never their e-mail address."""
    return f"{user.first_name} {user.last_name}".strip() or f"Student {user.pk}"


@login_required
def dashboard(request):
    tenant, now = request.tenant, timezone.now()
    standing, frozen_at = standing_seen_by(request)
    challenges = catalogue(tenant, request.user, CatalogueFilters(), now)  # easiest first
    # what takes an answer now: open to them, not solved, nothing waiting for grading (partial grades included)
    to_try = [entry for entry in challenges if entry.gates.takes_answers and entry.state.can_submit][:4]
    chart = progress.progress(tenant, request.user.pk, frozen_at=frozen_at, now=now)
    # a student who has sent nothing yet is greeted with how to start
    newcomer = not request.user.is_staff and standing is None and not any(e.state.attempts for e in challenges)
    return render(
        request,
        "tenants/dashboard.html",
        {
            "standing": standing,
            "badges": UserBadge.objects.for_tenant(tenant).filter(user=request.user).select_related("badge")[:4],
            "pending": Submission.objects.for_tenant(tenant)
            .filter(user=request.user)
            .pending()
            .select_related("project")[:5],
            "to_try": to_try,
            # challenges not solved that take no answer now: locked by a prerequisite, or closed
            "gated": sum(1 for e in challenges if not e.state.solved and not e.gates.takes_answers),
            "progress": ProgressCounts.of(entry.state for entry in challenges),
            "students": chart.ranked,
            "newcomer": newcomer,
            "announcements": news.recent_announcements(tenant),
            "chart": progress_chart(chart, viewer=request.user, subject_name="You"),
            "frozen_at": frozen_at,
            "event_notice": access.event_notice(tenant, now),
            "event_started": access.event_started(tenant, now),
            "team": team_card(request, frozen_at),
        },
    )


def team_card(request, frozen_at) -> dict | None:
    """The dashboard's team card for a student while the class plays in teams; None otherwise.

    Their team with its members (one query) and its place (cached with the standings,
    as of the freeze while it is frozen for them); `mine` is None when they have no team.
    """
    tenant, user = request.tenant, request.user
    if tenant.team_mode == TeamMode.OFF or user.role != User.Role.STUDENT:
        return None
    mine = team_selectors.team_of_student(tenant.pk, user.pk)
    score = team_selectors.team_score(tenant.pk, mine.team.pk, frozen_at=frozen_at) if mine else None
    return {"mine": mine, "score": score, "required": tenant.team_mode == TeamMode.REQUIRED}


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your name is saved.")
        return redirect("profile")
    mine = student_challenges(request.tenant.pk, request.user)
    standing, frozen_at = standing_seen_by(request)
    chart = progress.progress(request.tenant, request.user.pk, frozen_at=frozen_at, now=timezone.now())
    return render(
        request,
        "tenants/profile.html",
        {
            "form": form,
            "standing": standing,
            "frozen_at": frozen_at,
            "submitted": mine.submissions,
            "progress": ProgressCounts.of(mine.states.values()),
            "badge_count": UserBadge.objects.for_tenant(request.tenant).filter(user=request.user).count(),
            "solves": chart.subject.solves,
            "chart": progress_chart(chart, viewer=request.user, subject_name="You"),
            "email_preference": news.email_preference_form(request.user)
            if news.gets_notifications(request.user, request.tenant)
            else None,
        },
        status=400 if form.errors else 200,
    )


@login_required
def public_profile(request, student_id: int):
    """A student's page as the class sees it: name, standing, badges, solves and chart.

    Only while the tenant has public profiles on; when off, only the student and the
    tenant's staff (who see it all in the admin anyway) open it, everyone else gets a 404,
    as for a student of another tenant or no student at all.
    """
    tenant = request.tenant
    student = get_object_or_404(User.objects.for_tenant(tenant).students(), pk=student_id)
    own = student.pk == request.user.pk
    if not (tenant.public_profiles or own or request.user.is_staff):
        raise Http404
    standing, frozen_at = standing_seen_by(request, student.pk)
    chart = progress.progress(tenant, student.pk, frozen_at=frozen_at, now=timezone.now())
    badges = UserBadge.objects.for_tenant(tenant).filter(user=student).select_related("badge")
    if frozen_at is not None:  # a badge earned since the freeze would tell of a solve since
        badges = badges.filter(awarded_at__lte=frozen_at)
    name = public_name(student)
    return render(
        request,
        "tenants/public_profile.html",
        {
            "student": student,
            "name": name,
            "own": own,
            "standing": standing,
            "frozen_at": frozen_at,
            "badges": badges,
            "solves": chart.subject.solves,
            "chart": progress_chart(chart, viewer=request.user, subject_name=name),
        },
    )


def progress_chart(chart: progress.Progress, *, viewer, subject_name: str) -> dict:
    """What templates/includes/progress_chart.html draws: the geometry and the words around it.

    The line of the student the page is about is emphasised, labelled "You" for them; a
    staff member's own dashboard has no line of theirs (they do not score).
    """
    if chart.start is None:
        return {"geometry": None, "frozen_at": chart.frozen_at, "summary": "", "span": ""}
    series = []
    for line in chart.lines:
        if line.subject and not line.rank and viewer.is_staff and line.user_id == viewer.pk:
            continue
        name = "You" if line.user_id == viewer.pk else (subject_name if line.subject else line.name)
        label = f"#{line.rank} {name}" if line.rank else name
        points = [(moment.timestamp(), total) for moment, total in line.history.steps]
        series.append(charts.Series(label=label, points=points, emphasis=line.subject))
    start, end = chart.start.timestamp(), chart.end.timestamp()
    short, long = _moment_formats(chart.end - chart.start)
    geometry = charts.step_chart(series, start=start, end=end, x_label=lambda ts: _local(ts, short))
    span = f"from {_local(start, long)} to {_local(end, long)}"
    lines = ", ".join(f"{line.label} {line.last:g}" for line in geometry.lines)
    summary = f"Points {span}, as steps at each solve: {lines}. The numbers are in a table below the chart."
    return {"geometry": geometry, "frozen_at": chart.frozen_at, "summary": summary, "span": span}


def _moment_formats(span: timedelta) -> tuple[str, str]:
    """Date formats for the time axis and its table (short) and for the span in words (long)."""
    if span <= timedelta(hours=36):
        return "H:i", "j M Y, H:i"
    if span <= timedelta(days=240):
        return "j M", "j M Y, H:i"
    return "M Y", "j M Y"


def _local(timestamp: float, fmt: str) -> str:
    return dateformat.format(timezone.localtime(datetime.fromtimestamp(timestamp, tz=UTC)), fmt)
