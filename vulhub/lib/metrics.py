"""VulHub's own Prometheus metrics: what the apps count (docs/monitoring.md).

django-prometheus counts requests, database and cache calls; these count what a class
does: submissions, gradings, refusals, lockouts, badges, audit failures and the
leaderboard cache. Labels take a few fixed values each (never a user, a path or a
tenant), so a series is never made per student.

A change is counted once it has committed (`count_after_commit`): a submission that
rolled back was never made. With METRICS_ENABLED off nothing is counted.

Under gunicorn the values live in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py), one file
per worker, summed by /metrics: set before prometheus_client is imported.
"""

from django.conf import settings
from django.db import transaction
from prometheus_client import Counter

SUBMISSIONS = Counter(
    "vulhub_submissions",
    "Answers taken from students, by kind (flag, writeup) and outcome (correct, wrong, pending).",
    ["kind", "outcome"],
)
FLAG_LIMIT_REFUSALS = Counter(
    "vulhub_flag_limit_refusals",
    "Flags refused because the student had used up their wrong attempts for the window.",
)
GRADINGS = Counter("vulhub_gradings", "Write-ups and answers graded by staff, by decision.", ["decision"])
LOGIN_LOCKOUTS = Counter("vulhub_login_lockouts", "Logins locked out after too many failures (django-axes).")
BADGE_AWARDS = Counter("vulhub_badge_awards", "Badges awarded, automatically or by hand.", ["how"])
AUDIT_RECORD_FAILURES = Counter(
    "vulhub_audit_record_failures",
    "Changes whose audit rows or events could not be written: the change was rolled back.",
)
LEADERBOARD_CACHE = Counter(
    "vulhub_leaderboard_cache_requests",
    "Reads of the cached leaderboard pages and standings, by result (hit, miss).",
    ["result"],
)


def count(counter: Counter, **labels) -> None:
    """Add one now (for what happened whether or not a transaction commits)."""
    if settings.METRICS_ENABLED:
        (counter.labels(**labels) if labels else counter).inc()


def count_after_commit(counter: Counter, **labels) -> None:
    """Add one when the current transaction commits (at once outside one)."""
    if settings.METRICS_ENABLED:
        child = counter.labels(**labels) if labels else counter
        transaction.on_commit(child.inc)


# Every known series from the start, at 0: rate() and increase() see the first event, and a
# dashboard shows a zero rather than nothing.
for _kind, _outcome in (("flag", "correct"), ("flag", "wrong"), ("writeup", "pending")):
    SUBMISSIONS.labels(_kind, _outcome)
for _decision in ("approved", "rejected"):
    GRADINGS.labels(_decision)
for _how in ("automatic", "manual"):
    BADGE_AWARDS.labels(_how)
for _result in ("hit", "miss"):
    LEADERBOARD_CACHE.labels(_result)
