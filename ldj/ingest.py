"""`ldj ingest`: read, validate, pseudonymise, quarantine and load BergOp deliveries.

One file is one import batch and one database transaction: every valid row lands with the batch,
every failing row lands in the quarantine with its rule, file and row number, or nothing lands at
all. Importing the same file twice changes nothing; a new file for the same organisation, kind
and period replaces the earlier batch's rows.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from . import store
from .delivery import TRAJECTORIES, DeliveryError, DeliverySpec, OpenDelivery, RowError, coerce, load_spec, open_delivery
from .expectations import SuiteValidator, load_suite
from .i18n import t
from .instruments import Instrument
from .pseudonyms import Pseudonymiser, age_at, load_or_create_key, screen_series, screen_text
from .settings import Settings, get_settings

IDENTIFIER_KINDS = {"client_id": "client", "professional_id": "professional", "trajectory_id": "trajectory",
                    "administration_id": "administration"}
PERSONAL_DATES = ("birth_date",)
OUTCOME_COLUMNS = {"outcome_breakdown": "breakdown", "outcome_living_at_home": "living_at_home",
                   "outcome_crisis_resolved": "crisis_resolved", "outcome_model_fidelity": "model_fidelity"}


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


def _nullable(series: pd.Series) -> list:
    """Plain Python values for the database: NaN/NaT/pd.NA become None."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return [None if pd.isna(v) else v.date() for v in series]
    if pd.api.types.is_float_dtype(series):
        arr = series.to_numpy()
        return [None if math.isnan(v) else (int(v) if v.is_integer() else float(v)) for v in arr.tolist()]
    return [None if (v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA) else v
            for v in series.tolist()]


@dataclass
class _Chunk:
    raw: pd.DataFrame
    typed: pd.DataFrame
    type_errors: list[RowError]
    validation_errors: list[RowError] = field(default_factory=list)


@dataclass
class _Staged:
    """A file that passed the whole-file checks and waits to be validated and loaded."""

    report: IngestReport
    checksum: str
    size: int
    started: datetime
    delivered_by: str | None
    delivery: OpenDelivery | None = None
    validator: SuiteValidator | None = None
    chunks: list[_Chunk] | None = None  # typed in memory; None for a large file that streams
    rows: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.delivery.organisation, self.delivery.period)


class Ingestor:
    """Imports delivery files into the store. One instance can import many files."""

    def __init__(self, settings: Settings | None = None, engine: sa.Engine | None = None,
                 progress: bool | None = None, imported_by: str | None = None):
        self.settings = settings or get_settings()
        self.engine = engine or store.get_engine(self.settings)
        self.spec: DeliverySpec = load_spec(self.settings.catalog_dir)
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
        reports: list[IngestReport] = []
        window: list[_Staged] = []

        def emit(report: IngestReport) -> None:
            reports.append(report)
            if on_report is not None:
                on_report(report)

        def flush() -> None:
            if window:
                self._validate_window(window)
                for staged in window:
                    emit(self._load_staged(staged, iter(staged.chunks)))
                window.clear()

        for path in paths:
            staged = self._stage(Path(path), delivered_by)
            if isinstance(staged, IngestReport):
                emit(staged)
                continue
            if staged.chunks is None:  # a large file: stream it alone
                flush()
                emit(self._load_staged(staged, self._stream_chunks(staged)))
                continue
            if window and (window[0].delivery.kind != staged.delivery.kind
                           or sum(w.rows for w in window) + staged.rows > self.settings.ingest_chunk_rows
                           or any(w.key == staged.key for w in window)):
                flush()
            window.append(staged)
        flush()
        return reports

    # -- steps -------------------------------------------------------------------------------

    def _stage(self, path: Path, delivered_by: str | None) -> _Staged | IngestReport:
        """Checksum, duplicate check, open and type a file; whole-file problems end here."""
        report = IngestReport(file=str(path), status="loaded")
        try:
            checksum, size = file_checksum(path)
        except OSError as exc:
            report.status, report.error = "rejected", t("err_missing_file") if not path.exists() else str(exc)
            return report
        previous = self._find_checksum(checksum)
        if previous is not None:
            report.status, report.duplicate_of = "duplicate", previous.id
            report.duplicate_when = previous.started_at.strftime("%Y-%m-%d %H:%M")
            return report
        staged = _Staged(report=report, checksum=checksum, size=size, started=_now(), delivered_by=delivered_by)
        try:
            staged.delivery = open_delivery(path, self.spec, self.settings.ingest_chunk_rows)
            staged.validator = self._validator(staged.delivery.kind, path)
            if (_estimate_rows(path) or 0) <= self.settings.ingest_chunk_rows:
                columns = self.spec.columns(staged.delivery.kind)
                staged.chunks = []
                for raw in staged.delivery.chunks:
                    typed, errors = coerce(raw, columns, self.spec)
                    staged.chunks.append(_Chunk(raw, typed, errors))
                staged.rows = sum(len(c.raw) for c in staged.chunks)
        except DeliveryError as exc:
            return self._reject(staged, exc)
        return staged

    def _reject(self, staged: _Staged, exc: DeliveryError) -> IngestReport:
        report = staged.report
        report.status, report.error = "rejected", exc.reason
        report.rows_loaded = report.rows_quarantined = report.rows_replaced = 0
        report.rules, report.batch_id, report.replaced_batches = {}, None, []
        with self.engine.begin() as conn:
            report.batch_id = conn.execute(
                store.import_batches.insert().values(
                    kind=report.kind or "unknown", organisation=report.organisation, period=report.period,
                    file_name=Path(report.file).name, checksum=staged.checksum, size_bytes=staged.size,
                    delivered_by=staged.delivered_by, imported_by=self.imported_by, started_at=staged.started,
                    finished_at=_now(), status="rejected", report=report.to_json(), error=report.error,
                ).returning(store.import_batches.c.id)
            ).scalar_one()
        return report

    def _find_checksum(self, checksum: str):
        b = store.import_batches
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(b.c.id, b.c.started_at).where(b.c.checksum == checksum, b.c.status.in_(("loaded", "replaced")))
                .order_by(b.c.id).limit(1)
            ).first()

    def _validator(self, kind: str, path: Path) -> SuiteValidator:
        if kind not in self._validators:
            suite = load_suite(kind, self.settings.expectations_dir)
            if suite is None:
                raise DeliveryError(path, t("err_no_suite", kind=kind, folder=self.settings.expectations_dir))
            self._validators[kind] = SuiteValidator(suite)
        return self._validators[kind]

    def _validate_window(self, window: list[_Staged]) -> None:
        """One suite run over the typed chunks of several files; failures go back to their file."""
        parts, owners, offset = [], [], 0
        for staged in window:
            for chunk in staged.chunks:
                part = chunk.typed.copy()
                part.index = pd.RangeIndex(offset, offset + len(part))
                owners.append((offset, chunk))
                offset += len(part)
                parts.append(part)
        combined = pd.concat(parts) if len(parts) > 1 else parts[0]
        starts = [o for o, _ in owners]
        for error in window[0].validator.validate(combined):
            pos = bisect.bisect_right(starts, error.index) - 1
            start, chunk = owners[pos]
            error.index = chunk.typed.index[error.index - start]
            chunk.validation_errors.append(error)

    def _stream_chunks(self, staged: _Staged) -> Iterator[_Chunk]:
        columns = self.spec.columns(staged.delivery.kind)
        for raw in staged.delivery.chunks:
            typed, errors = coerce(raw, columns, self.spec)
            chunk = _Chunk(raw, typed, errors)
            chunk.validation_errors = staged.validator.validate(typed)
            yield chunk

    def _load_staged(self, staged: _Staged, chunks: Iterator[_Chunk]) -> IngestReport:
        try:
            self._load(staged, chunks)
        except DeliveryError as exc:  # raised while streaming a large file: nothing landed
            return self._reject(staged, exc)
        return staged.report

    def _load(self, staged: _Staged, chunks: Iterator[_Chunk]) -> None:
        delivery, report = staged.delivery, staged.report
        report.kind, report.organisation, report.period = delivery.kind, delivery.organisation, delivery.period
        report.ignored_columns = delivery.ignored_columns
        b = store.import_batches
        target = store.trajectories if delivery.kind == TRAJECTORIES else store.measurements
        rules: Counter[str] = Counter()
        seen_keys: set[str] = set()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=_estimate_rows(delivery.path), unit=" rijen", desc=delivery.path.name, file=sys.stderr,
                       leave=False)
        with self.engine.begin() as conn:
            batch_id = conn.execute(
                b.insert().values(kind=delivery.kind, organisation=delivery.organisation, period=delivery.period,
                                  file_name=delivery.path.name, checksum=staged.checksum, size_bytes=staged.size,
                                  delivered_by=staged.delivered_by, imported_by=self.imported_by,
                                  started_at=staged.started, status="loading").returning(b.c.id)
            ).scalar_one()
            report.batch_id = batch_id
            old = conn.execute(sa.select(b.c.id).where(
                b.c.organisation == delivery.organisation, b.c.kind == delivery.kind, b.c.period == delivery.period,
                b.c.status == "loaded")).scalars().all()
            if old:
                report.replaced_batches = list(old)
                report.rows_replaced = conn.execute(target.delete().where(target.c.batch_id.in_(old))).rowcount
                conn.execute(b.update().where(b.c.id.in_(old)).values(status="replaced", replaced_by=batch_id))
            self._upsert_organisation(conn, delivery.organisation)
            for chunk in chunks:
                report.rows_total += len(chunk.raw)
                loaded, failures = self._load_chunk(conn, delivery, chunk, batch_id, seen_keys, report)
                report.rows_loaded += loaded
                report.rows_quarantined += len({f.index for f in failures})
                rules.update(f.rule for f in failures)
                if bar is not None:
                    bar.update(len(chunk.raw))
            if old:
                self._drop_orphans(conn, old)
            report.rules = dict(rules)
            conn.execute(b.update().where(b.c.id == batch_id).values(
                status="loaded", finished_at=_now(), rows_total=report.rows_total, rows_loaded=report.rows_loaded,
                rows_quarantined=report.rows_quarantined, rows_replaced=report.rows_replaced, report=report.to_json()))
        if bar is not None:
            bar.close()

    def _load_chunk(self, conn, delivery: OpenDelivery, chunk: _Chunk, batch_id: int, seen_keys: set[str],
                    report: IngestReport) -> tuple[int, list[RowError]]:
        errors = list(chunk.type_errors)
        mistyped = {(e.index, e.column) for e in errors}
        errors += [e for e in chunk.validation_errors if (e.index, e.column) not in mistyped]
        errors += _file_level_rules(chunk.typed, delivery, seen_keys)
        good = chunk.typed.drop(index=list({e.index for e in errors}))
        if delivery.kind == TRAJECTORIES:
            n = self._load_trajectories(conn, good, batch_id, report)
        else:
            score_errors, n = self._load_measurements(conn, good, delivery.instrument, batch_id, report)
            errors += score_errors
        self._quarantine(conn, chunk.raw, errors, delivery, batch_id)
        return n, errors

    def _pseudonyms(self, frame: pd.DataFrame, column: str) -> pd.Series:
        return self.pseudonymiser.series(IDENTIFIER_KINDS[column], frame["organisation"], frame[column])

    def _screen(self, frame: pd.DataFrame, column: str, report: IngestReport) -> list:
        screened, n = screen_series(frame[column])
        report.masked += n
        return _nullable(screened)

    def _load_trajectories(self, conn, frame: pd.DataFrame, batch_id: int, report: IngestReport) -> int:
        if frame.empty:
            return 0
        org = frame["organisation"]
        client = self._pseudonyms(frame, "client_id")
        trajectory = self._pseudonyms(frame, "trajectory_id")
        professional = self._pseudonyms(frame, "professional_id")
        age = age_at(frame["birth_date"], frame["start_date"])
        teams = frame[["organisation", "team"]].dropna().drop_duplicates()
        if len(teams):
            self._insert_ignore(conn, store.teams, [{"organisation": o, "code": c} for o, c in teams.itertuples(index=False)],
                                ["organisation", "code"])
        clients = pd.DataFrame({
            "pseudonym": client, "organisation": org, "gender": frame["gender"], "lvb": frame["lvb"],
            "objection": frame["objection"], "legal_basis": frame["legal_basis"],
        }).drop_duplicates("pseudonym", keep="last")
        self._upsert(conn, store.clients, _records(clients, batch_id), "pseudonym")
        pros = pd.DataFrame({"pseudonym": professional, "organisation": org,
                             "discipline": frame["professional_discipline"],
                             "experience_years": frame["professional_experience"]})
        pros = pros[pros["pseudonym"].notna()].drop_duplicates("pseudonym", keep="last")
        if len(pros):
            self._upsert(conn, store.professionals, _records(pros, batch_id), "pseudonym")
        outcomes = [
            {key: v for key, v in zip(OUTCOME_COLUMNS.values(), values) if v is not None} or None
            for values in zip(*(_nullable(frame[c]) for c in OUTCOME_COLUMNS))
        ]
        rows = pd.DataFrame({
            "pseudonym": trajectory, "client": client, "organisation": org, "team": frame["team"],
            "professional": professional, "intervention": frame["intervention"],
            "start_date": frame["start_date"], "end_date": frame["end_date"], "end_reason": frame["end_reason"],
            "age_at_start": age.astype("Float64").astype(float), "diagnosis": frame["diagnosis"],
        })
        records = _records(rows, batch_id)
        techniques = _nullable(frame["techniques"])
        context = self._screen(frame, "context", report)
        remarks = self._screen(frame, "remarks", report)
        for rec, tech, ctx, rem, out in zip(records, techniques, context, remarks, outcomes):
            rec.update(techniques=tech, context=ctx, remarks=rem, outcomes=out)
        self._upsert(conn, store.trajectories, records, "pseudonym")
        return len(records)

    def _load_measurements(self, conn, frame: pd.DataFrame, inst: Instrument, batch_id: int,
                           report: IngestReport) -> tuple[list[RowError], int]:
        if frame.empty:
            return [], 0
        raws: dict[str, pd.Series] = {}
        if inst.level == "item":
            items = frame[inst.item_columns].astype(float)
            scored = inst.score_items(items)
            raws.update({s.code: scored[s.raw_column] for s in inst.scales if s.method != "delivered"})
        for s in inst.delivered_scales:
            raws[s.code] = frame[s.raw_column].astype(float)
        unscorable = pd.concat(raws.values(), axis=1).isna().all(axis=1) if raws else pd.Series(True, index=frame.index)
        errors = [RowError(idx, "no_scores", None, None, "geen enkele schaal is te scoren (te veel ontbrekende antwoorden)")
                  for idx in frame.index[unscorable.to_numpy()]]
        frame = frame[~unscorable]
        if frame.empty:
            return errors, 0
        per_scale = []
        for s in inst.scales:
            raw = raws[s.code][frame.index]
            tscore = frame[s.t_column].astype(float) if (s.method == "delivered" and s.t_range) else None
            basis = tscore if s.band_basis == "t" else raw
            band = s.band(basis, frame["informant"]) if s.bands else None
            per_scale.append((s.code, _nullable(raw), _nullable(tscore) if tscore is not None else None,
                              band.tolist() if band is not None else None))
        n = len(frame)
        scores = [{} for _ in range(n)]
        for code, raw, tscore, band in per_scale:
            for i in range(n):
                if raw[i] is None and (tscore is None or tscore[i] is None):
                    continue
                entry = {"raw": raw[i]}
                if tscore is not None:
                    entry["t"] = tscore[i]
                if band is not None:
                    entry["band"] = band[i]
                scores[i][code] = entry
        items_json = None
        if inst.level == "item":
            cols = inst.item_columns
            values = [_nullable(frame[c].astype(float)) for c in cols]
            items_json = [{c[5:]: v for c, v in zip(cols, row)} for row in zip(*values)]
        free = None
        if inst.free_text:
            screened = [self._screen(frame, c, report) for c in inst.free_text]
            free = [{c: v for c, v in zip(inst.free_text, row) if v is not None} or None for row in zip(*screened)]
        rows = pd.DataFrame({
            "pseudonym": self._pseudonyms(frame, "administration_id"),
            "client": self._pseudonyms(frame, "client_id"),
            "trajectory": self._pseudonyms(frame, "trajectory_id"),
            "organisation": frame["organisation"], "instrument": inst.code,
            "informant": frame["informant"], "moment": frame["moment"], "date": frame["date"],
        })
        records = _records(rows, batch_id)
        for i, rec in enumerate(records):
            rec["scores"] = scores[i]
            rec["items"] = items_json[i] if items_json is not None else None
            rec["free_text"] = free[i] if free is not None else None
        self._upsert(conn, store.measurements, records, "pseudonym")
        return errors, len(records)

    def _quarantine(self, conn, chunk: pd.DataFrame, errors: list[RowError], delivery: OpenDelivery,
                    batch_id: int) -> None:
        if not errors:
            return
        columns = {c.name: c for c in self.spec.columns(delivery.kind)}
        safe_rows: dict[object, dict] = {}
        records = []
        for e in errors:
            if e.index not in safe_rows:
                safe_rows[e.index] = self._safe_row(chunk.loc[e.index].to_dict(), columns, delivery.organisation)
            value = safe_rows[e.index].get(e.column) if e.column else None
            records.append({
                "batch_id": batch_id, "file_name": delivery.path.name, "row_number": int(e.index) + 2,
                "rule": e.rule, "column": e.column, "value": None if value is None else str(value),
                "message": e.message, "row": safe_rows[e.index],
            })
        conn.execute(store.quarantine.insert(), records)

    def _safe_row(self, row: dict, columns: dict, organisation: str) -> dict:
        """The delivered row with identifiers pseudonymised, birth dates removed and free text screened."""
        safe = {}
        for name, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                safe[name] = None
            elif name in IDENTIFIER_KINDS:
                safe[name] = self.pseudonymiser.one(IDENTIFIER_KINDS[name], organisation, str(value))
            elif name in PERSONAL_DATES:
                safe[name] = "[verwijderd]"
            elif columns.get(name) is not None and columns[name].type == "text":
                safe[name] = screen_text(str(value))[0]
            else:
                safe[name] = str(value)
        return safe

    # -- SQL helpers -------------------------------------------------------------------------

    def _upsert_organisation(self, conn, code: str) -> None:
        self._insert_ignore(conn, store.organisations, [{"code": code, "name": None}], ["code"])

    def _dialect_insert(self, table):
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def _insert_ignore(self, conn, table, rows: list[dict], keys: list[str]) -> None:
        conn.execute(self._dialect_insert(table).on_conflict_do_nothing(index_elements=keys), rows)

    def _upsert(self, conn, table, rows: list[dict], key: str) -> None:
        if not rows:
            return
        stmt = self._dialect_insert(table)
        update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
        conn.execute(stmt.on_conflict_do_update(index_elements=[key], set_=update), rows)

    def _drop_orphans(self, conn, old_batches: list[int]) -> None:
        """Clients and professionals only the replaced batches knew, and nothing refers to any more."""
        c, tr, m, p = store.clients, store.trajectories, store.measurements, store.professionals
        conn.execute(c.delete().where(
            c.c.batch_id.in_(old_batches),
            ~sa.exists().where(tr.c.client == c.c.pseudonym),
            ~sa.exists().where(m.c.client == c.c.pseudonym)))
        conn.execute(p.delete().where(
            p.c.batch_id.in_(old_batches), ~sa.exists().where(tr.c.professional == p.c.pseudonym)))


def _records(frame: pd.DataFrame, batch_id: int) -> list[dict]:
    columns = {name: _nullable(frame[name]) for name in frame.columns}
    names = list(columns)
    return [dict(zip(names, values), batch_id=batch_id) for values in zip(*columns.values())]


def _file_level_rules(frame: pd.DataFrame, delivery: OpenDelivery, seen_keys: set[str]) -> list[RowError]:
    """Rules a chunk-wise suite cannot see: one organisation and period per file, keys unique across chunks."""
    errors = []
    for column, expected in (("organisation", delivery.organisation), ("period", delivery.period)):
        other = frame[column].notna() & (frame[column] != expected)
        errors += [RowError(i, f"single_value:{column}", column, frame.at[i, column],
                            t("row_other_organisation") if column == "organisation" else
                            "Periode: wijkt af van de rest van het bestand")
                   for i in frame.index[other.to_numpy()]]
    key = "trajectory_id" if delivery.kind == TRAJECTORIES else "administration_id"
    values = frame[key]
    earlier = values.isin(seen_keys) if seen_keys else pd.Series(False, index=frame.index)
    errors += [RowError(i, f"unique:{key}", key, values.at[i], t("row_unique", "nl", label=key))
               for i in frame.index[earlier.to_numpy()]]
    seen_keys.update(values.dropna().tolist())
    return errors


def _estimate_rows(path: Path) -> int | None:
    if path.suffix.lower() != ".csv":
        return None
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            n += block.count(b"\n")
    return max(n - 1, 0)

