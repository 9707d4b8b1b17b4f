"""Retention: old data versions' derived files go, the newest and those an active project uses stay,
and a project that ended keeps no extracts (their record and the removal stay in the store)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from ldj import governance as gov
from ldj import audit, retention, store
from ldj.catalogue import load_entries, refresh_snapshots
from ldj.extracts import build_extract
from ldj.factsheet import factsheet
from ldj.indicators import refresh_cube
from ldj.ingest import Ingestor
from ldj.instruments import load_instruments
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate
from projects import add_committee, approve

REPORT = "De resultaten laten zien dat MST voor jongeren met een LVB even goed werkt; teams bespreken dit."


def derive(engine, settings) -> str:
    """What `ldj ingest` makes after a delivery: snapshots, the cube and the factsheet cache."""
    refresh_snapshots(engine, settings)
    refresh_cube(engine, settings)
    factsheet(engine, settings)
    return store.data_version(engine)[0]


def age(folder, seconds: float) -> None:
    """Make a version folder look older, so 'newest' does not depend on the clock's resolution."""
    then = time.time() - seconds
    os.utime(folder, (then, then))


def build_world(settings: Settings, root) -> dict:
    """Three data versions (one delivery file at a time), each with its derived files, and a project
    whose extract was cut from the first."""
    generate(root / "d", questionnaires=400, organisations=2, seed=5, invalid_share=0.0)
    files = sorted((root / "d").glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name))
    engine = store.get_engine(settings)
    ingestor = Ingestor(settings)
    trajectories, first, *rest = files
    ingestor.ingest_many([trajectories, first])
    versions = [derive(engine, settings)]

    add_committee(engine)
    gov.add_user(engine, "anna", display_name="anna", organisation="ORG01", roles=["researcher"])
    entries, instruments = load_entries(settings.catalog_dir), load_instruments(settings.catalog_dir)
    project = approve(engine, "anna", {"trajectories": ["trajectory", "client", "intervention"]},
                      {e.id: set(e.variable_names) for e in entries.values()})
    extract, _ = build_extract(engine, settings, project, entries["trajectories"], ["trajectory", "client"],
                               instruments)

    for file in rest[:2]:
        ingestor.ingest_many([file])
        versions.append(derive(engine, settings))
    for kind in ("snapshots", "indicators"):
        for back, version in enumerate(reversed(versions)):
            age(settings.data_dir / kind / version, 100 * back)
    assert len(set(versions)) == 3
    return {"engine": engine, "settings": settings, "versions": versions, "project": project,
            "extract": extract.relative_to(settings.data_dir)}


def sqlite_settings_in(data_dir) -> Settings:
    return Settings(data_dir=data_dir, catalog_dir=REPO_ROOT / "catalog", expectations_dir=REPO_ROOT / "expectations",
                    progress="never")


@pytest.fixture(scope="module")
def template():
    """The world built once on the embedded store; each test gets a copy of its data folder."""
    root = Path(tempfile.mkdtemp(prefix="ldj-retention-"))
    built = build_world(sqlite_settings_in(root / "var"), root)
    built["engine"].dispose()
    yield built
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def world(template, tmp_path):
    data_dir = tmp_path / "var"
    shutil.copytree(template["settings"].data_dir, data_dir)  # copy2 and copystat: modification times survive
    settings = sqlite_settings_in(data_dir)
    return {**template, "settings": settings, "engine": store.get_engine(settings),
            "extract": data_dir / template["extract"]}


def names(removed: list[retention.Removal]) -> set[tuple[str, str]]:
    """(kind, folder name) of each removal; a factsheet cache file by its data version."""
    return {(r.kind, r.path.name.split("-")[0] if r.kind == "factsheet" else r.path.name) for r in removed}


def folders(settings, kind: str) -> set[str]:
    root = settings.data_dir / kind
    return {f.name for f in root.iterdir() if f.is_dir()} if root.exists() else set()


def cached_versions(settings) -> set[str]:
    return {f.name.split("-")[0] for f in (settings.data_dir / "factsheet" / "cache").glob("*.json")}


def test_old_versions_go_the_newest_and_an_active_projects_stay(world):
    settings, (v1, v2, v3) = world["settings"], world["versions"]
    assert folders(settings, "indicators") == {v1, v2, v3} and cached_versions(settings) == {v1, v2, v3}

    removed = retention.prune(world["engine"], settings)

    assert len(removed) == 2 and names(removed) == {("factsheet", v1), ("indicators", v1)}
    assert folders(settings, "indicators") == {v2, v3} and cached_versions(settings) == {v2, v3}
    assert folders(settings, "snapshots") == {v1, v2, v3}  # v1 stays: the active project's extract was cut from it
    assert world["extract"].exists()
    assert retention.prune(world["engine"], settings) == []  # twice changes nothing


def test_a_closed_project_keeps_no_extracts_but_the_record_and_the_log(world):
    engine, settings, project = world["engine"], world["settings"], world["project"]
    gov.close_project(engine, project, "anna", REPORT)

    removed = retention.prune(engine, settings)

    extracts = [r for r in removed if r.kind == "extracts"]
    assert [(r.project, r.path.name) for r in extracts] == [(project, f"project-{project}")]
    assert "gesloten" in extracts[0].reason
    assert not world["extract"].exists() and not (settings.data_dir / "extracts" / f"project-{project}").exists()
    assert world["versions"][0] not in folders(settings, "snapshots")  # nobody needs the oldest version now
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.extracts.c.rows, store.extracts.c.removed_at)
                            .where(store.extracts.c.project_id == project)).all()
        log = conn.execute(sa.select(store.access_log).where(store.access_log.c.outcome == "removed")).all()
    assert len(rows) == 1 and rows[0].rows > 0 and rows[0].removed_at is not None
    assert [(r.user_name, r.project_id, r.action, r.reason_code) for r in log] == \
        [(retention.ACTOR, project, "extract.remove", "project_ended")]


def test_an_extract_removed_for_an_objection_still_keeps_its_version_to_be_cut_again(world):
    """A client in the first version's extract objects (the store says so; no import cleaned up): prune
    removes the file, logs why, keeps that version's snapshot, and the project can read it again."""
    engine, settings, v1, project = world["engine"], world["settings"], world["versions"][0], world["project"]
    with engine.begin() as conn:
        client = conn.execute(sa.select(store.clients.c.pseudonym).where(~store.clients.c.objection)
                              .order_by(store.clients.c.pseudonym).limit(1)).scalar_one()
        conn.execute(store.clients.update().where(store.clients.c.pseudonym == client).values(objection=True))
    rows = len(pd.read_parquet(world["extract"]))

    retention.prune(engine, settings)

    assert not world["extract"].exists() and v1 in folders(settings, "snapshots")
    [entry] = audit.entries(engine, outcome="removed")
    assert (entry.user, entry.action, entry.reason, entry.project, entry.version) == \
        (retention.ACTOR, "extract.remove", "objection", project, v1)
    entries, instruments = load_entries(settings.catalog_dir), load_instruments(settings.catalog_dir)
    again, manifest = build_extract(engine, settings, project, entries["trajectories"], ["trajectory", "client"],
                                    instruments, version=v1)
    assert again == world["extract"] and manifest.data_version == v1 and manifest.rows < rows


def test_per_organisation_parts_no_kept_version_uses_go_once_stale(world):
    """Snapshot and cube parts (`ldj.parts`) stay while a kept version was built from them; once no kept
    version uses one and it is older than an unfinished build could be, it goes."""
    engine, settings, (v1, v2, v3) = world["engine"], world["settings"], world["versions"]
    gov.close_project(engine, world["project"], "anna", REPORT)  # v1 is kept no more
    data = settings.data_dir
    used = {"snapshot-parts": lambda v: json.loads((data / "snapshots" / v / "parts.json").read_text())["parts"],
            "cube-parts": lambda v: json.loads((data / "indicators" / v / "meta.json").read_text())["parts"]}
    kept, only_v1 = {}, {}
    for kind, parts_of in used.items():
        kept[kind] = set(parts_of(v2)) | set(parts_of(v3))
        only_v1[kind] = set(parts_of(v1)) - kept[kind]
        assert only_v1[kind] and folders(settings, kind) == kept[kind] | only_v1[kind], kind
        for folder in (data / kind).iterdir():
            age(folder, retention.LEFTOVER_SECONDS + 60)
    fresh = data / "snapshot-parts" / ("f" * 32)  # unused, but maybe a build under way
    fresh.mkdir()

    removed = retention.prune(engine, settings)

    for kind, removal in (("snapshot-parts", "snapshot_parts"), ("cube-parts", "cube_parts")):
        assert {r.path.name for r in removed if r.kind == removal} == only_v1[kind]
    assert folders(settings, "snapshot-parts") == kept["snapshot-parts"] | {fresh.name}
    assert folders(settings, "cube-parts") == kept["cube-parts"]


def test_a_project_past_its_end_date_loses_its_extracts(world):
    later = date.today() + timedelta(days=31)
    planned = retention.plan(world["engine"], world["settings"], on=later)
    assert [r.project for r in planned if r.kind == "extracts"] == [world["project"]]
    assert world["extract"].exists()  # planning removes nothing


def test_a_dry_run_removes_nothing_and_says_what_would_go(world):
    settings = world["settings"]
    before = {kind: folders(settings, kind) for kind in ("snapshots", "indicators", "extracts")}
    planned = retention.prune(world["engine"], settings, dry_run=True)
    assert planned and planned == retention.plan(world["engine"], settings)
    assert {kind: folders(settings, kind) for kind in before} == before


def test_more_versions_can_be_kept(world):
    settings = world["settings"].model_copy(update={"keep_data_versions": 3})
    assert retention.prune(world["engine"], settings) == []
    assert len(folders(settings, "indicators")) == 3


def test_only_stale_temporary_files_are_removed(world):
    settings = world["settings"]
    folder = settings.data_dir / "snapshots" / world["versions"][-1]
    stale, fresh = folder / "trajectories.123.tmp", folder / "trajectories.456.tmp"
    stale.write_bytes(b"x" * 10)
    fresh.write_bytes(b"y")
    age(stale, retention.LEFTOVER_SECONDS + 60)
    removed = retention.prune(world["engine"], settings)
    assert [(r.kind, r.bytes) for r in removed if r.kind == "leftover"] == [("leftover", 10)]
    assert not stale.exists() and fresh.exists()


def test_the_extract_of_an_active_project_still_reads_after_pruning(world):
    retention.prune(world["engine"], world["settings"])
    frame = pd.read_parquet(world["extract"])
    assert list(frame.columns) == ["trajectory", "client"] and len(frame) > 0


def test_ldj_prune_speaks_dutch_and_a_dry_run_keeps_everything(world, monkeypatch):
    from ldj import settings as settings_module
    from ldj.cli import main

    settings = world["settings"]
    monkeypatch.setattr(settings_module, "get_settings", lambda: settings)
    monkeypatch.setattr("ldj.cli.get_settings", lambda: settings)
    monkeypatch.setattr(store, "get_engine", lambda *_: world["engine"])
    result = CliRunner().invoke(main, ["prune", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"indicators: {settings.data_dir / 'indicators' / world['versions'][0]}" in result.output
    assert "zou worden verwijderd" in result.output and "ouder dan de nieuwste 2" in result.output
    assert world["versions"][0] in folders(settings, "indicators")
    result = CliRunner().invoke(main, ["prune"])
    assert result.exit_code == 0 and "vrijgemaakt" in result.output
    assert world["versions"][0] not in folders(settings, "indicators")


@pytest.mark.postgres
def test_on_postgresql_a_closed_project_keeps_no_extracts_and_old_versions_go(postgres, tmp_path):
    url = postgres.create_database(f"retention_{os.getpid()}")
    settings = Settings(data_dir=tmp_path / "var", database_url=url, catalog_dir=REPO_ROOT / "catalog",
                        expectations_dir=REPO_ROOT / "expectations", progress="never")
    built = build_world(settings, tmp_path)
    engine, project, (v1, v2, v3) = built["engine"], built["project"], built["versions"]
    gov.close_project(engine, project, "anna", REPORT)
    removed = retention.prune(engine, settings)
    assert names(removed) == {("extracts", f"project-{project}"), ("snapshots", v1), ("indicators", v1),
                              ("factsheet", v1)}
    assert folders(settings, "snapshots") == folders(settings, "indicators") == {v2, v3}
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.extracts.c.removed_at)).scalar_one() is not None
        assert conn.execute(sa.select(sa.func.count()).select_from(store.access_log)
                            .where(store.access_log.c.outcome == "removed")).scalar_one() == 1
