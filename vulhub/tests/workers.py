"""Threads for the concurrency tests, each on its own database connection (Django keeps one per thread)."""

import threading
import time

from django.db import connections

TIMEOUT = 10  # seconds; any wait longer than this is a hang


class Workers:
    """Threads that each use (and at the end close) their own connection; what they raise is kept.

    `join()` waits for them all (at most `timeout` seconds in all), fails on a thread that hangs
    and re-raises the first error a thread met. Subclasses add `prepare()`, run in each
    thread before its target.
    """

    timeout = TIMEOUT

    def __init__(self):
        self.threads = []
        self.errors = []
        self.lock = threading.Lock()

    def prepare(self) -> None:
        """Run in each thread before its target."""

    def start(self, target, *args):
        def run():
            try:
                self.prepare()
                target(*args)
            except BaseException as exc:  # re-raised by join()
                with self.lock:
                    self.errors.append(exc)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def join(self):
        deadline = time.monotonic() + self.timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not [t for t in self.threads if t.is_alive()], "a worker hung"
        if self.errors:
            raise self.errors[0]
