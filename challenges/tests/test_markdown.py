import pytest

from challenges.markdown import render_markdown


def test_markdown_becomes_html():
    html = render_markdown("## Goal\n\nRead the **flag** with `cat`.\n\n- one\n- two")

    assert "<h2>Goal</h2>" in html
    assert "<strong>flag</strong>" in html
    assert "<code>cat</code>" in html
    assert "<li>two</li>" in html


def test_a_top_heading_is_demoted_below_the_pages_own():
    assert render_markdown("# Title").strip() == "<h2>Title</h2>"


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ("[click](javascript:alert(1))", "javascript:"),
        ('<img src="x" onerror="alert(1)">', "onerror"),
        ('<a href="https://x.test" onclick="steal()">x</a>', "onclick"),
        ('<div style="position:fixed;inset:0">overlay</div>', "style="),
        ('<iframe src="https://evil.test"></iframe>', "<iframe"),
        ("<form action=/logout method=post><button>x</button></form>", "<form"),
        ('<svg onload="alert(1)"></svg>', "<svg"),
        ("[x](data:text/html;base64,PHNjcmlwdD4=)", "data:"),
    ],
)
def test_dangerous_html_is_removed(source, forbidden):
    assert forbidden not in render_markdown(source)


def test_links_keep_their_target_and_cannot_reach_the_opener():
    html = render_markdown("[docs](https://owasp.org)")

    assert 'href="https://owasp.org"' in html
    assert "noopener" in html


def test_code_blocks_show_markup_as_text():
    html = render_markdown("```\n<script>alert(1)</script>\n```")

    assert "&lt;script&gt;" in html
    assert "<script>" not in html
