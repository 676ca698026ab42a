"""The HTTP side of the benchmark: VulHub under gunicorn, wrk against it, signed-in students.

(Not named http.py: bench/run.py puts bench/ on sys.path, where it would hide the stdlib's http.)

    with gunicorn(ctx) as server:
        sessions = sessions_for(ctx, students)
        result = wrk(server, [Request("GET", domain, "/leaderboard/", s.cookie) for s in sessions], seconds=5)
        result.rate, result.p95_ms, result.statuses

The server is the production configuration (DEBUG off, 2 sync workers, Redis cache,
the connection pool) with bench.settings adding only the baseline views under
/_bench/. Sessions are written straight into the session store, one per student,
signed with this process's SECRET_KEY, which the servers started here share.
"""

import functools
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.db import connection
from django.test.utils import override_settings
from django.utils.crypto import get_random_string
from django_redis import get_redis_connection

from bench import APP_LIMITS
from bench.framework import Context, p95
from challenges.models import Project
from scoring.leaderboard import CACHE
from scoring.models import Leaderboard
from scoring.selectors import PAGE_SIZE
from tenants.models import User
from tenants.rls import install_context_key

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "wrk" / "replay.lua"
# the same without response(), for large bodies: wrk does not copy them for Lua
STREAM_LUA = Path(__file__).resolve().parent / "wrk" / "stream.lua"
GUNICORN = Path(sys.executable).parent / "gunicorn"
# One key per benchmark process: the sessions made here are valid on the servers started here.
SECRET_KEY = secrets.token_urlsafe(50)
ALLOWED_HOSTS = ".localhost,localhost,127.0.0.1"


class BenchError(RuntimeError):
    pass


# --- gunicorn --------------------------------------------------------------------------


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path
    metrics_dir: Path | None = None  # its PROMETHEUS_MULTIPROC_DIR

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_environment(**extra: str) -> dict:
    """The production settings the benchmark serves with: its database as the restricted app role, its Redis."""
    if not os.environ.get("REDIS_URL") and extra.get("BENCH_CACHE") != "dummy":
        raise BenchError("The HTTP scenarios need REDIS_URL: the leaderboard is measured with its Redis cache.")
    environment = dict(os.environ)
    environment.pop("VULHUB_MANAGEMENT_COMMAND", None)  # served requests run under row-level security
    database = role_urls()
    # the app's statement limits, which bench/run.py lifts for its own process only
    limits = {name: os.environ.get(f"BENCH_APP_{name}", os.environ.get(name, "")) for name in APP_LIMITS}
    return dict(
        environment,
        **database,
        **limits,
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS=ALLOWED_HOSTS,
        SECURE_COOKIES="false",  # plain http on loopback
        # a sync worker serves one request at a time: a pool of one or two connections is plenty
        DB_POOL="true",
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE="2",
        SLOW_QUERY_MS="0",
        LOG_LEVEL="WARNING",
        **extra,
    )


@functools.cache
def role_urls() -> dict[str, str]:
    """DATABASE_URL (the app role, under row-level security) and MIGRATIONS_DATABASE_URL of the benchmark's database.

    From the settings, so the embedded server (its socket) and a DATABASE_URL of the
    owner alone (the app role is then `db_roles`' default, local trust auth) serve alike.
    """
    from django.db import connection

    from vulhub.ops.db_roles import app_role_name, connection_url, role_settings

    connection.ensure_connection()  # the embedded backend fills in its socket directory
    name = connection.settings_dict["NAME"]
    urls = {}
    for variable, kind in (("DATABASE_URL", "app"), ("MIGRATIONS_DATABASE_URL", "owner")):
        role = role_settings(kind)
        user = app_role_name() if kind == "app" else role["USER"]
        own_login = kind == "owner" or user == role["USER"]
        urls[variable] = connection_url(
            user=user,
            password=(role.get("PASSWORD") or "") if own_login else "",
            host=role.get("HOST") or connection.settings_dict["HOST"],
            port=role.get("PORT"),
            name=name,
        )
    return urls


@functools.cache
def collect_static() -> None:
    """The manifest DEBUG=false pages need (`collectstatic`, as the Dockerfile does)."""
    subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=server_environment(BENCH_CACHE="dummy"),
        check=True,
    )


@contextmanager
def gunicorn(ctx: Context, *, workers: int = 2, **env: str) -> Iterator[Server]:
    """VulHub under gunicorn on a free loopback port until the block ends; `env` adds variables."""
    collect_static()
    # the servers' SECRET_KEY makes their tenant-context proofs: the database must know it
    # (a dataset restored from an earlier run carries that run's keys); this process is the owner
    install_context_key(extra=(SECRET_KEY,))
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="vulhub-bench-gunicorn-", suffix=".log")[1])
    # each server counts its metrics in a folder of its own (gunicorn.conf.py wipes it when the
    # master starts): two servers side by side must not share, nor wipe, each other's files
    # (PROMETHEUS_MULTIPROC_DIR="": none, prometheus_client's single-process mode)
    own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in env
    if own_metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="vulhub-bench-metrics-")
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"]) if env["PROMETHEUS_MULTIPROC_DIR"] else None
    command = [
        str(GUNICORN),
        "vulhub.wsgi:application",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=server_environment(**env), stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(port=port, process=process, log=log, metrics_dir=metrics_dir)
    try:
        wait_healthy(server)
        quiet = {"BENCH_LEADERBOARD_FIXTURE", "PROMETHEUS_MULTIPROC_DIR", "METRICS_TOKEN"}
        extra = "".join(f", {k}={v}" for k, v in env.items() if k not in quiet)
        ctx.log(f"   gunicorn on :{port} ({workers} workers{extra})")
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def wait_healthy(server: Server, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"gunicorn exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if get(server, "localhost", "/health/").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchError(f"gunicorn did not answer /health/ within {timeout:.0f} s:\n{server.log_tail()}")


# --- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    host: str
    path: str
    cookie: str = ""
    csrf: str = ""
    body: str = ""

    def line(self) -> str:
        fields = (self.method, self.host, self.path, self.cookie, self.csrf, self.body)
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError(f"a request field holds a tab or a newline: {fields!r}")
        return "\t".join(fields)

    def headers(self) -> dict:
        headers = {"Host": self.host, "Connection": "close"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.csrf:
            headers["X-CSRFToken"] = self.csrf
        if self.body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return headers


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    location: str = ""


def send(server: Server, request: Request, timeout: float = 30) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        connection.request(request.method, request.path, body=request.body or None, headers=request.headers())
        response = connection.getresponse()
        return Response(response.status, response.read(), response.getheader("Location", ""))
    finally:
        connection.close()


def get(server: Server, host: str, path: str, cookie: str = "") -> Response:
    return send(server, Request("GET", host, path, cookie), timeout=5)


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    user_id: int
    key: str
    csrf: str

    @property
    def cookie(self) -> str:
        return f"{settings.SESSION_COOKIE_NAME}={self.key}; {settings.CSRF_COOKIE_NAME}={self.csrf}"


def sessions_for(ctx: Context, users) -> list[Session]:
    """A signed-in session (and a CSRF secret) per user, removed after the scenario.

    What logging in stores, without the login form: the user's id, the backend that
    authenticated them and the hash of their password, signed with the servers' key.
    """
    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    backend = "tenants.backends.TenantEmailBackend"  # the one that logs users in (axes only refuses)
    made = []
    with override_settings(SECRET_KEY=SECRET_KEY):
        for user in users:
            store = store_class()
            store[SESSION_KEY] = str(user.pk)
            store[BACKEND_SESSION_KEY] = backend
            store[HASH_SESSION_KEY] = user.get_session_auth_hash()
            store.create()
            csrf = get_random_string(32, string.ascii_letters + string.digits)
            made.append(Session(user.pk, store.session_key, csrf))

    def remove() -> None:
        for session in made:
            store_class(session.key).delete()

    ctx.scratch.setdefault("cleanups", []).append(remove)
    return made


# --- wrk ------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int]
    errors: dict[str, int] = field(default_factory=dict)
    bytes: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def bad(self) -> int:
        """Responses that are neither 2xx nor 3xx (socket errors and timeouts are in `errors`)."""
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 400)


def wrk(
    server: Server,
    requests: list[Request],
    *,
    seconds: float,
    connections: int = 8,
    threads: int = 2,
    script: Path = LUA,
    drain_timeout: float = 5,
) -> LoadResult:
    """wrk sending `requests` round robin for `seconds` over `connections` connections.

    With script=STREAM_LUA (large bodies) the statuses are not counted one by one: the
    responses that were neither 2xx nor 3xx are in `errors["status"]`. `drain_timeout`:
    how long the probe after the run may wait for the requests still queued.
    """
    if not requests:
        raise BenchError("wrk: no request to send")
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed (Debian: apt-get install wrk; `make bench-deps`).")
    threads = max(1, min(threads, connections, len(requests)))
    with tempfile.NamedTemporaryFile("w", prefix="vulhub-bench-", suffix=".requests") as listing:
        listing.write("\n".join(r.line() for r in requests) + "\n")
        listing.flush()
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            server.address,
            "--",
            listing.name,
            str(threads),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    # wrk leaves without waiting for the requests still queued at the server; they are
    # served anyway. A probe queued behind them returns once they are (nearly) all done,
    # so the next measurement does not start under this one's tail.
    send(server, Request("GET", "localhost", "/health/"), timeout=drain_timeout)
    summary = next((line for line in done.stdout.splitlines() if line.startswith("BENCH ")), None)
    if done.returncode != 0 or summary is None:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{server.log_tail()}")
    data = json.loads(summary.removeprefix("BENCH "))
    status_line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH_STATUS ")), None)
    if status_line is not None:
        data["errors"]["status"] = int(status_line.split()[1])
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={int(k): v for k, v in data["statuses"].items()},
        errors={k: v for k, v in data["errors"].items() if v},
        bytes=data["bytes"],
    )


def paced(server: Server, requests: list[Request], *, per_second: float, seconds: float) -> LoadResult:
    """`per_second` requests a second for `seconds`, on schedule (each its own connection), each timed.

    A few sender threads keep the pace when a response is slow; the rate actually
    reached is `requests / seconds` of the result.
    """
    return paced_by_kind(server, [("all", r) for r in requests], per_second=per_second, seconds=seconds)["all"]


def paced_by_kind(
    server: Server,
    requests: list[tuple[str, Request]],
    *,
    per_second: float,
    seconds: float,
    timeout: float = 30,
) -> dict[str, LoadResult]:
    """paced() over (kind, request) pairs: a LoadResult per kind, and one of them all under "all".

    A request unanswered after `timeout` seconds is counted in `errors` (TimeoutError).
    """
    latencies: dict[str, list[float]] = {}
    statuses: dict[str, Counter] = {}
    errors: dict[str, Counter] = {}
    lock = threading.Lock()

    def one(kind: str, request: Request) -> None:
        started = time.perf_counter()
        try:
            status = send(server, request, timeout=timeout).status
        except OSError as exc:
            with lock:
                for key in {kind, "all"}:
                    errors.setdefault(key, Counter())[type(exc).__name__] += 1
            return
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            for key in {kind, "all"}:
                latencies.setdefault(key, []).append(elapsed)
                statuses.setdefault(key, Counter())[status] += 1

    count = max(1, round(per_second * seconds))
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i in range(count):
            delay = began + i / per_second - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, *requests[i % len(requests)])
    took = time.perf_counter() - began
    results = {}
    for kind in {"all", *(k for k, _ in requests)}:
        ordered = sorted(latencies.get(kind, [])) or [float("nan")]
        results[kind] = LoadResult(
            requests=len(latencies.get(kind, [])),
            seconds=max(took, seconds),
            p50_ms=ordered[len(ordered) // 2],
            p95_ms=p95(ordered),
            p99_ms=ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
            max_ms=ordered[-1],
            statuses=dict(statuses.get(kind, {})),
            errors=dict(errors.get(kind, {})),
        )
    return results


# --- VulHub's students and answers ---------------------------------------------------------


def leaderboard_viewers(ctx: Context, limit: int) -> tuple[list, list[Session]]:
    """Up to `limit` students of the largest class's first leaderboard page, each with a session of their own."""
    tenant = ctx.largest
    students = page_one_students(tenant["id"], limit)
    if not students:
        raise BenchError(f"{tenant['slug']} has nobody on its leaderboard")
    return students, sessions_for(ctx, students)


def page_one_students(tenant_id: int, limit: int) -> list:
    """Students listed on the first page of their tenant's leaderboard (their own page is page one)."""
    ids = list(Leaderboard.objects.for_tenant(tenant_id).ranked().values_list("user_id", flat=True)[:PAGE_SIZE])
    users = {u.pk: u for u in User.objects.filter(pk__in=ids[:limit])}
    return [users[i] for i in ids[:limit] if i in users]


def sample_students(tenant_id: int, limit: int, *, alone: bool = False) -> list:
    """Active students of the tenant, drawn at random; `alone`: only those in no team (each solve one more solver)."""
    students = User.objects.filter(tenant_id=tenant_id, is_active=True).students()
    if alone:
        students = students.filter(team_memberships__isnull=True)
    return list(students.order_by("?")[:limit])


@dataclass(frozen=True)
class FlagChallenge:
    id: int
    slug: str
    right_flag: str | None  # known when someone solved it (approved flag submissions keep the flag given)


def flag_challenges(tenant_id: int) -> list[FlagChallenge]:
    """The tenant's published flag challenges, with the right flag where a solve shows it."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT p.id, p.slug,
                      (SELECT s.answer FROM submissions s
                       WHERE s.project_id = p.id AND s.status = 'APPROVED' AND s.kind = 'FLAG' LIMIT 1)
               FROM projects p
               WHERE p.tenant_id = %s AND p.is_published AND p.flag_hash <> ''
               ORDER BY p.id""",
            [tenant_id],
        )
        return [FlagChallenge(*row) for row in cursor.fetchall()]


def unsolved_pairs(tenant_id: int, user_ids: list[int], challenge_ids: list[int]) -> list[tuple[int, int]]:
    """(student, challenge) pairs among these with no approved submission: a flag there is still open."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT u, p FROM unnest(%s::bigint[]) AS u CROSS JOIN unnest(%s::bigint[]) AS p
               WHERE NOT EXISTS (SELECT 1 FROM submissions s
                                 WHERE s.tenant_id = %s AND s.user_id = u AND s.project_id = p
                                   AND s.status = 'APPROVED')
               ORDER BY u, p""",
            [user_ids, challenge_ids, tenant_id],
        )
        return cursor.fetchall()


def open_challenge(ctx: Context, tenant_id: int, *, flag: bool) -> FlagChallenge:
    """A new published challenge (a flag one with a known flag, or a write-up one), unpublished after the scenario.

    For a class that has solved (nearly) everything: small data sets after a few runs.
    """
    right_flag = f"FLAG{{bench_{secrets.token_hex(8)}}}" if flag else None
    project = Project(
        tenant_id=tenant_id,
        name=f"Benchmark {'flag' if flag else 'write-up'} {secrets.token_hex(3)}",
        slug=f"bench-{secrets.token_hex(4)}",
        description="Opened by the benchmark suite when the class had nothing left to solve.",
        category="Benchmark",
        difficulty=Project.Difficulty.BEGINNER,
        points=100,
        is_published=True,
    )
    project.set_flag(right_flag)
    project.save()
    ctx.log(f"   opened challenge {project.slug}: the class had (nearly) nothing left to solve")
    ctx.scratch.setdefault("cleanups", []).append(
        lambda: Project.objects.filter(pk=project.pk).update(is_published=False)
    )
    return FlagChallenge(project.pk, project.slug, right_flag)


def flag_post(host: str, slug: str, session: Session, flag: str) -> Request:
    """The challenge page's flag form, posted: a redirect back to the page when the answer is taken."""
    return Request("POST", host, f"/challenges/{slug}/", session.cookie, session.csrf, urlencode({"flag": flag}))


def wrong_flag() -> str:
    return f"FLAG{{bench_wrong_{secrets.token_hex(6)}}}"


class BoardCacheCount:
    """How hard a stretch of load worked one tenant's leaderboard cache, read from Redis itself.

    The cached pages and standings live under the tenant's version (scoring.leaderboard.CACHE),
    which every committed change to the standings bumps. Over the stretch: the bumps (version
    after less before) and the entries loaded, counted as the tenant's entries whose time to live
    shows they were set during it. Each entry loaded is a miss that went to the database; two
    workers missing the same key at once set it once, so it is a lower bound on the misses.
    None of the figures when the cache is not Redis (the smoke run's database cache).
    """

    def __init__(self, tenant_id: int):
        self.tenant_id = tenant_id
        self.client = _redis_client()
        self.before = self._version()
        self.started = time.perf_counter()

    def _version(self) -> int:
        return CACHE.version(self.tenant_id) or 0

    def stop(self) -> dict | None:
        seconds = time.perf_counter() - self.started
        bumps = self._version() - self.before
        if self.client is None:
            return None
        loaded = 0
        newer_than_ms = (CACHE.seconds - seconds) * 1000
        for key in self.client.scan_iter(match=f"*:{CACHE.name}:{self.tenant_id}:v*", count=1000):
            if self.client.pttl(key) > newer_than_ms:
                loaded += 1
        return {
            "seconds": round(seconds, 2),
            "version_bumps": bumps,
            "entries_loaded": loaded,
            "bumps_per_s": round(bumps / seconds, 2),
            "loaded_per_s": round(loaded / seconds, 2),
        }


def _redis_client():
    """The raw Redis client of the default cache, or None when the cache is not Redis."""
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
        return None
    return get_redis_connection("default")
