"""Write-ups a student owns: read back as sent, edited while they wait, resubmitted after a partial grade.

And the answer field that never comes back empty as if nothing was sent: a wrong flag,
a refusal and a form kept through a login all show what was typed.
"""

import hashlib
import re
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditLog, EventStore
from challenges.factories import ProjectFactory
from scoring import services
from scoring.challenge_views import KEPT_WRONG_FLAG, SIGNED_OUT_KEPT
from scoring.factories import SubmissionFactory
from scoring.models import Leaderboard, Submission
from scoring.replay import standings_from_events
from scoring.tests.test_concurrency import ServiceWorkers, lock_waiters
from tenants.factories import InstructorFactory, StudentFactory, TenantFactory
from vulhub.lib import drafts

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{owned}"


@pytest.fixture
def client(tenant, student, client_for):
    return client_for(tenant, student)


@pytest.fixture
def essay(tenant):
    return ProjectFactory(tenant=tenant, name="Memory Lane", slug="memory-lane", points=300)


@pytest.fixture
def flagged(tenant):
    return ProjectFactory(tenant=tenant, name="Cookie Jar", slug="cookie-jar", flag=FLAG, points=150)


@pytest.fixture
def sent(student, essay):
    return services.submission_create(
        user=student, project=essay, writeup="I ran strings on the dump.", link="https://gist.github.com/sam/1"
    )


def read(pk):
    return f"/submissions/{pk}/"


def edit(pk):
    return f"/submissions/{pk}/edit/"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


# --- the service ---------------------------------------------------------------------------------


def test_the_author_edits_a_waiting_write_up_and_the_edit_is_recorded(student, sent, tenant):
    before = timezone.now()

    edited = services.writeup_edit(
        submission=sent, user=student, writeup="  malfind, then pslist.  ", link="gist.github.com/sam/2 "
    )

    row = Submission.objects.get(pk=sent.pk)
    assert (row.answer, row.link, row.status) == ("malfind, then pslist.", "gist.github.com/sam/2", "PENDING")
    assert row.edit_count == edited.edit_count == 1 and row.edited_at >= before
    assert row.submitted_at == sent.submitted_at  # still where it was in the grading queue
    update = AuditLog.objects.get(object_type="scoring.submission", object_id=str(sent.pk), action="update")
    assert update.changes["answer"] == ["I ran strings on the dump.", "malfind, then pslist."]
    assert update.changes["link"] == ["https://gist.github.com/sam/1", "gist.github.com/sam/2"]
    assert update.changes["edit_count"] == [0, 1]
    event = EventStore.objects.get(event_type="WriteupEdited")
    assert (event.aggregate_type, event.aggregate_id, event.version) == ("Submission", str(sent.pk), 2)
    assert event.payload == {
        "submission_id": sent.pk,
        "tenant_id": tenant.pk,
        "user_id": student.pk,
        "project_id": sent.project_id,
        "edit_count": 1,
        "edited_at": row.edited_at.isoformat(),
        "previous_length": len("I ran strings on the dump."),
        "length": len("malfind, then pslist."),
        "previous_sha256": sha("I ran strings on the dump."),
        "sha256": sha("malfind, then pslist."),
        "previous_link": "https://gist.github.com/sam/1",
        "link": "gist.github.com/sam/2",
    }


def test_a_second_edit_counts_up(student, sent):
    services.writeup_edit(submission=sent, user=student, writeup="two")
    services.writeup_edit(submission=sent, user=student, writeup="three")

    assert Submission.objects.get(pk=sent.pk).edit_count == 2
    versions = EventStore.objects.filter(aggregate_type="Submission", aggregate_id=str(sent.pk)).order_by("version")
    assert [e.event_type for e in versions] == ["SubmissionCreated", "WriteupEdited", "WriteupEdited"]


def test_an_edit_that_changes_nothing_records_nothing(student, sent):
    events, audits = EventStore.objects.count(), AuditLog.objects.count()

    same = services.writeup_edit(
        submission=sent, user=student, writeup=" I ran strings on the dump.\n", link="https://gist.github.com/sam/1"
    )

    assert same.edit_count == 0 and Submission.objects.get(pk=sent.pk).edited_at is None
    assert (EventStore.objects.count(), AuditLog.objects.count()) == (events, audits)


def test_an_edit_moves_no_points_and_the_replay_agrees(student, essay, instructor, tenant):
    first = services.submission_create(user=student, project=essay, writeup="first")
    services.submission_grade(submission=first, status="APPROVED", score=60, grader=instructor)
    second = services.submission_create(user=student, project=essay, writeup="second")
    board = list(Leaderboard.objects.filter(tenant=tenant).values_list("user_id", "points", "solves"))

    services.writeup_edit(submission=second, user=student, writeup="second, with the pslist output")

    assert list(Leaderboard.objects.filter(tenant=tenant).values_list("user_id", "points", "solves")) == board
    assert [row[:3] for row in standings_from_events(tenant.pk)] == board == [(student.pk, 180, 1)]


def test_a_graded_write_up_is_not_edited(student, sent, instructor):
    services.submission_grade(submission=sent, status="APPROVED", score=60, grader=instructor, feedback="More.")

    with pytest.raises(services.AlreadyGraded, match="graded this write-up before your edit arrived"):
        services.writeup_edit(submission=sent, user=student, writeup="better")

    row = Submission.objects.get(pk=sent.pk)
    assert (row.answer, row.status, row.score, row.edit_count) == ("I ran strings on the dump.", "APPROVED", 60, 0)
    assert not EventStore.objects.filter(event_type="WriteupEdited").exists()


def test_a_grade_given_to_a_text_the_grader_did_not_read_is_refused(student, sent, instructor):
    seen = sent.edit_count  # the grading form is opened...
    services.writeup_edit(submission=sent, user=student, writeup="edited meanwhile")  # ...the student edits...

    with pytest.raises(services.InvalidAnswer, match="edited this write-up after you opened it"):
        services.submission_grade(
            submission=sent, status="APPROVED", score=60, grader=instructor, seen_edit_count=seen
        )  # ...and the grade is sent

    assert Submission.objects.get(pk=sent.pk).status == "PENDING"
    graded = services.submission_grade(
        submission=sent, status="APPROVED", score=60, grader=instructor, seen_edit_count=seen + 1
    )
    assert (graded.status, graded.answer) == ("APPROVED", "edited meanwhile")


def test_only_the_author_edits(sent, tenant, instructor, other_student):
    classmate = StudentFactory(tenant=tenant)

    for someone in (classmate, instructor, other_student):
        with pytest.raises(services.NotAllowed, match="Only its author"):
            services.writeup_edit(submission=sent, user=someone, writeup="mine now")

    assert Submission.objects.get(pk=sent.pk).answer == "I ran strings on the dump."


def test_a_flag_is_not_edited(student, flagged):
    wrong = services.submission_create(user=student, project=flagged, flag="FLAG{nope}")

    with pytest.raises(services.NotAllowed, match="Only a write-up"):
        services.writeup_edit(submission=wrong, user=student, writeup="FLAG{owned}")


def test_an_empty_edit_is_refused(student, sent):
    with pytest.raises(services.InvalidAnswer, match="Write up how you solved it"):
        services.writeup_edit(submission=sent, user=student, writeup="   ")


@pytest.mark.parametrize("closing", ["challenge", "event"])
def test_an_edit_after_the_challenge_closed_is_refused_like_a_submission(closing, student, sent, essay, tenant):
    past = timezone.now() - timedelta(minutes=1)
    if closing == "challenge":
        essay.closes_at = past
        essay.save()
    else:
        tenant.event_starts_at, tenant.event_ends_at = past - timedelta(days=1), past
        tenant.save()
    sent.project = essay
    essay.tenant = tenant

    with pytest.raises(services.NotAllowed) as refusal:
        services.writeup_edit(submission=sent, user=student, writeup="late")

    assert "no longer takes answers" in str(refusal.value) or "no more answers are taken" in str(refusal.value)
    assert Submission.objects.get(pk=sent.pk).edit_count == 0


def test_an_edit_of_a_locked_challenge_is_refused(student, sent, essay, tenant):
    first = ProjectFactory(tenant=tenant, name="Warm-up")
    essay.prerequisite_links.create(tenant=tenant, required=first)

    with pytest.raises(services.NotAllowed, match="locked: solve Warm-up first"):
        services.writeup_edit(submission=sent, user=student, writeup="later")


# --- the service under a real race ---------------------------------------------------------------


class SubmissionRowGate:
    """Holds a submission's row lock on a connection of its own until `open()`: grading and editing queue."""

    def __init__(self, submission):
        self.conn = connections.create_connection("default")
        self.cursor = self.conn.cursor()
        self.cursor.execute("BEGIN")
        self.cursor.execute("SELECT id FROM submissions WHERE id = %s FOR NO KEY UPDATE", [submission.pk])

    def wait_for(self, waiters):
        deadline = timezone.now() + timedelta(seconds=30)
        while lock_waiters() < waiters and timezone.now() < deadline:
            threading.Event().wait(0.01)
        assert lock_waiters() == waiters

    def open(self):
        self.cursor.execute("COMMIT")
        self.conn.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["grade", "edit"])
def test_a_grading_and_an_edit_at_once_apply_one_after_the_other(first, pooled_connections_for, settings):
    pooled_connections_for(4)
    # a grading's notification e-mail is the command's here: no thread of its own outlives the test's flush
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = False
    tenant = TenantFactory(slug="race", domain="race.localhost")
    student = StudentFactory(tenant=tenant)
    grader = InstructorFactory(tenant=tenant)
    essay = ProjectFactory(tenant=tenant, points=100)
    sent = services.submission_create(user=student, project=essay, writeup="as sent")
    results = {}
    workers = ServiceWorkers()

    def grade():
        results["grade"] = workers.call(
            services.submission_grade, submission=sent, status="APPROVED", score=60, grader=grader
        )

    def edit_it():
        results["edit"] = workers.call(services.writeup_edit, submission=sent, user=student, writeup="as edited")

    order = [grade, edit_it] if first == "grade" else [edit_it, grade]
    gate = SubmissionRowGate(sent)
    try:
        workers.start(order[0])
        gate.wait_for(1)
        workers.start(order[1])
        gate.wait_for(2)
    finally:
        gate.open()
        workers.join()

    row = Submission.objects.get(pk=sent.pk)
    assert (row.status, row.score) == ("APPROVED", 60)
    assert results["grade"][1] is None
    kinds = list(
        EventStore.objects.filter(aggregate_type="Submission", aggregate_id=str(sent.pk))
        .order_by("version")
        .values_list("event_type", flat=True)
    )
    if first == "grade":  # the grade is for the text the instructor read: the edit is refused, nothing half-done
        assert isinstance(results["edit"][1], services.AlreadyGraded)
        assert (row.answer, row.edit_count) == ("as sent", 0)
        assert kinds == ["SubmissionCreated", "SubmissionGraded"]
    else:
        assert results["edit"][1] is None
        assert (row.answer, row.edit_count) == ("as edited", 1)
        assert kinds == ["SubmissionCreated", "WriteupEdited", "SubmissionGraded"]


# --- reading a write-up --------------------------------------------------------------------------


def test_a_write_up_reads_back_as_sent_escaped_with_a_safe_link(client, student, essay):
    sent = services.submission_create(
        user=student,
        project=essay,
        writeup="Step 1: <script>alert(1)</script>\nStep 2: **not bold**\n\nDone & dusted.",
        link="https://gist.github.com/sam/abc",
    )

    response = client.get(read(sent.pk))
    html = response.content.decode()

    assert response.status_code == 200
    assert "Step 1: &lt;script&gt;alert(1)&lt;/script&gt;<br>Step 2: **not bold**</p>" in html
    assert "<p>Done &amp; dusted.</p>" in html
    assert "<script>alert(1)" not in html
    assert (
        '<a href="https://gist.github.com/sam/abc" rel="noopener noreferrer nofollow">'
        "https://gist.github.com/sam/abc</a>" in html
    )
    assert "Waiting for grading." in html
    assert f'href="{edit(sent.pk)}"' in html


def test_a_link_that_is_not_http_is_shown_as_text_only(client, student, essay, tenant):
    odd = SubmissionFactory(tenant=tenant, user=student, project=essay, answer="x", link="javascript:alert(1)")

    html = client.get(read(odd.pk)).content.decode()

    assert "javascript:alert(1)" in html
    assert 'href="javascript:' not in html


def test_the_grade_and_feedback_show_beside_the_text_with_the_way_to_improve(client, student, sent, instructor):
    services.submission_grade(
        submission=sent, status="APPROVED", score=60, grader=instructor, feedback="Show how you\nfound the thread."
    )

    response = client.get(read(sent.pk))
    html = response.content.decode()

    assert "60/100" in html and ">180<" in html
    assert "Show how you<br>found the thread." in html
    assert "Partly solved: 60/100 counts, 180 of 300 points." in html
    assert "your best grade counts" in html
    assert 'href="/challenges/memory-lane/#answer-title">Send an improved write-up</a>' in html
    assert f'href="{edit(sent.pk)}"' not in html  # graded: no more edits


def test_a_rejected_write_up_invites_a_new_one_and_a_superseded_one_says_why(client, student, essay, instructor):
    first = services.submission_create(user=student, project=essay, writeup="first")
    services.submission_grade(submission=first, status="REJECTED", score=10, grader=instructor, feedback="Thin.")

    html = client.get(read(first.pk)).content.decode()
    assert "Not accepted." in html and "send a new write-up" in html and "Send an improved write-up" in html

    second = services.submission_create(user=student, project=essay, writeup="second")
    services.submission_grade(submission=second, status="APPROVED", score=50, grader=instructor)
    third = services.submission_create(user=student, project=essay, writeup="third")
    services.submission_grade(submission=third, status="APPROVED", score=100, grader=instructor)

    assert "A better grade replaced this one." in client.get(read(second.pk)).content.decode()
    assert "Full marks: you solved this challenge." in client.get(read(third.pk)).content.decode()
    assert "Send an improved write-up" not in client.get(read(first.pk)).content.decode()  # solved since


def test_a_write_up_is_only_its_authors(client, tenant, essay, flagged, student, other_tenant, client_for, instructor):
    classmates = services.submission_create(user=StudentFactory(tenant=tenant), project=essay, writeup="theirs")
    elsewhere = services.submission_create(
        user=StudentFactory(tenant=other_tenant), project=ProjectFactory(tenant=other_tenant), writeup="far"
    )
    flag = services.submission_create(user=student, project=flagged, flag="FLAG{nope}")
    mine = services.submission_create(user=student, project=essay, writeup="mine")

    for pk in (classmates.pk, elsewhere.pk, flag.pk, 0, 10**30):
        for path in (read(pk), edit(pk)):
            assert client.get(path).status_code == 404, path
        assert client.post(edit(pk), {"writeup": "taken over"}).status_code == 404
    # the author, on another tenant's host; the instructor of the class (they grade in the admin)
    assert client_for(other_tenant, student).get(read(mine.pk)).status_code in (302, 404)
    assert client_for(tenant, instructor).get(read(mine.pk)).status_code == 404
    assert Submission.objects.get(pk=classmates.pk).answer == "theirs"


@pytest.mark.parametrize("path", ["/submissions/1/", "/submissions/1/edit/"])
def test_write_up_pages_need_a_login(path, tenant, client_for):
    response = client_for(tenant).get(path)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_write_up_page_takes_a_constant_number_of_queries(client, student, sent, essay, tenant):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(read(sent.pk)).status_code == 200
        return len(queries)

    few = count()
    for _ in range(10):
        SubmissionFactory(tenant=tenant, project=essay, user=StudentFactory(tenant=tenant))
        first = ProjectFactory(tenant=tenant)
        essay.prerequisite_links.create(tenant=tenant, required=first)
        services.submission_create(user=student, project=first, writeup="x")

    assert count() == few


# --- editing a write-up on its page --------------------------------------------------------------


def test_the_edit_form_starts_from_the_text_and_saves_an_edit(client, student, sent):
    response = client.get(edit(sent.pk))
    assert response.status_code == 200 and not response.context["form"].is_bound
    html = response.content.decode()
    assert ">\nI ran strings on the dump.</textarea>" in html
    assert 'value="https://gist.github.com/sam/1"' in html

    response = client.post(edit(sent.pk), {"writeup": "malfind, then pslist.", "link": ""}, follow=True)

    assert response.redirect_chain == [(read(sent.pk), 302)]
    assert "Write-up saved. It is still waiting for an instructor to grade it." in messages_of(response)
    html = response.content.decode()
    assert "<p>malfind, then pslist.</p>" in html and "No link was sent." in html
    assert ">Edited<" in html
    row = Submission.objects.get(pk=sent.pk)
    assert (row.answer, row.link, row.edit_count) == ("malfind, then pslist.", "", 1)
    update = AuditLog.objects.get(object_type="scoring.submission", object_id=str(sent.pk), action="update")
    assert update.actor_id == student.pk and update.request_id  # the request's actor and id, as every change
    assert EventStore.objects.get(event_type="WriteupEdited").metadata["actor_id"] == student.pk


def test_saving_the_same_text_says_nothing_changed(client, sent):
    response = client.post(
        edit(sent.pk), {"writeup": "I ran strings on the dump.", "link": "https://gist.github.com/sam/1"}, follow=True
    )

    assert "Nothing changed: your write-up is as it was." in messages_of(response)
    assert Submission.objects.get(pk=sent.pk).edit_count == 0


def test_an_empty_edit_is_a_400_with_the_error_on_the_field(client, sent):
    response = client.post(edit(sent.pk), {"writeup": "", "link": "gist.github.com/x"})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert 'value="gist.github.com/x"' in response.content.decode()  # as typed


def test_an_edit_graded_meanwhile_is_a_409_that_keeps_the_text_and_offers_to_resubmit(client, sent, instructor):
    assert client.get(edit(sent.pk)).status_code == 200  # the form is open in a tab...
    services.submission_grade(submission=sent, status="APPROVED", score=60, grader=instructor, feedback="More.")

    response = client.post(edit(sent.pk), {"writeup": "malfind, then pslist.", "link": ""})  # ...and sent

    assert response.status_code == 409
    html = response.content.decode()
    assert "graded this write-up before your edit arrived" in html
    assert "Graded meanwhile: 60/100 (approved). Your edit was not saved." in html
    assert ">\nmalfind, then pslist.</textarea>" in html  # nothing lost
    form = html[html.index('<form method="post" action="/challenges/memory-lane/">') :]
    assert 'name="writeup"' in form and "Send as an improved write-up" in form
    assert Submission.objects.get(pk=sent.pk).answer == "I ran strings on the dump."

    # sent from there, it is the improved write-up
    client.post("/challenges/memory-lane/", {"writeup": "malfind, then pslist.", "link": ""})
    assert Submission.objects.filter(answer="malfind, then pslist.", status="PENDING").count() == 1


def test_an_edit_after_full_marks_keeps_the_text_to_copy(client, sent, instructor):
    services.submission_grade(submission=sent, status="APPROVED", score=100, grader=instructor)

    response = client.post(edit(sent.pk), {"writeup": "an afterthought", "link": ""})

    assert response.status_code == 409
    html = response.content.decode()
    assert '<textarea id="kept-writeup" rows="10" readonly>an afterthought</textarea>' in html
    assert "Send as an improved write-up" not in html


def test_an_edit_after_the_challenge_closed_is_a_403_that_keeps_the_text(client, sent, essay):
    essay.closes_at = timezone.now() - timedelta(minutes=1)
    essay.save()

    response = client.post(edit(sent.pk), {"writeup": "too late", "link": ""})

    assert response.status_code == 403
    assert "this challenge no longer takes answers" in response.content.decode()
    assert ">too late</textarea>" in response.content.decode()  # read-only, to copy
    assert Submission.objects.get(pk=sent.pk).answer == "I ran strings on the dump."

    response = client.get(edit(sent.pk), follow=True)  # the form is not even offered
    assert response.redirect_chain == [(read(sent.pk), 302)]
    assert f'href="{edit(sent.pk)}"' not in response.content.decode()
    assert "It will still be graded." in response.content.decode()


def test_the_edit_page_of_a_graded_write_up_goes_back_to_reading_it(client, sent, instructor):
    services.submission_grade(submission=sent, status="REJECTED", score=0, grader=instructor)

    response = client.get(edit(sent.pk), follow=True)

    assert response.redirect_chain == [(read(sent.pk), 302)]
    assert "This write-up has been graded: it can no longer be edited." in messages_of(response)


# --- the challenge's page after a write-up --------------------------------------------------------


def test_after_sending_the_page_shows_the_write_up_waiting_with_read_and_edit(client, essay):
    response = client.post("/challenges/memory-lane/", {"writeup": "Volatility pslist " * 40, "link": ""}, follow=True)
    sent = Submission.objects.get(project=essay)
    html = response.content.decode()

    assert "Write-up submitted. It is waiting for an instructor to grade it" in html
    assert 'name="writeup"' not in html  # no empty form inviting a duplicate
    waiting = html[html.index('class="waiting-writeup"') :]
    assert "<blockquote><p>Volatility pslist Volatility pslist" in waiting and "…</p></blockquote>" in waiting
    assert f'href="{read(sent.pk)}">Read<' in waiting and f'href="{edit(sent.pk)}">Edit<' in waiting


def test_a_waiting_write_up_leaves_try_next(client, essay, tenant):
    other = ProjectFactory(tenant=tenant, name="Fresh Lab", slug="fresh-lab")
    assert {p.pk for p in client.get("/").context["to_try"]} == {essay.pk, other.pk}

    client.post("/challenges/memory-lane/", {"writeup": "steps", "link": ""})

    assert {p.pk for p in client.get("/").context["to_try"]} == {other.pk}


def test_the_attempts_and_my_submissions_link_every_write_up_and_no_flag(client, student, sent, flagged, essay):
    wrong = services.submission_create(user=student, project=flagged, flag="FLAG{nope}")

    page = client.get("/challenges/memory-lane/").content.decode()
    attempts = page[page.index('id="attempts-title"') :]
    assert f'href="{read(sent.pk)}"' in attempts and f'href="{edit(sent.pk)}"' in attempts

    mine = client.get("/submissions/").content.decode()
    assert f'href="{read(sent.pk)}"' in mine
    assert f'href="{read(wrong.pk)}"' not in mine and f'href="{read(wrong.pk)}"' not in attempts


@pytest.mark.parametrize("path", ["/challenges/memory-lane/", "/submissions/"])
def test_the_tables_stack_into_cards_on_a_phone(path, client, student, sent, instructor, essay):
    services.submission_grade(submission=sent, status="APPROVED", score=60, grader=instructor, feedback="More.")
    services.submission_create(user=student, project=essay, writeup="better")

    html = client.get(path).content.decode()
    table = html[html.index("<table") : html.index("</table>")]
    headers = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', table)
    cells = re.findall(r"<td[^>]*>", table)

    assert 'class="table--wide table--cards"' in table
    assert cells and all("data-label=" in cell for cell in cells)
    labels = re.findall(r'data-label="([^"]+)"', table)
    assert set(labels) == set(headers[1:])  # every column but the row's own header, which titles the card
    assert len(re.findall(r'<th scope="row"', table)) == 2


def test_a_partial_grade_is_improved_from_the_last_write_up_and_the_best_grade_counts(
    client, student, sent, instructor, tenant
):
    services.submission_grade(submission=sent, status="APPROVED", score=60, grader=instructor, feedback="More.")

    response = client.get("/challenges/memory-lane/")
    html = response.content.decode()
    assert "Your last write-up is in the form: improve it and send it again." in html
    assert ">\nI ran strings on the dump.</textarea>" in html and not response.context["form"].is_bound
    assert "Submit improved write-up" in html

    client.post("/challenges/memory-lane/", {"writeup": "strings, then malfind and pslist.", "link": ""})
    better = Submission.objects.get(user=student, status="PENDING")
    services.submission_grade(submission=better, status="APPROVED", score=90, grader=instructor)

    assert Leaderboard.objects.get(user=student).points == 270
    assert Submission.objects.get(pk=sent.pk).status == "SUPERSEDED"
    html = client.get(read(better.pk)).content.decode()
    assert "Partly solved: 90/100 counts, 270 of 300 points." in html


def test_a_second_write_up_while_one_waits_is_refused_and_shown_back(client, sent):
    response = client.post("/challenges/memory-lane/", {"writeup": "a second thought", "link": "x.test/y"})

    assert response.status_code == 409
    html = response.content.decode()
    assert '<textarea id="unsent-writeup" rows="8" readonly>a second thought</textarea>' in html
    assert "Link (not sent): x.test/y" in html
    assert f'<a href="{edit(sent.pk)}">edit your write-up</a>' in html


# --- the answer field keeps what was typed --------------------------------------------------------


def test_a_wrong_flag_comes_back_in_the_field_once(client, flagged):
    response = client.post("/challenges/cookie-jar/", {"flag": "FLAG{typo}"}, follow=True)

    assert response.redirect_chain == [("/challenges/cookie-jar/", 302)]
    form = response.context["form"]
    assert not form.is_bound and form.initial == {"flag": "FLAG{typo}"}
    assert 'value="FLAG{typo}"' in response.content.decode()
    assert SIGNED_OUT_KEPT not in messages_of(response)  # the page kept it itself
    assert (
        KEPT_WRONG_FLAG not in client.session
        and drafts.SESSION_KEY not in client.session
        or not (client.session[drafts.SESSION_KEY])
    )

    again = client.get("/challenges/cookie-jar/")
    assert 'value="FLAG{typo}"' not in again.content.decode()


@pytest.mark.parametrize(("status", "setup"), [(429, "limit"), (403, "closed")])
def test_a_refused_flag_keeps_the_typed_value(status, setup, client, flagged, tenant):
    if setup == "limit":
        tenant.settings = {"flag_attempts": {"limit": 1, "window_minutes": 10}}
        tenant.save()
        client.post("/challenges/cookie-jar/", {"flag": "FLAG{no}"})
    else:
        flagged.closes_at = timezone.now() - timedelta(minutes=1)
        flagged.save()

    response = client.post("/challenges/cookie-jar/", {"flag": FLAG})

    assert response.status_code == status
    assert FLAG in response.content.decode()


def keep_for_page(client, path, fields):
    """What the expired-session path keeps through the login (vulhub.lib.drafts), for the page at `path`."""
    session = client.session
    session[drafts.SESSION_KEY] = {path: fields}
    session.save()


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/challenges/cookie-jar/", {"flag": "FLAG{kept}"}),
        ("/challenges/memory-lane/", {"writeup": "typed before the session ran out", "link": "https://x.test/"}),
    ],
)
def test_a_form_kept_through_a_login_comes_back_with_a_word_why(path, fields, client, flagged, essay):
    keep_for_page(client, path, fields)

    response = client.get(path)

    assert response.status_code == 200
    assert not response.context["form"].is_bound and response.context["form"].initial == fields
    assert SIGNED_OUT_KEPT in messages_of(response)
    html = response.content.decode()
    assert all(value in html for value in fields.values())
    assert SIGNED_OUT_KEPT not in messages_of(client.get(path))  # taken once


def test_a_kept_flag_that_differs_from_the_pages_own_is_announced(client, flagged):
    client.post("/challenges/cookie-jar/", {"flag": "FLAG{typo}"})  # the page keeps it, then...
    keep_for_page(client, "/challenges/cookie-jar/", {"flag": "FLAG{later}"})  # ...a login keeps another

    response = client.get("/challenges/cookie-jar/")

    assert response.context["form"].initial == {"flag": "FLAG{later}"}
    assert SIGNED_OUT_KEPT in messages_of(response)


def test_a_kept_write_up_for_a_page_with_no_form_is_shown_to_copy(client, sent):
    keep_for_page(client, "/challenges/memory-lane/", {"writeup": "typed in another tab"})

    html = client.get("/challenges/memory-lane/").content.decode()

    assert '<textarea id="unsent-writeup" rows="8" readonly>typed in another tab</textarea>' in html
    assert SIGNED_OUT_KEPT not in html  # there is no form to put it back in


# --- the same queries as before -------------------------------------------------------------------


def test_a_waiting_write_up_adds_no_query_to_the_challenges_page(client, student, essay, tenant, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    fresh = ProjectFactory(tenant=tenant, slug="fresh-lab")
    services.submission_create(user=student, project=essay, writeup="waiting")

    def count(path):
        client.get(path)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    assert count("/challenges/memory-lane/") == count(f"/challenges/{fresh.slug}/")


def test_an_edit_sent_after_the_session_ended_comes_back_in_the_edit_form(tenant, student, sent, client_for):
    browser = client_for(tenant)  # the session has ended: an anonymous POST of the edit
    bounced = browser.post(edit(sent.pk), {"writeup": "My edit, typed for an hour", "link": ""})
    assert bounced.status_code == 302 and "/accounts/login/" in bounced["Location"]

    browser.force_login(student)
    page = browser.get(edit(sent.pk))

    assert page.status_code == 200
    assert page.context["form"].initial["writeup"] == "My edit, typed for an hour"
    assert any("signed out before your edit was saved" in m for m in messages_of(page))
    assert browser.get(edit(sent.pk)).context["form"].initial["writeup"] == sent.answer  # taken once


def test_a_kept_edit_of_a_write_up_graded_meanwhile_goes_to_the_challenge_page(
    tenant, student, sent, essay, instructor, client_for
):
    browser = client_for(tenant)
    browser.post(edit(sent.pk), {"writeup": "My late edit", "link": ""})
    services.submission_grade(submission=sent, status="APPROVED", score=60, grader=instructor)

    browser.force_login(student)
    landed = browser.get(edit(sent.pk), follow=True)

    assert landed.redirect_chain[-1][0] == f"/challenges/{essay.slug}/"
    assert "My late edit" in landed.content.decode()
