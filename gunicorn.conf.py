"""gunicorn's settings for VulHub, read from the working directory (`gunicorn vulhub.wsgi`).

Metrics from every worker (docs/monitoring.md): prometheus_client's multiprocess mode.
Each worker writes its counts to files in PROMETHEUS_MULTIPROC_DIR, and /metrics, served
by whichever worker takes the scrape, sums them all. The folder is emptied when gunicorn
starts (counts restart with the node, as Prometheus expects of a counter); a worker that
exits or is killed leaves its files, so what it counted stays in the sums, and its live
gauges are dropped. The variable is set here, in the master, before any worker imports
prometheus_client. METRICS_ENABLED=false leaves it unset.
"""

import os
import shutil
from pathlib import Path

_metrics_on = os.environ.get("METRICS_ENABLED", "true").strip().lower() not in ("false", "0", "no", "off")
if _metrics_on:
    os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(Path(__file__).resolve().parent / "var" / "prometheus-multiproc")
    )


def on_starting(server):
    """Start from an empty metrics folder: files of an earlier run would add its counts to ours."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    path = Path(folder)
    if path.exists():
        for child in path.iterdir():
            if child.is_file() and child.suffix == ".db":
                child.unlink()
            elif child.is_dir():
                shutil.rmtree(child)
    path.mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    """A worker ended: its counters stay in the sums, its live gauges go."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
