"""Data versions: after an import the published views keep showing the last ready version until its
refresh is done, nobody waits for a build, one refresh runs at a time, and extracts never lag."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ldj import factsheet as fs
from ldj import feasibility, indicators, lifecycle, refresh, retention, store, versions
from ldj.ingest import Ingestor
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate
from projects import add_committee, approve


def settings_in(data_dir: Path, **over) -> Settings:
    return Settings(data_dir=data_dir, catalog_dir=REPO_ROOT / "catalog", expectations_dir=REPO_ROOT / "expectations",
                    progress="never", **over)


@pytest.fixture(scope="module")
def template():
    """A store refreshed after its first delivery (version v1), then a second delivery loaded without refresh."""
    root = Path(tempfile.mkdtemp(prefix="ldj-versions-"))
    generate(root / "d", questionnaires=500, organisations=2, seed=8, invalid_share=0.0)
    files = sorted((root / "d").glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name))
    settings = settings_in(root / "var")
    engine = store.get_engine(settings)
    ingestor = Ingestor(settings)
    ingestor.ingest_many(files[:2])
    v1 = refresh.refresh(engine, settings)
    ingestor.ingest_many(files[2:])
    v2 = store.data_version(engine)[0]
    engine.dispose()
    assert v1 != v2
    yield {"data_dir": settings.data_dir, "v1": v1, "v2": v2}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def world(template, tmp_path):
    data_dir = tmp_path / "var"
    shutil.copytree(template["data_dir"], data_dir)
    settings = settings_in(data_dir)
    fs._cache.clear()
    return {**template, "settings": settings, "engine": store.get_engine(settings)}


def test_until_the_refresh_the_views_show_the_last_ready_version_without_building(world, monkeypatch):
    engine, settings, v1, v2 = world["engine"], world["settings"], world["v1"], world["v2"]
    assert versions.ready_version(settings) == v1 and versions.shown_version(engine, settings) == v1

    def no_building(*_args, **_kw):
        raise AssertionError("a visitor made the platform build a data version")

    monkeypatch.setattr(fs, "compute", no_building)
    monkeypatch.setattr(indicators, "build_cube", no_building)
    monkeypatch.setattr(feasibility, "snapshot", lambda engine, entry, inst, folder, **_: folder / f"{entry.id}.parquet")
    assert fs.factsheet(engine, settings).data_version == v1
    assert indicators.get_cube(engine, settings).version == v1
    assert feasibility.count(engine, "trajectories", {}, settings).version == v1
    assert not (settings.data_dir / "indicators" / v2).exists()


def test_the_refresh_makes_the_new_version_shown_and_its_numbers_are_the_stores(world):
    engine, settings, v1, v2 = world["engine"], world["settings"], world["v1"], world["v2"]
    before = fs.factsheet(engine, settings)
    said = []
    assert refresh.refresh(engine, settings, say=lambda key, version: said.append((key, version))) == v2
    assert [key for key, _ in said] == ["cat_refreshed", "ind_cube_built", "fsp_warmed"]
    assert versions.shown_version(engine, settings) == v2
    after = fs.factsheet(engine, settings)
    assert (before.data_version, after.data_version) == (v1, v2)
    fresh = fs.compute(engine, settings)
    assert after.totals == fresh.totals and after.totals != before.totals
    assert indicators.get_cube(engine, settings).version == v2


def test_a_store_never_refreshed_shows_its_current_version(world):
    engine, settings = world["engine"], world["settings"]
    (settings.data_dir / versions.READY).unlink()  # as a store loaded before this marker existed
    assert versions.ready_version(settings) is None
    assert versions.shown_version(engine, settings) == world["v2"]
    assert fs.factsheet(engine, settings).data_version == world["v2"]  # computed on first use, as before


def test_a_ready_marker_of_another_store_is_ignored(world, tmp_path):
    other = settings_in(world["settings"].data_dir, database_url=f"sqlite:///{tmp_path / 'other.sqlite'}")
    other_engine = store.get_engine(other)
    assert versions.ready_version(other) is None
    assert versions.shown_version(other_engine, other) == store.data_version(other_engine)[0] != world["v1"]


HOLD = """
import sys, time
from pathlib import Path
from ldj.settings import Settings
from ldj.versions import updating
with updating(Settings(data_dir=Path(sys.argv[1]))):
    print("held", flush=True)
    time.sleep(60)
"""


def test_one_refresh_at_a_time_and_an_import_holds_it_off(world):
    engine, settings = world["engine"], world["settings"]
    assert versions.needs_refresh(engine, settings) and not versions.refreshing(settings)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(settings.data_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert versions.refreshing(settings) and not versions.needs_refresh(engine, settings)
        current = store.data_version(engine)[0]
        assert lifecycle.refresh_if_needed(engine, settings, current) == (None, None)  # it waits its turn
        events = []

        def import_after() -> None:
            with versions.updating(settings, on_wait=lambda: events.append("waits")):
                events.append("loads")

        waiter = threading.Thread(target=import_after)
        waiter.start()
        deadline = time.monotonic() + 30
        while not events and time.monotonic() < deadline:
            time.sleep(0.05)
        assert events == ["waits"]  # said so, and waits
    finally:
        holder.kill()
        holder.wait()
    waiter.join(timeout=30)
    assert events == ["waits", "loads"]
    assert not versions.refreshing(settings)
    with versions.updating(settings):  # re-entrant in one process: an import that refreshes at its end
        assert refresh.refresh(engine, settings) == world["v2"]


def test_the_lifecycle_service_refreshes_a_version_left_unready_for_a_round(world):
    engine, settings, v2 = world["engine"], world["settings"], world["v2"]
    assert lifecycle.refresh_if_needed(engine, settings, None) == (v2, None)  # first seen: wait a round
    unready, thread = lifecycle.refresh_if_needed(engine, settings, v2)  # still unready: refresh it
    assert unready is None and thread is not None
    thread.join(timeout=120)
    assert versions.ready_version(settings) == v2
    assert lifecycle.refresh_if_needed(engine, settings, v2) == (None, None)  # nothing left to do


def test_retention_keeps_what_the_portal_shows(world):
    engine, v1 = world["engine"], world["v1"]
    settings = world["settings"].model_copy(update={"keep_data_versions": 1})
    (settings.data_dir / "snapshots" / world["v2"]).mkdir(parents=True, exist_ok=True)  # a refresh under way
    removed = retention.prune(engine, settings)
    assert not [r for r in removed if v1 in r.path.name]
    assert (settings.data_dir / "indicators" / v1 / "meta.json").exists()


def test_extracts_use_the_current_version_even_before_the_refresh(world):
    from ldj import governance as gov
    from ldj.catalogue import load_entries
    from ldj.extracts import build_extract
    from ldj.instruments import load_instruments

    engine, settings = world["engine"], world["settings"]
    entries = load_entries(settings.catalog_dir)
    add_committee(engine)
    gov.add_user(engine, "anna", display_name="Anna", organisation="ORG01", roles=["researcher"])
    project = approve(engine, "anna", {"trajectories": ["trajectory", "client"]},
                      {e.id: set(e.variable_names) for e in entries.values()})
    _, manifest = build_extract(engine, settings, project, entries["trajectories"], ["trajectory", "client"],
                                load_instruments(settings.catalog_dir))
    assert manifest.data_version == world["v2"] != versions.shown_version(engine, settings)
