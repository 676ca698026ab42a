"""The submissions and leaderboard exports read like the site: names, words, times in the class's zone."""

import re

import pytest

from challenges.factories import ProjectFactory
from scoring import services
from tenants.factories import StudentFactory

from .test_export_injection import column, export

pytestmark = pytest.mark.usefixtures("fast_hashing")
ISO_IST = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+05:30$")


@pytest.fixture
def solved(tenant):
    tenant.time_zone = "Asia/Kolkata"  # UTC+05:30: a time written in UTC or the server's zone would not match
    tenant.save(update_fields=["time_zone"])
    ada = StudentFactory(tenant=tenant, email="ada@alpha.test", first_name="Ada", last_name="Lovelace")
    project = ProjectFactory(tenant=tenant, name="Cookie Monster", flag="FLAG{x}", points=50)
    services.submission_create(user=ada, project=project, flag="FLAG{x}")
    return ada


def test_the_submissions_export_has_names_words_and_zoned_times(solved, tenant, instructor, client_for):
    rows = export(client_for(tenant, instructor), "/admin/scoring/submission/export/?status__exact=APPROVED")

    assert rows[0][:5] == ["Submission", "First name", "Last name", "E-mail", "Challenge"]
    assert (column(rows, "First name"), column(rows, "Last name")) == (["Ada"], ["Lovelace"])
    assert (column(rows, "Kind"), column(rows, "Status")) == (["Flag"], ["Approved"])  # not FLAG, APPROVED
    assert column(rows, "Points") == ["50"]
    [submitted] = column(rows, "Submitted at")
    assert ISO_IST.match(submitted), submitted


def test_the_leaderboard_export_has_names_and_zoned_times(solved, tenant, instructor, client_for):
    rows = export(client_for(tenant, instructor), "/admin/scoring/leaderboard/export/")

    assert column(rows, "E-mail") == ["ada@alpha.test"]
    assert (column(rows, "First name"), column(rows, "Rank")) == (["Ada"], ["1"])
    [scored] = column(rows, "Last scored at")
    assert ISO_IST.match(scored), scored
