"""The admin of tenants and their users: instructors and tenant admins see their own tenant only."""

import os
import zoneinfo

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV
from import_export.forms import ImportForm

from vulhub.lib.admin import (
    CappedCountPaginator,
    ReadOnlyAdminMixin,
    StrictInputAdminMixin,
    TenantScopedAdminMixin,
    request_tenant_id,
)
from vulhub.lib.admin_secrets import SecretFieldsAdminMixin

from .models import Tenant, User
from .resources import (
    COLUMN_HELP,
    ROLE_CHOICES,
    RosterResource,
    UserExportResource,
    roster_template_csv,
    roster_upload_problem,
    row_problems,
)
from .services import user_register
from .time_zone import ADMIN_DATETIME, zone_names
from .welcome import send_welcome_on_commit

# The columns of its own tenant the site's role may update (vulhub/ops/db_roles.py NARROWED).
EDITABLE_COLUMNS = [
    "name",
    "registration_mode",
    "settings",
    "time_zone",
    "event_starts_at",
    "event_ends_at",
    "scoreboard_freeze_at",
    "public_profiles",
    "team_mode",
    "team_size_max",
    "updated_at",
]
# The event window and the freeze, as the settings page shows them (after the other settings).
SCHEDULE_FIELDS = ["time_zone", "event_starts_at", "event_ends_at", "scoreboard_freeze_at"]
# Whether students play in teams, and how large a team may be: a section of their own.
TEAM_FIELDS = ["team_mode", "team_size_max"]


def time_zone_choices():
    """UTC first, then every zone by name (Africa/Abidjan … Pacific/Wallis)."""
    return [("UTC", "UTC"), *((name, name.replace("_", " ")) for name in zone_names() if name != "UTC")]


class TenantSettingsForm(forms.ModelForm):
    """The tenant's settings as fields (stored in its `settings` JSON)."""

    accent = forms.RegexField(
        regex=r"^#[0-9a-fA-F]{6}$",
        required=False,
        help_text="Accent colour of the site, like #0f766e. Dark enough for white text on it.",
        error_messages={"invalid": "Use a colour like #0f766e."},
    )
    logo = forms.URLField(required=False, assume_scheme="https", help_text="URL of a logo image (optional).")
    invite_code = forms.CharField(required=False, max_length=100, help_text="Needed to register in invite mode.")
    flag_attempt_limit = forms.IntegerField(
        min_value=1, max_value=1000, required=False, help_text="Wrong flags per student and challenge (default 10)."
    )
    flag_attempt_window = forms.IntegerField(
        min_value=1, max_value=1440, required=False, help_text="…within this many minutes (default 10)."
    )

    time_zone = forms.ChoiceField(
        choices=time_zone_choices,
        required=False,
        help_text="Every time on the class's pages and in this admin is shown in it, and the times below are read "
        "in it. Changing it keeps the times below as written (14:00 stays 14:00, in the new zone).",
        error_messages={
            "invalid_choice": "“%(value)s” is not a time zone we know. Choose one from the list, "
            "like Europe/Paris or America/New_York."
        },
    )

    # left out (an older form, a script): the class keeps its team mode and size
    team_mode = forms.ChoiceField(
        choices=Tenant.TeamMode.choices,
        required=False,
        help_text="Whether students play in teams. Optional: a student may create or join a team, or play "
        "alone. Required: a student answers only as a team member. The team standings sit beside the "
        "students’ own; the students keep their own points whatever the mode.",
        error_messages={"invalid_choice": "Choose off, optional or required."},
    )
    team_size_max = forms.IntegerField(
        label="Team size",
        min_value=1,
        max_value=50,
        required=False,
        help_text="The most members a team may have (1 to 50). Lowering it takes nobody out of a team: a team "
        "above it takes no new member until it is below it.",
        error_messages={
            "min_value": "A team has 1 to 50 members.",
            "max_value": "A team has 1 to 50 members.",
            "invalid": "Give a whole number from 1 to 50.",
        },
    )

    class Meta:
        model = Tenant
        fields = ["name", "registration_mode", "public_profiles", *SCHEDULE_FIELDS, *TEAM_FIELDS]
        help_texts = {
            "public_profiles": "Each student gets a page the class can open from the leaderboard: their name "
            "(never their e-mail), points, rank, badges, solved challenges and progress chart. Off: only the "
            "student and the staff open it.",
            "event_starts_at": "Before this time students see no challenges and no answer is taken (empty: no start).",
            "event_ends_at": "After this time the challenges are read-only: no answer is taken (empty: no end).",
            "scoreboard_freeze_at": "From this time students see the standings as they were then; instructors see "
            "live ones. Empty the field to unfreeze: everyone sees the live standings again.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.settings or {}
        attempts = stored.get("flag_attempts", {})
        self.initial.update(
            accent=stored.get("accent", ""),
            logo=stored.get("logo", ""),
            invite_code=stored.get("invite_code", ""),
            flag_attempt_limit=attempts.get("limit"),
            flag_attempt_window=attempts.get("window_minutes"),
        )

    def clean_team_mode(self):
        return self.cleaned_data.get("team_mode") or self.instance.team_mode

    def clean_team_size_max(self):
        size = self.cleaned_data.get("team_size_max")
        return size if size is not None else self.instance.team_size_max

    def clean_time_zone(self):
        # left out (an older form, a script): the class keeps its zone
        return self.cleaned_data.get("time_zone") or self.instance.time_zone or "UTC"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("registration_mode") == Tenant.RegistrationMode.INVITE and not cleaned.get("invite_code"):
            self.add_error("invite_code", "Invite mode needs an invite code.")
        self._read_times_in_new_zone(cleaned)
        starts, ends = cleaned.get("event_starts_at"), cleaned.get("event_ends_at")
        if starts and ends and ends <= starts:
            self.add_error("event_ends_at", "The event must end after it starts.")
        return cleaned

    def _read_times_in_new_zone(self, cleaned):
        """Times sent together with a new zone are meant in that zone, not in the one the page was shown in.

        The form showed them in the old zone; 14:00 stays 14:00, now in the new zone.
        """
        new = cleaned.get("time_zone")
        if not new or new == self.instance.time_zone or "time_zone" in self.errors:
            return
        shown_in, meant_in = timezone.get_current_timezone(), zoneinfo.ZoneInfo(new)
        for name in ("event_starts_at", "event_ends_at", "scoreboard_freeze_at"):
            value = cleaned.get(name)
            if value is not None:
                wall = timezone.localtime(value, shown_in).replace(tzinfo=None)
                cleaned[name] = timezone.make_aware(wall, meant_in)

    def save(self, commit=True):
        settings = dict(self.instance.settings or {})
        for key in ("accent", "logo", "invite_code"):
            if self.cleaned_data.get(key):
                settings[key] = self.cleaned_data[key]
            else:
                settings.pop(key, None)
        attempts = {
            "limit": self.cleaned_data.get("flag_attempt_limit"),
            "window_minutes": self.cleaned_data.get("flag_attempt_window"),
        }
        attempts = {k: v for k, v in attempts.items() if v}
        if attempts:
            settings["flag_attempts"] = attempts
        else:
            settings.pop("flag_attempts", None)
        self.instance.settings = settings
        if not commit:
            return super().save(commit)
        # the columns the site's role may update (vulhub/ops/db_roles.py), no others
        self.instance.save(update_fields=EDITABLE_COLUMNS)
        return self.instance


@admin.register(Tenant)
class TenantAdmin(StrictInputAdminMixin, admin.ModelAdmin):
    """Tenant admins edit their own tenant's settings (platform superusers too, on its host)."""

    form = TenantSettingsForm
    formfield_overrides = {models.DateTimeField: ADMIN_DATETIME}
    list_display = ["name", "domain", "registration_mode", "is_active"]
    search_fields = ["name", "domain", "slug"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset.filter(pk=request_tenant_id(request))

    def get_fieldsets(self, request, obj=None):
        general = [
            "name",
            "registration_mode",
            "invite_code",
            "accent",
            "logo",
            "flag_attempt_limit",
            "flag_attempt_window",
            "public_profiles",
            *SCHEDULE_FIELDS,
        ]
        if request.user.is_superuser:
            general = ["slug", "domain", *general, "is_active"]
        teams = {
            "fields": TEAM_FIELDS,
            "description": "Teams are made, merged and dissolved under Grading and badges › Teams; students move "
            "between them under Grading and badges › Team members.",
        }
        return [(None, {"fields": general}), ("Teams", teams)]

    def get_readonly_fields(self, request, obj=None):
        # the site's role may update these columns of its own tenant only (vulhub/ops/db_roles.py);
        # host names and activation are platform work: manage.py tenant
        return ["slug", "domain", "is_active"] if request.user.is_superuser else []

    def save_model(self, request, obj, form, change):
        obj.save(update_fields=EDITABLE_COLUMNS)

    def has_add_permission(self, request):
        return False  # manage.py tenant create: a new tenant is platform work

    def has_delete_permission(self, request, obj=None):
        return False

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404


class UserForm(forms.ModelForm):
    """Add and change form of users: the e-mail is unique in the tenant, in any letter case."""

    class Meta:
        model = User
        fields = ["tenant", "email", "first_name", "last_name", "role", "is_active"]

    def clean_email(self):
        email = self.cleaned_data["email"]
        tenant_id = self.cleaned_data["tenant"].pk if self.cleaned_data.get("tenant") else self.instance.tenant_id
        taken = User.objects.for_tenant(tenant_id).with_email(email).exclude(pk=self.instance.pk)
        if tenant_id is not None and taken.exists():
            raise forms.ValidationError("A user with this e-mail already exists in this class.")
        return email


PENDING_ROSTER = "roster_import_pending"  # session key: the file name of the admin's last roster preview


class RosterImportForm(ImportForm):
    """The roster upload: a file that cannot be a roster is a form error (one sentence), before any row is read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["import_file"].label = "Roster file (CSV)"
        self.fields["import_file"].help_text = (
            "Saved from your spreadsheet as CSV (UTF-8). Nothing is saved yet: you see what the file would change "
            "first."
        )

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        problem = roster_upload_problem(upload)
        if problem:
            raise forms.ValidationError(problem)
        return upload


@admin.register(User)
class UserAdmin(TenantScopedAdminMixin, ImportExportMixin, admin.ModelAdmin):
    """A tenant admin's class list: create, deactivate, change roles (never superuser)."""

    list_display = ["email", "first_name", "last_name", "role", "is_active", "date_joined"]
    list_filter = ["role", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    ordering = ["last_name", "first_name"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    resource_classes = [RosterResource]
    export_resource_classes = [UserExportResource]
    import_formats = [CSV]
    export_formats = [CSV]
    import_form_class = RosterImportForm
    import_template_name = "admin/tenants/user/import.html"  # errors as sentences, never a traceback

    def get_urls(self):
        template = path(
            "import/template.csv",
            self.admin_site.admin_view(self.import_template_csv),
            name=f"{self.opts.app_label}_{self.opts.model_name}_import_template",
        )
        return [template, *super().get_urls()]

    def import_template_csv(self, request):
        """A roster to fill in: the columns the import reads and two example rows."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        response = HttpResponse(roster_template_csv(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="class-roster-template.csv"'
        return response

    def get_import_context_data(self, **kwargs):
        # what the page explains beside the upload: the columns, the roles, the template file
        return {
            **super().get_import_context_data(**kwargs),
            "roster_columns": COLUMN_HELP,
            "roster_roles": ROLE_CHOICES,
        }

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        result = getattr(response, "context_data", {}).get("result")
        if result is not None:  # the preview: its refused rows as a table (row, e-mail, name, what to fix)
            response.context_data["row_problems"] = row_problems(result)
        return response

    def get_import_resource_kwargs(self, request, **kwargs):
        return {"tenant": request.user.tenant, "actor": request.user, "request": request}

    def add_data_read_fail_error_to_form(self, form, e):
        # RosterImportForm has read the file already; this is the package's fallback, in plain words
        form.add_error("import_file", 'The file cannot be read as CSV: save it as "CSV UTF-8" and upload it again.')

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:  # the one file this admin's confirmation may name
            request.session[PENDING_ROSTER] = os.path.basename(initial["import_file_name"])
        return initial

    def process_import(self, request, **kwargs):
        # The confirmation names its file in a hidden field; the package reads, imports and deletes
        # whatever file of the temporary folder that names. Only this admin's previewed file is read.
        pending = request.session.pop(PENDING_ROSTER, None)
        if not pending or os.path.basename(request.POST.get("import_file_name", "")) != pending:
            return self.import_refused(request, "This import is no longer pending: upload the file again.")
        try:
            return super().process_import(request, **kwargs)
        except (OSError, ValueError, IndexError):  # its file is gone, or the format is no choice
            return self.import_refused(request, "This import is no longer pending: upload the file again.")

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():  # nothing was written (RosterResource.import_data)
            errors = [str(error.error) for error in result.base_errors] or ["Some rows are not valid."]
            return self.import_refused(request, f"Nothing was imported. {' '.join(errors)}", result=result)
        return super().process_result(result, request)

    def import_refused(self, request, message: str, result=None):
        """Back to the upload, nothing imported; rows refused at the confirmation are listed as in a preview.

        (The class changed between the preview and the confirmation: another admin added
        one of these e-mails, say.) The file is gone: the admin uploads the fixed one.
        """
        self.message_user(request, message, messages.ERROR)
        problems = row_problems(result) if result is not None else []
        if not problems:
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"))
        form = self.get_import_form_class(request)(
            self.get_import_formats(),
            self.get_import_resource_classes(request),
            initial=self.get_import_form_initial(request),
        )
        context = {
            **self.get_import_context_data(),
            **self.admin_site.each_context(request),
            "title": "Import",
            "form": form,
            "opts": self.opts,
            "media": self.media + form.media,
            "result": result,
            "row_problems": problems,
            "import_error_display": self.import_error_display,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.import_template_name], context, status=409)

    def get_export_resource_classes(self, request):
        return self.export_resource_classes

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = UserForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["email", "first_name", "last_name", "role"]  # in the request's tenant
        return ["email", "first_name", "last_name", "role", "is_active", "last_login", "date_joined"]

    def get_readonly_fields(self, request, obj=None):
        return ["last_login", "date_joined"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        tenant = request.tenant  # the host's (a platform superuser adds to the tenant they are on)
        user = user_register(
            tenant=tenant,
            email=obj.email,
            password=None,  # they choose it from the welcome e-mail
            first_name=obj.first_name,
            last_name=obj.last_name,
            role=obj.role,
            actor=request.user,
        )
        send_welcome_on_commit(request, user)
        obj.pk = user.pk


admin.site.unregister(Group)  # Django's own, registered by django.contrib.auth


@admin.register(Group)
class GroupAdmin(ReadOnlyAdminMixin, SecretFieldsAdminMixin, auth_admin.GroupAdmin):
    """The role groups (platform superusers only); a group reaches its users, so their passwords too.

    Read-only: the site's role may not change permissions (vulhub/ops/db_roles.py); the
    groups come from a migration (tenants.roles).
    """
