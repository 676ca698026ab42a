"""What news records: audit rows of announcements and of e-mail choices, and an event per posted announcement.

Notifications themselves are not audited: each is written in the transaction of what
caused it (a grading, a badge, a publication, an announcement), which is audited there.
The read mark moves on every visit of the notification centre; it is written with an
UPDATE that records nothing (news.services.notifications_mark_read), so only the
e-mail choice shows in a reader's audit rows.
"""

from audit import api as audit

from . import signals
from .models import Announcement, Reader


def announcement_payload(announcement: Announcement, **signal) -> dict:
    return {
        "announcement_id": announcement.pk,
        "tenant_id": announcement.tenant_id,
        "title": announcement.title,
        "author_id": announcement.author_id,
        "posted_at": audit.json_value(announcement.posted_at),
    }


EVENTS = (
    audit.DomainEvent(
        signals.announcement_posted,
        "AnnouncementPosted",
        "Announcement",
        subject="announcement",
        payload=announcement_payload,
    ),
)


def register() -> None:
    audit.audit_models({Announcement: audit.Audited(), Reader: audit.Audited()})
    audit.record_events(EVENTS)
