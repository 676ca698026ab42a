"""The files of a challenge, uploaded inline on its admin page.

The rules are those of challenges.files: every problem is a form error and nothing is
saved (the admin saves only when every form is valid), so no object reaches the storage
either. Size and sha256 are computed from the upload as it is read. A new upload on an
existing row replaces its stored object, and deleting a row deletes its object: in both
cases the old object goes once the change has committed, so a rollback never loses a
file. The audit rows come from the model's registration (challenges.records): a
replacement is an update whose changes hold the old and new file, size and sha256.
"""

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.widgets import AdminFileWidget
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from vulhub.lib.admin import LabelledInlineFormSet

from . import files
from .models import ChallengeFile


class _Current:
    """What the file widget shows of the stored file: its name, linked to the checked download."""

    def __init__(self, name: str, url: str):
        self.name, self.url = name, url

    def __str__(self) -> str:
        return self.name


class StoredFileWidget(AdminFileWidget):
    """Django's admin file input, linking the current file to the download view, not to a storage URL.

    The storage has no public URL (the folder is not served; a bucket's presigned URL would
    skip the access check): staff download through the same view as students.
    """

    current: _Current | None = None

    def is_initial(self, value):
        return bool(value) and self.current is not None

    def format_value(self, value):
        return self.current if self.is_initial(value) else None


class ChallengeFileForm(forms.ModelForm):
    class Meta:
        model = ChallengeFile
        fields = ["name", "file"]
        widgets = {"file": StoredFileWidget, "name": forms.TextInput(attrs={"size": 24})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # the object a new upload replaces: deleted once the replacement has committed
        self.stored_name = self.instance.file.name if self.instance.pk else ""
        self.measured: files.Measured | None = None
        name = self.fields["name"]
        name.required = False
        name.help_text = "Students download it under this name. Empty: the uploaded file's name."
        upload = self.fields["file"]
        upload.error_messages["empty"] = "The file is empty: upload a file with something in it."
        upload.help_text = (
            f"At most {files.size_text(settings.ATTACHMENT_MAX_BYTES)}; a challenge's files together at most "
            f"{files.size_text(settings.ATTACHMENTS_PER_CHALLENGE_MAX_BYTES)}. A new upload replaces the file."
        )
        if self.instance.pk and self.instance.project_id:
            upload.widget.current = _Current(self.instance.name, _download_url(self.instance))

    @property
    def replaced_name(self) -> str:
        """The stored object this form's upload replaces ("" when nothing is replaced)."""
        if self.measured is not None and self.stored_name and self.instance.file.name != self.stored_name:
            return self.stored_name
        return ""

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if files.is_new_upload(upload):
            self.measured = files.measure(upload)
            files.check_size(self.measured.size)
        return upload

    def clean(self):
        cleaned = super().clean()
        if "name" in self.errors:
            return cleaned  # the name's own error (too long, a NUL) says what to do
        upload = cleaned.get("file")
        given = (cleaned.get("name") or "").strip()
        if not given and files.is_new_upload(upload):
            given = upload.name
        elif not given and "file" in self.errors:
            return cleaned  # the file's own error says what to do
        try:
            cleaned["name"] = files.clean_name(given)
        except ValidationError as error:
            self.add_error("name", error)
            return cleaned
        if self.measured is not None and "file" in cleaned:
            self.instance.size = self.measured.size
            self.instance.sha256 = self.measured.sha256
            self.instance.uploaded_at = timezone.now()
            upload.name = files.storage_name(cleaned["name"])  # the stored object's key ends with it
        return cleaned


def _download_url(attachment: ChallengeFile) -> str:
    try:
        return reverse("challenges:file", kwargs={"slug": attachment.project.slug, "file_id": attachment.pk})
    except NoReverseMatch:
        return ""


class ChallengeFileFormSet(LabelledInlineFormSet):
    """The files of one challenge: their total checked, replaced and deleted objects removed after commit."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept, total = [], 0
        for form in self.forms:
            if form.instance.pk:
                kept.append(form.instance.pk)
            if self._should_delete_form(form) or (not form.instance.pk and not form.has_changed()):
                continue
            total += form.instance.size or 0
        if self.instance.pk:  # files added meanwhile, not among these forms, count too
            total += files.stored_total(self.instance, excluding=kept)
        files.check_total(total)

    def save(self, commit=True):
        try:
            return super().save(commit)
        except BaseException:
            self._delete_new_objects()  # the transaction rolls back: nothing refers to them
            raise

    def save_new(self, form, commit=True):
        form.instance.tenant_id = self.instance.tenant_id  # the key of its object starts with it
        return super().save_new(form, commit=commit)

    def save_existing(self, form, obj, commit=True):
        saved = super().save_existing(form, obj, commit=commit)
        if commit:
            files.delete_objects_on_commit(saved.file.storage, [form.replaced_name])
        return saved

    def delete_existing(self, obj, commit=True):
        name, storage = obj.file.name, obj.file.storage
        super().delete_existing(obj, commit=commit)
        if commit:
            files.delete_objects_on_commit(storage, [name])

    def _delete_new_objects(self) -> None:
        for form in self.forms:
            if form.measured is None:
                continue
            stored = form.instance.file
            if getattr(stored, "_committed", False) and stored.name and stored.name != form.stored_name:
                stored.storage.delete(stored.name)


class ChallengeFileInline(admin.TabularInline):
    model = ChallengeFile
    form = ChallengeFileForm
    formset = ChallengeFileFormSet
    extra = 0
    fields = ["name", "file", "size_shown", "sha256_shown"]
    readonly_fields = ["size_shown", "sha256_shown"]
    verbose_name = "file"
    verbose_name_plural = "Files (students download them from the challenge's page, with their size and sha256)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project")  # each row links to its download

    @admin.display(description="size")
    def size_shown(self, obj):
        return filesizeformat(obj.size) if obj and obj.size else "—"  # "256.0 KB", kept on one line

    @admin.display(description="sha256")
    def sha256_shown(self, obj):
        """The full checksum, in four lines' worth of groups so the table keeps to the page's width."""
        if not obj or not obj.sha256:
            return "—"
        groups = [obj.sha256[start : start + 16] for start in range(0, len(obj.sha256), 16)]
        return format_html_join(mark_safe("<wbr>"), "<code>{}</code>", ((group,) for group in groups))
