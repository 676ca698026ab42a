"""The catalogue and a challenge's page: scoped to the tenant, forms that say what happened."""

import pytest
from django.test import Client

from challenges.factories import ProjectFactory
from challenges.tests.admin_forms import NO_INLINE_ROWS
from scoring.models import Submission
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{views}"


@pytest.fixture
def flagged(tenant):
    return ProjectFactory(
        tenant=tenant,
        name="Cookie Jar",
        slug="cookie-jar",
        flag=FLAG,
        points=150,
        category="Web Security",
        difficulty="BEGINNER",
    )


@pytest.fixture
def essay(tenant):
    return ProjectFactory(
        tenant=tenant,
        name="Memory Lane",
        slug="memory-lane",
        category="Forensics",
        difficulty="ADVANCED",
        description="Find the **injected** thread. <script>x()</script>",
    )


@pytest.fixture
def client(tenant, student, client_for):
    return client_for(tenant, student)


@pytest.mark.parametrize("path", ["/challenges/", "/challenges/cookie-jar/"])
def test_pages_need_a_login(path, tenant, flagged):
    response = Client(HTTP_HOST=tenant.domain).get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_catalogue_lists_published_challenges_with_points_and_solves(client, flagged, essay, tenant):
    ProjectFactory(tenant=tenant, name="Secret Draft", is_published=False)

    content = client.get("/challenges/").content.decode()

    assert "Cookie Jar" in content and "Memory Lane" in content
    assert "Secret Draft" not in content
    assert "150" in content


def test_another_tenants_challenges_are_not_listed(client, other_tenant):
    ProjectFactory(tenant=other_tenant, name="Beta Only Lab")

    assert b"Beta Only Lab" not in client.get("/challenges/").content


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("category=Forensics", "Memory Lane", "Cookie Jar"),
        ("difficulty=BEGINNER", "Cookie Jar", "Memory Lane"),
        ("q=lane", "Memory Lane", "Cookie Jar"),
        ("solved=yes", "Cookie Jar", "Memory Lane"),
        ("solved=no", "Memory Lane", "Cookie Jar"),
    ],
)
def test_filters_narrow_the_catalogue(query, shown, hidden, client, flagged, essay):
    client.post("/challenges/cookie-jar/", {"flag": FLAG})

    content = client.get(f"/challenges/?{query}").content.decode()

    assert shown in content
    assert hidden not in content


def test_the_catalogue_pages_and_keeps_its_filters(client, tenant):
    for n in range(15):
        ProjectFactory(tenant=tenant, name=f"Lab {n:02}", category="Crypto", difficulty="BEGINNER", points=10 + n)

    first = client.get("/challenges/?category=Crypto")
    second = client.get("/challenges/?category=Crypto&page=2")

    assert first.context["page"].paginator.num_pages == 2
    assert "category=Crypto&amp;page=2" in first.content.decode()
    assert len(second.context["page"].object_list) == 3
    assert client.get("/challenges/?page=abc").status_code == 200  # a bad page number is page 1


def test_another_tenants_challenge_is_a_404(client, other_tenant):
    ProjectFactory(tenant=other_tenant, slug="beta-lab")

    assert client.get("/challenges/beta-lab/").status_code == 404
    assert client.post("/challenges/beta-lab/", {"flag": "x"}).status_code == 404


def test_an_unpublished_or_missing_challenge_is_a_404(client, tenant):
    ProjectFactory(tenant=tenant, slug="draft", is_published=False)

    assert client.get("/challenges/draft/").status_code == 404
    assert client.get("/challenges/nothing-here/").status_code == 404


def test_the_description_is_rendered_and_sanitised(client, essay):
    content = client.get("/challenges/memory-lane/").content.decode()

    assert "<strong>injected</strong>" in content
    assert "<script>x()</script>" not in content


def test_a_right_flag_says_so_and_counts(client, flagged, student):
    response = client.post("/challenges/cookie-jar/", {"flag": FLAG}, follow=True)

    assert "Correct! +150 points." in response.content.decode()
    assert Submission.objects.get(user=student).status == "APPROVED"
    assert "You solved this" in response.content.decode() or response.context["solved"]


def test_a_wrong_flag_says_so(client, flagged):
    response = client.post("/challenges/cookie-jar/", {"flag": "FLAG{nope}"}, follow=True)

    assert "That is not the flag" in response.content.decode()


def test_a_write_up_is_pending(client, essay, student):
    response = client.post("/challenges/memory-lane/", {"writeup": "Volatility pslist", "link": ""}, follow=True)

    assert "waiting for an instructor" in response.content.decode()
    assert Submission.objects.get(user=student).status == "PENDING"


def test_a_link_without_its_scheme_is_taken_and_given_https(client, essay, student):
    page = client.get("/challenges/memory-lane/").content.decode()
    assert 'type="url"' not in page  # the browser would refuse a bare domain before the server sees it

    client.post("/challenges/memory-lane/", {"writeup": "Steps.", "link": "gist.github.com/alice/abc"})

    assert Submission.objects.get(user=student).link == "https://gist.github.com/alice/abc"


def test_an_empty_form_is_a_400_with_the_error_on_the_field(client, essay):
    response = client.post("/challenges/memory-lane/", {"writeup": ""})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not Submission.objects.exists()


def test_over_the_limit_the_page_says_wait(client, flagged, tenant):
    tenant.settings = {"flag_attempts": {"limit": 2, "window_minutes": 10}}
    tenant.save()
    for _ in range(2):
        client.post("/challenges/cookie-jar/", {"flag": "FLAG{no}"})

    response = client.post("/challenges/cookie-jar/", {"flag": FLAG})

    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many wrong flags" in html
    assert "Your next try is taken from" in html and "(in 10 minutes)" in html
    assert f'value="{FLAG}"' in html  # the flag typed is kept in the form
    assert Submission.objects.count() == 2


def test_the_last_tries_before_the_limit_are_announced(client, flagged, tenant):
    tenant.settings = {"flag_attempts": {"limit": 4, "window_minutes": 10}}
    tenant.save()

    first = client.post("/challenges/cookie-jar/", {"flag": "FLAG{no}"}, follow=True).content.decode()
    second = client.post("/challenges/cookie-jar/", {"flag": "FLAG{no}"}, follow=True).content.decode()
    last = client.post("/challenges/cookie-jar/", {"flag": "FLAG{no}"}, follow=True).content.decode()
    spent = client.post("/challenges/cookie-jar/", {"flag": "FLAG{no}"}, follow=True).content.decode()

    assert "That is not the flag. Try again." in first  # 3 left: no warning yet
    assert "That is not the flag. 2 tries left." in second
    assert "That is not the flag. 1 try left." in last
    assert "that was your last try for now" in spent


def test_a_solved_challenge_refuses_another_answer_politely(client, flagged):
    client.post("/challenges/cookie-jar/", {"flag": FLAG})

    response = client.post("/challenges/cookie-jar/", {"flag": FLAG})

    assert response.status_code == 409
    assert "already solved" in response.content.decode()


def test_forms_need_a_csrf_token(tenant, student, flagged):
    client = Client(HTTP_HOST=tenant.domain, enforce_csrf_checks=True)
    client.force_login(student)

    assert client.post("/challenges/cookie-jar/", {"flag": FLAG}).status_code == 403
    assert not Submission.objects.exists()


def count_queries(client, path, django_assert_max_num_queries):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cache.clear()  # compare cold pages: the cached page costs even less
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


@pytest.mark.parametrize("path", ["/challenges/", "/challenges/cookie-jar/"])
def test_query_counts_do_not_grow_with_the_data(path, client, tenant, flagged, django_assert_max_num_queries):
    small = count_queries(client, path, django_assert_max_num_queries)
    for n in range(30):
        ProjectFactory(tenant=tenant, category=f"Cat {n % 5}")
        someone = StudentFactory(tenant=tenant)
        Submission.objects.create(tenant=tenant, user=someone, project=flagged, status="REJECTED", score=0)

    assert count_queries(client, path, django_assert_max_num_queries) == small


def test_the_catalogue_comes_from_the_cache_until_a_solve_changes_it(
    client, flagged, essay, settings, django_capture_on_commit_callbacks
):
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    client.get("/challenges/")

    with CaptureQueriesContext(connection) as queries:
        client.get("/challenges/")
    assert not [q for q in queries.captured_queries if 'FROM "projects"' in q["sql"]]

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/challenges/cookie-jar/", {"flag": FLAG})
    page = client.get("/challenges/").context["page"]
    assert {e.name: e.solves for e in page.object_list}["Cookie Jar"] == 1


def test_editing_a_challenge_in_the_admin_refreshes_the_catalogue(
    client, flagged, tenant, instructor, client_for, settings, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    assert "Cookie Jar" in client.get("/challenges/").content.decode()
    form = {
        "name": "Cookie Monster",
        "slug": "cookie-jar",
        "category": "Web Security",
        "difficulty": "BEGINNER",
        "points": "150",
        "description": "x",
        "new_flag": "",
        "remove_flag": "",
        **NO_INLINE_ROWS,
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(tenant, instructor).post(f"/admin/challenges/project/{flagged.pk}/change/", form)

    assert response.status_code == 302
    content = client.get("/challenges/").content.decode()
    assert "Cookie Monster" in content and "Cookie Jar" not in content
