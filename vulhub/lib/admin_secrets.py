"""Secrets are never a filter, a sort key or a search term in the admin.

A lookup is an oracle: `?answer__startswith=FLAG{f` answers "rows or no rows", and one
character at a time that reads another student's flag; sorting by a column reads it by
comparison. Django's ModelAdmin allows a lookup on any field of its own model by
default, so every admin refuses any lookup, sort or search whose path touches a field
named below, on its own model or across relations (`?user__password__startswith=`).
A refused lookup is Django's DisallowedModelAdminLookup: a 400, logged by
`django.security`.

Generic like the rest of vulhub.lib: models are named by their label, no app is imported.
"""

from django.core.exceptions import FieldDoesNotExist
from django.db.models import F
from django.db.models.constants import LOOKUP_SEP

# label -> the fields that hold a secret. A JSON field is listed whole when any key may be one.
SECRET_FIELDS: dict[str, frozenset[str]] = {
    # the flag as a student typed it (write-ups are no secret to graders, but one rule is robust)
    "scoring.Submission": frozenset({"answer"}),
    "challenges.Project": frozenset({"flag_hash"}),
    "tenants.User": frozenset({"password"}),
    "tenants.Tenant": frozenset({"settings"}),  # the invite code
    "scoring.Team": frozenset({"invite_code"}),  # lets anyone of the class join the team
    "audit.AuditLog": frozenset({"changes"}),  # recorded values, among them a tenant's settings
    "sessions.Session": frozenset({"session_key", "session_data"}),
}
SEARCH_PREFIXES = "^=@"  # Django's search field operators: startswith, exact, full text


def secret_in_path(model, path: str) -> str | None:
    """The secret ("scoring.Submission.answer") a lookup path reaches, following relations; None if none.

    The walk stops at the first part that is no field: the rest are lookups and transforms
    (`startswith`, a JSON key), which read the field before them.
    """
    for part in path.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return None
        if field.name in SECRET_FIELDS.get(model._meta.label, ()):
            return f"{model._meta.label}.{field.name}"
        model = field.related_model
        if model is None:  # not a relation (or a generic one): nothing further to reach
            return None
    return None


def order_paths(order) -> list[str]:
    """The field paths an ordering reads: "-answer", F("answer").desc() or an expression over fields."""
    if isinstance(order, str):
        return [order.lstrip("-?")]
    if isinstance(order, F):
        return [order.name]
    return [path for source in getattr(order, "get_source_expressions", list)() for path in order_paths(source)]


def column_order(model_admin, column):
    """What `?o=` sorts a changelist column by, as Django's ChangeList.get_ordering_field reads it."""
    if isinstance(column, str):
        try:
            return model_admin.model._meta.get_field(column).name
        except FieldDoesNotExist:
            pass
        attr = getattr(model_admin, column, None) or getattr(model_admin.model, column, None)
        if attr is None:
            return column if LOOKUP_SEP in column else None  # a column across relations: "user__email"
    else:
        attr = column
    attr = attr.fget if isinstance(attr, property) else attr
    return getattr(attr, "admin_order_field", None)


class SecretFieldsAdminMixin:
    """An admin whose changelist never filters, sorts or searches by a secret (SECRET_FIELDS).

    `lookup_allowed` refuses the query string; the other hooks drop a secret from the
    admin's own configuration, so neither a column header nor `?o=<index>` nor `?q=`
    can reach one. The configuration itself is checked by vulhub/tests/test_admin_secrets.py.
    """

    def _touches_secret(self, path) -> bool:
        return any(secret_in_path(self.model, p) for p in order_paths(path) if p)

    def lookup_allowed(self, lookup, value, request=None):
        if secret_in_path(self.model, lookup):
            return False
        return super().lookup_allowed(lookup, value, request)

    def to_field_allowed(self, request, to_field):
        return not secret_in_path(self.model, to_field) and super().to_field_allowed(request, to_field)

    def get_list_display(self, request):
        # `?o=<index>` sorts by any column's ordering, whatever sortable_by says
        return [
            column
            for column in super().get_list_display(request)
            if not (isinstance(column, str) and secret_in_path(self.model, column))
            and not self._touches_secret(column_order(self, column) or "")
        ]

    def get_sortable_by(self, request):
        return [column for column in super().get_sortable_by(request) if column in self.get_list_display(request)]

    def get_ordering(self, request):
        return [order for order in super().get_ordering(request) if not self._touches_secret(order)]

    def get_search_fields(self, request):
        return [
            name
            for name in super().get_search_fields(request)
            if not self._touches_secret(name.lstrip(SEARCH_PREFIXES))
        ]

    def get_list_filter(self, request):
        def path(item):
            name = item[0] if isinstance(item, list | tuple) else item
            return name if isinstance(name, str) else ""  # a SimpleListFilter names no field

        return [item for item in super().get_list_filter(request) if not self._touches_secret(path(item))]
