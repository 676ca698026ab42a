"""Registration: a new student joins their class."""

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import RegistrationForm
from .models import Tenant
from .rate_limits import RateLimited, registration_attempt, too_many_attempts
from .services import user_register


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
