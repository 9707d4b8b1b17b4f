"""Factsheet query time: p50/p95 of `ldj.factsheet.factsheet()` on a store of N questionnaires.

    .venv/bin/python bench/factsheet.py                     # 112,000 questionnaires, SQLite
    .venv/bin/python bench/factsheet.py --size 10000000     # 10M (bulk load ~ several minutes)
    .venv/bin/python bench/factsheet.py --database-url postgresql+psycopg://...

Prints the cold computation (once per data version: SQL GROUP BYs, pair snapshots, suppression)
and the warm query (what every page view pays: the data-version check and the cached result).
`measure(engine, settings, repeats)` is importable (bench/portal.py uses it).

BENCH ONLY: `bulk_load` writes synthetic rows straight into the store tables (one import batch per
organisation, recorded as loaded, so the dashboards' cube sees them per organisation as after real
deliveries; no validation, no pseudonymisation; scores `{}` unless `realistic=True`), because building
10M questionnaires through `ldj ingest` takes ~15 minutes. Never use it on a real store.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ldj import store  # noqa: E402
from ldj.instruments import load_instruments  # noqa: E402
from ldj.settings import REPO_ROOT, Settings  # noqa: E402

INTERVENTIONS = ["mst", "iag", "ash", "vib", "ambulante_gezinsbehandeling", "dagbehandeling",
                 "residentiele_behandeling", "gezinshuis", "pleegzorg", "therapeutische_pleegzorg",
                 "multidimensionale_pleegzorg", "kamertraining"]


def score_pool(instrument, informant: str, rng: np.random.Generator, size: int = 64) -> list[dict]:
    """BENCH ONLY: `size` plausible stored scores of one instrument and informant: per scale a raw score
    in its range, a T score where the scale has one, and the band the value falls in."""
    pool = []
    for _ in range(size):
        scores = {}
        for scale in instrument.scales:
            lo, hi = scale.raw_range or (0, 40)
            value = {"raw": float(rng.integers(int(lo), int(hi) + 1))}
            if scale.t_range is not None:
                value["t"] = float(rng.integers(int(scale.t_range[0]), int(scale.t_range[1]) + 1))
            basis = value.get("t", value["raw"]) if scale.band_basis == "t" else value["raw"]
            bands = [b.label for b in scale.bands_for(informant) if b.lower <= basis]
            if bands:
                value["band"] = bands[-1]
            scores[scale.code] = value
        pool.append(scores)
    return pool


def bulk_load(engine: sa.Engine, questionnaires: int, *, organisations: int = 25, seed: int = 1,
              chunk_trajectories: int = 250_000, realistic: bool = False) -> None:
    """BENCH ONLY: at least `questionnaires` synthetic measurements (start and end by up to two
    informants of one instrument per trajectory), their trajectories and clients, 3% objecting; one
    loaded import batch per organisation `ORG00`, `ORG01`, … With `realistic`, every measurement has
    plausible scores (drawn from `score_pool`) and clients vary in gender and age, so pairs, the cube's
    sums and the case-mix model have values to work on (else scores `{}`, all female, aged 10)."""
    rng = np.random.default_rng(seed)
    instruments = [i for i in load_instruments(REPO_ROOT / "catalog").values() if {"start", "end"} <= set(i.moments)]
    pools = {(inst.code, informant): score_pool(inst, informant, rng) if realistic else [{}]
             for inst in instruments for informant in inst.informants[:2]}
    epoch = date(2008, 1, 1)
    now = datetime.now(UTC)
    codes = [f"ORG{i:02d}" for i in range(organisations)]
    with engine.begin() as conn:
        conn.execute(store.organisations.insert(), [{"code": code, "name": f"Org {i}"} for i, code in enumerate(codes)])
        batches = [conn.execute(store.import_batches.insert().values(
            kind="bench", organisation=code, period="bench", file_name="bench/factsheet.py bulk_load",
            checksum=f"bench-{code}", started_at=now, finished_at=now, status="loaded",
            rows_total=questionnaires // organisations, rows_loaded=questionnaires // organisations)
        ).inserted_primary_key[0] for code in codes]
    written, first = 0, 0
    while written < questionnaires:
        n = max(1, min(chunk_trajectories, (questionnaires - written) // 2))
        ids = np.arange(first, first + n)
        org = rng.integers(0, organisations, n)
        start = rng.integers(0, 18 * 365, n)
        length = rng.integers(30, 400, n)
        ended = rng.random(n) < 0.85
        genders = rng.choice(["female", "male"], n) if realistic else ["female"] * n
        ages = rng.integers(4, 18, n) if realistic else [10] * n
        clients = [{"pseudonym": f"c{i:031d}", "organisation": f"ORG{o:02d}", "gender": str(g),
                    "lvb": False, "objection": bool(x), "batch_id": batches[o]}
                   for i, o, x, g in zip(ids, org, rng.random(n) < 0.03, genders, strict=True)]
        trajectories = [{"pseudonym": f"t{i:031d}", "client": f"c{i:031d}", "organisation": f"ORG{o:02d}",
                         "intervention": INTERVENTIONS[k], "start_date": epoch + timedelta(days=int(s)),
                         "end_date": epoch + timedelta(days=int(s + ln)) if e else None, "age_at_start": int(a),
                         "batch_id": batches[o]}
                        for i, o, k, s, ln, e, a in zip(ids, org, rng.integers(0, len(INTERVENTIONS), n), start,
                                                        length, ended, ages, strict=True)]
        which = rng.integers(0, len(instruments), n)
        measurements = []
        for i, o, w, s, ln, e in zip(ids, org, which, start, length, ended, strict=True):
            inst = instruments[w]
            for informant in inst.informants[:2]:
                pool = pools[inst.code, informant]
                for moment, day in (("start", s + 3), ("end", s + ln - 3)):
                    if moment == "end" and not e:
                        continue
                    measurements.append({"pseudonym": f"m{len(measurements) + written:031d}", "client": f"c{i:031d}",
                                         "trajectory": f"t{i:031d}", "organisation": f"ORG{o:02d}",
                                         "instrument": inst.code, "informant": informant, "moment": moment,
                                         "date": epoch + timedelta(days=int(day)),
                                         "scores": pool[(len(measurements) + written) % len(pool)],
                                         "batch_id": batches[o]})
        with engine.begin() as conn:
            conn.execute(store.clients.insert(), clients)
            conn.execute(store.trajectories.insert(), trajectories)
            conn.execute(store.measurements.insert(), measurements)
        written += len(measurements)
        first += n
        print(f"  bulk load: {written:,} questionnaires", file=sys.stderr, flush=True)


def measure(engine: sa.Engine, settings: Settings, repeats: int = 50) -> dict:
    """Cold computation once, then `repeats` warm calls of `factsheet()` (ms)."""
    from ldj import factsheet as fs

    fs._cache.clear()
    t0 = time.perf_counter()
    result = fs.factsheet(engine, settings)
    cold = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    fs.compute(engine, settings)
    recompute = (time.perf_counter() - t0) * 1000  # snapshots exist now: SQL + suppression only
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fs.factsheet(engine, settings)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"questionnaires": result.totals["questionnaires"], "cold_ms": cold, "recompute_ms": recompute,
            "p50_ms": statistics.median(times), "p95_ms": times[max(0, int(round(0.95 * len(times))) - 1)],
            "repeats": repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=112_000, help="questionnaires to load (default 112,000)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--database-url", default=None, help="an empty store (default: SQLite in a temp folder)")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep the store here (re-used when it exists)")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="ldj-bench-factsheet-"))
    settings = Settings(data_dir=data_dir, database_url=args.database_url, progress="never")
    engine = store.get_engine(settings)
    with engine.connect() as conn:
        present = conn.execute(sa.select(sa.func.count()).select_from(store.measurements)).scalar()
    if not present:
        t0 = time.perf_counter()
        bulk_load(engine, args.size)
        print(f"bulk load {args.size:,}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    out = measure(engine, settings, args.repeats)
    print(f"factsheet at {present or args.size:,} questionnaires ({engine.dialect.name}): cold {out['cold_ms']:.0f} ms "
          f"(recompute without snapshots to build {out['recompute_ms']:.0f} ms); warm p50 {out['p50_ms']:.2f} ms, "
          f"p95 {out['p95_ms']:.2f} ms over {out['repeats']} calls")


if __name__ == "__main__":
    main()
