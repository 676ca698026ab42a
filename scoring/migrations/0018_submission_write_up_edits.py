"""A pending write-up can be edited by its author: when it last was, and how many times.

Both columns are added without a table rewrite or scan (PostgreSQL 11+ keeps a constant
default in the catalogue, and no check constraint comes with them: only
scoring.services.writeup_edit counts up): `edited_at` is nullable, `edit_count` defaults to
0 in the database too, so rows copied in bulk without it (vulhub.seeding.bulk_load) get 0. Migrating back drops
them; the edits stay in the audit log and the event store (WriteupEdited).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0017_rank_trigger_without_join"),
    ]

    operations = [
        migrations.AddField(
            model_name="submission",
            name="edited_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="submission",
            name="edit_count",
            field=models.IntegerField(db_default=0, default=0, editable=False),
        ),
    ]
