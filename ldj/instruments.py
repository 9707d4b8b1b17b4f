"""Instrument definitions as data: load `catalog/instruments/*.yaml`, score items, assign bands.

An instrument is either delivered at *item* level (we score it) or at *scale* level (BergOp
delivers raw and T scores; we only assign the bands). Adding an instrument means adding a YAML
file here and its expectation suite; no code changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

INFORMANTS = ("parent", "youth", "teacher", "professional")
MOMENTS = ("start", "during", "end", "follow_up")
SCORING_METHODS = ("delivered", "prorated_sum", "sum", "mean", "sum_of")


class InstrumentError(ValueError):
    """A definition file that does not follow the schema in docs/instruments.md."""


@dataclass(frozen=True)
class Band:
    lower: float  # inclusive lower bound on the band basis (raw or T)
    label: str


@dataclass(frozen=True)
class Scale:
    code: str
    label: dict[str, str]
    method: str = "delivered"
    items: tuple[int, ...] = ()
    reverse: tuple[int, ...] = ()
    min_answered: int | None = None
    sum_of: tuple[str, ...] = ()
    raw_range: tuple[float, float] | None = None
    t_range: tuple[float, float] | None = None
    higher_is_better: bool = False
    reliability: float | None = None
    band_basis: str | None = None  # "raw" or "t"
    bands: dict[str, tuple[Band, ...]] = field(default_factory=dict)  # informant or "default"
    clinical_bands: tuple[str, ...] = ()

    @property
    def raw_column(self) -> str:
        return f"{self.code}_raw"

    @property
    def t_column(self) -> str:
        return f"{self.code}_t"

    def bands_for(self, informant: str) -> tuple[Band, ...]:
        return self.bands.get(informant) or self.bands.get("default", ())

    def band(self, values: pd.Series, informants: pd.Series | str) -> pd.Series:
        """Band label per value (None where the value is missing or no bands apply)."""
        out = pd.Series([None] * len(values), index=values.index, dtype=object)
        if isinstance(informants, str):
            informants = pd.Series(informants, index=values.index)
        for informant in informants.dropna().unique():
            bands = self.bands_for(informant)
            if not bands:
                continue
            mask = (informants == informant) & values.notna()
            if not mask.any():
                continue
            lowers = np.array([b.lower for b in bands], dtype=float)
            labels = np.array([b.label for b in bands], dtype=object)
            idx = np.searchsorted(lowers, values[mask].to_numpy(dtype=float), side="right") - 1
            labels_for_rows = np.where(idx >= 0, labels[np.clip(idx, 0, None)], None)
            out.loc[mask] = labels_for_rows
        return out

    def is_clinical(self, band: str | None) -> bool:
        return band in self.clinical_bands


@dataclass(frozen=True)
class Instrument:
    code: str
    name: dict[str, str]
    level: str  # "item" or "scale"
    informants: tuple[str, ...]
    scales: tuple[Scale, ...]
    moments: tuple[str, ...] = MOMENTS  # when it is taken; satisfaction only at the end
    item_count: int = 0
    item_min: int | None = None
    item_max: int | None = None
    free_text: tuple[str, ...] = ()
    age_range: tuple[int, int] | None = None
    band_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other spellings in the `instrument` column, e.g. "CBCL/6-18"
    description: dict[str, str] = field(default_factory=dict)
    extra_labels: dict[str, str] = field(default_factory=dict)  # export label -> column
    source: Path | None = None

    def scale(self, code: str) -> Scale:
        for s in self.scales:
            if s.code == code:
                return s
        raise KeyError(f"{self.code} has no scale {code!r}")

    @property
    def item_columns(self) -> list[str]:
        return [f"item_{i}" for i in range(1, self.item_count + 1)]

    @property
    def delivered_scales(self) -> list[Scale]:
        return [s for s in self.scales if s.method == "delivered"]

    def data_columns(self) -> list[str]:
        """Canonical instrument-specific columns of a delivery file."""
        cols: list[str] = []
        if self.level == "item":
            cols += self.item_columns
        for s in self.delivered_scales:
            cols.append(s.raw_column)
            if s.t_range is not None:
                cols.append(s.t_column)
        cols += list(self.free_text)
        return cols

    def column_labels(self) -> dict[str, str]:
        """Dutch export labels -> canonical column names for this instrument's own columns."""
        labels: dict[str, str] = {k.lower(): v for k, v in self.extra_labels.items()}
        for i in range(1, self.item_count + 1):
            labels[f"vraag {i}"] = f"item_{i}"
            labels[f"item {i}"] = f"item_{i}"
        for s in self.delivered_scales:
            nl = s.label.get("nl", s.code).lower()
            labels[f"{nl} ruw"] = s.raw_column
            if s.t_range is None:
                labels.setdefault(nl, s.raw_column)  # a scale without T: the bare label is the score
            else:
                labels[f"{nl} t"] = s.t_column
                labels[f"{nl} t-score"] = s.t_column
        return labels

    def score_items(self, items: pd.DataFrame) -> pd.DataFrame:
        """Scale raw scores from item answers (numeric, NaN = not answered).

        Returns one `<scale>_raw` column per computed scale. Vectorised: 1M rows in well under
        a second.
        """
        out = pd.DataFrame(index=items.index)
        for s in self.scales:
            if s.method == "delivered":
                continue
            if s.method == "sum_of":
                parts = out[[self.scale(c).raw_column for c in s.sum_of]]
                out[s.raw_column] = parts.sum(axis=1, min_count=len(s.sum_of)).where(
                    parts.notna().all(axis=1)
                )
                continue
            cols = [f"item_{i}" for i in s.items]
            answers = items[cols].astype(float).copy()
            for i in s.reverse:
                answers[f"item_{i}"] = (self.item_min + self.item_max) - answers[f"item_{i}"]
            answered = answers.notna().sum(axis=1)
            total = answers.sum(axis=1, min_count=1)
            need = s.min_answered if s.min_answered is not None else len(cols)
            ok = answered >= need
            if s.method == "prorated_sum":
                # mean of answered items x number of items, rounded half up, in exact
                # integer arithmetic: floor((2*sum*n + answered) / (2*answered)).
                n = len(cols)
                num = 2 * total * n + answered
                den = (2 * answered).where(answered > 0)
                value = np.floor(num / den)
            elif s.method == "sum":
                value = total
            elif s.method == "mean":
                value = total / answered.where(answered > 0)
            else:  # pragma: no cover - guarded by the loader
                raise InstrumentError(s.method)
            out[s.raw_column] = value.where(ok)
        return out


def _pair(value, what: str, source: Path) -> tuple[float, float] | None:
    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise InstrumentError(f"{source.name}: {what} must be [min, max]")
    return (float(value[0]), float(value[1]))


def _bands(spec, source: Path, scale: str) -> dict[str, tuple[Band, ...]]:
    if not spec:
        return {}
    if isinstance(spec, list):
        spec = {"default": spec}
    out = {}
    for informant, rows in spec.items():
        if informant != "default" and informant not in INFORMANTS:
            raise InstrumentError(f"{source.name}: bands of {scale} for unknown informant {informant!r}")
        bands = tuple(Band(float(r["from"]), str(r["label"])) for r in rows)
        lowers = [b.lower for b in bands]
        if any(a >= b for a, b in zip(lowers, lowers[1:])):
            raise InstrumentError(f"{source.name}: bands of {scale} must ascend")
        out[informant] = bands
    return out


def parse_instrument(data: dict, source: Path) -> Instrument:
    if not isinstance(data, dict):
        raise InstrumentError(f"{source.name}: not a mapping of fields")
    try:
        code = str(data["code"])
        level = data.get("level", "scale")
        if level not in ("item", "scale"):
            raise InstrumentError(f"{source.name}: level must be 'item' or 'scale'")
        items = data.get("items") or {}
        scales = []
        for s in data["scales"]:
            method = s.get("method", "delivered")
            if method not in SCORING_METHODS:
                raise InstrumentError(f"{source.name}: unknown method {method!r} for {s['code']}")
            scales.append(
                Scale(
                    code=str(s["code"]),
                    label=dict(s.get("label", {"nl": s["code"], "en": s["code"]})),
                    method=method,
                    items=tuple(int(i) for i in s.get("items", ())),
                    reverse=tuple(int(i) for i in s.get("reverse", ())),
                    min_answered=s.get("min_answered"),
                    sum_of=tuple(s.get("sum_of", ())),
                    raw_range=_pair(s.get("raw_range"), f"raw_range of {s['code']}", source),
                    t_range=_pair(s.get("t_range"), f"t_range of {s['code']}", source),
                    higher_is_better=bool(s.get("higher_is_better", False)),
                    reliability=s.get("reliability"),
                    band_basis=s.get("band_basis"),
                    bands=_bands(s.get("bands"), source, s["code"]),
                    clinical_bands=tuple(s.get("clinical_bands", ())),
                )
            )
        informants = tuple(data["informants"])
        if set(data.get("moments", MOMENTS)) - set(MOMENTS):
            raise InstrumentError(f"{source.name}: moments must be among {list(MOMENTS)}")
        unknown = set(informants) - set(INFORMANTS)
        if unknown:
            raise InstrumentError(f"{source.name}: unknown informants {sorted(unknown)}")
        inst = Instrument(
            code=code,
            name=dict(data["name"]),
            level=level,
            informants=informants,
            moments=tuple(data.get("moments", MOMENTS)),
            scales=tuple(scales),
            item_count=int(items.get("count", 0)),
            item_min=items.get("min"),
            item_max=items.get("max"),
            free_text=tuple(data.get("free_text", ())),
            age_range=tuple(data["age_range"]) if data.get("age_range") else None,
            band_labels=dict(data.get("band_labels", {})),
            aliases=tuple(str(a) for a in data.get("aliases", ())),
            description=dict(data.get("description", {})),
            extra_labels=dict(data.get("column_labels", {})),
            source=source,
        )
    except KeyError as exc:
        raise InstrumentError(f"{source.name}: missing field {exc.args[0]!r}") from None
    codes = {s.code for s in inst.scales}
    earlier: set[str] = set()
    for s in inst.scales:
        missing = set(s.sum_of) - codes
        if missing:
            raise InstrumentError(f"{source.name}: {s.code} sums unknown scales {sorted(missing)}")
        if s.code in earlier:
            raise InstrumentError(f"{source.name}: scale {s.code!r} defined twice")
        if set(s.sum_of) - earlier:  # score_items computes the parts first
            raise InstrumentError(f"{source.name}: {s.code} must come after the scales it sums")
        earlier.add(s.code)
        if set(s.reverse) - set(s.items):
            raise InstrumentError(f"{source.name}: {s.code} reverses items it does not contain")
        if s.reverse and (inst.item_min is None or inst.item_max is None):
            raise InstrumentError(f"{source.name}: {s.code} reverses items but items.min/max are missing")
        if s.method in ("prorated_sum", "sum", "mean") and inst.level != "item":
            raise InstrumentError(f"{source.name}: {s.code} is computed from items but level is scale")
        bad = [i for i in s.items if not 1 <= i <= inst.item_count]
        if bad:
            raise InstrumentError(f"{source.name}: {s.code} names items outside 1..{inst.item_count}")
    return inst


def load_instruments(catalog_dir: Path) -> dict[str, Instrument]:
    """All instrument definitions under `catalog_dir/instruments`, keyed by code."""
    return dict(_load(Path(catalog_dir).resolve()))


@lru_cache(maxsize=8)
def _load(catalog_dir: Path) -> tuple[tuple[str, Instrument], ...]:
    found: dict[str, Instrument] = {}
    for path in sorted((catalog_dir / "instruments").glob("*.y*ml")):
        inst = parse_instrument(yaml.safe_load(path.read_text(encoding="utf-8")), path)
        if inst.code in found:
            raise InstrumentError(f"{path.name}: instrument code {inst.code!r} defined twice")
        found[inst.code] = inst
    return tuple(found.items())


def resolve_instrument(name: str, instruments: dict[str, Instrument]) -> Instrument | None:
    """Find an instrument by code or alias, case- and punctuation-insensitively."""
    key = _norm(name)
    for inst in instruments.values():
        if key in {_norm(inst.code), *(_norm(a) for a in inst.aliases)}:
            return inst
    return None


def _norm(text: str) -> str:
    return "".join(ch for ch in str(text).lower() if ch.isalnum())
