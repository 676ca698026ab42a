"""Choice fields are checked by the database too: a raw write of an unknown value fails."""

import pytest
from django.db import IntegrityError, connection, transaction

from scoring.factories import BadgeFactory, SubmissionFactory


def update(sql, params):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.parametrize(
    ("table", "column", "constraint"),
    [
        ("submissions", "status", "chk_submissions_status"),
        ("submissions", "kind", "chk_submissions_kind"),
        ("projects", "difficulty", "chk_projects_difficulty"),
        ("users", "role", "chk_users_role"),
        ("tenants", "registration_mode", "chk_tenants_registration_mode"),
        ("badges", "rule_kind", "chk_badges_rule_kind"),
    ],
)
def test_an_unknown_choice_is_rejected(table, column, constraint, db):
    submission = SubmissionFactory(approved=True)  # scored, so only the choice is wrong
    BadgeFactory(tenant=submission.tenant)

    with pytest.raises(IntegrityError, match=constraint):
        update(f"UPDATE {table} SET {column} = 'BOGUS'", [])


def test_a_badge_without_a_rule_is_allowed(db):
    badge = BadgeFactory(rule_kind="")

    update("UPDATE badges SET rule_kind = '' WHERE id = %s", [badge.pk])
