"""The instructor's admin home: what the class is doing, in a fixed number of queries.

`class_home(tenant)` reads one tenant's rows only, in five queries whatever the size of
the class (plus the catalogue's solve counts, cached by scoring.catalogue and read from
the database only after a change):

1. the submissions waiting for grading and this week's, per day: one grouped
   aggregate over the queue's index (tenant, status, submitted_at), reading only the
   pending rows and the week's;
2. the oldest waiting submissions, with their student and challenge (the same index,
   five rows);
3. the students: how many, how many joined this week, how many have not started
   (no submission at all: one index probe each on idx_submissions_user_tenant), and
   the first few of those, as window counts over the tenant's active students;
4. the latest badge awards with their badge and student, and the count of this week's
   (an uncorrelated subquery, computed once). Without an index on (tenant, awarded_at)
   both read the tenant's awards: a class has far fewer awards than submissions;
5. the latest announcements (idx_announcements_recent).

"This week" is the last seven days of the class's calendar, today included, in the
tenant's time zone.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Case, Count, DateField, IntegerField, Q, Subquery, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from news.models import Announcement
from scoring.catalogue import Entry, cached_entries
from scoring.models import Submission, UserBadge
from tenants.models import Tenant, User
from tenants.time_zone import zone_of

DAYS = 7
WAITING_SHOWN = 5
CHALLENGES_SHOWN = 5
NAMES_SHOWN = 5
BADGES_SHOWN = 5
ANNOUNCEMENTS_SHOWN = 3


@dataclass(frozen=True)
class Day:
    """One day of the week's activity: submissions and solves (approved attempts) submitted that day."""

    date: date
    start: datetime
    end: datetime
    submitted: int = 0
    solves: int = 0


@dataclass(frozen=True)
class ClassHome:
    since: datetime  # the start of the week: midnight, six days before today, in the class's time zone
    now: datetime
    pending: int = 0
    oldest_pending: list[Submission] = field(default_factory=list)
    days: list[Day] = field(default_factory=list)
    students: int = 0
    new_students: int = 0
    not_started: int = 0
    not_started_first: list[User] = field(default_factory=list)
    challenges: int = 0
    most_solved: list[Entry] = field(default_factory=list)
    least_solved: list[Entry] = field(default_factory=list)
    badges_this_week: int = 0
    recent_badges: list[UserBadge] = field(default_factory=list)
    announcements: list[Announcement] = field(default_factory=list)

    @property
    def submitted(self) -> int:
        return sum(day.submitted for day in self.days)

    @property
    def solves(self) -> int:
        return sum(day.solves for day in self.days)

    @property
    def busiest_day(self) -> int:
        """The most submissions on one day of the week (the scale of the per-day bars)."""
        return max((day.submitted for day in self.days), default=0)


def class_home(tenant: Tenant, now: datetime | None = None) -> ClassHome:
    """What the instructor's admin home shows of `tenant`'s class at `now`."""
    now = now or timezone.now()
    zone = zone_of(tenant)
    today = timezone.localtime(now, zone).date()
    dates = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    starts = [_midnight(d, zone) for d in [*dates, today + timedelta(days=1)]]
    since = starts[0]

    pending, per_day = _activity(tenant.pk, since, zone)
    students = _students(tenant.pk, since)
    awards = _recent_badges(tenant.pk, since)
    entries = cached_entries(tenant.pk)
    most = sorted(entries, key=lambda e: (-e.solves, e.name))[:CHALLENGES_SHOWN]
    shown = {e.pk for e in most}
    least = sorted((e for e in entries if e.pk not in shown), key=lambda e: (e.solves, e.name))[:CHALLENGES_SHOWN]
    return ClassHome(
        since=since,
        now=now,
        pending=pending,
        oldest_pending=_oldest_pending(tenant.pk) if pending else [],
        days=[
            Day(d, starts[n], starts[n + 1], **per_day.get(d, {"submitted": 0, "solves": 0}))
            for n, d in enumerate(dates)
        ],
        students=students[0].students if students else 0,
        new_students=students[0].new_students if students else 0,
        not_started=students[0].not_started if students else 0,
        not_started_first=[s for s in students if not s.started],
        challenges=len(entries),
        most_solved=most,
        least_solved=least,
        badges_this_week=(awards[0].this_week or 0) if awards else 0,
        recent_badges=awards,
        announcements=list(
            Announcement.objects.for_tenant(tenant.pk)
            .order_by("-posted_at", "-id")
            .only("pk", "title", "posted_at")[:ANNOUNCEMENTS_SHOWN]
        ),
    )


def _midnight(day: date, zone) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone)


def _activity(tenant_id: int, since: datetime, zone) -> tuple[int, dict[date, dict[str, int]]]:
    """(submissions waiting for grading, {day: {"submitted", "solves"}} of the week), in one query.

    The rows read are the pending ones and the week's: the listing of every status lets
    the queue's index bound the week's range by submitted_at. Pending rows older than
    the week fall in one group without a day.
    """
    this_week = Q(submitted_at__gte=since)
    rows = (
        Submission.objects.for_tenant(tenant_id)
        .filter(Q(status=Submission.Status.PENDING) | Q(this_week, status__in=Submission.Status.values))
        .annotate(day=Case(When(this_week, then=TruncDate("submitted_at", tzinfo=zone)), output_field=DateField()))
        .order_by()
        .values("day")
        .annotate(
            pending=Count("pk", filter=Q(status=Submission.Status.PENDING)),
            submitted=Count("pk", filter=this_week),
            solves=Count("pk", filter=this_week & Q(status=Submission.Status.APPROVED)),
        )
    )
    pending, per_day = 0, {}
    for row in rows:
        pending += row["pending"]
        if row["day"] is not None:
            per_day[row["day"]] = {"submitted": row["submitted"], "solves": row["solves"]}
    return pending, per_day


def _oldest_pending(tenant_id: int) -> list[Submission]:
    return list(
        Submission.objects.for_tenant(tenant_id)
        .pending()
        .select_related("user", "project")
        .only(
            "pk",
            "kind",
            "status",
            "submitted_at",
            "user__first_name",
            "user__last_name",
            "user__email",
            "project__name",
        )
        .order_by("submitted_at", "pk")[:WAITING_SHOWN]
    )


# One pass over the tenant's active students: whether each has started is read once (one
# index probe on idx_submissions_user_tenant each), and the counts are window counts over
# them all. The ORM would repeat the EXISTS in every expression that uses it.
STUDENTS_SQL = """
WITH class AS MATERIALIZED (  -- materialised: flattened, each use of `started` would probe again
    SELECT u.id, u.first_name, u.last_name, u.email, u.date_joined,
           EXISTS (SELECT 1 FROM submissions s WHERE s.user_id = u.id AND s.tenant_id = %(tenant)s) AS started
      FROM users u
     WHERE u.tenant_id = %(tenant)s AND u.role = %(role)s AND u.is_active
)
SELECT id, first_name, last_name, email, date_joined, started,
       count(*) OVER () AS students,
       count(*) FILTER (WHERE date_joined >= %(since)s) OVER () AS new_students,
       count(*) FILTER (WHERE NOT started) OVER () AS not_started
  FROM class
 ORDER BY started, last_name, first_name, id
 LIMIT %(shown)s
"""


def _students(tenant_id: int, since: datetime) -> list[User]:
    """The first students who have not started (those who have fill the list up), each with the counts.

    Every row carries the class's counts, so the counts are there whenever the class has
    a student, and there is no student when no row comes back.
    """
    params = {"tenant": tenant_id, "role": User.Role.STUDENT, "since": since, "shown": NAMES_SHOWN}
    return list(User.objects.raw(STUDENTS_SQL, params))


def _recent_badges(tenant_id: int, since: datetime) -> list[UserBadge]:
    """The latest awards, each carrying the count of the week's (an uncorrelated subquery: computed once)."""
    this_week = (
        UserBadge.objects.for_tenant(tenant_id)
        .filter(awarded_at__gte=since)
        .order_by()
        .values("tenant_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    latest = UserBadge.objects.for_tenant(tenant_id).order_by("-awarded_at", "-pk").values("pk")[:BADGES_SHOWN]
    # the five rows first, then their badge and student: joining before the limit would read
    # every award's student
    return list(
        UserBadge.objects.for_tenant(tenant_id)
        .filter(pk__in=Subquery(latest))
        .select_related("badge", "user")
        .annotate(this_week=Subquery(this_week, output_field=IntegerField()))
        .only("pk", "awarded_at", "badge__name", "user__first_name", "user__last_name", "user__email")
        .order_by("-awarded_at", "-pk")
    )
