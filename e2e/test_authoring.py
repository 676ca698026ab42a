"""Authoring a challenge in a real browser (issue 28, item 5).

An instructor creates a challenge with a file and a hint: the flag typed twice and shown,
a category chosen from the class's, the description previewed, published with the
switch; then tests a wrong and the right flag on the saved challenge without leaving the
page. Every state is scanned with axe-core (no serious or critical violation), fits a 390 px
phone, and the page runs under the site's Content-Security-Policy (page_at fails the test
on a refusal). Screenshots: docs/screenshots/admin-authoring-{desktop,phone}.png.
"""

import hashlib
import re

import pytest
from playwright.sync_api import expect

from audit.models import EventStore
from challenges.factories import ProjectFactory
from challenges.models import ChallengeFile, Hint, Project
from challenges.tests.attachments import attachments_in

from .pages import (
    SIZES,
    add_inline_file_and_hint,
    admin_log_in,
    alpha_academy,
    base_url,
    check_page,
    instructor_ines,
    open_page,
)

FLAG = "FLAG{r3ad_th3_c00kie}"
CAPTURE = bytes(range(256)) * 8
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings, tmp_path):
    alpha = alpha_academy(settings)
    ProjectFactory(tenant=alpha, name="SQL Basics", slug="sql-basics", category="Web Security")
    ProjectFactory(tenant=alpha, name="Memory Lane", slug="memory-lane", category="Forensics")
    with attachments_in(tmp_path / "attachments") as storage:
        yield {
            "base": base_url(live_server),
            "tenant": alpha,
            "storage": storage,
            "ines": instructor_ines(alpha),
        }


def test_an_instructor_authors_publishes_and_tests_the_flag(school, page_at):
    base, tenant = school["base"], school["tenant"]
    page = open_page(page_at, "desktop")
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(f"{base}/admin/challenges/project/add/")
    expect(page.locator("#hidden-banner")).to_contain_text("hidden from students")
    published = page.get_by_label("Published: students see it")
    expect(published).not_to_be_checked()

    page.get_by_label("Name:").fill("Cookie Jar")
    # the class's categories, and a new one only on demand
    category = page.get_by_label("Category:", exact=True)
    expect(category.locator("option")).to_have_text(
        ["Choose a category…", "Forensics", "Web Security", "Add a new category…"]
    )
    new_category = page.locator("#id_new_category")
    expect(new_category).to_be_hidden()
    category.select_option(label="Add a new category…")
    expect(new_category).to_be_visible()
    category.select_option("Web Security")
    expect(new_category).to_be_hidden()
    page.get_by_label("Difficulty:").select_option("BEGINNER")

    # the preview renders the Markdown as students see it, sanitised
    description = page.get_by_label("Description:")
    description.fill("Read the **cookie**.\n\n<script>document.title = 'pwned'</script>\n\n- decode it\n- read `role`")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#description-preview")
    expect(preview.locator("strong")).to_have_text("cookie")
    expect(preview.locator("code")).to_have_text("role")
    assert preview.locator("script").count() == 0
    assert page.title() != "pwned"

    # the flag typed twice, then shown to read it
    page.get_by_label("Flag:", exact=True).fill(FLAG)
    page.get_by_label("Type the flag again:").fill(FLAG)
    page.get_by_role("button", name="Show the flag as typed").click()
    expect(page.locator("#id_new_flag")).to_have_attribute("type", "text")
    expect(page.locator("#id_new_flag_again")).to_have_value(FLAG)
    page.get_by_role("button", name="Show the flag as typed").click()
    expect(page.locator("#id_new_flag")).to_have_attribute("type", "password")

    # a file and a hint, on the same page
    add_inline_file_and_hint(page, file_name="cookie.bin", content=CAPTURE, hint="The cookie is **base64**.", cost=10)
    check_page(page, "admin-authoring-new", shot=False)

    published.check()
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator(".messagelist")).not_to_contain_text("hidden from students")
    expect(page.locator("#hidden-banner")).to_have_count(0)

    cookie = Project.objects.get(tenant=tenant, slug="cookie-jar")
    assert cookie.is_published and cookie.category == "Web Security" and cookie.check_flag(FLAG)
    assert EventStore.objects.filter(event_type="ProjectPublished", aggregate_id=str(cookie.pk)).count() == 1
    stored = ChallengeFile.objects.get(project=cookie)
    assert stored.sha256 == hashlib.sha256(CAPTURE).hexdigest()
    assert Hint.objects.get(project=cookie).cost == 10
    expect(page.locator(".field-description_shown strong")).to_have_text("cookie")

    # testing a flag keeps the unsaved edits: the page does not move
    page.get_by_label("Name:").fill("Cookie Jar (edited)")
    url = page.url
    tester = page.get_by_label("Test a flag")
    tester.fill("FLAG{r3ad_the_c00kie}")
    page.get_by_role("button", name="Test", exact=True).click()
    result = page.locator("#flag-test-result")
    expect(result).to_have_text("Does not match the stored flag.")
    tester.fill(FLAG)
    tester.press("Enter")  # Enter in the box tests, it does not save the challenge
    expect(result).to_have_text("Matches the stored flag.")
    assert page.url == url
    expect(page.get_by_label("Name:")).to_have_value("Cookie Jar (edited)")
    cookie.refresh_from_db()
    assert cookie.name == "Cookie Jar"
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#description-preview strong")).to_have_text("cookie")
    check_page(page, "admin-authoring")

    # unpublished with the switch: the warning and the banner say so
    page.get_by_label("Published: students see it").uncheck()
    page.get_by_role("button", name="Save and continue editing").click()
    hidden = "“Cookie Jar (edited)” is hidden from students until you publish it."
    expect(page.locator(".messagelist")).to_contain_text(hidden)
    expect(page.locator("#hidden-banner")).to_be_visible()
    cookie.refresh_from_db()
    assert not cookie.is_published
    assert EventStore.objects.filter(event_type="ProjectUnpublished", aggregate_id=str(cookie.pk)).count() == 1
    check_page(page, "admin-authoring-hidden", shot=False)

    # the answer page a browser without JavaScript gets (the form posted as such a browser posts it)
    page.get_by_label("Test a flag").fill("FLAG{nope}")
    page.evaluate("document.getElementById('flag-test-form').submit()")
    expect(page.get_by_role("status")).to_have_text("Does not match the stored flag.")
    check_page(page, "admin-authoring-flag-test", shot=False)
    page.get_by_role("link", name=re.compile("Back to")).click()
    expect(page.get_by_label("Test a flag")).to_be_visible()


def test_without_javascript_the_flag_test_answers_on_a_page_of_its_own(school, browser):
    base, tenant = school["base"], school["tenant"]
    cookie = ProjectFactory(tenant=tenant, name="Cookie Jar", slug="cookie-jar", category="Web Security", flag=FLAG)
    context = browser.new_context(viewport=SIZES["phone"], java_script_enabled=False)
    try:
        page = context.new_page()
        admin_log_in(page, base, "ines@alpha.test")
        page.goto(f"{base}/admin/challenges/project/{cookie.pk}/change/")
        # the new-category box is simply there, and the saved description is shown
        expect(page.locator("#id_new_category")).to_be_visible()
        expect(page.locator(".field-description_shown")).to_contain_text("As students see it")
        page.get_by_label("Test a flag").fill(FLAG)
        page.get_by_role("button", name="Test", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("Matches the stored flag.")
        page.get_by_role("link", name="Back to “Cookie Jar”").click()
        expect(page).to_have_url(f"{base}/admin/challenges/project/{cookie.pk}/change/")
    finally:
        context.close()
