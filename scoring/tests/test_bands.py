"""leaderboard_bands: the triggers that keep its counts, and the ranks read from them.

Everything here runs in PostgreSQL (migration scoring 0011): the counts are compared
with a GROUP BY over leaderboards after each kind of write, and
leaderboard_students_above() with a plain count of the students with more points.
"""

import logging

import pytest
from django.db import IntegrityError, connection, transaction
from factory import Transformer

from scoring import leaderboard, selectors
from scoring.factories import LeaderboardFactory, SubmissionFactory
from scoring.models import BAND_POINTS, Leaderboard, LeaderboardBand
from tenants.factories import StudentFactory, TenantFactory
from tenants.models import User

pytestmark = pytest.mark.django_db

# around band edges, and far above
POINTS = [0, 1, 99, 100, 100, 101, 150, 199, 200, 250, 299, 300, 300, 999, 1000, 4321]


def scalar(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def bands(tenant) -> dict[int, int]:
    """The tenant's band counts, empty bands left out."""
    rows = LeaderboardBand.objects.filter(tenant=tenant, students__gt=0).values_list("band", "students")
    return dict(rows)


def counted(tenant) -> dict[int, int]:
    """The band counts as the rows say, from a GROUP BY."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT points / %s, count(*) FROM leaderboards WHERE tenant_id = %s GROUP BY 1",
            [BAND_POINTS, tenant.pk],
        )
        return dict(cursor.fetchall())


def student(tenant):
    return StudentFactory(tenant=tenant, password=Transformer.Force("!"))


@pytest.fixture
def rows(tenant, other_tenant):
    made = [LeaderboardFactory(tenant=tenant, user=student(tenant), points=p, solves=1) for p in POINTS]
    LeaderboardFactory(tenant=other_tenant, user=student(other_tenant), points=150, solves=1)
    return made


def test_inserts_count_each_row_in_its_band(rows, tenant, other_tenant):
    assert bands(tenant) == counted(tenant)
    assert bands(tenant) == {0: 3, 1: 5, 2: 3, 3: 2, 9: 1, 10: 1, 43: 1}
    assert bands(other_tenant) == {1: 1}


def test_updates_move_a_row_between_bands_and_only_across_a_band_edge(rows, tenant):
    row = rows[2]  # 99 points, band 0
    row.points = 100
    row.save(update_fields=["points"])
    assert bands(tenant)[0] == 2 and bands(tenant)[1] == 6
    before = list(LeaderboardBand.objects.filter(tenant=tenant).values_list("band", "students", "id"))
    Leaderboard.objects.filter(pk=row.pk).update(points=199, solves=7)  # same band: the trigger's WHEN skips it
    assert list(LeaderboardBand.objects.filter(tenant=tenant).values_list("band", "students", "id")) == before
    Leaderboard.objects.filter(tenant=tenant, points__lt=300).update(points=350)  # many rows, one statement
    assert bands(tenant) == counted(tenant) == {3: 13, 9: 1, 10: 1, 43: 1}
    # a band left by its last student stays, at zero
    assert LeaderboardBand.objects.get(tenant=tenant, band=0).students == 0


def test_deletes_and_the_students_deletion_take_rows_out(rows, tenant):
    rows[0].delete()
    rows[-1].user.delete()  # the cascade deletes the row
    Leaderboard.objects.filter(tenant=tenant, points__gte=300).delete()
    assert bands(tenant) == counted(tenant) == {0: 2, 1: 5, 2: 3}


def test_a_row_moved_to_another_tenant_moves_its_count(rows, tenant, other_tenant):
    """A student moved to another class, with their row (the same-tenant key wants both)."""
    User.objects.filter(pk=rows[6].user_id).update(tenant=other_tenant)
    Leaderboard.objects.filter(pk=rows[6].pk).update(tenant=other_tenant)  # 150 points
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred keys hold
    assert bands(tenant) == counted(tenant)
    assert bands(other_tenant) == counted(other_tenant) == {1: 2}


def test_the_gradings_upsert_keeps_the_bands(tenant, project):
    """update_student writes with INSERT ... ON CONFLICT DO UPDATE, or deletes the row."""
    learner = student(tenant)
    submission = SubmissionFactory(tenant=tenant, user=learner, project=project, approved=True, points_awarded=80)
    leaderboard.update_student(tenant_id=tenant.pk, user_id=learner.pk)  # insert
    assert bands(tenant) == {0: 1}
    submission.points_awarded = 180
    submission.save()
    leaderboard.update_student(tenant_id=tenant.pk, user_id=learner.pk)  # conflict: update
    assert bands(tenant) == {1: 1}
    submission.status = "REJECTED"
    submission.save()
    leaderboard.update_student(tenant_id=tenant.pk, user_id=learner.pk)  # no approval left: delete
    assert bands(tenant) == {}


def test_a_tenants_deletion_takes_its_bands_with_it(rows, other_tenant):
    tenant = TenantFactory()
    LeaderboardFactory(tenant=tenant, user=student(tenant), points=120)
    tenant.delete()
    assert not LeaderboardBand.objects.filter(tenant_id=tenant.pk).exists()
    assert bands(other_tenant) == {1: 1}


def test_truncate_empties_the_bands(rows, tenant):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred key check may be pending
        cursor.execute("SET LOCAL ROLE NONE")  # the owner: the app role may not TRUNCATE
        cursor.execute("TRUNCATE leaderboards")
    assert LeaderboardBand.objects.count() == 0


def test_a_band_never_goes_below_zero(rows, tenant):
    LeaderboardBand.objects.filter(tenant=tenant, band=43).update(students=0)  # out of step with the row
    with pytest.raises(IntegrityError, match="chk_leaderboard_bands_positive"), transaction.atomic():
        Leaderboard.objects.filter(tenant=tenant, points=4321).delete()


def test_a_request_of_the_tenant_writes_its_bands_under_row_level_security(rows, tenant):
    """The triggers run as the app role, with only the request's tenant visible."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('vulhub.rls_bypass', 'off', true)")
        cursor.execute("SELECT set_config('vulhub.tenant_id', %s, true)", [str(tenant.pk)])
        cursor.execute("UPDATE leaderboards SET points = 5000 WHERE points = 0")
        assert cursor.rowcount == 1
        cursor.execute("SELECT count(DISTINCT tenant_id) FROM leaderboard_bands")
        assert cursor.fetchone()[0] == 1  # the other tenant's band is not visible
    assert bands(tenant) == counted(tenant)


@pytest.mark.parametrize("points", sorted({*POINTS, *(p + d for p in POINTS for d in (-1, 1) if p + d >= 0), 10**6}))
def test_students_above_counts_the_students_with_more_points(rows, tenant, points):
    expected = Leaderboard.objects.filter(tenant=tenant, points__gt=points).count()
    assert scalar("SELECT leaderboard_students_above(%s, %s)", [tenant.pk, points]) == expected
    assert selectors.students_above(tenant.pk, points) == expected


def test_rebuild_repairs_bands_that_went_wrong(rows, tenant, other_tenant, caplog, django_capture_on_commit_callbacks):
    LeaderboardBand.objects.filter(tenant=tenant, band=1).update(students=40)
    LeaderboardBand.objects.filter(tenant=tenant, band=43).delete()
    LeaderboardBand.objects.create(tenant=tenant, band=70, students=2)
    version = leaderboard.CACHE.version(tenant.pk)
    with (
        caplog.at_level(logging.WARNING, logger="scoring.leaderboard"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        current = Leaderboard.objects.filter(tenant=tenant).values_list("user_id", "points", "solves", "last_scored_at")
        assert leaderboard.replace(tenant.pk, list(current))[1:] == (0, 0)  # the rows themselves were right
    assert bands(tenant) == counted(tenant)
    assert "were off in 3 band(s)" in caplog.text
    assert leaderboard.CACHE.version(tenant.pk) == version + 1  # pages ranked from bad counts are dropped
    assert bands(other_tenant) == {1: 1}
