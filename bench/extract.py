"""Extract benchmark: approval to first read, building a large extract, data-service latency.

    python bench/extract.py                          # 1,000,000 CBCL questionnaires (import ~1.5 min)
    python bench/extract.py --questionnaires 100000  # quick

The real hub/jupyterhub_config.py with configurable-http-proxy runs the data service (the test harness in
tests/portalserver.py). Times:
- approval: the steward's decision (project and grants in one transaction), then the researcher's
  first successful read of an entry through the hub, with their own token;
- extract: building the project's extract of `cbcl_6_18_scores` (every variable): cut from the
  entry's snapshot at the current data version (made once after each import, timed separately),
  project pseudonyms, Parquet, manifest;
- latency: repeated granted reads of an extract through the proxy (cached per data version).
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

CRITERIA = {"aim_question": "Benchmark", "fit_with_aims": "Benchmark", "answerable_with_ldj": "Benchmark",
            "analyses": "Benchmark", "practical_relevance": "Benchmark", "researchers": "Benchmark"}
PASSWORD = "bench extract password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questionnaires", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=50)
    args = parser.parse_args()

    from portalserver import make_stack

    from ldj import governance as gov
    from ldj import store
    from ldj.catalogue import load_entries, refresh_snapshots
    from ldj.extracts import build_extract
    from ldj.ingest import Ingestor
    from ldj.instruments import load_instruments
    from ldj.settings import Settings
    from ldj.synth import generate

    with tempfile.TemporaryDirectory(prefix="ldj-bench-extract-") as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "var", catalog_dir=REPO / "catalog",
                            expectations_dir=REPO / "expectations", progress="never")
        t0 = time.perf_counter()
        generate(root / "d", questionnaires=args.questionnaires, instruments=["cbcl_6_18"], invalid_share=0.0, seed=3)
        files = sorted((root / "d").glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name))
        Ingestor(settings).ingest_many(files)
        setup_s = time.perf_counter() - t0
        engine = store.get_engine(settings)
        t = time.perf_counter()
        refresh_snapshots(engine, settings)  # as `ldj ingest` does after loading
        snapshots_s = time.perf_counter() - t
        entries, instruments = load_entries(settings.catalog_dir), load_instruments(settings.catalog_dir)
        catalogue = {e.id: set(e.variable_names) for e in entries.values()}
        gov.add_user(engine, "steward", display_name="s", organisation="SEJN", roles=["steward"])
        for name, org in (("apo1", "A"), ("apo2", "B")):
            gov.add_user(engine, name, display_name=name, organisation=org, roles=["apo"])
        gov.add_user(engine, "res", display_name="r", organisation="ORG01", roles=["researcher"], password=PASSWORD)

        hub = make_stack(root)
        hub.start()
        try:
            token = hub.user_token("res", PASSWORD)
            request = gov.create_request(
                engine, "res", title="Benchmark", applicant_organisation="ORG01", sejn_member=True, criteria=CRITERIA,
                entries={"trajectories": ["trajectory", "client", "intervention", "age_at_start"]}, members=[],
                access_from=date.today(), access_until=date.today() + timedelta(days=30), catalogue=catalogue)
            gov.submit(engine, request, "res")
            gov.start_review(engine, request, "steward")
            for reviewer in ("apo1", "apo2"):
                gov.review(engine, request, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")

            t_approve = time.perf_counter()
            project = gov.decide(engine, request, "steward").project_id
            grants_s = time.perf_counter() - t_approve
            path = f"/services/ldj-data/api/projects/{project}/entries/trajectories.parquet"
            status, headers, body = hub.request(path, token)
            approval_to_read_s = time.perf_counter() - t_approve
            assert status == 200
            rows_first = int(headers["X-LDJ-Rows"])

            latencies = []
            for _ in range(args.reads):
                t = time.perf_counter()
                hub.request(path, token)
                latencies.append((time.perf_counter() - t) * 1000)
        finally:
            hub.stop()

        entry = entries["cbcl_6_18_scores"]
        t = time.perf_counter()
        extract_path, manifest = build_extract(engine, settings, project, entry, entry.variable_names, instruments)
        extract_s = time.perf_counter() - t
        size_mb = extract_path.stat().st_size / 2**20

    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[18]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"store: {args.questionnaires:,} CBCL questionnaires synthesised and imported in {setup_s:.0f} s; "
          f"entry snapshots for the new data version (after the import, once) in {snapshots_s:.1f} s")
    print(f"approval -> grants: {grants_s * 1000:.0f} ms; approval -> first read through the hub: "
          f"{approval_to_read_s:.2f} s ({rows_first:,} rows of trajectories)")
    print(f"extract of cbcl_6_18_scores, {len(entry.variable_names)} variables: {manifest.rows:,} rows in "
          f"{extract_s:.2f} s ({manifest.rows / extract_s:,.0f} rows/s, {size_mb:.1f} MB Parquet)")
    print(f"granted read through the proxy, {args.reads} reads: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"RESULT approval_to_read_s={approval_to_read_s:.3f} extract_1m_s={extract_s:.3f} read_p95_ms={p95:.1f}")


if __name__ == "__main__":
    main()
