"""Badges and their awards: rules an instructor defines, awards by hand and revocations.

An award is added with a student searched by name or e-mail (the admin's select2 widget,
fed by this admin's own student search: the tenant's students only). It is never deleted:
it is revoked, one or several at a time, with a reason that the audit log and the
BadgeRevoked event keep. Both go through the services.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AutocompleteSelect, RelatedFieldWidgetWrapper
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audit import api as audit
from tenants.models import User
from vulhub.lib.admin import CappedCountPaginator, TenantScopedAdminMixin, bounded_search_term, request_tenant_id
from vulhub.lib.json_limits import BoundedJSONField, JSONLimits

from . import services
from .badges import rule_params_problem
from .models import Badge, UserBadge

# The student search answers a page of this many students at a time (select2 asks for the next).
STUDENT_SEARCH_PAGE = 20
# Past this page a search is refused: the class's largest roster is a few hundred pages.
STUDENT_SEARCH_MAX_PAGE = 1000
# A bulk revocation takes at most this many awards at once: each locks its student's row.
REVOKE_AT_MOST = 200
REASON_MAX_LENGTH = 500


class RuleParamsField(BoundedJSONField):
    """A rule's parameters are a few short keys ({"n": 5, "category": "Web Security"}): small limits."""

    limits = JSONLimits(max_bytes=2_000, max_depth=3, max_items=50, max_int_digits=9, max_string_length=200)


class BadgeForm(forms.ModelForm):
    """A badge whose rule can run: every solve of the class evaluates it."""

    class Meta:
        model = Badge
        fields = ["tenant", "name", "slug", "description", "icon", "rule_kind", "rule_params"]  # tenant: superusers
        field_classes = {"rule_params": RuleParamsField}  # NaN, 1e999, deep nesting, huge numbers: form errors

    def clean_rule_params(self):
        params = self.cleaned_data["rule_params"]
        return {} if params is None else params  # an empty box: no parameters

    def clean(self):
        cleaned = super().clean()
        if "rule_params" in cleaned:
            problem = rule_params_problem(cleaned.get("rule_kind") or "", cleaned["rule_params"])
            if problem:
                self.add_error("rule_params", problem)
        return cleaned


@admin.register(Badge)
class BadgeAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = BadgeForm
    list_display = ["name", "rule_kind", "rule_params", "icon"]
    list_filter = ["rule_kind"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ("name",)}


# --- the student field of an award ------------------------------------------------------


def student_label(user: User) -> str:
    """ "Alice Anderson (alice@alpha.test)": two students of one name told apart; the e-mail alone if no name."""
    name = f"{user.first_name} {user.last_name}".strip()
    return f"{name} ({user.email})" if name else user.email


def matching_students(tenant_id: int, term: str):
    """The tenant's students whose first name, last name or e-mail holds every word of the search."""
    students = User.objects.for_tenant(tenant_id).students()
    for word in bounded_search_term(term).split():
        word = word.strip("\"'")
        if word:
            students = students.filter(
                Q(first_name__icontains=word) | Q(last_name__icontains=word) | Q(email__icontains=word)
            )
    return students.order_by("last_name", "first_name", "email", "pk").only("pk", "first_name", "last_name", "email")


class StudentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return student_label(obj)


class StudentSearchWidget(AutocompleteSelect):
    """Django admin's select2 widget, asking the awards admin's student search instead of Django's autocomplete."""

    def get_url(self):
        return reverse(f"{self.admin_site.name}:scoring_userbadge_student_search")


# --- revoking ------------------------------------------------------------------------------


class RevokeForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text="Why the badge is taken back. The student’s history and the audit log keep it.",
        error_messages={"required": "Say why the badge is taken back."},
    )  # stripped: a reason of spaces is no reason


@admin.register(UserBadge)
class UserBadgeAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Awarding by hand is adding a row here; revoking is a page of its own, with a reason. Both call the services."""

    list_display = ["badge", "student", "awarded_at", "awarded_by"]
    list_filter = [("badge", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["badge", "user", "awarded_by"]
    search_fields = ["user__email", "user__first_name", "user__last_name", "badge__name"]
    fields = ["badge", "user"]
    actions = ["revoke_selected"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request):
        # an award's name says who and what ("First Blood for Alice Anderson"): both loaded with it
        return super().get_queryset(request).select_related("badge", "user")

    # --- permissions: awards are revoked, never deleted

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # Django's delete page and "delete selected": refused, superusers too

    def has_revoke_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.delete_{self.opts.model_name}")

    # --- the list

    @admin.display(description="Student", ordering="user__last_name")
    def student(self, award):
        return student_label(award.user)

    @admin.display(description="Revoke")
    def revoke_link(self, award):
        url = reverse(f"{self.admin_site.name}:scoring_userbadge_revoke", args=[award.pk])
        return format_html('<a href="{}" aria-label="Revoke {}">Revoke</a>', url, revoke_title(award))

    def get_list_display(self, request):
        shown = list(super().get_list_display(request))
        return [*shown, "revoke_link"] if self.has_revoke_permission(request) else shown

    # --- the award form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["form_class"] = StudentChoiceField
            kwargs["widget"] = StudentSearchWidget(db_field, self.admin_site)
            kwargs["help_text"] = "Type part of the student’s name or e-mail."
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)  # the tenant's rows only
        if db_field.name == "user":
            field.queryset = field.queryset.students()
            field.label = "Student"
        return field

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "user" and isinstance(field.widget, RelatedFieldWidgetWrapper):
            field.widget = field.widget.widget  # no "add a user" from here: awards go to enrolled students
        return field

    def save_model(self, request, obj, form, change):
        try:
            award = services.badge_award(badge=obj.badge, user=obj.user, actor=request.user)
        except services.ScoringError as refusal:
            raise PermissionDenied(str(refusal)) from refusal
        obj.pk = award.pk

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_revoke"] = obj is not None and self.has_revoke_permission(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- views of their own

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "student-search/",
                self.admin_site.admin_view(self.student_search_view),
                name=f"{name}_student_search",
            ),
            path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view), name=f"{name}_revoke"),
            *super().get_urls(),
        ]

    def student_search_view(self, request):
        """The tenant's students matching ?term=, in select2's format: {results: [{id, text}], pagination: {more}}."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        term = request.GET.get("term", "")
        try:
            page = int(request.GET.get("page") or 1)
        except ValueError:
            page = 0
        if "\x00" in term or not 1 <= page <= STUDENT_SEARCH_MAX_PAGE:
            return JsonResponse({"error": "This search is not valid."}, status=400)
        start = (page - 1) * STUDENT_SEARCH_PAGE
        found = list(matching_students(request_tenant_id(request), term)[start : start + STUDENT_SEARCH_PAGE + 1])
        return JsonResponse(
            {
                "results": [{"id": str(user.pk), "text": student_label(user)} for user in found[:STUDENT_SEARCH_PAGE]],
                "pagination": {"more": len(found) > STUDENT_SEARCH_PAGE},
            }
        )

    def revoke_view(self, request, object_id):
        """One award's revocation: a reason, then the service. GET only shows the form."""
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        award = self.get_object(request, unquote(object_id))  # the tenant's only: another's is missing
        if award is None:
            raise Http404
        form = RevokeForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            self.revoke(request, [award], form.cleaned_data["reason"])
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:scoring_userbadge_changelist"))
        return self.render_revoke(request, [award], form, title=f"Revoke {revoke_title(award)}", award=award)

    @admin.action(description="Revoke the selected badges…", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        """Several awards, one reason: the same form as one award's, posted back to this action."""
        awards = list(queryset.order_by("user_id", "badge_id")[: REVOKE_AT_MOST + 1])
        if len(awards) > REVOKE_AT_MOST:
            refusal = f"Select at most {REVOKE_AT_MOST} awards to revoke at once: nothing was done."
            self.message_user(request, refusal, messages.WARNING)
            return None
        form = RevokeForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_valid():
            self.revoke(request, awards, form.cleaned_data["reason"])
            return None  # back to the list
        count = len(awards)
        title = f"Revoke {count} badge{'s' if count != 1 else ''}"
        return self.render_revoke(request, awards, form, title=title, bulk=True)

    def revoke(self, request, awards: list, reason: str) -> None:
        """Each award through the service, their audit rows and events written together."""
        done = []
        with audit.in_bulk():
            for award in awards:
                try:
                    services.badge_revoke(badge=award.badge, user=award.user, actor=request.user, reason=reason)
                except services.ScoringError as refusal:  # revoked meanwhile: nothing written for it
                    self.message_user(request, str(refusal), messages.WARNING)
                else:
                    done.append(award)
        if len(done) == 1:
            self.message_user(request, f"Revoked {revoke_title(done[0])}.", messages.SUCCESS)
        elif done:
            self.message_user(request, f"Revoked {len(done)} badges.", messages.SUCCESS)

    def render_revoke(self, request, awards, form, *, title, award=None, bulk=False):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "awards": [(a, student_label(a.user)) for a in awards],
            "award": award,
            "form": form,
            "bulk": bulk,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "reason_max_length": REASON_MAX_LENGTH,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/scoring/userbadge/revoke.html", context)


def revoke_title(award: UserBadge) -> str:
    """ "First Blood from Alice Anderson" """
    return f"{award.badge.name} from {award.user.get_full_name()}"
