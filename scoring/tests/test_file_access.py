"""Challenge files are served to the students who can use the challenge, and to its staff; to anyone
else they do not exist (404), whatever the URL. A download is an attachment, never rendered."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from challenges import files
from challenges.factories import ProjectFactory
from challenges.models import ChallengeFile, Prerequisite
from challenges.tests.attachments import attachments_in
from scoring.services import submission_create

MEMORY = b"PAGEFILE\x00\x01\x02" + b"\xde\xad\xbe\xef" * 3000
FLAG = "FLAG{first_things_first}"


@pytest.fixture(autouse=True)
def storage(tmp_path):
    with attachments_in(tmp_path / "attachments") as storage:
        yield storage


@pytest.fixture
def challenge(tenant):
    return ProjectFactory(tenant=tenant, slug="memory-lane", name="Memory Lane", flag="FLAG{volatile}")


@pytest.fixture
def attachment(challenge):
    return files.challenge_file_add(project=challenge, name="memory.raw", content=ContentFile(MEMORY))


@pytest.fixture
def url(attachment):
    return f"/challenges/memory-lane/files/{attachment.pk}/"


@pytest.fixture
def student_client(tenant, student, client_for):
    return client_for(tenant, student)


@pytest.fixture
def staff_client(tenant, instructor, client_for):
    return client_for(tenant, instructor)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_student_downloads_the_file_as_an_attachment_never_rendered(student_client, url, attachment):
    response = student_client.get(url)

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="memory.raw"'
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Length"] == str(len(MEMORY))
    cache = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"private", "no-store"} <= cache
    assert body(response) == MEMORY
    assert hashlib.sha256(MEMORY).hexdigest() == attachment.sha256


def test_a_name_that_needs_it_is_sent_encoded(student_client, challenge):
    odd = files.challenge_file_add(project=challenge, name='Mémoire "vive".raw', content=ContentFile(b"x"))

    response = student_client.get(f"/challenges/memory-lane/files/{odd.pk}/")

    assert response["Content-Disposition"] == "attachment; filename*=utf-8''M%C3%A9moire%20%22vive%22.raw"


def test_the_challenge_page_lists_each_file_with_its_size_and_full_sha256(student_client, url, attachment):
    response = student_client.get("/challenges/memory-lane/")

    content = response.content.decode()
    assert f'href="{url}"' in content
    assert 'memory.raw<span class="visually-hidden"> (download)</span></a>' in content  # the link's name
    assert "(11.7\xa0KB)" in content
    (shown,) = re.findall(r"SHA-256: <code>(.*?)</code>", content)
    assert "<wbr>" in shown  # it wraps on a phone
    assert shown.replace("<wbr>", "") == hashlib.sha256(body(student_client.get(url))).hexdigest()


def test_someone_not_signed_in_is_sent_to_sign_in(client_for, tenant, url):
    response = client_for(tenant).get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_another_tenants_student_gets_a_404_for_a_valid_id(client_for, other_tenant, other_student, url):
    ProjectFactory(tenant=other_tenant, slug="memory-lane")  # even with a challenge of that slug

    response = client_for(other_tenant, other_student).get(url)

    assert response.status_code == 404
    assert MEMORY[:8] not in response.content


def test_another_tenants_student_on_this_tenants_site_is_nobody(client_for, tenant, other_student, url):
    response = client_for(tenant, other_student).get(url)

    assert response.status_code == 302  # anonymous here: sent to sign in, never served


def test_a_file_of_another_challenge_is_a_404(student_client, tenant, attachment):
    ProjectFactory(tenant=tenant, slug="other")

    assert student_client.get(f"/challenges/other/files/{attachment.pk}/").status_code == 404
    assert student_client.get(f"/challenges/memory-lane/files/{attachment.pk + 1000}/").status_code == 404


def test_an_unpublished_challenges_file_is_a_404_for_students_but_not_for_staff(
    student_client, staff_client, challenge, url
):
    challenge.is_published = False
    challenge.save()

    assert student_client.get(url).status_code == 404
    assert body(staff_client.get(url)) == MEMORY


def test_a_file_is_a_404_before_the_challenge_opens(student_client, staff_client, challenge, url):
    challenge.opens_at = timezone.now() + timedelta(hours=1)
    challenge.save()

    assert student_client.get(url).status_code == 404
    assert staff_client.get(url).status_code == 200


def test_a_file_is_a_404_before_the_tenants_event_starts(student_client, tenant, url):
    tenant.event_starts_at = timezone.now() + timedelta(days=1)
    tenant.save()

    assert student_client.get(url).status_code == 404


def test_a_closed_challenges_files_can_still_be_downloaded(student_client, challenge, url):
    challenge.opens_at = timezone.now() - timedelta(days=2)
    challenge.closes_at = timezone.now() - timedelta(days=1)
    challenge.save()

    assert body(student_client.get(url)) == MEMORY  # read-only, not hidden


def test_a_locked_challenges_file_is_a_404_until_its_prerequisite_is_solved(
    student_client, student, tenant, challenge, url
):
    first = ProjectFactory(tenant=tenant, slug="first", name="First Things", flag=FLAG)
    Prerequisite.objects.create(tenant=tenant, project=challenge, required=first)

    assert student_client.get(url).status_code == 404

    submission_create(user=student, project=first, flag=FLAG)

    assert body(student_client.get(url)) == MEMORY


def test_a_file_whose_stored_object_is_gone_is_a_404_and_an_error_in_the_log(
    student_client, url, attachment, storage, caplog
):
    storage.delete(attachment.file.name)

    response = student_client.get(url)

    assert response.status_code == 404
    assert f"Challenge file {attachment.pk} is missing from its storage" in caplog.text


def test_only_get_and_head_are_answered(student_client, url):
    assert student_client.post(url).status_code == 405
    head = student_client.head(url)
    assert head.status_code == 200
    assert head["Content-Length"] == str(len(MEMORY))


def test_the_rows_size_and_sha256_are_those_of_the_bytes_served(student_client, url):
    served = body(student_client.get(url))

    row = ChallengeFile.objects.get()
    assert (row.size, row.sha256) == (len(served), hashlib.sha256(served).hexdigest())
