"""The edges of reads from a streaming replica (vulhub/lib/replica.py), found in review.

A promoted standby, a session that ends while its page runs on the replica, a GET that
writes, a query cancelled on the standby, the replica URL's TLS options, a pin shorter
than the lag allowed. They run VulHub under gunicorn as the app role on a primary of the test's own
with a real hot standby (replica_servers.primary_and_standby), as test_replica.py does;
which server made a page shows in its data (replay paused on the standby, a row changed
on the primary).
"""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import redis

from challenges.factories import ProjectFactory
from news.factories import NotificationFactory
from scoring.factories import BadgeFactory
from tenants.factories import StudentFactory, TenantFactory

from .replica_servers import (
    Browser,
    primary_and_standby,
    rename_the_badge_on_the_primary_only,
    seen_caught_up,
    site_on,
    wait_until,
)
from .servers import ROOT, production_environment, session_for


@pytest.fixture
def school(transactional_db):
    """A class with a badge, a challenge and signed-in students, one of them with two unread notifications."""
    tenant = TenantFactory(slug="reviewed", domain="reviewed.localhost")
    BadgeFactory(tenant=tenant, name="Old name", slug="renamed")
    ProjectFactory(tenant=tenant, slug="listed", name="Listed challenge")
    reader, other, told = (StudentFactory(tenant=tenant) for _ in range(3))
    for _ in range(2):
        NotificationFactory(tenant=tenant, user=told)
    return {
        "host": tenant.domain,
        "tenant_id": tenant.pk,
        "reader": session_for(reader, tenant.domain),
        "other": session_for(other, tenant.domain),
        "other_id": other.pk,
        "told": session_for(told, tenant.domain),
    }


def browser(port: int, school: dict, who: str) -> Browser:
    return Browser(port, school["host"], {"sessionid": school[who]})


def serving(pair, **env):
    """The site on the pair; a replica taken for down stays so for the whole test."""
    return site_on(pair, REPLICA_RETRY_SECONDS="600", **env)


def test_it_leaves_a_replica_that_was_promoted(school):
    """A standby promoted on its own (a failover gone half-way) no longer follows the primary: never read it."""
    with primary_and_standby() as pair, serving(pair, REPLICA_MAX_LAG_SECONDS="1") as port:
        reader = browser(port, school, "reader")
        seen_caught_up(reader, pair)
        with pair.standby.connect() as conn:
            assert conn.execute("SELECT pg_promote()").fetchone()[0]
        pair.on_primary("UPDATE badges SET name = 'New name' WHERE slug = 'renamed'")
        # a second is the limit: well after it, the rename must show
        wait_until(lambda: "New name" in reader.request("/badges/")[1], "the promoted server to be left", timeout=15)


def test_a_session_that_no_longer_verifies_does_not_take_the_replica_away(school):
    """A password changed elsewhere ends the other sessions; ending one must not mark the replica as down."""
    with primary_and_standby() as pair, serving(pair) as port:
        reader, other = browser(port, school, "reader"), browser(port, school, "other")
        seen_caught_up(reader, pair)
        # the other student's password changes (on another device): this session of theirs ends
        pair.on_primary("UPDATE users SET password = 'changed elsewhere' WHERE id = %s", [school["other_id"]])
        pair.caught_up()
        rename_the_badge_on_the_primary_only(pair)
        assert "Old name" in reader.request("/badges/")[1]  # the replica serves

        status, _ = other.request("/badges/")
        assert status == 302  # signed out: to the login page

        # the replica is as healthy as before: the reader's next page still comes from it
        assert "Old name" in reader.request("/badges/")[1], pair.standby.log_tail()


def unread(page: str) -> bool:
    return "unread notification" in page


def test_opening_the_notifications_keeps_them_read_on_the_next_pages(school):
    """GET /news/ marks everything read (a write): the next pages must not count them unread again."""
    if os.environ.get("REDIS_URL"):  # our own Redis db: no count of an earlier run (else the database cache)
        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    with primary_and_standby() as pair, serving(pair) as port:
        told = browser(port, school, "told")
        seen_caught_up(told, pair)
        assert ", 2 unread notification" in told.request("/badges/")[1]  # from the replica

        pair.replay(paused=True)  # the standby is a moment behind
        status, page = told.request("/news/")
        assert status == 200 and not unread(page)
        status, page = told.request("/badges/")
        assert status == 200
        seen_at_once = unread(page)

        # once the standby has everything, the count must be right again (within the replica's lag)
        pair.replay(paused=False)
        pair.caught_up()
        page = told.request("/badges/")[1]
        assert not (seen_at_once or unread(page)), (
            f"counted unread again: on the next page {seen_at_once}; after the standby caught up {unread(page)}"
        )


def test_a_query_of_the_page_cancelled_on_the_replica_is_served_again_from_the_primary(school):
    """A query cancelled on the standby (a recovery conflict, a cancel) leaves its connection working: no 500."""
    with primary_and_standby() as pair, serving(pair) as port:
        reader = browser(port, school, "reader")
        seen_caught_up(reader, pair)
        with (
            psycopg.connect(pair.primary.conninfo(pair.name)) as holder,
            pair.standby.connect(pair.name) as standby,
            ThreadPoolExecutor(1) as pool,
        ):
            # a lock replayed on the standby: the page's query of badges waits there
            holder.execute("LOCK TABLE badges IN ACCESS EXCLUSIVE MODE")
            wait_until(lambda: standby.execute(BADGES_LOCKED).fetchone(), "the standby to replay the lock")
            answer = pool.submit(reader.request, "/badges/")
            (pid,) = wait_until(lambda: standby.execute(WAITING, [pair.name]).fetchone(), "the page to wait")
            standby.execute("SELECT pg_cancel_backend(%s)", [pid])  # as a recovery conflict would
            holder.rollback()  # the primary is free for the page served again
            status, page = answer.result()
        assert status == 200 and "Old name" in page, (status, page[-300:])


BADGES_LOCKED = (
    "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
    " WHERE c.relname = 'badges' AND l.mode = 'AccessExclusiveLock'"
)
PRIMARY_URL = "postgres://vulhub_app@127.0.0.1:5432/vulhub"  # only read by the settings: never connected to
WAITING = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"


def settings_of(**env) -> subprocess.CompletedProcess:
    """The replica's database settings as a web process (not a command) reads them from `env`, printed as JSON."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['replica']['OPTIONS'], default=str))"
    )
    environment = production_environment(PRIMARY_URL, DJANGO_SETTINGS_MODULE="vulhub.settings", **env)
    return subprocess.run(  # noqa: S603  (our own interpreter)
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )


def test_the_replica_keeps_the_tls_options_of_its_own_url():
    done = settings_of(
        DATABASE_URL=PRIMARY_URL + "?sslmode=disable",
        REPLICA_DATABASE_URL="postgres://vulhub_app@replica.example:5432/vulhub?sslmode=verify-full&sslrootcert=/ca.pem",
    )
    assert done.returncode == 0, done.stderr
    options = json.loads(done.stdout.strip().splitlines()[-1])
    assert options.get("sslmode") == "verify-full", options
    assert options.get("sslrootcert") == "/ca.pem", options


def test_a_pin_shorter_than_the_replicas_lag_is_flagged(settings):
    """After the pin ends the browser reads a replica up to REPLICA_MAX_LAG_SECONDS behind: it must hold the write."""
    from vulhub import checks

    settings.REPLICA_DATABASE_URL = "postgres://vulhub_app@replica.example:5432/vulhub"
    settings.REPLICA_MAX_LAG_SECONDS, settings.READ_YOUR_WRITES_SECONDS = 30, 15
    [warning] = checks.check_read_your_writes(None)
    assert warning.id == "vulhub.W031" and "READ_YOUR_WRITES_SECONDS (15)" in warning.msg
    settings.REPLICA_MAX_LAG_SECONDS, settings.READ_YOUR_WRITES_SECONDS = 5, 15  # the defaults: fine
    assert checks.check_read_your_writes(None) == []
