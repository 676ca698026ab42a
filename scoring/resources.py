"""CSV exports of submissions and the leaderboard (django-import-export), safe to open in a spreadsheet."""

from django.db.models import Count
from import_export import fields, resources

from vulhub.lib.exports import FormulaSafeExportMixin

from .models import Leaderboard, Submission


class SubmissionExportResource(FormulaSafeExportMixin, resources.ModelResource):
    student = fields.Field(attribute="user__email", column_name="student")
    challenge = fields.Field(attribute="project__name", column_name="challenge")

    class Meta:
        model = Submission
        fields = (
            "id",
            "student",
            "challenge",
            "kind",
            "status",
            "score",
            "points_awarded",
            "submitted_at",
            "graded_at",
            "feedback",
        )
        export_order = fields


class LeaderboardExportResource(FormulaSafeExportMixin, resources.ModelResource):
    rank = fields.Field(column_name="rank")
    student = fields.Field(attribute="user__email", column_name="student")
    name = fields.Field(column_name="name")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._ranks: dict[int, dict[int, int]] = {}

    def dehydrate_rank(self, row):
        """The competition rank, from the number of the tenant's students on each score (one query a tenant)."""
        if row.tenant_id not in self._ranks:
            counts = (
                Leaderboard.objects.for_tenant(row.tenant_id)
                .order_by("-points")
                .values_list("points")
                .annotate(n=Count("pk"))
            )
            ranks, above = {}, 0
            for points, n in counts:
                ranks[points] = above + 1
                above += n
            self._ranks[row.tenant_id] = ranks
        rank = self._ranks[row.tenant_id].get(row.points)
        if rank is None:  # the row changed since the counts were read
            rank = Leaderboard.objects.for_tenant(row.tenant_id).filter(points__gt=row.points).count() + 1
        return rank

    class Meta:
        model = Leaderboard
        fields = ("rank", "student", "name", "points", "solves", "last_scored_at")
        export_order = fields

    def dehydrate_name(self, row):
        return f"{row.user.first_name} {row.user.last_name}".strip()
