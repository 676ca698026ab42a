import re

from audit.context import new_request_id

from .health import health

# What we accept from an incoming X-Request-ID: short, printable, no spaces.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class RequestIdMiddleware:
    """Give every request an id: the caller's `X-Request-ID` when sane, else a new one.

    The id is set on `request.request_id`, recorded with every audit row and event,
    and returned in the response's `X-Request-ID` header.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if REQUEST_ID_PATTERN.match(incoming) else new_request_id()
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


class HealthCheckMiddleware:
    """Answer `/health/` before anything else runs.

    It must work on any host (a load balancer probes by IP), so it answers before
    ALLOWED_HOSTS and tenant resolution, and it must never raise.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == "/health/" and request.method in ("GET", "HEAD"):
            return health(request)
        return self.get_response(request)
