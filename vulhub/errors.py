"""The error pages that need code: the server error, and a form refused for its CSRF token.

The server-error page: a 503 "try again" when the database is away, a 500 otherwise.

Django calls the urlconf's handler500 inside the `except` block of the request that
failed, so the exception is at hand. A lost or refused database connection (PostgreSQL
restarting), an exhausted pool and a statement cancelled by `statement_timeout` are
all OperationalError (or InterfaceError for a connection already closed): the request
may succeed if tried again, which is what 503 and Retry-After say. Neither page touches
the database.
"""

import sys
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.db import InterfaceError, OperationalError, ProgrammingError
from django.http import HttpResponse, HttpResponseServerError
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.shortcuts import render, resolve_url
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import url_has_allowed_host_and_scheme

from .lib import drafts

RETRY_AFTER_SECONDS = 5


def database_unavailable(error: BaseException | None) -> bool:
    """The database is away, or refuses this app's tenant contexts (a SECRET_KEY `migrate` has
    not installed yet: the log says so, and the next `migrate` mends it)."""
    if isinstance(error, ProgrammingError):
        return "tenant context refused" in str(error)
    return isinstance(error, OperationalError | InterfaceError)


def server_error(request):
    if database_unavailable(sys.exc_info()[1]):
        response = HttpResponse(render_to_string("503.html", {"retry_after": RETRY_AFTER_SECONDS}), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return HttpResponseServerError(render_to_string("500.html"))


def csrf_failure(request, reason=""):
    """A refused form (a stale or missing CSRF token): what happened, and the answer to send again.

    The real case: a tab left open across a logout and a login, whose form holds a token
    the login replaced. The page explains in plain words and, for an answer form (flag,
    write-up, link: never a password or a code), shows what was typed in a form with a
    fresh token that posts to the same address. A signed-out student's answer is also kept
    for after the login (vulhub.lib.drafts); sending it again takes them there.

    Only what the student's own browser sent from this site is shown back: a form posted
    from another site (its Origin, or its Referer, is not this site) is explained, never
    echoed, so no other site can fill in a form for a student to send.
    """
    same_site = _from_this_site(request)
    view = getattr(request.resolver_match, "view_name", "")
    signed_in = request.user.is_authenticated
    answer = {}
    action = local_path(request.get_full_path())
    if request.method == "POST" and same_site and action and drafts.is_answer_form(request.POST):
        answer = {
            name: request.POST.get(name, "")[: drafts.MAX_CHARS] for name in drafts.KEPT_FIELDS if name in request.POST
        }
        if not signed_in:
            drafts.keep(request, request.POST)
    context = {
        "answer_fields": [{"name": name, "value": value, **ANSWER_FIELDS[name]} for name, value in answer.items()],
        "action": action,
        "back": _way_back(request, view),
        "logout": view == "logout",
        "from_elsewhere": not same_site,
        "no_cookie": reason == REASON_NO_CSRF_COOKIE,
        "login_url": _login_url(request),
    }
    response = render(request, "403_csrf.html", context, status=403)
    patch_cache_control(response, private=True, no_store=True)  # it may hold what the student typed
    return response


# How the kept answer fields are shown back: as on the challenge's page (scoring.forms).
ANSWER_FIELDS = {
    "flag": {"label": "Flag", "multiline": False, "inputmode": "text"},
    "writeup": {"label": "Your write-up", "multiline": True, "inputmode": "text"},
    "link": {"label": "Link (optional)", "multiline": False, "inputmode": "url"},
}


def _origin(request) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _from_this_site(request) -> bool:
    """The form came from a page of this site, as the browser says: its Origin, else its Referer."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is not None:
        return origin == _origin(request)
    referer = urlsplit(request.META.get("HTTP_REFERER", ""))
    return bool(referer.netloc) and f"{referer.scheme}://{referer.netloc}" == _origin(request)


def local_path(url: str) -> str | None:
    """`url` when it is a path on this site (its query kept, no fragment), else None.

    A full URL is refused, and so is a path such as `//elsewhere.example/` or
    `/\\elsewhere.example/`, which a browser takes for a link to another site.
    """
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    path = urlunsplit(("", "", parts.path, parts.query, ""))
    if not path.startswith("/") or not url_has_allowed_host_and_scheme(path, allowed_hosts=None):
        return None
    return path


def _way_back(request, view: str) -> str:
    """The page the form was on (its Referer, when on this site), else the form's own address; never another site."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(referer)
        back = local_path(urlunsplit(("", "", parts.path or "/", parts.query, "")))
        if back:
            return back
    if view == "logout":  # a POST-only address
        return reverse("dashboard")
    return local_path(request.get_full_path()) or "/"


def _login_url(request) -> str:
    login = resolve_url(settings.LOGIN_URL)
    here = local_path(request.get_full_path())
    return f"{login}?{urlencode({REDIRECT_FIELD_NAME: here})}" if here else login
