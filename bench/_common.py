"""Helpers the benchmarks share: the memory of a child process tree, sampled while it runs."""

from __future__ import annotations

import subprocess
import time


def sample_memory(proc: subprocess.Popen, interval: float = 0.1) -> dict:
    """Wait for `proc` while sampling the memory of it and every process it started; the peaks (MB).

    `peak_pss_mb`: PSS (proportional set size) summed over the tree: pages a forked helper shares
    with its parent count once, not twice. `peak_rss_mb`: RSS summed over the tree (counts shared
    pages in each process, so an upper bound)."""
    import psutil

    root = psutil.Process(proc.pid)
    peak_pss = peak_rss = 0.0
    while proc.poll() is None:
        pss = rss = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                info = p.memory_full_info()
                pss, rss = pss + info.pss, rss + info.rss
        except psutil.Error:
            pass
        peak_pss, peak_rss = max(peak_pss, pss / 2**20), max(peak_rss, rss / 2**20)
        time.sleep(interval)
    return {"peak_pss_mb": peak_pss, "peak_rss_mb": peak_rss}
