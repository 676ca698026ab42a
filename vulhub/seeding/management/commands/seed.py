import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from tqdm import tqdm

from audit.api import acting_as, new_request_id
from tenants.models import Tenant
from vulhub.ops.db_roles import use_role
from vulhub.seeding import bulk_load, generated
from vulhub.seeding.demo import load_demo_data

# Tenants loading at the same time, each from its own thread and connection.
LOADERS = 2


def _positive(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Load the demo data of the operators' plan (tenant 'Default Tenant' on localhost, admin@vulhub.com and "
        "other demo accounts, sample challenges and badges), and with --scale or the size options, generated "
        "classes for load and scale: tenants full of students, challenges, badges and submissions in every status, "
        "with their audit rows, events and leaderboards. Idempotent: what exists is left alone, and the same "
        "--random-seed always generates the same data."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--scale",
            choices=["demo", "small", "large"],
            default="demo",
            help="demo: the demo data only (default). small: plus 2 tenants, 200 students, 5,000 submissions. "
            "large: plus 5 tenants, 20,000 students, 40 challenges each, 1,000,000 submissions.",
        )
        parser.add_argument("--tenants", type=_positive, metavar="N", help="Generated tenants (overrides --scale).")
        parser.add_argument(
            "--students", type=_positive, metavar="N", help="Generated students in all tenants together."
        )
        parser.add_argument("--challenges", type=_positive, metavar="N", help="Challenges per generated tenant.")
        parser.add_argument(
            "--submissions", type=_positive, metavar="N", help="Generated submissions in all tenants together."
        )
        parser.add_argument(
            "--random-seed",
            type=_positive,
            default=1,
            metavar="N",
            help="Seed of the generated data (default 1). Tenants are named gen<seed>-<n>, so another seed "
            "adds other tenants beside the first ones.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs and cron).")
        parser.add_argument(
            "--sequential",
            action="store_true",
            help="Generate and load in this thread, one tenant after the other, on the command's own "
            "database connection (slower; for tests, which run inside one transaction).",
        )

    def handle(self, *args, **options):
        # an operator's tool writing every tenant's rows (COPY included): the schema owner's work
        with use_role("owner"):
            return self._handle(*args, **options)

    def _handle(self, *args, **options):
        started = time.perf_counter()
        try:
            with acting_as(None, request_id=f"seed-{new_request_id()}"):
                report = load_demo_data()
        except DatabaseError as exc:
            raise CommandError(f"Seeding failed, nothing was changed: {exc}") from exc
        kinds = sorted(set(report.created) | set(report.existing))
        for kind in kinds:
            created, existing = report.created.get(kind, 0), report.existing.get(kind, 0)
            self.stdout.write(f"  {kind:<11} {created:>3} created, {existing:>3} already there")
        if report.total_created:
            self.stdout.write(self.style.SUCCESS(f"Demo data loaded: {report.total_created} rows created."))
        else:
            self.stdout.write(self.style.SUCCESS("Demo data already loaded: nothing to do."))

        sizes = self._sizes(options)
        if sizes is not None:
            self._generate(sizes, options["random_seed"], options["no_progress"], options["sequential"], started)

    def _sizes(self, options) -> generated.Sizes | None:
        names = ("tenants", "students", "challenges", "submissions")
        given = {name: options[name] for name in names if options[name] is not None}
        if options["scale"] == "demo" and not given:
            return None
        base = generated.SCALES.get(options["scale"], generated.SCALES["small"])
        sizes = generated.Sizes(**{name: given.get(name, getattr(base, name)) for name in names})
        if sizes.tenants == 0:
            return None
        if sizes.submissions and (sizes.students == 0 or sizes.challenges == 0):
            raise CommandError("Submissions need students and challenges: raise --students and --challenges.")
        if sizes.challenges > 10_000:
            raise CommandError("--challenges is per tenant; at most 10,000.")
        return sizes

    def _generate(self, sizes: generated.Sizes, seed: int, quiet: bool, sequential: bool, started: float) -> None:
        students = generated.split(sizes.students, sizes.tenants)
        submissions = generated.split(sizes.submissions, sizes.tenants)
        todo, skipped = [], []
        existing = {
            t.slug: t
            for t in Tenant.objects.filter(slug__in=[generated.tenant_slug(seed, n + 1) for n in range(sizes.tenants)])
        }
        for n in range(sizes.tenants):
            slug = generated.tenant_slug(seed, n + 1)
            wanted = {"students": students[n], "challenges": sizes.challenges, "submissions": submissions[n]}
            if slug in existing:
                had = (existing[slug].settings or {}).get("generated", {})
                if any(had.get(k) not in (None, v) for k, v in wanted.items()):
                    self.stderr.write(
                        self.style.WARNING(
                            f"  {slug} exists with other sizes ({had}); left as it is. "
                            "Use another --random-seed for a new set."
                        )
                    )
                skipped.append(slug)
            else:
                todo.append((n + 1, wanted))
        if skipped:
            self.stdout.write(f"  {len(skipped)} generated tenant(s) already there: {', '.join(skipped)}")
        if not todo:
            self.stdout.write(self.style.SUCCESS("Generated data already loaded: nothing to do."))
            return
        self.stdout.write(
            f"Generating {len(todo)} tenant(s) with seed {seed}: "
            f"{sum(w['students'] for _, w in todo):,} students, {sizes.challenges} challenges each, "
            f"{sum(w['submissions'] for _, w in todo):,} submissions..."
        )
        report = bulk_load.LoadReport()
        # disable=None: no bar when stderr is not a terminal (a log, cron), as with --no-progress
        bar = tqdm(total=0, unit=" rows", unit_scale=True, disable=quiet or None, desc="seed", file=self.stderr._out)
        request_id = f"seed-{new_request_id()}"
        bar_lock = threading.Lock()

        def progress(n: int) -> None:
            with bar_lock:
                bar.update(n)

        try:
            # The next tenant is generated (here, in Python) while the previous ones load, two
            # at a time, each on its own connection and in its own transaction: Python and the
            # database servers share the cores. Largest tenant first: its load is the longest.
            # (Event appends are serialised until commit, so the second load waits for the first
            # there, after writing its submissions and audit rows.)
            with ThreadPoolExecutor(max_workers=LOADERS, thread_name_prefix="seed-load") as loaders:
                loading: list = []
                for number, wanted in todo:
                    data = generated.generate_tenant(seed=seed, number=number, ids=bulk_load.ids(),
                                                     request_id=request_id, **wanted)  # fmt: skip
                    if len(data.submissions) < wanted["submissions"]:
                        self.stderr.write(
                            self.style.WARNING(
                                f"  {data.tenant.slug}: only {len(data.submissions):,} of {wanted['submissions']:,} "
                                "submissions fit: its students solved every challenge. Add challenges or students."
                            )
                        )
                    with bar_lock:
                        bar.total += bulk_load.row_count(data)
                        bar.refresh()
                    if sequential:
                        bulk_load.load_tenant(data, report, progress)
                        continue
                    if len(loading) >= LOADERS:
                        loading.pop(0).result()
                    loading.append(loaders.submit(_load_in_thread, data, report, progress))
                    del data
                for future in loading:
                    future.result()
        except DatabaseError as exc:
            raise CommandError(f"Generating failed; tenants loaded before the error stay: {exc}") from exc
        finally:
            bar.close()
        # Fresh planner statistics: a million new rows make the old ones wrong by orders of magnitude.
        analyze_started = time.perf_counter()
        with connection.cursor() as cursor:
            for table in report.rows:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        report.add("(analyze)", 0, time.perf_counter() - analyze_started)
        elapsed = time.perf_counter() - started
        self.stdout.write("  table              rows   load s     rows/s")
        for table, rows in report.rows.items():
            seconds = report.seconds.get(table, 0.0)
            rate = f"{rows / seconds:>10,.0f}" if seconds > 0.01 and rows else f"{'-':>10}"
            self.stdout.write(f"  {table:<13}{rows:>10,} {seconds:>8.1f} {rate}")
        total = sum(report.rows.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Generated {len(todo)} tenant(s): {total:,} rows in {elapsed:.1f} s "
                f"({report.rows.get('submissions', 0) / max(elapsed, 1e-9):,.0f} submissions/s). "
                f"Students sign in on <slug>.localhost as <name>.<n>@<slug>.example.edu with password "
                f"'{generated.STUDENT_PASSWORD}'; staff as admin@ / instructor1@<slug>.example.edu with "
                f"'{generated.STAFF_PASSWORD}'."
            )
        )


def _load_in_thread(data, report, progress) -> None:
    try:
        with use_role("owner"):  # this thread's own connection: COPY needs the owner too
            bulk_load.load_tenant(data, report, progress)
    finally:
        connection.close()  # this thread's own connection
