"""Import benchmark: the whole pipeline against the bare floor on the same rows.

    python bench/ingest.py                       # 112,000 CBCL questionnaires with their trajectories
    python bench/ingest.py --questionnaires 1000000
    python bench/ingest.py --questionnaires 20000 --many-questionnaires 5000   # a quick run

Two deliveries: a large one (N CBCL questionnaires, one trajectory and one CBCL file per
organisation) and a delivery as members really send them: every instrument, per organisation a
trajectory file and one file per instrument it uses (25 organisations, about 6 files each, 20,000
questionnaires), where the fixed cost per file shows.

The pipeline (read, map, coerce, validate with Great Expectations, pseudonymise, score/band,
quarantine, load in one transaction per file) runs in a child process into a fresh SQLite store;
the floor (pandas read_csv + one plain executemany INSERT per file, no checks) runs in another
child on the same files. Each child reports its own wall time and peak RSS. Library import time
is measured separately and not counted in either. Last line is machine-readable.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import sample_memory

REPO = Path(__file__).resolve().parent.parent


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def files_in(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.csv"))
    return sorted(files, key=lambda p: (0 if "traject" in p.name.lower() else 1, p.name))


def phase_pipeline(folder: Path, data_dir: Path) -> dict:
    t0 = time.perf_counter()
    from ldj.ingest import Ingestor
    from ldj.settings import Settings

    import great_expectations  # noqa: F401  (counted as import time, not pipeline time)

    import_s = time.perf_counter() - t0
    settings = Settings(data_dir=data_dir, progress="never")
    ingestor = Ingestor(settings)
    t1 = time.perf_counter()
    reports = ingestor.ingest_many(files_in(folder))  # as `ldj ingest FOLDER` does
    seconds = time.perf_counter() - t1
    for report in reports:
        if report.status != "loaded":
            raise SystemExit(f"{report.file}: {report.status} {report.error}")
    loaded = sum(r.rows_loaded for r in reports)
    quarantined = sum(r.rows_quarantined for r in reports)
    total = sum(r.rows_total for r in reports)
    helper_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the transform helper process
    return {"seconds": seconds, "import_s": import_s, "rows": total, "loaded": loaded, "quarantined": quarantined,
            "loader_rss_mb": peak_rss_mb(), "helper_rss_mb": helper_mb}


def phase_floor(folder: Path, data_dir: Path) -> dict:
    import pandas as pd

    data_dir.mkdir(parents=True, exist_ok=True)
    t1 = time.perf_counter()
    conn = sqlite3.connect(data_dir / "floor.sqlite")
    total = 0
    for i, path in enumerate(files_in(folder)):
        frame = pd.read_csv(path, sep=";", dtype=str, encoding_errors="replace", keep_default_na=False)
        table = f"f{i}"
        cols = ", ".join(f'"c{j}" TEXT' for j in range(frame.shape[1]))
        conn.execute(f"CREATE TABLE {table} ({cols})")
        marks = ", ".join("?" * frame.shape[1])
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", frame.itertuples(index=False, name=None))
        total += len(frame)
    conn.commit()
    conn.close()
    return {"seconds": time.perf_counter() - t1, "rows": total}


def run_child(phase: str, folder: Path, data_dir: Path) -> dict:
    """Run a phase in a child process; sample the memory of it and its helper processes
    (`_common.sample_memory`: PSS summed over the process tree, every 0.1 s)."""
    proc = subprocess.Popen([sys.executable, __file__, "--phase", phase, "--folder", str(folder),
                             "--data-dir", str(data_dir)], stdout=subprocess.PIPE, text=True)
    peak = sample_memory(proc)["peak_pss_mb"]
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{phase} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_pss_mb"] = peak
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questionnaires", type=int, default=112_000)
    parser.add_argument("--invalid-share", type=float, default=0.005)
    parser.add_argument("--many-questionnaires", type=int, default=20_000,
                        help="questionnaires in the many-files delivery (0: skip it)")
    parser.add_argument("--organisations", type=int, default=25, help="organisations in the many-files delivery")
    parser.add_argument("--phase", choices=["pipeline", "floor"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        fn = phase_pipeline if args.phase == "pipeline" else phase_floor
        print(json.dumps(fn(args.folder, args.data_dir)))
        return

    from ldj.synth import generate

    with tempfile.TemporaryDirectory(prefix="ldj-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        generate(tmp / "delivery", questionnaires=args.questionnaires, instruments=["cbcl_6_18"],
                 invalid_share=args.invalid_share, seed=7, catalog_dir=REPO / "catalog")
        synth_s = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in (tmp / "delivery").iterdir()) / 2**20
        floor = run_child("floor", tmp / "delivery", tmp / "floor")
        pipe = run_child("pipeline", tmp / "delivery", tmp / "store")
        many = many_floor = None
        if args.many_questionnaires:
            made = generate(tmp / "many", questionnaires=args.many_questionnaires, organisations=args.organisations,
                            invalid_share=args.invalid_share, seed=11, catalog_dir=REPO / "catalog")
            many_floor = run_child("floor", tmp / "many", tmp / "many-floor")
            many = run_child("pipeline", tmp / "many", tmp / "many-store")

    ratio = pipe["seconds"] / floor["seconds"]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"synthetic delivery: {args.questionnaires:,} CBCL questionnaires + trajectories, "
          f"{pipe['rows']:,} rows in files, {size_mb:.1f} MB, generated in {synth_s:.1f} s")
    print(f"floor    (read_csv + plain INSERT):      {floor['seconds']:7.2f} s {floor['rows'] / floor['seconds']:>9,.0f} rows/s"
          f"  peak memory {floor['peak_pss_mb']:5.0f} MB")
    print(f"pipeline (validate, pseudonymise, load): {pipe['seconds']:7.2f} s {pipe['rows'] / pipe['seconds']:>9,.0f} rows/s"
          f"  peak memory {pipe['peak_pss_mb']:5.0f} MB (max RSS loader {pipe['loader_rss_mb']:.0f}, helper "
          f"{pipe['helper_rss_mb']:.0f}; library imports {pipe['import_s']:.1f} s, not counted)")
    print(f"loaded {pipe['loaded']:,}, quarantined {pipe['quarantined']:,}; pipeline/floor ratio {ratio:.2f}")
    result = (f"RESULT ingest_s={pipe['seconds']:.3f} floor_s={floor['seconds']:.3f} ratio={ratio:.3f} "
              f"peak_rss_mb={pipe['peak_pss_mb']:.1f} rows={pipe['rows']}")
    if many is not None:
        many_ratio = many["seconds"] / many_floor["seconds"]
        print(f"many files: {made.questionnaires:,} questionnaires of {len(made.organisations)} organisations in "
              f"{len(made.paths)} files ({len(made.paths) / len(made.organisations):.1f} per organisation), "
              f"{many['rows']:,} rows")
        print(f"floor    (read_csv + plain INSERT):      {many_floor['seconds']:7.2f} s "
              f"({1000 * many_floor['seconds'] / len(made.paths):.1f} ms per file)")
        print(f"pipeline (validate, pseudonymise, load): {many['seconds']:7.2f} s "
              f"({1000 * many['seconds'] / len(made.paths):.1f} ms per file); loaded {many['loaded']:,}, "
              f"quarantined {many['quarantined']:,}; ratio {many_ratio:.2f}")
        result += (f" many_files_s={many['seconds']:.3f} many_files_floor_s={many_floor['seconds']:.3f} "
                   f"many_files_ratio={many_ratio:.3f} many_files={len(made.paths)}")
    print(result)


if __name__ == "__main__":
    main()
