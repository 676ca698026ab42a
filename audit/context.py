"""Who is acting, from where: the context every audit row and event records.

The request middleware binds it for the length of a request; commands and tests
bind it with `acting_as(...)`. Outside both, work is recorded as the system's
(no actor).
"""

import contextlib
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AuditContext:
    actor_id: int | None = None
    actor_text: str = ""
    tenant_id: int | None = None
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""


SYSTEM = AuditContext()
_current: ContextVar[AuditContext] = ContextVar("vulhub_audit_context", default=SYSTEM)


def current() -> AuditContext:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def context_for_user(user, **extra) -> AuditContext:
    if user is None or not getattr(user, "is_authenticated", False):
        return replace(current(), actor_id=None, actor_text="", **extra)
    return replace(current(), actor_id=user.pk, actor_text=user.email, **extra)


@contextlib.contextmanager
def bind(context: AuditContext):
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


@contextlib.contextmanager
def acting_as(user=None, *, request_id: str | None = None, **extra):
    """Record what runs inside as done by `user` (None: the system), e.g. in a command."""
    context = context_for_user(user, request_id=request_id or new_request_id(), **extra)
    with bind(context):
        yield context
