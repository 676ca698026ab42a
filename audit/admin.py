"""Read-only admin of the audit log and the event store, scoped to the user's tenant."""

import json
import re

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.utils.html import format_html, format_html_join

from vulhub.lib.admin import ReadOnlyAdminMixin, TenantScopedAdminMixin, id_filter_value, request_tenant_id

from .models import AuditLog, EventStore, type_words


class DateBoundedChangeList(ChangeList):
    """A date_hierarchy drill-down to a date Python cannot hold is an invalid filter, not a 500.

    Django turns ?created_at__year=... into a datetime range and catches only ValueError
    while making its start: a year of 99999999999 (OverflowError), or 9999 (its end, year
    10000) escape as server errors.
    """

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as error:
            raise IncorrectLookupParameters(error) from error


class ReadOnlyAdmin(ReadOnlyAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """Nobody adds, changes or deletes these rows here, superusers included."""

    def get_changelist(self, request, **kwargs):
        return DateBoundedChangeList


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.staff().for_tenant(request_tenant_id(request))
        return [("system", "System (no actor)"), *[(str(pk), email) for pk, email in staff.values_list("pk", "email")]]

    def queryset(self, request, queryset):
        if self.value() == "system":
            return queryset.filter(actor_id__isnull=True)
        if not self.value():
            return queryset
        return queryset.filter(actor_id=id_filter_value(self.value()))


def event_words(event_type: str) -> str:
    """ "SubmissionGraded" as words: "Submission graded"."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", event_type or "")
    return words[:1] + words[1:].lower()


class WordsFilter(admin.SimpleListFilter):
    """The distinct values of one column (its parameter_name) as choices, named in words by `words`."""

    @staticmethod
    def words(value: str) -> str:
        return value

    def lookups(self, request, model_admin):
        column = self.parameter_name
        values = model_admin.get_queryset(request).order_by().values_list(column, flat=True).distinct()
        return sorted(((v, self.words(v)) for v in values if v), key=lambda choice: choice[1])

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class ObjectTypeFilter(WordsFilter):
    """The kinds of object the log holds, as an instructor reads them ("challenge", not "challenges.project")."""

    title = "object type"
    parameter_name = "object_type"
    words = staticmethod(type_words)


class EventTypeFilter(WordsFilter):
    """The events of the store in words ("Submission graded", not "SubmissionGraded")."""

    title = "event"
    parameter_name = "event_type"
    words = staticmethod(event_words)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_text", "action", "object_kind", "object_id", "object_text", "ip"]
    list_filter = ["action", ActorFilter, ObjectTypeFilter, "created_at"]
    search_fields = ["object_text", "object_id", "actor_text", "request_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # counting a million rows on every page is wasteful
    fields = [
        "created_at",
        "tenant_id",
        "actor_id",
        "actor_text",
        "action",
        "object_type",
        "object_id",
        "object_text",
        "changes_table",
        "ip",
        "user_agent",
        "request_id",
        "chain_seq",
        "prev_hash",
        "row_hash",
    ]
    readonly_fields = fields

    @admin.display(description="object type", ordering="object_type")
    def object_kind(self, obj):
        return type_words(obj.object_type)

    @admin.display(description="changes")
    def changes_table(self, obj):
        if not obj.changes:
            return "—"
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            ((name, _show(values, 0), _show(values, 1)) for name, values in sorted(obj.changes.items())),
        )
        return format_html(
            '<table class="audit-changes"><thead><tr><th>field</th><th>before</th><th>after</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            rows,
        )


def _show(values, index):
    if not isinstance(values, list | tuple) or len(values) != 2:
        return json.dumps(values) if index == 1 else ""
    value = values[index]
    return "—" if value is None else (value if isinstance(value, str) else json.dumps(value))


@admin.register(EventStore)
class EventStoreAdmin(ReadOnlyAdmin):
    list_display = ["position", "occurred_at", "event", "aggregate_type", "aggregate_id", "version"]
    list_filter = [EventTypeFilter, "aggregate_type", "occurred_at"]
    search_fields = ["aggregate_id", "event_type"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    fields = [
        "position",
        "occurred_at",
        "tenant_id",
        "event_type",
        "aggregate_type",
        "aggregate_id",
        "version",
        "payload_pretty",
        "metadata_pretty",
    ]
    readonly_fields = fields

    @admin.display(description="event", ordering="event_type")
    def event(self, obj):
        return event_words(obj.event_type)

    @admin.display(description="payload")
    def payload_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.display(description="metadata")
    def metadata_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.metadata, indent=2, sort_keys=True))
