"""selectors.neighbours(): a student's row and the rows around it, as the leaderboard orders them."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone
from factory import Transformer

from scoring import selectors
from scoring.factories import LeaderboardFactory
from scoring.models import Leaderboard
from tenants.factories import StudentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(tenant, other_tenant):
    """40 students with many ties in points and in time, ranked as the leaderboard ranks them."""
    rng = random.Random(3)
    start = timezone.now() - timedelta(days=3)
    rows = []
    for _ in range(40):
        student = StudentFactory(tenant=tenant, password=Transformer.Force("!"))  # no hashing: 40 students
        points = rng.choice([0, 100, 100, 200, 250, 300, 300, 300, 500])
        rows.append((student, points, start + timedelta(hours=rng.randrange(5))))
    for student, points, scored in rows:
        LeaderboardFactory(tenant=tenant, user=student, points=points, solves=1, last_scored_at=scored)
    LeaderboardFactory(tenant=other_tenant, user=StudentFactory(tenant=other_tenant), points=400)
    board = list(Leaderboard.objects.for_tenant(tenant).ranked())
    for row in board:  # competition ranks, computed here from the points alone
        row.rank = 1 + sum(1 for other in board if other.points > row.points)
    return board


@pytest.mark.parametrize("around", [0, 1, 5])
def test_neighbours_are_the_slice_of_the_ranked_board_around_the_student(board, tenant, around):
    for position, row in enumerate(board):
        expected = board[max(0, position - around) : position + around + 1]
        got = selectors.neighbours(tenant.pk, row.user_id, around=around)
        assert [(s.user_id, s.rank, s.points) for s in got] == [(r.user_id, r.rank, r.points) for r in expected]


def test_a_student_without_a_row_has_no_neighbours(board, tenant, student):
    assert selectors.neighbours(tenant.pk, student.pk) == []


@pytest.mark.parametrize("page_size", [1, 3, 7, 50])
def test_every_page_ranks_its_rows_like_the_whole_board(board, tenant, page_size):
    """Ties that straddle a page break keep the rank of their group."""
    pages = -(-len(board) // page_size)
    got = []
    for number in range(1, pages + 1):
        page = selectors._load_page(tenant.pk, number, page_size)
        assert page.total == len(board)
        got += [(s.user_id, s.rank, s.points) for s in page.rows]
    assert got == [(r.user_id, r.rank, r.points) for r in board]


def test_the_stored_ranks_are_the_boards(board, tenant):
    ranked = dict(Leaderboard.objects.for_tenant(tenant).values_list("user_id", "rank"))
    assert ranked == {r.user_id: r.rank for r in board}
