"""The governed catalogue: entries as data, dictionaries, building from research-usable rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from ldj import store
from ldj.catalogue import CatalogueError, build_frame, entry_counts, load_entries, write_master_catalogue
from ldj.disclosure import controlled_count
from ldj.refresh import import_delivery
from ldj.instruments import load_instruments
from ldj.settings import REPO_ROOT

CATALOG = REPO_ROOT / "catalog"


@pytest.fixture
def loaded(filled_store, synthetic_delivery):
    """A synthetic delivery imported, once per session and database; each test gets a copy."""
    delivery = synthetic_delivery(questionnaires=2500, organisations=3, seed=11, invalid_share=0.0)

    def fill(settings):
        reports = import_delivery(delivery.paths, settings=settings, refresh_views=False)
        assert all(r.status == "loaded" for r in reports)

    return filled_store("catalogue", fill)


def test_entries_cover_trajectories_scores_pairs_and_satisfaction():
    entries = load_entries(CATALOG)
    instruments = load_instruments(CATALOG)
    assert "trajectories" in entries
    for code, inst in instruments.items():
        assert f"{code}_scores" in entries
        assert (f"{code}_pairs" in entries) == ({"start", "end"} <= set(inst.moments))
    assert "satisfaction_scores" in entries and "satisfaction_pairs" not in entries
    for entry in entries.values():
        assert entry.title["nl"] and entry.title["en"] and entry.description["nl"]
        assert set(entry.themes) <= {"doelgroep", "aanpak", "resultaat"}
        assert {"client"} <= set(entry.variable_names)
        assert entry.variable("client").identifier
    cbcl = entries["cbcl_6_18_scores"]
    assert {"total_problems_raw", "total_problems_t", "total_problems_band"} <= set(cbcl.variable_names)
    assert cbcl.variable("total_problems_band").value_labels["clinical"] == "klinisch"
    assert "sdq_scores" in entries and "total_difficulties_t" not in entries["sdq_scores"].variable_names
    # free text never enters the catalogue
    assert not any("comment" in v for v in entries["satisfaction_scores"].variable_names)


def test_a_new_instrument_brings_its_entries_along(tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    shutil.copy(Path(__file__).parent / "data" / "zrm.yaml", catalog / "instruments" / "zrm.yaml")
    entries = load_entries(catalog)
    assert {"zrm_scores", "zrm_pairs"} <= set(entries)
    assert "finances_band" in entries["zrm_scores"].variable_names


def test_bad_entry_definition_is_refused(tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    (catalog / "entries" / "broken.yaml").write_text("id: broken\ntitle: {nl: x, en: x}\nsource: nowhere\nvariables: []\n")
    with pytest.raises(CatalogueError, match="broken.yaml: source must be one of"):
        load_entries(catalog)


def test_built_entries_hold_only_research_usable_rows(loaded):
    engine = store.get_engine(loaded)
    entries, instruments = load_entries(CATALOG), load_instruments(CATALOG)
    with engine.connect() as conn:
        objectors = {r[0] for r in conn.exec_driver_sql("SELECT pseudonym FROM clients WHERE objection")}
        usable = conn.exec_driver_sql("SELECT count(*) FROM research_trajectories").scalar()
    assert objectors, "the synthetic delivery should contain objecting clients"
    trajectories = build_frame(engine, entries["trajectories"], instruments)
    assert len(trajectories) == usable
    assert list(trajectories.columns) == entries["trajectories"].variable_names
    for entry_id in ("trajectories", "cbcl_6_18_scores", "cbcl_6_18_pairs", "sdq_pairs"):
        frame = build_frame(engine, entries[entry_id], instruments)
        assert not set(frame["client"]) & objectors, entry_id
    counts = entry_counts(engine, entries["cbcl_6_18_scores"], instruments)
    frame = build_frame(engine, entries["cbcl_6_18_scores"], instruments)
    assert counts["rows"] == len(frame) > 0 and counts["clients"] == frame["client"].nunique()
    assert counts["organisations"] == frame["organisation"].nunique() and counts["first"] <= counts["last"]


def test_pairs_are_first_start_and_last_end_within_the_windows(loaded):
    engine = store.get_engine(loaded)
    entries, instruments = load_entries(CATALOG), load_instruments(CATALOG)
    pairs = build_frame(engine, entries["cbcl_6_18_pairs"], instruments)
    scores = build_frame(engine, entries["cbcl_6_18_scores"], instruments)
    trajectories = build_frame(engine, entries["trajectories"], instruments).set_index("trajectory")
    assert len(pairs) > 20
    # recompute independently for every pair
    for row in pairs.head(40).itertuples():
        mine = scores[(scores.trajectory == row.trajectory) & (scores.informant == row.informant)]
        t = trajectories.loc[row.trajectory]
        start = pd.to_datetime(mine[mine.moment == "start"].date)
        start = start[(start - pd.Timestamp(t.start_date)).abs().dt.days <= 90]
        end = pd.to_datetime(mine[mine.moment == "end"].date)
        end = end[(end - pd.Timestamp(t.end_date)).abs().dt.days <= 90]
        assert pd.Timestamp(row.start_date) == start.min() and pd.Timestamp(row.end_date) == end.max()
        first = mine.loc[start.idxmin()]
        assert row.total_problems_start == first.total_problems_t
    assert (pairs["end_date"] >= pairs["start_date"]).all()


def test_master_intake_catalogue_opens_and_reads(loaded, tmp_path):
    import intake

    engine = store.get_engine(loaded)
    entries, instruments = load_entries(CATALOG), load_instruments(CATALOG)
    path = write_master_catalogue(engine, entries, instruments, tmp_path / "cat", settings=loaded)
    cat = intake.from_yaml_file(str(path))
    assert set(cat.entries) == set(entries)
    frame = cat["trajectories"].read()
    assert len(frame) == len(build_frame(engine, entries["trajectories"], instruments))
    assert cat["trajectories"].metadata["title"]["nl"] == entries["trajectories"].title["nl"]


@pytest.mark.parametrize("n, expected", [(0, None), (9, None), (10, 10), (12, 10), (13, 15), (17, 15), (18, 20)])
def test_controlled_count(sqlite_settings, n, expected):
    assert controlled_count(n, sqlite_settings) == expected
