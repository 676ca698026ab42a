"""Tenancy primitives every app builds on: tenant scoping of tenant-owned models."""

from django.db import models


class TenantQuerySet(models.QuerySet):
    """Base queryset of tenant-owned models: scope it explicitly with `for_tenant`."""

    def for_tenant(self, tenant):
        """Rows of `tenant` only (a Tenant or its id); None matches nothing."""
        if tenant is None:
            return self.none()
        return self.filter(tenant_id=getattr(tenant, "pk", tenant))
