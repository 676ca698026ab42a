"""Public profiles (issue 27): a tenant setting, off by default, for its students' public pages."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0009_db_defaults"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="public_profiles",
            field=models.BooleanField(
                db_default=False,
                default=False,
                help_text="Each student has a page the class can open (name, points, rank, badges, solves, "
                "progress), linked from the leaderboard. Off: only the student and the staff open it.",
            ),
        ),
    ]
