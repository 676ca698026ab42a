"""Replay = incremental = rebuild, after every step of any sequence of the changes that move points.

A hypothesis state machine drives a class on the real database through the ways points
move: flags right and wrong, write-ups graded and regraded, badges revoked, challenges
unpublished and published again, deleted, re-valued, students deactivated and deleted,
a neighbouring class deleted, hints unlocked (their costs come off a challenge's points)
and dynamic challenges solved, graded and re-decayed (every solver's points follow); and,
interleaved with all of these, teams (issue 31): the class's team mode switched, teams
created, joined by code, left, students moved, teams merged and dissolved, codes renewed.
After every step the three ways to know the standings must agree, for every live class
of the run, for the students and for the teams:

- incremental: the leaderboards and team_leaderboards tables as the services and
  scoring.changes keep them;
- rebuild: the standings computed from the submissions (scoring.leaderboard.STANDINGS,
  scoring.team_board.standings_from_tables);
- replay: the standings computed from the event store alone (scoring.replay,
  scoring.team_board.standings_from_events);

every stored rank is a fresh window rank, and a dynamic challenge is worth its value for
its solvers (a team counts once).
"""

import pytest
from django.db import connection
from factory import Transformer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from challenges.factories import ProjectFactory
from challenges.models import Hint, Project
from scoring import leaderboard, services, team_board, teams
from scoring.factories import BadgeFactory
from scoring.hints import hint_unlock
from scoring.models import Badge, HintUnlock, Leaderboard, Submission, Team, TeamLeaderboard, UserBadge
from scoring.replay import standings_from_events
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory
from tenants.models import TeamMode, Tenant, User

FLAG = "FLAG{replay}"
STUDENTS, CHALLENGES = 4, 4
index = st.integers(min_value=0, max_value=15)
modes = st.sampled_from([TeamMode.OPTIONAL, TeamMode.OPTIONAL, TeamMode.REQUIRED, TeamMode.OFF])


def fetch(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def standings(rows) -> set[tuple]:
    return {(user_id, points, solves, scored_at) for user_id, points, solves, scored_at in rows}


class Class:
    """A tenant of the run: its instructor, students and challenges (half with a flag)."""

    def __init__(self, team_mode=TeamMode.OFF):
        self.tenant = TenantFactory(team_mode=team_mode, team_size_max=3)  # 3 of 4 students: a team can be full
        self.instructor = InstructorFactory(tenant=self.tenant, password=Transformer.Force("!"))
        self.students = [StudentFactory(tenant=self.tenant, password=Transformer.Force("!")) for _ in range(STUDENTS)]
        self.projects = [
            ProjectFactory(tenant=self.tenant, points=50 * (n + 1), flag=FLAG if n % 2 == 0 else None)
            for n in range(CHALLENGES)
        ] + [  # dynamic: a flag (CTFd's logarithmic decay) and a write-up (linear)
            ProjectFactory(
                tenant=self.tenant, scoring="DYNAMIC", initial_points=300, minimum_points=50, decay=3, flag=FLAG
            ),
            ProjectFactory(
                tenant=self.tenant,
                scoring="DYNAMIC",
                initial_points=200,
                minimum_points=20,
                decay=45,
                decay_function="LINEAR",
            ),
        ]
        for project in self.projects[::2]:
            for position, cost in enumerate((40, 120, 0), start=1):
                Hint.objects.create(tenant=self.tenant, project=project, position=position, text="h", cost=cost)
        BadgeFactory(tenant=self.tenant, rule_kind=Badge.RuleKind.FIRST_SOLVE)
        BadgeFactory(tenant=self.tenant, rule_kind=Badge.RuleKind.POINTS_AT_LEAST, rule_params={"n": 150})

    def student(self, i: int) -> User | None:
        alive = list(User.objects.filter(pk__in=[s.pk for s in self.students]).order_by("pk"))
        return alive[i % len(alive)] if alive else None

    def project(self, i: int) -> Project | None:
        alive = list(Project.objects.filter(pk__in=[p.pk for p in self.projects]).order_by("pk"))
        return alive[i % len(alive)] if alive else None

    def team(self, k: int) -> Team | None:
        alive = list(Team.objects.filter(tenant=self.tenant).order_by("pk"))
        return alive[k % len(alive)] if alive else None


class PointsMachine(RuleBasedStateMachine):
    @initialize(team_mode=modes)
    def classes(self, team_mode):
        self.main = Class(team_mode)
        self.neighbour = Class()  # active too, then perhaps deleted: never touches the main class
        self.live = [self.main, self.neighbour]

    def _try(self, call, **kwargs):
        try:
            return call(**kwargs)
        except services.ScoringError:
            return None  # a refusal changes nothing: the invariants say so

    def _flag(self, i, j, flag, neighbour):
        klass = self.neighbour if neighbour and self.neighbour in self.live else self.main
        student, project = klass.student(i), klass.project(j)
        if student and project and project.has_flag:
            self._try(services.submission_create, user=student, project=project, flag=flag)

    @rule(i=index, j=index, neighbour=st.booleans())
    def solve_with_a_flag(self, i, j, neighbour):
        self._flag(i, j, FLAG, neighbour)

    @rule(i=index, j=index)
    def try_a_wrong_flag(self, i, j):
        self._flag(i, j, "FLAG{no}", neighbour=False)

    @rule(i=index, j=index)
    def submit_writeup(self, i, j):
        student, project = self.main.student(i), self.main.project(j)
        if student and project and not project.has_flag:
            self._try(services.submission_create, user=student, project=project, writeup="How I did it.")

    @rule(k=index, approve=st.sampled_from([True, True, True, False]), score=st.integers(min_value=0, max_value=100))
    def grade_or_regrade(self, k, approve, score):
        writeups = list(Submission.objects.filter(tenant=self.main.tenant, kind=Submission.Kind.WRITEUP).order_by("pk"))
        if writeups:
            status = Submission.Status.APPROVED if approve else Submission.Status.REJECTED
            self._try(
                services.submission_grade,
                submission=writeups[k % len(writeups)],
                status=status,
                score=score if approve else 0,
                grader=self.main.instructor,
            )

    @rule(i=index, j=index)
    def unlock_the_next_hint(self, i, j):
        student, project = self.main.student(i), self.main.project(j)
        if student and project:
            unlocked = HintUnlock.objects.filter(user=student).values("hint_id")
            following = Hint.objects.filter(project=project).exclude(pk__in=unlocked).order_by("position").first()
            if following:
                self._try(hint_unlock, user=student, hint=following)

    @rule(j=index, decay=st.sampled_from([1, 2, 5, 30]), linear=st.booleans())
    def change_a_decay(self, j, decay, linear):
        dynamic = list(Project.objects.filter(tenant=self.main.tenant, scoring="DYNAMIC").order_by("pk"))
        if dynamic:
            project = dynamic[j % len(dynamic)]
            project.decay, project.decay_function = decay, "LINEAR" if linear else "LOGARITHMIC"
            project.save()

    @rule(k=index)
    def revoke_a_badge(self, k):
        awards = list(UserBadge.objects.filter(tenant=self.main.tenant).select_related("badge", "user").order_by("pk"))
        if awards:
            award = awards[k % len(awards)]
            services.badge_revoke(badge=award.badge, user=award.user, actor=self.main.instructor)

    @rule(j=index)
    def unpublish_or_publish(self, j):
        project = self.main.project(j)
        if project:
            project.is_published = not project.is_published
            project.save()

    @rule(j=index)
    def delete_a_challenge(self, j):
        project = self.main.project(j)
        if project:
            project.delete()

    @rule(j=index, points=st.sampled_from([0, 25, 75, 100, 333]))
    def revalue_a_challenge(self, j, points):
        project = self.main.project(j)
        if project:
            project.points = points
            project.save()

    @rule(i=index)
    def deactivate_a_student(self, i):
        student = self.main.student(i)
        if student:
            student.is_active = not student.is_active
            student.save()

    @rule(i=index)
    def delete_a_student(self, i):
        student = self.main.student(i)
        if student:
            student.delete()

    @precondition(lambda self: self.neighbour in self.live)
    @rule()
    def delete_the_neighbouring_class(self):
        Tenant.objects.get(pk=self.neighbour.tenant.pk).delete()
        self.live.remove(self.neighbour)

    # --- teams (the main class) ---

    @rule(mode=modes)
    def switch_the_team_mode(self, mode):
        Tenant.objects.filter(pk=self.main.tenant.pk).update(team_mode=mode)

    @rule(i=index, n=st.integers(min_value=0, max_value=5))
    def create_a_team(self, i, n):
        student = self.main.student(i)
        if student:
            self._try(teams.team_create, user=student, name=f"Team {n}")

    @rule(i=index, k=index)
    def join_a_team_by_its_code(self, i, k):
        student, team = self.main.student(i), self.main.team(k)
        if student and team:
            self._try(teams.team_join, user=student, code=team.invite_code)

    @rule(i=index)
    def leave_a_team(self, i):
        student = self.main.student(i)
        if student:
            self._try(teams.team_leave, user=student)

    @rule(i=index, k=index, out=st.booleans())
    def move_a_student(self, i, k, out):
        student, team = self.main.student(i), self.main.team(k)
        if student and (team or out):
            self._try(teams.team_move, user=student, team=None if out else team, actor=self.main.instructor)

    @rule(k=index, into=index)
    def merge_two_teams(self, k, into):
        source, target = self.main.team(k), self.main.team(into)
        if source and target:
            self._try(teams.team_merge, source=source, into=target, actor=self.main.instructor)

    @rule(k=index)
    def dissolve_a_team(self, k):
        team = self.main.team(k)
        if team:
            self._try(teams.team_dissolve, team=team, actor=self.main.instructor)

    @rule(k=index)
    def renew_a_teams_code(self, k):
        team = self.main.team(k)
        if team:
            self._try(teams.team_new_code, team=team, actor=self.main.instructor)

    @invariant()
    def incremental_rebuild_and_replay_agree(self):
        for klass in self.live:
            tenant_id = klass.tenant.pk
            incremental = standings(
                Leaderboard.objects.filter(tenant_id=tenant_id).values_list(
                    "user_id", "points", "solves", "last_scored_at"
                )
            )
            rebuilt = standings(fetch(leaderboard.STANDINGS, {"tenant": tenant_id}))
            replayed = standings(standings_from_events(tenant_id))
            assert incremental == rebuilt, "the table differs from the submissions"
            assert replayed == rebuilt, "the events differ from the submissions"
            if klass is not self.main:
                continue  # the neighbour plays alone: its team standings stay empty by construction
            team_table = sorted(
                TeamLeaderboard.objects.filter(tenant_id=tenant_id).values_list(
                    "team_id", "points", "solves", "last_scored_at"
                )
            )
            assert team_table == team_board.standings_from_tables(tenant_id), "the team table differs from the answers"
            assert team_board.standings_from_events(tenant_id) == team_table, "the events differ from the team table"
        stale = fetch(
            """
            SELECT id FROM (SELECT id, rank, rank() OVER (PARTITION BY tenant_id ORDER BY points DESC) AS fresh
                            FROM leaderboards WHERE tenant_id = ANY(%s)) r
            WHERE rank <> fresh
            """,
            [[klass.tenant.pk for klass in self.live]],
        )
        assert stale == []
        stale_teams = fetch(
            """
            SELECT id FROM (SELECT id, rank, rank() OVER (PARTITION BY tenant_id ORDER BY points DESC) AS fresh
                            FROM team_leaderboards WHERE tenant_id = ANY(%s)) r
            WHERE rank <> fresh
            """,
            [[klass.tenant.pk for klass in self.live]],
        )
        assert stale_teams == []
        for project in Project.objects.filter(tenant_id__in=[k.tenant.pk for k in self.live], scoring="DYNAMIC"):
            approvals = Submission.objects.filter(project=project, status=Submission.Status.APPROVED)
            # a team is one solver; a student who answered alone is one (scoring.dynamic.SOLVERS)
            solvers = len(
                {("team", t) if t else ("student", u) for u, t in approvals.values_list("user_id", "team_id")}
            )
            assert project.points == project.value_with(solvers), "a dynamic value lags its solvers"
        if self.neighbour not in self.live:
            gone = self.neighbour.tenant.pk
            assert not Leaderboard.objects.filter(tenant_id=gone).exists()


@pytest.mark.django_db
def test_every_change_that_moves_points_keeps_replay_incremental_and_rebuild_equal():
    run_state_machine_as_test(
        PointsMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,  # the examples need no memory across runs: CI explores afresh
        ),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["merge", "dissolve"])
def test_a_merge_or_dissolve_moves_a_dynamic_challenges_solver_count_and_its_value_follows(change):
    """Two teams solved a dynamic challenge (two solvers); merged they are one solver, dissolved three students."""
    machine = PointsMachine()
    machine.classes(team_mode=TeamMode.OPTIONAL)
    klass = machine.main
    first, second, third = klass.students[:3]
    red = teams.team_create(user=first, name="Red")
    teams.team_join(user=third, code=red.invite_code)
    blue = teams.team_create(user=second, name="Blue")
    dynamic = klass.projects[CHALLENGES]  # the dynamic flag
    for student in (first, second, third):
        services.submission_create(user=student, project=dynamic, flag=FLAG)
    machine.incremental_rebuild_and_replay_agree()
    assert Project.objects.get(pk=dynamic.pk).points == dynamic.value_with(2)

    if change == "merge":
        teams.team_merge(source=blue, into=red, actor=klass.instructor)
    else:
        teams.team_dissolve(team=red, actor=klass.instructor)

    machine.incremental_rebuild_and_replay_agree()  # the value follows its solvers, everywhere
    assert Project.objects.get(pk=dynamic.pk).points == dynamic.value_with(1 if change == "merge" else 3)
