"""Text people type (Markdown) as HTML that is safe to show: question bodies, comments, answers, reviews.

The raw Markdown is stored; it is rendered at display time. Two layers: markdown-it-py (CommonMark,
raw HTML off, so typed tags come out as text) and then nh3 with an allow-list of tags, attributes and
URL schemes, so nothing the parser lets through can run script. Links get rel="nofollow noopener".
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

TAGS = frozenset({
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
})
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener"


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # breaks: a single newline is a line break, as people typing into a text box expect
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


def sanitize_html(html: str) -> str:
    """Keep only the allowed tags, attributes and URL schemes; drop script, style and their content."""
    return nh3.clean(html, tags=set(TAGS), attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel=LINK_REL, strip_comments=True,
                     clean_content_tags={"script", "style"})


def render_markdown(text: str | None) -> str:
    """Markdown as sanitised HTML (a fragment); empty text gives an empty string."""
    if not text or not text.strip():
        return ""
    return sanitize_html(_parser().render(text))
