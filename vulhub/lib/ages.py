"""How long something has waited, as a person says it: "under a minute", "3 hours, 5 minutes"."""

from datetime import datetime

from django.utils.timesince import timesince


def waited(since: datetime, now: datetime) -> str:
    """Django's timesince, except that less than a minute is "under a minute" (not "0 minutes")."""
    if (now - since).total_seconds() < 60:
        return "under a minute"
    return timesince(since, now)
