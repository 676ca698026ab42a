"""Badges by hand in the admin: award with a student searched by name or e-mail, revoke with a reason.

The student search is the awards admin's own JSON endpoint (select2's format), scoped to
the request's tenant and to students. Awards are never deleted: they are revoked through
the service, and the reason reaches the audit log and the BadgeRevoked event.
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditLog, EventStore
from scoring import services
from scoring.badge_admin import REASON_MAX_LENGTH, REVOKE_AT_MOST, STUDENT_SEARCH_PAGE
from scoring.factories import BadgeFactory, LeaderboardFactory, UserBadgeFactory
from scoring.models import Leaderboard, UserBadge
from tenants.factories import InstructorFactory, StudentFactory
from tenants.roles import INSTRUCTORS_GROUP

pytestmark = pytest.mark.usefixtures("fast_hashing")

AWARDS = "/admin/scoring/userbadge/"
SEARCH = f"{AWARDS}student-search/"


@pytest.fixture
def client(tenant, instructor, client_for):
    return client_for(tenant, instructor)


@pytest.fixture
def badge(tenant):
    return BadgeFactory(tenant=tenant, name="First Blood", slug="first-blood", rule_kind="")


@pytest.fixture
def alice(tenant):
    return StudentFactory(tenant=tenant, first_name="Alice", last_name="Anderson", email="alice@alpha.test")


@pytest.fixture
def danas(tenant):
    return [
        StudentFactory(tenant=tenant, first_name="Dana", last_name="Scully", email="dana.s@alpha.test"),
        StudentFactory(tenant=tenant, first_name="Dana", last_name="Fox", email="dfox@alpha.test"),
    ]


def search(client, term, page=None):
    query = {"term": term} | ({"page": page} if page is not None else {})
    response = client.get(SEARCH, query)
    assert response.status_code == 200, response.content
    return response.json()


def texts(answer):
    return [row["text"] for row in answer["results"]]


def without_permission(codename):
    """The instructors' group loses one permission (for this test: the transaction rolls back)."""
    Group.objects.get(name=INSTRUCTORS_GROUP).permissions.remove(
        Permission.objects.get(content_type__app_label="scoring", codename=codename)
    )


def revoke_rows(award_pk):
    return list(AuditLog.objects.filter(action="revoke", object_type="scoring.userbadge", object_id=str(award_pk)))


# --- the student search -------------------------------------------------------------------


@pytest.mark.parametrize("term", ["Alice", "anders", "alice@alpha", "ALICE ANDERSON", '"Alice"'])
def test_it_finds_a_student_by_first_name_last_name_or_email(client, alice, term):
    StudentFactory(tenant=alice.tenant, first_name="Bob", last_name="Brown", email="bob@alpha.test")

    answer = search(client, term)

    assert answer == {
        "results": [{"id": str(alice.pk), "text": "Alice Anderson (alice@alpha.test)"}],
        "pagination": {"more": False},
    }


def test_it_tells_two_danas_apart_by_email(client, danas):
    assert texts(search(client, "dan")) == ["Dana Fox (dfox@alpha.test)", "Dana Scully (dana.s@alpha.test)"]


def test_a_student_without_a_name_is_shown_by_email(client, tenant):
    StudentFactory(tenant=tenant, first_name="", last_name="", email="nameless@alpha.test")

    assert texts(search(client, "nameless")) == ["nameless@alpha.test"]


def test_it_never_finds_another_tenants_student_or_a_staff_user(client, tenant, other_tenant, alice):
    StudentFactory(tenant=other_tenant, first_name="Alice", last_name="Abroad", email="alice@beta.test")
    InstructorFactory(tenant=tenant, first_name="Alice", last_name="Teacher", email="alice.t@alpha.test")

    assert texts(search(client, "alice")) == ["Alice Anderson (alice@alpha.test)"]
    assert texts(search(client, "")) == ["Alice Anderson (alice@alpha.test)"]  # the instructor fixture neither


def test_the_results_come_a_page_at_a_time(client, tenant):
    for i in range(STUDENT_SEARCH_PAGE + 5):
        StudentFactory(tenant=tenant, first_name="Sam", last_name=f"Student{i:02d}", email=f"sam{i:02d}@alpha.test")

    first = search(client, "sam")
    second = search(client, "sam", page=2)

    assert len(first["results"]) == STUDENT_SEARCH_PAGE and first["pagination"]["more"] is True
    assert len(second["results"]) == 5 and second["pagination"]["more"] is False
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}


def test_the_search_costs_the_same_for_any_number_of_students(client, tenant):
    def queries_for(term):
        with CaptureQueriesContext(connection) as queries:
            search(client, term)
        return len(queries)

    StudentFactory(tenant=tenant, first_name="Few")
    few = queries_for("few")
    for i in range(30):
        StudentFactory(tenant=tenant, first_name="Many", email=f"many{i}@alpha.test")

    assert queries_for("many") == few


@pytest.mark.parametrize("query", [{"page": "abc"}, {"page": "0"}, {"page": "99999999"}, {"term": "al\x00ice"}])
def test_a_bad_search_is_a_400(client, alice, query):
    assert client.get(SEARCH, query).status_code == 400


def test_a_very_long_search_is_cut_not_refused(client, alice):
    assert search(client, "alice " * 1000)["results"][0]["id"] == str(alice.pk)


def test_the_search_needs_the_view_permission_of_awards(client, alice):
    without_permission("view_userbadge")

    response = client.get(SEARCH, {"term": "alice"})

    assert response.status_code == 403
    assert b"alice" not in response.content


def test_a_student_gets_no_search(tenant, alice, client_for):
    response = client_for(tenant, alice).get(SEARCH, {"term": "alice"})

    assert response.status_code == 302  # to the admin's login
    assert b"alice@" not in response.content


# --- the award form ---------------------------------------------------------------------------


def test_the_award_form_has_a_searchable_student_field(client, alice, badge):
    response = client.get(f"{AWARDS}add/")

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-ajax--url="{SEARCH}"' in html
    assert "admin-autocomplete" in html
    assert "alice@alpha.test" not in html  # no list of every student: they are searched
    assert "add_id_user" not in html  # no "add a user" from here


def test_awarding_through_the_form(client, tenant, instructor, alice, badge):
    response = client.post(f"{AWARDS}add/", {"badge": badge.pk, "user": alice.pk})

    assert response.status_code == 302
    award = UserBadge.objects.get(badge=badge, user=alice)
    assert award.awarded_by == instructor
    [event] = EventStore.objects.filter(event_type="BadgeAwarded", aggregate_id=str(alice.pk))
    assert event.payload["awarded_by_id"] == instructor.pk
    assert AuditLog.objects.get(action="create", object_type="scoring.userbadge").object_text == (
        "First Blood for Alice Anderson"
    )


def test_a_form_with_an_error_shows_the_chosen_student_by_name(client, alice, badge):
    response = client.post(f"{AWARDS}add/", {"badge": "", "user": alice.pk})

    assert response.status_code == 200
    assert "Alice Anderson (alice@alpha.test)" in response.content.decode()


def test_another_tenants_student_is_a_form_error(client, badge, other_student):
    response = client.post(f"{AWARDS}add/", {"badge": badge.pk, "user": other_student.pk})

    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not UserBadge.objects.exists()


def test_a_staff_user_is_a_form_error(client, tenant, badge):
    colleague = InstructorFactory(tenant=tenant)

    response = client.post(f"{AWARDS}add/", {"badge": badge.pk, "user": colleague.pk})

    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not UserBadge.objects.exists()


def test_another_tenants_badge_is_a_form_error(client, alice, other_tenant):
    theirs = BadgeFactory(tenant=other_tenant)

    response = client.post(f"{AWARDS}add/", {"badge": theirs.pk, "user": alice.pk})

    assert response.status_code == 200
    assert "badge" in response.context["adminform"].form.errors
    assert not UserBadge.objects.exists()


# --- names that say who and what --------------------------------------------------------------


def test_an_award_is_named_by_its_badge_and_student(tenant, alice, badge):
    award = UserBadgeFactory(tenant=tenant, user=alice, badge=badge)
    nameless = StudentFactory(tenant=tenant, first_name="", last_name="", email="nameless@alpha.test")

    assert str(UserBadge.objects.select_related("badge", "user").get(pk=award.pk)) == "First Blood for Alice Anderson"
    assert str(UserBadgeFactory(tenant=tenant, user=nameless, badge=badge)) == "First Blood for nameless@alpha.test"


def test_the_list_names_the_students_and_links_to_revoke(client, tenant, alice, badge):
    award = UserBadgeFactory(tenant=tenant, user=alice, badge=badge)

    html = client.get(AWARDS).content.decode()

    assert "Alice Anderson (alice@alpha.test)" in html
    assert f'href="{AWARDS}{award.pk}/revoke/"' in html
    assert 'value="revoke_selected"' in html
    assert 'value="delete_selected"' not in html


def test_the_awards_page_links_to_revoke_not_delete(client, tenant, alice, badge):
    award = UserBadgeFactory(tenant=tenant, user=alice, badge=badge)

    html = client.get(f"{AWARDS}{award.pk}/change/").content.decode()

    assert f'href="{AWARDS}{award.pk}/revoke/"' in html
    assert "/delete/" not in html
    assert "First Blood for Alice Anderson" in html


def test_without_the_permission_no_revoke_link(client, tenant, alice, badge):
    award = UserBadgeFactory(tenant=tenant, user=alice, badge=badge)
    without_permission("delete_userbadge")

    assert "/revoke/" not in client.get(AWARDS).content.decode()
    assert "/revoke/" not in client.get(f"{AWARDS}{award.pk}/change/").content.decode()


# --- revoking ---------------------------------------------------------------------------------


@pytest.fixture
def award(tenant, alice, badge, instructor):
    return services.badge_award(badge=badge, user=alice, actor=instructor)


def test_the_revoke_page_says_what_and_from_whom(client, award):
    response = client.get(f"{AWARDS}{award.pk}/revoke/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "<title>Revoke First Blood from Alice Anderson" in html
    assert "Revoke the badge" in html
    assert f'maxlength="{REASON_MAX_LENGTH}"' in html


def test_a_get_never_revokes(client, award):
    client.get(f"{AWARDS}{award.pk}/revoke/", {"reason": "sneaky"})

    assert UserBadge.objects.filter(pk=award.pk).exists()
    assert not EventStore.objects.filter(event_type="BadgeRevoked").exists()


def test_revoking_with_a_reason(client, tenant, alice, instructor, badge, award):
    LeaderboardFactory(tenant=tenant, user=alice, points=150, solves=2)
    student = client.__class__(HTTP_HOST=tenant.domain)
    student.force_login(alice)
    assert "First Blood" in student.get("/badges/").content.decode()

    response = client.post(f"{AWARDS}{award.pk}/revoke/", {"reason": "  Given to the wrong Dana.  "})

    assert response.status_code == 302
    assert response["Location"] == AWARDS
    assert not UserBadge.objects.filter(pk=award.pk).exists()
    [event] = EventStore.objects.filter(event_type="BadgeRevoked", aggregate_id=str(alice.pk))
    assert event.payload["reason"] == "Given to the wrong Dana."
    assert event.payload["revoked_by_id"] == instructor.pk
    [row] = revoke_rows(award.pk)
    assert row.changes == {"reason": [None, "Given to the wrong Dana."]}
    assert (row.actor_id, row.tenant_id) == (instructor.pk, tenant.pk)
    assert row.object_text == "First Blood for Alice Anderson"
    assert AuditLog.objects.filter(action="delete", object_type="scoring.userbadge", object_id=str(award.pk)).exists()
    # a badge carries no points: the standings stay, the student's badges page drops it
    assert Leaderboard.objects.get(user=alice).points == 150
    badges_page = student.get("/badges/")
    assert [b.name for b in badges_page.context["badges"] if b.earned] == []
    assert badges_page.context["earned"] == 0


@pytest.mark.parametrize("reason", ["", "   \n\t "])
def test_a_reason_is_required(client, award, reason):
    response = client.post(f"{AWARDS}{award.pk}/revoke/", {"reason": reason})

    assert response.status_code == 200
    assert "Say why the badge is taken back." in response.content.decode()
    assert UserBadge.objects.filter(pk=award.pk).exists()
    assert not revoke_rows(award.pk)


def test_a_reason_too_long_is_refused(client, award):
    response = client.post(f"{AWARDS}{award.pk}/revoke/", {"reason": "x" * (REASON_MAX_LENGTH + 1)})

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert UserBadge.objects.filter(pk=award.pk).exists()


def test_revoking_needs_the_delete_permission_of_awards(client, award):
    without_permission("delete_userbadge")

    assert client.get(f"{AWARDS}{award.pk}/revoke/").status_code == 403
    assert client.post(f"{AWARDS}{award.pk}/revoke/", {"reason": "no"}).status_code == 403
    assert UserBadge.objects.filter(pk=award.pk).exists()


@pytest.mark.parametrize("pk", ["theirs", "999999", "abc"])
def test_another_tenants_or_a_missing_award_is_a_404(client, other_tenant, other_student, pk):
    theirs = UserBadgeFactory(tenant=other_tenant, user=other_student)
    object_id = {"theirs": theirs.pk}.get(pk, pk)

    assert client.get(f"{AWARDS}{object_id}/revoke/").status_code == 404
    assert client.post(f"{AWARDS}{object_id}/revoke/", {"reason": "mine now"}).status_code == 404
    assert UserBadge.objects.filter(pk=theirs.pk).exists()
    assert not EventStore.objects.filter(event_type="BadgeRevoked").exists()


def test_the_old_delete_is_refused(client, award):
    assert client.get(f"{AWARDS}{award.pk}/delete/").status_code == 403
    assert client.post(f"{AWARDS}{award.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(AWARDS, {"action": "delete_selected", "_selected_action": [award.pk], "post": "yes"})

    assert UserBadge.objects.filter(pk=award.pk).exists()
    assert not EventStore.objects.filter(event_type="BadgeRevoked").exists()


def test_the_old_delete_is_refused_to_superusers_too(tenant, award, superuser, client_for):
    root = client_for(tenant, superuser)

    assert root.post(f"{AWARDS}{award.pk}/delete/", {"post": "yes"}).status_code == 403
    assert root.post(f"{AWARDS}{award.pk}/revoke/", {"reason": "platform cleanup"}).status_code == 302
    assert not UserBadge.objects.filter(pk=award.pk).exists()


# --- revoking several -----------------------------------------------------------------------------


def select(client, awards, **extra):
    return client.post(AWARDS, {"action": "revoke_selected", "_selected_action": [a.pk for a in awards], **extra})


def test_the_action_asks_for_one_reason_first(client, tenant, badge):
    awards = [UserBadgeFactory(tenant=tenant, badge=badge) for _ in range(2)]

    response = select(client, awards)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Revoke 2 badges" in html and "Revoke the badges" in html
    assert UserBadge.objects.filter(tenant=tenant).count() == 2


def test_revoking_selected_awards_with_one_reason(client, tenant, instructor, badge):
    awards = [UserBadgeFactory(tenant=tenant, badge=badge) for _ in range(3)]

    response = select(client, awards[:2], post="yes", reason="Badge given before the event.")

    assert response.status_code == 302
    assert list(UserBadge.objects.filter(tenant=tenant).values_list("pk", flat=True)) == [awards[2].pk]
    revoked = EventStore.objects.filter(event_type="BadgeRevoked")
    assert sorted(int(e.aggregate_id) for e in revoked) == sorted(a.user_id for a in awards[:2])
    assert {e.payload["reason"] for e in revoked} == {"Badge given before the event."}
    for award in awards[:2]:
        [row] = revoke_rows(award.pk)
        assert row.changes["reason"] == [None, "Badge given before the event."]


def test_revoking_selected_awards_needs_a_reason(client, tenant, badge):
    awards = [UserBadgeFactory(tenant=tenant, badge=badge) for _ in range(2)]

    response = select(client, awards, post="yes", reason=" ")

    assert response.status_code == 200
    assert "Say why the badge is taken back." in response.content.decode()
    assert UserBadge.objects.filter(tenant=tenant).count() == 2


def test_the_action_never_reaches_another_tenants_award(client, tenant, other_tenant, other_student, badge):
    mine = UserBadgeFactory(tenant=tenant, badge=badge)
    theirs = UserBadgeFactory(tenant=other_tenant, user=other_student)

    select(client, [mine, theirs], post="yes", reason="tidy up")

    assert not UserBadge.objects.filter(pk=mine.pk).exists()
    assert UserBadge.objects.filter(pk=theirs.pk).exists()
    assert [e.payload["user_id"] for e in EventStore.objects.filter(event_type="BadgeRevoked")] == [mine.user_id]


def test_a_bulk_revocation_is_bounded(client, tenant, badge, monkeypatch):
    monkeypatch.setattr("scoring.badge_admin.REVOKE_AT_MOST", 2)
    awards = [UserBadgeFactory(tenant=tenant, badge=badge) for _ in range(3)]

    response = select(client, awards, post="yes", reason="too many")

    assert response.status_code == 302
    assert UserBadge.objects.filter(tenant=tenant).count() == 3
    assert REVOKE_AT_MOST >= 100  # a full page of the list at once
