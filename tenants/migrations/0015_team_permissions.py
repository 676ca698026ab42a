"""The groups' permissions on teams (issue 31): instructors and tenant admins manage their class's teams.

They create, rename, merge and dissolve teams (the delete permission: a team is
dissolved, never deleted row by row), put students in a team and move them, and read
the team standings. The admin does each through scoring.teams, audited and an event.
tenants/roles.py adds these lists to those of 0002.
"""

from django.db import migrations

from ._grants import grants

INSTRUCTOR_PERMISSIONS = [
    *[f"scoring.{action}_team" for action in ("view", "add", "change", "delete")],
    *[f"scoring.{action}_teammembership" for action in ("view", "add", "change")],
    "scoring.view_teamleaderboard",
]
TENANT_ADMIN_PERMISSIONS = INSTRUCTOR_PERMISSIONS


class Migration(migrations.Migration):
    dependencies = [("tenants", "0014_team_mode"), ("scoring", "0023_teams")]

    operations = [grants({"Instructors": INSTRUCTOR_PERMISSIONS, "Tenant admins": TENANT_ADMIN_PERMISSIONS})]
