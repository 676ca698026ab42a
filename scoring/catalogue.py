"""The challenge catalogue as a student sees it: published challenges, their solve counts, their own solves.

The tenant-wide part (published challenges and their solve counts) is cached in
challenges.selectors.CATALOGUE, per tenant and version; every change that moves it
(a solve, a regrade, publishing, an edit) bumps the version on commit. The student's
own solved markers are one query. It lives in scoring because the counts and
markers are submissions: challenges never reads scoring.
"""

from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce

from challenges.models import Project
from challenges.selectors import CATALOGUE, DIFFICULTY_ORDER

from .models import Submission


@dataclass(frozen=True)
class CatalogueFilters:
    q: str = ""
    category: str = ""
    difficulty: str = ""
    solved: str = ""  # "", "yes", "no"


@dataclass(frozen=True)
class Entry:
    pk: int
    slug: str
    name: str
    category: str
    difficulty: str
    difficulty_label: str
    points: int
    solves: int
    search_text: str
    solved: bool = False

    def get_difficulty_display(self) -> str:
        return self.difficulty_label


def catalogue_rows(tenant_id: int):
    """The tenant's published challenges with their solve counts."""
    approved = (
        Submission.objects.filter(project=OuterRef("pk"), status="APPROVED")
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    # one short index-only count per challenge (idx_submissions_project_status), not a
    # join that reads every submission of the class
    return (
        Project.objects.for_tenant(tenant_id)
        .published()
        .annotate(solves=Coalesce(Subquery(approved, output_field=IntegerField()), 0))
        .order_by("name")
    )


def _entries(tenant_id: int) -> list[Entry]:
    rows = catalogue_rows(tenant_id)
    entries = [
        Entry(
            pk=p.pk,
            slug=p.slug,
            name=p.name,
            category=p.category,
            difficulty=p.difficulty,
            difficulty_label=p.get_difficulty_display(),
            points=p.points,
            solves=p.solves,
            search_text=f"{p.name}\n{p.description}".lower(),
        )
        for p in rows
    ]
    return sorted(entries, key=lambda e: (DIFFICULTY_ORDER.get(e.difficulty, 9), e.points, e.name))


def cached_entries(tenant_id: int) -> list[Entry]:
    version = CATALOGUE.version(tenant_id)
    return CATALOGUE.get_or_load(tenant_id, version, "entries", lambda: _entries(tenant_id))


def catalogue(tenant_id: int, user, filters: CatalogueFilters) -> list[Entry]:
    """The published challenges a student sees, filtered, with their own solved markers."""
    solved_ids = set(
        Submission.objects.for_tenant(tenant_id).filter(user=user).approved().values_list("project_id", flat=True)
    )
    needle = filters.q.lower()
    result = []
    for entry in cached_entries(tenant_id):
        solved = entry.pk in solved_ids
        if needle and needle not in entry.search_text:
            continue
        if filters.category and entry.category != filters.category:
            continue
        if filters.difficulty and entry.difficulty != filters.difficulty:
            continue
        if (filters.solved == "yes" and not solved) or (filters.solved == "no" and solved):
            continue
        result.append(Entry(**{**entry.__dict__, "solved": solved}))
    return result


def categories(tenant_id: int) -> list[str]:
    return sorted({entry.category for entry in cached_entries(tenant_id)})
