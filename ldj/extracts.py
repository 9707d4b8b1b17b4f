"""Per-project extracts: only the granted variables, project-specific pseudonyms, pinned to a data
version, with a manifest; the access check that guards every read, logged either way; and the
objections, honoured in every version.

Used by the data service (the only way person-level data reaches a workspace). Requests arrive as
raw path parts and arguments and become an `ExtractQuery` first (`parse_query`: `BadInput`,
`NotFound`); permission refusals are `ldj.policy.Refused`. File paths come from validated ids only,
through `ldj.paths`. A client who objects now is in no extract of any data version: rows are
filtered against the current objections when a file is cut, and when an objection arrives the
files already cut that may hold that client are removed (`withdraw_objections`), and logged.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from . import policy, store
from .audit import Reason, log_access
from .catalogue import Entry, snapshot
from .governance import granted_variables
from .instruments import Instrument
from .paths import UnsafePath, extract_folder, is_version, snapshot_folder, within
from .pseudonyms import PSEUDONYM_CHARS, load_or_create_key
from .settings import Settings

__all__ = ["BadInput", "ExtractQuery", "Manifest", "NotFound", "authorize", "build_extract", "log_access",
           "parse_query", "read_extract", "withdraw_objections"]


class ExtractError(Exception):
    """A request the data service cannot serve for another reason than permission; carries the
    access log's reason (`audit.Reason`)."""

    def __init__(self, code: str, **fields):
        self.reason = Reason(code, fields)
        super().__init__(self.reason.text())


class BadInput(ExtractError, ValueError):
    """A path part or argument that is not a valid value (the data service answers 400)."""


class NotFound(ExtractError, LookupError):
    """A well-formed id that does not exist, or an earlier data version no longer kept (404)."""


@dataclass(frozen=True)
class ExtractQuery:
    """One validated request: a project id, an entry of the catalogue, variables of its dictionary
    (None: every granted one), a data version id (None: the current one)."""

    project: int
    entry: str
    variables: tuple[str, ...] | None = None
    version: str | None = None


PROJECT_ID = re.compile(r"[1-9][0-9]{0,9}")
ENTRY_ID = re.compile(r"[a-z0-9_]{1,100}")


def parse_project(project: str) -> int:
    """A project id from a path part (digits, no leading zero, at most ten), else `BadInput`."""
    if not PROJECT_ID.fullmatch(project or ""):
        raise BadInput("bad_input", parameter="project", value=project)
    return int(project)


def parse_query(entries: dict[str, Entry], project: str, entry: str, variables: str | None = None,
                version: str | None = None) -> ExtractQuery:
    """Raw path parts and arguments to an `ExtractQuery`, or `BadInput` / `NotFound` naming the part."""
    parse_project(project)
    if entry not in entries:
        if ENTRY_ID.fullmatch(entry or ""):
            raise NotFound("unknown_entry", entry=entry)
        raise BadInput("bad_input", parameter="entry", value=entry)
    wanted = None
    if variables:
        wanted = tuple(dict.fromkeys(v for v in variables.split(",") if v))
        unknown = [v for v in wanted if v not in entries[entry].variable_names]
        if unknown or not wanted:
            raise BadInput("unknown_variables", entry=entry, variables=unknown or [variables])
    if version is not None and version != "" and not is_version(version):
        raise BadInput("bad_input", parameter="version", value=version)
    return ExtractQuery(int(project), entry, wanted, version or None)


@dataclass
class Manifest:
    project: int
    entry: str
    variables: list[str]
    data_version: str
    batches: list[int]
    rows: int
    sha256: str
    created_at: str

    def to_json(self) -> dict:
        return asdict(self)


def project_pseudonyms(key: bytes, salt: str, values: pd.Series) -> pd.Series:
    """Store pseudonyms re-keyed per project, so two projects' extracts cannot be linked.

    Each 12-byte store pseudonym is one AES block (zero-padded) under a key derived from the
    pseudonym key and the project's salt (HMAC-SHA256): a keyed pseudo-random permutation, the
    same for a client within a project, unrelated across projects, and vectorised over the
    whole column.
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    nbytes = PSEUDONYM_CHARS // 2
    project_key = hmac.digest(key, f"project\x1f{salt}".encode(), "sha256")[:16]
    present = values.notna().to_numpy()
    out = np.full(len(values), None, dtype=object)
    if present.any():
        raw = np.frombuffer(binascii.unhexlify("".join(values[present].tolist())), dtype=np.uint8)
        blocks = np.zeros((present.sum(), 16), dtype=np.uint8)
        blocks[:, :nbytes] = raw.reshape(-1, nbytes)
        encryptor = Cipher(algorithms.AES(project_key), modes.ECB()).encryptor()  # one block per value
        cipher = np.frombuffer(encryptor.update(blocks.tobytes()) + encryptor.finalize(), dtype=np.uint8)
        hexed = binascii.hexlify(cipher.reshape(-1, 16)[:, :nbytes].tobytes())
        out[present] = np.frombuffer(hexed, dtype=f"S{PSEUDONYM_CHARS}").astype(str).astype(object)
    return pd.Series(out, index=values.index, dtype=object)


def authorize(engine: sa.Engine, actor: policy.Actor, query: ExtractQuery, entries: dict[str, Entry],
              on: date | None = None) -> list[str]:
    """The variables `actor` may read of the query's entry in its project today, or `policy.Refused`.

    The policy decides who may read a project's data at all (`extract.read`: an active grant in the
    project); the grants decide which entry and variables (`governance.granted_variables`, read at
    every call: revocation and expiry count at once). `variables=None` asks for every granted one."""
    on = on or date.today()
    granted: set[str] = set()
    try:
        policy.check(actor, "extract.read", policy.Target(project=query.project))
        granted = granted_variables(engine, actor.name, query.project, query.entry, on)
    except policy.Refused:
        pass
    wanted = list(query.variables) if query.variables is not None else \
        [v for v in entries[query.entry].variable_names if v in granted]
    if granted and all(v in granted for v in wanted):
        return wanted
    raise policy.Refused(why_refused(engine, actor, query, on).text(), "extract.read")


def why_refused(engine: sa.Engine, actor: policy.Actor, query: ExtractQuery, on: date | None = None) -> Reason:
    """Why `actor` may not read `query`, for the refusal message and the access log."""
    on = on or date.today()
    g, p = store.grants, store.projects
    with engine.connect() as conn:
        rows = conn.execute(sa.select(g.c.valid_from, g.c.valid_until, g.c.revoked_at, g.c.variables, p.c.status)
                            .select_from(g.join(p, p.c.id == g.c.project_id))
                            .where(g.c.user_name == actor.name, g.c.project_id == query.project,
                                   g.c.entry == query.entry)).all()
    if not rows:
        return Reason("no_grant", {"entry": query.entry, "project": query.project})
    if not actor.active:
        return Reason("account_inactive")
    if all(r.revoked_at is not None for r in rows):
        return Reason("grant_revoked")
    if all(r.status != "active" for r in rows):
        return Reason("project_closed")
    live = [r for r in rows if r.revoked_at is None and r.status == "active" and r.valid_from <= on <= r.valid_until]
    if not live:
        return Reason("grant_expired")
    granted = {v for r in live for v in r.variables}
    refused = [v for v in query.variables or () if v not in granted]
    if refused:
        return Reason("variables_not_granted", {"variables": refused})
    return Reason("refused")


# --- objections --------------------------------------------------------------------------------

def objectors(engine: sa.Engine) -> frozenset[str]:
    """Store pseudonyms of every client who objects now."""
    c = store.clients
    with engine.connect() as conn:
        return frozenset(conn.execute(sa.select(c.c.pseudonym).where(c.c.objection.is_(True))).scalars())


def _objections_digest(objecting: frozenset[str]) -> str:
    return hashlib.sha256("\n".join(sorted(objecting)).encode()).hexdigest()


def _without_objectors(frame: pd.DataFrame, objecting: frozenset[str]) -> pd.DataFrame:
    if not objecting or frame.empty:
        return frame
    return frame[~frame["client"].isin(objecting)].reset_index(drop=True)


# --- building and reading ----------------------------------------------------------------------

def _version_batches(settings: Settings, engine: sa.Engine, entry: Entry, version: str | None
                     ) -> tuple[str, list[int], Path, bool]:
    """The data version to cut from, its import batches, its snapshot folder, and whether it is the
    current one; `NotFound` for a version whose snapshot of `entry` is not kept."""
    current, batches = store.data_version(engine)
    if version is None or version == current:
        folder = snapshot_folder(settings.data_dir, current)
        _record_batches(folder, current, batches)
        return current, batches, folder, True
    if not is_version(version):
        raise BadInput("bad_input", parameter="version", value=version)
    folder = snapshot_folder(settings.data_dir, version)
    recorded = folder / "version.json"
    if not (folder / f"{entry.id}.parquet").is_file() or not recorded.is_file():
        raise NotFound("version_unavailable", version=version, entry=entry.id)
    return version, json.loads(recorded.read_text())["batches"], folder, False


def build_extract(engine: sa.Engine, settings: Settings, project: int, entry: Entry, variables: list[str],
                  instruments: dict[str, Instrument], version: str | None = None) -> tuple[Path, Manifest]:
    """The project's extract of `entry` with exactly `variables`, at the current data version or
    at an earlier `version` whose entry snapshot is still kept (to repeat an analysis).

    Whatever the version, no client who objects *now* is in it: rows are filtered against the
    current objections when the file is cut, and a file cut before the latest objection is cut
    again (the manifest keeps which objections it honoured)."""
    version, batches, snapshots, is_current = _version_batches(settings, engine, entry, version)
    p = store.projects
    with engine.connect() as conn:
        salt = conn.execute(sa.select(p.c.salt).where(p.c.id == project)).scalar_one()
    objecting = objectors(engine)
    honoured = _objections_digest(objecting)
    tag = hashlib.sha256(json.dumps(sorted(variables)).encode()).hexdigest()[:8]
    folder = extract_folder(settings.data_dir, project, version)
    path = within(folder, f"{entry.id}-{tag}.parquet")
    manifest_path = path.with_suffix(".manifest.json")
    if path.exists() and manifest_path.exists():
        kept = json.loads(manifest_path.read_text())
        if kept.pop("objections", None) == honoured:
            return path, Manifest(**kept)
    materialised = (snapshot(engine, entry, instruments, snapshots, settings=settings) if is_current
                    else snapshots / f"{entry.id}.parquet")
    if "client" in pq.read_schema(materialised).names:
        frame = pd.read_parquet(materialised, columns=list(dict.fromkeys([*variables, "client"])))
        frame = _without_objectors(frame, objecting)[list(variables)]
    elif is_current:  # cut from the research-usable rows of now: every objection so far is honoured
        frame = pd.read_parquet(materialised, columns=list(variables))
    else:  # an earlier version without clients to filter on cannot honour today's objections
        raise NotFound("version_unavailable", version=version, entry=entry.id)
    key = load_or_create_key(settings.resolved_key_file)
    for v in variables:
        if entry.variable(v).identifier:
            frame[v] = project_pseudonyms(key, salt, frame[v])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.replace(path)
    manifest = Manifest(project=project, entry=entry.id, variables=list(variables), data_version=version,
                        batches=batches, rows=len(frame), sha256=digest,
                        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    manifest_path.write_text(json.dumps({**manifest.to_json(), "objections": honoured}, indent=2))
    with engine.begin() as conn:
        conn.execute(store.extracts.insert().values(
            project_id=project, entry=entry.id, variables=list(variables), data_version=version, path=str(path),
            rows=len(frame), sha256=digest, created_at=datetime.now(timezone.utc)))
    return path, manifest


def _record_batches(folder: Path, version: str, batches: list[int]) -> None:
    """Which import batches a data version holds, kept beside its snapshots."""
    path = folder / "version.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": version, "batches": batches}))


def read_extract(engine: sa.Engine, settings: Settings, user: str, query: ExtractQuery, entries: dict[str, Entry],
                 instruments: dict[str, Instrument]) -> tuple[Path, Manifest]:
    """Authorize, build (or reuse) and log one read of a validated query. Refusals (`policy.Refused`,
    `NotFound`) are logged with their reason and re-raised."""
    actor = policy.actor_for(engine, user)
    try:
        allowed = authorize(engine, actor, query, entries)
        path, manifest = build_extract(engine, settings, query.project, entries[query.entry], allowed, instruments,
                                       query.version)
    except policy.Refused:
        log_access(engine, user=user, outcome="refused", project=query.project, entry=query.entry,
                   variables=None if query.variables is None else list(query.variables), version=query.version,
                   reason=why_refused(engine, actor, query))
        raise
    except ExtractError as exc:
        log_access(engine, user=user, outcome="refused", project=query.project, entry=query.entry,
                   variables=None if query.variables is None else list(query.variables), version=query.version,
                   reason=exc.reason)
        raise
    log_access(engine, user=user, outcome="allowed", project=query.project, entry=query.entry, variables=allowed,
               rows=manifest.rows, version=manifest.data_version)
    return path, manifest


# --- when an objection arrives -------------------------------------------------------------------

def withdraw_objections(engine: sa.Engine, settings: Settings, actor: str) -> list[Path]:
    """Remove every extract file on disk that may hold a client who objects now, and log each removal.

    A file cut after the latest objection (its manifest honoured the current objections) stays. Any
    other is checked against its data version's snapshot (store pseudonyms): it goes when that holds
    a current objector, or when the snapshot is gone and nobody can tell. Its row in `extracts` keeps
    what was made, with `removed_at`; the next read cuts it again without the objectors."""
    e = store.extracts
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e.c.project_id, e.c.entry, e.c.data_version, e.c.path, e.c.rows)
                            .where(e.c.removed_at.is_(None)).order_by(e.c.id)).all()
    if not rows:
        return []
    objecting = objectors(engine)
    honoured = _objections_digest(objecting)
    holders: dict[tuple[str, str], bool] = {}
    removed = []
    for row in {r.path: r for r in rows}.values():
        try:
            path = within(extract_folder(settings.data_dir, row.project_id, row.data_version), Path(row.path).name)
        except UnsafePath:
            continue  # not a path this module made
        manifest_path = path.with_suffix(".manifest.json")
        if manifest_path.is_file() and json.loads(manifest_path.read_text()).get("objections") == honoured:
            continue
        key = (row.data_version, row.entry)
        if key not in holders:
            holders[key] = _snapshot_holds(settings, row.data_version, row.entry, objecting)
        if not holders[key] and path.exists():
            continue
        path.unlink(missing_ok=True)
        manifest_path.unlink(missing_ok=True)
        with engine.begin() as conn:
            conn.execute(e.update().where(e.c.path == row.path, e.c.removed_at.is_(None))
                         .values(removed_at=datetime.now(timezone.utc)))
        log_access(engine, user=actor, action="extract.remove", outcome="removed", project=row.project_id,
                   entry=row.entry, version=row.data_version, rows=row.rows, reason=Reason("objection"))
        removed.append(path)
    return removed


def _snapshot_holds(settings: Settings, version: str, entry_id: str, clients: frozenset[str]) -> bool:
    """Whether the version's snapshot of the entry holds any of `clients`; True when nobody can tell."""
    if not clients:
        return False
    try:
        path = within(snapshot_folder(settings.data_dir, version), f"{entry_id}.parquet")
    except UnsafePath:
        return True
    if not path.is_file() or "client" not in pq.read_schema(path).names:
        return True
    column = pq.read_table(path, columns=["client"]).column("client")
    return bool(pc.any(pc.is_in(column, value_set=pa.array(sorted(clients)))).as_py())
