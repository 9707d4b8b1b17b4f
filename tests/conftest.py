"""Shared fixtures: a real PostgreSQL server started by the suite, fresh stores, settings."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ldj.settings import REPO_ROOT, Settings

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_tree(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a process (SIGTERM, then SIGKILL) and then every process it had started that is still
    running, by PID: a hub killed while stopping leaves its services and proxy behind otherwise."""
    import psutil

    if proc.poll() is not None:
        return
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    _, alive = psutil.wait_procs(family, timeout=10)
    for child in alive:
        child.terminate()
    _, alive = psutil.wait_procs(alive, timeout=5)
    for child in alive:
        child.kill()


class PostgresServer:
    """A throw-away PostgreSQL cluster on a loopback port, run as the `postgres` user when root."""

    def __init__(self, root: Path):
        if not PG_BIN_DIRS:
            raise RuntimeError("PostgreSQL server binaries not found: run 'make system-deps'")
        self.bin = PG_BIN_DIRS[0]
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        self.pid: int | None = None

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.parent.chmod(0o755)
        if self.as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start", "-o",
                  f"-p {self.port} -h 127.0.0.1 -k {self.root} -F -c fsync=off -c full_page_writes=off")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        engine.dispose()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGINT)  # fast shutdown
            for _ in range(100):
                os.kill(self.pid, 0)
                time.sleep(0.1)
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.pid = None


@pytest.fixture(scope="session")
def postgres():
    # Not under pytest's tmp folder: that is 0700 and the server runs as another user.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="ldj-pg-")) / "pg")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.root.parent, ignore_errors=True)


_db_counter = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """A fresh, empty store: SQLite in tmp_path, or a new database on the suite's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ldj.sqlite'}"
    server = request.getfixturevalue("postgres")
    return server.create_database(f"t{next(_db_counter)}_{os.getpid()}")


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=database_url, catalog_dir=REPO_ROOT / "catalog",
                    expectations_dir=REPO_ROOT / "expectations", progress="never")


@pytest.fixture
def sqlite_settings(tmp_path) -> Settings:
    """Settings for tests that only need the embedded default."""
    return Settings(data_dir=tmp_path / "var", catalog_dir=REPO_ROOT / "catalog",
                    expectations_dir=REPO_ROOT / "expectations", progress="never")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Libraries that write into $HOME write into the test's folder instead."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LDJ_SETTINGS_FILE", raising=False)
    for name in list(os.environ):
        if name.startswith("LDJ_"):
            monkeypatch.delenv(name)
