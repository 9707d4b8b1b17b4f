"""Data versions: the refresh that makes a version ready, and the version published views show.

Every import makes a new data version (`store.data_version`). Its derived files (catalogue
snapshots, the dashboards' cube, the factsheet) take seconds at 100,000 questionnaires and many
minutes at ten million. `ldj.refresh` builds them for the current version, one refresh at a time (the
lock file of `updating` in the data folder), and records the version as ready here (`mark_ready`,
`<data_dir>/ready.json`). The hub's lifecycle service refreshes a version left unready for a round (an
import with `--no-snapshots`, or one stopped half-way). This module knows versions and the lock, not
the views: they import it, never the other way round.

The published aggregate views (factsheet, dashboards, feasibility counts) read `shown_version`: the
current version once it is ready, until then the last ready one, so no visitor waits for a build
after an import. Person-level extracts always use the current version, so an objection counts at
once.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from . import store
from .settings import Settings

READY = "ready.json"
LOCK = "refresh.lock"


def store_identity(settings: Settings) -> str:
    """Which store a ready marker belongs to: the database URL, a SQLite file by its place in the data folder."""
    url = sa.make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        path = Path(url.database).resolve()
        inside = path.is_relative_to(settings.data_dir.resolve())
        return f"sqlite:{path.relative_to(settings.data_dir.resolve()) if inside else path}"
    return url.render_as_string(hide_password=True)


_held: dict[str, list] = {}  # lock file -> [open file, depth]: re-entrant within a process (its threads share it)


@contextmanager
def updating(settings: Settings, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold the data folder's refresh lock (an import holds it while loading, so no refresh starts on a
    half-loaded delivery); with `wait=False`, yield False at once when another process holds it.
    `on_wait` is called once when the lock is taken and this call is about to wait for it."""
    path = str((settings.data_dir / LOCK).resolve())
    if path in _held:
        _held[path][1] += 1
        try:
            yield True
        finally:
            _held[path][1] -= 1
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        _held[path] = [handle, 1]
        try:
            yield True
        finally:
            del _held[path]
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def refreshing(settings: Settings) -> bool:
    """Whether a refresh runs now (in any process on this data folder)."""
    path = str((settings.data_dir / LOCK).resolve())
    if path in _held:
        return True
    with updating(settings, wait=False) as free:
        return not free


def ready_version(settings: Settings) -> str | None:
    """The newest version whose derived files are complete, or None (never refreshed, or another store)."""
    try:
        ready = json.loads((settings.data_dir / READY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ready.get("version") if ready.get("database") == store_identity(settings) else None


def shown_version(engine: sa.Engine, settings: Settings, current: str | None = None) -> str:
    """The version published views show: the last ready one, or the current one when none is."""
    return ready_version(settings) or current or store.data_version(engine)[0]


def behind(engine: sa.Engine, shown: str) -> bool:
    """A newer import than the `shown` version is loaded and still being refreshed."""
    return shown != store.data_version(engine)[0]


def mark_ready(settings: Settings, version: str, batches: list[int]) -> None:
    """Record `version` as ready (its derived files complete): published views switch to it."""
    path = settings.data_dir / READY
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": version, "batches": batches, "database": store_identity(settings),
                               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}), encoding="utf-8")
    tmp.replace(path)


def needs_refresh(engine: sa.Engine, settings: Settings) -> bool:
    """The current version is not ready and no refresh is running."""
    return ready_version(settings) != store.data_version(engine)[0] and not refreshing(settings)
