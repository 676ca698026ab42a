"""The three database roles VulHub runs as, and how a command switches between them.

- app (DATABASE_URL): what the web app runs as. Data only: SELECT, INSERT, UPDATE and
  DELETE on the tables, the sequences it draws ids from; no TRUNCATE, no DDL, never
  superuser or BYPASSRLS, and it owns nothing. Row-level security holds for it.
- owner (MIGRATIONS_DATABASE_URL): owns the schema. `migrate` and `createcachetable`
  run as it, and so do the bulk loads of `seed` and `restore` (COPY into tables with
  row-level security needs a role that bypasses it).
- backup (BACKUP_DATABASE_URL): reads everything (pg_read_all_data, BYPASSRLS) for `backup`.

`manage.py db_roles` creates the app and backup roles when they are missing (the
owner needs CREATEROLE for that, and superuser for BYPASSRLS) and grants the app
role its privileges, now and for every table the owner creates later. `migrate`
grants them again after it runs, so a new table is never out of the app's reach.
"""

import contextlib
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import sql

from tenants.rls import install_context_key

# Connection settings a role switch replaces; the database name stays (tests rename it).
SWITCHED = ("USER", "PASSWORD", "HOST", "PORT")
# The app role when DATABASE_URL names the owner too (a laptop, CI): tests and the
# embedded server still run the app as a restricted role of this name.
DEFAULT_APP_ROLE = "vulhub_app"
DEFAULT_BACKUP_ROLE = "vulhub_backup"

APP_PRIVILEGES = [
    "GRANT USAGE ON SCHEMA public TO {app}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {app}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {app}",
    # what a role may have been given before: never TRUNCATE, never ownership of the schema
    "REVOKE TRUNCATE ON ALL TABLES IN SCHEMA public FROM {app}",
]

# Then the tables the site needs less on than read and write, each as narrow as it can be
# (issue "defence in depth"; migration vulhub 0002 has the functions they rely on). A
# table that does not exist yet (a database migrated part-way) is skipped.
# The columns a NARROWED statement's {columns} names, those the table has now (a schema
# migrated back has fewer: its grant still applies)
GRANTED_COLUMNS = {
    "tenants": [
        "name",
        "registration_mode",
        "settings",
        "time_zone",
        "event_starts_at",
        "event_ends_at",
        "scoreboard_freeze_at",
        "public_profiles",
        "team_mode",
        "team_size_max",
        "updated_at",
    ],
    # a notification's text follows its challenge; its e-mail state moves as it is sent
    "notifications": [
        "title",
        "body",
        "visible_at",
        "email_status",
        "email_attempts",
        "email_next_try_at",
        "emailed_at",
        "email_error",
        "emailed_through_user_id",
    ],
    # a student's read mark and e-mail choice
    "notification_readers": ["read_until", "email_enabled"],
}

NARROWED = {
    # the keys of tenant contexts: the owner's functions only
    "vulhub_context_key": ["REVOKE ALL ON {table} FROM {app}"],
    "vulhub_seal_key": ["REVOKE ALL ON {table} FROM {app}"],
    # sessions through their key only (vulhub_session_*())
    "django_session": ["REVOKE ALL ON {table} FROM {app}"],
    # tenants: read its own row (row-level security); tenant admins edit these columns only
    "tenants": [
        "REVOKE INSERT, UPDATE, DELETE ON {table} FROM {app}",
        "GRANT UPDATE ({columns}) ON {table} TO {app}",
    ],
    # notifications and read marks: the columns the site moves, nothing else of a row
    "notifications": ["REVOKE UPDATE ON {table} FROM {app}", "GRANT UPDATE ({columns}) ON {table} TO {app}"],
    "notification_readers": ["REVOKE UPDATE ON {table} FROM {app}", "GRANT UPDATE ({columns}) ON {table} TO {app}"],
    # the audit log and the event store: written only through audit_record()
    "audit_logs": ["REVOKE INSERT, UPDATE, DELETE ON {table} FROM {app}"],
    "event_store": ["REVOKE INSERT, UPDATE, DELETE ON {table} FROM {app}"],
    "audit_chain_heads": ["REVOKE INSERT, UPDATE, DELETE ON {table} FROM {app}"],
    # permissions, groups and the schema's history: read-only to the site
    **{
        table: ["REVOKE INSERT, UPDATE, DELETE ON {table} FROM {app}"]
        for table in (
            "auth_group",
            "auth_group_permissions",
            "auth_permission",
            "django_content_type",
            "users_groups",
            "users_user_permissions",
            "django_migrations",
        )
    },
}


def role_settings(kind: str) -> dict:
    return settings.DATABASE_ROLES[kind]


# Logging in as one role and acting as another (SET ROLE on every connection), as the
# tests do: they log in as the owner and act as the app role. Django's own
# OPTIONS["assume_role"] cannot be used with its connection pool (it composes the SQL
# on a connection it does not have yet), so the role is applied here, on each
# connection_created: a new connection and every checkout from the pool.
_assumed: dict[str, str] = {}
_managed: set[str] = set()


def assume(role: str | None, alias: str = DEFAULT_DB_ALIAS) -> None:
    """From the next connection on, `alias` acts as `role` (None: as the login)."""
    _managed.add(alias)
    if role:
        _assumed[alias] = role
    else:
        _assumed.pop(alias, None)


def apply_assumed_role(sender, connection, **kwargs) -> None:
    """connection_created: give a connection the role its alias acts as now."""
    if connection.alias not in _managed:
        return
    role = _assumed.get(connection.alias)
    with connection.cursor() as cursor:
        if role:
            cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        else:
            cursor.execute("SET ROLE NONE")


@contextlib.contextmanager
def use_role(kind: str, alias: str = DEFAULT_DB_ALIAS):
    """Run the block's queries on `alias` as role `kind`.

    When the connection already logs in as that role and only acts as another one
    (assume(), as the tests do), the switch is a SET ROLE on
    this thread's connection: no new connection, so an open transaction survives.
    Otherwise every connection of `alias` is closed and reopened with the role's
    credentials (a command's whole run), and the previous ones come back after.
    """
    handler_settings = connections.settings[alias]
    target = {key: role_settings(kind).get(key) for key in SWITCHED}
    saved = {key: handler_settings.get(key) for key in SWITCHED}
    # (an unset host is the embedded server's socket, which its backend fills in itself)
    same_login = (
        target["USER"] in (None, "", saved["USER"])
        and target["HOST"] in (None, "", saved["HOST"])
        and target["PORT"] in (None, "", saved["PORT"])
    )
    if same_login:
        assumed = _assumed.get(alias)
        if not assumed or kind == "app":
            yield
            return
        connection = connections[alias]
        restore_to = assumed  # a connection opened in the block gets the role new ones get
        del _assumed[alias]  # connections opened in the block (other threads too) keep the login's role
        if connection.connection is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_user, session_user")
                current, login = cursor.fetchone()
                restore_to = None if current == login else current
                cursor.execute("SET ROLE NONE")  # the login's own role
        try:
            yield
        finally:
            _assumed[alias] = assumed
            if connection.connection is not None and not connection.connection.closed:
                with connection.cursor() as cursor:
                    if restore_to is None:
                        cursor.execute("SET ROLE NONE")
                    else:
                        cursor.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(restore_to)))
        return
    options = handler_settings.setdefault("OPTIONS", {})
    pool = options.pop("pool", None)
    _close(alias)
    handler_settings.update(target)
    try:
        yield
    finally:
        _close(alias)
        handler_settings.update(saved)
        if pool is not None:
            options["pool"] = pool


def switch_role(credentials: dict, alias: str = DEFAULT_DB_ALIAS) -> dict:
    """Make `alias` connect with `credentials` (USER, PASSWORD, HOST, PORT) from now on; returns the old ones."""
    handler_settings = connections.settings[alias]
    saved = {key: handler_settings.get(key) for key in SWITCHED}
    _close(alias)
    handler_settings.update({key: credentials[key] for key in SWITCHED if key in credentials})
    return saved


def _close(alias: str) -> None:
    connection = connections[alias]
    connection.close()
    close_pool = getattr(connection, "close_pool", None)
    if close_pool is not None:
        close_pool()


@dataclass(frozen=True)
class RoleFacts:
    name: str
    superuser: bool
    bypass_rls: bool
    owns_tables: int
    can_truncate: int


def describe_current_role(alias: str = DEFAULT_DB_ALIAS, role: str | None = None) -> RoleFacts:
    """What `role` (default: the role `alias` runs as) may do: the facts the deploy check and the tests look at."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            """
            SELECT r.rolname, r.rolsuper, r.rolbypassrls,
                   (SELECT count(*) FROM pg_class c
                    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
                      AND pg_has_role(r.oid, c.relowner, 'USAGE')),
                   (SELECT count(*) FROM pg_class c
                    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
                      AND has_table_privilege(r.oid, c.oid, 'TRUNCATE'))
            FROM pg_roles r WHERE r.rolname = coalesce(%s, current_user)
            """,
            [role],
        )
        return RoleFacts(*cursor.fetchone())


def app_role_name() -> str:
    app, owner = role_settings("app"), role_settings("owner")
    same = app.get("USER") == owner.get("USER") and app.get("HOST") == owner.get("HOST")
    return DEFAULT_APP_ROLE if same or not app.get("USER") else app["USER"]


def connection_url(*, user: str, name: str, host: str | None = None, port=None, password: str = "") -> str:
    """A DATABASE_URL for these connection settings.

    A Unix socket directory as host (the embedded server's) is percent-encoded, the form
    libpq and our settings read back; no host means 127.0.0.1.
    """
    login = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"postgres://{login}@{quote(str(host or '127.0.0.1'), safe='')}:{port or 5432}/{quote(name, safe='')}"


def ensure_roles(*, app: str, backup: str | None = None, alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Create the app (and backup) roles when missing and grant the app role its privileges.

    Runs as the owner on `alias`'s database. Returns what it did, one line each.
    """
    done = []
    with connections[alias].cursor() as cursor:
        for name, attributes in (
            (app, "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"),
            (backup, "LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE"),
        ):
            if not name:
                continue
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL(f"CREATE ROLE {{}} {attributes}").format(sql.Identifier(name)))
                done.append(f"created role {name}")
        if backup:
            # granting it needs a superuser (or its admin option): done once by whoever made the role
            cursor.execute("SELECT pg_has_role(%s, 'pg_read_all_data', 'MEMBER')", [backup])
            if not cursor.fetchone()[0]:
                cursor.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(backup)))
        cursor.execute("SELECT current_database()")
        database = cursor.fetchone()[0]
        cursor.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), sql.Identifier(app))
        )
    grant(app, alias)
    done.append(f"granted {app} data privileges on {database}")
    if install_context_key(alias):
        done.append("installed the tenant context key (from SECRET_KEY)")
    return done


# Functions PUBLIC may not run, granted to the app role alone: the waiting write-ups' totals
# across tenants for /metrics (migration scoring 0021).
GRANTED_FUNCTIONS = ["vulhub_pending_writeups()"]


def grant(app: str, alias: str = DEFAULT_DB_ALIAS) -> None:
    """Give the app role its privileges: data on every table, then less on the NARROWED ones."""
    with connections[alias].cursor() as cursor:
        for statement in APP_PRIVILEGES:
            cursor.execute(sql.SQL(statement).format(app=sql.Identifier(app)))
        cursor.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)",
            [list(NARROWED)],
        )
        for (table,) in cursor.fetchall():
            columns = _existing_columns(cursor, table, GRANTED_COLUMNS.get(table, []))
            for statement in NARROWED[table]:
                cursor.execute(
                    sql.SQL(statement).format(
                        table=sql.Identifier(table),
                        app=sql.Identifier(app),
                        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                    )
                )
        for function in GRANTED_FUNCTIONS:  # those that exist yet
            cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [function])
            if cursor.fetchone()[0]:
                cursor.execute(
                    sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(function), sql.Identifier(app))
                )


def _existing_columns(cursor, table: str, wanted: list[str]) -> list[str]:
    if not wanted:
        return []
    cursor.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s AND column_name = ANY(%s)",
        [table, wanted],
    )
    present = {name for (name,) in cursor.fetchall()}
    return [name for name in wanted if name in present]


def grant_app_privileges(alias: str = DEFAULT_DB_ALIAS) -> None:
    """After a migration: the app role gets what the new tables need (when it exists), and
    the database the tenant context key of this SECRET_KEY."""
    app = app_role_name()
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app])
        exists = cursor.fetchone() is not None
    if exists:
        grant(app, alias)
    install_context_key(alias)
