"""Reads of the challenge catalogue for students."""

from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q

from scoring.models import Submission

from .models import Project


@dataclass(frozen=True)
class CatalogueFilters:
    q: str = ""
    category: str = ""
    difficulty: str = ""
    solved: str = ""  # "", "yes", "no"


def catalogue(tenant_id: int, user, filters: CatalogueFilters):
    """Published challenges of the tenant with solve counts and the user's solved marker: one query."""
    solved_by_me = Submission.objects.filter(
        tenant_id=tenant_id, project=OuterRef("pk"), user=user, status=Submission.Status.APPROVED
    )
    rows = (
        Project.objects.for_tenant(tenant_id)
        .published()
        .annotate(
            solves=Count("submissions", filter=Q(submissions__status=Submission.Status.APPROVED)),
            solved=Exists(solved_by_me),
        )
        .order_by("difficulty", "points", "name")
    )
    if filters.q:
        rows = rows.filter(Q(name__icontains=filters.q) | Q(description__icontains=filters.q))
    if filters.category:
        rows = rows.filter(category=filters.category)
    if filters.difficulty:
        rows = rows.filter(difficulty=filters.difficulty)
    if filters.solved == "yes":
        rows = rows.filter(solved=True)
    elif filters.solved == "no":
        rows = rows.filter(solved=False)
    return rows


def categories(tenant_id: int) -> list[str]:
    return list(
        Project.objects.for_tenant(tenant_id)
        .published()
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()
    )
