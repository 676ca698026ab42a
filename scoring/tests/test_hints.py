"""Hints with a cost: unlocked in order, after a confirmation, charged to that challenge's points only."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from audit.models import EventStore
from challenges.factories import ProjectFactory
from challenges.models import Hint
from scoring import leaderboard, replay, services
from scoring.factories import BadgeFactory
from scoring.hints import AlreadyUnlocked, hint_unlock
from scoring.models import HintUnlock, Leaderboard, UserBadge
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{hinted}"


@pytest.fixture
def challenge(tenant):
    return ProjectFactory(tenant=tenant, points=100, flag=FLAG)


@pytest.fixture
def hints(challenge):
    return [
        Hint.objects.create(
            tenant=challenge.tenant, project=challenge, position=1, text="Free: **look** at it", cost=0
        ),
        Hint.objects.create(tenant=challenge.tenant, project=challenge, position=2, text="Costly", cost=30),
        Hint.objects.create(tenant=challenge.tenant, project=challenge, position=3, text="Very costly", cost=90),
    ]


def points(student):
    return Leaderboard.objects.filter(user=student).values_list("points", flat=True).first()


def test_hints_open_in_order(student, hints):
    with pytest.raises(services.InvalidAnswer, match="in order"):
        hint_unlock(user=student, hint=hints[1])
    hint_unlock(user=student, hint=hints[0])
    hint_unlock(user=student, hint=hints[1])
    assert list(HintUnlock.objects.filter(user=student).values_list("hint__position", "cost")) == [(2, 30), (1, 0)]


def test_a_hint_is_charged_once(student, hints):
    hint_unlock(user=student, hint=hints[0])
    with pytest.raises(AlreadyUnlocked):
        hint_unlock(user=student, hint=hints[0])
    assert HintUnlock.objects.filter(user=student).count() == 1


def test_the_cost_comes_off_the_challenges_points_at_the_solve(student, challenge, hints):
    hint_unlock(user=student, hint=hints[0])
    hint_unlock(user=student, hint=hints[1])
    services.submission_create(user=student, project=challenge, flag=FLAG)
    assert points(student) == 70


def test_a_hint_after_the_solve_is_charged_at_once_never_below_zero(student, tenant, challenge, hints):
    other = ProjectFactory(tenant=tenant, points=50, flag="FLAG{other}")
    services.submission_create(user=student, project=challenge, flag=FLAG)
    services.submission_create(user=student, project=other, flag="FLAG{other}")
    for hint in hints:
        hint_unlock(user=student, hint=hint)
    # 100 - 120 is 0 for that challenge: the other challenge's 50 stay
    assert points(student) == 50
    assert leaderboard.rebuild(tenant.pk)[1:] == (0, 0)
    assert replay.replay(tenant.pk)[1:] == (0, 0)


def test_a_hint_costs_points_badges(student, tenant, challenge, hints):
    badge = BadgeFactory(tenant=tenant, rule_kind="POINTS_AT_LEAST", rule_params={"n": 100})
    services.submission_create(user=student, project=challenge, flag=FLAG)
    assert UserBadge.objects.filter(user=student, badge=badge).exists()
    hint_unlock(user=student, hint=hints[0])
    hint_unlock(user=student, hint=hints[1])
    assert not UserBadge.objects.filter(user=student, badge=badge).exists()


def test_the_unlock_is_an_event_with_its_cost(student, hints):
    hint_unlock(user=student, hint=hints[0])
    hint_unlock(user=student, hint=hints[1])
    events = EventStore.objects.filter(event_type="HintUnlocked", aggregate_id=str(student.pk)).order_by("position")
    assert [(e.payload["hint_id"], e.payload["cost"]) for e in events] == [(hints[0].pk, 0), (hints[1].pk, 30)]


def test_a_deleted_hint_keeps_what_it_cost(student, tenant, challenge, hints):
    hint_unlock(user=student, hint=hints[0])
    hint_unlock(user=student, hint=hints[1])
    services.submission_create(user=student, project=challenge, flag=FLAG)
    hints[1].delete()
    assert points(student) == 70
    assert leaderboard.rebuild(tenant.pk)[1:] == (0, 0)


def test_staff_and_other_tenants_cannot_unlock(instructor, other_student, hints):
    with pytest.raises(services.NotAllowed):
        hint_unlock(user=instructor, hint=hints[0])
    with pytest.raises(services.NotAllowed):
        hint_unlock(user=other_student, hint=hints[0])
    assert not HintUnlock.objects.exists()


def test_the_database_refuses_a_negative_cost(tenant, challenge):
    with pytest.raises(IntegrityError, match="chk_hints_cost_positive"), transaction.atomic():
        Hint.objects.bulk_create([Hint(tenant=tenant, project=challenge, position=1, text="x", cost=-5)])


def test_the_database_refuses_a_second_unlock_of_a_hint(student, hints):
    hint_unlock(user=student, hint=hints[0])
    with pytest.raises(IntegrityError, match="uniq_hint_unlocks_once"), transaction.atomic():
        HintUnlock.objects.bulk_create(
            [HintUnlock(tenant=student.tenant, user=student, project=hints[0].project, hint=hints[0])]
        )


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        (
            "INSERT INTO hints (tenant_id, project_id, position, text, cost) VALUES (%(other)s, %(project)s, 1, '', 0)",
            "fk_hints_project_same_tenant",
        ),
        (
            "INSERT INTO challenge_files (tenant_id, project_id, name, file, size, sha256, uploaded_at) "
            "VALUES (%(other)s, %(project)s, 'a', 'a', 1, '', now())",
            "fk_challenge_files_project_same_tenant",
        ),
        (
            "INSERT INTO project_prerequisites (tenant_id, project_id, required_id) "
            "VALUES (%(tenant)s, %(project)s, %(foreign)s)",
            "fk_project_prerequisites_required_same_tenant",
        ),
        (
            "INSERT INTO hint_unlocks (tenant_id, user_id, project_id, hint_id, cost, unlocked_at) "
            "VALUES (%(tenant)s, %(outsider)s, %(project)s, NULL, 0, now())",
            "fk_hint_unlocks_user_same_tenant",
        ),
    ],
)
def test_content_refers_only_to_its_own_tenant(tenant, other_tenant, challenge, other_student, sql, constraint):
    values = {
        "tenant": tenant.pk,
        "other": other_tenant.pk,
        "project": challenge.pk,
        "foreign": ProjectFactory(tenant=other_tenant).pk,
        "outsider": other_student.pk,
    }
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred to commit, like Django's own
        cursor.execute(sql, values)


# --- the pages -------------------------------------------------------------------------


def test_the_page_shows_hints_locked_with_their_cost(client_for, student, challenge, hints):
    page = client_for(student.tenant, student).get(reverse("challenges:detail", args=[challenge.slug]))
    html = page.content.decode()
    assert "Hint 1" in html and "Free" in html and "30 points" in html
    assert "Costly" not in html  # no text before the unlock


def test_the_confirmation_states_the_cost_and_a_post_unlocks(client_for, student, challenge, hints):
    client = client_for(student.tenant, student)
    hint_unlock(user=student, hint=hints[0])
    url = reverse("challenges:hint-unlock", args=[challenge.slug, hints[1].pk])

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "This hint costs 30 points" in confirm.content.decode()
    assert not HintUnlock.objects.filter(hint=hints[1]).exists()  # a GET changes nothing

    done = client.post(url, follow=True)
    assert done.status_code == 200
    assert "Hint 2 unlocked. It cost 30 points." in done.content.decode()
    assert "Costly" in done.content.decode()


def test_unlocking_out_of_order_says_why(client_for, student, challenge, hints):
    response = client_for(student.tenant, student).post(
        reverse("challenges:hint-unlock", args=[challenge.slug, hints[2].pk])
    )
    assert response.status_code == 400
    assert "earlier hints first" in response.content.decode()
    assert not HintUnlock.objects.exists()


def test_another_tenants_hint_is_a_404(client_for, other_tenant, hints, challenge):
    outsider = StudentFactory(tenant=other_tenant)
    other_challenge = ProjectFactory(tenant=other_tenant, slug=challenge.slug)
    response = client_for(other_tenant, outsider).post(
        reverse("challenges:hint-unlock", args=[other_challenge.slug, hints[0].pk])
    )
    assert response.status_code == 404
    assert not HintUnlock.objects.exists()


def test_instructors_see_who_unlocked_what(client_for, tenant, instructor, student, other_tenant, hints):
    hint_unlock(user=student, hint=hints[0])
    hint_unlock(user=student, hint=hints[1])
    outsider = StudentFactory(tenant=other_tenant)
    theirs = ProjectFactory(tenant=other_tenant, name="Not yours")
    hint_unlock(user=outsider, hint=Hint.objects.create(tenant=other_tenant, project=theirs, position=1, text="x"))

    page = client_for(tenant, instructor).get("/admin/scoring/hintunlock/")

    assert page.status_code == 200
    html = page.content.decode()
    assert student.email in html and "Hint 2" in html and "30" in html
    assert outsider.email not in html and "Not yours" not in html
