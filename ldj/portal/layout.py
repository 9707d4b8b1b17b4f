"""The frame around every portal page: navigation by role, language switch, login state, messages.

Most pages are Panel sessions (`frame`). A page that is the same for every visitor and read by many
(the factsheet) is served as plain HTML by a `PortalHandler` in the same frame
(`portal/templates/page.html.j2`): no Bokeh document or websocket per view. Both get their HTML from
templates (ldj.portal.html). The pages themselves are registered in ldj.portal.pages; this module and
the pages never import it: the list of pages reaches the frame as an argument.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlencode

import panel as pn
from markupsafe import Markup
from tornado import web

from .. import governance, policy
from ..i18n import t
from . import session
from .html import environment, pane, render
from .params import BadParameter, all_arguments, handler_arg, local_path, one_of
from .visitor import LANGUAGE_COOKIE, LANGUAGES, Visitor, from_groups

SERVICE_NAME = "ldj-portal"
GUEST = session.GUEST
FAVICON = "static/extensions/panel/images/favicon.ico"  # served by the portal (Panel's static files)

ALERT_CSS = """
.ldj-alert { padding: .75rem 1.25rem; margin-bottom: .5rem; border: 1px solid transparent; border-radius: .25rem; }
.ldj-alert-danger { color: #721c24; background: #f8d7da; border-color: #f5c6cb; }
.ldj-alert-warning { color: #856404; background: #fff3cd; border-color: #ffeeba; }
.ldj-alert-info { color: #0c5460; background: #d1ecf1; border-color: #bee5eb; }
.ldj-alert-success { color: #155724; background: #d4edda; border-color: #c3e6cb; }
"""
ALERT_KINDS = ("danger", "warning", "info", "success")


def prefix() -> str:
    """The portal's path under the hub (`/services/ldj-portal`), without a trailing slash."""
    return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/").rstrip("/")


@dataclass(frozen=True)
class Page:
    """One route of the portal: its path under the prefix, nav text key, builder and who sees it in the nav.
    `view` builds a Panel session's content; a page with a `handler` (a PortalHandler) is plain HTML instead.
    `action` is the page's row in ldj.policy.RULES (`page.*`): who may open it. A Panel page may have an
    `anonymous` handler: plain HTML for requests without a login cookie (the same page for every such visitor)."""

    path: str
    nav_key: str
    view: Callable[[Visitor], pn.viewable.Viewable] | None = None
    action: str = ""
    handler: type[web.RequestHandler] | None = None
    anonymous: type[web.RequestHandler] | None = None


def nav(visitor: Visitor, pages: list[Page], active: str) -> dict:
    """The values of the navigation bar (nav.html.j2)."""
    here = f"{prefix()}/{active}"
    other = "en" if visitor.language == "nl" else "nl"
    links = [{"href": f"{prefix()}/{p.path}", "text": visitor.t(p.nav_key), "active": p.path == active}
             for p in pages if not p.action or visitor.allows(p.action)]
    return dict(links=links, name=visitor.name,
                  language_href=f"{prefix()}/taal?" + urlencode({"lang": other, "next": here}),
                  language_text=other.upper(),
                  login_href=f"{prefix()}/login?" + urlencode({"next": here}), login_text=visitor.t("portal_login"),
                  logout_href=f"{prefix()}/uitloggen", logout_text=visitor.t("portal_logout"))


def frame(visitor: Visitor, pages: list[Page], page: Page, content) -> pn.viewable.Viewable:
    """The session's page: `content` under the portal's header and navigation. The frame is the session
    document's page template (panel_page.html.j2, the look of the plain pages), filled once when the page is
    sent: plain HTML, not Panel template models built, synchronised and sent with every session."""
    document = pn.state.curdoc
    if document is not None:
        document.template = environment().get_template("panel_page.html.j2")
        document.template_variables.update(
            language=visitor.language, portal_title=visitor.t("portal_title"), heading=visitor.t(page.nav_key),
            favicon=f"{prefix()}/{FAVICON}", nav=render("nav.html.j2", **nav(visitor, pages, page.path)))
    return content


def message(text: str, kind: str = "danger") -> pn.pane.HTML:
    """A message on the page (a refusal, a confirmation): plain text, escaped."""
    return pane("message.html.j2", [ALERT_CSS], text=text, kind=kind if kind in ALERT_KINDS else "info")


def login_needed(visitor: Visitor, path: str) -> pn.viewable.Viewable:
    return pane("login_needed.html.j2", text=visitor.t("portal_login_needed"), login_text=visitor.t("portal_login"),
                login_href=f"{prefix()}/login?" + urlencode({"next": f"{prefix()}/{path}"}))


def _session_language() -> str:
    language = pn.state.cookies.get(LANGUAGE_COOKIE) if pn.state.curdoc else None
    return language if language in LANGUAGES else "nl"


def login_still_stands() -> bool:
    """In a callback of an open page: has the hub not ended the login the page was opened with?"""
    user = pn.state.user if pn.state.curdoc else None
    return session.still_logged_in(None if user in (None, GUEST) else user, pn.state.access_token)


def guarded(action: Callable[[], object], feedback: pn.Column, success: str | None = None) -> bool:
    """Run a domain action from a button; its refusal (wrong role, illegal step, bad input, a login the hub
    has ended since the page opened) is shown."""
    feedback.clear()
    if not login_still_stands():
        feedback.append(message(t("portal_session_ended", _session_language())))
        return False
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


class Refusal(web.HTTPError):
    """A plain handler's refusal with a message for the visitor (400 bad argument, 403, 404)."""

    def __init__(self, status: int, text: str):
        super().__init__(status)
        self.text = text


class PortalHandler(web.RequestHandler):
    """Base for plain HTTP pages and endpoints (the factsheet, feeds, downloads): the same login as the Panel
    pages (Panel's signed `user` and `access_token` cookies, set by the hub's OAuth, and the login checked
    with the hub: ldj.portal.session) and language (`?lang=`, else the cookie). `pages` (the registered
    pages, for the navigation) is given by ldj.portal.pages. Data endpoints set `plain_errors`: their
    refusals are answered as plain text (the message only), not as a page.

    Every handler names its `action` (a row of ldj.policy.RULES); `prepare` checks it for the visitor
    before any method runs, so no route answers without a policy decision, on the object the route is
    about when the handler names it (`target`: a released file's project). A handler that acts on an
    object checks that object's action too (with its `policy.Target`)."""

    plain_errors = False
    action: str | None = None

    def initialize(self, pages: tuple[Page, ...] = ()) -> None:
        self.pages = list(pages)
        self._visitor: Visitor | None = None

    async def prepare(self) -> None:
        cookie = self.get_cookie(LANGUAGE_COOKIE)
        language = self.arg("lang", one_of(LANGUAGES), cookie if cookie in LANGUAGES else "nl")
        raw = self.get_secure_cookie("user", max_age_days=1)
        name = raw.decode("utf-8", "replace") if raw else None
        model = None
        if name and name != GUEST:
            model = await session.login_of(session.cookie_token(self))
            if model is None or model.get("name") != name:
                session.clear_login(self)  # the hub has ended this login: so does the portal
                model = None
        self._visitor = from_groups(model["name"] if model else None, model.get("groups") if model else None,
                                    language)
        if self.action is None:
            raise RuntimeError(f"{type(self).__name__} names no action (ldj.policy.RULES)")
        self.check(self.action, self.target())

    def target(self) -> policy.Target | None:
        """The object the route's `action` is about, for the check in `prepare` (a released file: its
        project and whether it is public); None: the action alone. May answer 400 or 404 (`Refusal`)."""
        return None

    def check(self, action: str, target: policy.Target | None = None) -> None:
        """The policy's decision for the visitor; a refusal is answered with 403 and its message."""
        try:
            self.visitor().check(action, target)
        except policy.Refused as exc:
            raise Refusal(403, str(exc)) from None

    def visitor(self) -> Visitor:
        assert self._visitor is not None, "prepare() makes the visitor"
        return self._visitor

    def arg(self, name: str, parser, default=None):
        """A query argument parsed (ldj.portal.params); a malformed one is answered with 400 and its message."""
        try:
            return handler_arg(self, name, parser, default)
        except BadParameter as exc:
            raise Refusal(400, str(exc)) from None

    def arguments(self, skip: tuple[str, ...] = ("lang",)) -> dict[str, list[str]]:
        """Every query argument as text (ldj.portal.params.all_arguments), for endpoints whose arguments
        are the data's own dimensions; malformed ones are answered with 400 and their message."""
        try:
            return all_arguments(self.request.query_arguments, skip, self.visitor().language)
        except BadParameter as exc:
            raise Refusal(400, str(exc)) from None

    def write_page(self, visitor: Visitor, path: str, heading: str, content: Markup, head: Markup | str = ""):
        """The page in the portal's frame; `content` and `head` are rendered templates."""
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(render("page.html.j2", language=visitor.language, portal_title=visitor.t("portal_title"),
                          heading=heading, favicon=f"{prefix()}/{FAVICON}", nav=render("nav.html.j2", **nav(visitor, self.pages, path)),
                          head=head, content=content))

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        language = self._visitor.language if self._visitor else "nl"
        text = error.text if isinstance(error, Refusal) else self._reason
        if self.plain_errors:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(text)
            return
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(render("error.html.j2", language=language, status=status_code, text=text,
                           title=t("portal_title", language), home=f"{prefix()}/"))


class LanguageHandler(PortalHandler):
    """GET {prefix}/taal?lang=en&next=...: remember the language and go back (a path on this site only)."""

    action = "page.session"

    def get(self):
        language = self.arg("lang", one_of(LANGUAGES), "nl")
        target = self.arg("next", local_path, prefix() + "/")
        self.set_cookie(LANGUAGE_COOKIE, language, path=f"{prefix()}/", expires_days=365, httponly=True, samesite="Lax")
        self.redirect(target)


class LogoutHandler(PortalHandler):
    """GET {prefix}/uitloggen: end the portal's login (its cookies, what it knew of the token), then the hub's
    (which deletes the tokens of that login and ends the login's other services)."""

    action = "page.session"

    def get(self):
        session.forget(session.cookie_token(self))
        session.clear_login(self)
        self.redirect("/hub/logout")
