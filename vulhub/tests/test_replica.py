"""Pages that only read come from a streaming replica; writers, and all while it lags or is down, read the primary.

VulHub runs under gunicorn as the app role with DATABASE_URL on a primary of the test's
own and REPLICA_DATABASE_URL on a real hot standby of it (vulhub/lib/replica.py). Which
server answered shows in the data: replay is paused on the standby, a badge is renamed
on the primary, and a page that names the badge shows the old name only if the replica
made it.
"""

import psycopg
import pytest

from challenges.factories import ProjectFactory
from scoring.factories import BadgeFactory
from tenants.factories import StudentFactory, TenantFactory
from vulhub.lib import replica
from vulhub.ops.db_roles import app_role_name

from .replica_servers import (
    Browser,
    primary_and_standby,
    rename_the_badge_on_the_primary_only,
    seen_caught_up,
    site_on,
    wait_until,
)
from .servers import session_for

FLAG = "FLAG{read-your-writes}"


@pytest.fixture
def school(transactional_db):
    """A class (and another tenant's badge), with two signed-in students: what the copies start from."""
    tenant = TenantFactory(slug="replicated", domain="replicated.localhost")
    other = TenantFactory(slug="elsewhere", domain="elsewhere.localhost")
    BadgeFactory(tenant=tenant, name="Old name", slug="renamed")
    BadgeFactory(tenant=other, name="Another school's badge", slug="theirs")
    ProjectFactory(tenant=tenant, slug="pinned-flag", name="Pinned flag", flag=FLAG)
    writer, reader = StudentFactory(tenant=tenant), StudentFactory(tenant=tenant)
    return {
        "host": tenant.domain,
        "writer": session_for(writer, tenant.domain),
        "reader": session_for(reader, tenant.domain),
    }


def browser(port: int, school: dict, who: str) -> Browser:
    return Browser(port, school["host"], {"sessionid": school[who]})


def test_reads_come_from_the_replica_and_a_writer_reads_what_they_wrote(school):
    with (
        primary_and_standby() as pair,
        site_on(pair) as port,  # never too far behind here: only a write moves a reader
    ):
        writer, reader = browser(port, school, "writer"), browser(port, school, "reader")
        status, page = reader.request("/badges/")
        assert status == 200 and "Old name" in page
        # row-level security holds on the replica: the other school's badge is not there
        assert "Another school" not in page

        seen_caught_up(reader, pair)
        rename_the_badge_on_the_primary_only(pair)
        status, page = reader.request("/badges/")
        assert status == 200 and "Old name" in page and "New name" not in page  # the replica made it

        # an answer: a write, on the primary; the browser is pinned there for a while
        status, _ = writer.request("/challenges/pinned-flag/", form={"flag": FLAG})
        assert status == 302
        assert replica.PIN_COOKIE in writer.cookies
        status, page = writer.request("/challenges/pinned-flag/")
        assert status == 200 and "Correct!" in page  # the solve, though the replica never saw it
        status, page = writer.request("/badges/")
        assert status == 200 and "New name" in page  # every page of theirs comes from the primary
        status, page = writer.request("/submissions/")
        assert status == 200 and "Pinned flag" in page

        # the reader wrote nothing: still the replica; a pin whose moment has passed is no pin
        reader.cookies[replica.PIN_COOKIE] = "1000"
        assert "Old name" in reader.request("/badges/")[1]


def test_a_replica_further_behind_than_the_limit_is_left_for_the_primary(school):
    with (
        primary_and_standby() as pair,
        site_on(pair, REPLICA_MAX_LAG_SECONDS="1") as port,
    ):
        reader = browser(port, school, "reader")
        assert "Old name" in reader.request("/badges/")[1]
        seen_caught_up(reader, pair)
        rename_the_badge_on_the_primary_only(pair)
        # once the rename is more than a second old and still not replayed, the primary answers
        wait_until(lambda: "New name" in reader.request("/badges/")[1], "the lagging replica to be left")
        # replay resumes: the replica catches up and serves again (the rename is there now)
        pair.replay(paused=False)
        pair.caught_up()
        status, page = reader.request("/badges/")
        assert status == 200 and "New name" in page


def test_a_replica_that_stops_costs_no_error_and_is_used_again_when_back(school):
    with (
        primary_and_standby() as pair,
        site_on(pair, REPLICA_RETRY_SECONDS="1") as port,
    ):
        reader = browser(port, school, "reader")
        assert reader.request("/badges/")[0] == 200  # a connection to the replica is open now

        pair.standby.stop("fast")
        for path in ("/badges/", "/leaderboard/", "/challenges/", "/"):
            status, page = reader.request(path)
            assert status == 200, (path, status, page[-500:])
        assert "Old name" in reader.request("/badges/")[1]

        pair.standby.start()
        pair.caught_up()
        rename_the_badge_on_the_primary_only(pair)
        # back after REPLICA_RETRY_SECONDS: the page shows what only the replica has
        wait_until(lambda: "Old name" in reader.request("/badges/")[1], "the replica to be used again")


def test_the_app_role_on_the_replica_sees_no_tenant_rows_without_a_sealed_context(school):
    """The standby has the primary's roles and policies: its own login finds the tenant tables empty."""
    with (
        primary_and_standby() as pair,
        psycopg.connect(pair.standby.conninfo(pair.name, user=app_role_name()), autocommit=True) as conn,
    ):
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        for table in ("badges", "projects", "users", "tenants"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table  # noqa: S608
        # and it cannot write a context of its own that verifies
        conn.execute("BEGIN")
        conn.execute("SELECT set_config('vulhub.tenant', '1:forged', true)")
        assert conn.execute("SELECT count(*) FROM badges").fetchone()[0] == 0
        conn.execute("ROLLBACK")


def test_the_default_replica_views_all_name_pages_and_a_typo_is_a_warning(settings):
    from vulhub import checks

    settings.REPLICA_DATABASE_URL = "postgres://vulhub_app@127.0.0.1:5432/anything"
    assert checks.check_replica_views(None) == []
    settings.REPLICA_VIEWS = [*settings.REPLICA_VIEWS, "leaderbord", "scoring:*"]
    [warning] = checks.check_replica_views(None)
    assert warning.id == "vulhub.W030" and "leaderbord" in warning.msg and "scoring:*" not in warning.msg


def test_a_pin_is_a_moment_ahead_and_anything_else_is_no_pin(rf):
    now = 1_000_000
    for value, expected in (("1000060", True), ("1000000", False), ("999", False), ("", False), ("-5", False),
                            ("1e9", False), ("\xb2", False), ("1" * 40, True)):  # fmt: skip
        request = rf.get("/", HTTP_COOKIE=f"{replica.PIN_COOKIE}={value}")
        assert replica.pinned(request, now=now) is expected, value
