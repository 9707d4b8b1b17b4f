"""Derived views kept per organisation: the key of an organisation's share and putting a build in place.

A client's rows all belong to one organisation (pseudonyms are keyed by organisation, and a delivery
file holds one organisation), and what the store holds of an organisation follows from its loaded
import batches: a delivery, a corrected re-delivery (which replaces the earlier batch of the same
organisation, kind and period) or an objection (a trajectory file) changes that set and nothing
else. So a view that works per organisation (the dashboards' cube inputs, the catalogue's snapshots)
keeps each organisation's share under a key of those batches and of the definitions the view was
made with, and reads the store again only for organisations whose key is new.

Neutral on purpose: the views use it, it knows none of them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from . import store


def definitions_digest(values: list, files: Iterable[Path]) -> str:
    """A digest of what a view's parts depend on besides the store: settings `values` and the bytes
    of definition `files` (named, so a renamed file counts)."""
    h = hashlib.sha256(json.dumps(values).encode())
    for path in files:
        h.update(path.name.encode() + b"\x1f" + path.read_bytes() + b"\x1e")
    return h.hexdigest()


def loaded_batches(engine: sa.Engine) -> dict[str, list[int]]:
    """Per organisation, the ids of its loaded import batches (ascending)."""
    b = store.import_batches
    with engine.connect() as conn:
        rows = conn.execute(sa.select(b.c.organisation, b.c.id).where(b.c.status == "loaded",
                                                                     b.c.organisation.is_not(None))
                            .order_by(b.c.organisation, b.c.id)).all()
    batches: dict[str, list[int]] = {}
    for organisation, batch in rows:
        batches.setdefault(organisation, []).append(batch)
    return batches


def keys(engine: sa.Engine, definitions: str) -> dict[str, str]:
    """Per organisation with loaded data, the key of its share (`paths.PART`: 32 hex digits)."""
    return {org: hashlib.sha256(json.dumps([definitions, org, ids]).encode()).hexdigest()[:32]
            for org, ids in loaded_batches(engine).items()}


def put_in_place(tmp: Path, folder: Path, replace: bool = False) -> None:
    """Move a finished build (a folder) to its place; when another process finished first, keep that
    one unless `replace`."""
    if folder.exists():
        if not replace:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
