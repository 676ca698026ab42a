"""A redis-server of the benchmark run's own, when REDIS_URL is unset (the embedded default).

Debian's redis-server (`make bench-deps`) on a spare loopback port, keeping nothing on
disk, stopped when the run ends.
"""

import atexit
import os
import shutil
import socket
import subprocess
import time

import redis


def start_own_redis(timeout: float = 20) -> str:
    """Start redis-server on a free port; returns its URL (database 0)."""
    binary = shutil.which("redis-server", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"]))
    if binary is None:
        raise SystemExit("REDIS_URL is unset and redis-server is not installed: `make bench-deps` installs it.")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603  (fixed argv)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
