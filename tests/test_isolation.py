"""A workspace attacks the platform: the real hub of hub/jupyterhub_config.py as root, the local spawner.

Two researchers with approved projects start their workspaces (each its own OS account, created by the
hub). Code in anna's kernel, through the server's own kernel API as a notebook runs it, tries to read the
store, the pseudonym key, the hub's and the portal's cookie secrets, bram's home, to open the SQLite store
and to write into the data folder: every attempt fails. Its environment carries no database URL, key path
or secret. Reading through the data service with the workspace's own token works. Every file the stack
wrote into the data folder is the service account's alone. The accounts are removed by name at the end.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from portalserver import make_stack
from projects import add_committee, approve
from ldj import governance as gov
from ldj import store
from ldj.catalogue import load_entries
from ldj.refresh import import_delivery
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate

pytestmark = pytest.mark.slow
PASSWORD = "een werkomgeving valt aan"

ATTACK = r"""
import json, os, pwd, sqlite3
paths = json.loads(PATHS)
result = {"account": pwd.getpwuid(os.getuid()).pw_name, "uid": os.getuid(), "home": os.environ.get("HOME"),
          "home_mode": os.stat(os.environ["HOME"]).st_mode & 0o777, "env": dict(os.environ)}

def attempt(label, action):
    try:
        action()
        result[label] = "succeeded"
    except Exception as exc:
        result[label] = type(exc).__name__

def read(path):
    with open(path, "rb") as f:
        f.read(16)

def query_store():
    connection = sqlite3.connect(f"file:{paths['store']}?mode=ro", uri=True)
    connection.execute("DROP TRIGGER IF EXISTS access_log_append_only")
    connection.execute("SELECT count(*) FROM sqlite_master").fetchall()

attempt("read the store", lambda: read(paths["store"]))
attempt("open the store with sqlite", query_store)
attempt("read the pseudonym key", lambda: read(paths["key"]))
attempt("read the hub's cookie secret", lambda: read(paths["hub_secret"]))
attempt("read the portal's cookie secret", lambda: read(paths["portal_secret"]))
attempt("list the data folder", lambda: os.listdir(paths["data"]))
attempt("write into the data folder", lambda: open(os.path.join(paths["data"], "planted"), "w").close())
attempt("list another user's home", lambda: os.listdir(paths["other_home"]))
attempt("read another user's catalogue", lambda: read(paths["other_catalogue"]))
attempt("list every home", lambda: os.listdir(paths["homes"]))
print(json.dumps(result))
"""

READ = """
import intake, os
frame = intake.from_yaml_file(os.environ["LDJ_CATALOG"])["trajectories"].read()
print(len(frame), sorted(frame.columns))
"""


@pytest.fixture(scope="module")
def world():
    root = Path(tempfile.mkdtemp(prefix="ldj-isolation-"))
    hub = make_stack(root)
    settings = Settings(data_dir=hub.data_dir, progress="never")
    generate(root / "d", questionnaires=300, organisations=2, seed=5, invalid_share=0.0, instruments=["cbcl_6_18"])
    import_delivery([root / "d"], settings=settings, refresh_views=False)
    engine = store.get_engine(settings)
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    add_committee(engine)
    for name in ("anna", "bram"):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=["researcher"], password=PASSWORD)
        approve(engine, name, {"trajectories": ["trajectory", "intervention"]}, catalogue)
    hub.start()
    try:
        tokens = {name: hub.user_token(name, PASSWORD) for name in ("anna", "bram")}
        for name in ("bram", "anna"):
            hub.spawn(hub.sessions[name], name)
        yield {"hub": hub, "root": root, "engine": engine, "settings": settings, "tokens": tokens}
    finally:
        hub.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert not [e.pw_name for e in pwd.getpwall() if e.pw_name.startswith(hub.account_prefix)]


@pytest.fixture(scope="module")
def attack(world):
    hub, data = world["hub"], world["hub"].data_dir.resolve()
    paths = {"store": str(data / "ldj.sqlite"), "key": str(data / "pseudonym.key"),
             "hub_secret": str(data / "hub" / "cookie_secret"), "portal_secret": str(data / "hub" / "portal_cookie_secret"),
             "data": str(data), "homes": str(hub.homes_dir), "other_home": str(hub.home("bram")),
             "other_catalogue": str(hub.home("bram") / "ldj-catalogus.yaml")}
    for path in ("store", "key", "hub_secret", "portal_secret", "other_catalogue"):
        assert Path(paths[path]).is_file(), path  # each target is there: a failure below is the separation
    out = hub.execute("anna", world["tokens"]["anna"], f"PATHS = {json.dumps(json.dumps(paths))}\n{ATTACK}")
    return json.loads(out.strip().splitlines()[-1])


def test_each_workspace_runs_as_its_own_account_with_a_private_home(world, attack):
    hub = world["hub"]
    assert attack["account"] == hub.account("anna") and attack["uid"] != 0
    assert attack["home"] == str(hub.home("anna")) and attack["home_mode"] == 0o700
    for name in ("anna", "bram"):
        info = hub.home(name).stat()
        assert pwd.getpwuid(info.st_uid).pw_name == hub.account(name) and stat.S_IMODE(info.st_mode) == 0o700
        catalogue = (hub.home(name) / "ldj-catalogus.yaml").stat()
        assert catalogue.st_uid == info.st_uid and stat.S_IMODE(catalogue.st_mode) == 0o600
    assert stat.S_IMODE(hub.homes_dir.stat().st_mode) == 0o711 and hub.homes_dir.stat().st_uid == 0


@pytest.mark.parametrize("label", [
    "read the store", "open the store with sqlite", "read the pseudonym key", "read the hub's cookie secret",
    "read the portal's cookie secret", "list the data folder", "write into the data folder",
    "list another user's home", "read another user's catalogue", "list every home"])
def test_a_notebook_cannot_reach_the_platform_or_another_home(attack, label):
    assert attack[label] in ("PermissionError", "OperationalError"), (label, attack[label])


def test_the_workspace_environment_holds_no_database_url_key_or_secret(world, attack):
    env = attack["env"]
    data = str(world["hub"].data_dir.resolve())
    assert not [k for k in env if k.startswith("LDJ_") and k not in ("LDJ_CATALOG", "LDJ_DATA_SERVICE_URL")]
    assert not [k for k in env if "SECRET" in k or k.startswith(("CONFIGPROXY", "PGPASSWORD", "DATABASE"))]
    assert not [k for k, v in env.items() if data in v or "sqlite" in v or "postgresql" in v], env
    assert env["JUPYTERHUB_API_TOKEN"] and env["JUPYTERHUB_API_TOKEN"] != world["tokens"]["anna"]


def test_the_workspace_reads_through_the_data_service_with_its_own_token(world):
    out = world["hub"].execute("anna", world["tokens"]["anna"], READ)
    rows, columns = out.strip().split(" ", 1)
    assert int(rows) > 0 and columns == "['intervention', 'trajectory']"


def test_everything_in_the_data_folder_is_the_service_accounts_alone(world, attack):
    data = world["hub"].data_dir.resolve()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    loose = []
    for folder, folders, files in os.walk(data):
        for name in folders + files:
            info = os.lstat(os.path.join(folder, name))
            if not stat.S_ISLNK(info.st_mode) and (info.st_uid != os.geteuid() or info.st_mode & 0o077):
                loose.append((os.path.join(folder, name), oct(info.st_mode), info.st_uid))
    assert not loose
    assert not (data / "planted").exists()


def test_a_hub_that_is_not_root_refuses_shared_accounts_unless_the_operator_accepts_them(world):
    """`ldj serve` as an ordinary account (nobody), with the Python the workspaces run."""
    python = world["hub"].homes_dir / ".ldj-python" / "bin" / "python"
    if not python.exists():  # the hub's own Python is open to others: the workspaces run that
        python = Path(sys.executable)
    own = Path(tempfile.mkdtemp(prefix="ldj-not-root-"))
    try:
        (own / "var").mkdir()
        nobody = pwd.getpwnam("nobody")
        for path in (own, own / "var"):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "HOME": str(own),
               "LDJ_DATA_DIR": str(own / "var"), "LDJ_LANGUAGE": "en"}
        result = subprocess.run([str(python), "-m", "ldj.cli", "serve"], env=env, cwd=own, user=nobody.pw_uid,
                                group=nobody.pw_gid, extra_groups=[], capture_output=True, text=True, timeout=120)
        assert result.returncode != 0, result.stdout
        assert "does not run as root" in result.stderr, result.stderr
        assert "LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS=true" in result.stderr
        assert not (own / "var" / "hub").exists()  # refused before the hub started
    finally:
        shutil.rmtree(own, ignore_errors=True)
