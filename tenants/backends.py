from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission, update_last_login
from django.db import connection
from django.db.models import Q

from .models import User
from .roles import ROLE_GROUP


class TenantEmailBackend(ModelBackend):
    """Log in by e-mail, on the request's tenant only.

    A tenant's users authenticate on that tenant's host; platform superusers (no
    tenant) on any host. Permissions come from the user's own groups plus the group
    of their role.
    """

    def authenticate(self, request, username=None, password=None, email=None, **kwargs):
        email = email or username
        if not email or password is None:
            return None
        tenant = getattr(request, "tenant", None)
        scope = Q(tenant__isnull=True, is_superuser=True)
        if tenant is not None:
            scope |= Q(tenant=tenant)
        user = User.objects.with_email(email).filter(scope).first()
        if user is None:
            # Same work as a real check, so timing does not tell which e-mails exist.
            User().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

    def _get_group_permissions(self, user_obj):
        groups = Q(group__user=user_obj)
        if user_obj.role in ROLE_GROUP:
            groups |= Q(group__name=ROLE_GROUP[user_obj.role])
        return Permission.objects.filter(groups).distinct()


def record_last_login(sender, user, **kwargs) -> None:
    """user_logged_in: save the login time; a platform account's through its database function.

    A platform superuser signs in on a tenant's host, whose transaction may change no row
    outside the tenant (row-level security): vulhub_platform_login() writes that one
    column of that one kind of account and nothing else.
    """
    if user.tenant_id is not None:
        update_last_login(sender, user, **kwargs)
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT vulhub_platform_login(%s)", [user.pk])
