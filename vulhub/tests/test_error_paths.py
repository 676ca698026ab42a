"""Error paths that keep a student's work: a refused form's page, and an answer sent after the session ended.

Real CSRF checks (Client(enforce_csrf_checks=True)), real logins through the login page
(a login rotates the CSRF token, as in a browser) and real sessions in PostgreSQL.
"""

import re

import pytest
from django.conf import settings
from django.test import Client

from challenges.factories import ProjectFactory
from scoring.models import Submission
from vulhub.errors import local_path
from vulhub.lib import drafts

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{kept_through_it_all}"
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
STALE = "This form was opened before you last signed in or out, so it could not be sent safely."
KEPT = "Your session had ended. Sign in and your answer will be back in the form."


@pytest.fixture
def challenge(tenant):
    return ProjectFactory(tenant=tenant, name="Cookie Jar", slug="cookie-jar", flag=FLAG, points=150)


@pytest.fixture
def essay(tenant):
    return ProjectFactory(tenant=tenant, name="Memory Lane", slug="memory-lane", points=300)


@pytest.fixture
def browser(tenant):
    """A client that checks CSRF tokens as the live site does, and sends the Origin a browser sends."""
    return Client(enforce_csrf_checks=True, HTTP_HOST=tenant.domain, HTTP_ORIGIN=f"http://{tenant.domain}")


def token_on(client, path) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    return TOKEN.search(response.content.decode()).group(1)


def log_in(client, user, password, next_path=""):
    data = {"username": user.email, "password": password, "csrfmiddlewaretoken": token_on(client, "/accounts/login/")}
    if next_path:
        data["next"] = next_path
    response = client.post("/accounts/login/", data)
    assert response.status_code == 302, response.content.decode()[:500]
    return response


def log_out(client):
    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": token_on(client, "/profile/")})
    assert response.status_code == 302


def end_session(client):
    """The session cookie is gone (it expired); the CSRF cookie, which lives a year, stays."""
    del client.cookies[settings.SESSION_COOKIE_NAME]


# --- A stale or missing CSRF token ----------------------------------------------------------


def test_it_offers_to_resend_a_flag_from_a_tab_left_open_across_a_logout_and_a_login(
    browser, student, password, challenge
):
    log_in(browser, student, password)
    stale = token_on(browser, "/challenges/cookie-jar/")  # the tab left open
    log_out(browser)
    log_in(browser, student, password)  # rotates the token

    response = browser.post("/challenges/cookie-jar/", {"flag": FLAG, "csrfmiddlewaretoken": stale})

    assert response.status_code == 403
    content = response.content.decode()
    assert STALE in content
    assert 'class="site-header"' in content and "Alpha Academy" in content  # the site's look, not Django's page
    assert "More information is available with DEBUG=True" not in content
    assert f'value="{FLAG}"' in content
    assert '<form method="post" action="/challenges/cookie-jar/">' in content
    fresh = TOKEN.search(content).group(1)
    assert fresh != stale and stale not in content
    assert "no-store" in response["Cache-Control"]
    assert not Submission.objects.filter(user=student).exists()

    resent = browser.post("/challenges/cookie-jar/", {"flag": FLAG, "csrfmiddlewaretoken": fresh})

    assert resent.status_code == 302 and resent["Location"] == "/challenges/cookie-jar/"
    assert Submission.objects.get(user=student, project=challenge).status == Submission.Status.APPROVED


def test_it_shows_a_write_up_and_its_link_back_as_typed(browser, student, password, essay):
    log_in(browser, student, password)
    writeup = 'Step 1: <script>alert("x")</script> & strings on the dump'

    response = browser.post(
        "/challenges/memory-lane/",
        {"writeup": writeup, "link": "gist.github.com/sam/1", "csrfmiddlewaretoken": "x" * 64},
    )

    assert response.status_code == 403
    content = response.content.decode()
    assert "Step 1: &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; strings on the dump</textarea>" in content
    assert "<script>alert" not in content
    assert 'name="link" id="resend_link" value="gist.github.com/sam/1"' in content
    assert '<label for="resend_writeup">Your write-up</label>' in content


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/accounts/login/", {"username": "student@alpha.test", "password": "Secret-Typed-1"}),
        (
            "/accounts/password/change/",
            {"old_password": "Secret-Typed-1", "new_password1": "Secret-Typed-2", "new_password2": "Secret-Typed-2"},
        ),
        ("/accounts/register/", {"email": "n@alpha.test", "password": "Secret-Typed-1", "first_name": "N"}),
        # an answer field beside a password: not an answer form, nothing shown back
        ("/challenges/cookie-jar/", {"flag": FLAG, "password": "Secret-Typed-1"}),
    ],
)
def test_it_never_shows_back_a_password_or_the_rest_of_another_form(
    browser, student, password, challenge, path, fields
):
    log_in(browser, student, password)

    response = browser.post(path, {**fields, "csrfmiddlewaretoken": "s" * 64})

    assert response.status_code == 403
    content = response.content.decode()
    assert "Secret-Typed" not in content
    assert FLAG not in content
    assert "s" * 64 not in content
    assert "Nothing you typed was kept: passwords and codes never are." in content
    assert "Open the page again" in content


def test_the_way_back_is_the_page_the_form_was_on(browser, student, password, tenant):
    log_in(browser, student, password)

    response = browser.post(
        "/accounts/password/change/",
        {"old_password": "x", "csrfmiddlewaretoken": "s" * 64},
        HTTP_REFERER=f"http://{tenant.domain}/accounts/password/change/?from=profile",
    )

    assert 'href="/accounts/password/change/?from=profile">Open the page again' in response.content.decode()


@pytest.mark.parametrize(
    "referer",
    [
        "https://evil.example/phish",
        "http://alpha.localhost//evil.example/phish",
        "http://alpha.localhost/\\evil.example/phish",
        "javascript:alert(1)",
    ],
)
def test_the_way_back_never_leads_to_another_site(browser, student, password, referer):
    log_in(browser, student, password)

    response = browser.post(
        "/accounts/password/change/", {"old_password": "x", "csrfmiddlewaretoken": "s" * 64}, HTTP_REFERER=referer
    )

    content = response.content.decode()
    assert response.status_code == 403
    assert "evil.example" not in content and "javascript:" not in content
    assert 'href="/accounts/password/change/">Open the page again' in content


def test_a_form_posted_from_another_site_is_explained_never_shown_back(tenant, student, password, challenge):
    client = Client(enforce_csrf_checks=True, HTTP_HOST=tenant.domain, HTTP_ORIGIN="https://evil.example")
    client.force_login(student)

    response = client.post("/challenges/cookie-jar/", {"flag": "FLAG{planted}"})

    assert response.status_code == 403
    content = response.content.decode()
    assert "did not say that it came from a page of this site" in content
    assert "FLAG{planted}" not in content
    assert drafts.SESSION_KEY not in client.session


def test_a_form_whose_origin_is_unknown_is_not_shown_back(tenant, student, challenge):
    client = Client(enforce_csrf_checks=True, HTTP_HOST=tenant.domain)  # no Origin, no Referer
    client.force_login(student)

    response = client.post("/challenges/cookie-jar/", {"flag": "FLAG{unknown}"})

    assert response.status_code == 403
    assert "FLAG{unknown}" not in response.content.decode()


def test_a_stale_log_out_button_offers_a_fresh_one(browser, student, password):
    log_in(browser, student, password)

    response = browser.post("/accounts/logout/", {"csrfmiddlewaretoken": "s" * 64})

    assert response.status_code == 403
    content = response.content.decode()
    assert "You were not logged out" in content
    assert "You are still logged in on this browser." in content
    fresh = re.search(
        r'<form class="actions" method="post" action="/accounts/logout/">\s*<input type="hidden" '
        r'name="csrfmiddlewaretoken" value="([^"]+)"',
        content,
    ).group(1)
    assert browser.post("/accounts/logout/", {"csrfmiddlewaretoken": fresh}).status_code == 302
    assert browser.get("/profile/").status_code == 302  # logged out


def test_a_missing_cookie_and_an_ended_session_keep_the_answer_through_the_login(tenant, student, password, challenge):
    """Both at once (cookies cleared): the CSRF page keeps the answer and its resend leads through the login."""
    client = Client(enforce_csrf_checks=True, HTTP_HOST=tenant.domain, HTTP_ORIGIN=f"http://{tenant.domain}")

    refused = client.post("/challenges/cookie-jar/", {"flag": FLAG, "csrfmiddlewaretoken": "s" * 64})

    assert refused.status_code == 403
    content = refused.content.decode()
    assert f'value="{FLAG}"' in content
    assert "You are signed out: you will sign in first, and your answer will be back in the form." in content
    assert "accepts cookies from this site" in content  # the cookie was missing
    assert client.session[drafts.SESSION_KEY] == {"/challenges/cookie-jar/": {"flag": FLAG}}
    assert settings.CSRF_COOKIE_NAME in refused.cookies  # the fresh token's cookie comes with the page

    resent = client.post(
        "/challenges/cookie-jar/", {"flag": FLAG, "csrfmiddlewaretoken": TOKEN.search(content).group(1)}
    )

    assert resent.status_code == 302
    assert resent["Location"] == "/accounts/login/?next=/challenges/cookie-jar/"
    log_in(client, student, password, next_path="/challenges/cookie-jar/")
    assert client.session[drafts.SESSION_KEY] == {"/challenges/cookie-jar/": {"flag": FLAG}}
    assert not Submission.objects.filter(user=student).exists()


# --- An answer sent after the session ended -------------------------------------------------------


def test_a_flag_sent_after_the_session_ended_is_kept_through_a_real_login(browser, student, password, challenge):
    log_in(browser, student, password)
    token = token_on(browser, "/challenges/cookie-jar/")
    end_session(browser)

    response = browser.post("/challenges/cookie-jar/", {"flag": FLAG, "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/challenges/cookie-jar/"
    login_page = browser.get(response["Location"]).content.decode()
    assert KEPT in login_page
    assert 'name="next" value="/challenges/cookie-jar/"' in login_page

    after = log_in(browser, student, password, next_path="/challenges/cookie-jar/")

    assert after["Location"] == "/challenges/cookie-jar/"
    assert browser.session[drafts.SESSION_KEY] == {"/challenges/cookie-jar/": {"flag": FLAG}}
    assert not Submission.objects.filter(user=student).exists()  # shown back, never sent unasked


def test_a_write_up_sent_after_the_session_ended_keeps_only_its_answer_fields(browser, student, password, essay):
    log_in(browser, student, password)
    token = token_on(browser, "/challenges/memory-lane/")
    end_session(browser)
    long = "w" * (drafts.MAX_CHARS + 500)

    response = browser.post(
        "/challenges/memory-lane/",
        {
            "writeup": long,
            "link": "gist.github.com/x",
            "password": "never",
            "role": "ADMIN",
            "csrfmiddlewaretoken": token,
        },
    )

    assert response.status_code == 302
    kept = browser.session[drafts.SESSION_KEY]["/challenges/memory-lane/"]
    assert kept == {"writeup": "w" * drafts.MAX_CHARS, "link": "gist.github.com/x"}


def test_a_post_without_an_answer_is_left_to_the_login_redirect(browser, student, password, challenge):
    log_in(browser, student, password)
    token = token_on(browser, "/challenges/cookie-jar/")
    end_session(browser)

    response = browser.post("/challenges/cookie-jar/", {"csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert drafts.SESSION_KEY not in browser.session
    assert KEPT not in browser.get(response["Location"]).content.decode()


def test_a_signed_out_log_out_says_nothing_about_answers(browser):
    token = token_on(browser, "/accounts/login/")

    response = browser.post("/accounts/logout/", {"flag": "FLAG{x}", "csrfmiddlewaretoken": token})

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert drafts.SESSION_KEY not in browser.session


# --- next= stays on the site --------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/", "/\\evil.example/", "http://alpha.localhost.evil.example/"],
)
def test_the_login_never_sends_a_student_to_another_site(browser, student, password, target):
    response = log_in(browser, student, password, next_path=target)

    assert response["Location"] == "/"


def test_the_login_page_never_links_its_next_to_another_site(browser):
    content = browser.get("/accounts/login/?next=//evil.example/").content.decode()

    # the hidden field carries it back to the login view, which refuses it (above); no link leads there
    assert 'href="//evil.example/' not in content


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("/challenges/x/?a=1", "/challenges/x/?a=1"),
        ("http://alpha.localhost/challenges/x/", None),
        ("//evil.example/", None),
        ("/\\evil.example/", None),
        ("https://evil.example//evil.example/", None),
        ("challenges/x/", None),
    ],
)
def test_local_path_keeps_only_addresses_on_this_site(url, local):
    assert local_path(url) == local


# --- Drafts -------------------------------------------------------------------------------------


def test_drafts_are_kept_for_a_few_pages_at_most_and_taken_once(rf):
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    request = rf.post("/challenges/a/")
    request.session = SessionStore()
    for n in range(drafts.MAX_DRAFTS + 2):
        assert drafts.keep(request, {"flag": f"FLAG{{{n}}}"}, path=f"/challenges/{n}/")
    assert not drafts.keep(request, {"password": "x", "csrfmiddlewaretoken": "t"})
    assert not drafts.keep(request, {"flag": "x"}, path="/" + "a" * drafts.MAX_PATH_CHARS)

    kept = request.session[drafts.SESSION_KEY]
    assert list(kept) == [f"/challenges/{n}/" for n in range(2, drafts.MAX_DRAFTS + 2)]
    assert drafts.take(request, path="/challenges/2/") == {"flag": "FLAG{2}"}
    assert drafts.take(request, path="/challenges/2/") == {}
    assert drafts.take(request, path="/challenges/0/") == {}


def test_only_a_form_of_answer_fields_is_an_answer_form():
    assert drafts.is_answer_form({"flag": "x", "csrfmiddlewaretoken": "t"})
    assert drafts.is_answer_form({"writeup": "x", "link": ""})
    assert not drafts.is_answer_form({"csrfmiddlewaretoken": "t"})
    assert not drafts.is_answer_form({"flag": "x", "password": "y"})
    assert not drafts.is_answer_form({"new_password1": "y"})
