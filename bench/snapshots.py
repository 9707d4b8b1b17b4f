"""Catalogue snapshots after a one-organisation delivery: per-organisation parts reused vs a full rebuild.

    python bench/snapshots.py                                # 100,000 questionnaires, 10 organisations, SQLite
    python bench/snapshots.py --questionnaires 20000         # quick
    python bench/snapshots.py --database-url postgresql+psycopg://…/ldj_bench  # an empty PostgreSQL database

Every organisation but the last is imported and its snapshots made (as `ldj ingest` does); then the last
organisation delivers, and the new data version's snapshots are made twice: incrementally
(`refresh_snapshots`, which reads the store only for the organisation whose batches changed) and in full
into another data folder (`full=True`, the whole store read again: the reference). Both are compared
file by file. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questionnaires", type=int, default=100_000)
    parser.add_argument("--organisations", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="an empty database (default: SQLite in a temporary folder)")
    args = parser.parse_args()

    import pyarrow.parquet as pq

    from ldj import store
    from ldj.catalogue import refresh_snapshots
    from ldj.ingest import Ingestor
    from ldj.settings import Settings
    from ldj.synth import generate

    with tempfile.TemporaryDirectory(prefix="ldj-bench-snapshots-") as tmp:
        root = Path(tmp)
        extra = {"database_url": args.database_url} if args.database_url else {}
        settings = Settings(data_dir=root / "var", catalog_dir=REPO / "catalog", expectations_dir=REPO / "expectations",
                            progress="never", **extra)
        reference = settings.model_copy(update={"data_dir": root / "reference"})
        t0 = time.perf_counter()
        generate(root / "d", questionnaires=args.questionnaires, organisations=args.organisations,
                 invalid_share=0.0, seed=7)
        files = sorted((root / "d").glob("*.csv"), key=lambda p: ("traject" not in p.name, p.name))
        organisations = sorted({p.name.split("_")[0] for p in files})
        last = organisations[-1]
        ingestor = Ingestor(settings)
        ingestor.ingest_many([f for f in files if not f.name.startswith(f"{last}_")])
        engine = store.get_engine(settings)
        t = time.perf_counter()
        refresh_snapshots(engine, settings)
        first_s = time.perf_counter() - t
        setup_s = time.perf_counter() - t0

        delivery = [f for f in files if f.name.startswith(f"{last}_")]
        ingestor.ingest_many(delivery)
        delivered = sum(sum(1 for _ in f.open(encoding="utf-8-sig")) - 1 for f in delivery if "traject" not in f.name)

        t = time.perf_counter()
        folder = refresh_snapshots(engine, settings)
        incremental_s = time.perf_counter() - t
        t = time.perf_counter()
        full = refresh_snapshots(engine, reference, full=True)
        full_s = time.perf_counter() - t

        names = sorted(p.name for p in full.glob("*.parquet"))
        identical = int(bool(names) and names == sorted(p.name for p in folder.glob("*.parquet")) and all(
            pq.read_table(folder / n).equals(pq.read_table(full / n)) for n in names))
        rows = sum(pq.read_metadata(full / n).num_rows for n in names)
        size_mb = sum((full / n).stat().st_size for n in names) / 2**20
        backend = engine.dialect.name

    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"store on {backend}")
    print(f"store: {args.questionnaires:,} questionnaires of {len(organisations)} organisations synthesised, "
          f"imported and snapshotted in {setup_s:.0f} s (first snapshots {first_s:.1f} s)")
    print(f"delivery of {last}: {delivered:,} questionnaires in {len(delivery)} files; "
          f"{len(names)} entries, {rows:,} rows, {size_mb:.1f} MB Parquet")
    print(f"new version's snapshots: incremental {incremental_s:.1f} s, full rebuild {full_s:.1f} s "
          f"({full_s / incremental_s:.1f}x); identical: {bool(identical)}")
    print(f"RESULT store={args.questionnaires} organisations={len(organisations)} delivery={delivered} "
          f"backend={backend} snapshots_incremental_s={incremental_s:.2f} snapshots_full_s={full_s:.2f} "
          f"identical={identical}")
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    main()
