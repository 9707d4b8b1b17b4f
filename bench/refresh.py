"""Refresh after a delivery: how long until a delivery is in every view, against a full rebuild.

    .venv/bin/python bench/refresh.py                    # a store of 10,000,000 questionnaires
    .venv/bin/python bench/refresh.py --size 200000      # a few minutes
    .venv/bin/python bench/refresh.py --size 1000000 --delivery 10000

On a throw-away PostgreSQL server (loopback port, stopped by its PID at the end):
1. a migrated store is bulk-loaded with `--size` questionnaires (`bench/factsheet.py bulk_load`, BENCH
   ONLY: rows written straight into the tables, one loaded import batch per organisation ORG00…ORG24,
   plausible scores, genders and ages so the cube, the pairs and the case-mix model have values to
   work on), then `ANALYZE`;
2. one full refresh builds every view: the state before the delivery;
3. a real delivery of `--delivery` questionnaires for ONE organisation, ORG01, is generated with
   `ldj.synth.generate` (with one organisation it names it ORG01 and gives it every instrument;
   ORG01 exists in the bulk-loaded store, so its cube part must be rebuilt and the 24 others reused;
   the delivery's pseudonyms are keyed hashes, so they never meet the bulk rows' `c…`/`t…` ones);
4. in a child process (as `ldj ingest` would run): `import_delivery(..., refresh_views=False)` (read,
   validate, pseudonymise, load; timed: import_s), then `refresh(...)` (the incremental refresh:
   refresh_s, per step: snapshots, cube, factsheet, ready+prune); the memory of the child and its
   helper processes is sampled (RSS and PSS summed over the tree; the PostgreSQL server not counted);
5. in another child, `refresh(..., full=True)` into a second data folder on the same store (full_s),
   measured in the same run so that the ratio holds on a noisy machine;
6. the cube and the snapshots of the two folders are compared file by file, cell for cell.

The last line is machine-readable:
`RESULT store=… delivery=… import_s=… refresh_s=… full_s=… identical=0|1 peak_rss_mb=… peak_pss_mb=…`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import sample_memory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

ORGANISATION = "ORG01"  # ldj.synth's code for the first (here only) organisation of a delivery
STEPS = {"cat_refreshed": "snapshots", "ind_cube_built": "cube", "fsp_warmed": "factsheet"}


def settings_for(data_dir: Path, database_url: str):
    from ldj.settings import Settings

    return Settings(data_dir=data_dir, database_url=database_url, catalog_dir=REPO / "catalog",
                    expectations_dir=REPO / "expectations", progress="never")


def timed_refresh(engine, settings, full: bool) -> dict:
    """`ldj.refresh.refresh`, timed per step from the steps it reports (`say`); the time after the
    last reported step is marking the version ready and pruning."""
    from ldj.refresh import refresh

    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    refresh(engine, settings, lambda key, version: marks.append((key, time.perf_counter())), full=full)
    t1 = time.perf_counter()
    steps, previous = {}, t0
    for key, at in marks:
        steps[STEPS.get(key, key)] = at - previous
        previous = at
    steps["ready+prune"] = t1 - previous
    return {"seconds": t1 - t0, "steps": steps}


def phase(args) -> dict:
    """A child process's work: `full` (a full refresh) or `delivery` (import, then incremental refresh)."""
    from ldj import store
    from ldj.refresh import import_delivery

    settings = settings_for(args.data_dir, args.database_url)
    engine = store.get_engine(settings)
    out = {}
    if args.phase == "delivery":
        t0 = time.perf_counter()
        reports = import_delivery([args.folder], settings=settings, refresh_views=False)
        out["import_s"] = time.perf_counter() - t0
        bad = [f"{r.file}: {r.status}" for r in reports if r.status != "loaded"]
        if bad:
            raise SystemExit(f"import failed: {bad}")
        out["files"] = len(reports)
        out["rows_loaded"] = sum(r.rows_loaded for r in reports)
    out.update(timed_refresh(engine, settings, full=args.phase == "full"))
    return out


def run_child(which: str, data_dir: Path, database_url: str, folder: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--phase", which, "--data-dir", str(data_dir), "--database-url", database_url]
    if folder is not None:
        cmd += ["--folder", str(folder)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    memory = sample_memory(proc, interval=0.2)
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{which} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]) | memory


def differences(a: Path, b: Path) -> list[str]:
    """What differs between two folders of views: missing files, Parquet cells, JSON values, bytes."""
    import pandas as pd

    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()} if a.is_dir() else set()
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()} if b.is_dir() else set()
    out = [f"{a.name}/{name}: only in one folder" for name in sorted(files_a ^ files_b)]
    for name in sorted(files_a & files_b):
        x, y = a / name, b / name
        if name.suffix == ".parquet":
            fx, fy = pd.read_parquet(x), pd.read_parquet(y)
            if not fx.equals(fy):
                out.append(f"{a.name}/{name}: {len(fx)} vs {len(fy)} rows, cells differ")
        elif name.suffix == ".json":
            if json.loads(x.read_text()) != json.loads(y.read_text()):
                out.append(f"{a.name}/{name}: differs")
        elif x.read_bytes() != y.read_bytes():
            out.append(f"{a.name}/{name}: bytes differ")
    return out


def line(label: str, r: dict) -> str:
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in r["steps"].items())
    return (f"{label:<34} {r['seconds']:8.1f} s  ({steps}); peak RSS {r['peak_rss_mb']:,.0f} MB, "
            f"PSS {r['peak_pss_mb']:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000, help="questionnaires in the store (default 10M)")
    parser.add_argument("--delivery", type=int, default=10_000, help="questionnaires in the delivery (default 10,000)")
    parser.add_argument("--keep", action="store_true", help="keep the data folders and the cluster's files")
    parser.add_argument("--phase", choices=["full", "delivery"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return

    import sqlalchemy as sa
    from conftest import PostgresServer
    from factsheet import bulk_load

    from ldj import paths, store
    from ldj.synth import generate

    root = Path(tempfile.mkdtemp(prefix="ldj-bench-refresh-"))
    pg = PostgresServer(root / "pg")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    try:
        pg.start()
        url = pg.create_database("ldj_bench_refresh")
        live, reference = root / "data", root / "data-full"
        engine = store.get_engine(settings_for(live, url))

        def questionnaires() -> int:
            with engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(store.measurements)).scalar()

        t0 = time.perf_counter()
        bulk_load(engine, args.size, realistic=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        size = questionnaires()
        print(f"store: {size:,} questionnaires bulk-loaded (bench only) in {time.perf_counter() - t0:.1f} s",
              flush=True)
        before = run_child("full", live, url)
        print(line("full refresh before the delivery:", before), flush=True)

        made = generate(root / "delivery", questionnaires=args.delivery, organisations=1, seed=5,
                        invalid_share=0.0, catalog_dir=REPO / "catalog")
        if list(made.organisations) != [ORGANISATION]:
            raise SystemExit(f"the delivery is for {made.organisations}, expected {ORGANISATION}")
        print(f"delivery: {made.questionnaires:,} questionnaires of {ORGANISATION} in {len(made.paths)} files",
              flush=True)
        delivered = run_child("delivery", live, url, root / "delivery")
        delivery = questionnaires() - size
        print(f"import (read, validate, load):     {delivered['import_s']:8.1f} s  ({delivered['files']} files, "
              f"{delivered['rows_loaded']:,} rows, {delivery:,} questionnaires)", flush=True)
        print(line("incremental refresh:", delivered), flush=True)
        full = run_child("full", reference, url)
        print(line("full rebuild (second data folder):", full), flush=True)

        version = store.data_version(engine)[0]
        diff = []
        for folder in (paths.cube_folder, paths.snapshot_folder):
            a, b = folder(live, version), folder(reference, version)
            if not (a.is_dir() and b.is_dir()):
                diff.append(f"{a.parent.name}/{version}: missing in a data folder")
            diff += differences(a, b)
        compared = sum(1 for f in (paths.cube_folder, paths.snapshot_folder)
                       for p in f(live, version).rglob("*") if p.is_file())
        print(f"incremental vs full: {compared} files of the cube and the snapshots compared, "
              f"{len(diff)} differ" + "".join(f"\n  {d}" for d in diff[:20]))
        engine.dispose()
    finally:
        pg.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end; ratio full/incremental "
          f"{full['seconds'] / delivered['seconds']:.1f}")
    print(f"RESULT store={size} delivery={delivery} import_s={delivered['import_s']:.1f} "
          f"refresh_s={delivered['seconds']:.1f} full_s={full['seconds']:.1f} identical={int(not diff)} "
          f"peak_rss_mb={delivered['peak_rss_mb']:.0f} peak_pss_mb={delivered['peak_pss_mb']:.0f}")


if __name__ == "__main__":
    main()
