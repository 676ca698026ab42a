"""Authoring that prevents mistakes (issue 28, item 5): the challenge's admin page.

"Test a flag" checks a candidate against the stored digest and tells nothing else; the
flag is typed twice; the Published switch goes through the services (audited, with its
event) and a hidden challenge says so; the category is one of the class's or a new one;
the description is previewed as students see it, sanitised and within a size.
"""

import pytest
from django.test import Client

from audit.models import AuditLog, EventStore
from challenges.admin import FLAG_TEST_LIMIT, NEW_CATEGORY, PREVIEW_MAX_CHARS, tenant_categories
from challenges.factories import ProjectFactory
from challenges.models import Project
from challenges.tests.admin_forms import NO_INLINE_ROWS
from tenants.factories import InstructorFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{r1ght-0ne}"
PROJECTS = "/admin/challenges/project/"
PREVIEW = f"{PROJECTS}preview/"
JSON = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def admin_client(tenant, instructor, client_for):
    return client_for(tenant, instructor)


@pytest.fixture
def flagged(tenant):
    return ProjectFactory(tenant=tenant, name="Cookie Jar", slug="cookie-jar", category="Web Security", flag=FLAG)


def flag_url(project):
    return f"{PROJECTS}{project.pk}/test-flag/"


def change_url(project):
    return f"{PROJECTS}{project.pk}/change/"


def form(**fields):
    """What the add or change page posts, the switch and the second flag box included (as on the page)."""
    data = {
        "name": "Cookie Monster",
        "slug": "cookie-monster",
        "category": "Web Security",
        "new_category": "",
        "difficulty": "INTERMEDIATE",
        "points": "150",
        "description": "Steal the cookie.",
        "scoring": "STATIC",
        "decay_function": "LOGARITHMIC",
        "new_flag": "",
        "new_flag_again": "",
        "published-shown": "1",
        **NO_INLINE_ROWS,
    }
    for name, value in fields.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def errors(response) -> dict:
    assert response.status_code == 200, "saved, but it should have been refused"
    return {name: " ".join(messages) for name, messages in response.context["adminform"].form.errors.items()}


def events(event_type, project):
    return list(EventStore.objects.filter(event_type=event_type, aggregate_id=str(project.pk)))


def publish_audits(project):
    return [
        row.changes["is_published"]
        for row in AuditLog.objects.filter(
            object_type="challenges.project", object_id=str(project.pk), action="update"
        ).order_by("pk")
        if "is_published" in row.changes
    ]


# --- Test a flag -----------------------------------------------------------------------------


def test_the_right_flag_matches(admin_client, flagged):
    response = admin_client.post(flag_url(flagged), {"candidate": f"  {FLAG}\n"}, **JSON)

    assert response.status_code == 200
    assert response.json() == {"matches": True, "message": "Matches the stored flag."}


def test_a_wrong_flag_or_another_case_does_not_match(admin_client, flagged):
    for candidate in ("FLAG{r1ght-0ne", FLAG.lower()):
        response = admin_client.post(flag_url(flagged), {"candidate": candidate}, **JSON)

        assert response.status_code == 200
        assert response.json() == {"matches": False, "message": "Does not match the stored flag."}


def test_the_answer_reveals_nothing_and_nothing_is_recorded(admin_client, flagged):
    audits, stored = AuditLog.objects.count(), EventStore.objects.count()
    salt, digest = flagged.flag_hash.split("$")[1:]

    for candidate in (FLAG, "FLAG{guess}"):
        for headers in (JSON, {}):
            body = admin_client.post(flag_url(flagged), {"candidate": candidate}, **headers).content.decode()
            for secret in (FLAG, flagged.flag_hash, salt, digest, "FLAG{guess}"):
                assert secret not in body

    assert AuditLog.objects.count() == audits and EventStore.objects.count() == stored
    flagged.refresh_from_db()
    assert flagged.check_flag(FLAG)


def test_without_javascript_a_page_answers_with_the_way_back(admin_client, flagged):
    response = admin_client.post(flag_url(flagged), {"candidate": "FLAG{nope}"})

    assert response.status_code == 200
    content = response.content.decode()
    assert "Does not match the stored flag." in content
    assert f'href="{change_url(flagged)}"' in content


def test_the_change_page_has_the_test_box_in_its_own_form(admin_client, flagged):
    content = admin_client.get(change_url(flagged)).content.decode()

    assert f'<form id="flag-test-form" class="flag-test-form" method="post" action="{flag_url(flagged)}">' in content
    assert 'name="candidate" id="id_flag_test" form="flag-test-form"' in content
    assert "admin-authoring.js" in content and "<script>" not in content.split("<body")[1]


def test_a_challenge_without_a_flag_has_no_test_box(admin_client, project):
    assert "flag-test-form" not in admin_client.get(change_url(project)).content.decode()

    response = admin_client.post(flag_url(project), {"candidate": "FLAG{x}"}, **JSON)
    assert response.status_code == 400
    assert response.json()["matches"] is None


@pytest.mark.parametrize(
    ("candidate", "message"),
    [("", "Type a flag to test."), ("   ", "Type a flag to test."), ("F" * 501, "at most 500 characters")],
)
def test_an_empty_or_overlong_candidate_is_a_400(admin_client, flagged, candidate, message):
    response = admin_client.post(flag_url(flagged), {"candidate": candidate}, **JSON)

    assert response.status_code == 400
    assert message in response.json()["message"]


def test_get_is_refused(admin_client, flagged):
    assert admin_client.get(flag_url(flagged), {"candidate": FLAG}).status_code == 405


def test_another_classs_challenge_is_a_404(admin_client, other_tenant):
    theirs = ProjectFactory(tenant=other_tenant, flag=FLAG)

    assert admin_client.post(flag_url(theirs), {"candidate": FLAG}, **JSON).status_code == 404
    assert admin_client.post(f"{PROJECTS}not-an-id/test-flag/", {"candidate": FLAG}, **JSON).status_code == 404


def test_an_instructor_of_another_class_gets_a_404(flagged, other_tenant, client_for):
    outsider = client_for(other_tenant, InstructorFactory(tenant=other_tenant, email="i@beta.test"))

    response = outsider.post(flag_url(flagged), {"candidate": FLAG}, **JSON)

    assert response.status_code == 404 and b"matches" not in response.content


def test_a_student_is_refused(flagged, student, client_for):
    response = client_for(flagged.tenant, student).post(flag_url(flagged), {"candidate": FLAG}, **JSON)

    assert response.status_code == 302 and "/login/" in response["Location"]
    assert b"matches" not in response.content


def test_the_csrf_token_is_required(flagged, instructor, client_for):
    client = Client(HTTP_HOST=flagged.tenant.domain, enforce_csrf_checks=True)
    client.force_login(instructor)

    assert client.post(flag_url(flagged), {"candidate": FLAG}, **JSON).status_code == 403


def test_flag_tests_are_limited_per_staff_member(admin_client, flagged):
    for _ in range(FLAG_TEST_LIMIT):
        assert admin_client.post(flag_url(flagged), {"candidate": "FLAG{x}"}, **JSON).status_code == 200

    response = admin_client.post(flag_url(flagged), {"candidate": FLAG}, **JSON)

    assert response.status_code == 429
    assert response.json()["matches"] is None and "wait a few minutes" in response.json()["message"]


# --- The flag typed twice ----------------------------------------------------------------------


def test_two_different_flags_are_refused_and_nothing_is_saved(admin_client, flagged):
    response = admin_client.post(
        change_url(flagged), form(slug="cookie-jar", new_flag="FLAG{n3w}", new_flag_again="FLAG{new}")
    )

    assert errors(response) == {"new_flag_again": "The two flags differ: type the same flag in both boxes."}
    flagged.refresh_from_db()
    assert flagged.check_flag(FLAG)


def test_the_same_flag_twice_replaces_it(admin_client, flagged):
    response = admin_client.post(
        change_url(flagged), form(slug="cookie-jar", new_flag="FLAG{n3w}", new_flag_again="FLAG{n3w}")
    )

    assert response.status_code == 302
    flagged.refresh_from_db()
    assert flagged.check_flag("FLAG{n3w}") and not flagged.check_flag(FLAG)


def test_the_second_box_alone_or_a_new_flag_with_remove_is_refused(admin_client, flagged):
    assert "new_flag_again" in errors(
        admin_client.post(change_url(flagged), form(slug="cookie-jar", new_flag_again="FLAG{x}"))
    )
    assert errors(
        admin_client.post(
            change_url(flagged), form(slug="cookie-jar", new_flag="FLAG{x}", new_flag_again="FLAG{x}", remove_flag="on")
        )
    ) == {"remove_flag": "Either set a new flag or remove the flag, not both."}


# --- The Published switch ------------------------------------------------------------------------


def test_a_new_challenge_starts_unpublished_with_a_note(admin_client):
    response = admin_client.get(f"{PROJECTS}add/")

    field = response.context["adminform"].form["published"]
    assert field.value() is False
    assert "starts hidden from students" in response.content.decode()


def test_saving_a_hidden_challenge_warns_that_students_do_not_see_it(admin_client, tenant):
    response = admin_client.post(f"{PROJECTS}add/", form(), follow=True)

    created = Project.objects.get(tenant=tenant, slug="cookie-monster")
    assert not created.is_published
    warnings = [str(m) for m in response.context["messages"] if m.level_tag == "warning"]
    assert warnings == ["“Cookie Monster” is hidden from students until you publish it."]
    assert not events("ProjectPublished", created)


def test_the_change_page_of_a_hidden_challenge_shows_a_banner(admin_client, tenant):
    hidden = ProjectFactory(tenant=tenant, is_published=False)
    live = ProjectFactory(tenant=tenant, is_published=True)

    assert 'id="hidden-banner"' in admin_client.get(change_url(hidden)).content.decode()
    assert 'id="hidden-banner"' not in admin_client.get(change_url(live)).content.decode()


def test_a_new_challenge_published_at_once_goes_through_the_service(admin_client, tenant, instructor):
    response = admin_client.post(f"{PROJECTS}add/", form(published="on"), follow=True)

    created = Project.objects.get(tenant=tenant, slug="cookie-monster")
    assert created.is_published
    (event,) = events("ProjectPublished", created)
    assert event.metadata.get("actor_id", instructor.pk) == instructor.pk
    assert publish_audits(created) == [[False, True]]
    assert not [m for m in response.context["messages"] if m.level_tag == "warning"]


def test_unticking_and_ticking_the_switch_unpublishes_and_publishes_audited(admin_client, tenant):
    live = ProjectFactory(tenant=tenant, slug="live", name="Live Lab", category="Web Security", is_published=True)

    response = admin_client.post(change_url(live), form(slug="live", name="Live Lab"), follow=True)

    live.refresh_from_db()
    assert not live.is_published
    assert len(events("ProjectUnpublished", live)) == 1
    assert [str(m) for m in response.context["messages"] if m.level_tag == "warning"] == [
        "“Live Lab” is hidden from students until you publish it."
    ]

    admin_client.post(change_url(live), form(slug="live", name="Live Lab", published="on"))

    live.refresh_from_db()
    assert live.is_published
    assert len(events("ProjectPublished", live)) == 1
    assert publish_audits(live) == [[True, False], [False, True]]


def test_a_post_without_the_switch_keeps_the_state(admin_client, tenant):
    live = ProjectFactory(tenant=tenant, slug="live", name="Live Lab", is_published=True)

    assert admin_client.post(change_url(live), form(slug="live", **{"published-shown": None})).status_code == 302

    live.refresh_from_db()
    assert live.is_published and not events("ProjectUnpublished", live)


# --- Categories ----------------------------------------------------------------------------------


def test_the_categories_offered_are_the_classs_each_once_sorted(admin_client, tenant, other_tenant):
    for category in ("Web Security", "cryptography", "Web Security", "Forensics"):
        ProjectFactory(tenant=tenant, category=category)
    ProjectFactory(tenant=other_tenant, category="Beta-only category")

    choices = admin_client.get(f"{PROJECTS}add/").context["adminform"].form.fields["category"].widget.choices

    assert [value for value, _ in choices] == ["", "cryptography", "Forensics", "Web Security", NEW_CATEGORY]
    assert tenant_categories(other_tenant.pk) == ["Beta-only category"]


def test_a_new_category_is_trimmed_and_saved(admin_client, tenant):
    ProjectFactory(tenant=tenant, category="Forensics")

    response = admin_client.post(f"{PROJECTS}add/", form(category=NEW_CATEGORY, new_category="  Binary Exploitation "))

    assert response.status_code == 302
    assert Project.objects.get(tenant=tenant, slug="cookie-monster").category == "Binary Exploitation"


def test_a_new_category_spelt_differently_joins_the_existing_one(admin_client, tenant):
    ProjectFactory(tenant=tenant, category="Web Security")

    admin_client.post(f"{PROJECTS}add/", form(category=NEW_CATEGORY, new_category="web security"))

    assert Project.objects.get(tenant=tenant, slug="cookie-monster").category == "Web Security"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"category": NEW_CATEGORY, "new_category": "  "}, "new_category", "Type the name of the new category."),
        ({"category": "", "new_category": ""}, "category", "Choose a category, or add a new one."),
        ({"category": NEW_CATEGORY, "new_category": "x" * 101}, "new_category", "at most 100 characters"),
        ({"category": "y" * 101}, "category", "at most 100 characters"),
    ],
)
def test_a_missing_or_overlong_category_is_refused(admin_client, tenant, fields, field, message):
    response = admin_client.post(f"{PROJECTS}add/", form(**fields))

    assert message in errors(response)[field]
    assert not Project.objects.filter(tenant=tenant, slug="cookie-monster").exists()


# --- Markdown preview ----------------------------------------------------------------------------


def test_the_preview_renders_markdown_sanitised(admin_client):
    markdown = "# Title\n\n**bold** <script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror=alert(3)>"

    response = admin_client.post(PREVIEW, {"description": markdown}, **JSON)

    assert response.status_code == 200
    html = response.json()["html"]
    assert "<h2>Title</h2>" in html and "<strong>bold</strong>" in html
    assert "<script" not in html and "javascript:" not in html and "onerror" not in html


def test_the_preview_is_bounded(admin_client):
    assert admin_client.post(PREVIEW, {"description": "a" * PREVIEW_MAX_CHARS}, **JSON).status_code == 200

    response = admin_client.post(PREVIEW, {"description": "a" * (PREVIEW_MAX_CHARS + 1)}, **JSON)

    assert response.status_code == 413
    assert "too long to preview" in response.json()["error"]


def test_the_preview_is_post_only_and_staff_only(admin_client, tenant, student, client_for):
    assert admin_client.get(PREVIEW).status_code == 405
    response = client_for(tenant, student).post(PREVIEW, {"description": "x"}, **JSON)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_change_page_shows_the_saved_description_as_students_see_it(admin_client, tenant):
    lab = ProjectFactory(tenant=tenant, description="Read **carefully**.\n\n<script>alert(1)</script>")

    content = admin_client.get(change_url(lab)).content.decode()

    assert "As students see it" in content
    assert "Read <strong>carefully</strong>." in content
    assert "<script>alert(1)</script>" not in content


def test_a_flag_is_not_tested_when_its_limit_cannot_be_counted(settings, tenant, instructor, client_for):
    """The cache that counts tests is down: the test is refused (503), never a 500 and never unlimited."""
    from challenges.factories import ProjectFactory as Challenges

    project = Challenges(tenant=tenant, flag="FLAG{cache}")
    settings.CACHES = {
        **settings.CACHES,
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    response = client_for(tenant, instructor).post(
        f"/admin/challenges/project/{project.pk}/test-flag/",
        {"candidate": "FLAG{cache}"},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 503
    assert response.json() == {"matches": None, "message": "Flags cannot be tested right now: try again in a minute."}
