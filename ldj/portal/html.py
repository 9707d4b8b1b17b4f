"""Portal HTML, only from templates: one autoescaping Jinja2 environment over `portal/templates/`.

Every value a template gets is escaped unless it is `Markup`; user Markdown enters only through the
`markdown` filter (ldj.markup: markdown-it without raw HTML, then nh3). Panel panes and plain handlers
use the same `render`; `pane` wraps it in a Panel HTML pane. tests/test_portal_attacks.py checks that no
module of the portal builds HTML any other way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from urllib.parse import urlsplit

import jinja2
import panel as pn
from markupsafe import Markup

from ..markup import render_markdown
from ..settings import REPO_ROOT

TEMPLATES = REPO_ROOT / "portal" / "templates"
SHARED = REPO_ROOT / "factsheet" / "templates"  # the factsheet's stylesheet, shared with the printed factsheet
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")
TEXT_TAGS = frozenset({"p", "h2", "h3", "h4", "h5", "b", "div", "span", "small"})


def _day(value: date | datetime | None) -> str:
    return f"{value:%d-%m-%Y}" if value else ""


def _web_url(value: str | None) -> str:
    """A link target people supplied, only as an http(s) address (else empty: no link is shown)."""
    parts = urlsplit(value or "")
    return value if parts.scheme in ("http", "https") and parts.netloc else ""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([TEMPLATES, SHARED]), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # Bokeh's JSON defines an object before its uses
    env.filters["markdown"] = lambda text: Markup(render_markdown(text))
    env.filters["day"] = _day
    env.filters["web_url"] = _web_url
    return env


def render(template_name: str, **values) -> Markup:
    """The template `portal/templates/<template_name>` filled with `values` (escaped), as safe HTML."""
    return Markup(environment().get_template(template_name).render(**values))


def html_of(template_name: str, **values) -> str:
    """`render` as a plain string, for a Panel pane's object: Panel escapes a pane's HTML for transport itself,
    and a `Markup` would have that escaping escaped once more (Markup.replace escapes its arguments)."""
    return str(render(template_name, **values))


def pane(template_name: str, stylesheets: list[str] | None = None, **values) -> pn.pane.HTML:
    """A Panel HTML pane of a rendered template (full width)."""
    return pn.pane.HTML(html_of(template_name, **values), stylesheets=stylesheets or [],
                        sizing_mode="stretch_width")


def text(value: str, tag: str = "p", css: str = "", stylesheets: list[str] | None = None) -> pn.pane.HTML:
    """One element with plain (escaped) text: a heading, a paragraph, a note."""
    if tag not in TEXT_TAGS:
        raise ValueError(f"not a text element: {tag}")
    return pane("text.html.j2", stylesheets, tag=tag, css=css, text=value)


def markdown_escape(value: object) -> str:
    """A value as Markdown that reads as itself: every Markdown (and HTML) character backslash-escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", str(value))


def markdown_html(text_of: Callable[..., str], key: str, **fields) -> Markup:
    """An interface text that is Markdown (`**Status:** {status}`), its fields escaped, through the sanitiser."""
    return render("markdown.html.j2", text=text_of(key, **{k: markdown_escape(v) for k, v in fields.items()}))


def markdown(text_of: Callable[..., str], key: str, stylesheets: list[str] | None = None, **fields) -> pn.pane.HTML:
    """`markdown_html` as a Panel pane."""
    return pn.pane.HTML(str(markdown_html(text_of, key, **fields)), stylesheets=stylesheets or [],
                        sizing_mode="stretch_width")
