"""The class roster's reads (selectors): each person's standing and progress, and one student's record.

The roster lists a tenant's users with their points, rank and solves (the materialised
leaderboard row, stored ranks included: a LEFT JOIN, cheap to sort the whole class by),
their write-ups waiting for a grade and their last activity (correlated subqueries on
idx_submissions_user_tenant). PostgreSQL evaluates the subqueries after the page's
LIMIT, for the 50 rows shown only; the query count never depends on the class's size.
Sorting by "write-ups waiting" or "last activity" computes them for every person of the
class (a few seconds for 7,000 students and a million submissions); the page as it opens,
sorted by name, points or rank, and its filters stay in tens of milliseconds.
"""

from dataclasses import dataclass

from django.db.models import Count, Exists, F, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce, Greatest

from scoring.models import Submission, UserBadge
from tenants.models import User

# a student's page lists their latest attempts, newest first, at most this many
ATTEMPTS_SHOWN = 100

# the "progress" filter of the roster (?progress=…): its values and their labels
NOT_STARTED = "not_started"
HAS_PENDING = "pending"
PROGRESS_CHOICES = [(NOT_STARTED, "Students who have not started"), (HAS_PENDING, "Write-ups waiting for a grade")]


def _submissions_of_row():
    """The submissions of the outer query's user (the index's order: user, then tenant)."""
    return Submission.objects.filter(user_id=OuterRef("pk"), tenant_id=OuterRef("tenant_id")).order_by()


def with_standing(users):
    """`users` with roster_points, roster_rank (None: not ranked yet), roster_solves, roster_pending and
    roster_last_activity (the later of their last submission and their last login; None: neither)."""
    pending = (
        _submissions_of_row()
        .filter(status=Submission.Status.PENDING)
        .values("user_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    last_submission = _submissions_of_row().order_by("-submitted_at").values("submitted_at")[:1]
    return users.annotate(
        roster_points=Coalesce(F("leaderboard_rows__points"), Value(0)),
        roster_rank=F("leaderboard_rows__rank"),
        roster_solves=Coalesce(F("leaderboard_rows__solves"), Value(0)),
        roster_pending=Coalesce(Subquery(pending, output_field=IntegerField()), Value(0)),
        # PostgreSQL's greatest() skips NULLs: never logged in, or never submitted, still has the other
        roster_last_activity=Greatest(Subquery(last_submission), F("last_login")),
    )


def filter_progress(users, progress: str, *, tenant_id: int):
    """Users of a progress filter value; an unknown value filters nothing (the caller refuses it).

    Not started: students without any submission (an anti-join on idx_submissions_user_tenant).
    Pending: the people among the tenant's pending submissions (the grading queue's index), not
    a probe of each person's submissions.
    """
    if progress == NOT_STARTED:
        return users.filter(~Exists(_submissions_of_row()), role=User.Role.STUDENT)
    if progress == HAS_PENDING:
        waiting = Submission.objects.for_tenant(tenant_id).pending().order_by().values("user_id")
        return users.filter(pk__in=waiting)
    return users


# An attempt's status as a person says it: a flag is right or wrong, a write-up waits for its grade.
FLAG_WORDS = {Submission.Status.APPROVED: "Right flag", Submission.Status.REJECTED: "Wrong flag"}
WRITEUP_WORDS = {
    Submission.Status.PENDING: "Waiting for a grade",
    Submission.Status.APPROVED: "Approved",
    Submission.Status.REJECTED: "Rejected",
    Submission.Status.SUPERSEDED: "Superseded by a better grade",
}


def status_words(submission) -> str:
    words = FLAG_WORDS if submission.kind == Submission.Kind.FLAG else WRITEUP_WORDS
    return words.get(submission.status) or submission.get_status_display()


@dataclass(frozen=True)
class StudentRecord:
    """What a student's page shows below their fields."""

    attempts: list  # Submission, newest first, with project and `status_words`
    attempts_capped: bool  # there are more than ATTEMPTS_SHOWN
    badges: list  # UserBadge, newest first, with badge


def student_record(user) -> StudentRecord:
    """A user's latest attempts and their badges (two queries, whatever their number)."""
    attempts = list(
        Submission.objects.for_tenant(user.tenant_id)
        .filter(user_id=user.pk)
        .select_related("project")
        .order_by("-submitted_at", "-pk")[: ATTEMPTS_SHOWN + 1]
    )
    for attempt in attempts:
        attempt.status_words = status_words(attempt)
    badges = list(
        UserBadge.objects.for_tenant(user.tenant_id)
        .filter(user_id=user.pk)
        .select_related("badge")
        .order_by("-awarded_at")
    )
    return StudentRecord(
        attempts=attempts[:ATTEMPTS_SHOWN], attempts_capped=len(attempts) > ATTEMPTS_SHOWN, badges=badges
    )
