"""ldj.deployment: workspace account names, the data folder's modes and owners, files put into a home
without following links, shared accounts refused or warned about. Real files, real OS accounts (the suite
runs as root; the accounts made here are removed by name)."""

from __future__ import annotations

import os
import pwd
import stat
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import panel as pn
import pytest

from ldj import deployment, policy
from ldj.deployment import DeploymentError
from ldj.portal import home
from ldj.portal.visitor import Visitor
from ldj.settings import REPO_ROOT, Settings

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def open_dir():
    """A folder other accounts can pass through (pytest's own tmp_path lies in a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="ldj-deployment-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def prefix():
    """A prefix of this test's own; every account made with it is removed by name afterwards."""
    prefix = f"u{uuid.uuid4().hex[:6]}-"
    yield prefix
    for account in deployment.workspace_accounts(Settings(workspace_account_prefix=prefix)):
        subprocess.run(["userdel", account], check=True)
    assert not [e for e in pwd.getpwall() if e.pw_name.startswith(prefix)]


@pytest.mark.parametrize("name", ["anna", "jan.de-vries", "r2_d2", "a" * 28])
def test_hub_names_map_to_prefixed_accounts(name):
    assert deployment.account_name(Settings(), name) == f"ldj-{name}"


@pytest.mark.parametrize("name", ["Anna", "jan@uu.nl", "../root", "-x", ".hidden", "", "a b", "a" * 29, "anna\n"])
def test_names_that_do_not_map_are_refused_by_name(name):
    with pytest.raises(DeploymentError, match="past niet in een systeemaccount") as refusal:
        deployment.account_name(Settings(), name)
    assert f"'{name}'" in str(refusal.value)


@pytest.mark.parametrize("prefix", ["", "ldj", "LDJ-", "1x-", "a/b-", "ldj_"])
def test_a_prefix_that_is_no_safe_account_start_is_refused(prefix):
    with pytest.raises(DeploymentError, match="LDJ_WORKSPACE_ACCOUNT_PREFIX"):
        deployment.account_name(Settings(workspace_account_prefix=prefix), "anna")


def test_shared_accounts_only_for_a_local_hub_that_is_not_root_and_then_only_when_accepted():
    local, allowed, docker = Settings(), Settings(allow_shared_workspace_accounts=True), Settings(spawner="docker")
    assert not deployment.shared_workspace_accounts(local, euid=0)
    assert deployment.shared_workspace_accounts(local, euid=1000)
    assert not deployment.shared_workspace_accounts(docker, euid=1000)
    deployment.check_workspace_accounts(local, euid=0)
    deployment.check_workspace_accounts(allowed, euid=1000)
    deployment.check_workspace_accounts(docker, euid=1000)
    with pytest.raises(DeploymentError, match="LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS=true"):
        deployment.check_workspace_accounts(local, euid=1000)


def test_the_steward_sees_a_warning_on_the_start_page_when_accounts_are_shared(sqlite_settings, monkeypatch):
    def alerts(name: str, roles: set[str]) -> list[str]:
        page = home.view(Visitor(policy.Actor(name, frozenset(roles)), settings=sqlite_settings))
        return [p.object for p in page.select(pn.pane.HTML) if "ldj-alert-warning" in str(p.object)]

    assert alerts("stew", {"steward"}) == []  # as root: every workspace its own account
    monkeypatch.setattr(deployment.os, "geteuid", lambda: 1000)
    (warning,) = alerts("stew", {"steward"})
    assert "Let op: werkomgevingen zijn niet van het platform gescheiden." in warning
    assert alerts("onderzoeker", {"researcher"}) == []


def test_a_workspace_account_is_created_once_with_a_private_home_outside_the_data_folder(open_dir, prefix):
    settings = Settings(data_dir=open_dir / "srv" / "var", workspace_account_prefix=prefix)
    first = deployment.workspace_account(settings, "anna")
    entry = pwd.getpwnam(f"{prefix}anna")
    assert (first.name, first.uid, first.shared) == (entry.pw_name, entry.pw_uid, False) and entry.pw_uid != 0
    assert first.home == open_dir / "srv" / "homes" / f"{prefix}anna" and entry.pw_dir == str(first.home)
    info = first.home.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (entry.pw_uid, 0o700)
    assert stat.S_IMODE(first.home.parent.stat().st_mode) == 0o711 and first.home.parent.stat().st_uid == 0
    first.home.chmod(0o755)
    assert deployment.workspace_account(settings, "anna") == first  # the same account; the home private again
    assert stat.S_IMODE(first.home.stat().st_mode) == 0o700
    assert deployment.workspace_accounts(settings) == [f"{prefix}anna"]


def test_an_account_the_hub_did_not_create_is_not_used(open_dir, prefix):
    settings = Settings(data_dir=open_dir / "var", workspace_account_prefix=prefix)
    subprocess.run(["useradd", "--system", "--no-create-home", f"{prefix}svc"], check=True)
    try:
        with pytest.raises(DeploymentError, match=f"'{prefix}svc' bestaat al maar is geen LDJ-werkomgeving"):
            deployment.workspace_account(settings, "svc")
    finally:
        subprocess.run(["userdel", f"{prefix}svc"], check=True)


def test_homes_inside_the_data_folder_are_refused(tmp_path):
    settings = Settings(data_dir=tmp_path / "var", homes_dir=tmp_path / "var" / "homes")
    with pytest.raises(DeploymentError, match="ligt in de gegevensmap"):
        deployment.prepare_homes(settings)


def test_homes_the_accounts_cannot_reach_are_refused_naming_the_folder(open_dir):
    (open_dir / "closed").mkdir(mode=0o700)
    settings = Settings(data_dir=open_dir / "var", homes_dir=open_dir / "closed" / "homes")
    with pytest.raises(DeploymentError, match=f"{open_dir / 'closed'} is niet open voor anderen"):
        deployment.prepare_homes(settings)


def test_files_go_into_a_home_without_following_what_the_account_put_there(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the pseudonym key")
    workspace = tmp_path / "home"
    workspace.mkdir()
    (workspace / "ldj-catalogus.yaml").symlink_to(secret)
    (workspace / "01.ipynb").symlink_to(secret)
    (workspace / "02.ipynb").write_text("my own work")
    deployment.install_files(workspace, {"ldj-catalogus.yaml": b"catalogue", "01.ipynb": b"n1", "02.ipynb": b"n2",
                                         "03.ipynb": b"n3"}, keep={"01.ipynb", "02.ipynb", "03.ipynb"},
                             owner=(NOBODY.pw_uid, NOBODY.pw_gid))
    assert secret.read_text() == "the pseudonym key" and secret.stat().st_uid == 0
    catalogue = workspace / "ldj-catalogus.yaml"
    assert not catalogue.is_symlink() and catalogue.read_text() == "catalogue"
    assert (catalogue.stat().st_uid, stat.S_IMODE(catalogue.stat().st_mode)) == (NOBODY.pw_uid, 0o600)
    assert (workspace / "01.ipynb").is_symlink() and (workspace / "02.ipynb").read_text() == "my own work"
    assert (workspace / "03.ipynb").read_text() == "n3"
    assert sorted(p.name for p in workspace.iterdir()) == ["01.ipynb", "02.ipynb", "03.ipynb", "ldj-catalogus.yaml"]
    with pytest.raises(OSError):  # the home itself a link: refused
        (tmp_path / "link").symlink_to(workspace)
        deployment.install_files(tmp_path / "link", {"x": b""})


def test_the_data_folder_is_made_private_and_each_fix_is_named(tmp_path):
    data = tmp_path / "var"
    (data / "extracts" / "project-1").mkdir(parents=True)
    (data / "extracts").chmod(0o755)
    (data / "extracts" / "project-1" / "trajectories.parquet").write_bytes(b"x")
    (data / "extracts" / "project-1" / "trajectories.parquet").chmod(0o644)
    key = tmp_path / "elsewhere.key"
    key.write_bytes(b"k")
    key.chmod(0o640)
    settings = Settings(data_dir=data, pseudonym_key_file=key)
    fixed = deployment.secure_data_dir(settings)
    assert f"{data / 'extracts'}: rechten 0755 hersteld naar 0700" in fixed
    assert f"{data / 'extracts' / 'project-1' / 'trajectories.parquet'}: rechten 0644 hersteld naar 0600" in fixed
    assert f"{key}: rechten 0640 hersteld naar 0600" in fixed
    assert deployment.secure_data_dir(settings) == []
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_a_file_of_another_account_in_the_data_folder_is_refused_by_path(tmp_path):
    data = tmp_path / "var"
    (data / "hub").mkdir(parents=True, mode=0o700)
    planted = data / "hub" / "cookie_secret"
    planted.write_bytes(b"s")
    os.chown(planted, NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(DeploymentError, match=f"{planted}: is van uid {NOBODY.pw_uid}, niet van het serviceaccount"):
        deployment.secure_data_dir(Settings(data_dir=data))


def test_the_cli_creates_the_store_private_whatever_the_callers_umask(tmp_path):
    env = {**os.environ, "LDJ_DATA_DIR": str(tmp_path / "var"), "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-m", "ldj.cli", "db", "upgrade"], env=env, check=True, capture_output=True,
                   preexec_fn=lambda: os.umask(0o022))
    assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "var" / "ldj.sqlite").stat().st_mode) == 0o600


@pytest.mark.slow
def test_the_workspace_python_is_one_other_accounts_can_run(open_dir):
    python = deployment.workspace_python(Settings(data_dir=open_dir / "var"))
    assert deployment.blocked_for_others(python) is None
    out = subprocess.run([str(python), "-c", "import jupyterhub.singleuser, ipykernel, intake; print('ok')"],
                         user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[], cwd="/", capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    assert out.stdout.strip() == "ok", out.stderr
    closed = open_dir / "closed"
    closed.mkdir(mode=0o700)
    (closed / "python").write_text("")
    with pytest.raises(DeploymentError, match="LDJ_WORKSPACE_PYTHON"):
        deployment.workspace_python(Settings(data_dir=open_dir / "var", workspace_python=closed / "python"))


def test_a_key_mounted_from_elsewhere_may_be_another_accounts_but_not_readable_by_others(tmp_path):
    key = tmp_path / "secret" / "pseudonym.key"
    key.parent.mkdir()
    key.write_bytes(b"k")
    os.chown(key, NOBODY.pw_uid, NOBODY.pw_gid)
    key.chmod(0o440)
    settings = Settings(data_dir=tmp_path / "var", pseudonym_key_file=key)
    assert deployment.secure_data_dir(settings) == [] and stat.S_IMODE(key.stat().st_mode) == 0o440
    key.chmod(0o444)
    with pytest.raises(DeploymentError, match=f"{key}: is van uid {NOBODY.pw_uid}"):
        deployment.secure_data_dir(settings)
