from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponseNotFound
from django.template.loader import render_to_string

from .models import Tenant

# Paths that answer on any host, tenant or not.
TENANTLESS_PREFIXES = ("/health/", "/static/")


def host_without_port(request) -> str:
    host = request.get_host().lower()
    if host.startswith("["):  # IPv6 literal
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0]


class TenantMiddleware:
    """Find the request's tenant from its host name and set `request.tenant`.

    An unknown (or inactive) host gets a plain 404, never another tenant's site.
    A session belonging to another tenant's user counts as anonymous here, so a
    user of tenant A is nobody on tenant B's host.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        if request.path_info.startswith(TENANTLESS_PREFIXES):
            return self.get_response(request)
        tenant = Tenant.objects.for_host(host_without_port(request)).first()
        if tenant is None:
            return HttpResponseNotFound(render_to_string("unknown_host.html", {"host": request.get_host()}))
        request.tenant = tenant
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not user.is_superuser and user.tenant_id != tenant.pk:
            request.user = AnonymousUser()
        return self.get_response(request)
