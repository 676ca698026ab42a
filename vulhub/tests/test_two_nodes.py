"""Several web nodes: nothing in a worker's memory is needed by another.

Two gunicorn processes (two workers each) serve the test database as the app role and
share the test's cache (REDIS_URL's Redis; without it, the embedded default's database
cache), behind a HAProxy of the test's own that balances round robin with no stickiness
(vulhub/tests/haproxy.py). A person's consecutive requests land on different nodes, and
everything still works, because sessions, CSRF tokens, messages, answers kept for a form,
the leaderboard's cache version, the notification count, the wrong-flag limit and the
login lockout all live in PostgreSQL or the shared cache.
"""

import re
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import pairwise

import pytest
import requests
from django.conf import settings

from challenges.factories import ProjectFactory
from scoring.factories import BadgeFactory, LeaderboardFactory
from scoring.models import BadgeRuleKind, Submission
from tenants.factories import DEFAULT_PASSWORD, StudentFactory

from .haproxy import SERVED_BY, haproxy, node_name
from .servers import app_database_url, fetch, gunicorn

pytestmark = pytest.mark.django_db(transaction=True)  # the nodes are other processes: they see committed rows

NODES = 2
# HAProxy adds the client to X-Forwarded-For: the nodes read it as production does behind it
NODE_SETTINGS = {"BEHIND_PROXY": "true", "PROXY_COUNT": "1", "NOTIFICATION_EMAILS_IN_BACKGROUND": "false"}
FLAG = "FLAG{one-cache-for-all}"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True)
class Site:
    proxy: int  # HAProxy's port
    nodes: list[int]  # each gunicorn's own port


@pytest.fixture(scope="module")
def site(django_db_setup):
    """Two gunicorn nodes and HAProxy in front of them, for every test of this module."""
    url = app_database_url()
    with ExitStack() as stack:
        nodes = [stack.enter_context(gunicorn(url, **NODE_SETTINGS)) for _ in range(NODES)]
        yield Site(proxy=stack.enter_context(haproxy(nodes)), nodes=nodes)


class Browser:
    """A person's browser: a cookie jar, the CSRF token of the last form shown, and where each request went.

    `nodes` lists the node that answered each request (redirects followed included), as
    HAProxy's X-Served-By names it; None for a request sent to a node directly.
    """

    def __init__(self, port: int, host: str):
        self.http = requests.Session()
        self.http.headers["Host"] = host  # cookies belong to the host, whatever the port
        self.base = f"http://127.0.0.1:{port}"
        self.token = ""
        self.nodes: list[str | None] = []

    def at(self, port: int) -> "Browser":
        """The same browser (its cookies, its token) sending its next requests to `port`."""
        self.base = f"http://127.0.0.1:{port}"
        return self

    def get(self, path: str, *, follow: bool = True) -> requests.Response:
        return self._seen(self.http.get(self.base + path, allow_redirects=follow, timeout=30))

    def submit(self, path: str, fields: dict, *, follow: bool = True, headers: dict | None = None) -> requests.Response:
        """A form sent from the page last shown, with that page's CSRF token."""
        assert self.token, "no page with a form was shown before this POST"
        data = {"csrfmiddlewaretoken": self.token, **fields}
        response = self.http.post(self.base + path, data=data, headers=headers, allow_redirects=follow, timeout=30)
        return self._seen(response)

    def _seen(self, response: requests.Response) -> requests.Response:
        self.nodes += [hop.headers.get(SERVED_BY) for hop in [*response.history, response]]
        found = CSRF_FIELD.search(response.text)
        self.token = found.group(1) if found else self.token
        return response


def served_by(response: requests.Response) -> str | None:
    return response.headers.get(SERVED_BY)


def every_node() -> set[str]:
    return {node_name(index) for index in range(NODES)}


def alternating(nodes: list[str | None]) -> bool:
    """Whether no two consecutive requests were served by the same node, and every node served some."""
    return set(nodes) == every_node() and all(first != second for first, second in pairwise(nodes))


def signed_in(browser: Browser, email: str, password: str = DEFAULT_PASSWORD) -> requests.Response:
    browser.get("/accounts/login/")
    return browser.submit("/accounts/login/", {"username": email, "password": password})


def unread(page: requests.Response) -> str:
    """The header's count of unread notifications ("" when there is none)."""
    found = re.search(r'aria-label="Notifications, (\d+) unread"', page.text)
    return found.group(1) if found else ""


# --- where requests go -------------------------------------------------------------------------


def test_requests_alternate_between_the_nodes_with_no_stickiness(site, tenant):
    browser = Browser(site.proxy, tenant.domain)

    pages = [browser.get("/accounts/login/") for _ in range(6)]

    assert [page.status_code for page in pages] == [200] * 6
    assert alternating([served_by(page) for page in pages])  # one cookie jar, yet never the same node twice


# --- a student's whole journey, each request on the other node ------------------------------------


@pytest.fixture
def alpha_class(tenant):
    """Two challenges (a flag, a write-up), a first-solve badge and a rival on the board with 50 points."""
    ProjectFactory(tenant=tenant, name="Two-node flag", slug="two-node-flag", flag=FLAG, points=100)
    ProjectFactory(tenant=tenant, name="Two-node write-up", slug="two-node-writeup", points=60)
    BadgeFactory(tenant=tenant, name="First blood drawn", rule_kind=BadgeRuleKind.FIRST_SOLVE, rule_params={})
    rival = StudentFactory(tenant=tenant, first_name="Rita", last_name="Rival")
    LeaderboardFactory(tenant=tenant, user=rival, points=50, solves=1)
    return tenant


def test_a_student_registers_and_plays_through_with_every_request_on_the_other_node(site, alpha_class):
    browser = Browser(site.proxy, alpha_class.domain)

    browser.get("/accounts/register/")
    fields = {"first_name": "Nia", "last_name": "Lee", "email": "nia@alpha.test", "password": "a-long-enough-pass"}
    home = browser.submit("/accounts/register/", fields)
    # registered and signed in by one node; welcomed, from the session, by the other
    assert home.url.endswith("/") and "Welcome to Alpha Academy, Nia!" in home.text
    assert "Two-node flag" in browser.get("/challenges/").text

    # the leaderboard as each node has it (and caches it) before the solve
    before = [browser.get("/leaderboard/") for _ in range(NODES)]
    assert all(page.status_code == 200 and "You are ranked" not in page.text for page in before)
    (unread_before,) = {unread(page) for page in before}  # the same count on both

    browser.get("/challenges/two-node-flag/")
    wrong = browser.submit("/challenges/two-node-flag/", {"flag": "FLAG{a-guess}"})
    # the refusal and the flag kept for the form came through the session from the node that took it
    assert "That is not the flag." in wrong.text
    assert re.search(r'name="flag"[^>]* value="FLAG\{a-guess\}"', wrong.text)
    right = browser.submit("/challenges/two-node-flag/", {"flag": FLAG})
    assert "Correct! +100 points." in right.text

    dashboard = browser.get("/")
    assert re.search(r"<dd>100</dd>", dashboard.text) and "#1<span" in dashboard.text
    # the solve moved the board's cache version, shared: neither node shows its old page
    after = [browser.get("/leaderboard/") for _ in range(NODES)]
    assert {served_by(page) for page in after} == every_node()
    assert all("You are ranked <strong>#1</strong> with 100 points and 1 solve." in page.text for page in after)
    assert all("Rita Rival" in page.text for page in after)

    badges = browser.get("/badges/")
    assert "You have earned 1 of 1 badge." in badges.text and "First blood drawn" in badges.text
    # the badge's notification counts on both nodes, then reading it clears the count on both
    assert [unread(page) for page in after] == [str(int(unread_before or 0) + 1)] * NODES
    assert "First blood drawn" in browser.get("/news/").text
    assert [unread(browser.get("/challenges/")) for _ in range(NODES)] == ["", ""]

    browser.get("/challenges/two-node-writeup/")
    taken = browser.submit("/challenges/two-node-writeup/", {"writeup": "Read the source, found the key.", "link": ""})
    assert "Write-up submitted." in taken.text
    submissions = browser.get("/submissions/").text
    assert "Two-node write-up" in submissions and submissions.count("Two-node flag") == 2
    assert all(status in submissions for status in ("Pending", "Approved", "Rejected"))

    browser.get("/profile/")
    saved = browser.submit("/profile/", {"first_name": "Nia", "last_name": "Lee-Park"})
    assert "Your name is saved." in saved.text and "Lee-Park" in saved.text

    session = browser.http.cookies["sessionid"]
    signed_out = browser.submit("/accounts/logout/", {})
    assert signed_out.url.endswith("/accounts/login/")
    assert alternating(browser.nodes), browser.nodes
    # the session ended on every node: its cookie, sent again, signs nobody in
    assert [fetch(node, alpha_class.domain, "/profile/", session)[0] for node in site.nodes] == [302] * NODES


# --- sessions made on one node -------------------------------------------------------------------


def test_a_session_made_on_one_node_is_valid_on_the_other_until_logged_out_on_either(site, tenant, student):
    first, second = site.nodes
    browser = Browser(first, tenant.domain)

    assert signed_in(browser, student.email).url.endswith("/")  # on the first node only
    profile = browser.at(second).get("/profile/")
    assert profile.status_code == 200 and student.email in profile.text

    session = browser.http.cookies["sessionid"]
    assert browser.submit("/accounts/logout/", {}).url.endswith("/accounts/login/")  # on the second
    assert fetch(first, tenant.domain, "/profile/", session)[0] == 302  # its cookie, sent again, signs nobody in


def test_signing_in_through_the_proxy_takes_the_form_from_one_node_and_the_password_on_the_other(site, tenant, student):
    browser = Browser(site.proxy, tenant.domain)

    home = signed_in(browser, student.email)

    assert home.url.endswith("/") and f"Welcome, {student.first_name}!" in home.text
    assert alternating(browser.nodes)  # login form, its POST, the dashboard


def test_a_solve_on_one_node_shows_on_the_leaderboard_the_other_had_cached(site, alpha_class, student):
    first, second = site.nodes
    browser = Browser(second, alpha_class.domain)
    signed_in(browser, student.email)
    assert "You are ranked" not in browser.get("/leaderboard/").text  # cached by the second node

    browser.at(first).get("/challenges/two-node-flag/")
    assert "Correct!" in browser.submit("/challenges/two-node-flag/", {"flag": FLAG}).text

    board = browser.at(second).get("/leaderboard/").text
    assert "You are ranked <strong>#1</strong> with 100 points" in board


# --- limits counted across nodes ------------------------------------------------------------------


def wrong_flags(browser: Browser, slug: str, count: int) -> list[int]:
    """The statuses of `count` wrong flags sent from the challenge's page (a 302: taken, a 429: refused)."""
    browser.get(f"/challenges/{slug}/")
    return [
        browser.submit(f"/challenges/{slug}/", {"flag": "FLAG{no}"}, follow=False).status_code for _ in range(count)
    ]


def test_wrong_flags_alternating_between_nodes_meet_the_limit_at_the_same_count_as_on_one_node(site, tenant, student):
    tenant.settings = {**tenant.settings, "flag_attempts": {"limit": 3, "window_minutes": 10}}
    tenant.save()
    spread, single = (ProjectFactory(tenant=tenant, flag=FLAG) for _ in range(2))
    browser = Browser(site.proxy, tenant.domain)
    signed_in(browser, student.email)

    start = len(browser.nodes)
    through_proxy = wrong_flags(browser, spread.slug, 5)
    spread_nodes = browser.nodes[start + 1 :]  # the POSTs, after the page's GET
    on_one_node = wrong_flags(browser.at(site.nodes[0]), single.slug, 5)

    assert through_proxy == on_one_node == [302, 302, 302, 429, 429]
    assert alternating(spread_nodes)
    rejected = Submission.objects.filter(user=student, status=Submission.Status.REJECTED)
    assert [rejected.filter(project=project).count() for project in (spread, single)] == [3, 3]


def failed_logins(browser: Browser, email: str, count: int, *, forged: bool = False) -> list[int]:
    """The statuses of `count` logins with a wrong password, then of one with the right one.

    `forged`: each attempt claims another address in its own X-Forwarded-For, which
    HAProxy keeps and appends the real one to; the nodes count the real one.
    """
    browser.get("/accounts/login/")
    attempts = [{"username": email, "password": "not-the-password"}] * count + [
        {"username": email, "password": DEFAULT_PASSWORD}
    ]
    return [
        browser.submit(
            "/accounts/login/",
            fields,
            follow=False,
            headers={"X-Forwarded-For": f"203.0.113.{number}"} if forged else None,
        ).status_code
        for number, fields in enumerate(attempts, start=1)
    ]


def test_failed_logins_alternating_between_nodes_lock_out_at_the_same_count_as_on_one_node(site, tenant):
    spread, single = StudentFactory(tenant=tenant), StudentFactory(tenant=tenant)
    limit = settings.AXES_FAILURE_LIMIT  # the nodes read the same environment
    proxied = Browser(site.proxy, tenant.domain)
    direct = Browser(site.nodes[0], tenant.domain)

    through_proxy = failed_logins(proxied, spread.email, limit + 2, forged=True)
    on_one_node = failed_logins(direct, single.email, limit + 2)

    # the attempt that reaches the limit and every one after it, the right password included, are refused
    assert through_proxy == on_one_node == [200] * (limit - 1) + [429] * 3 + [429]
    assert alternating(proxied.nodes[1:])
