"""Teams in the database itself (migrations scoring 0023, tenants 0014), whatever the code above it does.

Every statement is raw SQL sent as the app role inside a request's tenant context
(the role a request runs as, tenants.rls.request_role, with row-level security), so
that what is refused here is refused by PostgreSQL: the checks, the unique indexes, the
composite same-tenant keys (checked at once, not at commit), the tenant isolation
policies and the trigger that keeps team ranks.
"""

import contextlib

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction

from scoring.models import Team, TeamLeaderboard, TeamMembership
from tenants import rls
from tenants.factories import StudentFactory
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

# ties, gaps and one far above, as scoring/tests/test_ranks.py
POINTS = [0, 1, 100, 100, 150, 300, 300, 999]


@contextlib.contextmanager
def as_the_app(tenant_id):
    """A request's transaction: the app role, only `tenant_id`'s rows (None: none); same-tenant keys checked at once."""
    with transaction.atomic(), connection.cursor() as cursor:
        before = rls.enter_request_role()
        rls.set_tenant(tenant_id)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        yield cursor
        rls.leave_request_role(before)  # after an error the savepoint's rollback puts them back


def one(cursor, sql, params=()):
    cursor.execute(sql, params)
    return cursor.fetchone() if cursor.description else None


def insert_team(cursor, tenant_id, name, code=None):
    return one(
        cursor,
        "INSERT INTO teams (tenant_id, name, invite_code, created_at) VALUES (%s, %s, %s, now()) RETURNING id",
        [tenant_id, name, code or name.upper()[:8].ljust(8, "X")],
    )[0]


def insert_member(cursor, tenant_id, team_id, user_id):
    return one(
        cursor,
        "INSERT INTO team_memberships (tenant_id, team_id, user_id, joined_at) VALUES (%s, %s, %s, now()) RETURNING id",
        [tenant_id, team_id, user_id],
    )[0]


def insert_row(cursor, tenant_id, team_id, points, solves=1):
    return one(
        cursor,
        "INSERT INTO team_leaderboards (tenant_id, team_id, points, solves, updated_at) "
        "VALUES (%s, %s, %s, %s, now()) RETURNING id",
        [tenant_id, team_id, points, solves],
    )[0]


def team(tenant, name):
    return Team.objects.create(tenant=tenant, name=name, invite_code=name.upper()[:8].ljust(8, "Q"))


def stale_ranks() -> list[tuple]:
    """Team rows whose stored rank is not a fresh rank() over their tenant's points: (id, stored, fresh)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT id, rank, fresh FROM (
                SELECT id, rank, rank() OVER (PARTITION BY tenant_id ORDER BY points DESC) AS fresh
                FROM team_leaderboards
            ) AS r WHERE rank <> fresh
            """
        )
        return cursor.fetchall()


def ranks(tenant) -> list[tuple[int, int]]:
    return list(TeamLeaderboard.objects.filter(tenant=tenant).order_by("-points", "pk").values_list("points", "rank"))


# --- checks ----------------------------------------------------------------------------------


def test_a_team_rank_below_one_is_refused(tenant):
    red = team(tenant, "Red")
    with as_the_app(tenant.pk) as cursor:
        pk = insert_row(cursor, tenant.pk, red.pk, 10)
    assert TeamLeaderboard.objects.get(pk=pk).rank == 1
    for rank in (0, -2):
        with pytest.raises(IntegrityError, match="chk_team_rank_positive"), as_the_app(tenant.pk) as cursor:
            cursor.execute("UPDATE team_leaderboards SET rank = %s WHERE id = %s", [rank, pk])
    assert TeamLeaderboard.objects.get(pk=pk).rank == 1


@pytest.mark.parametrize(("points", "solves"), [(-1, 0), (0, -1)])
def test_negative_team_totals_are_refused(tenant, points, solves):
    red = team(tenant, "Red")
    with pytest.raises(IntegrityError, match="chk_team_leaderboards_totals_positive"), as_the_app(tenant.pk) as cursor:
        insert_row(cursor, tenant.pk, red.pk, points, solves)


def test_a_team_without_a_name_is_refused(tenant):
    with pytest.raises(IntegrityError, match="chk_teams_name_not_empty"), as_the_app(tenant.pk) as cursor:
        insert_team(cursor, tenant.pk, "", code="EMPTYNAM")


@pytest.mark.parametrize("mode", ["off", "SOMETIMES", ""])
def test_a_team_mode_outside_the_three_is_refused(tenant, mode):
    with pytest.raises(IntegrityError, match="chk_tenants_team_mode"), as_the_app(tenant.pk) as cursor:
        cursor.execute("UPDATE tenants SET team_mode = %s WHERE id = %s", [mode, tenant.pk])
    assert Tenant.objects.get(pk=tenant.pk).team_mode == "OFF"


@pytest.mark.parametrize("size", [0, 51])
def test_a_team_size_outside_1_to_50_is_refused(tenant, size):
    with pytest.raises(IntegrityError, match="chk_tenants_team_size"), as_the_app(tenant.pk) as cursor:
        cursor.execute("UPDATE tenants SET team_size_max = %s WHERE id = %s", [size, tenant.pk])


@pytest.mark.parametrize(("mode", "size"), [("OPTIONAL", 1), ("REQUIRED", 50), ("OFF", 4)])
def test_the_three_modes_and_the_sizes_1_to_50_are_taken(tenant, mode, size):
    with as_the_app(tenant.pk) as cursor:
        cursor.execute("UPDATE tenants SET team_mode = %s, team_size_max = %s WHERE id = %s", [mode, size, tenant.pk])
    assert Tenant.objects.filter(pk=tenant.pk).values_list("team_mode", "team_size_max").get() == (mode, size)


def test_a_tenant_written_in_sql_plays_alone_with_teams_of_four():
    with connection.cursor() as cursor:  # the platform role: tenants are made by operators
        cursor.execute(
            "INSERT INTO tenants (name, slug, domain, is_active, registration_mode, settings, time_zone, "
            "public_profiles, created_at, updated_at) "
            "VALUES ('Raw', 'raw', 'raw.localhost', true, 'OPEN', '{}', 'UTC', false, now(), now()) "
            "RETURNING team_mode, team_size_max"
        )
        assert cursor.fetchone() == ("OFF", 4)


# --- uniqueness ------------------------------------------------------------------------------


@pytest.mark.parametrize("taken", ["Red", "RED", "red", "rEd"])
def test_a_name_is_taken_once_per_class_whatever_its_case(tenant, taken):
    team(tenant, "Red")
    with pytest.raises(IntegrityError, match="uniq_teams_tenant_name_ci"), as_the_app(tenant.pk) as cursor:
        insert_team(cursor, tenant.pk, taken, code="OTHERCOD")
    assert Team.objects.filter(tenant=tenant).count() == 1


def test_another_class_may_use_the_same_name_and_code(tenant, other_tenant):
    red = team(tenant, "Red")
    with as_the_app(other_tenant.pk) as cursor:
        insert_team(cursor, other_tenant.pk, "RED", code=red.invite_code)
    assert Team.objects.filter(name__iexact="red").count() == 2


def test_an_invite_code_is_taken_once_per_class(tenant):
    red = team(tenant, "Red")
    with pytest.raises(IntegrityError, match="uniq_teams_tenant_invite_code"), as_the_app(tenant.pk) as cursor:
        insert_team(cursor, tenant.pk, "Blue", code=red.invite_code)


def test_a_student_is_in_one_team_at_most(tenant, student):
    red, blue = team(tenant, "Red"), team(tenant, "Blue")
    with as_the_app(tenant.pk) as cursor:
        insert_member(cursor, tenant.pk, red.pk, student.pk)
    with pytest.raises(IntegrityError, match="uniq_team_memberships_student"), as_the_app(tenant.pk) as cursor:
        insert_member(cursor, tenant.pk, blue.pk, student.pk)
    with pytest.raises(IntegrityError, match="uniq_team_memberships_student"), as_the_app(tenant.pk) as cursor:
        insert_member(cursor, tenant.pk, red.pk, student.pk)
    assert list(TeamMembership.objects.filter(user=student).values_list("team_id", flat=True)) == [red.pk]


def test_a_team_has_one_standings_row(tenant):
    red = team(tenant, "Red")
    with as_the_app(tenant.pk) as cursor:
        insert_row(cursor, tenant.pk, red.pk, 10)
    with pytest.raises(IntegrityError, match="uniq_team_leaderboards_tenant_team"), as_the_app(tenant.pk) as cursor:
        insert_row(cursor, tenant.pk, red.pk, 20)


# --- keys within one tenant ------------------------------------------------------------------
# Each statement names the request's own tenant (row-level security lets nothing else be
# written) and an id of the other tenant's row: the composite key (id, tenant_id) refuses it.


@pytest.fixture
def foreign_team(other_tenant):
    return team(other_tenant, "Foreign")


def test_joining_another_classs_team_is_refused(tenant, student, foreign_team):
    with pytest.raises(IntegrityError, match="fk_team_memberships_team_same_tenant"), as_the_app(tenant.pk) as cursor:
        insert_member(cursor, tenant.pk, foreign_team.pk, student.pk)


def test_a_team_cannot_take_another_classs_student(tenant, other_student):
    red = team(tenant, "Red")
    with pytest.raises(IntegrityError, match="fk_team_memberships_user_same_tenant"), as_the_app(tenant.pk) as cursor:
        insert_member(cursor, tenant.pk, red.pk, other_student.pk)


def test_a_standings_row_cannot_rank_another_classs_team(tenant, foreign_team):
    with pytest.raises(IntegrityError, match="fk_team_leaderboards_team_same_tenant"), as_the_app(tenant.pk) as cursor:
        insert_row(cursor, tenant.pk, foreign_team.pk, 10)


def test_an_answer_cannot_score_for_another_classs_team(tenant, student, project, foreign_team):
    with pytest.raises(IntegrityError, match="fk_submissions_team_same_tenant"), as_the_app(tenant.pk) as cursor:
        cursor.execute(
            "INSERT INTO submissions (tenant_id, user_id, project_id, team_id, kind, status, points_awarded, answer, "
            "link, feedback, submitted_at) VALUES (%s, %s, %s, %s, 'WRITEUP', 'PENDING', 0, '', '', '', now())",
            [tenant.pk, student.pk, project.pk, foreign_team.pk],
        )


def test_an_answer_moved_to_another_classs_team_is_refused(tenant, student, project, foreign_team):
    red = team(tenant, "Red")
    with as_the_app(tenant.pk) as cursor:
        cursor.execute(
            "INSERT INTO submissions (tenant_id, user_id, project_id, team_id, kind, status, points_awarded, answer, "
            "link, feedback, submitted_at) VALUES (%s, %s, %s, %s, 'WRITEUP', 'PENDING', 0, '', '', '', now())",
            [tenant.pk, student.pk, project.pk, red.pk],
        )
    with pytest.raises(IntegrityError, match="fk_submissions_team_same_tenant"), as_the_app(tenant.pk) as cursor:
        cursor.execute("UPDATE submissions SET team_id = %s WHERE team_id = %s", [foreign_team.pk, red.pk])


def test_a_hint_cannot_be_charged_to_another_classs_team(tenant, student, project, foreign_team):
    with pytest.raises(IntegrityError, match="fk_hint_unlocks_team_same_tenant"), as_the_app(tenant.pk) as cursor:
        cursor.execute(
            "INSERT INTO hint_unlocks (tenant_id, user_id, project_id, team_id, cost, unlocked_at) "
            "VALUES (%s, %s, %s, %s, 0, now())",
            [tenant.pk, student.pk, project.pk, foreign_team.pk],
        )


def test_the_same_rows_within_one_class_are_taken(tenant, student, project):
    with as_the_app(tenant.pk) as cursor:
        red = insert_team(cursor, tenant.pk, "Red")
        insert_member(cursor, tenant.pk, red, student.pk)
        insert_row(cursor, tenant.pk, red, 10)
        cursor.execute(
            "INSERT INTO hint_unlocks (tenant_id, user_id, project_id, team_id, cost, unlocked_at) "
            "VALUES (%s, %s, %s, %s, 0, now())",
            [tenant.pk, student.pk, project.pk, red],
        )
    assert TeamMembership.objects.get(user=student).team_id == red


# --- row-level security ----------------------------------------------------------------------

TEAM_TABLES = ["teams", "team_memberships", "team_leaderboards"]


@pytest.fixture
def two_classes_with_teams(tenant, other_tenant):
    for klass in (tenant, other_tenant):
        made = team(klass, f"Team of {klass.slug}")
        TeamMembership.objects.create(tenant=klass, team=made, user=StudentFactory(tenant=klass))
        TeamLeaderboard.objects.create(tenant=klass, team=made, points=10, solves=1)
    return tenant, other_tenant


def visible(cursor) -> dict[str, set]:
    seen = {}
    for table in TEAM_TABLES:
        cursor.execute(f"SELECT DISTINCT tenant_id FROM {table}")  # noqa: S608  (the table names above)
        seen[table] = {row[0] for row in cursor.fetchall()}
    return seen


def test_the_team_tables_have_forced_row_level_security_and_a_full_policy():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   p.cmd, p.qual IS NOT NULL, p.with_check IS NOT NULL
            FROM pg_class c JOIN pg_policies p ON p.schemaname = 'public' AND p.tablename = c.relname
            WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)
            ORDER BY 1
            """,
            [TEAM_TABLES],
        )
        rows = cursor.fetchall()
    assert rows == [(table, True, True, "ALL", True, True) for table in sorted(TEAM_TABLES)]


def test_a_class_sees_only_its_own_teams_members_and_standings(two_classes_with_teams):
    alpha, beta = two_classes_with_teams
    with as_the_app(None) as cursor:
        assert visible(cursor) == dict.fromkeys(TEAM_TABLES, set())  # no tenant: nothing at all
    for klass in (alpha, beta):
        with as_the_app(klass.pk) as cursor:
            assert visible(cursor) == dict.fromkeys(TEAM_TABLES, {klass.pk})


def test_a_class_cannot_change_or_remove_another_classs_teams(two_classes_with_teams):
    alpha, beta = two_classes_with_teams
    with as_the_app(alpha.pk) as cursor:
        for statement in (
            "UPDATE teams SET name = 'hijacked' WHERE tenant_id = %s",
            "UPDATE team_leaderboards SET points = 5000 WHERE tenant_id = %s",
            "DELETE FROM team_memberships WHERE tenant_id = %s",
            "DELETE FROM teams WHERE tenant_id = %s",
        ):
            cursor.execute(statement, [beta.pk])
            assert cursor.rowcount == 0, statement
    assert Team.objects.get(tenant=beta).name == "Team of beta"
    assert TeamLeaderboard.objects.get(tenant=beta).points == 10
    assert TeamMembership.objects.filter(tenant=beta).count() == 1


@pytest.mark.parametrize("table", TEAM_TABLES)
def test_rows_for_another_class_or_for_none_are_refused(two_classes_with_teams, table):
    alpha, beta = two_classes_with_teams
    beta_team = Team.objects.get(tenant=beta)
    writes = {
        "teams": lambda cursor, tenant_id: insert_team(cursor, tenant_id, "Sneaky", code="SNEAKYCD"),
        "team_memberships": lambda cursor, tenant_id: insert_member(
            cursor, tenant_id, beta_team.pk, StudentFactory(tenant=beta).pk
        ),
        "team_leaderboards": lambda cursor, tenant_id: insert_row(cursor, tenant_id, beta_team.pk, 1),
    }
    if table != "teams":  # make room: beta's team has its row already
        TeamLeaderboard.objects.filter(tenant=beta).delete()
    for acting_as in (alpha.pk, None):
        with pytest.raises(ProgrammingError, match="row-level security"), as_the_app(acting_as) as cursor:
            writes[table](cursor, beta.pk)
    with pytest.raises(ProgrammingError, match="row-level security"), as_the_app(alpha.pk) as cursor:
        cursor.execute(f"UPDATE {table} SET tenant_id = %s", [beta.pk])  # noqa: S608  (a table name above)


# --- the rank trigger ------------------------------------------------------------------------


@pytest.fixture
def ranked(tenant, other_tenant):
    """Team rows of `tenant` at POINTS, written in SQL by the app role, and one row of another class."""
    with as_the_app(tenant.pk) as cursor:
        teams = [insert_team(cursor, tenant.pk, f"T{n}") for n in range(len(POINTS))]
        cursor.execute(
            "INSERT INTO team_leaderboards (tenant_id, team_id, points, solves, updated_at) "
            "SELECT %s, t, p, 1, now() FROM unnest(%s::bigint[], %s::int[]) AS r (t, p)",
            [tenant.pk, teams, POINTS],
        )
    with as_the_app(other_tenant.pk) as cursor:
        insert_row(cursor, other_tenant.pk, insert_team(cursor, other_tenant.pk, "Far"), 150)
    return dict(TeamLeaderboard.objects.filter(tenant=tenant).values_list("points", "pk"))


def test_rows_inserted_in_one_statement_get_competition_ranks(ranked, tenant, other_tenant):
    assert stale_ranks() == []
    assert ranks(tenant) == [(999, 1), (300, 2), (300, 2), (150, 4), (100, 5), (100, 5), (1, 7), (0, 8)]
    assert ranks(other_tenant) == [(150, 1)]  # each class ranks on its own


def test_updates_in_sql_keep_competition_ranks(ranked, tenant, other_tenant):
    with as_the_app(tenant.pk) as cursor:
        cursor.execute("UPDATE team_leaderboards SET points = 1000 WHERE id = %s", [ranked[0]])  # last to first
        assert ranks(tenant)[:2] == [(1000, 1), (999, 2)]
        cursor.execute("UPDATE team_leaderboards SET points = points + 50 WHERE points BETWEEN 100 AND 300")
        cursor.execute("UPDATE team_leaderboards SET solves = 3 WHERE id = %s", [ranked[1]])  # no points moved
    assert stale_ranks() == []
    assert ranks(tenant) == [(1000, 1), (999, 2), (350, 3), (350, 3), (200, 5), (150, 6), (150, 6), (1, 8)]
    assert ranks(other_tenant) == [(150, 1)]


def test_deletes_in_sql_move_the_rows_below_up(ranked, tenant):
    with as_the_app(tenant.pk) as cursor:
        cursor.execute("DELETE FROM team_leaderboards WHERE id = %s", [ranked[999]])
        assert ranks(tenant)[0] == (300, 1)
        cursor.execute("DELETE FROM team_leaderboards WHERE points = 300")
        cursor.execute(
            "DELETE FROM team_leaderboards WHERE id = (SELECT min(id) FROM team_leaderboards WHERE points = 100)"
        )
    assert stale_ranks() == []
    assert ranks(tenant) == [(150, 1), (100, 2), (1, 3), (0, 4)]


def test_an_upsert_as_the_services_write_it_keeps_the_ranks(ranked, tenant):
    """team_board.UPDATE_TEAMS writes with INSERT ... ON CONFLICT DO UPDATE: both paths are ranked."""
    fresh = Team.objects.create(tenant=tenant, name="New", invite_code="NEWNEWNE")
    with as_the_app(tenant.pk) as cursor:
        cursor.execute(
            "INSERT INTO team_leaderboards AS l (tenant_id, team_id, points, solves, updated_at) "
            "VALUES (%s, %s, 500, 1, now()), (%s, %s, 2000, 9, now()) "
            "ON CONFLICT (tenant_id, team_id) DO UPDATE SET points = EXCLUDED.points, solves = EXCLUDED.solves",
            [tenant.pk, fresh.pk, tenant.pk, TeamLeaderboard.objects.get(pk=ranked[0]).team_id],
        )
    assert stale_ranks() == []
    assert ranks(tenant)[:3] == [(2000, 1), (999, 2), (500, 3)]


def test_a_raw_rank_write_is_put_right_by_the_trigger(ranked, tenant):
    with as_the_app(tenant.pk) as cursor:
        cursor.execute("UPDATE team_leaderboards SET rank = 42 WHERE id = %s", [ranked[999]])
    assert stale_ranks() == []
    assert TeamLeaderboard.objects.get(pk=ranked[999]).rank == 1


def test_a_tenants_deletion_leaves_the_other_classs_team_ranks_alone(ranked, tenant, other_tenant):
    Tenant.objects.get(pk=tenant.pk).delete()
    assert stale_ranks() == []
    assert not TeamLeaderboard.objects.filter(tenant_id=tenant.pk).exists()
    assert ranks(other_tenant) == [(150, 1)]
