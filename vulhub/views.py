"""The site's own pages, which combine the apps: a student's dashboard and profile."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from scoring import selectors as scoring
from scoring.catalogue import CatalogueFilters, ProgressCounts, catalogue, student_challenges
from scoring.models import Leaderboard, Submission, UserBadge
from tenants.forms import ProfileForm


@login_required
def dashboard(request):
    tenant = request.tenant
    standing = scoring.standing(tenant.pk, request.user.pk)
    challenges = catalogue(tenant.pk, request.user, CatalogueFilters())  # easiest first
    # what takes an answer now: not solved, nothing waiting for grading (partial grades included)
    to_try = [entry for entry in challenges if entry.state.can_submit][:4]
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
            "progress": ProgressCounts.of(entry.state for entry in challenges),
            "students": Leaderboard.objects.for_tenant(tenant).count(),
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
    return render(
        request,
        "tenants/profile.html",
        {
            "form": form,
            "standing": scoring.standing(request.tenant.pk, request.user.pk),
            "submitted": mine.submissions,
            "progress": ProgressCounts.of(mine.states.values()),
            "badge_count": UserBadge.objects.for_tenant(request.tenant).filter(user=request.user).count(),
        },
        status=400 if form.errors else 200,
    )
