from django import forms
from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm

from .models import User

# The longest e-mail the users table holds (forms.EmailField alone would take 320).
EMAIL_MAX_LENGTH = User._meta.get_field("email").max_length
# Long enough for any passphrase or password manager; a megabyte of password is not one.
PASSWORD_MAX_LENGTH = 1024


class EmailLoginForm(AuthenticationForm):
    username = forms.EmailField(
        label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class RegistrationForm(forms.Form):
    first_name = forms.CharField(label="First name", max_length=150)
    last_name = forms.CharField(label="Last name", max_length=150)
    email = forms.EmailField(
        label="E-mail", max_length=EMAIL_MAX_LENGTH, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password = forms.CharField(
        label="Password",
        max_length=PASSWORD_MAX_LENGTH,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        strip=False,
        # the rules of AUTH_PASSWORD_VALIDATORS, shown before a first try fails them (as on
        # the password change page); lazy, so they follow the settings
        help_text=password_validation.password_validators_help_text_html(),
    )
    invite_code = forms.CharField(label="Invite code", required=False, max_length=100)

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        if tenant.registration_mode != tenant.RegistrationMode.INVITE:
            del self.fields["invite_code"]

    def clean_email(self):
        email = self.cleaned_data["email"]
        if User.objects.for_tenant(self.tenant).with_email(email).exists():
            raise forms.ValidationError("An account with this e-mail already exists. Log in instead.")
        return email

    def clean_invite_code(self):
        code = self.cleaned_data.get("invite_code", "").strip()
        expected = str((self.tenant.settings or {}).get("invite_code", ""))
        if not expected or code != expected:
            raise forms.ValidationError("That invite code is not right. Ask your instructor for it.")
        return code

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password"):
            candidate = User(email=cleaned.get("email", ""), first_name=cleaned.get("first_name", ""))
            try:
                password_validation.validate_password(cleaned["password"], candidate)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class ProfileForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ["first_name", "last_name"]


# The port a scheme is served on unless a URL says otherwise.
DEFAULT_PORTS = {"http": 80, "https": 443}


def public_host(tenant) -> str:
    """The host (and port) links e-mailed to `tenant`'s users name: its own domain.

    Never the request's Host header, which the client writes: a forged `Host:
    class.example.edu:31337` must not send a reset token to port 31337. The port is
    settings.PUBLIC_PORT, when the sites are not served on the scheme's own.
    """
    port = settings.PUBLIC_PORT
    if not port or port == DEFAULT_PORTS[settings.PUBLIC_SCHEME]:
        return tenant.domain
    return f"{tenant.domain}:{port}"


class TenantPasswordResetForm(PasswordResetForm):
    """Reset e-mails go only to accounts of the tenant whose site was used.

    The link in them names the tenant's own site (public_host, settings.PUBLIC_SCHEME)
    whatever the view passes: Django's view would take the request's Host and scheme.
    """

    def __init__(self, *args, tenant=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def get_users(self, email):
        users = User.objects.for_tenant(self.tenant).with_email(email).filter(is_active=True)
        return (u for u in users if u.has_usable_password())

    def save(self, **kwargs):
        kwargs["domain_override"] = public_host(self.tenant)
        kwargs["use_https"] = settings.PUBLIC_SCHEME == "https"
        kwargs["extra_email_context"] = {"site_name": self.tenant.name, **(kwargs.get("extra_email_context") or {})}
        return super().save(**kwargs)
