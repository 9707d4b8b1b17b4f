"""The real stack for portal tests: JupyterHub + configurable-http-proxy + the portal and data services,
started from hub/jupyterhub_config.py on free loopback ports and stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from conftest import free_port, stop_tree
from ldj.settings import REPO_ROOT


@dataclass
class Stack:
    root: Path
    url: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self):
        self.log = self.root / "hub.log"

    @property
    def portal(self) -> str:
        return f"{self.url}/services/ldj-portal"

    def start(self, timeout: float = 90) -> "Stack":
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f",
                                      str(REPO_ROOT / "hub" / "jupyterhub_config.py")],
                                     cwd=self.root, env=self.env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        self.wait_for(f"{self.url}/hub/api/", timeout)
        self.wait_for(f"{self.portal}/", timeout)
        return self

    def wait_for(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                return
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 502, 503):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up:\n" + self.log.read_text()[-4000:])
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_tree(self.proc)
        for pid_file in (self.root / "var" / "hub").glob("*.pid"):
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        self.proc = None


def make_stack(root: Path, **settings: str) -> Stack:
    """A stack over the data folder root/var (already filled by the caller); settings as LDJ_* values."""
    ports = {name: free_port() for name in ("HUB_PORT", "HUB_API_PORT", "PROXY_API_PORT", "DATA_SERVICE_PORT",
                                            "PORTAL_PORT")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LDJ_", "JUPYTERHUB_", "PANEL_", "BOKEH_"))}
    env.update({f"LDJ_{k}": str(v) for k, v in ports.items()})
    url = f"http://127.0.0.1:{ports['HUB_PORT']}"
    env.update(LDJ_DATA_DIR=str(root / "var"), HOME=str(root), JUPYTER_RUNTIME_DIR=str(root / "rt"),
               JUPYTER_DATA_DIR=str(root / "jd"), JUPYTER_CONFIG_DIR=str(root / "jc"), IPYTHONDIR=str(root / "ip"),
               LDJ_DATA_SERVICE_URL=f"{url}/services/ldj-data", LDJ_PORTAL_URL=f"{url}/services/ldj-portal")
    env.update({f"LDJ_{k.upper()}": v for k, v in settings.items()})
    return Stack(root, url, env)
