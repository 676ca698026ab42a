"""Faults under load, nothing lost: a primary, its hot standby, two web nodes behind HAProxy.

The whole of issue 30's picture on this machine: VulHub's two gunicorn nodes (the app
role, reads of pages that only read going to the standby, vulhub/lib/replica.py) behind
the shipped HAProxy configuration (vulhub/tests/haproxy.py), and a bounded load: each
student in a thread of their own answers every challenge with its flag, and after each
answer reads the challenge page and the leaderboard. While it runs, one thing breaks at a
time, each at a set share of the answers:

1. one web node is killed (SIGKILL, its master and workers at once): only requests in
   flight may fail, and every answer acknowledged (302) is in the database;
2. replay is paused on the standby (pg_wal_replay_pause()): it keeps serving others'
   reads, yet a student never sees a page without the answer they just made (they read
   from the primary after writing);
3. the standby is stopped: reads move to the primary with no 5xx.
"""

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psutil
import pytest

from challenges.factories import ProjectFactory
from scoring.models import Submission
from tenants.factories import StudentFactory, TenantFactory

from .haproxy import haproxy
from .replica_servers import Browser, primary_and_standby
from .servers import gunicorn, session_for

STUDENTS = 6
READERS = 2
CHALLENGES = 12
SOLVED = "You solved this challenge."


@dataclass
class Tally:
    """What the load saw, shared by the students' threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: int = 0  # acknowledged
    acknowledged: set = field(default_factory=set)  # (student email, challenge slug)
    failed: list = field(default_factory=list)  # (phase, method, path, status)
    unseen: list = field(default_factory=list)  # answers the next page did not show
    reads: int = 0  # by the students who only read
    phase: str = "calm"

    def failure(self, *what) -> None:
        with self.lock:
            self.failed.append((self.phase, *what))


def play(port: int, host: str, email: str, session: str, slugs: list[str], tally: Tally) -> None:
    """One student: every challenge's flag, each followed by the challenge page and the leaderboard."""
    browser = Browser(port, host, {"sessionid": session})
    for slug in slugs:
        status, _ = browser.request(f"/challenges/{slug}/", form={"flag": flag(slug)})
        if status != 302:
            tally.failure("POST", slug, status)
            continue
        with tally.lock:
            tally.answers += 1
            tally.acknowledged.add((email, slug))
        status, page = browser.request(f"/challenges/{slug}/")
        if status != 200:
            tally.failure("GET", slug, status)
        elif SOLVED not in page:
            with tally.lock:
                tally.unseen.append((tally.phase, email, slug))
        status, _ = browser.request("/leaderboard/")
        if status != 200:
            tally.failure("GET", "/leaderboard/", status)


def read(port: int, host: str, session: str, tally: Tally, done: threading.Event) -> None:
    """A student who only reads (from the replica while it serves) until the others have played."""
    browser = Browser(port, host, {"sessionid": session})
    while not done.is_set():
        for path in ("/leaderboard/", "/challenges/", "/badges/", "/"):
            status, _ = browser.request(path)
            with tally.lock:
                tally.reads += 1
            if status != 200:
                tally.failure("GET", path, status)


def flag(slug: str) -> str:
    return f"FLAG{{{slug}}}"


def kill_node(port: int) -> int:
    """SIGKILL the gunicorn serving `port`: its master and every worker at once; how many processes."""
    node = [p for p in psutil.process_iter(["cmdline"]) if f"127.0.0.1:{port}" in " ".join(p.info["cmdline"] or [])]
    [master] = [p for p in node if p.ppid() not in {q.pid for q in node}]  # its workers share its command line
    doomed = [master, *master.children(recursive=True)]
    for process in doomed:
        os.kill(process.pid, signal.SIGKILL)
    return len(doomed)


@pytest.mark.django_db(transaction=True)
def test_a_node_killed_a_replica_paused_then_stopped_lose_no_acknowledged_answer_and_show_no_error():
    tenant = TenantFactory(slug="faults", domain="faults.localhost")
    slugs = [f"fault-{i:02d}" for i in range(CHALLENGES)]
    for slug in slugs:
        ProjectFactory(tenant=tenant, slug=slug, flag=flag(slug))
    students = [StudentFactory(tenant=tenant) for _ in range(STUDENTS + READERS)]
    sessions = {s.email: session_for(s, tenant.domain) for s in students}
    readers = [sessions.pop(s.email) for s in students[STUDENTS:]]
    tally, played = Tally(), threading.Event()
    total = STUDENTS * CHALLENGES

    with primary_and_standby() as pair:
        node = {
            "REPLICA_DATABASE_URL": pair.app_url(pair.standby),
            "REPLICA_MAX_LAG_SECONDS": "600",  # only a write, a pause or a stop moves a reader here
            "REPLICA_CHECK_SECONDS": "0.2",
            "REPLICA_RETRY_SECONDS": "1",
        }
        with (
            gunicorn(pair.app_url(pair.primary), workers=2, **node) as first,
            gunicorn(pair.app_url(pair.primary), workers=2, **node) as second,
            haproxy([first, second]) as proxy,
            ThreadPoolExecutor(STUDENTS + READERS) as pool,
        ):
            runs = [
                pool.submit(play, proxy, tenant.domain, email, session, slugs, tally)
                for email, session in sessions.items()
            ]
            reading = [pool.submit(read, proxy, tenant.domain, session, tally, played) for session in readers]

            def once(share: float, phase: str, fault) -> None:
                while tally.answers < share * total and not all(run.done() for run in runs):
                    time.sleep(0.02)
                tally.phase = phase
                fault()

            once(0.25, "node killed", lambda: kill_node(first))
            once(0.5, "replay paused", lambda: pair.replay(paused=True))
            once(0.75, "replica stopped", lambda: pair.standby.stop("fast"))
            for run in runs:
                run.result()
            played.set()
            for run in reading:
                run.result()

        # on the primary (the test's own database is not the one the site wrote to)
        with pair.primary.connect(pair.name) as conn:
            stored = set(
                conn.execute(
                    """
                    SELECT u.email, p.slug FROM submissions s
                    JOIN users u ON u.id = s.user_id JOIN projects p ON p.id = s.project_id
                    WHERE s.status = %s
                    """,
                    [Submission.Status.APPROVED],
                ).fetchall()
            )

    # every acknowledged answer is stored; what failed was in flight on the killed node
    assert tally.acknowledged <= stored, tally.acknowledged - stored
    assert all(phase == "node killed" for phase, *_ in tally.failed), tally.failed
    # at most one request in flight per student
    assert len(tally.failed) <= STUDENTS + READERS, tally.failed
    assert tally.reads > 0
    assert tally.answers >= total - STUDENTS
    # read-your-writes: each answer showed on the student's next page, paused replay or not
    assert tally.unseen == []
