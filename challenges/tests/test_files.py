"""Challenge files in the admin: uploads checked (a clear form error, nothing saved, nothing stored),
size and sha256 always those of the stored bytes, replacing and deleting audited, old objects
removed only once the change has committed."""

import hashlib

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.db import IntegrityError, transaction
from django.forms import inlineformset_factory

from audit.api import AuditLog
from challenges import files
from challenges.factories import ProjectFactory
from challenges.file_admin import ChallengeFileForm, ChallengeFileFormSet
from challenges.models import ChallengeFile, Project
from challenges.tests.attachments import (
    FILES_PREFIX,
    add_file_form,
    attachments_in,
    change_form_data,
    file_form_index,
    stored_objects,
)
from vulhub.tests.test_settings import PRODUCTION, manage

KB = 1024
MEMORY = b"\x00\x01MEMORY IMAGE\xff" * 100


@pytest.fixture(autouse=True)
def storage(tmp_path):
    """Challenge files in a folder of this test's own."""
    with attachments_in(tmp_path / "attachments") as storage:
        yield storage


@pytest.fixture
def challenge(tenant):
    return ProjectFactory(tenant=tenant, slug="memory-lane", name="Memory Lane")


@pytest.fixture
def staff(tenant, instructor, client_for):
    return client_for(tenant, instructor)


def change_url(project: Project) -> str:
    return f"/admin/challenges/project/{project.pk}/change/"


def page_data(client, project: Project) -> dict:
    response = client.get(change_url(project))
    assert response.status_code == 200
    return change_form_data(response)


def upload(name: str, content: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def post_new_file(client, project, *, name="", content=MEMORY, filename="memory.raw"):
    data = page_data(client, project)
    add_file_form(data, name=name, upload=upload(filename, content))
    return client.post(change_url(project), data)


def errors_of(response) -> str:
    """The page's error text: the inline's form and formset errors."""
    assert response.status_code == 200, "the form was saved"
    formset = next(f.formset for f in response.context["inline_admin_formsets"] if f.formset.prefix == FILES_PREFIX)
    texts = [str(error) for form in formset.forms for errors in form.errors.values() for error in errors]
    return " ".join(texts + list(formset.non_form_errors()))


def audit_rows(attachment_id=None, action=None):
    rows = AuditLog.objects.filter(object_type="challenges.challengefile")
    if attachment_id is not None:
        rows = rows.filter(object_id=str(attachment_id))
    if action is not None:
        rows = rows.filter(action=action)
    return list(rows.order_by("id"))


# --- Uploading -----------------------------------------------------------------------------


def test_an_instructor_uploads_a_file_and_its_size_and_sha256_are_those_of_the_stored_bytes(
    staff, challenge, storage, tenant
):
    response = post_new_file(staff, challenge, name="memory.raw")

    assert response.status_code == 302
    attachment = ChallengeFile.objects.get(project=challenge)
    assert attachment.name == "memory.raw"
    assert attachment.tenant_id == tenant.pk
    with storage.open(attachment.file.name) as stored:
        kept = stored.read()
    assert kept == MEMORY
    assert attachment.size == len(kept)
    assert attachment.sha256 == hashlib.sha256(kept).hexdigest()
    assert attachment.file.name.startswith(f"{tenant.pk}/{challenge.pk}/")
    assert stored_objects(storage) == [attachment.file.name]


def test_the_name_defaults_to_the_uploaded_files_name(staff, challenge):
    response = post_new_file(staff, challenge, name="", filename="capture.pcap")

    assert response.status_code == 302
    assert ChallengeFile.objects.get(project=challenge).name == "capture.pcap"


def test_the_upload_is_audited_with_its_sha256_and_size(staff, challenge, instructor):
    post_new_file(staff, challenge, name="memory.raw")

    attachment = ChallengeFile.objects.get(project=challenge)
    (row,) = audit_rows(attachment.pk)
    assert row.action == "create"
    assert row.actor_id == instructor.pk
    assert row.changes["name"] == [None, "memory.raw"]
    assert row.changes["sha256"] == [None, hashlib.sha256(MEMORY).hexdigest()]
    assert row.changes["size"] == [None, len(MEMORY)]
    assert row.changes["file"] == [None, attachment.file.name]


def test_the_admin_links_the_current_file_to_the_checked_download(staff, challenge):
    post_new_file(staff, challenge, name="memory.raw")
    attachment = ChallengeFile.objects.get(project=challenge)

    content = staff.get(change_url(challenge)).content.decode()

    assert f'href="/challenges/memory-lane/files/{attachment.pk}/"' in content
    assert attachment.file.name not in content  # the storage's key is never shown nor linked
    groups = [attachment.sha256[start : start + 16] for start in range(0, 64, 16)]
    assert "<wbr>".join(f"<code>{group}</code>" for group in groups) in content  # all of it, wrapping


def test_a_file_over_the_limit_is_a_form_error_and_nothing_is_saved_or_stored(staff, challenge, storage, settings):
    settings.ATTACHMENT_MAX_BYTES = 1 * KB

    response = post_new_file(staff, challenge, content=b"x" * (KB + 1))

    assert "The file is 1.0 KB: a file may be 1.0 KB at most." in errors_of(response)
    assert not ChallengeFile.objects.exists()
    assert stored_objects(storage) == []
    assert audit_rows() == []


def test_an_empty_file_is_a_form_error(staff, challenge, storage):
    response = post_new_file(staff, challenge, content=b"")

    assert "The file is empty: upload a file with something in it." in errors_of(response)
    assert not ChallengeFile.objects.exists()
    assert stored_objects(storage) == []


def test_files_over_the_challenge_total_counting_the_others_are_refused(staff, challenge, storage, settings):
    settings.ATTACHMENT_MAX_BYTES = 2 * KB
    settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES = 3 * KB
    existing = files.challenge_file_add(project=challenge, name="first.bin", content=ContentFile(b"a" * 2 * KB))

    response = post_new_file(staff, challenge, name="second.bin", content=b"b" * (KB + 1))

    assert "The files of this challenge would total 3.0 KB: a challenge's files may total 3.0 KB at most." in (
        errors_of(response)
    )
    assert list(ChallengeFile.objects.all()) == [existing]
    assert stored_objects(storage) == [existing.file.name]


def test_the_total_counts_a_replacement_instead_of_the_file_it_replaces(staff, challenge, settings):
    settings.ATTACHMENT_MAX_BYTES = 2 * KB
    settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES = 3 * KB
    existing = files.challenge_file_add(project=challenge, name="first.bin", content=ContentFile(b"a" * 2 * KB))
    data = page_data(staff, challenge)
    data[f"{FILES_PREFIX}-{file_form_index(data, existing)}-file"] = upload("small.bin", b"s" * KB)
    add_file_form(data, name="second.bin", upload=upload("second.bin", b"b" * 2 * KB))

    response = staff.post(change_url(challenge), data)

    assert response.status_code == 302
    assert sorted(ChallengeFile.objects.values_list("name", "size")) == [("first.bin", KB), ("second.bin", 2 * KB)]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../etc/passwd", "A file name cannot contain / or \\: give the name alone, without a folder."),
        ("notes/flag.txt", "A file name cannot contain / or \\"),
        ("C:\\Windows\\win.ini", "A file name cannot contain / or \\"),
        ("..", 'A file name cannot contain "..".'),
        ("memory..raw", 'A file name cannot contain "..".'),
        (".bashrc", "A file name cannot start with a dot (a hidden file)."),
        ("invoice\u202etxt.exe", "A file name cannot contain control or invisible characters"),
        ("two\nlines.txt", "A file name cannot contain control or invisible characters"),
        ("tab\there.txt", "A file name cannot contain control or invisible characters"),
        ("bell\x07.txt", "A file name cannot contain control or invisible characters"),
        ("zero\u200bwidth.txt", "A file name cannot contain control or invisible characters"),
        ("x" * 201, "Ensure this value has at most 200 characters (it has 201)."),
    ],
)
def test_a_name_with_path_tricks_or_control_characters_is_a_form_error(staff, challenge, storage, name, message):
    response = post_new_file(staff, challenge, name=name)

    assert message in errors_of(response)
    assert not ChallengeFile.objects.exists()
    assert stored_objects(storage) == []


def test_a_nul_in_the_name_is_a_form_error_too(staff, challenge, storage):
    response = post_new_file(staff, challenge, name="memory\x00.raw")

    assert "Null characters are not allowed." in errors_of(response)
    assert stored_objects(storage) == []


def test_an_uploaded_files_own_bad_name_is_refused_when_no_name_is_given(staff, challenge, storage):
    response = post_new_file(staff, challenge, name="", filename=".htaccess")

    assert "A file name cannot start with a dot (a hidden file)." in errors_of(response)
    assert stored_objects(storage) == []


def test_two_files_of_one_name_are_a_form_error(staff, challenge, storage):
    data = page_data(staff, challenge)
    add_file_form(data, name="memory.raw", upload=upload("a.raw", b"a"))
    add_file_form(data, name="memory.raw", upload=upload("b.raw", b"b"))

    response = staff.post(change_url(challenge), data)

    assert "Please correct the duplicate data for name" in errors_of(response)
    assert stored_objects(storage) == []


def test_the_stored_key_is_plain_ascii_whatever_the_name(staff, challenge, storage, tenant):
    post_new_file(staff, challenge, name="Mémoire vive (copie) ☃.raw")

    attachment = ChallengeFile.objects.get()
    assert attachment.name == "Mémoire vive (copie) ☃.raw"  # what students download it as
    assert attachment.file.name.rsplit("/", 1)[1] == "Memoire_vive_copie_.raw"


# --- Replacing and deleting ---------------------------------------------------------------------


@pytest.fixture
def uploaded(staff, challenge):
    post_new_file(staff, challenge, name="memory.raw")
    return ChallengeFile.objects.get(project=challenge)


def test_a_new_upload_replaces_the_stored_object_and_the_old_one_goes_after_commit(
    staff, challenge, uploaded, storage, django_capture_on_commit_callbacks
):
    old_name, old_sha256 = uploaded.file.name, uploaded.sha256
    new_bytes = b"a newer memory image" * 50
    data = page_data(staff, challenge)
    data[f"{FILES_PREFIX}-{file_form_index(data, uploaded)}-file"] = upload("memory-v2.raw", new_bytes)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff.post(change_url(challenge), data)
        assert response.status_code == 302
        uploaded.refresh_from_db()
        assert sorted(stored_objects(storage)) == sorted([old_name, uploaded.file.name])  # both until commit
    for callback in callbacks:
        callback()

    assert uploaded.name == "memory.raw"
    assert uploaded.size == len(new_bytes)
    assert uploaded.sha256 == hashlib.sha256(new_bytes).hexdigest() != old_sha256
    assert stored_objects(storage) == [uploaded.file.name]
    with storage.open(uploaded.file.name) as stored:
        assert stored.read() == new_bytes
    (row,) = audit_rows(uploaded.pk, "update")
    assert row.changes["sha256"] == [old_sha256, uploaded.sha256]
    assert row.changes["size"] == [len(MEMORY), len(new_bytes)]
    assert row.changes["file"] == [old_name, uploaded.file.name]


def test_renaming_a_file_keeps_its_object(staff, challenge, uploaded, storage, django_capture_on_commit_callbacks):
    data = page_data(staff, challenge)
    data[f"{FILES_PREFIX}-{file_form_index(data, uploaded)}-name"] = "image.raw"

    with django_capture_on_commit_callbacks(execute=True):
        assert staff.post(change_url(challenge), data).status_code == 302

    stored_name = uploaded.file.name
    uploaded.refresh_from_db()
    assert uploaded.name == "image.raw"
    assert stored_objects(storage) == [stored_name]
    (row,) = audit_rows(uploaded.pk, "update")
    assert row.changes == {"name": ["memory.raw", "image.raw"]}


def test_deleting_a_file_deletes_its_object_after_commit_and_is_audited(
    staff, challenge, uploaded, storage, django_capture_on_commit_callbacks
):
    data = page_data(staff, challenge)
    data[f"{FILES_PREFIX}-{file_form_index(data, uploaded)}-DELETE"] = "on"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert staff.post(change_url(challenge), data).status_code == 302
        assert stored_objects(storage) == [uploaded.file.name]  # still there until the commit
    for callback in callbacks:
        callback()

    assert not ChallengeFile.objects.exists()
    assert stored_objects(storage) == []
    (row,) = audit_rows(uploaded.pk, "delete")
    assert row.changes["sha256"] == [uploaded.sha256, None]
    assert row.changes["size"] == [uploaded.size, None]
    assert row.changes["name"] == ["memory.raw", None]


def formset_for(project, data=None, files_=None):
    FormSet = inlineformset_factory(
        Project,
        ChallengeFile,
        form=ChallengeFileForm,
        formset=ChallengeFileFormSet,
        fields=["name", "file"],
        extra=0,
        can_delete=True,
    )
    return FormSet(data, files_, instance=project, prefix=FILES_PREFIX)


def formset_data(project, **changes) -> dict:
    rows = list(ChallengeFile.objects.filter(project=project).order_by("pk"))
    data = {
        f"{FILES_PREFIX}-TOTAL_FORMS": str(len(rows)),
        f"{FILES_PREFIX}-INITIAL_FORMS": str(len(rows)),
        f"{FILES_PREFIX}-MIN_NUM_FORMS": "0",
        f"{FILES_PREFIX}-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data[f"{FILES_PREFIX}-{index}-id"] = str(row.pk)
        data[f"{FILES_PREFIX}-{index}-project"] = str(project.pk)
        data[f"{FILES_PREFIX}-{index}-name"] = row.name
    data.update(changes)
    return data


class Rollback(Exception):
    pass


def test_a_rolled_back_delete_keeps_the_stored_object(challenge, storage, django_capture_on_commit_callbacks):
    kept = files.challenge_file_add(project=challenge, name="memory.raw", content=ContentFile(MEMORY))
    formset = formset_for(challenge, formset_data(challenge, **{f"{FILES_PREFIX}-0-DELETE": "on"}))
    assert formset.is_valid(), formset.errors

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Rollback), transaction.atomic():
        formset.save()
        raise Rollback  # anything failing later in the request

    assert callbacks == []  # the deletion was never scheduled to run
    assert ChallengeFile.objects.filter(pk=kept.pk).exists()
    assert stored_objects(storage) == [kept.file.name]
    with storage.open(kept.file.name) as stored:
        assert stored.read() == MEMORY


def test_a_rolled_back_replacement_keeps_the_old_object(challenge, storage, django_capture_on_commit_callbacks):
    kept = files.challenge_file_add(project=challenge, name="memory.raw", content=ContentFile(MEMORY))
    formset = formset_for(
        challenge, formset_data(challenge), {f"{FILES_PREFIX}-0-file": upload("new.raw", b"replacement")}
    )
    assert formset.is_valid(), formset.errors

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(Rollback), transaction.atomic():
        formset.save()
        raise Rollback

    assert callbacks == []
    kept.refresh_from_db()
    assert kept.sha256 == hashlib.sha256(MEMORY).hexdigest()
    assert kept.file.name in stored_objects(storage)


def test_a_save_that_fails_deletes_the_object_it_stored(challenge, storage):
    formset = formset_for(
        challenge, formset_data(challenge, **{f"{FILES_PREFIX}-TOTAL_FORMS": "1", f"{FILES_PREFIX}-0-name": "a.bin"}),
        {f"{FILES_PREFIX}-0-file": upload("a.bin", b"first")},
    )  # fmt: skip
    assert formset.is_valid(), formset.errors
    taken = files.challenge_file_add(project=challenge, name="a.bin", content=ContentFile(b"meanwhile"))

    with pytest.raises(IntegrityError, match="uniq_challenge_files_name"), transaction.atomic():
        formset.save()  # the name was taken between the check and the save

    assert stored_objects(storage) == [taken.file.name]


def test_deleting_a_challenge_can_take_its_objects_after_commit(
    challenge, storage, tenant, django_capture_on_commit_callbacks
):
    files.challenge_file_add(project=challenge, name="a.bin", content=ContentFile(b"a"))
    files.challenge_file_add(project=challenge, name="b.bin", content=ContentFile(b"b"))
    other = files.challenge_file_add(
        project=ProjectFactory(tenant=tenant, slug="other"), name="c.bin", content=ContentFile(b"c")
    )

    doomed = Project.objects.filter(pk=challenge.pk)

    with django_capture_on_commit_callbacks(execute=True) as rolled_back, pytest.raises(Rollback), transaction.atomic():
        files.delete_objects_of_projects_on_commit(doomed)
        doomed.delete()
        raise Rollback
    assert rolled_back == [] and len(stored_objects(storage)) == 3

    with django_capture_on_commit_callbacks(execute=True):
        files.delete_objects_of_projects_on_commit(doomed)
        doomed.delete()

    assert stored_objects(storage) == [other.file.name]


# --- The rules themselves ------------------------------------------------------------------------


def test_size_and_sha256_are_computed_while_the_file_streams_from_disk():
    content = bytes(range(256)) * (12 * 1024)  # 3 MiB: three chunks
    spooled = TemporaryUploadedFile("big.bin", "application/octet-stream", len(content), None)
    spooled.write(content)

    measured = files.measure(spooled)

    assert measured == files.Measured(len(content), hashlib.sha256(content).hexdigest())
    assert spooled.tell() == 0  # rewound, for the storage to read it from the start
    spooled.close()


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("  memory.raw  ", "memory.raw"),
        ("Cafe\u0301.txt", "Café.txt"),  # NFC: one code point
        ("capture (1).pcap", "capture (1).pcap"),
        ("x" * 200, "x" * 200),
    ],
)
def test_good_names_are_kept(given, kept):
    assert files.clean_name(given) == kept


def test_a_download_name_is_safe_whatever_the_row_holds():
    assert files.safe_download_name("../../etc/passwd") == "____etc_passwd"
    assert files.safe_download_name("invoice\u202etxt.exe") == "invoicetxt.exe"
    assert files.safe_download_name(".env") == "env"
    assert files.safe_download_name("\x00\x01") == "download"
    assert files.safe_download_name("memory.raw") == "memory.raw"


def test_a_storage_name_is_short_and_keeps_the_extension():
    name = files.storage_name("é" * 300 + "long name.pcapng")
    assert name.endswith("e.pcapng")
    assert len(name) <= files.STORAGE_NAME_MAX
    assert files.storage_name("☃☃☃") == "file"


def test_the_service_refuses_what_the_admin_refuses(challenge, storage, settings):
    settings.ATTACHMENT_MAX_BYTES = 10

    with pytest.raises(ValidationError, match="a file may be 10 bytes at most"):
        files.challenge_file_add(project=challenge, name="big.bin", content=ContentFile(b"x" * 11))
    with pytest.raises(ValidationError, match="cannot contain / or"):
        files.challenge_file_add(project=challenge, name="a/b", content=ContentFile(b"x"))

    assert stored_objects(storage) == []


def test_the_service_deletes_its_object_when_the_row_cannot_be_saved(challenge, storage):
    files.challenge_file_add(project=challenge, name="memory.raw", content=ContentFile(b"one"))

    with pytest.raises(ValidationError, match="already has a file with this name"):
        files.challenge_file_add(project=challenge, name="memory.raw", content=ContentFile(b"two"))

    assert len(stored_objects(storage)) == 1


def test_the_database_refuses_an_empty_file_row(challenge):
    with pytest.raises(IntegrityError, match="chk_challenge_files_not_empty"), transaction.atomic():
        ChallengeFile.objects.create(
            tenant_id=challenge.tenant_id, project=challenge, name="a", file="x/a", size=0, sha256="0" * 64
        )


# --- Request size -------------------------------------------------------------------------------


def test_an_upload_larger_than_the_sites_body_limit_is_taken_on_the_challenge_page(staff, challenge, settings):
    settings.REQUEST_BODY_MAX_SIZE = 64 * KB  # every other page keeps this
    settings.ATTACHMENT_MAX_BYTES = 256 * KB
    settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES = 512 * KB
    content = b"m" * (200 * KB)

    response = post_new_file(staff, challenge, name="memory.raw", content=content)

    assert response.status_code == 302
    assert ChallengeFile.objects.get().size == len(content)


def test_an_upload_over_the_challenge_pages_body_limit_is_a_413(staff, challenge, settings):
    settings.REQUEST_BODY_MAX_SIZE = 64 * KB
    settings.ATTACHMENT_MAX_BYTES = 128 * KB
    settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES = 128 * KB

    response = post_new_file(staff, challenge, name="memory.raw", content=b"m" * (256 * KB))

    assert response.status_code == 413
    assert not ChallengeFile.objects.exists()


def test_a_stranger_gets_the_sites_body_limit_on_the_challenge_page(tenant, challenge, client_for, settings):
    """Signed out, the larger limit does not apply: a big body is refused before it is read."""
    settings.REQUEST_BODY_MAX_SIZE = 64 * KB
    settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES = 512 * KB

    response = client_for(tenant).post(
        f"/admin/challenges/project/{challenge.pk}/change/", {"files-0-file": upload("big.bin", b"m" * (200 * KB))}
    )

    assert response.status_code == 413
    assert not ChallengeFile.objects.exists()


def test_other_pages_keep_the_sites_body_limit(tenant, student, client_for, challenge, settings):
    settings.REQUEST_BODY_MAX_SIZE = 64 * KB
    settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES = 512 * KB

    response = client_for(tenant, student).post(
        "/challenges/memory-lane/", {"writeup": "x", "proof": upload("big.bin", b"m" * (200 * KB))}
    )

    assert response.status_code == 413


# --- Settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ATTACHMENT_STORAGE": "storages.backends.nowhere.Storage"}, "is not an installed storage class"),
        (
            {"ATTACHMENT_STORAGE": "storages.backends.s3.S3Storage", "ATTACHMENT_STORAGE_OPTIONS": "{bucket"},
            "ATTACHMENT_STORAGE_OPTIONS is not valid JSON",
        ),
        (
            {"ATTACHMENT_STORAGE": "storages.backends.s3.S3Storage", "ATTACHMENT_STORAGE_OPTIONS": '["b"]'},
            "ATTACHMENT_STORAGE_OPTIONS must be a JSON object",
        ),
        ({"ATTACHMENT_MAX_BYTES": "0"}, "ATTACHMENT_MAX_BYTES=0 must be at least 1"),
        (
            {"ATTACHMENT_MAX_BYTES": "1000", "ATTACHMENTS_PER_CHALLENGE_MAX_BYTES": "999"},
            "ATTACHMENTS_PER_CHALLENGE_MAX_BYTES must be at least ATTACHMENT_MAX_BYTES",
        ),
    ],
)
def test_bad_file_settings_stop_the_site_with_a_clear_message(env, message):
    result = manage("check", **PRODUCTION, **env)

    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_file_settings_have_sensible_defaults(settings):
    assert settings.ATTACHMENT_MAX_BYTES == 50 * 1024 * 1024
    assert settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES == 200 * 1024 * 1024
    assert settings.STORAGES["attachments"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
