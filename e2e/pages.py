"""What the browser tests share: the personas' password, the window sizes, logging in, and the page check.

The page check is the same in every file: axe-core finds nothing serious (or nothing at
all, for the stricter files) at a desktop and a phone width, the page does not scroll
sideways on a phone, and a full-page screenshot of each width goes to docs/screenshots/.
Plain functions and constants, not fixtures: each test file calls what it needs.
"""

import re
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tenants.factories import InstructorFactory, TenantFactory

PASSWORD = "correct-horse-battery"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = {"desktop": DESKTOP, "phone": PHONE}

# axe's "preload" fetches a page's @import-ed stylesheets and injects their text as <style>
# elements: the site's Content-Security-Policy refuses them (page_at fails the test), and it
# resolves Django admin's `@import url('widgets.css')` against the page's URL, not the sheet's.
# It only serves css-orientation-lock, which reads the stylesheets the page itself loaded.
AXE_OPTIONS = {"resultTypes": ["violations"], "preload": False}
SERIOUS = ("serious", "critical")

# The elements that stick out past the right edge of the window (what makes a phone scroll
# sideways), leaving out those inside a box that scrolls on its own (a wide table's wrapper).
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  const scrollsInside = ".table-wrap, .tabular, .results, .roster-table-wrap, #changelist, [role=region]";
  return [...document.querySelectorAll("body *")]
    .filter((e) => e.getBoundingClientRect().right > width + 1 && !e.closest(scrollsInside))
    .slice(0, 5)
    .map((e) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}.${[...e.classList].join(".")}`);
}"""


def alpha_academy(settings, **fields):
    """The class the browser tests use: "Alpha Academy" at localhost, the live server's host name.

    Passwords are hashed with MD5 for the rest of the test: logging in through the browser
    is then quick. `fields` are the tenant's other fields (time_zone="Europe/Paris").
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return TenantFactory(name="Alpha Academy", slug="alpha", domain="localhost", **fields)


def instructor_ines(tenant):
    """The class's instructor, Ines Instructor (ines@alpha.test), who logs in with PASSWORD."""
    return InstructorFactory(
        tenant=tenant, email="ines@alpha.test", first_name="Ines", last_name="Instructor", password=PASSWORD
    )


def base_url(live_server) -> str:
    """The live server's address as http://localhost:<port>: the test tenant's domain is "localhost"."""
    port = live_server.url.rsplit(":", 1)[1]
    return f"http://localhost:{port}"


def open_page(page_at, size="desktop"):
    """A fresh page from conftest's page_at, at this module's size (page_at's desktop is 1280 px wide, this 1366)."""
    page = page_at(size)
    page.set_viewport_size(SIZES[size])
    return page


def log_in(page, base, email, password=PASSWORD):
    """Log in on the students' login page; the site's home page opens."""
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    expect(page).to_have_url(f"{base}/")


def admin_log_in(page, base, email, password=PASSWORD):
    """Log in on the admin's login page; the admin home opens."""
    page.goto(f"{base}/admin/login/")
    page.get_by_label(re.compile("e-?mail", re.I)).fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    expect(page).to_have_url(f"{base}/admin/")


def add_inline_file_and_hint(page, *, file_name, content, hint, cost=None):
    """On a challenge's admin page: a new file row with this file chosen and a new hint row filled, unsaved.

    cost=None leaves the hint's cost as the form shows it.
    """
    page.get_by_role("button", name=re.compile("add another file", re.I)).click()
    page.locator('input[name="files-0-file"]').set_input_files(
        {"name": file_name, "mimeType": "application/octet-stream", "buffer": content}
    )
    page.get_by_role("button", name=re.compile("add another hint", re.I)).click()
    page.locator('textarea[name="hints-0-text"]').fill(hint)
    if cost is not None:
        page.locator('input[name="hints-0-cost"]').fill(str(cost))


def axe_problems(page, label, *, every_violation=False) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each, led by `label`.

    With every_violation, the minor and moderate ones too.
    """
    violations = Axe().run(page, options=AXE_OPTIONS).response["violations"]
    return [
        f"{label} {v['id']} ({v['impact']}): {v['help']} ({', '.join(str(n['target']) for n in v['nodes'][:4])})"
        for v in violations
        if every_violation or v["impact"] in SERIOUS
    ]


def width_problem(page, label) -> str | None:
    """None when the page fits its window's width; else how wide it is and what sticks out."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    if scroll <= page.viewport_size["width"]:
        return None
    return f"{label} is {scroll} px wide in a {page.viewport_size['width']} px window: {page.evaluate(OVERFLOWING)}"


def assert_accessible(page, label, *, every_violation=False):
    """Fail the test on axe-core's serious and critical violations (every one with every_violation)."""
    problems = axe_problems(page, label, every_violation=every_violation)
    assert problems == [], "\n".join(problems)


def assert_fits(page, label):
    """Fail the test when the page scrolls sideways in its window."""
    problem = width_problem(page, label)
    assert problem is None, problem


def screenshot(page, stem, size, folder=SCREENSHOTS):
    """Save the whole page as <folder>/<stem>-<size>.png."""
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{stem}-{size}.png"), full_page=True)


def check_page(
    page,
    name,
    *,
    sizes=SIZES,
    shot=True,
    folder=SCREENSHOTS,
    every_violation=False,
    fit=("phone",),
    prepare=None,
    restore_size=False,
):
    """Check the page as it is at each of `sizes` in turn: axe finds nothing serious, it fits; a screenshot.

    - sizes: the window sizes by name, desktop first ({"desktop": ..., "phone": ...}).
    - shot: True saves <folder>/<name>-<size>.png, a string saves <folder>/<shot>-<size>.png
      instead, False saves nothing.
    - every_violation: fail on minor and moderate violations too, not only serious and critical.
    - fit: the sizes at which the page must not scroll sideways (the phone's, unless told).
    - prepare(): runs after each change of width (a dropdown is opened again at the new width).
    - restore_size: end at the size the page had; otherwise at sizes["desktop"].
    """
    before = page.viewport_size
    for size, viewport in sizes.items():
        page.set_viewport_size(viewport)
        if prepare is not None:
            prepare()
        assert_accessible(page, f"{name} ({size})", every_violation=every_violation)
        if size in fit:
            assert_fits(page, f"{name} ({size})")
        if shot:
            screenshot(page, name if shot is True else shot, size, folder)
    page.set_viewport_size(before if restore_size else sizes["desktop"])
