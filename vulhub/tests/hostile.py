"""Hostile input for the tests of test_hostile_input.py: values, requests and the checks on every answer.

The values are what an attacker (or a careless browser) sends: very long text, unicode
that breaks naive code (RTL overrides, NUL bytes, lone surrogates), SQL, HTML and
JavaScript, format strings, numbers where text is expected and the reverse, and the
ids and slugs of another tenant's rows. Requests are encoded here, byte by byte, so a
lone surrogate or a NUL reaches Django exactly as a hostile client would send it.
"""

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
