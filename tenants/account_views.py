"""Django's account views, bound to the request's tenant."""

from django.contrib.auth import views as auth
from django.urls import path, reverse_lazy

from .forms import EmailLoginForm, TenantPasswordResetForm
from .rate_limits import RateLimited, password_reset_attempt, too_many_attempts


class PasswordResetView(auth.PasswordResetView):
    form_class = TenantPasswordResetForm
    success_url = reverse_lazy("password_reset_done")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "tenant": self.request.tenant}

    def form_valid(self, form):
        # counted whether or not the address has an account: a refusal tells nothing about it
        try:
            password_reset_attempt(self.request, form.cleaned_data["email"])
        except RateLimited as refusal:
            return too_many_attempts(self.request, refusal)
        # the e-mail's link and site name are the tenant's, never the request's Host (the form's save)
        return super().form_valid(form)


class PasswordResetConfirmView(auth.PasswordResetConfirmView):
    success_url = reverse_lazy("password_reset_complete")

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        # a link only works on the site of the account's own tenant
        if user is not None and user.tenant_id != self.request.tenant.pk:
            return None
        return user


urlpatterns = [
    path(
        "login/",
        auth.LoginView.as_view(authentication_form=EmailLoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path(
        "password/change/",
        auth.PasswordChangeView.as_view(success_url=reverse_lazy("password_change_done")),
        name="password_change",
    ),
    path("password/change/done/", auth.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
