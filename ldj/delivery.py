"""The delivery format: read BergOp-like exports (CSV as Dutch Excel writes it, XLSX, SPSS .sav),
map their column labels to canonical names, and coerce types.

The format itself is data (`catalog/delivery.yaml`); this module only interprets it. Whole-file
problems raise `DeliveryError` with the file and a plain-language reason; row problems are
returned as `RowError`s for the quarantine.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .i18n import t
from .instruments import Instrument, load_instruments, resolve_instrument

TRAJECTORIES = "trajectories"


class DeliveryError(Exception):
    """A whole file cannot be used. `str()` is a message for the data steward."""

    def __init__(self, path: Path | str, message: str):
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{self.path.name}: {message}")

    def __reduce__(self):
        return (DeliveryError, (self.path, self.reason))


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    type: str = "string"
    required: bool = False
    identifier: str | None = None
    values: tuple[str, ...] = ()
    value_labels: str | None = None
    values_from: str | None = None
    min: float | str | None = None
    max: float | str | None = None
    after: str | None = None
    regex: str | None = None
    example: str = ""
    doc: str = ""


@dataclass(frozen=True)
class DeliverySpec:
    common: tuple[Column, ...]
    trajectories: tuple[Column, ...]
    measurements: tuple[Column, ...]
    value_labels: dict[str, dict[str, object]]
    interventions: dict[str, str]  # normalised alias/code -> code
    instruments: dict[str, Instrument]

    def columns(self, kind: str) -> list[Column]:
        """All shared columns of a file kind (`trajectories` or an instrument code)."""
        if kind == TRAJECTORIES:
            return [*self.common, *self.trajectories]
        return [*self.common, *self.measurements, *self.instrument_columns(self.instruments[kind])]

    def instrument_columns(self, inst: Instrument) -> list[Column]:
        cols = []
        if inst.level == "item":
            for c in inst.item_columns:
                cols.append(Column(c, c.replace("item_", "Vraag "), "number", min=inst.item_min, max=inst.item_max))
        for s in inst.delivered_scales:
            lo, hi = s.raw_range or (None, None)
            cols.append(Column(s.raw_column, f"{s.label.get('nl', s.code)} ruw", "number", required=True, min=lo, max=hi))
            if s.t_range is not None:
                cols.append(Column(s.t_column, f"{s.label.get('nl', s.code)} T", "number", required=True,
                                   min=s.t_range[0], max=s.t_range[1]))
        for name in inst.free_text:
            cols.append(Column(name, name, "text"))
        return cols


def _column(d: dict) -> Column:
    d = dict(d)
    if "values" in d:
        d["values"] = tuple(d["values"])
    return Column(**d)


@lru_cache(maxsize=8)
def _load_spec(catalog_dir: Path) -> DeliverySpec:
    raw = yaml.safe_load((catalog_dir / "delivery.yaml").read_text(encoding="utf-8"))
    interventions = {}
    for row in yaml.safe_load((catalog_dir / "interventions.yaml").read_text(encoding="utf-8")):
        for alias in (row["code"], *row.get("aliases", ())):
            interventions[_norm(alias)] = row["code"]
    value_labels = {k: {_norm(label): v for label, v in m.items()} for k, m in raw["value_labels"].items()}
    return DeliverySpec(
        common=tuple(_column(c) for c in raw["common"]),
        trajectories=tuple(_column(c) for c in raw["trajectories"]),
        measurements=tuple(_column(c) for c in raw["measurements"]),
        value_labels=value_labels,
        interventions=interventions,
        instruments=load_instruments(catalog_dir),
    )


def load_spec(catalog_dir: Path) -> DeliverySpec:
    return _load_spec(Path(catalog_dir).resolve())


def _norm(text) -> str:
    """Normalise a header or label: lower case, no accents, single spaces."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[\s_]+", " ", text.strip().lower())


# --- reading ---------------------------------------------------------------------------------

@dataclass
class OpenDelivery:
    """A delivery file opened for reading: kind, instrument, mapped columns and a chunk iterator."""

    path: Path
    kind: str
    instrument: Instrument | None
    organisation: str
    period: str
    encoding: str | None
    columns: dict[str, str]  # original header -> canonical name
    ignored_columns: list[str]
    chunks: Iterator[pd.DataFrame] | None = field(repr=False)


def detect_encoding(path: Path) -> str:
    """utf-8-sig if the file decodes as UTF-8, else cp1252; raises on anything else."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise DeliveryError(path, t("err_utf16"))
        fh.seek(0)
        for encoding in ("utf-8-sig", "cp1252"):
            decoder = codecs.getincrementaldecoder(encoding)()
            fh.seek(0)
            try:
                while block := fh.read(1 << 20):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
                return encoding
            except UnicodeDecodeError:
                continue
    raise DeliveryError(path, t("err_encoding"))


def _sniff_separator(header: str) -> str:
    counts = {sep: header.count(sep) for sep in (";", ",", "\t")}
    return max(counts, key=counts.get) if max(counts.values()) else ";"


def _file_type(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head:
        raise DeliveryError(path, t("err_empty"))
    suffix = path.suffix.lower()
    if head.startswith(b"PK\x03\x04"):
        if suffix not in (".xlsx", ".xlsm"):
            raise DeliveryError(path, t("err_zip_not_xlsx"))
        return "xlsx"
    if head.startswith(b"$FL2") or head.startswith(b"$FL3"):
        return "sav"
    if suffix in (".xlsx", ".xlsm", ".xls"):
        raise DeliveryError(path, t("err_not_spreadsheet"))
    if suffix == ".sav":
        raise DeliveryError(path, t("err_not_sav"))
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # before the NUL check: UTF-16 is full of NULs
        raise DeliveryError(path, t("err_utf16"))
    with open(path, "rb") as fh:
        if b"\x00" in fh.read(65536):
            raise DeliveryError(path, t("err_binary"))
    return "csv"


def _read_frames(path: Path, chunk_rows: int) -> tuple[str | None, list[str], Iterator[pd.DataFrame]]:
    kind = _file_type(path)
    if kind == "csv":
        encoding = detect_encoding(path)
        with open(path, encoding=encoding, newline="") as fh:
            header = fh.readline()
        if not header.strip():
            raise DeliveryError(path, t("err_empty"))
        sep = _sniff_separator(header)
        try:
            reader = pd.read_csv(
                path, sep=sep, encoding=encoding, dtype=str, keep_default_na=False, na_values=[""],
                chunksize=chunk_rows, skipinitialspace=True, on_bad_lines="error",
            )
            first = next(reader, None)
        except pd.errors.EmptyDataError:
            raise DeliveryError(path, t("err_empty")) from None
        except pd.errors.ParserError as exc:
            raise DeliveryError(path, t("err_csv_parse", detail=str(exc).strip())) from None
        if first is None or first.empty:
            raise DeliveryError(path, t("err_no_rows"))
        headers = list(first.columns)

        def chunks() -> Iterator[pd.DataFrame]:
            yield first
            try:
                yield from reader
            except pd.errors.ParserError as exc:
                raise DeliveryError(path, t("err_csv_parse", detail=str(exc).strip())) from None

        return encoding, headers, chunks()
    if kind == "xlsx":
        try:
            frame = pd.read_excel(path, dtype=str, engine="openpyxl", keep_default_na=False, na_values=[""])
        except Exception as exc:  # openpyxl raises many types for broken files
            raise DeliveryError(path, t("err_not_spreadsheet_detail", detail=type(exc).__name__)) from None
    else:
        import pyreadstat

        try:
            frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=True)
        except Exception as exc:
            raise DeliveryError(path, t("err_not_sav_detail", detail=str(exc))) from None
        # SPSS exports carry short variable names; their labels are the Dutch export labels.
        labels = meta.column_names_to_labels
        frame.columns = [labels.get(c) or c for c in frame.columns]
        frame = frame.map(_sav_cell).astype(object)
    if frame.empty:
        raise DeliveryError(path, t("err_no_rows"))
    frame.columns = [str(c) for c in frame.columns]
    frames = (frame.iloc[i:i + chunk_rows] for i in range(0, len(frame), chunk_rows))
    return None, list(frame.columns), frames


def _sav_cell(value):
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):  # NaT: empty SPSS date
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    return str(value)


def open_delivery(path: Path | str, spec: DeliverySpec, chunk_rows: int = 100_000) -> OpenDelivery:
    """Open a delivery file: detect its kind and instrument, map its columns, check required ones."""
    path = Path(path)
    if not path.is_file():
        raise DeliveryError(path, t("err_missing_file"))
    encoding, headers, frames = _read_frames(path, chunk_rows)

    label_map: dict[str, str] = {}
    for col in [*spec.common, *spec.trajectories, *spec.measurements]:
        label_map[_norm(col.name)] = col.name
        label_map[_norm(col.label)] = col.name
    mapping = {h: label_map[_norm(h)] for h in headers if _norm(h) in label_map}

    first = next(frames)
    instrument = None
    if "instrument" in mapping.values():
        source = next(h for h, c in mapping.items() if c == "instrument")
        names = first[source].dropna().astype(str).str.strip().unique()
        names = [n for n in names if n]
        if len(names) == 0:
            raise DeliveryError(path, t("err_no_instrument"))
        if len(names) > 1:
            raise DeliveryError(path, t("err_many_instruments", names=", ".join(sorted(names)[:5])))
        instrument = resolve_instrument(names[0], spec.instruments)
        if instrument is None:
            raise DeliveryError(path, t("err_unknown_instrument", name=names[0],
                                        known=", ".join(sorted(spec.instruments))))
        kind = instrument.code
        inst_map = {_norm(k): v for k, v in instrument.column_labels().items()}
        inst_map.update({_norm(c): c for c in instrument.data_columns()})
        for h in headers:
            if h not in mapping and _norm(h) in inst_map:
                mapping[h] = inst_map[_norm(h)]
    elif {"intervention", "start_date"} & set(mapping.values()):
        kind = TRAJECTORIES
    else:
        raise DeliveryError(path, t("err_unknown_kind"))

    canonical = set(mapping.values())
    if len(canonical) != len(mapping):
        dupes = sorted({c for c in mapping.values() if list(mapping.values()).count(c) > 1})
        raise DeliveryError(path, t("err_duplicate_columns", columns=", ".join(dupes)))
    columns = spec.columns(kind)
    missing = [c.label for c in columns if c.required and c.name not in canonical]
    if missing:
        raise DeliveryError(path, t("err_missing_columns", columns=", ".join(missing)))
    ignored = [h for h in headers if h not in mapping]

    organisation = _single_value(path, first, mapping, "organisation")
    period = _single_value(path, first, mapping, "period")

    def renamed() -> Iterator[pd.DataFrame]:
        for frame in _chain(first, frames):
            yield frame[list(mapping)].rename(columns=mapping)

    return OpenDelivery(path, kind, instrument, organisation, period, encoding, mapping, ignored, renamed())


def _chain(first: pd.DataFrame, rest: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    yield first
    yield from rest


def _single_value(path: Path, frame: pd.DataFrame, mapping: dict[str, str], name: str) -> str:
    source = next(h for h, c in mapping.items() if c == name)
    values = [v for v in frame[source].dropna().astype(str).str.strip().unique() if v]
    if len(values) != 1:
        raise DeliveryError(path, t(f"err_{name}_not_single", values=", ".join(sorted(values)[:5]) or "-"))
    return values[0]


# --- coercion --------------------------------------------------------------------------------

@dataclass
class RowError:
    index: object  # the frame's index label
    rule: str
    column: str | None
    value: object
    message: str


_DATE_FORMATS = ("%d-%m-%Y", "%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d")


def parse_dates(values: pd.Series) -> pd.Series:
    """Parse dates in the formats exports use; unparseable values become NaT."""
    text = values
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    todo = text.notna()
    for fmt in _DATE_FORMATS:
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        ok = parsed.notna()
        out.loc[parsed.index[ok]] = parsed[ok]
        todo.loc[parsed.index[ok]] = False
    return out


def _text(series: pd.Series) -> pd.Series:
    """Stripped strings (pandas' Arrow-backed str dtype), missing where empty."""
    if series.dtype == object:
        series = series.map(lambda v: v if isinstance(v, str) else None).astype("str")
    stripped = series.str.strip()
    return stripped.where(stripped != "")


def _relabel(raw: pd.Series, labels: dict) -> pd.Series:
    """Map export spellings to canonical values, looking up each distinct value once."""
    lookup = {v: labels.get(_norm(v), v) for v in raw.dropna().unique()}
    mapped = raw.astype(object).map(lookup)
    return mapped.where(raw.notna(), None) if raw.isna().any() else mapped


def coerce(frame: pd.DataFrame, columns: list[Column], spec: DeliverySpec) -> tuple[pd.DataFrame, list[RowError]]:
    """Typed copy of a renamed chunk, plus one `RowError` per value that is not of its type."""
    out: dict[str, pd.Series] = {}
    errors: list[RowError] = []
    no_errors = np.zeros(len(frame), dtype=bool)
    for col in columns:
        if col.name not in frame.columns:  # an optional column the file does not have
            empty = {"date": pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]"),
                     "integer": pd.Series(np.nan, index=frame.index), "number": pd.Series(np.nan, index=frame.index)}
            out[col.name] = empty.get(col.type, pd.Series(None, index=frame.index, dtype=object))
            continue
        raw = _text(frame[col.name])
        present = raw.notna().to_numpy()
        bad = no_errors
        if col.type == "date":
            value = parse_dates(raw)
            bad = present & value.isna().to_numpy()
            rule, msg = "type_date", t("row_type_date", label=col.label)
        elif col.type in ("integer", "number"):
            value = pd.to_numeric(raw.str.replace(",", ".", regex=False), errors="coerce").astype(float)
            bad = present & value.isna().to_numpy()
            if col.type == "integer":
                bad = bad | (present & (value.fillna(0) % 1 != 0).to_numpy())
            rule, msg = "type_number", t("row_type_number", label=col.label)
        elif col.type == "boolean":
            value = _relabel(raw, spec.value_labels["boolean"])
            bad = present & ~value.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
            rule, msg = "type_boolean", t("row_type_boolean", label=col.label)
        elif col.type == "list":
            value = raw.map(lambda v: [p.strip() for p in v.split("|") if p.strip()] if isinstance(v, str) else None)
        elif col.value_labels:
            value = _relabel(raw, spec.value_labels[col.value_labels])
        elif col.values_from == "interventions":
            value = _relabel(raw, spec.interventions)
        else:
            value = raw
        if bad.any():
            for idx in raw.index[bad]:
                errors.append(RowError(idx, f"{rule}:{col.name}", col.name, raw.at[idx], msg))
            value = value.where(~bad) if col.type in ("date", "integer", "number") else value.where(~bad, None)
        out[col.name] = value
    return pd.DataFrame(out, index=frame.index), errors
