"""Outcome measures (brief section 6), implemented once for the catalogue, the dashboards and the
notebooks. This first part pairs measurements; change, effect sizes and reliable change follow.
"""

from __future__ import annotations

import pandas as pd

from .instruments import Instrument


def scale_value(scores: dict, scale: str) -> float | None:
    """The score used for change: the T score where delivered, else the raw score."""
    entry = scores.get(scale) if scores else None
    if not entry:
        return None
    value = entry.get("t", entry.get("raw"))
    return None if value is None else float(value)


def pairs(measurements: pd.DataFrame, trajectories: pd.DataFrame, inst: Instrument,
          start_window_days: int = 90, end_window_days: int = 90) -> pd.DataFrame:
    """Pre-post pairs: per trajectory and informant, the first start and the last end measurement.

    `measurements`: trajectory, informant, moment, date, scores (dict) of one instrument.
    `trajectories`: pseudonym, start_date, end_date. A start measurement counts when it lies within
    `start_window_days` of the trajectory's start; an end measurement within `end_window_days` of
    its end. A measurement counts for a scale only where that scale has a score.
    Returns one row per pair: trajectory, informant, start_date, end_date and per scale
    `<scale>_start`, `<scale>_end`, `<scale>_band_start`, `<scale>_band_end`.
    """
    columns = ["trajectory", "informant", "start_date", "end_date"]
    for s in inst.scales:
        columns += [f"{s.code}_start", f"{s.code}_end", f"{s.code}_band_start", f"{s.code}_band_end"]
    if measurements.empty:
        return pd.DataFrame(columns=columns)
    m = measurements.merge(trajectories[["pseudonym", "start_date", "end_date"]].rename(
        columns={"pseudonym": "trajectory", "start_date": "t_start", "end_date": "t_end"}), on="trajectory")
    m["date"] = pd.to_datetime(m["date"])
    m["t_start"] = pd.to_datetime(m["t_start"])
    m["t_end"] = pd.to_datetime(m["t_end"])
    start_ok = (m["moment"] == "start") & ((m["date"] - m["t_start"]).abs().dt.days <= start_window_days)
    end_ok = (m["moment"] == "end") & m["t_end"].notna() & ((m["date"] - m["t_end"]).abs().dt.days <= end_window_days)
    firsts = m[start_ok].sort_values("date").groupby(["trajectory", "informant"], sort=False).head(1)
    lasts = m[end_ok].sort_values("date").groupby(["trajectory", "informant"], sort=False).tail(1)
    both = firsts.merge(lasts, on=["trajectory", "informant"], suffixes=("_s", "_e"))
    out = pd.DataFrame({"trajectory": both["trajectory"], "informant": both["informant"],
                        "start_date": both["date_s"].dt.date, "end_date": both["date_e"].dt.date})
    for s in inst.scales:
        for side, col in (("start", "scores_s"), ("end", "scores_e")):
            out[f"{s.code}_{side}"] = [scale_value(x, s.code) for x in both[col]]
            out[f"{s.code}_band_{side}"] = [(x.get(s.code) or {}).get("band") if x else None for x in both[col]]
    return out[columns].reset_index(drop=True)
