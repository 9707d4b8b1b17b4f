"""Dashboard indicators (issue 6): an organisation and its teams against all SEJN members.

Every figure is a sum over a pre-computed *cube* of sufficient statistics, built once per data
version (`store.data_version`) from the store with `ldj.outcomes` (pairing, response status,
reliable-change categories, case-mix model; nothing here re-implements them) and kept as Parquet
under `<data_dir>/indicators/<version>/`. `ldj ingest` rebuilds it after an import; any call on a
new version builds it on first use.

Cube cells: (instrument, informant, scale) × (organisation, team, intervention, age group, gender,
start year, objector). Per cell: counts of trajectories by response status; first valid start
values (n, Σ, Σ²); last valid end values; complete pairs (n, Σ and Σ² of T_start, T_end and ΔT);
reliable-change category counts; case-mix sums (observed, expected, residual, residual²). Means,
SDs, t intervals, Cohen's d (ΔT / SD at start), Wilson intervals and observed − expected follow from
these (`ldj.outcomes.*_from_sums`). Missing team, gender or age become the category "unknown", so
the categories of every dimension add up to the whole.

Choices made once for every view:

- The reliable change index uses, per instrument, scale and informant, the SD at start of all SEJN
  pairs (objectors excluded) of this data version, so a pair's category does not depend on the view.
- Case-mix: OLS (`ldj.outcomes.casemix_fit`) of ΔT on T_start, age, gender and intervention type per
  instrument, scale and informant, fitted on research-usable pairs; observed − expected per group is
  the mean residual with a 95% t interval.
- Response status counts trajectories that have ended and whose age at start fits the instrument.

Rules:

- **Objections.** Objecting clients count in their own organisation's (and team's) figures only;
  every SEJN-wide figure (the SEJN rows, the funnel of all organisations, the case-mix model) leaves
  them out. A difference between an organisation's figure and a SEJN-derived one can therefore only
  reveal that organisation's own objecting clients, whom it holds in its own records.
- **Access.** Members (role `member`) see their own organisation and its teams identified, other
  organisations only anonymised ("Organisatie A", ...; letters in an order drawn per data version
  from a hash, never names or codes) in the funnel. The steward sees every organisation by name.
  Asking for another organisation's identified figures raises `policy.Refused`
  (the policy's rules figures.own_organisation and figures.all_organisations).
- **Disclosure** (`ldj.disclosure`). The number behind a figure is a lower bound on its distinct
  clients (each client counts once per instrument, scale and informant: at their first trajectory
  in the measure, so sums over cells never over-count). A figure based on fewer than
  `disclosure_threshold` clients is not published: no mean, no interval, no share; the page shows
  `t("ind_too_little_data")`. Published counts are rounded (`disclosure_rounding`).
- **No differencing across filters.** A view with filters on dimensions d1..dk (team counts as a
  dimension within the organisation) is published only if, for every filtered dimension d, its cell
  survives `disclosure.suppress` on the *sibling table*: all categories of d with the other filters
  kept, plus their total (the view without the filter on d). A small complement (the total minus
  this category) is then either itself primary-suppressed, forcing a secondary suppression of this
  category, or large; and two categories of d can never together reveal a third.
- **Rows inside a figure** (response statuses, change categories, years of the trend,
  organisations of the funnel) are hidden per *family* of views (`_hidden_rows`): every view with
  the same filtered dimensions hides the same rows, decided on the whole grid of sibling views
  (every category of every filtered dimension and their totals) and on every smaller grid, so a
  row hidden in one view is never shown in a sibling (the total minus the other genders). The view
  without filters starts from one `suppress` over its rows with their total.
- **Proportions and their denominators.** Shares (and their Wilson intervals) and the funnel's
  proportions are computed from the published, rounded counts, never from exact ones: an exact
  k/n next to a rounded n gives k and n away. A funnel proportion is shown only when its numerator
  and its complement are empty or at least the threshold. Means, effect sizes and intervals are
  shown only for groups at or over the threshold.

`tests/test_differencing.py` attacks all of this as a member would: it collects the figures of a
grid of sibling views over HTTP and solves for every hidden count by integer programming
(`disclosure.ranges`).
"""

from __future__ import annotations

import hashlib
import json
import os
import string
import threading
from itertools import combinations
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from . import disclosure, outcomes, parts, paths, policy, store
from .i18n import t
from .catalogue import age_group_of, load_age_groups
from .instruments import Instrument, load_instruments
from .settings import Settings, get_settings

CUBE_FORMAT = 1
DIMS = ("organisation", "team", "intervention", "age_group", "gender", "start_year", "objector")
FILTERS = ("intervention", "age_group", "gender", "start_year", "team")
UNKNOWN = "unknown"
SEJN = "sejn"
SCOPES = ("organisation", "team", SEJN)
CATEGORIES = outcomes.CATEGORIES
STATUSES = outcomes.RESPONSE_STATUSES
FUNNEL_INDICATORS = ("improved", "deteriorated", "response", "change", "casemix")

SCALE_MEASURES = (
    "n_start", "c_start", "sum_start", "sumsq_start",
    "n_end", "c_end", "sum_end", "sumsq_end",
    "n_pairs", "c_pairs", "sum_ps", "sumsq_ps", "sum_pe", "sum_d", "sumsq_d",
    "n_cat", "c_cat", *(f"cat_{c}" for c in CATEGORIES), *(f"c_cat_{c}" for c in CATEGORIES),
    "n_cm", "c_cm", "cm_observed", "cm_expected", "cm_residual", "cm_residual_sq",
)
RESPONSE_MEASURES = ("eligible", "c_eligible", *STATUSES, *(f"c_{s}" for s in STATUSES))


# --- views and viewers -------------------------------------------------------------------------

@dataclass(frozen=True)
class View:
    """What a dashboard shows: one instrument, scale and informant, optional filters, and whose
    figures (`organisation`, default the viewer's own; `team` within it)."""

    instrument: str
    scale: str
    informant: str
    intervention: str | None = None
    age_group: str | None = None
    gender: str | None = None
    start_year: int | None = None
    team: str | None = None
    organisation: str | None = None

    def filters(self) -> dict:
        return {d: getattr(self, d) for d in FILTERS if getattr(self, d) is not None}


Viewer = policy.Actor | str  # an actor of a request, or a login name read from the store


@dataclass(frozen=True)
class _Access:
    organisation: str | None  # whose identified figures
    all_organisations: bool  # every organisation by name (figures.all_organisations)
    language: str


def _access(viewer: Viewer, view: View, engine: sa.Engine, settings: Settings) -> _Access:
    """What `viewer` may see of `view`, by the policy: figures.all_organisations, else
    figures.own_organisation for the view's organisation (default: the viewer's own)."""
    actor = policy.actor_of(engine, viewer)
    everything = policy.allows(actor, "figures.all_organisations")
    organisation = view.organisation or (None if everything else actor.organisation)
    if not everything:
        policy.check(actor, "figures.own_organisation", policy.Target(organisation=organisation), settings.language)
    if view.team is not None and organisation is None:
        raise ValueError("a team view needs an organisation")
    return _Access(organisation, everything, settings.language)


# --- the cube: building -----------------------------------------------------------------------

def age_groups(settings: Settings | None = None) -> list[str]:
    """The age-group codes of catalog/age_groups.yaml (e.g. 0-5, 6-11, 12-17, 18-23), in order."""
    return [g.code for g in load_age_groups((settings or get_settings()).catalog_dir)]


def _age_group(age: pd.Series, settings: Settings) -> pd.Series:
    codes = age_group_of(age, load_age_groups(settings.catalog_dir))
    return codes.astype(object).where(codes.notna(), UNKNOWN)


def _trajectory_frame(conn, settings: Settings, organisation: str) -> pd.DataFrame:
    """An organisation's trajectories with their client's gender and objection: the base tables, on
    purpose — objectors are needed for their own organisation's views and flagged for the SEJN ones."""
    tr, cl = store.trajectories, store.clients
    stmt = sa.select(tr.c.pseudonym, tr.c.client, tr.c.organisation, tr.c.team, tr.c.intervention,
                     sa.cast(tr.c.start_date, sa.Text).label("start_date"),
                     sa.cast(tr.c.end_date, sa.Text).label("end_date"), tr.c.age_at_start, cl.c.gender,
                     cl.c.objection).select_from(tr.join(cl, cl.c.pseudonym == tr.c.client)) \
        .where(tr.c.organisation == organisation)
    frame = pd.DataFrame(conn.execute(stmt).all(), columns=["pseudonym", "client", "organisation", "team",
                                                            "intervention", "start_date", "end_date",
                                                            "age_at_start", "gender", "objection"])
    frame["start_date"] = pd.to_datetime(frame["start_date"].str[:10], format="%Y-%m-%d")
    frame["end_date"] = pd.to_datetime(frame["end_date"].str[:10], format="%Y-%m-%d")
    frame["team"] = frame["team"].fillna(UNKNOWN).astype(object)
    frame["gender"] = frame["gender"].fillna(UNKNOWN).astype(object)
    frame["age_group"] = _age_group(frame["age_at_start"], settings)
    frame["start_year"] = frame["start_date"].dt.year.astype("int64")
    frame["objector"] = frame["objection"].astype(bool)
    return frame.drop(columns="objection")


def _chunks(conn, instrument: str, organisation: str, rows_per_chunk: int = 2_000_000) -> list[tuple[str, str] | None]:
    """Trajectory-pseudonym ranges (hex prefixes) that split an organisation's measurements of one
    instrument into parts of about `rows_per_chunk`; pairing works per trajectory, so parts are independent."""
    m = store.measurements
    n = conn.execute(sa.select(sa.func.count()).select_from(m).where(
        m.c.organisation == organisation, m.c.instrument == instrument)).scalar()
    parts = int(np.ceil(n / rows_per_chunk))
    if parts <= 1:
        return [None]
    edges = np.linspace(0, 256, min(parts, 256) + 1).round().astype(int)
    return [(f"{lo:02x}", f"{hi:02x}" if hi < 256 else "g") for lo, hi in zip(edges, edges[1:])]


def _selection(conn, inst: Instrument, trajectories: pd.DataFrame,
               organisation: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`outcomes.first_and_last` over one organisation's measurements of the instrument, chunk by chunk,
    with every scale flattened (`outcomes.scale_value_columns`)."""
    m = store.measurements
    firsts, lasts = [], []
    value_columns = [c for s in inst.scales for c in (s.code, f"{s.code}_band")]
    for chunk in _chunks(conn, inst.code, organisation):
        stmt = sa.select(m.c.trajectory, m.c.informant, m.c.moment, sa.cast(m.c.date, sa.Text).label("date"),
                         sa.cast(m.c.scores, sa.Text).label("scores")).where(
            m.c.organisation == organisation, m.c.instrument == inst.code)
        traj = trajectories
        if chunk is not None:
            stmt = stmt.where(m.c.trajectory >= chunk[0], m.c.trajectory < chunk[1])
            traj = trajectories[(trajectories["pseudonym"] >= chunk[0]) & (trajectories["pseudonym"] < chunk[1])]
        rows = conn.execute(stmt).all()
        if not rows:
            continue
        frame = pd.DataFrame([r[:4] for r in rows], columns=["trajectory", "informant", "moment", "date"])
        frame["date"] = pd.to_datetime(frame["date"].str[:10], format="%Y-%m-%d")
        values = outcomes.scale_value_columns([r[4] for r in rows], inst)
        frame = pd.concat([frame, values], axis=1)
        del rows, values
        f, la = outcomes.first_and_last(frame, traj)
        firsts.append(f[["trajectory", "informant", *value_columns]])
        lasts.append(la[["trajectory", "informant", *value_columns]])
    empty = pd.DataFrame(columns=["trajectory", "informant", *value_columns])
    return (pd.concat(firsts, ignore_index=True) if firsts else empty,
            pd.concat(lasts, ignore_index=True) if lasts else empty)


# --- the cube's inputs, per organisation ---------------------------------------------------------
# Reading the store and pairing are most of a build and work per trajectory, and a client's
# trajectories all belong to one organisation (pseudonyms are keyed by organisation). So the cube's
# inputs are kept per organisation, under a key of that organisation's loaded import batches and the
# definitions they were made with: a delivery, a corrected re-delivery or an objection (a trajectory
# file) changes its organisation's key, and only that part is read again. The version-wide figures
# (the SD at start behind the reliable change index, the case-mix model) are fitted over all parts.

def _definitions_digest(settings: Settings) -> str:
    """What the inputs depend on besides the store: instrument and age-group definitions, windows."""
    catalog = Path(settings.catalog_dir)
    return parts.definitions_digest(
        [CUBE_FORMAT, settings.outcome_start_window_days, settings.outcome_end_window_days],
        [*sorted((catalog / "instruments").glob("*.y*ml")), catalog / "age_groups.yaml"])


def part_keys(engine: sa.Engine, settings: Settings) -> dict[str, str]:
    """Per organisation with loaded data, the key of its cube inputs (`paths.cube_part_folder`)."""
    return parts.keys(engine, _definitions_digest(settings))


def _build_part(engine: sa.Engine, settings: Settings, instruments: dict[str, Instrument], organisation: str,
                folder: Path) -> None:
    """One organisation's trajectories and, per instrument, its first and last valid measurements."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        trajectories = _trajectory_frame(conn, settings, organisation)
        trajectories.to_parquet(tmp / "trajectories.parquet", index=False)
        for inst in instruments.values():
            firsts, lasts = _selection(conn, inst, trajectories, organisation)
            if not (firsts.empty and lasts.empty):
                firsts.to_parquet(paths.within(tmp, f"{inst.code}.firsts.parquet"), index=False)
                lasts.to_parquet(paths.within(tmp, f"{inst.code}.lasts.parquet"), index=False)
    parts.put_in_place(tmp, folder, replace=True)


def refresh_parts(engine: sa.Engine, settings: Settings, full: bool = False) -> dict[str, str]:
    """Build the cube inputs of every organisation whose key has none yet (all of them when `full`);
    returns the keys per organisation."""
    keys = part_keys(engine, settings)
    instruments = load_instruments(settings.catalog_dir)
    for organisation, key in sorted(keys.items()):
        folder = paths.cube_part_folder(settings.data_dir, key)
        if full or not (folder / "trajectories.parquet").exists():
            _build_part(engine, settings, instruments, organisation, folder)
    return keys


def _read_parts(settings: Settings, keys: dict[str, str], name: str) -> pd.DataFrame | None:
    frames = []
    for key in keys.values():
        path = paths.within(paths.cube_part_folder(settings.data_dir, key), name)
        if path.exists():
            frames.append(pd.read_parquet(path))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _first_per_client(frame: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
    """1 for the first row (by start date) of each client among the rows in `mask`, else 0."""
    out = np.zeros(len(frame))
    idx = np.flatnonzero(mask)
    if len(idx):
        sub = pd.DataFrame({"client": frame["client"].to_numpy()[idx], "start": frame["start_date"].to_numpy()[idx],
                            "trajectory": frame["trajectory"].to_numpy()[idx], "pos": idx})
        sub = sub.sort_values(["client", "start", "trajectory"])
        out[sub["pos"].to_numpy()[~sub["client"].duplicated().to_numpy()]] = 1
    return out


def _aggregate(frame: pd.DataFrame, measures: dict[str, np.ndarray]) -> pd.DataFrame:
    data = frame[list(DIMS)].copy()
    for name, values in measures.items():
        data[name] = values
    return data.groupby(list(DIMS), sort=False, dropna=False, observed=True).sum().reset_index()


def _scale_cells(inst: Instrument, informant: str, scale, sel: pd.DataFrame, meta: dict) -> pd.DataFrame | None:
    code = scale.code
    s = sel[f"{code}_s"].to_numpy(dtype=float)
    e = sel[f"{code}_e"].to_numpy(dtype=float)
    has_s, has_e = ~np.isnan(s), ~np.isnan(e)
    pair = has_s & has_e
    if not (has_s.any() or has_e.any()):
        return None
    s0, e0 = np.where(has_s, s, 0.0), np.where(has_e, e, 0.0)
    d0 = np.where(pair, e - s, 0.0)
    m = {"n_start": has_s * 1.0, "c_start": _first_per_client(sel, has_s), "sum_start": s0, "sumsq_start": s0 ** 2,
         "n_end": has_e * 1.0, "c_end": _first_per_client(sel, has_e), "sum_end": e0, "sumsq_end": e0 ** 2,
         "n_pairs": pair * 1.0, "sum_ps": np.where(pair, s0, 0), "sumsq_ps": np.where(pair, s0 ** 2, 0),
         "sum_pe": np.where(pair, e0, 0), "sum_d": d0, "sumsq_d": d0 ** 2}
    m["c_pairs"] = w = _first_per_client(sel, pair)
    key = f"{inst.code}/{informant}/{code}"
    info = meta.setdefault(key, {})
    usable = pair & ~sel["objector"].to_numpy(dtype=bool)
    zeros = np.zeros(len(sel))
    m["n_cat"], m["c_cat"] = zeros.copy(), zeros.copy()
    for c in CATEGORIES:
        m[f"cat_{c}"], m[f"c_cat_{c}"] = zeros.copy(), zeros.copy()
    if scale.reliability is not None and usable.sum() >= 2:
        sd = float(np.std(s[usable], ddof=1))
        info["rci_sd_start"] = sd
        idx = np.flatnonzero(pair)
        cats = outcomes.categories(pd.Series(s[idx]), pd.Series(e[idx]), sel[f"{code}_band_s"].iloc[idx].reset_index(drop=True),
                                   sel[f"{code}_band_e"].iloc[idx].reset_index(drop=True), scale, sd_start=sd).to_numpy()
        m["n_cat"][idx] = 1
        m["c_cat"] = w * (m["n_cat"] > 0)
        for c in CATEGORIES:
            hit = np.zeros(len(sel), dtype=bool)
            hit[idx] = cats == c
            m[f"cat_{c}"] = hit * 1.0
            m[f"c_cat_{c}"] = w * hit
    for col in ("n_cm", "c_cm", "cm_observed", "cm_expected", "cm_residual", "cm_residual_sq"):
        m[col] = zeros.copy()
    if usable.sum() >= 30:
        idx = np.flatnonzero(pair)
        frame = pd.DataFrame({"start": s[idx], "end": e[idx], "age": sel["age_at_start"].to_numpy()[idx],
                              "gender": sel["gender"].to_numpy()[idx], "intervention": sel["intervention"].to_numpy()[idx]})
        try:
            model = outcomes.casemix_fit(frame, "change", fit=pd.Series(usable[idx]))
        except ValueError:  # e.g. a single category everywhere: no model for this scale
            model = None
        if model is not None:
            expected = model.expected.to_numpy()
            ok = ~np.isnan(expected)
            rows = idx[ok]
            observed = (e - s)[rows]
            resid = observed - expected[ok]
            m["n_cm"][rows] = 1
            m["c_cm"][rows] = w[rows]
            m["cm_observed"][rows] = observed
            m["cm_expected"][rows] = expected[ok]
            m["cm_residual"][rows] = resid
            m["cm_residual_sq"][rows] = resid ** 2
            info["casemix_formula"] = outcomes.CASEMIX_FORMULA
            info["casemix_params"] = {k: float(v) for k, v in model.result.params.items()}
            info["casemix_nobs"] = int(model.result.nobs)
    cells = _aggregate(sel, m)
    cells.insert(0, "scale", code)
    cells.insert(0, "informant", informant)
    cells.insert(0, "instrument", inst.code)
    return cells


def build_cube(engine: sa.Engine, settings: Settings | None = None, folder: Path | None = None,
               full: bool = False) -> Path:
    """Build the cube at the store's current data version into `folder` (default
    `<data_dir>/indicators/<version>/`); returns the folder. Written to a temporary folder first.

    Reads the store only for organisations whose inputs changed (`refresh_parts`); `full` reads it all
    again and replaces the folder."""
    settings = settings or get_settings()
    version, batches = store.data_version(engine)
    folder = folder or paths.cube_folder(settings.data_dir, version)
    instruments = load_instruments(settings.catalog_dir)
    keys = refresh_parts(engine, settings, full=full)
    scale_parts, response_parts, meta = [], [], {}
    trajectories = _read_parts(settings, keys, "trajectories.parquet")
    if trajectories is not None:
        dims = trajectories.set_index("pseudonym")[[d for d in DIMS] + ["client", "start_date", "age_at_start"]]
        for inst in instruments.values():
            value_columns = ["trajectory", "informant", *(c for s in inst.scales for c in (s.code, f"{s.code}_band"))]
            firsts = _read_parts(settings, keys, f"{inst.code}.firsts.parquet")
            lasts = _read_parts(settings, keys, f"{inst.code}.lasts.parquet")
            firsts = pd.DataFrame(columns=value_columns) if firsts is None else firsts
            lasts = pd.DataFrame(columns=value_columns) if lasts is None else lasts
            eligible = trajectories[outcomes.response_eligible(trajectories, inst)]
            status = outcomes.status_from_selection(eligible["pseudonym"], inst.informants, firsts, lasts)
            status = status.join(dims, on="trajectory")
            for informant, part in status.groupby("informant", sort=True):
                part = part.reset_index(drop=True)
                rm = {"eligible": np.ones(len(part)),
                      "c_eligible": _first_per_client(part, np.ones(len(part), dtype=bool))}
                for st in STATUSES:
                    hit = (part["status"] == st).to_numpy()
                    rm[st] = hit * 1.0
                    rm[f"c_{st}"] = rm["c_eligible"] * hit
                if len(part):
                    cells = _aggregate(part, rm)
                    cells.insert(0, "informant", informant)
                    cells.insert(0, "instrument", inst.code)
                    response_parts.append(cells)
            if firsts.empty and lasts.empty:
                continue
            sel = firsts.merge(lasts, on=["trajectory", "informant"], how="outer", suffixes=("_s", "_e"))
            sel = sel.join(dims, on="trajectory").reset_index(drop=True)
            for informant in sorted(sel["informant"].unique()):
                part = sel[sel["informant"] == informant].reset_index(drop=True)
                for scale in inst.scales:
                    cells = _scale_cells(inst, informant, scale, part, meta)
                    if cells is not None:
                        scale_parts.append(cells)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    key = ["instrument", "informant", "scale"]
    for name, found, measures, sort in (("scales", scale_parts, SCALE_MEASURES, key),
                                        ("response", response_parts, RESPONSE_MEASURES, key[:2])):
        frame = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=[*sort, *DIMS, *measures])
        for col in (*sort, *DIMS):
            if col not in ("start_year", "objector"):
                frame[col] = frame[col].astype(str)
        frame["start_year"] = frame["start_year"].astype("int64")
        frame["objector"] = frame["objector"].astype(bool)
        frame = frame.sort_values([*sort, "organisation"], kind="stable")
        frame[[*sort, *DIMS, *measures]].to_parquet(tmp / f"{name}.parquet", index=False, row_group_size=50_000)
    (tmp / "meta.json").write_text(json.dumps({"format": CUBE_FORMAT, "version": version, "batches": batches,
                                               "windows": [settings.outcome_start_window_days,
                                                           settings.outcome_end_window_days],
                                               "age_groups": age_groups(settings),
                                               "parts": sorted(keys.values()),
                                               "scales": meta}, indent=1))
    parts.put_in_place(tmp, folder, replace=full)
    return folder


def refresh_cube(engine: sa.Engine, settings: Settings | None = None, full: bool = False) -> Path:
    """The cube at the current data version, built when missing or when `full` (the hook after `ldj ingest`)."""
    settings = settings or get_settings()
    folder = paths.cube_folder(settings.data_dir, store.data_version(engine)[0])
    return folder if (folder / "meta.json").exists() and not full else build_cube(engine, settings, folder, full)


# --- the cube: reading --------------------------------------------------------------------------

@dataclass
class Cube:
    folder: Path
    version: str
    meta: dict
    organisations: dict[str, str] = field(default_factory=dict)  # code -> name

    def key(self, table: str, instrument: str, informant: str, scale: str | None = None) -> _KeyFrame:
        return _load_key(str(self.folder), table, instrument, informant, scale)

    def anonymous_labels(self, own: str | None, language: str) -> dict[str, str]:
        """Letters for every organisation but `own`, in an order drawn per data version."""
        others = sorted((o for o in self.organisations if o != own),
                        key=lambda o: hashlib.sha256(f"{self.version}\x1f{o}".encode()).hexdigest())
        letters = [_letters(i) for i in range(len(others))]
        return {o: t("ind_organisation_anonymous", language, letter=letter) for o, letter in zip(others, letters)}


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = string.ascii_uppercase[r] + out
    return out


@dataclass
class _KeyFrame:
    dims: pd.DataFrame  # categorical dims
    values: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.dims)


@lru_cache(maxsize=64)
def _load_key(folder: str, table: str, instrument: str, informant: str, scale: str | None) -> _KeyFrame:
    import pyarrow.parquet as pq

    filters = [("instrument", "=", instrument), ("informant", "=", informant)]
    if scale is not None:
        filters.append(("scale", "=", scale))
    frame = pq.read_table(Path(folder) / f"{table}.parquet", filters=filters).to_pandas()
    dims = pd.DataFrame({d: frame[d].astype("category") for d in DIMS if d not in ("start_year", "objector")})
    dims["start_year"] = frame["start_year"].astype("int64").to_numpy()
    dims["objector"] = frame["objector"].astype(bool).to_numpy()
    measures = SCALE_MEASURES if table == "scales" else RESPONSE_MEASURES
    return _KeyFrame(dims.reset_index(drop=True), {m: frame[m].to_numpy(dtype=float) for m in measures})


_cubes: dict[tuple[str, str], Cube] = {}
_cube_lock = threading.Lock()


def get_cube(engine: sa.Engine, settings: Settings | None = None) -> Cube:
    """The cube the dashboards show: of the last version whose refresh finished (`ldj.versions`) while
    its files are there, else of the store's current version, built on first use."""
    from .versions import shown_version

    settings = settings or get_settings()
    current = store.data_version(engine)[0]
    version = shown_version(engine, settings, current)
    if not (paths.cube_folder(settings.data_dir, version) / "meta.json").exists():
        version = current
    cache_key = (str(settings.data_dir.resolve()), version)
    cube = _cubes.get(cache_key)
    if cube is not None:
        return cube
    with _cube_lock:
        folder = paths.cube_folder(settings.data_dir, version)
        if version == current:
            folder = refresh_cube(engine, settings)
        with engine.connect() as conn:
            names = dict(conn.execute(sa.select(store.organisations.c.code, store.organisations.c.name)).all())
        cube = Cube(folder, folder.name, json.loads((folder / "meta.json").read_text()), names)
        _cubes[cache_key] = cube
    return cube


# --- sums over the cube -------------------------------------------------------------------------

def _mask(kf: _KeyFrame, filters: dict, scope: str, organisation: str | None, team: str | None) -> np.ndarray:
    mask = np.ones(len(kf), dtype=bool)
    for d, value in filters.items():
        if d == "team":
            continue
        mask &= (kf.dims[d] == (int(value) if d == "start_year" else value)).to_numpy()
    if scope == SEJN:
        mask &= ~kf.dims["objector"]
    else:
        mask &= (kf.dims["organisation"] == organisation).to_numpy()
        if scope == "team":
            mask &= (kf.dims["team"] == team).to_numpy()
    return mask


def _sum(kf: _KeyFrame, mask: np.ndarray, columns) -> dict[str, float]:
    return {c: float(kf.values[c][mask].sum()) for c in columns}


def _by(kf: _KeyFrame, mask: np.ndarray, dim: str, columns) -> pd.DataFrame:
    """Sums of `columns` per category of `dim` among the rows in `mask`."""
    codes = kf.dims[dim]
    if dim in ("start_year",):
        keys, inverse = np.unique(np.asarray(codes)[mask], return_inverse=True)
    else:
        cats = codes.cat
        inverse_all = cats.codes.to_numpy()
        present = np.unique(inverse_all[mask])
        keys = np.asarray(cats.categories)[present]
        lookup = np.full(len(cats.categories), -1)
        lookup[present] = np.arange(len(present))
        inverse = lookup[inverse_all[mask]]
    out = pd.DataFrame({dim: keys})
    for c in columns:
        out[c] = np.bincount(inverse, weights=kf.values[c][mask], minlength=len(keys))
    return out


def _view_scopes(access: _Access, view: View, language: str, cube: Cube) -> list[tuple[str, str, str | None]]:
    """(scope, label, team) for the view: the organisation or its team, then SEJN."""
    out = []
    if access.organisation is not None:
        if view.team is not None:
            out.append(("team", view.team, view.team))
        else:
            out.append(("organisation", cube.organisations.get(access.organisation) or access.organisation, None))
    out.append((SEJN, t("ind_sejn", language), None))
    return out


def _clients(lower_bound, n) -> np.ndarray:
    """Distinct clients to decide disclosure by: the cube's lower bound, and at least one where
    there is anything at all (a lower bound of 0 over a non-empty cell says nothing)."""
    lower_bound, n = np.atleast_1d(np.asarray(lower_bound, dtype=float)), np.atleast_1d(np.asarray(n, dtype=float))
    return np.where(n > 0, np.maximum(np.round(lower_bound), 1), 0).astype("int64")


def _controlled(dim: str, labels, lower_bound, n, settings: Settings, memo: dict | None = None) -> pd.DataFrame:
    """`disclosure.suppress` over the cells of one dimension and their total (the last row, added
    here). A table whose total is below the threshold is hidden whole. `memo`: results within one
    request (several figures often share the same table)."""
    clients = _clients([*lower_bound, float(np.sum(lower_bound))], [*n, float(np.sum(n))])
    counts = np.round(np.asarray([*n, float(np.sum(n))], dtype=float)).astype("int64")
    key = ("controlled", dim, tuple(str(x) for x in labels), clients.tobytes(), counts.tobytes())
    if memo is not None and key in memo:
        return memo[key]
    result = _controlled_table(dim, labels, clients, counts, settings)
    if memo is not None:
        memo[key] = result
    return result


def _controlled_table(dim: str, labels, clients: np.ndarray, counts: np.ndarray, settings: Settings) -> pd.DataFrame:
    table = pd.DataFrame({dim: [*(str(x) for x in labels), disclosure.TOTAL], "clients": clients, "count": counts})
    if clients[-1] < settings.disclosure_threshold:
        table["n_published"] = pd.array([pd.NA] * len(table), dtype="Int64")
        table["suppressed"] = True
        table["suppression"] = np.where(counts > 0, "primary", "empty")
        return table
    if not ((clients > 0) & (clients < settings.disclosure_threshold)).any():
        # no primary cell, so `suppress` hides nothing: skip its audit (the common case, and fast)
        table["n_published"] = pd.array([disclosure.rounded(int(x), settings) for x in counts], dtype="Int64")
        table["suppressed"] = False
        table["suppression"] = ""
        return table
    return disclosure.suppress(table, "clients", [dim], settings=settings, value="count")


def _differencing_ok(kf: _KeyFrame, view: View, scope: str, organisation: str | None, c_col: str, n_col: str,
                     settings: Settings, memo: dict | None = None) -> bool:
    """The view's cell survives `disclosure.suppress` on every sibling table (module doc)."""
    filters = view.filters()
    dims = [d for d in filters if not (d == "team" and scope != "team")]
    if scope == "team" and "team" not in dims:
        dims.append("team")
    for d in dims:
        rest = {k: v for k, v in filters.items() if k != d}
        parent_scope = "organisation" if d == "team" else scope
        mask = _mask(kf, rest, parent_scope, organisation, view.team)
        memo_key = (id(kf), d, scope, tuple(sorted(rest.items())), view.team)
        table = memo.get(memo_key) if memo is not None else None
        if table is None:
            table = _by(kf, mask, d, [k for k in kf.values if k.startswith(("c_", "n_")) or k == "eligible"])
            if memo is not None:
                memo[memo_key] = table
        checked = _controlled(d, table[d], table[c_col], table[n_col], settings, memo)
        target = view.team if d == "team" else filters[d]
        hit = checked[checked[d] == str(target)]
        if len(hit) and bool(hit["suppressed"].iloc[0]):
            return False
    return True


_parts_cache: dict[tuple, tuple[_KeyFrame, _KeyFrame]] = {}


def _with_parts(kf: _KeyFrame, c_col: str, n_col: str, prefix: str, numerator: list[str]) -> _KeyFrame:
    """The key frame with a proportion's numerator (`_k`, `_c_k`) and complement (`_rest`, `_c_rest`)."""
    key = (id(kf), c_col, n_col, prefix, tuple(numerator))
    found = _parts_cache.get(key)
    if found is not None and found[0] is kf:
        return found[1]
    values = dict(kf.values)
    values["_c_k"] = sum(kf.values[f"c_{prefix}{k}"] for k in numerator)
    values["_k"] = sum(kf.values[f"{prefix}{k}"] for k in numerator)
    values["_c_rest"] = kf.values[c_col] - values["_c_k"]
    values["_rest"] = kf.values[n_col] - values["_k"]
    if len(_parts_cache) > 32:
        _parts_cache.clear()
    _parts_cache[key] = (kf, _KeyFrame(kf.dims, values))
    return _parts_cache[key][1]


def _filtered_dims(view: View, scope: str) -> list[str]:
    """The view's filtered dimensions as the scope sees them (team counts within the organisation)."""
    dims = [d for d in FILTERS if d in view.filters() and not (d == "team" and scope != "team")]
    if scope == "team" and "team" not in dims:
        dims.append("team")
    return dims


_families: dict = {}
_families_owner: dict[int, _KeyFrame] = {}
_families_lock = threading.Lock()


def _hidden_rows(kf: _KeyFrame, view: View, scope: str, organisation: str | None, by: str | None, parts: list,
                 pairs: list[tuple[str, str]], settings: Settings) -> frozenset:
    """The rows of a figure (parts: its categories, years or organisations) hidden in the view.

    Rows are hidden per *family*, not per view: every view with the same filtered dimensions (all their
    categories and totals: the grid of sibling views) hides the same rows, so no row is hidden in one
    view and shown in its siblings (the total minus the other genders would give it away). A row is
    hidden when any view of the grid, or of a smaller grid (fewer filters), holds a small cell in it
    (0 < clients < threshold, for any (clients, count) column pair of the row); then, until stable, a
    view of the grid in which exactly one non-empty row is hidden hides one more (the smallest overall).
    `by` None: row i is the column pair pairs[i] (returns indices); else a row is a category of `by`, with
    every column pair (returns categories; `parts` is not used). The view without filters starts from
    `disclosure.suppress` on its own rows."""
    dims = tuple(_filtered_dims(view, scope))
    key = ("rows", id(kf), scope, organisation, by, tuple(pairs), settings.disclosure_threshold,
           settings.disclosure_rounding)
    with _families_lock:  # the same for every view of the family: kept across requests
        owner = _families_owner.get(id(kf))
        if (owner is not None and owner is not kf) or len(_families) > 20_000:
            _families.clear()
            _families_owner.clear()
        _families_owner[id(kf)] = kf
        if (key, dims) not in _families:
            columns = list(dict.fromkeys(c for pair in pairs for c in pair))
            mask = _mask(kf, {}, "organisation" if "team" in dims else scope, organisation, None)
            frame = pd.DataFrame({d: np.asarray(kf.dims[d])[mask] for d in (*dims, *([by] if by else []))})
            for col in columns:
                frame[col] = kf.values[col][mask]
            if by is not None:  # every category the family has, the same list in every view of it
                present = frame.groupby(by, sort=True)[pairs[0][1]].sum()
                parts = [v for v, n in present.items() if n > 0]
            _families[key, "parts"] = parts
            _family(frame, dims, by, parts, pairs, settings, _families, key)
        hidden, parts = _families[key, dims], _families[key, "parts"]
    return frozenset(hidden if by is None else (parts[i] for i in hidden))


def _family(frame: pd.DataFrame, dims: tuple[str, ...], by: str | None, parts: list, pairs: list[tuple[str, str]],
            settings: Settings, memo: dict, key: tuple) -> frozenset:
    if (key, dims) in memo:
        return memo[key, dims]
    threshold = settings.disclosure_threshold
    hidden = np.zeros(len(parts), dtype=bool)
    for k in range(len(dims)):  # every smaller family's hidden rows
        hidden[list(_family(frame, dims[:k] + dims[k + 1:], by, parts, pairs, settings, memo, key))] = True
    lower_cols, count_cols = [c for c, _ in pairs], [n for _, n in pairs]
    blocks_lower, blocks_counts = [], []  # per view of the grid: rows x pairs
    for k in range(len(dims) + 1):
        for kept in combinations(dims, k):
            group = ["_all", *kept, *([by] if by else [])]
            sums = frame.assign(_all=0).groupby(group, sort=False, observed=True)[lower_cols + count_cols].sum()
            if by is None:  # rows are the pairs
                blocks_lower.append(sums[lower_cols].to_numpy()[:, :, None])
                blocks_counts.append(sums[count_cols].to_numpy()[:, :, None])
                continue
            table = sums.unstack(by, fill_value=0)
            full = pd.MultiIndex.from_product([lower_cols + count_cols, parts])
            table = table.reindex(columns=full, fill_value=0)
            blocks_lower.append(np.stack([table[c].to_numpy() for c in lower_cols], axis=2))
            blocks_counts.append(np.stack([table[n].to_numpy() for n in count_cols], axis=2))
    lower, counts = np.concatenate(blocks_lower), np.concatenate(blocks_counts)  # views x rows x pairs
    clients = _clients(lower.ravel(), counts.ravel()).reshape(counts.shape)
    overall = counts[0, :, 0]  # the first view of the grid is the one without filters
    if not dims:  # the view without filters: its own table first
        checked = _controlled("part", list(range(len(parts))), clients[0, :, 0], overall, settings)
        hidden |= checked["suppressed"].to_numpy()[:-1] & (overall > 0)
    hidden |= ((clients > 0) & (clients < threshold)).any(axis=(0, 2))
    order = np.lexsort((np.arange(len(parts)), overall))
    nonzero = counts[:, :, 0] > 0
    while hidden.any():
        alone = np.flatnonzero((nonzero & hidden).sum(axis=1) == 1)
        if not len(alone):
            break
        row = nonzero[alone[0]]
        extra = next((i for i in order if row[i] and not hidden[i]), None)
        if extra is None:
            extra = next((i for i in order if overall[i] > 0 and not hidden[i]), None)
        if extra is None:
            break
        hidden[extra] = True
    memo[key, dims] = frozenset(np.flatnonzero(hidden).tolist())
    return memo[key, dims]


def _publish(lower_bound: float, n_shown: float, ok_by_difference: bool, settings: Settings) -> tuple[bool, str, object]:
    """(published, suppression, rounded n)."""
    n_clients = int(_clients(lower_bound, n_shown)[0])
    if n_clients < settings.disclosure_threshold:
        return False, "primary" if n_clients > 0 else "empty", pd.NA
    if not ok_by_difference:
        return False, "secondary", pd.NA
    return True, "", disclosure.rounded(int(round(n_shown)), settings)


def _frame(rows: list[dict], stats: list[str], language: str) -> pd.DataFrame:
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["n"] = pd.array(out["n"], dtype="Int64")
    for c in stats:
        out[c] = out[c].where(out["published"]).astype(float)
    out["message"] = np.where(out["published"], "", t("ind_too_little_data", language))
    return out


# --- public: the indicators ---------------------------------------------------------------------

class _Context:
    """One request: settings, engine, the viewer's access, the cube, the view and its scopes."""

    def __init__(self, view: View, viewer, engine, settings, base: _Context | None = None):
        if base is not None:
            self.settings, self.engine, self.access, self.cube, self.memo = \
                base.settings, base.engine, base.access, base.cube, base.memo
            if view.organisation is not None and view.organisation != self.access.organisation:
                self.access = _access(viewer, view, self.engine, self.settings)
        else:
            self.settings = settings or get_settings()
            self.engine = engine or store.get_engine(self.settings)
            self.access = _access(viewer, view, self.engine, self.settings)
            self.cube = get_cube(self.engine, self.settings)
            self.memo = {}
        if view.organisation is None and self.access.organisation is not None:
            view = replace(view, organisation=self.access.organisation)
        self.view = view
        self.language = self.access.language
        self.scopes = _view_scopes(self.access, view, self.language, self.cube)


def change(view: View, viewer: Viewer, engine: sa.Engine | None = None,
           settings: Settings | None = None, _context=None) -> pd.DataFrame:
    """Mean T at start and end and ΔT with its 95% interval, and the effect size, per scope.

    Columns: scope (organisation | team | sejn), label, n (pairs, rounded; <NA> when hidden),
    mean_start, mean_end, mean_change, ci_low, ci_high, sd_start, effect_size (Cohen's d: mean ΔT /
    SD at start), published, suppression ('' | primary | secondary | empty), message.
    """
    c = _Context(view, viewer, engine, settings, _context)
    kf = c.cube.key("scales", view.instrument, view.informant, view.scale)
    rows = []
    for scope, label, team in c.scopes:
        mask = _mask(kf, c.view.filters(), scope, c.view.organisation, team)
        s = _sum(kf, mask, ("n_pairs", "c_pairs", "sum_ps", "sumsq_ps", "sum_pe", "sum_d", "sumsq_d"))
        ok = _differencing_ok(kf, c.view, scope, c.view.organisation, "c_pairs", "n_pairs", c.settings, c.memo)
        published, why, n = _publish(s["c_pairs"], s["n_pairs"], ok, c.settings)
        ch = outcomes.change_from_sums([s["n_pairs"]], [s["sum_ps"]], [s["sumsq_ps"]], [s["sum_pe"]],
                                       [s["sum_d"]], [s["sumsq_d"]]).iloc[0]
        rows.append({"scope": scope, "label": label, "n": n, **{k: ch[k] for k in _CHANGE_STATS},
                     "published": published, "suppression": why})
    return _frame(rows, list(_CHANGE_STATS), c.language)


_CHANGE_STATS = ("mean_start", "mean_end", "mean_change", "ci_low", "ci_high", "sd_start", "effect_size")


def _shares_table(c: _Context, kf: _KeyFrame, scope: str, label: str, team: str | None, parts: list[str],
                  n_part: str, c_part: str, total_n: str, total_c: str, part_label: str) -> list[dict]:
    mask = _mask(kf, c.view.filters(), scope, c.view.organisation, team)
    s = _sum(kf, mask, [n_part.format(p) for p in parts] + [c_part.format(p) for p in parts] + [total_n, total_c])
    ok = _differencing_ok(kf, c.view, scope, c.view.organisation, total_c, total_n, c.settings, c.memo)
    checked = _controlled(part_label, parts, [s[c_part.format(p)] for p in parts], [s[n_part.format(p)] for p in parts],
                          c.settings, c.memo)
    pairs = [(c_part.format(p), n_part.format(p)) for p in parts]
    hidden = _hidden_rows(kf, c.view, scope, c.view.organisation, None, parts, pairs, c.settings)
    checked = checked.assign(suppressed=[i in hidden for i in range(len(parts))] + [bool(checked["suppressed"].iloc[-1])])
    total = checked["n_published"].iloc[-1]
    ok = ok and not bool(checked["suppressed"].iloc[-1]) and bool(total)
    # shares and their intervals from the published (rounded) counts only: an exact k/n next to a
    # rounded n would give both away
    published_n = [disclosure.rounded(int(round(s[n_part.format(p)])), c.settings)
                   if ok and not checked["suppressed"].iloc[i] else 0 for i, p in enumerate(parts)]
    low, high = outcomes.wilson(published_n, [int(total) if ok else 0] * len(parts))
    rows = []
    for i, p in enumerate(parts):
        cell = checked.iloc[i]
        published = ok and not bool(cell["suppressed"])
        why = "" if published else (cell["suppression"] or "secondary")
        rows.append({"scope": scope, "label": label, part_label: p,
                     "n": published_n[i] if published else pd.NA,
                     "total": total if ok else pd.NA,
                     "share": published_n[i] / int(total) if published else np.nan,
                     "ci_low": low[i], "ci_high": high[i], "published": published, "suppression": why})
    return rows


def response(view: View, viewer: Viewer, engine: sa.Engine | None = None,
             settings: Settings | None = None, _context=None) -> pd.DataFrame:
    """Response status rates per scope: trajectories that ended (and fit the instrument's ages) by
    status completer | start_only | end_only | none.

    Columns: scope, label, status, n (rounded), total (rounded eligible trajectories), share,
    ci_low, ci_high (Wilson), published, suppression, message. (`view.scale` is not used.)
    """
    c = _Context(view, viewer, engine, settings, _context)
    kf = c.cube.key("response", view.instrument, view.informant)
    rows = []
    for scope, label, team in c.scopes:
        rows += _shares_table(c, kf, scope, label, team, list(STATUSES), "{}", "c_{}", "eligible", "c_eligible", "status")
    frame = _frame(rows, ["share", "ci_low", "ci_high"], c.language)
    frame["total"] = pd.array(frame["total"], dtype="Int64")
    return frame


def reliable_change(view: View, viewer: Viewer, engine: sa.Engine | None = None,
                    settings: Settings | None = None, _context=None) -> pd.DataFrame:
    """Reliable-change categories per scope: recovered | reliably_improved | no_reliable_change |
    reliably_deteriorated, each with n (rounded), total (pairs), share and 95% Wilson interval.

    Columns: scope, label, category, n, total, share, ci_low, ci_high, published, suppression,
    message. Empty figures (not published) for scales without a reliability.
    """
    c = _Context(view, viewer, engine, settings, _context)
    kf = c.cube.key("scales", view.instrument, view.informant, view.scale)
    rows = []
    for scope, label, team in c.scopes:
        rows += _shares_table(c, kf, scope, label, team, list(CATEGORIES), "cat_{}", "c_cat_{}", "n_cat", "c_cat",
                              "category")
    frame = _frame(rows, ["share", "ci_low", "ci_high"], c.language)
    frame["total"] = pd.array(frame["total"], dtype="Int64")
    return frame


def severity_trend(view: View, viewer: Viewer, engine: sa.Engine | None = None,
                   settings: Settings | None = None, _context=None) -> pd.DataFrame:
    """Mean score at the start of care per year of start (every trajectory with a valid start
    measurement, pairs or not), per scope. The view's `start_year` filter is ignored here.

    Columns: scope, label, start_year, n (rounded), mean, ci_low, ci_high, published, suppression,
    message.
    """
    c = _Context(replace(view, start_year=None), viewer, engine, settings, _context)
    kf = c.cube.key("scales", view.instrument, view.informant, view.scale)
    rows = []
    for scope, label, team in c.scopes:
        mask = _mask(kf, c.view.filters(), scope, c.view.organisation, team)
        ok = _differencing_ok(kf, c.view, scope, c.view.organisation, "c_start", "n_start", c.settings, c.memo)
        years = _by(kf, mask, "start_year", ["n_start", "c_start", "sum_start", "sumsq_start"])
        years = years[years["n_start"] > 0].reset_index(drop=True)
        checked = _controlled("start_year", years["start_year"], years["c_start"], years["n_start"], c.settings, c.memo)
        hidden = _hidden_rows(kf, c.view, scope, c.view.organisation, "start_year", [], [("c_start", "n_start")],
                              c.settings)
        along = [int(y) not in hidden for y in years["start_year"]]
        stats = outcomes.mean_ci_from_sums(years["n_start"], years["sum_start"], years["sumsq_start"])
        for i, year in enumerate(years["start_year"]):
            cell = checked.iloc[i]
            published = ok and bool(along[i])
            rows.append({"scope": scope, "label": label, "start_year": int(year),
                         "n": disclosure.rounded(int(round(years["n_start"].iloc[i])), c.settings) if published
                         else pd.NA, "mean": stats["mean"].iloc[i], "ci_low": stats["ci_low"].iloc[i],
                         "ci_high": stats["ci_high"].iloc[i], "published": published,
                         "suppression": "" if published else (cell["suppression"] or "secondary")})
    return _frame(rows, ["mean", "ci_low", "ci_high"], c.language)


def satisfaction(view: View, viewer: Viewer, engine: sa.Engine | None = None,
                 settings: Settings | None = None, instrument: str = "satisfaction", scale: str = "mean",
                 informant: str | None = None, _context=None) -> pd.DataFrame:
    """Mean satisfaction at the end of care (the last valid end measurement) per scope, with the
    view's filters. Informant: `informant`, else the view's when the satisfaction instrument has
    it, else parent.

    Columns: scope, label, n (rounded), mean, ci_low, ci_high, published, suppression, message.
    """
    settings = settings or get_settings()
    inst = load_instruments(settings.catalog_dir)[instrument]
    informant = informant or (view.informant if view.informant in inst.informants else inst.informants[0])
    sview = replace(view, instrument=instrument, scale=scale, informant=informant)
    c = _Context(sview, viewer, engine, settings, _context)
    kf = c.cube.key("scales", instrument, informant, scale)
    rows = []
    for scope, label, team in c.scopes:
        mask = _mask(kf, c.view.filters(), scope, c.view.organisation, team)
        s = _sum(kf, mask, ("n_end", "c_end", "sum_end", "sumsq_end"))
        ok = _differencing_ok(kf, c.view, scope, c.view.organisation, "c_end", "n_end", c.settings, c.memo)
        published, why, n = _publish(s["c_end"], s["n_end"], ok, c.settings)
        st = outcomes.mean_ci_from_sums([s["n_end"]], [s["sum_end"]], [s["sumsq_end"]]).iloc[0]
        rows.append({"scope": scope, "label": label, "n": n, "mean": st["mean"], "ci_low": st["ci_low"],
                     "ci_high": st["ci_high"], "published": published, "suppression": why})
    return _frame(rows, ["mean", "ci_low", "ci_high"], c.language)


def casemix(view: View, viewer: Viewer, engine: sa.Engine | None = None,
            settings: Settings | None = None, _context=None) -> pd.DataFrame:
    """Case-mix adjusted ΔT next to the raw one, per scope: observed mean ΔT, expected mean ΔT
    (OLS on T_start, age, gender, intervention; see module doc) and observed − expected with its 95%
    interval. Negative difference on a problem scale: more improvement than the case mix predicts.

    Columns: scope, label, n (rounded), observed, expected, difference, ci_low, ci_high, published,
    suppression, message.
    """
    c = _Context(view, viewer, engine, settings, _context)
    kf = c.cube.key("scales", view.instrument, view.informant, view.scale)
    rows = []
    cols = ("n_cm", "c_cm", "cm_observed", "cm_expected", "cm_residual", "cm_residual_sq")
    for scope, label, team in c.scopes:
        mask = _mask(kf, c.view.filters(), scope, c.view.organisation, team)
        s = _sum(kf, mask, cols)
        ok = _differencing_ok(kf, c.view, scope, c.view.organisation, "c_cm", "n_cm", c.settings, c.memo)
        published, why, n = _publish(s["c_cm"], s["n_cm"], ok, c.settings)
        sums = pd.DataFrame({"n": [s["n_cm"]], "observed": [s["cm_observed"]], "expected": [s["cm_expected"]],
                             "residual": [s["cm_residual"]], "residual_sq": [s["cm_residual_sq"]]})
        st = outcomes.casemix_from_sums(sums).iloc[0]
        rows.append({"scope": scope, "label": label, "n": n, "observed": st["observed"], "expected": st["expected"],
                     "difference": st["difference"], "ci_low": st["ci_low"], "ci_high": st["ci_high"],
                     "published": published, "suppression": why})
    return _frame(rows, ["observed", "expected", "difference", "ci_low", "ci_high"], c.language)


def funnel(view: View, viewer: Viewer, indicator: str = "improved", engine: sa.Engine | None = None,
           settings: Settings | None = None, _context=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Funnel plot data across organisations (research-usable data only: no objectors), with the
    view's filters except `team`.

    `indicator`: improved (share recovered or reliably improved of categorised pairs), deteriorated,
    response (share completers of eligible trajectories), change (mean ΔT) or casemix (observed −
    expected ΔT). Returns (points, limits):

    - points: label (own organisation's name; others "Organisatie A", ... — the steward sees names),
      own (bool), n (rounded), value, published, suppression, message; plus, for the steward only,
      organisation (the code). Unpublished points have no value.
    - limits: n, low_95, high_95, low_99_8, high_99_8 over a grid of n, and centre (the SEJN value).
    """
    if indicator not in FUNNEL_INDICATORS:
        raise ValueError(f"indicator must be one of {FUNNEL_INDICATORS}")
    c = _Context(replace(view, team=None), viewer, engine, settings, _context)
    if indicator == "response":
        kf = c.cube.key("response", view.instrument, view.informant)
        n_col, c_col, cols = "eligible", "c_eligible", ["eligible", "c_eligible", "completer", "c_completer"]
    else:
        kf = c.cube.key("scales", view.instrument, view.informant, view.scale)
        n_col, c_col = {"improved": ("n_cat", "c_cat"), "deteriorated": ("n_cat", "c_cat"),
                        "change": ("n_pairs", "c_pairs"), "casemix": ("n_cm", "c_cm")}[indicator]
        cols = [n_col, c_col, *(f"{p}cat_{k}" for p in ("", "c_") for k in CATEGORIES), "sum_d", "sumsq_d",
                "cm_residual", "cm_residual_sq"]
    mask = _mask(kf, c.view.filters(), SEJN, None, None)
    orgs = _by(kf, mask, "organisation", cols)
    orgs = orgs[orgs[n_col] > 0].reset_index(drop=True)
    total = orgs[cols].sum()

    proportion = indicator in ("improved", "deteriorated", "response")
    numerator = {"improved": ["recovered", "reliably_improved"], "deteriorated": ["reliably_deteriorated"],
                 "response": ["completer"]}.get(indicator, [])
    prefix = "" if indicator == "response" else "cat_"

    def counted(s, clients: bool = False) -> float:
        """The proportion's numerator: trajectories (pairs), or the clients' lower bound."""
        return float(sum(s[f"{'c_' if clients else ''}{prefix}{k}"] for k in numerator))

    def value(s, n_published=None) -> float:
        """The indicator of one group. A proportion is computed from the published (rounded) counts
        (`n_published` given): an exact k/n next to a rounded n would give k and n away."""
        n = s[n_col]
        if not n:
            return np.nan
        if proportion:
            if n_published is not None:
                return disclosure.rounded(int(round(counted(s))), c.settings) / n_published if n_published else np.nan
            return counted(s) / n
        if indicator == "change":
            return s["sum_d"] / n
        return s["cm_residual"] / n

    checked = _controlled("organisation", orgs["organisation"], orgs[c_col], orgs[n_col], c.settings, c.memo)
    labels = c.cube.anonymous_labels(c.access.organisation, c.language)
    # each organisation's n (and a proportion's numerator and complement), hidden per family of views
    pairs = [(c_col, n_col)]
    if proportion:
        for name, c_name, n_name in (("_k", "_c_k", "_k"), ("_rest", "_c_rest", "_rest")):
            pairs.append((c_name, n_name))
    hidden = _hidden_rows(_with_parts(kf, c_col, n_col, prefix, numerator) if proportion else kf, c.view, SEJN,
                          None, "organisation", [], pairs, c.settings)
    along = [org not in hidden for org in orgs["organisation"]]
    rows = []
    for i, org in enumerate(orgs["organisation"].astype(str)):
        cell = checked.iloc[i]
        published = bool(along[i])
        own = org == c.access.organisation
        n_published = disclosure.rounded(int(round(orgs[n_col].iloc[i])), c.settings) if published else None
        row = {"label": (c.cube.organisations.get(org) or org) if (own or c.access.all_organisations) else labels[org],
               "own": own, "n": n_published if published else pd.NA,
               "value": value(orgs.iloc[i], n_published) if published else np.nan,
               "published": published, "suppression": "" if published else (cell["suppression"] or "primary")}
        if c.access.all_organisations:
            row = {"organisation": org, **row}
        rows.append(row)
    points = _frame(rows, ["value"], c.language)
    if not points.empty:  # own first, then the others in their (anonymous) order
        rank = {} if c.access.all_organisations else {o: i for i, o in enumerate(labels)}
        order = [(not own, rank.get(org, -1), label) for own, org, label in
                 zip(points["own"], orgs["organisation"].astype(str), points["label"])]
        points = points.iloc[sorted(range(len(order)), key=order.__getitem__)].reset_index(drop=True)
    total_shown = len(orgs) and not bool(checked["suppressed"].iloc[-1])
    total_n = int(checked["n_published"].iloc[-1]) if total_shown else 0
    centre = value(total, total_n) if len(orgs) and total_n >= c.settings.disclosure_threshold else np.nan
    largest = float(points["n"].max()) if len(points) and points["published"].any() else 10
    grid = np.unique(np.round(np.geomspace(max(c.settings.disclosure_threshold, 2), max(largest, 20), 60)))
    if indicator in ("improved", "deteriorated", "response"):
        limits = outcomes.funnel_limits(centre, grid) if not np.isnan(centre) else pd.DataFrame({"n": grid})
    else:
        sq = total["sumsq_d"] if indicator == "change" else total["cm_residual_sq"]
        sm = total["sum_d"] if indicator == "change" else total["cm_residual"]
        n = total[n_col]
        sd = float(np.sqrt(max(sq - sm * sm / n, 0) / (n - 1))) \
            if n > 1 and total_n >= c.settings.disclosure_threshold else np.nan
        limits = outcomes.funnel_limits_mean(0.0 if indicator == "casemix" else centre, sd, grid)
    limits["centre"] = 0.0 if indicator == "casemix" else centre
    return points, limits


def dashboard(view: View, viewer: Viewer, engine: sa.Engine | None = None,
              settings: Settings | None = None, funnel_indicator: str = "improved") -> dict[str, pd.DataFrame]:
    """Every indicator of the main view: response, change, reliable_change, severity_trend,
    satisfaction, casemix, funnel (points) and funnel_limits."""
    base = _Context(view, viewer, engine, settings)
    args = (view, viewer, base.engine, base.settings)
    out = {"response": response(*args, _context=base), "change": change(*args, _context=base),
           "reliable_change": reliable_change(*args, _context=base),
           "severity_trend": severity_trend(*args, _context=base),
           "satisfaction": satisfaction(*args, _context=base), "casemix": casemix(*args, _context=base)}
    out["funnel"], out["funnel_limits"] = funnel(view, viewer, funnel_indicator, base.engine, base.settings,
                                                 _context=base)
    return out


def options(viewer: Viewer, engine: sa.Engine | None = None, settings: Settings | None = None,
            organisation: str | None = None) -> dict:
    """What a viewer can choose: instruments with their scales and informants (where the cube has
    pairs or start values), interventions, age groups, genders, years of start, and the teams of
    the viewer's organisation (or `organisation`, steward only)."""
    settings = settings or get_settings()
    engine = engine or store.get_engine(settings)
    access = _access(viewer, View("", "", "", organisation=organisation), engine, settings)
    cube = get_cube(engine, settings)
    import pyarrow.parquet as pq

    frame = pq.read_table(cube.folder / "scales.parquet",
                          columns=["instrument", "informant", "scale", "organisation", "team", "intervention",
                                   "age_group", "gender", "start_year"]).to_pandas()
    instruments: dict[str, dict] = {}
    for (inst, informant, scale), _ in frame.groupby(["instrument", "informant", "scale"], sort=True, observed=True):
        entry = instruments.setdefault(inst, {"scales": [], "informants": []})
        if scale not in entry["scales"]:
            entry["scales"].append(scale)
        if informant not in entry["informants"]:
            entry["informants"].append(informant)
    own = frame[frame["organisation"] == access.organisation] if access.organisation else frame.iloc[:0]
    return {"instruments": instruments, "interventions": sorted(frame["intervention"].unique().tolist()),
            "age_groups": [g for g in age_groups(settings) if g in set(frame["age_group"])] +
            ([UNKNOWN] if UNKNOWN in set(frame["age_group"]) else []),
            "genders": sorted(frame["gender"].unique().tolist()),
            "start_years": sorted(int(y) for y in frame["start_year"].unique()),
            "teams": sorted(own["team"].unique().tolist()), "organisation": access.organisation,
            "organisations": sorted(cube.organisations) if access.all_organisations else None}


def download_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The table behind a figure, for CSV download: published figures only (hidden ones carry the
    message instead of numbers), without the internal `suppression` column."""
    return frame.drop(columns=[c for c in ("suppression",) if c in frame.columns])
