"""Write-ups a student owns, in a real browser: sent, read back, edited, graded, improved.

And the answer field that keeps what was typed: a wrong flag comes back in the field.
Every page state is scanned with axe-core at desktop and phone widths (no violation at
all), must fit a 390 px phone without scrolling sideways, and is saved as a screenshot
(docs/screenshots/writeup-*.png).
"""

import re

import pytest
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from scoring import services
from scoring.models import Submission
from tenants.factories import InstructorFactory, StudentFactory

from . import pages
from .conftest import SIZES
from .pages import PASSWORD, alpha_academy, base_url, log_in

FLAG = "FLAG{kept_in_the_field}"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    # a grading's notification e-mail is the command's here: no thread of its own outlives the test's flush
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = False
    alpha = alpha_academy(settings)
    ProjectFactory(
        tenant=alpha,
        name="Memory Lane",
        slug="memory-lane",
        category="Forensics",
        difficulty="ADVANCED",
        points=300,
        description="Find the injected thread in the memory dump.",
    )
    ProjectFactory(
        tenant=alpha,
        name="Cookie Jar",
        slug="cookie-jar",
        category="Web Security",
        difficulty="BEGINNER",
        points=150,
        flag=FLAG,
    )
    return {
        "base": base_url(live_server),
        "student": StudentFactory(
            tenant=alpha, email="sam@alpha.test", first_name="Sam", last_name="Student", password=PASSWORD
        ),
        "teacher": InstructorFactory(tenant=alpha, first_name="Ada", last_name="Teacher"),
    }


def check_page(page, name):
    """pages.check_page at page_at's sizes (a 1280 px desktop), failing on every axe violation, not only serious."""
    pages.check_page(page, name, sizes=SIZES, every_violation=True)


def test_a_write_up_is_sent_read_edited_graded_and_improved(school, page_at):
    page, base, student = page_at("desktop"), school["base"], school["student"]
    log_in(page, base, "sam@alpha.test")

    # sent: the page shows it waiting, with its start and the ways to read and edit it
    page.goto(f"{base}/challenges/memory-lane/")
    page.get_by_label("Your write-up").fill("I ran strings on the dump.\nThen I looked for odd threads.")
    page.get_by_label("Link (optional)").fill("gist.github.com/sam/memory-lane")
    page.get_by_role("button", name="Submit write-up").click()
    expect(page.get_by_text("Write-up submitted. It is waiting for an instructor")).to_be_visible()
    expect(page.get_by_role("heading", name="Waiting for grading")).to_be_visible()
    expect(page.get_by_label("Your write-up")).to_have_count(0)  # no empty form inviting a duplicate
    expect(page.locator(".waiting-writeup blockquote")).to_contain_text("I ran strings on the dump.")
    check_page(page, "writeup-waiting")

    # read back as sent, the link safe to follow
    page.locator(".waiting-writeup").get_by_role("link", name="Read your write-up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your write-up for Memory Lane")
    expect(page.locator(".writeup-text")).to_contain_text("Then I looked for odd threads.")
    link = page.get_by_role("link", name="https://gist.github.com/sam/memory-lane")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(page.get_by_text("Waiting for grading.")).to_be_visible()
    check_page(page, "writeup-read")

    # edited while it waits
    page.get_by_role("link", name="Edit your write-up").click()
    expect(page.get_by_label("Your write-up")).to_have_value(
        "I ran strings on the dump.\nThen I looked for odd threads."
    )
    check_page(page, "writeup-edit")
    page.get_by_label("Your write-up").fill("malfind on the dump, then pslist: thread 4242 is the injected one.")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Write-up saved. It is still waiting for an instructor to grade it.")).to_be_visible()
    expect(page.locator(".writeup-text")).to_contain_text("thread 4242 is the injected one.")
    expect(page.locator(".facts")).to_contain_text("Edited")

    # graded 60 by an instructor: the grade and the feedback beside the text, and the way on
    sent = Submission.objects.get(user=student, status="PENDING")
    services.submission_grade(
        submission=sent, status="APPROVED", score=60, grader=school["teacher"], feedback="Show the pslist output."
    )
    page.reload()
    expect(page.locator("main")).to_contain_text("60/100")
    expect(page.locator("main")).to_contain_text("Show the pslist output.")
    expect(page.get_by_text("Partly solved: 60/100 counts, 180 of 300 points.")).to_be_visible()
    expect(page.get_by_role("link", name="Edit your write-up")).to_have_count(0)
    check_page(page, "writeup-graded")

    # resubmitted, starting from the last write-up
    page.get_by_role("link", name="Send an improved write-up").click()
    expect(page).to_have_url(f"{base}/challenges/memory-lane/#answer-title")
    field = page.get_by_label("Your write-up")
    expect(field).to_have_value("malfind on the dump, then pslist: thread 4242 is the injected one.")
    field.fill("malfind, then pslist (output attached): thread 4242 is the injected one.")
    page.get_by_role("button", name="Submit improved write-up").click()
    expect(page.get_by_role("heading", name="Waiting for grading")).to_be_visible()
    expect(page.locator(".waiting-writeup blockquote")).to_contain_text("(output attached)")

    # both in My submissions, each with its own page
    page.goto(f"{base}/submissions/")
    expect(page.get_by_role("link", name=re.compile("^Read your write-up for Memory Lane"))).to_have_count(2)
    check_page(page, "writeup-submissions")
    page.goto(f"{base}/challenges/memory-lane/")
    expect(page.locator("#attempts-title ~ .table-wrap").get_by_role("link", name=re.compile("^Read"))).to_have_count(2)
    check_page(page, "writeup-attempts")


def test_an_edit_that_arrives_after_the_grade_keeps_the_text(school, page_at):
    page, base, student = page_at("phone"), school["base"], school["student"]
    essay = ProjectFactory._meta.model.objects.get(slug="memory-lane")
    sent = services.submission_create(user=student, project=essay, writeup="First draft.")
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/submissions/{sent.pk}/edit/")
    page.get_by_label("Your write-up").fill("Second draft, with the pslist output.")
    services.submission_grade(submission=sent, status="APPROVED", score=60, grader=school["teacher"], feedback="Ok.")
    page.get_by_role("button", name="Save changes").click()

    expect(page.get_by_text("graded this write-up before your edit arrived")).to_be_visible()
    expect(page.get_by_label("Your write-up")).to_have_value("Second draft, with the pslist output.")
    check_page(page, "writeup-graded-meanwhile")
    page.get_by_role("button", name="Send as an improved write-up").click()
    expect(page.get_by_text("Write-up submitted.")).to_be_visible()
    expect(page.locator(".waiting-writeup blockquote")).to_contain_text("Second draft, with the pslist output.")


def test_a_wrong_flag_stays_in_the_field(school, page_at):
    page, base = page_at("desktop"), school["base"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/cookie-jar/")
    page.get_by_label("Flag").fill("FLAG{kept_in_the_feld}")
    page.get_by_role("button", name="Submit flag").click()

    expect(page.get_by_text("That is not the flag")).to_be_visible()
    expect(page.get_by_label("Flag")).to_have_value("FLAG{kept_in_the_feld}")  # fix the typo, not retype it
    check_page(page, "writeup-wrong-flag")
    page.reload()
    expect(page.get_by_label("Flag")).to_have_value("")  # kept once, for the page after the redirect
    page.get_by_label("Flag").fill(FLAG)
    page.get_by_role("button", name="Submit flag").click()
    expect(page.get_by_text("Correct! +150 points.")).to_be_visible()
