"""Pages that only read, served from a streaming replica (docs/scaling.md).

With REPLICA_DATABASE_URL set (a hot standby made with `pg_basebackup -R`), a GET of a
page named in REPLICA_VIEWS runs its whole request on the replica: the tenant is entered
there (row-level security holds on a standby: same roles, same policies, same sealed
context) and every query of the page, the ORM's and raw SQL alike, reads from it. The
primary serves everything else, and also those pages when

- the browser sent a write in the last READ_YOUR_WRITES_SECONDS (any POST, PUT, PATCH or
  DELETE on a tenant's site sets a cookie naming the moment the pin ends): whoever just
  submitted, graded or signed in sees what they did. The cookie costs no cache read and
  no query; forging one only moves a reader's own pages to the primary;
- the replica is further behind than REPLICA_MAX_LAG_SECONDS, or did not answer in the
  last REPLICA_RETRY_SECONDS;
- the replica fails during the page: the page is served again from the primary (these
  pages only read, so running one twice changes nothing), with no error shown.

How the request moves: `serving_from_replica()` makes the replica's connection the
request's default connection for the length of the page (Django keeps connections per
thread), so no query needs to name a database and none can slip to the primary outside
the tenant's transaction. Django's routers choose a database per query; a page here is
one transaction on one server, so it is chosen once, per request.

Why not django-multidb-router: its pinning cookie after a POST is the same idea, but it
routes query by query (our pages' raw SQL and their one tenant transaction would span
both servers) and knows nothing of lag or a replica that is down.

The lag is measured without privileges: every REPLICA_CHECK_SECONDS a worker notes the
primary's WAL position (pg_current_wal_lsn()) and asks the replica how far it has
replayed (pg_last_wal_replay_lsn()). The replica holds everything the primary had at
the latest noted moment whose position it has replayed: its lag is the time since then
(0 when it has replayed the primary's current position). A replica whose replay is
paused or whose stream broke falls behind as soon as the primary writes, and is left
alone once that is older than the limit. Each worker keeps its own few samples: nothing
another worker or node needs.
"""

import collections
import contextlib
import fnmatch
import functools
import logging
import threading
import time

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.urls import Resolver404, resolve
from prometheus_client import Counter

from . import metrics

logger = logging.getLogger(__name__)

ALIAS = "replica"
PIN_COOKIE = "vulhub_primary"
READING_METHODS = ("GET", "HEAD")
WRITING_METHODS = ("POST", "PUT", "PATCH", "DELETE")

READS = Counter(
    "vulhub_replica_reads",
    "Requests for pages that only read, by the server that answered and why (replica, pinned, lagging, down, retried).",
    ["source"],
)
for _source in ("replica", "pinned", "lagging", "down", "retried"):
    READS.labels(_source)


def configured() -> bool:
    return ALIAS in settings.DATABASES


@functools.lru_cache(maxsize=2048)
def _reads_only(path: str) -> bool:
    """Whether `path` resolves to a page named in REPLICA_VIEWS (URL names, fnmatch patterns)."""
    try:
        name = resolve(path).view_name
    except Resolver404:
        return False
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.REPLICA_VIEWS)


def pinned(request, now: float | None = None) -> bool:
    """Whether the browser wrote something in the last READ_YOUR_WRITES_SECONDS (the cookie's moment is ahead)."""
    until = request.COOKIES.get(PIN_COOKIE, "")
    if not (until.isascii() and until.isdigit()):  # "²".isdigit() too, and int() refuses it
        return False
    return int(until) > (time.time() if now is None else now)


def note_write(request) -> None:
    """A page that writes on a GET (the notification centre marks all read): pin this browser too."""
    request.vulhub_wrote = True


def pin_after_write(request, response) -> None:
    """After a write, this browser reads from the primary for READ_YOUR_WRITES_SECONDS."""
    if request.method not in WRITING_METHODS and not getattr(request, "vulhub_wrote", False):
        return
    seconds = settings.READ_YOUR_WRITES_SECONDS
    response.set_cookie(
        PIN_COOKIE,
        str(int(time.time()) + seconds + 1),
        max_age=seconds + 1,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


class Health:
    """One worker's view of the replica: how far behind it is, and whether it answered."""

    def __init__(self):
        self.lock = threading.Lock()
        self.checked_at = float("-inf")  # time.monotonic() of the last check
        self.down_until = float("-inf")
        self.lag: float | None = None  # seconds; None: not known yet
        self.samples: collections.deque[tuple[float, int]] = collections.deque()  # (moment, primary's WAL position)
        self.not_a_standby = False  # said once in the log, not on every check

    def state(self) -> str:
        """'replica' (use it), 'lagging' or 'down'; checks again when REPLICA_CHECK_SECONDS have passed."""
        now = time.monotonic()
        if now < self.down_until:
            return "down"
        with self.lock:
            if now - self.checked_at >= settings.REPLICA_CHECK_SECONDS:
                self.check(now)
            if now < self.down_until:
                return "down"
        if self.lag is None or self.lag > settings.REPLICA_MAX_LAG_SECONDS:
            return "lagging"
        return "replica"

    def failed(self, error: BaseException | None = None) -> None:
        """The replica did not answer: leave it alone for REPLICA_RETRY_SECONDS."""
        self.down_until = time.monotonic() + settings.REPLICA_RETRY_SECONDS
        self.lag = None
        with contextlib.suppress(Exception):
            connections[ALIAS].close()
        logger.warning("replica unavailable, reading from the primary: %s", error or "failed during a page")

    def check(self, now: float) -> None:
        self.checked_at = now
        if self.down_until > float("-inf") and not self.answers():
            return
        try:
            with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
                cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
                position = int(cursor.fetchone()[0])
        except DatabaseError:
            return  # the primary itself does not answer: its own error shows on the page
        self.samples.append((now, position))
        # what the decision can need: samples as old as the limit, and one before them
        horizon = now - settings.REPLICA_MAX_LAG_SECONDS - 2 * settings.REPLICA_CHECK_SECONDS
        while len(self.samples) > 2 and self.samples[1][0] < horizon:
            self.samples.popleft()
        try:
            with connections[ALIAS].cursor() as cursor:
                cursor.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() - '0/0'::pg_lsn")
                in_recovery, replayed = cursor.fetchone()
        except DatabaseError as error:
            self.failed(error)
            return
        if not in_recovery:
            # not, or no longer, a standby (promoted: a failover half done, a split brain): it
            # follows the primary no more, however current it looks; never read from it
            self.lag = None
            if not self.not_a_standby:
                logger.error("REPLICA_DATABASE_URL names a server that is not a standby: reading from the primary")
            self.not_a_standby = True
            return
        self.not_a_standby = False
        caught_up = [moment for moment, wal in self.samples if wal <= int(replayed or 0)]
        self.lag = (now - max(caught_up)) if caught_up else None

    def answers(self) -> bool:
        """After a failure, whether the replica takes a connection again, asked outside the pool.

        A pool (DB_POOL) waits its whole timeout for a server that refuses at once, and
        retries with growing pauses: a replica still down would cost a page that wait.
        """
        if "pool" not in connections[ALIAS].settings_dict["OPTIONS"]:
            return True  # an ordinary connection fails as fast as the server refuses
        try:
            psycopg.connect(**connections[ALIAS].get_connection_params()).close()
        except psycopg.Error as error:
            self.failed(error)
            return False
        self.down_until = float("-inf")
        return True


def wrote(error: BaseException) -> bool:
    """Whether `error` is the standby refusing a write (the page wrote something), not the replica failing."""
    return isinstance(getattr(error, "__cause__", None), psycopg.errors.ReadOnlySqlTransaction)


HEALTH = Health()

# Whether this thread's request reads from the replica now (serving_from_replica).
_state = threading.local()


def reading_from_replica() -> bool:
    return getattr(_state, "active", False)


def serves(request) -> bool:
    """Whether this request should run on the replica; counts why not, for a page that only reads."""
    if request.method not in READING_METHODS or not configured() or not _reads_only(request.path_info):
        return False
    if pinned(request):
        metrics.count(READS, source="pinned")
        return False
    state = HEALTH.state()
    metrics.count(READS, source=state)
    return state == "replica"


@contextlib.contextmanager
def serving_from_replica():
    """For the block, this thread's default connection is the replica's (put back after).

    Yields the list of database errors the page's statements raised there (noted as they
    happen: Django clears its own flag at the transaction's end), for the caller to serve
    the page again from the primary.
    """
    primary, replica = connections[DEFAULT_DB_ALIAS], connections[ALIAS]
    failures: list[BaseException] = []

    def note_failure(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except DatabaseError as error:
            failures.append(error)
            raise

    connections[DEFAULT_DB_ALIAS] = replica
    _state.active = True
    try:
        with replica.execute_wrapper(note_failure):
            yield failures
    finally:
        _state.active = False
        connections[DEFAULT_DB_ALIAS] = primary


def retried() -> None:
    """A page the replica failed was served again from the primary."""
    metrics.count(READS, source="retried")
