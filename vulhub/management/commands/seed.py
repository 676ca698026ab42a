from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from audit.context import acting_as, new_request_id
from vulhub.demo import load_demo_data


class Command(BaseCommand):
    help = (
        "Load the demo data of the operators' plan: tenant 'Default Tenant' on localhost, "
        "admin@vulhub.com and other demo accounts, sample challenges and badges. "
        "Idempotent: existing rows are left as they are."
    )

    def handle(self, *args, **options):
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
