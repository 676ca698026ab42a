"""The site's own pages, which combine the apps: a student's dashboard and profile."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from scoring import access, freeze
from scoring import selectors as scoring
from scoring.catalogue import CatalogueFilters, ProgressCounts, catalogue, student_challenges
from scoring.models import Leaderboard, Submission, UserBadge
from tenants.forms import ProfileForm


def standing_seen_by(request):
    """The user's standing as they see it: as of the freeze while a student's scoreboard is frozen (scoring.freeze)."""
    tenant = request.tenant
    frozen_at = freeze.frozen_for(request.user, tenant)
    if frozen_at is not None:
        return freeze.standing(tenant.pk, frozen_at, request.user.pk), frozen_at
    return scoring.standing(tenant.pk, request.user.pk), None


@login_required
def dashboard(request):
    tenant, now = request.tenant, timezone.now()
    standing, frozen_at = standing_seen_by(request)
    challenges = catalogue(tenant, request.user, CatalogueFilters(), now)  # easiest first
    # what takes an answer now: open to them, not solved, nothing waiting for grading (partial grades included)
    to_try = [entry for entry in challenges if entry.gates.takes_answers and entry.state.can_submit][:4]
    if frozen_at is not None:
        ranked = freeze.total(tenant.pk, frozen_at)
    else:
        ranked = Leaderboard.objects.for_tenant(tenant).count()
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
            "students": ranked,
            "frozen_at": frozen_at,
            "event_notice": access.event_notice(tenant, now),
            "event_started": access.event_started(tenant, now),
        },
    )


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
        },
        status=400 if form.errors else 200,
    )
