from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Subquery
from django.shortcuts import render

from . import selectors
from .models import Badge, Submission, UserBadge


@login_required
def submissions(request):
    rows = (
        Submission.objects.for_tenant(request.tenant)
        .filter(user=request.user)
        .select_related("project")
        .order_by("-submitted_at")
    )
    page = Paginator(rows, 25).get_page(request.GET.get("page"))
    return render(request, "scoring/submissions.html", {"page": page})


@login_required
def leaderboard(request):
    mine = selectors.standing(request.tenant.pk, request.user.pk)
    page_size = selectors.PAGE_SIZE
    my_page = None
    if mine is not None:
        # the first row of my score is on this page (the rows above me number rank - 1)
        my_page = (mine.rank - 1) // page_size + 1
    try:
        number = max(1, int(request.GET.get("page", my_page or 1)))
    except ValueError:
        number = 1
    page = selectors.leaderboard_page(request.tenant.pk, 1, page_size)
    if number > 1:
        # the last page at most: ?page=9223372036854775807 would be an OFFSET past bigint (a 500),
        # and every made-up number a cache entry of its own
        page = selectors.leaderboard_page(request.tenant.pk, min(number, page.pages), page_size)
    context = {"board": page, "body": page.body_for(request.user.pk), "mine": mine, "my_page": my_page}
    return render(request, "scoring/leaderboard.html", context)


@login_required
def badges(request):
    mine = UserBadge.objects.filter(badge=OuterRef("pk"), user=request.user)
    rows = list(
        Badge.objects.for_tenant(request.tenant)
        .annotate(earned=Exists(mine), awarded_at=Subquery(mine.values("awarded_at")[:1]))
        .order_by("name")
    )
    earned = sum(1 for badge in rows if badge.earned)
    return render(request, "scoring/badges.html", {"badges": rows, "earned": earned})
