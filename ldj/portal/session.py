"""Portal sessions end with the hub login they came from.

At login the portal receives an OAuth access token from the hub (Panel's generic OAuth keeps it in the
signed, HttpOnly `access_token` cookie next to `user` and `id_token`). The hub deletes the tokens of a
login when that login logs out (JupyterHub's LogoutHandler removes every token issued in the session).
So the portal asks the hub (`GET /hub/api/user` with the token) whether the login still stands, on every
page, websocket and plain request, and trusts an answer for `portal_session_check_seconds` per token.
A portal cookie whose token the hub no longer knows (logged out, revoked, stolen and replayed after
logout) makes the visitor anonymous, and the portal's login cookies are cleared.

`HubLoginProvider` does this for Panel pages and their websockets (Bokeh's auth provider), `login_of`
for plain handlers, `still_logged_in` for actions on an open page.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request

import panel as pn
from panel.auth import GenericLoginHandler, OAuthProvider
from panel.config import config as panel_config
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.web import HTTPError
from tornado.websocket import WebSocketHandler

from ..settings import get_settings
from .params import BadParameter, local_path, parse

GUEST = "guest"  # Panel's name for a visitor without login (oauth_optional)
LOGIN_COOKIES = ("user", "id_token", "access_token", "refresh_token", "oauth_expiry", "is_guest")

_checked: dict[str, tuple[float, dict | None]] = {}  # sha256(token) -> (until, hub user model or None)
_lock = threading.Lock()


def api_url() -> str:
    return os.environ.get("JUPYTERHUB_API_URL", f"http://127.0.0.1:{get_settings().hub_api_port}/hub/api")


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cached(token: str) -> tuple[bool, dict | None]:
    with _lock:
        until, model = _checked.get(_key(token), (0.0, None))
    return (time.monotonic() < until), model


def _remember(token: str, model: dict | None) -> None:
    with _lock:
        if len(_checked) > 10_000:
            now = time.monotonic()
            for key in [k for k, (until, _) in _checked.items() if until < now]:
                del _checked[key]
        _checked[_key(token)] = (time.monotonic() + get_settings().portal_session_check_seconds, model)


def known_login(token: str | None) -> dict | None:
    """The hub's user model of `token` as last checked (within the check interval), or None."""
    if not token:
        return None
    fresh, model = _cached(token)
    return model if fresh else None


def forget(token: str | None) -> None:
    """Drop what is known of `token` (the portal's own logout), so the next request asks the hub."""
    if token:
        with _lock:
            _checked.pop(_key(token), None)


def _request(token: str) -> dict:
    return {"url": f"{api_url()}/user", "headers": {"Authorization": f"token {token}"}}


async def login_of(token: str | None) -> dict | None:
    """The hub's user model (name, groups) of a login whose access token is `token`, or None when the hub
    no longer knows the token (logged out, revoked, expired) or cannot be asked (fail closed)."""
    if not token:
        return None
    fresh, model = _cached(token)
    if fresh:
        return model
    spec = _request(token)
    try:
        response = await AsyncHTTPClient().fetch(HTTPRequest(spec["url"], headers=spec["headers"],
                                                             request_timeout=10))
        model = json.loads(response.body)
    except HTTPClientError as exc:
        if exc.code not in (401, 403, 404):
            return None  # the hub did not answer: refuse now, ask again next time
        model = None
    except (OSError, ValueError):
        return None
    _remember(token, model)
    return model


def still_logged_in(name: str | None, token: str | None) -> bool:
    """For an action on an open page (a Panel callback): does the login `name` still stand at the hub?
    Anonymous visitors are not logged in anyway (True: nothing to end)."""
    if name is None:
        return True
    if not token:
        return False
    fresh, model = _cached(token)
    if not fresh:
        spec = _request(token)
        try:
            with urllib.request.urlopen(urllib.request.Request(spec["url"], headers=spec["headers"]),
                                        timeout=10) as response:
                model = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code not in (401, 403, 404):
                return False
            model = None
        except (OSError, ValueError):
            return False
        _remember(token, model)
    return model is not None and model.get("name") == name


def cookie_token(handler) -> str | None:
    """The access token in a request's (signed) `access_token` cookie."""
    raw = handler.get_secure_cookie("access_token", max_age_days=panel_config.oauth_expiry)
    return pn.state._decrypt_cookie(raw) if raw else None


def clear_login(handler) -> None:
    for name in LOGIN_COOKIES:
        handler.clear_cookie(name, path=panel_config.cookie_path)


class HubLoginProvider(OAuthProvider):
    """Panel's OAuth provider (the hub as provider, guests allowed), with the hub asked about the login on
    every page request and websocket: a login the hub has ended is a guest here."""

    @property
    def get_user_async(self):
        async def get_user(handler):
            raw = handler.get_secure_cookie("user", max_age_days=panel_config.oauth_expiry)
            name = raw.decode("utf-8") if raw else None
            if name and name != GUEST:
                model = await login_of(cookie_token(handler))
                if model is not None and model.get("name") == name:
                    if isinstance(handler, WebSocketHandler):
                        pn.state._active_users[name] += 1
                    return name
                if not isinstance(handler, WebSocketHandler):
                    clear_login(handler)
            if not self._allow_guest(handler.request.uri):
                return None
            handler.request.cookies["is_guest"] = "1"  # the session reads it: pn.state.user is then "guest"
            if isinstance(handler, WebSocketHandler):
                pn.state._active_users[GUEST] += 1
            return GUEST
        return get_user

    @property
    def login_handler(self):
        super().login_handler  # configures Panel's handler classes (templates, endpoint), which ours inherits
        return LoginHandler


class LoginHandler(GenericLoginHandler):
    """Panel's OAuth login with the hub, with `next` (where to go after login) only a path on this site:
    Panel refuses schemes, hosts and backslashes; this also refuses `//`, encoded variants and control
    characters (ldj.portal.params.local_path)."""

    async def get(self):
        target = self.get_argument("next", None)
        if target is not None:
            try:
                parse("next", target, local_path)
            except BadParameter as exc:
                raise HTTPError(400, reason="Bad Request", log_message=str(exc).replace("%", "%%")) from None
        await super().get()
