"""Reads of scoring data for pages, with the leaderboard cached per tenant."""

import contextlib
from dataclasses import dataclass

from django.core.cache import cache

from . import leaderboard
from .models import Leaderboard

CACHE_SECONDS = 300
PAGE_SIZE = 50


@dataclass(frozen=True)
class Standing:
    rank: int
    user_id: int
    name: str
    points: int
    solves: int
    last_scored_at: object


@dataclass(frozen=True)
class LeaderboardPage:
    number: int
    rows: list[Standing]
    total: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def leaderboard_page(tenant_id: int, number: int = 1, page_size: int = PAGE_SIZE) -> LeaderboardPage:
    """One page of the tenant's standings, from the cache when fresh.

    The cache key carries the tenant and its leaderboard version, which every write
    bumps on commit: a stale page is never served, and tenants never share keys.
    """
    number = max(1, int(number))
    version = leaderboard.cache_version(tenant_id)
    if version is None:  # cache down: serve from the database
        return _load_page(tenant_id, number, page_size)
    key = f"leaderboard:{tenant_id}:v{version}:p{number}:{page_size}"
    try:
        page = cache.get(key)
    except Exception:
        page = None
    if page is None:
        page = _load_page(tenant_id, number, page_size)
        with contextlib.suppress(Exception):
            cache.set(key, page, CACHE_SECONDS)
    return page


def _load_page(tenant_id: int, number: int, page_size: int) -> LeaderboardPage:
    rows = Leaderboard.objects.for_tenant(tenant_id).ranked().select_related("user")
    total = rows.count()
    start = (number - 1) * page_size
    standings = [
        Standing(
            rank=row.rank,
            user_id=row.user_id,
            # the class sees this: a name, never an e-mail address
            name=f"{row.user.first_name} {row.user.last_name}".strip() or f"Student {row.user_id}",
            points=row.points,
            solves=row.solves,
            last_scored_at=row.last_scored_at,
        )
        for row in rows[start : start + page_size]
    ]
    return LeaderboardPage(number=number, rows=standings, total=total, page_size=page_size)
