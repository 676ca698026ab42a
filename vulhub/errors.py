"""The server-error page: a 503 "try again" when the database is away, a 500 otherwise.

Django calls the urlconf's handler500 inside the `except` block of the request that
failed, so the exception is at hand. A lost or refused database connection (PostgreSQL
restarting), an exhausted pool and a statement cancelled by `statement_timeout` are
all OperationalError (or InterfaceError for a connection already closed): the request
may succeed if tried again, which is what 503 and Retry-After say. Neither page touches
the database.
"""

import sys

from django.db import InterfaceError, OperationalError, ProgrammingError
from django.http import HttpResponse, HttpResponseServerError
from django.template.loader import render_to_string

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
    """A refused form (stale or missing CSRF token): filled in for issue 27."""
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
