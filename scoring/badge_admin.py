"""Badges and their awards: rules an instructor defines, awards by hand and revocations."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied

from vulhub.lib.admin import CappedCountPaginator, TenantScopedAdminMixin
from vulhub.lib.json_limits import BoundedJSONField, JSONLimits

from . import services
from .badges import rule_params_problem
from .models import Badge, UserBadge


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


@admin.register(UserBadge)
class UserBadgeAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    """Awarding by hand is adding a row here; revoking is deleting it. Both go through the services."""

    list_display = ["badge", "user", "awarded_at", "awarded_by"]
    list_filter = [("badge", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["badge", "user", "awarded_by"]
    search_fields = ["user__email", "user__last_name", "badge__name"]
    fields = ["badge", "user"]
    paginator = CappedCountPaginator
    show_full_result_count = False

    def has_change_permission(self, request, obj=None):
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user":
            field.queryset = field.queryset.students().order_by("last_name", "first_name")
        return field

    def save_model(self, request, obj, form, change):
        try:
            award = services.badge_award(badge=obj.badge, user=obj.user, actor=request.user)
        except services.ScoringError as refusal:
            raise PermissionDenied(str(refusal)) from refusal
        obj.pk = award.pk

    def delete_model(self, request, obj):
        services.badge_revoke(badge=obj.badge, user=obj.user, actor=request.user, reason="Revoked in the admin.")

    def delete_queryset(self, request, queryset):
        for award in queryset.select_related("badge", "user"):
            self.delete_model(request, award)
