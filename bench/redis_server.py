"""A redis-server of the benchmark run's own, when REDIS_URL is unset (the embedded default).

Debian's redis-server (`make bench-deps`) on a spare loopback port, keeping nothing on
disk, stopped when the run ends, and by the kernel when the run is killed (SIGKILL
included: PR_SET_PDEATHSIG), so no orphan keeps the port.
"""

import atexit
import ctypes
import os
import shutil
import signal
import subprocess
import time

import redis

from vulhub.ops.pg_cluster import free_port


def start_own_redis(timeout: float = 20) -> str:
    """Start redis-server on a free port; returns its URL (database 0)."""
    binary = shutil.which("redis-server", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"]))
    if binary is None:
        raise SystemExit("REDIS_URL is unset and redis-server is not installed: `make bench-deps` installs it.")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603  (fixed argv)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,  # noqa: PLW1509  (no threads yet: the run has only just started)
    )
    atexit.register(_stop, server)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.1)
    raise SystemExit(f"redis-server on port {port} did not answer within {timeout:.0f} s")


def _die_with_parent() -> None:
    PR_SET_PDEATHSIG = 1  # noqa: N806  (linux/prctl.h)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
