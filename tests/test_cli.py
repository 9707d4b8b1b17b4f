"""The steward's command line, end to end, as `make demo` uses it.

The commands run in this process through click's CliRunner (seconds less per call than starting
`ldj`), with the settings from the environment as the command sees them; `ldj serve` runs as a real
process, since what it is tested for is the processes it starts and stops.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from ldj.cli import main
from ldj.settings import get_settings

LDJ = Path(sys.executable).parent / "ldj"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def ldj(*args: str, data_dir: Path, check: bool = True) -> Ran:
    """`ldj ARGS` with LDJ_DATA_DIR=data_dir. An exception the command let through shows in stderr as a
    traceback, as the real command would print it."""
    get_settings.cache_clear()
    result = CliRunner().invoke(main, list(args), env={"LDJ_DATA_DIR": str(data_dir), "LDJ_PROGRESS": "never"})
    get_settings.cache_clear()
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    ran = Ran(result.exit_code, result.stdout, stderr)
    if check:
        assert ran.returncode == 0, ran.stderr
    return ran


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    data = root / "var"
    ldj("synth", str(root / "delivery"), "--questionnaires", "3000", "--organisations", "4", "--seed", "2",
        data_dir=data)
    first = ldj("ingest", str(root / "delivery"), "--delivered-by", "test", data_dir=data)
    return root, data, first


def test_synth_then_ingest_reports_every_file(demo):
    root, _, first = demo
    files = sorted((root / "delivery").glob("*.csv"))
    assert len(files) >= 8
    for f in files:
        assert f"{f.name}: " in first.stdout
    assert "geladen:" in first.stdout and "in quarantaine:" in first.stdout
    assert "Traceback" not in first.stderr


def test_second_ingest_changes_nothing(demo):
    root, data, _ = demo
    before = ldj("summary", data_dir=data).stdout
    again = ldj("ingest", str(root / "delivery"), data_dir=data)
    assert again.stdout.count("al geïmporteerd") == len(list((root / "delivery").glob("*.csv")))
    assert ldj("summary", data_dir=data).stdout == before


def test_summary_quarantine_batches_and_export(demo):
    root, data, _ = demo
    summary = ldj("summary", data_dir=data).stdout
    assert summary.startswith("Organisaties: 4 ")
    assert "cbcl_6_18" in summary or "sdq" in summary
    listing = ldj("quarantine", data_dir=data).stdout
    assert "levering" in listing.splitlines()[0]
    assert len(listing.splitlines()) > 1
    batches = ldj("batches", data_dir=data).stdout.splitlines()
    assert len(batches) == len(list((root / "delivery").glob("*.csv")))
    assert all(" loaded " in line for line in batches)
    out = root / "export.csv"
    ldj("quarantine", "--export", str(out), data_dir=data)
    frame = pd.read_csv(out, sep=";", encoding="utf-8-sig", dtype=str)
    assert len(frame) > 0 and {"Bestand", "Regel", "Probleem"} <= set(frame.columns)


def test_settings_and_instruments_listings(tmp_path):
    settings = ldj("settings", data_dir=tmp_path / "v").stdout
    assert "LDJ_DATA_DIR" in settings and str(tmp_path / "v") in settings
    instruments = ldj("instruments", data_dir=tmp_path / "v").stdout
    assert {"cbcl_6_18", "sdq", "obvl", "kidscreen10", "satisfaction"} <= {l.split()[0] for l in instruments.splitlines()}


def test_catalog_list_show_and_build(demo):
    root, data, _ = demo
    listing = ldj("catalog", "list", data_dir=data).stdout.splitlines()
    ids = {line.split()[0] for line in listing[1:]}
    assert {"trajectories", "cbcl_6_18_scores", "sdq_pairs", "satisfaction_scores"} <= ids
    trajectories = next(line for line in listing if line.startswith("trajectories "))
    assert int(trajectories.split()[1]) > 0
    shown = ldj("catalog", "show", "trajectories", data_dir=data).stdout
    assert "Trajecten met cliëntkenmerken" in shown and "age_at_start" in shown
    missing = ldj("catalog", "show", "bestaat_niet", data_dir=data, check=False)
    assert missing.returncode != 0 and "onbekend catalogusitem" in missing.stderr
    built = ldj("catalog", "build", "--out", str(root / "cat"), data_dir=data).stdout
    assert (root / "cat" / "catalog.yaml").exists() and "catalog.yaml" in built


REQUEST = """title: "MST en LVB"
applicant_organisation: ORG01
sejn_member: true
criteria:
  aim_question: "Werkt MST even goed voor jongeren met LVB?"
  fit_with_aims: "Wat werkt voor wie."
  answerable_with_ldj: "CBCL-paren en trajecten."
  analyses: "Regressie op de verandering in T-score."
  practical_relevance: "Teams kiezen beter tussen MST en IAG."
  researchers: "Promovendus met begeleider."
entries:
  trajectories: [trajectory, client, intervention, lvb]
access_from: 2026-01-01
access_until: 2099-12-31
"""


def test_apo_workflow_audit_and_user_catalogue_from_the_command_line(demo, tmp_path):
    _, data, _ = demo
    for name, org, role in (("stew", "SEJN", "steward"), ("a1", "UvA", "apo"), ("a2", "RU", "apo"),
                            ("res", "ORG01", "researcher"), ("a3", "ORG01", "apo")):
        ldj("users", "add", name, "--display-name", name, "--organisation", org, "--role", role, data_dir=data)
    (tmp_path / "req.yaml").write_text(REQUEST)
    assert "aanvraag 1 aangemaakt" in ldj("apo", "new", str(tmp_path / "req.yaml"), "--as", "res", data_dir=data).stdout
    ldj("apo", "submit", "1", "--as", "res", data_dir=data)
    again = ldj("apo", "submit", "1", "--as", "res", data_dir=data, check=False)
    assert again.returncode == 1 and "kan niet naar 'ingediend'" in again.stderr and "Traceback" not in again.stderr
    ldj("apo", "start-review", "1", "--as", "stew", data_dir=data)
    conflict = ldj("apo", "review", "1", "--as", "a3", "--scores", "5,5,5,5,5,5", "--vote", "approve",
                   data_dir=data, check=False)
    assert conflict.returncode == 1 and "Traceback" not in conflict.stderr
    for reviewer in ("a1", "a2"):
        ldj("apo", "review", "1", "--as", reviewer, "--scores", "4,4,3,4,5,4", "--vote", "approve", data_dir=data)
    assert "project 1" in ldj("apo", "decide", "1", "--as", "stew", data_dir=data).stdout
    history = ldj("apo", "show", "1", data_dir=data).stdout
    assert "in_review -> approved  door stew" in history
    out = tmp_path / "cat.yaml"
    assert "1 toekenningen" in ldj("catalog", "for-user", "res", "--out", str(out), data_dir=data).stdout
    assert "trajectories" in out.read_text() and "JUPYTERHUB_API_TOKEN" in out.read_text()
    assert ldj("audit", data_dir=data).returncode == 0

    # an amendment, then closing the project (a report too short is refused)
    ldj("users", "add", "extra", "--display-name", "extra", "--organisation", "ORG01", "--role", "researcher",
        data_dir=data)
    made = ldj("apo", "amend", "1", "--as", "res", "--add-member", "extra", "--add-entry",
               "cbcl_6_18_scores:client,total_problems_t", "--reason", "Een tweede promovendus en de CBCL erbij.",
               data_dir=data)
    assert "wijzigingsaanvraag 2" in made.stdout
    assert "2 amendment" in ldj("apo", "list", data_dir=data).stdout
    short = tmp_path / "kort.txt"
    short.write_text("Te kort.")
    refused = ldj("apo", "close", "1", "--as", "res", "--report", str(short), data_dir=data, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    report = tmp_path / "eindrapport.txt"
    report.write_text("MST werkt voor jongeren met een LVB even goed als zonder; teams hoeven niet om te schakelen.")
    assert "project 1 gesloten" in ldj("apo", "close", "1", "--as", "res", "--report", str(report), data_dir=data).stdout



def test_demo_accounts_and_serve_start_and_stop_cleanly(demo, tmp_path):
    import signal
    import time
    import urllib.request

    import psutil
    import requests

    from conftest import free_port

    _, data, _ = demo
    first = ldj("demo-accounts", data_dir=data).stdout
    assert "wachtwoord voor allemaal" in first and "onderzoeker" in first and "praktijk" in first
    assert ldj("demo-accounts", data_dir=data).stdout == first  # a second run changes nothing
    assert "in_review" in ldj("apo", "list", data_dir=data).stdout  # the APO pages have work to show
    assert "wacht op controle-a" in ldj("airlock", "demo", data_dir=data).stdout  # so do the checkers'
    assert "al een vrijgaveverzoek" in ldj("airlock", "demo", data_dir=data).stdout
    assert "ingediend" in ldj("airlock", "list", "--as", "controle-a", data_dir=data).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDJ_")}
    ports = {f"LDJ_{k}": str(free_port()) for k in ("HUB_PORT", "HUB_API_PORT", "PROXY_API_PORT", "DATA_SERVICE_PORT",
                                                          "PORTAL_PORT")}
    homes = Path(tempfile.mkdtemp(prefix="ldj-cli-homes-"))  # workspace accounts pass through to their homes
    homes.chmod(0o711)
    env.update(ports, LDJ_DATA_DIR=str(data), HOME=str(tmp_path), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               LDJ_HOMES_DIR=str(homes / "homes"))
    # Output to a file, not a pipe: the hub and its services log into it, and a pipe nobody reads fills
    # up and blocks their logging (and so their shutdown).
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen([str(LDJ), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['LDJ_HUB_PORT']}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/hub/api/", timeout=2)
                break
            except OSError:
                assert serve.poll() is None, log.read_text(errors="replace")[-2000:]
                time.sleep(0.3)
        deadline = time.monotonic() + 60
        while requests.get(f"{url}/", timeout=5).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.3)  # the hub URL opens the portal once the portal service is up
        assert requests.get(f"{url}/", timeout=5).url.endswith("/services/ldj-portal/")
        children = psutil.Process(serve.pid).children(recursive=True)
        assert len(children) >= 4  # the hub, its proxy, the data service, the portal
        session = requests.Session()
        page = session.get(f"{url}/hub/login")
        xsrf = session.cookies.get("_xsrf")
        response = session.post(f"{url}/hub/login", data={"username": "onderzoeker", "password": "demo-ldj-2026",
                                                          "_xsrf": xsrf}, allow_redirects=False)
        assert page.status_code == 200 and response.status_code == 302, response.text[:300]
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left running after Ctrl-C: {alive}"
    shutil.rmtree(homes, ignore_errors=True)
