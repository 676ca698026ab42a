from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """A challenge's solves counted from an index that holds the tenant (row-level security).

    Built CONCURRENTLY: on a large submissions table a plain CREATE INDEX would hold off
    every answer until it is done (docs/operations.md, "Deploying a new version").
    """

    atomic = False

    dependencies = [
        ("scoring", "0021_pending_writeups_metric"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="submission",
            index=models.Index(
                condition=models.Q(("status", "APPROVED")), fields=["tenant", "project"], name="idx_submissions_solves"
            ),
        ),
    ]
