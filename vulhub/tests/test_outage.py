"""PostgreSQL and Redis restarted under VulHub: a friendly 503 meanwhile, then back by itself, nothing lost.

Every server here is the test's own, on spare loopback ports: a PostgreSQL cluster
(`initdb`, `pg_ctl`) holding a copy of the test database, a redis-server, and VulHub
under gunicorn with the production settings.

- A restart of PostgreSQL, with the connection pool and with persistent connections:
  pages answer the 503 page while it is down and `/health/` says the database is
  disconnected (JSON); once it is back, the next requests succeed with no restart of
  the app.
- The proof under load: students submit flags and read the leaderboard while Redis and
  then PostgreSQL (killed, as a crash would) restart. The test reports the requests
  made, the 5xx answers and the time to recover, and checks that every submission
  acknowledged to a student is in the database and that the leaderboard equals a
  rebuild.
"""

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from challenges.factories import ProjectFactory
from scoring.models import Submission
from tenants.factories import StudentFactory, TenantFactory
from vulhub.ops.db_roles import app_role_name

from .servers import ROOT, OwnRedis, fetch, gunicorn, manage_on, own_postgres, session_for

HOST = "alpha.localhost"
FRIENDLY = "Back in a moment"
REPORT = ROOT / "var" / "outage-report.json"


def pool_settings(pool: bool) -> dict[str, str]:
    if pool:  # a short pool timeout: a request waits 2 s for a connection, not the default 10
        return {"DB_POOL": "true", "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "2", "DB_POOL_TIMEOUT": "2"}
    return {"DB_POOL": "false", "CONN_MAX_AGE": "600"}  # persistent connections, checked before reuse


FLAG = {"flag": "FLAG{after}"}


def not_503(answer):
    """The answer, unless it is a 503 (the caller tries again)."""
    return answer if answer[0] != 503 else None


def until(check, timeout: float, pause: float = 0.2):
    """The first truthy `check()` within `timeout` seconds, else the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(pause)


def connected(answer: tuple[int, str]) -> tuple[int, str] | None:
    """The health answer when it says the database is connected, else None."""
    return answer if answer[0] == 200 and json.loads(answer[1])["database"] == "connected" else None


@pytest.fixture
def alpha_class(transactional_db):
    """A tenant with two challenges and a signed-in student, committed for the servers to copy."""
    tenant = TenantFactory(slug="alpha", domain=HOST, name="Alpha School")
    ProjectFactory(tenant=tenant, slug="warm-up", name="Warm-up", flag="FLAG{warm}")
    ProjectFactory(tenant=tenant, slug="after-the-restart", name="After the restart", flag="FLAG{after}")
    return session_for(StudentFactory(tenant=tenant), HOST)


@pytest.mark.parametrize("pool", [True, False], ids=["pool", "persistent-connections"])
def test_a_postgresql_restart_answers_503_meanwhile_and_the_app_recovers_by_itself(alpha_class, pool):
    session = alpha_class
    with own_postgres() as (cluster, name), gunicorn(cluster.url(name, app_role_name()), **pool_settings(pool)) as port:
        before = fetch(port, HOST, "/challenges/", session)
        cluster.stop("fast")
        page = fetch(port, HOST, "/challenges/warm-up/", session)
        health = fetch(port, HOST, "/health/")
        cluster.start()
        back = until(lambda: fetch(port, HOST, "/challenges/", session)[0] == 200, timeout=20)
        # The page above may have come from one gunicorn worker while the other's pool is still
        # reconnecting (2 s to get a connection, longer on a busy machine): that worker answers
        # 503 and writes nothing, and the student sends again. A 503 for a write that did commit
        # would show as 409 (already solved) on the next try, and fail below.
        solved = until(lambda: not_503(fetch(port, HOST, "/challenges/after-the-restart/", session, form=FLAG)), 20)
        # the same holds for the health check: a worker whose pool is still reconnecting says so
        health_after = until(lambda: connected(fetch(port, HOST, "/health/")), 20)

    assert before[0] == 200 and "Warm-up" in before[1]
    assert page[0] == 503 and FRIENDLY in page[1] and "Traceback" not in page[1]  # HTML, friendly
    assert health[0] == 503 and json.loads(health[1])["database"] == "disconnected"  # JSON
    assert back, "the app did not serve pages again within 20 s of PostgreSQL's return"
    assert solved, "every write was refused for 20 s after PostgreSQL's return"
    assert solved[0] == 302  # a write after the restart is acknowledged, once
    assert health_after, "/health/ did not say connected within 20 s of PostgreSQL's return"


# --- The proof under load -----------------------------------------------------------------

STUDENTS = 4
CHALLENGES = 150  # more than the students get through: they submit until the load stops
READERS = 2


@dataclass
class Answer:
    at: float
    kind: str  # "submit" or "leaderboard"
    status: int
    student: int = 0
    slug: str = ""
    right: bool = False


@dataclass
class Load:
    """Students submitting flags and reading the leaderboard until stopped; every answer kept."""

    port: int
    sessions: list[tuple[int, str]]  # (user id, session key)
    answers: list[Answer] = field(default_factory=list)
    friendly: bool = True  # every 5xx page was the 503 page
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self, answer: Answer, body: str) -> None:
        with self.lock:
            self.answers.append(answer)
            if answer.status >= 500 and (answer.status != 503 or FRIENDLY not in body):
                self.friendly = False

    def submitter(self, user_id: int, session: str) -> None:
        """Each challenge in turn: a wrong flag, then the right one until it is acknowledged or refused."""
        for number in range(CHALLENGES):
            slug = f"load-{number}"
            for flag, right in ((f"FLAG{{not-{number}}}", False), (f"FLAG{{load-{number}}}", True)):
                while not self.stop.is_set():
                    status, body = fetch(self.port, HOST, f"/challenges/{slug}/", session, form={"flag": flag})
                    self.keep(Answer(time.monotonic(), "submit", status, user_id, slug, right), body)
                    # 302: acknowledged; 409: an earlier try was committed after all (not acknowledged)
                    if status in (302, 409) or not right and status < 500:
                        break
                    time.sleep(0.1)
                time.sleep(0.1)  # about 5 submissions a second per student

    def reader(self, session: str) -> None:
        while not self.stop.is_set():
            status, body = fetch(self.port, HOST, "/leaderboard/", session)
            self.keep(Answer(time.monotonic(), "leaderboard", status), body)
            time.sleep(0.02)

    def __enter__(self):
        self.threads = [threading.Thread(target=self.submitter, args=pair) for pair in self.sessions]
        self.threads += [threading.Thread(target=self.reader, args=(self.sessions[i][1],)) for i in range(READERS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def served_since(self, moment: float, kind: str) -> float | None:
        """When the first answer of `kind` after `moment` succeeded (2xx or 3xx)."""
        with self.lock:
            times = [a.at for a in self.answers if a.kind == kind and a.at >= moment and 200 <= a.status < 400]
        return min(times, default=None)


@dataclass
class Outage:
    name: str
    down_at: float = 0.0
    up_at: float = 0.0
    recovered: dict[str, float | None] = field(default_factory=dict)

    def report(self, load: Load) -> dict:
        until = max([at for at in self.recovered.values() if at is not None], default=self.up_at)
        during = [a for a in load.answers if self.down_at <= a.at <= until]
        return {
            "down_s": round(self.up_at - self.down_at, 2),
            "recovery_after_restart_s": {
                kind: None if at is None else round(max(0.0, at - self.up_at), 2) for kind, at in self.recovered.items()
            },
            "answers_until_recovered": dict(Counter(str(a.status) for a in during)),
        }


def restart(outage: Outage, load: Load, stop, start, down_for: float = 2.0) -> None:
    outage.down_at = time.monotonic()
    stop()
    time.sleep(down_for)
    start()
    outage.up_at = time.monotonic()
    for kind in ("submit", "leaderboard"):
        until(lambda kind=kind: load.served_since(outage.up_at, kind), timeout=30)
        outage.recovered[kind] = load.served_since(outage.up_at, kind)


LEADERBOARD = "SELECT user_id, points, solves, last_scored_at FROM leaderboards ORDER BY user_id"


@pytest.fixture
def loaded_class(transactional_db):
    tenant = TenantFactory(slug="alpha", domain=HOST, name="Alpha School")
    for number in range(CHALLENGES):
        ProjectFactory(tenant=tenant, slug=f"load-{number}", name=f"Load {number}", flag=f"FLAG{{load-{number}}}")
    students = [StudentFactory(tenant=tenant) for _ in range(STUDENTS)]
    return [(student.pk, session_for(student, HOST)) for student in students]


def test_redis_and_postgresql_restarted_under_load_lose_no_acknowledged_submission(loaded_class):
    redis_server = OwnRedis()
    redis_server.start()
    cache = {"REDIS_URL": redis_server.url, **pool_settings(True)}
    outages = [Outage("redis"), Outage("postgresql")]
    try:
        with own_postgres() as (cluster, name), gunicorn(cluster.url(name, app_role_name()), **cache) as port:
            with Load(port, loaded_class) as load:
                time.sleep(3)
                restart(outages[0], load, redis_server.stop, redis_server.start)
                time.sleep(3)
                restart(outages[1], load, lambda: cluster.stop("immediate"), cluster.start)  # a crash
                time.sleep(2)
            with cluster.connect(name) as conn:
                stored = conn.execute(
                    "SELECT s.user_id, p.slug, s.status, count(*) FROM submissions s "
                    "JOIN projects p ON p.id = s.project_id GROUP BY 1, 2, 3"
                ).fetchall()
                standings = conn.execute(LEADERBOARD).fetchall()
            rebuilt_output = manage_on(cluster, name, "rebuild_leaderboards", "--no-progress")
            with cluster.connect(name) as conn:
                rebuilt = conn.execute(LEADERBOARD).fetchall()
    finally:
        redis_server.stop()

    answers = load.answers
    statuses = Counter(a.status for a in answers)
    report = {
        "requests": len(answers),
        "by_kind": dict(Counter(a.kind for a in answers)),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "5xx": sum(count for code, count in statuses.items() if code >= 500),
        "outages": {outage.name: outage.report(load) for outage in outages},
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))  # noqa: T201  (shown with -s, and with a failure)

    # Never a server error nor a dropped connection: while a server is away, the 503 page.
    assert statuses[500] == 0 and statuses[0] == 0, report
    assert load.friendly
    assert set(statuses) <= {200, 302, 409, 503}, report
    for outage in outages:
        assert all(outage.recovered.values()), f"no recovery after the {outage.name} restart: {report}"
    assert outages[1].report(load)["answers_until_recovered"].get("503"), "PostgreSQL's crash went unnoticed"

    # Nothing acknowledged is lost.
    counts = {(user, slug, status): count for user, slug, status, count in stored}
    acknowledged = Counter((a.student, a.slug, a.right) for a in answers if a.kind == "submit" and a.status == 302)
    assert acknowledged, "no submission was acknowledged"
    for (user, slug, right), count in acknowledged.items():
        status = Submission.Status.APPROVED if right else Submission.Status.REJECTED
        assert counts.get((user, slug, status), 0) >= count, f"{user} {slug} {status}: {count} acknowledged"
    assert "0 rows written, 0 removed" in rebuilt_output, rebuilt_output
    assert standings == rebuilt and len(standings) == STUDENTS
