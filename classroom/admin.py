"""The class roster: the tenant's people with their standing and progress, a page per student, the gradebook.

It replaces the users admin of tenants (tenants.admin.UserAdmin) with a subclass, so the
roster import, the add form and the tenant admin's editing stay as they are. Instructors
read it (they have the view permission only: no add, no change, no import); tenant admins
also edit. Both export it as CSV with names (classroom.resources) and download the
gradebook (classroom.gradebook).
"""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode

from scoring.models import Submission
from tenants.admin import UserAdmin
from tenants.models import User
from tenants.time_zone import zone_of
from vulhub.lib.admin import CappedCountPaginator, request_tenant_id

from . import gradebook, roster
from .resources import RosterExportResource


class ProgressFilter(admin.SimpleListFilter):
    """?progress=not_started: students with no submission at all; ?progress=pending: a write-up waits."""

    title = "progress"
    parameter_name = "progress"

    def lookups(self, request, model_admin):
        return roster.PROGRESS_CHOICES

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in dict(roster.PROGRESS_CHOICES):
            raise IncorrectLookupParameters(f"Unknown progress {value!r}.")
        return roster.filter_progress(queryset, value, tenant_id=request_tenant_id(request))


class RosterPaginator(CappedCountPaginator):
    """Counts the people without sorting them: the count never computes a standing to sort by."""

    @cached_property
    def count(self):
        if not hasattr(self.object_list, "query"):
            return len(self.object_list)
        return self.object_list.order_by()[: self.CAP + 1].count()


admin.site.unregister(User)


@admin.register(User)
class RosterAdmin(UserAdmin):
    """The class roster: name, e-mail, role, points, rank, solves, write-ups waiting, last activity."""

    list_display = [
        "name",
        "email_address",
        "role",
        "points",
        "rank",
        "solves",
        "pending",
        "last_activity",
        "is_active",
    ]
    list_display_links = ["name"]
    list_filter = ["role", "is_active", ProgressFilter]
    list_per_page = 50
    paginator = RosterPaginator
    search_help_text = "Search by first name, last name or e-mail."
    # the list (extended by django-import-export's, below) and the student's page
    change_list_template = "admin/tenants/user/change_list.html"
    import_export_change_list_template = "admin/classroom/roster_change_list.html"
    change_form_template = "admin/tenants/user/change_form.html"

    def get_queryset(self, request):
        return roster.with_standing(super().get_queryset(request))

    # --- the list's columns -------------------------------------------------------------

    @admin.display(description="name", ordering="last_name")
    def name(self, user):
        return user.get_full_name()

    @admin.display(description="e-mail", ordering="email")
    def email_address(self, user):
        # a line may break after the @, never inside a word
        local, at, domain = user.email.partition("@")
        return format_html("{}{}<wbr>{}", local, at, domain)

    @admin.display(description="points", ordering="roster_points")
    def points(self, user):
        return user.roster_points

    @admin.display(description="rank", ordering=F("roster_rank").asc(nulls_last=True))
    def rank(self, user):
        return user.roster_rank if user.roster_rank is not None else "—"

    @admin.display(description="solves", ordering="roster_solves")
    def solves(self, user):
        return user.roster_solves

    @admin.display(description="write-ups waiting", ordering="roster_pending")
    def pending(self, user):
        if not user.roster_pending:
            return 0
        queue = reverse("admin:scoring_submission_changelist")
        query = urlencode({"status__exact": Submission.Status.PENDING, "user__id__exact": user.pk})
        return format_html('<a href="{}?{}">{}</a>', queue, query, user.roster_pending)

    @admin.display(description="last activity", ordering=F("roster_last_activity").asc(nulls_first=True))
    def last_activity(self, user):
        if user.roster_last_activity is None:
            return "never"
        local = timezone.localtime(user.roster_last_activity)
        return format_html(
            '<time datetime="{}"><span>{}</span> <span>{}</span></time>',
            local.isoformat(timespec="seconds"),
            date_format(local, "Y-m-d"),
            date_format(local, "H:i"),
        )

    # --- exports ----------------------------------------------------------------------

    def get_export_resource_classes(self, request):
        return [RosterExportResource]

    def get_export_resource_kwargs(self, request, **kwargs):
        return {"zone": zone_of(getattr(request, "tenant", None))}

    def get_urls(self):
        gradebook_url = path(
            "gradebook.csv", self.admin_site.admin_view(self.gradebook_view), name="tenants_user_gradebook"
        )
        return [gradebook_url, *super().get_urls()]

    def gradebook_view(self, request):
        """The class's gradebook as CSV, for the staff who read the roster."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenant = request.tenant  # the host's: a platform superuser's too (vulhub.lib.admin.request_tenant_id)
        rows = gradebook.gradebook_rows(tenant)  # read here, inside the request's transaction
        response = StreamingHttpResponse(gradebook.as_csv(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{gradebook.filename(tenant)}"'
        return response

    # --- a student's page ---------------------------------------------------------------

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["record"] = roster.student_record(obj)
            context["attempts_shown"] = roster.ATTEMPTS_SHOWN
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)
