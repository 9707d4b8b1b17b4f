"""The corpus of bad delivery files in tests/data/bad and the errors they must give."""

from __future__ import annotations

import base64
import os
import re
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

BAD = Path(__file__).parent / "data" / "bad"


def bad_files() -> dict[str, tuple[str, str]]:
    """file -> (i18n key, expected message) from the table in tests/data/bad/README.md."""
    out = {}
    for line in (BAD / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2].startswith("err_"):
            out[cells[0]] = (cells[2], cells[3])
    return out


BAD_FILES = bad_files()


def message_regex(message: str) -> str:
    """The documented message as a regex; `…` stands for a variable part."""
    return "".join(".*" if part == "…" else re.escape(part) for part in re.split("(…)", message))


# --- hostile files, made at run time (too big to check in) ---------------------------------------
# Each maker writes one file to `folder` and returns its path. The rows look like a real
# trajectory delivery, so that only the hostile property can be the reason for a refusal.

TRAJECTORY_HEADER = ["Organisatie", "Periode", "Cliëntnummer", "Trajectnummer", "Team", "Geboortedatum", "Geslacht",
                     "Bezwaar", "Interventie", "Startdatum", "Toelichting"]
TRAJECTORY_ROW = ["ORG07", "2023", "C001", "T001", "Team Noord", "17-04-2011", "V", "nee", "MST", "05-09-2022", ""]

_XML = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = b"http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_XLSX_FRAME = {
    "[Content_Types].xml": _XML + b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
    "_rels/.rels": _XML + b'<Relationships xmlns="' + _RELS + b'"><Relationship Id="rId1" Type="' + _DOC
    + b'/officeDocument" Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml": _XML + b'<workbook xmlns="' + _MAIN + b'" xmlns:r="' + _DOC + b'"><sheets>'
    b'<sheet name="Trajecten" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": _XML + b'<Relationships xmlns="' + _RELS + b'">'
    b'<Relationship Id="rId1" Type="' + _DOC + b'/worksheet" Target="worksheets/sheet1.xml"/>'
    b'<Relationship Id="rId2" Type="' + _DOC + b'/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
}


def _cell(column: int, row: int, value: str) -> bytes:
    ref = _column_letters(column) + str(row)
    text = value.replace("&", "&amp;").replace("<", "&lt;").encode()
    return b'<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (ref.encode(), text)


def _column_letters(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _row(number: int, values: list[str]) -> bytes:
    return b'<row r="%d">%s</row>' % (number, b"".join(_cell(i, number, v) for i, v in enumerate(values) if v))


def write_xlsx(path: Path, sheet_rows: Iterator[bytes], shared_strings: Iterator[bytes] = iter(()),
               extra_parts: dict[str, bytes] | None = None, level: int = 1,
               sheet_part: str = "xl/worksheets/sheet1.xml") -> Path:
    """A minimal XLSX whose sheet XML and shared strings come from iterators of XML bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data in _XLSX_FRAME.items():
            data = data.replace(b"/xl/worksheets/sheet1.xml", b"/" + sheet_part.encode())
            zf.writestr(name, data.replace(b"worksheets/sheet1.xml", sheet_part.removeprefix("xl/").encode()))
        with zf.open(sheet_part, "w", force_zip64=True) as fh:
            fh.write(_XML + b'<worksheet xmlns="' + _MAIN + b'"><sheetData>')
            for block in sheet_rows:
                fh.write(block)
            fh.write(b"</sheetData></worksheet>")
        with zf.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            fh.write(_XML + b'<sst xmlns="' + _MAIN + b'">')
            for block in shared_strings:
                fh.write(block)
            fh.write(b"</sst>")
        for name, data in (extra_parts or {}).items():
            zf.writestr(name, data)
    return path


def delivery_rows(n: int, first: int = 2, block: int = 100_000) -> Iterator[bytes]:
    """`n` realistic trajectory rows of the sheet XML, in blocks."""
    for start in range(first, first + n, block):
        yield b"".join(_row(i, [*TRAJECTORY_ROW[:2], f"C{i}", f"T{i}", *TRAJECTORY_ROW[4:]])
                       for i in range(start, min(start + block, first + n)))


def tiny_rows(n: int, first: int = 2, block: int = 200_000) -> Iterator[bytes]:
    """`n` rows of one small number each: a sheet that unpacks to millions of rows."""
    for start in range(first, first + n, block):
        yield b"".join(b'<row r="%d"><c r="A%d"><v>1</v></c></row>' % (i, i)
                       for i in range(start, min(start + block, first + n)))


def xlsx_many_rows(folder: Path, rows: int = 1_100_000) -> Path:
    """An XLSX that unpacks to more rows than a sheet can hold (8 million in the issue)."""
    return write_xlsx(folder / "veel_rijen.xlsx", iter([_row(1, TRAJECTORY_HEADER), *tiny_rows(rows)]))


def xlsx_sheet_elsewhere(folder: Path, rows: int = 1_100_000) -> Path:
    """Too many rows again, in a sheet the workbook keeps outside xl/worksheets/."""
    return write_xlsx(folder / "elders.xlsx", iter([_row(1, TRAJECTORY_HEADER), *tiny_rows(rows)]),
                      sheet_part="xl/data/blad.xml")


def xlsx_compression_bomb(folder: Path, megabytes: int = 64) -> Path:
    """An XLSX whose sheet is mostly one repeated row: it unpacks ~1,000 times its packed size."""
    row = b"<row><c><v>1</v></c></row>"
    block = row * (2**20 // len(row))
    return write_xlsx(folder / "bom.xlsx", iter([_row(1, TRAJECTORY_HEADER), *([block] * megabytes)]), level=9)


def xlsx_lying_directory(folder: Path) -> Path:
    """A small XLSX whose zip directory claims its sheet unpacks to almost 4 GiB, twice over."""
    path = write_xlsx(folder / "liegt.xlsx", iter([_row(1, TRAJECTORY_HEADER), _row(2, TRAJECTORY_ROW)]))
    data = bytearray(path.read_bytes())
    patched = 0
    for at in _central_entries(bytes(data)):
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        name = bytes(data[at + 46:at + 46 + name_len])
        if name in (b"xl/worksheets/sheet1.xml", b"xl/sharedStrings.xml"):
            extra_len = struct.unpack_from("<H", data, at + 30)[0]
            if extra_len:  # zip64: the sizes live in the extra field; lie there
                struct.pack_into("<Q", data, at + 46 + name_len + 4, 0xFFFF_FFF0)
            else:
                struct.pack_into("<I", data, at + 24, 0xFFFF_FFF0)
            patched += 1
    assert patched == 2
    path.write_bytes(bytes(data))
    return path


def _central_entries(data: bytes) -> Iterator[int]:
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        yield at
        at = data.find(b"PK\x01\x02", at + 4)


def xlsx_shared_strings(folder: Path, strings: int = 300_000) -> Path:
    """An XLSX of two rows with hundreds of thousands of shared strings no cell uses."""
    blocks = (b"".join(b"<si><t>s%d</t></si>" % i for i in range(start, min(start + 100_000, strings)))
              for start in range(0, strings, 100_000))
    return write_xlsx(folder / "teksten.xlsx", iter([_row(1, TRAJECTORY_HEADER), _row(2, TRAJECTORY_ROW)]), blocks)


def xlsx_huge_cell(folder: Path, chars: int = 2_000_000) -> Path:
    """An XLSX whose one remark cell holds millions of (incompressible) characters."""
    text = base64.b32encode(os.urandom(chars * 5 // 8)).decode()[:chars]
    return write_xlsx(folder / "grote_cel.xlsx",
                      iter([_row(1, TRAJECTORY_HEADER), _row(2, [*TRAJECTORY_ROW[:-1], text])]))


def xlsx_long_cell(folder: Path, chars: int = 40_000) -> Path:
    """An XLSX whose remark on row 3 is a little longer than a cell may be."""
    text = base64.b32encode(os.urandom(chars * 5 // 8 + 8)).decode()[:chars]
    return write_xlsx(folder / "lange_cel.xlsx", iter([_row(1, TRAJECTORY_HEADER), _row(2, TRAJECTORY_ROW),
                                                       _row(3, [*TRAJECTORY_ROW[:-1], text])]))


def xlsx_many_parts(folder: Path, parts: int = 20_000) -> Path:
    """A good trajectory XLSX that also holds twenty thousand empty parts."""
    return write_xlsx(folder / "onderdelen.xlsx", iter([_row(1, TRAJECTORY_HEADER), _row(2, TRAJECTORY_ROW)]),
                      extra_parts={f"xl/leeg/{i}.xml": b"" for i in range(parts)})


def xlsx_wide(folder: Path, columns: int = 3_000) -> Path:
    """An XLSX with thousands of header columns."""
    header = TRAJECTORY_HEADER + [f"Extra {i}" for i in range(columns - len(TRAJECTORY_HEADER))]
    return write_xlsx(folder / "breed.xlsx", iter([_row(1, header), _row(2, TRAJECTORY_ROW)]))


def xlsx_with_macros(folder: Path) -> Path:
    """A good trajectory XLSX that also carries a VBA project (a macro)."""
    return write_xlsx(folder / "macro.xlsm", iter([_row(1, TRAJECTORY_HEADER), _row(2, TRAJECTORY_ROW)]),
                      extra_parts={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(2048)})


def xlsx_good(folder: Path, rows: int = 3) -> Path:
    """A small, good trajectory XLSX made by the same writer as the hostile ones."""
    return write_xlsx(folder / "goed.xlsx", iter([_row(1, TRAJECTORY_HEADER), *delivery_rows(rows)]))


def _csv_line(values: list[str]) -> bytes:
    return ";".join(values).encode() + b"\r\n"


def csv_wide(folder: Path, columns: int = 100_000) -> Path:
    """A CSV with 100,000 columns."""
    header = TRAJECTORY_HEADER + [f"k{i}" for i in range(columns - len(TRAJECTORY_HEADER))]
    row = TRAJECTORY_ROW + [""] * (columns - len(TRAJECTORY_ROW))
    path = folder / "breed.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv_line(header) + _csv_line(row))
    return path


def csv_huge_cell(folder: Path, megabytes: int = 50) -> Path:
    """A CSV whose remark on line 3 is one 50 MB cell."""
    path = folder / "grote_cel.csv"
    with open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + _csv_line(TRAJECTORY_HEADER) + _csv_line(TRAJECTORY_ROW))
        fh.write(_csv_line(TRAJECTORY_ROW)[:-2])
        for _ in range(megabytes):
            fh.write(b"x" * 2**20)
        fh.write(b"\r\n")
    return path


def csv_long_cell(folder: Path, chars: int = 40_000) -> Path:
    """A CSV whose remark on row 3 is a little longer than a cell may be."""
    return _write_csv(folder / "lange_cel.csv", [TRAJECTORY_ROW, [*TRAJECTORY_ROW[:-1], "é" * chars]])


def csv_without_newlines(folder: Path, megabytes: int = 50) -> Path:
    """A 'CSV' of 50 MB without a single line break."""
    path = folder / "een_regel.csv"
    with open(path, "wb") as fh:
        for _ in range(megabytes):
            fh.write(b"ORG07;2023;" * (2**20 // 11))
    return path


def csv_many_rows(folder: Path, rows: int, line: bytes = b"1\n") -> Path:
    """A CSV with `rows` data lines (short ones: the line count alone refuses it)."""
    path = folder / "veel_regels.csv"
    with open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + _csv_line(TRAJECTORY_HEADER))
        for start in range(0, rows, 1_000_000):
            fh.write(line * min(1_000_000, rows - start))
    return path


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    path.write_bytes(b"\xef\xbb\xbf" + _csv_line(TRAJECTORY_HEADER) + b"".join(_csv_line(r) for r in rows))
    return path


def oversized(folder: Path, size: int) -> Path:
    """A sparse file of `size` bytes (no disk used): too big to be read."""
    path = folder / "te_groot.csv"
    with open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbf" + _csv_line(TRAJECTORY_HEADER))
        fh.truncate(size)
    return path


def sav_billion_cases(folder: Path) -> Path:
    """A real SPSS file of one case whose header declares a billion."""
    import pandas as pd
    import pyreadstat

    path = folder / "miljard.sav"
    frame = pd.DataFrame([TRAJECTORY_ROW], columns=[f"v{i}" for i in range(len(TRAJECTORY_ROW))])
    pyreadstat.write_sav(frame, str(path), column_labels=TRAJECTORY_HEADER)
    data = bytearray(path.read_bytes())
    assert data[:4] == b"$FL2" and struct.unpack_from("<i", data, 80)[0] == 1  # ncases sits at byte 80
    struct.pack_into("<i", data, 80, 1_000_000_000)
    path.write_bytes(bytes(data))
    return path
