"""Helpers of the challenge-file tests: a storage of their own, the admin's change form as a browser posts it."""

from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages
from django.db.models import Model
from django.test import override_settings

from challenges.models import ChallengeFile

FILES_PREFIX = "files"  # the inline's formset prefix: the related name of ChallengeFile.project
LOCAL = "django.core.files.storage.FileSystemStorage"


@contextmanager
def attachment_storage(backend: str, options: dict):
    """Challenge files kept in this storage for the block, as ATTACHMENT_STORAGE would configure it.

    The model's file field resolves its storage once, at import: it is pointed at the
    storage the new STORAGES setting makes, and back after.
    """
    changed = {**settings.STORAGES, "attachments": {"BACKEND": backend, "OPTIONS": options}}
    field = ChallengeFile._meta.get_field("file")
    saved = field.storage
    with override_settings(STORAGES=changed):
        field.storage = storages["attachments"]
        try:
            yield field.storage
        finally:
            field.storage = saved


@contextmanager
def attachments_in(folder):
    """Challenge files kept in the local folder `folder` (made if missing) for the block."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with attachment_storage(LOCAL, {"location": Path(folder), "base_url": None}) as storage:
        yield storage


def stored_objects(storage, folder: str = "") -> list[str]:
    """Every object in the storage (its folders walked), sorted."""
    folders, names = storage.listdir(folder)
    found = [f"{folder}{name}" for name in names]
    for sub in folders:
        found += stored_objects(storage, f"{folder}{sub}/")
    return sorted(found)


def _posted(value):
    if isinstance(value, Model):
        return value.pk
    if value is None:
        return ""
    return value


def change_form_data(response) -> dict:
    """The POST data of an admin change (or add) page as rendered: every form and inline left as it is.

    File inputs send nothing (no new upload) and unticked checkboxes are left out, as a
    browser does.
    """
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
        forms += formset.forms
    for form in forms:
        for name, field in form.fields.items():
            bound = form[name]
            value = bound.value()
            kind = getattr(field.widget, "input_type", "")
            if kind == "file":
                continue
            if kind == "checkbox" or isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
                continue
            if isinstance(value, list | tuple):
                data[bound.html_name] = [_posted(item) for item in value]
            else:
                data[bound.html_name] = _posted(value)
    return data


def add_file_form(data: dict, *, name: str = "", upload=None) -> int:
    """Add a new file row to posted change-form data; its index."""
    index = int(data[f"{FILES_PREFIX}-TOTAL_FORMS"])
    data[f"{FILES_PREFIX}-TOTAL_FORMS"] = index + 1
    data[f"{FILES_PREFIX}-{index}-name"] = name
    if upload is not None:
        data[f"{FILES_PREFIX}-{index}-file"] = upload
    return index


def file_form_index(data: dict, attachment: ChallengeFile) -> int:
    """The index of an existing file's row in posted change-form data."""
    for index in range(int(data[f"{FILES_PREFIX}-INITIAL_FORMS"])):
        if str(data.get(f"{FILES_PREFIX}-{index}-id")) == str(attachment.pk):
            return index
    raise LookupError(f"{attachment} is not on the page")
