"""The import pipeline on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from deliveries import cbcl, trajectory, write_csv
from ldj import quarantine, store
from ldj.expectations import write_suites
from ldj.delivery import load_spec
from ldj.ingest import Ingestor
from ldj.settings import REPO_ROOT
from ldj.synth import generate


def rows(engine, sql: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


def count(engine, table: str) -> int:
    return rows(engine, f"SELECT count(*) AS n FROM {table}")[0]["n"]


@pytest.fixture
def ingestor(settings):
    return Ingestor(settings)


@pytest.fixture
def delivery(tmp_path) -> dict[str, Path]:
    trajectories = [
        trajectory("C001", "T1", **{"Contextfactoren": "moeder belde, bsn 111222333, over school"}),
        trajectory("C002", "T2", Bezwaar="ja", Interventie="Pleegzorg", Geslacht="V"),
        trajectory("C003", "T3", Geboortedatum="31-02-2011", Contextfactoren="Bedankt Fatima!"),  # no such date
        trajectory("C004", "T4", Interventie="Yoga"),  # unknown intervention
        trajectory("C005", "T5", Einddatum="01-01-2022"),  # ends before it starts
        trajectory("C006", "T6", Einddatum="", **{"Reden einde": "", "Woont thuis bij einde": "",  # running
                                                  "Contextfactoren": "overleg met juf Sanne en mevrouw De Vries"}),
    ]
    measurements = [
        cbcl("C001", "T1", "A1", "start", 68),
        cbcl("C001", "T1", "A2", "eind", 57),
        cbcl("C002", "T2", "A3", "start", 71),
        cbcl("C002", "T2", "A4", "eind", 60),
        cbcl("C006", "T6", "A5", "start", 140),  # T out of range
        cbcl("C006", "T6", "A6", "start", 60, Informant="buurman"),
        cbcl("C006", "T6", "A7", "start", 63.5),  # decimal comma
    ]
    return {
        "trajectories": write_csv(tmp_path / "in" / "ORG01_trajecten_2024.csv", trajectories),
        "cbcl": write_csv(tmp_path / "in" / "ORG01_cbcl_2024.csv", measurements, encoding="cp1252"),
    }


def test_import_loads_valid_rows_and_quarantines_the_rest(settings, delivery):
    ing = Ingestor(settings)
    r1 = ing.ingest(delivery["trajectories"], delivered_by="ORG01 functioneel beheer")
    r2 = ing.ingest(delivery["cbcl"])
    assert (r1.status, r1.rows_total, r1.rows_loaded, r1.rows_quarantined) == ("loaded", 6, 3, 3)
    assert r1.rules == {"type_date:birth_date": 1, "in_set:intervention": 1, "after:end_date": 1}
    assert (r2.status, r2.rows_total, r2.rows_loaded, r2.rows_quarantined) == ("loaded", 7, 5, 2)
    assert r2.rules == {"between:total_problems_t": 1, "in_set:informant": 1}
    engine = ing.engine
    assert count(engine, "trajectories") == 3 and count(engine, "measurements") == 5
    assert count(engine, "clients") == 3

    q = rows(engine, "SELECT file_name, row_number, rule, message FROM quarantine ORDER BY row_number")
    by_rule = {r["rule"]: r for r in q}
    # Row numbers as a spreadsheet shows them: the header is row 1.
    assert by_rule["type_date:birth_date"]["row_number"] == 4
    assert by_rule["in_set:intervention"]["row_number"] == 5
    assert by_rule["between:total_problems_t"]["row_number"] == 6
    assert "Totale problemen T" in by_rule["between:total_problems_t"]["message"]
    assert by_rule["in_set:informant"]["file_name"] == "ORG01_cbcl_2024.csv"

    batch = rows(engine, "SELECT * FROM import_batches WHERE kind = 'trajectories'")[0]
    assert batch["delivered_by"] == "ORG01 functioneel beheer" and batch["status"] == "loaded"
    assert len(batch["checksum"]) == 64 and batch["rows_quarantined"] == 3
    report = batch["report"] if isinstance(batch["report"], dict) else json.loads(batch["report"])
    assert report["rows_loaded"] == 3 and report["masked"] == 3  # a BSN and two names


def test_scores_bands_and_decimal_comma(settings, delivery):
    ing = Ingestor(settings)
    ing.ingest(delivery["trajectories"])
    ing.ingest(delivery["cbcl"])
    found = {}
    for m in rows(ing.engine, "SELECT moment, scores FROM measurements"):
        scores = m["scores"] if isinstance(m["scores"], dict) else json.loads(m["scores"])
        found.setdefault(m["moment"], []).append(scores["total_problems"])
    starts = sorted((s["t"], s["band"]) for s in found["start"])
    # broad scale bands: normal < 60 <= borderline < 64 <= clinical
    assert starts == [(63.5, "borderline"), (68, "clinical"), (71, "clinical")]
    assert sorted((s["t"], s["band"]) for s in found["end"]) == [(57, "normal"), (60, "borderline")]
    assert all(s["raw"] == 15 for s in found["start"])


def test_no_identifiers_or_birth_dates_are_stored(settings, delivery):
    ing = Ingestor(settings)
    ing.ingest(delivery["trajectories"])
    ing.ingest(delivery["cbcl"])
    engine = ing.engine
    dump = []
    with engine.connect() as conn:
        for table in store.metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                dump.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    text = "\n".join(dump)
    for original in ("C001", "C002", "T1\"", "A1\"", "P001", "111222333", "15-03-2010", "2010-03-15",
                     "Sanne", "Vries", "Fatima"):  # Fatima: in a quarantined row
        assert original not in text, original
    assert "[BSN verwijderd]" in text
    assert "juf [naam verwijderd] en mevrouw [naam verwijderd]" in text
    assert "Bedankt [naam verwijderd]!" in text
    ages = rows(engine, "SELECT age_at_start FROM trajectories ORDER BY age_at_start")
    assert {a["age_at_start"] for a in ages} == {12}  # born 15-03-2010, started 05-09-2022


@pytest.mark.slow  # a synthetic delivery of 4,000 questionnaires
def test_planted_names_and_bsns_never_reach_the_store(sqlite_settings, tmp_path):
    result = generate(tmp_path / "d", questionnaires=4000, organisations=3, seed=8, invalid_share=0.0,
                      instruments=["cbcl_6_18", "satisfaction"])
    assert result.names_injected >= 5 and result.bsn_injected >= 1
    ing = Ingestor(sqlite_settings)
    reports = ing.ingest_many(result.paths)
    assert all(r.status == "loaded" and not r.rows_quarantined for r in reports)
    assert sum(r.masked for r in reports) == result.names_injected + result.bsn_injected
    dump = []
    with ing.engine.connect() as conn:
        for table in store.metadata.sorted_tables:
            dump += [json.dumps([str(v) for v in row], ensure_ascii=False) for row in conn.execute(sa.select(table))]
    text = "\n".join(dump)
    assert "[naam verwijderd]" in text
    for name in result.planted_names:
        assert not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name
    for number in result.bsn_numbers:
        assert number not in text


def test_same_file_twice_changes_nothing(settings, delivery):
    ing = Ingestor(settings)
    ing.ingest(delivery["trajectories"])
    ing.ingest(delivery["cbcl"])
    before = {t: count(ing.engine, t) for t in ("trajectories", "measurements", "quarantine", "import_batches")}
    again = Ingestor(settings).ingest(delivery["cbcl"])
    assert again.status == "duplicate" and again.duplicate_of is not None
    assert {t: count(ing.engine, t) for t in before} == before


def test_corrected_redelivery_replaces_earlier_rows(settings, delivery, tmp_path):
    ing = Ingestor(settings)
    ing.ingest(delivery["trajectories"])
    first = ing.ingest(delivery["cbcl"])
    corrected = write_csv(tmp_path / "fix" / "ORG01_cbcl_2024_v2.csv", [
        cbcl("C001", "T1", "A1", "start", 69),
        cbcl("C001", "T1", "A2", "eind", 55),
        cbcl("C006", "T6", "A5", "start", 66),
    ])
    second = ing.ingest(corrected)
    assert second.replaced_batches == [first.batch_id] and second.rows_replaced == 5
    assert second.rows_loaded == 3
    assert count(ing.engine, "measurements") == 3
    status = rows(ing.engine, f"SELECT status, replaced_by FROM import_batches WHERE id = {first.batch_id}")[0]
    assert status == {"status": "replaced", "replaced_by": second.batch_id}
    # The quarantine of the first delivery stays, for the record.
    assert count(ing.engine, "quarantine") == 5


def test_objecting_clients_are_flagged_and_excluded_from_research_views(settings, delivery):
    ing = Ingestor(settings)
    ing.ingest(delivery["trajectories"])
    ing.ingest(delivery["cbcl"])
    engine = ing.engine
    flagged = rows(engine, "SELECT pseudonym FROM clients WHERE objection")
    assert len(flagged) == 1
    objector = flagged[0]["pseudonym"]
    assert count(engine, "research_clients") == 2
    assert objector not in {r["client"] for r in rows(engine, "SELECT client FROM research_trajectories")}
    assert objector not in {r["client"] for r in rows(engine, "SELECT client FROM research_measurements")}
    assert count(engine, "research_measurements") == 3 and count(engine, "measurements") == 5
    with engine.connect() as conn:
        research = conn.execute(sa.select(sa.func.count()).select_from(store.research_usable("measurements"))).scalar()
    assert research == 3


def test_measurements_before_their_trajectories_are_not_research_usable(settings, delivery):
    ing = Ingestor(settings)
    ing.ingest(delivery["cbcl"])
    assert count(ing.engine, "measurements") == 5
    assert count(ing.engine, "research_measurements") == 0  # objection status not known yet
    ing.ingest(delivery["trajectories"])
    assert count(ing.engine, "research_measurements") == 3


def test_small_chunks_give_the_same_result_and_catch_duplicates_across_chunks(settings, tmp_path):
    measurements = [cbcl("C001", "T1", f"A{i}", "start", 60 + i % 10) for i in range(9)]
    measurements.append(cbcl("C001", "T1", "A2", "eind", 55))  # duplicate administration id, later chunk
    path = write_csv(tmp_path / "ORG01_cbcl_2024.csv", measurements)
    small = settings.model_copy(update={"ingest_chunk_rows": 3})
    report = Ingestor(small).ingest(path)
    assert report.rows_loaded == 9 and report.rules == {"unique:administration_id": 1}
    q = rows(Ingestor(small).engine, "SELECT row_number FROM quarantine")
    assert q == [{"row_number": 11}]


def test_quarantine_export_for_the_delivering_organisation(settings, delivery, tmp_path):
    ing = Ingestor(settings)
    ing.ingest(delivery["trajectories"])
    out = tmp_path / "terug_naar_ORG01.csv"
    n = quarantine.export_csv(out, engine=ing.engine)
    assert n == 3
    frame = pd.read_csv(out, sep=";", encoding="utf-8-sig", dtype=str)
    assert list(frame.columns[:6]) == ["Bestand", "Regel", "Regel-id", "Kolom", "Waarde", "Probleem"]
    assert set(frame["Regel"]) == {"4", "5", "6"}
    assert "Geboortedatum: geen geldige datum" in " ".join(frame["Probleem"])
    text = out.read_text(encoding="utf-8-sig")
    assert "C003" not in text and "31-02-2011" not in text  # pseudonym and no birth date
    assert quarantine.summary(engine=ing.engine)[0]["rows"] == 1


def test_a_new_instrument_is_a_data_change(settings, tmp_path):
    """A definition file and its suite are all it takes: no code."""
    catalog = tmp_path / "catalog"
    shutil.copytree(REPO_ROOT / "catalog", catalog)
    shutil.copy(Path(__file__).parent / "data" / "zrm.yaml", catalog / "instruments" / "zrm.yaml")
    suites = tmp_path / "expectations"
    write_suites(load_spec(catalog), suites)
    custom = settings.model_copy(update={"catalog_dir": catalog, "expectations_dir": suites})
    path = write_csv(tmp_path / "ORG01_zrm_2024.csv", [
        {"Organisatie": "ORG01", "Periode": "2024", "Cliëntnummer": "C1", "Trajectnummer": "T1",
         "Afnamenummer": f"Z{i}", "Vragenlijst": "ZRM", "Informant": "professional", "Meetmoment": "start",
         "Afnamedatum": "01-03-2023", "Financiën": str(v), "Huisvesting": "4", "Totaal": str(v + 4)}
        for i, v in enumerate([1, 3, 5, 7])
    ])
    report = Ingestor(custom).ingest(path)
    assert report.kind == "zrm"
    assert report.rows_loaded == 3 and report.rows_quarantined == 1
    assert report.rules == {"between:finances_raw": 1, "between:total_raw": 1}
    scores = [json.loads(s) if isinstance(s, str) else s
              for (s,) in sa.create_engine(custom.resolved_database_url).connect().execute(
                  sa.text("SELECT scores FROM measurements ORDER BY scores"))]
    assert {s["finances"]["band"] for s in scores} == {"acuut", "voldoende"}


def test_rejected_files_are_recorded_and_others_still_load(settings, delivery, tmp_path):
    bad = tmp_path / "leeg.csv"
    bad.write_bytes(b"")
    ing = Ingestor(settings)
    reports = [ing.ingest(bad), ing.ingest(delivery["trajectories"])]
    assert [r.status for r in reports] == ["rejected", "loaded"]
    assert "leeg" in reports[0].error
    assert rows(ing.engine, "SELECT status FROM import_batches ORDER BY id") == [{"status": "rejected"},
                                                                                {"status": "loaded"}]


def test_migrated_schema_matches_the_models(settings):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = store.get_engine(settings)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), store.metadata) == []
        views = set(sa.inspect(conn).get_view_names())
    assert {"research_clients", "research_trajectories", "research_measurements", "research_records"} <= views


def test_sdq_is_scored_at_import_and_unscorable_questionnaires_still_load(settings, tmp_path):
    base = {"Organisatie": "ORG01", "Periode": "2024", "Cliëntnummer": "C1", "Trajectnummer": "T1",
            "Vragenlijst": "SDQ", "Informant": "ouder", "Meetmoment": "start", "Afnamedatum": "01-03-2023"}
    full = {**base, "Afnamenummer": "S1", **{f"Vraag {i}": "1" for i in range(1, 26)}}
    empty = {**base, "Afnamenummer": "S2", **{f"Vraag {i}": "" for i in range(1, 26)}}
    path = write_csv(tmp_path / "ORG01_sdq_2024.csv", [full, empty])
    report = Ingestor(settings).ingest(path)
    assert (report.rows_loaded, report.rows_quarantined) == (2, 0)
    got = {}
    for r in rows(store.get_engine(settings), "SELECT scores, items FROM measurements"):
        scores = r["scores"] if isinstance(r["scores"], dict) else json.loads(r["scores"])
        items = r["items"] if isinstance(r["items"], dict) else json.loads(r["items"])
        got[sum(v is not None for v in items.values())] = scores
    # all answers 1: every scale 5 (reverse items 2-1 = 1 too); total = 4 x 5; parent band for 20 is very high
    assert got[25]["total_difficulties"] == {"raw": 20, "band": "very_high"}
    assert got[25]["prosocial"] == {"raw": 5, "band": "very_low"}
    assert got[0] == {}


def test_a_delivery_of_many_small_files_costs_one_validation_per_kind(sqlite_settings, synthetic_delivery, tmp_path):
    """Files come per organisation, so kinds alternate (ORG01 trajectories, cbcl, sdq, ORG02 ...). The import
    reads ahead, validates and transforms each kind's files together, with the suite compiled once, and every
    file still gets its own verdicts and rows: the same as importing each file on its own."""
    result = synthetic_delivery(questionnaires=1500, organisations=4, seed=3, invalid_share=0.05,
                                instruments=["cbcl_6_18", "sdq", "satisfaction"])
    paths = sorted(result.paths, key=lambda p: (0 if "traject" in p.name else 1, p.name))  # as `ldj ingest DIR`
    kinds_in_order = [p.name.split("_", 1)[1].rsplit("_", 1)[0] for p in paths]
    assert sum(a != b for a, b in zip(kinds_in_order, kinds_in_order[1:])) > 4  # the kinds do alternate
    in_process = sqlite_settings.model_copy(update={"ingest_workers": 0})  # to count what the validators did

    together = Ingestor(in_process)
    reports = together.ingest_many(paths)
    assert all(r.status == "loaded" for r in reports) and sum(r.rows_quarantined for r in reports) > 0
    assert [r.file for r in reports] == [str(p) for p in paths]
    kinds = {r.kind for r in reports}
    assert {k: (v.builds, v.runs) for k, v in together._validators.items()} == {k: (1, 1) for k in kinds}

    alone = Ingestor(in_process.model_copy(update={"data_dir": tmp_path / "alone",  # the same pseudonym key
                                                   "pseudonym_key_file": in_process.resolved_key_file}))
    alone_reports = [alone.ingest(p) for p in paths]
    files_per_kind = Counter(r.kind for r in reports)
    assert {k: (v.builds, v.runs) for k, v in alone._validators.items()} == {k: (1, files_per_kind[k]) for k in kinds}

    def verdicts(rs) -> list:
        return [(Path(r.file).name, r.rows_loaded, r.rows_quarantined, r.rules, r.masked) for r in rs]

    assert verdicts(reports) == verdicts(alone_reports)
    sql = "SELECT file_name, row_number, rule, value, message FROM quarantine ORDER BY file_name, row_number, rule"
    assert rows(together.engine, sql) == rows(alone.engine, sql)
    for table, key in (("measurements", "pseudonym"), ("trajectories", "pseudonym"), ("clients", "pseudonym"),
                       ("professionals", "pseudonym"), ("teams", "organisation, code")):
        sql = f"SELECT * FROM {table} ORDER BY {key}"
        strip = lambda rs: [{k: v for k, v in r.items() if k not in ("batch_id", "id")} for r in rs]  # noqa: E731
        assert strip(rows(together.engine, sql)) == strip(rows(alone.engine, sql)) != [], table


def test_files_transformed_together_keep_their_own_number_forms(sqlite_settings, tmp_path):
    """Whole numbers are stored as integers per file: a decimal T-score in one organisation's file must not
    turn another file's whole scores into decimals because the two were transformed in one go."""
    org1 = write_csv(tmp_path / "ORG01_cbcl_2024.csv", [cbcl("C1", "T1", "A1", "start", 63.5),
                                                         cbcl("C2", "T2", "A2", "start", 68)])
    org2 = write_csv(tmp_path / "ORG02_cbcl_2024.csv", [cbcl("C1", "T1", "A1", "start", 71, Organisatie="ORG02"),
                                                         cbcl("C3", "T3", "A3", "start", 57, Organisatie="ORG02")])
    ing = Ingestor(sqlite_settings.model_copy(update={"ingest_workers": 0}))
    assert [r.rows_loaded for r in ing.ingest_many([org1, org2])] == [2, 2]
    assert ing._validators["cbcl_6_18"].runs == 1  # one window: validated and transformed together
    totals = {}
    for m in rows(ing.engine, "SELECT organisation, scores FROM measurements"):
        t_score = json.loads(m["scores"])["total_problems"]["t"]
        totals.setdefault(m["organisation"], []).append((t_score, type(t_score).__name__))
    assert sorted(totals["ORG01"]) == [(63.5, "float"), (68.0, "float")]  # as when the file comes alone
    assert sorted(totals["ORG02"]) == [(57, "int"), (71, "int")]
