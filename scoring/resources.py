"""CSV exports of submissions and the leaderboard (django-import-export), safe to open in a spreadsheet.

Headers and values in words a person reads (the kind and status as the site says them),
the student's name beside their e-mail, times in ISO 8601 in the class's zone with its
offset (the admin passes the zone: get_export_resource_kwargs).
"""

from import_export import fields, resources

from vulhub.lib.exports import FormulaSafeExportMixin, ZonedExportMixin, iso_in_zone

from .models import Leaderboard, Submission


class SubmissionExportResource(FormulaSafeExportMixin, ZonedExportMixin, resources.ModelResource):
    id = fields.Field(attribute="id", column_name="Submission")
    first_name = fields.Field(attribute="user__first_name", column_name="First name")
    last_name = fields.Field(attribute="user__last_name", column_name="Last name")
    email = fields.Field(attribute="user__email", column_name="E-mail")
    challenge = fields.Field(attribute="project__name", column_name="Challenge")
    kind = fields.Field(column_name="Kind")
    status = fields.Field(column_name="Status")
    score = fields.Field(attribute="score", column_name="Score")
    points = fields.Field(attribute="points_awarded", column_name="Points")
    submitted = fields.Field(column_name="Submitted at")
    graded = fields.Field(column_name="Graded at")
    feedback = fields.Field(attribute="feedback", column_name="Feedback")

    class Meta:
        model = Submission
        fields = (
            "id",
            "first_name",
            "last_name",
            "email",
            "challenge",
            "kind",
            "status",
            "score",
            "points",
            "submitted",
            "graded",
            "feedback",
        )
        export_order = fields

    def dehydrate_kind(self, submission):
        return submission.get_kind_display()

    def dehydrate_status(self, submission):
        return submission.get_status_display()

    def dehydrate_submitted(self, submission):
        return iso_in_zone(submission.submitted_at, self.zone)

    def dehydrate_graded(self, submission):
        return iso_in_zone(submission.graded_at, self.zone)


class LeaderboardExportResource(FormulaSafeExportMixin, ZonedExportMixin, resources.ModelResource):
    rank = fields.Field(attribute="rank", column_name="Rank")
    first_name = fields.Field(attribute="user__first_name", column_name="First name")
    last_name = fields.Field(attribute="user__last_name", column_name="Last name")
    email = fields.Field(attribute="user__email", column_name="E-mail")
    points = fields.Field(attribute="points", column_name="Points")
    solves = fields.Field(attribute="solves", column_name="Solves")
    last_scored = fields.Field(column_name="Last scored at")

    class Meta:
        model = Leaderboard
        fields = ("rank", "first_name", "last_name", "email", "points", "solves", "last_scored")
        export_order = fields

    def dehydrate_last_scored(self, row):
        return iso_in_zone(row.last_scored_at, self.zone)
