"""Roster import and export (django-import-export).

A class list comes in as CSV with e-mail, first name, last name and role. The import
runs as a dry run first (the preview, with errors per row); nothing is written while
any row is wrong. New users are created through the same service as everywhere
(audit row, UserRegistered event) and get a welcome e-mail with a set-password link.
Exports are safe to open in a spreadsheet (vulhub.lib.exports).

A roster is bounded: at most settings.ROSTER_IMPORT_MAX_ROWS rows and
ROSTER_IMPORT_MAX_BYTES bytes, so the preview and the import each finish well within the
request timeout. A file that cannot be a roster (not UTF-8, binary, not CSV, without an
"email" column, empty, over a cap, the same e-mail twice) is refused whole with one
sentence (`roster_upload_problem`, `roster_problem`), before any row is read.

The preview reads the class's existing users in one query and writes nothing: a row is
checked by its fields, and its e-mail against that lookup, not by a query and an insert
per row (a 500-row preview took ten seconds that way; see docs/security.md).
"""

import codecs
import csv
import io
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.exceptions import ValidationError
from django.db.models.functions import Lower
from django.template.defaultfilters import filesizeformat
from django.utils.encoding import force_str
from django.utils.html import format_html
from django.utils.text import Truncator
from import_export import fields, resources
from import_export.resources import Diff
from import_export.results import Error, Result
from import_export.widgets import CharWidget

from audit.api import in_bulk
from vulhub.lib.exports import FormulaSafeExportMixin

from .models import User
from .services import user_register
from .welcome import send_welcome_on_commit

logger = logging.getLogger(__name__)

ROLES = {role.value for role in User.Role}
COLUMNS = ("email", "first_name", "last_name", "role")  # "email" required, the others optional
# What each column holds, as the import page and the template file explain them.
COLUMN_HELP = (
    ("email", True, "The person's e-mail: they log in with it. An e-mail already in the class updates that person."),
    ("first_name", False, "First name."),
    ("last_name", False, "Last name."),
    ("role", False, "One of the roles below, by its code or its name. Empty: Student."),
)
# The roles a roster may give, in the order the import page lists them (students first).
ROLE_CHOICES = (
    (User.Role.STUDENT.value, User.Role.STUDENT.label, "Plays the challenges; sees only the student pages."),
    (User.Role.INSTRUCTOR.value, User.Role.INSTRUCTOR.label, "Authors challenges, grades, awards badges in the admin."),
    (
        User.Role.ADMIN.value,
        User.Role.ADMIN.label,
        "Everything an instructor does, plus the class settings and the roster.",
    ),
)
TEMPLATE_ROWS = (
    ("ada.lovelace@example.edu", "Ada", "Lovelace", User.Role.STUDENT.value),
    ("grace.hopper@example.edu", "Grace", "Hopper", User.Role.INSTRUCTOR.value),
)


def roles_in_words() -> str:
    """ "STUDENT (Student), INSTRUCTOR (Instructor) or ADMIN (Tenant admin)"."""
    named = [f"{code} ({label})" for code, label, _ in ROLE_CHOICES]
    return f"{', '.join(named[:-1])} or {named[-1]}"


def roster_template_csv() -> str:
    """A roster a tenant admin fills in: the header the import reads and two example rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(TEMPLATE_ROWS)
    return out.getvalue()


@dataclass(frozen=True)
class RowProblem:
    """A row the import refused, as the import page lists it: where it is, whose it is, what to fix."""

    line: int  # the row as a spreadsheet numbers it: the header is row 1
    email: str
    name: str
    messages: tuple[str, ...]


def _column_message(field: str, message: str) -> str:
    column = field if field in COLUMNS else ""
    return f"{column}: {message}" if column else message


def row_problems(result) -> list[RowProblem]:
    """Every refused row of an import's result, in file order, each message a sentence.

    Rows whose fields are wrong (result.invalid_rows) and rows the import could not save
    (result.row_errors: an unexpected error, told without its internals) alike.
    """
    headers = getattr(result, "roster_headers", None) or list(COLUMNS)
    problems: dict[int, RowProblem] = {}

    def add(number, row, messages):
        row = {column_name(key): value for key, value in dict(row or {}).items()}
        name = f"{row.get('first_name') or ''} {row.get('last_name') or ''}".strip()
        known = problems.get(number)
        messages = (*known.messages, *messages) if known else tuple(messages)
        problems[number] = RowProblem(number + 1, str(row.get("email") or "").strip(), name, messages)

    for invalid in result.invalid_rows:
        messages = [
            _column_message(field, str(message)) for field, errors in invalid.error_dict.items() for message in errors
        ]
        add(invalid.number, zip(headers, invalid.values, strict=False), messages)
    for number, errors in result.row_errors():
        messages = [
            str(error.error)
            if isinstance(error.error, ValueError | ValidationError)
            else "This row could not be saved. Check its e-mail and role, then upload the file again."
            for error in errors
        ]
        add(number, errors[0].row if errors else None, messages)
    return [problems[number] for number in sorted(problems)]


class _Discard(Exception):
    def __init__(self, result):
        self.result = result


class RosterFileError(Exception):
    """A file-level refusal of a roster; its message is the sentence the admin reads."""


def column_name(header) -> str:
    """Headers are read without case or surrounding spaces: "Email " is the email column."""
    return str(header or "").strip().lower()


def _names(headers) -> str:
    shown = [f'"{Truncator(header).chars(30)}"' if str(header).strip() else "(no name)" for header in headers]
    return ", ".join(shown[:5])


def roster_problem(headers, rows) -> str | None:
    """Why a roster with these headers and rows cannot be imported (one sentence), or None.

    Both the uploaded file (roster_upload_problem) and the dataset the import reads
    (RosterResource.import_data) go through this one check.
    """
    names = [column_name(header) for header in headers]
    if "email" not in names:
        return f"The first row must name the columns: email (required), {', '.join(COLUMNS[1:])}."
    unknown = [header for header, name in zip(headers, names, strict=True) if name not in COLUMNS]
    if unknown:
        return f"Unknown column(s) {_names(unknown)}: a roster has the columns {', '.join(COLUMNS)}."
    if len(set(names)) != len(names):
        return "A column is named twice in the first row."
    limit = settings.ROSTER_IMPORT_MAX_ROWS
    email = names.index("email")
    seen: dict[str, int] = {}
    count = 0
    for number, row in enumerate(rows, 1):
        count = number
        if number > limit:
            return f"A roster has at most {limit:,} rows and this file has more: split it and import each part."
        address = str(row[email] if email < len(row) else "").strip().lower()
        if address and address in seen:
            return f"Rows {seen[address]} and {number} under the header have the same e-mail: list each person once."
        seen[address] = number
    if count == 0:
        return "The file has no rows under its header."
    return None


def roster_upload_problem(upload) -> str | None:
    """Why the uploaded roster file cannot be imported (one sentence), or None; read only when small enough."""
    limit = settings.ROSTER_IMPORT_MAX_BYTES
    if upload.size > limit:
        return f"The file is {filesizeformat(upload.size)}: a roster is at most {filesizeformat(limit)}."
    data = b"".join(upload.chunks())
    if b"\x00" in data and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "This is not a CSV file (it holds binary data): save the class list as CSV and upload it again."
    try:
        text = data.decode("utf-8-sig")  # as the import reads it (ImportMixin.from_encoding); a BOM is fine
    except UnicodeDecodeError:
        return 'The file is not UTF-8 text: in your spreadsheet, save it as "CSV UTF-8" and upload it again.'
    if not text.strip():
        return "The file is empty."
    reader = csv.reader(io.StringIO(text))
    try:
        headers = next(reader)
        rows = [row for row in reader if row]  # blank lines are skipped, as the import does
    except csv.Error as error:
        return f"Line {reader.line_num} of the file is not valid CSV ({error})."
    for number, row in enumerate(rows, 1):
        if len(row) > len(headers):
            return f"Row {number} under the header has more cells than the header has columns."
    return roster_problem(headers, rows)


class RoleWidget(CharWidget):
    """A role by its code or its name, in any letter case ("student", "Tenant admin"); empty: a student."""

    def clean(self, value, row=None, **kwargs):
        written = " ".join(str(value or "").split())
        if not written:
            return User.Role.STUDENT
        by_name = {label.lower(): code for code, label, _ in ROLE_CHOICES}
        role = written.upper() if written.upper() in ROLES else by_name.get(written.lower())
        if role is None:
            shown = Truncator(written).chars(40)
            raise ValueError(
                f"The role “{shown}” is not one a roster may give: write {roles_in_words()}, "
                "or leave it empty for a student."
            )
        return role


class RosterDiff(Diff):
    """A preview cell: the value, or the old one struck out before the new one.

    The package's cells carry inline style attributes (diff_match_patch), which the
    Content-Security-Policy refuses; these are plain <del>/<ins>, styled by the admin's sheet.
    """

    def as_html(self):
        cells = []
        for old, new in zip(self.left, self.right, strict=False):
            old, new = force_str(old if old is not None else ""), force_str(new if new is not None else "")
            if self.new or old == new:
                cells.append(format_html("{}", new))
            else:
                cells.append(
                    format_html("<del>{}</del> <ins>{}</ins>", old, new) if old else format_html("<ins>{}</ins>", new)
                )
        return cells


class RosterResource(resources.ModelResource):
    email = fields.Field(attribute="email", column_name="email")
    first_name = fields.Field(attribute="first_name", column_name="first_name")
    last_name = fields.Field(attribute="last_name", column_name="last_name")
    role = fields.Field(attribute="role", column_name="role", widget=RoleWidget())

    class Meta:
        model = User
        fields = ("email", "first_name", "last_name", "role")
        import_id_fields = ("email",)
        skip_unchanged = True
        report_skipped = True
        use_transactions = True
        clean_model_instances = True

    def __init__(self, *, tenant=None, actor=None, request=None, **kwargs):
        super().__init__(**kwargs)
        self.tenant, self.actor, self.request = tenant, actor, request
        self.welcomed: list[User] = []
        self.existing: dict[str, User] = {}

    def get_queryset(self):
        return User.objects.for_tenant(self.tenant)

    def get_diff_class(self):
        return RosterDiff

    def import_data(self, dataset, dry_run=False, **kwargs):
        """A dataset that is no roster is refused whole, before any row; the class's users are read in one query.

        The real import records its audit rows and events in bulk (one write for the class).
        """
        dataset.headers = [column_name(header) for header in dataset.headers or []]
        problem = roster_problem(dataset.headers, dataset)
        if problem:
            return self.refused(problem)
        self.existing = self.existing_users(dataset["email"])
        if dry_run:
            return self.with_headers(super().import_data(dataset, dry_run=True, **kwargs), dataset)
        try:
            with in_bulk():
                result = self.with_headers(super().import_data(dataset, dry_run=False, **kwargs), dataset)
                if result.has_errors() or result.has_validation_errors():
                    raise _Discard(result)  # leave the block by rolling back: no records, no mail
                return result
        except _Discard as discard:
            return discard.result

    @staticmethod
    def with_headers(result: Result, dataset) -> Result:
        """The file's columns, for naming a refused row's e-mail and name (row_problems)."""
        result.roster_headers = list(dataset.headers or [])
        return result

    def refused(self, problem: str) -> Result:
        result = self.get_result_class()()
        result.append_base_error(Error(RosterFileError(problem)))
        return result

    def existing_users(self, emails) -> dict[str, User]:
        """The class's users with these e-mails, by lower-cased e-mail (as `with_email` matches them)."""
        wanted = {str(email or "").strip().lower() for email in emails} - {""}
        found = self.get_queryset().annotate(email_lower=Lower("email")).filter(email_lower__in=wanted)
        return {user.email_lower: user for user in found}

    def handle_import_error(self, result, error, raise_errors=False):
        # a file-level error reaches the page as a sentence, never as the exception's text or traceback
        if not isinstance(error, RosterFileError):
            logger.warning("roster import failed", exc_info=error)
            error = RosterFileError("The file could not be imported; nothing was changed.")
        super().handle_import_error(result, error, raise_errors)

    def get_instance(self, instance_loader, row):
        return self.existing.get(str(row.get("email") or "").strip().lower())

    def import_instance(self, instance, row, **kwargs):
        # Before the fields, so a row with a bad field is still checked as this tenant's.
        instance.tenant = self.tenant
        if instance.pk is None:
            # Only to pass full_clean: a new user is made by user_register, with an unusable password
            # of its own (they choose one from the welcome e-mail); this instance is never saved.
            # set_unusable_password() here drew 40 random characters per row of every preview.
            instance.password = UNUSABLE_PASSWORD_PREFIX
        super().import_instance(instance, row, **kwargs)
        instance.email = (instance.email or "").strip()

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """A row's fields, checked without a query.

        The tenant is the admin's own; whether the e-mail is taken in the class was answered
        by the one lookup of `existing_users` (a taken e-mail updates its user; the file holds
        each e-mail once, `roster_problem`); the role by RoleWidget. The database's
        constraints still stand behind them.
        """
        errors = dict(import_validation_errors or {})
        try:
            instance.full_clean(exclude=[*errors, "tenant"], validate_unique=False, validate_constraints=False)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def save_instance(self, instance, is_create, row, **kwargs):
        if kwargs.get("dry_run"):
            return  # the preview writes nothing (a rolled-back insert per row held the transaction for minutes)
        super().save_instance(instance, is_create, row, **kwargs)

    def do_instance_save(self, instance, is_create):
        if not is_create:
            instance.save()
            return
        user = user_register(
            tenant=self.tenant,
            email=instance.email,
            password=None,
            first_name=instance.first_name,
            last_name=instance.last_name,
            role=instance.role,
            actor=self.actor,
        )
        instance.pk = user.pk
        self.welcomed.append(user)

    def after_import(self, dataset, result, **kwargs):
        super().after_import(dataset, result, **kwargs)
        if kwargs.get("dry_run") or result.has_errors() or result.has_validation_errors():
            return
        for user in self.welcomed:
            send_welcome_on_commit(self.request, user)


class UserExportResource(FormulaSafeExportMixin, resources.ModelResource):
    class Meta:
        model = User
        fields = ("email", "first_name", "last_name", "role", "is_active", "date_joined", "last_login")
        export_order = fields
