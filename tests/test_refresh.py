"""ldj/refresh.py: the whole import as one call (read, validate, load, refresh), and views that do not
import each other."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

from ldj import refresh, store, versions
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
