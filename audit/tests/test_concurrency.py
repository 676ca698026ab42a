"""Concurrent writers of the audit chains and the event store, on real connections.

Every writer is a thread with its own database connection (Django keeps one per
thread), so these tests commit for real: `transaction=True`, and the flush at the end
empties the tables (its TRUNCATE is allowed in the test database, see conftest).
"""

import threading
import time
from importlib import import_module
from itertools import pairwise

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.models import Max

from audit.models import AuditLog, EventStore
from audit.recording import MAX_VERSION_RETRIES, append_event, audit_row, event_row, write_audit
from audit.verify import verify_chain
from vulhub.tests.workers import TIMEOUT, Workers

EVENT_APPEND_LOCK = import_module("audit.migrations.0003_append_only_triggers").EVENT_APPEND_LOCK

pytestmark = pytest.mark.django_db(transaction=True)


def wait(event, what):
    assert event.wait(TIMEOUT), f"timed out waiting for {what}"


# --- (a) audit chain: one link per row, whoever writes -----------------------------------------


def write_rows(barrier, chain_key, worker, n, written):
    barrier.wait(TIMEOUT)
    for i in range(n):
        with transaction.atomic():
            row = audit_row(action="test", tenant_id=chain_key, object_id=worker, object_text=f"{worker}.{i}")
            write_audit(row)
        written.append((worker, i, row.pk))


def run_writers(chain_key, threads=8, rows_each=10):
    barrier = threading.Barrier(threads)
    written = []
    workers = Workers()
    for worker in range(threads):
        workers.start(write_rows, barrier, chain_key, worker, rows_each, written)
    workers.join()
    assert len(written) == threads * rows_each
    return written


def check_chain(chain_key, expected_rows):
    rows = list(
        AuditLog.objects.filter(tenant_id=chain_key)
        .order_by("chain_seq")
        .values_list("chain_seq", "prev_hash", "row_hash", "object_id", "object_text")
    )
    assert len(rows) == expected_rows
    assert [seq for seq, *_ in rows] == list(range(1, expected_rows + 1))  # no gap, no duplicate
    for (_, _, previous_hash, *_), (_, prev_hash, *_) in pairwise(rows):
        assert prev_hash == previous_hash  # no fork: every row chains onto the one before
    assert rows[0][1] == ""
    report = verify_chain(chain_key)
    assert (report.rows, report.broken) == (expected_rows, None)
    return rows


def assert_writers_interleaved(rows):
    """Evidence that the writers overlapped: the chain switches writer more often than once per writer."""
    writers = [object_id for *_, object_id, _ in rows]
    switches = sum(1 for a, b in pairwise(writers) if a != b)
    assert switches > len(set(writers)) - 1


def assert_each_writer_in_its_own_order(rows):
    by_writer = {}
    for *_, object_id, text in rows:
        by_writer.setdefault(object_id, []).append(int(text.split(".")[1]))
    assert all(order == sorted(order) for order in by_writer.values())


def test_concurrent_writers_of_one_tenant_never_fork_its_chain(tenant):
    """8 writers x 10 rows, a transaction each, onto a chain that already has a head."""
    assert AuditLog.objects.filter(tenant_id=tenant.pk).count() == 1  # the tenant's creation

    run_writers(tenant.pk)

    assert AuditLog.objects.filter(tenant_id=tenant.pk, action="test").count() == 80
    rows = check_chain(tenant.pk, expected_rows=81)
    test_rows = rows[1:]
    assert [r[0] for r in test_rows] == list(range(2, 82))
    assert_writers_interleaved(test_rows)
    assert_each_writer_in_its_own_order(test_rows)
    call_command("verify_audit", "--no-progress")


def test_concurrent_first_writers_of_a_new_chain_create_one_head(tenant):
    """No head yet: all writers race to create it (INSERT ... ON CONFLICT DO NOTHING, then lock)."""
    chain_key = tenant.pk + 1_000_000  # a chain nothing has written to (tenant ids are not constrained)
    assert not AuditLog.objects.filter(tenant_id=chain_key).exists()

    run_writers(chain_key)

    rows = check_chain(chain_key, expected_rows=80)
    assert_writers_interleaved(rows)
    assert_each_writer_in_its_own_order(rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_seq, last_hash FROM audit_chain_heads WHERE chain_key = %s", [chain_key])
        assert cursor.fetchall() == [(80, rows[-1][2])]
    call_command("verify_audit", "--no-progress")


# --- (b) event versions: conflicts are retried ------------------------------------------------


def append_in_own_transaction(tenant_id, worker, appended):
    with transaction.atomic():
        event = append_event(
            event_row(
                event_type="Tested",
                aggregate_type="Test",
                aggregate_id="shared",
                payload={"worker": worker},
                tenant_id=tenant_id,
            )
        )
    appended.append((worker, event.version, event.position))


def test_concurrent_appends_to_one_aggregate_retry_their_version(tenant):
    """Every writer picks version 1 at once; all but one lose that race and must retry.

    The test holds the event append lock (the advisory lock the insert trigger takes)
    on its own connection until all writers wait for it. By then each has read the
    latest version (none: 0) and is inserting version 1; once the lock is released one
    of them gets version 1 and the others conflict. A lost attempt still drew a
    position from the sequence (the trigger runs before the unique check), so the
    positions of the appended events span at least one number per lost attempt.
    """
    writers = MAX_VERSION_RETRIES  # each can lose at most writers - 1 races: within the retries
    appended = []
    workers = Workers()
    gate = connections.create_connection("default")
    try:
        with gate.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert cursor.fetchone()[0] == connection.settings_dict["NAME"]  # the test database
            cursor.execute("BEGIN")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVENT_APPEND_LOCK])
            for worker in range(writers):
                workers.start(append_in_own_transaction, tenant.pk, worker, appended)
            deadline = time.monotonic() + TIMEOUT
            while advisory_lock_waiters() < writers and time.monotonic() < deadline:
                time.sleep(0.01)
            assert advisory_lock_waiters() == writers
            cursor.execute("COMMIT")
    finally:
        gate.close()
    workers.join()  # re-raises the error of a writer that gave up

    events = list(
        EventStore.objects.filter(aggregate_type="Test", aggregate_id="shared").values_list(
            "version", "position", "payload"
        )
    )
    assert sorted(v for v, _, _ in events) == list(range(1, writers + 1))
    assert sorted(p["worker"] for _, _, p in events) == list(range(writers))
    # commit order is version order: the append lock serialises the writers
    assert [v for v, _, _ in sorted(events, key=lambda e: e[1])] == list(range(1, writers + 1))
    assert sorted((v, pos) for _, v, pos in appended) == sorted((v, pos) for v, pos, _ in events)
    # writers - 1 attempts at version 1 lost and were retried
    positions = [pos for _, pos, _ in events]
    assert max(positions) - min(positions) + 1 >= 2 * writers - 1


def test_many_concurrent_appends_to_one_aggregate_keep_versions_unique(tenant):
    """Without forced conflicts: 4 writers x 5 events, each in its own transaction."""
    barrier = threading.Barrier(4)
    appended = []

    def writer(worker):
        barrier.wait(TIMEOUT)
        for _ in range(5):
            append_in_own_transaction(tenant.pk, worker, appended)

    workers = Workers()
    for worker in range(4):
        workers.start(writer, worker)
    workers.join()

    versions = list(
        EventStore.objects.filter(aggregate_type="Test", aggregate_id="shared")
        .order_by("position")
        .values_list("version", flat=True)
    )
    assert versions == list(range(1, 21))
    assert len(appended) == 20


# --- (c), (d) tailing by position ------------------------------------------------------------


def advisory_lock_waiters():
    """Sessions of this database waiting for the event append lock (pg_advisory_xact_lock(bigint))."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND NOT granted
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = 0 AND objid = %s AND objsubid = 1
            """,
            [EVENT_APPEND_LOCK],
        )
        return cursor.fetchone()[0]


def new_event(name):
    return event_row(event_type=name, aggregate_type="Tail", aggregate_id=name, payload={})


def test_tailing_by_position_never_misses_an_event_that_commits_later(tenant):
    """A holds its append open; B appends after it and must wait for A's commit.

    (c) B's append takes the advisory lock in the insert trigger before it draws a
    position, and A holds that lock until it commits. So B cannot draw a position, let
    alone commit, while A is open: B's position is larger than A's and B commits after A.

    (d) Hence a reader can never see B's event before A's. For it to see B, B must have
    committed; B committed after A; a READ COMMITTED statement sees everything committed
    before it started, so it sees A too, and A has the smaller position. The state "A
    open, B committed" cannot occur, so a reader that read max(position) while A was
    open got a value below both (neither had committed), and `position > last_seen`
    later returns A then B. Without the lock, a plain sequence would let B (larger
    position) commit first; the tailing reader below would advance past B and then skip
    A for good, and its record of what it saw would lack A.
    """
    last_seen = EventStore.objects.aggregate(m=Max("position"))["m"] or 0
    a_appended, a_may_commit, b_started, b_done = (threading.Event() for _ in range(4))
    positions = {}
    tailed = []
    stop_tailing = threading.Event()

    def writer_a():
        try:
            with transaction.atomic():
                positions["A"] = append_event(new_event("A")).position
                a_appended.set()
                wait(a_may_commit, "the test to let A commit")
        finally:
            a_appended.set()

    def writer_b():
        wait(a_appended, "A's append")
        b_started.set()
        with transaction.atomic():
            positions["B"] = append_event(new_event("B")).position
        b_done.set()

    def tailer():
        """Polls `position > last_seen` until told to stop, then polls once more."""
        seen = last_seen
        while True:
            final = stop_tailing.is_set()
            for position, name in EventStore.objects.filter(position__gt=seen).values_list("position", "event_type"):
                tailed.append((position, name))
                seen = position
            if final:
                return
            time.sleep(0.005)

    workers = Workers()
    try:
        workers.start(writer_a)
        wait(a_appended, "A's append")
        assert "A" in positions
        workers.start(tailer)
        workers.start(writer_b)
        wait(b_started, "B to start")

        # while A is open: is B waiting for the append lock, has it finished, what does a reader see?
        deadline = time.monotonic() + 3
        while advisory_lock_waiters() == 0 and not b_done.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        b_waiting = advisory_lock_waiters()
        b_finished_while_a_open = b_done.wait(0.3)
        max_while_a_open = EventStore.objects.aggregate(m=Max("position"))["m"] or 0
        new_while_a_open = list(EventStore.objects.filter(position__gt=last_seen).values_list("event_type", flat=True))

        a_may_commit.set()
        wait(b_done, "B to commit")
    finally:
        a_may_commit.set()
        stop_tailing.set()
        workers.join()

    assert positions["A"] < positions["B"]
    # (d) the tailing reader saw both, A first, in position order: nothing was skipped
    assert tailed == [(positions["A"], "A"), (positions["B"], "B")]
    # (c) B blocked on the lock A held, and had not finished while A was open
    assert b_waiting == 1
    assert not b_finished_while_a_open
    # a reader saw neither while A was open; starting from that max it now sees A then B
    assert (max_while_a_open, new_while_a_open) == (last_seen, [])
    assert list(EventStore.objects.filter(position__gt=max_while_a_open).values_list("event_type", flat=True)) == [
        "A",
        "B",
    ]


def test_an_aggregate_that_loses_part_of_its_events_fails_the_transaction_to_be_retried(tenant):
    """Two events of one aggregate in one call; a rival commits version 1 meanwhile.

    Appending the second alone would put it before the first: audit_record() raises a
    serialization failure instead (an OperationalError, answered 503 in a request), and
    the transaction that tried commits nothing.
    """
    from django.db import OperationalError

    from audit.recording import in_bulk

    def two_events():
        with in_bulk():
            for n in (1, 2):
                append_event(
                    event_row(
                        event_type="Tested",
                        aggregate_type="Test",
                        aggregate_id="raced",
                        payload={"n": n},
                        tenant_id=tenant.pk,
                    )
                )

    workers = Workers()
    rival = connections.create_connection("default")
    try:
        with rival.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "SELECT * FROM audit_record(NULL, jsonb_build_array(jsonb_build_object("
                "'tenant_id', %s, 'aggregate_type', 'Test', 'aggregate_id', 'raced', 'event_type', 'Rival',"
                "'payload', '{}'::jsonb, 'occurred_at', now())))",
                [tenant.pk],
            )
            workers.start(two_events)  # reads version 0, then waits for the rival's append lock
            deadline = time.monotonic() + TIMEOUT
            while advisory_lock_waiters() < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert advisory_lock_waiters() == 1
            cursor.execute("COMMIT")
    finally:
        rival.close()
    with pytest.raises(OperationalError, match="concurrent writer took versions .* Test raced has several events"):
        workers.join()

    events = EventStore.objects.filter(aggregate_type="Test", aggregate_id="raced")
    assert list(events.values_list("version", "event_type")) == [(1, "Rival")]  # the loser left nothing
