"""`ldj ingest`: read, validate, pseudonymise, quarantine and load BergOp deliveries.

One file is one import batch and one database transaction: every valid row lands with the batch,
every failing row lands in the quarantine with its rule, file and row number, or nothing lands at
all. Importing the same file twice changes nothing; a new file for the same organisation, kind
and period replaces the earlier batch's rows.

The work is split in two: *transform* (read, type, validate, score, pseudonymise, screen; no
database) and *load* (one transaction per file). With `ingest_workers = 1` the transform runs in
a forked helper process one step ahead of the loader, so both cores work.
"""

from __future__ import annotations

import bisect
import ctypes
import hashlib
import multiprocessing
import os
import queue
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from . import store
from .delivery import (
    DeliveryError,
    DeliverySpec,
    FileKind,
    Limits,
    OpenDelivery,
    RowError,
    coerce,
    load_spec,
    open_delivery,
)
from .expectations import SuiteValidator, load_suite
from .i18n import t
from .instruments import Instrument
from .pseudonyms import Pseudonymiser, age_at, load_or_create_key, name_screen, screen_series, screen_text
from .settings import Settings, get_settings

PERSONAL_DATES = ("birth_date",)


@dataclass
class IngestReport:
    file: str
    status: str  # loaded | duplicate | rejected
    kind: str | None = None
    organisation: str | None = None
    period: str | None = None
    batch_id: int | None = None
    rows_total: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_replaced: int = 0
    replaced_batches: list[int] = field(default_factory=list)
    rules: dict[str, int] = field(default_factory=dict)
    masked: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    error: str | None = None
    duplicate_of: int | None = None
    duplicate_when: str | None = None

    @property
    def unusable(self) -> bool:
        return self.status == "rejected"

    def to_json(self) -> dict:
        return asdict(self)

    def lines(self, language: str | None = None) -> list[str]:
        name = Path(self.file).name
        if self.status == "rejected":
            return [t("report_rejected", language, file=name, reason=self.error)]
        if self.status == "duplicate":
            return [t("report_duplicate", language, file=name, batch=self.duplicate_of, when=self.duplicate_when)]
        out = [t("report_header", language, file=name, kind=self.kind, organisation=self.organisation, period=self.period),
               t("report_loaded", language, n=self.rows_loaded)]
        if self.rows_quarantined:
            out.append(t("report_quarantined", language, n=self.rows_quarantined))
            out += [t("report_rule", language, rule=r, n=n) for r, n in sorted(self.rules.items())]
        if self.replaced_batches:
            out.append(t("report_replaced", language, batches=", ".join(map(str, self.replaced_batches)),
                         n=self.rows_replaced))
        if self.masked:
            out.append(t("report_masked", language, n=self.masked))
        if self.ignored_columns:
            out.append(t("report_ignored", language, columns=", ".join(self.ignored_columns)))
        return out


@dataclass
class _Chunk:
    raw: pd.DataFrame
    typed: pd.DataFrame | None = None
    type_errors: list[RowError] = field(default_factory=list)
    validation_errors: list[RowError] = field(default_factory=list)


@dataclass
class Prepared:
    """One transformed chunk, ready to load: plain table rows (Arrow) and quarantine records."""

    rows_total: int
    tables: list[tuple[str, str, pa.Table]]  # (table, conflict rule "upsert:key" / "ignore:k1,k2", rows)
    quarantine: pa.Table | None
    rules: Counter
    quarantined: int
    loaded: int
    masked: int


@dataclass
class _Staged:
    """A file that passed the whole-file checks, on its way to the loader."""

    report: IngestReport
    checksum: str
    size: int
    started: datetime
    delivered_by: str | None
    path: Path
    kind: str | None = None
    organisation: str | None = None
    period: str | None = None
    ignored_columns: list[str] = field(default_factory=list)
    chunks: list[_Chunk] | None = None  # typed in memory; None for a large file that streams
    prepared: list[Prepared] | None = None
    error: DeliveryError | None = None

    @property
    def rows(self) -> int:
        return sum(len(c.raw) for c in self.chunks or ())

    @property
    def key(self) -> tuple[str | None, str | None]:
        return (self.organisation, self.period)


def file_checksum(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso_dates(series: pd.Series) -> pd.Series:
    return series.dt.strftime("%Y-%m-%d").astype(object).where(series.notna(), None)


def _json_column(values: Iterable) -> list:
    return [None if v is None else orjson.dumps(v).decode() for v in values]


def _plain(values: pd.Series) -> list:
    """Python values with None for every kind of missing, whole floats as ints."""
    missing = values.isna().to_numpy()
    if pd.api.types.is_float_dtype(values):
        arr = np.where(missing, 0.0, values.to_numpy(dtype=float))
        out = arr.astype(np.int64).tolist() if (np.mod(arr, 1) == 0).all() else arr.tolist()
    else:
        out = values.tolist()
    return [None if m else v for v, m in zip(out, missing.tolist())] if missing.any() else out


def _arrow(columns: dict[str, object]) -> pa.Table:
    """An Arrow table of plain columns (lists or Series), missing values as nulls."""
    return pa.table({name: pa.array(v if isinstance(v, list) else _plain(v), from_pandas=True)
                     for name, v in columns.items()})


class Ingestor:
    """Imports delivery files into the store. One instance can import many files."""

    def __init__(self, settings: Settings | None = None, engine: sa.Engine | None = None,
                 progress: bool | None = None, imported_by: str | None = None):
        self.settings = settings or get_settings()
        self.engine = engine or store.get_engine(self.settings)
        self.spec: DeliverySpec = load_spec(self.settings.catalog_dir)
        self.identifiers = self.spec.identifier_columns()
        self.limits = Limits.from_settings(self.settings)
        self.pseudonymiser = Pseudonymiser(load_or_create_key(self.settings.resolved_key_file))
        if progress is None:
            progress = {"always": True, "never": False}.get(self.settings.progress, sys.stderr.isatty())
        self.progress = progress
        self.imported_by = imported_by
        self._validators: dict[str, SuiteValidator] = {}

    # -- public ------------------------------------------------------------------------------

    def ingest(self, path: Path | str, delivered_by: str | None = None) -> IngestReport:
        return self.ingest_many([path], delivered_by)[0]

    def ingest_many(self, paths: Iterable[Path | str], delivered_by: str | None = None,
                    on_report: Callable[[IngestReport], None] | None = None) -> list[IngestReport]:
        """Import files in order; each file is its own batch and transaction.

        Small files of the same kind are validated together in one Great Expectations run (a
        window of at most `ingest_chunk_rows` rows, one file per organisation and period), since
        a suite run costs about the same for 5,000 rows as for 100,000. Large files stream in
        chunks on their own.
        """
        paths = [Path(p) for p in paths]
        sums: dict[Path, tuple[str, int]] = {}
        known: dict[Path, IngestReport] = {}  # missing files and files imported before: no work on them
        for path in paths:
            report = IngestReport(file=str(path), status="loaded")
            try:
                size = path.stat().st_size
                # A file over the size limit is refused unread (open_delivery says why): no checksum.
                sums[path] = file_checksum(path) if size <= self.limits.max_file_bytes else ("", size)
            except OSError as exc:
                report.status, report.error = "rejected", t("err_missing_file") if not path.exists() else str(exc)
                known[path] = report
                continue
            if sums[path][0] and self._duplicate(report, sums[path][0]) is not None:
                known[path] = report
        items = self._transformed(paths, delivered_by, known, sums)
        if self.settings.ingest_workers > 0 and len(paths) - len(known) > 0 and hasattr(os, "fork"):
            SuiteValidator.load_library()  # once per process, before the fork: not once per helper
            items = _in_helper_process(items)
        items = _unbatched(items)
        reports: list[IngestReport] = []
        for kind, item in items:
            if kind == "report":
                report = item
            else:  # "file": a large one's chunks follow as ("chunk", ...) items up to ("end", ...)
                streamed = _chunks_of(items) if item.prepared is None and item.error is None else None
                report = self._load_staged(item, streamed)
                try:
                    for _ in streamed or ():  # a file that did not load: skip the rest of its chunks
                        pass
                except DeliveryError:
                    pass
            reports.append(report)
            if on_report is not None:
                on_report(report)
        return reports

    # -- transform (no database access: may run in the helper process) -----------------------

    def _transformed(self, paths: list[Path], delivered_by: str | None, known: dict[Path, IngestReport],
                     sums: dict[Path, tuple[str, int]]) -> Iterator[tuple[str, object]]:
        """("report", r) for files known already; ("file", staged) with its prepared chunks for
        small files; for a large file ("file", staged) then its chunks as ("chunk", prepared) and
        ("end", error-or-None). Items come in the order of `paths`; those of small files in lists,
        ("ready", [items]), as they are ready (`_unbatched` takes them apart).

        Small files are read ahead, up to `ingest_chunk_rows` rows in all, and validated per kind
        (`_windows`): a delivery of many organisations' files, which alternate between kinds, costs
        one Great Expectations run and one transform per kind rather than one per file.
        """
        pending: list[tuple[str, object]] = []  # read ahead, in the order of `paths`
        held = 0  # rows of the small files in `pending`

        def flush() -> Iterator[tuple[str, object]]:
            nonlocal held
            small = [item for kind, item in pending if kind == "file" and item.chunks is not None]
            for window in _windows(small, self.settings.ingest_chunk_rows):
                self._validate_window(window)
                self._transform_window(window)
                # hand on what is ready at the front, so the loader works while the next kind is validated;
                # in one item: the loader takes it at once (the channel to it holds one item)
                ready = []
                while pending and (pending[0][0] != "file" or pending[0][1].chunks is None):
                    ready.append(pending.pop(0))  # let go of each file as soon as it is handed on
                if ready:
                    yield "ready", ready
            if pending:
                yield "ready", pending[:]
                pending.clear()
            held = 0
            if small:
                _release_memory()

        for path in paths:
            if path in known:
                pending.append(("report", known[path]))
                continue
            staged = self._stage(path, delivered_by, *sums[path])
            if staged.error is not None:
                pending.append(("file", staged))
                continue
            if staged.chunks is None:  # a large file: stream its chunks
                yield from flush()
                yield "file", staged
                try:
                    for prepared in self._streamed(staged):
                        yield "chunk", prepared
                        _release_memory()
                except DeliveryError as exc:  # e.g. a broken row far into the file: nothing of it lands
                    yield "end", exc
                else:
                    yield "end", None
                continue
            if held and held + staged.rows > self.settings.ingest_chunk_rows:
                yield from flush()
            pending.append(("file", staged))
            held += staged.rows
        yield from flush()

    def _stage(self, path: Path, delivered_by: str | None, checksum: str, size: int) -> _Staged:
        """Open a file; read and type it whole if it is small. Whole-file problems end here."""
        staged = _Staged(report=IngestReport(file=str(path), status="loaded"), checksum=checksum, size=size,
                         started=_now(), delivered_by=delivered_by, path=path)
        try:
            delivery = self._open(staged)
            if path.suffix.lower() == ".csv":
                if (_estimate_rows(path) or 0) <= self.settings.ingest_chunk_rows:
                    staged.chunks = [_Chunk(raw) for raw in delivery.chunks]  # typed with its window
            else:  # a spreadsheet or SPSS file is small if it fits in one chunk; else it streams
                first, more = next(delivery.chunks), next(delivery.chunks, None)
                if more is None:
                    staged.chunks = [_Chunk(first)]
        except DeliveryError as exc:
            staged.error = exc
        return staged

    def _open(self, staged: _Staged) -> OpenDelivery:
        delivery = open_delivery(staged.path, self.spec, self.settings.ingest_chunk_rows, self.limits)
        self._validator(delivery.kind, staged.path)
        staged.kind, staged.organisation, staged.period = delivery.kind, delivery.organisation, delivery.period
        staged.ignored_columns = delivery.ignored_columns
        return delivery

    def _validator(self, kind: str, path: Path) -> SuiteValidator:
        if kind not in self._validators:
            suite = load_suite(kind, self.settings.expectations_dir)
            if suite is None:
                raise DeliveryError(path, t("err_no_suite", kind=kind, folder=self.settings.expectations_dir))
            self._validators[kind] = SuiteValidator(suite)
        return self._validators[kind]

    def _validate_window(self, window: list[_Staged]) -> None:
        """Type and validate the chunks of several files in one go; results go back to each chunk.

        Per-call overhead, not rows, dominates both steps for files of a few thousand rows.
        """
        parts, owners, offset = [], [], 0
        for staged in window:
            for chunk in staged.chunks:
                parts.append(chunk.raw.set_axis(pd.RangeIndex(offset, offset + len(chunk.raw))))
                owners.append((offset, chunk))
                offset += len(chunk.raw)
        combined = pd.concat(parts) if len(parts) > 1 else parts[0]
        typed, type_errors = coerce(combined, self.spec.columns(window[0].kind), self.spec)
        validation_errors = self._validators[window[0].kind].validate(typed)
        starts = [o for o, _ in owners]
        for start, chunk in owners:
            chunk.typed = typed.iloc[start:start + len(chunk.raw)].set_axis(chunk.raw.index)
        for errors, attr in ((type_errors, "type_errors"), (validation_errors, "validation_errors")):
            for error in errors:
                start, chunk = owners[bisect.bisect_right(starts, error.index) - 1]
                error.index = chunk.raw.index[error.index - start]
                getattr(chunk, attr).append(error)

    def _streamed(self, staged: _Staged) -> Iterator[Prepared]:
        """A large file, chunk by chunk: type, validate and transform each as it is read."""
        delivery = self._open(staged)
        columns = self.spec.columns(staged.kind)
        validator = self._validators[staged.kind]
        seen: set[str] = set()
        for raw in delivery.chunks:
            chunk = _Chunk(raw, *coerce(raw, columns, self.spec))
            chunk.validation_errors = validator.validate(chunk.typed)
            yield self._transform(staged, chunk, seen)

    def _transform(self, staged: _Staged, chunk: _Chunk, seen_keys: set[str]) -> Prepared:
        errors, good = self._checked(staged, chunk, seen_keys)
        masked = Counter()
        file_kind = self.spec.kind(staged.kind)
        if file_kind.load == "trajectories":
            tables = self._trajectory_tables(good, file_kind, masked)
        elif file_kind.load == "measurements":
            # A questionnaire with too few answers to score any scale is still valid data: it loads
            # with its item answers and empty scores.
            tables = self._measurement_tables(good, self.spec.instruments[staged.kind], masked)
        elif file_kind.load == "records":
            tables = self._record_tables(good, staged.kind, file_kind, masked)
        else:
            raise ValueError(f"file kind {file_kind.name}: unknown load {file_kind.load!r} in catalog/delivery.yaml")
        return self._prepared(staged, chunk, errors, tables, masked[0])

    def _transform_window(self, window: list[_Staged]) -> None:
        """Transform the files of one validated window. The measurements of several small files are
        scored, banded and pseudonymised in one go and cut back into files, since per-call overhead
        dominates for files of a few hundred rows. Trajectory files go one by one: their clients and
        professionals are deduplicated per file."""
        if (self.spec.kind(window[0].kind).load != "measurements" or len(window) == 1
                or any(len(s.chunks) != 1 for s in window)):
            for staged in window:
                seen: set[str] = set()
                staged.prepared = [self._transform(staged, chunk, seen) for chunk in staged.chunks]
                staged.chunks = None
            return
        checked = [self._checked(staged, staged.chunks[0], set()) for staged in window]
        bounds, start = [], 0
        for _, good in checked:
            bounds.append((start, start + len(good)))
            start += len(good)
        masked = Counter()
        combined = pd.concat([good for _, good in checked], ignore_index=True)
        tables = self._measurement_tables(combined, self.spec.instruments[window[0].kind], masked, bounds)
        for part, (staged, (errors, _)) in enumerate(zip(window, checked)):
            begin, end = bounds[part]
            # a copy, not a slice: a pickled slice (to the loader process) carries the whole table
            own = [(name, rule, rows.take(np.arange(begin, end))) for name, rule, rows in tables] if end > begin else []
            staged.prepared = [self._prepared(staged, staged.chunks[0], errors, own, masked[part])]
            staged.chunks = None

    def _checked(self, staged: _Staged, chunk: _Chunk, seen_keys: set[str]) -> tuple[list[RowError], pd.DataFrame]:
        """A chunk's errors (type, suite, file-level rules) and its rows without any."""
        errors = list(chunk.type_errors)
        mistyped = {(e.index, e.column) for e in errors}
        errors += [e for e in chunk.validation_errors if (e.index, e.column) not in mistyped]
        errors += _file_level_rules(chunk.typed, staged, self.spec.kind(staged.kind).key, seen_keys)
        return errors, chunk.typed.drop(index=list({e.index for e in errors}))

    def _prepared(self, staged: _Staged, chunk: _Chunk, errors: list[RowError], tables: list, masked: int) -> Prepared:
        loaded = len(tables[-1][2]) if tables else 0
        return Prepared(rows_total=len(chunk.raw), tables=tables, quarantine=self._quarantine(chunk.raw, errors, staged),
                        rules=Counter(e.rule for e in errors), quarantined=len({e.index for e in errors}),
                        loaded=loaded, masked=masked)

    def _pseudonyms(self, frame: pd.DataFrame, column: str) -> pd.Series:
        return self.pseudonymiser.series(self.identifiers[column], frame["organisation"], frame[column])

    def _names(self):
        """The name list of this catalogue (`<catalog_dir>/names.yaml`), compiled once."""
        return name_screen(self.settings.catalog_dir / "names.yaml")

    def _screened(self, frame: pd.DataFrame, column: str, masked: Counter,
                  bounds: list[tuple[int, int]] | None = None) -> list:
        """Free text screened for names and numbers; masks counted per part (file) of the frame."""
        out = []
        for part, (begin, end) in enumerate(bounds or [(0, len(frame))]):
            screened, n = screen_series(frame[column].iloc[begin:end], self._names())
            masked[part] += n
            out += _plain(screened)
        return out

    def _trajectory_tables(self, frame: pd.DataFrame, file_kind: FileKind,
                           masked: Counter) -> list[tuple[str, str, pa.Table]]:
        if frame.empty:
            return []
        org = frame["organisation"]
        client = self._pseudonyms(frame, "client_id")
        professional = self._pseudonyms(frame, "professional_id")
        teams = frame[["organisation", "team"]].dropna().drop_duplicates()
        clients = pd.DataFrame({
            "pseudonym": client, "organisation": org, "gender": frame["gender"], "lvb": frame["lvb"],
            "objection": frame["objection"], "legal_basis": frame["legal_basis"],
        }).drop_duplicates("pseudonym", keep="last")
        pros = pd.DataFrame({"pseudonym": professional, "organisation": org,
                             "discipline": frame["professional_discipline"],
                             "experience_years": frame["professional_experience"]})
        pros = pros[pros["pseudonym"].notna()].drop_duplicates("pseudonym", keep="last")
        outcome_columns = file_kind.outcomes
        outcomes = [
            {key: v for key, v in zip(outcome_columns.values(), values) if v is not None} or None
            for values in zip(*(_plain(frame[c]) for c in outcome_columns))
        ]
        trajectories = {
            "pseudonym": self._pseudonyms(frame, "trajectory_id"), "client": client, "organisation": org,
            "team": frame["team"], "professional": professional, "intervention": frame["intervention"],
            "start_date": _iso_dates(frame["start_date"]), "end_date": _iso_dates(frame["end_date"]),
            "end_reason": frame["end_reason"], "age_at_start": age_at(frame["birth_date"], frame["start_date"]),
            "diagnosis": frame["diagnosis"], "techniques": _json_column(_plain(frame["techniques"])),
            "context": self._screened(frame, "context", masked), "outcomes": _json_column(outcomes),
            "remarks": self._screened(frame, "remarks", masked),
        }
        return [
            ("teams", "ignore:organisation,code", _arrow({"organisation": teams["organisation"], "code": teams["team"]})),
            ("clients", "upsert:pseudonym", _arrow(dict(clients.items()))),
            ("professionals", "upsert:pseudonym", _arrow(dict(pros.items()))),
            (file_kind.table, "upsert:pseudonym", _arrow(trajectories)),
        ]

    def _record_tables(self, frame: pd.DataFrame, kind: str, file_kind: FileKind,
                       masked: Counter) -> list[tuple[str, str, pa.Table]]:
        """Rows of a kind declared with `load: records`: the typed row as JSON, identifiers pseudonymised,
        personal dates left out, free text screened; keyed by the kind's key, pseudonymised with the kind's name."""
        if frame.empty:
            return []
        values: dict[str, list] = {}
        for col in self.spec.columns(kind):
            if col.name in ("organisation", "period") or col.name in PERSONAL_DATES:
                continue
            if col.identifier:
                values[col.name] = _plain(self.pseudonymiser.series(col.identifier, frame["organisation"],
                                                                    frame[col.name]))
            elif col.type == "date":
                values[col.name] = _plain(_iso_dates(frame[col.name]))
            elif col.type == "text":
                values[col.name] = self._screened(frame, col.name, masked)
            else:
                values[col.name] = _plain(frame[col.name])
        rows = [{name: v for name, v in zip(values, row) if v is not None} for row in zip(*values.values())]
        records = {
            "pseudonym": self.pseudonymiser.series(f"record:{kind}", frame["organisation"], frame[file_kind.key]),
            "kind": [kind] * len(frame), "client": self._pseudonyms(frame, "client_id"),
            "trajectory": self._pseudonyms(frame, "trajectory_id"), "organisation": frame["organisation"],
            "values": _json_column(rows),
        }
        return [(file_kind.table, "upsert:pseudonym", _arrow(records))]

    def _measurement_tables(self, frame: pd.DataFrame, inst: Instrument, masked: Counter,
                            bounds: list[tuple[int, int]] | None = None) -> list[tuple[str, str, pa.Table]]:
        """`bounds`: the rows of each file when the frame holds several; values are made plain per
        file (whole numbers stay whole per file, as when each is transformed on its own)."""
        if frame.empty:
            return []

        def plain(values: pd.Series) -> list:
            if not bounds or len(bounds) == 1:
                return _plain(values)
            return [v for begin, end in bounds for v in _plain(values.iloc[begin:end])]

        raws: dict[str, pd.Series] = {}
        if inst.level == "item":
            scored = inst.score_items(frame[inst.item_columns].astype(float))
            raws.update({s.code: scored[s.raw_column] for s in inst.scales if s.method != "delivered"})
        for s in inst.delivered_scales:
            raws[s.code] = frame[s.raw_column].astype(float)
        codes, entries = [], []
        for s in inst.scales:
            raw_values = raws[s.code][frame.index]
            raw = plain(raw_values)
            tscore = frame[s.t_column].astype(float) if (s.method == "delivered" and s.t_range) else None
            band = (s.band(tscore if s.band_basis == "t" else raw_values, frame["informant"]).tolist()
                    if s.bands else None)
            if tscore is not None and band is not None:
                column = [{"raw": r, "t": t_, "band": b_} for r, t_, b_ in zip(raw, plain(tscore), band)]
            elif band is not None:
                column = [None if r is None else {"raw": r, "band": b_} for r, b_ in zip(raw, band)]
            elif tscore is not None:
                column = [{"raw": r, "t": t_} for r, t_ in zip(raw, plain(tscore))]
            else:
                column = [None if r is None else {"raw": r} for r in raw]
            codes.append(s.code)
            entries.append(column)
        scores = [{c: e for c, e in zip(codes, row) if e is not None} for row in zip(*entries)]
        items = None
        if inst.level == "item":
            cols = inst.item_columns
            values = [plain(frame[c].astype(float)) for c in cols]
            items = [{c[5:]: v for c, v in zip(cols, row)} for row in zip(*values)]
        free = None
        if inst.free_text:
            screened = [self._screened(frame, c, masked, bounds) for c in inst.free_text]
            free = [{c: v for c, v in zip(inst.free_text, row) if v is not None} or None for row in zip(*screened)]
        n = len(frame)
        measurements = {
            "pseudonym": self._pseudonyms(frame, "administration_id"),
            "client": self._pseudonyms(frame, "client_id"),
            "trajectory": self._pseudonyms(frame, "trajectory_id"),
            "organisation": frame["organisation"], "instrument": [inst.code] * n,
            "informant": frame["informant"], "moment": frame["moment"], "date": _iso_dates(frame["date"]),
            "items": _json_column(items) if items is not None else [None] * n,
            "scores": _json_column(scores),
            "free_text": _json_column(free) if free is not None else [None] * n,
        }
        return [("measurements", "upsert:pseudonym", _arrow(measurements))]

    def _quarantine(self, raw: pd.DataFrame, errors: list[RowError], staged: _Staged) -> pa.Table | None:
        if not errors:
            return None
        columns = {c.name: c for c in self.spec.columns(staged.kind)}
        safe_rows: dict[object, dict] = {}
        records = []
        for e in errors:
            if e.index not in safe_rows:
                safe_rows[e.index] = self._safe_row(raw.loc[e.index].to_dict(), columns, staged.organisation)
            value = safe_rows[e.index].get(e.column) if e.column else None
            records.append({
                "file_name": staged.path.name, "row_number": int(e.index) + 2, "rule": e.rule, "column": e.column,
                "value": None if value is None else str(value), "message": e.message,
                "row": orjson.dumps(safe_rows[e.index]).decode(),
            })
        return pa.Table.from_pylist(records)

    def _safe_row(self, row: dict, columns: dict, organisation: str) -> dict:
        """The delivered row with identifiers pseudonymised, birth dates removed and free text screened."""
        safe = {}
        for name, value in row.items():
            if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
                safe[name] = None
            elif name in self.identifiers:
                safe[name] = self.pseudonymiser.one(self.identifiers[name], organisation, str(value))
            elif name in PERSONAL_DATES:
                safe[name] = "[verwijderd]"
            elif columns.get(name) is not None and columns[name].type == "text":
                safe[name] = screen_text(str(value), self._names())[0]
            else:
                safe[name] = str(value)
        return safe

    # -- load (the database, one transaction per file) ---------------------------------------

    def _duplicate(self, report: IngestReport, checksum: str) -> IngestReport | None:
        b = store.import_batches
        with self.engine.connect() as conn:
            previous = conn.execute(
                sa.select(b.c.id, b.c.started_at).where(b.c.checksum == checksum, b.c.status.in_(("loaded", "replaced")))
                .order_by(b.c.id).limit(1)
            ).first()
        if previous is None:
            return None
        report.status, report.duplicate_of = "duplicate", previous.id
        report.duplicate_when = previous.started_at.strftime("%Y-%m-%d %H:%M")
        return report

    def _load_staged(self, staged: _Staged, streamed: Iterator[Prepared] | None = None) -> IngestReport:
        if staged.error is not None:
            return self._reject(staged, staged.error)
        if self._duplicate(staged.report, staged.checksum) is not None:  # the same file twice in one run
            return staged.report
        try:
            self._load(staged, iter(staged.prepared) if streamed is None else streamed)
        except DeliveryError as exc:  # raised while streaming a large file: nothing landed
            return self._reject(staged, exc)
        return staged.report

    def _reject(self, staged: _Staged, exc: DeliveryError) -> IngestReport:
        report = staged.report
        report.status, report.error = "rejected", exc.reason
        report.rows_loaded = report.rows_quarantined = report.rows_replaced = report.rows_total = 0
        report.rules, report.batch_id, report.replaced_batches = {}, None, []
        with self.engine.begin() as conn:
            report.batch_id = conn.execute(
                store.import_batches.insert().values(
                    kind=staged.kind or "unknown", organisation=staged.organisation, period=staged.period,
                    file_name=staged.path.name, checksum=staged.checksum, size_bytes=staged.size,
                    delivered_by=staged.delivered_by, imported_by=self.imported_by, started_at=staged.started,
                    finished_at=_now(), status="rejected", report=report.to_json(), error=report.error,
                ).returning(store.import_batches.c.id)
            ).scalar_one()
        return report

    def _load(self, staged: _Staged, prepared: Iterator[Prepared]) -> None:
        report = staged.report
        report.kind, report.organisation, report.period = staged.kind, staged.organisation, staged.period
        report.ignored_columns = staged.ignored_columns
        b = store.import_batches
        target = store.metadata.tables[self.spec.kind(staged.kind).table]
        rules: Counter[str] = Counter()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=_estimate_rows(staged.path), unit=" rijen", desc=staged.path.name, file=sys.stderr,
                       leave=False)
        with self.engine.begin() as conn:
            batch_id = conn.execute(
                b.insert().values(kind=staged.kind, organisation=staged.organisation, period=staged.period,
                                  file_name=staged.path.name, checksum=staged.checksum, size_bytes=staged.size,
                                  delivered_by=staged.delivered_by, imported_by=self.imported_by,
                                  started_at=staged.started, status="loading").returning(b.c.id)
            ).scalar_one()
            report.batch_id = batch_id
            old = conn.execute(sa.select(b.c.id).where(
                b.c.organisation == staged.organisation, b.c.kind == staged.kind, b.c.period == staged.period,
                b.c.status == "loaded")).scalars().all()
            if old:
                report.replaced_batches = list(old)
                report.rows_replaced = conn.execute(target.delete().where(target.c.batch_id.in_(old))).rowcount
                conn.execute(b.update().where(b.c.id.in_(old)).values(status="replaced", replaced_by=batch_id))
            self._write(conn, "organisations", "ignore:code", pa.table({"code": [staged.organisation]}), None)
            objected = False
            for part in prepared:
                for name, rule, rows in part.tables:
                    if name == "clients":
                        objected = _new_objections(conn, rows) or objected
                    self._write(conn, name, rule, rows, batch_id)
                if part.quarantine is not None:
                    self._write(conn, "quarantine", "insert", part.quarantine, batch_id)
                report.rows_total += part.rows_total
                report.rows_loaded += part.loaded
                report.rows_quarantined += part.quarantined
                report.masked += part.masked
                rules.update(part.rules)
                if bar is not None:
                    bar.update(part.rows_total)
            if old:
                self._drop_orphans(conn, old)
            report.rules = dict(rules)
            conn.execute(b.update().where(b.c.id == batch_id).values(
                status="loaded", finished_at=_now(), rows_total=report.rows_total, rows_loaded=report.rows_loaded,
                rows_quarantined=report.rows_quarantined, rows_replaced=report.rows_replaced, report=report.to_json()))
        if bar is not None:
            bar.close()
        if objected:  # extract files cut before may hold these clients: they go, and that is logged
            from .extracts import withdraw_objections

            withdraw_objections(self.engine, self.settings, self.imported_by or "ldj-ingest")
        _release_memory()

    def _write(self, conn, name: str, rule: str, rows: pa.Table, batch_id: int | None) -> None:
        """executemany straight through the driver: the values are already plain Python values and
        JSON text, so SQLAlchemy's per-value processing would only cost time."""
        if rows.num_rows == 0:
            return
        table = store.metadata.tables[name]
        keys = list(rows.column_names)
        columns = [rows.column(k).to_pylist() for k in keys]
        if batch_id is not None and "batch_id" in table.c:
            keys.append("batch_id")
            columns.append([batch_id] * rows.num_rows)
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table)
        mode, _, conflict = rule.partition(":")
        if mode == "ignore":
            stmt = stmt.on_conflict_do_nothing(index_elements=conflict.split(","))
        elif mode == "upsert":
            stmt = stmt.on_conflict_do_update(
                index_elements=[conflict], set_={k: stmt.excluded[k] for k in keys if k != conflict})
        compiled = stmt.compile(dialect=conn.dialect, column_keys=keys)
        if compiled.positional:
            order = [keys.index(k) for k in compiled.positiontup]
            params = list(zip(*(columns[i] for i in order)))
        else:
            params = [dict(zip(keys, row)) for row in zip(*columns)]
        conn.exec_driver_sql(str(compiled), params)

    def _drop_orphans(self, conn, old_batches: list[int]) -> None:
        """Clients and professionals only the replaced batches knew, and nothing refers to any more."""
        c, tr, p = store.clients, store.trajectories, store.professionals
        referring = dict.fromkeys(store.metadata.tables[k.table] for k in self.spec.kinds)  # the kinds' tables
        conn.execute(c.delete().where(
            c.c.batch_id.in_(old_batches),
            *(~sa.exists().where(table.c.client == c.c.pseudonym) for table in referring if "client" in table.c)))
        conn.execute(p.delete().where(
            p.c.batch_id.in_(old_batches), ~sa.exists().where(tr.c.professional == p.c.pseudonym)))


def _new_objections(conn, clients: pa.Table) -> bool:
    """Whether these incoming client rows record an objection for a client the store holds without one
    (whose rows earlier extracts may hold). A client new to the store is in no earlier extract; one
    that was dropped and comes back is caught by `ldj prune`, and no read serves it meanwhile."""
    objecting = [p for p, o in zip(clients.column("pseudonym").to_pylist(), clients.column("objection").to_pylist())
                 if o]
    c = store.clients
    for start in range(0, len(objecting), 1000):
        if conn.execute(sa.select(sa.func.count()).select_from(c).where(
                c.c.pseudonym.in_(objecting[start:start + 1000]), c.c.objection.is_(False))).scalar_one():
            return True
    return False


def _file_level_rules(frame: pd.DataFrame, staged: _Staged, key: str, seen_keys: set[str]) -> list[RowError]:
    """Rules a chunk-wise suite cannot see: one organisation and period per file, keys unique across chunks."""
    errors = []
    for column, expected in (("organisation", staged.organisation), ("period", staged.period)):
        other = frame[column].notna() & (frame[column] != expected)
        errors += [RowError(i, f"single_value:{column}", column, frame.at[i, column],
                            t("row_other_organisation") if column == "organisation" else
                            "Periode: wijkt af van de rest van het bestand")
                   for i in frame.index[other.to_numpy()]]
    values = frame[key]
    earlier = values.isin(seen_keys) if seen_keys else pd.Series(False, index=frame.index)
    errors += [RowError(i, f"unique:{key}", key, values.at[i], t("row_unique", "nl", label=key))
               for i in frame.index[earlier.to_numpy()]]
    seen_keys.update(values.dropna().tolist())
    return errors


def _windows(files: list[_Staged], max_rows: int) -> list[list[_Staged]]:
    """Files validated together: of one kind, at most `max_rows` rows, one file per organisation and
    period (the suite's key is unique within an organisation and period, and a second file for the
    same organisation and period is a re-delivery that replaces the first). Files keep their order
    within a kind."""
    by_kind: dict[str | None, list[list[_Staged]]] = {}
    for staged in files:
        windows = by_kind.setdefault(staged.kind, [[]])
        window = windows[-1]
        if window and (sum(w.rows for w in window) + staged.rows > max_rows or any(w.key == staged.key for w in window)):
            window = []
            windows.append(window)
        window.append(staged)
    return [window for windows in by_kind.values() for window in windows]


def _unbatched(items: Iterable[tuple[str, object]]) -> Iterator[tuple[str, object]]:
    """The items of `_transformed`, with its ("ready", [items]) lists taken apart."""
    for kind, item in items:
        if kind == "ready":
            yield from item
        else:
            yield kind, item


def _chunks_of(items: Iterator[tuple[str, object]]) -> Iterator[Prepared]:
    """The ("chunk", ...) items of one streamed file, up to its ("end", error) item."""
    for kind, item in items:
        if kind == "end":
            if item is not None:
                raise item
            return
        yield item


def _release_memory() -> None:
    """Hand freed heap back to the system (glibc keeps it otherwise): keeps long imports' RSS flat."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _estimate_rows(path: Path) -> int | None:
    if path.suffix.lower() != ".csv":
        return None
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return max(n - 1, 0)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """In a forked helper: be killed by the kernel when `parent` dies (Linux `PR_SET_PDEATHSIG`), even in
    the middle of a long transform. The helper holds copies of the parent's sockets, its database
    connection among them: alive, it would keep a killed import's transaction (and its locks) open."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the helper still stops at its next hand-over
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _in_helper_process(items: Iterator) -> Iterator:
    """Run a generator in a forked process, one item ahead of the caller.

    The helper never touches the database (the transform needs none); it stops when its
    parent is gone, so a killed import leaves no process behind.
    """
    ctx = multiprocessing.get_context("fork")
    channel = ctx.Queue(maxsize=1)
    parent = os.getpid()

    def run() -> None:
        _die_with(parent)

        def put(item) -> bool:
            while os.getppid() == parent:
                try:
                    channel.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
            put(("error", exc))

    helper = ctx.Process(target=run, name="ldj-ingest-transform", daemon=True)
    helper.start()
    try:
        while True:
            try:
                kind, item = channel.get(timeout=1.0)
            except queue.Empty:
                if not helper.is_alive():
                    raise RuntimeError(f"the import helper process stopped (exit code {helper.exitcode})") from None
                continue
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        if helper.is_alive():
            helper.terminate()
        helper.join(timeout=10)
        channel.close()
