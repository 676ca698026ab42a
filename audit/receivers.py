"""Signal receivers that record: model signals into audit_logs, domain signals into event_store.

Audit knows none of the apps it records. Each app declares, when it is ready, which of
its models are audited (`audit_models`) and which of its signals become events
(`record_events`, a table of `DomainEvent`s with the app's own payload functions);
audit.api is how it reaches this module. The receivers only record. Old values for
the diff come from what the instance loaded (a snapshot taken in post_init), never
from an extra query.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import signals as auth_signals
from django.db.models import signals as model_signals
from django.dispatch import Signal

from .recording import append_event, audit_row, event_row, json_value, write_audit

REDACTED = "[redacted]"
SNAPSHOT = "_audit_loaded"
# Bookkeeping fields whose every change would only be noise in the log.
NOISE = {"updated_at", "last_login"}


@dataclass(frozen=True)
class Audited:
    """How a model is audited: which fields are secrets, always or depending on the row.

    `is_tenant`: the model's rows are the tenants themselves, so a row's audit rows
    belong to the tenant it is (other rows: to their `tenant_id`).
    """

    secrets: frozenset = field(default_factory=frozenset)
    secret_when: tuple = ()  # (field name, condition field, condition value)
    is_tenant: bool = False

    def secret_fields(self, instance) -> set:
        found = set(self.secrets)
        for name, attname, value in self.secret_when:
            if getattr(instance, attname, None) == value:
                found.add(name)
        return found


# label ("scoring.Submission") -> how it is audited; filled by the apps (audit_models)
AUDITED: dict[str, Audited] = {}
USER_TYPE = settings.AUTH_USER_MODEL.lower()  # the object type of sign-in rows: "tenants.user"

_fields_cache: dict[type, list[tuple[str, str, bool]]] = {}


def tracked_fields(model) -> list[tuple[str, str, bool]]:
    """(name, attname, mutable) of each concrete field worth recording."""
    if model not in _fields_cache:
        _fields_cache[model] = [
            (f.name, f.attname, f.get_internal_type() == "JSONField")
            for f in model._meta.concrete_fields
            if f.name not in NOISE
        ]
    return _fields_cache[model]


def current_values(instance) -> dict:
    values = instance.__dict__
    return {attname: values[attname] for _, attname, _ in tracked_fields(type(instance)) if attname in values}


def snapshot(instance) -> dict:
    """The field values to diff the next save against (JSON values copied, they mutate in place)."""
    values = instance.__dict__
    return {
        attname: copy.deepcopy(values[attname]) if mutable else values[attname]
        for _, attname, mutable in tracked_fields(type(instance))
        if attname in values
    }


def remember_loaded(sender, instance, **kwargs):
    instance.__dict__[SNAPSHOT] = snapshot(instance)


def tenant_of(instance):
    if AUDITED[instance._meta.label].is_tenant:
        return instance.pk
    return getattr(instance, "tenant_id", None)


def shown(name, value, secrets):
    if name in secrets and value not in (None, ""):
        return REDACTED
    return json_value(value)


def diff(instance, before: dict | None, after: dict, only: set | None = None) -> dict:
    secrets = AUDITED[instance._meta.label].secret_fields(instance)
    changes = {}
    for name, attname, _ in tracked_fields(type(instance)):
        if attname not in after or (only is not None and name not in only and attname not in only):
            continue
        new = after[attname]
        if before is None:
            if new in (None, "", {}, []):
                continue
            changes[name] = [None, shown(name, new, secrets)]
        elif attname in before and before[attname] != new:
            changes[name] = [shown(name, before[attname], secrets), shown(name, new, secrets)]
    return changes


def record_save(sender, instance, created, raw=False, update_fields=None, **kwargs):
    if raw:  # fixture loading
        return
    after = current_values(instance)
    if created:
        changes = diff(instance, None, after)
    else:
        changes = diff(instance, instance.__dict__.get(SNAPSHOT, {}), after, set(update_fields or ()) or None)
    instance.__dict__[SNAPSHOT] = snapshot(instance)
    if not created and not changes:
        return
    write_audit(
        audit_row(
            action="create" if created else "update",
            object_type=instance._meta.label_lower,
            object_id=instance.pk,
            object_text=str(instance),
            changes=changes,
            tenant_id=tenant_of(instance),
        )
    )


def record_delete(sender, instance, **kwargs):
    secrets = AUDITED[instance._meta.label].secret_fields(instance)
    changes = {
        name: [shown(name, value, secrets), None]
        for name, value in ((n, instance.__dict__.get(a)) for n, a, _ in tracked_fields(sender))
        if value not in (None, "", {}, [])
    }
    write_audit(
        audit_row(
            action="delete",
            object_type=instance._meta.label_lower,
            object_id=instance.pk,
            object_text=str(instance),
            changes=changes,
            tenant_id=tenant_of(instance),
        )
    )


# --- authentication ---------------------------------------------------------------


def record_login(sender, request, user, **kwargs):
    write_audit(
        audit_row(
            action="login",
            object_type=USER_TYPE,
            object_id=user.pk,
            object_text=user.email,
            tenant_id=user.tenant_id,
            actor=user,
        )
    )


def record_logout(sender, request, user, **kwargs):
    if user is None:  # logging out an anonymous session
        return
    write_audit(
        audit_row(
            action="logout",
            object_type=USER_TYPE,
            object_id=user.pk,
            object_text=user.email,
            tenant_id=user.tenant_id,
            actor=user,
        )
    )


def record_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already masked the password in `credentials`; keep only the e-mail.
    attempted = str(credentials.get("username") or credentials.get("email") or "")[:254]
    tenant = getattr(request, "tenant", None)
    write_audit(
        audit_row(
            action="login_failed",
            object_type=USER_TYPE,
            object_text=attempted,
            changes={"email": attempted},
            tenant_id=tenant.pk if tenant is not None else None,
        )
    )


# --- domain events ------------------------------------------------------------------


@dataclass(frozen=True)
class DomainEvent:
    """One domain signal recorded as an event: the event's type, its aggregate and payload.

    The signal is sent with the changed object as the keyword `subject` and the
    `actor` (None: the system). `payload(obj, **kwargs)` gets the object and the
    signal's keywords (the actor included) and returns the event's JSON payload.
    """

    signal: Signal
    event_type: str
    aggregate_type: str
    subject: str
    payload: Callable[..., dict]
    aggregate_id: Callable[[object], object] = lambda obj: obj.pk

    def record(self, sender, actor=None, **kwargs) -> None:
        obj = kwargs.pop(self.subject)
        append_event(
            event_row(
                event_type=self.event_type,
                aggregate_type=self.aggregate_type,
                aggregate_id=self.aggregate_id(obj),
                tenant_id=obj.tenant_id,
                actor=actor,
                payload=self.payload(obj, actor=actor, **kwargs),
            )
        )


def audit_models(models: dict) -> None:
    """Record every create, update and delete of these models ({model: Audited(...)}) in audit_logs."""
    for model, audited in models.items():
        label = model._meta.label
        AUDITED[label] = audited
        uid = f"audit.{label}"
        model_signals.post_init.connect(remember_loaded, sender=model, dispatch_uid=f"{uid}.init")
        model_signals.post_save.connect(record_save, sender=model, dispatch_uid=f"{uid}.save")
        model_signals.post_delete.connect(record_delete, sender=model, dispatch_uid=f"{uid}.delete")


def record_events(events) -> None:
    """Append an event to event_store whenever one of these DomainEvents' signals is sent."""
    for event in events:
        event.signal.connect(event.record, weak=False, dispatch_uid=f"audit.{event.event_type}")


def connect() -> None:
    """Audit's own receivers: sign-ins, sign-outs and failed sign-ins of any user."""
    auth_signals.user_logged_in.connect(record_login, dispatch_uid="audit.login")
    auth_signals.user_logged_out.connect(record_logout, dispatch_uid="audit.logout")
    auth_signals.user_login_failed.connect(record_login_failed, dispatch_uid="audit.login_failed")
