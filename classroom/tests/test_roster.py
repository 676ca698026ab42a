"""The class roster (classroom.admin.RosterAdmin): each person's standing, progress and page.

Instructors read it (no add, no change, no import); tenant admins also edit. Another
tenant's people never appear, and their pages are a 404.
"""

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from challenges.factories import ProjectFactory
from classroom.roster import ATTEMPTS_SHOWN
from scoring import leaderboard, services
from scoring.factories import BadgeFactory, SubmissionFactory
from scoring.models import Submission
from tenants.factories import InstructorFactory, StudentFactory
from tenants.models import User

pytestmark = pytest.mark.usefixtures("fast_hashing")

ROSTER = "/admin/tenants/user/"
# list_display's columns, as ?o= numbers them (no selection box: the roster has no actions)
NAME, EMAIL, ROLE, POINTS, RANK, SOLVES, PENDING, LAST_ACTIVITY, ACTIVE = range(9)


@pytest.fixture
def tenant(tenant):
    tenant.time_zone = "Europe/Paris"
    tenant.save()
    return tenant


@pytest.fixture
def klass(tenant, other_tenant, instructor):
    """Ada (two flags: 150 points, rank 1), Bob (one flag: 100, rank 2, a write-up waiting),
    Cy (nothing yet, logged in once), Dee (inactive, nothing) and a student of another tenant."""
    flag_a = ProjectFactory(tenant=tenant, name="Cookie Monster", flag="FLAG{a}", points=100)
    flag_b = ProjectFactory(tenant=tenant, name="Buffer Basics", flag="FLAG{b}", points=50)
    report = ProjectFactory(tenant=tenant, name="Report the XSS", points=80)
    ada = StudentFactory(tenant=tenant, first_name="Ada", last_name="Lovelace", email="ada@alpha.test")
    bob = StudentFactory(tenant=tenant, first_name="Bob", last_name="Babbage", email="bob@alpha.test")
    cy = StudentFactory(
        tenant=tenant,
        first_name="Cy",
        last_name="Curie",
        email="cy@alpha.test",
        last_login=datetime(2025, 3, 2, 13, 5, tzinfo=UTC),
    )
    dee = StudentFactory(tenant=tenant, first_name="Dee", last_name="Dijkstra", email="dee@alpha.test", is_active=False)
    services.submission_create(user=ada, project=flag_a, flag="FLAG{a}")
    services.submission_create(user=ada, project=flag_b, flag="FLAG{b}")
    services.submission_create(user=bob, project=flag_b, flag="nope")
    services.submission_create(user=bob, project=flag_a, flag="FLAG{a}")
    waiting = services.submission_create(user=bob, project=report, writeup="I found the reflected XSS.")
    theirs = StudentFactory(tenant=other_tenant, first_name="Olga", last_name="Other", email="olga@beta.test")
    return {"ada": ada, "bob": bob, "cy": cy, "dee": dee, "theirs": theirs, "waiting": waiting, "report": report}


STUDENTS = {"ada@alpha.test", "bob@alpha.test", "cy@alpha.test", "dee@alpha.test"}


def rows(response):
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


def emails(response):
    return [user.email for user in rows(response)]


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html.replace("<wbr>", ""))).split())


# --- what the roster shows ------------------------------------------------------------


def test_an_instructor_reads_each_persons_points_rank_solves_and_waiting_write_ups(
    klass, tenant, instructor, client_for
):
    response = client_for(tenant, instructor).get(ROSTER)

    by_email = {user.email: user for user in rows(response)}
    assert "olga@beta.test" not in by_email
    standing = {
        email: (u.roster_points, u.roster_rank, u.roster_solves, u.roster_pending)
        for email, u in by_email.items()
        if email in ("ada@alpha.test", "bob@alpha.test", "cy@alpha.test")
    }
    assert standing == {
        "ada@alpha.test": (150, 1, 2, 0),
        "bob@alpha.test": (100, 2, 1, 1),
        "cy@alpha.test": (0, None, 0, 0),
    }
    html = response.content.decode()
    row = text(re.search(r"<tr[^>]*>(?:(?!</tr>).)*Bob Babbage.*?</tr>", html, re.S).group(0))
    assert row.startswith("Bob Babbage bob@alpha.test Student 100 2 1 1 ")
    # the waiting write-up links to the grading queue filtered to the student (by id: an e-mail
    # search would also find jobob@…), and that list holds exactly their waiting write-up
    link = f"/admin/scoring/submission/?status__exact=PENDING&user__id__exact={klass['bob'].pk}"
    assert f'href="{link.replace("&", "&amp;")}"' in html
    jobob = StudentFactory(tenant=tenant, email="jobob@alpha.test")  # an e-mail that contains bob's
    services.submission_create(user=jobob, project=klass["report"], writeup="Mine is stored.")
    assert [s.pk for s in rows(client_for(tenant, instructor).get(link))] == [klass["waiting"].pk]


def test_last_activity_is_the_last_submission_or_else_the_last_login_in_the_class_time(
    klass, tenant, instructor, client_for
):
    Submission.objects.filter(user=klass["bob"]).update(submitted_at=datetime(2025, 1, 10, 8, 30, tzinfo=UTC))

    by_email = {u.email: u for u in rows(client_for(tenant, instructor).get(ROSTER))}

    assert by_email["bob@alpha.test"].roster_last_activity == datetime(2025, 1, 10, 8, 30, tzinfo=UTC)
    assert by_email["cy@alpha.test"].roster_last_activity == datetime(2025, 3, 2, 13, 5, tzinfo=UTC)
    assert by_email["dee@alpha.test"].roster_last_activity is None
    html = text(client_for(tenant, instructor).get(ROSTER).content.decode())
    assert "2025-01-10 09:30" in html  # Paris, winter: UTC+1
    assert "2025-03-02 14:05" in html
    assert "never" in html


def test_an_instructor_gets_no_add_no_import_and_no_actions(klass, tenant, instructor, client_for):
    response = client_for(tenant, instructor).get(ROSTER)
    html = response.content.decode()

    assert f'href="{ROSTER}add/"' not in html
    assert f"{ROSTER}import/" not in html
    assert 'name="_selected_action"' not in html and 'name="action"' not in html
    assert f'href="{ROSTER}export/' in html  # exporting is reading
    assert "Download the gradebook (CSV)" in html
    assert client_for(tenant, instructor).get(f"{ROSTER}add/").status_code == 403
    assert client_for(tenant, instructor).get(f"{ROSTER}import/").status_code == 403


def test_an_instructor_cannot_change_a_student(klass, tenant, instructor, client_for):
    client = client_for(tenant, instructor)
    ada = klass["ada"]

    page = client.get(f"{ROSTER}{ada.pk}/change/")
    refused = client.post(f"{ROSTER}{ada.pk}/change/", {"email": ada.email, "first_name": "Eve", "role": "ADMIN"})

    assert page.status_code == 200 and b'name="first_name"' not in page.content
    assert refused.status_code == 403
    ada.refresh_from_db()
    assert (ada.first_name, ada.role) == ("Ada", User.Role.STUDENT)


def test_a_tenant_admin_adds_imports_and_edits(klass, tenant, tenant_admin, client_for):
    client = client_for(tenant, tenant_admin)
    html = client.get(ROSTER).content.decode()
    ada = klass["ada"]

    assert f'href="{ROSTER}add/"' in html and f"href='{ROSTER}import/'" in html
    assert "Download the gradebook (CSV)" in html
    changed = client.post(
        f"{ROSTER}{ada.pk}/change/",
        {"email": ada.email, "first_name": "Augusta Ada", "last_name": "King", "role": "STUDENT", "is_active": "on"},
    )
    assert changed.status_code == 302, changed.content.decode()[:2000]
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name) == ("Augusta Ada", "King")


# --- search, filters, sorting ---------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "found"),
    [("Lovelace", ["ada@alpha.test"]), ("bob@alpha", ["bob@alpha.test"]), ("Cy Curie", ["cy@alpha.test"])],
)
def test_search_by_name_or_email(term, found, klass, tenant, instructor, client_for):
    assert emails(client_for(tenant, instructor).get(ROSTER, {"q": term})) == found


def test_another_tenants_student_is_never_found(klass, tenant, instructor, client_for):
    assert emails(client_for(tenant, instructor).get(ROSTER, {"q": "olga"})) == []


@pytest.mark.parametrize(
    ("query", "listed"),
    [
        ({"progress": "not_started"}, ["cy@alpha.test", "dee@alpha.test"]),  # students only: staff are no class
        ({"progress": "not_started", "is_active__exact": "1"}, ["cy@alpha.test"]),
        ({"progress": "pending"}, ["bob@alpha.test"]),
        ({"role__exact": "INSTRUCTOR"}, ["instructor@alpha.test"]),
        ({"is_active__exact": "0"}, ["dee@alpha.test"]),
    ],
)
def test_filters(query, listed, klass, tenant, instructor, client_for):
    assert sorted(emails(client_for(tenant, instructor).get(ROSTER, query))) == listed


@pytest.mark.parametrize("value", ["started", "%00", "1' OR 1=1"])
def test_an_unknown_progress_is_the_invalid_filter_page_not_a_500(value, klass, tenant, instructor, client_for):
    response = client_for(tenant, instructor).get(ROSTER, {"progress": value})

    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert response["Location"].endswith("?e=1")
    else:
        assert response.context["cl"] is not None


def test_the_progress_filter_is_offered_in_words(klass, tenant, instructor, client_for):
    html = client_for(tenant, instructor).get(ROSTER).content.decode()

    assert 'href="?progress=not_started"' in html and "Students who have not started" in html
    assert 'href="?progress=pending"' in html and "Write-ups waiting for a grade" in html


@pytest.mark.parametrize(
    ("order", "first"),
    [
        (f"-{POINTS}", ["ada@alpha.test", "bob@alpha.test"]),
        (f"{POINTS}", ["admin@alpha.test", "cy@alpha.test", "dee@alpha.test", "instructor@alpha.test"]),
        (f"{RANK}", ["ada@alpha.test", "bob@alpha.test"]),
        # the instructor's last login is the test client's, just now
        (f"-{LAST_ACTIVITY}", ["instructor@alpha.test", "bob@alpha.test", "ada@alpha.test", "cy@alpha.test"]),
        (f"{NAME}", ["bob@alpha.test", "cy@alpha.test", "dee@alpha.test", "ada@alpha.test"]),  # by last name
    ],
)
def test_sorting(order, first, klass, tenant, instructor, tenant_admin, client_for):
    Submission.objects.filter(user=klass["ada"]).update(submitted_at=timezone.now() - timedelta(hours=2))
    Submission.objects.filter(user=klass["bob"]).update(submitted_at=timezone.now() - timedelta(hours=1))
    listed = emails(client_for(tenant, instructor).get(ROSTER, {"o": order}))

    if order == str(NAME):  # the staff have names of their own
        listed = [email for email in listed if email in STUDENTS]
    if order == str(POINTS):  # the people with 0 points first, in any order, then Bob, Ada
        assert sorted(listed[:4]) == first and listed[-2:] == ["bob@alpha.test", "ada@alpha.test"]
    else:
        assert listed[: len(first)] == first
    if order == str(RANK):  # the unranked last
        assert {u.roster_rank for u in rows(client_for(tenant, instructor).get(ROSTER, {"o": order}))[2:]} == {None}
    if order == f"-{LAST_ACTIVITY}":  # who never did anything, last
        assert listed[-1] in ("dee@alpha.test", "admin@alpha.test", "instructor@alpha.test")


# --- a student's page -------------------------------------------------------------------


def test_a_students_page_lists_their_attempts_badges_points_and_rank(klass, tenant, instructor, client_for):
    bob = klass["bob"]
    badge = BadgeFactory(tenant=tenant, name="Night Owl")
    services.badge_award(badge=badge, user=bob, actor=instructor)
    Submission.objects.filter(pk=klass["waiting"].pk).update(submitted_at=datetime(2025, 7, 1, 22, 15, tzinfo=UTC))

    response = client_for(tenant, instructor).get(f"{ROSTER}{bob.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    standing = text(re.search(r'<section[^>]*id="standing".*?</section>', html, re.S).group(0))
    assert standing == "Standing Points 100 Rank 2 Solves 1 Write-ups waiting 1 Last activity " + text(
        re.search(r'id="standing".*?Last activity</dt><dd>(.*?)</dd>', html, re.S).group(1)
    )
    attempts = re.search(r'<section[^>]*id="attempts".*?</section>', html, re.S).group(0)
    body = re.findall(r"<tr>(.*?)</tr>", attempts.split("<tbody>")[1], re.S)
    assert [text(row).split(" ", 2)[2] for row in body[:2]] == [  # newest first
        "Cookie Monster Flag Right flag 100/100 100 checked automatically",
        "Buffer Basics Flag Wrong flag 0/100 0 checked automatically",
    ]
    # the write-up, sent last summer: in Paris time (UTC+2), waiting, linked to its grading page
    assert text(body[2]).startswith("2025-07-02 00:15 Report the XSS Write-up Waiting for a grade — 0 Grade it")
    assert f'href="/admin/scoring/submission/{klass["waiting"].pk}/change/"' in attempts
    badges = text(re.search(r'<section[^>]*id="badges".*?</section>', html, re.S).group(0))
    assert "Night Owl" in badges and "awarded by hand" in badges


def test_a_student_without_attempts_has_a_page_that_says_so(klass, tenant, instructor, client_for):
    html = text(client_for(tenant, instructor).get(f"{ROSTER}{klass['cy'].pk}/change/").content.decode())

    assert "Points 0 Rank not ranked yet Solves 0" in html
    assert "No attempt yet." in html and "No badge yet." in html


def test_a_students_page_shows_their_latest_attempts_only(klass, tenant, instructor, client_for):
    cy = klass["cy"]
    report = klass["report"]
    SubmissionFactory.create_batch(
        ATTEMPTS_SHOWN + 5, tenant=tenant, user=cy, project=report, rejected=True, answer="try"
    )

    html = client_for(tenant, instructor).get(f"{ROSTER}{cy.pk}/change/").content.decode()

    attempts = re.search(r'<section[^>]*id="attempts".*?</section>', html, re.S).group(0)
    assert attempts.count("<tr>") == ATTEMPTS_SHOWN + 1  # the header's row and the latest hundred
    assert f"The {ATTEMPTS_SHOWN} latest attempts" in attempts


@pytest.mark.parametrize("page", ["change", "history"])
def test_another_tenants_student_is_a_404(page, klass, tenant, instructor, client_for):
    assert client_for(tenant, instructor).get(f"{ROSTER}{klass['theirs'].pk}/{page}/").status_code == 404


def test_a_student_is_sent_to_the_login_page(klass, tenant, client_for):
    response = client_for(tenant, klass["ada"]).get(ROSTER)

    assert response.status_code == 302 and "/login/" in response["Location"]


# --- scale -------------------------------------------------------------------------------

# The tenant (entered from the host), session, user, permissions (the user's and the role
# group's), the capped count and the page of rows with their standing; plus SAVEPOINT and
# RELEASE, as the test's transaction wraps the request's. With Redis the session is read
# from the cache, one query fewer.
ROSTER_QUERIES = 7 - (django_settings.SESSION_ENGINE == "vulhub.sessions")


def add_class(tenant, projects, students: int, submissions_each: int):
    """`students` more students with `submissions_each` approved and pending submissions each, set-based."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH new AS (
                INSERT INTO users (tenant_id, email, first_name, last_name, role, is_active, is_superuser,
                                   password, date_joined)
                SELECT %(tenant)s, 'bulk' || i || '@alpha.test', 'Bulk', 'Student ' || i, 'STUDENT', true, false,
                       '!', now()
                FROM generate_series(1, %(students)s) AS i
                RETURNING id
            )
            INSERT INTO submissions (tenant_id, user_id, project_id, kind, status, score, points_awarded,
                                     answer, link, feedback, submitted_at)
            SELECT %(tenant)s, new.id, (%(projects)s::bigint[])[1 + j %% cardinality(%(projects)s::bigint[])],
                   'WRITEUP', CASE WHEN j = 0 THEN 'APPROVED' ELSE 'PENDING' END, CASE WHEN j = 0 THEN 100 END,
                   CASE WHEN j = 0 THEN 10 ELSE 0 END, 'bulk', '', '', now() - make_interval(mins => j)
            FROM new, generate_series(0, %(each)s - 1) AS j
            """,
            {
                "tenant": tenant.pk,
                "students": students,
                "each": submissions_each,
                "projects": [p.pk for p in projects],
            },
        )
    leaderboard.rebuild(tenant.pk)


def page_queries(client, query=""):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"{ROSTER}{query}")
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")], response


@pytest.mark.parametrize(
    "query", ["", f"?o=-{POINTS}", f"?o=-{LAST_ACTIVITY}", "?progress=not_started", "?progress=pending&q=bulk"]
)
def test_the_roster_opens_in_the_same_queries_at_any_size(query, klass, tenant, instructor, client_for):
    client = client_for(tenant, instructor)
    projects = [klass["report"]]
    client.get(ROSTER)  # warm the content type cache

    small, small_page = page_queries(client, query)
    add_class(tenant, projects, students=120, submissions_each=3)
    big, big_page = page_queries(client, query)

    assert len(small) == len(big) <= 10, "\n".join(big)
    assert len(big) == ROSTER_QUERIES + 2, "\n".join(big)  # + the test's SAVEPOINT and RELEASE
    if query in ("", f"?o=-{POINTS}"):
        assert len(big_page.context["cl"].result_list) == 50
    assert len(small_page.context["cl"].result_list) < 50


def test_the_page_of_rows_is_one_query_with_the_standing(klass, tenant, instructor, client_for):
    client = client_for(tenant, instructor)
    client.get(ROSTER)

    queries, _ = page_queries(client)

    rows_query = [q for q in queries if q.startswith('SELECT "users"."id"') and "roster_points" in q]
    assert len(rows_query) == 1, queries
    assert '"leaderboards"' in rows_query[0] and '"submissions"' in rows_query[0]


def test_a_class_of_staff_only_has_a_roster(tenant, client_for):
    """No student, no leaderboard row at all: the roster still opens."""
    lone = InstructorFactory(tenant=tenant, email="lone@alpha.test")

    assert emails(client_for(tenant, lone).get(ROSTER)) == ["lone@alpha.test"]
