"""Challenge content in a real browser (issue 26): files, hints, time windows, the freeze, prerequisites,
dynamic scoring, and the instructor's inline files and hints.

Data is set up through the services and models, as a class would have it; the browser
does what each test is about. Every page state is scanned with axe-core (no serious or
critical violation), must fit a 390 px phone without scrolling sideways, and is saved as
a screenshot at desktop (1366 px) and phone (390 px) widths into docs/screenshots/.

The class is in Asia/Kolkata (IST, UTC+05:30, no summer time): a time shown in UTC or
in the server's zone instead of the tenant's would not match.
"""

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.files.base import ContentFile
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from playwright.sync_api import expect

from challenges import files, prerequisites
from challenges.factories import ProjectFactory
from challenges.models import ChallengeFile, Hint, Project
from challenges.tests.attachments import attachments_in, stored_objects
from scoring import services
from tenants.factories import StudentFactory
from tenants.models import Tenant

from .pages import (
    PASSWORD,
    add_inline_file_and_hint,
    admin_log_in,
    alpha_academy,
    base_url,
    check_page,
    instructor_ines,
    log_in,
    open_page,
)

ZONE = ZoneInfo("Asia/Kolkata")
# a small capture, as the packet-capture challenge ships: bytes that are not text
CAPTURE = bytes(range(256)) * 12 + b"FLAG{in_the_packets}\n"
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def storage(tmp_path):
    """Challenge files in a folder of the test's own (the live server runs in this process)."""
    with attachments_in(tmp_path / "attachments") as storage:
        yield storage


@pytest.fixture
def school(live_server, settings, storage):
    alpha = alpha_academy(settings, time_zone="Asia/Kolkata")
    return {
        "base": base_url(live_server),
        "tenant": alpha,
        "sam": StudentFactory(
            tenant=alpha, email="sam@alpha.test", first_name="Sam", last_name="Student", password=PASSWORD
        ),
        "rita": StudentFactory(
            tenant=alpha, email="rita@alpha.test", first_name="Rita", last_name="Rival", password=PASSWORD
        ),
        "ines": instructor_ines(alpha),
    }


def challenge(tenant, **fields) -> Project:
    defaults = {"category": "Forensics", "difficulty": "BEGINNER", "points": 100, "description": "Find the flag."}
    return ProjectFactory(tenant=tenant, **{**defaults, **fields})


def local(moment) -> str:
    """A moment as the site should write it in the class's zone: "9 Dec 2026 at 19:30 IST"."""
    shown = moment.astimezone(ZONE)
    return f"{shown.day} {shown:%b %Y} at {shown:%H:%M} IST"


def submit_flag(page, flag):
    page.get_by_label("Flag").fill(flag)
    page.get_by_role("button", name="Submit flag").click()


def my_row(page):
    return page.locator("#me")


def row_of(page, name):
    return page.locator("tbody tr", has_text=name)


def expect_standing(row, *, points, rank=None, solves=None):
    """A leaderboard row's cells: rank, (the name,) points, solves."""
    if rank is not None:
        expect(row.locator("td").nth(0)).to_have_text(str(rank))
    expect(row.locator("td").nth(1)).to_have_text(str(points))
    if solves is not None:
        expect(row.locator("td").nth(2)).to_have_text(str(solves))


# --- Files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_student_sees_each_files_size_and_sha256_and_downloads_the_very_bytes(school, page_at, size):
    tenant = school["tenant"]
    project = challenge(tenant, name="Packet Trail", slug="packet-trail", category="Network Security", flag="FLAG{x}")
    capture = files.challenge_file_add(
        project=project, name="trail.pcap", content=ContentFile(CAPTURE, name="trail.pcap")
    )
    notes = b"Look at the third TCP stream.\n"
    files.challenge_file_add(project=project, name="notes.txt", content=ContentFile(notes, name="notes.txt"))
    page = open_page(page_at, size)
    base = school["base"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/packet-trail/")
    listing = page.locator("section", has=page.get_by_role("heading", name="Files"))
    entry = listing.locator("li", has_text="trail.pcap")
    expect(entry).to_contain_text(filesizeformat(len(CAPTURE)).replace("\xa0", " "))
    expect(entry).to_contain_text(hashlib.sha256(CAPTURE).hexdigest())
    expect(listing.locator("li", has_text="notes.txt")).to_contain_text(hashlib.sha256(notes).hexdigest())
    check_page(page, "challenge-files")

    with page.expect_download() as started:
        entry.get_by_role("link", name=re.compile("trail.pcap")).click()
    download = started.value
    assert download.suggested_filename == "trail.pcap"
    received = Path(download.path()).read_bytes()
    assert hashlib.sha256(received).hexdigest() == capture.sha256 == hashlib.sha256(CAPTURE).hexdigest()
    assert received == CAPTURE


# --- Hints ---------------------------------------------------------------------------------


def test_a_student_unlocks_a_free_and_a_costing_hint_and_the_cost_comes_off_their_points(school, page_at):
    tenant = school["tenant"]
    cookie = challenge(tenant, name="Cookie Jar", slug="cookie-jar", category="Web Security", flag="FLAG{cookie}")
    Hint.objects.create(tenant=tenant, project=cookie, position=1, cost=0, text="The cookie is **base64**.")
    Hint.objects.create(tenant=tenant, project=cookie, position=2, cost=30, text="Decode it and read `role`.")
    # worth less than its hint costs: it counts 0 for the student, never less
    tiny = challenge(tenant, name="Tiny Crack", slug="tiny-crack", category="Cryptography", points=20, flag="FLAG{t}")
    Hint.objects.create(tenant=tenant, project=tiny, position=1, cost=50, text="It is ROT13.")
    page = open_page(page_at, "phone")
    base = school["base"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/cookie-jar/")
    hints = page.locator("section", has=page.get_by_role("heading", name="Hints"))
    expect(hints.locator("#hint-1")).to_contain_text("Free")
    expect(hints.locator("#hint-2")).to_contain_text("30 points")
    expect(hints.locator("#hint-2")).to_contain_text("Locked: unlock hint 1 first.")
    expect(hints).not_to_contain_text("base64")
    check_page(page, "challenge-hints")

    page.get_by_role("link", name="Unlock hint 1").click()
    expect(page.get_by_role("heading", name="Unlock hint 1?")).to_be_visible()
    expect(page.locator("main")).to_contain_text("This hint is free: it costs no points.")
    check_page(page, "hint-unlock-free")
    page.get_by_role("button", name="Show the hint").click()
    expect(page.get_by_text("Hint 1 unlocked.")).to_be_visible()
    expect(page.locator("#hint-1")).to_contain_text("The cookie is base64.")

    page.get_by_role("link", name="Unlock hint 2 for 30 points").click()
    expect(page.locator("main")).to_contain_text("This hint costs 30 points.")
    expect(page.locator("main")).to_contain_text("never below zero")
    check_page(page, "hint-unlock-cost")
    page.get_by_role("button", name="Unlock for 30 points").click()
    expect(page.get_by_text("Hint 2 unlocked. It cost 30 points.")).to_be_visible()
    expect(page.locator("#hint-2")).to_contain_text("Decode it and read role.")
    expect(page.locator("#hint-2")).to_contain_text("Unlocked: 30 points off this challenge's points.")
    check_page(page, "challenge-hints-unlocked")

    submit_flag(page, "FLAG{cookie}")
    expect(page.get_by_role("heading", name="Solved")).to_be_visible()
    page.goto(f"{base}/leaderboard/")
    expect_standing(my_row(page), points=70)  # 100 - 30

    # a 50-point hint on a 20-point challenge: it counts 0, it does not take 30 from the rest
    page.goto(f"{base}/challenges/tiny-crack/hints/{tiny.hints.get().pk}/")
    expect(page.locator("main")).to_contain_text("This hint costs 50 points.")
    page.get_by_role("button", name="Unlock for 50 points").click()
    submit_flag(page, "FLAG{t}")
    expect(page.get_by_role("heading", name="Solved")).to_be_visible()
    page.goto(f"{base}/leaderboard/")
    expect_standing(my_row(page), points=70, solves=2)
    check_page(page, "leaderboard-hint-costs")
    page.goto(f"{base}/")
    expect(page.locator(".stat", has_text="Points")).to_contain_text("70")
    expect(page.locator(".stat", has_text="Solves")).to_contain_text("2")
    check_page(page, "dashboard-hint-costs")


# --- Time windows --------------------------------------------------------------------------


def test_challenges_open_and_close_on_time_in_the_classs_time_zone(school, page_at):
    tenant, now = school["tenant"], timezone.now()
    challenge(tenant, name="Always On", slug="always-on", flag="FLAG{on}")
    later = challenge(
        tenant, name="Zero Day", slug="zero-day", flag="FLAG{z}", opens_at=now + timedelta(days=1, hours=2)
    )
    hidden_file = files.challenge_file_add(project=later, name="zero.bin", content=ContentFile(b"0day", name="z.bin"))
    closes = now + timedelta(hours=3, minutes=30)
    challenge(tenant, name="Last Call", slug="last-call", flag="FLAG{last}", closes_at=closes)
    closed_at = now - timedelta(days=1)
    challenge(
        tenant,
        name="Too Late",
        slug="too-late",
        flag="FLAG{late}",
        opens_at=now - timedelta(days=3),
        closes_at=closed_at,
    )
    page = open_page(page_at, "desktop")
    base = school["base"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/")
    cards = page.locator(".card-grid")
    expect(cards).to_contain_text("Always On")
    expect(cards).not_to_contain_text("Zero Day")
    summary = page.locator(".results-summary")
    expect(summary).to_contain_text("1 more opens later")
    expect(summary).to_contain_text(f"on {local(later.opens_at)}")
    expect(cards.locator("li.card", has_text="Last Call")).to_contain_text(f"on {local(closes)}.")
    expect(cards.locator("li.card", has_text="Too Late")).to_contain_text("Closed")
    check_page(page, "catalogue-time-windows")

    # before it opens: its page, and its files, are not found
    assert page.goto(f"{base}/challenges/zero-day/").status == 404
    assert page.goto(f"{base}/challenges/zero-day/files/{hidden_file.pk}/").status == 404

    page.goto(f"{base}/challenges/last-call/")
    expect(page.locator("main")).to_contain_text(
        re.compile(rf"Closes in 3 hours( and \d+ minutes?)?, on {re.escape(local(closes))}\.")
    )
    expect(page.get_by_label("Flag")).to_be_visible()
    check_page(page, "challenge-closing")

    page.goto(f"{base}/challenges/too-late/")
    expect(page.get_by_role("heading", name="Closed")).to_be_visible()
    expect(page.locator("main")).to_contain_text(
        f"Closed on {local(closed_at)}: this challenge no longer takes answers."
    )
    expect(page.get_by_label("Flag")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("submit", re.I))).to_have_count(0)
    check_page(page, "challenge-closed")


def test_before_the_event_starts_students_see_no_challenges_and_when_it_starts(school, page_at):
    tenant = school["tenant"]
    challenge(tenant, name="Always On", slug="always-on", flag="FLAG{on}")
    starts = timezone.now() + timedelta(days=2, minutes=30)
    Tenant.objects.filter(pk=tenant.pk).update(event_starts_at=starts)
    page = open_page(page_at, "phone")
    base = school["base"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/")
    main = page.locator("main")
    expect(main).to_contain_text("The event has not started yet.")
    expect(main).to_contain_text(f"The event starts in 2 days, on {local(starts)}.")
    expect(main).not_to_contain_text("Always On")
    check_page(page, "catalogue-before-event")
    assert page.goto(f"{base}/challenges/always-on/").status == 404


# --- The scoreboard freeze -----------------------------------------------------------------


def test_after_the_freeze_students_see_the_frozen_standings_and_instructors_live_ones(school, page_at):
    tenant, sam, rita = school["tenant"], school["sam"], school["rita"]
    cookie = challenge(tenant, name="Cookie Jar", slug="cookie-jar", points=150, flag="FLAG{cookie}")
    warmup = challenge(tenant, name="Warm-up", slug="warm-up", points=100, flag="FLAG{warm}")
    services.submission_create(user=sam, project=cookie, flag="FLAG{cookie}")
    services.submission_create(user=rita, project=warmup, flag="FLAG{warm}")
    frozen_at = timezone.now()
    Tenant.objects.filter(pk=tenant.pk).update(scoreboard_freeze_at=frozen_at)
    services.submission_create(user=rita, project=cookie, flag="FLAG{cookie}")  # after the freeze
    base = school["base"]

    student = open_page(page_at, "desktop")
    log_in(student, base, "sam@alpha.test")
    student.goto(f"{base}/leaderboard/")
    expect(student.locator("main")).to_contain_text("The scoreboard is frozen.")
    expect(student.locator("main")).to_contain_text(f"as of {local(frozen_at)}.")
    expect_standing(my_row(student), rank=1, points=150, solves=1)
    expect_standing(row_of(student, "Rita Rival"), rank=2, points=100, solves=1)
    check_page(student, "leaderboard-frozen")

    teacher = open_page(page_at, "desktop")
    admin_log_in(teacher, base, "ines@alpha.test")
    teacher.goto(f"{base}/leaderboard/")
    expect(teacher.locator("main")).to_contain_text("Live standings.")
    expect_standing(row_of(teacher, "Rita Rival"), rank=1, points=250, solves=2)
    expect_standing(row_of(teacher, "Sam Student"), rank=2, points=150, solves=1)
    check_page(teacher, "leaderboard-live-instructor")

    Tenant.objects.filter(pk=tenant.pk).update(scoreboard_freeze_at=None)
    student.reload()
    expect(student.locator("main")).not_to_contain_text("frozen")
    expect_standing(row_of(student, "Rita Rival"), rank=1, points=250, solves=2)
    expect_standing(my_row(student), rank=2, points=150, solves=1)
    check_page(student, "leaderboard-unfrozen")


# --- Prerequisites -------------------------------------------------------------------------


def test_a_locked_challenge_says_what_unlocks_it_and_opens_once_that_is_solved(school, page_at):
    tenant = school["tenant"]
    basics = challenge(tenant, name="Packet Basics", slug="packet-basics", flag="FLAG{basics}")
    deep = challenge(tenant, name="Deep Packet", slug="deep-packet", flag="FLAG{deep}", description="The real one.")
    prerequisites.prerequisites_set(project=deep, required=[basics])
    page = open_page(page_at, "phone")
    base = school["base"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/")
    card = page.locator("li.card", has_text="Deep Packet")
    expect(card).to_contain_text("Locked: solve Packet Basics first.")
    check_page(page, "catalogue-locked")

    page.goto(f"{base}/challenges/deep-packet/")
    expect(page.get_by_role("heading", name="Locked")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Locked: solve Packet Basics first.")
    expect(page.locator("main")).not_to_contain_text("The real one.")
    expect(page.get_by_label("Flag")).to_have_count(0)
    check_page(page, "challenge-locked")

    page.locator("main").get_by_role("link", name="Packet Basics").click()
    expect(page).to_have_url(f"{base}/challenges/packet-basics/")
    submit_flag(page, "FLAG{basics}")
    expect(page.get_by_role("heading", name="Solved")).to_be_visible()

    page.goto(f"{base}/challenges/deep-packet/")
    expect(page.locator("main")).to_contain_text("The real one.")
    expect(page.get_by_role("heading", name="Locked")).to_have_count(0)
    submit_flag(page, "FLAG{deep}")
    expect(page.get_by_text("Correct! +100 points.")).to_be_visible()


# --- Dynamic scoring -----------------------------------------------------------------------


def test_a_dynamic_challenge_shows_its_value_and_earlier_solvers_points_fall(school, page_at):
    tenant = school["tenant"]
    challenge(
        tenant,
        name="Falling Star",
        slug="falling-star",
        flag="FLAG{star}",
        scoring=Project.Scoring.DYNAMIC,
        points=500,
        initial_points=500,
        minimum_points=100,
        decay=150,
        decay_function=Project.Decay.LINEAR,
    )
    page = open_page(page_at, "desktop")
    base = school["base"]
    log_in(page, base, "sam@alpha.test")

    page.goto(f"{base}/challenges/falling-star/")
    points = page.locator(".facts div", has_text="Points")
    expect(points).to_contain_text("500")
    expect(points).to_contain_text("dynamic: falls as students solve it, down to 100")
    check_page(page, "challenge-dynamic")
    submit_flag(page, "FLAG{star}")
    expect(page.get_by_text("Correct! +500 points.")).to_be_visible()
    page.goto(f"{base}/leaderboard/")
    expect_standing(my_row(page), rank=1, points=500)

    star = Project.objects.get(tenant=tenant, slug="falling-star")
    services.submission_create(user=school["rita"], project=star, flag="FLAG{star}")  # a second solver

    page.goto(f"{base}/challenges/falling-star/")
    expect(points).to_contain_text("350")  # 500 - 150
    expect(page.locator(".facts div", has_text="Solves")).to_contain_text("2 students")
    page.goto(f"{base}/leaderboard/")
    expect_standing(my_row(page), rank=1, points=350)  # a tie: the same rank
    expect_standing(row_of(page, "Rita Rival"), rank=1, points=350)
    check_page(page, "leaderboard-dynamic")


# --- The instructor's admin ----------------------------------------------------------------


def change_url(base, project):
    return f"{base}/admin/challenges/project/{project.pk}/change/"


def test_an_instructor_adds_a_file_and_a_hint_inline(school, page_at, storage):
    tenant = school["tenant"]
    memory = challenge(tenant, name="Memory Lane", slug="memory-lane", description="Find the injected thread.")
    page = open_page(page_at, "desktop")
    base = school["base"]
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(change_url(base, memory))
    add_inline_file_and_hint(page, file_name="memory.raw", content=CAPTURE, hint="Start with `pslist`.", cost=25)
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    stored = ChallengeFile.objects.get(project=memory)
    assert (stored.name, stored.size, stored.sha256) == (
        "memory.raw",
        len(CAPTURE),
        hashlib.sha256(CAPTURE).hexdigest(),
    )
    with storage.open(stored.file.name, "rb") as kept:
        assert kept.read() == CAPTURE
    hint = Hint.objects.get(project=memory)
    assert (hint.text, hint.cost, hint.tenant_id) == ("Start with `pslist`.", 25, tenant.pk)
    expect(page.locator("#files-group")).to_contain_text(stored.sha256[:16])
    check_page(page, "admin-challenge-content")


def test_an_empty_file_or_a_close_before_the_open_is_a_form_error_and_nothing_is_saved(school, page_at, storage):
    tenant = school["tenant"]
    memory = challenge(tenant, name="Memory Lane", slug="memory-lane")
    page = open_page(page_at, "desktop")
    base = school["base"]
    admin_log_in(page, base, "ines@alpha.test")

    page.goto(change_url(base, memory))
    add_inline_file_and_hint(page, file_name="empty.raw", content=b"", hint="Not saved: the file beside it is wrong.")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator("#files-group")).to_contain_text("The file is empty: upload a file with something in it.")
    assert not ChallengeFile.objects.filter(project=memory).exists()
    assert not Hint.objects.filter(project=memory).exists()
    assert files.stored_total(memory) == 0 and stored_objects(storage) == []
    check_page(page, "admin-challenge-file-error")

    page.goto(change_url(base, memory))
    page.get_by_label("Opens at").fill("2026-12-20T10:00:00")
    page.get_by_label("Closes at").fill("2026-12-19T10:00:00")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-closes_at")).to_contain_text("The close time must come after the open time.")
    memory.refresh_from_db()
    assert (memory.opens_at, memory.closes_at) == (None, None)
    check_page(page, "admin-challenge-window-error")

    # put right, it saves: the times typed are the class's (IST), not UTC
    page.get_by_label("Closes at").fill("2026-12-21T10:00:00")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    memory.refresh_from_db()
    assert memory.opens_at == datetime(2026, 12, 20, 4, 30, tzinfo=UTC)
    assert memory.closes_at == datetime(2026, 12, 21, 4, 30, tzinfo=UTC)
