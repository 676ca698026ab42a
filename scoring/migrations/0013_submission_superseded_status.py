"""A submission can be SUPERSEDED: an approved write-up whose grade a better one replaced.

The value is ten characters, so the column grows from varchar(8) to varchar(10) (no
table rewrite in PostgreSQL: a longer varchar is binary-compatible) and the check
constraint on status takes the new value. Migrating back turns SUPERSEDED rows into
REJECTED ones (they count for nothing either way) before the column narrows again.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scoring", "0012_stored_ranks"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="submission",
            name="chk_submissions_status",
        ),
        migrations.AlterField(
            model_name="submission",
            name="status",
            field=models.CharField(
                choices=[
                    ("PENDING", "Pending"),
                    ("APPROVED", "Approved"),
                    ("REJECTED", "Rejected"),
                    ("SUPERSEDED", "Superseded by a better grade"),
                ],
                default="PENDING",
                max_length=10,
            ),
        ),
        migrations.RunSQL(
            migrations.RunSQL.noop,
            reverse_sql="UPDATE submissions SET status = 'REJECTED' WHERE status = 'SUPERSEDED'",
        ),
        migrations.AddConstraint(
            model_name="submission",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["PENDING", "APPROVED", "REJECTED", "SUPERSEDED"])),
                name="chk_submissions_status",
            ),
        ),
    ]
