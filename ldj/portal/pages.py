"""The one registry of the portal's pages and routes: which page answers which path, who may open it (its
`page.*` row in ldj.policy.RULES) and the plain handlers beside the Panel sessions.

Page modules never import this module: the frame gets the list of pages as an argument.
"""

from __future__ import annotations

import logging
import re

import panel as pn
from tornado import routing

from .. import policy
from . import airlock, catalogue, dashboards, factsheet, home, registry, requests, session, vraagbank
from .layout import GUEST, LanguageHandler, LogoutHandler, Page, frame, login_needed, message, prefix
from .params import BadParameter, arg, one_of
from .visitor import LANGUAGE_COOKIE, LANGUAGES, Visitor, from_groups

log = logging.getLogger(__name__)

PAGES: list[Page] = [
    Page("", "nav_home", home.view, "page.home", anonymous=home.StartPage),
    Page("factsheet", "nav_factsheet", action="page.factsheet", handler=factsheet.FactsheetPage),
    Page("vraagbank", "nav_vraagbank", vraagbank.view, "page.vraagbank"),
    Page("catalogus", "nav_catalogue", catalogue.view, "page.catalogue"),
    Page("onderzoek", "nav_registry", registry.view, "page.registry"),
    Page("dashboard", "nav_dashboard", dashboards.view, "page.dashboard"),
    Page("aanvragen", "nav_requests", requests.view, "page.requests"),
    Page("apo", "nav_apo", requests.apo_view, "page.apo"),
    Page("uitvoer", "nav_releases", airlock.view, "page.releases"),
]


def current_visitor() -> Visitor:
    """The visitor of the current Panel session: the login (checked with the hub by the auth provider,
    ldj.portal.session: an ended login arrives here as a guest), roles from the hub's groups as the hub
    answered that check (else as at login), language from `?lang=` (one of the offered ones) or the cookie."""
    user = pn.state.user
    name = None if user in (None, GUEST) else user
    checked = session.known_login(pn.state.access_token) if name else None
    info = checked if checked and checked.get("name") == name else (pn.state.user_info or {})
    cookie = pn.state.cookies.get(LANGUAGE_COOKIE)
    language = arg("lang", one_of(LANGUAGES), cookie if cookie in LANGUAGES else "nl")
    return from_groups(name, info.get("groups") if name else None, language)


def _route(page: Page):
    def build():
        try:
            visitor = current_visitor()
        except BadParameter as exc:
            visitor = from_groups(None, None)
            return frame(visitor, PAGES, page, message(str(exc)))
        if visitor.anonymous and not visitor.allows(page.action):
            content = login_needed(visitor, page.path)
        else:
            try:
                visitor.check(page.action)
                content = page.view(visitor)
            except (policy.Refused, BadParameter) as exc:
                content = message(str(exc))  # the page's own checks, before anything is shown
            except Exception:  # logged with its traceback here; the visitor sees no internals
                log.exception("page /%s failed", page.path)
                content = message(visitor.t("portal_error"))
        return frame(visitor, PAGES, page, content)
    return build


def routes() -> dict[str, object]:
    """The Panel pages: path under the prefix -> session builder."""
    return {f"/{p.path}" if p.path else "/": _route(p) for p in PAGES if p.view}


def extra_handlers() -> list[tuple]:
    """Plain HTTP routes beside the Panel sessions: the language switch, logout, plain pages, downloads,
    feeds; each gets the pages for its navigation."""
    plain = [(r"/taal", LanguageHandler), (r"/uitloggen", LogoutHandler),
             *[(f"/{p.path}", p.handler) for p in PAGES if p.handler], *factsheet.HANDLERS, *vraagbank.HANDLERS,
             *dashboards.HANDLERS, *catalogue.HANDLERS, *airlock.HANDLERS]
    for _, handler in plain:
        policy.rule(handler.action)  # every route names its row in the policy (checked in its prepare)
    return [(pattern, handler, {"pages": tuple(PAGES)}) for pattern, handler in plain]


class WithoutLogin(routing.PathMatches):
    """A page's path, for requests without the portal's login cookie (Panel's signed `user`): visitors who
    never logged in or have logged out. A request with one goes on to the Panel page, which checks the login
    with the hub and shows an ended one the page for guests."""

    def match(self, request):
        return None if "user" in request.cookies else super().match(request)


def anonymous_rules() -> list[routing.Rule]:
    """The plain pages for visitors without login (`Page.anonymous`), to be routed before the Panel pages of
    the same paths (ldj.portal.app); each names its row in the policy, checked in its prepare."""
    rules = []
    for p in PAGES:
        if p.anonymous:
            policy.rule(p.anonymous.action)
            rules.append(routing.Rule(WithoutLogin(re.escape(f"{prefix()}/{p.path}") + "$"), p.anonymous,
                                      {"pages": tuple(PAGES)}))
    return rules
