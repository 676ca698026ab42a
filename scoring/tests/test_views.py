"""My submissions, the leaderboard and the badges: scoped to the tenant, constant query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import BadgeFactory
from scoring.models import Submission
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{board}"


@pytest.fixture
def client(tenant, student, client_for):
    return client_for(tenant, student)


def solve(user, points=100):
    project = ProjectFactory(tenant=user.tenant, points=points, flag=FLAG)
    return services.submission_create(user=user, project=project, flag=FLAG)


def queries_for(client, path):
    from django.core.cache import cache

    cache.clear()  # compare cold pages: the cached page costs even less
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("path", ["/submissions/", "/leaderboard/", "/badges/", "/", "/profile/"])
def test_pages_need_a_login(path, tenant):
    from django.test import Client

    response = Client(HTTP_HOST=tenant.domain).get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_my_submissions_show_status_score_and_feedback(client, student, tenant, instructor):
    essay = ProjectFactory(tenant=tenant, name="Essay Lab")
    submission = services.submission_create(user=student, project=essay, writeup="steps")
    services.submission_grade(
        submission=submission, status="APPROVED", score=80, grader=instructor, feedback="Clear and complete"
    )

    content = client.get("/submissions/").content.decode()

    assert "Essay Lab" in content
    assert "80" in content
    assert "Clear and complete" in content


def test_only_my_own_submissions_are_listed(client, tenant, other_tenant):
    classmate = StudentFactory(tenant=tenant)
    services.submission_create(
        user=classmate, project=ProjectFactory(tenant=tenant, name="Their Lab"), writeup="theirs"
    )

    assert b"Their Lab" not in client.get("/submissions/").content


def test_the_leaderboard_ranks_with_ties_and_highlights_me(client, student, tenant):
    rival, third = StudentFactory(tenant=tenant, first_name="Rita"), StudentFactory(tenant=tenant)
    solve(rival, 300)
    solve(student, 100)
    solve(third, 100)

    response = client.get("/leaderboard/")
    rows = response.context["board"].rows

    assert [(r.rank, r.points) for r in rows] == [(1, 300), (2, 100), (2, 100)]
    assert 'id="me"' in response.content.decode()
    assert response.context["mine"].rank == 2


def test_the_leaderboard_jumps_to_my_page(client, student, tenant):
    for n in range(60):
        solve(StudentFactory(tenant=tenant), 1000 - n)
    solve(student, 10)

    response = client.get("/leaderboard/")

    assert response.context["my_page"] == 2
    assert response.context["board"].number == 2  # opens where I am
    assert client.get("/leaderboard/?page=1").context["board"].number == 1
    assert client.get("/leaderboard/?page=99").context["board"].number == 2
    assert client.get("/leaderboard/?page=x").status_code == 200


def test_the_leaderboard_rows_are_escaped_and_only_mine_is_marked(client, student, tenant):
    rival = StudentFactory(tenant=tenant, first_name="<script>alert(1)</script>", last_name="&")
    solve(rival, 300)
    solve(student, 100)

    html = client.get("/leaderboard/").content.decode()
    body = html[html.index("<tbody>") : html.index("</tbody>")]

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in body
    assert body.count('id="me"') == body.count("pill--you") == 1
    mine = body[body.index('<tr class="me"') :]
    assert student.get_full_name() in mine[: mine.index("</tr>")]
    assert body.count("<tr") == 2


def test_a_page_past_the_end_is_the_last_page_and_adds_no_cache_entry(client, student, tenant, settings):
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    solve(student, 100)
    client.get("/leaderboard/")
    keys = set(cache._cache)

    response = client.get("/leaderboard/?page=9223372036854775808")

    assert response.status_code == 200
    assert response.context["board"].number == 1
    assert set(cache._cache) == keys


def test_my_standing_is_cached_until_the_board_changes(
    client, student, tenant, settings, django_assert_num_queries, django_capture_on_commit_callbacks
):
    from scoring.selectors import standing

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    rival = StudentFactory(tenant=tenant)
    with django_capture_on_commit_callbacks(execute=True):
        solve(student, 100)
        solve(rival, 50)
    assert standing(tenant.pk, student.pk).rank == 1
    with django_assert_num_queries(0):
        assert standing(tenant.pk, student.pk).points == 100

    with django_capture_on_commit_callbacks(execute=True):
        solve(rival, 100)

    assert (standing(tenant.pk, student.pk).rank, standing(tenant.pk, rival.pk).rank) == (2, 1)
    assert client.get("/").context["standing"].rank == 2
    assert standing(tenant.pk, StudentFactory(tenant=tenant).pk) is None


def test_the_leaderboard_is_the_tenants_own(client, other_student):
    solve(other_student, 500)

    assert client.get("/leaderboard/").context["board"].total == 0


def test_badges_show_which_i_earned(client, student, tenant, instructor):
    earned = BadgeFactory(tenant=tenant, name="Helper", rule_kind="")
    BadgeFactory(tenant=tenant, name="Untouched", rule_kind="")
    services.badge_award(badge=earned, user=student, actor=instructor)

    response = client.get("/badges/")
    rows = {b.name: b.earned for b in response.context["badges"]}

    assert rows == {"Helper": True, "Untouched": False}


@pytest.mark.parametrize("path", ["/submissions/", "/leaderboard/", "/badges/", "/", "/profile/"])
def test_query_counts_do_not_grow_with_the_data(path, client, student, tenant):
    solve(student, 50)
    BadgeFactory(tenant=tenant, rule_kind="")
    small = queries_for(client, path)
    for n in range(25):
        other = StudentFactory(tenant=tenant)
        solve(other, 10 + n)
        BadgeFactory(tenant=tenant, rule_kind="")
        project = ProjectFactory(tenant=tenant)
        services.submission_create(user=student, project=project, writeup=f"essay {n}")

    assert queries_for(client, path) == small
    assert Submission.objects.filter(user=student).count() == 26
