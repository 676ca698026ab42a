"""Baselines of the leaderboard page, served by the benchmark's gunicorn only (bench.settings).

- leaderboard_template: the leaderboard template with the same rows, built in memory
  from a fixture file the scenario writes: no query of its own, no cache. The one
  query left is the tenant middleware's host lookup, which every page pays. Its rows
  are formatted on every request (a cached page of ours formats them once).
- ctfd_standings: the standings the way CTFd computes them: the sum of approved
  points per student straight from the submissions table, sorted, on every request,
  with no materialised table and no cache; then the same page is rendered.

Scenario 17's floor (bench/layers.py serves the rows without Django's middleware):
- bare: the least a Django view can answer, a fixed body (no template, no query);
- bare_query, bare_query_atomic: the same, after one query that reads no table
  (SELECT 1) on a connection from the pool, alone or in a transaction: what any page's
  first query pays before the tenant lookup does anything of its own;
- bare_nonce: the same as bare, after asking for the request's CSP nonce (django-csp
  makes it and writes it into the Content-Security-Policy header).
"""

import functools
import json
from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection, transaction
from django.http import HttpResponse
from django.shortcuts import render

from scoring.selectors import PAGE_SIZE, LeaderboardPage, Standing
from tenants.models import User

# CTFd's scoreboard: every student's total, computed per request, best first.
CTFD_STANDINGS = """
    SELECT s.user_id, u.first_name, u.last_name, sum(s.points_awarded) AS points, count(*) AS solves,
           max(coalesce(s.graded_at, s.submitted_at)) AS last_scored_at
    FROM submissions s JOIN users u ON u.id = s.user_id
    WHERE s.tenant_id = %s AND s.status = 'APPROVED'
    GROUP BY s.user_id, u.first_name, u.last_name
    ORDER BY points DESC, last_scored_at, s.user_id
"""


@functools.cache
def _fixture() -> dict:
    with open(settings.BENCH_LEADERBOARD_FIXTURE) as f:
        return json.load(f)


def leaderboard_template(request):
    """The leaderboard page of the fixture's viewer, rendered from rows held in memory."""
    fixture = _fixture()
    viewer = fixture["viewer"]
    request.user = User(
        pk=viewer["id"],
        tenant_id=request.tenant.pk,
        first_name=viewer["first_name"],
        last_name=viewer["last_name"],
        role=User.Role.STUDENT,
    )
    rows = [
        Standing(**{**row, "last_scored_at": datetime.fromisoformat(row["last_scored_at"])}) for row in fixture["rows"]
    ]
    board = LeaderboardPage(number=fixture["number"], rows=rows, total=fixture["total"], page_size=PAGE_SIZE)
    mine = next((row for row in rows if row.user_id == viewer["id"]), None)
    context = {"board": board, "body": board.body_for(viewer["id"]), "mine": mine, "my_page": fixture["number"]}
    return render(request, "scoring/leaderboard.html", context)


@login_required
def ctfd_standings(request):
    """The signed-in student's page of the standings, recomputed from submissions every time."""
    with connection.cursor() as cursor:
        cursor.execute(CTFD_STANDINGS, [request.tenant.pk])
        totals = cursor.fetchall()
    standings, rank, previous = [], 0, None
    for position, (user_id, first, last, points, solves, scored) in enumerate(totals, start=1):
        if points != previous:
            rank, previous = position, points
        name = f"{first} {last}".strip() or f"Student {user_id}"
        standings.append(Standing(rank, user_id, name, points, solves, scored))
    mine = next((s for s in standings if s.user_id == request.user.pk), None)
    my_page = None if mine is None else standings.index(mine) // PAGE_SIZE + 1
    try:
        number = max(1, int(request.GET.get("page", my_page or 1)))
    except ValueError:
        number = 1
    page = LeaderboardPage(number=number, rows=[], total=len(standings), page_size=PAGE_SIZE)
    number = min(number, page.pages)
    start = (number - 1) * PAGE_SIZE
    board = LeaderboardPage(number, standings[start : start + PAGE_SIZE], len(standings), PAGE_SIZE)
    context = {"board": board, "body": board.body_for(request.user.pk), "mine": mine, "my_page": my_page}
    return render(request, "scoring/leaderboard.html", context)


BARE_BODY = b"ok\n"  # what bench.layers.bare_wsgi answers too


def bare(request):
    """A fixed body: what Django itself costs, with whatever middleware the handler keeps."""
    return HttpResponse(BARE_BODY, content_type="text/plain; charset=utf-8")


def bare_nonce(request):
    """bare, plus the request's CSP nonce (as a page with an inline style element asks for it)."""
    str(request.csp_nonce)
    return HttpResponse(BARE_BODY, content_type="text/plain; charset=utf-8")


def _select_one() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def bare_query(request):
    """bare, plus one query that reads no table (a pooled connection, autocommit)."""
    _select_one()
    return HttpResponse(BARE_BODY, content_type="text/plain; charset=utf-8")


def bare_query_atomic(request):
    """bare_query inside a transaction, as TenantMiddleware runs a request."""
    with transaction.atomic():
        _select_one()
    return HttpResponse(BARE_BODY, content_type="text/plain; charset=utf-8")
