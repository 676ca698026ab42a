"""The grading flow in a real browser: an instructor grades three write-ups from the queue.

The queue shows every column at 1366 px; a write-up opens with no decision chosen and
the decision focused; the points the score gives change as it is typed; Enter saves and
opens the next one, to "All caught up" on the queue. axe finds nothing on the queue
or the form at 1366x800 and 390x844, a phone never scrolls sideways, and page_at
fails the test on anything the Content-Security-Policy refuses. Screenshots of the form:
docs/screenshots/admin-grading-desktop.png and admin-grading-phone.png.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from challenges.factories import ProjectFactory
from scoring import services
from scoring.factories import SubmissionFactory
from scoring.models import Submission
from tenants.factories import StudentFactory

from .pages import DESKTOP, admin_log_in, alpha_academy, base_url, check_page, instructor_ines, open_page

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    settings.NOTIFICATION_EMAILS_IN_BACKGROUND = False
    alpha = alpha_academy(settings)
    memory = ProjectFactory(tenant=alpha, name="Memory Lane", slug="memory-lane", category="Forensics", points=300)
    teacher = instructor_ines(alpha)
    ann, ben, cat = (
        StudentFactory(tenant=alpha, first_name=name, last_name="Student", email=f"{name.lower()}@alpha.test")
        for name in ("Ann", "Ben", "Cat")
    )
    # Ann tried before: rejected, with feedback the grader should see
    tried = SubmissionFactory(
        tenant=alpha, user=ann, project=memory, answer="strings.", submitted_at=timezone.now() - timedelta(days=6)
    )
    services.submission_grade(
        submission=tried, status="REJECTED", score=10, grader=teacher, feedback="Show how you found the thread."
    )
    now = timezone.now()
    waiting = [
        SubmissionFactory(
            tenant=alpha,
            user=who,
            project=memory,
            submitted_at=now - timedelta(days=days),
            answer=f"{who.first_name}'s steps: I ran volatility pslist, then malfind on the dump.\n"
            "Thread 4242 of explorer.exe is the injected one: its memory is RWX and unbacked. " * 2,
            link=f"https://gist.example/{who.first_name}/memory",
        )
        for who, days in ((ann, 3), (ben, 2), (cat, 1))
    ]
    return {"base": base_url(live_server), "waiting": waiting, "teacher": teacher}


def change_path(submission):
    return f"/admin/scoring/submission/{submission.pk}/change/"


def test_an_instructor_grades_the_queue_from_the_keyboard(school, page_at):
    base, (first, second, third) = school["base"], school["waiting"]
    page = open_page(page_at, "desktop")
    admin_log_in(page, base, "ines@alpha.test")

    # the queue: the pending ones, oldest first, every column in view at 1366 px
    page.goto(f"{base}/admin/scoring/submission/")
    expect(page).to_have_url(f"{base}/admin/scoring/submission/?status__exact=PENDING")
    grade_links = page.locator("#result_list .field-grade a")
    expect(grade_links).to_have_count(3)
    for n, name in enumerate(("Ann", "Ben", "Cat")):
        expect(grade_links.nth(n)).to_have_accessible_name(f"Grade {name} Student’s write-up for Memory Lane")
    for cell in (
        page.locator("#result_list thead th").all()
        + page.locator("#result_list tbody tr").first.locator("td, th").all()
    ):
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= DESKTOP["width"], cell.inner_text()
    expect(page.locator("#result_list tbody tr").first.locator(".field-excerpt")).to_contain_text("Ann's steps")
    check_page(page, "grading queue", shot=False, every_violation=True)

    # the first write-up: read beside the grade, no decision chosen, the decision focused
    grade_links.first.click()
    expect(page).to_have_url(re.compile(rf"{change_path(first)}\?_changelist_filters="))
    expect(page.locator(".field-answer_shown")).to_contain_text("Thread 4242 of explorer.exe")
    expect(page.locator("#other-attempts")).to_contain_text("Show how you found the thread.")
    approve, reject = page.get_by_label("Approve"), page.get_by_label("Reject")
    expect(approve).not_to_be_checked()
    expect(reject).not_to_be_checked()
    expect(approve).to_be_focused()
    preview = page.locator("#points-preview")
    expect(preview).to_have_text("Type a score from 0 to 100 to see the points it gives.")

    # choose, type a score: the points follow as it is typed
    page.keyboard.press("Space")
    expect(approve).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Score")).to_be_focused()
    page.keyboard.type("8")
    expect(preview).to_have_text("Approving with 8/100 gives 24 points.")
    page.keyboard.type("5")
    expect(preview).to_have_text("Approving with 85/100 gives 255 points.")
    page.keyboard.type("0")
    expect(preview).to_have_text("A score is a whole number from 0 to 100.")
    page.keyboard.press("Backspace")
    page.keyboard.press("Shift+Tab")
    expect(approve).to_be_focused()
    page.keyboard.press("ArrowDown")  # a radio group: the arrow moves to Reject and chooses it
    expect(reject).to_be_checked()
    expect(preview).to_have_text("Rejecting gives no points.")
    page.keyboard.press("ArrowUp")
    expect(preview).to_have_text("Approving with 85/100 gives 255 points.")
    check_page(page, "grading form", shot="admin-grading", every_violation=True)

    # Enter: saved, and the next write-up opens
    page.get_by_label("Score").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"{change_path(second)}\?_changelist_filters="))
    expect(page.locator(".messagelist")).to_contain_text(
        "Graded Ann Student’s write-up for Memory Lane: approved, 85/100, 255 points."
    )
    graded = Submission.objects.get(pk=first.pk)
    assert (graded.status, graded.score, graded.points_awarded) == ("APPROVED", 85, 255)

    # the second: rejected from the keyboard alone
    expect(page.get_by_label("Approve")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    page.keyboard.type("0")
    page.keyboard.press("Tab")
    page.keyboard.type("Name the process and show the malfind output.")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"{change_path(third)}\?_changelist_filters="))
    graded = Submission.objects.get(pk=second.pk)
    assert (graded.status, graded.score, graded.feedback) == (
        "REJECTED",
        0,
        "Name the process and show the malfind output.",
    )

    # saving without a decision is refused, with the reason next to the decision
    page.get_by_label("Score").fill("100")
    page.get_by_role("button", name="Save and grade next").click()
    expect(page.locator(".field-status .errorlist")).to_have_text(
        "Choose a decision: approve or reject this submission."
    )
    assert Submission.objects.get(pk=third.pk).status == "PENDING"

    # the last one: the queue again, all caught up
    page.get_by_label("Approve").check()
    expect(preview).to_have_text("Approving with 100/100 gives 300 points.")
    page.get_by_role("button", name="Save and grade next").click()
    expect(page).to_have_url(f"{base}/admin/scoring/submission/?status__exact=PENDING")
    expect(page.locator(".messagelist")).to_contain_text("All caught up: nothing else waits for grading.")
    expect(page.locator("#result_list")).to_have_count(0)
    assert Submission.objects.get(pk=third.pk).status == "APPROVED"


def test_the_preview_uses_a_dynamic_challenges_value_now(school, page_at):
    tenant = school["teacher"].tenant
    flag = "FLAG{dyn}"
    rally = ProjectFactory(
        tenant=tenant,
        name="Rally",
        slug="rally",
        scoring="DYNAMIC",
        flag=flag,
        points=1,
        initial_points=500,
        minimum_points=100,
        decay=4,
    )
    for solver in StudentFactory.create_batch(3, tenant=tenant):
        services.submission_create(user=solver, project=rally, flag=flag)
    essay = SubmissionFactory(tenant=tenant, project=rally, answer="my steps")
    page = open_page(page_at, "desktop")
    admin_log_in(page, school["base"], "ines@alpha.test")

    page.goto(f"{school['base']}{change_path(essay)}")
    page.get_by_label("Approve").check()
    page.get_by_label("Score").fill("50")

    expect(page.locator("#points-preview")).to_have_text(
        "Approving with 50/100 gives 200 points at the challenge's value now."
    )
    expect(page.locator(".field-score .help")).to_contain_text("This dynamic challenge is worth 400 points now")
