"""A real scrape: Debian's Prometheus reads VulHub's /metrics from gunicorn, as an operator's would.

VulHub runs under gunicorn with the repository's gunicorn.conf.py (two sync workers, the
client's multiprocess mode, its files in a folder of the test's own) against the test's
database, with a METRICS_TOKEN and no allowed network. Prometheus scrapes it every second
with that token from a credentials file. Through Prometheus' HTTP API the test reads that
the target is up, that a wrong flag and a right one posted through gunicorn each count
once in vulhub_submissions_total, and that killing the workers that counted them (gunicorn
starts new ones) loses nothing: no sample Prometheus takes afterwards is lower, and
Prometheus sees no counter reset.
"""

import os
import secrets
import signal
import time

import pytest

from challenges.factories import ProjectFactory
from scoring.models import Submission
from tenants.factories import StudentFactory, TenantFactory

from .prometheus_server import JOB, metrics_gunicorn, prometheus
from .servers import app_database_url, fetch, session_for

FLAG = "FLAG{scraped-by-prometheus}"
SUBMISSIONS = f'vulhub_submissions_total{{job="{JOB}",kind="flag"}}'


def outcome(name: str) -> str:
    return f'vulhub_submissions_total{{job="{JOB}",kind="flag",outcome="{name}"}}'


def replace_worker(server, pid: int, timeout: float = 20) -> float:
    """SIGKILL worker `pid` and wait for gunicorn to start another; returns when it was killed (unix time)."""
    before = server.workers()
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = server.workers()
        if pid not in now and len(now) == len(before):
            return killed_at
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not replace worker {pid} within {timeout:.0f} s: workers {server.workers()}")


@pytest.mark.django_db(transaction=True)
def test_prometheus_reads_up_and_each_submission_once_and_the_counts_survive_worker_restarts(tmp_path):
    tenant = TenantFactory(slug="scraped", domain="scraped.localhost")
    student = StudentFactory(tenant=tenant)
    ProjectFactory(tenant=tenant, slug="scraped-flag", flag=FLAG)
    session = session_for(student, tenant.domain)
    token = secrets.token_urlsafe(32)

    with (
        metrics_gunicorn(app_database_url(), token, tmp_path) as server,
        prometheus(server.port, token, tmp_path) as prom,
    ):
        prom.wait_up()
        # what Prometheus got is what the token opens: without it /metrics is not there
        assert fetch(server.port, "localhost", "/metrics")[0] == 404
        assert prom.value(f"sum({SUBMISSIONS})") == 0  # nothing submitted yet: its series are there, at 0

        wrong = fetch(server.port, tenant.domain, "/challenges/scraped-flag/", session, form={"flag": "FLAG{nope}"})
        assert wrong[0] == 302, wrong
        prom.wait_for(outcome("wrong"), 1)
        right = fetch(server.port, tenant.domain, "/challenges/scraped-flag/", session, form={"flag": FLAG})
        assert right[0] == 302, right
        prom.wait_for(outcome("correct"), 1)
        assert prom.value(outcome("wrong")) == 1  # still one: each answer counted once, by one worker
        assert sorted(Submission.objects.values_list("status", flat=True)) == ["APPROVED", "REJECTED"]

        # whichever worker counted them, it dies: each of the first workers is killed in turn
        first_workers = server.workers()
        assert len(first_workers) == 2, first_workers
        first_kill = None
        for pid in sorted(first_workers):
            killed_at = replace_worker(server, pid)
            first_kill = first_kill or killed_at
            prom.wait_for_scrapes_since(killed_at, scrapes=3)
        assert not server.workers() & first_workers  # every scrape since the last kill: new workers only

        after_kills = prom.samples(SUBMISSIONS, 60)
        assert len(after_kills) == 2, after_kills  # correct and wrong, one series each
        for series, samples in after_kills.items():
            since = [value for at, value in samples if at > first_kill]
            assert since, f"no sample of {series} since the first kill"
            assert since == [1.0] * len(since), f"{series} read {since} after the workers were killed"
        assert prom.value(outcome("wrong")) == 1
        assert prom.value(outcome("correct")) == 1
        assert prom.value(f"sum(resets({SUBMISSIONS}[2m]))") == 0
