"""Signal receivers that record: model signals into audit_logs, domain signals into event_store.

They only record. Old values for the diff come from what the instance loaded
(a snapshot taken in post_init), never from an extra query.
"""

import copy
from dataclasses import dataclass, field

from django.apps import apps
from django.contrib.auth import signals as auth_signals
from django.db.models import signals as model_signals

from challenges import signals as challenge_signals
from scoring import signals as scoring_signals
from tenants import signals as tenant_signals

from .recording import append_event, audit_row, event_row, json_value, write_audit

REDACTED = "[redacted]"
SNAPSHOT = "_audit_loaded"
# Bookkeeping fields whose every change would only be noise in the log.
NOISE = {"updated_at", "last_login"}


@dataclass(frozen=True)
class Audited:
    """How a model is audited: which fields are secrets, always or depending on the row."""

    secrets: frozenset = field(default_factory=frozenset)
    secret_when: tuple = ()  # (field name, condition field, condition value)

    def secret_fields(self, instance) -> set:
        found = set(self.secrets)
        for name, attname, value in self.secret_when:
            if getattr(instance, attname, None) == value:
                found.add(name)
        return found


AUDITED = {
    "tenants.Tenant": Audited(),
    "tenants.User": Audited(secrets=frozenset({"password"})),
    "challenges.Project": Audited(secrets=frozenset({"flag_hash"})),
    # the flag a student typed is a secret once it might be the right one
    "scoring.Submission": Audited(secret_when=(("answer", "kind", "FLAG"),)),
    "scoring.Badge": Audited(),
    "scoring.UserBadge": Audited(),
}

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
    if instance._meta.label == "tenants.Tenant":
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
            object_type="tenants.user",
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
            object_type="tenants.user",
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
            object_type="tenants.user",
            object_text=attempted,
            changes={"email": attempted},
            tenant_id=tenant.pk if tenant is not None else None,
        )
    )


# --- domain events ------------------------------------------------------------------


def _append(*, event_type, aggregate_type, aggregate_id, tenant_id, actor, payload) -> None:
    append_event(
        event_row(
            event_type=event_type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            tenant_id=tenant_id,
            actor=actor,
            payload=payload,
        )
    )


def _time(value):
    return value.isoformat() if value is not None else None


def user_payload(user) -> dict:
    return {
        "user_id": user.pk,
        "tenant_id": user.tenant_id,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "role": user.role,
        "registered_at": _time(user.date_joined),
    }


def record_user_registered(sender, user, actor=None, **kwargs):
    _append(
        event_type="UserRegistered",
        aggregate_type="User",
        aggregate_id=user.pk,
        tenant_id=user.tenant_id,
        actor=actor,
        payload=user_payload(user),
    )


def project_payload(project) -> dict:
    return {
        "project_id": project.pk,
        "tenant_id": project.tenant_id,
        "slug": project.slug,
        "name": project.name,
        "category": project.category,
        "difficulty": project.difficulty,
        "points": project.points,
        "has_flag": project.has_flag,
        "is_published": project.is_published,
    }


def record_project_published(sender, project, actor=None, **kwargs):
    _append(
        event_type="ProjectPublished",
        aggregate_type="Project",
        aggregate_id=project.pk,
        tenant_id=project.tenant_id,
        actor=actor,
        payload=project_payload(project),
    )


def record_project_unpublished(sender, project, actor=None, **kwargs):
    _append(
        event_type="ProjectUnpublished",
        aggregate_type="Project",
        aggregate_id=project.pk,
        tenant_id=project.tenant_id,
        actor=actor,
        payload=project_payload(project),
    )


def submission_payload(submission) -> dict:
    project = submission.project
    return {
        "submission_id": submission.pk,
        "tenant_id": submission.tenant_id,
        "user_id": submission.user_id,
        "project_id": submission.project_id,
        "project_points": project.points,
        "category": project.category,
        "difficulty": project.difficulty,
        "kind": submission.kind,
        "status": submission.status,
        "score": submission.score,
        "points_awarded": submission.points_awarded,
        "submitted_at": _time(submission.submitted_at),
    }


def record_submission_created(sender, submission, actor=None, **kwargs):
    _append(
        event_type="SubmissionCreated",
        aggregate_type="Submission",
        aggregate_id=submission.pk,
        tenant_id=submission.tenant_id,
        actor=actor,
        payload=submission_payload(submission),
    )


def record_submission_graded(sender, submission, previous=None, actor=None, **kwargs):
    previous = previous or {}
    payload = submission_payload(submission) | {
        "feedback": submission.feedback,
        "graded_by_id": submission.graded_by_id,
        "graded_at": _time(submission.graded_at),
        "previous_status": previous.get("status"),
        "previous_score": previous.get("score"),
        "previous_points_awarded": previous.get("points_awarded", 0),
        "regrade": previous.get("status") not in (None, "PENDING"),
    }
    _append(
        event_type="SubmissionGraded",
        aggregate_type="Submission",
        aggregate_id=submission.pk,
        tenant_id=submission.tenant_id,
        actor=actor,
        payload=payload,
    )


def user_badge_payload(user_badge) -> dict:
    badge = user_badge.badge
    return {
        "badge_id": user_badge.badge_id,
        "badge_slug": badge.slug,
        "badge_name": badge.name,
        "user_id": user_badge.user_id,
        "tenant_id": user_badge.tenant_id,
    }


def record_badge_awarded(sender, user_badge, actor=None, **kwargs):
    _append(
        event_type="BadgeAwarded",
        aggregate_type="User",
        aggregate_id=user_badge.user_id,
        tenant_id=user_badge.tenant_id,
        actor=actor,
        payload=user_badge_payload(user_badge)
        | {
            "awarded_at": _time(user_badge.awarded_at),
            "awarded_by_id": user_badge.awarded_by_id,
            "automatic": user_badge.awarded_by_id is None,
        },
    )


def record_badge_revoked(sender, user_badge, actor=None, reason="", **kwargs):
    _append(
        event_type="BadgeRevoked",
        aggregate_type="User",
        aggregate_id=user_badge.user_id,
        tenant_id=user_badge.tenant_id,
        actor=actor,
        payload=user_badge_payload(user_badge)
        | {"revoked_by_id": actor.pk if actor is not None else None, "reason": reason},
    )


def connect() -> None:
    for label in AUDITED:
        model = apps.get_model(label)
        uid = f"audit.{label}"
        model_signals.post_init.connect(remember_loaded, sender=model, dispatch_uid=f"{uid}.init")
        model_signals.post_save.connect(record_save, sender=model, dispatch_uid=f"{uid}.save")
        model_signals.post_delete.connect(record_delete, sender=model, dispatch_uid=f"{uid}.delete")
    auth_signals.user_logged_in.connect(record_login, dispatch_uid="audit.login")
    auth_signals.user_logged_out.connect(record_logout, dispatch_uid="audit.logout")
    auth_signals.user_login_failed.connect(record_login_failed, dispatch_uid="audit.login_failed")
    tenant_signals.user_registered.connect(record_user_registered, dispatch_uid="audit.user_registered")
    challenge_signals.project_published.connect(record_project_published, dispatch_uid="audit.project_published")
    challenge_signals.project_unpublished.connect(record_project_unpublished, dispatch_uid="audit.project_unpublished")
    scoring_signals.submission_created.connect(record_submission_created, dispatch_uid="audit.submission_created")
    scoring_signals.submission_graded.connect(record_submission_graded, dispatch_uid="audit.submission_graded")
    scoring_signals.badge_awarded.connect(record_badge_awarded, dispatch_uid="audit.badge_awarded")
    scoring_signals.badge_revoked.connect(record_badge_revoked, dispatch_uid="audit.badge_revoked")
