"""The starter notebooks run top to bottom, reading through the data service as a workspace does.

The real hub of hub/jupyterhub_config.py runs with its proxy and data service (tests/portalserver.py).
Each researcher gets a real hub token and the catalogue their workspace would hold
(`write_user_catalogue`, as the spawner writes it); each notebook runs with nbclient in a fresh python3
kernel with only the environment a spawned workspace passes on (JUPYTERHUB_API_TOKEN, LDJ_CATALOG,
LDJ_DATA_SERVICE_URL, PATH, ...). A failing cell fails the test. Figures the notebooks print are checked
against the store, computed here without ldj.outcomes. One workspace is also spawned for real: the
notebooks are copied into it and the first one runs in its own kernel with its own token. The tables and
models the notebooks make with ldj.safe land in the home's `outputs/`; 05 submits its own folder through
the data service as a release request, which is checked in the store.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa
from nbclient import NotebookClient

from portalserver import make_stack
from projects import add_committee, approve
from ldj import airlock, safe, store
from ldj import governance as gov
from ldj.catalogue import build_frame, load_entries, write_user_catalogue
from ldj.hub import CATALOGUE_FILE
from ldj.refresh import import_delivery
from ldj.instruments import load_instruments
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate

pytestmark = pytest.mark.slow
CATALOG = REPO_ROOT / "catalog"
NOTEBOOKS = sorted((REPO_ROOT / "starter_notebooks").glob("*.ipynb"))
# What JupyterHub's Spawner.env_keep passes from the hub's environment into a workspace.
ENV_KEEP = ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL")
NO_PAIRS = "Je hebt geen toekenning voor een item met"
PASSWORD = "notebooks in een echte werkomgeving"
SCORES_VARIABLES = ["trajectory", "informant", "moment", "date", "total_problems_raw", "total_problems_t",
                    "total_problems_band"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb")  # pytest removes it (keeps the last 3 runs)
    hub = make_stack(root)
    settings = Settings(data_dir=hub.data_dir, catalog_dir=CATALOG, expectations_dir=REPO_ROOT / "expectations",
                        progress="never")
    generate(root / "d", questionnaires=2000, organisations=3, seed=21, invalid_share=0.0, instruments=["cbcl_6_18"])
    import_delivery([root / "d"], settings=settings, refresh_views=False)
    engine = store.get_engine(settings)
    entries, instruments = load_entries(CATALOG), load_instruments(CATALOG)
    catalogue = {e.id: set(e.variable_names) for e in entries.values()}
    add_committee(engine)
    for name in ("anna", "bram", "carla"):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=["researcher"], password=PASSWORD)
    trajectories = entries["trajectories"].variable_names
    approve(engine, "anna", {"cbcl_6_18_pairs": entries["cbcl_6_18_pairs"].variable_names,
                             "trajectories": trajectories}, catalogue)
    approve(engine, "bram", {"cbcl_6_18_scores": SCORES_VARIABLES, "trajectories": trajectories}, catalogue)
    approve(engine, "carla", {"trajectories": ["trajectory", "client", "intervention", "start_date"]}, catalogue)

    hub.start()
    try:
        service_url = f"{hub.url}/services/ldj-data"
        homes = {}
        for name in ("anna", "bram", "carla"):
            home = root / "homes" / name
            grants = [{"project": g.project_id, "entry": g.entry, "variables": g.variables}
                      for g in gov.active_grants(engine, name)]
            write_user_catalogue(entries, grants, service_url, home / CATALOGUE_FILE)
            homes[name] = {"home": home, "token": hub.user_token(name, PASSWORD)}
        yield {"root": root, "engine": engine, "entries": entries, "instruments": instruments, "hub": hub,
               "service_url": service_url, "homes": homes}
    finally:
        hub.stop()
    shutil.rmtree(root, ignore_errors=True)


def run_notebook(world, user: str, *notebooks: Path, service_url: bool = True) -> str:
    """Run copies of the notebooks in the user's home as their workspace would, one after the other in
    one fresh kernel with the namespace reset in between; return all text output. `service_url=False`:
    without LDJ_DATA_SERVICE_URL (the catalogue still reads, with the token; submitting cannot)."""
    home, token = world["homes"][user]["home"], world["homes"][user]["token"]
    for notebook in notebooks:
        shutil.copy2(notebook, home / notebook.name)
    env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
    env.update(HOME=str(home), JUPYTERHUB_API_TOKEN=token, LDJ_CATALOG=str(home / CATALOGUE_FILE),
               LDJ_DATA_SERVICE_URL=world["service_url"], IPYTHONDIR=str(home / ".ipython"),
               JUPYTER_RUNTIME_DIR=str(home / ".runtime"), JUPYTER_DATA_DIR=str(home / ".jupyter-data"),
               JUPYTER_CONFIG_DIR=str(home / ".jupyter"), MPLCONFIGDIR=str(home / ".mpl"))
    if not service_url:
        del env["LDJ_DATA_SERVICE_URL"]
    nb = nbformat.read(home / notebooks[0].name, as_version=4)
    for notebook in notebooks[1:]:
        nb.cells += [nbformat.v4.new_code_cell("%reset -f"), *nbformat.read(home / notebook.name, as_version=4).cells]
    NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(home)}}).execute(env=env)
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                texts.append(output["text"])
            elif "text/plain" in output.get("data", {}):
                texts.append(output["data"]["text/plain"])
    return "\n".join(texts)


def allowed_reads(world, user: str) -> int:
    log = store.access_log
    with world["engine"].connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(log).where(
            log.c.user_name == user, log.c.outcome == "allowed")).scalar_one()


def store_pairs(world) -> pd.DataFrame:
    frame = build_frame(world["engine"], world["entries"]["cbcl_6_18_pairs"], world["instruments"])
    return frame[(frame["informant"] == "parent") & frame["total_problems_start"].notna()
                 & frame["total_problems_end"].notna()]


def test_the_starter_notebooks_are_committed_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_catalogus.ipynb", "02_voor_na_verandering.ipynb",
                                           "03_interventies_vergelijken.ipynb", "04_ernst_bij_start_per_jaar.ipynb",
                                           "05_uitvoer_vrijgeven.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), path.name


def test_01_catalogue_lists_the_grant_and_reads_an_entry_through_the_service(world):
    before = allowed_reads(world, "anna")
    text = run_notebook(world, "anna", NOTEBOOKS[0])
    trajectories = build_frame(world["engine"], world["entries"]["trajectories"], world["instruments"])
    assert "cbcl_6_18_pairs" in text and "Trajecten met cliëntkenmerken" in text
    assert f"trajectories: {len(trajectories)} rijen, 16 kolommen" in text
    assert "Gegevensversie: " in text
    assert allowed_reads(world, "anna") > before  # read with anna's own token, and logged


def test_02_pre_post_change_matches_the_store(world):
    before = allowed_reads(world, "anna")
    text = run_notebook(world, "anna", NOTEBOOKS[1])
    pairs = store_pairs(world)
    delta = pairs["total_problems_end"] - pairs["total_problems_start"]
    d = delta.mean() / pairs["total_problems_start"].std()
    assert len(pairs) > 100
    assert f"n = {len(pairs)} paren" in text
    assert f"ΔT = {delta.mean():.2f}" in text
    assert f"effectgrootte d = {d:.2f}" in text
    # Every pair has exactly one category: the four counts add up to the number of pairs.
    counts = [int(m) for m in re.findall(r"^\d\s+[a-z ]+?\s+(\d+)\s+" + str(len(pairs)) + r"\s", text, re.M)]
    assert len(counts) == 4 and sum(counts) == len(pairs)
    assert ":Layout" in text  # the hvplot figure was drawn
    assert allowed_reads(world, "anna") > before


def test_03_interventions_are_compared_per_intervention(world):
    text = run_notebook(world, "anna", NOTEBOOKS[2])
    pairs = store_pairs(world)
    mst = pairs[pairs["intervention"] == "mst"]
    mean = (mst["total_problems_end"] - mst["total_problems_start"]).mean()
    assert len(mst) >= 10
    assert re.search(rf"Multisysteemtherapie \(MST\)\s+{len(mst)}\s+{mean:.2f}\s", text), text[-3000:]
    assert ":Layout" in text


def checked_outputs(world, user: str) -> dict[str, dict]:
    """The ldj.safe outputs in the user's `outputs/` folder, by method, checked again here."""
    folder = world["homes"][user]["home"] / "outputs"
    return {o["method"]: o for o in safe.OutputSession(folder).outputs()}


def test_02_03_04_make_their_tables_and_models_with_ldj_safe(world):
    shutil.rmtree(world["homes"]["anna"]["home"] / "outputs", ignore_errors=True)
    text = run_notebook(world, "anna", *NOTEBOOKS[1:4])
    outputs = checked_outputs(world, "anna")
    assert {"crosstab", "pivot_table", "olsr"} <= set(outputs)
    assert outputs["olsr"]["status"] == "pass" and "(regressie): geslaagd" in text
    assert text.count("(tabel): ") >= 3  # each notebook prints the findings of its checked table


def test_05_release_walks_the_whole_path_and_submits_through_the_service(world):
    engine = world["engine"]
    before = {r.id for r in airlock.list_releases(engine, "anna")}
    text = run_notebook(world, "anna", NOTEBOOKS[4])
    assert "te weinig bijdragers" in text  # the too fine table failed, and the notebook showed why
    made = [r for r in airlock.list_releases(engine, "anna") if r.id not in before]
    assert len(made) == 1, text[-3000:]
    release = made[0]
    assert f"vrijgaveverzoek {release.id} ingediend" in text and f"/uitvoer?id={release.id}" in text
    assert release.title == "Trajecten en leeftijd bij start per interventie" and release.status == airlock.SUBMITTED
    files = {f.file: f for f in release.files}
    assert {"interventie-leeftijdsgroep.csv", "leeftijd-model.txt"} <= set(files)
    assert not [name for name in files if name.startswith("output_")]  # removed and renamed before finalising
    assert files["leeftijd-model.txt"].status == "pass"
    assert files["interventie-leeftijdsgroep.csv"].comments.startswith("Aantal trajecten per interventie")
    # run again: the example starts from an empty folder, and submits a second request
    run_notebook(world, "anna", NOTEBOOKS[4])
    assert len([r for r in airlock.list_releases(engine, "anna") if r.id not in before]) == 2


def test_05_outside_a_workspace_skips_the_submit_with_an_explanation(world):
    before = len(airlock.list_releases(world["engine"], "anna"))
    text = run_notebook(world, "anna", NOTEBOOKS[4], service_url=False)
    assert len(airlock.list_releases(world["engine"], "anna")) == before
    assert "Je bent niet in een LDJ-werkomgeving" in text and "ingediend" not in text


def test_04_severity_at_start_by_year_from_the_pairs(world):
    text = run_notebook(world, "anna", NOTEBOOKS[3])
    starts = build_frame(world["engine"], world["entries"]["cbcl_6_18_pairs"], world["instruments"])
    starts = starts[(starts["informant"] == "parent") & starts["total_problems_start"].notna()]
    assert "Dit notebook gebruikt: cbcl_6_18_pairs" in text
    assert f"n = {len(starts)} startmetingen" in text
    assert "punten per jaar" in text and ":Layout" in text


def test_04_severity_at_start_by_year_prefers_every_start_measurement(world):
    text = run_notebook(world, "bram", NOTEBOOKS[3])
    scores = build_frame(world["engine"], world["entries"]["cbcl_6_18_scores"], world["instruments"])
    starts = scores[(scores["moment"] == "start") & scores["informant"].eq("parent")
                    & scores["total_problems_t"].fillna(scores["total_problems_raw"]).notna()]
    assert "Dit notebook gebruikt: cbcl_6_18_scores" in text
    assert f"n = {len(starts)} startmetingen" in text
    assert len(starts) > len(store_pairs(world))  # more than the pairs: those without an end count too


def test_without_pairs_the_notebooks_say_so_in_dutch_and_run_green(world):
    text = run_notebook(world, "carla", *NOTEBOOKS[1:])
    assert text.count(NO_PAIRS) == 3 and text.count("Vraag zo'n item aan bij de APO") == 3
    assert ":Layout" not in text


def test_a_real_workspace_gets_the_notebooks_and_runs_the_first_one_with_its_own_token(world):
    hub = world["hub"]
    hub.spawn(hub.login("anna", PASSWORD), "anna")
    try:
        home = hub.home("anna")
        assert sorted(p.name for p in home.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
        before = allowed_reads(world, "anna")
        cells = [c.source for c in nbformat.read(home / NOTEBOOKS[0].name, as_version=4).cells if c.cell_type == "code"]
        # Every code cell of the copied notebook, in the workspace's kernel (display() output is not stdout).
        out = hub.execute("anna", world["homes"]["anna"]["token"], "\n\n".join(cells) + "\nprint(ITEM, len(frame))")
        trajectories = build_frame(world["engine"], world["entries"]["trajectories"], world["instruments"])
        assert f"trajectories: {len(trajectories)} rijen" in out and "Gegevensversie: " in out
        assert allowed_reads(world, "anna") > before
        # A release request from the workspace itself: its OS account's home, its own server token.
        released = {r.id for r in airlock.list_releases(world["engine"], "anna")}
        out = hub.execute("anna", world["homes"]["anna"]["token"], "\n".join([
            "import os, intake", "from ldj import safe",
            "frame = intake.from_yaml_file(os.environ['LDJ_CATALOG'])['trajectories'].read()",
            "safe.crosstab(frame['intervention'], frame['gender'])",
            "print('release', safe.submit('Uit de werkomgeving', 'Trajecten per interventie en geslacht.'))"]))
        made = [r for r in airlock.list_releases(world["engine"], "anna") if r.id not in released]
        assert len(made) == 1 and f"release {made[0].id}" in out
        assert (home / "outputs" / safe.MANIFEST).is_file() and made[0].files
    finally:
        hub.stop_server("anna")
