"""A tenant's time zone, event window and scoreboard freeze."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0006_superuser_has_no_tenant"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="event_ends_at",
            field=models.DateTimeField(
                blank=True, help_text="No submissions after this time (empty: no end).", null=True
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="event_starts_at",
            field=models.DateTimeField(
                blank=True, help_text="No submissions before this time (empty: no start).", null=True
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="scoreboard_freeze_at",
            field=models.DateTimeField(
                blank=True,
                help_text="From this time students see the standings as they were then; instructors see live ones. Empty the field to unfreeze.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="tenant",
            name="time_zone",
            field=models.CharField(
                default="UTC", help_text="The class's time zone: the site shows every time in it.", max_length=64
            ),
        ),
        migrations.AddConstraint(
            model_name="tenant",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("event_starts_at__isnull", True),
                    ("event_ends_at__isnull", True),
                    ("event_ends_at__gt", models.F("event_starts_at")),
                    _connector="OR",
                ),
                name="chk_tenants_event_window",
                violation_error_message="The event must end after it starts.",
            ),
        ),
    ]
