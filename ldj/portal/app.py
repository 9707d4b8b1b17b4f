"""Serve the portal: `python -m ldj.portal`, started by the hub as the managed service `ldj-portal`.

Single sign-on: the hub is the OAuth provider (Panel's generic OAuth login, the hub's `/hub/api/oauth2/*`
endpoints and `/hub/api/user`); every request checks with the hub that the login still stands
(ldj.portal.session). Pages are public unless their policy row says otherwise; pages and the domain check
every action through ldj.policy. Every response carries the security headers of ldj.portal.security.
The pages and routes are registered in ldj.portal.pages.
"""

from __future__ import annotations

import gc
import os
import secrets
import signal
from pathlib import Path
from urllib.parse import urlparse

import panel as pn
from cryptography.fernet import Fernet

from ..settings import Settings, get_settings
from . import pages, resources, security, session
from .layout import SERVICE_NAME, prefix


def _secret(path: Path, factory) -> bytes | str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


def serve(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    state = (settings.data_dir / "hub").resolve()
    api_url = session.api_url()
    service_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{settings.portal_port}"))
    origins = settings.portal_allowed_origins or [f"{settings.hub_ip}:{settings.hub_port}",
                                                   f"localhost:{settings.hub_port}", f"127.0.0.1:{settings.hub_port}"]
    if settings.portal_processes > 1:
        _stop_together()
    pn.config.oauth_provider = "generic"  # the login handler Panel uses; the provider is ours (hub check)
    # The OAuth cookies (access token, id token) encrypted, not only signed: Panel copies a page's cookies
    # into the session token it embeds in the page, where a script could otherwise read the hub token.
    key = _secret(state / "portal_encryption_key", lambda: Fernet.generate_key().decode()).encode()
    pn.config.oauth_encryption_key = key
    pn.state.encryption = Fernet(key)
    routes = pages.routes()
    resources.install()  # a page's script and stylesheet tags worked out once, not per session
    # What is loaded by now (Panel, Bokeh, pandas, the pages) lives as long as the process: kept out of the
    # garbage collector's way, the full collection Panel runs after sessions end (panel.io.document) walks
    # only the sessions' objects, and forked processes keep sharing these pages of memory.
    gc.freeze()
    server = pn.serve(
        routes, address=service_url.hostname, port=service_url.port, prefix=prefix(), show=False,
        title="Lerende Databank Jeugd", websocket_origin=origins, start=False, use_xheaders=True,
        auth_provider=session.HubLoginProvider(login_endpoint="/login", logout_endpoint="/logout"),
        oauth_optional=True,
        oauth_key=os.environ.get("JUPYTERHUB_CLIENT_ID", f"service-{SERVICE_NAME}"),
        oauth_secret=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
        oauth_redirect_uri=f"{prefix()}/login",  # registered as the service's oauth_redirect_uri
        oauth_extra_params={"AUTHORIZE_URL": "/hub/api/oauth2/authorize", "TOKEN_URL": f"{api_url}/oauth2/token",
                            "USER_URL": f"{api_url}/user", "USER_KEY": "name", "scope": []},
        cookie_path=f"{prefix()}/",  # the portal's cookies go to the portal only, never to workspaces on this host
        cookie_secret=_secret(state / "portal_cookie_secret", lambda: secrets.token_hex(32)),
        extra_patterns=pages.extra_handlers(), num_procs=settings.portal_processes,
    )
    security.install(server._tornado)  # every response of this process: headers and cookie flags
    server._tornado.add_handlers(r".*", pages.anonymous_rules())  # before Panel's routes: plain pages without login
    server.start()
    server.io_loop.start()


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
