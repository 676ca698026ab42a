"""Exports that are safe to open in a spreadsheet.

A cell whose text starts with =, +, -, @, a tab or a carriage return is read as a formula
by Excel, LibreOffice and Google Sheets: a student named `=HYPERLINK("https://evil.test",
"grades")` would put a live link, or worse, in the instructor's spreadsheet. Such a
cell gets a leading single quote, which spreadsheets show as text and hide.
https://owasp.org/www-community/attacks/CSV_Injection

Every export resource (django-import-export) inherits FormulaSafeExportMixin; a test
checks that each resource the admin offers does.
"""

import datetime

from django.utils import timezone

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value):
    """`value` with a leading quote when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class FormulaSafeExportMixin:
    """For a django-import-export resource: every exported cell goes through neutralise_formula.

    Placed before ModelResource in the bases, so dehydrate_<field> methods are covered too.
    """

    def export_field(self, field, instance, **kwargs):
        return neutralise_formula(super().export_field(field, instance, **kwargs))


def iso_in_zone(moment: datetime.datetime | None, zone) -> str:
    """ISO 8601 in a class's zone, with its offset (2025-03-02T14:05:00+01:00); empty for none."""
    return timezone.localtime(moment, zone).isoformat(timespec="seconds") if moment else ""


class ZonedExportMixin:
    """For an export resource whose times are written in the class's zone: the admin passes `zone`
    (get_export_resource_kwargs); without one, UTC."""

    def __init__(self, *, zone=datetime.UTC, **kwargs):
        super().__init__(**kwargs)
        self.zone = zone
