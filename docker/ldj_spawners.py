"""Container workspaces (DockerSpawner, KubeSpawner) with the LDJ rules of ldj.hub.LDJSpawnerMixin.

The hub cannot write into a container's home volume (a Docker volume, a Kubernetes PVC), so the
per-user catalogue travels with the start request instead: the mixin's check and catalogue writer run
on the hub as for local workspaces (no active project: HTTP 403, no start), the catalogue file is
gzipped into one environment variable (it holds no token, only `{env(JUPYTERHUB_API_TOKEN)}`), and
`ldj-workspace-start` (docker/workspace-start, the image's entry point) writes it to
`$HOME/ldj-catalogus.yaml` at every start and copies the image's starter notebooks without
overwriting the researcher's files.

The spawner packages are optional (`pip install "ldj[docker]"` or `"ldj[kubernetes]"`): the classes
are made on first use, so importing this module needs neither.
"""

from __future__ import annotations

import base64
import gzip
import tempfile
from pathlib import Path

from traitlets import Unicode

from ldj.hub import CATALOGUE_FILE, LDJSpawnerMixin

CATALOGUE_ENV = "LDJ_WORKSPACE_CATALOGUE_GZ"  # read (and removed) by ldj-workspace-start


def encode_catalogue(text: bytes) -> str:
    return base64.b64encode(gzip.compress(text, mtime=0)).decode("ascii")


def decode_catalogue(value: str) -> bytes:
    return gzip.decompress(base64.b64decode(value))


class LDJContainerMixin(LDJSpawnerMixin):
    """LDJSpawnerMixin for workspaces in containers: the catalogue goes in through the environment."""

    container_home = Unicode("/home/jovyan", help="The researcher's home folder inside the workspace container "
                                                   "(where the home volume is mounted).").tag(config=True)

    def ldj_home(self) -> str:
        # Where the catalogue ends up inside the container; the mixin's start() points LDJ_CATALOG there.
        return self.container_home

    def prepare_workspace(self, home: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="ldj-workspace-") as staging:
            super().prepare_workspace(Path(staging))  # the grant check and the catalogue, as for local ones
            self.ldj_catalogue = encode_catalogue((Path(staging) / CATALOGUE_FILE).read_bytes())

    def get_env(self) -> dict:
        env = super().get_env()
        env[CATALOGUE_ENV] = self.ldj_catalogue
        return env


def __getattr__(name: str):
    """LDJDockerSpawner and LDJKubeSpawner, built on first use (their packages are optional)."""
    if name == "LDJDockerSpawner":
        from dockerspawner import DockerSpawner as base
    elif name == "LDJKubeSpawner":
        from kubespawner import KubeSpawner as base
    else:
        raise AttributeError(name)
    cls = type(name, (LDJContainerMixin, base), {
        "__module__": __name__, "__doc__": f"{base.__name__} that starts only for members of an active project, "
                                           "with the user's catalogue and the starter notebooks."})
    globals()[name] = cls
    return cls
