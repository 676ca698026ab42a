"""gunicorn's settings for scenario 17: VulHub's own (gunicorn.conf.py), with its stack taken apart.

Loaded instead of gunicorn.conf.py by the scenario's server (GUNICORN_CMD_ARGS="--config
bench/layers.py"), whose hooks and settings it takes over unchanged. Once a worker has
loaded VulHub (vulhub.wsgi under bench.settings), it answers:
- /_bench/wsgi/: a bare WSGI callable, without Django at all;
- /_bench/layers/: the worker's settings.MIDDLEWARE, as JSON;
- /_bench/layers/<k>/<path>: <path> through a Django handler that keeps only the first
  k entries of settings.MIDDLEWARE (0: none), built once per worker;
- anything else: VulHub's own handler, unchanged (all the middleware).

The dispatch costs every request one comparison of its path, the same for all rows.
"""

import json
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WSGI_PATH = "/_bench/wsgi/"
LAYERS_PATH = "/_bench/layers/"
BODY = b"ok\n"
HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]

# VulHub's gunicorn settings and hooks, as `gunicorn vulhub.wsgi` reads them from the working directory
globals().update(
    {name: value for name, value in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items() if name[0] != "_"}
)
_production_post_worker_init = globals().get("post_worker_init")


def bare_wsgi(environ, start_response):
    """The least a WSGI server can serve: a fixed body, nothing read from the request."""
    start_response("200 OK", list(HEADERS))
    return [BODY]


def _answer(start_response, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class Layers:
    """The worker's WSGI application, with the bench's paths in front of it."""

    def __init__(self, application):
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        from django.test.utils import override_settings

        self.application = application
        self.middleware = list(settings.MIDDLEWARE)
        self.handlers = []
        for kept in range(len(self.middleware)):
            with override_settings(MIDDLEWARE=self.middleware[:kept]):
                self.handlers.append(WSGIHandler())  # reads MIDDLEWARE once, here

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_bench/"):
            return self.application(environ, start_response)
        if path == WSGI_PATH:
            return bare_wsgi(environ, start_response)
        if path == LAYERS_PATH:
            return _answer(start_response, "200 OK", json.dumps(self.middleware).encode(), "application/json")
        if path.startswith(LAYERS_PATH):
            kept, _, rest = path[len(LAYERS_PATH) :].partition("/")
            if not kept.isdigit() or int(kept) >= len(self.handlers):
                message = f"no layer {kept!r}: 0 to {len(self.handlers) - 1}\n".encode()
                return _answer(start_response, "404 Not Found", message, "text/plain; charset=utf-8")
            environ["PATH_INFO"] = "/" + rest
            return self.handlers[int(kept)](environ, start_response)
        return self.application(environ, start_response)


def post_worker_init(worker):
    """VulHub is loaded in this worker: put the bench's paths in front of it."""
    if _production_post_worker_init is not None:
        _production_post_worker_init(worker)
    worker.wsgi = Layers(worker.wsgi)
