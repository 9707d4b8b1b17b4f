"""Workspace benchmark: login to a first read inside the workspace, and approval to a ready workspace.

    python bench/workspace.py                 # 20,000 questionnaires, 3 runs of each measure
    python bench/workspace.py --runs 1        # quick

A fresh hub from hub/jupyterhub_config.py (LDJ logins, the local spawner, the data service) runs on free
loopback ports in a temporary folder (tests/portalserver.py) and is stopped by PID at the end.

- spawn: the researcher logs in through the login form and presses start (GET /hub/spawn, as the
  browser does); the workspace becomes ready; a kernel is started in it through the server's REST API and
  runs `intake.from_yaml_file(os.environ["LDJ_CATALOG"])["trajectories"].read()` with the workspace's own
  token: the clock stops when that first read returns its rows from inside the workspace.
- approval -> workspace: with the researcher's workspace stopped and a new request reviewed, the clock
  starts at the steward's decision (project and grants), then the researcher starts the workspace; it
  stops when the workspace is ready and its catalogue lists the newly granted entry.
The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

CRITERIA = {"aim_question": "Benchmark", "fit_with_aims": "Benchmark", "answerable_with_ldj": "Benchmark",
            "analyses": "Benchmark", "practical_relevance": "Benchmark", "researchers": "Benchmark"}
PASSWORD = "bench workspace password"
READ = ("import os, intake\n"
        "frame = intake.from_yaml_file(os.environ['LDJ_CATALOG'])['trajectories'].read()\n"
        "print('ROWS', len(frame))")


def approve(gov, engine, entries: dict, catalogue, until: date, decide: bool = True):
    request = gov.create_request(engine, "res", title="Benchmark", applicant_organisation="ORG01", sejn_member=True,
                                 criteria=CRITERIA, entries=entries, members=[], access_from=date.today(),
                                 access_until=until, catalogue=catalogue)
    gov.submit(engine, request, "res")
    gov.start_review(engine, request, "steward")
    for reviewer in ("apo1", "apo2"):
        gov.review(engine, request, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
    return gov.decide(engine, request, "steward") if decide else request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questionnaires", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from portalserver import make_stack

    from ldj import governance as gov
    from ldj import store
    from ldj.catalogue import load_entries, refresh_snapshots
    from ldj.refresh import import_delivery
    from ldj.settings import Settings
    from ldj.synth import generate

    with tempfile.TemporaryDirectory(prefix="ldj-bench-workspace-") as tmp:
        root = Path(tmp)
        hub = make_stack(root)
        settings = Settings(data_dir=hub.data_dir, catalog_dir=REPO / "catalog",
                            expectations_dir=REPO / "expectations", progress="never")
        generate(root / "d", questionnaires=args.questionnaires, instruments=["cbcl_6_18"], invalid_share=0.0, seed=5)
        import_delivery([root / "d"], settings=settings, refresh_views=False)
        engine = store.get_engine(settings)
        refresh_snapshots(engine, settings)  # as `ldj ingest` does after loading
        entries = load_entries(settings.catalog_dir)
        catalogue = {e.id: set(e.variable_names) for e in entries.values()}
        gov.add_user(engine, "steward", display_name="s", organisation="SEJN", roles=["steward"])
        for name, org in (("apo1", "A"), ("apo2", "B")):
            gov.add_user(engine, name, display_name=name, organisation=org, roles=["apo"])
        gov.add_user(engine, "res", display_name="r", organisation="ORG01", roles=["researcher"], password=PASSWORD)
        approve(gov, engine, {"trajectories": ["trajectory", "client", "intervention", "start_date"]}, catalogue,
                date.today() + timedelta(days=30))

        t = time.perf_counter()
        hub.start()
        hub_start_s = time.perf_counter() - t
        spawn, login, ready, approval = [], [], [], []
        rows = 0
        try:
            token = hub.user_token("res", PASSWORD)  # the researcher's own token, for the workspace server's API
            for run in range(args.runs):
                t0 = time.perf_counter()
                session = hub.login("res", PASSWORD)
                t_login = time.perf_counter()
                hub.spawn(session, "res")  # the start button
                t_ready = time.perf_counter()
                out = hub.execute("res", token, READ)
                spawn.append(time.perf_counter() - t0)
                login.append(t_login - t0)
                ready.append(t_ready - t0)
                rows = int(out.split("ROWS")[1])
                assert (hub.home("res") / "01_catalogus.ipynb").exists(), "starter notebooks not copied"
                hub.stop_server("res")

            for run in range(args.runs):
                entry = "cbcl_6_18_pairs"
                variables = ["trajectory", "informant", "total_problems_start", "total_problems_end"]
                request = approve(gov, engine, {entry: variables}, catalogue, date.today() + timedelta(days=30 + run),
                                  decide=False)
                catalogue_file = hub.home("res") / "ldj-catalogus.yaml"
                t0 = time.perf_counter()
                gov.decide(engine, request, "steward")
                hub.spawn(hub.login("res", PASSWORD), "res")
                held = yaml.safe_load(catalogue_file.read_text())["entries"]
                approval.append(time.perf_counter() - t0)
                assert entry in held, f"the new entry is not in the workspace: {sorted(held)}"
                hub.stop_server("res")
                for grant in gov.active_grants(engine, "res"):  # the next run starts from one grant again
                    if grant.entry == entry:
                        gov.revoke_grant(engine, grant.id, "steward")
        finally:
            hub.stop()

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"store: {args.questionnaires:,} CBCL questionnaires; hub with proxy and data service up in {hub_start_s:.1f} s")
    print(f"login -> first read inside the workspace ({rows:,} rows of trajectories), {args.runs} runs: "
          f"median {statistics.median(spawn):.2f} s (login {statistics.median(login):.2f} s, "
          f"workspace ready {statistics.median(ready):.2f} s); runs: {', '.join(f'{s:.2f}' for s in spawn)}")
    print(f"approval -> ready workspace holding the new entry, {args.runs} runs: median "
          f"{statistics.median(approval):.2f} s; runs: {', '.join(f'{s:.2f}' for s in approval)}")
    print(f"RESULT spawn_s={statistics.median(spawn):.3f} approval_to_workspace_s={statistics.median(approval):.3f}")


if __name__ == "__main__":
    main()
