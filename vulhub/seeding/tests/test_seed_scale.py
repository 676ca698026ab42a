"""`manage.py seed` with generated data: realistic, deterministic, consistent, loaded in bulk.

The generated rows are written with COPY, bypassing the model signals, so these
tests hold them against what the app itself would have written: the audit rows
and events of the receivers, the leaderboard of a rebuild and of a replay of the
events, the badges of the rules, the audit hash chain.
"""

import io
import itertools
import json
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditLog, EventStore
from audit.receivers import current_values, diff
from audit.verify import verify_chain
from challenges.models import Project
from scoring import leaderboard
from scoring.badges import earned_badge_ids
from scoring.models import Badge, Leaderboard, Submission, UserBadge
from scoring.records import submission_payload
from scoring.replay import standings_from_events
from tenants.models import Tenant, User
from vulhub.seeding import generated

pytestmark = pytest.mark.django_db

SIZES = ["--tenants", "2", "--students", "60", "--challenges", "10", "--submissions", "1500"]


def seed(*args):
    call_command("seed", *args, "--no-progress", "--sequential")


def generated_tenants(seed_number):
    return list(Tenant.objects.filter(slug__startswith=f"gen{seed_number}-").order_by("slug"))


@pytest.fixture
def seeded(db):
    seed(*SIZES, "--random-seed", "5")
    return generated_tenants(5)


def fingerprint(tenants) -> list:
    """The generated data without database ids: what a seed must reproduce."""
    rows = []
    for tenant in tenants:
        rows.append(("tenant", tenant.slug, tenant.name, json.dumps(tenant.settings, sort_keys=True)))
        rows += sorted(
            ("user", u.email, u.first_name, u.last_name, u.role, u.date_joined.isoformat())
            for u in User.objects.for_tenant(tenant)
        )
        rows += sorted(
            ("project", p.slug, p.name, p.category, p.difficulty, p.points, p.is_published, p.has_flag)
            for p in Project.objects.for_tenant(tenant)
        )
        rows += sorted(
            (
                "submission",
                s.user.email,
                s.project.slug,
                s.kind,
                s.status,
                s.score,
                s.points_awarded,
                s.answer,
                s.submitted_at.isoformat(),
            )  # fmt: skip
            for s in Submission.objects.for_tenant(tenant).select_related("user", "project")
        )
        rows += sorted(
            ("badge", ub.user.email, ub.badge.slug, ub.awarded_at.isoformat())
            for ub in UserBadge.objects.for_tenant(tenant).select_related("user", "badge")
        )
        rows += [
            ("rank", row.user.email, row.points, row.solves, row.rank)
            for row in Leaderboard.objects.for_tenant(tenant).select_related("user").order_by("rank", "user__email")
        ]
    return rows


def test_sizes_are_exact_and_split_unevenly(seeded):
    assert [t.slug for t in seeded] == ["gen5-1", "gen5-2"]
    students = [User.objects.for_tenant(t).filter(role=User.Role.STUDENT).count() for t in seeded]
    assert sum(students) == 60 and students[0] > students[1]
    assert sum(Submission.objects.for_tenant(t).count() for t in seeded) == 1500
    assert all(Project.objects.for_tenant(t).count() == 10 for t in seeded)
    for tenant in seeded:
        staff = Counter(User.objects.for_tenant(tenant).exclude(role=User.Role.STUDENT).values_list("role", flat=True))
        assert staff == {User.Role.ADMIN: 1, User.Role.INSTRUCTOR: 2}


def test_data_is_realistic(seeded):
    tenant = seeded[0]
    subs = Submission.objects.for_tenant(tenant)
    assert set(subs.values_list("status", flat=True)) == {"APPROVED", "REJECTED", "PENDING"}
    assert set(subs.values_list("kind", flat=True)) == {"FLAG", "WRITEUP"}
    # students differ in activity and skill
    per_student = Counter(subs.values_list("user_id", flat=True))
    assert max(per_student.values()) >= 3 * min(per_student.values())
    solves = Counter(subs.approved().values_list("user_id", flat=True))
    assert len(set(solves.values())) >= 4
    # only published challenges get answers, and pending write-ups have no grade
    assert not subs.filter(project__is_published=False).exists()
    assert not subs.pending().exclude(score=None).exists()
    assert subs.filter(kind="WRITEUP", status="APPROVED").exclude(graded_by=None).count() == (
        subs.filter(kind="WRITEUP", status="APPROVED").count()
    )
    # badges earned, ranks with ties
    assert UserBadge.objects.for_tenant(tenant).exists()
    ranks = Counter(Leaderboard.objects.for_tenant(tenant).values_list("rank", flat=True))
    assert any(n > 1 for n in ranks.values()), "expected tied ranks"


def test_leaderboard_equals_a_rebuild_and_a_replay_of_the_events(seeded):
    for tenant in seeded:
        before = sorted(
            Leaderboard.objects.for_tenant(tenant).values_list("user_id", "points", "solves", "last_scored_at")
        )
        assert before
        rows, written, removed = leaderboard.rebuild(tenant.pk)
        assert (rows, written, removed) == (len(before), 0, 0)
        replayed = {(u, p, s) for u, p, s, _ in standings_from_events(tenant.pk)}
        assert replayed == {(u, p, s) for u, p, s, _ in before}


def test_badges_are_those_the_rules_give(seeded):
    tenant = seeded[0]
    rule_badges = set(Badge.objects.for_tenant(tenant).exclude(rule_kind="").values_list("pk", flat=True))
    held = {}
    for user_id, badge_id in UserBadge.objects.for_tenant(tenant).values_list("user_id", "badge_id"):
        held.setdefault(user_id, set()).add(badge_id)
    students = User.objects.for_tenant(tenant).filter(role=User.Role.STUDENT)
    for student in students:
        assert earned_badge_ids(student) == held.get(student.pk, set()) & rule_badges, student.email
    by_hand = UserBadge.objects.for_tenant(tenant).filter(badge__rule_kind="")
    assert by_hand.exists() and not by_hand.filter(awarded_by=None).exists()


def test_audit_rows_and_events_are_those_the_app_writes(seeded):
    tenant = seeded[0]
    assert verify_chain(tenant.pk).broken is None
    subs = Submission.objects.for_tenant(tenant).select_related("project")
    graded_writeups = subs.filter(kind="WRITEUP").exclude(status="PENDING").count()
    audits = AuditLog.objects.filter(tenant_id=tenant.pk, object_type="scoring.submission")
    assert audits.count() == subs.count() + graded_writeups
    created = {a.object_id: a for a in audits.filter(action="create")}
    events = {
        e.aggregate_id: e
        for e in EventStore.objects.for_tenant(tenant.pk).filter(event_type="SubmissionCreated", version=1)
    }
    samples = [subs.filter(kind="FLAG", status=s).first() for s in ("APPROVED", "REJECTED")]
    samples.append(subs.filter(kind="WRITEUP", status="PENDING").first())
    for submission in samples:
        audit = created[str(submission.pk)]
        assert audit.changes == json.loads(json.dumps(diff(submission, None, current_values(submission))))
        assert audit.object_text == str(submission)
        assert events[str(submission.pk)].payload == submission_payload(submission)
    graded = subs.filter(kind="WRITEUP", status="APPROVED").first()
    event = EventStore.objects.get(aggregate_type="Submission", aggregate_id=str(graded.pk), version=2)
    assert event.event_type == "SubmissionGraded"
    assert event.payload["points_awarded"] == graded.points_awarded and event.payload["regrade"] is False
    # every user registered, every published challenge published
    users = User.objects.for_tenant(tenant).count()
    assert EventStore.objects.for_tenant(tenant.pk).filter(event_type="UserRegistered").count() == users
    published = Project.objects.for_tenant(tenant).published().count()
    assert EventStore.objects.for_tenant(tenant.pk).filter(event_type="ProjectPublished").count() == published


def test_generated_people_can_sign_in(seeded):
    student = User.objects.for_tenant(seeded[0]).filter(role=User.Role.STUDENT).first()
    assert student.check_password(generated.STUDENT_PASSWORD)
    admin = User.objects.for_tenant(seeded[0]).get(role=User.Role.ADMIN)
    assert admin.check_password(generated.STAFF_PASSWORD) and admin.email.startswith("admin@")
    assert User.objects.for_tenant(seeded[0]).filter(role=User.Role.STUDENT).exclude(email__contains="@").count() == 0
    flagged = Project.objects.for_tenant(seeded[0]).exclude(flag_hash="").first()
    right = Submission.objects.for_tenant(seeded[0]).filter(project=flagged, status="APPROVED").first()
    if right is not None:
        assert flagged.check_flag(right.answer)


def test_seeding_twice_changes_nothing(seeded, capsys):
    before = fingerprint(seeded)
    counts = (AuditLog.objects.count(), EventStore.objects.count(), Submission.objects.count())
    capsys.readouterr()
    seed(*SIZES, "--random-seed", "5")
    assert "already there" in capsys.readouterr().out
    assert fingerprint(generated_tenants(5)) == before
    assert (AuditLog.objects.count(), EventStore.objects.count(), Submission.objects.count()) == counts


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(seeded):
    first = fingerprint(seeded)
    Tenant.objects.filter(pk__in=[t.pk for t in seeded]).delete()
    assert not generated_tenants(5)
    seed(*SIZES, "--random-seed", "5")
    assert fingerprint(generated_tenants(5)) == first
    seed(*SIZES, "--random-seed", "6")
    other = fingerprint(generated_tenants(6))
    strip = [row[2:] for row in other if row[0] == "submission"]
    assert strip != [row[2:] for row in first if row[0] == "submission"]


def test_generation_alone_is_deterministic():
    def run(seed_number):
        counter = itertools.count(1)  # the same ids each run, as a fresh database would give
        ids = generated.Ids(lambda table, n: [next(counter) for _ in range(n)])
        data = generated.generate_tenant(
            seed=seed_number, number=1, students=20, challenges=6, submissions=300, ids=ids
        )
        return data.submissions, data.audits, data.events, [(u.email, u.first_name) for u in data.users]

    first, again, other = run(3), run(3), run(4)
    assert first == again
    assert first[0] != other[0] and first[3] != other[3]


def test_other_sizes_for_an_existing_seed_are_reported(seeded, capsys):
    capsys.readouterr()
    seed("--tenants", "2", "--students", "80", "--challenges", "10", "--submissions", "1500", "--random-seed", "5")
    captured = capsys.readouterr()
    assert "exists with other sizes" in captured.err
    assert User.objects.for_tenant(seeded[0]).filter(role=User.Role.STUDENT).count() < 80


@pytest.mark.parametrize(
    "args, message",
    [
        (["--students", "0", "--submissions", "10"], "Submissions need students and challenges"),
        (["--challenges", "0", "--submissions", "10"], "Submissions need students and challenges"),
        (["--challenges", "20000"], "at most 10,000"),
    ],
)
def test_impossible_sizes_are_refused_with_a_message(db, args, message):
    with pytest.raises(CommandError, match=message):
        seed(*args)
    assert not Tenant.objects.filter(slug__startswith="gen1-").exists()


def test_a_negative_size_is_refused(db):
    with pytest.raises(CommandError, match="invalid _positive value|--students"):
        call_command("seed", "--students", "-5")


@pytest.mark.django_db(transaction=True)
def test_the_default_path_loads_from_a_second_thread_and_commits_per_tenant(capsys):
    call_command("seed", "--tenants", "2", "--students", "20", "--challenges", "5", "--submissions", "200",
                 "--random-seed", "9", "--no-progress")  # fmt: skip
    out = capsys.readouterr().out
    assert "Generated 2 tenant(s)" in out and "submissions" in out
    tenants = generated_tenants(9)
    assert len(tenants) == 2
    assert sum(Submission.objects.for_tenant(t).count() for t in tenants) == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM leaderboards WHERE tenant_id = ANY(%s)", [[t.pk for t in tenants]])
        assert cursor.fetchone()[0] > 0


def test_no_progress_bar_is_drawn_into_output_that_is_not_a_terminal():
    err = io.StringIO()  # a log file or cron's mail: not a terminal

    call_command("seed", *SIZES, "--random-seed", "6", "--sequential", stdout=io.StringIO(), stderr=err)

    assert generated_tenants(6)  # it did seed
    assert "rows/s" not in err.getvalue() and "\r" not in err.getvalue()
