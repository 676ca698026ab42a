"""Real servers a test starts for itself on spare loopback ports: PgBouncer, redis-server, gunicorn, S3.

Each runs in the foreground as a child of the test, with its output in a log file that
a failure to start quotes, and is stopped (SIGTERM, then SIGKILL) when the block ends.
"""

import functools
import http.client
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis
from django.db import connection
from django.test import Client, override_settings

from vulhub.ops.db_roles import app_role_name, connection_url
from vulhub.ops.embedded_db.server import EMBEDDED_ROLES
from vulhub.ops.pg_cluster import Cluster, find_bin_dir, free_port, hand_over

ROOT = Path(__file__).resolve().parents[2]
SBIN_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin"


def binary(name: str) -> str:
    found = shutil.which(name, path=SBIN_PATH)
    assert found, f"{name} is not installed: `make test-deps` installs it (Debian's package)."
    return found


def wait_for(check, what: str, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except (OSError, psycopg.OperationalError):  # not listening yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"{what} did not start within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def running(command: list[str], *, what: str, ready, env: dict | None = None):
    """`command` running until the block ends, once `ready()` says it answers."""
    folder = Path(tempfile.mkdtemp(prefix=f"vulhub-test-{what}-"))
    log = folder / f"{what}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        wait_for(ready, what, process, log)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def app_database_url(host: str | None = None, port: int | str | None = None) -> str:
    """The test database as the restricted app role sees it (local trust auth), directly or through `host:port`."""
    database = connection.settings_dict
    return connection_url(
        user=app_role_name(), name=database["NAME"], host=host or database["HOST"], port=port or database["PORT"]
    )


# DEBUG off refuses the example key; sessions for the server are signed with this one.
SERVER_SECRET_KEY = "a-test-server-key-long-enough-for-the-deploy-checks-0123456789"


def session_for(user, host: str) -> str:
    """The key of a signed-in session of `user`, as a server of the test's own accepts it."""
    with override_settings(SECRET_KEY=SERVER_SECRET_KEY):
        browser = Client(HTTP_HOST=host)
        browser.force_login(user)
        return browser.cookies["sessionid"].value


def production_environment(database_url: str, **env: str) -> dict[str, str]:
    """The production settings (DEBUG off) for a server of the test's own, as the role at `database_url`."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": SERVER_SECRET_KEY,
        "SECURE_COOKIES": "false",  # plain http on loopback
        "ALLOWED_HOSTS": ".localhost,localhost,127.0.0.1",
        "SLOW_QUERY_MS": "0",
        "LOG_LEVEL": "ERROR",
        **env,
    }
    environment.pop("VULHUB_MANAGEMENT_COMMAND", None)
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the browser tests' process only, never production's
    return environment


@functools.cache
def collect_static() -> None:
    """The static manifest that pages need with DEBUG off (`collectstatic`, as the Dockerfile runs)."""
    subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=ROOT,
        env=production_environment(os.environ.get("DATABASE_URL", "")),
        check=True,
    )


@contextmanager
def gunicorn(database_url: str, *, workers: int = 2, **env: str):
    """VulHub under gunicorn (sync workers, DEBUG off) on a free port as the role at `database_url`; yields the port."""
    collect_static()
    port = free_port()
    environment = production_environment(database_url, **env)
    command = [str(Path(sys.executable).with_name("gunicorn")), "vulhub.wsgi:application", "--workers", str(workers)]

    def healthy() -> bool:
        return fetch(port, "localhost", "/health/")[0] == 200

    with running([*command, "--bind", f"127.0.0.1:{port}"], what="gunicorn", ready=healthy, env=environment):
        yield port


CSRF_SECRET = "t" * 32  # a CSRF cookie the tests set themselves, sent back as the header


def fetch(port: int, host: str, path: str, session: str = "", *, form: dict | None = None) -> tuple[int, str]:
    """(status, body) of a GET, or a POST of `form`, on the server at `port` for `host`.

    Never raises on a status and follows no redirect (a POST answered 302 is a POST
    acknowledged); a connection that fails or times out is status 0.
    """
    cookies = [f"csrftoken={CSRF_SECRET}"] + ([f"sessionid={session}"] if session else [])
    headers = {"Host": host, "Cookie": "; ".join(cookies)}
    body = None
    if form is not None:
        body = urlencode(form)
        headers |= {"Content-Type": "application/x-www-form-urlencoded", "X-CSRFToken": CSRF_SECRET}
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        client.request("POST" if form is not None else "GET", path, body=body, headers=headers)
        response = client.getresponse()
        return response.status, response.read().decode(errors="replace")
    except OSError:
        return 0, ""
    finally:
        client.close()


def owner_dsn() -> str:
    """The test database as its owner (the login of the tests) sees it."""
    database = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        host=database["HOST"] or "",
        port=str(database["PORT"] or ""),
        user=database["USER"],
        dbname=database["NAME"],
        password=database.get("PASSWORD") or "",
    )


class OwnRedis:
    """A redis-server of the test's own, on one port, that can be stopped and started again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._server = None

    def _answers(self) -> bool:
        return redis.Redis(port=self.port, socket_timeout=1).ping()

    def start(self) -> None:
        command = [binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1"]
        self._server = running([*command, "--save", "", "--appendonly", "no"], what="redis", ready=self._answers)
        self._server.__enter__()

    def stop(self) -> None:
        if self._server is not None:
            self._server.__exit__(None, None, None)
            self._server = None

    def cache_settings(self) -> dict:
        """CACHES for this server, with short timeouts so a stopped Redis fails fast."""
        return {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": self.url,
                "KEY_PREFIX": "vulhub",
                "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
            }
        }

    def cached_keys(self, pattern: str) -> list[bytes]:
        return redis.Redis(port=self.port, socket_timeout=1).keys(f"*{pattern}*")


@contextmanager
def own_postgres(settings: dict[str, str] | None = None):
    """A PostgreSQL cluster of the test's own with a copy of the test database (what is committed).

    The app's roles are made first, so the copy keeps its grants and row-level security;
    yields the running cluster and the name of the database. Its binaries are of the test
    server's major version (pg_dump must be at least as new as the server it reads).
    """
    base = Path(tempfile.mkdtemp(prefix="vulhub-test-pg-"))
    hand_over(base)
    cluster = Cluster(base / "data", bin_dir=find_bin_dir(connection.pg_version // 10000)).initdb(settings)
    name = connection.settings_dict["NAME"]
    try:
        cluster.start()
        with cluster.connect() as admin:
            roles = {app_role_name(): EMBEDDED_ROLES["vulhub_app"], **EMBEDDED_ROLES}
            # the role the tests' own setup acts as (conftest.py) has grants in the copy too
            roles.setdefault("vulhub_test_platform", "NOLOGIN NOSUPERUSER BYPASSRLS NOINHERIT")
            for role, attributes in roles.items():
                admin.execute(f'CREATE ROLE "{role}" {attributes}')
            admin.execute(f'CREATE DATABASE "{name}"')
        dump = subprocess.Popen(  # noqa: S603  (the cluster's own client tools)
            [str(cluster.bin_dir / "pg_dump"), "--format=custom", f"--dbname={owner_dsn()}"],
            stdout=subprocess.PIPE,
        )
        load = subprocess.run(  # noqa: S603
            [str(cluster.bin_dir / "pg_restore"), "--exit-on-error", f"--dbname={cluster.conninfo(name)}"],
            stdin=dump.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        dump.stdout.close()
        assert dump.wait() == 0 and load.returncode == 0, f"copying the test database failed: {load.stderr}"
        yield cluster, name
    finally:
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)


def manage_on(cluster, name: str, *args: str, check: bool = True) -> str:
    """`manage.py *args` in a process of its own against database `name` of `cluster`, as its owner.

    Returns what it printed (stdout, then stderr); with `check`, a failure fails the test.
    """
    environment = {**os.environ, "DATABASE_URL": cluster.url(name), "MIGRATIONS_DATABASE_URL": cluster.url(name)}
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert not check or done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


@contextmanager
def moto_s3(*, tls: bool = False):
    """moto's S3 API on a free port: an S3 API with no account and no network; its endpoint.

    With `tls`, gunicorn serves it over HTTPS with a throwaway certificate made here,
    which clients must be told not to verify (pgBackRest talks to S3 over TLS only).
    """
    port = free_port()
    scratch = Path(tempfile.mkdtemp(prefix="vulhub-test-s3-"))
    if tls:
        certificate, key = scratch / "cert.pem", scratch / "key.pem"
        subprocess.run(  # noqa: S603
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1",
             "-keyout", str(key), "-out", str(certificate)],
            check=True, capture_output=True,
        )  # fmt: skip
        argv = [str(Path(sys.executable).with_name("gunicorn")), "--bind", f"127.0.0.1:{port}", "--threads", "4",
                "--certfile", str(certificate), "--keyfile", str(key), "--chdir", str(ROOT),
                "vulhub.tests.moto_app:app"]  # fmt: skip
    else:
        argv = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)]
    log = (scratch / "server.log").open("w")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    unverified = ssl._create_unverified_context() if tls else None  # noqa: S323  (the test's own certificate)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1, context=unverified)  # noqa: S310
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (scratch / "server.log").read_text()
                time.sleep(0.2)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        shutil.rmtree(scratch, ignore_errors=True)
