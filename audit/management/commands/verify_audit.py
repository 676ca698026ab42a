import contextlib
from concurrent.futures import ThreadPoolExecutor

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from audit.models import AuditLog
from audit.verify import chain_keys, chain_sizes, verify_chains


class Command(BaseCommand):
    help = (
        "Check the tamper evidence of the audit log: walk every tenant's hash chain (or one "
        "tenant's) and report the first edited, deleted or reordered row of each. Exits 1 when "
        "any chain is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", help="check only this tenant's chain")
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            metavar="N",
            help="check ranges of the chains on N connections at once (default 1; at most the server's cores help)",
        )
        parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

    def handle(self, *args, tenant=None, jobs=1, no_progress=False, **options):
        if jobs < 1:
            raise CommandError("--jobs must be at least 1.")
        tenant_model = AuditLog._meta.get_field("tenant").related_model  # audit sits below tenants
        tenant_id = None
        if tenant:
            found = tenant_model.objects.filter(slug=tenant).values_list("pk", flat=True).first()
            if found is None:
                raise CommandError(f"No tenant with slug {tenant!r}.")
            tenant_id = found
        keys = chain_keys(tenant_id)
        sizes = chain_sizes(keys)
        names = dict(tenant_model.objects.filter(pk__in=keys).values_list("pk", "slug"))
        broken = []
        with tqdm(total=sum(sizes.values()), unit="row", disable=no_progress or None, file=self.stderr._out) as bar:
            with ThreadPoolExecutor(max_workers=jobs) if jobs > 1 else contextlib.nullcontext() as pool:
                reports = verify_chains(keys, sizes=sizes, on_rows=bar.update, executor=pool)
            for key in keys:
                report = reports[key]
                label = names.get(key) or ("(no tenant)" if key == 0 else f"deleted tenant {key}")
                if report.broken:
                    broken.append(report.broken)
                    line = self.style.ERROR(f"BROKEN {label}: {report.broken}")
                else:
                    line = f"ok     {label}: {report.rows} rows"
                with bar.external_write_mode():  # print above the bar, not through it
                    self.stdout.write(line)
        total = sum(sizes.values())
        if broken:
            raise CommandError(
                f"{len(broken)} of {len(keys)} audit chain(s) broken ({total} rows checked). First: {broken[0]}"
            )
        self.stdout.write(self.style.SUCCESS(f"All {len(keys)} audit chain(s) intact: {total} rows checked."))
