"""Challenge files in an S3 bucket (ATTACHMENT_STORAGE=storages.backends.s3.S3Storage), against a real
S3 API served by moto on this machine: uploaded in the admin, streamed to a student, replaced and deleted."""

import hashlib
import uuid

import boto3
import pytest
from botocore.response import StreamingBody
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from challenges import files
from challenges.factories import ProjectFactory
from challenges.models import ChallengeFile
from challenges.tests.attachments import (
    FILES_PREFIX,
    add_file_form,
    attachment_storage,
    change_form_data,
    file_form_index,
)
from vulhub.tests.servers import moto_s3

CAPTURE = b"\xd4\xc3\xb2\xa1" + bytes(range(256)) * 4096  # 1 MiB and a little: several reads
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint):
    """A new bucket as the attachments storage; a boto3 client on it and its name."""
    name = f"vulhub-attachments-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    client.create_bucket(Bucket=name)
    options = {
        "bucket_name": name,
        "endpoint_url": s3_endpoint,
        "access_key": "test",
        "secret_key": "test",
        "region_name": "us-east-1",
    }
    with attachment_storage("storages.backends.s3.S3Storage", options):
        yield client, name


def keys(client, bucket_name) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket_name).get("Contents", []))


@pytest.fixture
def challenge(tenant):
    return ProjectFactory(tenant=tenant, slug="packet-capture", name="Packet Capture")


def change(client, challenge, edit) -> int:
    """Post the challenge's admin page with `edit` applied to its data; the status."""
    url = f"/admin/challenges/project/{challenge.pk}/change/"
    data = change_form_data(client.get(url))
    edit(data)
    return client.post(url, data).status_code


def test_files_are_uploaded_streamed_replaced_and_deleted_through_the_bucket(
    bucket, challenge, tenant, instructor, student, client_for, django_capture_on_commit_callbacks
):
    client, name = bucket
    staff = client_for(tenant, instructor)

    def upload(data):
        add_file_form(data, name="capture.pcap", upload=SimpleUploadedFile("capture.pcap", CAPTURE))

    with django_capture_on_commit_callbacks(execute=True):
        assert change(staff, challenge, upload) == 302
    attachment = ChallengeFile.objects.get()
    assert keys(client, name) == [attachment.file.name]
    stored = client.get_object(Bucket=name, Key=attachment.file.name)["Body"].read()
    assert (attachment.size, attachment.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    assert stored == CAPTURE

    response = client_for(tenant, student).get(f"/challenges/packet-capture/files/{attachment.pk}/")
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(CAPTURE))
    assert response["Content-Disposition"] == 'attachment; filename="capture.pcap"'
    assert b"".join(response.streaming_content) == CAPTURE
    stream, length = files.open_for_download(attachment)
    assert isinstance(stream, StreamingBody)  # read from the bucket as it is sent, never whole in memory
    assert length == len(CAPTURE)
    stream.close()

    old_key = attachment.file.name

    def replace(data):
        data[f"{FILES_PREFIX}-{file_form_index(data, attachment)}-file"] = SimpleUploadedFile("v2.pcap", b"v2")

    with django_capture_on_commit_callbacks(execute=True):
        assert change(staff, challenge, replace) == 302
    attachment.refresh_from_db()
    assert attachment.file.name != old_key
    assert keys(client, name) == [attachment.file.name]  # the old object went after the commit
    assert attachment.sha256 == hashlib.sha256(b"v2").hexdigest()

    def delete(data):
        data[f"{FILES_PREFIX}-{file_form_index(data, attachment)}-DELETE"] = "on"

    with django_capture_on_commit_callbacks(execute=True):
        assert change(staff, challenge, delete) == 302
    assert not ChallengeFile.objects.exists()
    assert keys(client, name) == []


def test_a_refused_upload_puts_nothing_in_the_bucket(bucket, challenge, tenant, instructor, client_for, settings):
    client, name = bucket
    settings.ATTACHMENT_MAX_BYTES = 1024

    def upload(data):
        add_file_form(data, name="capture.pcap", upload=SimpleUploadedFile("capture.pcap", CAPTURE))

    assert change(client_for(tenant, instructor), challenge, upload) == 200  # the form again, with its error
    assert keys(client, name) == []
    assert not ChallengeFile.objects.exists()


def test_a_missing_object_is_a_404(bucket, challenge, tenant, student, client_for):
    client, name = bucket
    attachment = files.challenge_file_add(project=challenge, name="capture.pcap", content=ContentFile(b"pcap"))
    client.delete_object(Bucket=name, Key=attachment.file.name)

    response = client_for(tenant, student).get(f"/challenges/packet-capture/files/{attachment.pk}/")

    assert response.status_code == 404
