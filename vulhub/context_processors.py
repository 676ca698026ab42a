import functools

from django.conf import settings
from django.core.signals import setting_changed
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.functional import SimpleLazyObject

from classroom.summary import class_home
from news.selectors import HeaderNotifications, gets_notifications

# The site header's links (templates/base.html), by the name the template uses.
HEADER_LINKS = {
    "dashboard": "dashboard",
    "catalogue": "challenges:catalogue",
    "leaderboard": "scoring:leaderboard",
    "badges": "scoring:badges",
    "submissions": "scoring:submissions",
    "team": "scoring:team",
    "teams": "scoring:teams",
    "notifications": "news:notifications",
    "profile": "profile",
    "admin": "admin:index",
    "logout": "logout",
    "login": "login",
    "register": "register",
}


def class_summary(request):
    """The admin home's view of the class (classroom.summary) for staff of a tenant, read only if a page shows it."""
    user = getattr(request, "user", None)
    tenant = getattr(request, "tenant", None)
    if user is None or tenant is None or not request.path.startswith("/admin/") or not user.is_staff:
        return {}
    return {"class_summary": SimpleLazyObject(lambda: class_home(tenant))}


def header(request):
    """What the site header of every page shows (templates/base.html): its links and the notification centre's.

    `header_links`: the menu's URLs, found once per worker rather than by a {% url %} per
    link per page (nine of them cost about 0.15 ms a page: scenario 17, bench/profile_page.py).

    `notifications`: the link to the notification centre, for a signed-in student of the
    tenant. Nothing is read unless a page shows it: the user and the tenant are looked at
    when a template first uses `notifications`, and the unread count (one query) when it
    shows `notifications.unread`. settings.NOTIFICATIONS_ENABLED off: the link without a
    count, and no query at all.
    """

    def notifications():
        if not gets_notifications(getattr(request, "user", None), getattr(request, "tenant", None)):
            return None
        return HeaderNotifications(request, counting=settings.NOTIFICATIONS_ENABLED)

    return {"header_links": header_links(), "notifications": SimpleLazyObject(notifications)}


def header_links() -> dict[str, str]:
    """HEADER_LINKS' URLs as {% url %} gives them: under the request's script prefix, in its URLconf."""
    return _reversed(get_urlconf() or settings.ROOT_URLCONF, get_script_prefix())


@functools.lru_cache(maxsize=32)
def _reversed(urlconf: str, prefix: str) -> dict[str, str]:
    # reverse() reads the prefix itself; it is part of the key, so each prefix has its own URLs
    return {key: reverse(name, urlconf=urlconf) for key, name in HEADER_LINKS.items()}


def _forget_links(*, setting, **kwargs) -> None:
    """A test that swaps the URLconf gets its links found again, as Django's own URL caches are."""
    if setting == "ROOT_URLCONF":
        _reversed.cache_clear()


setting_changed.connect(_forget_links)
