from django.conf import settings
from django.utils.functional import SimpleLazyObject

from classroom.summary import class_home
from news.selectors import HeaderNotifications, gets_notifications


def class_summary(request):
    """The admin home's view of the class (classroom.summary) for staff of a tenant, read only if a page shows it."""
    user = getattr(request, "user", None)
    tenant = getattr(request, "tenant", None)
    if user is None or tenant is None or not request.path.startswith("/admin/") or not user.is_staff:
        return {}
    return {"class_summary": SimpleLazyObject(lambda: class_home(tenant))}


def notifications(request):
    """The header's link to the notification centre, for a signed-in student of the tenant.

    Nothing is read unless a page shows it: the user and the tenant are looked at when a
    template first uses `notifications`, and the unread count (one query) when it shows
    `notifications.unread`. settings.NOTIFICATIONS_ENABLED off: the link without a count,
    and no query at all.
    """

    def header():
        if not gets_notifications(getattr(request, "user", None), getattr(request, "tenant", None)):
            return None
        return HeaderNotifications(request, counting=settings.NOTIFICATIONS_ENABLED)

    return {"notifications": SimpleLazyObject(header)}
