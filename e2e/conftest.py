"""Browser tests: Playwright driving Debian's Chromium against the live test server."""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# page_at's window sizes (e2e/pages.py's SIZES are the 1366 px desktop of the admin's tests)
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make test-deps` (installs Debian's chromium).")
    # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls
    # are still plain synchronous code, which Django would otherwise refuse next to a loop.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _launch(sync_playwright)
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


def _launch(sync_playwright):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page_at(browser):
    """A fresh browser context (own cookies) at a size: page_at("phone").

    Every page runs under the site's Content-Security-Policy; anything it refuses (an
    inline script, style or event handler) is reported on the console and fails the test.
    """
    contexts = []
    refused = []

    def make(size="desktop"):
        context = browser.new_context(viewport=SIZES[size])
        contexts.append(context)
        page = context.new_page()

        def note_refusal(message):
            if "Content Security Policy" in message.text:
                refused.append(f"{page.url}: {message.text}")

        page.on("console", note_refusal)
        return page

    yield make
    for context in contexts:
        context.close()
    assert refused == [], "the Content-Security-Policy refused:\n" + "\n".join(refused)
