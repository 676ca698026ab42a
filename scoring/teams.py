"""Teams: students create one, join it with its invite code, leave it; instructors rename, move, merge, dissolve.

A class's team mode (tenants.TeamMode) says whether students play in teams: off, optional,
or required (a student answers only as a team member). A team has at most the class's
team size of members, a name unique in the class (whatever its case) and an invite code;
a new code makes the old one stale. Every change is audited (the rows) and recorded as
an event (TeamCreated, TeamJoined, TeamLeft, TeamRenamed, TeamCodeChanged, TeamMerged,
TeamDissolved). What a team scores, and where points go when students change team:
scoring.team_board.

Lock order (after scoring.services'): the student's row, then the team's row, then the
approvals of the team's dynamic challenges (a merge or dissolve moves their count of
solvers), then the tenant's leaderboard lock. An answer and a hint unlock lock the
student's team's row (never a membership row: scoring.team_board), so a merge or dissolve
(which lock the team FOR UPDATE) applies wholly before or wholly after them.
"""

import secrets

from django.db import IntegrityError, transaction
from django.db.models import Value
from django.db.models.functions import Lower
from django.utils import timezone

from audit import api as audit
from challenges.models import Project
from tenants.models import TeamMode, Tenant, User

from . import dynamic, freeze, leaderboard, team_board
from .models import HintUnlock, Submission, Team, TeamMembership
from .services import InvalidAnswer, NotAllowed, ScoringError, lock_student
from .signals import TEAM_EVENTS

# invite codes: 8 characters none of which reads like another (no 0/O, 1/I/L)
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
NAME_MAX = Team._meta.get_field("name").max_length
_NAME_TAKEN = "A team of this class is already called “{name}”. Choose another name."


class TeamFull(ScoringError):
    pass


class AlreadyInTeam(ScoringError):
    pass


class NoSuchCode(ScoringError):
    pass


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def display_code(code: str) -> str:
    """ "K7QM2XRP" as "K7QM-2XRP": easier to read out in class."""
    return f"{code[:4]}-{code[4:]}"


def normalise_code(text: str) -> str:
    """What a student typed, as stored: spaces and dashes dropped, upper case."""
    return "".join(ch for ch in (text or "").upper() if ch.isalnum())


def clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise InvalidAnswer("Give your team a name.")
    if len(name) > NAME_MAX:
        raise InvalidAnswer(f"A team's name has at most {NAME_MAX} characters.")
    return name


def team_of(user: User) -> Team | None:
    """The student's team now (one query), or None."""
    memberships = TeamMembership.objects.for_tenant(user.tenant_id).filter(user_id=user.pk)
    membership = memberships.select_related("team").first()
    return membership.team if membership else None


def _require_mode(tenant: Tenant) -> None:
    if tenant.team_mode == TeamMode.OFF:
        raise NotAllowed("This class does not play in teams.")


def _require_student(user: User) -> None:
    if user.role != User.Role.STUDENT or user.tenant_id is None:
        raise NotAllowed("Only students join teams.")


def _require_staff(actor: User, tenant_id: int) -> None:
    if not (actor.is_superuser or (actor.is_staff and actor.tenant_id == tenant_id)):
        raise NotAllowed("Only the instructors of this class manage its teams.")


def _lock_team(team: Team) -> Team:
    """The team's row locked FOR UPDATE, read again (NoSuchCode when it is gone)."""
    locked = Team.objects.select_for_update(of=("self",)).filter(pk=team.pk, tenant_id=team.tenant_id).first()
    if locked is None:
        raise NoSuchCode("That team no longer exists.")
    return locked


def _members(team: Team) -> int:
    return TeamMembership.objects.for_tenant(team.tenant_id).filter(team_id=team.pk).count()


def _check_room(team: Team, tenant: Tenant, joining: int = 1) -> None:
    members = _members(team)
    if members + joining > tenant.team_size_max:
        raise TeamFull(
            f"{team.name} is full: a team of this class has at most {tenant.team_size_max} "
            f"member{'s' if tenant.team_size_max != 1 else ''}."
        )


def _dynamic_solved(team: Team) -> list[Project]:
    """The dynamic challenges the team solved, their approvals locked (scoring.dynamic.lock_solves).

    A merge or dissolve moves their count of solvers (a team is one solver): their values
    are settled once the team's answers have moved. Taken after the team's row and before
    any submission row or the tenant's leaderboard lock, the order a solve takes them in.
    """
    solved = Submission.objects.for_tenant(team.tenant_id).filter(
        team_id=team.pk, status=Submission.Status.APPROVED, project__scoring=Project.Scoring.DYNAMIC
    )
    ids = sorted(set(solved.values_list("project_id", flat=True)))
    for project_id in ids:
        dynamic.lock_solves(project_id)
    return list(Project.objects.filter(pk__in=ids).order_by("pk"))


def _settle(projects: list[Project], *, actor) -> None:
    for project in projects:
        dynamic.settle(project, actor=actor)


def lock_selection(*, tenant_id: int, team_ids=(), user_ids=()) -> None:
    """What an instructor's action over several teams or students will lock, taken up front in the lock order.

    The admin runs a selection in one transaction: without this, the second team's row
    would be asked for while the first one's change holds the tenant's leaderboard lock,
    which a member's answer (holding that team FOR SHARE) waits for. The services take the
    same locks again as they go, at no cost in the same transaction.
    """
    teams = sorted({pk for pk in team_ids if pk is not None})
    for pk in sorted(set(user_ids)):
        User.objects.select_for_update(no_key=True).filter(pk=pk).values_list("pk").first()
    list(Team.objects.select_for_update(of=("self",)).filter(tenant_id=tenant_id, pk__in=teams).order_by("pk"))
    answers = Submission.objects.for_tenant(tenant_id).filter(team_id__in=teams)
    dynamic_solved = answers.filter(status=Submission.Status.APPROVED, project__scoring=Project.Scoring.DYNAMIC)
    for project_id in sorted(set(dynamic_solved.values_list("project_id", flat=True))):
        dynamic.lock_solves(project_id)
    list(answers.order_by("pk").select_for_update(no_key=True, of=("self",)).values_list("pk"))
    unlocks = HintUnlock.objects.for_tenant(tenant_id).filter(team_id__in=teams).order_by("pk")
    list(unlocks.select_for_update(no_key=True, of=("self",)).values_list("pk"))


def _event(team: Team, event: str, actor, **details) -> None:
    TEAM_EVENTS[event].send(sender=Team, team=team, actor=actor, details=details)
    # the team standings' cached pages show each team's name and member count (scoring.team_selectors)
    leaderboard.CACHE.invalidate_on_commit(team.tenant_id)
    if event in ("TeamMerged", "TeamDissolved"):  # the frozen team board reads the answers' teams as they are now
        freeze.FROZEN.invalidate_on_commit(team.tenant_id)


def _save_new_team(team: Team) -> None:
    """Insert the team; a name another team of the class has (any case) is refused, a code clash retried."""
    for _ in range(5):
        team.invite_code = new_code()
        try:
            with transaction.atomic():
                team.save()
            return
        except IntegrityError as error:
            if "uniq_teams_tenant_name_ci" in str(error):
                raise InvalidAnswer(_NAME_TAKEN.format(name=team.name)) from None
            if "uniq_teams_tenant_invite_code" not in str(error):
                raise
    raise ScoringError("No free invite code was found; try again.")  # pragma: no cover (31^8 codes)


def _name_taken(tenant_id: int, name: str, exclude: int | None = None) -> bool:
    # lower() as the unique index compares (iexact's upper() differs on a few letters: K, Kelvin sign)
    teams = Team.objects.for_tenant(tenant_id).annotate(lowered=Lower("name")).filter(lowered=Lower(Value(name)))
    if exclude is not None:
        teams = teams.exclude(pk=exclude)
    return teams.exists()


@audit.recorded
def team_create(*, user: User, name: str) -> Team:
    """A student creates a team and is its first member."""
    _require_student(user)
    tenant = Tenant.objects.get(pk=user.tenant_id)
    _require_mode(tenant)
    name = clean_name(name)
    lock_student(user)
    if team_of(user) is not None:
        raise AlreadyInTeam("You are in a team already: leave it before you create another.")
    if _name_taken(tenant.pk, name):
        raise InvalidAnswer(_NAME_TAKEN.format(name=name))
    team = Team(tenant_id=tenant.pk, name=name, created_by=user)
    _save_new_team(team)
    _event(team, "TeamCreated", user)
    _add_member(team, user, actor=user, how="created")
    return team


def _add_member(team: Team, user: User, *, actor, how: str) -> TeamMembership:
    membership = TeamMembership.objects.create(tenant_id=team.tenant_id, team=team, user=user, joined_at=timezone.now())
    membership.team, membership.user = team, user
    _event(team, "TeamJoined", actor, user_id=user.pk, how=how)
    return membership


@audit.recorded
def team_join(*, user: User, code: str) -> Team:
    """A student joins the team of their class whose invite code they give."""
    _require_student(user)
    tenant = Tenant.objects.get(pk=user.tenant_id)
    _require_mode(tenant)
    code = normalise_code(code)
    if not code:
        raise InvalidAnswer("Enter the team's invite code.")
    lock_student(user)
    current = team_of(user)
    found = Team.objects.for_tenant(tenant.pk).filter(invite_code=code).first()
    if found is None:
        raise NoSuchCode(
            "No team of this class has that invite code. Check it with a member: a team that made a new code "
            "no longer takes the old one."
        )
    if current is not None:
        if current.pk == found.pk:
            raise AlreadyInTeam(f"You are in {found.name} already.")
        raise AlreadyInTeam(f"You are in {current.name}: leave it before you join {found.name}.")
    team = _lock_team(found)
    _check_room(team, tenant)
    _add_member(team, user, actor=user, how="code")
    return team


@audit.recorded
def team_leave(*, user: User) -> Team:
    """A student leaves their team. Their answers so far keep scoring for it (scoring.team_board).

    The team stays while it has members or points; the last member leaving a team that
    never scored dissolves it.
    """
    lock_student(user)
    current = team_of(user)
    if current is None:
        raise InvalidAnswer("You are not in a team.")
    team = _lock_team(current)
    TeamMembership.objects.for_tenant(user.tenant_id).filter(user_id=user.pk).delete()
    _event(team, "TeamLeft", user, user_id=user.pk, how="left")
    if not _members(team) and not team_scored(team):
        _dissolve(team, actor=user)
    return team


def team_scored(team: Team) -> bool:
    return Submission.objects.for_tenant(team.tenant_id).filter(team_id=team.pk).exists()


@audit.recorded
def team_new_code(*, team: Team, actor: User) -> Team:
    """A new invite code for the team (a member or an instructor): the old one is stale from now."""
    member = TeamMembership.objects.for_tenant(team.tenant_id).filter(team_id=team.pk, user_id=actor.pk).exists()
    if not member:
        _require_staff(actor, team.tenant_id)
    team = _lock_team(team)
    for _ in range(5):
        team.invite_code = new_code()
        try:
            with transaction.atomic():
                team.save(update_fields=["invite_code"])
            break
        except IntegrityError as error:  # pragma: no cover (31^8 codes)
            if "uniq_teams_tenant_invite_code" not in str(error):
                raise
    _event(team, "TeamCodeChanged", actor)
    return team


@audit.recorded
def team_rename(*, team: Team, name: str, actor: User) -> Team:
    """An instructor renames a team."""
    _require_staff(actor, team.tenant_id)
    name = clean_name(name)
    team = _lock_team(team)
    if name == team.name:
        return team
    if _name_taken(team.tenant_id, name, exclude=team.pk):
        raise InvalidAnswer(_NAME_TAKEN.format(name=name))
    previous = team.name
    team.name = name
    try:
        with transaction.atomic():
            team.save(update_fields=["name"])
    except IntegrityError as error:  # a rename of another team to this name committed meanwhile
        if "uniq_teams_tenant_name_ci" not in str(error):
            raise
        raise InvalidAnswer(_NAME_TAKEN.format(name=name)) from None
    _event(team, "TeamRenamed", actor, previous_name=previous)
    return team


@audit.recorded
def team_create_for(*, tenant: Tenant, name: str, actor: User) -> Team:
    """An instructor creates an empty team (students join it, or are moved into it)."""
    _require_staff(actor, tenant.pk)
    name = clean_name(name)
    if _name_taken(tenant.pk, name):
        raise InvalidAnswer(_NAME_TAKEN.format(name=name))
    team = Team(tenant_id=tenant.pk, name=name, created_by=actor)
    _save_new_team(team)
    _event(team, "TeamCreated", actor)
    return team


@audit.recorded
def team_move(*, user: User, team: Team | None, actor: User) -> Team | None:
    """An instructor moves a student into `team` (None: out of any team). Their points stay where they were earned."""
    _require_student(user)
    tenant = Tenant.objects.get(pk=user.tenant_id)
    _require_staff(actor, tenant.pk)
    if team is not None and team.tenant_id != user.tenant_id:
        raise NotAllowed("That team is not in this student's class.")
    if team is not None:
        _require_mode(tenant)  # out of a team is always possible; into one only while the class plays in teams
    lock_student(user)
    current = team_of(user)
    if team is not None and current is not None and current.pk == team.pk:
        raise AlreadyInTeam(f"{user.get_full_name()} is in {team.name} already.")
    for locked in sorted([t for t in (current, team) if t is not None], key=lambda t: t.pk):
        _lock_team(locked)
    if team is not None:
        _check_room(team, tenant)
    if current is not None:
        TeamMembership.objects.for_tenant(user.tenant_id).filter(user_id=user.pk).delete()
        _event(current, "TeamLeft", actor, user_id=user.pk, how="moved")
    if team is not None:
        _add_member(team, user, actor=actor, how="moved")
    return team


@audit.recorded
def team_merge(*, source: Team, into: Team, actor: User) -> Team:
    """An instructor merges `source` into `into`: its members, answers and hint unlocks go over, `source` goes.

    The merged team scores each challenge once, from the first solve of either; the
    team size is checked (raise it first to merge two large teams).
    """
    _require_staff(actor, into.tenant_id)
    if source.tenant_id != into.tenant_id:
        raise NotAllowed("Teams of two classes cannot be merged.")
    if source.pk == into.pk:
        raise InvalidAnswer("Choose two different teams to merge.")
    tenant = Tenant.objects.get(pk=into.tenant_id)
    first, second = sorted([source, into], key=lambda t: t.pk)
    locked = {t.pk: _lock_team(t) for t in (first, second)}
    source, into = locked[source.pk], locked[into.pk]
    _check_room(into, tenant, joining=_members(source))
    solved = _dynamic_solved(source)  # one solver fewer where both teams solved
    moved = list(
        TeamMembership.objects.for_tenant(tenant.pk).filter(team_id=source.pk).values_list("user_id", flat=True)
    )
    audit.update_recorded(TeamMembership.objects.for_tenant(tenant.pk).filter(team_id=source.pk), team_id=into.pk)
    audit.update_recorded(Submission.objects.for_tenant(tenant.pk).filter(team_id=source.pk), team_id=into.pk)
    # a hint both teams paid for is charged to the merged team once: its earliest unlock
    # stays charged, the others are taken off the team (listed in the event for the replay)
    both = HintUnlock.objects.for_tenant(tenant.pk).filter(team_id__in=[source.pk, into.pk], hint_id__isnull=False)
    kept = both.order_by("hint_id", "unlocked_at", "pk").distinct("hint_id").values("pk")
    uncharged = sorted(both.exclude(pk__in=kept).values_list("pk", flat=True))
    if uncharged:
        audit.update_recorded(HintUnlock.objects.for_tenant(tenant.pk).filter(pk__in=uncharged), team_id=None)
    audit.update_recorded(HintUnlock.objects.for_tenant(tenant.pk).filter(team_id=source.pk), team_id=into.pk)
    _event(
        source,
        "TeamMerged",
        actor,
        into_team_id=into.pk,
        into_name=into.name,
        members=sorted(moved),
        uncharged=uncharged,
    )
    source.delete()
    team_board.update_teams(tenant_id=tenant.pk, team_ids=[into.pk])
    _settle(solved, actor=actor)
    return into


@audit.recorded
def team_dissolve(*, team: Team, actor: User) -> None:
    """An instructor dissolves a team: its members are in no team, its row leaves the team standings.

    The students keep their own points; the team's answers and unlocks score for no team.
    """
    _require_staff(actor, team.tenant_id)
    _dissolve(_lock_team(team), actor=actor)


def _dissolve(team: Team, *, actor) -> None:
    members = list(
        TeamMembership.objects.for_tenant(team.tenant_id).filter(team_id=team.pk).values_list("user_id", flat=True)
    )
    solved = _dynamic_solved(team)  # its members' answers count as theirs alone: more solvers
    # the team's answers and unlocks let go first: their row locks come before the tenant's
    # leaderboard lock, the order a grading takes them in (a grading in flight holds its answer)
    # (audited in bulk, as a merge's moves are)
    audit.update_recorded(Submission.objects.for_tenant(team.tenant_id).filter(team_id=team.pk), team_id=None)
    audit.update_recorded(HintUnlock.objects.for_tenant(team.tenant_id).filter(team_id=team.pk), team_id=None)
    leaderboard.lock_tenant(team.tenant_id)  # the team's row leaves the standings
    _event(team, "TeamDissolved", actor, members=sorted(members))
    team.delete()
    _settle(solved, actor=actor)
    leaderboard.CACHE.invalidate_on_commit(team.tenant_id)
