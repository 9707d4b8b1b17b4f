"""How the deployment keeps workspaces apart from the platform.

- The data folder (store, pseudonym key, extracts, audit, hub state, portal and hub secrets) belongs to the
  service account alone: folders 0700, files 0600. The processes that write it (`ldj serve`, the CLI, the
  hub and its services) run with umask 077 (`private_umask`); `secure_data_dir` fixes wrong modes and
  refuses a file or folder another account owns, naming it.
- With the local spawner each workspace runs as its own OS account, `<LDJ_WORKSPACE_ACCOUNT_PREFIX><name>`
  (`account_name`; names that do not map are refused), created by the hub, which runs as root, with a
  private 0700 home under LDJ_HOMES_DIR, outside the data folder (`workspace_account`). Files the hub puts
  into a home are written without following anything the account put there (`install_files`).
- A hub that is not root can only run workspaces under its own account, which reads the data folder: it
  refuses to start unless LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS is set (`check_workspace_accounts`), and then
  stewards see a warning (`shared_workspace_accounts`).
- Workspace accounts must be able to run Python: `workspace_python` gives one they can read.

No web framework here: ldj/hub.py and hub/jupyterhub_config.py build on it.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .i18n import t
from .settings import Settings

PRIVATE_UMASK = 0o077
ACCOUNT_MARK = "LDJ workspace"  # the start of the comment (GECOS) field of every account the hub creates
MOST_ACCOUNT_CHARS = 32  # useradd's limit
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
PREFIX = re.compile(r"[a-z][a-z0-9]*-")
BRIDGE = ".ldj-python"  # under LDJ_HOMES_DIR: a Python the workspace accounts can read (workspace_python)

_accounts = threading.Lock()


class DeploymentError(Exception):
    """The deployment is not safe to run as it is; the message names the path or setting and what to do."""


@dataclass(frozen=True)
class WorkspaceAccount:
    name: str
    uid: int
    gid: int
    home: Path
    shared: bool  # the hub's own account (LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS), not one of its own


def private_umask() -> None:
    """New files and folders are the creating account's alone (0600 and 0700)."""
    os.umask(PRIVATE_UMASK)


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# --- who runs a workspace ----------------------------------------------------------------------

def shared_workspace_accounts(settings: Settings, euid: int | None = None) -> bool:
    """Whether workspaces run under the hub's own account: the local spawner on a hub that is not root."""
    return settings.spawner == "local" and (os.geteuid() if euid is None else euid) != 0


def check_workspace_accounts(settings: Settings, euid: int | None = None) -> None:
    """Refuse shared workspace accounts unless the operator accepted them explicitly."""
    if shared_workspace_accounts(settings, euid) and not settings.allow_shared_workspace_accounts:
        raise DeploymentError(t("dep_shared_refused"))


def account_name(settings: Settings, user: str) -> str:
    """The OS account of `user`'s workspace: the prefix plus the name; refused when that is no safe account name."""
    prefix = settings.workspace_account_prefix
    if not PREFIX.fullmatch(prefix):
        raise DeploymentError(t("dep_bad_prefix", prefix=prefix))
    account = prefix + user
    if not NAME.fullmatch(user) or len(account) > MOST_ACCOUNT_CHARS:
        raise DeploymentError(t("dep_bad_name", name=user, prefix=prefix, most=MOST_ACCOUNT_CHARS - len(prefix)))
    return account


def workspace_account(settings: Settings, user: str, euid: int | None = None) -> WorkspaceAccount:
    """The account `user`'s workspace runs as, with its private home (created when missing).

    As root: the system account `account_name(user)`, created with useradd when missing; an existing
    account of that name that the hub did not create is refused. Otherwise (shared accounts, when allowed):
    the hub's own account."""
    euid = os.geteuid() if euid is None else euid
    check_workspace_accounts(settings, euid)
    account = account_name(settings, user)
    home = prepare_homes(settings) / account
    with _accounts:
        if euid != 0:
            entry = pwd.getpwuid(euid)
            _private_home(home, entry.pw_uid, entry.pw_gid)
            return WorkspaceAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, home, shared=True)
        mark = f"{ACCOUNT_MARK} {user}"
        try:
            entry = pwd.getpwnam(account)
        except KeyError:
            useradd = shutil.which("useradd", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") or "useradd"
            subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
                            "--shell", "/bin/bash", "--comment", mark, account],
                           check=True, capture_output=True, text=True)
            entry = pwd.getpwnam(account)
        if entry.pw_gecos.split(",")[0] != mark or entry.pw_uid == 0:
            raise DeploymentError(t("dep_foreign_account", account=account, name=user))
        _private_home(home, entry.pw_uid, entry.pw_gid)
        return WorkspaceAccount(account, entry.pw_uid, entry.pw_gid, home, shared=False)


def workspace_accounts(settings: Settings) -> list[str]:
    """The OS accounts the hub created for workspaces with this deployment's prefix (for removal: userdel)."""
    prefix = settings.workspace_account_prefix
    return sorted(e.pw_name for e in pwd.getpwall()
                  if e.pw_name.startswith(prefix) and e.pw_gecos.startswith(ACCOUNT_MARK + " "))


def prepare_homes(settings: Settings) -> Path:
    """The folder of workspace homes: outside the data folder, the service account's, 0711 (accounts pass
    through to their own home but cannot list the others), reachable from / for every account."""
    homes, data = settings.resolved_homes_dir, settings.data_dir.resolve()
    if homes == data or data in homes.parents:
        raise DeploymentError(t("dep_homes_inside", homes=homes, data=data))
    with _umask(0o022):
        homes.mkdir(mode=0o711, parents=True, exist_ok=True)
    info = homes.lstat()
    if info.st_uid != os.geteuid():
        raise DeploymentError(t("dep_not_owner", path=homes, owner=info.st_uid, uid=os.geteuid()))
    if stat.S_IMODE(info.st_mode) != 0o711:
        homes.chmod(0o711)
    blocked = blocked_for_others(homes)
    if blocked is not None:
        raise DeploymentError(t("dep_unreachable", path=homes, what=t("dep_what_homes"), blocked=blocked,
                                hint=t("dep_hint_homes")))
    return homes


def _private_home(home: Path, uid: int, gid: int) -> None:
    """`home` a folder of uid:gid, mode 0700. A home left by an earlier account of that name is handed over
    without following any link in it."""
    try:
        os.mkdir(home, 0o700)
    except FileExistsError:
        pass
    info = home.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise DeploymentError(f"{home}: not a folder")
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(home, uid, gid, follow_symlinks=False)
        for _, folders, files, fd in os.fwalk(home, follow_symlinks=False):
            for name in folders + files:
                os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
    os.chmod(home, 0o700)


def install_files(home: Path, files: dict[str, bytes], *, keep: set[str] = frozenset(),
                  owner: tuple[int, int] | None = None) -> None:
    """Write `files` (name: content) into `home`, owned by `owner` (uid, gid), mode 0600. Names in `keep`
    are written only when absent (never over a researcher's own work); the others are replaced. Nothing a
    workspace's account put in its home (a link to a secret, say) is followed: files are opened relative to
    the home's folder with O_NOFOLLOW and O_EXCL, and replaced by renaming."""
    folder = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        for name, data in files.items():
            if "/" in name or name in (".", ".."):
                raise ValueError(f"not a file name: {name!r}")
            if name in keep:
                try:
                    _write(os.open(name, flags, 0o600, dir_fd=folder), data, owner)
                except FileExistsError:
                    pass
                continue
            temporary = f".{name}.{secrets.token_hex(8)}"
            _write(os.open(temporary, flags, 0o600, dir_fd=folder), data, owner)
            os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    finally:
        os.close(folder)


def _write(fd: int, data: bytes, owner: tuple[int, int] | None) -> None:
    with os.fdopen(fd, "wb") as out:
        if owner is not None:
            os.fchown(out.fileno(), *owner)
        out.write(data)


# --- a Python the workspace accounts can run ------------------------------------------------------

def blocked_for_others(path: Path) -> Path | None:
    """The first folder on the way to `path` (links resolved), or `path` itself, that accounts other than
    its owner's cannot pass through or read; None when they can reach it."""
    path = Path(os.path.realpath(path))
    for folder in reversed(path.parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    need = stat.S_IXOTH if path.is_dir() else stat.S_IROTH  # a folder: passing through is enough
    return None if path.stat().st_mode & need else path


def workspace_python(settings: Settings) -> Path:
    """The Python a local workspace runs (`python -m jupyterhub.singleuser`), readable by its account.

    LDJ_WORKSPACE_PYTHON when set; else the hub's own when its interpreter, standard library and packages
    are open to others; else (a Python under /root, as pyenv installs it) a virtual environment at
    <LDJ_HOMES_DIR>/.ldj-python over the system Python of the same version, which uses the hub's packages.
    With shared accounts: LDJ_WORKSPACE_PYTHON or the hub's own."""
    if shared_workspace_accounts(settings):  # workspaces run as the hub's own account
        return settings.workspace_python or Path(sys.executable)
    if settings.workspace_python is not None:
        return _reachable_python(settings.workspace_python)
    paths = sysconfig.get_paths()
    own = [Path(sys.executable), Path(paths["stdlib"]), Path(paths["purelib"]), Path(paths["platlib"])]
    if all(blocked_for_others(p) is None for p in own):
        return Path(sys.executable)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    bases = [Path(f"{folder}/python{version}") for folder in ("/usr/bin", "/usr/local/bin")]
    base = next((p for p in bases if p.exists() and blocked_for_others(p) is None), None)
    if base is None:
        raise DeploymentError(f"{t('dep_no_python', version=version)}; {t('dep_hint_python')}")
    packages = list(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    for folder in packages:
        _reachable(Path(folder), "dep_what_python", "dep_hint_python")
    venv = prepare_homes(settings) / BRIDGE
    python = venv / "bin" / "python"
    pth = venv / "lib" / f"python{version}" / "site-packages" / "ldj-hub-packages.pth"
    wanted = "".join(f"import site; site.addsitedir({folder!r})\n" for folder in packages)
    if not (python.exists() and pth.exists() and pth.read_text() == wanted
            and f"home = {base.parent}" in (venv / "pyvenv.cfg").read_text()):
        with _umask(0o022):
            subprocess.run([str(base), "-m", "venv", "--without-pip", "--clear", str(venv)],
                           check=True, capture_output=True, text=True)
            pth.write_text(wanted)
    return python


def _reachable_python(python: Path) -> Path:
    _reachable(python, "dep_what_python", "dep_hint_python")
    return python


def _reachable(path: Path, what: str, hint: str) -> None:
    blocked = blocked_for_others(path)
    if blocked is not None:
        raise DeploymentError(t("dep_unreachable", path=path, what=t(what), blocked=blocked, hint=t(hint)))


# --- the data folder ------------------------------------------------------------------------------

def secure_data_dir(settings: Settings, euid: int | None = None) -> list[str]:
    """Make the data folder the service account's alone: every folder in it 0700 at most, every file 0600
    at most (also the pseudonym key and the SQLite store when they lie elsewhere; there another owner is
    accepted when others cannot read the file, as for a mounted secret). Returns a line per fixed mode;
    raises DeploymentError naming the first path another account owns."""
    uid = os.geteuid() if euid is None else euid
    data = settings.data_dir.resolve()
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = [data]
    for folder, folders, files in os.walk(data):
        paths += [Path(folder, name) for name in folders + files]
    elsewhere = []  # the key and the store outside the data folder (a key may be a read-only mounted secret)
    for extra in (settings.resolved_key_file, _sqlite_file(settings.resolved_database_url)):
        if extra is not None:
            extra = extra.resolve()
            if data not in extra.parents:
                elsewhere += [p for p in (extra, *(extra.with_name(extra.name + s) for s in ("-wal", "-shm", "-journal")))
                              if p.exists()]
    fixed = []
    for path in paths + elsewhere:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        if info.st_uid != uid and not (path in elsewhere and not info.st_mode & 0o007):
            raise DeploymentError(t("dep_not_owner", path=path, owner=info.st_uid, uid=uid))
        if info.st_uid != uid:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700, follow_symlinks=False)
            fixed.append(t("dep_mode_fixed", path=path, old=f"{mode:04o}", new=f"{mode & 0o700:04o}"))
    return fixed


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        return Path(url[len(prefix):].split("?")[0])
    return None
