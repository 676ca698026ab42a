"""Partial credit on the pages: the catalogue, a challenge, the dashboard, the profile and the grading page.

Each tells apart "Solved", "Partly solved (60/100)", "Waiting for grading" and "Tried",
from one helper (scoring.catalogue.ChallengeState), in as many queries as before.
"""

import re

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from challenges.factories import ProjectFactory
from scoring import services
from scoring.models import Submission
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{pages}"
QUEUE = "/admin/scoring/submission/"


@pytest.fixture
def client(tenant, student, client_for):
    return client_for(tenant, student)


@pytest.fixture
def challenges(tenant, student, instructor):
    """One published challenge in each state of the student, one untried, and a hidden solve."""
    made = {
        "solved": ProjectFactory(tenant=tenant, name="Solved Lab", slug="solved-lab", flag=FLAG, points=100),
        "partial": ProjectFactory(tenant=tenant, name="Partial Lab", slug="partial-lab", points=300),
        "pending": ProjectFactory(tenant=tenant, name="Pending Lab", slug="pending-lab", points=200),
        "tried": ProjectFactory(tenant=tenant, name="Tried Lab", slug="tried-lab", flag=FLAG, points=50),
        "new": ProjectFactory(tenant=tenant, name="Fresh Lab", slug="fresh-lab", points=10),
    }
    services.submission_create(user=student, project=made["solved"], flag=FLAG)
    essay = services.submission_create(user=student, project=made["partial"], writeup="half of it")
    services.submission_grade(
        submission=essay, status="APPROVED", score=60, grader=instructor, feedback="Show the pslist output."
    )
    services.submission_create(user=student, project=made["pending"], writeup="waiting")
    services.submission_create(user=student, project=made["tried"], flag="FLAG{nope}")
    hidden = ProjectFactory(tenant=tenant, name="Hidden Lab", flag=FLAG)
    services.submission_create(user=student, project=hidden, flag=FLAG)
    hidden.is_published = False
    hidden.save()
    return made


def card(html, name):
    """The catalogue or dashboard card of the challenge called `name` (up to the next card)."""
    at = html.index(f">{name}</a>")
    start = html.rindex('<li class="card challenge', 0, at)
    end = html.find('<li class="card challenge', at)
    return html[start : end if end != -1 else html.index("</ul>\n", html.index("challenge-footer", at))]


# --- the catalogue ------------------------------------------------------------------------------


def test_the_catalogue_tells_the_four_states_apart(client, challenges):
    response = client.get("/challenges/")
    html = response.content.decode()

    labels = {entry.name: entry.state.label for entry in response.context["page"].object_list}
    assert labels == {
        "Solved Lab": "Solved",
        "Partial Lab": "Partly solved (60/100)",
        "Pending Lab": "Waiting for grading",
        "Tried Lab": "Tried",
        "Fresh Lab": "Not tried yet",
    }
    assert "pill--solved" in card(html, "Solved Lab") and "Solved" in card(html, "Solved Lab")
    assert "Partly solved (60/100)" in card(html, "Partial Lab")
    assert "Solved<" not in card(html, "Partial Lab")  # no "Solved ✓" for a partial grade
    assert "Waiting for grading" in card(html, "Pending Lab")
    assert "Tried" in card(html, "Tried Lab")
    assert "Your progress" not in card(html, "Fresh Lab")
    assert html.count("challenge--solved") == 1 and html.count("challenge--partial") == 1


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("yes", {"Solved Lab"}),
        ("partial", {"Partial Lab"}),
        ("pending", {"Pending Lab"}),
        ("tried", {"Tried Lab"}),
        ("new", {"Fresh Lab"}),
        ("no", {"Partial Lab", "Pending Lab", "Tried Lab", "Fresh Lab"}),
        ("", {"Solved Lab", "Partial Lab", "Pending Lab", "Tried Lab", "Fresh Lab"}),
    ],
)
def test_the_catalogue_filters_on_my_progress(value, shown, client, challenges):
    response = client.get(f"/challenges/?solved={value}")

    assert {entry.name for entry in response.context["page"].object_list} == shown
    assert re.search(rf'<option value="{value}" selected>', response.content.decode())


def test_a_partial_grade_with_a_new_write_up_waiting_shows_both(client, student, challenges):
    services.submission_create(user=student, project=challenges["partial"], writeup="the whole of it")

    html = client.get("/challenges/").content.decode()

    assert "Partly solved (60/100)" in card(html, "Partial Lab")
    assert "Waiting for grading" in card(html, "Partial Lab")


# --- a challenge's page -------------------------------------------------------------------------


def answer_form(html):
    return 'name="writeup"' in html or 'name="flag"' in html


def test_a_solved_challenge_says_so_and_takes_no_answer(client, challenges):
    html = client.get("/challenges/solved-lab/").content.decode()

    assert "You solved this challenge." in html
    assert not answer_form(html)


def test_a_partly_solved_challenge_shows_the_grade_and_takes_a_better_write_up(client, student, challenges):
    response = client.get("/challenges/partial-lab/")
    html = response.content.decode()

    assert response.context["state"].partial and not response.context["solved"]
    assert "Partly solved (60/100)" in html
    assert "Your best grade is 60/100: 180 of 300 points count." in html
    assert "You solved this challenge." not in html
    assert "Show the pslist output." in html  # the feedback, in the attempts
    assert answer_form(html) and "Submit improved write-up" in html

    response = client.post("/challenges/partial-lab/", {"writeup": "with the pslist output"}, follow=True)

    assert "waiting for an instructor" in response.content.decode()
    assert Submission.objects.filter(user=student, project=challenges["partial"], status="PENDING").count() == 1


def test_a_waiting_write_up_says_so_and_takes_no_other(client, student, challenges):
    html = client.get("/challenges/pending-lab/").content.decode()

    assert "An instructor will grade your write-up." in html
    assert not answer_form(html)

    response = client.post("/challenges/pending-lab/", {"writeup": "another one"})

    assert response.status_code == 409
    assert "You can send a new one once it is graded" in response.content.decode()
    assert Submission.objects.filter(user=student, project=challenges["pending"]).count() == 1


def test_a_tried_challenge_invites_another_try(client, challenges):
    html = client.get("/challenges/tried-lab/").content.decode()

    assert "Not solved yet" in html
    assert ">Tried<" in html
    assert answer_form(html)


def test_a_superseded_attempt_is_listed_as_such(client, student, challenges, instructor):
    better = services.submission_create(user=student, project=challenges["partial"], writeup="the whole of it")
    services.submission_grade(submission=better, status="APPROVED", score=90, grader=instructor)

    for path in ("/challenges/partial-lab/", "/submissions/"):
        html = client.get(path).content.decode()
        assert "pill--superseded" in html and "Superseded by a better grade" in html, path
    assert "Partly solved (90/100)" in client.get("/challenges/partial-lab/").content.decode()


# --- the dashboard and the profile --------------------------------------------------------------


def progress_summary(html):
    summary = html[html.index(">", html.index('class="tags progress-summary"')) + 1 :]
    return re.sub(r"<[^>]+>", "", summary[: summary.index("</ul>")]).split()


def test_the_dashboard_offers_what_takes_an_answer_and_counts_each_state(client, challenges):
    response = client.get("/")
    html = response.content.decode()

    # easiest first; a pending write-up or a full score takes no answer
    assert {entry.name for entry in response.context["to_try"]} == {"Partial Lab", "Tried Lab", "Fresh Lab"}
    assert "Partly solved (60/100)" in card(html, "Partial Lab")
    assert "Tried" in card(html, "Tried Lab")
    assert " ".join(progress_summary(html)) == "1 solved 1 partly solved 1 waiting for grading 1 tried"
    assert "Pending Lab" in html[html.index('id="pending-title"') :]  # waiting for grading


def test_the_dashboard_says_why_nothing_is_left_to_try(client, tenant, student):
    essay = ProjectFactory(tenant=tenant, name="Only Lab")
    services.submission_create(user=student, project=essay, writeup="waiting")

    html = client.get("/").content.decode()

    assert "has a write-up waiting for grading" in html
    assert progress_summary(html) == ["1", "waiting", "for", "grading"]  # the states with none are left out


def test_the_profile_counts_each_state_and_every_submission(client, challenges):
    response = client.get("/profile/")
    html = response.content.decode()

    assert " ".join(progress_summary(html)) == "1 solved 1 partly solved 1 waiting for grading 1 tried"
    assert response.context["submitted"] == 5  # the hidden challenge's solve included
    assert 'href="/challenges/?solved=partial"' in html


def test_a_new_student_sees_no_progress_summary(tenant, client_for):
    newcomer = StudentFactory(tenant=tenant)
    ProjectFactory(tenant=tenant)

    for path in ("/", "/profile/"):
        assert "progress-summary" not in client_for(tenant, newcomer).get(path).content.decode()


# --- the same queries as before -----------------------------------------------------------------


def page_queries(client, path):
    """The queries of the third request (caches warm), without the request's transaction control."""
    client.get(path)
    client.get(path)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    control = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}
    return [q["sql"] for q in queries.captured_queries if q["sql"].split(" ", 1)[0].upper() not in control]


# Every page: the tenant entered for row-level security, the user, ... (and the session,
# when sessions are not read through the cache), as live: a test's own statements around
# the request (its tenant context and role put back) are not logged.
SESSION = int(django_settings.SESSION_ENGINE != "vulhub.sessions")
# the header's unread notification count (news): one query when cold, from the cache once warm
NOTIFICATIONS = 0
PAGE_QUERIES = {
    # + the student's states (one grouped query), pending write-ups, badges; the students on the
    # board (the leaderboard's first page) and the points-over-time chart come from the cache
    "/": 5 + NOTIFICATIONS,
    # + the student's states; the challenges and their solve counts come from the cache
    "/challenges/": 3 + NOTIFICATIONS,
    # + the challenge, its solves with the student's state (one aggregate), the student's attempts,
    # its files, its hints with the student's unlocks (one query each)
    "/challenges/partial-lab/": 7 + NOTIFICATIONS,
    "/challenges/fresh-lab/": 7 + NOTIFICATIONS,
    # + the student's states with their number of submissions (one grouped query), badges; the
    # chart and the solves list come from the cache; the student's e-mail choice
    "/profile/": 5 + NOTIFICATIONS,
    # + the count and the page of submissions
    "/submissions/": 4 + NOTIFICATIONS,
}


@pytest.mark.parametrize(("path", "expected"), PAGE_QUERIES.items())
def test_the_pages_take_as_many_queries_as_before_partial_credit(path, expected, client, challenges, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

    queries = page_queries(client, path)

    assert len(queries) == expected + SESSION, "\n".join(queries)
    # the state and attempts; on a challenge's page its row carries its unsolved prerequisites too
    assert sum('FROM "submissions"' in sql for sql in queries) <= 3


# --- the grading page ---------------------------------------------------------------------------


@pytest.fixture
def instructor_client(tenant, instructor, client_for):
    return client_for(tenant, instructor)


def test_the_grading_page_lists_the_students_other_attempts(instructor_client, tenant, student, instructor):
    essay = ProjectFactory(tenant=tenant, name="Essay Lab")
    first = services.submission_create(user=student, project=essay, writeup="first")
    services.submission_grade(submission=first, status="REJECTED", score=20, grader=instructor, feedback="Too thin.")
    second = services.submission_create(user=student, project=essay, writeup="second")
    services.submission_grade(submission=second, status="APPROVED", score=60, grader=instructor, feedback="Halfway.")
    third = services.submission_create(user=student, project=essay, writeup="third")
    classmate = StudentFactory(tenant=tenant)
    theirs = services.submission_create(user=classmate, project=essay, writeup="not theirs to see")
    elsewhere = services.submission_create(user=student, project=ProjectFactory(tenant=tenant), writeup="elsewhere")

    response = instructor_client.get(f"{QUEUE}{third.pk}/change/")
    html = response.content.decode()

    assert response.status_code == 200
    assert [a.pk for a in response.context["other_attempts"]] == [second.pk, first.pk]  # newest first
    section = html[html.index('id="other-attempts"') :]
    assert "Too thin." in section and "Halfway." in section
    assert "60/100" in section and "20/100" in section
    assert "Approved" in section and "Rejected" in section
    for attempt in (first, second):
        assert f'href="{QUEUE}{attempt.pk}/change/"' in section
    for other in (theirs, elsewhere, third):
        assert f'href="{QUEUE}{other.pk}/change/"' not in section


def test_the_grading_page_says_when_there_is_no_other_attempt(instructor_client, tenant, student):
    only = services.submission_create(user=student, project=ProjectFactory(tenant=tenant), writeup="only")

    html = instructor_client.get(f"{QUEUE}{only.pk}/change/").content.decode()

    assert "only attempt at this challenge" in html


def test_the_grading_form_refuses_a_grade_that_would_not_count(instructor_client, tenant, student, instructor):
    essay = ProjectFactory(tenant=tenant, points=100)
    first = services.submission_create(user=student, project=essay, writeup="first")
    services.submission_grade(submission=first, status="APPROVED", score=80, grader=instructor)
    second = services.submission_create(user=student, project=essay, writeup="second")

    response = instructor_client.post(
        f"{QUEUE}{second.pk}/change/", {"status": "APPROVED", "score": "70", "feedback": "ok"}
    )

    assert response.status_code == 200
    [error] = response.context["adminform"].form.errors["status"]
    assert "already has an approved submission for this challenge with 80/100" in error
    assert "a grade of 70/100 would not count" in error
    assert Submission.objects.get(pk=second.pk).status == "PENDING"

    response = instructor_client.post(
        f"{QUEUE}{second.pk}/change/", {"status": "APPROVED", "score": "95", "feedback": "better"}
    )

    assert response.status_code == 302
    assert [Submission.objects.get(pk=s.pk).status for s in (first, second)] == ["SUPERSEDED", "APPROVED"]


def test_a_superseded_submission_shows_its_status_on_the_grading_page(instructor_client, tenant, student, instructor):
    essay = ProjectFactory(tenant=tenant)
    first = services.submission_create(user=student, project=essay, writeup="first")
    services.submission_grade(submission=first, status="APPROVED", score=50, grader=instructor)
    second = services.submission_create(user=student, project=essay, writeup="second")
    services.submission_grade(submission=second, status="APPROVED", score=90, grader=instructor)

    response = instructor_client.get(f"{QUEUE}{first.pk}/change/")
    assert re.search(
        r'<input type="radio" name="status" value="SUPERSEDED"[^>]* checked[ >][^>]*>\s*'
        r"<span>Superseded by a better grade</span>",
        response.content.decode(),
    )

    response = instructor_client.post(f"{QUEUE}{first.pk}/change/", {"status": "SUPERSEDED", "score": "50"})
    assert response.status_code == 200
    assert "approve or reject it" in response.context["adminform"].form.errors["status"][0]
    response = instructor_client.post(f"{QUEUE}{first.pk}/change/", {"status": "APPROVED", "score": "95"})
    assert "reject that one first" in response.context["adminform"].form.errors["status"][0]
    assert Submission.objects.get(pk=first.pk).status == "SUPERSEDED"
