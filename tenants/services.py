"""Writes on tenants and users. Each runs in one transaction with its records."""

from audit.api import recorded

from .models import Tenant, User
from .signals import user_registered


@recorded
def user_register(
    *,
    tenant: Tenant,
    email: str,
    password: str | None,
    first_name: str = "",
    last_name: str = "",
    role: str = User.Role.STUDENT,
    actor: User | None = None,
) -> User:
    """Create a user of `tenant` (by themselves, or by `actor` such as an importing admin)."""
    user = User.objects.create_user(
        email, password, tenant=tenant, first_name=first_name, last_name=last_name, role=role
    )
    user_registered.send(sender=User, user=user, actor=actor)
    return user
