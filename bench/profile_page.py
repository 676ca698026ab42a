"""Where a page's CPU goes, in one process: scenario 17's rows without gunicorn, wrk or the network.

    DATABASE_URL=... MIGRATIONS_DATABASE_URL=... REDIS_URL=... \\
        .venv/bin/python bench/profile_page.py [--requests 2000] [--only template,goal] [--against DIR]
        .venv/bin/python bench/profile_page.py --profile template [--sort cumulative] [--top 40]

Scenario 17 (bench/scenarios/s17_layers.py) measures the layers under load, where wrk,
PostgreSQL and Redis share the CPUs with the workers: good for rates, coarse for a
change worth 0.1 ms. Here Django's WSGI handler, with all of settings.MIDDLEWARE or none
(as bench/layers.py builds them; VulHub's settings under bench.settings, DEBUG off, the
connection pool), is called in a loop in this process, and each row's CPU time per
request is read with time.process_time(): what a worker itself spends, without the
other processes on the machine. `--against DIR` times each row with the templates of
DIR too, in turn with this tree's; `--profile ROW` runs a row under cProfile and prints
the functions that cost most.

It needs a dataset bench/run.py made (the generated tenants, e.g. `bench/run.py --smoke`).
Like the bench's servers, it serves as the restricted app role (row-level security on)
and signs its sessions with a key of its own, which it lets the database know first.
"""

import argparse
import contextlib
import cProfile
import importlib
import io
import json
import os
import pstats
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# the bench's servers' configuration (bench/http_load.server_environment), in this process
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
os.environ["DEBUG"] = "false"
os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
os.environ.setdefault("ALLOWED_HOSTS", ".localhost,localhost,127.0.0.1")
os.environ["SECURE_COOKIES"] = "false"
os.environ.setdefault("DB_POOL", "true")
os.environ["SLOW_QUERY_MS"] = "0"
os.environ["LOG_LEVEL"] = "WARNING"
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="vulhub-profile-metrics-"))
os.environ.pop("VULHUB_MANAGEMENT_COMMAND", None)
FIXTURE = Path(tempfile.mkstemp(prefix="vulhub-profile-leaderboard-", suffix=".json")[1])
os.environ["BENCH_LEADERBOARD_FIXTURE"] = str(FIXTURE)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from scoring import selectors  # noqa: E402
from scoring.models import Leaderboard  # noqa: E402
from tenants.models import Tenant, User  # noqa: E402
from tenants.rls import install_context_key  # noqa: E402
from vulhub.ops.db_roles import switch_role  # noqa: E402


def as_owner(work):
    """`work()` on the schema owner's connection (it bypasses row-level security), then back to the app role."""
    saved = switch_role(settings.DATABASE_ROLES["owner"])
    try:
        return work()
    finally:
        switch_role(saved)


def largest_tenant() -> Tenant:
    tenants = Tenant.objects.filter(slug__startswith="gen").order_by("slug")
    ranked = sorted(tenants, key=lambda t: -Leaderboard.objects.filter(tenant=t).count())
    if not ranked:
        raise SystemExit("no generated tenants: run bench/run.py (e.g. --smoke) first")
    return ranked[0]


def write_fixture(tenant: Tenant, viewer: User) -> None:
    """Page one of the standings as `viewer` sees it (bench/scenarios/s01_leaderboard.write_fixture)."""
    page = selectors.leaderboard_page(tenant.pk, 1)
    rows = [
        {
            "rank": r.rank,
            "user_id": r.user_id,
            "name": r.name,
            "points": r.points,
            "solves": r.solves,
            "last_scored_at": r.last_scored_at.isoformat(),
        }
        for r in page.rows
    ]
    viewer_fields = {"id": viewer.pk, "first_name": viewer.first_name, "last_name": viewer.last_name}
    FIXTURE.write_text(json.dumps({"viewer": viewer_fields, "number": page.number, "total": page.total, "rows": rows}))


SESSION_KEYS: list[str] = []  # the sessions made here, deleted at the end


def session_cookie(user: User | None) -> str:
    """A stored session: `user` signed in (as logging in stores it), or nobody."""
    store = importlib.import_module(settings.SESSION_ENGINE).SessionStore()
    if user is None:
        store["bench_layers"] = "anonymous"
    else:
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "tenants.backends.TenantEmailBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    SESSION_KEYS.append(store.session_key)
    # with a CSRF secret, as bench/http_load.py's cookies have: a page's form does not make one
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}; {settings.CSRF_COOKIE_NAME}={secrets.token_hex(16)}"


def environ(host: str, path: str, cookie: str) -> dict:
    """A GET as gunicorn hands it to the application."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": host,
        "HTTP_USER_AGENT": "wrk",
        "HTTP_ACCEPT": "*/*",
        **({"HTTP_COOKIE": cookie} if cookie else {}),
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def call(handler, env: dict) -> tuple[str, bytes]:
    status = []
    body = b"".join(handler(dict(env, **{"wsgi.input": io.BytesIO(b"")}), lambda s, h, e=None: status.append(s)))
    return status[0], body


def rows(host: str, anonymous: str, signed_in: str) -> dict[str, tuple[str, str, str]]:
    """Scenario 17's rows that matter here: name -> (handler, path, cookie)."""
    return {
        "bare": ("none", "/_bench/bare/", ""),
        "stack": ("all", "/_bench/bare/", ""),
        "session": ("all", "/_bench/bare/", anonymous),
        "user": ("all", "/_bench/bare/", signed_in),
        "nonce": ("all", "/_bench/bare-nonce/", signed_in),
        "template": ("all", "/_bench/leaderboard-template/", signed_in),
        "goal": ("all", "/_bench/leaderboard-template/", ""),
        "leaderboard": ("all", "/leaderboard/", signed_in),
        "teams": ("all", "/teams/", signed_in),  # where the class plays in teams (the large data set's largest)
    }


def measure(handler, env: dict, requests: int) -> float:
    """CPU µs per request of `requests` calls, after a warm-up."""
    for _ in range(50):
        call(handler, env)
    started = time.process_time()
    for _ in range(requests):
        call(handler, env)
    return (time.process_time() - started) * 1e6 / requests


def prepare() -> tuple[Tenant, str, str]:
    """As the owner: the database knows this process's key; the largest class, its fixture and two sessions."""
    install_context_key(extra=(settings.SECRET_KEY,))
    tenant = largest_tenant()
    ids = list(Leaderboard.objects.for_tenant(tenant.pk).ranked().values_list("user_id", flat=True)[:1])
    viewer = User.objects.get(pk=ids[0])
    write_fixture(tenant, viewer)
    return tenant, session_cookie(None), session_cookie(viewer)


def make_handlers() -> dict:
    """VulHub's handler ("all") and one without middleware ("none"), as bench/layers.py builds them."""
    handlers = {"all": WSGIHandler()}
    with override_settings(MIDDLEWARE=[]):
        handlers["none"] = WSGIHandler()
    return handlers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests a row (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over the rows; the median is shown (default 3)")
    parser.add_argument("--only", help="comma-separated rows (default all)")
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="also time each row with the templates of DIR (e.g. `git archive HEAD templates | tar -x -C DIR`), "
        "in turn with this tree's: a before and after from the same minutes of the same machine",
    )
    parser.add_argument("--profile", help="a row to run under cProfile instead of timing the rows")
    parser.add_argument("--top", type=int, default=40, help="functions to show with --profile")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key with --profile (tottime, cumulative)")
    args = parser.parse_args()

    tenant, anonymous, signed_in = as_owner(prepare)
    handlers = make_handlers()
    table = rows(tenant.domain, anonymous, signed_in)
    wanted = args.only.split(",") if args.only else list(table)
    try:
        for name in [args.profile] if args.profile else wanted:
            check(handlers, tenant.domain, name, table[name])
        if args.profile:
            profile(handlers, tenant.domain, table[args.profile], args)
        else:
            timings(handlers, tenant, table, wanted, args)
    finally:
        FIXTURE.unlink(missing_ok=True)
        as_owner(remove_sessions)
        connection.close()
    return 0


def remove_sessions() -> None:
    store_class = importlib.import_module(settings.SESSION_ENGINE).SessionStore
    for key in SESSION_KEYS:
        store_class(key).delete()


def check(handlers: dict, host: str, name: str, row: tuple[str, str, str]) -> None:
    kind, path, cookie = row
    status, body = call(handlers[kind], environ(host, path, cookie))
    if not status.startswith("200"):
        raise SystemExit(f"{name}: {path} answered {status}: {body[:200]!r}")


def profile(handlers: dict, host: str, row: tuple[str, str, str], args) -> None:
    kind, path, cookie = row
    env = environ(host, path, cookie)
    measure(handlers[kind], env, 10)
    profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the servers
    profiler.enable()
    for _ in range(args.requests):
        call(handlers[kind], env)
    profiler.disable()
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)


def templates_from(folder: str) -> list[dict]:
    """settings.TEMPLATES with `folder` in place of the project's templates/ folder."""
    engine = dict(settings.TEMPLATES[0], DIRS=[folder])
    return [engine, *settings.TEMPLATES[1:]]


def timings(handlers: dict, tenant: Tenant, table: dict, wanted: list[str], args) -> None:
    variants = {"this tree": None}
    if args.against:
        variants = {"against": templates_from(args.against), "this tree": None}
    results = {(variant, name): [] for variant in variants for name in wanted}
    for _ in range(args.repeat):
        for name in wanted:
            kind, path, cookie = table[name]
            for variant, templates in variants.items():
                with override_settings(TEMPLATES=templates) if templates else contextlib.nullcontext():
                    cpu = measure(handlers[kind], environ(tenant.domain, path, cookie), args.requests)
                results[(variant, name)].append(cpu)
    print(f"{tenant.slug}: CPU µs per request, median of {args.repeat} x {args.requests} requests [min-max]")
    print(f"  {'row':12} " + " ".join(f"{variant:>22}" for variant in variants) + "  path")
    for name in wanted:
        cells = []
        for variant in variants:
            values = sorted(results[(variant, name)])
            cells.append(f"{values[len(values) // 2]:6.0f} [{values[0]:.0f}-{values[-1]:.0f}]".rjust(22))
        print(f"  {name:12} " + " ".join(cells) + f"  {table[name][1]}")


if __name__ == "__main__":
    sys.exit(main())
