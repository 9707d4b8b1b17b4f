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


def _windows(start_window_days: int | None, end_window_days: int | None) -> tuple[int, int]:
    if start_window_days is None or end_window_days is None:
        from .settings import get_settings

        settings = get_settings()
        start_window_days = settings.outcome_start_window_days if start_window_days is None else start_window_days
        end_window_days = settings.outcome_end_window_days if end_window_days is None else end_window_days
    return int(start_window_days), int(end_window_days)


def first_and_last(measurements: pd.DataFrame, trajectories: pd.DataFrame, start_window_days: int | None = None,
                   end_window_days: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The valid start and end measurements: per trajectory and informant, the first `start`
    measurement within `start_window_days` of the trajectory's start date, and the last `end`
    measurement within `end_window_days` of its end date (a trajectory without an end date has none).

    `measurements`: trajectory, informant, moment, date and any other columns (carried along).
    `trajectories`: pseudonym, start_date, end_date. Windows default to the settings
    `outcome_start_window_days` and `outcome_end_window_days`. Pairing (`pairs`, `pair_values`) and
    response status (`response_status`) are both built on this one selection.
    """
    start_days, end_days = _windows(start_window_days, end_window_days)
    dates = trajectories[["pseudonym", "start_date", "end_date"]].rename(
        columns={"pseudonym": "trajectory", "start_date": "t_start", "end_date": "t_end"})
    m = measurements.merge(dates, on="trajectory")
    m["date"] = pd.to_datetime(m["date"])
    t_start, t_end = pd.to_datetime(m.pop("t_start")), pd.to_datetime(m.pop("t_end"))
    start_ok = (m["moment"] == "start") & ((m["date"] - t_start).abs().dt.days <= start_days)
    end_ok = (m["moment"] == "end") & t_end.notna() & ((m["date"] - t_end).abs().dt.days <= end_days)
    firsts = m[start_ok].sort_values("date", kind="stable").groupby(["trajectory", "informant"], sort=False).head(1)
    lasts = m[end_ok].sort_values("date", kind="stable").groupby(["trajectory", "informant"], sort=False).tail(1)
    return firsts.reset_index(drop=True), lasts.reset_index(drop=True)


def pair_values(measurements: pd.DataFrame, trajectories: pd.DataFrame, columns: list[str],
                start_window_days: int | None = None, end_window_days: int | None = None) -> pd.DataFrame:
    """Pre-post pairs over already flattened value columns (the vectorised core of `pairs`).

    Returns trajectory, informant, start_date, end_date and `<column>_start`, `<column>_end` for
    each of `columns`, one row per trajectory and informant with both a valid start and a valid end.
    """
    firsts, lasts = first_and_last(measurements, trajectories, start_window_days, end_window_days)
    return pairs_from_selection(firsts, lasts, columns)


def pairs_from_selection(firsts: pd.DataFrame, lasts: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`pair_values` from an existing `first_and_last` selection (e.g. made chunk by chunk)."""
    keep = ["trajectory", "informant", "date", *columns]
    both = firsts[keep].merge(lasts[keep], on=["trajectory", "informant"], suffixes=("_start", "_end"))
    out = both.rename(columns={"date_start": "start_date", "date_end": "end_date"})
    out["start_date"] = out["start_date"].dt.date
    out["end_date"] = out["end_date"].dt.date
    return out[["trajectory", "informant", "start_date", "end_date",
                *(f"{c}_{side}" for c in columns for side in ("start", "end"))]]


def scale_value_columns(scores: list[str | dict | None], inst: Instrument) -> pd.DataFrame:
    """`scale_value` and the band for every scale, column-wise, from stored scores (JSON text or
    dicts): columns `<scale>` (float) and `<scale>_band`. Scales with a delivered T score use it
    (missing T is missing, as in `scale_value`), others the raw score. Parsed by Arrow's JSON reader."""
    import io
    import json

    import pyarrow as pa
    import pyarrow.json as pj

    kinds = pa.struct([("raw", pa.float64()), ("t", pa.float64()), ("band", pa.string())])
    schema = pa.schema([pa.field(s.code, kinds) for s in inst.scales])
    out = {}
    if not scores:
        for s in inst.scales:
            out[s.code], out[f"{s.code}_band"] = pd.Series(dtype=float), pd.Series(dtype=object)
        return pd.DataFrame(out)
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) if x else "{}" for x in scores).encode()
    table = pj.read_json(io.BytesIO(text), parse_options=pj.ParseOptions(explicit_schema=schema)).flatten()
    for s in inst.scales:
        kind = "t" if s.method == "delivered" and s.t_range is not None else "raw"
        out[s.code] = table.column(f"{s.code}.{kind}").to_numpy(zero_copy_only=False)
        out[f"{s.code}_band"] = table.column(f"{s.code}.band").to_pandas()
    return pd.DataFrame(out)


def pairs(measurements: pd.DataFrame, trajectories: pd.DataFrame, inst: Instrument,
          start_window_days: int | None = None, end_window_days: int | None = None) -> pd.DataFrame:
    """Pre-post pairs: per trajectory and informant, the first start and the last end measurement.

    `measurements`: trajectory, informant, moment, date, scores (dict) of one instrument.
    `trajectories`: pseudonym, start_date, end_date. A start measurement counts when it lies within
    `start_window_days` of the trajectory's start; an end measurement within `end_window_days` of
    its end (defaults: the settings `outcome_start_window_days`, `outcome_end_window_days`, 90 days).
    A scale without a score in the chosen measurement is missing in the pair.
    Returns one row per pair: trajectory, informant, start_date, end_date and per scale
    `<scale>_start`, `<scale>_end`, `<scale>_band_start`, `<scale>_band_end`.
    """
    columns = ["trajectory", "informant", "start_date", "end_date"]
    for s in inst.scales:
        columns += [f"{s.code}_start", f"{s.code}_end", f"{s.code}_band_start", f"{s.code}_band_end"]
    if measurements.empty:
        return pd.DataFrame(columns=columns)
    both = pair_values(measurements, trajectories, ["scores"], start_window_days, end_window_days)
    out = both[["trajectory", "informant", "start_date", "end_date"]].copy()
    for s in inst.scales:
        for side in ("start", "end"):
            col = both[f"scores_{side}"]
            out[f"{s.code}_{side}"] = [scale_value(x, s.code) for x in col]
            out[f"{s.code}_band_{side}"] = [(x.get(s.code) or {}).get("band") if x else None for x in col]
    return out[columns].reset_index(drop=True)


RESPONSE_STATUSES = ("completer", "start_only", "end_only", "none")


def response_eligible(trajectories: pd.DataFrame, inst: Instrument) -> pd.Series:
    """Whether a trajectory counts for response on `inst`: it has ended, and its age at start lies in
    the instrument's age range (when both are known). Running trajectories are not yet due an end."""
    ok = trajectories["end_date"].notna()
    if inst.age_range is not None and "age_at_start" in trajectories:
        age = pd.to_numeric(trajectories["age_at_start"], errors="coerce")
        ok &= age.isna() | age.between(*inst.age_range)
    return ok


def response_status(measurements: pd.DataFrame, trajectories: pd.DataFrame, informants,
                    start_window_days: int | None = None, end_window_days: int | None = None) -> pd.DataFrame:
    """Response status per trajectory and informant (as the Dutch mental-health benchmark did):
    `completer` (a valid start and a valid end measurement, i.e. a pre-post pair), `start_only`,
    `end_only` or `none`.

    One row for every trajectory in `trajectories` (pseudonym, start_date, end_date) and every
    informant in `informants`: trajectory, informant, has_start, has_end, status. Choose the
    trajectories first (e.g. `response_eligible`); validity as in `first_and_last`.
    """
    if measurements.empty:
        firsts = lasts = pd.DataFrame(columns=["trajectory", "informant"])
    else:
        firsts, lasts = first_and_last(measurements[["trajectory", "informant", "moment", "date"]], trajectories,
                                       start_window_days, end_window_days)
    return status_from_selection(trajectories["pseudonym"], informants, firsts, lasts)


def status_from_selection(trajectory_ids: pd.Series, informants, firsts: pd.DataFrame,
                          lasts: pd.DataFrame) -> pd.DataFrame:
    """`response_status` from an existing `first_and_last` selection."""
    informants = list(informants)
    ids = np.asarray(trajectory_ids, dtype=object)
    grid = pd.DataFrame({"trajectory": np.repeat(ids, len(informants)),
                         "informant": np.tile(np.array(informants, dtype=object), len(ids))})
    keys = ["trajectory", "informant"]
    grid["has_start"] = pd.MultiIndex.from_frame(grid[keys]).isin(pd.MultiIndex.from_frame(firsts[keys]))
    grid["has_end"] = pd.MultiIndex.from_frame(grid[keys]).isin(pd.MultiIndex.from_frame(lasts[keys]))
    grid["status"] = np.select([grid["has_start"] & grid["has_end"], grid["has_start"], grid["has_end"]],
                               ["completer", "start_only", "end_only"], "none")
    return grid


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


def funnel_limits_mean(centre: float, sd: float, n: np.ndarray | pd.Series) -> pd.DataFrame:
    """Control limits around a mean (e.g. ΔT, or observed − expected around 0) for group sizes n:
    centre ± z · sd / √n at 95% and 99.8%."""
    from scipy import stats

    n = np.asarray(n, dtype=float)
    se = sd / np.sqrt(n)
    out = {"n": n}
    for name, level in (("95", 0.95), ("99_8", 0.998)):
        z = stats.norm.ppf(0.5 + level / 2)
        out[f"low_{name}"] = centre - z * se
        out[f"high_{name}"] = centre + z * se
    return pd.DataFrame(out)


# --- the same figures from sufficient statistics (for the dashboards' pre-computed cube) -------

def wilson(k, n) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson interval for k out of n (arrays); NaN where n is 0."""
    from statsmodels.stats.proportion import proportion_confint

    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    safe = np.where(n > 0, n, 1)
    low, high = proportion_confint(np.minimum(k, safe), safe, alpha=0.05, method="wilson")
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def mean_ci_from_sums(n, total, total_sq) -> pd.DataFrame:
    """Mean, SD (ddof 1) and 95% t interval from n, Σx and Σx² (arrays); as `change` does on raw values."""
    from scipy import stats

    n, total, total_sq = (np.asarray(x, dtype=float) for x in (n, total, total_sq))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        var = np.where(n > 1, np.maximum(total_sq - n * mean * mean, 0) / (n - 1), np.nan)
        sd = np.sqrt(var)
        half = stats.t.ppf(0.975, np.where(n > 1, n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n > 1, half, np.nan)
    return pd.DataFrame({"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half})


def change_from_sums(n, sum_start, sumsq_start, sum_end, sum_change, sumsq_change) -> pd.DataFrame:
    """`change` from sufficient statistics of complete pairs (arrays): the columns of `Change`."""
    start = mean_ci_from_sums(n, sum_start, sumsq_start)
    delta = mean_ci_from_sums(n, sum_change, sumsq_change)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_end = np.where(n > 0, np.asarray(sum_end, dtype=float) / n, np.nan)
        effect = np.where(start["sd"] > 0, delta["mean"] / start["sd"], np.nan)
    return pd.DataFrame({"n": n.astype(int), "mean_start": start["mean"], "mean_end": mean_end,
                         "mean_change": delta["mean"], "ci_low": delta["ci_low"], "ci_high": delta["ci_high"],
                         "sd_start": start["sd"], "effect_size": effect})


# --- case-mix adjusted comparison -------------------------------------------------------------

CASEMIX_FORMULA = "outcome ~ start + age + C(gender) + C(intervention)"


@dataclass(frozen=True)
class CaseMix:
    """An OLS case-mix model and its expected values per pair."""

    result: object  # statsmodels RegressionResults
    outcome: str  # "change" (ΔT) or "end" (T_end given T_start)
    expected: pd.Series  # per pair of the frame it was applied to; NaN where a covariate is missing


def casemix_fit(frame: pd.DataFrame, outcome: str = "change", fit: pd.Series | None = None) -> CaseMix:
    """Fit `CASEMIX_FORMULA` by OLS (statsmodels formula API) and predict every row of `frame`.

    `frame`: one row per pair with columns start, end, age, gender, intervention (and anything else).
    The outcome is ΔT = end − start (`outcome="change"`) or T_end (`"end"`, given T_start as a
    covariate); both give the same observed − expected. `fit` (bool per row) chooses the rows the
    model is fitted on (e.g. research-usable pairs only); all rows are predicted. Rows whose gender or
    intervention did not occur in the fitted rows, or with a missing covariate, get NaN.
    """
    import statsmodels.formula.api as smf

    if outcome not in ("change", "end"):
        raise ValueError("outcome must be 'change' or 'end'")
    data = _casemix_data(frame, outcome)
    usable = data[["outcome", "start", "age", "gender", "intervention"]].notna().all(axis=1)
    fit_rows = usable if fit is None else usable & fit.reindex(data.index).fillna(False).astype(bool)
    result = smf.ols(CASEMIX_FORMULA, data=data[fit_rows]).fit()
    known = usable & data["gender"].isin(data.loc[fit_rows, "gender"].unique()) \
        & data["intervention"].isin(data.loc[fit_rows, "intervention"].unique())
    expected = pd.Series(np.nan, index=data.index)
    if known.any():
        expected[known] = np.asarray(result.predict(data[known]), dtype=float)
    return CaseMix(result, outcome, expected)


def _casemix_data(frame: pd.DataFrame, outcome: str) -> pd.DataFrame:
    start = pd.to_numeric(frame["start"], errors="coerce").astype(float)
    end = pd.to_numeric(frame["end"], errors="coerce").astype(float)
    return pd.DataFrame({"outcome": end - start if outcome == "change" else end, "start": start,
                         "age": pd.to_numeric(frame["age"], errors="coerce").astype(float),
                         "gender": frame["gender"].astype(object), "intervention": frame["intervention"].astype(object)},
                        index=frame.index)


def observed_minus_expected(frame: pd.DataFrame, model: CaseMix, by: str = "organisation") -> pd.DataFrame:
    """Per group: n, observed and expected mean outcome, and observed − expected with a 95% t interval
    (mean residual ± t · SD of the residuals / √n; the model's own uncertainty is left out).

    Positive means a larger outcome than the case mix predicts: for ΔT on a problem scale that is
    less improvement than expected.
    """
    data = _casemix_data(frame, model.outcome)
    data["expected"] = model.expected
    data[by] = frame[by]
    data = data[data["outcome"].notna() & data["expected"].notna()]
    data["residual"] = data["outcome"] - data["expected"]
    grouped = data.groupby(by, sort=True)
    sums = pd.DataFrame({"n": grouped.size(), "observed": grouped["outcome"].sum(),
                         "expected": grouped["expected"].sum(), "residual": grouped["residual"].sum(),
                         "residual_sq": (data["residual"] ** 2).groupby(data[by]).sum()})
    return casemix_from_sums(sums.reset_index(), by)


def casemix_from_sums(sums: pd.DataFrame, by: str | list[str] | None = None) -> pd.DataFrame:
    """Observed − expected from sufficient statistics: columns n, observed (Σ), expected (Σ),
    residual (Σ) and residual_sq (Σ); returns n, observed, expected (means), difference, ci_low, ci_high."""
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    resid = mean_ci_from_sums(sums["n"], sums["residual"], sums["residual_sq"])
    n = sums["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({"n": sums["n"].to_numpy(dtype=int),
                            "observed": np.where(n > 0, sums["observed"].to_numpy(dtype=float) / n, np.nan),
                            "expected": np.where(n > 0, sums["expected"].to_numpy(dtype=float) / n, np.nan),
                            "difference": resid["mean"].to_numpy(), "ci_low": resid["ci_low"].to_numpy(),
                            "ci_high": resid["ci_high"].to_numpy()})
    for k in reversed(keys):
        out.insert(0, k, sums[k].to_numpy())
    return out
