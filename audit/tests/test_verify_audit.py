"""The audit hash chains and `verify_audit`, which finds the first broken link of each.

Tampering is simulated as the table owner would do it: by switching off the
append-only trigger inside the test's transaction (rolled back at the end of the test).
"""

import re
from itertools import pairwise

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

import audit.verify
from audit.context import acting_as
from audit.models import AuditChainHead, AuditLog
from audit.verify import verify_chain
from challenges.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True, params=["one range", "ranges of 2 links"])
def range_links(request, monkeypatch):
    """Every test runs twice: chains checked in one range, and cut into ranges of two links
    (so breaks fall on, just after and inside range boundaries)."""
    if request.param == "ranges of 2 links":
        monkeypatch.setattr(audit.verify, "RANGE_LINKS", 2)


HEX64 = re.compile(r"[0-9a-f]{64}")


def execute(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def sql_row_hash(row_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT audit_logs_row_hash(a) FROM audit_logs a WHERE id = %s", [row_id])
        return cursor.fetchone()[0]


def chain(tenant):
    return list(AuditLog.objects.filter(tenant_id=tenant.pk).order_by("chain_seq"))


@pytest.fixture
def verify(capsys):
    """Run verify_audit; return everything it printed (captured at sys.stdout/sys.stderr)."""
    capsys.readouterr()

    def run(*args):
        call_command("verify_audit", "--no-progress", *args)
        captured = capsys.readouterr()
        return captured.out + captured.err

    return run


@pytest.fixture
def verify_fails(capsys):
    """Run verify_audit expecting a broken chain; return its error message and what it printed."""
    capsys.readouterr()

    def run(*args):
        with pytest.raises(CommandError) as excinfo:
            call_command("verify_audit", "--no-progress", *args)
        assert excinfo.value.returncode == 1
        captured = capsys.readouterr()
        return str(excinfo.value), captured.out + captured.err

    return run


def tamper():
    """What only the table owner can do: switch the append-only trigger off (until rollback)."""
    execute("SET LOCAL ROLE NONE")  # the tests log in as the owner and act as the app role
    execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only")


@pytest.fixture
def chains(tenant, instructor, other_tenant):
    """Audit rows in two tenants' chains.

    alpha: tenant, instructor, two projects created, both updated (6 rows);
    beta: tenant, project created and updated (3 rows).
    """
    with acting_as(instructor):
        first = ProjectFactory(tenant=tenant, name="First")
        second = ProjectFactory(tenant=tenant, name="Second")
        first.name = "First, renamed"
        first.save()
        second.points = 250
        second.save()
    other = ProjectFactory(tenant=other_tenant, name="Other")
    other.name = "Other, renamed"
    other.save()
    alpha, beta = chain(tenant), chain(other_tenant)
    assert (len(alpha), len(beta)) == (6, 3)
    return {"alpha": alpha, "beta": beta}


# --- the chain on fresh rows -----------------------------------------------------------------


def test_fresh_rows_form_one_hash_chain_per_tenant(chains, tenant, other_tenant):
    for rows in chains.values():
        assert [r.chain_seq for r in rows] == list(range(1, len(rows) + 1))
        assert rows[0].prev_hash == ""
        for previous, row in pairwise(rows):
            assert row.prev_hash == previous.row_hash
        for row in rows:
            assert HEX64.fullmatch(row.row_hash), row.row_hash
            assert row.row_hash == sql_row_hash(row.id)
        assert len({r.row_hash for r in rows}) == len(rows)

    for t, rows in ((tenant, chains["alpha"]), (other_tenant, chains["beta"])):
        head = AuditChainHead.objects.get(chain_key=t.pk)
        assert (head.last_seq, head.last_hash) == (rows[-1].chain_seq, rows[-1].row_hash)


def test_the_hash_covers_the_row_content(chains):
    row = chains["alpha"][2]
    tamper()
    execute("UPDATE audit_logs SET object_text = object_text || '!' WHERE id = %s", [row.id])
    assert sql_row_hash(row.id) != row.row_hash


def test_intact_chains_verify(chains, verify):
    output = verify()

    assert "All 2 audit chain(s) intact: 9 rows checked." in output
    assert "ok     alpha: 6 rows" in output
    assert "ok     beta: 3 rows" in output
    assert "BROKEN" not in output


def test_verify_chain_of_an_intact_chain(chains, tenant):
    seen = []
    report = verify_chain(tenant.pk, on_rows=seen.append)
    assert (report.chain, report.rows, report.broken) == (tenant.pk, 6, None)
    assert sum(seen) == 6


# --- tampering ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment",
    [
        "object_text = 'Nothing happened here'",
        """changes = '{"name": ["First", "Something else"]}'::jsonb""",
        "actor_text = 'someone-else@alpha.test'",
        "created_at = created_at - interval '1 day'",
    ],
)
def test_an_edited_row_is_reported(chains, assignment, verify_fails):
    edited = chains["alpha"][4]
    assert (edited.action, edited.chain_seq) == ("update", 5)
    tamper()
    assert execute(f"UPDATE audit_logs SET {assignment} WHERE id = %s", [edited.id]) == 1

    message, printed = verify_fails()

    assert f"row id {edited.id} (link 5)" in message
    assert "edited" in message
    assert message.startswith("1 of 2 audit chain(s) broken (9 rows checked)")
    assert f"BROKEN alpha: chain {edited.tenant_id}: row id {edited.id}" in printed
    assert "ok     beta: 3 rows" in printed


def test_verify_chain_finds_the_first_broken_row(chains, tenant):
    rows = chains["alpha"]
    tamper()
    execute("UPDATE audit_logs SET object_text = 'x' WHERE id = ANY(%s)", [[rows[2].id, rows[4].id]])

    report = verify_chain(tenant.pk)

    assert report.rows == 6  # counts on past the break
    assert report.broken is not None
    assert (report.broken.chain, report.broken.row_id, report.broken.chain_seq) == (tenant.pk, rows[2].id, 3)
    assert report.broken.problem.startswith("edited")


def test_a_deleted_middle_row_breaks_the_link_of_the_next(chains, tenant, verify_fails):
    rows = chains["alpha"]
    tamper()
    assert execute("DELETE FROM audit_logs WHERE id = %s", [rows[2].id]) == 1

    message, _ = verify_fails()

    assert f"row id {rows[3].id} (link 4)" in message
    assert "expected link 3: rows before it were deleted or reordered" in message
    report = verify_chain(tenant.pk)
    assert (report.rows, report.broken.row_id) == (5, rows[3].id)


def test_a_deleted_middle_row_with_the_chain_renumbered_is_caught_by_the_hash_links(chains, verify_fails):
    """Closing the gap in chain_seq is not enough: the next row still points at the deleted one."""
    rows = chains["alpha"]
    tamper()
    execute("DELETE FROM audit_logs WHERE id = %s", [rows[2].id])
    for row in rows[3:]:
        execute("UPDATE audit_logs SET chain_seq = chain_seq - 1 WHERE id = %s", [row.id])

    message, _ = verify_fails()

    assert f"row id {rows[3].id} (link 3)" in message
    assert "does not chain onto the row before it (deleted or reordered)" in message


def test_swapped_rows_are_reported(chains, tenant, verify_fails):
    rows = chains["alpha"]
    a, b = rows[1], rows[2]
    tamper()
    # uniq_audit_logs_chain_seq is checked row by row: go through a free value
    execute("UPDATE audit_logs SET chain_seq = -1 WHERE id = %s", [a.id])
    execute("UPDATE audit_logs SET chain_seq = %s WHERE id = %s", [a.chain_seq, b.id])
    execute("UPDATE audit_logs SET chain_seq = %s WHERE id = %s", [b.chain_seq, a.id])
    assert [r.id for r in chain(tenant)] == [rows[0].id, b.id, a.id, *[r.id for r in rows[3:]]]

    message, _ = verify_fails()

    assert f"row id {b.id} (link 2)" in message
    assert "reordered" in message


def test_rows_deleted_at_the_end_are_reported(chains, tenant, verify_fails):
    rows = chains["alpha"]
    tamper()
    assert execute("DELETE FROM audit_logs WHERE id = %s", [rows[-1].id]) == 1

    message, _ = verify_fails()

    assert "end of chain" in message
    assert "ends at link 5 but its head says 6: rows at the end were deleted" in message
    assert verify_chain(tenant.pk).broken.row_id is None


def test_a_whole_chain_deleted_is_reported(chains, tenant, verify_fails):
    tamper()
    assert execute("DELETE FROM audit_logs WHERE tenant_id = %s", [tenant.pk]) == 6

    message, _ = verify_fails()

    assert "ends at link 0 but its head says 6: rows at the end were deleted" in message


def test_a_break_in_one_chain_does_not_fail_the_other_tenant(chains, verify, verify_fails):
    tamper()
    execute("UPDATE audit_logs SET object_text = 'x' WHERE id = %s", [chains["alpha"][1].id])

    output = verify("--tenant", "beta")
    assert "All 1 audit chain(s) intact: 3 rows checked." in output
    assert "ok     beta: 3 rows" in output
    assert "alpha" not in output

    message, _ = verify_fails("--tenant", "alpha")
    assert message.startswith("1 of 1 audit chain(s) broken (6 rows checked)")
    assert f"row id {chains['alpha'][1].id}" in message


def test_an_unknown_tenant_is_a_clear_error(chains, verify):
    with pytest.raises(CommandError, match=r"^No tenant with slug 'unknown'\.$"):
        verify("--tenant", "unknown")


@pytest.mark.django_db
def test_moving_text_between_neighbouring_fields_is_detected(tenant):
    """Each field is hashed as a JSON array element, so a separator inside a value cannot shift text."""
    from audit.recording import audit_row, write_audit

    write_audit(audit_row(action="create", tenant_id=tenant.pk, object_id="7", object_text="Intro\x1fcrypto"))
    row = AuditLog.objects.filter(tenant_id=tenant.pk).order_by("chain_seq").last()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE NONE")  # the owner
        cursor.execute("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only")
        cursor.execute(
            "UPDATE audit_logs SET object_id = %s, object_text = %s WHERE id = %s", ["7\x1fIntro", "crypto", row.pk]
        )

    report = verify_chain(tenant.pk)

    assert report.broken is not None
    assert report.broken.row_id == row.pk
    assert "edited" in report.broken.problem


def insert_audit_rows(tenant, n):
    execute(
        # as the recorder writes them (marked: audit migration 0009), in bulk
        """WITH recorder AS (SELECT set_config('vulhub.recording', 'on', true))
           INSERT INTO audit_logs (tenant_id, actor_text, action, object_type, object_id, object_text, changes,
                                   user_agent, request_id, created_at)
           SELECT %s, '', 'create', 'tests.row', g::text, 'row', '{}', '', 'bulk', now()
           FROM recorder, generate_series(1, %s) g""",
        [tenant.pk, n],
    )


def test_a_big_insert_links_every_row_and_moves_the_head_once(tenant, verify):
    """Thousands of rows in one statement and one transaction: one unbroken chain, head at its end."""
    start = AuditChainHead.objects.get(chain_key=tenant.pk).last_seq
    insert_audit_rows(tenant, 5000)
    insert_audit_rows(tenant, 3000)
    rows = chain(tenant)
    assert [r.chain_seq for r in rows] == list(range(1, start + 8001))
    for before, after in pairwise(rows):
        assert after.prev_hash == before.row_hash
    head = AuditChainHead.objects.get(chain_key=tenant.pk)
    assert (head.last_seq, head.last_hash) == (rows[-1].chain_seq, rows[-1].row_hash)
    assert "intact" in verify("--tenant", tenant.slug)


def test_rows_of_a_rolled_back_savepoint_leave_no_gap(tenant, verify):
    insert_audit_rows(tenant, 10)
    with pytest.raises(RuntimeError), transaction.atomic():
        insert_audit_rows(tenant, 10)
        raise RuntimeError("roll the savepoint back")
    insert_audit_rows(tenant, 10)
    rows = chain(tenant)
    assert [r.chain_seq for r in rows] == list(range(1, len(rows) + 1))
    head = AuditChainHead.objects.get(chain_key=tenant.pk)
    assert head.last_seq == rows[-1].chain_seq
    assert "intact" in verify("--tenant", tenant.slug)


@pytest.mark.django_db(transaction=True)
def test_jobs_check_committed_chains_on_several_connections(tenant, other_tenant, verify, verify_fails):
    """--jobs N: ranges go to worker threads, each on its own connection, and still find the break."""
    insert_audit_rows(tenant, 30)
    insert_audit_rows(other_tenant, 7)
    total = AuditLog.objects.count()
    assert f"intact: {total} rows checked" in verify("--jobs", "2")
    edited = chain(tenant)[12]
    with transaction.atomic():  # committed for the worker connections to see, the guard back on
        tamper()
        execute("UPDATE audit_logs SET object_text = 'changed' WHERE id = %s", [edited.id])
        execute("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only")

    message, printed = verify_fails("--jobs", "2")

    assert f"row id {edited.id} (link {edited.chain_seq})" in message
    assert "edited" in message
    assert f"({total} rows checked)" in message


def test_jobs_must_be_positive():
    with pytest.raises(CommandError, match="--jobs must be at least 1"):
        call_command("verify_audit", "--jobs", "0")


# --- hash versions (migration audit 0007) -----------------------------------------------------


def hashes(row_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.hash_version, a.row_hash, audit_logs_row_hash_v1(a), audit_logs_row_hash_v2(a)"
            " FROM audit_logs a WHERE id = %s",
            [row_id],
        )
        return cursor.fetchone()


def test_rows_written_before_version_2_keep_verifying_beside_new_ones(tenant, verify, verify_fails):
    # what the rows of a database migrated from version 1 look like: hash_version 1
    execute(
        """WITH recorder AS (SELECT set_config('vulhub.recording', 'on', true))
           INSERT INTO audit_logs (tenant_id, actor_text, action, object_type, object_id, object_text, changes,
                                   user_agent, request_id, created_at, hash_version)
           SELECT %s, '', 'create', 'tests.row', g::text, 'old row', '{"a": [1, 2]}', '', 'v1', now(), 1
           FROM recorder, generate_series(1, 3) g""",
        [tenant.pk],
    )
    insert_audit_rows(tenant, 3)
    rows = [r for r in chain(tenant) if r.object_type == "tests.row"]

    assert [r.hash_version for r in rows] == [1, 1, 1, 2, 2, 2]
    for row in rows:
        version, stored, v1, v2 = hashes(row.id)
        assert stored == (v1 if version == 1 else v2)
        assert v1 != v2
    assert rows[3].prev_hash == rows[2].row_hash  # the first new row chains onto the last old one
    assert "All 1 audit chain(s) intact" in verify()

    tamper()
    execute("UPDATE audit_logs SET hash_version = 1 WHERE id = %s", [rows[4].id])
    message, _ = verify_fails()
    assert f"row id {rows[4].id} (link {rows[4].chain_seq})" in message and "edited" in message


def test_an_unknown_hash_version_is_refused():
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        execute(
            "INSERT INTO audit_logs (actor_text, action, object_type, object_id, object_text, changes, user_agent,"
            " request_id, created_at, hash_version) VALUES ('', 'x', '', '', '', '{}', '', '', now(), 3)"
        )


def test_the_version_2_hash_depends_on_no_session_setting(chains):
    row = chains["alpha"][3]
    execute("SET LOCAL TimeZone = 'Pacific/Chatham'")
    execute("SET LOCAL DateStyle = 'SQL, DMY'")
    execute("SET LOCAL extra_float_digits = -3")

    assert hashes(row.id)[3] == row.row_hash


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("7", 'Intro,"crypto'), ('7,"Intro', "crypto")),  # record delimiters inside a value
        (("7", "a)b"), ("7)a", "b")),
        (("7", 'say \\"hi'), ('7\\"', "say hi")),
        (("", "x"), ("x", "")),
    ],
)
def test_version_2_cannot_shift_text_between_fields(tenant, before, after):
    from audit.recording import audit_row, write_audit

    write_audit(audit_row(action="create", tenant_id=tenant.pk, object_id=before[0], object_text=before[1]))
    row = chain(tenant)[-1]
    assert row.hash_version == 2
    tamper()
    execute("UPDATE audit_logs SET object_id = %s, object_text = %s WHERE id = %s", [*after, row.pk])

    report = verify_chain(tenant.pk)

    assert report.broken is not None and report.broken.row_id == row.pk
    assert "edited" in report.broken.problem
