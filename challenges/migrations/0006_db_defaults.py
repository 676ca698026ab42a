"""Database defaults for the columns issue 26 added: rows written in SQL (the bulk seed, an operator) get them too."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("challenges", "0005_content"),
    ]

    operations = [
        migrations.AlterField(
            model_name="project",
            name="decay_function",
            field=models.CharField(
                choices=[
                    ("LOGARITHMIC", "Logarithmic (CTFd): slow at first, then faster"),
                    ("LINEAR", "Linear: the same step for every solver"),
                ],
                db_default="LOGARITHMIC",
                default="LOGARITHMIC",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="project",
            name="scoring",
            field=models.CharField(
                choices=[("STATIC", "Fixed points"), ("DYNAMIC", "Dynamic: the value falls as students solve it")],
                db_default="STATIC",
                default="STATIC",
                max_length=8,
            ),
        ),
    ]
