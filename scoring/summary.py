"""The instructor's overview on the admin home page, in a handful of aggregate queries."""

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from challenges.models import Project

from .models import Submission, UserBadge


def class_summary(tenant_id: int) -> dict:
    week_ago = timezone.now() - timedelta(days=7)
    submissions = Submission.objects.for_tenant(tenant_id).aggregate(
        pending=Count("id", filter=Q(status=Submission.Status.PENDING)),
        this_week=Count("id", filter=Q(submitted_at__gte=week_ago)),
    )
    solved = list(
        Project.objects.for_tenant(tenant_id)
        .published()
        .annotate(solves=Count("submissions", filter=Q(submissions__status=Submission.Status.APPROVED)))
        .order_by("-solves", "name")
        .values("pk", "name", "solves")
    )
    recent_badges = list(
        UserBadge.objects.for_tenant(tenant_id).select_related("badge", "user").order_by("-awarded_at")[:5]
    )
    return {
        "pending": submissions["pending"],
        "this_week": submissions["this_week"],
        "most_solved": solved[:5],
        "least_solved": list(reversed(solved[-5:])) if len(solved) > 5 else [],
        "recent_badges": recent_badges,
    }
