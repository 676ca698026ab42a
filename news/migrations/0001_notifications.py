"""Notifications, announcements and the students' read marks (issue 27).

The three tables are tenant-owned: forced row-level security with the tenant_isolation
policy (vulhub 0002's rule), and composite foreign keys so that a notification refers
only to a student, a challenge and an announcement of its own tenant, and a reader row
only to a student of its own (as scoring 0002 and challenges 0005 do).
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from vulhub.lib.tenant_tables import row_level_security, same_tenant_references


TABLES = ["announcements", "notifications", "notification_readers"]
# child table, column, parent table
REFERENCES = [
    ("notifications", "user_id", "users"),
    ("notifications", "project_id", "projects"),
    ("notifications", "announcement_id", "announcements"),
    ("notification_readers", "user_id", "users"),
]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("challenges", "0006_db_defaults"),
        ("scoring", "0002_same_tenant_references"),  # uniq_users_id_tenant, uniq_projects_id_tenant
        ("tenants", "0009_db_defaults"),
        ("vulhub", "0002_sealed_tenant_context"),  # the policy's function
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Announcement",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=200)),
                ("body", models.TextField(help_text="Markdown; rendered sanitised, like a challenge's description.")),
                ("posted_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "author",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "db_table": "announcements",
                "ordering": ["-posted_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="Notification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("BADGE", "Badge earned"),
                            ("GRADE", "Graded"),
                            ("OPENING", "New challenge"),
                            ("ANNOUNCEMENT", "Announcement"),
                        ],
                        max_length=12,
                    ),
                ),
                ("title", models.CharField(max_length=300)),
                (
                    "body",
                    models.TextField(blank=True, help_text="Plain text: a grade's feedback, a badge's description."),
                ),
                ("visible_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                (
                    "email_status",
                    models.CharField(
                        choices=[
                            ("PENDING", "To send once visible"),
                            ("SENT", "Sent"),
                            ("SKIPPED", "Nobody to e-mail"),
                            ("FAILED", "Gave up"),
                        ],
                        db_default="PENDING",
                        default="PENDING",
                        max_length=8,
                    ),
                ),
                ("email_attempts", models.PositiveSmallIntegerField(db_default=0, default=0)),
                ("email_next_try_at", models.DateTimeField(blank=True, null=True)),
                ("emailed_at", models.DateTimeField(blank=True, null=True)),
                ("email_error", models.CharField(blank=True, db_default="", default="", max_length=500)),
                ("emailed_through_user_id", models.BigIntegerField(blank=True, null=True)),
                (
                    "announcement",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="news.announcement",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="challenges.project",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "notifications",
                "ordering": ["-visible_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="Reader",
            fields=[
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="news_reader",
                        serialize=False,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("read_until", models.DateTimeField(blank=True, null=True)),
                ("email_enabled", models.BooleanField(db_default=False, default=False)),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "db_table": "notification_readers",
            },
        ),
        migrations.AddIndex(
            model_name="announcement",
            index=models.Index(fields=["tenant", "-posted_at", "-id"], name="idx_announcements_recent"),
        ),
        migrations.AddConstraint(
            model_name="announcement",
            constraint=models.CheckConstraint(
                condition=models.Q(("title", ""), _negated=True),
                name="chk_announcements_title",
                violation_error_message="Give it a title.",
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("user__isnull", False)),
                fields=["user", "visible_at"],
                name="idx_notifications_user_visible",
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("user__isnull", True)),
                fields=["tenant", "visible_at"],
                name="idx_notifications_tenant_wide",
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("email_status", "PENDING")),
                fields=["visible_at"],
                name="idx_notifications_email_due",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(("kind__in", ["BADGE", "GRADE", "OPENING", "ANNOUNCEMENT"])),
                name="chk_notifications_kind",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(("email_status__in", ["PENDING", "SENT", "SKIPPED", "FAILED"])),
                name="chk_notifications_email_status",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind__in", ("BADGE", "GRADE")), ("user__isnull", False)),
                    models.Q(("kind__in", ("OPENING", "ANNOUNCEMENT")), ("user__isnull", True)),
                    _connector="OR",
                ),
                name="chk_notifications_audience",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind", "BADGE"),
                    models.Q(("kind", "GRADE"), ("project__isnull", False)),
                    models.Q(("kind", "OPENING"), ("project__isnull", False)),
                    models.Q(("announcement__isnull", False), ("kind", "ANNOUNCEMENT")),
                    _connector="OR",
                ),
                name="chk_notifications_subject",
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("kind", "OPENING")), fields=("project",), name="uniq_notifications_opening"
            ),
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("announcement__isnull", False)),
                fields=("announcement",),
                name="uniq_notifications_announcement",
            ),
        ),
        *[row_level_security(table) for table in TABLES],
        same_tenant_references(REFERENCES, referenced=("announcements",)),
    ]
