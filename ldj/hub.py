"""JupyterHub on top of the LDJ governance store: who may log in, who may start a workspace, and
what a workspace holds when it starts.

- `LDJAuthenticator`: accounts and hashed passwords from the governance store (the embedded
  default; production uses OpenID Connect through oauthenticator, see hub/jupyterhub_config.py).
  Roles, organisation and active projects become hub groups, synced at every login.
- `LDJSpawnerMixin`: a server starts only for a member of an active, approved project, checked in
  the spawner at start time, so neither the UI nor the REST API can get around it. Before the
  start it writes the user's Intake catalogue (their grants now) and copies the starter notebooks
  without overwriting the user's own files.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from jupyterhub.auth import Authenticator
from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets.config import LoggingConfigurable
from tornado import web
from traitlets import Unicode

from . import governance, policy, store
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
        home.mkdir(parents=True, exist_ok=True)
        settings = get_settings()
        write_user_catalogue(load_entries(settings.catalog_dir), grants, settings.data_service_url,
                             home / CATALOGUE_FILE)
        source = Path(self.starter_notebooks)
        if source.is_dir():
            for notebook in source.glob("*.ipynb"):
                target = home / notebook.name
                if not target.exists():  # never overwrite the researcher's own work
                    shutil.copy2(notebook, target)

    async def start(self):
        await asyncio.to_thread(self.prepare_workspace, Path(self.ldj_home()))
        self.environment = {**self.environment, "LDJ_CATALOG": str(Path(self.ldj_home()) / CATALOGUE_FILE),
                            "LDJ_DATA_SERVICE_URL": get_settings().data_service_url}
        return await super().start()

    def ldj_home(self) -> str:
        return os.path.expanduser(self.home_dir_template.format(username=self.user.name))


class LDJLocalSpawner(LDJSpawnerMixin, SimpleLocalProcessSpawner):
    """The embedded default: one local process per user, home folders under the data directory.

    Honest limits: all servers run as the hub's own OS user, so users are separated by the hub's
    authentication and by their tokens at the data service, not by the operating system. Use
    DockerSpawner or KubeSpawner (docker/) where that matters.
    """
