"""The frame around every portal page: navigation by role, language switch, login state, messages.

Most pages are Panel sessions (`frame`). A page that is the same for every visitor and read by many
(the factsheet) is served as plain HTML by a `PortalHandler` in the same frame
(`portal/templates/page.html.j2`): no Bokeh document or websocket per view.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Callable

import jinja2
import panel as pn
from markupsafe import Markup
from tornado import web

from .. import governance, policy
from ..settings import REPO_ROOT
from .visitor import LANGUAGE_COOKIE, Visitor, from_groups

TEMPLATES = REPO_ROOT / "portal" / "templates"
GUEST = "guest"  # Panel's name for a visitor without login (oauth_optional)
FAVICON = "static/extensions/panel/images/favicon.ico"  # served by the portal (Panel's static files)

CSS = """
.ldj-nav a { margin-right: 1.1em; color: white; text-decoration: none; font-weight: 500; }
.ldj-nav a.active { text-decoration: underline; }
.ldj-nav .ldj-right { float: right; }
.ldj-nav .ldj-right > * { margin-left: 1em; margin-right: 0; font-weight: 400; }
.ldj-suppressed { color: #8a6d3b; font-style: italic; }
"""


@dataclass(frozen=True)
class Page:
    """One route of the portal: its path under the prefix, nav text key, builder and who sees it in the nav.
    `view` builds a Panel session's content; a page with a `handler` (a PortalHandler) is plain HTML instead."""

    path: str
    nav_key: str
    view: Callable[[Visitor], pn.viewable.Viewable] | None = None
    nav_roles: tuple[str, ...] = ()  # empty: everyone; roles are checked again by the page and the domain
    handler: type[web.RequestHandler] | None = None


def nav_html(visitor: Visitor, pages: list[Page], active: str, prefix: str) -> str:
    links = []
    for page in pages:
        if page.nav_roles and not visitor.has_role(*page.nav_roles):
            continue
        css = ' class="active"' if page.path == active else ""
        links.append(f'<a href="{prefix}/{page.path}"{css}>{escape(visitor.t(page.nav_key))}</a>')
    here = f"{prefix}/{active}"
    other = "en" if visitor.language == "nl" else "nl"
    right = [f'<a href="{prefix}/taal?lang={other}&next={here}">{other.upper()}</a>']
    if visitor.anonymous:
        right.append(f'<a href="{prefix}/login?next={here}">{escape(visitor.t("portal_login"))}</a>')
    else:
        right.append(f'<span>{escape(visitor.name)}</span>')
        right.append(f'<a href="/hub/logout">{escape(visitor.t("portal_logout"))}</a>')
    return f'<div class="ldj-nav">{"".join(links)}<span class="ldj-right">{"".join(right)}</span></div>'


def frame(visitor: Visitor, pages: list[Page], page: Page, prefix: str, content) -> pn.template.BaseTemplate:
    template = pn.template.BootstrapTemplate(
        title=visitor.t("portal_title"), header_background="#1f4e79", favicon=f"{prefix}/{FAVICON}")
    template.header.append(pn.pane.HTML(nav_html(visitor, pages, page.path, prefix), sizing_mode="stretch_width",
                                        stylesheets=[CSS]))
    template.main.append(content)
    return template


def query_arg(name: str) -> str | None:
    """A query parameter of the page's URL (`?id=3` → "3"), or None."""
    values = pn.state.session_args.get(name) if pn.state.curdoc else None
    return values[0].decode() if values else None


def message(text: str, kind: str = "danger") -> pn.pane.Alert:
    return pn.pane.Alert(text, alert_type=kind)


def login_needed(visitor: Visitor, prefix: str, path: str) -> pn.viewable.Viewable:
    return pn.pane.HTML(f'<p>{escape(visitor.t("portal_login_needed"))} '
                        f'<a href="{prefix}/login?next={prefix}/{path}">{escape(visitor.t("portal_login"))}</a></p>')


def guarded(action: Callable[[], object], feedback: pn.Column, success: str | None = None) -> bool:
    """Run a domain action from a button; its refusal (wrong role, illegal step, bad input) is shown."""
    feedback.clear()
    try:
        action()
    except (governance.GovernanceError, policy.Refused) as exc:
        feedback.append(message(str(exc)))
        return False
    except (ValueError, LookupError) as exc:
        feedback.append(message(str(exc)))
        return False
    if success:
        feedback.append(message(success, "success"))
    return True


class PortalHandler(web.RequestHandler):
    """Base for plain HTTP pages and endpoints (the factsheet, feeds, downloads): the same login (Panel's
    secure `user` cookie, set by the hub's OAuth) and language (`?lang=`, else the cookie) as the Panel pages."""

    def visitor(self) -> Visitor:
        raw = self.get_secure_cookie("user", max_age_days=1)
        name = raw.decode() if raw else None
        language = self.get_argument("lang", None) or self.get_cookie(LANGUAGE_COOKIE) or "nl"
        return from_groups(None if name == GUEST else name, None, language)

    def write_page(self, visitor: Visitor, path: str, heading: str, content: str, head: str = "") -> None:
        """The page in the portal's frame; `content` and `head` are HTML the page made (escaped there)."""
        from .app import PAGES, prefix  # app imports the pages, so not at module level

        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(_templates().get_template("page.html.j2").render(
            language=visitor.language, title=visitor.t("portal_title"), heading=heading,
            favicon=f"{prefix()}/{FAVICON}",
            nav=Markup(nav_html(visitor, PAGES, path, prefix())), head=Markup(head), content=Markup(content)))


_environment: jinja2.Environment | None = None


def _templates() -> jinja2.Environment:
    global _environment
    if _environment is None:
        _environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    return _environment
