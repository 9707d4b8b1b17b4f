"""Security headers and cookie flags on every response of the portal process.

One tornado output transform (`SecurityHeaders`, added to the portal's tornado application) sees every
response: Panel pages and their websockets' handshakes, plain handlers, static files, redirects and error
pages. It sets the headers below and gives every cookie, Panel's OAuth cookies included (Panel sets
them HttpOnly but without SameSite or Secure), the flags HttpOnly, SameSite=Lax and, when the request came
over https (directly or as the proxy's X-Forwarded-Proto), Secure.

The Content-Security-Policy is as strict as Panel and Bokeh allow:
- everything (scripts, styles, fonts, images, connections) from the portal's own origin only: no CDN,
  no other host to load from or send to; `connect-src 'self'` covers the page's own websocket;
- `script-src 'unsafe-inline'`: Panel's page embeds the session's document and starts BokehJS with an
  inline script whose text changes per session (its token), so neither a hash nor (without rewriting
  Panel's page template) a nonce can name it; the factsheet's chart is embedded the same way;
- `script-src 'unsafe-eval'`: BokehJS and Panel compile code at run time (`new Function`: Panel's
  templates and reactive models, Bokeh's JS callbacks);
- `style-src 'unsafe-inline'`: Bokeh and Panel style their components with inline styles and
  constructed stylesheets in shadow DOM;
- `style-src`/`font-src` `https://cdn.holoviz.org` (styles and fonts only, never script): Panel links its
  components' and its Bootstrap theme's stylesheets from its CDN even when it serves its JavaScript
  itself (`PANEL_CDN_ROOT` would move them, but Panel's templates then fail to render);
- not allowed: `blob:` scripts (Panel's es-module-shims probes for them and logs a refusal; the portal
  uses no ESM components), and any other host;
- `img-src data: blob:`: Bokeh's toolbar icons and plot exports;
- no framing (`frame-ancestors 'none'`), no plugins, forms and <base> only to the portal itself.
Because inline script is allowed, the CSP is a second line: the first is that no page puts a user's or a
URL's text into HTML unescaped (ldj.portal.html, checked by tests/test_portal_attacks.py).
"""

from __future__ import annotations

from tornado import httputil, web

PANEL_CDN = "https://cdn.holoviz.org"
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    f"style-src 'self' 'unsafe-inline' {PANEL_CDN}",
    "img-src 'self' data: blob:",
    f"font-src 'self' data: {PANEL_CDN}",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",  # for browsers without frame-ancestors
    "Cross-Origin-Opener-Policy": "same-origin",
}


def with_flags(cookie: str, secure: bool) -> str:
    """A Set-Cookie value with HttpOnly, SameSite=Lax (unless it names its own SameSite) and Secure."""
    attributes = {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")[1:]}
    if "httponly" not in attributes:
        cookie += "; HttpOnly"
    if "samesite" not in attributes:
        cookie += "; SameSite=Lax"
    if secure and "secure" not in attributes:
        cookie += "; Secure"
    return cookie


class _FlaggedHeaders(httputil.HTTPHeaders):
    """Response headers that flag each Set-Cookie as it is added (tornado adds cookies after transforms)."""

    secure = False

    def add(self, name: str, value: str) -> None:
        if name.lower() == "set-cookie":
            value = with_flags(value, self.secure)
        super().add(name, value)


def is_https(request: httputil.HTTPServerRequest) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.protocol == "https" or forwarded == "https"


class SecurityHeaders(web.OutputTransform):
    def __init__(self, request: httputil.HTTPServerRequest):
        super().__init__(request)
        self.secure = is_https(request)

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        flagged = _FlaggedHeaders()
        flagged.secure = self.secure
        for name, value in headers.get_all():
            flagged.add(name, value)
        for name, value in HEADERS.items():
            flagged[name] = value
        if self.secure:
            flagged["Strict-Transport-Security"] = "max-age=31536000"
        return super().transform_first_chunk(status_code, flagged, chunk, finishing)


def install(application: web.Application) -> None:
    """Add the transform to a tornado application (the portal's, once the server exists)."""
    if SecurityHeaders not in application.transforms:
        application.transforms.append(SecurityHeaders)
