"""The factsheet: what the LDJ holds, in published (disclosure-controlled) numbers.

`factsheet(engine, settings)` computes it from the research-usable views (objecting clients left
out) and caches it per data version: in memory, and as JSON under `<data_dir>/factsheet/cache/`,
so it is computed once per import, not per visitor. Visitors see the version `ldj.versions` calls
shown: the last one whose refresh after an import finished, so nobody waits for the computation.

What is shown. Tables count questionnaires (pairs, trajectories); whether a cell is shown is decided
by the number of distinct clients behind it (`ldj.disclosure.suppress`: threshold, rounding,
secondary suppression). Margin rows hold `ldj.disclosure.TOTAL` in a dim. The exact counts never
leave this module: a table holds its dims, `n_published` (Int64, <NA> when hidden), `suppressed` and
`suppression`. Scalars go through `controlled_count`.

- `questionnaires`: instrument × informant × moment.
- `pairs`: start-end pairs per instrument × informant, from the `<instrument>_pairs` catalogue
  snapshots (the one pairing of `ldj.outcomes`, materialised per data version by `ldj.catalogue`).
- `interventions`: trajectories per intervention type × year of start of care (the margins give
  "per intervention" and "per year of start").
- `growth`: questionnaires per calendar year × quarter of administration; `growth_quarterly` and
  `growth_yearly` are the same numbers as series with a cumulative column computed from the
  published numbers only (so it reveals nothing the table does not).

Distinct clients in a margin are not the sum of its cells. The SQL counts distinct clients per cell
only (one GROUP BY per table); a margin gets the largest client count of its cells as a lower bound
when that already reaches the threshold, and is treated as too small otherwise (over-suppression in
tiny stores, never under-suppression). Pairs come with client pseudonyms, so their margins are exact.
"""

from __future__ import annotations

import dataclasses

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from . import paths, store
from .disclosure import TOTAL, controlled_count, suppress, with_margins
from .settings import REPO_ROOT, Settings, get_settings

FORMAT = 1  # bump when the cached JSON changes shape
# cached factsheets are keyed by the code that computed them as well: an upgrade recomputes
_CODE = hashlib.sha256(Path(__file__).read_bytes() + (Path(__file__).parent / "disclosure.py").read_bytes()).hexdigest()[:8]
TEMPLATES = REPO_ROOT / "factsheet" / "templates"
TABLES: dict[str, tuple[tuple[str, ...], str]] = {  # name: (dims, what n_published counts)
    "questionnaires": (("instrument", "informant", "moment"), "questionnaires"),
    "pairs": (("instrument", "informant"), "pairs"),
    "interventions": (("intervention", "start_year"), "trajectories"),
    "growth": (("year", "quarter"), "questionnaires"),
}
TOTALS = ("organisations", "clients", "trajectories", "questionnaires", "pairs")


@dataclass
class Factsheet:
    """Published numbers only. Tables: dims + n_published/suppressed/suppression (see module doc)."""

    data_version: str
    computed_at: datetime
    last_import: date | None
    threshold: int
    rounding: int
    totals: dict[str, int | None]
    first_year: int | None  # time span: first and last year with published questionnaires
    last_year: int | None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    growth_quarterly: pd.DataFrame = field(default_factory=pd.DataFrame)
    growth_yearly: pd.DataFrame = field(default_factory=pd.DataFrame)
    # research with the LDJ (not cached: it changes without a new data version): projects, released outputs
    research: list[dict] = field(default_factory=list)

    def cells(self, name: str) -> pd.DataFrame:
        """A table's finest cells (no margin rows)."""
        table = self.tables[name]
        dims = list(TABLES[name][0])
        return table[~table[dims].eq(TOTAL).any(axis=1)].reset_index(drop=True)

    def margin(self, name: str, by: str) -> pd.DataFrame:
        """A table's one-way margin over `by` (every other dim at TOTAL), e.g. questionnaires per instrument."""
        table = self.tables[name]
        others = [d for d in TABLES[name][0] if d != by]
        keep = table[others].eq(TOTAL).all(axis=1) & table[by].ne(TOTAL)
        return table.loc[keep, [by, "n_published", "suppressed", "suppression"]].reset_index(drop=True)

    def grand_total(self, name: str) -> int | None:
        table = self.tables[name]
        row = table[table[list(TABLES[name][0])].eq(TOTAL).all(axis=1)]
        value = row["n_published"].iloc[0] if len(row) else 0
        return None if pd.isna(value) else int(value)

    @property
    def instruments(self) -> list[str]:
        """Instruments with published questionnaires."""
        m = self.margin("questionnaires", "instrument")
        return m.loc[m.n_published.fillna(0) > 0, "instrument"].tolist()

    @property
    def intervention_types(self) -> list[str]:
        m = self.margin("interventions", "intervention")
        return m.loc[m.n_published.fillna(0) > 0, "intervention"].tolist()

    def to_json(self, *, internal: bool = False) -> dict:
        """The same numbers as plain JSON: a hidden cell is `null` with `"suppressed": true`. Why a
        cell is hidden stays out (`internal` keeps it, for the cache): "primary" would say the cell
        holds between 1 and threshold − 1 clients."""
        def rows(frame: pd.DataFrame) -> list[dict]:
            out = []
            for rec in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
                out.append({k: (v.isoformat() if isinstance(v, date) else v) for k, v in rec.items()})
            return out

        return {
            "format": FORMAT, "data_version": self.data_version, "computed_at": self.computed_at.isoformat(),
            "last_import": self.last_import.isoformat() if self.last_import else None,
            "disclosure": {"threshold": self.threshold, "rounding": self.rounding, "total_marker": TOTAL},
            "totals": self.totals, "span": {"first_year": self.first_year, "last_year": self.last_year},
            "tables": {name: {"dims": list(TABLES[name][0]), "counts": TABLES[name][1],
                              "rows": rows(table.rename(columns={"n_published": "value"}).drop(
                                  columns=[] if internal else ["suppression"], errors="ignore"))}
                       for name, table in self.tables.items()},
            "growth": {"quarterly": rows(self.growth_quarterly), "yearly": rows(self.growth_yearly)},
            **({} if internal else {"research": self.research}),
        }

    @classmethod
    def from_json(cls, data: dict) -> Factsheet:
        def table(name: str, spec: dict) -> pd.DataFrame:
            frame = pd.DataFrame(spec["rows"], columns=[*spec["dims"], "value", "suppressed", "suppression"])
            frame = frame.rename(columns={"value": "n_published"}).astype({"n_published": "Int64", "suppressed": bool})
            for d in spec["dims"]:
                frame[d] = frame[d].astype(object)
            return frame

        def series(rows: list[dict]) -> pd.DataFrame:
            frame = pd.DataFrame(rows, columns=SERIES_COLUMNS)
            frame["period_start"] = pd.to_datetime(frame["period_start"]).dt.date
            return frame.astype({"questionnaires": "Int64", "cumulative": "Int64"})

        return cls(data_version=data["data_version"], computed_at=datetime.fromisoformat(data["computed_at"]),
                   last_import=date.fromisoformat(data["last_import"]) if data["last_import"] else None,
                   threshold=data["disclosure"]["threshold"], rounding=data["disclosure"]["rounding"],
                   totals=data["totals"], first_year=data["span"]["first_year"], last_year=data["span"]["last_year"],
                   tables={name: table(name, spec) for name, spec in data["tables"].items()},
                   growth_quarterly=series(data["growth"]["quarterly"]), growth_yearly=series(data["growth"]["yearly"]))


SERIES_COLUMNS = ["period", "period_start", "questionnaires", "cumulative"]

# --- the cache ---------------------------------------------------------------------------------

_cache: dict[tuple, Factsheet] = {}
_lock = threading.Lock()


def _cache_key(settings: Settings, version: str) -> tuple[tuple, str]:
    from .versions import store_identity

    key = (store_identity(settings), version, settings.disclosure_threshold, settings.disclosure_rounding, FORMAT, _CODE)
    path = paths.factsheet_cache_file(settings.data_dir, version, hashlib.sha256(repr(key).encode()).hexdigest()[:12])
    return (str(settings.data_dir.resolve()), path.name), path  # in memory: per data folder


def _remember(key: tuple, result: Factsheet) -> None:
    _cache[key] = result
    while len(_cache) > 8:  # a few versions of a few stores
        del _cache[next(iter(_cache))]


def _cached(engine: sa.Engine, settings: Settings, version: str) -> Factsheet | None:
    """The factsheet of `version` from memory or its cache file, or None."""
    key, path = _cache_key(settings, version)
    if key in _cache:
        return _cache[key]
    try:
        result = Factsheet.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError):
        return None
    _remember(key, result)
    return result


def factsheet(engine: sa.Engine | None = None, settings: Settings | None = None, *, cache: bool = True,
              version: str | None = None) -> Factsheet:
    """The published factsheet: of `version` (default `versions.shown_version`: the last version whose
    refresh finished) when it is cached, else computed once at the store's current version and cached."""
    from .versions import shown_version

    settings = settings or get_settings()
    engine = engine or store.get_engine(settings)
    if not cache:
        return dataclasses.replace(compute(engine, settings), research=research(engine))
    current = store.data_version(engine)[0]
    for wanted in dict.fromkeys((version or shown_version(engine, settings, current), current)):
        found = _cached(engine, settings, wanted)
        if found is not None:
            return dataclasses.replace(found, research=research(engine))
    with _lock:
        found = _cached(engine, settings, current)
        if found is None:
            found = compute(engine, settings)
            key, path = _cache_key(settings, current)
            _write_cache(path, found)
            _remember(key, found)
        return dataclasses.replace(found, research=research(engine))


def research(engine: sa.Engine) -> list[dict]:
    """The LDJ projects (public in the research registry) with the outputs each released through the
    airlock: counts of reviewed releases, no person-level figure, so no disclosure control is needed."""
    from .airlock import released_per_project

    p = store.projects
    with engine.connect() as conn:
        rows = conn.execute(sa.select(p.c.id, p.c.title, p.c.status).order_by(p.c.id)).all()
        released = released_per_project(conn)
    return [{"project": r.id, "title": r.title, "status": r.status, "released": released.get(r.id, 0)} for r in rows]


def _write_cache(path: Path, result: Factsheet) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result.to_json(internal=True), ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    except OSError:  # a read-only data folder: the memory cache still holds it
        pass


# --- computing -----------------------------------------------------------------------------

def compute(engine: sa.Engine, settings: Settings | None = None) -> Factsheet:
    """The factsheet from the store, uncached (see `factsheet`)."""
    from .instruments import load_instruments

    settings = settings or get_settings()
    version = store.data_version(engine)[0]
    instruments = load_instruments(settings.catalog_dir)
    m = store.research_usable("measurements")
    t = store.research_usable("trajectories")
    c = store.research_usable("clients")
    b = store.import_batches
    threshold = settings.disclosure_threshold
    sources = {
        "questionnaires": (m, {"instrument": m.c.instrument, "informant": m.c.informant, "moment": m.c.moment},
                           m.c.client),
        "growth": (m, {"year": _year(m.c.date), "quarter": _quarter(m.c.date)}, m.c.client),
        "interventions": (t, {"intervention": t.c.intervention, "start_year": _year(t.c.start_date)}, t.c.client),
    }
    cells, margins = {}, {}
    with engine.connect() as conn:
        for name, (source, dims, client) in sources.items():
            cells[name] = _cells(conn, source, dims, client)
            margins[name] = _margins(conn, source, dims, client, cells[name], threshold)
        clients = conn.execute(sa.select(sa.func.count()).select_from(c)).scalar() or 0
        organisations = conn.execute(sa.select(sa.func.count(sa.distinct(t.c.organisation)))).scalar() or 0
        last = conn.execute(sa.select(sa.func.max(b.c.finished_at)).where(b.c.status == "loaded")).scalar()

    cells["questionnaires"] = _grid(cells["questionnaires"], [(i.code, f, mo) for i in instruments.values()
                                                              for f in i.informants for mo in i.moments])
    if len(cells["growth"]):
        years = range(int(cells["growth"].year.min()), int(cells["growth"].year.max()) + 1)
        cells["growth"] = _grid(cells["growth"], [(y, q) for y in years for q in (1, 2, 3, 4)])
    cells["interventions"] = _grid(cells["interventions"], [(code, y) for code in _intervention_codes(settings)
                                                            for y in sorted(set(cells["interventions"].start_year))])
    cells["pairs"], margins["pairs"] = _pairs(engine, settings, instruments)

    tables = {name: _controlled(cells[name], TABLES[name][0], settings, margins=margins[name]) for name in TABLES}
    # questionnaires and growth share their grand total (all questionnaires): hidden in one, hidden in both
    shared = ["questionnaires", "growth"]
    if any(_grand(tables[name]).suppressed.any() for name in shared):
        for name in shared:
            tables[name] = _controlled(cells[name], TABLES[name][0], settings, margins=margins[name],
                                       hide_grand_total=True)

    result = Factsheet(
        data_version=version, computed_at=datetime.now(UTC), last_import=_as_date(last),
        threshold=settings.disclosure_threshold, rounding=settings.disclosure_rounding,
        totals={}, first_year=None, last_year=None,
        tables={name: table.drop(columns=["units", "clients"]) for name, table in tables.items()})
    result.totals = {"organisations": controlled_count(int(organisations), settings),
                     "clients": controlled_count(int(clients), settings),
                     "trajectories": result.grand_total("interventions"),
                     "questionnaires": result.grand_total("questionnaires"),
                     "pairs": result.grand_total("pairs")}
    result.growth_quarterly, result.growth_yearly = _growth_series(result)
    shown = result.growth_yearly.dropna(subset=["questionnaires"])
    shown = shown[shown.questionnaires > 0]
    if len(shown):
        result.first_year, result.last_year = int(shown.period.iloc[0]), int(shown.period.iloc[-1])
    return result


def _year(column):
    return sa.cast(sa.extract("year", column), sa.Integer)


def _quarter(column):
    return (sa.cast(sa.extract("month", column), sa.Integer) + 2) // 3


def _cells(conn, source, dims: dict, client) -> pd.DataFrame:
    """One row per combination of `dims`: units (rows) and distinct clients, one GROUP BY."""
    stmt = (sa.select(*(col.label(name) for name, col in dims.items()), sa.func.count().label("units"),
                      sa.func.count(sa.distinct(client)).label("clients"))
            .select_from(source).group_by(*dims.values()))
    frame = pd.DataFrame(conn.execute(stmt).all(), columns=[*dims, "units", "clients"])
    return frame.astype({"units": "int64", "clients": "int64"})


def _grid(cells: pd.DataFrame, expected: list[tuple]) -> pd.DataFrame:
    """The cells plus zero rows for expected combinations without data (e.g. every defined informant)."""
    dims = [c for c in cells.columns if c not in ("units", "clients")]
    keys = pd.DataFrame(expected, columns=dims)
    if len(keys):
        keys = keys.astype({d: cells[d].dtype for d in dims}) if len(cells) else keys
    merged = pd.concat([cells, keys]).drop_duplicates(subset=dims, keep="first")
    merged[["units", "clients"]] = merged[["units", "clients"]].fillna(0).astype("int64")
    return merged.sort_values(dims, key=lambda s: s.astype(str)).reset_index(drop=True)


def _margins(conn, source, dims: dict, client, cells: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """Distinct clients of each margin, as far as suppression needs them (see the module doc): the
    largest cell when that reaches the threshold; below it when all cells together do not; counted
    in SQL (one more GROUP BY for that kind of margin) only when neither settles it."""
    names = list(dims)
    rows = []
    for k in range(1, len(names) + 1):
        for totalled in combinations(names, k):
            kept = [d for d in names if d not in totalled]
            grouped = (cells.groupby(kept, sort=False)["clients"].agg(["max", "sum"]).reset_index() if kept
                       else pd.DataFrame({"max": [cells["clients"].max()], "sum": [cells["clients"].sum()]}))
            grouped["clients"] = np.where(grouped["max"] >= threshold, grouped["max"], grouped["sum"])
            if ((grouped["max"] < threshold) & (grouped["sum"] >= threshold)).any():
                exact = _cells(conn, source, {d: dims[d] for d in kept}, client) if kept else pd.DataFrame(
                    {"clients": [conn.execute(sa.select(sa.func.count(sa.distinct(client))).select_from(source)).scalar()]})
                grouped = grouped[kept].merge(exact, on=kept, how="left") if kept else exact
                grouped["clients"] = grouped["clients"].fillna(0).astype("int64")
            for d in totalled:
                grouped[d] = TOTAL
            rows.append(grouped[[*names, "clients"]])
    return pd.concat(rows, ignore_index=True)


def _controlled(cells: pd.DataFrame, dims: tuple[str, ...], settings: Settings, *,
                margins: pd.DataFrame, hide_grand_total: bool = False) -> pd.DataFrame:
    dims = list(dims)
    if cells.empty:
        return pd.DataFrame(columns=[*dims, "units", "clients", "n_published", "suppressed", "suppression"])
    table = with_margins(cells, "clients", dims, margins=margins)
    hide = table[dims].eq(TOTAL).all(axis=1).to_numpy() if hide_grand_total else None
    return suppress(table, "clients", dims, settings=settings, value="units", hide=hide)


def _grand(table: pd.DataFrame) -> pd.DataFrame:
    dims = [c for c in table.columns if c not in ("units", "clients", "n_published", "suppressed", "suppression")]
    return table[table[dims].eq(TOTAL).all(axis=1)]


def _intervention_codes(settings: Settings) -> list[str]:
    from .catalogue import load_interventions

    return [row["code"] for row in load_interventions(settings.catalog_dir)]


def _pairs(engine: sa.Engine, settings: Settings, instruments) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairs and distinct clients per instrument × informant, from the `<instrument>_pairs` snapshots,
    with exact margins (the snapshots carry client pseudonyms)."""
    from .catalogue import load_entries, snapshot

    entries = load_entries(settings.catalog_dir)
    folder = paths.snapshot_folder(settings.data_dir, store.data_version(engine)[0])
    frames = []
    for entry in entries.values():
        if entry.source != "pairs":
            continue
        path = snapshot(engine, entry, instruments, folder, settings=settings)
        frame = pd.read_parquet(path, columns=["informant", "client"])
        frame.insert(0, "instrument", entry.instrument)
        frames.append(frame)
    found = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["instrument", "informant", "client"])
    dims = ["instrument", "informant"]
    cells = found.groupby(dims).agg(units=("client", "size"), clients=("client", "nunique")).reset_index()
    cells = _grid(cells, [(e.instrument, f) for e in entries.values() if e.source == "pairs"
                          for f in instruments[e.instrument].informants])
    margins = pd.DataFrame({"instrument": [TOTAL], "informant": [TOTAL], "clients": [found["client"].nunique()]})
    for d in dims:
        other = [o for o in dims if o != d][0]
        per = found.groupby(other)["client"].nunique().rename("clients").reset_index()
        per[d] = TOTAL
        margins = pd.concat([margins, per[dims + ["clients"]]], ignore_index=True)
    return cells, margins


def _as_date(value) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.date() if isinstance(value, datetime) else value


def _cumulative(values: pd.Series, total: int | None) -> pd.Series:
    """A cumulative series computed from published numbers only: exact up to the first hidden value,
    unknown between the first and the last hidden one, and from the last hidden one on the published
    total minus the published values after it (so it ends at the published total)."""
    values = values.astype("Int64")
    hidden = values.isna().to_numpy()
    out = pd.array(values.fillna(0).cumsum(), dtype="Int64")
    if hidden.any():
        first, last = np.flatnonzero(hidden)[[0, -1]]
        out[first:] = pd.NA
        if total is not None:
            after = values.iloc[last + 1:].fillna(0).astype(int).to_numpy()
            out[last:] = total - (after.sum() - np.concatenate([[0], np.cumsum(after)]))
    return pd.Series(out, index=values.index, dtype="Int64")


def _growth_series(result: Factsheet) -> tuple[pd.DataFrame, pd.DataFrame]:
    total = result.grand_total("growth")
    cells = result.cells("growth")
    if cells.empty:
        return pd.DataFrame(columns=SERIES_COLUMNS), pd.DataFrame(columns=SERIES_COLUMNS)
    cells = cells.sort_values(["year", "quarter"]).reset_index(drop=True)
    quarterly = pd.DataFrame({
        "period": [f"{y}-Q{q}" for y, q in zip(cells.year, cells.quarter, strict=True)],
        "period_start": [date(int(y), 3 * int(q) - 2, 1) for y, q in zip(cells.year, cells.quarter, strict=True)],
        "questionnaires": cells.n_published.astype("Int64")})
    quarterly["cumulative"] = _cumulative(quarterly.questionnaires, total)
    years = result.margin("growth", "year").sort_values("year").reset_index(drop=True)
    yearly = pd.DataFrame({"period": years.year.astype(int).astype(str),
                           "period_start": [date(int(y), 1, 1) for y in years.year],
                           "questionnaires": years.n_published.astype("Int64")})
    yearly["cumulative"] = _cumulative(yearly.questionnaires, total)
    return quarterly, yearly


# --- the document: HTML, PDF (weasyprint) and JSON ---------------------------------------------

def growth_svg(result: Factsheet, language: str = "nl") -> str:
    """The growth chart as inline SVG (matplotlib): questionnaires per year as bars (hidden years
    left empty), the cumulative count as a line on its own axis. Text stays text (selectable in the PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    from .i18n import t

    yearly = result.growth_yearly
    with plt.rc_context({"svg.fonttype": "none", "font.family": "sans-serif", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(7.0, 2.8))
        if len(yearly):
            x = yearly["period"].astype(str).tolist()
            ax.bar(x, yearly["questionnaires"].astype("Float64").fillna(0).to_numpy(dtype=float), color="#2a6f97",
                   label=t("fs_per_year", language))
            ax.set_ylabel(t("fs_questionnaires", language))
            right = ax.twinx()
            right.plot(x, yearly["cumulative"].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
                       color="#e07a1f", marker="o", markersize=3, label=t("fs_cumulative", language))
            right.set_ylabel(t("fs_cumulative", language))
            right.set_ylim(bottom=0)
            ax.tick_params(axis="x", labelrotation=45)
            handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
            ax.legend(handles=handles, loc="upper left", frameon=False)
        for side in ("top",):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg")
        plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]  # inline: without the XML declaration and doctype


def display_labels(settings: Settings, language: str) -> dict[str, dict[str, str]]:
    from .catalogue import load_interventions
    from .i18n import TEXTS, t
    from .instruments import INFORMANTS, MOMENTS, load_instruments

    lang = "en" if language == "en" else "nl"
    interventions = load_interventions(settings.catalog_dir)
    return {
        "instrument": {code: inst.name.get(lang, code) for code, inst in load_instruments(settings.catalog_dir).items()},
        "intervention": {row["code"]: row["name"].get(lang, row["code"]) for row in interventions},
        "informant": {f: t(f"fs_informant_{f}", language) for f in INFORMANTS if f"fs_informant_{f}" in TEXTS},
        "moment": {mo: t(f"fs_moment_{mo}", language) for mo in MOMENTS if f"fs_moment_{mo}" in TEXTS},
    }


def pivot_rows(table: pd.DataFrame, rows: list[str], column: str, order: tuple = ()) -> tuple[list, list[tuple]]:
    """Columns (values of `column` in `order`, TOTAL last) and rows (keys, {column value: (value, suppressed)})."""
    present = [v for v in dict.fromkeys(table[column]) if v != TOTAL]
    columns = [v for v in order if v in present] + [v for v in present if v not in order] + [TOTAL]
    out = []
    for key, part in table.groupby(rows, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        cells = {r[column]: (None if pd.isna(r["n_published"]) else int(r["n_published"]), bool(r["suppressed"]))
                 for r in part.to_dict(orient="records")}
        out.append((key, cells))
    rank = {v: i for i, v in enumerate(order)}
    out.sort(key=lambda item: tuple((k == TOTAL, rank.get(k, len(rank)), str(k)) for k in item[0]))
    return columns, out


def _templates():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["j2", "html"]))


def render_content(result: Factsheet, settings: Settings | None = None, language: str | None = None, *,
                   chart: str | None = None, growth_heading: str | None = None, growth_help: str | None = None,
                   downloads: list[tuple[str, str]] | None = None) -> str:
    """The factsheet's content as an HTML fragment (factsheet_content.html.j2): the one rendering for the
    document and the portal's page, so they show the same cells the same way. A hidden cell reads
    "te weinig gegevens", never a number. `chart` is the growth chart's HTML (default: `growth_svg`);
    `downloads` (href, text) links are shown next to the time span."""
    from markupsafe import Markup

    from .i18n import t
    from .instruments import INFORMANTS, MOMENTS

    settings = settings or get_settings()
    language = language or settings.language
    labels = display_labels(settings, language)

    def number(value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return "–"
        return f"{int(value):,}".replace(",", "." if language != "en" else ",")

    def label(kind: str, value) -> str:
        if value == TOTAL:
            return t("fs_total", language)
        return labels.get(kind, {}).get(value, str(value))

    def cells(ref: str, columns: list, found: dict) -> list[dict]:
        out = []
        for c in columns:
            value, suppressed = found.get(c, (0, False))
            out.append({"ref": f"{ref}|{c}", "value": value, "hidden": suppressed or value is None, "total": c == TOTAL})
        return out

    def shown(rows: list) -> list:
        return [(key, found) for key, found in rows if any(v or s for v, s in found.values())]

    q = result.tables["questionnaires"]
    q = q[q.instrument.ne(TOTAL) | q.informant.eq(TOTAL)]  # per instrument and informant, totals, no informant margins
    q_columns, q_rows = pivot_rows(q, ["instrument", "informant"], "moment", MOMENTS)
    q_rows = shown(q_rows)
    per_instrument: dict[str, list] = {}
    for (instrument, _), found in q_rows:
        per_instrument.setdefault(instrument, []).append(found)
    questionnaires, previous = [], None
    for (instrument, informant), found in q_rows:
        if informant == TOTAL and instrument != TOTAL and per_instrument[instrument].count(found) == 2:
            continue  # one informant only: its total row would repeat it
        name = label("instrument", instrument) if instrument != previous or informant == TOTAL else ""
        previous = instrument
        questionnaires.append({"name": name, "informant": informant, "total": informant == TOTAL,
                               "cells": cells(f"questionnaires|{instrument}|{informant}", q_columns, found)})
    p_columns, p_rows = pivot_rows(result.tables["pairs"], ["instrument"], "informant", INFORMANTS)
    pairs = [{"name": label("instrument", instrument), "total": instrument == TOTAL,
              "cells": cells(f"pairs|{instrument}", p_columns, found)} for (instrument,), found in shown(p_rows)]

    def one_way(heading: str, name: str, by: str, key_text: str) -> dict:
        """A one-way margin (e.g. trajectories per intervention) with its published total."""
        rows = []
        for row in result.margin(name, by).sort_values(by, key=lambda v: v.astype(str)).itertuples(index=False):
            value, suppressed = (None if pd.isna(row.n_published) else int(row.n_published)), bool(row.suppressed)
            if not suppressed and not value and by == "intervention":
                continue  # intervention types without trajectories
            key = getattr(row, by)
            rows.append({"name": label(by, key), "total": False,
                         "cell": {"ref": f"{name}|{by}|{key}", "value": value, "hidden": suppressed or value is None}})
        total = result.grand_total(name)
        rows.append({"name": t("fs_total", language), "total": True,
                     "cell": {"ref": f"{name}|{by}|{TOTAL}", "value": total, "hidden": total is None}})
        return {"heading": heading, "key_text": key_text, "rows": rows,
                "counts": "fs_trajectories" if name == "interventions" else "fs_questionnaires"}

    tables = {"questionnaires": {"columns": q_columns, "rows": questionnaires},
              "pairs": {"columns": p_columns, "rows": pairs},
              "one_way": [one_way("fs_interventions_heading", "interventions", "intervention", "fs_intervention"),
                          one_way("fs_start_years_heading", "interventions", "start_year", "fs_start_year"),
                          one_way("fs_years_heading", "growth", "year", "fs_year")]}
    return _templates().get_template("factsheet_content.html.j2").render(
        fs=result, t=lambda key, **fields: t(key, language, **fields), number=number, label=label,
        totals=[(key, result.totals.get(key)) for key in TOTALS], tables=tables,
        chart=Markup(chart if chart is not None else growth_svg(result, language)),
        growth_heading=growth_heading or t("fs_growth_heading", language), growth_help=growth_help,
        downloads=downloads)


def render_html(result: Factsheet, settings: Settings | None = None, language: str | None = None) -> str:
    """The factsheet as one HTML document (screen and print CSS), from factsheet.html.j2."""
    from markupsafe import Markup

    from .i18n import t

    settings = settings or get_settings()
    language = language or settings.language
    return _templates().get_template("factsheet.html.j2").render(
        fs=result, t=lambda key, **fields: t(key, language, **fields), language=language,
        content=Markup(render_content(result, settings, language)))


def page_css() -> str:
    """The content's stylesheet (factsheet/templates/factsheet.css), for a page that shows render_content."""
    return (TEMPLATES / "factsheet.css").read_text(encoding="utf-8")


def build(out: Path | None = None, *, engine: sa.Engine | None = None, settings: Settings | None = None,
          language: str | None = None) -> dict[str, Path]:
    """Write factsheet.html, factsheet.pdf (weasyprint, A4) and factsheet.json to `out`
    (default `<data_dir>/factsheet/`); returns the paths by kind."""
    from weasyprint import HTML

    settings = settings or get_settings()
    engine = engine or store.get_engine(settings)
    out = Path(out) if out is not None else settings.data_dir / "factsheet"
    out.mkdir(parents=True, exist_ok=True)
    result = factsheet(engine, settings)
    html = render_html(result, settings, language)
    paths = {"html": out / "factsheet.html", "pdf": out / "factsheet.pdf", "json": out / "factsheet.json"}
    paths["html"].write_text(html, encoding="utf-8")
    HTML(string=html, base_url=str(TEMPLATES)).write_pdf(paths["pdf"])
    paths["json"].write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    return paths
