"""The gradebook: one row per student of a class, each challenge's points in a column, and the total.

A challenge counts what the leaderboard counts (scoring.leaderboard.NET_POINTS): the
student's approved submission's points less the costs of the hints they unlocked on it,
never below zero; so a row's total is the student's leaderboard points. The columns
are the published challenges, and any unpublished one someone still scores on (its
header says so), so the columns always add up to the total.

Bounded: four queries whatever the class's size (challenges, students, points per
student and challenge in one aggregate, last submissions in one aggregate); the rows
are built in memory (7,000 students × 50 challenges is small) and written as CSV.
Every cell a spreadsheet could run as a formula is neutralised (vulhub.lib.exports).
"""

import csv
from collections import defaultdict
from collections.abc import Iterator

from django.db import connection
from django.db.models import Max, Q
from django.utils import timezone

from challenges.models import Project
from scoring.leaderboard import APPROVED_WITH_HINT_COSTS, NET_POINTS
from scoring.models import Submission
from tenants.models import User
from tenants.time_zone import zone_of
from vulhub.lib.exports import iso_in_zone as iso
from vulhub.lib.exports import neutralise_formula

# The points each student scores on each challenge, as the leaderboard counts them.
POINTS_PER_CHALLENGE = f"""
    SELECT s.user_id, s.project_id, sum({NET_POINTS})::int AS points
    {APPROVED_WITH_HINT_COSTS}
    GROUP BY s.user_id, s.project_id
"""  # noqa: S608  (constant SQL, values are parameters)


def points_per_challenge(tenant_id: int) -> dict[int, dict[int, int]]:
    """{user id: {challenge id: points}} of the tenant's scored challenges (one query)."""
    points: dict[int, dict[int, int]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(POINTS_PER_CHALLENGE, {"tenant": tenant_id})
        for user_id, project_id, value in cursor.fetchall():
            points[user_id][project_id] = value
    return points


def gradebook_rows(tenant) -> list[list]:
    """The gradebook of `tenant` as CSV rows, the header first."""
    zone = zone_of(tenant)
    points = points_per_challenge(tenant.pk)
    scored = {project_id for per_student in points.values() for project_id in per_student}
    challenges = list(
        Project.objects.for_tenant(tenant.pk)
        .filter(Q(is_published=True) | Q(pk__in=scored))
        .order_by("name", "pk")
        .values_list("pk", "name", "is_published")
    )
    last_submission = dict(
        Submission.objects.for_tenant(tenant.pk)
        .order_by()
        .values("user_id")
        .annotate(last=Max("submitted_at"))
        .values_list("user_id", "last")
    )
    students = (
        User.objects.for_tenant(tenant.pk)
        .students()
        .order_by("last_name", "first_name", "email", "pk")
        .values_list("pk", "last_name", "first_name", "email", "is_active", "last_login")
    )
    header = [
        "Last name",
        "First name",
        "E-mail",
        "Active",
        *(name if published else f"{name} (unpublished)" for _, name, published in challenges),
        "Total",
        "Last activity",
    ]
    rows = [[neutralise_formula(cell) for cell in header]]
    for pk, last_name, first_name, email, is_active, last_login in students:
        mine = points.get(pk, {})
        scores = [mine.get(project_id, 0) for project_id, _, _ in challenges]
        moments = [moment for moment in (last_submission.get(pk), last_login) if moment is not None]
        rows.append(
            [
                neutralise_formula(last_name),
                neutralise_formula(first_name),
                neutralise_formula(email),
                "yes" if is_active else "no",
                *scores,
                sum(mine.values()),
                iso(max(moments) if moments else None, zone),
            ]
        )
    return rows


class _Echo:
    """A file-like object whose write() returns what it is given: csv.writer without a buffer."""

    def write(self, value):
        return value


def as_csv(rows: list[list]) -> Iterator[str]:
    """The rows as CSV lines, one at a time (for a streaming response)."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def filename(tenant) -> str:
    return f"gradebook-{tenant.slug}-{timezone.localdate(timezone=zone_of(tenant)).isoformat()}.csv"
