import logging
import re
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, SESSION_KEY
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme

from audit.api import new_request_id

from .health import health
from .lib import drafts

# What we accept from an incoming X-Request-ID: short, printable, no spaces.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
# The admin pages where staff upload challenge files (challenges.file_admin): their bodies may
# be larger by the files a challenge may hold (RequestTooLargeMiddleware.body_limit).
FILE_UPLOAD_VIEWS = frozenset({"admin:challenges_project_add", "admin:challenges_project_change"})


class NulFreeHeadersMiddleware:
    """Drop NUL characters from the request's headers before anything reads them.

    A header is the client's own text, and PostgreSQL text cannot hold a NUL: a User-Agent
    or Accept with one, stored in an audit row or django-axes' record of a failed login,
    was a DataError (a 500). Nothing legitimate sends a NUL in a header.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        for name, value in request.META.items():
            if name.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                request.META[name] = value.replace("\x00", "")
        return self.get_response(request)


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


class PrivateCacheMiddleware:
    """Keep a signed-in user's responses out of shared caches and the browser's disk.

    A page rendered for a signed-in user shows their work, or the admin: `private,
    no-store` keeps a proxy from serving it to the next visitor and the browser from
    keeping it after logout, and `Vary: Cookie` says the answer depends on the session.
    Directives a response already has (never_cache's no-cache, max-age=0) are kept;
    `public` gives way to `private`. Anonymous pages stay cacheable. Only tenant sites
    have signed-in users: /health/ and /static/ (no tenant) are left alone, and static
    files never get here (WhiteNoise answers them first).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if getattr(request, "tenant", None) is not None and user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
            patch_vary_headers(response, ("Cookie",))
        return response


class RequestTooLargeMiddleware:
    """Refuse an oversized request body with a 413 page, before any view reads it.

    Django raises RequestDataTooBig (or TooManyFieldsSent, TooManyFilesSent) when a body
    is first read, which CsrfViewMiddleware does later; uncaught, that is a 400 (a
    traceback with DEBUG on). So a form's body is read here instead, where the refusal
    can be a 413 with a page saying what to do. Any body longer than REQUEST_BODY_MAX_SIZE,
    files included, is refused from its Content-Length without being read.

    It runs before the tenant middleware opens the request's transaction: a slow upload
    holds no database connection, and the page (like 500.html) needs no database.
    """

    FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = self.body_limit(request)
        try:
            self.check_body(request, limit)
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as refusal:
            return self.refuse(request, refusal, limit)
        except OSError:
            pass  # the client went away mid-body: Django handles the unreadable body as before
        return self.get_response(request)

    def body_limit(self, request) -> int:
        """REQUEST_BODY_MAX_SIZE, plus ATTACHMENTS_PER_CHALLENGE_MAX_BYTES on the pages that upload challenge files.

        Only a challenge's admin add and change pages: every other page, the rest of the
        admin included, keeps the site's limit. Their files are streamed to temporary files
        (FILE_UPLOAD_MAX_MEMORY_SIZE), never held in memory.
        """
        if request.method == "POST":
            try:
                view = resolve(request.path_info).view_name
            except Resolver404:
                view = ""
            # signed in only: a stranger's upload is refused at the site's limit, before its body is read
            if view in FILE_UPLOAD_VIEWS and request.session.get(SESSION_KEY):
                return settings.REQUEST_BODY_MAX_SIZE + settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES
        return settings.REQUEST_BODY_MAX_SIZE

    def check_body(self, request, limit: int) -> None:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            raise RequestDataTooBig(f"A body of {length} bytes is over its limit of {limit} bytes.")
        in_memory = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request.method == "POST" and request.content_type in self.FORM_TYPES:
            request.POST  # noqa: B018  (parsing applies the DATA_UPLOAD_MAX_* settings, raising when over)
        elif request.content_type != "multipart/form-data" and in_memory is not None and length > in_memory:
            raise RequestDataTooBig(f"A body of {length} bytes is over DATA_UPLOAD_MAX_MEMORY_SIZE.")

    def refuse(self, request, refusal, limit: int):
        # the logger Django itself uses for this SuspiciousOperation
        logging.getLogger(f"django.security.{type(refusal).__name__}").warning(
            "%s %s refused with a 413: %s", request.method, request.path, refusal
        )
        context = {
            "too_many": {TooManyFieldsSent: "fields", TooManyFilesSent: "files"}.get(type(refusal), ""),
            "max_fields": settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
            "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
            "max_size": settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
            "max_body": limit,
        }
        return HttpResponse(render_to_string("413.html", context), status=413)


class KeepAnswersThroughLoginMiddleware:
    """An answer sent after the session ended is kept through the login instead of dropped.

    A page that requires login answers an anonymous request with a redirect to the login
    page (`login_required`): for a POST that carried a flag or a write-up, the answer was
    lost. Here the answer fields (never anything else, bounded: vulhub.lib.drafts) are kept
    in the session, which `login()` keeps, and the login page says so; the page then shows
    them back in its form once (`drafts.take`).

    It looks at the view's answer, so it runs only after the CSRF check has passed: a
    form from another site is refused there (vulhub.errors.csrf_failure) and keeps
    nothing. `next=` is the page's own path, never a URL a client wrote.
    """

    MESSAGE = "Your session had ended. Sign in and your answer will be back in the form."

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.method != "POST" or not self.sent_to_login(request, response):
            return response
        user = getattr(request, "user", None)
        if user is None or user.is_authenticated or not drafts.keep(request, request.POST):
            return response
        messages.info(request, self.MESSAGE, fail_silently=True)
        here = request.get_full_path()
        return redirect_to_login(here if url_has_allowed_host_and_scheme(here, allowed_hosts=None) else "")

    @staticmethod
    def sent_to_login(request, response) -> bool:
        """Whether `response` sends this request to the login page, to come back to it after (login_required)."""
        if response.status_code not in (301, 302, 303) or not response.has_header("Location"):
            return False
        target = urlsplit(response["Location"])
        login = urlsplit(resolve_url(settings.LOGIN_URL))
        if target.path != login.path or target.netloc not in ("", request.get_host()):
            return False
        back = parse_qs(target.query).get(REDIRECT_FIELD_NAME, [""])[0]
        return urlsplit(back).path == request.path
