"""Extracts: objections honoured in every data version (earlier pinned ones too), files cut before an
objection removed and logged; strict parsing of requests; paths that cannot leave their folder; the
access decision through ldj.policy for expired, revoked and deactivated grants and another's project."""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from ldj import audit, paths, policy, retention, store
from ldj import governance as gov
from ldj.catalogue import load_entries
from ldj.extracts import (BadInput, ExtractQuery, NotFound, build_extract, parse_query, project_pseudonyms,
                          read_extract)
from ldj.ingest import Ingestor
from ldj.instruments import load_instruments
from ldj.pseudonyms import Pseudonymiser, load_or_create_key
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate
from projects import add_committee, approve

ENTRIES = load_entries(REPO_ROOT / "catalog")
INSTRUMENTS = load_instruments(REPO_ROOT / "catalog")
CATALOGUE = {e.id: set(e.variable_names) for e in ENTRIES.values()}
VARIABLES = ["trajectory", "client", "intervention"]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def template(request, tmp_path_factory):
    """Built once per database: one organisation's delivery (data version v1), two projects, and two
    extracts of the first project cut from v1. Each test gets a copy (`world`)."""
    root = tmp_path_factory.mktemp(f"extracts-{request.param}")
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database(f"extracts_tpl_{os.getpid()}")
    settings = Settings(data_dir=root / "var", database_url=url, catalog_dir=REPO_ROOT / "catalog",
                        expectations_dir=REPO_ROOT / "expectations", progress="never", ingest_workers=0)
    generate(root / "d", questionnaires=300, organisations=1, seed=12, invalid_share=0.0)
    trajectories = next((root / "d").glob("*traject*.csv"))
    ingestor = Ingestor(settings, imported_by="steward")
    assert ingestor.ingest(trajectories).status == "loaded"
    engine = ingestor.engine
    add_committee(engine)
    for name in ("anna", "bram"):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=["researcher"])
    project = approve(engine, "anna", {"trajectories": VARIABLES}, CATALOGUE)
    other = approve(engine, "bram", {"trajectories": VARIABLES}, CATALOGUE)
    path, manifest = build_extract(engine, settings, project, ENTRIES["trajectories"], VARIABLES, INSTRUMENTS)
    narrow, _ = build_extract(engine, settings, project, ENTRIES["trajectories"], ["intervention"], INSTRUMENTS)
    v1 = store.data_version(engine)[0]
    engine.dispose()  # a PostgreSQL template takes no copies while connected
    yield {"settings": settings, "url": url, "file": trajectories, "v1": v1,
           "project": project, "other": other, "path": path.relative_to(settings.data_dir),
           "narrow": narrow.relative_to(settings.data_dir), "rows": manifest.rows, "postgres": url and
           request.getfixturevalue("postgres")}


_copies = iter(range(1_000_000))


@pytest.fixture
def world(template, tmp_path):
    data_dir = tmp_path / "var"
    shutil.copytree(template["settings"].data_dir, data_dir)
    url = None
    if template["url"]:
        name = f"extracts_{next(_copies)}_{os.getpid()}"
        admin = sa.create_engine(template["postgres"].admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{sa.make_url(template["url"]).database}"')
        admin.dispose()
        url = sa.make_url(template["url"]).set(database=name).render_as_string(hide_password=False)
    settings = template["settings"].model_copy(update={"data_dir": data_dir, "database_url": url})
    engine = store.get_engine(settings)
    yield {**template, "settings": settings, "engine": engine, "ingestor": Ingestor(settings, imported_by="steward"),
           "path": data_dir / template["path"], "narrow": data_dir / template["narrow"]}
    engine.dispose()


def objecting_delivery(world, tmp_path) -> tuple[str, int]:
    """The same delivery again, with one client who did not object now objecting: (their store
    pseudonym, their number of trajectories)."""
    frame = pd.read_csv(world["file"], sep=";", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    number = frame.loc[frame["Bezwaar"] == "nee", "Cliëntnummer"].iloc[0]
    frame.loc[frame["Cliëntnummer"] == number, "Bezwaar"] = "ja"
    changed = tmp_path / "again" / world["file"].name
    changed.parent.mkdir()
    frame.to_csv(changed, sep=";", index=False, encoding="utf-8-sig")
    assert world["ingestor"].ingest(changed).status == "loaded"
    key = load_or_create_key(world["settings"].resolved_key_file)
    return Pseudonymiser(key).one("client", "ORG01", number), int((frame["Cliëntnummer"] == number).sum())


def project_pseudonym(world, project: int, client: str) -> str:
    with world["engine"].connect() as conn:
        salt = conn.execute(sa.select(store.projects.c.salt).where(store.projects.c.id == project)).scalar_one()
    key = load_or_create_key(world["settings"].resolved_key_file)
    return project_pseudonyms(key, salt, pd.Series([client])).iloc[0]


def removals(engine) -> list[audit.Entry]:
    return [e for e in audit.entries(engine, outcome="removed") if e.reason == "objection"]


def test_an_objection_removes_the_files_already_cut_and_no_version_holds_the_client_again(world, tmp_path):
    engine, settings, v1, project = world["engine"], world["settings"], world["v1"], world["project"]
    assert world["path"].exists() and world["narrow"].exists()

    client, trajectories = objecting_delivery(world, tmp_path)

    # the files cut before are gone (with or without the client column), and that is logged
    assert store.data_version(engine)[0] != v1
    assert not world["path"].exists() and not world["narrow"].exists()
    assert not world["path"].with_suffix(".manifest.json").exists()
    logged = removals(engine)
    assert {(e.user, e.action, e.project, e.entry, e.version) for e in logged} == \
        {("steward", "extract.remove", project, "trajectories", v1)}
    assert len(logged) == 2 and "bezwaar" in logged[0].line()
    with engine.connect() as conn:
        left = conn.execute(sa.select(store.extracts.c.removed_at)).scalars().all()
    assert len(left) == 2 and all(at is not None for at in left)  # the record of what was made stays

    # the earlier version, asked for again, is cut without the client
    path, manifest = build_extract(engine, settings, project, ENTRIES["trajectories"], VARIABLES, INSTRUMENTS,
                                   version=v1)
    frame = pd.read_parquet(path)
    assert manifest.data_version == v1 and manifest.rows == len(frame) == world["rows"] - trajectories
    assert project_pseudonym(world, project, client) not in set(frame["client"])
    # the other project's first extract of v1, cut only now, leaves the client out as well
    other, _ = build_extract(engine, settings, world["other"], ENTRIES["trajectories"], VARIABLES, INSTRUMENTS,
                             version=v1)
    assert project_pseudonym(world, world["other"], client) not in set(pd.read_parquet(other)["client"])


def test_new_clients_who_object_leave_the_files_already_cut_alone(world, tmp_path):
    """Another organisation's delivery with objectors of its own: none of them is in an earlier extract."""
    generate(tmp_path / "new", questionnaires=200, organisations=1, seed=77, invalid_share=0.0)
    delivery = next((tmp_path / "new").glob("*traject*.csv"))
    frame = pd.read_csv(delivery, sep=";", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    frame["Organisatie"] = "ORG02"
    frame.loc[frame.index[:3], "Bezwaar"] = "ja"
    frame.to_csv(delivery, sep=";", index=False, encoding="utf-8-sig")
    assert world["ingestor"].ingest(delivery).status == "loaded"
    assert world["path"].exists() and world["narrow"].exists() and removals(world["engine"]) == []


def test_a_file_cut_before_an_objection_is_never_served_again_even_if_nobody_removed_it(world):
    """An objection that reached the store without the import's clean-up (here: straight SQL): the
    next read cuts the file again, and retention removes it from the disk."""
    engine, settings, project = world["engine"], world["settings"], world["project"]
    before = pd.read_parquet(world["path"])
    with engine.begin() as conn:
        client = conn.execute(sa.select(store.clients.c.pseudonym).where(~store.clients.c.objection)
                              .order_by(store.clients.c.pseudonym).limit(1)).scalar_one()
        conn.execute(store.clients.update().where(store.clients.c.pseudonym == client).values(objection=True))
    mine = project_pseudonym(world, project, client)
    assert mine in set(before["client"])

    path, manifest = build_extract(engine, settings, project, ENTRIES["trajectories"], VARIABLES, INSTRUMENTS,
                                   version=world["v1"])
    assert path == world["path"] and mine not in set(pd.read_parquet(path)["client"])
    assert manifest.rows < len(before)

    assert world["narrow"].exists()  # cut before the objection, still on disk
    retention.prune(engine, settings)
    assert not world["narrow"].exists() and world["path"].exists()  # the one cut again since stays
    assert [(e.user, e.entry) for e in removals(engine)] == [(retention.ACTOR, "trajectories")]


# --- parsing requests -----------------------------------------------------------------------------

@pytest.mark.parametrize("project, entry, variables, version, error, parameter", [
    ("abc", "trajectories", None, None, BadInput, "project"),
    ("0", "trajectories", None, None, BadInput, "project"),
    ("-1", "trajectories", None, None, BadInput, "project"),
    ("1" * 11, "trajectories", None, None, BadInput, "project"),
    ("1", "../../etc/passwd", None, None, BadInput, "entry"),
    ("1", "trajectories\n", None, None, BadInput, "entry"),
    ("1", "bestaat_niet", None, None, NotFound, None),
    ("1", "trajectories", "client,../x", None, BadInput, None),
    ("1", "trajectories", "total_problems_t", None, BadInput, None),  # a variable of another entry
    ("1", "trajectories", None, "../../../tmp", BadInput, "version"),
    ("1", "trajectories", None, "0123456789abcdef\n", BadInput, "version"),
    ("1", "trajectories", None, "0123456789ABCDEF", BadInput, "version"),
    ("1", "trajectories", None, "0123456789abcdef0", BadInput, "version"),
])
def test_every_part_of_a_request_is_parsed_strictly(project, entry, variables, version, error, parameter):
    with pytest.raises(error) as caught:
        parse_query(ENTRIES, project, entry, variables, version)
    if parameter:
        assert caught.value.reason.fields["parameter"] == parameter


def test_a_valid_request_becomes_typed_values():
    query = parse_query(ENTRIES, "12", "trajectories", "client,intervention,client", "0123456789abcdef")
    assert query == ExtractQuery(12, "trajectories", ("client", "intervention"), "0123456789abcdef")
    assert parse_query(ENTRIES, "3", "cbcl_6_18_scores") == ExtractQuery(3, "cbcl_6_18_scores")
    assert all(paths.is_version(v) for v in ("0123456789abcdef",)) and all(
        __import__("re").fullmatch(r"[a-z0-9_]{1,100}", e) for e in ENTRIES)  # every entry id is well-formed


def test_an_unknown_data_version_is_not_found_and_logged(world):
    engine, settings = world["engine"], world["settings"]
    query = ExtractQuery(world["project"], "trajectories", None, "0000000000000000")
    with pytest.raises(NotFound, match="niet \\(meer\\) beschikbaar"):
        read_extract(engine, settings, "anna", query, ENTRIES, INSTRUMENTS)
    last = audit.entries(engine, limit=1)[0]
    assert (last.user, last.outcome, last.reason, last.version) == ("anna", "refused", "version_unavailable",
                                                                    "0000000000000000")


# --- paths ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("parts", [("..",), ("../x",), ("a/../../x",), ("/etc",), ("a\\..\\x",), ("",), (".",),
                                   ("x\x00",)])
def test_a_path_part_cannot_leave_its_folder(tmp_path, parts):
    with pytest.raises(paths.UnsafePath):
        paths.within(tmp_path, *parts)


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    os.symlink("/etc", tmp_path / "root" / "out")
    assert paths.within(tmp_path / "root", "in", "file") == (tmp_path / "root" / "in" / "file").resolve()
    with pytest.raises(paths.UnsafePath):
        paths.within(tmp_path / "root", "out", "passwd")


@pytest.mark.parametrize("project, version", [(0, "0123456789abcdef"), ("1", "0123456789abcdef"), (True, "0" * 16),
                                              (1, "../0123456789ab"), (1, "0123456789abcde/")])
def test_extract_folders_come_from_validated_ids_only(tmp_path, project, version):
    with pytest.raises(paths.UnsafePath):
        paths.extract_folder(tmp_path, project, version)


def test_a_version_that_escapes_never_writes_outside_the_project_folder(world):
    settings = world["settings"]
    with pytest.raises(BadInput):
        build_extract(world["engine"], settings, world["project"], ENTRIES["trajectories"], VARIABLES, INSTRUMENTS,
                      version="../../../escaped")
    assert not list(Path(settings.data_dir).parent.glob("**/escaped*"))


# --- who may read: the policy and the grants --------------------------------------------------------

def refusal(world, user: str, project: int | None = None, variables=None) -> audit.Entry:
    query = ExtractQuery(project or world["project"], "trajectories", variables)
    with pytest.raises(policy.Refused):
        read_extract(world["engine"], world["settings"], user, query, ENTRIES, INSTRUMENTS)
    return audit.entries(world["engine"], limit=1)[0]


def test_refusals_name_their_reason_by_code(world):
    engine = world["engine"]
    assert refusal(world, "bram").reason == "no_grant"  # another user's project: bram's own grant is elsewhere
    assert refusal(world, "steward").reason == "no_grant"
    assert refusal(world, "onbekend").reason == "no_grant"
    entry = refusal(world, "anna", variables=("client", "team"))
    assert (entry.reason, entry.details) == ("variables_not_granted", {"variables": ["team"]})
    grant = gov.project_grants(engine, world["other"])[0]
    with engine.begin() as conn:  # bram's grant ends yesterday
        conn.execute(store.grants.update().where(store.grants.c.id == grant.id)
                     .values(valid_until=date.today() - timedelta(days=1)))
    assert refusal(world, "bram", world["other"]).reason == "grant_expired"
    gov.deactivate(engine, "anna")
    assert refusal(world, "anna").reason == "account_inactive"


def test_a_revoked_grant_counts_at_the_next_read(world):
    engine, project = world["engine"], world["project"]
    query = ExtractQuery(project, "trajectories", ("client",))
    assert read_extract(engine, world["settings"], "anna", query, ENTRIES, INSTRUMENTS)[1].rows > 0
    gov.revoke_grant(engine, gov.project_grants(engine, project)[0].id, "steward")
    assert refusal(world, "anna").reason == "grant_revoked"
