"""Standings rebuilt from the event store alone, without reading submissions or users."""

from collections.abc import Iterable

from django.utils.dateparse import parse_datetime

from audit import api as audit


def standings_from_events(tenant_id: int, events: Iterable[audit.EventStore] | None = None) -> list[tuple]:
    """(user_id, points, solves, last_scored_at) per student with an approved submission.

    Folds SubmissionCreated and SubmissionGraded into each submission's latest state,
    then totals the approved ones per student, as the leaderboard does.
    """
    if events is None:
        events = audit.events(tenant_id, ["SubmissionCreated", "SubmissionGraded"])
    latest: dict[int, dict] = {}
    for event in events:
        latest[event.payload["submission_id"]] = event.payload
    totals: dict[int, list] = {}
    for state in latest.values():
        if state["status"] != "APPROVED":
            continue
        scored_at = parse_datetime(state.get("graded_at") or state["submitted_at"])
        row = totals.setdefault(state["user_id"], [0, 0, scored_at])
        row[0] += state["points_awarded"]
        row[1] += 1
        row[2] = max(row[2], scored_at)
    return [(user_id, points, solves, scored_at) for user_id, (points, solves, scored_at) in totals.items()]
