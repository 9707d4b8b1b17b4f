"""The factsheet: numbers against an independent pandas computation, suppression, objections,
the cache per data version, and the HTML/PDF/JSON document."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner
from deliveries import cbcl, trajectory, write_csv

from ldj import store
from ldj.cli import main
from ldj.disclosure import TOTAL, controlled_count, rounded
from ldj.factsheet import build, factsheet
from ldj.ingest import Ingestor
from ldj.instruments import load_instruments
from ldj.outcomes import pairs
from ldj.synth import generate

SMALL_ORG = "ORG99"


def small_organisation(folder):
    """Four clients of a small organisation, their care started in 2009 (synthetic data starts in
    2012); the fourth objects to research use."""
    trajectories, measurements = [], []
    for i in range(1, 5):
        trajectories.append(trajectory(f"K{i}", f"T{i}", Organisatie=SMALL_ORG, Geboortedatum="15-03-2000", Startdatum="02-03-2009",
                                       Einddatum="20-10-2009", Bezwaar="ja" if i == 4 else "nee"))
        for moment, when in (("start", "05-03-2009"), ("eind", "18-10-2009")):
            measurements.append(cbcl(f"K{i}", f"T{i}", f"A{i}{moment}", moment, 66 - i, Organisatie=SMALL_ORG,
                                     Afnamedatum=when))
    write_csv(folder / f"{SMALL_ORG}_trajecten_2024.csv", trajectories)
    write_csv(folder / f"{SMALL_ORG}_cbcl_2024.csv", measurements)


def ingest(settings, folder):
    files = sorted(folder.glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name))
    reports = Ingestor(settings).ingest_many(files)
    assert all(r.status == "loaded" and not r.rows_quarantined for r in reports), [r.lines() for r in reports]


@pytest.fixture
def loaded(filled_store, synthetic_delivery, tmp_path_factory):
    """Imported once per session and database (tests/conftest.py); each test gets a copy."""
    def fill(settings):
        folder = tmp_path_factory.mktemp("factsheet")
        for path in synthetic_delivery(questionnaires=2500, organisations=3, seed=11, invalid_share=0.0).paths:
            shutil.copy(path, folder)
        small_organisation(folder)
        ingest(settings, folder)

    settings = filled_store("factsheet", fill)
    return settings.model_copy(update={"disclosure_threshold": 10, "disclosure_rounding": 1})


def frames(engine):
    """The store read plainly with pandas; objecting clients dropped here, not by the views."""
    with engine.connect() as conn:
        clients = pd.read_sql("SELECT pseudonym, objection FROM clients", conn)
        trajectories = pd.read_sql("SELECT pseudonym, client, organisation, intervention, start_date, end_date "
                                   "FROM trajectories", conn)
        measurements = pd.read_sql("SELECT client, trajectory, instrument, informant, moment, date, scores "
                                   "FROM measurements", conn)
    assert clients.objection.astype(bool).any()
    ok = set(clients.pseudonym[~clients.objection.astype(bool)])
    return (clients[clients.pseudonym.isin(ok)], trajectories[trajectories.client.isin(ok)],
            measurements[measurements.client.isin(ok)], measurements)


def check_cells(table, dims, expected, settings):
    """Every cell of `expected` (dims, units, clients) is published as its rounded count, or hidden
    when it has fewer clients than the threshold; no cell with enough clients is hidden as primary."""
    merged = expected.merge(table, on=dims, how="right")
    merged[["units", "clients"]] = merged[["units", "clients"]].fillna(0)
    small = (merged.clients > 0) & (merged.clients < settings.disclosure_threshold)
    assert merged.loc[small, "suppressed"].all()
    assert (merged.suppression == "primary").eq(small).all()
    shown = merged[~merged.suppressed]
    assert shown.n_published.astype(int).tolist() == [rounded(int(u), settings) for u in shown.units]
    return merged


def test_numbers_equal_an_independent_computation(loaded):
    settings = loaded
    engine = store.get_engine(settings)
    fs = factsheet(engine, settings)
    clients, trajectories, measurements, everything = frames(engine)
    assert len(everything) > len(measurements)  # there are objecting clients to leave out

    m = measurements.assign(date=pd.to_datetime(measurements.date))
    dims = ["instrument", "informant", "moment"]
    expected = m.groupby(dims).agg(units=("client", "size"), clients=("client", "nunique")).reset_index()
    cells = check_cells(fs.cells("questionnaires"), dims, expected, settings)
    assert cells.suppressed.any() and (~cells.suppressed).any()
    per_instrument = m.groupby("instrument").size()
    margin = fs.margin("questionnaires", "instrument").set_index("instrument")
    for code, n in per_instrument.items():
        assert margin.loc[code, "n_published"] == n  # large margins: published exactly (rounding 1)

    assert fs.totals["questionnaires"] == len(measurements) != len(everything)
    assert fs.totals["clients"] == controlled_count(len(clients), settings)
    assert fs.totals["trajectories"] == len(trajectories)
    assert fs.totals["organisations"] is None  # 4 organisations: below the threshold, like any count

    t = trajectories.assign(start_year=pd.to_datetime(trajectories.start_date).dt.year)
    expected = t.groupby(["intervention", "start_year"]).agg(units=("client", "size"),
                                                             clients=("client", "nunique")).reset_index()
    check_cells(fs.cells("interventions"), ["intervention", "start_year"], expected, settings)

    g = m.assign(year=m.date.dt.year, quarter=m.date.dt.quarter)
    expected = g.groupby(["year", "quarter"]).agg(units=("client", "size"), clients=("client", "nunique")).reset_index()
    check_cells(fs.cells("growth"), ["year", "quarter"], expected, settings)
    yearly = fs.growth_yearly.set_index("period")
    for year, n in g.groupby("year").size().items():
        if not pd.isna(yearly.loc[str(year), "questionnaires"]):
            assert yearly.loc[str(year), "questionnaires"] == n
    assert fs.growth_yearly.cumulative.iloc[-1] == len(measurements)
    years = fs.margin("growth", "year")
    shown = years[~years.suppressed & (years.n_published > 0)]
    assert (fs.first_year, fs.last_year) == (min(shown.year), max(shown.year))  # the span of published years
    assert g.year.min() <= fs.first_year and fs.last_year == g.year.max()

    # pairs: ldj.outcomes.pairs on the plain frames, per instrument and informant
    expected = []
    for code, inst in load_instruments(settings.catalog_dir).items():
        if not {"start", "end"} <= set(inst.moments):
            continue
        mine = m[m.instrument == code].assign(scores=lambda f: f.scores.map(lambda s: json.loads(s) if isinstance(s, str) else s))
        found = pairs(mine, trajectories, inst).merge(trajectories[["pseudonym", "client"]],
                                                      left_on="trajectory", right_on="pseudonym")
        expected.append(found.groupby("informant").agg(units=("client", "size"), clients=("client", "nunique"))
                        .reset_index().assign(instrument=code))
    expected = pd.concat(expected)
    check_cells(fs.cells("pairs"), ["instrument", "informant"], expected, settings)
    assert fs.totals["pairs"] == expected.units.sum()


def test_a_small_organisation_is_suppressed_and_its_objector_left_out(loaded):
    settings = loaded
    fs = factsheet(store.get_engine(settings), settings)
    growth = fs.cells("growth")
    q1_2009 = growth[(growth.year == 2009) & (growth.quarter == 1)].iloc[0]
    assert q1_2009.suppression == "primary"  # 3 clients (the fourth objected)
    years = fs.margin("growth", "year").set_index("year")
    assert years.loc[2009, "suppressed"]
    # the one line through 2009 holds a second hidden cell, so 2009 cannot be had from the total
    assert (years.suppressed.sum() >= 2) or years.drop(2009).n_published.isna().any()
    assert pd.isna(fs.growth_yearly.set_index("period").loc["2009", "cumulative"])
    starts = fs.margin("interventions", "start_year").set_index("start_year")
    assert starts.loc[2009, "suppression"] == "primary"
    # with rounding to 5 the hidden cell is still hidden and published cells are multiples of 5
    coarse = factsheet(store.get_engine(settings), settings.model_copy(update={"disclosure_rounding": 5}))
    table = coarse.tables["questionnaires"]
    assert (table.n_published.dropna() % 5 == 0).all()
    assert coarse.margin("growth", "year").set_index("year").loc[2009, "suppressed"]


def test_cache_refreshes_after_an_import(settings, tmp_path):
    generate(tmp_path / "a", questionnaires=1200, organisations=2, seed=3, invalid_share=0.0)
    ingest(settings, tmp_path / "a")
    engine = store.get_engine(settings)
    first = factsheet(engine, settings)
    assert factsheet(engine, settings).computed_at == first.computed_at  # cached: no recomputation
    assert list((settings.data_dir / "factsheet" / "cache").glob(f"{first.data_version}-*.json"))

    small_organisation(tmp_path / "b")
    ingest(settings, tmp_path / "b")
    second = factsheet(engine, settings)
    assert second.data_version != first.data_version == first.data_version
    growth = second.cells("growth")
    assert 2009 in set(growth.year) and 2009 not in set(first.cells("growth").year)
    assert factsheet(engine, settings).computed_at == second.computed_at


def test_html_pdf_and_json_are_written(loaded, tmp_path, monkeypatch):
    from pypdf import PdfReader

    settings = loaded
    engine = store.get_engine(settings)
    paths = build(tmp_path / "out", engine=engine, settings=settings)
    html = paths["html"].read_text(encoding="utf-8")
    assert "Vragenlijsten per instrument, informant en meetmoment" in html and "<svg" in html
    fs = factsheet(engine, settings)
    total = f"{fs.totals['questionnaires']:,}".replace(",", ".")
    assert total in html

    pdf = paths["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(paths["pdf"]).pages)
    assert "Factsheet Lerende Databank Jeugd" in text and total in text and "CBCL" in text

    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["data_version"] == fs.data_version and data["totals"]["questionnaires"] == fs.totals["questionnaires"]
    rows = data["tables"]["questionnaires"]["rows"]
    hidden = [r for r in rows if r["suppressed"]]
    assert hidden and all(r["value"] is None for r in hidden)
    assert all(isinstance(r["value"], int) for r in rows if not r["suppressed"])
    assert any(r["instrument"] == TOTAL for r in rows)
    assert "units" not in rows[0] and "clients" not in rows[0]  # exact counts never leave the module
    # nor why a cell is hidden: "primary" would say it holds 1 to threshold - 1 clients
    assert all("suppression" not in r for table in data["tables"].values() for r in table["rows"])

    # the CLI: English, default folder <data_dir>/factsheet/
    for name, value in (("LDJ_DATA_DIR", str(settings.data_dir)), ("LDJ_DATABASE_URL", settings.resolved_database_url),
                        ("LDJ_DISCLOSURE_ROUNDING", "1")):
        monkeypatch.setenv(name, value)
    from ldj.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["factsheet", "build", "--language", "en"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    english = (settings.data_dir / "factsheet" / "factsheet.html").read_text(encoding="utf-8")
    assert "Questionnaires per instrument, informant and moment" in english
    assert (settings.data_dir / "factsheet" / "factsheet.pdf").read_bytes().startswith(b"%PDF")
