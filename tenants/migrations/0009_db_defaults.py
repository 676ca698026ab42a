"""Database defaults for the columns issue 26 added: rows written in SQL (the bulk seed, an operator) get them too."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0008_content_permissions"),
    ]

    operations = [
        migrations.AlterField(
            model_name="tenant",
            name="time_zone",
            field=models.CharField(
                db_default="UTC",
                default="UTC",
                help_text="The class's time zone: the site shows every time in it.",
                max_length=64,
            ),
        ),
    ]
