"""Badge rules: which automatic badges a student has earned, from one student's numbers only."""

from django.db.models import Count, Sum

from challenges.models import Project

from .models import Badge, Submission

R = Badge.RuleKind


def _n(badge: Badge) -> int:
    try:
        return max(int(badge.rule_params.get("n", 1)), 1)
    except (TypeError, ValueError):
        return 1


def earned_badge_ids(user) -> set[int]:
    """The automatic badges of the user's tenant whose rule the user now meets.

    Three queries whatever the number of badges: the tenant's rule badges, the
    student's solves by category and difficulty, and (only when a rule needs it) the
    number of published challenges per category.
    """
    rules = list(Badge.objects.for_tenant(user.tenant_id).exclude(rule_kind=""))
    if not rules:
        return set()
    solved = (
        Submission.objects.for_tenant(user.tenant_id)
        .filter(user=user)
        .approved()
        .values("project__category", "project__difficulty")
        .annotate(n=Count("id"), points=Sum("points_awarded"))
    )
    by_category: dict[str, int] = {}
    by_difficulty: dict[str, int] = {}
    solves = points = 0
    for row in solved:
        by_category[row["project__category"]] = by_category.get(row["project__category"], 0) + row["n"]
        by_difficulty[row["project__difficulty"]] = by_difficulty.get(row["project__difficulty"], 0) + row["n"]
        solves += row["n"]
        points += row["points"] or 0
    published: dict[str, int] = {}
    if any(b.rule_kind == R.CATEGORY_COMPLETE for b in rules):
        published = dict(
            Project.objects.for_tenant(user.tenant_id).published().values_list("category").annotate(n=Count("id"))
        )
    solved_published = {}
    if published:
        solved_published = dict(
            Submission.objects.for_tenant(user.tenant_id)
            .filter(user=user, project__is_published=True)
            .approved()
            .values_list("project__category")
            .annotate(n=Count("project", distinct=True))
        )
    earned = set()
    for badge in rules:
        params = badge.rule_params or {}
        kind = badge.rule_kind
        if kind == R.FIRST_SOLVE:
            ok = solves >= 1
        elif kind == R.POINTS_AT_LEAST:
            ok = points >= _n(badge)
        elif kind == R.SOLVES_AT_LEAST:
            ok = solves >= _n(badge)
        elif kind == R.CATEGORY_SOLVES:
            ok = by_category.get(params.get("category"), 0) >= _n(badge)
        elif kind == R.CATEGORY_COMPLETE:
            total = published.get(params.get("category"), 0)
            ok = total > 0 and solved_published.get(params.get("category"), 0) >= total
        elif kind == R.DIFFICULTY_SOLVES:
            ok = by_difficulty.get(params.get("difficulty"), 0) >= _n(badge)
        else:
            ok = False
        if ok:
            earned.add(badge.pk)
    return earned
