"""Teams in the seeded data: the demo's teams and the generated class that plays in teams.

Their standings are held against a rebuild from the answers and a replay of the events
alone (scoring.team_board), as the students' leaderboard is in test_seed_scale.py.
"""

import itertools
import json
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import transaction

from audit import api as audit_api
from audit.models import AuditLog, EventStore
from scoring import team_board
from scoring.models import HintUnlock, Submission, Team, TeamLeaderboard, TeamMembership
from scoring.records import submission_payload, team_payload
from tenants.models import TeamMode, Tenant, User
from vulhub.seeding import generated

pytestmark = pytest.mark.django_db


def stored_standings(tenant_id: int) -> list[tuple]:
    rows = TeamLeaderboard.objects.for_tenant(tenant_id).values_list("team_id", "points", "solves", "last_scored_at")
    return sorted(rows)


def assert_standings_equal_a_rebuild_and_a_replay(tenant_id: int) -> None:
    stored = stored_standings(tenant_id)
    assert stored
    assert team_board.standings_from_tables(tenant_id) == stored
    assert team_board.standings_from_events(tenant_id) == stored
    with transaction.atomic():
        assert team_board.rebuild(tenant_id) == (len(stored), 0, 0)
        assert team_board.replay(tenant_id) == (len(stored), 0, 0)


@pytest.fixture
def demo(db):
    call_command("seed")
    return Tenant.objects.get(domain="localhost")


def members(team: Team) -> list[str]:
    emails = TeamMembership.objects.for_tenant(team.tenant_id).filter(team=team).values_list("user__email", flat=True)
    return sorted(emails)


def test_the_demo_class_plays_in_named_teams(demo):
    assert (demo.team_mode, demo.team_size_max) == (TeamMode.OPTIONAL, 4)
    teams = {t.name: t for t in Team.objects.for_tenant(demo)}
    assert {name: members(team) for name, team in teams.items()} == {
        "Null Pointers": ["alice@vulhub.com", "dave@vulhub.com", "erin@vulhub.com"],
        "Root Cause": ["bob@vulhub.com", "frank@vulhub.com"],
        "Packet Sniffers": ["carol@vulhub.com", "grace@vulhub.com"],
    }
    # the optional mode: a student who plays alone
    heidi = User.objects.get(tenant=demo, email="heidi@vulhub.com")
    assert not TeamMembership.objects.filter(user=heidi).exists()
    assert Submission.objects.for_tenant(demo).filter(user=heidi).exists()


def test_the_demo_answers_and_unlocks_carry_their_team(demo):
    team_of = dict(TeamMembership.objects.for_tenant(demo).values_list("user_id", "team_id"))
    answers = Submission.objects.for_tenant(demo)
    assert answers.exclude(team_id=None).count() > 5
    for user_id, team_id in answers.values_list("user_id", "team_id"):
        assert team_id == team_of.get(user_id)
    unlock = HintUnlock.objects.for_tenant(demo).get(user__email="erin@vulhub.com")
    assert unlock.team_id == team_of[unlock.user_id]
    # the events say so too, as scoring.records writes them
    for event in EventStore.objects.for_tenant(demo.pk).filter(event_type="SubmissionCreated"):
        assert event.payload["team_id"] == team_of.get(event.payload["user_id"])
    assert EventStore.objects.for_tenant(demo.pk).get(event_type="HintUnlocked").payload["team_id"] == unlock.team_id
    kinds = Counter(EventStore.objects.for_tenant(demo.pk).filter(aggregate_type="Team").values_list("event_type"))
    assert kinds == {("TeamCreated",): 3, ("TeamJoined",): 7}
    joined = EventStore.objects.for_tenant(demo.pk).filter(event_type="TeamJoined").values_list("payload", flat=True)
    assert Counter(p["how"] for p in joined) == {"created": 3, "code": 4}


def test_the_demo_team_standings_equal_a_rebuild_and_a_replay(demo):
    assert_standings_equal_a_rebuild_and_a_replay(demo.pk)
    board = TeamLeaderboard.objects.for_tenant(demo).select_related("team")
    rows = {r.team.name: (r.rank, r.points, r.solves) for r in board}
    assert rows["Root Cause"] == (1, 100 + 50 + 100, 3)
    # SQL injection once (Alice's, not Dave's too), Caesar, the capture less Erin's 10-point hint
    assert rows["Null Pointers"] == (2, 100 + 50 + 90, 3)
    assert rows["Packet Sniffers"] == (3, 100 + 50, 2)


def test_seeding_the_demo_again_leaves_its_teams_alone(demo, capsys):
    def state():
        teams = (Team.objects.count(), TeamMembership.objects.count())
        return teams, stored_standings(demo.pk), EventStore.objects.count()

    before = state()
    call_command("seed")
    assert "nothing to do" in capsys.readouterr().out
    assert state() == before


# --- generated data -------------------------------------------------------------------

# tenant 1 gets about 94 students: enough to play in teams; tenant 2 does not
SIZES = ["--tenants", "2", "--students", "160", "--challenges", "8", "--submissions", "2500"]


@pytest.fixture
def generated_tenants(db):
    call_command("seed", *SIZES, "--random-seed", "8", "--no-progress", "--sequential")
    return list(Tenant.objects.filter(slug__startswith="gen8-").order_by("slug"))


def test_the_largest_generated_class_plays_in_teams_of_up_to_its_size(generated_tenants):
    large, small = generated_tenants
    assert large.team_mode == TeamMode.OPTIONAL and small.team_mode == TeamMode.OFF
    assert not Team.objects.for_tenant(small).exists()
    sizes = Counter(TeamMembership.objects.for_tenant(large).values_list("team_id", flat=True))
    students = User.objects.for_tenant(large).filter(role=User.Role.STUDENT).count()
    assert len(sizes) >= 15 and max(sizes.values()) <= large.team_size_max
    assert len(set(sizes.values())) >= 3  # teams of several sizes
    assert 0.6 * students <= sum(sizes.values()) < students  # most students in a team, a few alone
    answers = Submission.objects.for_tenant(large)
    assert answers.exclude(team_id=None).count() > answers.count() / 2
    # an answer carries the team its student was in when they sent it
    joined = dict(TeamMembership.objects.for_tenant(large).values_list("user_id", "joined_at"))
    teams = dict(TeamMembership.objects.for_tenant(large).values_list("user_id", "team_id"))
    for user_id, team_id, at in answers.values_list("user_id", "team_id", "submitted_at"):
        assert team_id == (teams[user_id] if user_id in joined and at >= joined[user_id] else None)


def test_the_generated_team_standings_equal_a_rebuild_and_a_replay(generated_tenants):
    large = generated_tenants[0]
    assert TeamLeaderboard.objects.for_tenant(large).count() >= 10
    assert_standings_equal_a_rebuild_and_a_replay(large.pk)


def test_the_generated_team_records_are_those_the_app_writes(generated_tenants):
    large = generated_tenants[0]
    events = EventStore.objects.for_tenant(large.pk)
    for team in Team.objects.for_tenant(large):
        created = events.get(aggregate_type="Team", aggregate_id=str(team.pk), version=1)
        assert (created.event_type, created.payload) == ("TeamCreated", team_payload(team))
        assert created.metadata["actor_id"] == team.created_by_id
        audit = AuditLog.objects.get(tenant_id=large.pk, object_type="scoring.team", object_id=str(team.pk))
        assert audit.changes == json.loads(json.dumps(audit_api.created_changes(team)))
        assert audit.changes["invite_code"] == [None, "[redacted]"]
    for membership in TeamMembership.objects.for_tenant(large).select_related("team", "user"):
        joined = events.filter(event_type="TeamJoined", payload__user_id=membership.user_id).get()
        how = "created" if membership.user_id == membership.team.created_by_id else "code"
        assert joined.payload == team_payload(membership.team, details={"user_id": membership.user_id, "how": how})
    sample = Submission.objects.for_tenant(large).exclude(team_id=None).select_related("project")[:20]
    for submission in sample:
        event = events.get(aggregate_type="Submission", aggregate_id=str(submission.pk), version=1)
        if submission.graded_by_id is None:
            assert event.payload == submission_payload(submission)
        assert event.payload["team_id"] == submission.team_id


def test_a_small_class_does_not_play_in_teams_and_teams_change_no_other_data(monkeypatch):
    def run(students):
        counter = itertools.count(1)
        ids = generated.Ids(lambda table, n: [next(counter) for _ in range(n)])
        return generated.generate_tenant(seed=4, number=1, students=students, challenges=6, submissions=800, ids=ids)

    small = run(generated.TEAM_CLASS_MIN - 1)
    assert not small.teams and small.tenant.team_mode == TeamMode.OFF
    assert all(row[-1] is None for row in small.submissions)
    large = run(generated.TEAM_CLASS_MIN)
    assert large.teams and large.tenant.team_mode == TeamMode.OPTIONAL
    # the teams come from a generator of their own: without them, the same people and answers
    monkeypatch.setattr(generated, "plays_in_teams", lambda number, students: False)
    alone = run(generated.TEAM_CLASS_MIN)
    assert [u.email for u in alone.users] == [u.email for u in large.users]
    assert [r[3:-1] for r in alone.submissions] == [r[3:-1] for r in large.submissions]
