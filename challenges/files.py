"""Challenge files: what an upload must pass, its size and sha256, and its stored object's life.

One definition of each rule, used by the admin (challenges.file_admin), the demo seed
and the download view (scoring.file_views):

- a file is not empty and at most ATTACHMENT_MAX_BYTES; a challenge's files together
  at most ATTACHMENTS_PER_CHALLENGE_MAX_BYTES;
- its name is what students download it under, so it is a plain file name: no folder,
  no "..", no control or invisible formatting characters (a right-to-left override makes
  "txt.exe" look like "exe.txt"), no leading dot, at most 200 characters;
- size and sha256 are computed from the bytes while they stream by, never from the
  whole file in memory, so the checksum students see is that of the stored object;
- a stored object is deleted only once the transaction that stopped referring to it
  has committed: a rolled back delete or replacement never loses a file.
"""

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from audit.api import recorded

from .models import ChallengeFile, Project

CHUNK = 1024 * 1024
NAME_MAX_LENGTH = ChallengeFile._meta.get_field("name").max_length
# Cc: control characters (NUL, tab, new line...); Cf: invisible formatting (right-to-left
# override, zero-width joiners); Zl, Zp: line and paragraph separators.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
STORAGE_NAME_MAX = 100


@dataclass(frozen=True)
class Measured:
    size: int
    sha256: str


def measure(content: File) -> Measured:
    """The size and sha256 of a file's bytes, read in chunks from its start (and rewound after)."""
    digest, size = hashlib.sha256(), 0
    if hasattr(content, "seek"):
        content.seek(0)
    for chunk in content.chunks(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    if hasattr(content, "seek"):
        content.seek(0)
    return Measured(size, digest.hexdigest())


def size_text(size: int) -> str:
    return filesizeformat(size).replace("\xa0", " ")


def check_size(size: int) -> None:
    """An upload's own size: not empty, not over ATTACHMENT_MAX_BYTES."""
    if size <= 0:
        raise ValidationError("The file is empty: upload a file with something in it.", code="empty")
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise ValidationError(
            f"The file is {size_text(size)}: a file may be {size_text(settings.ATTACHMENT_MAX_BYTES)} at most.",
            code="too_big",
        )


def check_total(total: int) -> None:
    """A challenge's files together (after the change): not over ATTACHMENTS_PER_CHALLENGE_MAX_BYTES."""
    limit = settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES
    if total > limit:
        raise ValidationError(
            f"The files of this challenge would total {size_text(total)}: a challenge's files may total "
            f"{size_text(limit)} at most. Nothing was saved; remove a file or upload a smaller one.",
            code="total_too_big",
        )


def clean_name(name: str) -> str:
    """A file name students can safely download under (trimmed, NFC), or a ValidationError saying what is wrong."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name:
        raise ValidationError("Give the file a name.", code="required")
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError(
            f"The name is {len(name)} characters long: a file name has at most {NAME_MAX_LENGTH}.", code="too_long"
        )
    if any(unicodedata.category(char) in FORBIDDEN_CATEGORIES for char in name):
        raise ValidationError(
            "A file name cannot contain control or invisible characters (a tab, a new line, a right-to-left "
            "override...).",
            code="control",
        )
    if "/" in name or "\\" in name:
        raise ValidationError(
            "A file name cannot contain / or \\: give the name alone, without a folder.", code="separator"
        )
    if ".." in name:
        raise ValidationError('A file name cannot contain "..".', code="dots")
    if name.startswith("."):
        raise ValidationError("A file name cannot start with a dot (a hidden file).", code="hidden")
    return name


def storage_name(name: str) -> str:
    """The last part of the stored object's key: plain ASCII, short, the extension kept.

    Students never see it (they get `name`); it keeps keys valid on any storage and file
    system whatever the name holds.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name).strip("._") or "file"
    if len(safe) > STORAGE_NAME_MAX:
        stem, dot, extension = safe.rpartition(".")
        if not dot or len(extension) > 16:
            stem, extension = safe, ""
        safe = stem[: STORAGE_NAME_MAX - len(extension) - 1].rstrip("._") + (f".{extension}" if extension else "")
    return safe


def safe_download_name(name: str) -> str:
    """The file name of a download's Content-Disposition: its name, anything path-like or invisible taken out.

    Names are checked on upload (clean_name); this holds for rows written any other way.
    """
    kept = "".join(
        "_" if char in "/\\" else char for char in name if unicodedata.category(char) not in FORBIDDEN_CATEGORIES
    )
    kept = kept.replace("..", "_").strip().lstrip(".")
    return kept[:NAME_MAX_LENGTH] or "download"


def is_new_upload(value) -> bool:
    """Whether a file field's value is a file just uploaded (not the one already stored)."""
    return isinstance(value, UploadedFile)


# --- Stored objects ---------------------------------------------------------------------


def delete_objects_on_commit(storage, names: Iterable[str]) -> None:
    """Delete these stored objects once the current transaction commits (never if it rolls back).

    Robust: a storage that fails then (a bucket out of reach) is logged by Django and
    leaves an unreferenced object behind, never an error for a change already made.
    """
    doomed = [name for name in names if name]
    if doomed:
        transaction.on_commit(lambda: delete_objects(storage, doomed), robust=True)


def delete_objects_of_projects_on_commit(projects) -> None:
    """Before deleting challenges (or a tenant): their files' objects go once the deletion commits.

    Their rows go with the challenges (CASCADE); the stored objects would stay behind.
    """
    field = ChallengeFile._meta.get_field("file")
    names = ChallengeFile.objects.filter(project__in=projects).values_list("file", flat=True)
    delete_objects_on_commit(field.storage, list(names))


def delete_objects(storage, names: Iterable[str]) -> None:
    for name in names:
        storage.delete(name)


def stored_total(project: Project, *, excluding: Iterable[int] = ()) -> int:
    """The size of a challenge's files together (leaving out the rows `excluding`)."""
    files = ChallengeFile.objects.for_tenant(project.tenant_id).filter(project=project).exclude(pk__in=list(excluding))
    return files.aggregate(total=Sum("size"))["total"] or 0


def open_for_download(attachment: ChallengeFile) -> tuple[object, int]:
    """A readable stream of a file's stored bytes and their length, never the whole file in memory.

    A local file is opened as it is (gunicorn sends it with sendfile through
    wsgi.file_wrapper). An S3 object is streamed from the bucket: django-storages' S3File
    would first download the whole object into memory.
    """
    storage = attachment.file.storage
    try:
        stored = storage.open(attachment.file.name, "rb")
    except Exception as error:
        if _is_missing(error):
            raise FileNotFoundError(f"No stored object {attachment.file.name}") from error
        raise
    s3_object = getattr(stored, "obj", None)  # django-storages' S3File: the boto3 Object, not yet read
    if s3_object is not None:
        response = s3_object.get()
        return response["Body"], response["ContentLength"]
    return stored, stored.size


def _is_missing(error: Exception) -> bool:
    """Whether a storage's error says the object does not exist (boto3's ClientError with a 404)."""
    if isinstance(error, FileNotFoundError):
        return True
    code = (getattr(error, "response", None) or {}).get("Error", {}).get("Code")
    return code in {"404", "NoSuchKey"}


# --- Writing ----------------------------------------------------------------------------


@recorded
def challenge_file_add(*, project: Project, name: str, content: File) -> ChallengeFile:
    """Attach a file to a challenge, checked as the admin checks an upload (ValidationError otherwise).

    The object is stored first, then the row inserted; should the insert fail, the object
    is deleted again.
    """
    name = clean_name(name)
    measured = measure(content)
    check_size(measured.size)
    check_total(stored_total(project) + measured.size)
    attachment = ChallengeFile(
        tenant_id=project.tenant_id,
        project=project,
        name=name,
        size=measured.size,
        sha256=measured.sha256,
        uploaded_at=timezone.now(),
    )
    attachment.full_clean(exclude=["file"])
    attachment.file.save(storage_name(name), content, save=False)
    try:
        with transaction.atomic():
            attachment.save()
    except BaseException:
        attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment
