"""The instructor's side of scoring: the grading queue (grading_admin), badges and awards (badge_admin),
teams, their members and the team standings (team_admin), the leaderboard and hint unlocks (here)."""

from django.contrib import admin
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV

from tenants.time_zone import zone_of
from vulhub.lib.admin import CappedCountPaginator, ReadOnlyAdminMixin, TenantScopedAdminMixin

from . import badge_admin, grading_admin, team_admin  # noqa: F401  (they register their admins)
from .admin_filters import TenantChallengeFilter
from .models import HintUnlock, Leaderboard
from .resources import LeaderboardExportResource


@admin.register(Leaderboard)
class LeaderboardAdmin(ReadOnlyAdminMixin, TenantScopedAdminMixin, ExportMixin, admin.ModelAdmin):
    list_display = ["rank", "user", "points", "solves", "last_scored_at"]
    list_select_related = ["user"]
    search_fields = ["user__email", "user__last_name"]
    ordering = ["-points", "last_scored_at"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    resource_classes = [LeaderboardExportResource]
    export_formats = [CSV]

    def get_export_resource_kwargs(self, request, **kwargs):
        return {"zone": zone_of(getattr(request, "tenant", None))}  # times in the class's zone


@admin.register(HintUnlock)
class HintUnlockAdmin(ReadOnlyAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """Who unlocked which hint, and what it cost them (read-only: an unlock is the student's)."""

    list_display = ["unlocked_at", "user", "project", "hint_number", "cost"]
    list_filter = [("project", TenantChallengeFilter)]
    list_select_related = ["user", "project", "hint"]
    search_fields = ["user__email", "user__last_name", "project__name"]
    ordering = ["-unlocked_at"]

    @admin.display(description="hint")
    def hint_number(self, obj):
        return f"Hint {obj.hint.position}" if obj.hint else "(deleted hint)"
