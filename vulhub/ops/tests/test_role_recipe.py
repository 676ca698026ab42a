"""The role recipe of docs/configuration.md ("Using an existing PostgreSQL"), followed as written.

The test reads the shell block of that section and runs it, line by line, against a
stock PostgreSQL 15 cluster of its own whose TCP logins need a password (scram-sha-256),
so the recipe's passwords matter: its `psql` and `createdb` lines as the cluster's
superuser, its `export` lines as the environment (the example host replaced by the
cluster's), its `manage.py` lines as an operator's commands. The owner the recipe makes
is no superuser, as on a managed server, so whatever `migrate` and `db_roles` need of
the server must be in the recipe. Then the site's role is what the docs promise: it
logs in, is neither superuser nor BYPASSRLS, owns nothing; `check --deploy` agrees, and
`db_roles` runs again without harm.
"""

import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from vulhub.ops.pg_cluster import Cluster, find_bin_dir, hand_over
from vulhub.tests.servers import ROOT, production_environment

MAJOR = 15  # the oldest PostgreSQL the docs support, the one CI installs
DOC = ROOT / "docs" / "configuration.md"
SECTION = "## Using an existing PostgreSQL"
EXAMPLE_HOST = "db.example.edu:5432"
# The cluster's superuser comes in over its own socket; everyone else over TCP, with a password.
PASSWORDS_OVER_TCP = """\
local all postgres trust
host all all 127.0.0.1/32 scram-sha-256
"""


def recipe() -> list[str]:
    """The lines of the ```sh block in the docs' section on an existing PostgreSQL."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"{DOC.name} has no section {SECTION!r}: update this test with the docs."
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, f"The section {SECTION!r} of {DOC.name} has no ```sh block."
    return block.group(1).splitlines()


@pytest.fixture
def cluster():
    """A stock PostgreSQL 15 cluster on a spare loopback port that asks TCP logins for their password."""
    base = Path(tempfile.mkdtemp(prefix="vulhub-test-recipe-"))
    hand_over(base)
    cluster = Cluster(base / "data", bin_dir=find_bin_dir(MAJOR)).initdb()
    (cluster.datadir / "pg_hba.conf").write_text(PASSWORDS_OVER_TCP)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)


def as_superuser(cluster: Cluster, words: list[str]) -> None:
    """A `psql` or `createdb` line of the recipe, run as the cluster's superuser; a failure fails the test."""
    argv = [str(cluster.bin_dir / words[0]), *words[1:]]
    if words[0] == "psql":
        argv[1:1] = ["--no-psqlrc", "--set", "ON_ERROR_STOP=1"]  # an error is the exit status, not a line of output
    environment = {"PGHOST": str(cluster.socket_dir), "PGPORT": str(cluster.port), "PGUSER": "postgres"}
    done = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"`{shlex.join(words)}` failed: {done.stderr.strip()}"


def manage(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`manage.py *args` in a process of its own, as an operator runs it from a shell."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def follow_recipe(cluster: Cluster) -> dict[str, str]:
    """Run the docs' recipe against `cluster`; the environment its exports leave for the commands after it."""
    # the production settings of the test's own servers, with none of the test run's databases or Redis
    environment = production_environment("", REDIS_URL="")
    for name in ("DATABASE_URL", "MIGRATIONS_DATABASE_URL", "BACKUP_DATABASE_URL"):
        environment.pop(name, None)
    ran = []
    for line in recipe():
        words = shlex.split(line.replace(EXAMPLE_HOST, f"127.0.0.1:{cluster.port}"), comments=True)
        if not words:
            continue
        if words[0] in ("psql", "createdb"):
            as_superuser(cluster, words)
        elif words[0] == "export":
            name, value = words[1].split("=", 1)
            if name == "REDIS_URL":
                continue  # optional (an example host); the database cache serves without it
            assert f"@127.0.0.1:{cluster.port}/" in value, f"{name} does not name {EXAMPLE_HOST}: {value}"
            environment[name] = value
        else:
            for command in " ".join(words).split(" && "):
                program, script, *args = command.split()
                assert (program, script) == ("python", "manage.py"), f"the test cannot run `{line}`"
                done = manage(environment, *args)
                assert done.returncode == 0, f"`{command}` failed:\n{done.stdout}{done.stderr}"
                ran.append(args[0])
    assert ran == ["migrate", "db_roles"], f"the recipe ran {ran}"
    return environment


def role_facts(cluster: Cluster, role: str) -> tuple[bool, bool, int]:
    """(superuser, BYPASSRLS, objects owned in any database) of `role`, as the superuser sees them."""
    with cluster.connect("vulhub") as admin:
        return admin.execute(
            "SELECT rolsuper, rolbypassrls,"
            " (SELECT count(*) FROM pg_shdepend d WHERE d.refobjid = r.oid AND d.deptype = 'o')"
            " FROM pg_roles r WHERE r.rolname = %s",
            [role],
        ).fetchone()


def test_the_recipe_sets_up_the_roles_on_a_stock_postgresql_15(cluster):
    environment = follow_recipe(cluster)

    # the owner needed no superuser: the recipe's owner is none
    owner = psycopg.conninfo.conninfo_to_dict(environment["MIGRATIONS_DATABASE_URL"])["user"]
    assert role_facts(cluster, owner)[0] is False

    # the site's role logs in with its password (and only with it) and can reach the data
    app_url = environment["DATABASE_URL"]
    with psycopg.connect(app_url, connect_timeout=10) as app:
        login, can_write, can_truncate, keys = app.execute(
            "SELECT current_user, bool_and(has_table_privilege('users', p)),"
            " has_table_privilege('users', 'TRUNCATE'), has_table_privilege('vulhub_context_key', 'SELECT')"
            " FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p"
        ).fetchone()
    assert (can_write, can_truncate, keys) == (True, False, False)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(app_url.replace(":app-secret@", ":not-the-secret@"), connect_timeout=10)
    # row-level security holds for it: no superuser, no BYPASSRLS, owns nothing
    assert role_facts(cluster, login) == (False, False, 0)

    # the backup role logs in and reads everything
    with psycopg.connect(environment["BACKUP_DATABASE_URL"], connect_timeout=10) as backup:
        assert backup.execute("SELECT pg_has_role('pg_read_all_data', 'MEMBER')").fetchone() == (True,)
    # migrate installed the tenant context key (of this SECRET_KEY)
    with cluster.connect("vulhub") as admin:
        assert admin.execute("SELECT count(*) FROM vulhub_context_key").fetchone() == (1,)

    # the deploy checks read the database and find the site's role restricted
    checked = manage(environment, "check", "--deploy", "--fail-level", "ERROR")
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output
    assert "vulhub.W101" not in output and "vulhub.I010" not in output, output

    # db_roles again: nothing breaks, nothing widens
    again = manage(environment, "db_roles")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Database roles ready." in again.stdout
    assert role_facts(cluster, login) == (False, False, 0)
