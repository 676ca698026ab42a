"""Every admin page an instructor and a tenant admin can open, scanned in a real browser (issue 28).

The crawl starts at the admin home and follows the app list: each list, the first
object's page and the add page where the role may add. Each page is scanned with
axe-core (no serious or critical violation: Django's own breadcrumbs and headers
included), must fit a 390 px phone without scrolling sideways (the instructor's pages),
must not say "Django" and must run under the site's Content-Security-Policy (page_at).
The data is a small class made through the services, so every list has rows.
"""

import re

import pytest

from challenges.factories import ProjectFactory
from challenges.models import Hint
from challenges.services import project_save
from news.factories import AnnouncementFactory
from scoring import services
from scoring.factories import BadgeFactory
from tenants.factories import StudentFactory, TenantAdminFactory

from .pages import PASSWORD, SIZES, admin_log_in, alpha_academy, axe_problems, base_url, instructor_ines, width_problem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def school(live_server, settings):
    tenant = alpha_academy(settings)
    ines = instructor_ines(tenant)
    ada = TenantAdminFactory(
        tenant=tenant, email="ada@alpha.test", first_name="Ada", last_name="Admin", password=PASSWORD
    )
    students = [
        StudentFactory(tenant=tenant, email=f"{name.lower()}@alpha.test", first_name=name, last_name="Student")
        for name in ("Alice", "Bob", "Dana")
    ]
    flag = ProjectFactory(tenant=tenant, name="Cookie Monster", slug="cookies", points=100, category="Web")
    project_save(project=flag, flag="FLAG{cookies}")
    writeup = ProjectFactory(tenant=tenant, name="Report the XSS", slug="xss-report", points=200, category="Web")
    Hint.objects.create(tenant=tenant, project=writeup, position=1, text="Look at the search box.", cost=10)
    services.submission_create(user=students[0], project=flag, flag="FLAG{cookies}")
    services.submission_create(user=students[1], project=flag, flag="FLAG{nope}")
    graded = services.submission_create(user=students[0], project=writeup, writeup="I found it in the search box.")
    services.submission_grade(submission=graded, status="APPROVED", score=80, feedback="Good.", grader=ines)
    services.submission_create(user=students[1], project=writeup, writeup="Stored XSS in comments.")
    badge = BadgeFactory(tenant=tenant, name="Helping Hand", slug="helping-hand")
    services.badge_award(badge=badge, user=students[2], actor=ines)
    AnnouncementFactory(tenant=tenant, author=ines, title="Lab 2 is open", body="Start with **Cookie Monster**.")
    return {"base": base_url(live_server), "ines": ines, "ada": ada}


def admin_pages(page, base) -> list[str]:
    """The home, every list of the app list, the first object of each and its add page."""
    page.goto(f"{base}/admin/")
    lists = page.eval_on_selector_all(
        "#content-main .app-list a[href$='/'], #content-main .module a[href^='/admin/'][href$='/']",
        "links => [...new Set(links.map((a) => a.getAttribute('href')))]",
    )
    lists = sorted({href for href in lists if re.fullmatch(r"/admin/\w+/\w+/", href)})
    assert len(lists) >= 6, f"the admin home links to only {lists}"
    pages = ["/admin/"]
    for href in lists:
        pages.append(href)
        page.goto(base + href)
        first = page.locator("#result_list tbody tr a[href*='/change/']").first
        if first.count():
            pages.append(first.get_attribute("href"))
        add = page.locator(f"a.addlink[href='{href}add/']")
        if add.count():
            pages.append(f"{href}add/")
    return pages


def scan(page, base, path, size):
    page.set_viewport_size(SIZES[size])
    response = page.goto(base + path)
    assert response.status == 200, f"{path}: HTTP {response.status}"
    problems = axe_problems(page, f"{path} ({size})")
    if "Django" in page.inner_text("body") or "Django" in page.title():
        problems.append(f"{path} ({size}) says Django: {page.title()}")
    if size == "phone" and (too_wide := width_problem(page, f"{path} ({size})")):
        problems.append(too_wide)
    return problems


@pytest.mark.parametrize(
    ("who", "sizes"), [("ines", ("desktop", "phone")), ("ada", ("desktop",))], ids=["instructor", "tenant-admin"]
)
def test_every_admin_page_passes_axe_and_speaks_vulhub(school, page_at, who, sizes):
    page = page_at("desktop")
    admin_log_in(page, school["base"], school[who].email)
    problems = []
    for path in admin_pages(page, school["base"]):
        for size in sizes:
            problems += scan(page, school["base"], path, size)
    assert problems == [], "\n".join(problems)
