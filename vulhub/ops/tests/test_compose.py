"""docker-compose.yml and the Dockerfile, checked as files: no Docker engine runs in CI.

What they must say: images pinned to a release, services that come back after a crash,
a database healthcheck that waits for the real server, migrations as a one-off job that
every web container waits for, declared volumes, one image family (Debian) for the
database and the web app so that a restored data directory finds its locale, and
point-in-time recovery on pgBackRest: the server archives through it, a service takes
the backups beside it, and the web container reads the same repository. Monitoring: the
exporters and Prometheus are wired to what deploy/ and docker/postgres/init.sql say
(the token, the monitoring role, the queries file, the volumes the disk alerts watch),
and Prometheus is not published beyond this machine.
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
PROMETHEUS_CONFIG = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
ALERT_RULES = (ROOT / "deploy" / "prometheus" / "alerts" / "vulhub.yml").read_text()
INIT_SQL = (ROOT / "docker" / "postgres" / "init.sql").read_text()
# name:[v]MAJOR.MINOR[.PATCH][-variant]: a release, not a moving tag like "15" or "latest"
PINNED = re.compile(r"^[a-z0-9./_-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)*$")
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
    assert set(long_running()) == {
        *("postgres", "pitr", "redis", "web", "backups", "mailer"),
        *("postgres-exporter", "redis-exporter", "node-exporter", "prometheus"),
        *("proxy", "replica"),
    }


def test_web_scales_behind_the_proxy():
    """`docker compose up --scale web=3`: web publishes no port and has no fixed name; the proxy does."""
    assert "ports" not in SERVICES["web"] and "container_name" not in SERVICES["web"]
    assert any("deploy/haproxy/haproxy.cfg" in volume for volume in SERVICES["proxy"]["volumes"])
    assert SERVICES["proxy"]["ports"]


def test_the_replica_is_a_profile_made_from_the_primary():
    assert SERVICES["replica"]["profiles"] == ["replica"]
    assert any(
        "deploy/replica/primary-init.sh" in volume and "/docker-entrypoint-initdb.d/" in volume
        for volume in SERVICES["postgres"]["volumes"]
    )


@pytest.mark.parametrize("name", ["postgres", "redis", "web", "prometheus"])
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


# --- Monitoring --------------------------------------------------------------------------


def scrape_targets() -> dict[str, list[str]]:
    """job name -> the host:port targets prometheus.yml gives it (DNS discovery as name:port)."""
    targets = {}
    for job in PROMETHEUS_CONFIG["scrape_configs"]:
        static = [t for config in job.get("static_configs", []) for t in config["targets"]]
        discovered = [f"{name}:{dns['port']}" for dns in job.get("dns_sd_configs", []) for name in dns["names"]]
        targets[job["job_name"]] = static + discovered
    return targets


def test_prometheus_scrapes_the_web_app_every_exporter_and_itself_by_their_compose_names():
    targets = scrape_targets()
    assert set(targets) == {"prometheus", "vulhub", "postgres", "redis", "node", "haproxy"}
    assert targets["prometheus"] == ["localhost:9090"]
    for job, service in [("vulhub", "web"), ("postgres", "postgres-exporter"), ("redis", "redis-exporter")]:
        ((host, port),) = [target.split(":") for target in targets[job]]
        assert host == service and service in SERVICES, job
    assert targets["vulhub"] == ["web:8000"] and "0.0.0.0:8000" in " ".join(SERVICES["web"]["command"])
    assert targets["node"] == ["node-exporter:9100"] and "node-exporter" in SERVICES
    # HAProxy's own exporter, on the port its configuration binds for it
    assert targets["haproxy"] == ["proxy:8404"] and "proxy" in SERVICES
    assert "bind :8404" in (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()


def test_prometheus_sends_the_apps_metrics_token_which_it_writes_where_its_configuration_reads_it():
    (vulhub,) = [job for job in PROMETHEUS_CONFIG["scrape_configs"] if job["job_name"] == "vulhub"]
    assert vulhub["metrics_path"] == "/metrics"
    authorization = vulhub["authorization"]
    assert authorization["type"] == "Bearer" and "credentials" not in authorization  # never in the file itself
    prometheus = SERVICES["prometheus"]
    script = " ".join(prometheus["command"])
    assert f'"$$METRICS_TOKEN" > {authorization["credentials_file"]}' in script
    assert "umask 077" in script and "exec /bin/prometheus" in script
    assert volume_at("prometheus", "/prometheus") == "prometheus_data"  # the image's own writable folder
    # the same token as the app's, with a local-trial default long enough for the app to accept
    token = prometheus["environment"]["METRICS_TOKEN"]
    assert token == SERVICES["web"]["environment"]["METRICS_TOKEN"]
    default = re.fullmatch(r"\$\{METRICS_TOKEN:-(.+)\}", token).group(1)
    assert len(default) >= 32 and "local" in default


def test_prometheus_reads_the_repositorys_configuration_and_rules_and_listens_on_this_machine_only():
    prometheus = SERVICES["prometheus"]
    assert volume_at("prometheus", "/etc/prometheus") == "./deploy/prometheus"
    script = " ".join(prometheus["command"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in script
    assert PROMETHEUS_CONFIG["rule_files"] == ["alerts/*.yml"]  # relative to the configuration's folder
    (port,) = prometheus["ports"]
    assert port.startswith("127.0.0.1:") and port.endswith(":9090")
    for name in ("postgres-exporter", "redis-exporter", "node-exporter"):
        assert "ports" not in SERVICES[name], f"{name} is reached on the compose network only"


def test_the_postgres_exporter_logs_in_as_the_monitoring_role_that_init_sql_makes():
    exporter = SERVICES["postgres-exporter"]
    url = exporter["environment"]["DATA_SOURCE_NAME"]
    user, password, database = re.fullmatch(
        r"postgresql://(\w+):(\w+)@postgres:5432/(\w+)\?sslmode=disable", url
    ).groups()
    assert database == SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    assert f"CREATE ROLE {user} LOGIN PASSWORD '{password}' NOSUPERUSER NOBYPASSRLS" in INIT_SQL
    assert f"GRANT pg_monitor TO {user};" in INIT_SQL
    assert f"GRANT CONNECT ON DATABASE {database} TO {user};" in INIT_SQL
    assert exporter["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_postgres_exporter_runs_vulhubs_queries_file():
    exporter = SERVICES["postgres-exporter"]
    (flag,) = [arg for arg in exporter["command"] if arg.startswith("--extend.query-path=")]
    path = flag.split("=", 1)[1]
    assert volume_at("postgres-exporter", path) == "./deploy/postgres-exporter/queries.yaml"
    assert (ROOT / "deploy" / "postgres-exporter" / "queries.yaml").is_file()


def test_the_redis_exporter_watches_the_compose_redis():
    assert SERVICES["redis-exporter"]["environment"]["REDIS_ADDR"] == "redis://redis:6379"


def test_node_exporter_sees_the_volumes_that_fill_up_read_only_where_the_disk_alerts_look():
    mounts = {m.split(":")[0]: m.split(":")[1:] for m in SERVICES["node-exporter"]["volumes"]}
    assert set(mounts) == {"postgres_data", "pitr", "backups"}
    assert all(options == "ro" for _, options in mounts.values())
    watched = re.findall(r'mountpoint=~"([^"]+)"', ALERT_RULES)
    assert watched and set(watched) == {"/vulhub/.+"}
    for path, _ in mounts.values():
        assert re.fullmatch(watched[0], path), path
    # the same volumes as the ones the database, its archive and the dumps write to
    assert volume_at("postgres", "/var/lib/postgresql/data") == "postgres_data"
    assert volume_at("postgres", PGBACKREST["global"]["repo1-path"]) == "pitr"
    assert volume_at("web", "/app/var/backups") == "backups"
