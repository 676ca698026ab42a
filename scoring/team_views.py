"""The students' team pages: my team (create, join, new code, leave), a team's page, and the team standings.

Every page is a 404 while the class plays alone (team mode off), and a team of another
class is a 404 like a missing one. A refused change (scoring.teams says why) shows the
same page again with the reason in its form and changes nothing: 403 when the user may
not do it at all (not a student), 400 otherwise, a full team included.
"""

from types import SimpleNamespace

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from tenants.models import TeamMode, User

from . import freeze, leaderboard, team_selectors, teams
from .models import Team
from .services import NotAllowed, ScoringError

ONLY_STUDENTS = "Only students join teams: instructors manage the class's teams in the admin."


class TeamCreateForm(forms.Form):
    # not required here: scoring.teams says what is wrong with a name, in its own words
    name = forms.CharField(
        label="Team name",
        required=False,
        strip=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "maxlength": teams.NAME_MAX, "required": True}),
        help_text=f"Up to {teams.NAME_MAX} characters; no other team of the class may have it.",
    )


class TeamJoinForm(forms.Form):
    code = forms.CharField(
        label="Invite code",
        required=False,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "autocapitalize": "characters",
                "spellcheck": "false",
                "maxlength": 32,
                "placeholder": "K7QM-2XRP",
                "required": True,
            }
        ),
        help_text="Ask a member of the team: their team page shows it.",
    )


def _teams_on(request) -> None:
    if request.tenant.team_mode == TeamMode.OFF:
        raise Http404("This class does not play in teams.")


def _is_student(user) -> bool:
    return user.role == User.Role.STUDENT and user.tenant_id is not None


def _my_team(user, tenant_id: int, version) -> SimpleNamespace | None:
    """The student's team (its pk and name) for the standings, from the standings' cache.

    Every team change and every solve bumps the cache's version (scoring.teams), so a
    cached answer is never older than the membership; no team is cached as (0, "").
    """

    def load():
        team = teams.team_of(user)
        return (team.pk, team.name) if team else (0, "")

    pk, name = leaderboard.CACHE.get_or_load(tenant_id, version, f"member:{user.pk}", load)
    return SimpleNamespace(pk=pk, name=name) if pk else None


def _status(refusal: ScoringError) -> int:
    return 403 if isinstance(refusal, NotAllowed) else 400


@login_required
@require_GET
def my_team(request):
    """The student's own team with its invite code, or the forms to create or join one."""
    _teams_on(request)
    return _my_team_page(request)


def _my_team_page(request, *, create_form=None, join_form=None, refusal: str = "", status: int = 200):
    """/team/ as it is now; a refusal goes into the form it came from, or above the page when no form shows."""
    tenant, user = request.tenant, request.user
    mine = team_selectors.team_of_student(tenant.pk, user.pk) if _is_student(user) else None
    if mine is not None:
        return _team_page(request, mine, refusal=refusal, status=status)
    context = {
        "student": _is_student(user),
        "create_form": create_form or TeamCreateForm(),
        "join_form": join_form or TeamJoinForm(),
        "refusal": refusal if create_form is None and join_form is None else "",
        "team_size_max": tenant.team_size_max,
        "required": tenant.team_mode == TeamMode.REQUIRED,
    }
    return render(request, "scoring/team_none.html", context, status=status)


@login_required
@require_GET
def team_detail(request, pk: int):
    """A team's page: its members, points, rank and solves; its invite code for its members and the staff."""
    _teams_on(request)
    found = team_selectors.team_with_members(request.tenant.pk, pk)
    if found is None:
        raise Http404("No such team.")
    return _team_page(request, found)


def _team_page(request, found: team_selectors.TeamWithMembers, *, refusal: str = "", status: int = 200):
    tenant, user, team = request.tenant, request.user, found.team
    frozen_at = freeze.frozen_for(user, tenant)
    member = found.has(user.pk)
    # the last member leaving a team that never scored dissolves it: the page says so first
    last_one = member and len(found.members) == 1 and not teams.team_scored(team)
    context = {
        "team": team,
        "members": found.members,
        "member": member,
        "code": teams.display_code(team.invite_code) if member or user.is_staff else "",
        "score": team_selectors.team_score(tenant.pk, team.pk, frozen_at=frozen_at),
        "solves": team_selectors.team_solves(tenant.pk, team.pk, until=frozen_at),
        "frozen_at": frozen_at,
        "students_frozen_at": freeze.in_force(tenant) if user.is_staff else None,
        "last_one": last_one,
        "refusal": refusal,
        "team_size_max": tenant.team_size_max,
    }
    return render(request, "scoring/team.html", context, status=status)


def _refused_to_non_students(request):
    """The page again with why, for staff (and anyone not a student of the class): 403, nothing changed."""
    return _my_team_page(request, refusal=ONLY_STUDENTS, status=403)


@login_required
@require_POST
def team_create(request):
    _teams_on(request)
    if not _is_student(request.user):
        return _refused_to_non_students(request)
    form = TeamCreateForm(request.POST)
    form.is_valid()  # no field is required: the service judges the name
    try:
        team = teams.team_create(user=request.user, name=form.cleaned_data.get("name", ""))
    except ScoringError as refusal:
        form.add_error("name", str(refusal))
        return _my_team_page(request, create_form=form, refusal=str(refusal), status=_status(refusal))
    messages.success(request, f"Team “{team.name}” created. Share its invite code with your teammates.")
    return redirect("scoring:team")


@login_required
@require_POST
def team_join(request):
    _teams_on(request)
    if not _is_student(request.user):
        return _refused_to_non_students(request)
    form = TeamJoinForm(request.POST)
    form.is_valid()
    try:
        team = teams.team_join(user=request.user, code=form.cleaned_data.get("code", ""))
    except ScoringError as refusal:
        form.add_error("code", str(refusal))
        return _my_team_page(request, join_form=form, refusal=str(refusal), status=_status(refusal))
    messages.success(request, f"You joined {team.name}.")
    return redirect("scoring:team")


@login_required
@require_POST
def team_new_code(request):
    _teams_on(request)
    if not _is_student(request.user):
        return _refused_to_non_students(request)
    mine = teams.team_of(request.user)
    if mine is None:
        return _my_team_page(request, refusal="You are not in a team.", status=400)
    try:
        team = teams.team_new_code(team=mine, actor=request.user)
    except ScoringError as refusal:
        return _my_team_page(request, refusal=str(refusal), status=_status(refusal))
    messages.success(
        request, f"Your team's new invite code is {teams.display_code(team.invite_code)}. The old one no longer works."
    )
    return redirect("scoring:team")


@login_required
@require_POST
def team_leave(request):
    _teams_on(request)
    if not _is_student(request.user):
        return _refused_to_non_students(request)
    try:
        team = teams.team_leave(user=request.user)
    except ScoringError as refusal:
        return _my_team_page(request, refusal=str(refusal), status=_status(refusal))
    if not Team.objects.for_tenant(request.tenant).filter(pk=team.pk).exists():
        messages.success(request, f"You left {team.name}. It had no other member and no points, so it is gone.")
    else:
        messages.success(request, f"You left {team.name}. Your answers so far keep scoring for it.")
    return redirect("scoring:team")


@login_required
@require_GET
def standings(request):
    """The team standings: as of the freeze for a student while the scoreboard is frozen, else (and for staff) live."""
    _teams_on(request)
    tenant, user = request.tenant, request.user
    frozen_at = freeze.frozen_for(user, tenant)
    version = leaderboard.CACHE.version(tenant.pk)  # read once for the page
    mine = _my_team(user, tenant.pk, version) if _is_student(user) else None
    view = team_selectors.standings_view(
        tenant.pk, request.GET.get("page"), team_id=mine.pk if mine else None, frozen_at=frozen_at, version=version
    )
    context = {
        "board": view.board,
        "body": view.board.body_for(mine.pk if mine else None, reverse("scoring:teams")),
        "mine": view.mine,
        "my_page": view.my_page,
        "my_team": mine,
        "frozen_at": frozen_at,
        "students_frozen_at": freeze.in_force(tenant) if user.is_staff else None,
    }
    return render(request, "scoring/team_standings.html", context)
