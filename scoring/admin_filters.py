"""List filters the scoring admins share."""

from django.contrib import admin

from challenges.models import Project
from vulhub.lib.admin import request_tenant_id


class TenantChallengeFilter(admin.RelatedFieldListFilter):
    """The tenant's challenges as filter choices, read from the small projects table.

    (RelatedOnlyFieldListFilter would scan the tenant's submissions for the ids in use.)
    """

    def field_choices(self, field, request, model_admin):
        projects = Project.objects.order_by("name").for_tenant(request_tenant_id(request))
        return [(p.pk, str(p)) for p in projects.only("pk", "name")]
