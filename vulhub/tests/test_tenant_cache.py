"""vulhub.lib.tenant_cache: versioned per-tenant caches, bumped on commit."""

import pytest
from django.db import transaction

from vulhub.lib.tenant_cache import TenantCache

pytestmark = pytest.mark.django_db


def test_a_tenant_cache_is_invalidated_once_per_transaction(django_capture_on_commit_callbacks):
    """Two writes of one transaction (a solve that also moves a dynamic challenge's value) bump the version once."""
    board = TenantCache("probe", seconds=60)
    first = board.version(4242)
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        board.invalidate_on_commit(4242)
        board.invalidate_on_commit(4242)
        board.invalidate_on_commit(4243)  # another tenant: a bump of its own
    assert len(callbacks) == 2
    assert board.version(4242) == first + 1


def test_a_bump_rolled_back_with_its_savepoint_is_made_again(django_capture_on_commit_callbacks):
    board = TenantCache("probe", seconds=60)
    first = board.version(7)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        try:
            with transaction.atomic():
                board.invalidate_on_commit(7)
                raise RuntimeError("the savepoint rolls back, and its bump with it")
        except RuntimeError:
            pass
        board.invalidate_on_commit(7)
    assert board.version(7) == first + 1
