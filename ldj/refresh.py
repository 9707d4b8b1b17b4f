"""The one import pipeline: a delivery read, validated and loaded, then every derived view refreshed in
dependency order.

`import_delivery` is the whole import as one domain call; `ldj ingest`, the tests and the benchmarks
all use it. It holds the data folder's refresh lock while loading (`ldj.versions.updating`), so no
refresh elsewhere starts on a half-loaded delivery, and then `refresh` builds the new data version's
views: the catalogue's snapshots (extracts and feasibility counts read them), the dashboards' cube,
the factsheet; then it marks the version ready (published views switch to it at once) and prunes.

The views do not import each other or this module; `ldj.versions` knows versions and the lock, not the
views. A new view is one step here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import sqlalchemy as sa

from . import retention, store, versions
from .catalogue import refresh_snapshots
from .delivery import DeliverySpec, load_spec
from .factsheet import factsheet
from .indicators import refresh_cube
from .ingest import Ingestor, IngestReport
from .settings import Settings, get_settings

DELIVERY_SUFFIXES = (".csv", ".xlsx", ".sav")

Say = Callable[[str, str], None]  # (text key, data version): a finished step


def delivery_files(paths: Iterable[Path | str], spec: DeliverySpec | None = None) -> list[Path]:
    """The files to import, in the import order of their kinds by name (catalog/delivery.yaml: trajectory
    files first, their measurements refer to them): files in the order given, a folder's delivery files by name."""
    spec = spec or load_spec(get_settings().catalog_dir)
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix.lower() in DELIVERY_SUFFIXES)
        else:
            out.append(path)
    return sorted(out, key=lambda p: spec.import_rank(p.name))  # stable: otherwise as given


def refresh(engine: sa.Engine, settings: Settings, say: Say | None = None, full: bool = False) -> str:
    """Build the current version's snapshots, cube and factsheet, record it ready, prune; returns it.

    Waits for a refresh already running, then does what is left (each step skips what exists). The
    cube reads the store again only for organisations whose deliveries changed; `full` rebuilds the
    snapshots and the cube from the whole store (the reference the incremental refresh must equal)."""
    say = say or (lambda key, version: None)
    with versions.updating(settings):
        version, batches = store.data_version(engine)
        refresh_snapshots(engine, settings, full=full)
        say("cat_refreshed", version)
        refresh_cube(engine, settings, full=full)
        say("ind_cube_built", version)
        factsheet(engine, settings, version=version)
        say("fsp_warmed", version)
        versions.mark_ready(settings, version, batches)
        retention.prune(engine, settings)
    return version


def import_delivery(paths: Iterable[Path | str], *, settings: Settings | None = None,
                    delivered_by: str | None = None, imported_by: str | None = None, progress: bool | None = None,
                    refresh_views: bool = True, on_report: Callable[[IngestReport], None] | None = None,
                    on_wait: Callable[[], None] | None = None, say: Say | None = None,
                    ingestor: Ingestor | None = None) -> list[IngestReport]:
    """Import delivery files (and folders of them) and, when anything loaded, refresh the views.

    One report per file, in import order; a file unusable as a whole is reported and the others are
    still imported. `refresh_views=False` leaves the refresh to the hub's lifecycle service (or the
    next import). `ingestor`: one to reuse across calls (its validators are built once)."""
    ingestor = ingestor or Ingestor(settings or get_settings(), progress=progress, imported_by=imported_by)
    with versions.updating(ingestor.settings, on_wait=on_wait):
        reports = ingestor.ingest_many(delivery_files(paths, ingestor.spec), delivered_by=delivered_by, on_report=on_report)
        if refresh_views and any(r.status == "loaded" for r in reports):
            refresh(ingestor.engine, ingestor.settings, say)
    return reports
