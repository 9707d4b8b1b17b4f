"""DockerSpawner: one container per workspace (LDJ_SPAWNER=docker).

Executed by hub/jupyterhub_config.py in its namespace (`c`, `settings`, `REPO_ROOT` are defined there),
after the common hub settings, so it may override them. Needs `pip install "ldj[docker]"` in the hub's
environment. With docker/compose.yaml the hub runs in a container named `hub` on the networks `ldj` and
`ldj-workspaces`; change the names below together with the compose file.
"""

import sys

sys.path.insert(0, str(REPO_ROOT / "docker"))  # noqa: F821 - ldj_spawners lives beside this file

c.JupyterHub.spawner_class = "ldj_spawners.LDJDockerSpawner"  # noqa: F821
c.JupyterHub.hub_ip = "0.0.0.0"  # noqa: F821 - workspaces reach the hub API from their containers
c.JupyterHub.hub_connect_ip = "hub"  # noqa: F821

c.DockerSpawner.image = "ldj-singleuser:latest"  # noqa: F821 - docker/Dockerfile.singleuser
# The workspace's only network: internal, shared with the hub alone (docker/compose.yaml). DockerSpawner makes
# it the container's network_mode, so the container is on no other network; the hub reaches it there.
c.DockerSpawner.network_name = "ldj-workspaces"  # noqa: F821
c.DockerSpawner.use_internal_ip = True  # noqa: F821
c.DockerSpawner.remove = True  # noqa: F821 - containers are throw-away; the home volume stays
c.DockerSpawner.cmd = ["ldj-workspace-start", "jupyterhub-singleuser"]  # noqa: F821
c.DockerSpawner.notebook_dir = "/home/jovyan"  # noqa: F821
# One named volume per user, mounted as the home folder: notebooks and results survive restarts.
# The catalogue in it is rewritten at every start (ldj_spawners.LDJContainerMixin). Nothing else is
# mounted: not the data folder (ldj-data), not the Docker socket; data come only through the data service.
c.DockerSpawner.volumes = {"ldj-home-{username}": "/home/jovyan"}  # noqa: F821
# Separated from the platform: the image's unprivileged user, whatever the image says, no capabilities,
# no privilege gain (setuid binaries), and the image's files (ldj, catalog/) read-only to that user.
c.DockerSpawner.extra_create_kwargs = {"user": "1000:100"}  # noqa: F821
c.DockerSpawner.extra_host_config = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"]}  # noqa: F821
c.LDJContainerMixin.container_home = "/home/jovyan"  # noqa: F821
c.DockerSpawner.mem_limit = "4G"  # noqa: F821
c.DockerSpawner.cpu_limit = 1.0  # noqa: F821
