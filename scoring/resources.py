"""CSV exports of submissions and the leaderboard (django-import-export), safe to open in a spreadsheet."""

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
    student = fields.Field(attribute="user__email", column_name="student")
    name = fields.Field(column_name="name")

    class Meta:
        model = Leaderboard
        fields = ("rank", "student", "name", "points", "solves", "last_scored_at")
        export_order = fields

    def dehydrate_name(self, row):
        return f"{row.user.first_name} {row.user.last_name}".strip()
