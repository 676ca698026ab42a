"""Badge rules: which automatic badges a student has earned, from one student's numbers only."""

from django.db.models import Count, Sum

from challenges.models import Project

from .models import Badge, Submission

R = Badge.RuleKind


# The parameter each rule cannot do without (the others only need "n", default 1).
REQUIRED = {R.CATEGORY_SOLVES: "category", R.CATEGORY_COMPLETE: "category", R.DIFFICULTY_SOLVES: "difficulty"}


def rule_params_problem(kind: str, params) -> str | None:
    """Why `params` cannot drive a rule of `kind` (a message for the instructor), or None."""
    if not isinstance(params, dict):
        return 'The parameters are a JSON object, like {"n": 5, "category": "Web Security"}.'
    n = params.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return '"n" is a whole number, 1 or more.'
    for name in ("category", "difficulty"):
        if name in params and not isinstance(params[name], str):
            return f'"{name}" is text, like "Web Security".'
    required = REQUIRED.get(kind)
    if required and not params.get(required):
        return f'This rule needs "{required}".'
    if kind == R.DIFFICULTY_SOLVES and params["difficulty"] not in Project.Difficulty.values:
        return f'"difficulty" is one of {", ".join(Project.Difficulty.values)}.'
    return None


def _params(badge: Badge) -> dict:
    # rows saved before the admin checked them (or by hand in SQL) may hold anything
    return badge.rule_params if isinstance(badge.rule_params, dict) else {}


def _n(badge: Badge) -> int:
    try:
        return max(int(_params(badge).get("n", 1)), 1)
    except (TypeError, ValueError, OverflowError):
        return 1


def _text(params: dict, name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) else None


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
        params = _params(badge)
        kind = badge.rule_kind
        if kind == R.FIRST_SOLVE:
            ok = solves >= 1
        elif kind == R.POINTS_AT_LEAST:
            ok = points >= _n(badge)
        elif kind == R.SOLVES_AT_LEAST:
            ok = solves >= _n(badge)
        elif kind == R.CATEGORY_SOLVES:
            ok = by_category.get(_text(params, "category"), 0) >= _n(badge)
        elif kind == R.CATEGORY_COMPLETE:
            total = published.get(_text(params, "category"), 0)
            ok = total > 0 and solved_published.get(_text(params, "category"), 0) >= total
        elif kind == R.DIFFICULTY_SOLVES:
            ok = by_difficulty.get(_text(params, "difficulty"), 0) >= _n(badge)
        else:
            ok = False
        if ok:
            earned.add(badge.pk)
    return earned
