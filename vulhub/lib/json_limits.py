"""JSON typed into a form, read within limits: a clear form error, never a 500.

Python's `json.loads` reads whatever it is given: `[[[[…]]]]` nested a few thousand deep
raises RecursionError, a number of 5,000 digits raises ValueError (the interpreter's limit
on int() of long text), `NaN` and `1e999` become floats PostgreSQL's JSON cannot hold,
`{"n": 1, "n": 2}` silently keeps the last key, and `"\\u0000"` parses to text the
database refuses. Django's forms.JSONField catches only JSONDecodeError, in `to_python`
and again in `bound_data` (when the form is shown again), so each of these was a 500.

`parse_bounded_json` checks the size and the nesting depth on the text before parsing
(so the parser cannot recurse deeply), checks numbers, strings and keys while parsing,
and counts the members after; every refusal is a ValidationError with one sentence.
`BoundedJSONField` is forms.JSONField reading through it; give a form's field its own
limits with a subclass (for `Meta.field_classes`) or the `limits` argument.
"""

import json
import math
from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString


@dataclass(frozen=True)
class JSONLimits:
    max_bytes: int = 16_384  # of the text, UTF-8
    max_depth: int = 10  # objects and arrays inside each other
    max_items: int = 1_000  # keys of objects and items of arrays, over the whole value
    max_int_digits: int = 18  # a bigint holds 18 digits; more is no parameter anyone means
    max_string_length: int = 1_000  # characters of a key or a string


def _nesting_depth(text: str) -> int:
    """How deep objects and arrays nest in `text`, brackets in strings left out; no parsing, no recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse(message: str):
    raise ValidationError(message, code="invalid")


def _checked_text(value: str, limits: JSONLimits) -> str:
    if len(value) > limits.max_string_length:
        _refuse(f"Text in the JSON is at most {limits.max_string_length} characters long.")
    if "\x00" in value or any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        _refuse("Text in the JSON cannot hold NUL characters or lone surrogates (\\u0000, \\ud800…).")
    return value


def _parse(text: str, limits: JSONLimits):
    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > limits.max_int_digits:
            _refuse(f"Whole numbers have at most {limits.max_int_digits} digits.")
        return int(digits)

    def parse_float(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            _refuse("Numbers must be finite: no NaN or Infinity.")
        return value

    def parse_constant(name: str):
        _refuse("Numbers must be finite: no NaN or Infinity.")

    def object_pairs(pairs: list) -> dict:
        keys = [_checked_text(key, limits) for key, _ in pairs]
        if len(set(keys)) != len(keys):
            duplicate = next(key for key in keys if keys.count(key) > 1)
            _refuse(f"The key {json.dumps(duplicate)} appears more than once in an object.")
        return dict(pairs)

    try:
        return json.loads(
            text,
            parse_int=parse_int,
            parse_float=parse_float,
            parse_constant=parse_constant,
            object_pairs_hook=object_pairs,
        )
    except json.JSONDecodeError as error:
        _refuse(f"This is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno}).")
    except (RecursionError, ValueError, OverflowError):  # a guard: the checks above come first
        _refuse("This JSON cannot be read: keep it small and simple.")


def _count_members(value, limits: JSONLimits) -> int:
    """Keys and items over the whole value; strings checked on the way. Depth is bounded already."""
    if isinstance(value, str):
        _checked_text(value, limits)
        return 0
    if isinstance(value, dict):
        return len(value) + sum(_count_members(member, limits) for member in value.values())
    if isinstance(value, list):
        return len(value) + sum(_count_members(member, limits) for member in value)
    return 0


def parse_bounded_json(text: str, limits: JSONLimits = JSONLimits()):
    """The value of the JSON `text`, or a ValidationError saying which limit it breaks."""
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_bytes:
        _refuse(f"The JSON is at most {limits.max_bytes:,} bytes long.")
    if _nesting_depth(text) > limits.max_depth:
        _refuse(f"Objects and arrays nest at most {limits.max_depth} deep in this JSON.")
    value = _parse(text, limits)
    if _count_members(value, limits) > limits.max_items:
        _refuse(f"The JSON holds at most {limits.max_items:,} keys and items in all.")
    return value


class BoundedJSONField(forms.JSONField):
    """forms.JSONField that reads its text with parse_bounded_json (also when the form is shown again)."""

    limits = JSONLimits()

    def __init__(self, *, limits: JSONLimits | None = None, **kwargs):
        super().__init__(**kwargs)
        if limits is not None:
            self.limits = limits

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict | int | float | JSONString):
            return value
        converted = parse_bounded_json(value, self.limits)
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data, initial):
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return parse_bounded_json(data, self.limits)
        except ValidationError:
            return InvalidJSONInput(data)
