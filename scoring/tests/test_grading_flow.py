"""The grading flow in the admin: the queue, the grade form and "Save and grade next".

The form starts with no decision chosen and refuses to save without one; it says what
a score is worth on this challenge (a dynamic one at its value now); "Save and grade
next" walks the queue the grader came from, oldest first, its filters kept, never into
another tenant's submissions, and ends on the queue with "All caught up".
"""

import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import SubmissionFactory
from scoring.models import Leaderboard, Submission
from tenants.factories import InstructorFactory, StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

QUEUE = "/admin/scoring/submission/"
PENDING = f"{QUEUE}?status__exact=PENDING"
FLAG = "FLAG{dyn}"


@pytest.fixture
def client(tenant, instructor, client_for):
    return client_for(tenant, instructor)


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def change_url(submission, filters="status__exact=PENDING"):
    url = f"{QUEUE}{submission.pk}/change/"
    return f"{url}?{urlencode({'_changelist_filters': filters})}" if filters is not None else url


def grade(**data):
    return {"status": "APPROVED", "score": "80", "feedback": "Clear.", **data}


def grade_next(**data):
    return {**grade(**data), "_gradenext": "Save and grade next"}


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def status_inputs(html):
    return re.findall(r'<input type="radio" name="status"[^>]*>', html)


@pytest.fixture
def three_waiting(tenant, project):
    """Three write-ups waiting, by three students, submitted three, two and one days ago."""
    students = [StudentFactory(tenant=tenant, first_name=name, last_name="Student") for name in ("Ann", "Ben", "Cat")]
    return [
        SubmissionFactory(tenant=tenant, user=who, project=project, submitted_at=ago(days=days), answer=f"Steps {n}")
        for n, (who, days) in enumerate(zip(students, (3, 2, 1), strict=True), start=1)
    ]


# --- the grade form ---------------------------------------------------------------------


def test_it_shows_a_pending_submission_with_no_decision_chosen(client, tenant, student, project):
    submission = SubmissionFactory(tenant=tenant, user=student, project=project)

    response = client.get(change_url(submission))

    assert response.status_code == 200
    html = response.content.decode()
    radios = status_inputs(html)
    assert [re.search(r'value="(\w+)"', r).group(1) for r in radios] == ["APPROVED", "REJECTED"]
    assert not any("checked" in r for r in radios)
    assert "<select" not in html.split('id="grade-heading"')[1].split("</fieldset>")[0]
    assert response.context["adminform"].form["status"].value() == "PENDING"  # which no radio stands for
    # reached first, labelled, with access keys
    assert "autofocus" in radios[0] and "autofocus" not in radios[1]
    assert 'accesskey="a"' in radios[0] and 'accesskey="r"' in radios[1]
    assert re.search(r'<label for="id_status_0"[^>]*>\s*<input[^>]*>\s*<span>Approve</span></label>', html)
    assert re.search(r'<label for="id_status_1"[^>]*>\s*<input[^>]*>\s*<span>Reject</span></label>', html)
    assert '<legend class="required">Decision</legend>' in html
    assert '<label for="id_score" class="required">Score:</label>' in html
    assert '<label for="id_feedback">Feedback:</label>' in html


def test_save_and_grade_next_is_the_first_button_so_enter_submits_it(client, tenant, student, project):
    submission = SubmissionFactory(tenant=tenant, user=student, project=project)

    html = client.get(change_url(submission)).content.decode()

    buttons = re.findall(r'<input type="submit"[^>]*>', html)
    assert 'value="Save and grade next"' in buttons[0] and 'class="default"' in buttons[0]
    assert 'name="_gradenext"' in buttons[0]
    assert not any('class="default"' in b for b in buttons[1:])


def test_a_graded_submission_shows_its_decision_when_regraded(client, tenant, student, project, instructor):
    submission = SubmissionFactory(tenant=tenant, user=student, project=project)
    services.submission_grade(submission=submission, status="REJECTED", score=20, grader=instructor)

    radios = status_inputs(client.get(change_url(submission)).content.decode())

    assert ["checked" in r for r in radios] == [False, True]
    assert "autofocus" in radios[1]


@pytest.mark.parametrize("data", [{"status": ""}, {}])
def test_a_missing_decision_is_a_form_error_and_changes_nothing(data, client, tenant, student, project):
    submission = SubmissionFactory(tenant=tenant, user=student, project=project)
    audit_rows = AuditLog.objects.count()
    form = grade_next()
    form.pop("status")

    response = client.post(change_url(submission), {**form, **data})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["status"] == [
        "Choose a decision: approve or reject this submission."
    ]
    html = response.content.decode()
    assert "Choose a decision: approve or reject this submission." in html
    assert not any("checked" in r for r in status_inputs(html))
    submission.refresh_from_db()
    assert (submission.status, submission.score, submission.points_awarded) == ("PENDING", None, 0)
    assert not EventStore.objects.filter(event_type="SubmissionGraded").exists()
    assert not Leaderboard.objects.exists()
    assert AuditLog.objects.count() == audit_rows


def test_the_score_says_what_it_gives_on_a_static_challenge(client, tenant, student):
    essay = ProjectFactory(tenant=tenant, points=300)
    submission = SubmissionFactory(tenant=tenant, user=student, project=essay)

    response = client.get(change_url(submission))

    help_text = response.context["adminform"].form.fields["score"].help_text
    assert "This challenge is worth 300 points." in help_text
    assert "Full score (100) gives 300 points; 50 gives 150 points; 0 gives none." in help_text
    html = response.content.decode()
    assert escape(help_text) in html
    assert 'data-points="300"' in html and 'data-dynamic="false"' in html
    assert "Type a score from 0 to 100 to see the points it gives." in html


def test_points_round_halves_up_in_the_help_text(client, tenant, student):
    odd = ProjectFactory(tenant=tenant, points=101)
    submission = SubmissionFactory(tenant=tenant, user=student, project=odd)

    help_text = client.get(change_url(submission)).context["adminform"].form.fields["score"].help_text

    assert "Full score (100) gives 101 points; 50 gives 51 points" in help_text


def test_a_dynamic_challenge_is_worth_its_value_now(client, tenant, student):
    project = ProjectFactory(
        tenant=tenant,
        scoring="DYNAMIC",
        flag=FLAG,
        points=1,
        initial_points=500,
        minimum_points=100,
        decay=4,
        decay_function="LOGARITHMIC",
    )
    for solver in StudentFactory.create_batch(3, tenant=tenant):
        services.submission_create(user=solver, project=project, flag=FLAG)
    project.refresh_from_db()
    assert project.points == 400  # three solvers: the value fell from 500
    submission = SubmissionFactory(tenant=tenant, user=student, project=project)

    response = client.get(change_url(submission))

    help_text = response.context["adminform"].form.fields["score"].help_text
    assert "This dynamic challenge is worth 400 points now" in help_text
    assert "Full score (100) gives 400 points; 50 gives 200 points" in help_text
    assert 'data-points="400"' in response.content.decode()
    assert 'data-dynamic="true"' in response.content.decode()


def test_the_preview_is_written_for_the_values_a_form_comes_back_with(client, tenant, student):
    essay = ProjectFactory(tenant=tenant, points=300)
    submission = SubmissionFactory(tenant=tenant, user=student, project=essay)

    approved = client.post(change_url(submission), grade(score="", feedback="x")).content.decode()
    with_score = client.post(change_url(submission), grade(status="", score="70")).content.decode()
    rejected = client.post(change_url(submission), grade(status="REJECTED", score="")).content.decode()

    assert "Type a score from 0 to 100 to see the points it gives." in approved
    assert "If approved, 70/100 gives 210 points." in with_score
    assert "Rejecting gives no points." in rejected


def test_the_write_up_is_shown_escaped_with_its_line_breaks_and_link(client, tenant, student, project):
    submission = SubmissionFactory(
        tenant=tenant,
        user=student,
        project=project,
        answer="First I ran <script>alert(1)</script>\nthen sqlmap.",
        link="https://gist.example/sam/1",
    )

    html = client.get(change_url(submission)).content.decode()

    assert "First I ran &lt;script&gt;alert(1)&lt;/script&gt;<br>then sqlmap." in html
    assert "<script>alert(1)" not in html
    assert '<a href="https://gist.example/sam/1" rel="noopener noreferrer nofollow" target="_blank">' in html


def test_a_link_that_is_no_web_address_is_shown_as_text(client, tenant, student, project):
    submission = SubmissionFactory(tenant=tenant, user=student, project=project, link="javascript:alert(1)")

    html = client.get(change_url(submission)).content.decode()

    assert "javascript:alert(1)" in html
    assert 'href="javascript:' not in html


def test_the_students_earlier_attempts_are_shown(client, tenant, student, project, instructor):
    first = SubmissionFactory(tenant=tenant, user=student, project=project, submitted_at=ago(days=5))
    services.submission_grade(
        submission=first, status="REJECTED", score=10, grader=instructor, feedback="Show the payload."
    )
    SubmissionFactory(tenant=tenant, user=StudentFactory(tenant=tenant), project=project)  # someone else's
    again = SubmissionFactory(tenant=tenant, user=student, project=project, submitted_at=ago(days=1))

    response = client.get(change_url(again))

    assert [a.pk for a in response.context["other_attempts"]] == [first.pk]
    html = response.content.decode()
    assert "This student’s other attempts at this challenge" in html
    assert "Show the payload." in html and "10/100" in html and "(earlier)" in html


# --- save and grade next ----------------------------------------------------------------


def test_save_and_grade_next_walks_the_queue_oldest_first_and_ends_on_it(client, three_waiting, instructor):
    first, second, third = three_waiting

    response = client.post(change_url(first), grade_next(score="80"))
    assert response.status_code == 302
    assert response["Location"] == change_url(second)
    response = client.post(response["Location"], grade_next(status="REJECTED", score="0"))
    assert response["Location"] == change_url(third)
    response = client.post(response["Location"], grade_next(score="100"), follow=True)

    assert response.redirect_chain[-1] == (PENDING, 302)
    shown = messages_of(response)
    assert "All caught up: nothing else waits for grading." in shown
    assert "Graded Cat Student’s write-up for SQL Injection Challenge: approved, 100/100, 100 points." in shown
    graded = {
        s.pk: (s.status, s.score, s.graded_by_id)
        for s in Submission.objects.filter(pk__in=[first.pk, second.pk, third.pk])
    }
    assert graded == {
        first.pk: ("APPROVED", 80, instructor.pk),
        second.pk: ("REJECTED", 0, instructor.pk),
        third.pk: ("APPROVED", 100, instructor.pk),
    }
    assert list(response.context["cl"].result_list) == []


def test_grading_one_further_down_moves_on_then_back_to_the_oldest_left(client, three_waiting):
    first, second, third = three_waiting

    response = client.post(change_url(second), grade_next())
    assert response["Location"] == change_url(third)
    response = client.post(response["Location"], grade_next())
    assert response["Location"] == change_url(first)  # the one skipped still waits


def test_save_and_grade_next_keeps_the_challenge_filter(client, tenant, project, three_waiting):
    other = ProjectFactory(tenant=tenant, name="Cookie Jar")
    elsewhere = SubmissionFactory(tenant=tenant, project=other, user=three_waiting[0].user, submitted_at=ago(days=9))
    later = SubmissionFactory(tenant=tenant, project=other, user=three_waiting[1].user, submitted_at=ago(hours=1))
    filters = f"status__exact=PENDING&project__id__exact={other.pk}"

    response = client.post(change_url(elsewhere, filters), grade_next())
    assert response["Location"] == change_url(later, filters)
    response = client.post(response["Location"], grade_next(), follow=True)

    assert response.redirect_chain[-1] == (f"{QUEUE}?{filters}", 302)
    assert "All caught up: nothing else waits for grading in this list." in messages_of(response)
    assert Submission.objects.filter(project=project, status="PENDING").count() == 3  # not in the list: untouched


def test_save_and_grade_next_keeps_a_search_and_looks_at_pending_ones_only(client, tenant, project, three_waiting):
    ann = three_waiting[0].user
    ann.last_name = "Annerson"
    ann.save()
    regraded = SubmissionFactory(tenant=tenant, user=ann, project=ProjectFactory(tenant=tenant), rejected=True)
    again = SubmissionFactory(tenant=tenant, user=ann, project=ProjectFactory(tenant=tenant), submitted_at=ago(hours=2))
    filters = "status__exact=REJECTED&q=Annerson"  # a list of rejected ones, searched for a student

    response = client.post(change_url(regraded, filters), grade_next(status="REJECTED", score="5"))

    assert response["Location"] == change_url(three_waiting[0], filters)  # hers, pending, oldest first
    response = client.post(response["Location"], grade_next())
    assert response["Location"] == change_url(again, filters)


def test_save_and_grade_next_never_goes_to_another_tenants_submission(
    client, tenant, other_tenant, project, other_student
):
    theirs = SubmissionFactory(
        tenant=other_tenant, user=other_student, project=ProjectFactory(tenant=other_tenant), submitted_at=ago(days=30)
    )
    ours = SubmissionFactory(tenant=tenant, project=project, submitted_at=ago(days=1))
    filters = f"status__exact=PENDING&project__id__exact={theirs.project_id}"

    alone = client.post(change_url(ours), grade_next(), follow=True)
    assert alone.redirect_chain[-1] == (PENDING, 302)
    assert "All caught up: nothing else waits for grading." in messages_of(alone)

    again = SubmissionFactory(tenant=tenant, project=project, submitted_at=ago(days=2))
    foreign_filter = client.post(change_url(again, filters), grade_next(), follow=True)
    assert foreign_filter.redirect_chain[-1] == (f"{QUEUE}?{filters}", 302)
    assert Submission.objects.get(pk=theirs.pk).status == "PENDING"


@pytest.mark.parametrize(
    "filters", ["project__id__exact=abc", "foo=1", "kind__exact=a%00b", "user__password__startswith=x", "o=zz&p=-1"]
)
def test_save_and_grade_next_with_broken_filters_saves_and_goes_on_in_the_whole_queue(filters, client, three_waiting):
    first, second, _ = three_waiting

    response = client.post(change_url(first, filters), grade_next())

    assert response.status_code == 302
    assert response["Location"] == change_url(second, filters)
    assert Submission.objects.get(pk=first.pk).status == "APPROVED"


def test_a_stale_write_up_is_not_graded_by_save_and_grade_next(client, tenant, student, project):
    submission = services.submission_create(user=student, project=project, writeup="First draft")
    seen = client.get(change_url(submission)).context["adminform"].form["seen_edit_count"].value()
    services.writeup_edit(submission=submission, user=student, writeup="Second draft")

    response = client.post(change_url(submission), {**grade_next(), "seen_edit_count": seen})

    assert response.status_code == 200
    assert "edited this write-up after you opened it" in response.content.decode()
    assert Submission.objects.get(pk=submission.pk).status == "PENDING"


def test_another_instructor_cannot_grade_next_from_another_tenant(client_for, other_tenant, three_waiting):
    intruder = client_for(other_tenant, InstructorFactory(tenant=other_tenant))

    assert intruder.post(change_url(three_waiting[0]), grade_next()).status_code == 404
    assert Submission.objects.get(pk=three_waiting[0].pk).status == "PENDING"


# --- the queue --------------------------------------------------------------------------


def test_the_pending_queue_has_a_grade_link_per_row_oldest_first(client, three_waiting):
    response = client.get(PENDING)

    html = response.content.decode()
    links = re.findall(
        r'<th class="field-grade"><a href="([^"]+)">Grade<span class="visually-hidden"> ([^<]+)</span>', html
    )
    assert [href for href, _ in links] == [change_url(s).replace("&", "&amp;") for s in three_waiting]
    assert links[0][1] == "Ann Student’s write-up for SQL Injection Challenge"
    headers = re.findall(r'<th scope="col" class="([^"]*)"', html)
    assert [next(c for c in h.split() if c.startswith(("column-", "action-"))) for h in headers] == [
        "action-checkbox-column",
        "column-grade",
        "column-student",
        "column-project",
        "column-age",
        "column-excerpt",
    ]
    assert "Oldest first." in html
    assert f'href="{QUEUE}export/' in html  # django-import-export's button, around this template


def test_the_queues_query_count_does_not_grow_with_its_rows(client, tenant, project, three_waiting):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(PENDING).status_code == 200
        return len(captured)

    few = queries()
    for student in StudentFactory.create_batch(12, tenant=tenant):
        SubmissionFactory(tenant=tenant, user=student, project=ProjectFactory(tenant=tenant))

    assert queries() == few


def test_another_status_shows_its_status_and_score_columns(client, tenant, student, project):
    SubmissionFactory(tenant=tenant, user=student, project=project, approved=True)

    html = client.get(f"{QUEUE}?status__exact=APPROVED").content.decode()

    assert "column-status" in html and "column-score" in html
    assert ">Open<span" in html
