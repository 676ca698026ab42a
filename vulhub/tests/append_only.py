"""Test-suite support for the append-only tables."""

from django.db import connection

from vulhub.ops.db_roles import use_role

# TRUNCATE guards of the append-only tables (audit/migrations/0003_append_only_triggers).
TRUNCATE_GUARDS = [
    ("audit_logs", "audit_logs_no_truncate"),
    ("event_store", "event_store_no_truncate"),
    ("audit_chain_heads", "audit_chain_heads_no_truncate"),
]


def allow_test_flush(enable_guards: bool = False) -> None:
    """Let Django's test flush (TRUNCATE) empty the append-only tables of the test database.

    Transactional tests end with a flush. Only the TRUNCATE guards are switched off,
    only in the test database; the tests of the guards switch them back on inside
    their own transaction.
    """
    name = connection.settings_dict["NAME"]
    if (
        not enable_guards
        and name != connection.settings_dict.get("TEST", {}).get("NAME")
        and not name.startswith("test")
    ):
        raise RuntimeError(f"Refusing to switch off the TRUNCATE guards of {name!r}: not a test database.")
    verb = "ENABLE" if enable_guards else "DISABLE"
    with use_role("owner"), connection.cursor() as cursor:  # only the tables' owner may
        for table, trigger in TRUNCATE_GUARDS:
            cursor.execute(f"ALTER TABLE {table} {verb} TRIGGER {trigger}")
