"""The four composite indexes of the design: present, and chosen by the planner.

Each plan test fills its table with set-based SQL (thousands of rows in one
statement), runs ANALYZE and asks PostgreSQL for the plan of the query the index
is there for. ANALYZE runs as the tables' owner (the app role may not), so the
planner has real statistics on 15 and 16 alike. Nothing is forced: sequential scans
stay enabled.
"""

import json

import pytest
from django.db import connection

from tenants import rls
from vulhub.ops.db_roles import use_role

pytestmark = pytest.mark.django_db

TENANTS = 4
USERS = 2_000
DIFFICULTIES = ["BEGINNER", "INTERMEDIATE", "ADVANCED", "EXPERT"]


def execute(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def plan_index_names(sql, params):
    """Names of every index the plan of `sql` scans."""
    (raw,) = execute(f"EXPLAIN (FORMAT JSON) {sql}", params)[0]
    document = json.loads(raw) if isinstance(raw, str) else raw

    def walk(node):
        if "Index Name" in node:
            yield node["Index Name"]
        for child in node.get("Plans", []):
            yield from walk(child)

    return set(walk(document[0]["Plan"]))


def analyze(table):
    # ANALYZE needs the table's owner: as the app role it only warns and skips the table,
    # leaving the planner to guess from no statistics (and guess differently on 15 and 16).
    with use_role("owner"):
        execute(f'ANALYZE "{table}"')
    (analyzed,) = execute("SELECT reltuples > 0 FROM pg_class WHERE oid = %s::regclass", [table])[0]
    assert analyzed, f"{table} has no statistics after ANALYZE"


def count(table):
    return execute(f'SELECT count(*) FROM "{table}"')[0][0]


@pytest.fixture
def tenant_ids(db):
    rows = execute(
        """
        INSERT INTO tenants (name, slug, domain, settings, registration_mode, is_active, created_at, updated_at)
        SELECT 'School ' || g, 'bulk-' || g, 'bulk-' || g || '.localhost', '{}'::jsonb, 'OPEN', true, now(), now()
        FROM generate_series(1, %s) AS g
        RETURNING id
        """,
        [TENANTS],
    )
    return [row[0] for row in rows]


@pytest.fixture
def student_ids(tenant_ids):
    """USERS students spread evenly over the tenants."""
    execute(
        """
        INSERT INTO users (tenant_id, password, is_superuser, email, first_name, last_name, role,
                           is_active, date_joined)
        SELECT (%(tenants)s::bigint[])[1 + mod(g, cardinality(%(tenants)s::bigint[]))],
               '!', false, 'student' || g || '@example.test', 'Student', 'No ' || g, 'STUDENT', true, now()
        FROM generate_series(1, %(users)s) AS g
        """,
        {"tenants": tenant_ids, "users": USERS},
    )
    analyze("users")
    return [row[0] for row in execute("SELECT id FROM users WHERE tenant_id = ANY(%s) ORDER BY id", [tenant_ids])]


@pytest.fixture
def submissions(tenant_ids, student_ids):
    """50 challenges; every student tries each challenge of their tenant twice (50,000 rows).

    The first attempt is rejected; the second is approved, or pending for one in twenty.
    """
    execute(
        """
        INSERT INTO projects (tenant_id, name, slug, description, category, difficulty, points,
                              flag_hash, is_published, created_at, updated_at)
        SELECT (%(tenants)s::bigint[])[1 + mod(g, cardinality(%(tenants)s::bigint[]))],
               'Challenge ' || g, 'challenge-' || g, '', 'Web Security', 'BEGINNER', 100, '', true, now(), now()
        FROM generate_series(1, 50) AS g
        """,
        {"tenants": tenant_ids},
    )
    execute(
        """
        INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, score, points_awarded,
                                 answer, link, feedback, submitted_at)
        SELECT tenant_id, user_id, project_id, 'WRITEUP', status,
               CASE status WHEN 'PENDING' THEN NULL WHEN 'REJECTED' THEN 0 ELSE 100 END,
               CASE status WHEN 'APPROVED' THEN 100 ELSE 0 END,
               '', '', '', now()
        FROM (
            SELECT u.tenant_id, u.id AS user_id, p.id AS project_id,
                   CASE WHEN attempt = 1 THEN 'REJECTED'
                        WHEN mod(abs(hashtext(u.id || ':' || p.id)), 20) = 0 THEN 'PENDING'
                        ELSE 'APPROVED' END AS status
            FROM users AS u
            JOIN projects AS p ON p.tenant_id = u.tenant_id
            CROSS JOIN generate_series(1, 2) AS attempt
            WHERE u.tenant_id = ANY(%s)
        ) AS attempts
        """,
        [tenant_ids],
    )
    analyze("submissions")
    assert count("submissions") == 50_000


@pytest.fixture
def catalogue(tenant_ids):
    """20,000 challenges over 20 categories x 4 difficulties, imported category by category."""
    execute(
        """
        INSERT INTO projects (tenant_id, name, slug, description, category, difficulty, points,
                              flag_hash, is_published, created_at, updated_at)
        SELECT (%(tenants)s::bigint[])[1 + mod(g, cardinality(%(tenants)s::bigint[]))],
               'Catalogue entry ' || g, 'catalogue-' || g,
               repeat('Exploit the vulnerable form and capture the flag. ', 6),
               'Category ' || ((g - 1) / 1000),
               (%(difficulties)s::text[])[1 + mod((g - 1) / 250, 4)],
               100, '', true, now(), now()
        FROM generate_series(1, 20000) AS g
        """,
        {"tenants": tenant_ids, "difficulties": DIFFICULTIES},
    )
    analyze("projects")
    assert count("projects") == 20_000


@pytest.fixture
def user_badges(tenant_ids, student_ids):
    """Ten badges per tenant, each held by every student of the tenant (20,000 rows)."""
    execute(
        """
        INSERT INTO badges (tenant_id, name, slug, description, icon, rule_kind, rule_params, created_at)
        SELECT t, 'Badge ' || g, 'badge-' || g, '', 'star', '', '{}'::jsonb, now()
        FROM unnest(%s::bigint[]) AS t CROSS JOIN generate_series(1, 10) AS g
        """,
        [tenant_ids],
    )
    execute(
        """
        INSERT INTO user_badges (tenant_id, user_id, badge_id, awarded_at)
        SELECT u.tenant_id, u.id, b.id, now()
        FROM users AS u JOIN badges AS b ON b.tenant_id = u.tenant_id
        WHERE u.tenant_id = ANY(%s)
        """,
        [tenant_ids],
    )
    analyze("user_badges")
    assert count("user_badges") == 20_000


def a_student(student_ids):
    user_id = student_ids[len(student_ids) // 2]
    (tenant_id,) = execute("SELECT tenant_id FROM users WHERE id = %s", [user_id])[0]
    return user_id, tenant_id


@pytest.mark.parametrize(
    ("name", "table", "columns"),
    [
        ("idx_submissions_user_tenant", "submissions", ["user_id", "tenant_id"]),
        ("idx_submissions_project_status", "submissions", ["project_id", "status"]),
        ("idx_projects_category_difficulty", "projects", ["category", "difficulty"]),
        ("idx_user_badges_user_tenant", "user_badges", ["user_id", "tenant_id"]),
        ("idx_user_badges_recent", "user_badges", ["tenant_id", "awarded_at"]),
        ("idx_submissions_solves", "submissions", ["tenant_id", "project_id"]),
    ],
)
def test_index_exists_on_its_columns_in_order(name, table, columns):
    assert execute(
        "SELECT tablename FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s", [name]
    ) == [(table,)]
    indexed = execute(
        """
        SELECT a.attname
        FROM pg_class AS c
        JOIN pg_index AS i ON i.indexrelid = c.oid
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE c.relname = %s
        ORDER BY k.ord
        """,
        [name],
    )
    assert [row[0] for row in indexed] == columns


def test_a_students_submissions_are_found_through_idx_submissions_user_tenant(student_ids, submissions):
    user_id, tenant_id = a_student(student_ids)
    sql = "SELECT id, status, score FROM submissions WHERE user_id = %s AND tenant_id = %s"

    assert len(execute(sql, [user_id, tenant_id])) in (24, 26)
    assert "idx_submissions_user_tenant" in plan_index_names(sql, [user_id, tenant_id])


def test_a_challenges_grading_queue_is_found_through_idx_submissions_project_status(submissions):
    (project_id,) = execute("SELECT project_id FROM submissions WHERE status = 'PENDING' LIMIT 1")[0]
    sql = "SELECT id, user_id FROM submissions WHERE project_id = %s AND status = 'PENDING'"

    assert 0 < len(execute(sql, [project_id])) < 100
    assert "idx_submissions_project_status" in plan_index_names(sql, [project_id])


def test_a_challenges_solves_are_counted_from_idx_submissions_solves_under_row_level_security(submissions):
    """The catalogue's count, as the app role sees it: the policy adds the tenant, which this index holds."""
    (project_id, tenant_id) = execute(
        "SELECT project_id, tenant_id FROM submissions WHERE status = 'APPROVED' LIMIT 1"
    )[0]
    sql = "SELECT count(*) FROM submissions WHERE project_id = %s AND status = 'APPROVED'"

    with rls.tenant_context(tenant_id):
        assert execute(sql, [project_id])[0][0] > 0
        assert "idx_submissions_solves" in plan_index_names(sql, [project_id])


def test_the_catalogue_filter_uses_idx_projects_category_difficulty(catalogue):
    sql = "SELECT id, name, points FROM projects WHERE category = %s AND difficulty = %s"
    params = ["Category 7", "ADVANCED"]

    assert len(execute(sql, params)) == 250
    assert "idx_projects_category_difficulty" in plan_index_names(sql, params)


def test_a_students_badges_are_found_through_idx_user_badges_user_tenant(student_ids, user_badges):
    """uniq_user_badges_user_badge (tenant_id, user_id, badge_id) serves this too.

    Under row-level security the planner picks either, both on (tenant, user): the plan
    must use one of them, never a scan of the table.
    """
    user_id, tenant_id = a_student(student_ids)
    sql = "SELECT badge_id, awarded_at FROM user_badges WHERE user_id = %s AND tenant_id = %s"

    with rls.tenant_context(tenant_id):  # as a request runs it: under the tenant's row-level security
        assert len(execute(sql, [user_id, tenant_id])) == 10
        used = plan_index_names(sql, [user_id, tenant_id])
    assert used & {"idx_user_badges_user_tenant", "uniq_user_badges_user_badge"}, used
