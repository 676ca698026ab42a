"""A primary of the benchmark's own holding a copy of its database, a hot standby streaming from it, and their servers.

For scenario 18 (reads from a replica, vulhub/lib/replica.py). The benchmark's database
cannot be relied on as a replication source: pg_hba.conf may refuse replication, the
cluster holds other databases, and the embedded server is not ours to reconfigure. So:

- a new cluster (initdb, the binaries of the benchmark server's major version, since
  pg_dump must be at least as new as the server it reads) gets the roles the database
  names first (owners, grantees, policy roles, with their attributes), so the copy keeps
  its grants and row-level security; then `pg_dump --format=custom | pg_restore`, one
  progress line every ten seconds (a million submissions take minutes), and VACUUM
  ANALYZE, so neither server starts with tables the planner knows nothing about;
- a standby: `pg_basebackup -R -X stream -c fast` of that primary, started and waited
  for until it streams;
- a redis-server of the scenario's own, so counting its commands counts only the
  scenario's servers (the machine's Redis serves other work too);
- gunicorn on the copy as the app role, with REPLICA_DATABASE_URL on the standby or not.

Both clusters run fsync off: only the copy writes, and a read costs the same either way.
Everything is stopped and deleted when the blocks end.
"""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis
from django.db import connection
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.framework import Context
from bench.http_load import GUNICORN, ROOT, BenchError, Server, collect_static, server_environment, wait_healthy
from vulhub.ops.db_roles import app_role_name
from vulhub.ops.pg_cluster import Cluster, find_bin_dir, free_port, hand_over, run_as

CLUSTER_SETTINGS = {
    "fsync": "off",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "max_wal_size": "4GB",  # no checkpoint in the middle of the copy
    "maintenance_work_mem": "256MB",  # the copy's index builds
}
PROGRESS_SECONDS = 10

# Every role the database names: owners of its objects, grantees of its privileges
# (tables, columns, functions, schemas, default privileges) and roles of its policies.
REFERENCED_ROLES = """
WITH named(oid) AS (
    SELECT relowner FROM pg_class
    UNION SELECT proowner FROM pg_proc
    UNION SELECT nspowner FROM pg_namespace
    UNION SELECT typowner FROM pg_type
    UNION SELECT defaclrole FROM pg_default_acl
    UNION SELECT (aclexplode(relacl)).grantee FROM pg_class WHERE relacl IS NOT NULL
    UNION SELECT (aclexplode(attacl)).grantee FROM pg_attribute WHERE attacl IS NOT NULL
    UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc WHERE proacl IS NOT NULL
    UNION SELECT (aclexplode(nspacl)).grantee FROM pg_namespace WHERE nspacl IS NOT NULL
    UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
    UNION SELECT unnest(polroles) FROM pg_policy
)
SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls
FROM pg_roles
WHERE oid IN (SELECT oid FROM named) OR rolname = %s
ORDER BY rolname
"""
ATTRIBUTES = ("SUPERUSER", "INHERIT", "CREATEROLE", "CREATEDB", "LOGIN", "BYPASSRLS")


@dataclass
class Pair:
    primary: Cluster
    standby: Cluster
    name: str  # the database, named as the benchmark's

    def app_url(self, cluster: Cluster) -> str:
        return cluster.url(self.name, user=app_role_name())

    def owner_url(self) -> str:
        return self.primary.url(self.name)

    def transactions(self, cluster: Cluster) -> int:
        """Transactions committed in the database on `cluster` so far (as its statistics have them)."""
        with cluster.connect() as conn:
            row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [self.name]).fetchone()
        return int(row[0])

    def app_sessions(self, cluster: Cluster) -> int:
        """Connections of the app role to `cluster` now."""
        with cluster.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
            return conn.execute(query, [app_role_name()]).fetchone()[0]

    def last_app_activity(self, cluster: Cluster):
        """When a connection of the app role to `cluster` last began or ended a statement (None: none there)."""
        with cluster.connect() as conn:
            query = "SELECT max(state_change) FROM pg_stat_activity WHERE usename = %s"
            return conn.execute(query, [app_role_name()]).fetchone()[0]


@contextmanager
def primary_and_standby(ctx: Context) -> Iterator[Pair]:
    """A copy of the benchmark's database on a primary of our own, and a hot standby streaming from it."""
    name = connection.settings_dict["NAME"]
    bin_dir = find_bin_dir(connection.pg_version // 10000)
    with ExitStack() as cleanup:  # in reverse: the standby, the primary, the folder (each even if one before fails)
        base = Path(tempfile.mkdtemp(prefix="vulhub-bench-replica-"))
        cleanup.callback(shutil.rmtree, base, ignore_errors=True)
        hand_over(base)
        primary = Cluster(base / "primary", bin_dir=bin_dir)
        cleanup.callback(primary.remove)
        standby = Cluster(base / "standby", bin_dir=bin_dir)
        cleanup.callback(standby.remove)
        primary.initdb(CLUSTER_SETTINGS)
        primary.start()
        copy_database(ctx, primary, name)
        base_backup(ctx, primary, standby)
        standby.start()
        wait_streaming(primary)
        ctx.log(f"   standby on :{standby.port} streams from the primary on :{primary.port}")
        yield Pair(primary, standby, name)


def copy_database(ctx: Context, primary: Cluster, name: str) -> None:
    """The benchmark's database (as its owner reads it) into `primary`, roles first, then vacuumed and analysed."""
    roles = referenced_roles()
    with primary.connect() as admin:
        existing = {row[0] for row in admin.execute("SELECT rolname FROM pg_roles")}
        for role, attributes in roles.items():
            if role not in existing:
                admin.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    source_bytes = database_bytes()
    ctx.log(f"   copying {name} ({source_bytes / 2**20:,.0f} MB) to a primary of our own on :{primary.port} ...")
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        dump = subprocess.Popen(  # noqa: S603  (the cluster's own client tools)
            [str(primary.bin_dir / "pg_dump"), "--format=custom", "--compress=0", f"--dbname={source_conninfo()}"],
            stdout=subprocess.PIPE,
        )
        load = subprocess.Popen(  # noqa: S603
            [str(primary.bin_dir / "pg_restore"), "--exit-on-error", f"--dbname={primary.conninfo(name)}"],
            stdin=dump.stdout,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        dump.stdout.close()  # pg_restore's now: pg_dump sees it go if pg_restore stops

        def progress() -> str:
            with primary.connect(name) as conn:
                copied = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            return f"{copied / 2**20:,.0f} MB of about {source_bytes / 2**20:,.0f} MB"

        loaded = follow(ctx, load, "copy", progress)
        dumped = dump.wait()
        if dumped != 0 or loaded != 0:
            errors.seek(0)
            raise BenchError(f"copying {name} failed (pg_dump {dumped}, pg_restore {loaded}): {errors.read().decode()}")
    ctx.log(f"   copied in {time.perf_counter() - started:.0f} s; VACUUM ANALYZE ...")
    started = time.perf_counter()
    with primary.connect(name) as conn:
        conn.execute("VACUUM (ANALYZE)")
    ctx.log(f"   vacuumed and analysed in {time.perf_counter() - started:.0f} s")


def referenced_roles() -> dict[str, str]:
    """{role: its attributes as CREATE ROLE takes them} for the roles the benchmark's database names."""
    roles = {}
    with connection.cursor() as cursor:
        cursor.execute(REFERENCED_ROLES, [app_role_name()])
        for role, *flags in cursor.fetchall():
            roles[role] = " ".join(name if flag else f"NO{name}" for name, flag in zip(ATTRIBUTES, flags, strict=True))
    roles[app_role_name()] = roles[app_role_name()].replace("NOLOGIN", "LOGIN")  # the servers log in as it
    return roles


def source_conninfo() -> str:
    """The benchmark's database as this process reads it: its owner (bench/run.py switched to it)."""
    database = connection.settings_dict
    return make_conninfo(
        host=database["HOST"] or "",
        port=str(database["PORT"] or ""),
        user=database["USER"],
        dbname=database["NAME"],
        password=database.get("PASSWORD") or "",
    )


def database_bytes() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return cursor.fetchone()[0]


def follow(ctx: Context, process: subprocess.Popen, what: str, progress: Callable[[], str]) -> int:
    """Wait for `process`, logging `progress()` every PROGRESS_SECONDS; its exit code."""
    started = time.perf_counter()
    while True:
        try:
            return process.wait(timeout=PROGRESS_SECONDS)
        except subprocess.TimeoutExpired:
            ctx.log(f"   {what}: {progress()} after {time.perf_counter() - started:.0f} s")


def base_backup(ctx: Context, primary: Cluster, standby: Cluster) -> None:
    """`standby`'s data directory: a base backup of `primary` that starts as its hot standby (-R)."""
    ctx.log("   pg_basebackup -R -X stream -c fast ...")
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        backup = subprocess.Popen(  # noqa: S603  (the cluster's own tool)
            [str(primary.bin_dir / "pg_basebackup"), "-h", str(primary.socket_dir), "-p", str(primary.port),
             "-U", "postgres", "-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast"],
            user=run_as(), stdout=subprocess.DEVNULL, stderr=errors, cwd="/",
        )  # fmt: skip

        def progress() -> str:
            return f"{directory_bytes(standby.datadir) / 2**20:,.0f} MB"

        if follow(ctx, backup, "base backup", progress) != 0:
            errors.seek(0)
            raise BenchError(f"pg_basebackup failed: {errors.read().decode()}")
    ctx.log(f"   base backup in {time.perf_counter() - started:.0f} s")


def directory_bytes(path: Path) -> int:
    """The size of the files under `path` now (while another process writes, renames and removes them)."""
    total = 0
    for entry in path.rglob("*"):
        try:
            total += entry.stat().st_size if entry.is_file() else 0
        except OSError:
            continue  # gone since it was listed (a WAL segment renamed as it completes)
    return total


def wait_streaming(primary: Cluster, timeout: float = 120) -> None:
    """Until the standby streams from `primary` and has replayed what the primary has written."""
    deadline = time.monotonic() + timeout
    query = """SELECT 1 FROM pg_stat_replication
               WHERE state = 'streaming' AND replay_lsn >= pg_current_wal_lsn()"""
    with primary.connect() as conn:
        while not conn.execute(query).fetchone():
            if time.monotonic() > deadline:
                raise BenchError(f"the standby did not stream within {timeout:.0f} s")
            time.sleep(0.2)


@contextmanager
def own_redis(timeout: float = 20) -> Iterator[redis.Redis]:
    """A redis-server of our own on a spare port, nothing kept on disk; a client of it (its URL: `url_of`)."""
    binary = shutil.which("redis-server", path="/usr/bin:/usr/sbin:/usr/local/bin")
    if binary is None:
        raise BenchError("redis-server is not installed (`make bench-deps`)")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603  (fixed argv)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_timeout=5)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise BenchError(f"redis-server on port {port} did not answer") from None
                time.sleep(0.1)
        yield client
    finally:
        client.close()
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def url_of(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs['port']}/0"


@contextmanager
def gunicorn_on(ctx: Context, pair: Pair, cache: redis.Redis, *, replica: bool, workers: int = 2) -> Iterator[Server]:
    """VulHub under gunicorn on the pair's primary as the app role; with `replica`, reading pages from the standby.

    bench.http_load.gunicorn's production configuration (metrics off, as scenario 16's
    "off" server), with the database and the cache swapped for the pair's and ours.
    """
    collect_static()
    environment = server_environment(METRICS_ENABLED="false")
    environment.pop("BACKUP_DATABASE_URL", None)  # the benchmark's database: not this server's
    environment.update(
        DATABASE_URL=pair.app_url(pair.primary),
        MIGRATIONS_DATABASE_URL=pair.owner_url(),
        REPLICA_DATABASE_URL=pair.app_url(pair.standby) if replica else "",
        REDIS_URL=url_of(cache),
    )
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="vulhub-bench-gunicorn-", suffix=".log")[1])
    command = [str(GUNICORN), "vulhub.wsgi:application", "--workers", str(workers), "--worker-class", "sync",
               "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    server = Server(port=port, process=process, log=log)
    try:
        wait_healthy(server)
        reads = "pages from the standby" if replica else "the primary only"
        ctx.log(f"   gunicorn on :{port} ({workers} workers, {reads})")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)
