"""What scoring records: audit rows of its models and the events that rebuild points, badges and ranks.

An event's payload is enough to rebuild the standings from the event store alone
(scoring.replay); the bulk seed writes these same payloads (vulhub.seeding.generated).
"""

import hashlib

from audit import api as audit

from . import signals
from .models import Badge, HintUnlock, Submission, Team, TeamMembership, UserBadge


def submission_payload(submission: Submission, **signal) -> dict:
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
        "submitted_at": audit.json_value(submission.submitted_at),
        "team_id": submission.team_id,
    }


def graded_payload(submission: Submission, previous: dict | None = None, **signal) -> dict:
    previous = previous or {}
    return submission_payload(submission) | {
        "feedback": submission.feedback,
        "graded_by_id": submission.graded_by_id,
        "graded_at": audit.json_value(submission.graded_at),
        "previous_status": previous.get("status"),
        "previous_score": previous.get("score"),
        "previous_points_awarded": previous.get("points_awarded", 0),
        "regrade": previous.get("status") not in (None, "PENDING"),
    }


def _fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def writeup_edited_payload(submission: Submission, previous: dict, **signal) -> dict:
    """An edit of a pending write-up: which text it replaced with which (their lengths and hashes).

    The texts themselves are in the audit log's diff of the row; the event says that the
    write-up changed and proves which versions, without copying them. It moves no points:
    the replay (scoring.replay) reads only SubmissionCreated and SubmissionGraded.
    """
    before = previous.get("answer", "")
    return {
        "submission_id": submission.pk,
        "tenant_id": submission.tenant_id,
        "user_id": submission.user_id,
        "project_id": submission.project_id,
        "edit_count": submission.edit_count,
        "edited_at": audit.json_value(submission.edited_at),
        "previous_length": len(before),
        "length": len(submission.answer),
        "previous_sha256": _fingerprint(before),
        "sha256": _fingerprint(submission.answer),
        "previous_link": previous.get("link", ""),
        "link": submission.link,
    }


def user_badge_payload(user_badge: UserBadge) -> dict:
    badge = user_badge.badge
    return {
        "badge_id": user_badge.badge_id,
        "badge_slug": badge.slug,
        "badge_name": badge.name,
        "user_id": user_badge.user_id,
        "tenant_id": user_badge.tenant_id,
    }


def awarded_payload(user_badge: UserBadge, **signal) -> dict:
    return user_badge_payload(user_badge) | {
        "awarded_at": audit.json_value(user_badge.awarded_at),
        "awarded_by_id": user_badge.awarded_by_id,
        "automatic": user_badge.awarded_by_id is None,
    }


def revoked_payload(user_badge: UserBadge, actor=None, reason: str = "", **signal) -> dict:
    return user_badge_payload(user_badge) | {"revoked_by_id": actor.pk if actor is not None else None, "reason": reason}


def _student(user_badge: UserBadge):
    return user_badge.user_id


def project_deleted_payload(project, solvers=(), **signal) -> dict:
    return {
        "project_id": project.pk,
        "tenant_id": project.tenant_id,
        "name": project.name,
        "points": project.points,
        "solvers": list(solvers),
    }


def project_rescored_payload(project, previous_points: int, rescored: int, **signal) -> dict:
    return {
        "project_id": project.pk,
        "tenant_id": project.tenant_id,
        "previous_points": previous_points,
        "points": project.points,
        "rescored": rescored,
    }


def hint_unlocked_payload(unlock: HintUnlock, **signal) -> dict:
    return {
        "unlock_id": unlock.pk,
        "tenant_id": unlock.tenant_id,
        "user_id": unlock.user_id,
        "project_id": unlock.project_id,
        "hint_id": unlock.hint_id,
        "cost": unlock.cost,
        "unlocked_at": audit.json_value(unlock.unlocked_at),
        "team_id": unlock.team_id,
    }


def team_payload(team: Team, details: dict | None = None, **signal) -> dict:
    """A team's change (scoring.teams): which team, its name then, and what changed (a member, the team merged into)."""
    return {"team_id": team.pk, "tenant_id": team.tenant_id, "name": team.name, **(details or {})}


def student_deleted_payload(user, **signal) -> dict:
    return {"user_id": user.pk, "tenant_id": user.tenant_id}


TEAM_EVENTS = tuple(
    audit.DomainEvent(signal, name, "Team", subject="team", payload=team_payload)
    for name, signal in signals.TEAM_EVENTS.items()
)

EVENTS = (
    audit.DomainEvent(
        signals.submission_created, "SubmissionCreated", "Submission", subject="submission", payload=submission_payload
    ),
    audit.DomainEvent(
        signals.submission_graded, "SubmissionGraded", "Submission", subject="submission", payload=graded_payload
    ),
    # the author edits a pending write-up: recorded, no points move
    audit.DomainEvent(
        signals.writeup_edited, "WriteupEdited", "Submission", subject="submission", payload=writeup_edited_payload
    ),
    # a badge's events belong to the student's history
    audit.DomainEvent(
        signals.badge_awarded,
        "BadgeAwarded",
        "User",
        subject="user_badge",
        payload=awarded_payload,
        aggregate_id=_student,
    ),
    # changes made outside the services that move points (scoring.changes)
    audit.DomainEvent(
        signals.project_deleted, "ProjectDeleted", "Project", subject="project", payload=project_deleted_payload
    ),
    audit.DomainEvent(
        signals.project_rescored,
        "ProjectPointsChanged",
        "Project",
        subject="project",
        payload=project_rescored_payload,
    ),
    audit.DomainEvent(
        signals.student_deleted, "StudentDeleted", "User", subject="user", payload=student_deleted_payload
    ),
    # a hint's cost comes off the student's points for its challenge (scoring.hints)
    audit.DomainEvent(
        signals.hint_unlocked,
        "HintUnlocked",
        "User",
        subject="unlock",
        payload=hint_unlocked_payload,
        aggregate_id=lambda unlock: unlock.user_id,
    ),
    audit.DomainEvent(
        signals.badge_revoked,
        "BadgeRevoked",
        "User",
        subject="user_badge",
        payload=revoked_payload,
        aggregate_id=_student,
    ),
)


def register() -> None:
    audit.audit_models(
        {
            # the flag a student typed is a secret once it might be the right one
            Submission: audit.Audited(secret_when=(("answer", "kind", "FLAG"),)),
            Badge: audit.Audited(),
            UserBadge: audit.Audited(),
            HintUnlock: audit.Audited(),
            # the invite code lets anyone join: kept out of the audit log like a flag
            Team: audit.Audited(secrets=frozenset({"invite_code"})),
            TeamMembership: audit.Audited(),
        }
    )
    audit.record_events(EVENTS + TEAM_EVENTS)
