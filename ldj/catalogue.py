"""The governed catalogue: entries as data (`catalog/entries/*.yaml`), their data dictionaries, how
each is built from the research-usable views, live counts, and the master Intake catalogue.

An entry file with `for_each: instrument` stands for one entry per instrument definition, so a new
instrument brings its scale-score and pairs entries along without code.
"""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
import yaml

from . import parts, paths, store
from .delivery import OUTCOME_PREFIX
from .instruments import Instrument, load_instruments
from .outcomes import pairs
from .settings import get_settings

SOURCES = ("trajectories", "measurements", "pairs")
SENSITIVITY = ("public", "restricted", "sensitive")


class CatalogueError(ValueError):
    pass


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    label: dict[str, str]
    value_labels: dict[str, str] = field(default_factory=dict)
    identifier: bool = False  # re-pseudonymised per project in every extract


@dataclass(frozen=True)
class Entry:
    id: str
    title: dict[str, str]
    description: dict[str, str]
    source: str
    themes: tuple[str, ...]
    sensitivity: str
    variables: tuple[Variable, ...]
    instrument: str | None = None

    @property
    def variable_names(self) -> list[str]:
        return [v.name for v in self.variables]

    def variable(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(name)

    def dictionary(self, language: str = "nl") -> pd.DataFrame:
        return pd.DataFrame([{"variable": v.name, "type": v.type, "label": v.label.get(language, v.name),
                              "values": ", ".join(f"{k} = {lab}" for k, lab in v.value_labels.items())}
                             for v in self.variables])


def _format(value, fields: dict):
    if isinstance(value, str):
        return value.format(**fields)
    if isinstance(value, dict):
        return {k: _format(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [_format(v, fields) for v in value]
    return value


def _scale_variables(inst: Instrument, kinds: list[str]) -> list[dict]:
    out = []
    for s in inst.scales:
        nl, en = s.label.get("nl", s.code), s.label.get("en", s.code)
        labels = {"raw": ("ruwe score", "raw score", "number"), "t": ("T-score", "T score", "number"),
                  "band": ("range", "range", "category"), "start": ("bij start", "at start", "number"),
                  "end": ("bij einde", "at end", "number"), "band_start": ("range bij start", "range at start", "category"),
                  "band_end": ("range bij einde", "range at end", "category")}
        for kind in kinds:
            if kind == "t" and s.t_range is None:
                continue
            if kind.startswith("band") and not s.bands:
                continue
            lab_nl, lab_en, type_ = labels[kind]
            out.append({"name": f"{s.code}_{kind}", "type": type_, "label": {"nl": f"{nl}: {lab_nl}", "en": f"{en}: {lab_en}"},
                        "value_labels": {b: inst.band_labels.get(b, {}).get("nl", b) for b in
                                         dict.fromkeys(band.label for bands in s.bands.values() for band in bands)}
                        if type_ == "category" else {}})
    return out


def _entry(data: dict, source: Path, interventions: dict[str, str]) -> Entry:
    try:
        if data["source"] not in SOURCES:
            raise CatalogueError(f"{source.name}: source must be one of {SOURCES}")
        if data.get("sensitivity", "restricted") not in SENSITIVITY:
            raise CatalogueError(f"{source.name}: sensitivity must be one of {SENSITIVITY}")
        variables = []
        for v in data["variables"]:
            labels = dict(v.get("value_labels", {}))
            if v.get("value_labels_from") == "interventions":
                labels = dict(interventions)
            variables.append(Variable(v["name"], v.get("type", "string"), dict(v["label"]), labels,
                                      bool(v.get("identifier", False))))
        names = [v.name for v in variables]
        if len(set(names)) != len(names):
            raise CatalogueError(f"{source.name}: a variable is listed twice")
        return Entry(id=data["id"], title=dict(data["title"]), description=dict(data.get("description", {})),
                     source=data["source"], themes=tuple(data.get("themes", ())),
                     sensitivity=data.get("sensitivity", "restricted"), variables=tuple(variables),
                     instrument=data.get("instrument"))
    except KeyError as exc:
        raise CatalogueError(f"{source.name}: missing field {exc.args[0]!r}") from None


def load_interventions(catalog_dir: Path) -> list[dict]:
    """The intervention types of catalog/interventions.yaml: code, name (nl/en), aliases, ..."""
    return yaml.safe_load((Path(catalog_dir) / "interventions.yaml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class AgeGroup:
    code: str
    min: int  # whole years of age at the start of care, inclusive
    max: int  # inclusive
    name: dict[str, str]


def load_age_groups(catalog_dir: Path) -> list[AgeGroup]:
    """The age groups of catalog/age_groups.yaml: for Vraagbank tags, feasibility counts and dashboards."""
    rows = yaml.safe_load((Path(catalog_dir) / "age_groups.yaml").read_text(encoding="utf-8"))
    return [AgeGroup(str(r["code"]), int(r["min"]), int(r["max"]), dict(r["name"])) for r in rows]


def age_group_of(ages: pd.Series, groups: list[AgeGroup]) -> pd.Series:
    """The age group code of every age (a string Series; <NA> for a missing age or one in no group)."""
    values = pd.to_numeric(ages, errors="coerce")
    out = pd.Series(pd.NA, index=ages.index, dtype="string")
    for group in groups:
        out[(values >= group.min) & (values <= group.max)] = group.code
    return out


def load_entries(catalog_dir: Path) -> dict[str, Entry]:
    """Every catalogue entry, `for_each: instrument` templates expanded, keyed by id."""
    catalog_dir = Path(catalog_dir)
    instruments = load_instruments(catalog_dir)
    interventions = {row["code"]: row["name"]["nl"] for row in load_interventions(catalog_dir)}
    entries: dict[str, Entry] = {}
    for path in sorted((catalog_dir / "entries").glob("*.y*ml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if data.get("for_each") == "instrument":
            expanded = []
            for code, inst in sorted(instruments.items()):
                if not set(data.get("only_if_moments", ())) <= set(inst.moments):
                    continue
                fields = {"instrument": code, "name_nl": inst.name.get("nl", code), "name_en": inst.name.get("en", code)}
                one = _format({k: v for k, v in data.items() if k not in ("for_each", "scale_variables", "only_if_moments")},
                              fields)
                one["instrument"] = code
                one["variables"] = list(one["variables"]) + _scale_variables(inst, data.get("scale_variables", []))
                expanded.append(one)
        else:
            expanded = [data]
        for one in expanded:
            entry = _entry(one, path, interventions)
            if entry.id in entries:
                raise CatalogueError(f"{path.name}: entry id {entry.id!r} defined twice")
            entries[entry.id] = entry
    return entries


# --- building an entry from the store ---------------------------------------------------------

def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _parse_json_column(texts: list[str | None], schema: pa.Schema) -> pa.Table:
    """A JSON text column parsed column-wise by Arrow (missing objects give nulls)."""
    import pyarrow.json as pj

    data = "\n".join(t if isinstance(t, str) else "{}" for t in texts).encode()
    return pj.read_json(io.BytesIO(data), parse_options=pj.ParseOptions(explicit_schema=schema)).flatten()


def _trajectory_frame(conn, outcomes: tuple[str, ...] = (), organisation: str | None = None) -> pd.DataFrame:
    """Research-usable trajectories with their clients; `outcomes`: the registered outcomes wanted, as
    columns `outcome_<key>` (the trajectory file's columns of that name, catalog/delivery.yaml).
    With `organisation`: only its trajectories, in pseudonym order."""
    t = store.research_usable("trajectories")
    c = store.research_usable("clients")
    columns = [t.c.pseudonym.label("trajectory"), t.c.client, t.c.organisation, t.c.team, t.c.intervention,
               sa.cast(t.c.start_date, sa.Text).label("start_date"), sa.cast(t.c.end_date, sa.Text).label("end_date"),
               t.c.end_reason, t.c.age_at_start, c.c.gender, t.c.diagnosis, c.c.lvb,
               sa.cast(t.c.outcomes, sa.Text).label("outcomes")]
    stmt = sa.select(*columns).select_from(t.join(c, c.c.pseudonym == t.c.client))
    if organisation is not None:
        stmt = stmt.where(t.c.organisation == organisation).order_by(t.c.pseudonym)
    rows = conn.execute(stmt).all()
    names = [col.name for col in columns]
    frame = pd.DataFrame(rows, columns=names)
    if frame.empty:
        return frame
    for name in ("start_date", "end_date"):
        frame[name] = pd.to_datetime(frame[name], format="%Y-%m-%d").dt.date
    # SQLite gives 1/0, PostgreSQL True/False; missing stays None (not NaN: no float column when all are)
    frame["lvb"] = pd.Series([None if v is None else bool(v) for v in frame["lvb"]], index=frame.index, dtype=object)
    texts = frame.pop("outcomes").tolist()
    if outcomes:
        parsed = _parse_json_column(texts, pa.schema([pa.field(k, pa.bool_()) for k in outcomes]))
        for key in outcomes:
            frame[f"{OUTCOME_PREFIX}{key}"] = parsed.column(key).to_pandas()
    return frame


def _measurement_frame(conn, instrument: str, organisation: str | None = None) -> pd.DataFrame:
    m = store.research_usable("measurements")
    stmt = sa.select(m.c.pseudonym.label("measurement"), m.c.trajectory, m.c.client, m.c.organisation, m.c.informant,
                     m.c.moment, m.c.date, m.c.scores).where(m.c.instrument == instrument)
    if organisation is not None:
        stmt = stmt.where(m.c.organisation == organisation).order_by(m.c.pseudonym)
    frame = pd.DataFrame(conn.execute(stmt).mappings().all())
    if not frame.empty:
        frame["scores"] = frame["scores"].map(_json)
    return frame


def _scores_frame(conn, entry: Entry, instruments: dict[str, Instrument], variables: list[str],
                  organisation: str | None = None) -> pd.DataFrame:
    """Scale scores from the stored JSON, parsed column-wise by Arrow's JSON reader."""
    m = store.research_usable("measurements")
    base = {"measurement": m.c.pseudonym, "trajectory": m.c.trajectory, "client": m.c.client,
            "organisation": m.c.organisation, "informant": m.c.informant, "moment": m.c.moment, "date": m.c.date}
    wanted = [v for v in variables if v in base]
    stmt = sa.select(*(base[v].label(v) for v in wanted), sa.cast(m.c.scores, sa.Text).label("scores")) \
        .where(m.c.instrument == entry.instrument)
    if organisation is not None:
        stmt = stmt.where(m.c.organisation == organisation).order_by(m.c.pseudonym)
    rows = conn.execute(stmt).all()
    frame = pd.DataFrame([r[:-1] for r in rows], columns=wanted)
    score_columns = [v for v in variables if v not in base]
    if score_columns:
        inst = instruments[entry.instrument]
        kinds = pa.struct([("raw", pa.float64()), ("t", pa.float64()), ("band", pa.string())])
        schema = pa.schema([pa.field(sc.code, kinds) for sc in inst.scales])
        parsed = _parse_json_column([r[-1] for r in rows], schema) if rows else None
        for name in score_columns:
            scale, _, kind = name.rpartition("_")
            frame[name] = (parsed.column(f"{scale}.{kind}").to_pandas() if parsed is not None
                           else pd.Series(dtype=object if kind == "band" else float))
    return frame[variables]


def build_frame(engine: sa.Engine, entry: Entry, instruments: dict[str, Instrument],
                variables: list[str] | None = None, organisation: str | None = None,
                windows: tuple[int, int] | None = None) -> pd.DataFrame:
    """The entry's research-usable rows (store pseudonyms, not yet per project), with `variables`
    (default: all of them) in dictionary order; pairs within `windows` (start, end days; default: the
    settings').

    With `organisation`: only that organisation's rows, in a fixed order (by store pseudonym). Every
    source works per organisation: a row is one trajectory or one administration, and pairing works
    per trajectory, all of whose measurements belong to its organisation."""
    variables = [v for v in entry.variable_names if variables is None or v in variables]
    with engine.connect() as conn:
        if entry.source == "trajectories":
            frame = _trajectory_frame(conn, tuple(v[len(OUTCOME_PREFIX):] for v in variables
                                                  if v.startswith(OUTCOME_PREFIX)), organisation)
        elif entry.source == "measurements":
            return _scores_frame(conn, entry, instruments, variables, organisation)
        else:
            inst = instruments[entry.instrument]
            trajectories = _trajectory_frame(conn, organisation=organisation)
            measurements = _measurement_frame(conn, entry.instrument, organisation)
            if trajectories.empty or measurements.empty:
                frame = pd.DataFrame()
            else:
                found = pairs(measurements, trajectories.rename(columns={"trajectory": "pseudonym"}), inst,
                              *(windows or (None, None)))
                frame = found.merge(trajectories[["trajectory", "client", "organisation", "intervention",
                                                  "age_at_start", "gender"]], on="trajectory")
    for v in variables:
        if v not in frame.columns:
            frame[v] = pd.Series(dtype=object)
    return frame[variables].reset_index(drop=True)


def entry_counts(engine: sa.Engine, entry: Entry, instruments: dict[str, Instrument]) -> dict:
    """Live counts for an entry: rows, distinct clients, organisations, first and last date.

    Exact counts for the steward; anything published goes through `ldj.disclosure` first.
    """
    frame = build_frame(engine, entry, instruments, ["client", "organisation", "date", "start_date"])
    dates = [c for c in ("date", "start_date") if c in frame.columns]
    when = pd.to_datetime(frame[dates[0]]) if dates and len(frame) else pd.Series(dtype="datetime64[ns]")
    return {"rows": len(frame),
            "clients": int(frame["client"].nunique()) if "client" in frame.columns else 0,
            "organisations": int(frame["organisation"].nunique()) if "organisation" in frame.columns else 0,
            "first": None if when.empty or when.isna().all() else when.min().date().isoformat(),
            "last": None if when.empty or when.isna().all() else when.max().date().isoformat()}


# --- the master Intake catalogue --------------------------------------------------------------

# Snapshots are assembled from per-organisation parts (`ldj.parts`): `<data_dir>/snapshot-parts/<key>/
# <entry>.parquet` holds one organisation's rows of an entry, under a key of its loaded import batches
# and the catalogue's definitions. A new data version reads the store only for organisations whose key
# changed (a delivery, a corrected re-delivery, an objection) and copies the others' parts: each
# version's `<entry>.parquet` is still one file, organisations in code order, rows in pseudonym order.

SNAPSHOT_FORMAT = 1  # raise when build_frame's output changes, so every part is built again


def _definitions_digest(settings) -> str:
    """What the snapshots depend on besides the store: entry, instrument, intervention and delivery
    definitions, and the pairing windows."""
    catalog = Path(settings.catalog_dir)
    files = [*sorted((catalog / "entries").glob("*.y*ml")), *sorted((catalog / "instruments").glob("*.y*ml")),
             catalog / "interventions.yaml", catalog / "delivery.yaml"]
    return parts.definitions_digest([SNAPSHOT_FORMAT, settings.outcome_start_window_days,
                                     settings.outcome_end_window_days], [f for f in files if f.is_file()])


def snapshot_keys(engine: sa.Engine, settings) -> dict[str, str]:
    """Per organisation with loaded data, the key of its snapshot parts (`paths.snapshot_part_folder`)."""
    return parts.keys(engine, _definitions_digest(settings))


def _snapshot_part(engine: sa.Engine, settings, entry: Entry, instruments: dict[str, Instrument],
                   organisation: str, key: str, rebuild: bool) -> Path:
    """One organisation's rows of the entry, read from the store only when its part is missing (or
    `rebuild`)."""
    path = paths.snapshot_part_file(settings.data_dir, key, entry.id)
    if rebuild or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = build_frame(engine, entry, instruments, organisation=organisation,
                            windows=(settings.outcome_start_window_days, settings.outcome_end_window_days))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        pq.write_table(table.replace_schema_metadata(None), tmp)
        tmp.replace(path)
    return path


def _assemble(entry: Entry, part_files: list[Path], path: Path) -> None:
    """The entry's snapshot file from its parts (Arrow tables, one at a time): columns typed as one
    frame of all rows would be (a column without values in one part takes the others' type, integers
    with a missing value in another part become floats; a part without rows adds nothing)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    if not part_files:
        empty = pd.DataFrame({v: pd.Series(dtype=object) for v in entry.variable_names})
        pq.write_table(pa.Table.from_pandas(empty, preserve_index=False).replace_schema_metadata(None), tmp)
    else:
        found = [(f, pq.read_metadata(f)) for f in part_files]
        filled = [(f, m) for f, m in found if m.num_rows] or found[:1]
        schema = pa.unify_schemas([m.schema.to_arrow_schema() for _, m in filled], promote_options="permissive")
        with pq.ParquetWriter(tmp, schema) as writer:
            for f, _ in filled:
                writer.write_table(pq.read_table(f).cast(schema))
    tmp.replace(path)


def _record_parts(folder: Path, keys: dict[str, str]) -> None:
    """Which parts a version's snapshots were assembled from (retention keeps them while it is kept)."""
    path = folder / "parts.json"
    recorded = set(json.loads(path.read_text())["parts"]) if path.is_file() else set()
    if not set(keys.values()) <= recorded:
        tmp = path.with_name(f".parts.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"parts": sorted(recorded | set(keys.values()))}))
        tmp.replace(path)


def snapshot(engine: sa.Engine, entry: Entry, instruments: dict[str, Instrument], folder: Path,
             rebuild: bool = False, settings=None, keys: dict[str, str] | None = None) -> Path:
    """The entry materialised as Parquet in `folder` (one folder per data version), built once (again
    when `rebuild`, then from the whole store: the reference).

    Store pseudonyms, research-usable rows only: steward use, and the source of project extracts.
    Assembled from per-organisation parts; only organisations without a part for their current key
    (`snapshot_keys`, given as `keys` when known) are read from the store.
    """
    path = folder / f"{entry.id}.parquet"
    if rebuild or not path.exists():
        settings = settings or get_settings()
        keys = snapshot_keys(engine, settings) if keys is None else keys
        folder.mkdir(parents=True, exist_ok=True)
        _record_parts(folder, keys)
        part_files = [_snapshot_part(engine, settings, entry, instruments, organisation, key, rebuild)
                      for organisation, key in sorted(keys.items())]
        _assemble(entry, part_files, path)
    return path


def refresh_snapshots(engine: sa.Engine, settings, full: bool = False) -> Path:
    """Snapshot every entry at the store's current data version (again, from the whole store, when
    `full`); returns the version's folder."""
    folder = paths.snapshot_folder(settings.data_dir, store.data_version(engine)[0])
    instruments = load_instruments(settings.catalog_dir)
    keys = snapshot_keys(engine, settings)
    for entry in load_entries(settings.catalog_dir).values():
        snapshot(engine, entry, instruments, folder, rebuild=full, settings=settings, keys=keys)
    return folder


def write_master_catalogue(engine: sa.Engine, entries: dict[str, Entry], instruments: dict[str, Instrument],
                           folder: Path, settings=None) -> Path:
    """Snapshot every entry under `folder` and write `folder/catalog.yaml` (Intake 2); the parts of
    the snapshots are kept in `settings.data_dir` (default: the platform's settings).

    This is the steward's catalogue over store pseudonyms. Researchers never get it: their
    catalogues (per user) read project extracts through the data service.
    """
    import intake
    from intake.readers.datatypes import Parquet
    from intake.readers.readers import PandasParquet

    cat = intake.entry.Catalog(metadata={"title": "LDJ master catalogue", "description": "Steward use only."})
    for entry in entries.values():
        path = snapshot(engine, entry, instruments, folder, settings=settings)
        reader = PandasParquet(Parquet(url=f"{{CATALOG_DIR}}/{path.name}"),
                               metadata={"title": entry.title, "description": entry.description,
                                         "themes": list(entry.themes), "sensitivity": entry.sensitivity,
                                         "dictionary": entry.dictionary().to_dict(orient="records")})
        cat[entry.id] = reader
    target = folder / "catalog.yaml"
    cat.to_yaml_file(str(target))
    return target


def write_user_catalogue(entries: dict[str, Entry], grants: list[dict], service_url: str, path: Path) -> Path:
    """The Intake catalogue a workspace holds: exactly the user's granted entries (over all their
    active projects), each read through the data service with the user's own hub token.

    `grants`: dicts with project, entry, variables. The token stays a template
    (`{env(JUPYTERHUB_API_TOKEN)}`) resolved at read time: it is never written to the file.
    """
    import intake
    from intake.readers.datatypes import Parquet
    from intake.readers.readers import PandasParquet

    projects_per_entry: dict[str, set[int]] = {}
    for g in grants:
        projects_per_entry.setdefault(g["entry"], set()).add(g["project"])
    cat = intake.entry.Catalog(metadata={"title": "LDJ: mijn gegevens", "description":
                                         "Alleen de door de APO toegekende catalogusitems."})
    for g in sorted(grants, key=lambda g: (g["entry"], g["project"])):
        entry = entries[g["entry"]]
        name = entry.id if len(projects_per_entry[entry.id]) == 1 else f"{entry.id}_p{g['project']}"
        variables = list(g["variables"])
        url = (f"{service_url.rstrip('/')}/api/projects/{g['project']}/entries/{entry.id}.parquet"
               f"?variables={','.join(variables)}")
        dictionary = entry.dictionary()
        cat[name] = PandasParquet(
            Parquet(url=url, storage_options={"Authorization": "token {env(JUPYTERHUB_API_TOKEN)}"}),
            metadata={"title": entry.title, "description": entry.description, "project": g["project"],
                      "variables": variables,
                      "dictionary": dictionary[dictionary["variable"].isin(variables)].to_dict(orient="records")})
    path.parent.mkdir(parents=True, exist_ok=True)
    cat.to_yaml_file(str(path))
    return path
