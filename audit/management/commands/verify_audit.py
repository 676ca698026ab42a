import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from audit.models import AuditLog
from audit.verify import chain_keys, chain_sizes, check_exported_heads, current_heads, verify_chains


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
        parser.add_argument(
            "--heads",
            metavar="FILE",
            help="first check that every chain still holds the links exported to FILE by the last run, then "
            "(when all is intact) export the current heads there: run it on a schedule, keep FILE off the "
            "database server",
        )

    def handle(self, *args, tenant=None, jobs=1, no_progress=False, heads=None, **options):
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
        if heads:
            broken += self.compare_heads(Path(heads), tenant_id)
        if broken:
            raise CommandError(
                f"{len(broken)} of {len(keys)} audit chain(s) broken ({total} rows checked). First: {broken[0]}"
            )
        self.stdout.write(self.style.SUCCESS(f"All {len(keys)} audit chain(s) intact: {total} rows checked."))
        if heads and tenant_id is None:
            self.export_heads(Path(heads))

    def compare_heads(self, path: Path, tenant_id: int | None) -> list:
        if not path.exists():
            self.stdout.write(f"No exported heads at {path} yet: this run exports the first.")
            return []
        try:
            exported = json.loads(path.read_text())["chains"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"Could not read the exported heads in {path}: {exc}") from None
        if tenant_id is not None:
            exported = {key: link for key, link in exported.items() if key == str(tenant_id)}
        problems = check_exported_heads(exported)
        for problem in problems:
            self.stdout.write(self.style.ERROR(f"BROKEN {problem}"))
        if not problems:
            self.stdout.write(f"ok     every link exported to {path} is still in its chain")
        return problems

    def export_heads(self, path: Path) -> None:
        document = {"exported_at": timezone.now().isoformat(), "chains": current_heads()}
        partial = path.with_name(path.name + ".partial")
        try:
            partial.write_text(json.dumps(document, indent=1) + "\n")
            partial.chmod(0o640)
            partial.replace(path)  # whole or not at all, even when the disk fills
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CommandError(f"Could not export the chain heads to {path}: {exc}") from None
        self.stdout.write(f"Exported the heads of {len(document['chains'])} chain(s) to {path}.")
