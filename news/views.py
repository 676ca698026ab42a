"""The notification centre and the e-mail choice."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from vulhub.lib import replica

from . import selectors, services
from .forms import EmailPreferenceForm


@login_required
def notifications(request):
    """What the user has been told, newest first. Opening it marks everything shown so far as read."""
    user, now = request.user, timezone.now()
    student = selectors.gets_notifications(user, request.tenant)
    seen_until = selectors.read_until(user) if student else None
    page = selectors.notifications_page(user, request.GET.get("page"), now, new_after=seen_until)
    if student:
        services.notifications_mark_read(user=user, until=now)
        replica.note_write(request)  # a GET that writes: this browser reads the primary for a while
        request.notifications_unread = 0  # the header needs no query to know it
    return render(
        request,
        "news/notifications.html",
        {"page": page, "student": student, "new_count": sum(1 for n in page.object_list if n.is_new)},
    )


@login_required
@require_POST
def email_preference(request):
    """A student turns their notification e-mails on or off (the form on their profile)."""
    if not selectors.gets_notifications(request.user, request.tenant):
        raise PermissionDenied("Only students get notifications by e-mail.")
    form = EmailPreferenceForm(request.POST)
    form.is_valid()  # one optional checkbox: always valid, absent means off
    enabled = bool(form.cleaned_data.get("email_enabled"))
    services.email_preference_set(user=request.user, enabled=enabled)
    if enabled:
        messages.success(request, f"Your notifications will be e-mailed to {request.user.email} too.")
    else:
        messages.success(request, "Your notifications will no longer be e-mailed; you still see them here.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = "news:notifications"
    return redirect(back)
