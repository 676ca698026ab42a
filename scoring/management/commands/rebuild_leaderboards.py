from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from scoring import leaderboard, team_board
from scoring.replay import replay
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Rebuild the materialised leaderboards, the students' and the teams', from the submissions (default) "
        "or by replaying the event store alone (--from-events), for every tenant or one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", metavar="SLUG", help="rebuild only this tenant")
        parser.add_argument(
            "--from-events", action="store_true", help="replay event_store instead of reading submissions"
        )
        parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")

    def handle(self, *args, tenant=None, from_events=False, no_progress=False, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant:
            tenants = tenants.filter(slug=tenant)
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {tenant!r}.")
        total = 0
        source = "events" if from_events else "submissions"
        for item in tqdm(list(tenants), unit="tenant", disable=no_progress or None, file=self.stderr._out):
            if from_events:
                count, written, removed = replay(item.pk)
            else:
                count, written, removed = leaderboard.rebuild(item.pk)
            total += count
            self.stdout.write(f"  {item.slug}: {count} students ranked, {written} rows written, {removed} removed")
            with transaction.atomic():
                teams = team_board.replay(item.pk) if from_events else team_board.rebuild(item.pk)
            if any(teams):
                ranked, written, removed = teams
                self.stdout.write(f"  {item.slug}: {ranked} teams ranked, {written} rows written, {removed} removed")
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {tenants.count()} leaderboard(s) from {source}: {total} rows."))
