"""The data service: the only way person-level data reaches a workspace.

A JupyterHub service (tornado). Clients authenticate with their own JupyterHub token; every read
is checked against the grants at that moment and written to the access log, allowed or refused.

    GET {prefix}api/me                                         the caller's active grants (and the upload limit)
    GET {prefix}api/projects/{project}/entries/{entry}.parquet   an extract (?variables=a,b&version=v)
    GET {prefix}api/projects/{project}/entries/{entry}/manifest  its manifest (JSON)
    POST {prefix}api/projects/{project}/releases                 a release request (multipart/form-data)

Every path part and argument is parsed into a typed value first (`extracts.parse_query`): a bad
one is a 400 with a plain message, an unknown entry or data version a 404, a refusal by the policy
(`ldj.policy.Refused`) a 403, a missing or forged token a 401 — each written to the access log.

A release request comes from the workspace, since the service cannot read the workspace's home (its
own OS account): `ldj.safe.submit` sends the finalised output folder as multipart/form-data, fields
`title` and `description` and one `file` part per file (`manifest.json`, each output's files and its
`<name>.meta.json`), each named by a plain file name. The upload is limited to `LDJ_RELEASE_MAX_MB`
(413; `api/me` tells the client the limit, so it need not send a folder too large); the files are written into a fresh private
folder under `<data_dir>/release-uploads/`, handed to `ldj.airlock.submit` (which checks the policy,
checks every output again and copies them) and removed. The answer is 201 with
`{"release": id, "url": link to it in the portal}`; a refusal is written to the access log as
`release.submit` (the request itself is logged as the workflow's first event).

Run it as a hub-managed service: `python -m ldj.dataservice` (the hub sets JUPYTERHUB_* variables).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuthenticated
from tornado import httputil, web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from . import airlock, paths, policy, safe, store, workflow
from .audit import Reason, clean, log_access
from .catalogue import load_entries
from .extracts import PROJECT_ID, BadInput, ExtractError, parse_project, parse_query, read_extract
from .i18n import t
from .instruments import load_instruments
from .settings import Settings, get_settings

SERVICE_NAME = "ldj-data"
EXTRACT_ARGUMENTS = ("variables", "version")
RELEASE_FIELDS = ("title", "description", "public", "release")  # public: output names, comma-separated; release: an id to answer
# A file of an ldj.safe folder: letters, digits, '.', '_' and '-', not starting with a dot, no '..', at most
# 80 characters (a release file's name in the store).
PLAIN_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")
# Parts of one upload: the size limit is what bounds it; tornado's default (100) would stop a folder of
# about 48 outputs (each a file and its metadata).
RELEASE_MAX_PARTS = 2000
RELEASE_PAGE = "uitvoer"  # the portal's page of a release request: {portal_url}/uitvoer?id=<id>


def uploads_folder(settings: Settings) -> Path:
    """`<data_dir>/release-uploads/`: one private folder per release upload while it is handed on."""
    return paths.within(settings.data_dir, "release-uploads")


def max_body_size(settings: Settings) -> int:
    """The largest request body the service reads at all, in bytes: twice the release limit, plus room
    for the form (see ReleaseHandler)."""
    return (2 * settings.release_max_mb + 1) * 2**20


def release_url(settings: Settings, release_id: int) -> str | None:
    """The link to a release request in the portal, when a portal URL is configured."""
    if not settings.portal_url:
        return None
    return f"{settings.portal_url.rstrip('/')}/{RELEASE_PAGE}?id={int(release_id)}"


class _Base(HubAuthenticated, web.RequestHandler):
    """Authenticates with the caller's hub token; answers JSON errors, never a login redirect."""

    action = "extract.read"  # what refusals of this route are logged as

    @property
    def ldj(self) -> dict:
        return self.settings["ldj"]

    def user_name(self) -> str:
        user = self.get_current_user()
        if not user:
            log_access(self.ldj["engine"], user="-", outcome="refused", reason=Reason("no_token"),
                       action=self.action, entry=self.path_kwargs.get("entry"))
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
             "valid_until": g.valid_until.isoformat()} for g in grants],
            "release_max_mb": self.ldj["config"].release_max_mb})


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


def _listed_files(file_name: str, body: bytes) -> set[str] | None:
    """The files an ldj.safe metadata file (`<name>.meta.json`) lists, when it holds only what ldj.safe
    writes where the airlock takes names and paths from it (its own name, a known kind, plain file names,
    comments as text); else None."""
    try:
        meta = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != safe.FORMAT:
        return None
    files, comments, exception = meta.get("files"), meta.get("comments", []), meta.get("exception")
    plain = (meta.get("name") == file_name[: -len(safe.META_SUFFIX)] and safe.NAME.fullmatch(meta["name"]) is not None
             and meta.get("kind") in safe.KINDS and isinstance(files, dict)
             and all(isinstance(f, str) and PLAIN_FILE_NAME.fullmatch(f) and ".." not in f for f in files)
             and isinstance(comments, list) and all(isinstance(c, str) for c in comments)
             and (exception is None or isinstance(exception, str)))
    return set(files) if plain else None


class ReleaseRefused(Exception):
    """A release upload refused before it reached the airlock: the status and the access log's reason."""

    def __init__(self, status: int, reason: Reason):
        super().__init__(reason.text())
        self.status, self.reason = status, reason


@web.stream_request_body
class ReleaseHandler(_Base):
    """POST a release request: the workspace's ldj.safe folder, checked and handed to `airlock.submit`.

    The body is streamed in; the caller's token and the project id are checked before any of it is read.
    Beyond `LDJ_RELEASE_MAX_MB` nothing is kept: a body up to `max_body_size` (twice the limit) is read to
    its end and answered with 413, since a client still sending when the connection closes may lose the
    answer; a larger declared one is answered with 413 at once and the connection closed unread."""

    action = "release.submit"

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._received = 0
        self._name = self.user_name()
        self._limit = self.ldj["config"].release_max_mb * 2**20
        try:
            self._project = parse_project(self.path_kwargs["project"])
        except BadInput as exc:
            raise self._refusal(400, exc.reason) from None
        hard_limit = max_body_size(self.ldj["config"])
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > hard_limit:
            # the answer goes before the body and tornado closes the connection after it; the body must not
            # make tornado answer a second time (its own 400 for a body over max_body_size)
            self.request.connection.set_max_body_size(int(declared))
            raise self._refusal(413, Reason("too_large", {"size": int(declared), "limit": self._limit // 2**20}))
        self.request.connection.set_max_body_size(hard_limit)  # a chunked body is cut beyond this

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received <= self._limit:
            self._chunks.append(chunk)
        else:
            self._chunks = []  # counted, no longer kept: refused in post()

    def _refusal(self, status: int, reason: Reason, message: str | None = None) -> web.HTTPError:
        """Log the refusal and return the error to raise (`message`: what the caller reads, default the reason)."""
        log_access(self.ldj["engine"], user=self._name, outcome="refused", action=self.action,
                   project=getattr(self, "_project", None), reason=reason)
        return self.refuse(status, message or reason.text())

    def _form(self) -> tuple[dict[str, str], dict[str, bytes]]:
        """The fields (`title`, `description`, each once, UTF-8) and the files by their plain names."""
        arguments: dict[str, list[bytes]] = {}
        uploads: dict[str, list[httputil.HTTPFile]] = {}
        config = httputil.ParseBodyConfig(multipart=httputil.ParseMultipartConfig(max_parts=RELEASE_MAX_PARTS))
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ReleaseRefused(400, Reason("bad_input", {"parameter": "Content-Type", "value": content_type}))
        try:
            httputil.parse_body_arguments(content_type, b"".join(self._chunks), arguments, uploads,
                                          config=config)
        except httputil.HTTPInputError as exc:
            raise ReleaseRefused(400, Reason("bad_input", {"parameter": "body", "value": str(exc)})) from None
        finally:
            self._chunks = []
        fields = {}
        for name, values in arguments.items():
            if name not in RELEASE_FIELDS or len(values) != 1:
                raise ReleaseRefused(400, Reason("bad_input", {"parameter": "field", "value": name}))
            try:
                fields[name] = values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ReleaseRefused(400, Reason("bad_input", {"parameter": name, "value": "UTF-8"})) from None
        files: dict[str, bytes] = {}
        for name, parts in uploads.items():
            if name != "file":
                raise ReleaseRefused(400, Reason("bad_input", {"parameter": "field", "value": name}))
            for part in parts:
                if PLAIN_FILE_NAME.fullmatch(part.filename) is None or ".." in part.filename:
                    raise ReleaseRefused(400, Reason("bad_input", {"parameter": "file", "value": part.filename}))
                if part.filename in files:
                    raise ReleaseRefused(400, Reason("bad_input", {"parameter": "file", "value": part.filename}))
                files[part.filename] = part.body
        # Only what ldj.safe.submit sends: the manifest, each output's metadata and the files it lists.
        listed = {safe.MANIFEST}
        for name, body in files.items():
            if name.endswith(safe.META_SUFFIX):
                found = _listed_files(name, body)
                if found is None:
                    raise ReleaseRefused(400, Reason("bad_input", {"parameter": "file", "value": name}))
                listed |= {name, *found}
        for name in files:
            if name not in listed:
                raise ReleaseRefused(400, Reason("bad_input", {"parameter": "file", "value": name}))
        return fields, files

    async def post(self, project: str) -> None:
        ldj = self.ldj
        config: Settings = ldj["config"]
        if self._received > self._limit:
            raise self._refusal(413, Reason("too_large", {"size": self._received, "limit": config.release_max_mb}))
        try:
            fields, files = self._form()
        except ReleaseRefused as exc:
            raise self._refusal(exc.status, exc.reason) from None
        try:
            release_id = await asyncio.to_thread(self._submit, fields, files)
        except policy.Refused as exc:  # the caller reads the policy's own words
            raise self._refusal(403, Reason("refused", {"rule": exc.action or self.action}), str(exc)) from None
        except (airlock.AirlockError, workflow.DomainError) as exc:  # a returned request only; not found
            raise self._refusal(400, Reason("bad_release", {"message": str(exc)})) from None
        self.set_status(201)
        self.finish({"release": release_id, "url": release_url(config, release_id)})

    def _submit(self, fields: dict[str, str], files: dict[str, bytes]) -> int:
        """Write the files into a fresh private folder, make the request from it, remove the folder."""
        config: Settings = self.ldj["config"]
        uploads = uploads_folder(config)
        uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))
        try:
            for name, body in files.items():
                with paths.within(folder, name).open("xb") as out:
                    out.write(body)
            public = [name.strip() for name in fields.get("public", "").split(",") if name.strip()]
            try:
                if fields.get("release"):  # the author answers her returned request with the folder as it is now
                    release_id = int(fields["release"]) if fields["release"].isdigit() else None
                    if release_id is None:
                        raise airlock.AirlockError(Reason("bad_input", {"parameter": "release",
                                                                        "value": fields["release"]}).text())
                    if airlock.get_release(self.ldj["engine"], release_id, self._name).project_id != self._project:
                        raise airlock.AirlockError(t("al_not_found", config.language, id=release_id))
                    airlock.resubmit(self.ldj["engine"], release_id, self._name, folder,
                                     description=fields.get("description") or None, public=public, settings=config)
                    return release_id
                return airlock.submit(self.ldj["engine"], self._name, self._project, folder,
                                      title=fields.get("title", ""), description=fields.get("description", ""),
                                      public=public, settings=config)
            except airlock.AirlockError as exc:  # its message names the folder: say "the upload" instead
                raise airlock.AirlockError(str(exc).replace(str(folder), t("ds_upload", config.language))) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)


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
        (rf"{prefix}api/projects/(?P<project>[^/]+)/releases", ReleaseHandler),
    ], ldj=ldj)


def main() -> None:
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8181"))
    settings = get_settings()
    # Uploads a service stopped mid-request left behind (one service process: none is in flight now).
    shutil.rmtree(uploads_folder(settings), ignore_errors=True)
    # No request body beyond a release upload (plus room for its form) is read at all.
    server = HTTPServer(make_app(settings), max_body_size=max_body_size(settings))
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    try:
        IOLoop.current().start()
    except KeyboardInterrupt:  # the hub stops its managed services with SIGINT
        pass


if __name__ == "__main__":
    main()
