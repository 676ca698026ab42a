"""The roster's CSV export (django-import-export): names, standing and progress, in words a person reads.

Its rows come from the roster's own list (classroom.admin.RosterAdmin.get_queryset, with
the standing annotations of classroom.roster), with the list's filters and search.
Times are ISO 8601 in the class's time zone, with the offset; every cell is safe to open
in a spreadsheet (vulhub.lib.exports).
"""

from import_export import fields, resources

from tenants.models import User
from vulhub.lib.exports import FormulaSafeExportMixin, ZonedExportMixin, iso_in_zone


class RosterExportResource(FormulaSafeExportMixin, ZonedExportMixin, resources.ModelResource):
    first_name = fields.Field(attribute="first_name", column_name="First name")
    last_name = fields.Field(attribute="last_name", column_name="Last name")
    email = fields.Field(attribute="email", column_name="E-mail")
    role = fields.Field(column_name="Role")
    points = fields.Field(attribute="roster_points", column_name="Points")
    rank = fields.Field(column_name="Rank")
    solves = fields.Field(attribute="roster_solves", column_name="Solves")
    pending = fields.Field(attribute="roster_pending", column_name="Write-ups waiting")
    last_activity = fields.Field(column_name="Last activity")
    active = fields.Field(column_name="Active")

    class Meta:
        model = User
        fields = (
            "first_name",
            "last_name",
            "email",
            "role",
            "points",
            "rank",
            "solves",
            "pending",
            "last_activity",
            "active",
        )
        export_order = fields

    def dehydrate_role(self, user):
        return user.get_role_display()

    def dehydrate_rank(self, user):
        return user.roster_rank if user.roster_rank is not None else ""  # no approved solve yet

    def dehydrate_last_activity(self, user):
        return iso_in_zone(user.roster_last_activity, self.zone)

    def dehydrate_active(self, user):
        return "yes" if user.is_active else "no"
