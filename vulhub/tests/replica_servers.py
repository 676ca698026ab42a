"""A primary with a streaming hot standby (`pg_basebackup -R`), and a browser that keeps its cookies.

For the tests of reads from a replica (vulhub/lib/replica.py): the primary is a cluster of
the test's own holding a copy of the test database (servers.own_postgres: the app's roles,
grants and row-level security come along), the standby a physical copy of it that streams
what the primary writes. Both run Debian's (or the embedded server's) binaries on this
machine; nothing is mocked.
"""

import http.client
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from vulhub.ops.db_roles import app_role_name
from vulhub.ops.pg_cluster import Cluster, hand_over, run_as

from .servers import CSRF_SECRET, gunicorn, own_postgres

CHECK_SECONDS = 0.2  # how often the test's workers measure the replica's lag (REPLICA_CHECK_SECONDS)


def wait_until(probe, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


@dataclass
class Pair:
    primary: Cluster
    standby: Cluster
    name: str  # the database

    def app_url(self, cluster: Cluster) -> str:
        return cluster.url(self.name, user=app_role_name())

    def on_primary(self, sql: str, params=()):
        with self.primary.connect(self.name) as conn:
            conn.execute(sql, params)

    def replay(self, *, paused: bool) -> None:
        with self.standby.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")

    def caught_up(self) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        with self.primary.connect() as conn:
            (target,) = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        with self.standby.connect() as conn:
            wait_until(
                lambda: conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()[0],
                "the standby to replay the primary's writes",
            )


@contextmanager
def primary_and_standby():
    """A copy of the test database (what is committed) on a primary, and a hot standby streaming from it."""
    with own_postgres({"fsync": "off", "wal_level": "replica", "max_wal_senders": "5"}) as (primary, name):
        standby = Cluster(primary.datadir.parent / "standby", bin_dir=primary.bin_dir)
        hand_over(standby.datadir.parent)
        try:
            done = subprocess.run(  # noqa: S603  (the cluster's own tool)
                [str(primary.bin_dir / "pg_basebackup"), "-h", str(primary.socket_dir), "-p", str(primary.port),
                 "-U", "postgres", "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast"],
                user=run_as(), capture_output=True, text=True, check=False, timeout=120,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            standby.start()
            with primary.connect() as conn:
                wait_until(
                    lambda: conn.execute(
                        "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL"
                    ).fetchone(),
                    "the standby to stream",
                )
            yield Pair(primary, standby, name)
        finally:
            standby.remove()


@dataclass
class Browser:
    """One person's browser on a server of the test's: the Host, and the cookies it was given."""

    port: int
    host: str
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, path: str, form: dict | None = None) -> tuple[int, str]:
        """(status, body) of a GET, or a POST of `form`; no redirect is followed; a failed connection is 0."""
        jar = {"csrftoken": CSRF_SECRET, **self.cookies}
        headers = {"Host": self.host, "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        body = None
        if form is not None:
            body = urlencode(form)
            headers |= {"Content-Type": "application/x-www-form-urlencoded", "X-CSRFToken": CSRF_SECRET}
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            client.request("POST" if form is not None else "GET", path, body=body, headers=headers)
            response = client.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                pair = header.split(";", 1)[0]
                name, _, value = pair.partition("=")
                if "max-age=0" in header.lower():
                    self.cookies.pop(name.strip(), None)
                else:
                    self.cookies[name.strip()] = value.strip().strip('"')
            return response.status, response.read().decode(errors="replace")
        except OSError:
            return 0, ""
        finally:
            client.close()


def site_on(pair: Pair, **env: str):
    """One gunicorn worker on the pair, reading the pages that only read from the standby.

    Never left for lag alone (REPLICA_MAX_LAG_SECONDS 600) unless `env` says otherwise:
    which server made a page then shows only in its data.
    """
    settings = {
        "REPLICA_DATABASE_URL": pair.app_url(pair.standby),
        "REPLICA_MAX_LAG_SECONDS": "600",
        "REPLICA_CHECK_SECONDS": str(CHECK_SECONDS),
        **env,
    }
    return gunicorn(pair.app_url(pair.primary), workers=1, **settings)


def seen_caught_up(reader: Browser, pair: Pair) -> None:
    """The worker notes a WAL position the standby has replayed: it reads from the standby from now on.

    A worker measures the replica's lag from such notes (vulhub/lib/replica.py); until it
    has one the replica has caught up with, it reads from the primary.
    """
    pair.caught_up()
    for _ in range(2):
        time.sleep(CHECK_SECONDS + 0.1)
        assert reader.request("/badges/")[0] == 200


def rename_the_badge_on_the_primary_only(pair: Pair) -> None:
    """Replay paused, then badge `renamed` renamed on the primary: a page naming it tells the servers apart."""
    pair.replay(paused=True)
    pair.on_primary("UPDATE badges SET name = 'New name' WHERE slug = 'renamed'")
