"""Hostile deliveries: how long `ldj ingest` takes to refuse them, and in how much memory.

    python bench/hostile.py                 # the issue's XLSX of 8 million tiny rows, a CSV of 100,000 columns, ...
    python bench/hostile.py --xlsx-rows 2000000

The files are made in a temporary folder (tests/bad_files.py makes them for the tests too); a child
process imports the libraries, then refuses each file through the real import (`Ingestor.ingest`,
everything in one process so its peak RSS covers the refusals) and reports the wall time of each.
Before the limits, the 8-million-row XLSX kept `ldj ingest` busy for over a minute. Last line is
machine-readable.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import bad_files  # noqa: E402  (tests/ on the path first)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_refuse(files: list[Path], data_dir: Path) -> dict:
    from ldj.ingest import Ingestor
    from ldj.settings import Settings

    ingestor = Ingestor(Settings(data_dir=data_dir, progress="never", ingest_workers=0))
    after_import_mb = peak_rss_mb()
    out = {"after_import_rss_mb": after_import_mb, "files": {}}
    for path in files:
        t0 = time.perf_counter()
        report = ingestor.ingest(path)
        seconds = time.perf_counter() - t0
        if report.status != "rejected":
            raise SystemExit(f"{path.name}: {report.status}, expected rejected")
        out["files"][path.name] = {"seconds": seconds, "error": report.error}
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--xlsx-rows", type=int, default=8_000_000, help="tiny rows in the XLSX (default 8 million)")
    parser.add_argument("--phase", choices=["refuse"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase_refuse(args.files, args.data_dir)))
        return

    with tempfile.TemporaryDirectory(prefix="ldj-hostile-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        made = {
            "xlsx_bomb": bad_files.xlsx_many_rows(folder, args.xlsx_rows),
            "wide_csv": bad_files.csv_wide(folder),
            "compression_bomb": bad_files.xlsx_compression_bomb(folder, megabytes=512),
            "huge_cell_csv": bad_files.csv_huge_cell(folder),
            "many_lines_csv": bad_files.csv_many_rows(folder, 20_000_001),
            "billion_cases_sav": bad_files.sav_billion_cases(folder),
        }
        made_s = time.perf_counter() - t0
        sizes = {name: path.stat().st_size for name, path in made.items()}
        proc = subprocess.run([sys.executable, __file__, "--phase", "refuse", "--data-dir", str(folder / "var"),
                               *map(str, made.values())], capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            raise SystemExit(proc.stderr)
        result = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"hostile files made in {made_s:.1f} s; libraries loaded: {result['after_import_rss_mb']:.0f} MB RSS")
    times = {}
    for name, path in made.items():
        entry = result["files"][path.name]
        times[name] = entry["seconds"]
        print(f"{name:18} {sizes[name] / 2**20:9.1f} MB  refused in {entry['seconds']:6.2f} s  {entry['error']}")
    print(f"peak RSS of the refusing process: {result['peak_rss_mb']:.0f} MB "
          f"({result['peak_rss_mb'] - result['after_import_rss_mb']:.0f} MB more than with its libraries loaded)")
    print("RESULT " + " ".join([f"xlsx_bomb_s={times['xlsx_bomb']:.2f}", f"wide_csv_s={times['wide_csv']:.2f}",
                                f"compression_bomb_s={times['compression_bomb']:.2f}",
                                f"huge_cell_s={times['huge_cell_csv']:.2f}",
                                f"many_lines_s={times['many_lines_csv']:.2f}",
                                f"peak_rss_mb={result['peak_rss_mb']:.0f}",
                                f"refusals_extra_rss_mb={result['peak_rss_mb'] - result['after_import_rss_mb']:.0f}"]))


if __name__ == "__main__":
    main()
