"""Tenant scoping for the admin: instructors and tenant admins see their own tenant only."""

from django.contrib import admin
from django.http import Http404


class TenantScopedAdminMixin:
    """Limit an admin to the signed-in user's tenant; platform superusers see every tenant.

    Another tenant's object answers 404, exactly like a missing one.
    """

    tenant_field = "tenant"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.tenant_field}_id": request.user.tenant_id})

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if request.user.is_superuser:
            filters.insert(0, TenantIdFilter)
        return filters

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django's default redirects with a message; a foreign id must look missing.
        raise Http404


class TenantIdFilter(admin.SimpleListFilter):
    """Filter by tenant for superusers; works when the tenant is a bare id (audit rows)."""

    title = "tenant"
    parameter_name = "tenant_id"

    def lookups(self, request, model_admin):
        from .models import Tenant

        return [(str(pk), name) for pk, name in Tenant.objects.values_list("pk", "name")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(tenant_id=self.value())
        return queryset
