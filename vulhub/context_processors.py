from django.utils.functional import SimpleLazyObject

from scoring.summary import class_summary as summary


def class_summary(request):
    """The admin home's class overview for staff of a tenant, computed only if a page shows it."""
    user = getattr(request, "user", None)
    tenant = getattr(request, "tenant", None)
    if user is None or tenant is None or not request.path.startswith("/admin/") or not user.is_staff:
        return {}
    return {"class_summary": SimpleLazyObject(lambda: summary(tenant.pk))}


def notifications(request):
    """The header's unread count: filled in by the news app (issue 27)."""
    return {}
