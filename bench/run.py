"""VulHub's benchmark suite: `make bench` (a million submissions) and `make bench-smoke` (CI).

    python bench/run.py [--smoke] [--runs N] [--only 1,4] [--output PATH]

Builds the dataset with `manage.py seed` unless it is there (large: seed 1, at least
5 tenants, 20,000 students, 1,000,000 submissions; smoke: seed 2, a tiny one), runs
every scenario of bench/scenarios/, prints a table and writes the results as JSON
(bench/results.json; the smoke run writes var/bench-smoke.json). Each figure is a
ratio against a baseline measured in the same run, with the median of --runs runs
(5; 1 for the smoke run) and the min and max beside it.

The smoke run proves the suite works: it exits 1 if a scenario fails, never because
a goal is missed. The full run exits 0 either way and reports the goals it missed.
"""

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vulhub.settings")
from bench import APP_LIMITS  # noqa: E402

# Measure what production runs: no DEBUG (which also records every query in memory).
os.environ["DEBUG"] = "false"
if os.environ.get("SECRET_KEY", "insecure-example-key-change-me") == "insecure-example-key-change-me":
    import secrets

    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,.localhost")
os.environ.setdefault("SECURE_COOKIES", "false")
# operators' work in this process (restore, rebuild, baselines) runs unlimited, as manage.py's does
for _limit in APP_LIMITS:
    os.environ.setdefault(f"BENCH_APP_{_limit}", os.environ.get(_limit, ""))
    os.environ[_limit] = "0"

# This process does an operator's work (baselines, restores, rebuilds) across tenants, as a
# management command does: logged in as the schema's owner below, a role that bypasses
# row-level security. The servers it starts run as the restricted app role.
os.environ["VULHUB_MANAGEMENT_COMMAND"] = "bench"
if not os.environ.get("REDIS_URL"):
    # the leaderboard is measured with its Redis cache: a redis-server of the run's own
    from bench.redis_server import start_own_redis  # noqa: E402

    os.environ["REDIS_URL"] = start_own_redis()

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from vulhub.ops.db_roles import switch_role  # noqa: E402

switch_role(settings.DATABASE_ROLES["owner"])

from bench import scenarios  # noqa: E402
from bench.framework import Context, Figure, machine, result_document  # noqa: E402

DATASETS = {
    "large": {"seed": 1, "args": ["--scale", "large"], "submissions": 1_000_000},
    "smoke": {
        "seed": 2,
        "args": ["--tenants", "2", "--students", "80", "--challenges", "12", "--submissions", "3000"],
        "submissions": 3000,
    },
}


def generated_tenants(seed: int) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT t.id, t.slug, t.domain,
                      (SELECT count(*) FROM users u WHERE u.tenant_id = t.id AND u.role = 'STUDENT'),
                      (SELECT count(*) FROM submissions s WHERE s.tenant_id = t.id)
               FROM tenants t WHERE t.slug LIKE %s ORDER BY 5 DESC, t.slug""",
            [f"gen{seed}-%"],
        )
        return [
            {"id": i, "slug": slug, "domain": domain, "students": students, "submissions": submissions}
            for i, slug, domain, students, submissions in cursor.fetchall()
        ]


def ensure_dataset(name: str, log) -> list[dict]:
    # the served app runs as the restricted app role (bench/http_load.py): make it and its grants
    subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "db_roles", "--no-backup-role"], check=True, stdout=subprocess.DEVNULL
    )
    spec = DATASETS[name]
    tenants = generated_tenants(spec["seed"])
    if sum(t["submissions"] for t in tenants) >= spec["submissions"]:
        log(f"dataset: {len(tenants)} generated tenants already there (seed {spec['seed']})")
        return tenants
    log(f"dataset: seeding ({' '.join(spec['args'])}) ...")
    started = time.perf_counter()
    command = [sys.executable, str(ROOT / "manage.py"), "seed", *spec["args"], "--random-seed", str(spec["seed"])]
    subprocess.run([*command, "--no-progress"], check=True, env=dict(os.environ, SLOW_QUERY_MS="0"))  # noqa: S603
    log(f"dataset: seeded in {time.perf_counter() - started:.0f} s")
    connection.close()
    return generated_tenants(spec["seed"])


def discover(only: set[str] | None) -> list:
    found = []
    for info in pkgutil.iter_modules(scenarios.__path__):
        if not info.name.startswith("s"):
            continue
        module = importlib.import_module(f"bench.scenarios.{info.name}")
        number = module.SCENARIO.split()[0]
        if only is None or number in only:
            found.append(module)
    return sorted(found, key=lambda m: int(m.SCENARIO.split()[0]))


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def series_text(series) -> str:
    if series is None:
        return "-"
    if len(series.values) == 1:
        return fmt(series.median, series.unit)
    return f"{fmt(series.median, series.unit)} [{fmt(series.low)}-{fmt(series.high)}]"


def table(figures: list[Figure]) -> list[str]:
    rows = [("scenario", "figure", "ours: median [min-max]", "baseline: median [min-max]", "ratio", "goal", "met")]
    for f in figures:
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        rows.append(
            (
                f.scenario,
                f.name,
                series_text(f.ours),
                f"{f.baseline.label}: {series_text(f.baseline)}" if f.baseline else "-",
                f"{f.ratio:.2f}x" if f.ratio is not None else "-",
                f.goal_text(),
                met,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny dataset, one run each: proves the suite works")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 5; 1 with --smoke)")
    parser.add_argument("--only", help="comma-separated scenario numbers, e.g. 1,4")
    parser.add_argument("--output", help="where to write the JSON results")
    args = parser.parse_args()
    started = time.time()
    name = "smoke" if args.smoke else "large"
    runs = args.runs or (1 if args.smoke else 5)
    output = Path(args.output or (ROOT / "var" / "bench-smoke.json" if args.smoke else ROOT / "bench" / "results.json"))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    tenants = ensure_dataset(name, log)
    if not tenants:
        log("no generated tenants: seeding failed?")
        return 1
    context = Context(
        runs=runs,
        smoke=args.smoke,
        tenants=tenants,
        log=log,
    )
    figures: list[Figure] = []
    errors: dict[str, str] = {}
    for module in discover(set(args.only.split(",")) if args.only else None):
        log(f"== {module.SCENARIO}")
        begun = time.perf_counter()
        try:
            found = module.run(context)
        except Exception:  # one broken scenario must not hide the others' results
            errors[module.SCENARIO] = traceback.format_exc()
            log(errors[module.SCENARIO])
            continue
        finally:
            for cleanup in context.scratch.pop("cleanups", []):
                cleanup()
        figures.extend(found)
        log(f"   {len(found)} figure(s) in {time.perf_counter() - begun:.0f} s")
    info = machine()
    print()
    print(f"VulHub benchmarks ({name} dataset, {runs} run(s) each) on {info.get('cpu', '?')}, "
          f"{info.get('cpus')} CPUs, {info.get('memory_gb', '?')} GB, Python {info['python']}")  # fmt: skip
    largest = tenants[0]
    print(f"largest tenant {largest['slug']}: {largest['students']:,} students, {largest['submissions']:,} submissions")
    print()
    for line in table(figures):
        print(line)
    document = result_document(figures, errors, context, started)
    document["table"] = table(figures)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, default=str))
    missed = [f"{f.scenario}: {f.name}" for f in figures if f.met is False]
    print()
    print(f"results: {output}")
    if missed:
        print(f"goals missed ({len(missed)}): " + "; ".join(missed))
    if errors:
        print(f"scenarios that failed: {', '.join(errors)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
