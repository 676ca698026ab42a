"""docker-compose.yml and the Dockerfile, checked as files: no Docker engine runs in CI.

What they must say: images pinned to a release, services that come back after a crash,
a database healthcheck that waits for the real server, migrations as a one-off job that
every web container waits for, declared volumes, one image family (Debian) for the
database and the web app so that a restored data directory finds its locale, and
point-in-time recovery on pgBackRest: the server archives through it, a service takes
the backups beside it, and the web container reads the same repository.
"""

import configparser
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DATABASE_DOCKERFILE = (ROOT / "docker" / "postgres" / "Dockerfile").read_text()
PGBACKREST = configparser.ConfigParser(interpolation=None)
PGBACKREST.read(ROOT / "docker" / "postgres" / "pgbackrest.conf")
# name:MAJOR.MINOR[.PATCH][-variant]: a release, not a moving tag like "15" or "latest"
PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9.]+)*$")
LOCAL_IMAGES = {".": "vulhub-web:local", "./docker/postgres": "vulhub-postgres:local"}


def long_running():
    return {name: service for name, service in SERVICES.items() if service.get("restart") != "no"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_a_pinned_release_or_built_here(name):
    service = SERVICES[name]
    image = service.get("image", "")
    if "build" in service:
        assert image == LOCAL_IMAGES[service["build"]]  # built here, from a Dockerfile whose base is pinned below
    else:
        assert PINNED.match(image), f"{name}: {image!r} is not pinned to a release"


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, DATABASE_DOCKERFILE], ids=["web", "database"])
def test_the_dockerfiles_build_on_a_pinned_debian_release_with_pgbackrest(dockerfile):
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert PINNED.match(base), base
    assert "bookworm" in base
    assert re.search(r"apt-get install [^&]*\bpgbackrest\b", dockerfile)


def test_the_database_and_the_web_app_share_debian_and_its_locale():
    assert "FROM postgres:15" in DATABASE_DOCKERFILE  # Debian's build; its default locale is en_US.utf8
    assert "locale-gen" in DOCKERFILE and "en_US.UTF-8 UTF-8" in DOCKERFILE


def test_every_service_says_what_happens_when_it_stops():
    for name, service in SERVICES.items():
        assert service.get("restart") in {"no", "always", "unless-stopped", "on-failure"}, name
    assert set(long_running()) == {"postgres", "pitr", "redis", "web", "backups", "mailer"}


@pytest.mark.parametrize("name", ["postgres", "redis", "web"])
def test_servers_have_a_healthcheck(name):
    check = SERVICES[name]["healthcheck"]
    assert check["test"] and check["interval"] and check["retries"]


def test_the_database_is_healthy_only_when_it_answers_over_tcp():
    (command,) = [part for part in SERVICES["postgres"]["healthcheck"]["test"] if "pg_isready" in part]
    assert "-h localhost" in command  # during initialisation the server listens on its socket only


def test_migrations_run_once_as_a_job_that_the_web_containers_wait_for():
    migrate = SERVICES["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["command"][-3:] == ["manage.py", "migrate", "--no-input"]
    for name in ("web", "backups", "mailer"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert "migrate" not in " ".join(SERVICES[name]["command"]), name
    assert "migrate --no-input &&" not in DOCKERFILE  # a container of the image never migrates by itself
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_app_containers_share_one_configuration():
    environments = [SERVICES[name]["environment"] for name in ("migrate", "web", "backups")]
    assert environments[0] == environments[1] == environments[2]
    assert environments[0]["DATABASE_URL"].startswith("postgres://vulhub_app:")  # the site never as the owner


def test_backups_are_scheduled_with_retention_and_a_restore_drill():
    command = " ".join(SERVICES["backups"]["command"])
    assert "manage.py backup --keep" in command
    assert "manage.py backup --verify" in command
    assert "sleep" in command


def test_every_named_volume_is_declared_and_used():
    used = {
        mount.split(":", 1)[0]
        for service in SERVICES.values()
        for mount in service.get("volumes", [])
        if not mount.startswith((".", "/"))
    }
    assert used == set(COMPOSE["volumes"])


def volume_at(service: str, path: str) -> str:
    (volume,) = [m.split(":")[0] for m in SERVICES[service]["volumes"] if m.split(":")[1] == path]
    return volume


def test_the_server_archives_through_pgbackrest_into_the_repository_volume():
    command = SERVICES["postgres"]["command"]
    (stanza,) = [name for name in PGBACKREST.sections() if name != "global"]
    assert f"archive_command=pgbackrest --stanza={stanza} archive-push %p" in command
    assert "archive_mode=on" in command and "wal_level=replica" in command
    assert volume_at("postgres", PGBACKREST["global"]["repo1-path"]) == "pitr"
    assert PGBACKREST["global"]["compress-type"] == "zst" and int(PGBACKREST["global"]["repo1-retention-full"]) >= 1


def test_the_pitr_service_backs_up_beside_the_database_on_a_schedule():
    pitr = SERVICES["pitr"]
    (stanza,) = [name for name in PGBACKREST.sections() if name != "global"]
    data, socket = PGBACKREST[stanza]["pg1-path"], PGBACKREST[stanza]["pg1-socket-path"]
    for path in (data, socket, PGBACKREST["global"]["repo1-path"]):  # the same files as the server's
        assert volume_at("pitr", path) == volume_at("postgres", path), path
    assert volume_at("postgres", data) == "postgres_data"
    assert PGBACKREST[stanza]["pg1-user"] == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    script = " ".join(pitr["command"])
    assert "stanza-create" in script and "check" in script and "sleep" in script
    assert "kind=full" in script and "kind=diff" in script and "--type=$$kind backup" in script
    assert pitr["user"] == "postgres" and pitr["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_web_container_reads_the_same_repository_and_configuration():
    environment = SERVICES["web"]["environment"]
    assert volume_at("web", environment["PITR_DIR"]) == "pitr"
    assert environment["PITR_DIR"] == PGBACKREST["global"]["repo1-path"]
    assert volume_at("web", environment["PITR_CONFIG"]) == "./docker/postgres/pgbackrest.conf"
