"""Serve the portal: `python -m ldj.portal`, started by the hub as the managed service `ldj-portal`.

Single sign-on: the hub is the OAuth provider (Panel's generic OAuth provider, the hub's
`/hub/api/oauth2/*` endpoints and `/hub/api/user`). Pages are public unless they say otherwise
(`oauth_optional`); pages and the domain layer check roles for every action.
"""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path
from urllib.parse import urlparse

import panel as pn
from tornado import web

from .. import governance, policy
from ..settings import Settings, get_settings
from . import catalogue, dashboards, factsheet, home, registry, requests, vraagbank
from .layout import GUEST, Page, frame, login_needed, message
from .visitor import LANGUAGE_COOKIE, LANGUAGES, Visitor, from_groups

SERVICE_NAME = "ldj-portal"

PAGES: list[Page] = [
    Page("", "nav_home", home.view),
    Page("factsheet", "nav_factsheet", handler=factsheet.FactsheetPage),
    Page("vraagbank", "nav_vraagbank", vraagbank.view),
    Page("catalogus", "nav_catalogue", catalogue.view),
    Page("onderzoek", "nav_registry", registry.view),
    Page("dashboard", "nav_dashboard", dashboards.view, ("member", "steward")),
    Page("aanvragen", "nav_requests", requests.view, ("researcher", "steward")),
    Page("apo", "nav_apo", requests.apo_view, ("apo", "steward")),
]


def prefix() -> str:
    return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/").rstrip("/")


def current_visitor(settings: Settings | None = None) -> Visitor:
    """The visitor of the current Panel session."""
    user = pn.state.user
    name = None if user in (None, GUEST) else user
    info = pn.state.user_info or {}
    language = _language(pn.state.cookies.get(LANGUAGE_COOKIE), pn.state.session_args.get("lang"))
    return from_groups(name, info.get("groups") if name else None, language, settings)


def _language(cookie: str | None, arg: list[bytes] | None) -> str:
    if arg:
        return arg[0].decode()
    return cookie if cookie in LANGUAGES else "nl"


def _route(page: Page):
    def build():
        visitor = current_visitor()
        if page.nav_roles and visitor.anonymous:
            content = login_needed(visitor, prefix(), page.path)
        else:
            try:
                content = page.view(visitor)
            except (governance.PermissionDenied, policy.Refused) as exc:  # the page's own check, before anything is shown
                content = message(str(exc))
        return frame(visitor, PAGES, page, prefix(), content)
    return build


class LanguageHandler(web.RequestHandler):
    """GET {prefix}/taal?lang=en&next=...: remember the language and go back."""

    def get(self):
        language = self.get_argument("lang", "nl")
        if language not in LANGUAGES:
            raise web.HTTPError(400, f"unknown language {language!r}")
        self.set_cookie(LANGUAGE_COOKIE, language, path="/", expires_days=365, samesite="Lax")
        target = self.get_argument("next", prefix() + "/")
        if urlparse(target).netloc or not target.startswith("/"):
            target = prefix() + "/"  # only local redirects
        self.redirect(target)


def extra_handlers() -> list[tuple]:
    """Plain HTTP routes beside the Panel sessions: the language switch, plain pages, downloads, feeds."""
    pages = [(f"/{p.path}", p.handler) for p in PAGES if p.handler]
    return [(r"/taal", LanguageHandler), *pages, *factsheet.HANDLERS, *vraagbank.HANDLERS, *dashboards.HANDLERS,
            *catalogue.HANDLERS]


def _secret(path: Path, factory) -> bytes | str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


def serve(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    state = (settings.data_dir / "hub").resolve()
    api_url = os.environ.get("JUPYTERHUB_API_URL", f"http://127.0.0.1:{settings.hub_api_port}/hub/api")
    service_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{settings.portal_port}"))
    origins = settings.portal_allowed_origins or [f"{settings.hub_ip}:{settings.hub_port}",
                                                   f"localhost:{settings.hub_port}", f"127.0.0.1:{settings.hub_port}"]
    routes = {f"/{p.path}" if p.path else "/": _route(p) for p in PAGES if p.view}
    if settings.portal_processes > 1:
        _stop_together()
    pn.serve(
        routes, address=service_url.hostname, port=service_url.port, prefix=prefix(), show=False,
        title="Lerende Databank Jeugd", websocket_origin=origins, start=True,
        oauth_provider="generic", oauth_optional=True,
        oauth_key=os.environ.get("JUPYTERHUB_CLIENT_ID", f"service-{SERVICE_NAME}"),
        oauth_secret=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
        oauth_redirect_uri=f"{prefix()}/login",  # registered as the service's oauth_redirect_uri
        oauth_extra_params={"AUTHORIZE_URL": "/hub/api/oauth2/authorize", "TOKEN_URL": f"{api_url}/oauth2/token",
                            "USER_URL": f"{api_url}/user", "USER_KEY": "name", "scope": []},
        cookie_secret=_secret(state / "portal_cookie_secret", lambda: secrets.token_hex(32)),
        extra_patterns=extra_handlers(), num_procs=settings.portal_processes,
    )


def _stop_together() -> None:
    """With several processes (forked by the server), stopping one stops them all: the hub stops the
    service by signalling the first process only. The service runs in a process group of its own."""
    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.killpg(os.getpgrp(), signal.SIGTERM)

    if os.getpgrp() == os.getpid():  # only as a group leader (as the hub starts services), never a shell's group
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def main() -> None:
    serve()
