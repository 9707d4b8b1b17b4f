"""Publishing the catalogue's metadata to a real CKAN 2.12 (started here, without Solr)."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import ckanapi
import pytest
from ckanserver import CkanServer, install_ckan

from ldj import store
from ldj.catalogue import entry_counts, load_entries
from ldj.ckan import ACCESS_RIGHTS, FACTSHEET_DATASET, PublishError, dataset_name, published_counts, publish
from ldj.disclosure import controlled_count
from ldj.ingest import Ingestor
from ldj.instruments import load_instruments
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate

pytestmark = pytest.mark.slow
ORG = "sejn-ldj"


@pytest.fixture(scope="module")
def ckan_server(postgres, tmp_path_factory):
    t0 = time.perf_counter()
    install_ckan()  # a failed install fails the tests: no skip
    installed = time.perf_counter() - t0
    server = CkanServer(tmp_path_factory.mktemp("ckan"), postgres.create_database(f"ckan_{time.time_ns()}"))
    server.start()
    print(f"\nCKAN: install check {installed:.1f} s, setup {server.timings['setup_s']:.1f} s, "
          f"serving after {server.timings['start_s']:.1f} s")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def loaded_store(tmp_path_factory):
    """A small synthetic delivery in a SQLite store."""
    root = tmp_path_factory.mktemp("store")
    settings = Settings(data_dir=root / "var", catalog_dir=REPO_ROOT / "catalog",
                        expectations_dir=REPO_ROOT / "expectations", progress="never")
    generate(root / "d", questionnaires=1500, organisations=2, seed=5, invalid_share=0.0,
             catalog_dir=REPO_ROOT / "catalog")
    files = sorted((root / "d").glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name))
    assert all(r.status == "loaded" for r in Ingestor(settings).ingest_many(files))
    engine, instruments = store.get_engine(settings), load_instruments(settings.catalog_dir)
    clients = sorted(c for c in (entry_counts(engine, e, instruments)["clients"]
                                 for e in load_entries(settings.catalog_dir).values()) if c > 0)
    # a threshold with entries on both sides, so publishing shows both a suppressed and a published count
    return settings.model_copy(update={"disclosure_threshold": clients[0] + 1})


@pytest.fixture
def ckan(ckan_server):
    """The sysadmin's client on a CKAN without any dataset (earlier tests' datasets purged)."""
    client = ckanapi.RemoteCKAN(ckan_server.url, apikey=ckan_server.token)
    for name in client.action.package_list():
        client.action.dataset_purge(id=name)
    return client


@pytest.fixture
def store_settings(loaded_store, tmp_path):
    """The loaded store, with a catalogue of its own that a test may edit."""
    shutil.copytree(REPO_ROOT / "catalog", tmp_path / "catalog")
    return loaded_store.model_copy(update={"catalog_dir": tmp_path / "catalog"})


def _publish(settings, server, **kw):
    return publish(store.get_engine(settings), settings, server.url, server.token, organisation=ORG,
                   portal_url="https://portal.example", **kw)


def _extras(package: dict) -> dict:
    return {e["key"]: e["value"] for e in package["extras"]}


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_round_trip_creates_then_changes_nothing(ckan, ckan_server, store_settings):
    entries = load_entries(store_settings.catalog_dir)
    instruments = load_instruments(store_settings.catalog_dir)
    names = sorted(dataset_name(e) for e in entries)

    report = _publish(store_settings, ckan_server)
    assert sorted(report.created) == names and not report.updated and not report.deleted
    org = ckan.action.organization_show(id=ORG, include_datasets=False)
    engine = store.get_engine(store_settings)
    suppressed = 0
    for entry in entries.values():
        package = ckan.action.package_show(id=dataset_name(entry.id))
        extras = _extras(package)
        assert package["owner_org"] == org["id"] and not package["private"]
        assert package["title"] == entry.title["nl"] and extras["title_en"] == entry.title["en"]
        assert package["url"] == f"https://portal.example/aanvragen/nieuw?entry={entry.id}"
        assert extras["access_rights"] == ACCESS_RIGHTS and extras["conforms_to"] == "LDJ-aanleverformaat"
        assert extras["sensitivity"] == entry.sensitivity and extras["contact_point"]
        assert extras["theme"] == ", ".join(entry.themes)
        assert sorted(t["name"] for t in package["tags"]) == sorted(entry.themes)
        exact = entry_counts(engine, entry, instruments)
        clients = controlled_count(exact["clients"], store_settings)
        if clients is None:
            suppressed += 1
            assert extras["number_of_unique_individuals"] == f"< {store_settings.disclosure_threshold}"
            assert not {"number_of_records", "temporal_start", "temporal_end"} & set(extras)
        else:
            assert int(extras["number_of_unique_individuals"]) == clients and clients % 5 == 0
            assert int(extras["number_of_records"]) == controlled_count(exact["rows"], store_settings)
            assert int(extras["number_of_records"]) % 5 == 0
            assert extras["temporal_start"] <= exact["first"] and extras["temporal_start"].endswith("-01")
            assert extras["temporal_end"] >= exact["last"]
        # the data dictionary: a documentation resource with variable names and labels only
        [resource] = package["resources"]
        assert resource["resource_type"] == "documentation" and resource["format"] == "CSV"
        rows = list(csv.DictReader(io.StringIO(_download(resource["url"]).decode("utf-8"))))
        assert [r["variable"] for r in rows] == entry.variable_names
        assert rows[0]["label_nl"] == entry.variables[0].label["nl"]
    assert suppressed, "the small store should have an entry below the disclosure threshold"

    before = {n: ckan.action.package_show(id=n)["metadata_modified"] for n in names}
    again = _publish(store_settings, ckan_server)
    assert sorted(again.unchanged) == names and not (again.created or again.updated or again.deleted)
    assert {n: ckan.action.package_show(id=n)["metadata_modified"] for n in names} == before


def test_a_changed_entry_is_patched_and_a_withdrawn_one_deleted(ckan, ckan_server, store_settings):
    _publish(store_settings, ckan_server)
    # someone else's extra on our dataset, another organisation's ldj-* dataset, a non-ldj dataset
    ckan.action.package_patch(id="ldj-sdq-scores", extras=ckan.action.package_show(id="ldj-sdq-scores")["extras"]
                              + [{"key": "harvest_source", "value": "elsewhere"}])
    ckan.action.organization_create(name="someone-else")
    ckan.action.package_create(name="ldj-not-ours", owner_org="someone-else")
    ckan.action.package_create(name="other-dataset", owner_org=ORG)
    before = ckan.action.package_show(id="ldj-sdq-scores")["metadata_modified"]

    path = store_settings.catalog_dir / "entries" / "trajectories.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("Trajecten met cliëntkenmerken",
                                                             "Zorgtrajecten met cliëntkenmerken"), encoding="utf-8")
    report = _publish(store_settings, ckan_server)
    assert report.updated == ["ldj-trajectories"] and not report.created and not report.deleted
    assert ckan.action.package_show(id="ldj-trajectories")["title"] == "Zorgtrajecten met cliëntkenmerken"
    sdq = ckan.action.package_show(id="ldj-sdq-scores")
    assert sdq["metadata_modified"] == before and _extras(sdq)["harvest_source"] == "elsewhere"

    path.unlink()
    report = _publish(store_settings, ckan_server)
    assert report.deleted == ["ldj-trajectories"] and not (report.created or report.updated)
    with pytest.raises(ckanapi.NotFound):  # purged: the token is a sysadmin's
        ckan.action.package_show(id="ldj-trajectories")
    assert ckan.action.package_show(id="ldj-not-ours")["state"] == "active"
    assert ckan.action.package_show(id="other-dataset")["state"] == "active"

    # an entry that comes back after a delete that was not purged is restored
    shutil.copy(REPO_ROOT / "catalog" / "entries" / "trajectories.yaml", path)
    _publish(store_settings, ckan_server)
    ckan.action.package_delete(id="ldj-trajectories")
    report = _publish(store_settings, ckan_server)
    assert report.created == ["ldj-trajectories"] and not report.deleted
    assert ckan.action.package_show(id="ldj-trajectories")["state"] == "active"


def test_an_organisation_editor_publishes_and_deletes_without_purging(ckan, ckan_server, store_settings):
    if ORG not in ckan.action.organization_list():
        ckan.action.organization_create(name=ORG)
    ckan.action.user_create(name="redacteur", email="redacteur@example.org", password=secrets.token_urlsafe(16))
    ckan.action.organization_member_create(id=ORG, username="redacteur", role="editor")
    token = ckan.action.api_token_create(user="redacteur", name="publish")["token"]
    engine = store.get_engine(store_settings)
    report = publish(engine, store_settings, ckan_server.url, token, organisation=ORG)
    assert len(report.created) == len(load_entries(store_settings.catalog_dir))

    path = store_settings.catalog_dir / "entries" / "trajectories.yaml"
    path.unlink()
    assert publish(engine, store_settings, ckan_server.url, token, organisation=ORG).deleted == ["ldj-trajectories"]
    assert ckan.action.package_show(id="ldj-trajectories")["state"] == "deleted"  # purging needs a sysadmin
    shutil.copy(REPO_ROOT / "catalog" / "entries" / "trajectories.yaml", path)
    report = publish(engine, store_settings, ckan_server.url, token, organisation=ORG)
    assert report.created == ["ldj-trajectories"] and len(report.unchanged) == len(load_entries(store_settings.catalog_dir)) - 1


def test_no_person_level_data_reaches_ckan(ckan, ckan_server, store_settings):
    _publish(store_settings, ckan_server, attachments=None)
    with store.get_engine(store_settings).connect() as conn:
        secrets = {r[0] for table in ("clients", "trajectories", "measurements")
                   for r in conn.exec_driver_sql(f"SELECT pseudonym FROM {table}")}
    assert len(secrets) > 100
    published = []
    for name in ckan.action.package_list():
        package = ckan.action.package_show(id=name)
        published.append(json.dumps(package, ensure_ascii=False))
        published += [_download(r["url"]).decode("utf-8") for r in package["resources"]]
    text = "\n".join(published)
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"pseudonyms published: {leaked[:3]}"


def test_dry_run_writes_nothing(ckan, ckan_server, store_settings):
    report = _publish(store_settings, ckan_server, dry_run=True)
    assert len(report.created) == len(load_entries(store_settings.catalog_dir)) and report.dry_run
    assert "would be created" in report.summary()
    assert ckan.action.package_list() == []


def test_factsheet_attachment_is_a_resource_of_its_own_dataset(ckan, ckan_server, store_settings, tmp_path):
    pdf = tmp_path / "factsheet.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% a stand-in factsheet\n%%EOF\n")
    report = _publish(store_settings, ckan_server, attachments={"Factsheet 2024": pdf})
    assert FACTSHEET_DATASET in report.created
    [resource] = ckan.action.package_show(id=FACTSHEET_DATASET)["resources"]
    assert resource["name"] == "Factsheet 2024" and _download(resource["url"]) == pdf.read_bytes()
    assert FACTSHEET_DATASET in _publish(store_settings, ckan_server, attachments={"Factsheet 2024": pdf}).unchanged
    pdf.write_bytes(b"%PDF-1.4\n% a newer factsheet\n%%EOF\n")
    assert _publish(store_settings, ckan_server, attachments={"Factsheet 2024": pdf}).updated == [FACTSHEET_DATASET]
    report = _publish(store_settings, ckan_server)  # without attachments the factsheet dataset is left alone
    assert FACTSHEET_DATASET not in report.deleted
    assert ckan.action.package_show(id=FACTSHEET_DATASET)["state"] == "active"


def test_the_built_factsheet_pdf_is_attached_by_the_cli(ckan, ckan_server, store_settings, monkeypatch):
    from click.testing import CliRunner
    from pypdf import PdfReader

    from ldj.cli import main
    from ldj.settings import get_settings

    for name, value in (("LDJ_DATA_DIR", str(store_settings.data_dir)), ("LDJ_CATALOG_DIR", str(store_settings.catalog_dir)),
                        ("LDJ_CKAN_API_TOKEN", ckan_server.token)):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["catalog", "publish", "--ckan", ckan_server.url, "--organisation", ORG,
                                           "--factsheet-pdf"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    pdf = store_settings.data_dir / "factsheet" / "factsheet.pdf"  # built at the store's data version
    [resource] = ckan.action.package_show(id=FACTSHEET_DATASET)["resources"]
    data = _download(resource["url"])
    assert resource["name"] == "factsheet.pdf" and data == pdf.read_bytes() and data.startswith(b"%PDF")
    assert "Factsheet Lerende Databank Jeugd" in PdfReader(io.BytesIO(data)).pages[0].extract_text()


def test_a_bad_token_or_an_unreachable_ckan_is_a_clear_error(ckan, ckan_server, store_settings):
    engine = store.get_engine(store_settings)
    with pytest.raises(PublishError, match=f"CKAN at {ckan_server.url}.*API token"):
        publish(engine, store_settings, ckan_server.url, "not-a-token", organisation=ORG)
    if ORG not in ckan.action.organization_list():  # an existing organisation: refused before any write too
        ckan.action.organization_create(name=ORG)
    with pytest.raises(PublishError, match=f"CKAN at {ckan_server.url}.*API token"):
        publish(engine, store_settings, ckan_server.url, "not-a-token", organisation=ORG)
    assert ckan.action.package_list() == []
    with pytest.raises(PublishError, match=f"CKAN at {ckan_server.url}/nowhere.*HTTP 405.*CKAN site"):
        publish(engine, store_settings, f"{ckan_server.url}/nowhere", ckan_server.token, organisation=ORG)
    from conftest import free_port
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PublishError, match=f"CKAN at {dead} is not reachable"):
        publish(engine, store_settings, dead, ckan_server.token, organisation=ORG)


def test_suppressed_counts_are_published_as_text_without_coverage():
    settings = Settings(disclosure_threshold=10, disclosure_rounding=5)
    assert published_counts({"rows": 40, "clients": 9, "first": "2020-01-05", "last": "2021-02-03"}, settings) == \
        {"number_of_unique_individuals": "< 10"}
    assert published_counts({"rows": 43, "clients": 12, "first": "2020-01-05", "last": "2021-02-03"}, settings) == \
        {"number_of_unique_individuals": "10", "number_of_records": "45",
         "temporal_start": "2020-01-01", "temporal_end": "2021-02-28"}


def test_cli_publishes_with_the_token_from_a_file_or_the_environment(ckan, ckan_server, store_settings, tmp_path):
    ldj = Path(sys.executable).parent / "ldj"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDJ_")}
    env.update(LDJ_DATA_DIR=str(store_settings.data_dir), LDJ_CATALOG_DIR=str(store_settings.catalog_dir),
               LDJ_PROGRESS="never")
    token_file = tmp_path / "ckan.token"
    token_file.write_text(ckan_server.token + "\n")
    args = [str(ldj), "catalog", "publish", "--ckan", ckan_server.url, "--organisation", ORG]
    first = subprocess.run([*args, "--token-file", str(token_file)], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    n = len(load_entries(store_settings.catalog_dir))
    assert f"{n} created, 0 updated, 0 deleted, 0 unchanged" in first.stdout
    again = subprocess.run(args, env={**env, "LDJ_CKAN_API_TOKEN": ckan_server.token}, capture_output=True, text=True)
    assert again.returncode == 0 and f"0 created, 0 updated, 0 deleted, {n} unchanged" in again.stdout
    bad = subprocess.run(args, env={**env, "LDJ_CKAN_API_TOKEN": "wrong"}, capture_output=True, text=True)
    assert bad.returncode == 1 and f"CKAN at {ckan_server.url}" in bad.stderr and "Traceback" not in bad.stderr
    missing = subprocess.run(args, env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "LDJ_CKAN_API_TOKEN" in missing.stderr
