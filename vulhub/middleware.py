from .health import health


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
