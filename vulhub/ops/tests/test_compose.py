"""docker-compose.yml and the Dockerfile, checked as files: no Docker engine runs in CI.

What they must say: images pinned to a release, services that come back after a crash,
a database healthcheck that waits for the real server, migrations as a one-off job that
every web container waits for, declared volumes, and one image family (Debian) for the
database and the web app so that a restored data directory finds its locale.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
# name:MAJOR.MINOR[.PATCH][-variant]: a release, not a moving tag like "15" or "latest"
PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+(\.\d+)?(-[a-z0-9.]+)*$")
LOCAL_IMAGE = "vulhub-web:local"


def long_running():
    return {name: service for name, service in SERVICES.items() if service.get("restart") != "no"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_a_pinned_release_or_built_here(name):
    service = SERVICES[name]
    image = service.get("image", "")
    if "build" in service:
        assert image == LOCAL_IMAGE  # built from the Dockerfile, whose base is pinned below
    else:
        assert PINNED.match(image), f"{name}: {image!r} is not pinned to a release"


def test_the_dockerfile_builds_on_a_pinned_debian_release():
    (base,) = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.M)
    assert PINNED.match(base), base
    assert "bookworm" in base


def test_the_database_and_the_web_app_share_debian_and_its_locale():
    assert "bookworm" in SERVICES["postgres"]["image"]  # the image's default locale is en_US.utf8
    assert "locale-gen" in DOCKERFILE and "en_US.UTF-8 UTF-8" in DOCKERFILE


def test_every_service_says_what_happens_when_it_stops():
    for name, service in SERVICES.items():
        assert service.get("restart") in {"no", "always", "unless-stopped", "on-failure"}, name
    assert set(long_running()) == {"postgres", "redis", "web", "backups"}


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
    for name in ("web", "backups"):
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
