"""Dashboard benchmark: query time of the main views (`ldj.indicators.dashboard`) on SQLite and PostgreSQL.

    python bench/dashboards.py            # 112,000 and 10,000,000 questionnaires, both databases
    python bench/dashboards.py --quick    # 112,000 only; prints nan for 10M
    python bench/dashboards.py --large 1000000   # the large size to use instead of 10M

Per size and database: a fresh store; 112,000 synthetic questionnaires (all instruments, 25
organisations) go through the real import (`Ingestor`, as `ldj ingest` does). Larger sizes are then
made by BULK COPY INSIDE THE DATABASE (bench only): every client, trajectory and measurement is
copied k times with a suffix on its pseudonyms (`INSERT ... SELECT`), which keeps the distributions
and skips 15+ minutes of validation nobody measures here. Then the cube is built (timed) and the
main views are timed: 24 views (instrument/scale/informant, with and without filters on
intervention, age group, gender, start year and team) for the `praktijk` member of ORG01, each
called a few times after one warm-up call per view. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
BASE = 112_000


def _load(settings, tmp: Path) -> None:
    from ldj.ingest import Ingestor
    from ldj.synth import generate

    folder = tmp / "delivery"
    if not folder.exists():
        generate(folder, questionnaires=BASE, organisations=25, seed=1, invalid_share=0.0,
                 catalog_dir=REPO / "catalog")
    files = sorted(folder.glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name))
    reports = Ingestor(settings).ingest_many(files)
    bad = [r for r in reports if r.status != "loaded"]
    if bad:
        raise SystemExit(f"import failed: {bad[0].file}")


def _replicate(engine, copies: int) -> None:
    """Bench only: k extra copies of every client, trajectory and measurement, pseudonyms suffixed."""
    import sqlalchemy as sa

    from ldj import store

    cat = (lambda a, b: f"({a} || {b})")
    pg = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for k in range(1, copies + 1):
            sfx = f"'-{k}'"
            days = (k * 53) % 1500  # spread copies over other years and ages, so the cube grows as real data would
            shift = (lambda c: f"({c} + {days})") if pg else (lambda c: f"date({c}, '+{days} days')")
            change = {"start_date": shift("start_date"), "end_date": shift("end_date"), "date": shift("date"),
                      "age_at_start": f"((age_at_start + {k}) % 19)"}
            for table, keys in (("clients", ("pseudonym",)), ("trajectories", ("pseudonym", "client")),
                                ("measurements", ("pseudonym", "client", "trajectory"))):
                cols = [c.name for c in store.metadata.tables[table].columns]
                select = ", ".join(cat(c, sfx) if c in keys else change.get(c, c) for c in cols)
                conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table} "
                                     f"WHERE {keys[0]} NOT LIKE '%-%'"))
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")


VIEWS = [
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent"),
    dict(instrument="cbcl_6_18", scale="externalising", informant="parent"),
    dict(instrument="cbcl_6_18", scale="internalising", informant="parent", intervention="iag"),
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent", age_group="12-17"),
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent", gender="female"),
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent", start_year=2020),
    dict(instrument="cbcl_6_18", scale="aggressive", informant="parent", intervention="pleegzorg", gender="male"),
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent", team="Team West"),
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent", team="Team Wonen", start_year=2022),
    dict(instrument="sdq", scale="total_difficulties", informant="parent"),
    dict(instrument="sdq", scale="total_difficulties", informant="teacher"),
    dict(instrument="sdq", scale="emotional", informant="youth", age_group="12-17"),
    dict(instrument="sdq", scale="prosocial", informant="parent", gender="female", intervention="vib"),
    dict(instrument="ysr", scale="total_problems", informant="youth"),
    dict(instrument="trf", scale="total_problems", informant="teacher", team="Team Regio"),
    dict(instrument="cbcl_1_5", scale="total_problems", informant="parent"),
    dict(instrument="obvl", scale="total", informant="parent"),
    dict(instrument="obvl", scale="total", informant="parent", intervention="ambulante_gezinsbehandeling"),
    dict(instrument="kidscreen10", scale="total", informant="youth"),
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent", age_group="6-11", gender="male",
         start_year=2019),
    dict(instrument="cbcl_6_18", scale="rule_breaking", informant="parent", team="Team Behandeling"),
    dict(instrument="sdq", scale="hyperactivity", informant="parent", start_year=2021),
    dict(instrument="cbcl_6_18", scale="total_problems", informant="parent", intervention="dagbehandeling",
         age_group="12-17"),
    dict(instrument="ysr", scale="externalising", informant="youth", gender="female"),
]


def _time_views(settings, engine, repeats: int) -> dict:
    from ldj import governance as gov
    from ldj import indicators as ind

    try:
        gov.add_user(engine, "praktijk", display_name="Pim", organisation="ORG01", roles=["member"])
    except gov.ValidationError:
        pass
    t0 = time.perf_counter()
    ind.refresh_cube(engine, settings)
    build_s = time.perf_counter() - t0
    viewer = gov.get_user(engine, "praktijk")
    instruments = ind.options(viewer, engine, settings)["instruments"]
    views = [ind.View(**v) for v in VIEWS if v["scale"] in instruments.get(v["instrument"], {}).get("scales", ())]
    cold = []
    for v in views:  # first call per view: reads its cube slice from Parquet
        t = time.perf_counter()
        ind.dashboard(v, viewer, engine, settings)
        cold.append((time.perf_counter() - t) * 1000)
    warm = []
    for _ in range(repeats):
        for v in views:
            t = time.perf_counter()
            ind.dashboard(v, viewer, engine, settings)
            warm.append((time.perf_counter() - t) * 1000)
    return {"build_s": build_s, "views": len(views), "p50": float(np.percentile(warm, 50)),
            "p95": float(np.percentile(warm, 95)), "cold_p50": float(np.percentile(cold, 50)),
            "cold_max": float(np.max(cold))}


def run(size: int, database: str, root: Path, repeats: int, pg=None) -> dict:
    from ldj import store
    from ldj.settings import Settings

    data_dir = root / f"{database}-{size}"
    url = None
    if database == "postgresql":
        url = pg.create_database(f"bench_{size}_{os.getpid()}")
    settings = Settings(data_dir=data_dir, database_url=url, catalog_dir=REPO / "catalog",
                        expectations_dir=REPO / "expectations", progress="never")
    engine = store.get_engine(settings)
    t0 = time.perf_counter()
    _load(settings, root)
    load_s = time.perf_counter() - t0
    copies = max(0, round(size / BASE) - 1)
    t0 = time.perf_counter()
    if copies:
        _replicate(engine, copies)
    copy_s = time.perf_counter() - t0
    with engine.connect() as conn:
        n = conn.exec_driver_sql("SELECT count(*) FROM measurements").scalar()
    result = _time_views(settings, engine, repeats)
    result.update(database=database, size=size, questionnaires=n, load_s=load_s, copy_s=copy_s)
    engine.dispose()
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="112,000 only (nan for the large size)")
    parser.add_argument("--large", type=int, default=10_000_000, help="the large size (default 10M)")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()

    from conftest import PostgresServer

    root = Path(tempfile.mkdtemp(prefix="ldj-bench-dash-"))
    databases = args.databases.split(",")
    pg = None
    if "postgresql" in databases:
        pg = PostgresServer(Path(tempfile.mkdtemp(prefix="ldj-bench-pg-")) / "pg")
        pg.start()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}")
    results = []
    try:
        for size in [BASE] + ([] if args.quick else [args.large]):
            for database in databases:
                r = run(size, database, root, args.repeats, pg)
                results.append(r)
                print(f"{database:<10} {r['questionnaires']:>10,} questionnaires  load {r['load_s']:7.1f} s  "
                      f"copy {r['copy_s']:7.1f} s  cube {r['build_s']:7.1f} s  views {r['views']}  "
                      f"p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  (first call p50 {r['cold_p50']:.0f} ms, "
                      f"max {r['cold_max']:.0f} ms)", flush=True)
    finally:
        if pg is not None:
            pg.stop()
            shutil.rmtree(pg.root.parent, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)

    def worst(size: int) -> float:
        p95 = [r["p95"] for r in results if r["size"] == size]
        return max(p95) if p95 else float("nan")

    if args.large != 10_000_000 and not args.quick:
        print(f"p95 at {args.large:,} questionnaires (worst database): {worst(args.large):.1f} ms")
    large = worst(args.large) if args.large == 10_000_000 else float("nan")
    print(f"RESULT dashboards_p95_ms_112k={worst(BASE):.1f} dashboards_p95_ms_10m={large:.1f}")


if __name__ == "__main__":
    main()
