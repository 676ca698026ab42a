"""What a student typed, kept in their session across a redirect: a refused flag, or a form
sent after the session expired (kept through the login). A page takes it back once.

Only the answer fields are ever kept (never a password or a token), each bounded, for a
few pages at most: an anonymous visitor can fill their own session with nothing larger
than MAX_DRAFTS answers. `login()` keeps an anonymous session's data (it cycles the key),
so what was kept before signing in is there after it.
"""

from collections.abc import Mapping

KEPT_FIELDS = ("flag", "writeup", "link")
MAX_CHARS = 20_000  # the longest answer a form takes (a write-up)
MAX_DRAFTS = 3  # pages with a kept answer at once; the oldest gives way
MAX_PATH_CHARS = 500
SESSION_KEY = "vulhub.drafts"


def answer_fields(fields: Mapping) -> dict[str, str]:
    """The answer fields of `fields` that hold something, each cut to MAX_CHARS."""
    return {name: str(fields.get(name, ""))[:MAX_CHARS] for name in KEPT_FIELDS if fields.get(name)}


def is_answer_form(fields: Mapping, ignored: tuple[str, ...] = ("csrfmiddlewaretoken",)) -> bool:
    """Whether `fields` is an answer form: some answer field, and nothing but answer fields.

    Only such a form is ever shown back (vulhub.errors.csrf_failure): a form that also
    holds a password, a code or anything else is not, whatever its answer fields.
    """
    names = [name for name in fields if name not in ignored]
    return bool(names) and all(name in KEPT_FIELDS for name in names)


def keep(request, fields, path: str | None = None) -> bool:
    """Keep the answer fields of `fields` (a dict or QueryDict) for the page at `path` (default: the request's)."""
    kept = answer_fields(fields)
    path = path or request.path
    if not kept or len(path) > MAX_PATH_CHARS:
        return False
    drafts = {page: answer for page, answer in dict(request.session.get(SESSION_KEY) or {}).items() if page != path}
    drafts[path] = kept  # last: dicts keep their order, the session's JSON too
    request.session[SESSION_KEY] = dict(list(drafts.items())[-MAX_DRAFTS:])
    return True


def take(request, path: str | None = None) -> dict:
    """The fields kept for the page at `path` (the request's own by default), removed from the session; {} when none."""
    drafts = request.session.get(SESSION_KEY)
    if not drafts or (path or request.path) not in drafts:
        return {}
    drafts = dict(drafts)
    kept = drafts.pop(path or request.path)
    if drafts:
        request.session[SESSION_KEY] = drafts
    else:
        del request.session[SESSION_KEY]
    return kept
