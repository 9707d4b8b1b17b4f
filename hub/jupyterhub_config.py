"""JupyterHub for the LDJ research portal (the embedded default: everything on one machine).

Start it with `ldj serve` (or `jupyterhub -f hub/jupyterhub_config.py` with the LDJ_* settings in the
environment). Ports and folders come from the LDJ settings; see the README.

Production (SURFconext or another OpenID Connect provider), replacing the authenticator below:

    c.JupyterHub.authenticator_class = "generic-oauth"   # oauthenticator
    c.GenericOAuthenticator.oauth_callback_url = "https://ldj.example.nl/hub/oauth_callback"
    c.GenericOAuthenticator.client_id = "..."; c.GenericOAuthenticator.client_secret = "..."
    c.GenericOAuthenticator.authorize_url = "https://connect.surfconext.nl/oidc/authorize"
    c.GenericOAuthenticator.token_url = "https://connect.surfconext.nl/oidc/token"
    c.GenericOAuthenticator.userdata_url = "https://connect.surfconext.nl/oidc/userinfo"
    c.GenericOAuthenticator.username_claim = "eduperson_principal_name"
    c.GenericOAuthenticator.allow_all = True   # the LDJ account must exist; groups come from ldj.hub.hub_groups
    c.GenericOAuthenticator.modify_auth_state_hook = ...  # call ldj.hub.hub_groups(name) and set "groups"
    c.GenericOAuthenticator.manage_groups = True

The spawner is selected by one setting, LDJ_SPAWNER: local (default), docker or kubernetes (see docker/).
"""

import logging
import os
import sys

from ldj import deployment
from ldj.settings import REPO_ROOT, get_settings

# The data folder (store, key, extracts, hub state, secrets) is the service account's alone: everything the
# hub and its services create is 0600/0700, and wrong modes left by earlier runs are fixed now.
deployment.private_umask()
c = get_config()  # noqa: F821 - provided by JupyterHub
settings = get_settings()
# Local workspaces each under their own OS account with a private home outside the data folder (the hub
# runs as root); a hub that is not root refuses unless LDJ_ALLOW_SHARED_WORKSPACE_ACCOUNTS (ldj.deployment).
deployment.check_workspace_accounts(settings)
for line in deployment.secure_data_dir(settings):
    logging.getLogger("ldj").warning(line)
state = (settings.data_dir / "hub").resolve()
state.mkdir(parents=True, exist_ok=True)

c.JupyterHub.ip = settings.hub_ip
c.JupyterHub.port = settings.hub_port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings.hub_api_port
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [str(REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy")]
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True

# Who may log in: every active LDJ account (the portal uses the same login).
c.JupyterHub.authenticator_class = "ldj.hub.LDJAuthenticator"
c.Authenticator.allow_all = True
c.Authenticator.manage_groups = True

# Who may start a workspace: checked in the spawner itself (ldj.hub.LDJSpawnerMixin).
if settings.spawner == "local":
    deployment.prepare_homes(settings)
    c.JupyterHub.spawner_class = "ldj.hub.LDJLocalSpawner"
    c.Spawner.cmd = [str(deployment.workspace_python(settings)), "-m", "jupyterhub.singleuser"]
else:
    exec((REPO_ROOT / "docker" / f"spawner_{settings.spawner}.py").read_text())
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
# Nothing of the hub's environment (database URL, key path, secrets) reaches a workspace but what the
# spawners set: JupyterHub's Spawner.env_keep passes on no LDJ_* variable.
# The workspace's own token ($JUPYTERHUB_API_TOKEN) reads through the data service; the default
# `server` role alone (activity, access to the server) would be refused there.
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "access:services!service=ldj-data"]

data_env = {k: v for k, v in os.environ.items() if k.startswith("LDJ_")}
data_env.update(LDJ_DATA_DIR=str(settings.data_dir.resolve()), LDJ_DATABASE_URL=settings.resolved_database_url)
c.JupyterHub.services = [
    {"name": "ldj-data", "url": f"http://127.0.0.1:{settings.data_service_port}",
     "command": [sys.executable, "-m", "ldj.dataservice"], "environment": data_env},
    # Stops a running workspace once its owner has no active grant any more (expiry, revocation).
    {"name": "ldj-lifecycle", "command": [sys.executable, "-m", "ldj.lifecycle"], "environment": data_env},
    # The portal: public pages, and single sign-on with the hub as OAuth provider.
    {"name": "ldj-portal", "url": f"http://127.0.0.1:{settings.portal_port}", "display": False,
     "command": [sys.executable, "-m", "ldj.portal"], "environment": data_env,
     "oauth_no_confirm": True, "oauth_redirect_uri": "/services/ldj-portal/login",
     "oauth_client_allowed_scopes": ["read:users:groups!user"]},
    {"name": "idle-culler",
     "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={settings.idle_timeout_seconds}"]},
]
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=ldj-data", "access:services!service=ldj-portal"]},
    {"name": "ldj-lifecycle", "services": ["ldj-lifecycle"], "scopes": ["list:users", "read:users", "admin:servers"]},
    {"name": "idle-culler", "services": ["idle-culler"],
     "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]},
]

# The hub URL opens the portal; after logging in people land there too.
c.JupyterHub.default_url = "/services/ldj-portal/"
