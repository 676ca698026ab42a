"""Instructors read their class roster: they view the tenant's users (tenant admins already edit them).

Reading users also lets instructors search students when they award a badge (the admin's
autocomplete asks for the view permission of the model it searches).
"""

from django.db import migrations

from ._grants import grants

INSTRUCTOR_PERMISSIONS = ["tenants.view_user"]
TENANT_ADMIN_PERMISSIONS: list[str] = []  # they have had it since 0002


class Migration(migrations.Migration):
    dependencies = [("tenants", "0011_news_permissions")]

    operations = [grants({"Instructors": INSTRUCTOR_PERMISSIONS})]
