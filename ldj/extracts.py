"""Per-project extracts: only the granted variables, project-specific pseudonyms, pinned to a data
version, with a manifest; and the access check that guards every read, logged either way.

Used by the data service (the only way person-level data reaches a workspace) and `ldj extract`.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from . import store
from .catalogue import Entry, snapshot
from .instruments import Instrument
from .pseudonyms import PSEUDONYM_CHARS, load_or_create_key
from .settings import Settings


class AccessRefused(PermissionError):
    """A read outside the grant. `status` is the HTTP status the data service answers with."""

    def __init__(self, reason: str, status: int = 403):
        super().__init__(reason)
        self.reason = reason
        self.status = status


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


def log_access(engine: sa.Engine, *, user: str, outcome: str, project: int | None = None, entry: str | None = None,
               variables: list[str] | None = None, rows: int | None = None, version: str | None = None,
               reason: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(store.access_log.insert().values(
            at=datetime.now(timezone.utc), user_name=user, project_id=project, entry=entry, variables=variables,
            rows=rows, data_version=version, outcome=outcome, reason=reason))


def authorize(engine: sa.Engine, user: str, project: int, entry: str, variables: list[str] | None,
              entries: dict[str, Entry], on: date | None = None) -> list[str]:
    """The variables `user` may read of `entry` in `project` today, or `AccessRefused`.

    The grants decide (`governance.granted_variables`, read at every call: revocation and expiry
    count at once). `variables=None` asks for every granted variable.
    """
    from .governance import granted_variables

    on = on or date.today()
    if entry not in entries:
        raise AccessRefused(f"onbekend catalogusitem '{entry}'", 404)
    granted = granted_variables(engine, user, project, entry, on)
    if not granted:
        raise AccessRefused(_why_not(engine, user, project, entry, on))
    if variables is None:
        return [v for v in entries[entry].variable_names if v in granted]
    refused = [v for v in variables if v not in granted]
    if refused:
        raise AccessRefused(f"variabelen niet toegekend: {', '.join(refused)}")
    return list(variables)


def _why_not(engine: sa.Engine, user: str, project: int, entry: str, on: date) -> str:
    """Why a user has no access, for the refusal message and the access log."""
    g, p = store.grants, store.projects
    with engine.connect() as conn:
        rows = conn.execute(sa.select(g.c.valid_from, g.c.valid_until, g.c.revoked_at, p.c.status)
                            .select_from(g.join(p, p.c.id == g.c.project_id))
                            .where(g.c.user_name == user, g.c.project_id == project, g.c.entry == entry)).all()
    if not rows:
        return f"geen toekenning voor '{entry}' in project {project}"
    if all(r.revoked_at is not None for r in rows):
        return "toekenning ingetrokken"
    if all(r.status != "active" for r in rows):
        return "project gesloten"
    if all(not (r.valid_from <= on <= r.valid_until) for r in rows):
        return "toekenning verlopen of nog niet geldig"
    return "account niet actief"


def build_extract(engine: sa.Engine, settings: Settings, project: int, entry: Entry, variables: list[str],
                  instruments: dict[str, Instrument], version: str | None = None) -> tuple[Path, Manifest]:
    """The project's extract of `entry` with exactly `variables`, at the current data version or
    at an earlier `version` whose entry snapshot is still kept (to repeat an analysis)."""
    current, batches = store.data_version(engine)
    snapshots = settings.data_dir / "snapshots"
    if version is None or version == current:
        version = current
        _record_batches(snapshots / version, batches)
    else:
        kept = snapshots / version / f"{entry.id}.parquet"
        if not kept.exists():
            raise AccessRefused(f"gegevensversie {version} van '{entry.id}' is niet (meer) beschikbaar", 404)
        batches = json.loads((snapshots / version / "version.json").read_text())["batches"]
    p = store.projects
    with engine.connect() as conn:
        salt = conn.execute(sa.select(p.c.salt).where(p.c.id == project)).scalar_one()
    tag = hashlib.sha256(json.dumps(sorted(variables)).encode()).hexdigest()[:8]
    folder = settings.data_dir / "extracts" / f"project-{project}" / version
    path = folder / f"{entry.id}-{tag}.parquet"
    manifest_path = path.with_suffix(".manifest.json")
    if path.exists() and manifest_path.exists():
        return path, Manifest(**json.loads(manifest_path.read_text()))
    materialised = snapshot(engine, entry, instruments, snapshots / version)
    frame = pd.read_parquet(materialised, columns=variables)
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
    manifest_path.write_text(json.dumps(manifest.to_json(), indent=2))
    with engine.begin() as conn:
        conn.execute(store.extracts.insert().values(
            project_id=project, entry=entry.id, variables=list(variables), data_version=version, path=str(path),
            rows=len(frame), sha256=digest, created_at=datetime.now(timezone.utc)))
    return path, manifest


def _record_batches(folder: Path, batches: list[int]) -> None:
    """Which import batches a data version holds, kept beside its snapshots."""
    path = folder / "version.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": folder.name, "batches": batches}))


def read_extract(engine: sa.Engine, settings: Settings, user: str, project: int, entry_id: str,
                 variables: list[str] | None, entries: dict[str, Entry],
                 instruments: dict[str, Instrument], version: str | None = None) -> tuple[Path, Manifest]:
    """Authorize, build (or reuse) and log one read. Refusals are logged and re-raised."""
    try:
        allowed = authorize(engine, user, project, entry_id, variables, entries)
        path, manifest = build_extract(engine, settings, project, entries[entry_id], allowed, instruments, version)
    except AccessRefused as exc:
        log_access(engine, user=user, outcome="refused", project=project, entry=entry_id, variables=variables,
                   reason=exc.reason, version=version)
        raise
    log_access(engine, user=user, outcome="allowed", project=project, entry=entry_id, variables=allowed,
               rows=manifest.rows, version=manifest.data_version)
    return path, manifest
