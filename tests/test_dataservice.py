"""The data service behind a real JupyterHub and proxy: the access matrix, audit, linkage, objections,
and attacks by class: path traversal, log injection, another user's token, expired, revoked and
deactivated grants, malformed parameters."""

from __future__ import annotations

import io
import json
import urllib.error
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from portalserver import make_stack
from projects import add_committee, approve
from ldj import audit, store
from ldj import governance as gov
from ldj.catalogue import build_frame, load_entries, write_user_catalogue
from ldj.ingest import Ingestor
from ldj.refresh import import_delivery
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
    import_delivery([root / "d"], settings=settings, refresh_views=False)
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


def last_log(world) -> audit.Entry:
    return audit.entries(world["engine"], limit=1)[0]


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
    assert (log.user, log.action, log.project, log.entry, log.outcome, log.rows) == \
        ("anna", "extract.read", p1, "trajectories", "allowed", len(frame))
    assert log.version == headers["X-LDJ-Data-Version"] and log.variables == list(frame.columns)


def test_project_members_read_too_and_subsets_of_variables(world):
    status, _, body = get(world, f"/projects/{world['p1']}/entries/trajectories.parquet?variables=client,intervention",
                          world["tokens"]["bram"])
    assert status == 200 and list(pd.read_parquet(io.BytesIO(body)).columns) == ["client", "intervention"]


def test_manifest_describes_the_extract(world):
    status, _, body = get(world, f"/projects/{world['p1']}/entries/cbcl_6_18_scores/manifest", world["tokens"]["anna"])
    manifest = json.loads(body)
    assert status == 200 and manifest["entry"] == "cbcl_6_18_scores" and manifest["project"] == world["p1"]
    assert manifest["rows"] > 0 and len(manifest["sha256"]) == 64 and manifest["batches"]


@pytest.mark.parametrize("case, user, path, status, code, reason", [
    ("not granted", "carla", "/projects/{p2}/entries/cbcl_6_18_scores.parquet", 403, "no_grant", "geen toekenning"),
    ("variable not granted", "carla", "/projects/{p2}/entries/trajectories.parquet?variables=client,age_at_start",
     403, "variables_not_granted", "variabelen niet toegekend: age_at_start"),
    ("another user's token on a project of someone else", "carla", "/projects/{p1}/entries/trajectories.parquet",
     403, "no_grant", "geen toekenning"),
    ("no project at all", "eve", "/projects/{p1}/entries/trajectories.parquet", 403, "no_grant", "geen toekenning"),
    ("an APO member reads no data", "apo1", "/projects/{p1}/entries/trajectories.parquet", 403, "no_grant",
     "geen toekenning"),
    ("nor does the steward, through the service", "steward", "/projects/{p1}/entries/cbcl_6_18_scores.parquet",
     403, "no_grant", "geen toekenning"),
    ("a project that does not exist", "anna", "/projects/999999/entries/trajectories.parquet", 403, "no_grant",
     "geen toekenning"),
    ("unknown entry", "anna", "/projects/{p1}/entries/bestaat_niet.parquet", 404, "unknown_entry",
     "onbekend catalogusitem"),
    ("a variable outside the dictionary", "anna", "/projects/{p1}/entries/trajectories.parquet?variables=client,bsn",
     400, "unknown_variables", "onbekende variabelen in 'trajectories': bsn"),
    ("a project that is not a number", "anna", "/projects/1e3/entries/trajectories.parquet", 400, "bad_input",
     "ongeldige waarde voor project: 1e3"),
    ("an argument the service does not take", "anna", "/projects/{p1}/entries/trajectories.parquet?path=/etc",
     400, "bad_input", "ongeldige waarde voor argument: path"),
    ("an argument twice", "anna", "/projects/{p1}/entries/trajectories.parquet?version=a&version=b", 400,
     "bad_input", "ongeldige waarde voor version: 2x"),
    ("no token", None, "/projects/{p1}/entries/trajectories.parquet", 401, "no_token", "geen of ongeldig token"),
    ("forged token", "forged", "/projects/{p1}/entries/trajectories.parquet", 401, "no_token",
     "geen of ongeldig token"),
])
def test_refusals_are_clear_and_audited(world, case, user, path, status, code, reason):
    token = {"forged": "0" * 32, None: None}.get(user, world["tokens"].get(user))
    got, _, body = get(world, path.format(p1=world["p1"], p2=world["p2"]), token)
    assert got == status, body
    assert reason in body.decode()
    log = last_log(world)
    assert log.outcome == "refused" and reason in log.message() and log.reason == code
    assert log.user == (user if user in world["tokens"] else "-")


def test_revocation_and_expiry_count_at_the_next_read(world):
    engine, p3, token = world["engine"], world["p3"], world["tokens"]["dirk"]
    path = f"/projects/{p3}/entries/trajectories.parquet"
    assert get(world, path, token)[0] == 200
    grant = gov.project_grants(engine, p3)[0]
    gov.revoke_grant(engine, grant.id, "steward")
    status, _, body = get(world, path, token)
    assert status == 403 and "ingetrokken" in body.decode()
    assert (last_log(world).outcome, last_log(world).reason) == ("refused", "grant_revoked")
    # expiry: carla's grant ends; move its end date into the past
    with engine.begin() as conn:
        conn.execute(store.grants.update().where(store.grants.c.project_id == world["p2"])
                     .values(valid_until=date.today() - timedelta(days=1)))
    status, _, body = get(world, f"/projects/{world['p2']}/entries/trajectories.parquet", world["tokens"]["carla"])
    assert status == 403 and "verlopen" in body.decode() and last_log(world).reason == "grant_expired"


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
        assert (log.entry, log.outcome, log.rows) == (entry.id, "allowed", len(frame))


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
    assert (last_log(world).outcome, last_log(world).reason) == ("refused", "version_unavailable")


# --- attacks by class ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/projects/{p1}/entries/trajectories.parquet?version=../../../../tmp/ldj-escaped",
    "/projects/{p1}/entries/trajectories.parquet?version=..%2F..%2F..%2Fldj-escaped",
    "/projects/{p1}/entries/trajectories.parquet?version=%2Ftmp%2Fldj-escaped",
    "/projects/{p1}/entries/trajectories.parquet?version=0123456789abcdef%2F..",
    "/projects/{p1}/entries/..%2F..%2Fldj-escaped.parquet",
    "/projects/{p1}/entries/%2E%2E.parquet",
    "/projects/..%2F..%2F{p1}/entries/trajectories.parquet",
    "/projects/{p1}/entries/trajectories.parquet?variables=..%2F..%2Fldj-escaped",
])
def test_path_traversal_is_refused_before_any_path_is_built(world, path):
    root = world["settings"].data_dir.parent
    before = set(root.rglob("*ldj-escaped*"))
    status, _, body = get(world, path.format(p1=world["p1"]), world["tokens"]["anna"])
    assert status in (400, 404), body  # 404: the proxy or the route never reached the service
    assert set(root.rglob("*ldj-escaped*")) == before == set()
    assert not list(Path("/tmp").glob("ldj-escaped*"))
    if status == 400:
        assert last_log(world).reason in ("bad_input", "unknown_variables") and last_log(world).user == "anna"


INJECTIONS = {
    "newline": "x\n2026-12-04 10:00:00 mallory      extract.read   allowed  project 1",
    "carriage return": "x\rmallory allowed",
    "nul": "x\x00mallory",
    "ansi escape": "x\x1b[2K\x1b[1Gmallory allowed\x1b[0m",
    "line separators": "x\u2028mallory\u2029allowed\x85",
    "long": "v" * 6000 + "\n" + "w" * 2000,  # what the proxy lets through in a URL; 100 kB below
}


def test_log_injection_through_the_service_stays_one_escaped_line_per_request(world, tmp_path, monkeypatch):
    from urllib.parse import quote

    from click.testing import CliRunner

    from ldj.cli import main
    from ldj.settings import get_settings

    engine, p1, token = world["engine"], world["p1"], world["tokens"]["anna"]
    with engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.max(store.access_log.c.id))).scalar_one() or 0
    for value in INJECTIONS.values():
        for query in (f"version={quote(value)}", f"variables=client,{quote(value)}"):
            status, _, body = get(world, f"/projects/{p1}/entries/trajectories.parquet?{query}", token)
            assert status == 400, body
            assert "\n" not in body.decode() and json.loads(body)["status"] == 400
        status, _, _ = get(world, f"/projects/{p1}/entries/{quote(value[:200], safe='')}.parquet", token)
        assert status in (400, 404)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.access_log).where(store.access_log.c.id > first)
                            .order_by(store.access_log.c.id)).mappings().all()
    stored = [json.dumps(dict(r), default=str, ensure_ascii=False) for r in rows]
    assert not any(ch in text for text in stored for ch in "\r\x00\x1b\u2028\u2029\x85")
    by_version = [r for r in rows if r["reason_code"] == "bad_input" and r["details"]["parameter"] == "version"]
    assert [r["details"]["value"] for r in by_version] == [audit.clean(v) for v in INJECTIONS.values()]
    assert [r["data_version"] for r in by_version] == [audit.clean(v, 64) for v in INJECTIONS.values()]
    by_variables = [r for r in rows if r["reason_code"] == "unknown_variables"]
    assert [r["details"]["variables"] for r in by_variables] == [[audit.clean(v)] for v in INJECTIONS.values()]

    monkeypatch.setenv("LDJ_DATA_DIR", str(world["settings"].data_dir))
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["audit", "--limit", str(len(rows))])
    get_settings.cache_clear()
    assert result.exit_code == 0 and len(result.output.splitlines()) == len(rows)
    assert [line.split()[4] for line in result.output.splitlines()] == ["refused"] * len(rows)


def test_a_100_kb_request_is_refused_whole_and_the_service_still_answers(world):
    from urllib.parse import quote

    p1, token = world["p1"], world["tokens"]["anna"]
    try:
        status = get(world, f"/projects/{p1}/entries/trajectories.parquet?version={quote('x' * 100_000)}", token)[0]
    except (ConnectionError, urllib.error.URLError):
        status = "connection closed"  # the proxy drops a request whose head is over its limit
    assert status in (400, 414, 431, "connection closed")  # refused whole, never served, nothing crashed
    assert get(world, f"/projects/{p1}/entries/trajectories/manifest", token)[0] == 200


def test_a_deactivated_account_reads_nothing_with_its_old_token(world):
    engine, p1 = world["engine"], world["p1"]
    path = f"/projects/{p1}/entries/trajectories.parquet?variables=client"
    assert get(world, path, world["tokens"]["bram"])[0] == 200
    gov.deactivate(engine, "bram")
    status, _, body = get(world, path, world["tokens"]["bram"])
    assert status == 403 and "niet actief" in body.decode()
    assert (last_log(world).user, last_log(world).reason) == ("bram", "account_inactive")


def test_an_extract_of_an_earlier_version_leaves_out_a_client_who_objects_now(world, tmp_path):
    """Through the service: the pinned version is read again after one of its clients objected."""
    engine, p1, token = world["engine"], world["p1"], world["tokens"]["anna"]
    path = f"/projects/{p1}/entries/trajectories.parquet?variables=trajectory,client"
    _, headers, before = get(world, path, token)
    version = headers["X-LDJ-Data-Version"]
    with engine.connect() as conn:
        client, trajectories = conn.execute(
            sa.select(store.trajectories.c.client, sa.func.count()).join(
                store.clients, store.clients.c.pseudonym == store.trajectories.c.client)
            .where(~store.clients.c.objection).group_by(store.trajectories.c.client)
            .order_by(store.trajectories.c.client).limit(1)).one()
    with engine.begin() as conn:  # the objection as an import records it (the import also removes files)
        conn.execute(store.clients.update().where(store.clients.c.pseudonym == client).values(objection=True))
    status, headers, after = get(world, f"{path}&version={version}", token)
    assert status == 200 and headers["X-LDJ-Data-Version"] == version
    assert len(pd.read_parquet(io.BytesIO(after))) == len(pd.read_parquet(io.BytesIO(before))) - trajectories
