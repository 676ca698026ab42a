"""What a student typed, kept in their session across a redirect: a refused flag, or a form
sent after the session expired (kept through the login). A page takes it back once.

Only the answer fields are ever kept (never a password or a token), each bounded.
"""

KEPT_FIELDS = ("flag", "writeup", "link")
MAX_CHARS = 20_000
SESSION_KEY = "vulhub.drafts"


def keep(request, fields, path: str | None = None) -> bool:
    """Keep the answer fields of `fields` (a dict or QueryDict) for the page at `path` (default: the request's)."""
    kept = {name: str(fields.get(name, ""))[:MAX_CHARS] for name in KEPT_FIELDS if fields.get(name)}
    if not kept:
        return False
    drafts = dict(request.session.get(SESSION_KEY, {}))
    drafts[path or request.path] = kept
    request.session[SESSION_KEY] = drafts
    return True


def take(request, path: str | None = None) -> dict:
    """The fields kept for the page at `path` (the request's own by default), removed from the session; {} when none."""
    drafts = request.session.get(SESSION_KEY)
    if not drafts or (path or request.path) not in drafts:
        return {}
    drafts = dict(drafts)
    kept = drafts.pop(path or request.path)
    request.session[SESSION_KEY] = drafts
    return kept
