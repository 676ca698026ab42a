"""Badge rules: which automatic badges a student has earned, from one student's numbers only."""

from django.db import connection
from django.db.models import OuterRef, Subquery

from challenges.models import Project

from .models import Badge, Submission, UserBadge

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


def rule_n(badge: Badge) -> int:
    """The rule's N (1 when missing or not a whole number)."""
    try:
        return max(int(_params(badge).get("n", 1)), 1)
    except (TypeError, ValueError, OverflowError):
        return 1


def _text(params: dict, name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) else None


# The student's approved solves (their points net of hint costs, as the leaderboard
# counts them), grouped so that every rule can be read from them, and
# (when a "complete the category" rule needs them) the class's published challenges per
# category: one statement. A challenge has one category and one difficulty, so distinct
# challenges summed over the groups of a category are the category's distinct challenges.
STUDENT_NUMBERS = """
    SELECT 'solved', p.category, p.difficulty, p.is_published,
           count(*), coalesce(sum(greatest(s.points_awarded - coalesce(h.cost, 0), 0)), 0),
           count(DISTINCT s.project_id)
    FROM submissions s JOIN projects p ON p.id = s.project_id
    LEFT JOIN LATERAL (  -- hint costs come off the challenge's points (scoring.hints)
        SELECT sum(u.cost) AS cost FROM hint_unlocks u
        WHERE u.tenant_id = s.tenant_id AND u.user_id = s.user_id AND u.project_id = s.project_id
    ) AS h ON true
    WHERE s.tenant_id = %(tenant)s AND s.user_id = %(user)s AND s.status = %(approved)s
    GROUP BY p.category, p.difficulty, p.is_published
    UNION ALL
    SELECT 'published', category, NULL, true, count(*), 0, 0
    FROM projects
    WHERE %(complete)s AND tenant_id = %(tenant)s AND is_published
    GROUP BY category
"""


# First blood: the student's approval of some challenge came before every other student's
# (by approval time, then id). Approvals of one challenge are taken one at a time
# (services.lock_solves), so the times follow the order in which they committed and
# exactly one student is first on each challenge, whatever the races.
FIRST_BLOOD = """
    SELECT EXISTS (
        SELECT 1 FROM submissions s
        WHERE s.tenant_id = %(tenant)s AND s.user_id = %(user)s AND s.status = %(approved)s
          AND NOT EXISTS (
              SELECT 1 FROM submissions o
              WHERE o.tenant_id = s.tenant_id AND o.project_id = s.project_id AND o.status = %(approved)s
                AND o.user_id <> s.user_id
                AND (coalesce(o.graded_at, o.submitted_at), o.id) < (coalesce(s.graded_at, s.submitted_at), s.id)
          )
    )
"""


def rule_badges(user) -> list[Badge]:
    """The automatic badges of the user's tenant, each with `held_award`: the pk of the
    user's automatic award of it, or None."""
    held = UserBadge.objects.filter(badge=OuterRef("pk"), user=user, awarded_by__isnull=True).values("pk")[:1]
    return list(Badge.objects.for_tenant(user.tenant_id).exclude(rule_kind="").annotate(held_award=Subquery(held)))


def earned_badge_ids(user, rules: list[Badge] | None = None) -> set[int]:
    """The automatic badges of the user's tenant (or of `rules`) whose rule the user now meets.

    Two queries whatever the number of badges: the tenant's rule badges (unless given)
    and the student's numbers (STUDENT_NUMBERS); a third for a first-blood rule.
    """
    if rules is None:
        rules = rule_badges(user)
    if not rules:
        return set()
    by_category: dict[str, int] = {}
    by_difficulty: dict[str, int] = {}
    solved_published: dict[str, int] = {}
    published: dict[str, int] = {}
    solves = points = 0
    with connection.cursor() as cursor:
        cursor.execute(
            STUDENT_NUMBERS,
            {
                "tenant": user.tenant_id,
                "user": user.pk,
                "approved": Submission.Status.APPROVED,
                "complete": any(b.rule_kind == R.CATEGORY_COMPLETE for b in rules),
            },
        )
        for source, category, difficulty, is_published, n, solved_points, projects in cursor.fetchall():
            if source == "published":
                published[category] = n
                continue
            by_category[category] = by_category.get(category, 0) + n
            by_difficulty[difficulty] = by_difficulty.get(difficulty, 0) + n
            solves += n
            points += solved_points
            if is_published:
                solved_published[category] = solved_published.get(category, 0) + projects
    first_blood = False
    if any(b.rule_kind == R.FIRST_BLOOD for b in rules) and solves:
        with connection.cursor() as cursor:
            params = {"tenant": user.tenant_id, "user": user.pk, "approved": Submission.Status.APPROVED}
            cursor.execute(FIRST_BLOOD, params)
            first_blood = cursor.fetchone()[0]
    earned = set()
    for badge in rules:
        params = _params(badge)
        kind = badge.rule_kind
        if kind == R.FIRST_SOLVE:
            ok = solves >= 1
        elif kind == R.FIRST_BLOOD:
            ok = first_blood
        elif kind == R.POINTS_AT_LEAST:
            ok = points >= rule_n(badge)
        elif kind == R.SOLVES_AT_LEAST:
            ok = solves >= rule_n(badge)
        elif kind == R.CATEGORY_SOLVES:
            ok = by_category.get(_text(params, "category"), 0) >= rule_n(badge)
        elif kind == R.CATEGORY_COMPLETE:
            total = published.get(_text(params, "category"), 0)
            ok = total > 0 and solved_published.get(_text(params, "category"), 0) >= total
        elif kind == R.DIFFICULTY_SOLVES:
            ok = by_difficulty.get(_text(params, "difficulty"), 0) >= rule_n(badge)
        else:
            ok = False
        if ok:
            earned.add(badge.pk)
    return earned
