"""A bad file is rejected whole: one `rejected` batch with the reason, nothing loaded, nothing in
quarantine; the CLI exits 2 with the file name and the reason, without a traceback.

The files and their messages are listed in tests/data/bad/README.md (see tests/test_delivery.py).
Hostile files (bombs, absurdly wide rows and cells, files that lie about their size) are made at run
time by tests/bad_files.py and must be refused with a message that names the file and the limit.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

import bad_files
from bad_files import BAD, BAD_FILES, message_regex
from ldj import store
from ldj.i18n import TEXTS
from ldj.ingest import Ingestor

LDJ = Path(sys.executable).parent / "ldj"
LOADED_TABLES = ("trajectories", "measurements", "clients", "professionals", "teams", "organisations", "quarantine")




def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(store.metadata.tables[name])).scalar_one()
                for name in LOADED_TABLES}


def batches(engine: sa.Engine) -> list[dict]:
    b = store.import_batches
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(b).order_by(b.c.id))]


@pytest.fixture(autouse=True)
def _dutch_messages(monkeypatch):
    from ldj import settings as settings_module

    monkeypatch.setattr(settings_module, "get_settings", lambda: settings_module.Settings(language="nl"))


def test_the_corpus_is_there():
    assert len(BAD_FILES) >= 13
    assert all((BAD / name).is_file() for name in BAD_FILES)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_rejected_whole(name, settings):
    key, message = BAD_FILES[name]
    ingestor = Ingestor(settings, progress=False, imported_by="steward")
    report = ingestor.ingest(BAD / name, delivered_by="ORG07 datateam")

    assert report.status == "rejected"
    assert report.unusable
    assert re.fullmatch(message_regex(message), report.error), report.error
    assert (report.rows_loaded, report.rows_quarantined) == (0, 0)
    assert report.lines("nl") == [TEXTS["report_rejected"][0].format(file=name, reason=report.error)]

    rows = batches(ingestor.engine)
    assert len(rows) == 1
    batch = rows[0]
    assert batch["id"] == report.batch_id
    assert batch["status"] == "rejected"
    assert batch["file_name"] == name
    assert batch["error"] == report.error
    assert batch["checksum"] == hashlib.sha256((BAD / name).read_bytes()).hexdigest()
    assert batch["size_bytes"] == (BAD / name).stat().st_size
    assert (batch["delivered_by"], batch["imported_by"]) == ("ORG07 datateam", "steward")
    assert batch["rows_loaded"] == 0
    assert batch["report"]["status"] == "rejected" and batch["report"]["error"] == report.error
    assert counts(ingestor.engine) == dict.fromkeys(LOADED_TABLES, 0)


def test_rejected_file_is_tried_again_not_taken_for_a_duplicate(settings):
    ingestor = Ingestor(settings, progress=False)
    first = ingestor.ingest(BAD / "two_organisations.csv")
    second = ingestor.ingest(BAD / "two_organisations.csv")
    assert (first.status, second.status) == ("rejected", "rejected")
    assert [b["status"] for b in batches(ingestor.engine)] == ["rejected", "rejected"]
    assert counts(ingestor.engine) == dict.fromkeys(LOADED_TABLES, 0)


def test_layout_error_in_a_later_chunk_rolls_back_the_rows_already_loaded(settings):
    """Row 1 is loaded in chunk 1 before row 2 turns out broken: the whole file must still go."""
    settings = settings.model_copy(update={"ingest_chunk_rows": 1})
    ingestor = Ingestor(settings, progress=False)
    loaded = []
    real_write = ingestor._write

    def spy(conn, name, rule, rows, batch_id):
        real_write(conn, name, rule, rows, batch_id)
        if name == "trajectories":
            loaded.append(rows.num_rows)

    ingestor._write = spy
    report = ingestor.ingest(BAD / "too_many_fields.csv")
    assert loaded == [1]  # the first chunk did reach the tables
    assert report.status == "rejected"
    assert (report.kind, report.organisation) == ("trajectories", "ORG07")
    assert report.error.startswith(TEXTS["err_csv_parse"][0].split("{")[0])
    assert [b["status"] for b in batches(ingestor.engine)] == ["rejected"]
    assert counts(ingestor.engine) == dict.fromkeys(LOADED_TABLES, 0)


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDJ_")}
    env.update(LDJ_DATA_DIR=str(tmp_path / "var"), LDJ_PROGRESS="never", LDJ_LANGUAGE="nl")
    return subprocess.run([str(LDJ), "ingest", *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_cli_rejects_one_bad_file_with_exit_status_2(tmp_path):
    name = "missing_birth_date.csv"
    result = _cli([str(BAD / name)], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip() == TEXTS["report_rejected"][0].format(
        file=name, reason=TEXTS["err_missing_columns"][0].format(columns="Geboortedatum"))
    assert result.stdout == ""


def test_cli_rejects_every_bad_file_and_names_each(tmp_path):
    folder = tmp_path / "levering"
    shutil.copytree(BAD, folder)
    (folder / "README.md").unlink()
    files = sorted(BAD_FILES)
    result = _cli([str(folder / f) for f in files], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(files), result.stderr
    for name, line in zip(files, lines):
        _key, message = BAD_FILES[name]
        expected = TEXTS["report_rejected"][0].format(file=name, reason="\x00").split("\x00")
        assert line.startswith(expected[0]), line
        assert re.fullmatch(message_regex(message), line[len(expected[0]):]), line
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'var' / 'ldj.sqlite'}")
    assert [b["status"] for b in batches(engine)] == ["rejected"] * len(files)
    assert counts(engine) == dict.fromkeys(LOADED_TABLES, 0)
    engine.dispose()


def test_cli_still_imports_the_good_file_next_to_a_bad_one(tmp_path):
    good = tmp_path / "traject.csv"
    header = "Organisatie;Periode;Cliëntnummer;Trajectnummer;Team;Geboortedatum;Geslacht;Bezwaar;Interventie;Startdatum"
    good.write_text(header + "\r\nORG07;2023;C001;T001;Team Noord;17-04-2011;V;nee;MST;05-09-2022\r\n",
                    encoding="utf-8-sig")
    result = _cli([str(BAD / "empty.csv"), str(good)], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "empty.csv" in result.stderr and TEXTS["err_empty"][0] in result.stderr
    assert "traject.csv" in result.stdout and "traject.csv" not in result.stderr
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'var' / 'ldj.sqlite'}")
    assert sorted((Path(b["file_name"]).name, b["status"]) for b in batches(engine)) == [
        ("empty.csv", "rejected"), ("traject.csv", "loaded")]  # trajectory files go first
    assert counts(engine)["trajectories"] == 1
    engine.dispose()


# --- hostile files: refused fast, in bounded memory, naming the file and the limit ----------------

CELL_LIMIT = "de grens is 32767 (LDJ_DELIVERY_MAX_CELL_CHARS)"
LINE_LIMIT = "de grens is 1 MiB (LDJ_DELIVERY_MAX_LINE_BYTES = 1048576)"
HOSTILE = {  # maker -> the Dutch message at the default limits (`…`: a part that varies)
    "xlsx_many_rows": (bad_files.xlsx_many_rows,
                       "werkblad xl/worksheets/sheet1.xml heeft meer dan 1048576 rijen, meer dan Excel zelf toelaat"),
    "xlsx_sheet_elsewhere": (bad_files.xlsx_sheet_elsewhere,
                             "werkblad xl/data/blad.xml heeft meer dan 1048576 rijen, meer dan Excel zelf toelaat"),
    "xlsx_compression_bomb": (bad_files.xlsx_compression_bomb,
                              "onderdeel xl/worksheets/sheet1.xml pakt … keer zo groot uit als het ingepakt is; "
                              "de grens is 200 keer (LDJ_DELIVERY_MAX_INFLATION)"),
    "xlsx_lying_directory": (bad_files.xlsx_lying_directory,
                             "uitgepakt is het Excel-bestand 8.0 GiB groot; de grens is 4 GiB "
                             "(LDJ_DELIVERY_MAX_UNPACKED_BYTES = 4294967296)"),
    "xlsx_shared_strings": (bad_files.xlsx_shared_strings,
                            "het Excel-bestand bevat meer dan 10000 gedeelde teksten bij maar 21 cellen"),
    "xlsx_huge_cell": (bad_files.xlsx_huge_cell,
                       f"xl/worksheets/sheet1.xml bevat een cel van meer dan 32767 tekens; {CELL_LIMIT}"),
    "xlsx_long_cell": (bad_files.xlsx_long_cell,
                       f"de cel in kolom Toelichting op regel 3 is langer dan 32767 tekens; {CELL_LIMIT}"),
    "xlsx_many_parts": (bad_files.xlsx_many_parts,
                        "het Excel-bestand bestaat uit 20006 onderdelen; een werkmap heeft er hoogstens 10000"),
    "xlsx_wide": (bad_files.xlsx_wide, "het bestand heeft 3000 kolommen; de grens is 2000 (LDJ_DELIVERY_MAX_COLUMNS)"),
    "xlsx_with_macros": (bad_files.xlsx_with_macros,
                         "het Excel-bestand bevat macro's of ingesloten objecten (xl/vbaProject.bin); "
                         "lever een .xlsx zonder macro's en objecten aan"),
    "csv_wide": (bad_files.csv_wide, "het bestand heeft 100000 kolommen; de grens is 2000 (LDJ_DELIVERY_MAX_COLUMNS)"),
    "csv_huge_cell": (bad_files.csv_huge_cell, f"regel 3 is langer dan 1 MiB; {LINE_LIMIT}"),
    "csv_long_cell": (bad_files.csv_long_cell,
                      f"de cel in kolom Toelichting op regel 3 is langer dan 32767 tekens; {CELL_LIMIT}"),
    "csv_without_newlines": (bad_files.csv_without_newlines, f"regel 1 is langer dan 1 MiB; {LINE_LIMIT}"),
    "csv_many_rows": (lambda folder: bad_files.csv_many_rows(folder, 20_000_001),
                      "het bestand heeft meer dan 20000000 gegevensregels; de grens is 20000000 (LDJ_DELIVERY_MAX_ROWS)"),
    "oversized": (lambda folder: bad_files.oversized(folder, 4 * 2**30 + 1),
                  "het bestand is 4.0 GiB groot; de grens is 4 GiB (LDJ_DELIVERY_MAX_FILE_BYTES = 4294967296)"),
    "sav_billion_cases": (bad_files.sav_billion_cases,
                          "het SPSS-bestand zegt 1000000000 gevallen te bevatten; de grens is 20000000 "
                          "(LDJ_DELIVERY_MAX_ROWS)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_is_refused_naming_the_file_and_the_limit(case, tmp_path, sqlite_settings):
    make, message = HOSTILE[case]
    path = make(tmp_path)
    ingestor = Ingestor(sqlite_settings, progress=False)
    report = ingestor.ingest(path)

    assert report.status == "rejected" and report.unusable
    assert re.fullmatch(message_regex(message), report.error), report.error
    assert report.lines("nl") == [f"{path.name}: AFGEWEZEN — {report.error}"]
    assert (report.rows_loaded, report.rows_quarantined) == (0, 0)
    [batch] = batches(ingestor.engine)
    assert (batch["status"], batch["file_name"], batch["error"]) == ("rejected", path.name, report.error)
    assert batch["size_bytes"] == path.stat().st_size
    assert counts(ingestor.engine) == dict.fromkeys(LOADED_TABLES, 0)


def test_a_file_over_the_size_limit_is_not_even_read_for_its_checksum(tmp_path, sqlite_settings):
    path = bad_files.oversized(tmp_path, 4 * 2**30 + 1)  # sparse: reading it would take long, not disk
    ingestor = Ingestor(sqlite_settings, progress=False)
    assert ingestor.ingest(path).status == "rejected"
    [batch] = batches(ingestor.engine)
    assert batch["checksum"] == ""  # not computed: the file was refused unread


@pytest.mark.parametrize("make", [lambda f: bad_files.xlsx_good(f, rows=3),
                                  lambda f: bad_files._write_csv(f / "drie.csv", [bad_files.TRAJECTORY_ROW] * 3)],
                         ids=["xlsx", "csv"])
def test_limits_are_settings(make, tmp_path, sqlite_settings):
    settings = sqlite_settings.model_copy(update={"delivery_max_rows": 2})
    ingestor = Ingestor(settings, progress=False)
    report = ingestor.ingest(make(tmp_path))
    assert report.status == "rejected"
    assert report.error == "het bestand heeft meer dan 2 gegevensregels; de grens is 2 (LDJ_DELIVERY_MAX_ROWS)"
    assert counts(ingestor.engine) == dict.fromkeys(LOADED_TABLES, 0)


def test_a_too_long_cell_in_a_later_chunk_rolls_back_the_rows_already_loaded(tmp_path, settings):
    settings = settings.model_copy(update={"ingest_chunk_rows": 1})
    ingestor = Ingestor(settings, progress=False)
    loaded = []
    real_write = ingestor._write

    def spy(conn, name, rule, rows, batch_id):
        real_write(conn, name, rule, rows, batch_id)
        if name == "trajectories":
            loaded.append(rows.num_rows)

    ingestor._write = spy
    report = ingestor.ingest(bad_files.csv_long_cell(tmp_path))
    assert loaded == [1]  # row 2 did reach the tables before row 3 was read
    assert report.status == "rejected"
    assert report.error.startswith("de cel in kolom Toelichting op regel 3 is langer dan 32767 tekens")
    assert counts(ingestor.engine) == dict.fromkeys(LOADED_TABLES, 0)


PEAK_RSS = """
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(result.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
sys.exit(result.returncode)
"""


def _cli_peak_mb(files: list[Path], tmp_path: Path) -> tuple[subprocess.CompletedProcess, int]:
    """`ldj ingest` in a wrapper process that reports the peak RSS (MB) of ldj and its helper."""
    tmp_path.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDJ_")}
    env.update(LDJ_DATA_DIR=str(tmp_path / "var"), LDJ_PROGRESS="never", LDJ_LANGUAGE="nl")
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(LDJ), "ingest", *map(str, files)], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return result, int(result.stdout.strip().splitlines()[-1])


def test_cli_refuses_hostile_files_in_bounded_memory(tmp_path):
    """Refusing them costs no more memory than refusing an empty file, give or take a margin far below
    what reading any of them would take (a 50 MB cell, a million rows, 100,000 columns)."""
    folder = tmp_path / "levering"
    folder.mkdir()
    baseline, baseline_mb = _cli_peak_mb([BAD / "empty.csv"], tmp_path / "a")
    assert baseline.returncode == 2, baseline.stderr

    names = ["xlsx_many_rows", "xlsx_compression_bomb", "xlsx_huge_cell", "csv_wide", "csv_huge_cell"]
    files = [HOSTILE[name][0](folder) for name in names]
    result, peak_mb = _cli_peak_mb(files, tmp_path / "b")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.split(": AFGEWEZEN — ")[0] for line in lines] == [f.name for f in files]
    for line, name in zip(lines, names):
        assert re.fullmatch(message_regex(HOSTILE[name][1]), line.split(": AFGEWEZEN — ")[1]), line
    assert peak_mb < baseline_mb + 40, (peak_mb, baseline_mb)
