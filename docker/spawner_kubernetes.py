"""KubeSpawner: one pod per workspace (LDJ_SPAWNER=kubernetes), as in the Zero to JupyterHub chart.

Executed by hub/jupyterhub_config.py in its namespace (`c`, `settings`, `REPO_ROOT` are defined there),
after the common hub settings, so it may override them. Needs `pip install "ldj[kubernetes]"` in the
hub image. docker/z2jh-values.yaml runs the hub with this file; storage, the image and the idle culler
are set there in the chart's own terms, and the chart's `hub.extraConfig` execs this file last.
The workspaces' network is limited by the chart's NetworkPolicy (`singleuser.networkPolicy` there), not
here: a hub run without the chart needs the same policy applied on its own (docker/README.md).
"""

import sys

sys.path.insert(0, str(REPO_ROOT / "docker"))  # noqa: F821 - ldj_spawners lives beside this file

c.JupyterHub.spawner_class = "ldj_spawners.LDJKubeSpawner"  # noqa: F821
c.JupyterHub.hub_ip = "0.0.0.0"  # noqa: F821 - pods reach the hub API through the `hub` service
c.JupyterHub.hub_connect_ip = "hub"  # noqa: F821

c.KubeSpawner.image = "ldj-singleuser:latest"  # noqa: F821 - docker/Dockerfile.singleuser
c.KubeSpawner.cmd = ["ldj-workspace-start", "jupyterhub-singleuser"]  # noqa: F821
c.KubeSpawner.uid = 1000  # noqa: F821 - the image's jovyan user, never root
c.KubeSpawner.gid = 100  # noqa: F821
c.KubeSpawner.fs_gid = 100  # noqa: F821 - so the home volume is writable by the workspace
c.KubeSpawner.allow_privilege_escalation = False  # noqa: F821
c.KubeSpawner.container_security_context = {"capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}  # noqa: F821
c.KubeSpawner.notebook_dir = "/home/jovyan"  # noqa: F821
# One PersistentVolumeClaim per user, mounted as the home folder; the catalogue in it is rewritten at
# every start (ldj_spawners.LDJContainerMixin). Nothing else is mounted: the data folder and the secrets
# are mounted in the hub pod only.
c.KubeSpawner.storage_pvc_ensure = True  # noqa: F821
c.KubeSpawner.pvc_name_template = "ldj-home-{username}"  # noqa: F821
c.KubeSpawner.storage_capacity = "10Gi"  # noqa: F821
c.KubeSpawner.storage_access_modes = ["ReadWriteOnce"]  # noqa: F821
c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "ldj-home-{username}"}}]  # noqa: F821
c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": "/home/jovyan"}]  # noqa: F821
c.LDJContainerMixin.container_home = "/home/jovyan"  # noqa: F821
c.KubeSpawner.mem_limit = "4G"  # noqa: F821
c.KubeSpawner.cpu_limit = 1.0  # noqa: F821
