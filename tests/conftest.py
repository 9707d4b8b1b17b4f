"""Shared fixtures: a real PostgreSQL server started by the suite, fresh stores, settings."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from ldj import store
from ldj.settings import REPO_ROOT, Settings, get_settings
from ldj.synth import SynthResult, generate

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

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database; with `template`, a copy of that database (nobody may be connected to it)."""
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if template is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            else:  # a session left open on the template (a pool not disposed) would refuse the copy
                conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": template})
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
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


def _unique_name(prefix: str) -> str:
    return f"{prefix}{next(_db_counter)}_{os.getpid()}"


class StoreTemplates:
    """Stores built once per session and copied for each test that asks: the migrated empty store, and stores
    filled by a test module (a synthetic delivery imported, ...). A copy is the store's data folder (pseudonym
    key, derived files) plus its database: SQLite's file copied, or on PostgreSQL `CREATE DATABASE ... TEMPLATE`.
    A copy is a store of its own: what a test changes never reaches the template or another test."""

    def __init__(self, root: Path, request: pytest.FixtureRequest):
        self.root, self.request = root, request
        self.built: dict[tuple[str, str], tuple[Path, str]] = {}  # (database, key) -> (data folder, database)

    def _template(self, database: str, key: str, fill: Callable[[Settings], object] | None) -> tuple[Path, str]:
        if (database, key) not in self.built:
            folder = self.root / f"{database}-{len(self.built)}"
            if database == "sqlite":
                url = f"sqlite:///{folder / 'ldj.sqlite'}"
            else:
                server = self.request.getfixturevalue("postgres")
                url = server.create_database(_unique_name("template"))
            settings = Settings(data_dir=folder / "var", database_url=url, catalog_dir=REPO_ROOT / "catalog",
                                expectations_dir=REPO_ROOT / "expectations", progress="never")
            engine = store.get_engine(settings)  # migrated from empty by Alembic, once per session
            if fill is not None:
                fill(settings)
            engine.dispose()  # SQLite: checkpoints the WAL into the file; PostgreSQL: no session left on it
            self.built[(database, key)] = (settings.data_dir, url)
        return self.built[(database, key)]

    def copy(self, database: str, dest: Path, key: str = "migrated",
             fill: Callable[[Settings], object] | None = None) -> str:
        """A copy of template `key` (built by `fill(settings)` on the first call): its data folder into
        dest/var, its database as dest/ldj.sqlite or a new PostgreSQL database; returns the database URL.
        `fill` may only depend on the store and the data folder it is given."""
        data_dir, url = self._template(database, key, fill)
        if data_dir.exists():
            shutil.copytree(data_dir, dest / "var", dirs_exist_ok=True)
        if database == "sqlite":
            source = Path(url.split("///", 1)[1])
            dest.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal"):  # -wal only if a connection outlived the dispose
                if Path(f"{source}{suffix}").exists():
                    shutil.copy2(f"{source}{suffix}", dest / f"ldj.sqlite{suffix}")
            return f"sqlite:///{dest / 'ldj.sqlite'}"
        server = self.request.getfixturevalue("postgres")
        return server.create_database(_unique_name("t"), template=url.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def store_templates(tmp_path_factory, request) -> StoreTemplates:
    return StoreTemplates(tmp_path_factory.mktemp("templates"), request)


def pytest_configure(config):
    # For fixtures of a module or session too (they run before a test's own fixtures); see _isolated_home.
    os.environ["LDJ_PASSWORD_HASH_COST"] = "10"


# Modules `make test-fast` leaves out (marked `slow` here, in one place): they start real processes or
# import large synthetic deliveries. `make test` runs them all.
SLOW_MODULES = {
    "test_portal": "hub, portal and chromium",
    "test_portal_dashboards": "hub, portal and chromium",
    "test_portal_factsheet": "hub, portal and chromium",
    "test_portal_vraagbank": "hub, portal and chromium",
    "test_hub": "hub, proxy and workspaces",
    "test_dataservice": "hub and data service",
    "test_dataservice_releases": "hub and data service",
    "test_starter_notebooks": "hub, workspaces and kernels",
    "test_ckan": "a real CKAN",
    "test_cli": "the demo's import with its refresh, and ldj serve",
    "test_ingest_kill": "imports of 40,000 and 60,000 questionnaires, killed half-way",
    "test_feasibility": "an import of 6,000 questionnaires",
    "test_factsheet": "imports of synthetic deliveries, the factsheet's PDF",
    "test_versions": "every derived view refreshed, several times",
}
# Single tests that run the `ldj` command as a real process several times (seconds of start-up each), or
# import and refresh many times over.
SLOW_TESTS = {
    "test_ingest_bad_files.py::test_cli_rejects_one_bad_file_with_exit_status_2",
    "test_ingest_bad_files.py::test_cli_rejects_every_bad_file_and_names_each",
    "test_ingest_bad_files.py::test_cli_still_imports_the_good_file_next_to_a_bad_one",
    "test_vraagbank.py::test_the_command_line",
    "test_ingest_bad_files.py::test_cli_refuses_hostile_files_in_bounded_memory",
    "test_refresh.py::test_incremental_refresh_equals_a_full_rebuild_through_deliveries_corrections_and_objections",
}
# Fixtures that import a synthetic delivery (once per session, but still tens of seconds): their tests are slow.
SLOW_FIXTURES = {"filled_store", "synthetic_delivery"}


def pytest_collection_modifyitems(config, items):
    """Tests of SLOW_MODULES, with SLOW_FIXTURES or in SLOW_TESTS are marked `slow`; a test that needs the suite's PostgreSQL server (directly,
    or through a fixture such as CKAN's) is marked `postgres`. `-m "not slow and not postgres"` is the
    inner loop: domain and store on SQLite, no browser, hub or PostgreSQL."""
    for item in items:
        if (item.module.__name__ in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                or f"{item.path.name}::{item.originalname}" in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
        if "postgres" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.postgres)
    # Longest modules first: `make test` hands whole modules to two workers (--dist loadfile
    # --no-loadscope-reorder), and a long module drawn last would run alone at the end.
    seconds = _module_seconds()
    items.sort(key=lambda item: -seconds.get(item.path.name, UNKNOWN_MODULE_SECONDS))


# Seconds per test module in the last recorded run of the whole suite (tests/module_seconds.json);
# `LDJ_RECORD_MODULE_SECONDS=tests/module_seconds.json make test` records them again.
MODULE_SECONDS_FILE = Path(__file__).with_name("module_seconds.json")
UNKNOWN_MODULE_SECONDS = 60.0  # a new module goes early, where a long one does no harm


def _module_seconds() -> dict[str, float]:
    try:
        return json.loads(MODULE_SECONDS_FILE.read_text())
    except FileNotFoundError:
        return {}


_measured: dict[str, float] = {}


def pytest_runtest_logreport(report):
    module = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
    _measured[module] = _measured.get(module, 0.0) + report.duration


def pytest_sessionfinish(session):
    target = os.environ.get("LDJ_RECORD_MODULE_SECONDS")
    if target and _measured and not hasattr(session.config, "workerinput"):  # the controller sees every report
        Path(target).write_text(json.dumps({k: round(v, 1) for k, v in sorted(
            _measured.items(), key=lambda kv: -kv[1])}, indent=1) + "\n")


def pytest_generate_tests(metafunc):
    """Tests of a store run on SQLite and on PostgreSQL, unless their module says `pytestmark =
    pytest.mark.databases("sqlite")` (store semantics are tested elsewhere; see docs/benchmarks.md)."""
    if "database" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("databases")
        kinds = marker.args if marker else ("sqlite", "postgresql")
        metafunc.parametrize("database", [pytest.param(k, marks=pytest.mark.postgres) if k == "postgresql" else k
                                          for k in kinds])


@pytest.fixture
def database_url(database, store_templates, tmp_path) -> str:
    """A fresh store of its own, migrated: SQLite in tmp_path, or a new database on the suite's PostgreSQL
    (both copied from the migrated template, not migrated again)."""
    return store_templates.copy(database, tmp_path)


@pytest.fixture
def settings(tmp_path, database_url) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=database_url, catalog_dir=REPO_ROOT / "catalog",
                    expectations_dir=REPO_ROOT / "expectations", progress="never")


@pytest.fixture
def filled_store(database, store_templates, tmp_path) -> Callable[[str, Callable[[Settings], object]], Settings]:
    """`filled_store(key, fill)`: settings of a store of this test's own, a copy of the one `fill(settings)`
    built once per session and database for `key` (e.g. a synthetic delivery imported and refreshed)."""

    def make(key: str, fill: Callable[[Settings], object]) -> Settings:
        url = store_templates.copy(database, tmp_path, key, fill)
        return Settings(data_dir=tmp_path / "var", database_url=url, catalog_dir=REPO_ROOT / "catalog",
                        expectations_dir=REPO_ROOT / "expectations", progress="never")

    return make


@pytest.fixture(scope="session")
def synthetic_delivery(tmp_path_factory) -> Callable[..., SynthResult]:
    """`synthetic_delivery(**params)`: ldj.synth.generate's delivery for these parameters, written once per
    session (the same parameters give the same files). Read it, never change it: copy it first."""
    made: dict[str, SynthResult] = {}

    def make(**params) -> SynthResult:
        key = repr(sorted(params.items()))
        if key not in made:
            made[key] = generate(tmp_path_factory.mktemp("delivery"), **{"catalog_dir": REPO_ROOT / "catalog", **params})
        return made[key]

    return make


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
    # Passwords hashed at 2^10 instead of 2^17: 1 ms instead of 0.3 s; a hash carries its own cost, so
    # checking one is the same code either way (test_governance checks the default cost).
    monkeypatch.setenv("LDJ_PASSWORD_HASH_COST", "10")
    get_settings.cache_clear()  # settings from this test's environment, not an earlier test's
    yield
    get_settings.cache_clear()
