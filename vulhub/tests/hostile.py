"""Hostile input for the tests of test_hostile_input.py: values, requests and the checks on every answer.

The values are what an attacker (or a careless browser) sends: very long text, unicode
that breaks naive code (RTL overrides, NUL bytes, lone surrogates), SQL, HTML and
JavaScript, format strings, numbers where text is expected and the reverse, and the
ids and slugs of another tenant's rows. Requests are encoded here, byte by byte, so a
lone surrogate or a NUL reaches Django exactly as a hostile client would send it.
"""

import csv
import io
import json
from collections.abc import Iterable, Mapping
from urllib.parse import quote_from_bytes, urlsplit

from django.db import connection
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

# Every row of the other tenant carries this in a name, description, answer or feedback;
# no page of the first tenant may ever show it. No request ever sends it.
LEAK_MARKER = "Qx7LEAKBETA"
# The first tenant's own rows carry this one: pages that must show them can be checked.
OWN_MARKER = "Pk3ALPHAOWN"

# Reproducible in CI: the same examples on every run, nothing written to .hypothesis/.
HOSTILE_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def hostile_settings(max_examples: int):
    return settings(HOSTILE_SETTINGS, max_examples=max_examples)


# --- the values -------------------------------------------------------------------------

SQL = [
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    '" OR ""="',
    "1' UNION SELECT email, password FROM users --",
    "1; SELECT pg_sleep(10); --",
    "%' AND 1=1 AND '%'='",
    "admin'--",
    "\\'; --",
    "1) OR (1=1",
    "$$; DROP TABLE submissions; $$",
]
# Tags and URLs that must never reach a page as they were sent: only escaped.
RAW_HTML = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    "<iframe src=javascript:alert(1)>",
]
HTML = [
    *RAW_HTML,
    '"><img src=x onerror=alert(1)>',
    "'><script>alert(1)</script>",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)",
    "data:text/html,<script>alert(1)</script>",
    "{{ 7|add:7 }}{% debug %}",
    "${7*7}",
    "'-alert(1)-'",
    "red;}</style><script>alert(1)</script>",  # out of a CSS value (the tenant's accent colour)
    "#fff;background:url(javascript:alert(1))",
]
FORMAT = ["%s%s%s%s%n", "%(password)s", "{0}", "{0.__class__.__init__.__globals__}", "{user.password}", "%x%x%x"]
UNICODE = [
    "\u202eevil\u202c.exe",  # right-to-left override
    "\u200f\u200e\u200b\u2060",  # RTL/LTR marks, zero-width space and joiner
    "\ufeffbom",
    "😀👍🏽👨‍👩‍👧",
    "\x00",
    "a\x00b",
    "\x00' OR 1=1 --",
    "\ud800",  # lone surrogates: sent as the bytes of their UTF-16 halves
    "x\udc80y",
    "\udfff\ud800",
    "Ω≈ç√∫˜µ≤≥÷",
    "ｆｕｌｌｗｉｄｔｈ１２３",
    "İıßẞ",
    "e\u0301\u0301\u0301",
    "\r\n\r\nSet-Cookie: x=1",
    "\t\x0b\x0c\x1b[31m",
    " ",
    "",
]
NUMBERS = [
    "0",
    "-1",
    "-0",
    "1.5",
    "1e9",
    "1e400",
    "NaN",
    "inf",
    "-inf",
    "0x10",
    "１２",  # fullwidth digits: int() takes them
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "99999999999999999999999999999999999999",
    "1" * 5000,  # int() refuses more than 4300 digits
    "true",
    "null",
    "[]",
    "{}",
]
PATHS = ["../../../etc/passwd", "//evil.example", "https://evil.example/", "/admin/", "\\\\evil.example", "%2e%2e%2f"]
HUGE = [
    "A" * 100_000,
    "é" * 100_000,
    "😀" * 30_000,
    ("' OR 1=1 -- " * 10_000)[:100_000],
    "<script>alert(1)</script>" * 4_000,
    "a " * 50_000,  # fifty thousand search terms
]
FIXED = [*SQL, *HTML, *FORMAT, *UNICODE, *NUMBERS, *PATHS]


def hostile_text(known: Iterable[str] = ()) -> st.SearchStrategy[str]:
    """One hostile value: a known payload, random unicode, a huge string, or one of `known`
    (another tenant's ids and slugs), alone or wrapped in text."""
    unicode = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
    surrogate = st.integers(0xD800, 0xDFFF).map(chr)
    atom = st.one_of(
        st.sampled_from(FIXED),
        unicode,
        surrogate,
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
    )
    if known := list(known):
        atom = st.one_of(st.sampled_from(known), atom)
    wrapped = st.tuples(st.sampled_from(["", " ", "x", "\x00"]), atom, st.sampled_from(["", " ", "'", "\x00"])).map(
        "".join
    )
    # huge values cost the most to send and parse: one draw in seven
    return st.one_of(atom, atom, atom, atom, wrapped, wrapped, st.sampled_from(HUGE))


def _nested(depth: int, kind: str) -> str:
    if kind == "array":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"n":' * depth + "1" + "}" * depth
    return "[" * depth  # never closed


def hostile_json() -> st.SearchStrategy[str]:
    """Text typed into a JSON field to break the parser or the database rather than the rule.

    Deep nesting (Python's parser recursed into a RecursionError), numbers of thousands of
    digits (int() refuses more than 4,300: a ValueError), NaN and Infinity and 1e999 (floats
    PostgreSQL's JSON cannot hold), duplicate keys, text PostgreSQL's jsonb refuses (\\u0000,
    lone surrogates), huge strings and arrays, and text that is no JSON at all.
    """
    nested = st.builds(_nested, st.integers(1, 20_000), st.sampled_from(["array", "object", "open"]))
    digits = st.builds(
        lambda n, sign, wrap: wrap.replace("N", sign + "9" * n),
        st.integers(10, 6_000),
        st.sampled_from(["", "-"]),
        st.sampled_from(["N", '{"n": N}', "[N]", '{"n": N.5}', '{"n": 1eN}']),
    )
    constants = st.sampled_from(
        ["NaN", "Infinity", "-Infinity", '{"n": NaN}', '{"n": -Infinity}', "[1e999]", '{"n": 1e400}']
    )
    duplicates = st.sampled_from(['{"n": 1, "n": 2}', '{"category": "a", "category": "b", "n": 1}'])
    bad_text = st.sampled_from(['"\\u0000"', '{"category": "a\\u0000b"}', '{"\\ud800": 1}', '{"category": "\\udfff"}'])
    huge = st.one_of(
        st.integers(1, 300_000).map(lambda n: json.dumps({"category": "x" * n, "n": 1})),
        st.integers(1, 100_000).map(lambda n: json.dumps(list(range(n)))),
        st.integers(1, 20_000).map(lambda n: json.dumps({f"k{i}": i for i in range(n)})),
    )
    return st.one_of(nested, digits, constants, duplicates, bad_text, huge, hostile_text())


# Cells a spreadsheet runs as formulas (vulhub.lib.exports): imported as text, exported neutralised.
FORMULAS = ['=HYPERLINK("http://evil.example","grades")', "=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1"]
ROSTER_HEADERS = [
    "email,first_name,last_name,role",
    "Email , First_Name,LAST_NAME,Role",
    "email,role",
    "first_name,last_name,role",  # no e-mail
    "role,email,tenant,is_superuser",
    "email,email,role",
    "email,first_name,",
    "",
]
# Files that are no CSV at all: an image, a zip (an .xlsx), UTF-16 and UTF-32 text, a lone BOM, NULs.
NOT_CSV = [
    b"",
    b"\xef\xbb\xbf",
    b"\n\n\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01",
    b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml",
    "email,role\nada@alpha.test,student\n".encode("utf-16"),
    "email,role\nada@alpha.test,student\n".encode("utf-32"),
    b"email,role\nada\x00@alpha.test,student\n",
    b"email,role\n\xff\xfe\xfd,student\n",
]


def _csv_file(header: str, rows: list[list[str]], encoding: str, newline: str) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    if header:
        buffer.write(header + newline)
    writer.writerows(rows)
    errors = "surrogatepass" if encoding.startswith("utf") else "replace"
    return buffer.getvalue().encode(encoding, errors)


def hostile_csv(cells: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """A roster file as a hostile admin (or a broken spreadsheet) uploads it.

    Headers right, odd or missing; cells from `cells` (honest values), formulas, hostile
    text, a field larger than the csv module reads (131,072 characters), quotes and line
    breaks; rows ragged; written in UTF-8 with or without a BOM, UTF-16, Latin-1 or
    cp1252, with any line ending; or a file that is no CSV at all.
    """
    cell = st.one_of(
        cells,
        cells,
        st.sampled_from(FORMULAS),
        hostile_text(),
        st.just("x" * 140_000),
        st.sampled_from(['a"b', '"unclosed', "line\nbreak", "a,b", " "]),
    )
    rows = st.lists(st.lists(cell, min_size=1, max_size=6), max_size=5)
    header = st.one_of(st.sampled_from(ROSTER_HEADERS), hostile_text())
    encoding = st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])
    newline = st.sampled_from(["\n", "\r\n", "\r"])
    text_file = st.builds(_csv_file, header, rows, encoding, newline)
    return st.one_of(text_file, text_file, text_file, st.sampled_from(NOT_CSV), st.binary(max_size=512))


def hostile_or(valid: st.SearchStrategy, known: Iterable[str] = ()) -> st.SearchStrategy:
    """A field's value: valid often enough that forms are also accepted, hostile otherwise."""
    return st.one_of(valid, hostile_text(known), hostile_text(known))


# A field as sent: a value, several values under one name (a list), or absent (None).
def field_value(value: st.SearchStrategy[str]) -> st.SearchStrategy:
    return st.one_of(value, value, value, st.lists(value, min_size=2, max_size=3), st.none())


def form_fields(data, valid: Mapping[str, object], known: Iterable[str] = ()) -> dict:
    """A form as an attacker fills it: each field one of its `valid` values (a tuple, or a strategy),
    except a drawn few that get hostile values or wrong types.

    Which fields are attacked is drawn too: the first example Hypothesis tries attacks
    none (the honest form, accepted), the others some. So both branches of a test's
    checks run, the accepted one and the refused one.
    """
    if not valid:
        return {}
    known = list(known)
    attacked = data.draw(st.sets(st.sampled_from(sorted(valid))), label="attacked fields")
    fields = {}
    for name, values in valid.items():
        honest = st.sampled_from(values) if isinstance(values, tuple) else values
        strategy = field_value(hostile_text(known)) if name in attacked else honest
        fields[name] = data.draw(strategy, label=name)
    return fields


# --- encoding requests byte by byte ------------------------------------------------------


def _quote(value: str) -> str:
    # "surrogatepass": a lone surrogate goes out as the (invalid UTF-8) bytes of its half
    return quote_from_bytes(str(value).encode("utf-8", "surrogatepass"), safe="")


def urlencode(fields: Mapping[str, object]) -> str:
    """`name=value&...`, every byte escaped; a list value repeats the name, None leaves it out."""
    pairs = []
    for name, value in fields.items():
        if value is None:
            continue
        for one in value if isinstance(value, list | tuple) else [value]:
            pairs.append(f"{_quote(name)}={_quote(one)}")
    return "&".join(pairs)


def as_received(value: str) -> str:
    """The text Django reads from what was sent: invalid UTF-8 (a lone surrogate) becomes U+FFFD."""
    return str(value).encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def path_segment(value: str) -> str:
    return _quote(value) or "%20"


def get(client, path: str, params: Mapping[str, object] | None = None, **extra):
    query = urlencode(params or {})
    return client.get(f"{path}?{query}" if query else path, **extra)


def post(client, path: str, fields: Mapping[str, object], *, as_json: bool = False, **extra):
    if as_json:  # a body a form does not read: every field counts as missing
        body = json.dumps(fields, ensure_ascii=True)
        return client.post(path, data=body, content_type="application/json", **extra)
    return client.post(path, data=urlencode(fields), content_type="application/x-www-form-urlencoded", **extra)


# --- what every answer must satisfy ----------------------------------------------------


def body_text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def assert_answer_is_safe(response) -> str:
    """No server error, nothing of the other tenant, no payload unescaped; returns the body.

    Each status is a Hypothesis event: `pytest --hypothesis-show-statistics` tells how
    many examples were accepted and how many refused.
    """
    if currently_in_test_context():
        event(f"HTTP {response.status_code}")
    assert response.status_code < 500, f"a {response.status_code}"
    body = body_text(response)
    assert "Traceback (most recent call last)" not in body, "a Python traceback is on the page"
    assert LEAK_MARKER not in body, "a row of the other tenant is on the page"
    assert LEAK_MARKER not in response.get("Location", ""), "a row of the other tenant is in the redirect"
    if response.get("Content-Type", "").startswith("text/html"):
        for tag in RAW_HTML:
            assert tag not in body, f"{tag!r} is on the page unescaped"
        lowered = body.lower()
        for attribute in ('href="javascript:', "href='javascript:", 'src="javascript:', 'action="javascript:'):
            assert attribute not in lowered, f"a {attribute!r} URL is on the page"
    return body


def assert_redirect_stays_on_site(response) -> None:
    """A redirect goes to a path of this site (absolute or relative), never to a scheme or another host."""
    location = response.get("Location", "")
    parts = urlsplit(location)
    # browsers read a backslash as a slash, and drop leading control characters and spaces
    leading = location.lstrip("".join(map(chr, range(33)))).replace("\\", "/")
    assert not parts.scheme and not parts.netloc and not leading.startswith("//"), f"redirect to {location!r}"


# --- row counts: what a request wrote ---------------------------------------------------

TABLES = (
    "tenants",
    "users",
    "projects",
    "submissions",
    "badges",
    "user_badges",
    "leaderboards",
    "audit_logs",
    "event_store",
    "rate_limit_hits",
    "axes_accessattempt",
    "django_session",
)


def row_counts() -> dict[str, int]:
    """Rows of every table a request may write, all tenants (the tests' own view), in one query."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in TABLES))
        return dict(zip(TABLES, cursor.fetchone(), strict=True))


def changes(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """The tables whose row count moved, and by how much."""
    return {table: after[table] - before[table] for table in TABLES if after[table] != before[table]}
