"""Reads of challenges shared by the pages that show them.

The students' catalogue (scoring.catalogue: the published challenges with their
solve counts) is cached per tenant in CATALOGUE; whatever changes a challenge or a
solve count bumps its version on commit.
"""

from vulhub.lib.tenant_cache import TenantCache

from .models import Project

CATALOGUE = TenantCache("catalogue", seconds=300)

# the catalogue's order: easiest first
DIFFICULTY_ORDER = {value: n for n, value in enumerate(Project.Difficulty.values)}
