"""ldj/markup.py: Markdown people type becomes HTML in which no script can run."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from ldj.markup import TAGS, URL_SCHEMES, render_markdown


class Elements(HTMLParser):
    """Every element and attribute the browser would build from the HTML."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_inert(html: str) -> None:
    for tag, attrs in Elements(html).elements:
        assert tag in TAGS, f"tag <{tag}> survived: {html}"
        assert not any(name.startswith("on") for name in attrs), f"event handler survived: {html}"
        assert "style" not in attrs and "src" not in attrs, html
        for name in ("href", "src", "action", "formaction", "xlink:href"):
            value = (attrs.get(name) or "").strip().lower()
            if ":" in value.split("/")[0]:
                assert value.split(":", 1)[0] in URL_SCHEMES, f"{name}={value!r} survived: {html}"


PAYLOADS = [
    "<script>alert(1)</script>",
    "Hallo <script src=https://evil.example/x.js></script> daar",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">klik</a>',
    "[klik](javascript:alert(1))",
    "[klik](JaVaScRiPt:alert(1))",
    "[klik](java\tscript:alert(1))",
    "[klik](&#106;avascript:alert(1))",
    "[klik](&#x6A;avascript&colon;alert(1))",
    "[klik](vbscript:msgbox(1))",
    "[klik](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![plaatje](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![plaatje](https://evil.example/track.png)",
    "<javascript:alert(1)>",
    "[x]: javascript:alert(1)\n\nzie [x]",
    '[klik](https://sejn.nl" onclick="alert(1))',
    '[klik](https://sejn.nl "titel\\" onmouseover=\\"alert(1)")',
    "<svg onload=alert(1)><circle r=10 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<iframe src=javascript:alert(1)></iframe>",
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<details open ontoggle=alert(1)>",
    "**vet <b onmouseover=alert(1)>en</b>**",
    "```html\n<script>alert(1)</script>\n```",
    "<!-- <script>alert(1)</script> -->",
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    "<form action=javascript:alert(1)><button>ok</button></form>",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives(payload):
    html = render_markdown(payload)
    assert_inert(html)
    assert "<script" not in html.lower() and "<svg" not in html.lower() and "<img" not in html.lower()
    hrefs = [attrs.get("href") for tag, attrs in Elements(html).elements if tag == "a"]
    assert all(h is None or h.startswith(("https://sejn.nl", "http", "mailto:")) for h in hrefs), hrefs


def test_raw_html_is_shown_as_text_not_as_markup():
    html = render_markdown("Zie <b>dit</b> en <script>alert(1)</script>")
    assert "&lt;b&gt;dit&lt;/b&gt;" in html
    assert "&lt;script&gt;" in html
    assert [tag for tag, _ in Elements(html).elements] == ["p"]


def test_ordinary_markdown_renders():
    html = render_markdown("# Kop\n\n**vet** en *schuin*, ~~weg~~\n\n- een\n- twee\n\n1. eerst\n\n"
                           "> citaat\n\n`code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\nregel\nvolgende")
    tags = [tag for tag, _ in Elements(html).elements]
    for tag in ("h1", "strong", "em", "s", "ul", "li", "ol", "blockquote", "code", "table", "td"):
        assert tag in tags, tag
    assert "regel<br" in render_markdown("regel\nvolgende")


def test_links_keep_safe_schemes_and_get_nofollow():
    html = render_markdown("[SEJN](https://sejn.nl) [post](mailto:info@sejn.nl) [oud](http://x.nl) "
                           "[ftp](ftp://x.nl/f) [vraag](?vraag=3)")
    links = [attrs for tag, attrs in Elements(html).elements if tag == "a"]
    assert [a.get("href") for a in links] == ["https://sejn.nl", "mailto:info@sejn.nl", "http://x.nl", None, "?vraag=3"]
    assert all(a["rel"] == "nofollow noopener" for a in links)


def test_empty_text_is_empty_html():
    assert render_markdown(None) == "" and render_markdown("  \n") == ""


RAW_HTML = [
    ("<script>alert(1)</script>ok", "ok"),
    ("<img src=x onerror=alert(1)>ok", "ok"),
    ('<a href="javascript:alert(1)">ok</a>', '<a rel="nofollow noopener">ok</a>'),
    ('<a href="JAVASCRIPT:alert(1)" onclick="alert(1)">ok</a>', '<a rel="nofollow noopener">ok</a>'),
    ('<a href="data:text/html,<script>alert(1)</script>">ok</a>', '<a rel="nofollow noopener">ok</a>'),
    ("<svg onload=alert(1)><a>ok</a></svg>", ""),  # foreign (SVG) content is dropped whole
    ('<iframe srcdoc="<script>alert(1)</script>"></iframe>ok', "ok"),
    ("<style>*{x:y}</style><p style='x'>ok</p>", "<p>ok</p>"),
    ('<a href="https://sejn.nl" target="_blank" rel="opener">ok</a>', '<a href="https://sejn.nl" rel="nofollow noopener">ok</a>'),
]


@pytest.mark.parametrize(("html", "expected"), RAW_HTML)
def test_the_sanitiser_alone_also_stops_raw_html(html, expected):
    """The second layer holds even if HTML reaches it (e.g. a future Markdown extension)."""
    from ldj.markup import sanitize_html

    cleaned = sanitize_html(html)
    assert cleaned == expected
    assert_inert(cleaned)
