"""gunicorn's settings for VulHub, read from the working directory (`gunicorn vulhub.wsgi`).

Metrics from every worker (docs/monitoring.md): prometheus_client's multiprocess mode.
Each worker writes its counts to files in PROMETHEUS_MULTIPROC_DIR, and /metrics, served
by whichever worker takes the scrape, sums them all. Unless the variable names a folder,
each gunicorn gets a new empty one of its own in the system's temporary folder, removed
when it stops: counts start from zero with the node, as Prometheus expects of a counter,
and two gunicorns on one machine never mix (or delete) each other's files. A worker that
exits or is killed leaves its files, so what it counted stays in the sums; its live gauges
are dropped. Those files are read on every scrape: after some hundreds of worker deaths
(timeouts, crashes) /metrics slows down (about 40 ms at 50 dead workers, 160 ms at 200);
restarting gunicorn starts a new folder. The variable is set here, in the master, before any worker imports
prometheus_client. METRICS_ENABLED=false (in the environment) leaves it unset.
"""

import os
import shutil
import subprocess
import sys
import tempfile

_metrics_on = os.environ.get("METRICS_ENABLED", "true").strip().lower() not in ("false", "0", "no", "off")
# the folder this gunicorn made (also after a reload, which reads this file again: SIGHUP)
_own_folder = os.environ.get("VULHUB_OWN_METRICS_DIR") or None
if not _metrics_on:
    # prometheus_client takes the variable's mere presence, even empty, for multiprocess mode
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
elif not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _own_folder = tempfile.mkdtemp(prefix="vulhub-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ["VULHUB_OWN_METRICS_DIR"] = _own_folder


def on_starting(server):
    """Checked once, before any worker starts: the schema (below), then the metrics folder."""
    refuse_an_unknown_schema(server)
    empty_the_named_metrics_folder()


def refuse_an_unknown_schema(server):
    """A database without a migration of this code: one line, and gunicorn stops with exit 3.

    Each worker checks again as it loads the site (vulhub/wsgi.py), but several workers
    failing at once make gunicorn itself end in a traceback (exit 1); asked here, in a
    process of its own (vulhub/ops/schema.py), no worker starts at all. Only for VulHub's
    own application: another served from this folder (a test's S3 stand-in) is not asked.
    """
    if not str(getattr(server.app, "app_uri", None) or server.cfg.wsgi_app or "").startswith("vulhub.wsgi"):
        return
    try:
        done = subprocess.run(  # noqa: S603  (this interpreter, a module of ours)
            [sys.executable, "-m", "vulhub.ops.schema"], cwd=server.cfg.chdir, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        return  # the database does not answer: the workers start, and /health/ says so
    if done.returncode:
        # the check printed its line; exit 3 is gunicorn's own "Worker failed to boot"
        if server.pidfile is not None:
            server.pidfile.unlink()
        raise SystemExit(done.returncode)


def empty_the_named_metrics_folder():
    """A folder named by the operator starts empty: files of an earlier run would add its counts to ours."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder or folder == _own_folder:
        return
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))


def child_exit(server, worker):
    """A worker ended: its counters stay in the sums, its live gauges go."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_folder:
        shutil.rmtree(_own_folder, ignore_errors=True)
