"""What tenants records: its models' audit rows and the UserRegistered event (registered in apps.ready)."""

from audit import api as audit

from . import signals
from .models import Tenant, User


def user_payload(user: User, **signal) -> dict:
    return {
        "user_id": user.pk,
        "tenant_id": user.tenant_id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": user.role,
        "registered_at": audit.json_value(user.date_joined),
    }


EVENTS = (audit.DomainEvent(signals.user_registered, "UserRegistered", "User", subject="user", payload=user_payload),)


def register() -> None:
    audit.audit_models({Tenant: audit.Audited(is_tenant=True), User: audit.Audited(secrets=frozenset({"password"}))})
    audit.record_events(EVENTS)
