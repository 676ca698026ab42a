"""Hostile challenge descriptions: whatever an instructor (or a stolen instructor account)
writes, a student's browser gets only the tags and attributes of challenges.markdown,
with links and images limited to http, https and mailto.

Each rendering is parsed back, and every tag, attribute and URL is checked against the
allow-list, rather than only searching the output for one forbidden string.
"""

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from challenges.markdown import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, render_markdown

SAFE_SCHEMES = {"", "http", "https", "mailto"}
# nh3 adds rel to links itself
ADDED_ATTRIBUTES = {"a": {"rel"}}


class Elements(HTMLParser):
    """Every start tag of a fragment, with its attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def assert_harmless(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag in ALLOWED_TAGS, f"<{tag}> is not allowed: {html!r}"
        allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | ADDED_ATTRIBUTES.get(tag, set())
        assert set(attrs) <= allowed, f"<{tag}> has {set(attrs) - allowed}: {html!r}"
        for name in ("href", "src"):
            if name in attrs:
                # browsers drop tabs and newlines inside a scheme: judge it as they do
                url = "".join(attrs[name].split())
                assert urlsplit(url).scheme.lower() in SAFE_SCHEMES, f"{name}={attrs[name]!r}: {html!r}"


HOSTILE = {
    "script element": "<script>alert(1)</script>",
    "script in svg": "<svg><script>alert(1)</script></svg>",
    "split script tag": "<scr<script>ipt>alert(1)</script>",
    "iframe": '<iframe src="https://evil.test"></iframe>',
    "iframe srcdoc": '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "object and embed": '<object data="x.swf"></object><embed src="x.swf">',
    "style element": "<style>body { display: none }</style>",
    "style attribute": '<p style="position:fixed;inset:0;background:red">overlay</p>',
    "link stylesheet": '<link rel="stylesheet" href="https://evil.test/x.css">',
    "meta refresh": '<meta http-equiv="refresh" content="0;url=https://evil.test">',
    "base href": '<base href="https://evil.test/">',
    "form": '<form action="/accounts/logout/" method="post"><button>Claim points</button></form>',
    "input autofocus": '<input autofocus onfocus="alert(1)">',
    "onerror on img": '<img src="x" onerror="alert(1)">',
    "onclick on a": '<a href="https://ok.test" onclick="steal()">x</a>',
    "ontoggle on details": "<details open ontoggle=alert(1)>x</details>",
    "onload on svg": '<svg onload="alert(1)"></svg>',
    "event on an allowed tag": '<strong onmouseover="alert(1)">hover</strong>',
    "class and id": '<p class="admin-only" id="main">x</p>',
    "javascript link": "[click](javascript:alert(1))",
    "javascript mixed case": "[click](JaVaScRiPt:alert(1))",
    "javascript with a tab": '<a href="jav&#x09;ascript:alert(1)">x</a>',
    "javascript with a newline": '<a href="java\nscript:alert(1)">x</a>',
    "javascript as entities": '<a href="&#106;&#97;vascript:alert(1)">x</a>',
    "javascript with leading space": '<a href=" javascript:alert(1)">x</a>',
    "javascript reference link": "[x][1]\n\n[1]: javascript:alert(1)",
    "javascript autolink": "<javascript:alert(1)>",
    "javascript image": "![x](javascript:alert(1))",
    "javascript img src": "<img src=javascript:alert(1)>",
    "vbscript link": "[x](vbscript:msgbox(1))",
    "data link": "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "data link raw": '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "data image": "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "title breaking out": '[x](https://ok.test "a" onclick="alert(1)")',
    "image title breaking out": '![a](https://ok.test/a.png "t" onerror="alert(1)")',
    "noscript confusion": '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "textarea confusion": "<textarea><script>alert(1)</script></textarea>",
    "math with xlink": '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    "html comment": "<!-- <script>alert(1)</script> -->",
    "target blank": '<a href="https://ok.test" target="_blank">x</a>',
}


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markup_renders_to_allowed_tags_attributes_and_urls_only(source):
    html = render_markdown(source)

    assert_harmless(html)
    for needle in ("<script", "javascript:", "vbscript:", "data:", "style=", "<iframe", "<form", "<!--"):
        assert needle not in html.lower(), f"{needle} in {html!r}"


def test_a_title_cannot_break_out_of_its_attribute():
    html = render_markdown('[x](https://ok.test "a" onclick="alert(1)")')

    [attrs] = [attrs for tag, attrs in elements(html) if tag == "a"]
    assert set(attrs) == {"href", "title", "rel"}
    assert attrs["href"] == "https://ok.test"


@pytest.mark.parametrize(
    ("source", "kept"),
    [
        ("[docs](https://owasp.org/Top10/)", 'href="https://owasp.org/Top10/"'),
        ("[mail](mailto:teacher@example.edu)", 'href="mailto:teacher@example.edu"'),
        ("[next](/challenges/next/)", 'href="/challenges/next/"'),
        ("![diagram](https://example.edu/d.png)", 'src="https://example.edu/d.png"'),
        # column alignment survives as the align attribute, not a style the cleaner drops
        ("| a | b |\n|---|:-:|\n| 1 | 2 |", '<td align="center">2</td>'),
    ],
)
def test_harmless_links_images_and_tables_survive(source, kept):
    html = render_markdown(source)

    assert kept in html
    assert_harmless(html)


FRAGMENTS = [
    "<script>",
    "</script>",
    "<img src=x ",
    "onerror=alert(1)",
    ">",
    "<a href=",
    '"',
    "'",
    "javascript:",
    "jav&#x09;ascript:",
    "data:text/html,",
    "[x](",
    ")",
    "style=",
    "<svg ",
    "<iframe ",
    "<!--",
    "-->",
    "```\n",
    "\n\n",
    " ",
    "x",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join))
def test_any_mix_of_hostile_fragments_renders_harmless(source):
    assert_harmless(render_markdown(source))
