"""Debian's Prometheus and a gunicorn of VulHub in multiprocess mode, for the tests' real scrape.

    with metrics_gunicorn(database_url, token, folder) as server, prometheus(server.port, token, folder) as prom:
        prom.wait_for("up", 1)
        prom.value('vulhub_submissions_total{kind="flag"}')

Prometheus scrapes the gunicorn every second with the bearer token (credentials_file),
keeps its data under the test's folder and answers its HTTP API on a spare loopback port.
"""

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psutil

from vulhub.ops.pg_cluster import free_port

from .servers import ROOT, binary, collect_static, fetch, production_environment, running

JOB = "vulhub"
SCRAPE_INTERVAL_S = 1
WAIT_S = 20  # how long a value may take to show in what Prometheus reads: many scrapes


@dataclass
class Gunicorn:
    port: int
    process: psutil.Process  # the master

    def workers(self) -> set[int]:
        """The pids of the live workers (a killed one gone, even before gunicorn has reaped it)."""
        alive = []
        for child in self.process.children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        return set(alive)


@contextmanager
def metrics_gunicorn(database_url: str, token: str, folder: Path, *, workers: int = 2) -> Iterator[Gunicorn]:
    """VulHub under gunicorn with the repository's gunicorn.conf.py, metrics on, counting in `folder`/multiproc."""
    config = ROOT / "gunicorn.conf.py"
    assert config.is_file(), f"{config} is missing: the multiprocess metrics need its hooks"
    collect_static()
    port = free_port()
    multiproc = folder / "multiproc"
    multiproc.mkdir()
    environment = production_environment(
        database_url,
        METRICS_ENABLED="true",
        METRICS_TOKEN=token,
        METRICS_ALLOWED_NETWORKS="",  # in by the token only, not because the scrape comes from loopback
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    command = [str(Path(sys.executable).with_name("gunicorn")), "vulhub.wsgi:application", "-c", str(config)]
    command += ["--workers", str(workers), "--bind", f"127.0.0.1:{port}"]

    def healthy() -> bool:
        return fetch(port, "localhost", "/health/")[0] == 200

    with running(command, what="gunicorn", ready=healthy, env=environment) as process:
        yield Gunicorn(port, psutil.Process(process.pid))


@dataclass
class Prometheus:
    port: int

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}{path}?{urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  (our own loopback server)
            answer = json.load(response)
        assert answer["status"] == "success", answer
        return answer["data"]

    def vector(self, query: str) -> list[dict]:
        """The instant vector of `query` now: [{"metric": {...}, "value": [time, "text"]}, ...]."""
        data = self.api("/api/v1/query", query=query)
        assert data["resultType"] == "vector", data
        return data["result"]

    def value(self, query: str) -> float | None:
        """The single value `query` reads now; None when it has no series."""
        found = self.vector(query)
        assert len(found) <= 1, f"{query} read {len(found)} series: {found}"
        return float(found[0]["value"][1]) if found else None

    def samples(self, selector: str, seconds: int) -> dict[str, list[tuple[float, float]]]:
        """The raw samples of `selector` over the last `seconds`, per series: {labels: [(time, value), ...]}."""
        data = self.api("/api/v1/query", query=f"{selector}[{seconds}s]")
        assert data["resultType"] == "matrix", data
        return {
            json.dumps(series["metric"], sort_keys=True): [(float(t), float(v)) for t, v in series["values"]]
            for series in data["result"]
        }

    def wait_for(self, query: str, expected: float, timeout: float = WAIT_S) -> None:
        """Until `query` reads `expected`; fails with the last value read."""
        deadline = time.monotonic() + timeout
        read = None
        while time.monotonic() < deadline:
            read = self.value(query)
            if read == expected:
                return
            time.sleep(0.2)
        raise AssertionError(f"Prometheus read {query} = {read} for {timeout:.0f} s, not {expected}")

    def wait_up(self, timeout: float = WAIT_S) -> None:
        """Until Prometheus reads up == 1 for VulHub; fails with its target's last scrape error."""
        try:
            self.wait_for(f'up{{job="{JOB}"}}', 1, timeout)
        except AssertionError as failure:
            targets = self.api("/api/v1/targets")["activeTargets"]
            errors = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
            raise AssertionError(f"{failure}; its targets: {errors}") from None

    def wait_for_scrapes_since(self, since: float, scrapes: int, timeout: float = WAIT_S) -> None:
        """Until Prometheus has `scrapes` successful scrapes of VulHub that began after `since` (unix time)."""
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline:
            ups = self.samples(f'up{{job="{JOB}"}}', 60)
            done = sum(1 for times in ups.values() for at, up in times if at > since and up == 1)
            if done >= scrapes:
                return
            time.sleep(0.2)
        raise AssertionError(f"Prometheus scraped VulHub successfully {done} times in {timeout:.0f} s, not {scrapes}")


def config_text(target_port: int, token_file: Path) -> str:
    """A scrape configuration as VulHub's operators write it: /metrics with the bearer token from a file."""
    return "\n".join(
        [
            "global:",
            f"  scrape_interval: {SCRAPE_INTERVAL_S}s",
            f"  scrape_timeout: {SCRAPE_INTERVAL_S}s",
            "scrape_configs:",
            f"  - job_name: {JOB}",
            "    metrics_path: /metrics",
            "    authorization:",
            "      type: Bearer",
            f"      credentials_file: {json.dumps(str(token_file))}",
            "    static_configs:",
            f'      - targets: ["127.0.0.1:{target_port}"]',
            "",
        ]
    )


@contextmanager
def prometheus(target_port: int, token: str, folder: Path) -> Iterator[Prometheus]:
    """Debian's prometheus scraping 127.0.0.1:`target_port` every second, until the block ends."""
    executable = binary("prometheus")  # fails: `make test-deps` installs it
    token_file = folder / "metrics-token"
    token_file.write_text(token)
    os.chmod(token_file, 0o600)
    config = folder / "prometheus.yml"
    config.write_text(config_text(target_port, token_file))
    port = free_port()
    server = Prometheus(port)
    command = [
        executable,
        f"--config.file={config}",
        f"--storage.tsdb.path={folder / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as response:  # noqa: S310
            return response.status == 200

    with running(command, what="prometheus", ready=ready, env={"PATH": os.environ.get("PATH", "")}):
        yield server
