"""leaderboards.rank: the competition rank the database keeps in every row (migration scoring 0012).

Everything here runs in PostgreSQL: after each kind of write, every stored rank is
compared with a fresh window-function rank over the whole table, and the rows the
trigger wrote are told apart by where their row versions lie (ctid).
"""

import logging

import pytest
from django.db import connection, transaction
from django.db.models import F
from factory import Transformer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring import leaderboard
from scoring.factories import LeaderboardFactory, SubmissionFactory
from scoring.models import Leaderboard
from tenants.factories import StudentFactory, TenantFactory
from tenants.models import User
from vulhub.tests.acting import as_app

pytestmark = pytest.mark.django_db

# ties, gaps, and one far above
POINTS = [0, 1, 99, 100, 100, 101, 150, 199, 200, 250, 299, 300, 300, 999, 1000, 4321]


def fetch(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def stale_ranks() -> list[tuple]:
    """Rows whose stored rank is not a fresh rank() over its tenant's points: (id, stored, fresh)."""
    return fetch(
        """
        SELECT id, rank, fresh FROM (
            SELECT id, rank, rank() OVER (PARTITION BY tenant_id ORDER BY points DESC) AS fresh FROM leaderboards
        ) AS r WHERE rank <> fresh
        """
    )


def ranks(tenant) -> list[tuple[int, int]]:
    return list(Leaderboard.objects.filter(tenant=tenant).order_by("-points", "pk").values_list("points", "rank"))


def versions(tenant) -> dict[int, str]:
    """Each row's version: a row the trigger rewrote gets a new one."""
    return dict(fetch("SELECT id, ctid::text FROM leaderboards WHERE tenant_id = %s", [tenant.pk]))


def student(tenant):
    return StudentFactory(tenant=tenant, password=Transformer.Force("!"))


@pytest.fixture
def rows(tenant, other_tenant):
    made = [LeaderboardFactory(tenant=tenant, user=student(tenant), points=p, solves=1) for p in POINTS]
    LeaderboardFactory(tenant=other_tenant, user=student(other_tenant), points=150, solves=1)
    return made


def test_inserted_rows_get_competition_ranks_and_ties_share_one(rows, tenant, other_tenant):
    assert stale_ranks() == []
    assert ranks(tenant)[:6] == [(4321, 1), (1000, 2), (999, 3), (300, 4), (300, 4), (299, 6)]
    assert ranks(tenant)[-1] == (0, 16)
    assert ranks(other_tenant) == [(150, 1)]  # each tenant ranks on its own


def test_an_update_rewrites_only_the_rows_between_the_old_and_the_new_points(rows, tenant):
    mover = rows[6]  # 150 points, rank 10
    before = versions(tenant)
    Leaderboard.objects.filter(pk=mover.pk).update(points=260)  # past 199, 200 and 250
    assert stale_ranks() == []
    rewritten = {pk for pk, version in versions(tenant).items() if version != before[pk]}
    passed = {row.pk for row in rows if 150 < row.points < 260}
    assert rewritten == passed | {mover.pk}  # nobody above 260 or below 150 was touched
    assert Leaderboard.objects.get(pk=mover.pk).rank == 7

    Leaderboard.objects.filter(pk=mover.pk).update(points=0)  # down to a tie with the last
    assert stale_ranks() == [] and Leaderboard.objects.get(pk=mover.pk).rank == 15


def test_many_rows_in_one_statement_and_a_stale_save_are_ranked(rows, tenant):
    Leaderboard.objects.filter(tenant=tenant, points__lt=300).update(points=350)  # 11 rows at once
    assert stale_ranks() == []
    assert ranks(tenant)[:4] == [(4321, 1), (1000, 2), (999, 3), (350, 4)]
    stale = Leaderboard.objects.get(pk=rows[0].pk)  # rank 4, loaded
    Leaderboard.objects.filter(pk=rows[-1].pk).update(points=1)  # 4321 falls: everyone above 1 moves up
    stale.solves = 9
    stale.save()  # writes its old rank back: the trigger ranks the row again
    assert stale_ranks() == []


@given(moves=st.lists(st.tuples(st.integers(0, len(POINTS) - 1), st.integers(-400, 400)), min_size=1, max_size=14))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_many_small_moves_in_one_statement_rerank_each_island_alone(rows, tenant, moves):
    """Disjoint spans of points (migration 0016) are re-ranked one by one, from the top (past 8 islands, as
    one span): every rank stays true, and a row outside every span keeps its row version (it was not rewritten)."""
    with transaction.atomic():
        delta = {}
        for index, change in moves:
            delta[rows[index].pk] = max(rows[index].points + change, 0) - rows[index].points
        before_points = dict(Leaderboard.objects.filter(tenant=tenant).values_list("pk", "points"))
        before = versions(tenant)
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE leaderboards l SET points = l.points + m.delta "
                "FROM unnest(%s::bigint[], %s::int[]) AS m (id, delta) WHERE l.id = m.id",
                [list(delta), list(delta.values())],
            )
        assert stale_ranks() == []
        spans = [sorted((before_points[pk], before_points[pk] + d)) for pk, d in delta.items() if d]
        untouched = [
            pk for pk, p in before_points.items() if pk not in delta and not any(a <= p <= b for a, b in spans)
        ]
        assert all(versions(tenant)[pk] == before[pk] for pk in untouched)
        transaction.set_rollback(True)


def test_many_islands_are_ranked_as_one_span(rows, tenant):
    """Past 8 islands (a dynamic challenge's solvers each losing a point), one span costs less: ranks stay true."""
    movers = [row.pk for row in rows if row.points in (1, 99, 101, 150, 200, 250, 299, 999, 4321)]
    Leaderboard.objects.filter(pk__in=movers).update(points=F("points") - 1)
    assert stale_ranks() == []
    assert ranks(tenant)[:3] == [(4320, 1), (1000, 2), (998, 3)]


def test_deletes_and_a_students_deletion_move_the_rows_below_up(rows, tenant):
    rows[-1].delete()  # the leader
    rows[3].user.delete()  # the cascade deletes the row (100 points)
    assert stale_ranks() == []
    Leaderboard.objects.filter(tenant=tenant, points__gte=300).delete()
    assert stale_ranks() == [] and ranks(tenant)[0] == (299, 1)


def test_a_row_moved_to_another_tenant_is_ranked_in_both(rows, tenant, other_tenant):
    User.objects.filter(pk=rows[6].user_id).update(tenant=other_tenant)
    Leaderboard.objects.filter(pk=rows[6].pk).update(tenant=other_tenant)  # 150 points, a tie there
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred keys hold
    assert stale_ranks() == []
    assert ranks(other_tenant) == [(150, 1), (150, 1)]


def test_the_gradings_upsert_and_its_delete_keep_the_ranks(tenant, project, rows):
    """update_student writes with INSERT ... ON CONFLICT DO UPDATE, or deletes the row."""
    learner = student(tenant)
    submission = SubmissionFactory(tenant=tenant, user=learner, project=project, approved=True, points_awarded=180)
    leaderboard.update_student(tenant_id=tenant.pk, user_id=learner.pk)  # insert
    assert Leaderboard.objects.get(user=learner).rank == 10 and stale_ranks() == []  # 9 above 180
    submission.points_awarded = 5000
    submission.save()
    leaderboard.update_student(tenant_id=tenant.pk, user_id=learner.pk)  # conflict: update
    assert Leaderboard.objects.get(user=learner).rank == 1 and stale_ranks() == []
    submission.status = "REJECTED"
    submission.save()
    leaderboard.update_student(tenant_id=tenant.pk, user_id=learner.pk)  # no approval left: delete
    assert not Leaderboard.objects.filter(user=learner).exists() and stale_ranks() == []


def test_a_tenants_deletion_leaves_the_others_ranks_alone(rows, other_tenant):
    gone = TenantFactory()
    LeaderboardFactory(tenant=gone, user=student(gone), points=120)
    gone.delete()
    assert stale_ranks() == [] and ranks(other_tenant) == [(150, 1)]


def test_a_request_of_the_tenant_ranks_under_row_level_security(rows, tenant):
    """The trigger runs as the app role, with only the request's tenant visible."""
    with transaction.atomic(), connection.cursor() as cursor:
        as_app(cursor, tenant.pk)
        cursor.execute("UPDATE leaderboards SET points = 5000 WHERE points = 0")
        assert cursor.rowcount == 1
    assert stale_ranks() == [] and ranks(tenant)[0] == (5000, 1)


def test_rebuild_repairs_ranks_that_went_around_the_trigger(
    rows, tenant, other_tenant, caplog, django_capture_on_commit_callbacks
):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred key check may be pending
        cursor.execute("SET LOCAL ROLE NONE")  # the owner: a hand edit with the trigger off
        cursor.execute("ALTER TABLE leaderboards DISABLE TRIGGER leaderboards_rank_update")
        cursor.execute("UPDATE leaderboards SET rank = rank + 40 WHERE tenant_id = %s AND points < 200", [tenant.pk])
        cursor.execute("ALTER TABLE leaderboards ENABLE TRIGGER leaderboards_rank_update")
        cursor.execute("RESET ROLE")
    assert len(stale_ranks()) == 8
    version = leaderboard.CACHE.version(tenant.pk)
    with (
        caplog.at_level(logging.WARNING, logger="scoring.leaderboard"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        current = Leaderboard.objects.filter(tenant=tenant).values_list("user_id", "points", "solves", "last_scored_at")
        assert leaderboard.replace(tenant.pk, list(current))[1:] == (0, 0)  # the totals themselves were right
    assert stale_ranks() == []
    assert "were off in 8 row(s)" in caplog.text
    assert leaderboard.CACHE.version(tenant.pk) == version + 1  # pages with bad ranks are dropped
