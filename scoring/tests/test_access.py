"""Time windows, the tenant's event, its time zone and prerequisites, as a student meets them.

Hidden before a challenge opens (404 for its page and files), read-only after it closes
(no form, answers refused with a 403, nothing saved), nothing before the event starts,
read-only after it ends; locked until its prerequisites are solved, with links to them.
Times are written in the tenant's zone.
"""

import zoneinfo
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from challenges.factories import ProjectFactory
from challenges.models import ChallengeFile, Prerequisite
from scoring import access, services
from scoring.factories import SubmissionFactory
from scoring.models import Submission
from tenants.factories import StudentFactory

pytestmark = pytest.mark.usefixtures("fast_hashing")

FLAG = "FLAG{windows}"
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)  # a countdown counts whole units: tests set times half a unit past one


@pytest.fixture
def client(tenant, student, client_for):
    return client_for(tenant, student)


def challenge(tenant, slug, **fields):
    return ProjectFactory(tenant=tenant, slug=slug, name=slug.replace("-", " ").title(), flag=FLAG, **fields)


def require(project, *required):
    for other in required:
        Prerequisite.objects.create(tenant=project.tenant, project=project, required=other)


def local(moment, zone):
    return timezone.localtime(moment, zoneinfo.ZoneInfo(zone))


# --- Before a challenge opens: hidden everywhere --------------------------------------------


def test_a_challenge_that_opens_later_is_hidden_and_counted(client, tenant):
    challenge(tenant, "open-now")
    later = challenge(
        tenant, "opens-later", opens_at=timezone.now() + 2 * 24 * HOUR + 90 * MINUTE, category="Secret Category"
    )

    response = client.get("/challenges/")
    content = response.content.decode()

    assert [e.slug for e in response.context["page"].object_list] == ["open-now"]
    assert "Opens Later" not in content
    assert "Secret Category" not in content  # not even its category in the filter
    assert "1 more opens later: the next in 2 days and 1 hour, on " in content
    assert client.get(f"/challenges/{later.slug}/").status_code == 404


def test_the_files_of_a_challenge_that_opens_later_are_a_404(client, tenant):
    later = challenge(tenant, "opens-later", opens_at=timezone.now() + HOUR)
    attachment = ChallengeFile(tenant=tenant, project=later, name="memory.img", size=4, sha256="0" * 64)
    attachment.file.save("memory.img", ContentFile(b"data"), save=False)
    attachment.save()

    assert client.get(f"/challenges/opens-later/files/{attachment.pk}/").status_code == 404

    later.opens_at = timezone.now() - HOUR
    later.save()
    response = client.get(f"/challenges/opens-later/files/{attachment.pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"data"


def test_the_service_refuses_a_challenge_before_it_opens(student, tenant):
    later = challenge(tenant, "opens-later", opens_at=timezone.now() + HOUR)

    with pytest.raises(services.NotAllowed):
        services.submission_create(user=student, project=later, flag=FLAG)
    assert not Submission.objects.exists()


def test_a_challenge_opens_at_its_time(client, tenant):
    challenge(tenant, "just-opened", opens_at=timezone.now() - timedelta(seconds=1))

    assert client.get("/challenges/just-opened/").status_code == 200


# --- After it closes: read-only -------------------------------------------------------------


def test_a_closed_challenge_is_read_only_with_the_date_in_the_tenants_zone(client, tenant):
    tenant.time_zone = "Asia/Tokyo"
    tenant.save()
    closed_at = timezone.now() - 3 * HOUR
    challenge(tenant, "closed-lab", closes_at=closed_at, description="Read **me**")
    shown = local(closed_at, "Asia/Tokyo")

    response = client.get("/challenges/closed-lab/")
    content = response.content.decode()

    assert response.status_code == 200
    assert f"Closed on {shown.day} {shown:%b %Y} at {shown:%H:%M} JST" in content
    assert "<strong>me</strong>" in content  # still readable
    assert 'name="flag"' not in content  # no answer form
    catalogue = client.get("/challenges/").content.decode()
    assert "Closed on" in catalogue and "Closed Lab" in catalogue


def test_an_answer_to_a_closed_challenge_is_refused_with_a_403_and_nothing_saved(client, tenant, student):
    closed = challenge(tenant, "closed-lab", closes_at=timezone.now() - HOUR)

    response = client.post("/challenges/closed-lab/", {"flag": FLAG})

    assert response.status_code == 403
    assert "this challenge no longer takes answers" in response.content.decode()
    assert not Submission.objects.exists()
    with pytest.raises(services.NotAllowed, match="no longer takes answers"):
        services.submission_create(user=student, project=closed, flag=FLAG)
    assert not Submission.objects.exists()


def test_an_open_challenge_counts_down_to_its_close_in_plain_text(client, tenant):
    tenant.time_zone = "Asia/Tokyo"
    tenant.save()
    closes_at = timezone.now() + 3 * HOUR + timedelta(seconds=30)
    challenge(tenant, "closing-lab", closes_at=closes_at)
    shown = local(closes_at, "Asia/Tokyo")

    content = client.get("/challenges/closing-lab/").content.decode()

    assert f"Closes in 3 hours, on {shown.day} {shown:%b %Y} at {shown:%H:%M} JST." in content
    assert 'name="flag"' in content
    assert "Closes in 3 hours" in client.get("/challenges/").content.decode()


def test_countdowns_say_the_largest_unit():
    now = timezone.now()

    assert access.countdown(now + timedelta(days=2, minutes=5), now) == "2 days"
    assert access.countdown(now + timedelta(days=1, hours=23, minutes=59), now) == "1 day and 23 hours"
    assert access.countdown(now + timedelta(hours=1, minutes=1), now) == "1 hour and 1 minute"
    assert access.countdown(now + timedelta(minutes=2, seconds=30), now) == "2 minutes"
    assert access.countdown(now + timedelta(seconds=20), now) == "less than a minute"


# --- The tenant's event window ---------------------------------------------------------------


def test_before_the_event_starts_students_see_no_challenge_and_no_answer_is_taken(client, tenant, student):
    tenant.time_zone = "Asia/Tokyo"
    tenant.event_starts_at = timezone.now() + 2 * 24 * HOUR + 90 * MINUTE
    tenant.save()
    project = challenge(tenant, "day-one")
    shown = local(tenant.event_starts_at, "Asia/Tokyo")

    response = client.get("/challenges/")
    content = response.content.decode()

    assert list(response.context["page"].object_list) == []
    assert f"The event starts in 2 days and 1 hour, on {shown.day} {shown:%b %Y} at {shown:%H:%M} JST" in content
    assert "Day One" not in content
    assert client.get("/challenges/day-one/").status_code == 404
    assert client.post("/challenges/day-one/", {"flag": FLAG}).status_code == 404
    assert "The event starts in 2 days and 1 hour" in client.get("/").content.decode()
    with pytest.raises(services.NotAllowed):
        services.submission_create(user=student, project=project, flag=FLAG)
    assert not Submission.objects.exists()


def test_after_the_event_ends_challenges_are_read_only(client, tenant, student):
    tenant.event_starts_at = timezone.now() - 48 * HOUR
    tenant.event_ends_at = timezone.now() - HOUR
    tenant.save()
    project = challenge(tenant, "last-lab")

    catalogue = client.get("/challenges/").content.decode()
    page = client.get("/challenges/last-lab/")
    refused = client.post("/challenges/last-lab/", {"flag": FLAG})

    assert "The event ended on" in catalogue and "Last Lab" in catalogue
    assert page.status_code == 200 and 'name="flag"' not in page.content.decode()
    assert "The event ended on" in page.content.decode()
    assert refused.status_code == 403
    with pytest.raises(services.NotAllowed, match="The event ended"):
        services.submission_create(user=student, project=project, flag=FLAG)
    assert not Submission.objects.exists()


def test_during_the_event_its_end_is_counted_down_and_answers_are_taken(client, tenant, student):
    tenant.event_starts_at = timezone.now() - HOUR
    tenant.event_ends_at = timezone.now() + 5 * HOUR + timedelta(minutes=1)
    tenant.save()
    challenge(tenant, "live-lab")

    assert "The event ends in 5 hours" in client.get("/challenges/").content.decode()
    assert client.post("/challenges/live-lab/", {"flag": FLAG}).status_code == 302
    assert Submission.objects.get(user=student).status == Submission.Status.APPROVED


# --- Prerequisites --------------------------------------------------------------------------


def test_a_locked_challenge_says_what_unlocks_it_with_links(client, tenant):
    basics, cookies = challenge(tenant, "sql-basics"), challenge(tenant, "cookie-jar")
    advanced = challenge(tenant, "sql-advanced", description="The secret plan", points=300)
    require(advanced, basics, cookies)

    response = client.get("/challenges/sql-advanced/")
    content = response.content.decode()

    assert response.status_code == 200
    assert response.context["access"].locked_by == (
        access.Requirement("Cookie Jar", "cookie-jar"),
        access.Requirement("Sql Basics", "sql-basics"),
    )
    assert 'Locked: solve <a href="/challenges/cookie-jar/">Cookie Jar</a> and ' in content
    assert '<a href="/challenges/sql-basics/">Sql Basics</a> first.' in content
    assert "300" in content and "Sql Advanced" in content  # name, points: shown
    assert "The secret plan" not in content  # description: not
    assert 'name="flag"' not in content
    card = client.get("/challenges/").content.decode()
    assert 'Locked: solve <a href="/challenges/cookie-jar/">Cookie Jar</a>' in card
    assert "The secret plan" not in card


def test_an_answer_to_a_locked_challenge_is_refused_until_its_prerequisites_are_solved(client, tenant, student):
    basics, advanced = challenge(tenant, "sql-basics"), challenge(tenant, "sql-advanced")
    require(advanced, basics)

    response = client.post("/challenges/sql-advanced/", {"flag": FLAG})

    assert response.status_code == 403
    assert "This challenge is locked: solve Sql Basics first." in response.content.decode()
    with pytest.raises(services.NotAllowed, match="locked: solve Sql Basics first"):
        services.submission_create(user=student, project=advanced, flag=FLAG)
    assert not Submission.objects.exists()

    assert client.post("/challenges/sql-basics/", {"flag": FLAG}).status_code == 302
    assert client.post("/challenges/sql-advanced/", {"flag": FLAG}).status_code == 302
    assert Submission.objects.filter(user=student, status="APPROVED").count() == 2


def test_a_partial_grade_does_not_unlock(client, tenant, student, instructor):
    essay = ProjectFactory(tenant=tenant, slug="essay", name="Essay")
    advanced = challenge(tenant, "advanced")
    require(advanced, essay)
    submission = services.submission_create(user=student, project=essay, writeup="my steps")
    services.submission_grade(submission=submission, status="APPROVED", score=60, grader=instructor)

    assert client.get("/challenges/advanced/").context["access"].locked

    second = services.submission_create(user=student, project=essay, writeup="better steps")
    services.submission_grade(submission=second, status="APPROVED", score=100, grader=instructor)

    assert not client.get("/challenges/advanced/").context["access"].locked


def test_an_unpublished_prerequisite_locks_nothing_and_one_that_opens_later_is_not_named(client, tenant):
    draft = challenge(tenant, "draft", is_published=False)
    future = challenge(tenant, "future-lab", opens_at=timezone.now() + HOUR)
    first, second = challenge(tenant, "first"), challenge(tenant, "second")
    require(first, draft)
    require(second, future)

    assert not client.get("/challenges/first/").context["access"].locked
    content = client.get("/challenges/second/").content.decode()
    assert "Locked: solve a challenge that opens later first." in content
    assert "Future Lab" not in content and "future-lab" not in content


def test_the_files_of_a_locked_challenge_are_a_404(client, tenant):
    basics, advanced = challenge(tenant, "sql-basics"), challenge(tenant, "sql-advanced")
    require(advanced, basics)
    attachment = ChallengeFile(tenant=tenant, project=advanced, name="dump.sql", size=4, sha256="0" * 64)
    attachment.file.save("dump.sql", ContentFile(b"data"), save=False)
    attachment.save()

    assert client.get(f"/challenges/sql-advanced/files/{attachment.pk}/").status_code == 404


def test_another_students_solve_unlocks_nothing_for_me(client, tenant):
    basics, advanced = challenge(tenant, "sql-basics"), challenge(tenant, "sql-advanced")
    require(advanced, basics)
    services.submission_create(user=StudentFactory(tenant=tenant), project=basics, flag=FLAG)

    assert client.get("/challenges/sql-advanced/").context["access"].locked


# --- Query counts ---------------------------------------------------------------------------


def count_queries(client, path):
    from django.core.cache import cache

    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


@pytest.mark.parametrize("path", ["/challenges/", "/challenges/target/", "/"])
def test_windows_and_prerequisites_cost_no_query_per_challenge(path, client, tenant, student):
    target = challenge(tenant, "target")
    small = count_queries(client, path)
    for n in range(12):
        other = challenge(
            tenant,
            f"lab-{n}",
            opens_at=timezone.now() + HOUR if n % 3 == 0 else None,
            closes_at=timezone.now() + HOUR if n % 3 == 1 else None,
        )
        require(other, target)  # locked for the student: the catalogue says why, with links
        SubmissionFactory(tenant=tenant, project=other, approved=True, points_awarded=100)

    assert count_queries(client, path) == small


def test_a_locked_challenges_page_costs_no_more_than_an_open_one(client, tenant):
    challenge(tenant, "open-lab")
    locked = challenge(tenant, "locked-lab")
    for n in range(5):
        require(locked, challenge(tenant, f"step-{n}"))

    assert count_queries(client, "/challenges/locked-lab/") <= count_queries(client, "/challenges/open-lab/")


def test_a_search_does_not_read_a_locked_challenges_description(tenant, student, client_for):
    """The page hides a locked challenge's description; the catalogue's search must not match it either."""
    first = ProjectFactory(tenant=tenant, name="Warm Up", slug="warm-up", flag="FLAG{w}")
    locked = ProjectFactory(tenant=tenant, name="Vault", slug="vault", description="the flag is FLAG{secret_bits}")
    Prerequisite.objects.create(tenant=tenant, project=locked, required=first)
    client = client_for(tenant, student)

    assert "Vault" not in client.get("/challenges/", {"q": "secret_bits"}).content.decode()
    assert "Vault" in client.get("/challenges/", {"q": "vau"}).content.decode()
