"""The real hub of hub/jupyterhub_config.py (LDJ logins, the workspace spawner, the data service, the
lifecycle service, the idle culler) on free loopback ports, plus an admin service token for the REST API.

Used by tests/test_starter_notebooks.py and bench/workspace.py; everything it starts is stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import requests

from conftest import free_port, stop_tree

from ldj.settings import REPO_ROOT


class ConfiguredHub:
    def __init__(self, root: Path, **settings: str):
        """`root/var` is the LDJ data folder; `settings` are extra LDJ_* values (without the prefix)."""
        self.root = root
        self.ports = {name: free_port() for name in ("HUB_PORT", "HUB_API_PORT", "PROXY_API_PORT",
                                                     "DATA_SERVICE_PORT", "PORTAL_PORT")}
        self.url = f"http://127.0.0.1:{self.ports['HUB_PORT']}"
        self.admin = secrets.token_hex(16)
        self.settings = settings
        self.proc: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "var"

    def home(self, user: str) -> Path:
        return self.data_dir / "homes" / user

    def start(self, timeout: float = 60) -> None:
        root = self.root
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LDJ_", "JUPYTERHUB_"))}
        env.update({f"LDJ_{k}": str(v) for k, v in self.ports.items()})
        env.update({f"LDJ_{k.upper()}": str(v) for k, v in self.settings.items()})
        env.update(LDJ_DATA_DIR=str(self.data_dir), LDJ_DATA_SERVICE_URL=f"{self.url}/services/ldj-data",
                   HOME=str(root), JUPYTER_RUNTIME_DIR=str(root / "rt"), JUPYTER_DATA_DIR=str(root / "jd"),
                   JUPYTER_CONFIG_DIR=str(root / "jc"), IPYTHONDIR=str(root / "ip"))
        config = root / "hub_config.py"
        config.write_text(
            f"exec(open({str(REPO_ROOT / 'hub' / 'jupyterhub_config.py')!r}).read())\n"
            f"c.JupyterHub.services.append({{'name': 'hub-admin', 'api_token': {self.admin!r}}})\n"
            "c.JupyterHub.load_roles.append({'name': 'hub-admin', 'services': ['hub-admin'],"
            " 'scopes': ['admin:users', 'admin:servers', 'tokens', 'read:users']})\n")
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=root, env=env,
                                     stdout=open(root / "hub.log", "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the hub exited: {self.log()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/hub/api/", timeout=2)
                if self._service_up():
                    return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the hub did not come up: {self.log()[-3000:]}")

    def _service_up(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.url}/services/ldj-data/api/me", timeout=2)
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # the data service answered (refusing the missing token)
        except (urllib.error.URLError, ConnectionError):
            return False
        return True

    def log(self) -> str:
        path = self.root / "hub.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the hub (it stops its services and workspaces), then the proxy, by PID."""
        if self.proc is not None:
            stop_tree(self.proc)
        proxy = self.data_dir / "hub" / "proxy.pid"
        if proxy.exists():
            try:
                pid = int(proxy.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    # -- REST and browser-like helpers -------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", timeout=90,
                                headers={"Authorization": f"token {self.admin}"}, **kwargs)

    def login(self, name: str, password: str) -> requests.Session:
        """Log in through the login form, as a browser does; raises when the login is refused."""
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        data = {"username": name, "password": password, **({"_xsrf": xsrf.group(1)} if xsrf else {})}
        response = session.post(f"{self.url}/hub/login?next=", data=data, allow_redirects=False, timeout=30)
        if response.status_code != 302:
            raise RuntimeError(f"login refused for {name}: {response.status_code}")
        return session

    def user_token(self, name: str, note: str = "test") -> str:
        """A real API token of the hub user `name` (created in the hub when needed), with the user's scopes."""
        self.api("POST", f"/users/{name}")  # 201, or 409 when the user exists
        return self.api("POST", f"/users/{name}/tokens", json={"note": note}).json()["token"]

    def spawn(self, session: requests.Session, name: str, timeout: float = 60) -> dict:
        """Press start as the logged-in user does (GET /hub/spawn) and wait until the workspace is ready."""
        session.get(f"{self.url}/hub/spawn", allow_redirects=False, timeout=60)
        return self.wait_ready(name, timeout)

    def wait_ready(self, name: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{name}").json()["servers"].get("", {})
            if server.get("ready"):
                return server
            time.sleep(0.1)
        raise RuntimeError(f"{name}'s workspace did not become ready: {self.log()[-3000:]}")

    def stop_server(self, name: str, timeout: float = 30) -> None:
        self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.api("GET", f"/users/{name}").json()["servers"]:
            time.sleep(0.1)

    # -- code inside a running workspace ---------------------------------------------------------

    def execute(self, user: str, token: str, code: str, timeout: float = 60) -> str:
        """Run `code` in a new kernel of the user's running workspace (the server's own REST and
        websocket API, through the proxy) and return its stdout; raises on an error in the code."""
        return asyncio.run(self._execute(user, token, code, timeout))

    async def _execute(self, user: str, token: str, code: str, timeout: float) -> str:
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest
        from tornado.websocket import websocket_connect

        headers = {"Authorization": f"token {token}"}
        base = f"{self.url}/user/{user}/api/kernels"
        client = AsyncHTTPClient()
        kernel = json.loads((await client.fetch(base, method="POST", body="{}", headers=headers)).body)
        ws = await websocket_connect(HTTPRequest(f"{base.replace('http', 'ws', 1)}/{kernel['id']}/channels",
                                                 headers=headers))
        msg_id, out = uuid.uuid4().hex, []
        ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": user, "session": uuid.uuid4().hex,
                       "msg_type": "execute_request", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                raw = await asyncio.wait_for(ws.read_message(), timeout=deadline - time.monotonic())
                if raw is None:
                    raise RuntimeError("the kernel's websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                elif msg["msg_type"] == "error":
                    raise RuntimeError(f"error in the workspace: {msg['content']['ename']}: {msg['content']['evalue']}")
                elif msg["msg_type"] == "execute_reply":
                    return "".join(out)
            raise TimeoutError("no reply from the workspace's kernel")
        finally:
            ws.close()
            await client.fetch(f"{base}/{kernel['id']}", method="DELETE", headers=headers, raise_error=False)
