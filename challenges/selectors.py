"""Reads of the challenge catalogue for students.

The tenant-wide part (published challenges and their solve counts) is cached per
tenant and version; every change that moves it (a solve, a regrade, publishing)
bumps the version on commit. The student's own solved markers are one query.
"""

import contextlib
import logging
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce

from .models import Project

logger = logging.getLogger(__name__)
CACHE_SECONDS = 300
VERSION_KEY = "catalogue:{tenant_id}:version"


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


DIFFICULTY_ORDER = {value: n for n, value in enumerate(Project.Difficulty.values)}


def invalidate_on_commit(tenant_id: int) -> None:
    def bump():
        key = VERSION_KEY.format(tenant_id=tenant_id)
        try:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 2, timeout=None)
        except Exception:
            logger.warning("catalogue cache of tenant %s not invalidated", tenant_id, exc_info=True)

    transaction.on_commit(bump)


def catalogue_rows(tenant_id: int):
    """The tenant's published challenges with their solve counts."""
    from scoring.models import Submission

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
    try:
        version = cache.get_or_set(VERSION_KEY.format(tenant_id=tenant_id), 1, timeout=None)
        key = f"catalogue:{tenant_id}:v{version}"
        entries = cache.get(key)
    except Exception:
        logger.warning("catalogue cache unreachable", exc_info=True)
        return _entries(tenant_id)
    if entries is None:
        entries = _entries(tenant_id)
        with contextlib.suppress(Exception):
            cache.set(key, entries, CACHE_SECONDS)
    return entries


def catalogue(tenant_id: int, user, filters: CatalogueFilters) -> list[Entry]:
    """The published challenges a student sees, filtered, with their own solved markers."""
    from scoring.models import Submission

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
