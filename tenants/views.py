from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from challenges.selectors import CatalogueFilters, catalogue
from scoring import selectors as scoring
from scoring.models import Leaderboard, Submission, UserBadge

from .forms import ProfileForm, RegistrationForm
from .models import Tenant
from .rate_limits import RateLimited, registration_attempt, too_many_attempts
from .services import user_register


@login_required
def dashboard(request):
    tenant = request.tenant
    standing = scoring.standing(tenant.pk, request.user.pk)
    to_try = catalogue(tenant.pk, request.user, CatalogueFilters(solved="no"))[:4]  # easiest first
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
            "students": Leaderboard.objects.for_tenant(tenant).count(),
        },
    )


@require_http_methods(["GET", "POST"])
def register(request):
    tenant = request.tenant
    if tenant.registration_mode == Tenant.RegistrationMode.CLOSED:
        raise PermissionDenied("Registration is closed: your instructor creates accounts for this class.")
    if request.user.is_authenticated:
        return redirect("dashboard")
    if request.method == "POST":
        try:
            registration_attempt(request)  # every attempt counts: guessed invite codes too
        except RateLimited as refusal:
            return too_many_attempts(request, refusal)
    form = RegistrationForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        user = user_register(
            tenant=tenant,
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"],
            first_name=form.cleaned_data["first_name"],
            last_name=form.cleaned_data["last_name"],
        )
        login(request, user, backend="tenants.backends.TenantEmailBackend")
        messages.success(request, f"Welcome to {tenant.name}, {user.first_name}!")
        return redirect("dashboard")
    return render(request, "registration/register.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your name is saved.")
        return redirect("profile")
    submissions = Submission.objects.for_tenant(request.tenant).filter(user=request.user)
    return render(
        request,
        "tenants/profile.html",
        {
            "form": form,
            "standing": scoring.standing(request.tenant.pk, request.user.pk),
            "submitted": submissions.count(),
            "badge_count": UserBadge.objects.for_tenant(request.tenant).filter(user=request.user).count(),
        },
        status=400 if form.errors else 200,
    )
