"""A bad file is rejected whole: one `rejected` batch with the reason, nothing loaded, nothing in
quarantine; the CLI exits 2 with the file name and the reason, without a traceback.

The files and their messages are listed in tests/data/bad/README.md (see tests/test_delivery.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

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
    assert [b["status"] for b in batches(engine)] == ["rejected", "loaded"]
    assert counts(engine)["trajectories"] == 1
    engine.dispose()
