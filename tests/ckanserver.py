"""A real CKAN 2.12 on a loopback port, for the tests (install it with tests/ckan/install.sh).

Its database is a fresh one on the suite's PostgreSQL server; Solr is not there: the test-only
plugin `ldjtest` (tests/ckan/ckanext-ldjtest) makes CKAN work without it. A sysadmin and an API
token are created with CKAN's own CLI. Everything started is stopped by PID.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import free_port

from ldj.settings import REPO_ROOT

CKAN_VENV = REPO_ROOT / ".venv-ckan"
INSTALL_SCRIPT = REPO_ROOT / "tests" / "ckan" / "install.sh"


def install_ckan() -> None:
    """Run the idempotent installer; a failure is an error, never a skip."""
    result = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{INSTALL_SCRIPT} failed ({result.returncode}):\n{result.stderr[-4000:]}")


class CkanServer:
    """`ckan run` against `pg_url` (a SQLAlchemy URL of an empty database), files under `root`."""

    def __init__(self, root: Path, pg_url: str, port: int | None = None, sysadmin: str = "ldjadmin"):
        self.root = Path(root)
        self.pg_url = pg_url.replace("postgresql+psycopg://", "postgresql://")  # CKAN uses psycopg2
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ini = self.root / "ckan.ini"
        self.sysadmin = sysadmin
        self.password = secrets.token_urlsafe(12)
        self.token: str | None = None
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "ckan.log"
        self.timings: dict[str, float] = {}

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CKAN", "LDJ_"))}
        env.update(CKAN_INI=str(self.ini), HOME=str(self.root / "home"), PYTHONDONTWRITEBYTECODE="1")
        return env

    def ckan(self, *args: str, timeout: float = 120) -> str:
        """Run one `ckan` CLI command; its output, or a RuntimeError with CKAN's own message."""
        cmd = [str(CKAN_VENV / "bin" / "ckan"), "-c", str(self.ini), *args]
        result = subprocess.run(cmd, capture_output=True, text=True, env=self.env, cwd=self.root,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeError(f"ckan {' '.join(args[:2])} failed ({result.returncode}):\n"
                               f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        return result.stdout

    def configure(self) -> None:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        (self.root / "storage").mkdir(exist_ok=True)
        subprocess.run([str(CKAN_VENV / "bin" / "ckan"), "generate", "config", str(self.ini)], check=True,
                       capture_output=True, env=self.env, cwd=self.root)
        options = {
            "sqlalchemy.url": self.pg_url,
            "ckan.site_url": self.url,
            "ckan.site_id": "ldjtest",
            "solr_url": f"http://127.0.0.1:{free_port()}/solr/ckan",  # nobody listens: no Solr here
            "ckan.plugins": "ldjtest",
            "ckan.storage_path": str(self.root / "storage"),
            "ckan.max_resource_size": "10",
            "ckan.redis.url": f"redis://127.0.0.1:{free_port()}/0",  # not needed for the API calls used
            "ckan.auth.create_user_via_api": "false",
            "ckan.locale_default": "nl",
            "ckan.activity_streams_enabled": "false",
        }
        self.ckan_config_tool(options)

    def ckan_config_tool(self, options: dict[str, str]) -> None:
        cmd = [str(CKAN_VENV / "bin" / "ckan"), "config-tool", str(self.ini),
               *(f"{k}={v}" for k, v in options.items())]
        subprocess.run(cmd, check=True, capture_output=True, env=self.env, cwd=self.root)

    def start(self, timeout: float = 60) -> None:
        t0 = time.perf_counter()
        self.root.mkdir(parents=True, exist_ok=True)
        self.configure()
        self.ckan("db", "init")
        self.ckan("sysadmin", "add", self.sysadmin, f"email={self.sysadmin}@example.org",
                  f"password={self.password}", "--create")
        self.token = self.ckan("user", "token", "add", self.sysadmin, "ldj-tests", "--quiet").strip().splitlines()[-1]
        self.timings["setup_s"] = time.perf_counter() - t0
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(CKAN_VENV / "bin" / "ckan"), "-c", str(self.ini), "run", "--disable-reloader",
             "-H", "127.0.0.1", "-p", str(self.port)],
            env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"CKAN exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/3/action/status_show", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"CKAN did not answer on {self.url} within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.timings["start_s"] = time.perf_counter() - t0

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
