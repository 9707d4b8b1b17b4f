"""A real JupyterHub with configurable-http-proxy on loopback ports, for the tests.

The hub runs the data service as a managed service. An admin service token creates users and
their API tokens through the REST API. Everything started is stopped by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_port

from ldj.settings import REPO_ROOT, Settings

CHP = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"

CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {proxy_pid!r}
c.JupyterHub.db_url = "sqlite:///{root}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.pid_file = "{root}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"  # users come from the REST API here
c.JupyterHub.services = [
    {{"name": "test-admin", "api_token": {admin_token!r}}},
    {{"name": "ldj-data", "url": "http://127.0.0.1:{service_port}", "command": [{python!r}, "-m", "ldj.dataservice"],
      "environment": {service_env!r}}},
]
c.JupyterHub.load_roles = [
    {{"name": "test-admin", "services": ["test-admin"], "scopes": ["admin:users", "tokens", "read:users"]}},
    {{"name": "user", "scopes": ["self", "access:services!service=ldj-data"]}},
]
"""


class Hub:
    def __init__(self, root: Path, settings: Settings):
        self.root = root
        self.settings = settings
        self.port, self.hub_port, self.proxy_api_port, self.service_port = (free_port() for _ in range(4))
        self.admin_token = secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LDJ_", "JUPYTERHUB_"))}
        service_env = {"LDJ_DATA_DIR": str(self.settings.data_dir),
                       "LDJ_DATABASE_URL": self.settings.resolved_database_url,
                       "PYTHONPATH": str(REPO_ROOT), "HOME": str(self.root)}
        config = CONFIG.format(port=self.port, hub_port=self.hub_port, proxy_api_port=self.proxy_api_port,
                               chp=str(CHP), proxy_pid=str(self.root / "proxy.pid"), root=self.root,
                               admin_token=self.admin_token, service_port=self.service_port, python=sys.executable,
                               service_env=service_env)
        (self.root / "jupyterhub_config.py").write_text(config)
        env.update(HOME=str(self.root), JUPYTER_RUNTIME_DIR=str(self.root / "runtime"),
                   JUPYTER_DATA_DIR=str(self.root / "data"), JUPYTER_CONFIG_DIR=str(self.root / "config"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.root / "jupyterhub_config.py")],
            cwd=self.root, env=env, stdout=open(self.root / "hub.log", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited: {(self.root / 'hub.log').read_text()[-3000:]}")
            try:
                self.api("GET", "/")
                if self._service_up():
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the hub did not come up: {(self.root / 'hub.log').read_text()[-3000:]}")

    def _service_up(self) -> bool:
        try:
            self.request("/services/ldj-data/api/me", token="")
        except urllib.error.HTTPError:
            return True  # it answered (refusing the missing token)
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    def stop(self) -> None:
        pids = []
        if self.proc is not None and self.proc.poll() is None:
            pids.append(self.proc.pid)
        proxy_pid = self.root / "proxy.pid"
        if proxy_pid.exists():
            pids.append(int(proxy_pid.read_text().strip()))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in pids[1:]:
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)

    # -- REST helpers --------------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict | None = None) -> dict | list | None:
        req = urllib.request.Request(f"{self.url}/hub/api{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"token {self.admin_token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def user_token(self, name: str) -> str:
        try:
            self.api("POST", f"/users/{name}")
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # exists already
                raise
        return self.api("POST", f"/users/{name}/tokens", {"note": "test"})["token"]

    def request(self, path: str, token: str | None) -> tuple[int, object, bytes]:
        headers = {"Authorization": f"token {token}"} if token else {}
        req = urllib.request.Request(f"{self.url}{path}", headers=headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
