import argparse

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from news import emails
from news.models import Notification
from tenants.models import Tenant


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value!r}")
    return int(value)


class Command(BaseCommand):
    help = (
        "Send the notification e-mails that are due, for every tenant: those the web process could not send "
        "(the mail server failed or was slow, the process stopped), challenge openings whose time has come, and "
        "everything when NOTIFICATION_EMAILS_IN_BACKGROUND is off. Only students who turned e-mail on get them. "
        "A failed e-mail is tried again on a later run (2, 4, 8 … minutes later) up to "
        "NOTIFICATION_EMAIL_MAX_ATTEMPTS times. Run it from cron every few minutes; it exits 1 when an e-mail "
        "failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what is due and to how many students; send nothing."
        )
        parser.add_argument(
            "--limit", type=_positive_int, metavar="N", help="Send at most N notifications (the oldest first)."
        )
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args, dry_run=False, limit=None, no_progress=False, **options):
        now = timezone.now()
        due = emails.due_by_tenant(now, limit)
        total = sum(len(ids) for ids in due.values())
        if not total:
            self.stdout.write("No notification e-mails are due.")
            return
        names = dict(Tenant.objects.filter(pk__in=list(due)).values_list("pk", "slug"))
        if dry_run:
            self._dry_run(due, names)
            return
        self.stdout.write(f"Sending {total} notification{'s' if total != 1 else ''} due in {len(due)} tenant(s).")
        done = emails.Delivery()
        with tqdm(total=total, unit="notification", disable=no_progress or None, file=self.stderr._out) as bar:
            for tenant_id, ids in due.items():
                bar.set_description(names.get(tenant_id, str(tenant_id)))
                done.add(emails.deliver(tenant_id=tenant_id, ids=ids, now=now))
                bar.update(len(ids))
        self.stdout.write(
            f"{done.sent} sent ({done.emails} e-mail{'s' if done.emails != 1 else ''}), "
            f"{done.skipped} with nobody to e-mail, {done.failed - done.given_up} failed (tried again later), "
            f"{done.given_up} given up."
        )
        if done.failed:
            for error in done.errors:
                self.stderr.write(error)
            raise CommandError(
                f"{done.failed} notification e-mail{'s' if done.failed != 1 else ''} failed: see above. "
                "Check EMAIL_HOST and the mail server; failed ones are tried again on the next run."
            )

    def _dry_run(self, due, names):
        for tenant_id, ids in due.items():
            notifications = Notification.objects.filter(pk__in=ids).order_by("visible_at", "pk")
            people = sum(emails.recipients(notification).count() for notification in notifications)
            self.stdout.write(
                f"{names.get(tenant_id, tenant_id)}: {len(ids)} notification{'s' if len(ids) != 1 else ''} due, "
                f"{people} e-mail{'s' if people != 1 else ''} to send."
            )
        self.stdout.write("Dry run: nothing was sent.")
