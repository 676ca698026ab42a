"""Challenge descriptions: Markdown rendered to HTML, then sanitised.

Instructors write Markdown; students' browsers get only harmless HTML: no scripts,
no event handlers, no `javascript:` links, no raw HTML that escapes its box.
"""

import markdown as md
import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "em",
    "b",
    "i",
    "code",
    "pre",
    "kbd",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "img",
    "del",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"align"}, "td": {"align"}}


def render_markdown(text: str) -> SafeString:
    html = md.markdown(
        text or "",
        extensions=["fenced_code", "tables", "sane_lists"],
        # align="center" rather than the style attribute the cleaner drops with everything else
        extension_configs={"tables": {"use_align_attribute": True}},
    )
    # the page has the one <h1>: a description's top headings become <h2>
    html = html.replace("<h1>", "<h2>").replace("</h1>", "</h2>")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308  (sanitised just above)
