"""The real stack for tests and benches: hub/jupyterhub_config.py as it is (JupyterHub, configurable-http-proxy
and its managed services: data service, portal, lifecycle, idle culler) on free loopback ports, over the LDJ
data folder root/var, stopped by PID.

There is no test-only hub configuration: accounts and passwords come from the governance store
(ldj.governance.add_user), and a user's API token is made as a researcher makes one: log in through the
form, then ask the hub's REST API for a token. Everything a helper does on the hub, it does as that user.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psutil
import requests

from conftest import free_port, stop_tree
from ldj.deployment import workspace_accounts
from ldj.settings import REPO_ROOT, Settings

CONFIG = REPO_ROOT / "hub" / "jupyterhub_config.py"
PORTS = ("HUB_PORT", "HUB_API_PORT", "PROXY_API_PORT", "DATA_SERVICE_PORT", "PORTAL_PORT")


class Stack:
    def __init__(self, root: Path, url: str, env: dict[str, str]):
        self.root, self.url, self.env = root, url, env
        self.account_prefix = env["LDJ_WORKSPACE_ACCOUNT_PREFIX"]
        self.log = root / "hub.log"
        self.proc: subprocess.Popen | None = None
        self._family: list[psutil.Process] = []
        self.sessions: dict[str, requests.Session] = {}  # the last logged-in session per user

    @property
    def data_dir(self) -> Path:
        return self.root / "var"

    @property
    def portal(self) -> str:
        return f"{self.url}/services/ldj-portal"

    @property
    def data_service(self) -> str:
        return f"{self.url}/services/ldj-data"

    @property
    def homes_dir(self) -> Path:
        return Path(self.env["LDJ_HOMES_DIR"])

    def account(self, user: str) -> str:
        """The OS account `user`'s workspace runs as (ldj.deployment.account_name)."""
        return self.account_prefix + user

    def home(self, user: str) -> Path:
        return self.homes_dir / self.account(user)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- start and stop ------------------------------------------------------------------------------

    def start(self, timeout: float = 90) -> "Stack":
        """Start the hub and wait until its API, the data service and the portal answer; on failure
        everything started is stopped again."""
        log = os.fdopen(os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")
        with log:
            self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], cwd=self.root,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            for url in (f"{self.url}/hub/api/", f"{self.data_service}/api/me", f"{self.portal}/"):
                self.wait_for(url, deadline)
            self._family = psutil.Process(self.proc.pid).children(recursive=True)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for(self, url: str, deadline: float) -> None:
        """Wait until `url` answers with anything but the proxy's 'not (yet) routed' (404, 502, 503)."""
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
                raise RuntimeError(f"{url} did not come up:\n{self.log_text()[-4000:]}")
            time.sleep(0.3)

    def stop(self) -> None:
        """Stop the hub (it stops its services, proxy and workspaces), then anything of its own it left
        behind, by PID."""
        if self.proc is None:
            return
        stop_tree(self.proc)
        left = [p for p in self._family if p.is_running()]
        proxy = self.data_dir / "hub" / "proxy.pid"
        try:
            chp = psutil.Process(int(proxy.read_text().strip()))
            if "configurable-http-proxy" in " ".join(chp.cmdline()):
                left.append(chp)
        except (FileNotFoundError, ValueError, psutil.Error):
            pass
        for process in left:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(left, timeout=5)
        for process in alive:
            process.kill()
        self.proc = None
        self.remove_accounts()

    def remove_accounts(self) -> None:
        """Remove the OS accounts the hub created for this stack's workspaces (its own prefix), by name."""
        for account in workspace_accounts(Settings(workspace_account_prefix=self.account_prefix)):
            subprocess.run(["userdel", account], check=False, capture_output=True)

    # -- as a user -------------------------------------------------------------------------------------

    def login(self, name: str, password: str) -> requests.Session:
        """Log in through the login form, as a browser does; raises when the login is refused. The
        session is kept for the helpers below that act as this user."""
        session = requests.Session()
        page = session.get(f"{self.url}/hub/login", timeout=30)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        data = {"username": name, "password": password, **({"_xsrf": xsrf.group(1)} if xsrf else {})}
        response = session.post(f"{self.url}/hub/login?next=", data=data, allow_redirects=False, timeout=30)
        if response.status_code != 302:
            raise RuntimeError(f"login refused for {name}: {response.status_code}")
        self.sessions[name] = session
        return session

    def portal_session(self, name: str, password: str) -> requests.Session:
        """Logged in at the hub, then at the portal (its OAuth login with the hub), as a browser does."""
        session = self.login(name, password)
        response = session.get(f"{self.portal}/login", timeout=60)
        if response.status_code != 200 or not session.cookies.get("user"):
            raise RuntimeError(f"portal login failed for {name}: {response.status_code}")
        return session

    def api(self, name: str, method: str, path: str, **kwargs) -> requests.Response:
        """The hub's REST API as the logged-in user `name` (their session cookie and xsrf token)."""
        session = self.sessions.get(name)
        if session is None:
            raise RuntimeError(f"{name} has not logged in on this hub")
        headers = {"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""}
        return session.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=90, **kwargs)

    def user_token(self, name: str, password: str, note: str = "test") -> str:
        """A real API token of the LDJ account `name`, asked for after logging in; it has the user's scopes."""
        self.login(name, password)
        response = self.api(name, "POST", f"/users/{name}/tokens", json={"note": note})
        response.raise_for_status()
        return response.json()["token"]

    def request(self, path: str, token: str | None) -> tuple[int, object, bytes]:
        """GET `path` through the proxy with an API token; raises urllib's HTTPError on an error status."""
        headers = {"Authorization": f"token {token}"} if token else {}
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}{path}", headers=headers), timeout=60) as resp:
            return resp.status, resp.headers, resp.read()

    # -- workspaces ------------------------------------------------------------------------------------

    def spawn(self, session: requests.Session, name: str, timeout: float = 60) -> dict:
        """Press start as the logged-in user does (GET /hub/spawn) and wait until the workspace is ready."""
        session.get(f"{self.url}/hub/spawn", allow_redirects=False, timeout=60)
        return self.wait_ready(name, timeout)

    def wait_ready(self, name: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api(name, "GET", f"/users/{name}").json()["servers"].get("", {})
            if server.get("ready"):
                return server
            time.sleep(0.1)
        raise RuntimeError(f"{name}'s workspace did not become ready: {self.log_text()[-3000:]}")

    def stop_server(self, name: str, timeout: float = 30) -> None:
        self.api(name, "DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.api(name, "GET", f"/users/{name}").json()["servers"]:
            time.sleep(0.1)

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
        msg_id, out, replied, idle = uuid.uuid4().hex, [], False, False
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
                    replied = True
                elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    idle = True
                if replied and idle:  # the reply (shell) may overtake the output (iopub): wait for both
                    return "".join(out)
            raise TimeoutError("no reply from the workspace's kernel")
        finally:
            ws.close()
            await client.fetch(f"{base}/{kernel['id']}", method="DELETE", headers=headers, raise_error=False)


def make_stack(root: Path, **settings: str) -> Stack:
    """A stack over the data folder root/var (filled by the caller: store, accounts); `settings` are extra
    LDJ_* values, without the prefix (e.g. workspace_check_seconds="1"). Call start(), later stop().

    Workspaces run as OS accounts with a prefix of this stack's own (hubs of other tests and sessions run
    beside it), removed again by stop(). Their homes lie in a folder of their own under the system's temp
    folder, which accounts can pass through (pytest's tmp folders lie in a 0700 folder: the hub refuses
    homes there), removed when the test run ends; the data folder root/var stays 0700."""
    homes = Path(tempfile.mkdtemp(prefix="ldj-test-homes-"))
    homes.chmod(0o711)
    atexit.register(shutil.rmtree, homes, True)
    ports = {name: free_port() for name in PORTS}
    url = f"http://127.0.0.1:{ports['HUB_PORT']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LDJ_", "JUPYTERHUB_", "PANEL_", "BOKEH_"))}
    env.update({f"LDJ_{k}": str(v) for k, v in ports.items()})
    env["LDJ_WORKSPACE_ACCOUNT_PREFIX"] = f"t{uuid.uuid4().hex[:6]}-"
    env.update(LDJ_DATA_DIR=str(root / "var"), LDJ_HOMES_DIR=str(homes / "homes"), HOME=str(root), JUPYTER_RUNTIME_DIR=str(root / "rt"),
               JUPYTER_DATA_DIR=str(root / "jd"), JUPYTER_CONFIG_DIR=str(root / "jc"), IPYTHONDIR=str(root / "ip"),
               LDJ_DATA_SERVICE_URL=f"{url}/services/ldj-data", LDJ_PORTAL_URL=f"{url}/services/ldj-portal")
    env.update({f"LDJ_{k.upper()}": str(v) for k, v in settings.items()})
    return Stack(root, url, env)
