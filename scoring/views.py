from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Subquery
from django.shortcuts import render

from . import freeze, selectors
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
    # during a freeze a dynamic challenge's points follow its live value: the page leaves them out
    frozen_at = freeze.frozen_for(request.user, request.tenant)
    return render(request, "scoring/submissions.html", {"page": page, "frozen_at": frozen_at})


@login_required
def leaderboard(request):
    """The standings: as of the freeze for a student while the scoreboard is frozen, live otherwise and for staff."""
    tenant, page = request.tenant, request.GET.get("page")
    frozen_at = freeze.frozen_for(request.user, tenant)
    if frozen_at is not None:
        view = freeze.student_view(tenant.pk, frozen_at, request.user.pk, page)
    else:
        view = selectors.student_view(tenant.pk, request.user.pk, page)
    context = {
        "board": view.board,
        "body": view.body,
        "mine": view.mine,
        "my_page": view.my_page,
        "frozen_at": frozen_at,
        # staff see live standings, with a word that students see the frozen ones
        "students_frozen_at": freeze.in_force(tenant) if request.user.is_staff else None,
    }
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
