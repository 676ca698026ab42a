"""Tenant scoping for the admin of every app: instructors and tenant admins see their own tenant only.

Generic: nothing here imports an app; the tenant model is reached by its label, "tenants.Tenant".
"""

from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import BadRequest, FieldError, ValidationError
from django.core.paginator import Paginator
from django.forms.models import BaseInlineFormSet
from django.http import Http404
from django.utils.functional import cached_property
from django.utils.text import smart_split

from .admin_secrets import SecretFieldsAdminMixin

# An admin search is cut to this many characters and words. Django turns each word into
# an OR of ILIKEs over the search fields, all ANDed: a search of fifty thousand words is
# one statement that exhausts the database server's memory.
SEARCH_MAX_LENGTH = 200
SEARCH_MAX_TERMS = 10


def bounded_search_term(search_term: str) -> str:
    """The first words of a search (quoted phrases kept whole), within the limits above."""
    return " ".join(list(smart_split(search_term[:SEARCH_MAX_LENGTH]))[:SEARCH_MAX_TERMS])


def holds_nul(query) -> bool:
    """Whether a QueryDict holds a NUL character, in a name or a value."""
    return any("\x00" in name or any("\x00" in value for value in values) for name, values in query.lists())


class StrictInputAdminMixin(SecretFieldsAdminMixin):
    """Hostile query strings and selections are refused like any invalid input, never a 500.

    Secrets are never a filter, a sort key or a search term (SecretFieldsAdminMixin).
    """

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, bounded_search_term(search_term))

    def get_changelist_instance(self, request):
        # PostgreSQL text cannot hold a NUL: a filter value with one (?role__exact=%00) failed in
        # the database, a 500. It is an invalid filter, the changelist's "?e=1" page.
        if holds_nul(request.GET):
            raise IncorrectLookupParameters("A query parameter holds a NUL character.")
        return super().get_changelist_instance(request)

    def get_export_queryset(self, request):
        # django-import-export makes its own changelist, outside the changelist view that turns an
        # invalid filter into the "?e=1" page: there ?foo=1 or ?project__id__exact=abc was a 500.
        if holds_nul(request.GET):
            raise BadRequest("A query parameter holds a NUL character.")
        try:
            return super().get_export_queryset(request)
        except (IncorrectLookupParameters, FieldError, ValidationError, ValueError) as error:
            raise BadRequest("The filters of the export are not valid.") from error

    def response_action(self, request, queryset):
        # Django filters pk__in=<the posted ids> as they are: one that is no id raised a
        # ValueError (a 500). Such a selection is refused: back to the list, nothing done.
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                self.model._meta.pk.to_python(value)
        except ValidationError:
            self.message_user(request, "The selection is not valid: nothing was done.", messages.WARNING)
            return None
        return super().response_action(request, queryset)


class ReadOnlyAdminMixin:
    """Nobody adds, changes or deletes the rows of this admin, superusers included."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def request_tenant_id(request) -> int | None:
    """The tenant an admin request works in: its host's (a platform superuser's too)."""
    tenant = getattr(request, "tenant", None)
    return tenant.pk if tenant is not None else request.user.tenant_id


class TenantScopedAdminMixin(StrictInputAdminMixin):
    """Limit an admin to the request's tenant, the one served on its host.

    Platform superusers too: the database shows a request its host's tenant only
    (row-level security, tenants/rls.py); work across tenants is done with manage.py.
    Another tenant's object answers 404, exactly like a missing one.
    """

    tenant_field = "tenant"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(**{f"{self.tenant_field}_id": request_tenant_id(request)})

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django's default redirects with a message; a foreign id must look missing.
        raise Http404

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Choices (select, raw id, autocomplete) of tenant-owned models: this tenant's only."""
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        model = db_field.related_model
        if field is not None and hasattr(field, "queryset"):
            if model._meta.label == "tenants.Tenant":
                field.queryset = field.queryset.filter(pk=request_tenant_id(request))
            elif any(f.name == "tenant" for f in model._meta.concrete_fields):
                field.queryset = field.queryset.filter(tenant_id=request_tenant_id(request))
        return field

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if self.tenant_field not in exclude:
            exclude.append(self.tenant_field)  # the request's, never chosen
        return exclude

    def save_model(self, request, obj, form, change):
        if not change:
            setattr(obj, f"{self.tenant_field}_id", request_tenant_id(request))
        super().save_model(request, obj, form, change)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return tenant_bound_form(form, self.tenant_field, request_tenant_id(request))


def tenant_bound_form(form_class, tenant_field, tenant_id):
    """A form whose instance gets the tenant before validation, and validates with it.

    The tenant is not a form field, so Django would skip every unique constraint that
    includes it (slug per tenant, e-mail per tenant) and leave the duplicate to fail in
    the database as a 500. Here it is a form error like any other.
    """

    class TenantBoundForm(form_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            setattr(self.instance, f"{tenant_field}_id", tenant_id)  # field checks may need it

        def _get_validation_exclusions(self):
            exclude = super()._get_validation_exclusions()
            exclude.discard(tenant_field)
            return exclude

        def _post_clean(self):
            setattr(self.instance, f"{tenant_field}_id", tenant_id)
            super()._post_clean()

    TenantBoundForm.__name__ = form_class.__name__
    return TenantBoundForm


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: a changelist over a million rows never runs a full COUNT(*)."""

    CAP = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.CAP + 1].count() if hasattr(self.object_list, "query") else len(self.object_list)


def id_filter_value(value: str) -> int:
    """A list filter's id from the query string; anything else (?actor=abc) is an invalid filter, not a 500."""
    try:
        return int(value)
    except ValueError as error:
        raise IncorrectLookupParameters(error) from error


class LabelledInlineFormSet(BaseInlineFormSet):
    """A tabular inline whose inputs have names a screen reader can read.

    Django's tabular inline shows each field's label as a column header, not as a <label>,
    so its inputs have no accessible name (axe: label, label-title-only). Each visible
    input gets its column's label as aria-label (the DELETE box too: it is added here).
    """

    def add_fields(self, form, index):
        super().add_fields(form, index)
        for field in form.fields.values():
            if not field.widget.is_hidden:
                field.widget.attrs.setdefault("aria-label", str(field.label))
