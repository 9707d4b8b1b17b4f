"""JupyterHub on top of the LDJ governance store: who may log in, who may start a workspace, and
what a workspace holds when it starts.

- `LDJAuthenticator`: accounts and hashed passwords from the governance store (the embedded
  default; production uses OpenID Connect through oauthenticator, see hub/jupyterhub_config.py).
  Roles, organisation and active projects become hub groups, synced at every login.
- `LDJSpawnerMixin`: a server starts only for a member of an active, approved project, checked in
  the spawner at start time, so neither the UI nor the REST API can get around it. Before the
  start it writes the user's Intake catalogue (their grants now) and copies the starter notebooks
  without overwriting the user's own files.
- `LDJLocalSpawner`: the local default; each workspace under its own OS account (ldj.deployment).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets.config import LoggingConfigurable
from tornado import web
from traitlets import Unicode

from . import deployment, governance, policy, store
from .catalogue import load_entries, write_user_catalogue
from .settings import REPO_ROOT, get_settings

CATALOGUE_FILE = "ldj-catalogus.yaml"


def _engine():
    return store.get_engine(get_settings())


def hub_groups(name: str) -> list[str]:
    """The hub groups of an LDJ account (`policy.Actor.groups`): roles, organisation, active projects;
    none for an inactive or unknown account."""
    return policy.actor_for(_engine(), name).groups()


class LDJAuthenticator(Authenticator):
    """Log in with an LDJ account (name and password from the governance store)."""

    async def authenticate(self, handler, data):
        name = (data.get("username") or "").strip()
        password = data.get("password") or ""
        if not name or not password:
            return None
        if not await asyncio.to_thread(governance.check_password, _engine(), name, password):
            self.log.warning("LDJ login refused for %r", name)
            return None
        return {"name": name, "groups": await asyncio.to_thread(hub_groups, name)}


class LDJSpawnerMixin(LoggingConfigurable):
    """Start a workspace only for a member of an active project, with its catalogue and notebooks."""

    starter_notebooks = Unicode(str(REPO_ROOT / "starter_notebooks"),
                                help="Folder whose notebooks every new workspace gets a copy of.").tag(config=True)

    def ldj_grants(self) -> list[dict]:
        return [{"project": g.project_id, "entry": g.entry, "variables": g.variables}
                for g in governance.active_grants(_engine(), self.user.name)]

    def prepare_workspace(self, home: Path) -> None:
        grants = self.ldj_grants()
        if not grants:
            raise web.HTTPError(403, "Geen actief, goedgekeurd project: een werkomgeving kan niet starten. "
                                     "Vraag gegevens aan bij de APO via het portaal.")
        owner = self.ldj_make_home(home)
        settings = get_settings()
        with tempfile.TemporaryDirectory(prefix="ldj-catalogue-") as staging:
            catalogue = write_user_catalogue(load_entries(settings.catalog_dir), grants, settings.data_service_url,
                                             Path(staging) / CATALOGUE_FILE)
            files = {CATALOGUE_FILE: catalogue.read_bytes()}
        source = Path(self.starter_notebooks)
        notebooks = {p.name: p.read_bytes() for p in sorted(source.glob("*.ipynb"))} if source.is_dir() else {}
        # The catalogue is replaced at every start (a changed grant shows); notebooks never overwrite the
        # researcher's own work.
        deployment.install_files(home, {**files, **notebooks}, keep=set(notebooks), owner=owner)

    def ldj_make_home(self, home: Path) -> tuple[int, int] | None:
        """Make sure `home` exists; returns the (uid, gid) its files belong to (None: the hub's own)."""
        home.mkdir(parents=True, exist_ok=True)
        return None

    async def start(self):
        await asyncio.to_thread(self.prepare_workspace, Path(self.ldj_home()))
        self.environment = {**self.environment, "LDJ_CATALOG": str(Path(self.ldj_home()) / CATALOGUE_FILE),
                            "LDJ_DATA_SERVICE_URL": get_settings().data_service_url}
        return await super().start()

    def ldj_home(self) -> str:
        """The user's home folder as the workspace sees it (where LDJ_CATALOG points)."""
        raise NotImplementedError


class LDJLocalSpawner(LDJSpawnerMixin, LocalProcessSpawner):
    """The embedded default: one local process per user, each under its own OS account.

    The hub runs as root and, as JupyterHub's LocalProcessSpawner expects, each workspace runs as a system
    account: `<LDJ_WORKSPACE_ACCOUNT_PREFIX><name>` (ldj.deployment.workspace_account), created by the hub on
    the first start, with a private 0700 home under LDJ_HOMES_DIR. The account cannot read the data folder
    (0700, the service account's): person-level data come only through the data service, with the
    workspace's own token. Its environment holds no database URL, key path or secret (Spawner.env_keep).

    A hub that is not root starts workspaces under its own account only with
    LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS=true (stewards then see a warning); otherwise it refuses.
    """

    ldj_account: deployment.WorkspaceAccount | None = None

    def ldj_home(self) -> str:
        settings = get_settings()
        try:
            return str(settings.resolved_homes_dir / deployment.account_name(settings, self.user.name))
        except deployment.DeploymentError as exc:
            raise web.HTTPError(403, str(exc)) from None

    def ldj_make_home(self, home: Path) -> tuple[int, int] | None:
        try:
            self.ldj_account = deployment.workspace_account(get_settings(), self.user.name)
        except deployment.DeploymentError as exc:
            self.log.error("no workspace for %s: %s", self.user.name, exc)
            raise web.HTTPError(403, str(exc)) from None
        if self.ldj_account.shared:
            self.log.warning("%s's workspace runs under the hub's own account (shared accounts)", self.user.name)
        return self.ldj_account.uid, self.ldj_account.gid

    def make_preexec_fn(self, name):
        account = self.ldj_account
        home = str(account.home)
        become = None if account.shared else set_user_setuid(account.name, chdir=False)

        def preexec():
            if become is not None:
                become()
            os.chdir(home)

        return preexec

    def user_env(self, env):
        account = self.ldj_account
        python_bin = str(Path(self.cmd[0]).parent) if self.cmd else "/usr/bin"
        env.update(USER=account.name, LOGNAME=account.name, HOME=str(account.home), SHELL="/bin/bash",
                   PATH=f"{python_bin}:/usr/local/bin:/usr/bin:/bin")
        return env
