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
    view = selectors.student_view(request.tenant.pk, request.user.pk, request.GET.get("page"))
    context = {"board": view.board, "body": view.body, "mine": view.mine, "my_page": view.my_page}
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
