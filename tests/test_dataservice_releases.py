"""A release request sent from a workspace through the data service (`POST api/projects/<p>/releases`),
behind the real JupyterHub and proxy with real user tokens: the member's request is made and its files
copied; a non-member, a path in a file name, an oversize upload and a missing token are refused, each in
the access log. And `ldj.safe.submit`, the client a notebook calls, end to end."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
import requests

from portalserver import make_stack
from projects import add_committee, approve
from ldj import airlock, audit, dataservice, safe, store
from ldj import governance as gov
from ldj.catalogue import load_entries
from ldj.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.slow
CATALOG = REPO_ROOT / "catalog"
PASSWORD = "uitvoer vrijgeven via de gegevensdienst"
MAX_MB = 1  # LDJ_RELEASE_MAX_MB of this stack: an oversize upload stays cheap


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rel")
    settings = Settings(data_dir=root / "var", catalog_dir=CATALOG, expectations_dir=REPO_ROOT / "expectations",
                        progress="never", release_max_mb=MAX_MB)
    engine = store.get_engine(settings)
    catalogue = {e.id: set(e.variable_names) for e in load_entries(CATALOG).values()}
    add_committee(engine, PASSWORD)
    for name in ("anna", "bram", "carla"):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=["researcher"], password=PASSWORD)
    p1 = approve(engine, "anna", {"trajectories": ["trajectory", "intervention"]}, catalogue, members=["bram"])
    p2 = approve(engine, "carla", {"trajectories": ["trajectory"]}, catalogue)
    p3 = approve(engine, "carla", {"trajectories": ["trajectory", "client"]}, catalogue, title="Tweede project")
    hub = make_stack(root, release_max_mb=str(MAX_MB)).start()
    try:
        tokens = {name: hub.user_token(name, PASSWORD) for name in ("anna", "bram", "carla")}
        yield {"root": root, "settings": settings, "engine": engine, "hub": hub, "tokens": tokens,
               "p1": p1, "p2": p2, "p3": p3, "url": f"{hub.data_service}/api"}
    finally:
        hub.stop()


def output_folder(folder: Path) -> Path:
    """A finalised ldj.safe folder: a table that passes and a custom file (review)."""
    session = safe.OutputSession(folder)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"interventie": rng.choice(["MST", "IAG"], 300), "geslacht": rng.choice(["m", "v"], 300)})
    session.crosstab(frame["interventie"], frame["geslacht"])
    note = folder.parent / "toelichting.txt"
    note.write_text("Samenvatting voor de praktijk, zonder cijfers.", encoding="utf-8")
    session.custom_output(note, "Tekst voor de praktijk")
    session.finalise()
    return folder


def post(world, project, token: str | None, files: list[tuple[str, bytes]], title="Uitval per interventie",
         description="Trajecten per interventie en geslacht.") -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.post(f"{world['url']}/projects/{project}/releases", headers=headers, timeout=60,
                         data={"title": title, "description": description},
                         files=[("file", (name, body, "application/octet-stream")) for name, body in files])


def folder_files(folder: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]


def last_log(world) -> audit.Entry:
    return audit.entries(world["engine"], limit=1)[0]


def test_a_member_submits_and_the_files_are_copied(world, tmp_path):
    folder = output_folder(tmp_path / "outputs")
    response = post(world, world["p1"], world["tokens"]["bram"], folder_files(folder))  # bram: a member of p1
    assert response.status_code == 201, response.text
    answer = response.json()
    release = airlock.get_release(world["engine"], answer["release"], "bram")
    assert (release.author, release.project_id, release.status) == ("bram", world["p1"], airlock.SUBMITTED)
    assert release.title == "Uitval per interventie"
    assert answer["url"] == f"{world['hub'].portal}/uitvoer?id={release.id}"
    kept = airlock.release_folder(world["settings"], release.id)
    sent = {p.name for p in folder.iterdir()} - {safe.MANIFEST}
    assert {f.file for f in release.files} == sent
    for f in release.files:
        assert (kept / f.file).read_bytes() == (folder / f.file).read_bytes()
    assert {f.kind: f.status for f in release.files if not f.file.endswith(safe.META_SUFFIX)} == \
        {"table": "pass", "custom": "review"}
    log = last_log(world)
    assert (log.user, log.action, log.outcome, log.project, log.reason) == \
        ("bram", "workflow.event", "recorded", world["p1"], "created")
    uploads = dataservice.uploads_folder(world["settings"])
    assert uploads.is_dir() and not list(uploads.iterdir())  # the upload's folder is gone


@pytest.mark.parametrize("case, user, project, files, status, reason, message", [
    ("a researcher outside the project", "carla", "p1", None, 403, "refused", "release.submit"),
    ("a name with a path", "anna", "p1", [("../x", b"1")], 400, "bad_input", "ongeldige waarde voor file: ../x"),
    ("a hidden file", "anna", "p1", [(".bashrc", b"1")], 400, "bad_input", "ongeldige waarde voor file: .bashrc"),
    # tornado's multipart parser refuses the part's header already
    ("a name with NUL", "anna", "p1", [("a\x00.csv", b"1")], 400, "bad_input", "ongeldige waarde voor body"),
    ("the same file twice", "anna", "p1", [("a.csv", b"1"), ("a.csv", b"2")], 400, "bad_input", "a.csv"),
    ("a project that is not a number", "anna", "1e3", None, 400, "bad_input", "ongeldige waarde voor project: 1e3"),
    ("a file no output lists", "anna", "p1", [("manifest.json", b"{}"), ("notities.txt", b"tekst")], 400,
     "bad_input", "ongeldige waarde voor file: notities.txt"),
    ("no manifest", "anna", "p1", "without manifest", 400, "bad_release", "manifest.json"),
    ("no token", None, "p1", None, 401, "no_token", "geen of ongeldig token"),
])
def test_refusals_are_clear_and_logged(world, tmp_path, case, user, project, files, status, reason, message):
    before = len(airlock.list_releases(world["engine"], "steward"))
    project = world.get(project, project)
    if files is None or files == "without manifest":
        sent = folder_files(output_folder(tmp_path / "outputs"))
        files = [f for f in sent if f[0] != safe.MANIFEST] if files else sent
    response = post(world, project, world["tokens"].get(user), files)
    assert response.status_code == status, response.text
    assert response.json()["status"] == status
    if status == 403:
        assert "geen" in response.json()["error"]  # the policy's own words
    else:
        assert message in response.json()["error"]
    log = last_log(world)
    assert (log.user, log.action, log.outcome, log.reason) == (user or "-", "release.submit", "refused", reason)
    assert message in log.message() or message in json.dumps(log.details)
    if "upload" not in response.json()["error"]:
        assert str(world["root"]) not in response.text  # no server path in the answer
    assert len(airlock.list_releases(world["engine"], "steward")) == before


def crafted_meta(**changes) -> bytes:
    meta = {"format": safe.FORMAT, "name": "x", "kind": "custom", "files": {"x.txt": "0" * 64}, "comments": []}
    return json.dumps({**meta, **changes}).encode()


@pytest.mark.parametrize("meta", [
    crafted_meta(files={"../../buiten": "0" * 64}),
    crafted_meta(files={"a/b.txt": "0" * 64}),
    crafted_meta(name="y"),  # not its own file's name
    crafted_meta(name="x" * 65),
    crafted_meta(kind=None),
    crafted_meta(comments=[["geen tekst"]]),
    b"geen JSON",
    json.dumps({"format": "iets anders", "name": "x"}).encode(),
], ids=["path", "slash", "other name", "long name", "no kind", "comments not text", "not json", "not ldj.safe"])
def test_metadata_naming_paths_or_odd_values_is_refused_and_breaks_nothing(world, tmp_path, meta):
    """The airlock takes names and paths from the metadata: a crafted one is refused at the edge, and the
    next request is made as usual."""
    files = [("manifest.json", b"{}"), ("x.txt", b"tekst"), ("x.meta.json", meta)]
    response = post(world, world["p1"], world["tokens"]["anna"], files)
    assert response.status_code == 400 and "x.meta.json" in response.json()["error"]
    assert (last_log(world).action, last_log(world).reason) == ("release.submit", "bad_input")
    response = post(world, world["p1"], world["tokens"]["anna"], folder_files(output_folder(tmp_path / "outputs")))
    assert response.status_code == 201, response.text


def test_title_and_description_are_needed(world, tmp_path):
    files = folder_files(output_folder(tmp_path / "outputs"))
    response = post(world, world["p1"], world["tokens"]["anna"], files, title="  ")
    assert response.status_code == 400 and "titel" in response.json()["error"]
    assert str(world["root"]) not in response.text
    assert (last_log(world).action, last_log(world).reason) == ("release.submit", "bad_release")


def test_an_oversize_upload_is_refused_with_413(world, tmp_path):
    folder = output_folder(tmp_path / "outputs")
    big = np.random.default_rng(1).bytes(MAX_MB * 2**20 + 1)
    response = post(world, world["p1"], world["tokens"]["anna"], [*folder_files(folder), ("groot.bin", big)])
    assert response.status_code == 413, response.text
    assert f"groter dan {MAX_MB} MiB" in response.json()["error"]
    log = last_log(world)
    assert (log.user, log.action, log.outcome, log.reason, log.project) == \
        ("anna", "release.submit", "refused", "too_large", world["p1"])


def test_safe_submit_refuses_a_folder_over_the_limit_before_sending(world, tmp_path, monkeypatch):
    as_workspace(world, monkeypatch, "anna")
    session = safe.OutputSession(output_folder(tmp_path / "outputs"))
    big = tmp_path / "groot.bin"
    big.write_bytes(np.random.default_rng(2).bytes(MAX_MB * 2**20))
    session.custom_output(big, "te groot")
    before = audit.entries(world["engine"], limit=1)[0].id
    with pytest.raises(safe.SubmitError, match=f"meer dan de {MAX_MB} MiB"):
        session.submit("T", "D")
    assert audit.entries(world["engine"], limit=1)[0].id == before  # nothing reached the release route


def test_a_declared_huge_upload_is_refused_before_it_is_sent(world):
    """A Content-Length of 10 GB and the first bytes of the body: the service answers without reading the
    rest. Asked at the service's own port: through the proxy, which is still sending the body when the
    service closes, the client gets the proxy's 503 now and then instead (ldj.safe.submit checks the size
    before sending, test above)."""
    url = urlparse(world["url"])
    port = int(world["hub"].env["LDJ_DATA_SERVICE_PORT"])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", f"{url.path}/projects/{world['p1']}/releases")
        connection.putheader("Authorization", f"token {world['tokens']['anna']}")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", str(10 * 2**30))
        connection.endheaders(b"--x\r\n" + b"0" * 2**16)
        response = connection.getresponse()
        assert response.status == 413
        assert "LDJ_RELEASE_MAX_MB" in json.loads(response.read())["error"]
    finally:
        connection.close()
    assert (last_log(world).reason, last_log(world).details["size"]) == ("too_large", 10 * 2**30)


# --- the client: ldj.safe.submit, as a notebook in the workspace calls it --------------------------

def as_workspace(world, monkeypatch, user: str) -> None:
    """The environment a spawned workspace has: its hub token and the data service's URL."""
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", world["tokens"][user])
    monkeypatch.setenv("LDJ_DATA_SERVICE_URL", world["hub"].data_service)


def test_safe_submit_sends_the_folder_for_the_only_project(world, tmp_path, monkeypatch, capsys):
    as_workspace(world, monkeypatch, "anna")
    folder = output_folder(tmp_path / "outputs")
    session = safe.OutputSession(folder)
    session.add_comments("output_1", "Aantallen per interventie en geslacht")
    release_id = session.submit("Uitval per interventie", "Trajecten per interventie en geslacht.")
    release = airlock.get_release(world["engine"], release_id, "anna")
    assert (release.author, release.project_id) == ("anna", world["p1"])
    table = next(f for f in release.files if f.kind == "table" and f.file.endswith(".csv"))
    assert table.comments == "Aantallen per interventie en geslacht"  # the manifest was written again first
    assert f"vrijgaveverzoek {release_id} ingediend" in capsys.readouterr().out


def test_safe_finalise_can_submit_and_copies_to_an_acro_path(world, tmp_path, monkeypatch):
    as_workspace(world, monkeypatch, "anna")
    session = safe.OutputSession(output_folder(tmp_path / "outputs"))
    release_id = session.finalise(tmp_path / "final", title="T", description="D")
    assert (tmp_path / "final" / safe.MANIFEST).is_file()
    assert len(airlock.get_release(world["engine"], release_id, "anna").files) == 4
    with pytest.raises(safe.OutputError, match="bestaat al"):
        session.finalise(tmp_path / "final")  # as ACRO: never into an existing folder


def test_safe_submit_with_several_projects_asks_which(world, tmp_path, monkeypatch):
    as_workspace(world, monkeypatch, "carla")
    session = safe.OutputSession(output_folder(tmp_path / "outputs"))
    with pytest.raises(safe.SubmitError, match=f"meer dan één project \\({world['p2']}, {world['p3']}\\)"):
        session.submit("T", "D")
    release_id = session.submit("T", "D", project=world["p3"])
    assert airlock.get_release(world["engine"], release_id, "carla").project_id == world["p3"]


def test_safe_submit_refused_or_outside_a_workspace_says_so(world, tmp_path, monkeypatch):
    session = safe.OutputSession(output_folder(tmp_path / "outputs"))
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monkeypatch.setenv("LDJ_DATA_SERVICE_URL", world["hub"].data_service)
    with pytest.raises(safe.SubmitError, match="alleen in je LDJ-werkomgeving: JUPYTERHUB_API_TOKEN"):
        session.submit("T", "D")
    as_workspace(world, monkeypatch, "carla")
    with pytest.raises(safe.SubmitError, match="niet aan \\(403\\)") as refused:
        session.submit("T", "D", project=world["p1"])
    assert refused.value.status == 403


def test_the_author_offers_files_as_public_and_answers_a_returned_request_from_the_workspace(world, tmp_path,
                                                                                           monkeypatch):
    engine = world["engine"]
    for name in ("chk-a", "chk-b"):
        if name not in {u.name for u in gov.list_users(engine)}:
            gov.add_user(engine, name, display_name=name, organisation="CBS", roles=["checker"])
    as_workspace(world, monkeypatch, "anna")
    folder = output_folder(tmp_path / "outputs")
    session = safe.OutputSession(folder)
    text = next(o["name"] for o in session.outputs() if o["kind"] == "custom")
    release_id = session.submit("Uitval", "Trajecten per interventie.", public=[text])
    offered = {f.output for f in airlock.get_release(engine, release_id, "anna").files if f.public}
    assert offered == {text}
    for checker in ("chk-a", "chk-b"):
        airlock.claim(engine, release_id, checker)
        for f in airlock.get_release(engine, release_id, checker).files:
            airlock.review_file(engine, release_id, checker, f.file, airlock.CHANGES, "Rond af.")
    airlock.decide(engine, release_id, "chk-a", airlock.RETURNED)
    as_workspace(world, monkeypatch, "bram")  # on the project, but not the author
    with pytest.raises(safe.SubmitError, match="403"):
        safe.OutputSession(folder).submit("Uitval", "Van bram.", release=release_id)
    as_workspace(world, monkeypatch, "anna")
    kept = airlock.get_release(engine, release_id, "anna").files
    written = next(f.file for f in kept if f.kind == "custom" and not f.file.endswith(safe.META_SUFFIX))
    (folder / written).write_text("Een betere samenvatting.", encoding="utf-8")
    assert session.submit("genegeerd", "Nu afgerond op tientallen.", release=release_id) == release_id
    answered = airlock.get_release(engine, release_id, "chk-a")
    assert answered.status == airlock.SUBMITTED and answered.description == "Nu afgerond op tientallen."
    assert airlock.reviews(engine, release_id, "chk-a")[written] == []  # changed: to be reviewed again
    with pytest.raises(safe.SubmitError, match="400"):  # no longer returned
        session.submit("genegeerd", "Nog eens.", release=release_id)
