"""The data service: the only way person-level data reaches a workspace.

A JupyterHub service (tornado). Clients authenticate with their own JupyterHub token; every read
is checked against the grants at that moment and written to the access log, allowed or refused.

    GET {prefix}api/me                                         the caller's active grants
    GET {prefix}api/projects/{project}/entries/{entry}.parquet   an extract (?variables=a,b&version=v)
    GET {prefix}api/projects/{project}/entries/{entry}/manifest  its manifest (JSON)

Every path part and argument is parsed into a typed value first (`extracts.parse_query`): a bad
one is a 400 with a plain message, an unknown entry or data version a 404, a refusal by the policy
(`ldj.policy.Refused`) a 403, a missing or forged token a 401 — each written to the access log.

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

from . import policy, store
from .audit import Reason, clean, log_access
from .catalogue import load_entries
from .extracts import PROJECT_ID, BadInput, ExtractError, parse_query, read_extract
from .instruments import load_instruments
from .settings import Settings, get_settings

SERVICE_NAME = "ldj-data"
EXTRACT_ARGUMENTS = ("variables", "version")


class _Base(HubAuthenticated, web.RequestHandler):
    """Authenticates with the caller's hub token; answers JSON errors, never a login redirect."""

    @property
    def ldj(self) -> dict:
        return self.settings["ldj"]

    def user_name(self) -> str:
        user = self.get_current_user()
        if not user:
            log_access(self.ldj["engine"], user="-", outcome="refused", reason=Reason("no_token"),
                       entry=self.path_kwargs.get("entry"))
            raise self.refuse(401, Reason("no_token").text())
        return user["name"]

    def refuse(self, status: int, message: str) -> web.HTTPError:
        """The error to raise: `message` goes in the JSON body (escaped), never in the status line."""
        self._message = clean(message)
        return web.HTTPError(status)

    def write_error(self, status_code: int, **kwargs) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        message = getattr(self, "_message", None) or self._reason
        self.finish(json.dumps({"status": status_code, "error": message}, ensure_ascii=False))


class MeHandler(_Base):
    def get(self) -> None:
        from .governance import active_grants

        name = self.user_name()
        try:
            policy.check(policy.actor_for(self.ldj["engine"], name), "grants.list")
        except policy.Refused as exc:
            raise self.refuse(403, str(exc)) from None
        grants = active_grants(self.ldj["engine"], name, on=date.today())
        self.finish({"user": name, "grants": [
            {"project": g.project_id, "entry": g.entry, "variables": list(g.variables),
             "valid_until": g.valid_until.isoformat()} for g in grants]})


class ExtractHandler(_Base):
    def _arguments(self) -> dict[str, str]:
        """The query arguments, each at most once and valid UTF-8; any other argument is refused."""
        out = {}
        for name, values in self.request.query_arguments.items():
            if name not in EXTRACT_ARGUMENTS:
                raise BadInput("bad_input", parameter="argument", value=name)
            if len(values) != 1:
                raise BadInput("bad_input", parameter=name, value=f"{len(values)}x")
            try:
                out[name] = values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise BadInput("bad_input", parameter=name, value=values[0].decode("utf-8", "replace")) from None
        return out

    async def get(self, project: str, entry: str, manifest: str | None = None) -> None:
        name = self.user_name()
        ldj = self.ldj
        try:
            arguments = self._arguments()
            query = parse_query(ldj["entries"], project, entry, arguments.get("variables"), arguments.get("version"))
        except ExtractError as exc:  # logged with the raw values, which the log normalises
            raw = {k: v[-1].decode("utf-8", "replace") for k, v in self.request.query_arguments.items() if v}
            log_access(ldj["engine"], user=name, outcome="refused", entry=entry, reason=exc.reason,
                       project=int(project) if PROJECT_ID.fullmatch(project) else None,
                       variables=raw["variables"].split(",") if raw.get("variables") else None,
                       version=raw.get("version"))
            raise self.refuse(400 if isinstance(exc, BadInput) else 404, str(exc)) from None
        try:
            path, man = await asyncio.to_thread(read_extract, ldj["engine"], ldj["config"], name, query,
                                                ldj["entries"], ldj["instruments"])
        except policy.Refused as exc:  # logged by read_extract
            raise self.refuse(403, str(exc)) from None
        except ExtractError as exc:
            raise self.refuse(400 if isinstance(exc, BadInput) else 404, str(exc)) from None
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
        # path parts are matched loosely and parsed strictly (extracts.parse_query): bad ones get a 400
        (rf"{prefix}api/projects/(?P<project>[^/]+)/entries/(?P<entry>[^/]+)\.parquet", ExtractHandler),
        (rf"{prefix}api/projects/(?P<project>[^/]+)/entries/(?P<entry>[^/]+)/(?P<manifest>manifest)", ExtractHandler),
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
