"""Retention: what the data folder keeps once newer data arrive or a project ends.

The store is the source. Per data version the platform derives files from it: catalogue snapshots
(`snapshots/<version>/`), the dashboards' cube (`indicators/<version>/`) and the factsheet cache
(`factsheet/cache/<version>-….json`); the cube's inputs per organisation (`cube-parts/<key>/`) and the
snapshots' per organisation (`snapshot-parts/<key>/`) stay while a kept cube or snapshot version was
built from them. Every import makes a new version, so without pruning the folder
grows by a full copy of the data per delivery. Kept are the newest `keep_data_versions` versions (the
current one and the one the portal shows, `ldj.versions`, always) and every snapshot version an
active project's extracts were cut from, so that project can repeat its analysis on the same data.

A project's extracts (`extracts/project-<id>/`) are person-level data made for that project only: once
the project is no longer active (closed, or past its end date) they are removed. Their rows in the
`extracts` table stay (what was made, its checksum) with `removed_at` set, and the access log records
the removal. Each prune also removes extract files that may hold a client who objected since they
were cut (`ldj.extracts.withdraw_objections`; an import does so at once, this catches what it missed).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from . import store
from .audit import Reason, log_access
from .extracts import withdraw_objections
from .i18n import t
from .settings import Settings

ACTOR = "ldj-retention"
LEFTOVER_SECONDS = 3600  # a temporary file or folder older than this belongs to a build that died


@dataclass(frozen=True)
class Removal:
    kind: str  # extracts | snapshots | snapshot_parts | indicators | cube_parts | factsheet | leftover
    path: Path
    bytes: int
    reason: str
    project: int | None = None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _ended_projects(engine: sa.Engine, on: date, language: str) -> dict[int, str]:
    """Projects that may no longer read data, with why: closed, or past their end date."""
    p = store.projects
    with engine.connect() as conn:
        rows = conn.execute(sa.select(p.c.id, p.c.status, p.c.ends)).all()
    ended = {}
    for row in rows:
        if row.status != "active":
            ended[row.id] = t("ret_project_closed", language, project=row.id)
        elif row.ends < on:
            ended[row.id] = t("ret_project_ended", language, project=row.id, ends=f"{row.ends:%d-%m-%Y}")
    return ended


def _pinned_versions(engine: sa.Engine, ended: dict[int, str]) -> set[str]:
    """Data versions that extracts of still-active projects were cut from (a file removed because a
    client objected still pins its version: it is cut again from that snapshot)."""
    e = store.extracts
    with engine.connect() as conn:
        rows = conn.execute(sa.select(e.c.project_id, e.c.data_version).distinct()).all()
    return {row.data_version for row in rows if row.project_id not in ended}


def _newest_versions(folders: list[Path], keep: int, current: str) -> set[str]:
    """The current version and the newest others, up to `keep` in all (newest by modification time)."""
    others = sorted((f for f in folders if f.name != current), key=lambda f: f.stat().st_mtime, reverse=True)
    return {current, *(f.name for f in others[:max(keep - 1, 0)])}


def _version_folders(root: Path) -> list[Path]:
    return [f for f in root.iterdir() if f.is_dir() and not f.name.startswith(".")] if root.is_dir() else []


def _leftovers(root: Path, now: float) -> list[Path]:
    """Temporary files and folders of builds that never finished (`.….tmp`)."""
    if not root.is_dir():
        return []
    return [f for f in root.rglob("*.tmp") if now - f.stat().st_mtime > LEFTOVER_SECONDS]


def _unused_parts(kind: str, root: Path, listings: list[Path], now: float, reason: str) -> list[Removal]:
    """Per-organisation parts (`ldj.parts`) that no kept version lists (the `parts` of its listing
    file) and that are older than a build in progress could be."""
    used = set()
    for listing in listings:
        if listing.is_file():
            used |= set(json.loads(listing.read_text()).get("parts", []))
    return [Removal(kind, f, _size(f), reason) for f in sorted(_version_folders(root))
            if f.name not in used and now - f.stat().st_mtime > LEFTOVER_SECONDS]


def plan(engine: sa.Engine, settings: Settings, on: date | None = None) -> list[Removal]:
    """What `prune` would remove, and why; removes nothing."""
    from .versions import ready_version

    on = on or date.today()
    data = settings.data_dir
    current = store.data_version(engine)[0]
    shown = {current, ready_version(settings) or current}  # what the portal may be reading
    language = settings.language
    ended = _ended_projects(engine, on, language)
    keep = max(settings.keep_data_versions, 1)

    def old(f: Path) -> str:
        return t("ret_old_version", language, version=f.name, keep=keep)

    out: list[Removal] = []

    for folder in sorted(_version_folders(data / "extracts")):
        number = folder.name.removeprefix("project-")
        project = int(number) if folder.name.startswith("project-") and number.isascii() and number.isdigit() else None
        if project in ended:
            out.append(Removal("extracts", folder, _size(folder), ended[project], project))

    pinned = _pinned_versions(engine, ended)
    snapshots = _version_folders(data / "snapshots")
    newest = _newest_versions(snapshots, keep, current)
    kept = newest | pinned | shown
    out += [Removal("snapshots", f, _size(f), old(f))
            for f in sorted(snapshots) if f.name not in kept]
    now = time.time()
    out += _unused_parts("snapshot_parts", data / "snapshot-parts", [f / "parts.json" for f in snapshots if f.name in kept],
                         now, t("ret_unused_snapshot_part", language))

    cubes = _version_folders(data / "indicators")
    kept_cubes = _newest_versions(cubes, keep, current) | shown
    out += [Removal("indicators", f, _size(f), old(f))
            for f in sorted(cubes) if f.name not in kept_cubes]

    out += _unused_parts("cube_parts", data / "cube-parts", [f / "meta.json" for f in cubes if f.name in kept_cubes],
                         now, t("ret_unused_cube_part", language))

    cache = data / "factsheet" / "cache"
    if cache.is_dir():
        kept_sheets = kept_cubes | newest
        for f in sorted(cache.glob("*.json")):
            if f.name.split("-", 1)[0] not in kept_sheets:
                out.append(Removal("factsheet", f, f.stat().st_size, t("ret_old_factsheet", language)))

    planned = {r.path for r in out}
    for root in (data / "snapshots", data / "snapshot-parts", data / "indicators", data / "cube-parts",
                 data / "extracts", cache):
        out += [Removal("leftover", f, _size(f), t("ret_leftover", language)) for f in _leftovers(root, now)
                if not any(p in f.parents for p in planned)]
    return out


def prune(engine: sa.Engine, settings: Settings, on: date | None = None, dry_run: bool = False) -> list[Removal]:
    """Remove what `plan` lists; with `dry_run`, only say it. Safe to run at any time, and twice."""
    removals = plan(engine, settings, on)
    if dry_run:
        return removals
    withdraw_objections(engine, settings, ACTOR)  # files an objection missed (an import that stopped half-way)
    for r in removals:
        if r.kind == "extracts":
            _remove_extracts(engine, r)
        elif r.path.is_dir():
            shutil.rmtree(r.path, ignore_errors=True)
        else:
            r.path.unlink(missing_ok=True)
    return removals


def _remove_extracts(engine: sa.Engine, removal: Removal) -> None:
    """A project's extract files go; the record of what was made stays, and the removal is logged."""
    e = store.extracts
    shutil.rmtree(removal.path, ignore_errors=True)
    with engine.begin() as conn:
        conn.execute(e.update().where(e.c.project_id == removal.project, e.c.removed_at.is_(None))
                     .values(removed_at=datetime.now(timezone.utc)))
    log_access(engine, user=ACTOR, action="extract.remove", outcome="removed", project=removal.project,
               reason=Reason("project_ended", {"project": removal.project, "why": removal.reason}))


def total_bytes(removals: list[Removal]) -> int:
    return sum(r.bytes for r in removals)
