"""The data service behind a real JupyterHub and proxy: the access matrix, audit, linkage, objections."""

from __future__ import annotations

import io
import urllib.error
from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from portalserver import make_stack
from projects import add_committee, approve
from ldj import governance as gov
from ldj import store
from ldj.catalogue import build_frame, load_entries, write_user_catalogue
from ldj.ingest import Ingestor
from ldj.instruments import load_instruments
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate

pytestmark = pytest.mark.slow
CATALOG = REPO_ROOT / "catalog"
PASSWORD = "gegevensdienst achter de echte hub"
SERVICE = "/services/ldj-data/api"



@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")  # pytest removes it (keeps the last 3 runs)
    settings = Settings(data_dir=root / "var", catalog_dir=CATALOG, expectations_dir=REPO_ROOT / "expectations",
                        progress="never")
    generate(root / "d", questionnaires=3000, organisations=3, seed=21, invalid_share=0.0)
    Ingestor(settings).ingest_many(sorted((root / "d").glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name)))
    engine = store.get_engine(settings)
    entries, instruments = load_entries(CATALOG), load_instruments(CATALOG)
    catalogue = {e.id: set(e.variable_names) for e in entries.values()}
    add_committee(engine, PASSWORD)
    for name in ("anna", "bram", "carla", "dirk", "eve"):  # eve: an account without any project
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=["researcher"], password=PASSWORD)
    cbcl = entries["cbcl_6_18_scores"].variable_names
    p1 = approve(engine, "anna", {"trajectories": ["trajectory", "client", "intervention", "age_at_start"],
                                  "cbcl_6_18_scores": cbcl}, catalogue, members=["bram"])
    p2 = approve(engine, "carla", {"trajectories": ["trajectory", "client", "intervention"]}, catalogue)
    p3 = approve(engine, "dirk", {"trajectories": ["trajectory", "client"]}, catalogue)
    hub = make_stack(root).start()
    try:
        tokens = {name: hub.user_token(name, PASSWORD) for name in ("anna", "bram", "carla", "dirk", "eve", "apo1",
                                                                    "steward")}
        yield {"settings": settings, "engine": engine, "hub": hub, "tokens": tokens, "p1": p1, "p2": p2, "p3": p3,
               "entries": entries, "instruments": instruments}
    finally:
        hub.stop()


def get(world, path: str, token: str | None):
    try:
        status, headers, body = world["hub"].request(f"{SERVICE}{path}", token)
        return status, headers, body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def last_log(world) -> dict:
    with world["engine"].connect() as conn:
        row = conn.execute(sa.select(store.access_log).order_by(store.access_log.c.id.desc()).limit(1)).mappings().one()
    return dict(row)


def test_granted_read_returns_only_granted_variables_with_project_pseudonyms(world):
    p1 = world["p1"]
    status, headers, body = get(world, f"/projects/{p1}/entries/trajectories.parquet", world["tokens"]["anna"])
    assert status == 200
    frame = pd.read_parquet(io.BytesIO(body))
    assert list(frame.columns) == ["trajectory", "client", "intervention", "age_at_start"]
    store_frame = build_frame(world["engine"], world["entries"]["trajectories"], world["instruments"])
    assert len(frame) == len(store_frame) == int(headers["X-LDJ-Rows"])
    assert not set(frame["client"]) & set(store_frame["client"])  # re-pseudonymised for the project
    log = last_log(world)
    assert (log["user_name"], log["project_id"], log["entry"], log["outcome"], log["rows"]) == \
        ("anna", p1, "trajectories", "allowed", len(frame))
    assert log["data_version"] == headers["X-LDJ-Data-Version"]


def test_project_members_read_too_and_subsets_of_variables(world):
    status, _, body = get(world, f"/projects/{world['p1']}/entries/trajectories.parquet?variables=client,intervention",
                          world["tokens"]["bram"])
    assert status == 200 and list(pd.read_parquet(io.BytesIO(body)).columns) == ["client", "intervention"]


def test_manifest_describes_the_extract(world):
    status, _, body = get(world, f"/projects/{world['p1']}/entries/cbcl_6_18_scores/manifest", world["tokens"]["anna"])
    import json

    manifest = json.loads(body)
    assert status == 200 and manifest["entry"] == "cbcl_6_18_scores" and manifest["project"] == world["p1"]
    assert manifest["rows"] > 0 and len(manifest["sha256"]) == 64 and manifest["batches"]


@pytest.mark.parametrize("case, user, path, status, reason", [
    ("not granted", "carla", "/projects/{p2}/entries/cbcl_6_18_scores.parquet", 403, "geen toekenning"),
    ("variable not granted", "carla", "/projects/{p2}/entries/trajectories.parquet?variables=client,age_at_start",
     403, "variabelen niet toegekend: age_at_start"),
    ("another project's extract", "carla", "/projects/{p1}/entries/trajectories.parquet", 403, "geen toekenning"),
    ("no project at all", "eve", "/projects/{p1}/entries/trajectories.parquet", 403, "geen toekenning"),
    ("an APO member reads no data", "apo1", "/projects/{p1}/entries/trajectories.parquet", 403, "geen toekenning"),
    ("nor does the steward, through the service", "steward", "/projects/{p1}/entries/cbcl_6_18_scores.parquet",
     403, "geen toekenning"),
    ("unknown entry", "anna", "/projects/{p1}/entries/bestaat_niet.parquet", 404, "onbekend catalogusitem"),
    ("no token", None, "/projects/{p1}/entries/trajectories.parquet", 401, "geen of ongeldig token"),
    ("forged token", "forged", "/projects/{p1}/entries/trajectories.parquet", 401, "geen of ongeldig token"),
])
def test_refusals_are_clear_and_audited(world, case, user, path, status, reason):
    token = {"forged": "0" * 32, None: None}.get(user, world["tokens"].get(user))
    got, _, body = get(world, path.format(p1=world["p1"], p2=world["p2"]), token)
    assert got == status, body
    assert reason in body.decode()
    log = last_log(world)
    assert log["outcome"] == "refused" and reason in log["reason"]
    assert log["user_name"] == (user if user in world["tokens"] else "-")


def test_revocation_and_expiry_count_at_the_next_read(world):
    engine, p3, token = world["engine"], world["p3"], world["tokens"]["dirk"]
    path = f"/projects/{p3}/entries/trajectories.parquet"
    assert get(world, path, token)[0] == 200
    grant = gov.project_grants(engine, p3)[0]
    gov.revoke_grant(engine, grant.id, "steward")
    status, _, body = get(world, path, token)
    assert status == 403 and "ingetrokken" in body.decode() and last_log(world)["outcome"] == "refused"
    # expiry: carla's grant ends; move its end date into the past
    with engine.begin() as conn:
        conn.execute(store.grants.update().where(store.grants.c.project_id == world["p2"])
                     .values(valid_until=date.today() - timedelta(days=1)))
    status, _, body = get(world, f"/projects/{world['p2']}/entries/trajectories.parquet", world["tokens"]["carla"])
    assert status == 403 and "verlopen" in body.decode()


def test_two_projects_cannot_be_linked_and_objectors_never_appear(world):
    engine = world["engine"]
    with engine.connect() as conn:
        n_objectors = conn.exec_driver_sql("SELECT count(*) FROM clients WHERE objection").scalar()
    assert n_objectors > 0
    a = pd.read_parquet(io.BytesIO(get(world, f"/projects/{world['p1']}/entries/trajectories.parquet",
                                       world["tokens"]["anna"])[2]))
    usable = build_frame(engine, world["entries"]["trajectories"], world["instruments"])
    with engine.connect() as conn:
        total = conn.exec_driver_sql("SELECT count(*) FROM trajectories").scalar()
    assert len(a) == len(usable) < total  # objectors' trajectories are missing
    # carla's project (p2) got its own pseudonyms; compare through a fresh extract built for p2
    from ldj.extracts import build_extract

    path, _ = build_extract(engine, world["settings"], world["p2"], world["entries"]["trajectories"],
                            ["trajectory", "client"], world["instruments"])
    b = pd.read_parquet(path)
    assert len(b) == len(a) and not set(a["client"]) & set(b["client"])
    assert not set(a["trajectory"]) & set(b["trajectory"])


def test_the_access_log_cannot_be_edited(world):
    with pytest.raises(sa.exc.DatabaseError):
        with world["engine"].begin() as conn:
            conn.execute(store.access_log.delete())
    with pytest.raises(sa.exc.DatabaseError):
        with world["engine"].begin() as conn:
            conn.execute(store.access_log.update().values(outcome="allowed"))


def test_me_and_the_per_user_intake_catalogue_read_through_the_service(world, tmp_path, monkeypatch):
    import json

    import intake

    status, _, body = get(world, "/me", world["tokens"]["anna"])
    me = json.loads(body)
    assert status == 200 and {g["entry"] for g in me["grants"]} == {"trajectories", "cbcl_6_18_scores"}
    grants = [{"project": g.project_id, "entry": g.entry, "variables": g.variables}
              for g in gov.active_grants(world["engine"], "anna")]
    path = write_user_catalogue(world["entries"], grants, f"{world['hub'].url}{SERVICE[:-4]}", tmp_path / "cat.yaml")
    assert world["tokens"]["anna"] not in path.read_text()
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", world["tokens"]["anna"])
    cat = intake.from_yaml_file(str(path))
    assert set(cat.entries) == {"trajectories", "cbcl_6_18_scores"}
    frame = cat["trajectories"].read()
    assert list(frame.columns) == ["trajectory", "client", "intervention", "age_at_start"] and len(frame) > 0


def test_every_entry_can_be_granted_and_read(world):
    """One project granted every entry in the catalogue, every variable: each reads through the hub."""
    engine, entries = world["engine"], world["entries"]
    catalogue = {e.id: set(e.variable_names) for e in entries.values()}
    if "fien" not in world["tokens"]:
        gov.add_user(engine, "fien", display_name="fien", organisation="ORG02", roles=["researcher"], password=PASSWORD)
        world["tokens"]["fien"] = world["hub"].user_token("fien", PASSWORD)
        world["p_all"] = approve(engine, "fien", {e: sorted(v) for e, v in catalogue.items()}, catalogue)
    for entry in entries.values():
        status, headers, body = get(world, f"/projects/{world['p_all']}/entries/{entry.id}.parquet",
                                    world["tokens"]["fien"])
        assert status == 200, (entry.id, body[:200])
        frame = pd.read_parquet(io.BytesIO(body))
        assert list(frame.columns) == entry.variable_names, entry.id
        assert len(frame) == len(build_frame(engine, entry, world["instruments"])), entry.id
        log = last_log(world)
        assert (log["entry"], log["outcome"], log["rows"]) == (entry.id, "allowed", len(frame))


def test_an_earlier_data_version_can_be_read_again(world, tmp_path):
    token, p1 = world["tokens"]["anna"], world["p1"]
    path = f"/projects/{p1}/entries/trajectories.parquet"
    _, headers, before = get(world, path, token)
    version = headers["X-LDJ-Data-Version"]
    # a new delivery arrives (another organisation): the data version moves on
    generate(tmp_path / "new", questionnaires=300, organisations=1, seed=99, invalid_share=0.0)
    for f in (tmp_path / "new").glob("*traject*.csv"):
        frame = pd.read_csv(f, sep=";", dtype=str, encoding="utf-8-sig")
        frame["Organisatie"] = "ORG09"
        frame.to_csv(f, sep=";", index=False, encoding="utf-8-sig")
        assert Ingestor(world["settings"]).ingest(f).status == "loaded"
    _, headers_now, now = get(world, path, token)
    assert headers_now["X-LDJ-Data-Version"] != version and len(now) != len(before)
    status, headers_then, then = get(world, f"{path}?version={version}", token)
    assert status == 200 and headers_then["X-LDJ-Data-Version"] == version
    assert pd.read_parquet(io.BytesIO(then)).equals(pd.read_parquet(io.BytesIO(before)))
    status, _, body = get(world, f"{path}?version=0000000000000000", token)
    assert status == 404 and "niet (meer) beschikbaar" in body.decode()
    assert last_log(world)["outcome"] == "refused"
