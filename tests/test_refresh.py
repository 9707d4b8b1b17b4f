"""ldj/refresh.py: the whole import as one call (read, validate, load, refresh), and views that do not
import each other."""

from __future__ import annotations

import ast
import graphlib
import json
import random
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ldj import catalogue, indicators, paths, refresh, store, versions
from ldj.instruments import load_instruments
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate

VIEWS = ("catalogue", "indicators", "factsheet", "retention", "feasibility")


@pytest.fixture(scope="module")
def delivery(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("delivery")
    generate(folder, questionnaires=300, organisations=2, seed=3, invalid_share=0.0, instruments=["cbcl_6_18"])
    return folder


def test_delivery_files_put_trajectories_first_and_keep_only_delivery_files(delivery, tmp_path):
    (delivery / "lees mij.txt").write_text("geen levering")
    files = refresh.delivery_files([delivery])
    assert "traject" in files[0].name and all(f.suffix == ".csv" for f in files)
    assert sorted(files) == sorted(delivery.glob("*.csv"))
    given = list(reversed(files))  # files as given keep their order, trajectories first
    trajectories = [f for f in given if "traject" in f.name]
    assert refresh.delivery_files(given) == trajectories + [f for f in given if f not in trajectories]


def test_an_import_loads_and_makes_its_version_shown(delivery, tmp_path):
    settings = Settings(data_dir=tmp_path / "var", catalog_dir=REPO_ROOT / "catalog",
                        expectations_dir=REPO_ROOT / "expectations", progress="never")
    said, seen = [], []
    reports = refresh.import_delivery([delivery], settings=settings, on_report=seen.append,
                                      say=lambda key, version: said.append(key))
    engine = store.get_engine(settings)
    assert [r.status for r in reports] == ["loaded"] * len(reports) and seen == reports
    assert versions.ready_version(settings) == store.data_version(engine)[0]
    assert said == ["cat_refreshed", "ind_cube_built", "fsp_warmed"]
    before = versions.ready_version(settings)
    generate(tmp_path / "next", questionnaires=100, organisations=1, seed=4, invalid_share=0.0,
             instruments=["cbcl_6_18"])
    again = refresh.import_delivery([tmp_path / "next"], settings=settings, refresh_views=False)
    assert all(r.status == "loaded" for r in again)
    assert versions.ready_version(settings) == before != store.data_version(engine)[0]  # left to the lifecycle
    assert versions.needs_refresh(engine, settings)


def _imports() -> dict[str, set[str]]:
    """ldj's modules and the ldj modules each imports (at the top or inside a function)."""
    modules = {p.stem: p for p in (REPO_ROOT / "ldj").glob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                found |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_the_domain_modules_import_each_other_in_no_circle():
    graphlib.TopologicalSorter(_imports()).prepare()  # CycleError names the circle


def test_versions_knows_no_view_and_no_view_knows_the_pipeline():
    graph = _imports()
    assert not graph["versions"] & {*VIEWS, "refresh"}
    assert not [view for view in VIEWS if "refresh" in graph[view]]


# --- incremental refresh: equal to a full rebuild, cell for cell --------------------------------

def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, sep=";", index=False, encoding="utf-8-sig")
    return path


def _cube_frames(folder: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in ("scales", "response"):
        frame = pd.read_parquet(folder / f"{name}.parquet")
        keys = [c for c in frame.columns if frame[c].dtype.kind not in "fc"]
        out[name] = frame.sort_values(keys, kind="stable").reset_index(drop=True)
    return out


def _assert_same_cube(incremental: Path, full: Path) -> None:
    a, b = _cube_frames(incremental), _cube_frames(full)
    for name in a:
        assert len(a[name]) == len(b[name]) > 0, name
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    meta_a, meta_b = (json.loads((f / "meta.json").read_text()) for f in (incremental, full))
    assert meta_a["scales"] == meta_b["scales"] and meta_a["version"] == meta_b["version"]


@pytest.fixture(scope="module")
def three_organisations(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("three")
    generate(folder, questionnaires=900, organisations=3, seed=11, invalid_share=0.0,
             instruments=["cbcl_6_18", "sdq"], catalog_dir=REPO_ROOT / "catalog")
    return folder


def _assert_same_snapshots(incremental: Path, full: Path) -> None:
    """Every entry's snapshot file: the same Arrow schema and the same cells, row for row."""
    names = sorted(p.name for p in full.glob("*.parquet"))
    assert names and sorted(p.name for p in incremental.glob("*.parquet")) == names
    for name in names:
        a, b = pq.read_table(incremental / name), pq.read_table(full / name)
        assert a.schema == b.schema and a.equals(b), name
        pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas(), check_exact=True)
    assert any(pq.read_metadata(full / name).num_rows for name in names)


def _assert_snapshots_hold_the_whole_store(engine, settings, folder: Path) -> None:
    """Assembled from per-organisation parts, a snapshot holds the same rows as one read of the whole
    store (nothing in an entry spans organisations)."""
    instruments = load_instruments(settings.catalog_dir)
    for entry in catalogue.load_entries(settings.catalog_dir).values():
        whole = catalogue.build_frame(engine, entry, instruments)
        assembled = pd.read_parquet(folder / f"{entry.id}.parquet")
        assert list(assembled.columns) == list(whole.columns) and len(assembled) == len(whole), entry.id
        keys = [c for c in ("measurement", "trajectory", "informant") if c in whole.columns]
        a, b = (f.sort_values(keys).reset_index(drop=True).astype(str) for f in (assembled, whole))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=entry.id)


def _organisation_files(delivery: Path, organisation: str) -> list[Path]:
    return sorted(delivery.glob(f"{organisation}_*.csv"))


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_refresh_equals_a_full_rebuild_through_deliveries_corrections_and_objections(
        three_organisations, settings, tmp_path, seed, monkeypatch):
    """Random sequences of deliveries, corrected re-deliveries (rows dropped, dates moved) and
    objections: after each, the cube and every catalogue snapshot the incremental refresh made equal a
    full rebuild from the whole store into another data folder; organisations the step did not touch
    were not read again (their snapshot parts are the very files of before)."""
    read: dict[str, set] = {"cube": set(), "snapshots": set()}
    build_part, build_frame = indicators._build_part, catalogue.build_frame

    def cube_part(engine, settings, instruments, organisation, folder):
        read["cube"].add(organisation)
        return build_part(engine, settings, instruments, organisation, folder)

    def snapshot_frame(engine, entry, instruments, variables=None, organisation=None, **more):
        read["snapshots"].add(organisation)
        return build_frame(engine, entry, instruments, variables, organisation, **more)

    monkeypatch.setattr(indicators, "_build_part", cube_part)
    monkeypatch.setattr(catalogue, "build_frame", snapshot_frame)
    rng = random.Random(seed)
    engine = store.get_engine(settings)
    reference = settings.model_copy(update={"data_dir": tmp_path / "reference"})
    organisations = sorted({p.name.split("_")[0] for p in three_organisations.glob("*.csv")})
    delivered: list[str] = []
    work = tmp_path / "work"
    work.mkdir()
    steps = [("deliver", organisations[0])]
    for _ in range(5):
        waiting = [o for o in organisations if o not in delivered + [s[1] for s in steps if s[0] == "deliver"]]
        kinds = ["correct", "object"] + (["deliver"] if waiting else [])
        kind = rng.choice(kinds)
        steps.append((kind, rng.choice(waiting) if kind == "deliver" else None))
    for number, (kind, organisation) in enumerate(steps):
        before_keys = indicators.part_keys(engine, settings)
        before_parts = {org: {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
                              for p in paths.snapshot_part_folder(settings.data_dir, key).glob("*.parquet")}
                        for org, key in catalogue.snapshot_keys(engine, settings).items()}
        if kind == "deliver":
            files = _organisation_files(three_organisations, organisation)
        else:
            organisation = rng.choice(delivered)
            originals = _organisation_files(three_organisations, organisation)
            if kind == "object":
                path = next(p for p in originals if "trajecten" in p.name)
                frame = _csv(path)
                frame.loc[frame.sample(frac=0.3, random_state=number).index, "Bezwaar"] = "ja"
            else:
                path = rng.choice([p for p in originals if "trajecten" not in p.name])
                frame = _csv(path)
                frame = frame.drop(frame.sample(frac=0.2, random_state=number).index)
                moved = frame.sample(frac=0.2, random_state=number + 1).index  # dates corrected, some out of window
                dates = pd.to_datetime(frame.loc[moved, "Afnamedatum"], format="%d-%m-%Y")
                frame.loc[moved, "Afnamedatum"] = (dates + pd.Timedelta(days=40)).dt.strftime("%d-%m-%Y")
            files = [_write(frame, work / f"{number}_{path.name}")]
        for seen in read.values():
            seen.clear()
        reports = refresh.import_delivery(files, settings=settings)
        assert all(r.status == "loaded" for r in reports), [(r.file, r.status, r.error) for r in reports]
        if organisation not in delivered:
            delivered.append(organisation)
        after_keys = indicators.part_keys(engine, settings)
        changed = {o for o in after_keys if before_keys.get(o) != after_keys[o]}
        assert changed == {organisation}, (kind, changed)
        assert read == {"cube": {organisation}, "snapshots": {organisation}}, (kind, organisation, read)
        snapshot_keys = catalogue.snapshot_keys(engine, settings)
        assert {o for o in snapshot_keys if o not in before_parts or o == organisation} == {organisation}
        version = store.data_version(engine)[0]
        folder = paths.snapshot_folder(settings.data_dir, version)
        for org in set(snapshot_keys) - {organisation}:  # reused as they were: not read, not written
            part = paths.snapshot_part_folder(settings.data_dir, snapshot_keys[org])
            assert before_parts[org] and {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
                                          for p in part.glob("*.parquet")} == before_parts[org], org
        assert set(json.loads((folder / "parts.json").read_text())["parts"]) == set(snapshot_keys.values())
        full = indicators.build_cube(engine, reference, folder=tmp_path / f"full-{number}", full=True)
        _assert_same_cube(paths.cube_folder(settings.data_dir, version), full)
        _assert_same_snapshots(folder, catalogue.refresh_snapshots(engine, reference, full=True))
    _assert_snapshots_hold_the_whole_store(engine, settings, folder)
    read_again = {p.name for p in (settings.data_dir / "cube-parts").iterdir() if not p.name.startswith(".")}
    assert len(read_again) < sum(1 for _ in steps) + len(organisations)  # pruned: only what kept cubes use
