"""Self-service feasibility counts: "how many CBCL start–end pairs for MST, start 2019–2023, ages 12–17?"

A count is taken over a catalogue entry's snapshot at the current data version (research-usable
rows only, so objectors are never counted) and published only through ldj.disclosure:

- fewer than `disclosure_threshold` distinct clients: suppressed; otherwise rounded;
- differencing: two published counts must not isolate a small group. For every filtered dimension,
  the clients left out by the filter (the complement within the other filters) and the clients of
  each selected category must each be at least the threshold; otherwise the count is suppressed.
  Dropping or adding one category to a filter therefore never reveals a small group.
  Unfiltered dimensions need no check: a count that would differ from this one by a small group
  fails its own check. Rounding adds protection against longer chains of differences.
- none looks like a few: filters are chosen freely, so an empty group (0 clients) is answered
  exactly as a small one, in the count ("fewer than the threshold") and in every slice above (an
  empty complement or category suppresses like a small one). Otherwise "published" next to
  "suppressed" would tell an empty group from a small one. A filter that selects every category of
  a dimension without missing values is no filter and is dropped first.

Filters are sets of categories (age in the age groups of catalog/age_groups.yaml, year of start as
whole years), never free ranges, so every query is one of a finite set of cells.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from . import disclosure, paths, store
from .catalogue import age_group_of, load_age_groups, load_entries, snapshot
from .instruments import load_instruments
from .settings import Settings, get_settings
from .versions import shown_version

DIMENSIONS = ("intervention", "age_group", "start_year", "gender", "informant")
SOURCE_COLUMNS = ("client", "intervention", "age_at_start", "gender", "informant", "start_date", "date")


@dataclass(frozen=True)
class Feasibility:
    entry: str
    rows: int | None  # published number of rows (pairs, questionnaires, trajectories); None when suppressed
    clients: int | None  # published number of distinct clients; None when suppressed
    suppressed: bool
    reason: str | None  # None, "small" or "differencing"
    version: str


@lru_cache(maxsize=8)
def _frame(path: str, catalog_dir: str) -> pd.DataFrame:
    """The dimensions of one snapshot, as categories (cached per snapshot file: one data version)."""
    names = pq.read_schema(path).names
    columns = [c for c in SOURCE_COLUMNS if c in names]
    raw = pd.read_parquet(path, columns=columns)
    frame = pd.DataFrame({"client": raw["client"].astype("category")} if "client" in raw else {}, index=raw.index)
    for name in ("intervention", "gender", "informant"):
        if name in raw:
            frame[name] = raw[name].astype("string").astype("category")
    if "age_at_start" in raw:
        frame["age_group"] = age_group_of(raw["age_at_start"], load_age_groups(Path(catalog_dir))).astype("category")
    when = next((c for c in ("start_date", "date") if c in raw), None)
    if when:
        frame["start_year"] = pd.to_datetime(raw[when], errors="coerce").dt.year.astype("Int64").astype("category")
    return frame


@lru_cache(maxsize=256)
def _totals(path: str) -> tuple[int, int]:
    """Rows and distinct clients of one snapshot file (one entry at one data version)."""
    table = pq.read_table(path, columns=["client"] if "client" in pq.read_schema(path).names else [])
    clients = pc.count_distinct(table.column("client")).as_py() if table.num_columns else table.num_rows
    return table.num_rows, clients  # count_distinct skips nulls, as pandas' nunique does


def _snapshot_path(engine: sa.Engine, settings: Settings, entry_id: str) -> tuple[str, str]:
    entries = load_entries(settings.catalog_dir)
    if entry_id not in entries:
        raise LookupError(entry_id)
    current = store.data_version(engine)[0]
    version = shown_version(engine, settings, current)  # the last refreshed version, as the dashboards show
    if not paths.snapshot_file(settings.data_dir, version, entry_id).exists():
        version = current
    path = snapshot(engine, entries[entry_id], load_instruments(settings.catalog_dir),
                    paths.snapshot_folder(settings.data_dir, version), settings=settings)
    return str(path), version


def _source(engine: sa.Engine, settings: Settings, entry_id: str) -> tuple[pd.DataFrame, str]:
    path, version = _snapshot_path(engine, settings, entry_id)
    return _frame(path, str(settings.catalog_dir)), version


def options(engine: sa.Engine, entry_id: str, settings: Settings | None = None) -> dict[str, list]:
    """The categories a filter can choose from, per dimension present in the entry."""
    settings = settings or get_settings()
    frame, _ = _source(engine, settings, entry_id)
    found = {}
    for dim in DIMENSIONS:
        if dim in frame:
            values = frame[dim].dropna().unique().tolist()
            found[dim] = sorted(int(v) if isinstance(v, (np.integer, int)) else str(v) for v in values)
    return found


def _clients(frame: pd.DataFrame, mask: np.ndarray) -> int:
    return int(frame["client"][mask].nunique()) if "client" in frame else int(mask.sum())


def count(engine: sa.Engine, entry_id: str, filters: Mapping[str, Collection] | None = None,
          settings: Settings | None = None) -> Feasibility:
    """The disclosure-controlled count of rows and clients of `entry_id` matching `filters`.

    `filters` maps a dimension (see DIMENSIONS) to the categories to keep; an empty or missing
    selection means no filter. Unknown dimensions are refused.
    """
    settings = settings or get_settings()
    for dim in filters or {}:
        if dim not in DIMENSIONS:
            raise ValueError(f"unknown filter {dim!r}; known: {', '.join(DIMENSIONS)}")
    path, version = _snapshot_path(engine, settings, entry_id)
    wanted = {dim: values for dim, values in (filters or {}).items() if values}
    if not wanted:  # the whole entry: its two totals, without loading the dimensions
        rows, clients = _totals(path)
        return _published(entry_id, rows, clients, [], version, settings)
    frame = _frame(path, str(settings.catalog_dir))
    selections: dict[str, set] = {}
    for dim, values in wanted.items():
        if dim not in frame:
            raise ValueError(f"{entry_id} cannot be filtered on {dim}")
        selections[dim] = {int(v) if dim == "start_year" else str(v) for v in values}
    for dim in list(selections):  # every category of a column without gaps: the same as no filter
        if frame[dim].notna().all() and selections[dim] >= set(frame[dim].unique()):
            del selections[dim]
    if not selections:
        rows, clients = _totals(path)
        return _published(entry_id, rows, clients, [], version, settings)
    masks = {dim: frame[dim].isin(sel).to_numpy() for dim, sel in selections.items()}
    everything = np.ones(len(frame), dtype=bool)
    mask = np.logical_and.reduce([everything, *masks.values()])
    rows, clients = int(mask.sum()), _clients(frame, mask)
    slices: list[int] = []
    for dim, selected in selections.items():
        others = np.logical_and.reduce([everything, *(m for d, m in masks.items() if d != dim)])
        slices.append(_clients(frame, others & ~masks[dim]))  # the clients this filter leaves out
        column = frame[dim].to_numpy()
        slices += [_clients(frame, others & (column == value)) for value in selected]
    return _published(entry_id, rows, clients, slices, version, settings)


def _published(entry_id: str, rows: int, clients: int, slices: list[int], version: str,
               settings: Settings) -> Feasibility:
    reason = None
    if clients < settings.disclosure_threshold:
        reason = "small"
    elif not disclosure.differences_safe(slices, settings, empty_is_safe=False):
        reason = "differencing"
    if reason:
        return Feasibility(entry_id, None, None, True, reason, version)
    return Feasibility(entry_id, disclosure.rounded(rows, settings), disclosure.rounded(clients, settings), False,
                       None, version)
