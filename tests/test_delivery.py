"""ldj/delivery.py: one delivery in every accepted form reads the same; bad files are refused by name.

The good files are written here, per test, from one table of values, so that each form (CSV as
Dutch Excel writes it, UTF-8 with and without BOM, Windows-1252, comma-separated, XLSX, SPSS .sav
with short variable names, canonical English headers) is known to carry the same delivery. The
bad files are checked in under tests/data/bad/ with a README.md listing the expected message.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import re
import string
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import sqlalchemy as sa

import bad_files
from bad_files import BAD, BAD_FILES, message_regex
from ldj.delivery import (
    EXCEL_MAX_ROWS,
    TRAJECTORIES,
    DeliveryError,
    Limits,
    RowError,
    coerce,
    load_spec,
    open_delivery,
    parse_dates,
)
from ldj.docs import delivery_format_markdown
from ldj.expectations import write_suites
from ldj.i18n import TEXTS
from ldj.ingest import Ingestor
from ldj.refresh import delivery_files
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate



@pytest.fixture(scope="module")
def spec():
    return load_spec(REPO_ROOT / "catalog")


def read(path: Path, spec, chunk_rows: int = 100_000):
    """open_delivery + coerce over all chunks: (delivery, typed frame, row errors)."""
    delivery = open_delivery(path, spec, chunk_rows)
    chunks = list(delivery.chunks)
    typed, errors = [], []
    for chunk in chunks:
        t, e = coerce(chunk, spec.columns(delivery.kind), spec)
        typed.append(t)
        errors += e
    return delivery, pd.concat(typed), errors, len(chunks)


def write_csv(path: Path, header: list[str], rows: list[list[str]], sep: str = ";", encoding: str = "utf-8-sig") -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\r\n")  # as Excel writes it
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def missing_as_none(series: pd.Series) -> list:
    """Values with every kind of missing (None, NaN, NaT) as None; a string column may hold NaN."""
    return [v if isinstance(v, (list, bool)) or not pd.isna(v) else None for v in series.tolist()]


def dutch(key: str) -> str:
    return TEXTS[key][0]


def template_regex(template: str) -> str:
    """A regex matching a TEXTS template with any value in its {fields}."""
    parts = []
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+")
    return "".join(parts)


# --- a trajectory delivery in every accepted form ---------------------------------------------

TRAJ_HEADER = ["Organisatie", "Periode", "Cliëntnummer", "Trajectnummer", "Team", "Geboortedatum", "Geslacht", "LVB",
               "Bezwaar", "Interventie", "Startdatum", "Einddatum", "Reden einde", "Ervaring behandelaar (jaren)",
               "Technieken", "Toelichting", "Interne code"]
TRAJ_CANONICAL = ["organisation", "period", "client_id", "trajectory_id", "team", "birth_date", "gender", "lvb",
                  "objection", "intervention", "start_date", "end_date", "end_reason", "professional_experience",
                  "techniques", "remarks"]
# As a Dutch export writes them: dd-mm-jjjj and ISO dates, M/V/X, ja/nee, intervention aliases.
TRAJ_ROWS = [
    ["ORG07", "2023", "C001", "T001", "Team Noord", "17-04-2011", "V", "nee", "nee", "MST", "05-09-2022",
     "20-02-2023", "volgens plan", "7", "gezinsgesprekken|oudertraining", "Scheiding ouders, verhuisd naar Zoë", "X1"],
    ["ORG07", "2023", "C002", "T002", "Team Zuid", "2010-01-31", "M", "ja", "ja", "Multisysteemtherapie", "2022-09-12",
     "", "", "12", "", "", "X2"],
    ["ORG07", "2023", "C003", "T003", "Team Noord", "29-02-2012", "X", "", "Nee", "IAG", "01-03-2023",
     "", "", "", "oudertraining", "Cliënt woont bij oma", "X3"],
]


def expected_trajectories() -> dict[str, list]:
    ts = pd.Timestamp
    return {
        "organisation": ["ORG07"] * 3,
        "period": ["2023"] * 3,
        "client_id": ["C001", "C002", "C003"],
        "trajectory_id": ["T001", "T002", "T003"],
        "team": ["Team Noord", "Team Zuid", "Team Noord"],
        "birth_date": [ts("2011-04-17"), ts("2010-01-31"), ts("2012-02-29")],
        "gender": ["female", "male", "other"],
        "lvb": [False, True, None],
        "objection": [False, True, False],
        "intervention": ["mst", "mst", "iag"],
        "start_date": [ts("2022-09-05"), ts("2022-09-12"), ts("2023-03-01")],
        "end_date": [ts("2023-02-20"), None, None],
        "end_reason": ["planned", None, None],
        "professional_experience": [7.0, 12.0, np.nan],
        "techniques": [["gezinsgesprekken", "oudertraining"], None, ["oudertraining"]],
        "remarks": ["Scheiding ouders, verhuisd naar Zoë", None, "Cliënt woont bij oma"],
        "diagnosis": [None] * 3,
        "context": [None] * 3,
    }


def _typed_excel_frame(header: list[str]) -> pd.DataFrame:
    """The trajectory rows as a spreadsheet holds them: real dates and numbers, empty cells."""
    frame = pd.DataFrame(TRAJ_ROWS, columns=header).replace("", None)
    for label in ("Geboortedatum", "Startdatum", "Einddatum"):
        frame[label] = parse_dates(frame[label])
    frame["Ervaring behandelaar (jaren)"] = pd.to_numeric(frame["Ervaring behandelaar (jaren)"])
    return frame


def _write_sav(path: Path) -> Path:
    frame = _typed_excel_frame(TRAJ_HEADER)
    short = ["org", "periode", "clnr", "trajnr", "team", "gebdat", "geslacht", "lvb", "bezwaar", "interv", "startdat",
             "einddat", "reden", "ervaring", "techn", "toel", "intcode"]
    for c in frame.columns:  # SPSS string variables hold "" for empty
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]):
            frame[c] = frame[c].fillna("")
    frame.columns = short
    pyreadstat.write_sav(frame, str(path), column_labels=TRAJ_HEADER)
    return path


def _write_xlsx(path: Path) -> Path:
    _typed_excel_frame(TRAJ_HEADER).to_excel(path, index=False, sheet_name="Trajecten")
    return path


TRAJ_FORMS = {
    "csv_semicolon_utf8_bom": lambda p: write_csv(p / "traject.csv", TRAJ_HEADER, TRAJ_ROWS, ";", "utf-8-sig"),
    "csv_semicolon_utf8": lambda p: write_csv(p / "traject.csv", TRAJ_HEADER, TRAJ_ROWS, ";", "utf-8"),
    "csv_semicolon_cp1252": lambda p: write_csv(p / "traject.csv", TRAJ_HEADER, TRAJ_ROWS, ";", "cp1252"),
    "csv_comma_utf8": lambda p: write_csv(p / "traject.csv", TRAJ_HEADER, TRAJ_ROWS, ",", "utf-8"),
    "csv_tab_utf8": lambda p: write_csv(p / "traject.csv", TRAJ_HEADER, TRAJ_ROWS, "\t", "utf-8"),
    "xlsx": lambda p: _write_xlsx(p / "traject.xlsx"),
    "sav": lambda p: _write_sav(p / "traject.sav"),
    "csv_canonical_names": lambda p: write_csv(p / "traject.csv", TRAJ_CANONICAL + ["interne_code"], TRAJ_ROWS, ";"),
}
ENCODINGS = {"csv_semicolon_utf8_bom": "utf-8-sig", "csv_semicolon_utf8": "utf-8-sig", "csv_semicolon_cp1252": "cp1252",
             "csv_comma_utf8": "utf-8-sig", "csv_tab_utf8": "utf-8-sig", "xlsx": None, "sav": None,
             "csv_canonical_names": "utf-8-sig"}


def test_the_forms_really_differ(tmp_path):
    """Guard against a writer that silently produces the same bytes for two forms."""
    contents = {}
    for name, make in TRAJ_FORMS.items():
        folder = tmp_path / name
        folder.mkdir()
        contents[name] = make(folder).read_bytes()
    assert len(set(contents.values())) == len(contents)
    assert contents["csv_semicolon_utf8_bom"].startswith(b"\xef\xbb\xbf")
    assert not contents["csv_semicolon_utf8"].startswith(b"\xef\xbb\xbf")
    assert "Cliëntnummer".encode("cp1252") in contents["csv_semicolon_cp1252"]
    assert b"Zo\xeb" in contents["csv_semicolon_cp1252"]
    with pytest.raises(UnicodeDecodeError):
        contents["csv_semicolon_cp1252"].decode("utf-8")
    assert b'"Scheiding ouders, verhuisd naar Zo\xc3\xab"' in contents["csv_comma_utf8"]  # quoted: holds the separator
    assert contents["xlsx"].startswith(b"PK\x03\x04")
    assert contents["sav"].startswith(b"$FL2")
    assert "Cliëntnummer".encode() in contents["sav"]  # the Dutch label, not the short name, maps the column


@pytest.mark.parametrize("form", list(TRAJ_FORMS))
def test_trajectory_delivery_reads_the_same_in_every_form(form, tmp_path, spec):
    path = TRAJ_FORMS[form](tmp_path)
    delivery, typed, errors, _ = read(path, spec)

    assert delivery.kind == TRAJECTORIES
    assert delivery.instrument is None
    assert (delivery.organisation, delivery.period) == ("ORG07", "2023")
    assert delivery.encoding == ENCODINGS[form]
    assert delivery.ignored_columns == (["interne_code"] if form == "csv_canonical_names" else ["Interne code"])
    assert sorted(delivery.columns.values()) == sorted(TRAJ_CANONICAL)
    assert errors == []

    assert list(typed.columns) == [c.name for c in spec.columns(TRAJECTORIES)]
    assert list(typed.index) == [0, 1, 2]
    for column, values in expected_trajectories().items():
        if column == "professional_experience":
            np.testing.assert_array_equal(typed[column].to_numpy(dtype=float), np.array(values, dtype=float))
        else:
            assert missing_as_none(typed[column]) == values, column
    for column in ("birth_date", "start_date", "end_date"):
        assert pd.api.types.is_datetime64_any_dtype(typed[column]), column


def test_every_form_gives_an_identical_frame(tmp_path, spec):
    frames = {}
    for name, make in TRAJ_FORMS.items():
        folder = tmp_path / name
        folder.mkdir()
        frames[name] = read(make(folder), spec)[1]
    reference = frames.pop("csv_semicolon_utf8_bom")
    for name, frame in frames.items():
        pd.testing.assert_frame_equal(frame, reference, check_dtype=False, obj=name)
        for column in ("birth_date", "start_date", "end_date", "professional_experience", "objection"):
            assert frame[column].dtype == reference[column].dtype, (name, column)


def test_chunked_reading_gives_the_same_values(tmp_path, spec):
    path = TRAJ_FORMS["csv_semicolon_utf8_bom"](tmp_path)
    _, whole, _, n_whole = read(path, spec)
    _, chunked, _, n_chunked = read(path, spec, chunk_rows=1)
    assert (n_whole, n_chunked) == (1, 3)
    assert list(chunked.index) == list(whole.index) == [0, 1, 2]  # chunks keep the file's row numbers
    assert list(chunked.columns) == list(whole.columns)
    for column in whole.columns:  # a one-row chunk may hold a column's missing value as None or NaN
        assert missing_as_none(chunked[column]) == missing_as_none(whole[column]), column


def test_xlsx_chunks_too(tmp_path, spec):
    _, typed, _, n = read(TRAJ_FORMS["xlsx"](tmp_path), spec, chunk_rows=2)
    assert n == 2
    assert typed["trajectory_id"].tolist() == ["T001", "T002", "T003"]


def test_headers_match_regardless_of_case_spaces_and_accents(tmp_path, spec):
    header = [h.upper() if i % 2 else f"  {h.lower()} " for i, h in enumerate(TRAJ_HEADER)]
    header[2] = "Clientnummer"  # without the diaeresis
    header[13] = "Ervaring  behandelaar (jaren)"
    path = write_csv(tmp_path / "traject.csv", header, TRAJ_ROWS)
    delivery, typed, errors, _ = read(path, spec)
    assert sorted(delivery.columns.values()) == sorted(TRAJ_CANONICAL)
    assert errors == []
    assert typed["client_id"].tolist() == ["C001", "C002", "C003"]


# --- measurement files ------------------------------------------------------------------------

CBCL_SCALES = ["Angstig/depressief", "Teruggetrokken/depressief", "Lichamelijke klachten", "Sociale problemen",
               "Denkproblemen", "Aandachtsproblemen", "Regelovertredend gedrag", "Agressief gedrag",
               "Internaliseren", "Externaliseren", "Totale problemen"]
CBCL_CODES = ["anxious_depressed", "withdrawn_depressed", "somatic_complaints", "social_problems", "thought_problems",
              "attention_problems", "rule_breaking", "aggressive", "internalising", "externalising", "total_problems"]
MEAS_HEADER = ["Organisatie", "Periode", "Cliëntnummer", "Trajectnummer", "Afnamenummer", "Vragenlijst", "Informant",
               "Meetmoment", "Afnamedatum"]
CBCL_HEADER = MEAS_HEADER + [f"{s} {part}" for s in CBCL_SCALES for part in ("ruw", "T")] + ["Opmerking afname"]


def _cbcl_rows(decimal: str) -> list[list[str]]:
    def scores(base: int, total_t: str) -> list[str]:
        out = []
        for i in range(len(CBCL_SCALES)):
            out += [str(base + i), str(55 + i)]
        out[-2:] = [str(base * 4), total_t]
        return out

    return [
        ["ORG07", "2023", "C001", "T001", "A001", "CBCL/6-18", "ouder", "voormeting", "12-09-2022",
         *scores(10, f"66{decimal}5"), "x"],
        ["ORG07", "2023", "C001", "T001", "A002", "CBCL/6-18", "Ouder", "nameting", "2023-02-27",
         *scores(3, "58"), ""],
    ]


def _cbcl_excel(path: Path) -> Path:
    frame = pd.DataFrame(_cbcl_rows("."), columns=CBCL_HEADER)
    for col in CBCL_HEADER[9:-1]:
        frame[col] = pd.to_numeric(frame[col])
    frame["Afnamedatum"] = parse_dates(frame["Afnamedatum"])
    frame.to_excel(path, index=False)
    return path


def _cbcl_sav(path: Path) -> Path:
    frame = pd.DataFrame(_cbcl_rows("."), columns=CBCL_HEADER)
    for col in CBCL_HEADER[9:-1]:
        frame[col] = pd.to_numeric(frame[col])
    frame["Afnamedatum"] = parse_dates(frame["Afnamedatum"])
    frame.columns = [f"v{i}" for i in range(len(CBCL_HEADER))]
    pyreadstat.write_sav(frame, str(path), column_labels=CBCL_HEADER)
    return path


CBCL_FORMS = {
    "csv_semicolon_decimal_comma": lambda p: write_csv(p / "cbcl.csv", CBCL_HEADER, _cbcl_rows(","), ";"),
    "csv_comma_decimal_point": lambda p: write_csv(p / "cbcl.csv", CBCL_HEADER, _cbcl_rows("."), ",", "utf-8"),
    "xlsx": lambda p: _cbcl_excel(p / "cbcl.xlsx"),
    "sav": lambda p: _cbcl_sav(p / "cbcl.sav"),
}


@pytest.mark.parametrize("form", list(CBCL_FORMS))
def test_cbcl_measurements_via_dutch_labels(form, tmp_path, spec):
    delivery, typed, errors, _ = read(CBCL_FORMS[form](tmp_path), spec)
    assert delivery.kind == "cbcl_6_18"
    assert delivery.instrument is not None and delivery.instrument.code == "cbcl_6_18"
    assert (delivery.organisation, delivery.period) == ("ORG07", "2023")
    assert delivery.ignored_columns == ["Opmerking afname"]
    assert delivery.columns["Totale problemen ruw"] == "total_problems_raw"
    assert delivery.columns["Totale problemen T"] == "total_problems_t"
    assert delivery.columns["Angstig/depressief T"] == "anxious_depressed_t"
    assert errors == []
    assert typed["instrument"].tolist() == ["CBCL/6-18"] * 2
    assert typed["informant"].tolist() == ["parent", "parent"]
    assert typed["moment"].tolist() == ["start", "end"]
    assert typed["date"].tolist() == [pd.Timestamp("2022-09-12"), pd.Timestamp("2023-02-27")]
    assert typed["total_problems_raw"].tolist() == [40, 12]
    assert typed["total_problems_t"].tolist() == [66.5, 58.0]  # decimal comma and decimal point alike
    assert typed["anxious_depressed_raw"].tolist() == [10, 3]
    assert typed["externalising_t"].tolist() == [64, 64]
    for code in CBCL_CODES:
        assert pd.api.types.is_numeric_dtype(typed[f"{code}_raw"]), code
        assert pd.api.types.is_numeric_dtype(typed[f"{code}_t"]), code


def test_cbcl_forms_give_identical_frames(tmp_path, spec):
    frames = []
    for name, make in CBCL_FORMS.items():
        (tmp_path / name).mkdir()
        frames.append(read(make(tmp_path / name), spec)[1])
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0], check_dtype=False)


def test_cbcl_missing_scale_column_is_a_missing_required_column(tmp_path, spec):
    header = [h for h in CBCL_HEADER if h != "Totale problemen T"]
    rows = [[v for h, v in zip(CBCL_HEADER, row) if h != "Totale problemen T"] for row in _cbcl_rows(",")]
    with pytest.raises(DeliveryError) as exc:
        open_delivery(write_csv(tmp_path / "cbcl.csv", header, rows), spec)
    assert exc.value.reason == dutch("err_missing_columns").format(columns="Totale problemen T")


SDQ_ANSWERS = [
    [str(i % 3) for i in range(25)],
    ["1"] * 24 + [""],
]


def _sdq_file(tmp_path: Path, item_label: str, answers=SDQ_ANSWERS) -> Path:
    header = MEAS_HEADER + [f"{item_label} {i}" for i in range(1, 26)]
    rows = [["ORG07", "2023-Q1", "C001", "T001", f"S00{n}", "SDQ", "jongere", "tussenmeting", "15-01-2023", *a]
            for n, a in enumerate(answers)]
    return write_csv(tmp_path / "sdq.csv", header, rows)


@pytest.mark.parametrize("item_label", ["Vraag", "Item", "item_"])
def test_sdq_items(item_label, tmp_path, spec):
    label = item_label if item_label != "item_" else "item"
    path = _sdq_file(tmp_path, label)
    if item_label == "item_":  # the canonical names item_1 .. item_25
        text = path.read_text(encoding="utf-8-sig").replace("item ", "item_")
        path.write_text(text, encoding="utf-8-sig")
    delivery, typed, errors, _ = read(path, spec)
    assert delivery.kind == "sdq"
    assert delivery.period == "2023-Q1"
    assert delivery.ignored_columns == []
    assert errors == []
    assert typed["informant"].tolist() == ["youth", "youth"]
    assert typed["moment"].tolist() == ["during", "during"]
    items = typed[[f"item_{i}" for i in range(1, 26)]]
    assert items.iloc[0].tolist() == [i % 3 for i in range(25)]
    assert items.iloc[1, :24].tolist() == [1] * 24
    assert np.isnan(items.iloc[1, 24])


def test_sdq_non_numeric_answer_is_a_row_error(tmp_path, spec):
    answers = [["1"] * 25, ["1"] * 25]
    answers[1][2] = "twee"
    _, typed, errors, _ = read(_sdq_file(tmp_path, "Vraag", answers), spec)
    assert [(e.index, e.rule, e.column, e.value) for e in errors] == [(1, "type_number:item_3", "item_3", "twee")]
    assert errors[0].message == dutch("row_type_number").format(label="Vraag 3")
    assert np.isnan(typed.at[1, "item_3"])
    assert typed.at[0, "item_3"] == 1


def test_instrument_aliases_resolve_to_the_code(tmp_path, spec):
    for alias in ("CBCL", "cbcl 6-18", "cbcl_6_18"):
        rows = _cbcl_rows(",")
        for row in rows:
            row[5] = alias
        delivery = open_delivery(write_csv(tmp_path / "cbcl.csv", CBCL_HEADER, rows), spec)
        assert delivery.kind == "cbcl_6_18", alias


# --- coercion: values as exports write them ---------------------------------------------------

def test_date_formats(spec):
    values = pd.Series(["17-04-2011", "2011-04-17", "17/04/2011", "17.04.2011", "2011-04-17 00:00:00", "2011/04/17",
                        "05-09-2022", "30-02-2011", "2011-13-01", "17 april 2011", None])
    parsed = parse_dates(values)
    assert parsed.iloc[:6].tolist() == [pd.Timestamp("2011-04-17")] * 6
    assert parsed.iloc[6] == pd.Timestamp("2022-09-05")  # day first, not September the 5th read as May
    assert parsed.iloc[7:].isna().all()


def _traj_frame(**columns: list[str]) -> pd.DataFrame:
    """Renamed delivery rows: the first trajectory row, with the given columns' values row by row."""
    n = len(next(iter(columns.values())))
    assert all(len(v) == n for v in columns.values())
    row = dict(zip(TRAJ_CANONICAL, TRAJ_ROWS[0]))
    return pd.DataFrame([{**row, **{c: v[i] for c, v in columns.items()}} for i in range(n)], dtype=object)


@pytest.mark.parametrize("column,values,expected", [
    ("lvb", ["ja", "nee", "Ja ", "NEE", "j", "n", "1", "0", "yes", "no", "waar", "onwaar", "true", "False"],
     [True, False, True, False, True, False, True, False, True, False, True, False, True, False]),
    ("gender", ["M", "V", "m", "v", "man", "vrouw", "Jongen", "Meisje", "X", "onbekend", "O"],
     ["male", "female", "male", "female", "male", "female", "male", "female", "other", "unknown", "unknown"]),
    ("intervention", ["MST", "mst", "Multisysteemtherapie", "IAG", "Residentiële behandeling",
                      "residentiele behandeling", "MTFC"],
     ["mst", "mst", "mst", "iag", "residentiele_behandeling", "residentiele_behandeling",
      "multidimensionale_pleegzorg"]),
    ("end_reason", ["volgens plan", "Voortijdig door cliënt", "voortijdig door client", "Verhuizing"],
     ["planned", "dropout_client", "dropout_client", "moved"]),
])
def test_value_labels_map_to_canonical_values(column, values, expected, spec):
    typed, errors = coerce(_traj_frame(**{column: values}), spec.columns(TRAJECTORIES), spec)
    assert errors == []
    assert typed[column].tolist() == expected


def test_unknown_labels_pass_through_for_the_suite_to_judge(spec):
    typed, errors = coerce(_traj_frame(gender=["Q"], intervention=["Yoga"]), spec.columns(TRAJECTORIES), spec)
    assert errors == []  # not a type error: the expectation suite's in_set rule quarantines these
    assert typed.at[0, "gender"] == "Q"
    assert typed.at[0, "intervention"] == "Yoga"


def test_decimal_comma_in_numbers(spec):
    frame = _traj_frame(professional_experience=["7", "7,0", "7.0", " 12 "])
    typed, errors = coerce(frame, spec.columns(TRAJECTORIES), spec)
    assert errors == []
    assert typed["professional_experience"].tolist() == [7, 7, 7, 12]


def test_type_errors_become_row_errors(spec):
    frame = pd.DataFrame([dict(zip(TRAJ_CANONICAL, TRAJ_ROWS[0])) for _ in range(6)], dtype=object)
    frame.index = [10, 11, 12, 13, 14, 15]
    frame.at[10, "birth_date"] = "31-02-2011"
    frame.at[11, "start_date"] = "gisteren"
    frame.at[12, "professional_experience"] = "2,5"  # an integer column
    frame.at[13, "professional_experience"] = "zeven"
    frame.at[14, "lvb"] = "misschien"
    frame.at[15, "end_date"] = "2023-13-01"
    typed, errors = coerce(frame, spec.columns(TRAJECTORIES), spec)
    got = sorted((e.index, e.rule, e.column, e.value, e.message) for e in errors)
    assert got == [
        (10, "type_date:birth_date", "birth_date", "31-02-2011", dutch("row_type_date").format(label="Geboortedatum")),
        (11, "type_date:start_date", "start_date", "gisteren", dutch("row_type_date").format(label="Startdatum")),
        (12, "type_number:professional_experience", "professional_experience", "2,5",
         dutch("row_type_number").format(label="Ervaring behandelaar (jaren)")),
        (13, "type_number:professional_experience", "professional_experience", "zeven",
         dutch("row_type_number").format(label="Ervaring behandelaar (jaren)")),
        (14, "type_boolean:lvb", "lvb", "misschien", dutch("row_type_boolean").format(label="LVB")),
        (15, "type_date:end_date", "end_date", "2023-13-01", dutch("row_type_date").format(label="Einddatum")),
    ]
    assert all(isinstance(e, RowError) for e in errors)
    # the failing cell is emptied, the rest of the row is typed
    assert pd.isna(typed.at[10, "birth_date"]) and typed.at[10, "start_date"] == pd.Timestamp("2022-09-05")
    assert pd.isna(typed.at[11, "start_date"])
    assert pd.isna(typed.at[12, "professional_experience"]) and pd.isna(typed.at[13, "professional_experience"])
    assert typed.at[14, "lvb"] is None and typed["objection"].dtype == bool and not typed.at[14, "objection"]
    assert pd.isna(typed.at[15, "end_date"])
    assert typed.at[11, "professional_experience"] == 7


def test_type_errors_through_open_delivery_carry_the_frame_index(tmp_path, spec):
    rows = [list(r) for r in TRAJ_ROWS]
    rows[2][5] = "29-02-2011"  # not a leap year
    _, _, errors, _ = read(write_csv(tmp_path / "traject.csv", TRAJ_HEADER, rows), spec, chunk_rows=2)
    assert [(e.index, e.rule) for e in errors] == [(2, "type_date:birth_date")]


def test_empty_cells_are_missing_not_errors(spec):
    frame = _traj_frame(end_date=["", "   "], lvb=["", " "], professional_experience=["", ""])
    typed, errors = coerce(frame, spec.columns(TRAJECTORIES), spec)
    assert errors == []
    assert typed["end_date"].isna().all()
    assert typed["lvb"].isna().all()
    assert typed["professional_experience"].isna().all()


# --- bad files --------------------------------------------------------------------------------



def test_every_bad_file_is_documented():
    on_disk = {p.name for p in BAD.iterdir() if p.name != "README.md"}
    assert on_disk == set(BAD_FILES)
    assert len(BAD_FILES) >= 13
    for key, message in BAD_FILES.values():
        assert key in TEXTS, key
        assert re.fullmatch(template_regex(dutch(key)), message.replace("…", "x")), (key, message)


def test_bad_files_are_what_the_readme_says():
    assert (BAD / "empty.csv").stat().st_size == 0
    assert (BAD / "utf16.csv").read_bytes().startswith(b"\xff\xfe")
    junk = (BAD / "invalid_encoding.csv").read_bytes()
    assert b"\x81\x8d" in junk
    for encoding in ("utf-8", "cp1252"):
        with pytest.raises(UnicodeDecodeError):
            junk.decode(encoding)
    assert b"\x00" in (BAD / "binary_junk.csv").read_bytes()
    assert (BAD / "pdf_named.xlsx").read_bytes().startswith(b"%PDF")
    assert (BAD / "xlsx_named.csv").read_bytes().startswith(b"PK\x03\x04")
    assert (BAD / "truncated.xlsx").read_bytes().startswith(b"PK\x03\x04")
    header = (BAD / "missing_birth_date.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert "Geboortedatum" not in header and "Startdatum" in header


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_refused_with_a_named_reason(name, spec):
    key, message = BAD_FILES[name]
    with pytest.raises(DeliveryError) as exc:
        open_delivery(BAD / name, spec)
    err = exc.value
    assert err.path.name == name
    assert str(err).startswith(f"{name}: ")
    assert str(err) == f"{name}: {err.reason}"
    assert re.fullmatch(template_regex(dutch(key)), err.reason), err.reason
    assert re.fullmatch(message_regex(message), err.reason), err.reason


def test_unknown_instrument_lists_the_known_ones(spec):
    with pytest.raises(DeliveryError) as exc:
        open_delivery(BAD / "unknown_instrument.csv", spec)
    known = exc.value.reason.split("bekend zijn: ", 1)[1].split(", ")
    assert known == sorted(spec.instruments)
    assert "cbcl_6_18" in known and "sdq" in known


def test_missing_file(tmp_path, spec):
    with pytest.raises(DeliveryError) as exc:
        open_delivery(tmp_path / "weg.csv", spec)
    assert str(exc.value) == f"weg.csv: {dutch('err_missing_file')}"


def test_a_header_with_only_blank_lines_is_empty(tmp_path, spec):
    path = tmp_path / "leeg.csv"
    path.write_bytes(b"\xef\xbb\xbf\r\n\r\n")
    with pytest.raises(DeliveryError) as exc:
        open_delivery(path, spec)
    assert exc.value.reason == dutch("err_empty")


def test_header_only_spreadsheet_has_no_rows(tmp_path, spec):
    path = tmp_path / "leeg.xlsx"
    pd.DataFrame(columns=TRAJ_HEADER).to_excel(path, index=False)
    with pytest.raises(DeliveryError) as exc:
        open_delivery(path, spec)
    assert exc.value.reason == dutch("err_no_rows")


def test_broken_layout_after_the_first_chunk_is_still_a_delivery_error(spec):
    delivery = open_delivery(BAD / "too_many_fields.csv", spec, chunk_rows=1)
    with pytest.raises(DeliveryError) as exc:
        list(delivery.chunks)
    assert str(exc.value).startswith("too_many_fields.csv: ")
    assert re.fullmatch(template_regex(dutch("err_csv_parse")), exc.value.reason)


def test_utf16_without_bom_is_not_taken_for_text(tmp_path, spec):
    path = tmp_path / "utf16le.csv"
    path.write_bytes(";".join(TRAJ_HEADER).encode("utf-16-le"))
    with pytest.raises(DeliveryError) as exc:
        open_delivery(path, spec)
    assert exc.value.reason == dutch("err_binary")


def test_sav_with_an_empty_date_is_not_a_type_error(tmp_path, spec):
    """SPSS gives NaT for an empty date cell; it must read as missing, not as the text 'NaT'."""
    _, typed, errors, _ = read(_write_sav(tmp_path / "traject.sav"), spec)
    assert errors == []
    assert typed["end_date"].isna().tolist() == [False, True, True]


# --- limits against hostile files (the refusals themselves: tests/test_ingest_bad_files.py) ----------

DEFAULTS = Limits.from_settings(Settings())


def test_the_hostile_files_writer_makes_a_good_xlsx_too(tmp_path, spec):
    """Guard: the minimal XLSX writer of tests/bad_files.py is not itself what gets refused."""
    delivery, typed, errors, _ = read(bad_files.xlsx_good(tmp_path, rows=3), spec)
    assert (delivery.kind, delivery.organisation, delivery.period) == (TRAJECTORIES, "ORG07", "2023")
    assert typed["trajectory_id"].tolist() == ["T2", "T3", "T4"]
    assert errors == []


@pytest.mark.parametrize("form", ["csv", "xlsx"])
def test_the_row_limit_is_exact_across_blocks(form, tmp_path, spec):
    """Rows are counted while the file streams in 1 MiB blocks: a file of exactly the limit passes,
    one row more is refused."""
    n = 40_000  # several blocks in either form
    if form == "csv":
        path = bad_files._write_csv(tmp_path / "traject.csv",
                                    [[*bad_files.TRAJECTORY_ROW[:2], f"C{i}", f"T{i}", *bad_files.TRAJECTORY_ROW[4:]]
                                     for i in range(n)])
    else:
        path = bad_files.write_xlsx(tmp_path / "traject.xlsx",
                                    iter([bad_files._row(1, bad_files.TRAJECTORY_HEADER), *bad_files.delivery_rows(n)]))
    assert path.stat().st_size > 2**20 or form == "xlsx"
    open_delivery(path, spec, chunk_rows=10, limits=dataclasses.replace(DEFAULTS, max_rows=n))
    with pytest.raises(DeliveryError) as exc:
        open_delivery(path, spec, chunk_rows=10, limits=dataclasses.replace(DEFAULTS, max_rows=n - 1))
    assert exc.value.reason == dutch("err_too_many_rows").format(limit=n - 1)


def test_the_defaults_never_refuse_a_realistic_delivery(tmp_path):
    """Measure a synthetic BergOp delivery per row and scale it up: the whole archive of 112,000 CBCLs
    in one file, in CSV or XLSX, and 10 million questionnaires in CSV pieces stay within every
    default limit, with room to spare."""
    n = 1_000
    for form in ("csv", "xlsx"):
        generate(tmp_path / form, questionnaires=n, organisations=1, instruments=["cbcl_6_18"], file_format=form,
                 catalog_dir=REPO_ROOT / "catalog")
    [cbcl_csv] = (tmp_path / "csv").glob("*cbcl*")
    [cbcl_xlsx] = (tmp_path / "xlsx").glob("*cbcl*")
    rows = len(cbcl_csv.read_bytes().splitlines()) - 1
    lines = cbcl_csv.read_bytes().splitlines()
    columns = len(lines[0].split(b";"))
    assert columns * 10 < DEFAULTS.max_columns
    assert max(map(len, lines)) * 100 < DEFAULTS.max_line_bytes
    per_row_csv = cbcl_csv.stat().st_size / rows
    assert 112_000 * per_row_csv * 10 < DEFAULTS.max_file_bytes
    assert 10_000_000 < DEFAULTS.max_rows and 10_000_000 * per_row_csv < DEFAULTS.max_file_bytes  # even in one piece
    with zipfile.ZipFile(cbcl_xlsx) as archive:
        unpacked = sum(i.file_size for i in archive.infolist())
        worst_ratio = max(i.file_size / i.compress_size for i in archive.infolist() if i.file_size > 2**16)
    assert 112_000 / rows * unpacked * 4 < DEFAULTS.max_unpacked_bytes
    assert 112_000 / rows * cbcl_xlsx.stat().st_size * 10 < DEFAULTS.max_file_bytes
    assert worst_ratio * 5 < DEFAULTS.max_inflation
    assert 112_000 < EXCEL_MAX_ROWS - 1 and 112_000 < DEFAULTS.max_rows
    read_csv = open_delivery(cbcl_csv, load_spec(REPO_ROOT / "catalog"), limits=DEFAULTS)
    read_xlsx = open_delivery(cbcl_xlsx, load_spec(REPO_ROOT / "catalog"), limits=DEFAULTS)
    assert sum(map(len, read_csv.chunks)) == sum(map(len, read_xlsx.chunks)) == rows


def test_limits_come_from_the_settings():
    settings = Settings(delivery_max_rows=7, delivery_max_columns=8, delivery_max_cell_chars=9)
    limits = Limits.from_settings(settings)
    assert (limits.max_rows, limits.max_columns, limits.max_cell_chars) == (7, 8, 9)
    assert DEFAULTS.max_cell_chars == 32_767  # Excel's own cell limit


# --- the registry of file kinds ---------------------------------------------------------------

CONTACTS_KIND = """
  - name: contacts
    title: Contactmomenten
    doc: "One row per contact with the family."
    recognised_by: [contact_id]
    columns:
      - {name: contact_id, label: Contactnummer, type: string, required: true, identifier: contact, example: "K101"}
      - {name: contact_date, label: Contactdatum, type: date, required: true, example: "2023-01-09"}
      - {name: contact_type, label: Contactvorm, type: string, required: true, values: [face_to_face, phone, video],
         example: "phone"}
      - {name: duration_minutes, label: "Duur (minuten)", type: integer, required: false, min: 0, max: 480,
         example: "45"}
      - {name: note, label: Notitie, type: text, required: false, example: "belde over de afspraak"}
    key: contact_id
    table: records
    load: records
    refers_to: trajectories
    file_name: contacten
    file_pattern: contact
    synth: per_trajectory
"""


def test_the_kinds_of_file_are_declared_in_the_catalogue(spec):
    """Trajectory files first (measurements refer to them), then one kind per instrument."""
    assert spec.kind_names() == [TRAJECTORIES, *sorted(spec.instruments)]
    assert [(k.name, k.key, k.table, k.refers_to) for k in spec.kinds] == [
        (TRAJECTORIES, "trajectory_id", "trajectories", None),
        ("measurements", "administration_id", "measurements", TRAJECTORIES)]
    assert spec.kind("sdq").name == "measurements" and spec.kind("sdq").per_instrument
    assert [c.name for c in spec.columns("sdq")][:9] == [c.name for c in (*spec.common, *spec.measurements)]
    assert [c.name for c in spec.columns(TRAJECTORIES)] == [c.name for c in (*spec.common, *spec.trajectories)]
    names = ["ORG01_sdq_2024.csv", "ORG01_trajecten_2024.csv", "ORG02_Trajectories.xlsx"]
    assert sorted(names, key=spec.import_rank) == ["ORG01_trajecten_2024.csv", "ORG02_Trajectories.xlsx",
                                                   "ORG01_sdq_2024.csv"]


def test_a_catalogue_without_kinds_of_file_is_refused_by_name(tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(REPO_ROOT / "catalog", catalog)
    text = (catalog / "delivery.yaml").read_text(encoding="utf-8")
    (catalog / "delivery.yaml").write_text(text[:text.index("\nkinds:")], encoding="utf-8")
    with pytest.raises(ValueError, match="declares no `kinds:`"):
        load_spec(catalog)


def test_a_measurement_file_that_carries_trajectory_columns_is_a_measurement_file(tmp_path, spec):
    """Kinds are tried from the last to the first: a file that refers to trajectories may repeat their columns."""
    path = write_csv(tmp_path / "sdq.csv", [
        "Organisatie", "Periode", "Cliëntnummer", "Trajectnummer", "Interventie", "Startdatum", "Afnamenummer",
        "Vragenlijst", "Informant", "Meetmoment", "Afnamedatum"],
        [["ORG01", "2024", "C1", "T1", "MST", "01-02-2023", "A1", "SDQ", "ouder", "start", "01-03-2023"]])
    delivery = open_delivery(path, spec)
    assert (delivery.kind, delivery.instrument.code) == ("sdq", "sdq")
    assert {"intervention", "start_date"} <= set(delivery.columns.values())  # read, not judged by them


def test_a_new_kind_of_file_is_one_entry_in_the_catalogue(settings, tmp_path, spec):
    """One entry in catalog/delivery.yaml and no code: the synthesiser writes the kind, its suite validates it,
    the import loads it (after the trajectories it refers to) and the format documentation lists it."""
    catalog = tmp_path / "catalog"
    shutil.copytree(REPO_ROOT / "catalog", catalog)
    with open(catalog / "delivery.yaml", "a", encoding="utf-8") as fh:
        fh.write(CONTACTS_KIND)
    new_spec = load_spec(catalog)
    assert new_spec.kind_names()[-1] == "contacts"

    suites = tmp_path / "expectations"
    write_suites(new_spec, suites)
    suite = json.loads((suites / "contacts.json").read_text(encoding="utf-8"))
    assert {(e["meta"]["rule"], e["meta"]["column"]) for e in suite["expectations"]} >= {
        ("not_null", "contact_id"), ("in_set", "contact_type"), ("between", "duration_minutes"),
        ("unique", "contact_id")}
    assert {p.name for p in suites.iterdir()} == {f"{k}.json" for k in new_spec.kind_names()}

    made = generate(tmp_path / "in", questionnaires=300, organisations=2, seed=3, instruments=["sdq"],
                    invalid_share=0.0, catalog_dir=catalog)
    contacts = {name: info for name, info in made.files.items() if info.kind == "contacts"}
    assert sorted(contacts) == ["ORG01_contacten_2024.csv", "ORG02_contacten_2024.csv"]
    assert sum(i.rows for i in contacts.values()) == made.trajectories
    assert made.questionnaires_by_instrument().keys() == {"sdq"}
    first = tmp_path / "in" / "ORG01_contacten_2024.csv"
    lines = first.read_text(encoding=made.files[first.name].encoding).splitlines()
    header = lines[0].split(";")
    broken = lines[1].split(";")
    broken[header.index("Duur (minuten)")] = "999"  # one row the suite must catch
    lines[1] = ";".join(broken)
    first.write_text("\n".join(lines) + "\n", encoding=made.files[first.name].encoding)
    contact_ids = {line.split(";")[header.index("Contactnummer")] for line in lines[1:]}

    custom = settings.model_copy(update={"catalog_dir": catalog, "expectations_dir": suites})
    ingestor = Ingestor(custom)
    files = delivery_files([tmp_path / "in"], ingestor.spec)
    assert ["traject" in p.name for p in files] == [True] * 2 + [False] * 4  # the contacts after the trajectories
    reports = {Path(r.file).name: r for r in ingestor.ingest_many(files)}
    assert {r.status for r in reports.values()} == {"loaded"}
    assert reports[first.name].kind == "contacts"
    assert reports[first.name].rules == {"between:duration_minutes": 1}
    loaded = sum(i.rows for i in contacts.values()) - 1
    assert sum(reports[name].rows_loaded for name in contacts) == loaded
    with ingestor.engine.connect() as conn:
        records = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM records"))]
        trajectories = dict(conn.execute(sa.text("SELECT pseudonym, client FROM trajectories")).all())
        quarantined = conn.execute(sa.text("SELECT row FROM quarantine")).scalar_one()
    assert len(records) == loaded and {r["kind"] for r in records} == {"contacts"}
    assert all(trajectories[r["trajectory"]] == r["client"] for r in records)  # the same pseudonyms
    values = [json.loads(r["values"]) if isinstance(r["values"], str) else r["values"] for r in records]
    assert {v["contact_type"] for v in values} <= {"face_to_face", "phone", "video"}
    assert all(0 <= v["duration_minutes"] <= 480 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v["contact_date"])
               for v in values)
    stored = json.dumps(records, default=str) + json.dumps(quarantined, default=str)
    assert not [i for i in contact_ids if i in stored]  # contact numbers are pseudonymised
    assert all(v["contact_id"] not in contact_ids for v in values)

    markdown = delivery_format_markdown(new_spec)
    assert "## Contactmomenten" in markdown and "| Contactvorm | `contact_type` |" in markdown
    assert markdown.startswith(delivery_format_markdown(spec).rstrip("\n"))  # after the kinds there were


@pytest.fixture(autouse=True)
def _dutch_messages(monkeypatch):
    """The messages are checked in Dutch, the default language."""
    from ldj import settings as settings_module

    monkeypatch.setattr(settings_module, "get_settings", lambda: settings_module.Settings(language="nl"))
