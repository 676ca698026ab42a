"""What challenges records: audit rows of challenges (the flag hash a secret) and their publishing events."""

from audit import api as audit

from . import signals
from .models import ChallengeFile, Hint, Prerequisite, Project


def project_payload(project: Project, **signal) -> dict:
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


EVENTS = tuple(
    audit.DomainEvent(signal, event_type, "Project", subject="project", payload=project_payload)
    for signal, event_type in (
        (signals.project_published, "ProjectPublished"),
        (signals.project_unpublished, "ProjectUnpublished"),
    )
)


def register() -> None:
    audit.audit_models(
        {
            Project: audit.Audited(secrets=frozenset({"flag_hash"})),
            # uploading, replacing (a new sha256 and size) and deleting a file are audited
            ChallengeFile: audit.Audited(),
            Hint: audit.Audited(),
            Prerequisite: audit.Audited(),
        }
    )
    audit.record_events(EVENTS)
