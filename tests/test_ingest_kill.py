"""An import killed with SIGKILL in the middle of a batch leaves the store as if it never ran."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ldj import store
from ldj.ingest import Ingestor
from ldj.synth import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_delivery(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("big")
    generate(out, questionnaires=40_000, organisations=1, instruments=["cbcl_6_18"], invalid_share=0.0, seed=3)
    return next(out.glob("*cbcl*"))


def counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            "measurements": conn.execute(sa.text("SELECT count(*) FROM measurements")).scalar_one(),
            "batches": conn.execute(sa.text("SELECT count(*) FROM import_batches")).scalar_one(),
            "quarantine": conn.execute(sa.text("SELECT count(*) FROM quarantine")).scalar_one(),
        }


def test_sigkill_mid_batch_leaves_nothing_then_reimport_lands_whole(settings, big_delivery):
    engine = store.get_engine(settings)  # migrate first, so the child only imports
    env = {**os.environ, "LDJ_DATA_DIR": str(settings.data_dir), "LDJ_DATABASE_URL": settings.resolved_database_url,
           "LDJ_INGEST_CHUNK_ROWS": "2000", "LDJ_PROGRESS": "always"}
    child = subprocess.Popen([sys.executable, "-m", "ldj.cli", "ingest", str(big_delivery)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    deadline = time.monotonic() + 120
    try:
        # The progress bar reports rows as chunks land inside the open transaction: kill after a few.
        while time.monotonic() < deadline and child.poll() is None:
            ready, _, _ = select.select([child.stderr], [], [], 0.5)
            if ready:
                seen += os.read(child.stderr.fileno(), 4096)
                if b"6000/" in seen or b"8000/" in seen:
                    break
        assert child.poll() is None, f"import finished before it could be killed: {seen[-300:]!r}"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert counts(engine) == {"measurements": 0, "batches": 0, "quarantine": 0}

    report = Ingestor(settings).ingest(big_delivery)
    assert report.status == "loaded" and report.rows_loaded == report.rows_total > 30_000
    assert counts(engine)["measurements"] == report.rows_loaded


def test_killing_the_import_leaves_no_helper_process(sqlite_settings, tmp_path):
    """With several files the transform runs in a helper process; it must not outlive the import."""
    import psutil

    folder = tmp_path / "delivery"
    generate(folder, questionnaires=60_000, organisations=6, instruments=["cbcl_6_18"], invalid_share=0.0, seed=5)
    env = {**os.environ, "LDJ_DATA_DIR": str(sqlite_settings.data_dir), "LDJ_PROGRESS": "always"}
    child = subprocess.Popen([sys.executable, "-m", "ldj.cli", "ingest", str(folder)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        helpers = []
        # The helper forks once the import has imported Great Expectations (so helpers inherit it): seconds
        # after the start on an idle machine, a minute and more on a busy one.
        deadline = time.monotonic() + 120
        while not helpers and time.monotonic() < deadline and child.poll() is None:
            helpers = psutil.Process(child.pid).children()
            time.sleep(0.1)
        assert helpers, "no helper process was started"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        gone, alive = psutil.wait_procs(helpers, timeout=10)
        assert not alive, f"helper outlived the import: {alive}"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_helper_busy_in_a_long_transform_dies_with_a_killed_import():
    """The helper stops with its parent even when it never reaches its next hand-over (it holds copies of
    the parent's sockets: alive, it would keep a killed import's database transaction open)."""
    import psutil

    script = ("import time\nfrom ldj.ingest import _in_helper_process\n"
              "def forever():\n    time.sleep(3600)\n    yield 1\n"
              "next(_in_helper_process(forever()))\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline, helpers = time.monotonic() + 60, []
        while not helpers and time.monotonic() < deadline:
            helpers = psutil.Process(parent.pid).children()
            time.sleep(0.1)
        assert helpers, "no helper process was started"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        _, alive = psutil.wait_procs(helpers, timeout=10)
        assert not alive, f"helper outlived the import: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
