"""The data service: the only way person-level data reaches a workspace.

A JupyterHub service (tornado). Clients authenticate with their own JupyterHub token; every read
is checked against the grants at that moment and written to the access log, allowed or refused.

    GET {prefix}api/me                                         the caller's active grants
    GET {prefix}api/projects/{project}/entries/{entry}.parquet   an extract (?variables=a,b&version=v)
    GET {prefix}api/projects/{project}/entries/{entry}/manifest  its manifest (JSON)

Run it as a hub-managed service: `python -m ldj.dataservice` (the hub sets JUPYTERHUB_* variables).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import date
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuthenticated
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from . import store
from .catalogue import load_entries
from .extracts import AccessRefused, log_access, read_extract
from .instruments import load_instruments
from .settings import Settings, get_settings

SERVICE_NAME = "ldj-data"


class _Base(HubAuthenticated, web.RequestHandler):
    """Authenticates with the caller's hub token; answers JSON errors, never a login redirect."""

    @property
    def ldj(self) -> dict:
        return self.settings["ldj"]

    def user_name(self) -> str:
        user = self.get_current_user()
        if not user:
            log_access(self.ldj["engine"], user="-", outcome="refused", reason="geen of ongeldig token",
                       entry=self.path_kwargs.get("entry"))
            raise web.HTTPError(401, reason="geen of ongeldig token")
        return user["name"]

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"status": status_code, "error": self._reason}))


class MeHandler(_Base):
    def get(self) -> None:
        from .governance import active_grants

        name = self.user_name()
        grants = active_grants(self.ldj["engine"], name, on=date.today())
        self.finish({"user": name, "grants": [
            {"project": g.project_id, "entry": g.entry, "variables": list(g.variables),
             "valid_until": g.valid_until.isoformat()} for g in grants]})


class ExtractHandler(_Base):
    async def get(self, project: str, entry: str, manifest: str | None = None) -> None:
        name = self.user_name()
        wanted = self.get_argument("variables", None)
        variables = [v for v in wanted.split(",") if v] if wanted else None
        version = self.get_argument("version", None)  # repeat an analysis on an earlier data version
        ldj = self.ldj
        try:
            path, man = await asyncio.to_thread(read_extract, ldj["engine"], ldj["config"], name, int(project), entry,
                                                variables, ldj["entries"], ldj["instruments"], version)
        except AccessRefused as exc:
            raise web.HTTPError(exc.status, reason=exc.reason) from None
        if manifest:
            self.finish(man.to_json())
            return
        self.set_header("Content-Type", "application/vnd.apache.parquet")
        self.set_header("X-LDJ-Data-Version", man.data_version)
        self.set_header("X-LDJ-Rows", str(man.rows))
        self.set_header("X-LDJ-SHA256", man.sha256)
        self.finish(path.read_bytes())


def make_app(settings: Settings | None = None, prefix: str | None = None) -> web.Application:
    config = settings or get_settings()
    prefix = prefix or os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    ldj = {"config": config, "engine": store.get_engine(config), "entries": load_entries(config.catalog_dir),
           "instruments": load_instruments(config.catalog_dir)}
    return web.Application([
        (rf"{prefix}api/me", MeHandler),
        (rf"{prefix}api/projects/(?P<project>\d+)/entries/(?P<entry>[\w-]+)\.parquet", ExtractHandler),
        (rf"{prefix}api/projects/(?P<project>\d+)/entries/(?P<entry>[\w-]+)/(?P<manifest>manifest)", ExtractHandler),
    ], ldj=ldj)


def main() -> None:
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8181"))
    server = HTTPServer(make_app())
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    try:
        IOLoop.current().start()
    except KeyboardInterrupt:  # the hub stops its managed services with SIGINT
        pass


if __name__ == "__main__":
    main()
