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
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pyreadstat
import yaml
from openpyxl.reader.excel import ExcelReader
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from .i18n import t
from .instruments import Instrument, load_instruments, resolve_instrument

TRAJECTORIES = "trajectories"  # the trajectory file's kind (catalog/delivery.yaml `kinds:`)
OUTCOME_PREFIX = "outcome_"  # a registered outcome: a column `outcome_<key>`, stored as <key> in `outcomes`
EXCEL_MAX_ROWS = 1_048_576  # rows of one sheet, the header included
XLSX_MAX_PARTS = 10_000  # a workbook has tens of parts; a zip of millions costs memory just to list
XLSX_SMALL_PART_BYTES = 64 * 2**20  # parts other than sheets and shared strings (styles, workbook, theme) are small
XLSX_FORBIDDEN_PART = re.compile(r"(^|/)(vbaProject[^/]*\.bin|activeX/|embeddings/)|\.(bin|exe|dll)$", re.IGNORECASE)
XLSX_ALLOWED_BINARY = re.compile(r"^xl/printerSettings/[^/]+\.bin$", re.IGNORECASE)  # Excel saves print settings


class DeliveryError(Exception):
    """A whole file cannot be used. `str()` is a message for the data steward."""

    def __init__(self, path: Path | str, message: str):
        self.path = Path(path)
        self.reason = message
        super().__init__(f"{self.path.name}: {message}")

    def __reduce__(self):
        return (DeliveryError, (self.path, self.reason))


@dataclass(frozen=True)
class Limits:
    """How large a delivery may be before it is refused unread (settings `LDJ_DELIVERY_MAX_*`)."""

    max_file_bytes: int
    max_rows: int
    max_columns: int
    max_cell_chars: int
    max_line_bytes: int
    max_unpacked_bytes: int
    max_inflation: int

    @classmethod
    def from_settings(cls, settings=None) -> Limits:
        if settings is None:
            from .settings import get_settings

            settings = get_settings()
        return cls(**{name: getattr(settings, f"delivery_{name}") for name in cls.__dataclass_fields__})


def size_text(n: int) -> str:
    """A byte count for people: 512 B, 1 MiB, 4.2 GiB."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            value = n / factor
            return f"{value:.0f} {unit}" if value == int(value) or value >= 100 else f"{value:.1f} {unit}"
    return f"{n} B"


def check_file_size(path: Path, size: int, limits: Limits) -> None:
    """Refuse a file larger than the limit, before anything reads it."""
    if size > limits.max_file_bytes:
        raise DeliveryError(path, t("err_file_too_big", size=size_text(size), limit=size_text(limits.max_file_bytes),
                                    bytes=limits.max_file_bytes))


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
class FileKind:
    """One kind of delivery file, as `kinds:` in catalog/delivery.yaml declares it. The reader, the
    validator, the loader, the synthesiser and the docs all work from these, not from kind names."""

    name: str  # the kind import batches record; a per-instrument kind's files carry the instrument's code
    title: str
    doc: str
    recognised_by: tuple[str, ...]  # a file with one of these columns is of this kind
    columns: tuple[Column, ...]  # after the common columns (and before an instrument's own)
    key: str  # unique per organisation and period
    table: str  # the store table its rows land in
    load: str  # trajectories | measurements | records
    synth: str  # trajectories | measurements | per_trajectory
    file_name: str = ""
    file_pattern: str = ""
    per_instrument: bool = False
    refers_to: str | None = None

    @property
    def outcomes(self) -> dict[str, str]:
        """Its registered outcomes: column -> key in the stored `outcomes` (columns `outcome_<key>`)."""
        return {c.name: c.name[len(OUTCOME_PREFIX):] for c in self.columns if c.name.startswith(OUTCOME_PREFIX)}


@dataclass(frozen=True)
class DeliverySpec:
    common: tuple[Column, ...]
    trajectories: tuple[Column, ...]
    measurements: tuple[Column, ...]
    value_labels: dict[str, dict[str, object]]
    interventions: dict[str, str]  # normalised alias/code -> code
    instruments: dict[str, Instrument]
    kinds: tuple[FileKind, ...] = ()  # in import order

    def kind(self, name: str) -> FileKind:
        """The declared kind of file `name` (a kind's name or an instrument code) belongs to."""
        for kind in self.kinds:
            if (name in self.instruments) if kind.per_instrument else name == kind.name:
                return kind
        raise KeyError(f"no file kind {name!r} in catalog/delivery.yaml")

    def kind_names(self) -> list[str]:
        """Every kind a file can be, in import order; a per-instrument kind as its instruments' codes."""
        return [name for kind in self.kinds
                for name in (sorted(self.instruments) if kind.per_instrument else [kind.name])]

    def columns(self, kind: str) -> list[Column]:
        """All shared columns of a file kind (`trajectories`, an instrument code or another declared kind)."""
        file_kind = self.kind(kind)
        if file_kind.per_instrument:
            return [*self.common, *file_kind.columns, *self.instrument_columns(self.instruments[kind])]
        return [*self.common, *file_kind.columns]

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

    def identifier_columns(self) -> dict[str, str]:
        """Column -> identifier kind, for every column of every kind that holds one (replaced by a pseudonym)."""
        return {c.name: c.identifier for c in (*self.common, *(c for k in self.kinds for c in k.columns))
                if c.identifier}

    def import_rank(self, file_name: str) -> int:
        """Where a file goes in the import order, judged by its name: the place of the first kind whose
        `file_pattern` it holds; a name that holds none goes after the kinds others refer to."""
        name = file_name.lower()
        referred = {kind.refers_to for kind in self.kinds if kind.refers_to}
        for rank, kind in enumerate(self.kinds):
            if kind.file_pattern and kind.file_pattern.lower() in name:
                return rank
        return max((rank + 1 for rank, kind in enumerate(self.kinds) if kind.name in referred), default=0)


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
    if not raw.get("kinds"):
        raise ValueError(f"{catalog_dir / 'delivery.yaml'} declares no `kinds:` of delivery file "
                         "(see catalog/delivery.yaml in the repository)")
    return DeliverySpec(
        common=tuple(_column(c) for c in raw["common"]),
        trajectories=tuple(_column(c) for c in raw["trajectories"]),
        measurements=tuple(_column(c) for c in raw["measurements"]),
        value_labels=value_labels,
        interventions=interventions,
        instruments=load_instruments(catalog_dir),
        kinds=tuple(_file_kind(k, raw) for k in raw["kinds"]),
    )


def _file_kind(d: dict, raw: dict) -> FileKind:
    d = dict(d)
    columns = d.pop("columns")
    d["columns"] = tuple(_column(c) for c in (raw[columns] if isinstance(columns, str) else columns))
    d["recognised_by"] = tuple(d["recognised_by"])
    return FileKind(**d)


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


def _scan_lines(path: Path, limits: Limits) -> int:
    """One pass over a text file's bytes: refuse too many lines or a too long one as soon as it shows.

    Returns the length of the longest line in bytes (a cell can be no longer than its line).
    """
    lines = 0  # newlines seen
    line_start = 0  # offset where the current line starts
    longest = 0
    offset = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + offset
            if len(ends):
                starts = np.concatenate(([line_start], ends[:-1] + 1))
                lengths = ends - starts
                if lengths.max() > limits.max_line_bytes:
                    _line_too_long(path, lines + 1 + int(np.argmax(lengths > limits.max_line_bytes)), limits)
                longest = max(longest, int(lengths.max()))
                lines += len(ends)
                line_start = int(ends[-1]) + 1
                if lines - 1 > limits.max_rows:  # the header is not a data row
                    raise DeliveryError(path, t("err_too_many_rows", limit=limits.max_rows))
            offset += len(block)
            if offset - line_start > limits.max_line_bytes:  # a line that does not end (yet)
                _line_too_long(path, lines + 1, limits)
    longest = max(longest, offset - line_start)
    if offset > line_start and lines > limits.max_rows:  # a last line without a newline
        raise DeliveryError(path, t("err_too_many_rows", limit=limits.max_rows))
    return longest


def _line_too_long(path: Path, row: int, limits: Limits) -> NoReturn:
    raise DeliveryError(path, t("err_line_too_long", row=row, limit=size_text(limits.max_line_bytes),
                                bytes=limits.max_line_bytes))


def _check_cells(path: Path, frame: pd.DataFrame, limits: Limits, row_offset: int = 2) -> None:
    """Refuse a chunk with a cell longer than the limit, naming its column and row."""
    for column in frame.columns:
        values = frame[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        too_long = (values.str.len() > limits.max_cell_chars).to_numpy(dtype=bool, na_value=False)
        if too_long.any():
            row = int(frame.index[too_long.argmax()]) + row_offset
            raise DeliveryError(path, t("err_cell_too_long", column=column, row=row, limit=limits.max_cell_chars))


def _csv_frames(path: Path, chunk_rows: int, limits: Limits) -> tuple[str, list[str], Iterator[pd.DataFrame]]:
    longest_line = _scan_lines(path, limits)
    encoding = detect_encoding(path)
    with open(path, encoding=encoding, newline="") as fh:
        header = fh.readline()
    if not header.strip():
        raise DeliveryError(path, t("err_empty"))
    sep = _sniff_separator(header)
    if header.count(sep) + 1 > limits.max_columns:  # before pandas builds a frame that wide
        raise DeliveryError(path, t("err_too_many_columns", n=header.count(sep) + 1, limit=limits.max_columns))
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
    check_cells = longest_line > limits.max_cell_chars  # no cell is longer than its line

    if check_cells:
        _check_cells(path, pd.DataFrame([headers], columns=headers), limits, row_offset=1)
        _check_cells(path, first, limits)

    def chunks() -> Iterator[pd.DataFrame]:
        yield first
        try:
            for frame in reader:
                if check_cells:
                    _check_cells(path, frame, limits)
                yield frame
        except pd.errors.ParserError as exc:
            raise DeliveryError(path, t("err_csv_parse", detail=str(exc).strip())) from None

    return encoding, headers, chunks()


_PREFIX = re.compile(rb"<([A-Za-z_][\w.-]*:)?(?:worksheet|sst)\b")  # the namespace prefix the part's tags carry
_TAG_END = np.zeros(256, dtype=bool)  # bytes that can follow a tag's name
_TAG_END[list(b" />\t\r\n")] = True


def _scan_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, elements: tuple[bytes, ...],
               stop_at: int, max_run: int) -> tuple[list[int], int]:
    """Count elements (`row`, `c`, `si`) in one XML part while unpacking it block by block.

    Returns the counts per element and the longest run of bytes without a tag (the longest text).
    Stops as soon as the first element's count passes `stop_at` or a run passes `max_run`.
    """
    counts = [0] * len(elements)
    longest, last_tag, offset = 0, 0, 0  # offsets in the unpacked part
    carry, names = b"", None
    with archive.open(info) as fh:
        while True:
            block = fh.read(1 << 20)
            text = carry + block
            start = offset - len(carry)  # where `text` begins in the part
            offset += len(block)
            if names is None and (found := _PREFIX.search(text)):  # the root tag: its prefix is the part's
                names = [np.frombuffer((found.group(1) or b"") + name, dtype=np.uint8) for name in elements]
            data = np.frombuffer(text, dtype=np.uint8)
            tags = np.flatnonzero(data == 60)  # '<'
            fresh = tags[tags + start > last_tag]
            if len(fresh):
                longest = max(longest, int(fresh[0]) + start - last_tag,
                              int(np.diff(fresh).max()) if len(fresh) > 1 else 0)
                last_tag = int(fresh[-1]) + start
            longest = max(longest, offset - last_tag)
            if longest > max_run:
                return counts, longest
            # tags that start in the last bytes are counted with the next block, when their name is whole
            cut = len(text) if not block else max(0, len(text) - 64)
            if names is None:  # no root tag yet (another part, or a long prologue): any prefix
                for i, name in enumerate(elements):
                    pattern = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?" + name + rb"[\s/>]")
                    counts[i] += sum(1 for m in pattern.finditer(text) if m.start() < cut)
                carry = text[cut:]
                if counts[0] > stop_at or not block:
                    return counts, longest
                continue
            head = tags[tags < cut]
            for i, name in enumerate(names):
                match = np.ones(len(head), dtype=bool)
                for k, char in enumerate(name):
                    at = np.minimum(head + 1 + k, len(data) - 1)
                    match &= data[at] == char
                at = np.minimum(head + 1 + len(name), len(data) - 1)
                match &= _TAG_END[data[at]]
                counts[i] += int(match.sum())
            carry = text[cut:]
            if counts[0] > stop_at or not block:
                return counts, longest


def _check_xlsx_archive(path: Path, limits: Limits) -> int:
    """Look inside an XLSX before a spreadsheet library does: its zip directory (unpacked size,
    inflation, macros), then its sheets (rows, cells) and shared strings, unpacked as a stream that
    stops at the first limit. Returns the longest text run in bytes (an upper bound on any cell)."""
    try:
        with open(path, "rb") as fh:
            end = zipfile._EndRecData(fh)  # the directory's end record: how many entries it lists
        if end is not None and end[zipfile._ECD_ENTRIES_TOTAL] > XLSX_MAX_PARTS:
            raise DeliveryError(path, t("err_xlsx_parts", n=end[zipfile._ECD_ENTRIES_TOTAL], limit=XLSX_MAX_PARTS))
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise DeliveryError(path, t("err_not_spreadsheet_detail", detail=type(exc).__name__)) from None
    with archive:
        infos = archive.infolist()
        if not any(i.filename == "[Content_Types].xml" for i in infos):
            raise DeliveryError(path, t("err_not_spreadsheet"))
        for info in infos:
            if XLSX_FORBIDDEN_PART.search(info.filename) and not XLSX_ALLOWED_BINARY.match(info.filename):
                raise DeliveryError(path, t("err_xlsx_macros", part=info.filename))
        unpacked = sum(i.file_size for i in infos)
        if unpacked > limits.max_unpacked_bytes:
            raise DeliveryError(path, t("err_unpacked_too_big", size=size_text(unpacked),
                                        limit=size_text(limits.max_unpacked_bytes), bytes=limits.max_unpacked_bytes))
        for info in infos:
            if info.file_size > 2**20 and info.file_size > limits.max_inflation * max(info.compress_size, 1):
                raise DeliveryError(path, t("err_inflation", part=info.filename, limit=limits.max_inflation,
                                            ratio=info.file_size // max(info.compress_size, 1)))
        sheets = [i for i in infos if re.fullmatch(r"xl/worksheets/[^/]+\.xml", i.filename, re.IGNORECASE)]
        strings = [i for i in infos if i.filename.lower() == "xl/sharedstrings.xml"]
        for info in infos:
            if info not in sheets and info not in strings and info.file_size > XLSX_SMALL_PART_BYTES:
                raise DeliveryError(path, t("err_xlsx_part_too_big", part=info.filename, size=size_text(info.file_size),
                                            limit=size_text(XLSX_SMALL_PART_BYTES)))
        row_limit = min(limits.max_rows + 1, EXCEL_MAX_ROWS)  # the header row included
        max_run = 10 * limits.max_cell_chars + 1024  # a character takes at most 10 bytes (&#1114111;)
        cells, longest = 0, 0
        try:
            # Rows are counted in every XML part: a workbook may point its sheet anywhere.
            for info in [i for i in infos if i.filename.lower().endswith(".xml") and i not in strings]:
                is_sheet = info in sheets
                (rows, n_cells), run = _scan_part(archive, info, (b"row", b"c"), row_limit,
                                                  max_run if is_sheet else 2**62)
                if run > max_run and is_sheet:
                    raise DeliveryError(path, t("err_xlsx_cell_too_long", part=info.filename, limit=limits.max_cell_chars))
                if rows > row_limit:
                    if row_limit < EXCEL_MAX_ROWS:
                        raise DeliveryError(path, t("err_too_many_rows", limit=limits.max_rows))
                    raise DeliveryError(path, t("err_xlsx_too_many_rows", part=info.filename, limit=EXCEL_MAX_ROWS))
                cells += n_cells
                longest = max(longest, run)
            for info in strings:
                most = max(cells, 10_000)  # a writer keeps only strings some cell uses
                (n_strings,), run = _scan_part(archive, info, (b"si",), most, max_run)
                if run > max_run:
                    raise DeliveryError(path, t("err_xlsx_cell_too_long", part=info.filename, limit=limits.max_cell_chars))
                if n_strings > most:
                    raise DeliveryError(path, t("err_xlsx_shared_strings", limit=most, cells=cells))
                longest = max(longest, run)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
            raise DeliveryError(path, t("err_not_spreadsheet_detail", detail=type(exc).__name__)) from None
    return longest


def _xlsx_text(cell) -> str | None:
    """A cell value as text, as pandas' read_excel(dtype=str) gives it; None for empty and errors."""
    value = cell.value
    if value is None or cell.data_type == "e" or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unique_headers(values: list[str | None]) -> list[str]:
    """Header texts as pandas names them: `Unnamed: i` for empty ones, `.1`, `.2` after repeats."""
    seen: dict[str, int] = {}
    out = []
    for i, value in enumerate(values):
        name = f"Unnamed: {i}" if value is None else value
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


class _StreamedSheet(ReadOnlyWorksheet):
    """openpyxl's read-only sheet without its size probe, which parses a sheet that declares no size
    whole just to learn it. Rows are read as they are, without padding to a declared size (which can lie)."""

    def _get_size(self) -> None:
        pass


class _FirstSheetReader(ExcelReader):
    """openpyxl's reader, read-only, that opens the first worksheet only (as pandas reads it)."""

    def __init__(self, path: Path):
        super().__init__(path, read_only=True, data_only=True, keep_links=False)

    def read_worksheets(self) -> None:
        for sheet, rel in self.parser.find_sheets():
            if rel.target in self.valid_files and "chartsheet" not in rel.Type:
                self.wb._sheets.append(_StreamedSheet(self.wb, sheet.name, rel.target, self.shared_strings))
                return


def _xlsx_frames(path: Path, chunk_rows: int, limits: Limits) -> tuple[None, list[str], Iterator[pd.DataFrame]]:
    """The first sheet, streamed row by row in chunks (openpyxl's read-only mode)."""
    longest_text = _check_xlsx_archive(path, limits)
    try:
        reader = _FirstSheetReader(path)
        reader.read()
        book = reader.wb
    except Exception as exc:  # openpyxl raises many types for broken files
        raise DeliveryError(path, t("err_not_spreadsheet_detail", detail=type(exc).__name__)) from None
    try:
        sheet = book.worksheets[0]
        rows = ([_xlsx_text(c) for c in row] for row in sheet.iter_rows())
        rows = (row for row in rows if any(v is not None for v in row))  # pandas skips blank rows too
        header = next(rows, None)
    except Exception as exc:
        book.close()
        raise DeliveryError(path, t("err_not_spreadsheet_detail", detail=type(exc).__name__)) from None
    if header is None:
        book.close()
        raise DeliveryError(path, t("err_empty"))
    while header and header[-1] is None:
        header.pop()
    if len(header) > limits.max_columns:
        book.close()
        raise DeliveryError(path, t("err_too_many_columns", n=len(header), limit=limits.max_columns))
    headers = _unique_headers(header)
    width = len(headers)
    check_cells = longest_text > limits.max_cell_chars
    if check_cells:
        _check_cells(path, pd.DataFrame([headers], columns=headers), limits, row_offset=1)

    def chunks() -> Iterator[pd.DataFrame]:
        start, batch = 0, []
        try:
            for row in rows:
                batch.append((row + [None] * (width - len(row)))[:width])
                if len(batch) == chunk_rows:
                    yield frame(start, batch)
                    start, batch = start + len(batch), []
            if batch:
                yield frame(start, batch)
        except DeliveryError:
            raise
        except Exception as exc:  # a part that breaks half-way (CRC, XML)
            raise DeliveryError(path, t("err_not_spreadsheet_detail", detail=type(exc).__name__)) from None
        finally:
            book.close()

    def frame(start: int, batch: list) -> pd.DataFrame:
        if start + len(batch) > limits.max_rows:  # the scan counts rows first; this holds if it could not
            raise DeliveryError(path, t("err_too_many_rows", limit=limits.max_rows))
        out = pd.DataFrame(batch, columns=headers, index=pd.RangeIndex(start, start + len(batch)), dtype=object)
        if check_cells:
            _check_cells(path, out, limits)
        return out

    stream = chunks()
    first = next(stream, None)
    if first is None:
        raise DeliveryError(path, t("err_no_rows"))
    return None, headers, _chain(first, stream)


def _sav_frames(path: Path, chunk_rows: int, limits: Limits) -> tuple[None, list[str], Iterator[pd.DataFrame]]:
    try:
        _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
    except Exception as exc:
        raise DeliveryError(path, t("err_not_sav_detail", detail=str(exc))) from None
    declared = meta.number_rows  # the header's case count; None or -1 when the writer did not know it
    if declared is not None and declared > limits.max_rows:
        raise DeliveryError(path, t("err_sav_declared_rows", n=declared, limit=limits.max_rows))
    if meta.number_columns > limits.max_columns:
        raise DeliveryError(path, t("err_too_many_columns", n=meta.number_columns, limit=limits.max_columns))
    try:
        frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=True, row_limit=limits.max_rows + 1)
    except Exception as exc:
        raise DeliveryError(path, t("err_not_sav_detail", detail=str(exc))) from None
    if len(frame) > limits.max_rows:
        raise DeliveryError(path, t("err_too_many_rows", limit=limits.max_rows))
    # SPSS exports carry short variable names; their labels are the Dutch export labels.
    labels = meta.column_names_to_labels
    frame.columns = [str(labels.get(c) or c) for c in frame.columns]
    frame = frame.map(_sav_cell).astype(object)
    if frame.empty:
        raise DeliveryError(path, t("err_no_rows"))
    _check_cells(path, frame, limits)
    frames = (frame.iloc[i:i + chunk_rows] for i in range(0, len(frame), chunk_rows))
    return None, list(frame.columns), frames


def _read_frames(path: Path, chunk_rows: int, limits: Limits) -> tuple[str | None, list[str], Iterator[pd.DataFrame]]:
    check_file_size(path, path.stat().st_size, limits)
    kind = _file_type(path)
    if kind == "csv":
        return _csv_frames(path, chunk_rows, limits)
    if kind == "xlsx":
        return _xlsx_frames(path, chunk_rows, limits)
    return _sav_frames(path, chunk_rows, limits)


def _sav_cell(value):
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):  # NaT: empty SPSS date
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    return str(value)


def open_delivery(path: Path | str, spec: DeliverySpec, chunk_rows: int = 100_000,
                  limits: Limits | None = None) -> OpenDelivery:
    """Open a delivery file: detect its kind and instrument, map its columns, check required ones.

    A file beyond `limits` (default: the settings) is refused before it is read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise DeliveryError(path, t("err_missing_file"))
    encoding, headers, frames = _read_frames(path, chunk_rows, limits or Limits.from_settings())

    label_map: dict[str, str] = {}
    for col in [*spec.common, *(c for kind in spec.kinds for c in kind.columns)]:
        label_map[_norm(col.name)] = col.name
        label_map[_norm(col.label)] = col.name
    mapping = {h: label_map[_norm(h)] for h in headers if _norm(h) in label_map}

    first = next(frames)
    instrument = None
    # the last kinds first: a file that refers to another kind may carry some of that kind's columns
    file_kind = next((k for k in reversed(spec.kinds) if set(k.recognised_by) & set(mapping.values())), None)
    if file_kind is None:
        raise DeliveryError(path, t("err_unknown_kind"))
    if file_kind.per_instrument:
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
    else:
        kind = file_kind.name

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
