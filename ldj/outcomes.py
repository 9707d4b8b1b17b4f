"""Outcome measures (brief section 6), implemented once for the catalogue, the dashboards and the
notebooks: pre-post pairing, change with its interval, the pre-post effect size, the reliable
change index and the CORC-style categories, and funnel-plot control limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


# --- change, effect size, reliable change (brief section 6) ----------------------------------

CATEGORIES = ("recovered", "reliably_improved", "no_reliable_change", "reliably_deteriorated")
RCI_CRITICAL = 1.96


@dataclass(frozen=True)
class Change:
    """Mean change (end − start) with its 95% confidence interval, and the pre-post effect size."""

    n: int
    mean_start: float
    mean_end: float
    mean_change: float
    ci_low: float
    ci_high: float
    sd_start: float
    effect_size: float  # pre-post Cohen's d: mean change divided by the SD at start


def change(start: pd.Series, end: pd.Series) -> Change:
    """Change over complete pairs; NaN figures when there are fewer than two pairs."""
    from scipy import stats

    both = pd.DataFrame({"start": start, "end": end}).dropna().astype(float)
    n = len(both)
    delta = both["end"] - both["start"]
    nan = float("nan")
    if n < 2:
        return Change(n, *(float(x) if n else nan for x in (both["start"].mean(), both["end"].mean(),
                                                            delta.mean())), nan, nan, nan, nan)
    mean, se = float(delta.mean()), float(delta.std(ddof=1) / np.sqrt(n))
    half = float(stats.t.ppf(0.975, n - 1) * se)
    sd_start = float(both["start"].std(ddof=1))
    return Change(n, float(both["start"].mean()), float(both["end"].mean()), mean, mean - half, mean + half,
                  sd_start, mean / sd_start if sd_start > 0 else nan)


def reliable_change_index(start: pd.Series, end: pd.Series, sd_start: float, reliability: float) -> pd.Series:
    """Jacobson & Truax (1991): RC = (end − start) / S_diff, S_diff = √2 · s_start · √(1 − r_xx)."""
    s_diff = np.sqrt(2) * sd_start * np.sqrt(1 - reliability)
    return (end.astype(float) - start.astype(float)) / s_diff


def categories(start: pd.Series, end: pd.Series, band_start: pd.Series, band_end: pd.Series, scale,
               sd_start: float | None = None) -> pd.Series:
    """Per pair: recovered, reliably_improved, no_reliable_change or reliably_deteriorated.

    Improvement is a fall in score, or a rise for scales where higher is better. Recovered means
    reliably improved and moved from a clinical band at start to a non-clinical band at the end.
    `sd_start` defaults to the SD at start of these pairs; the reliability is the scale's own
    (instrument definition).
    """
    if scale.reliability is None:
        raise ValueError(f"scale {scale.code} has no reliability in its instrument definition")
    sd = float(pd.Series(start, dtype=float).std(ddof=1)) if sd_start is None else sd_start
    rc = reliable_change_index(start, end, sd, scale.reliability)
    improvement = rc if scale.higher_is_better else -rc
    clinical_start = band_start.map(scale.is_clinical)
    clinical_end = band_end.map(scale.is_clinical)
    out = pd.Series("no_reliable_change", index=start.index, dtype=object)
    out[improvement < -RCI_CRITICAL] = "reliably_deteriorated"
    improved = improvement > RCI_CRITICAL
    out[improved] = "reliably_improved"
    out[improved & clinical_start & ~clinical_end] = "recovered"
    return out


def category_shares(cats: pd.Series) -> pd.DataFrame:
    """n, share and 95% Wilson interval per category (of all pairs)."""
    from statsmodels.stats.proportion import proportion_confint

    total = len(cats)
    rows = []
    for cat in CATEGORIES:
        k = int((cats == cat).sum())
        low, high = proportion_confint(k, total, alpha=0.05, method="wilson") if total else (np.nan, np.nan)
        rows.append({"category": cat, "n": k, "total": total, "share": k / total if total else np.nan,
                     "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows)


def funnel_limits(p0: float, n: np.ndarray | pd.Series) -> pd.DataFrame:
    """Control limits around a proportion p0 for group sizes n: 95% (z 1.96) and 99.8% (z 3.09)."""
    from scipy import stats

    n = np.asarray(n, dtype=float)
    se = np.sqrt(p0 * (1 - p0) / n)
    out = {"n": n}
    for name, level in (("95", 0.95), ("99_8", 0.998)):
        z = stats.norm.ppf(0.5 + level / 2)
        out[f"low_{name}"] = np.clip(p0 - z * se, 0, 1)
        out[f"high_{name}"] = np.clip(p0 + z * se, 0, 1)
    return pd.DataFrame(out)
