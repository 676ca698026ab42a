"""A 10 MB challenge file downloaded through the app, against the same file served as a static file.

(And a 1 KB one, report only: there the bytes cost next to nothing and the view's own work shows.)

wrk GETs /challenges/<slug>/files/<id>/ (scoring.file_views.download) at 8 connections
as signed-in students of the largest class (each their own session): the session, the
tenant, the file's row and the access check (published, open, not locked), then the
bytes from the "attachments" storage (a local folder by default), which gunicorn sends
with sendfile. The baseline is the same bytes at a URL of the same server's static
route: WhiteNoise, before any session, tenant or database work, requested with the same
cookies over the same connections.

wrk runs with bench/wrk/stream.lua: a script with a response() function makes wrk copy
every body into a Lua string, and for 10 MB that copying, not the server, set the pace.

The challenge (a write-up one, with no gate) is opened for the scenario and unpublished
after it; the files' rows and stored objects, and the static copies, are deleted after it.
The static copies are written under STATIC_ROOT before gunicorn starts, since WhiteNoise
lists its files when the server starts.
"""

import hashlib
import random
import secrets
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.urls import reverse

from bench.framework import Context, Figure, Series
from bench.http_load import (
    STREAM_LUA,
    BenchError,
    LoadResult,
    Request,
    collect_static,
    get,
    gunicorn,
    open_challenge,
    sample_students,
    sessions_for,
    wrk,
)
from challenges.models import ChallengeFile, Project

SCENARIO = "13 Attachment download"
CONNECTIONS = 8
# the goal's 10 MB, and 1 KB: where the bytes cost nothing, the view's own work shows
SIZES = {"10 MB": 10 * 1024 * 1024, "1 KB": 1024}


def run(ctx: Context) -> list[Figure]:
    tenant = ctx.largest
    host = tenant["domain"]
    seconds = 1 if ctx.smoke else 5
    project = Project.objects.get(pk=open_challenge(ctx, tenant["id"], flag=False).id)
    sessions = sessions_for(ctx, sample_students(tenant["id"], 8))
    rng = random.Random(13)
    figures = []
    with gunicorn_after(ctx, project, rng) as (server, files):
        for label, (attachment, static_path) in files.items():
            size = SIZES[label]
            pages = {
                "app": [Request("GET", host, download_path(attachment), s.cookie) for s in sessions],
                "static": [Request("GET", host, static_path, s.cookie) for s in sessions],
            }
            for name, requests in pages.items():
                answer = get(server, host, requests[0].path, requests[0].cookie)
                if answer.status != 200 or hashlib.sha256(answer.body).hexdigest() != attachment.sha256:
                    raise BenchError(f"{name}: {requests[0].path} answered {answer.status}, {len(answer.body):,} bytes")
            for requests in pages.values():  # warm: workers, pool, page cache
                wrk(server, requests, seconds=1, connections=CONNECTIONS, script=STREAM_LUA)
            results: dict[str, list[LoadResult]] = {"app": [], "static": []}
            for _ in range(ctx.runs):
                for name, requests in pages.items():  # in turn, so both see the same machine
                    result = wrk(server, requests, seconds=seconds, connections=CONNECTIONS, script=STREAM_LUA)
                    if result.errors:  # the responses that were not 2xx or 3xx included
                        raise BenchError(f"{name}: failed downloads {result.errors}")
                    if result.bytes < result.requests * size:
                        raise BenchError(f"{name}: {result.bytes:,} bytes for {result.requests} downloads of {size:,}")
                    results[name].append(result)
                ctx.log(
                    f"   {label}: through the app {results['app'][-1].rate:.1f} downloads/s "
                    f"(p95 {results['app'][-1].p95_ms:.1f} ms), static {results['static'][-1].rate:.1f}/s "
                    f"(p95 {results['static'][-1].p95_ms:.1f} ms)"
                )
            figures.append(figure(label, results, f"{tenant['slug']}, {len(sessions)} signed-in students"))
    return figures


def figure(label: str, results: dict[str, list[LoadResult]], where: str) -> Figure:
    megabytes = {name: [round(r.bytes / r.seconds / 1e6, 1) for r in rs] for name, rs in results.items()}
    goal = label == "10 MB"
    return Figure(
        SCENARIO,
        f"{label} attachment through the app vs static file",
        ours=Series("access-checked download", [r.rate for r in results["app"]], "req/s"),
        baseline=Series("the same file, static", [r.rate for r in results["static"]], "req/s"),
        compare="speed",
        goal_op=">=",
        goal=0.5 if goal else None,
        note=(
            f"{where}, {CONNECTIONS} connections, from the local attachments folder against WhiteNoise"
            + ("" if goal else ": the bytes cost next to nothing, the view's own work shows")
        ),
        extra={
            "megabytes_per_second": megabytes,
            "p95_ms": {name: [round(r.p95_ms, 1) for r in rs] for name, rs in results.items()},
        },
    )


@contextmanager
def gunicorn_after(ctx: Context, project: Project, rng: random.Random):
    """Each size attached to the challenge and copied under STATIC_ROOT, then gunicorn.

    In that order: WhiteNoise lists the static files when the server starts.
    """
    files = {}
    for label, size in SIZES.items():
        data = rng.randbytes(size)  # incompressible, like a memory image or a capture
        files[label] = (
            attach(ctx, project, f"memory-{label.replace(' ', '').lower()}.bin", data),
            static_copy(ctx, data),
        )
    with gunicorn(ctx) as server:
        yield server, files


def download_path(attachment: ChallengeFile) -> str:
    return reverse("challenges:file", kwargs={"slug": attachment.project.slug, "file_id": attachment.pk})


def attach(ctx: Context, project: Project, name: str, data: bytes) -> ChallengeFile:
    """The file attached to the challenge; its row and stored object deleted after the scenario."""
    attachment = ChallengeFile(
        tenant_id=project.tenant_id,
        project=project,
        name=name,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    attachment.file.save(f"bench-{secrets.token_hex(4)}.bin", ContentFile(data), save=False)

    def remove() -> None:
        ChallengeFile.objects.filter(pk=attachment.pk).delete()
        attachment.file.storage.delete(attachment.file.name)

    ctx.scratch.setdefault("cleanups", []).append(remove)
    attachment.save()
    return attachment


def static_copy(ctx: Context, data: bytes) -> str:
    """The same bytes where WhiteNoise serves them (STATIC_ROOT), removed after the scenario: their URL path."""
    collect_static()  # first, as gunicorn() does: it must not find the copy missing from its manifest
    name = f"bench-{secrets.token_hex(4)}.bin"
    path = Path(settings.STATIC_ROOT) / "bench" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ctx.scratch.setdefault("cleanups", []).append(lambda: path.unlink(missing_ok=True))
    return f"/{settings.STATIC_URL.strip('/')}/bench/{name}"
