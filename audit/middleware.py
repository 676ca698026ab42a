from vulhub.lib.client_ip import client_ip

from .context import AuditContext, bind, new_request_id


class AuditContextMiddleware:
    """Bind the request's actor, tenant, IP, user agent and id for the audit receivers."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        authenticated = user is not None and user.is_authenticated
        tenant = getattr(request, "tenant", None)
        context = AuditContext(
            actor_id=user.pk if authenticated else None,
            actor_text=user.email if authenticated else "",
            tenant_id=tenant.pk if tenant is not None else None,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:500],  # NUL-free (NulFreeHeadersMiddleware)
            request_id=getattr(request, "request_id", "") or new_request_id(),
        )
        with bind(context):
            return self.get_response(request)
