"""Challenge content: files, hints, prerequisites, open and close times, dynamic scoring.

The three new tables are tenant-owned: forced row-level security with the
tenant_isolation policy (vulhub 0002's rule), and composite foreign keys so that a
file, a hint or a prerequisite refers only to challenges of its own tenant
(as scoring 0002 does for submissions).
"""

import challenges.models
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from vulhub.lib.tenant_tables import row_level_security, same_tenant_references


TABLES = ["challenge_files", "hints", "project_prerequisites"]
# child table, column, parent table
REFERENCES = [
    ("challenge_files", "project_id", "projects"),
    ("hints", "project_id", "projects"),
    ("project_prerequisites", "project_id", "projects"),
    ("project_prerequisites", "required_id", "projects"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("challenges", "0004_drop_tenant_only_index"),
        ("tenants", "0007_event_window_time_zone"),
        ("vulhub", "0002_sealed_tenant_context"),  # the policy's function
    ]

    operations = [
        migrations.AddField(
            model_name="project",
            name="closes_at",
            field=models.DateTimeField(
                blank=True, help_text="Read-only after this time: students see it but cannot submit.", null=True
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="decay",
            field=models.IntegerField(
                blank=True,
                help_text="Dynamic scoring. Logarithmic: the number of solvers (after the first) at which the value reaches the minimum. Linear: the points the value loses with each solver.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="decay_function",
            field=models.CharField(
                choices=[
                    ("LOGARITHMIC", "Logarithmic (CTFd): slow at first, then faster"),
                    ("LINEAR", "Linear: the same step for every solver"),
                ],
                default="LOGARITHMIC",
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="initial_points",
            field=models.IntegerField(
                blank=True, help_text="Dynamic scoring: the value before anyone solves it.", null=True
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="minimum_points",
            field=models.IntegerField(
                blank=True, help_text="Dynamic scoring: the value never falls below this.", null=True
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="opens_at",
            field=models.DateTimeField(blank=True, help_text="Hidden from students before this time.", null=True),
        ),
        migrations.AddField(
            model_name="project",
            name="scoring",
            field=models.CharField(
                choices=[("STATIC", "Fixed points"), ("DYNAMIC", "Dynamic: the value falls as students solve it")],
                default="STATIC",
                max_length=8,
            ),
        ),
        migrations.AlterField(
            model_name="project",
            name="points",
            field=models.IntegerField(
                default=100,
                help_text="What a full solve earns. For a dynamic challenge: its current value, kept by VulHub.",
            ),
        ),
        migrations.CreateModel(
            name="ChallengeFile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(help_text="The name students download it under.", max_length=200)),
                (
                    "file",
                    models.FileField(
                        max_length=400,
                        storage=challenges.models.attachment_storage,
                        upload_to=challenges.models.attachment_path,
                    ),
                ),
                ("size", models.BigIntegerField(editable=False)),
                ("sha256", models.CharField(editable=False, max_length=64)),
                ("uploaded_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="files", to="challenges.project"
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
                "db_table": "challenge_files",
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="Hint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveSmallIntegerField(default=1, help_text="Hints are shown in this order.")),
                ("text", models.TextField(help_text="Markdown; rendered sanitised.")),
                ("cost", models.IntegerField(default=0, help_text="Points taken when a student unlocks it (0: free).")),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="hints", to="challenges.project"
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
                "db_table": "hints",
                "ordering": ["position", "id"],
            },
        ),
        migrations.CreateModel(
            name="Prerequisite",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="prerequisite_links",
                        to="challenges.project",
                    ),
                ),
                (
                    "required",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="challenges.project"
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
                "db_table": "project_prerequisites",
            },
        ),
        migrations.AddField(
            model_name="project",
            name="prerequisites",
            field=models.ManyToManyField(
                blank=True,
                help_text="Challenges a student must solve before this one opens to them.",
                related_name="unlocks",
                through="challenges.Prerequisite",
                through_fields=("project", "required"),
                to="challenges.project",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("scoring__in", ["STATIC", "DYNAMIC"])), name="chk_projects_scoring"
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(("decay_function__in", ["LOGARITHMIC", "LINEAR"])),
                name="chk_projects_decay_function",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("scoring", "STATIC"),
                    models.Q(
                        ("decay__gt", 0),
                        ("decay__isnull", False),
                        ("initial_points__isnull", False),
                        ("minimum_points__gte", 0),
                        ("minimum_points__isnull", False),
                        ("minimum_points__lte", models.F("initial_points")),
                    ),
                    _connector="OR",
                ),
                name="chk_projects_dynamic_values",
                violation_error_message="A dynamic challenge needs an initial value, a minimum from 0 up to the initial value, and a decay above 0.",
            ),
        ),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("opens_at__isnull", True),
                    ("closes_at__isnull", True),
                    ("closes_at__gt", models.F("opens_at")),
                    _connector="OR",
                ),
                name="chk_projects_window",
                violation_error_message="The close time must come after the open time.",
            ),
        ),
        migrations.AddIndex(
            model_name="challengefile",
            index=models.Index(fields=["tenant", "project"], name="idx_challenge_files_tenant"),
        ),
        migrations.AddConstraint(
            model_name="challengefile",
            constraint=models.UniqueConstraint(
                fields=("project", "name"),
                name="uniq_challenge_files_name",
                violation_error_message="This challenge already has a file with this name.",
            ),
        ),
        migrations.AddConstraint(
            model_name="challengefile",
            constraint=models.CheckConstraint(
                condition=models.Q(("size__gt", 0)), name="chk_challenge_files_not_empty"
            ),
        ),
        migrations.AddIndex(
            model_name="hint",
            index=models.Index(fields=["tenant", "project"], name="idx_hints_tenant_project"),
        ),
        migrations.AddConstraint(
            model_name="hint",
            constraint=models.CheckConstraint(
                condition=models.Q(("cost__gte", 0)),
                name="chk_hints_cost_positive",
                violation_error_message="A cost is 0 or more.",
            ),
        ),
        migrations.AddIndex(
            model_name="prerequisite",
            index=models.Index(fields=["tenant", "project"], name="idx_prerequisites_tenant"),
        ),
        migrations.AddConstraint(
            model_name="prerequisite",
            constraint=models.UniqueConstraint(
                fields=("project", "required"),
                name="uniq_project_prerequisites",
                violation_error_message="This challenge already requires that one.",
            ),
        ),
        migrations.AddConstraint(
            model_name="prerequisite",
            constraint=models.CheckConstraint(
                condition=models.Q(("project", models.F("required")), _negated=True),
                name="chk_prerequisite_not_itself",
                violation_error_message="A challenge cannot require itself.",
            ),
        ),
        *[row_level_security(table) for table in TABLES],
        # hints get a unique (id, tenant_id): hint_unlocks (scoring 0015) refers to a hint of its own tenant
        same_tenant_references(REFERENCES, referenced=("hints",)),
    ]
