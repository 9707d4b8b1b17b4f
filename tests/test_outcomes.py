"""Outcome measures against hand-worked examples and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ldj.instruments import load_instruments
from ldj.outcomes import categories, category_shares, change, funnel_limits, reliable_change_index
from ldj.settings import REPO_ROOT

INSTRUMENTS = load_instruments(REPO_ROOT / "catalog")


def test_change_by_hand():
    c = change(pd.Series([60, 70, 80]), pd.Series([55, 60, 75]))
    # deltas -5, -10, -5: mean -6.667, sd 2.8868, se 1.6667, t(0.975, df=2) = 4.3027
    assert c.n == 3 and c.mean_change == pytest.approx(-20 / 3)
    assert c.ci_low == pytest.approx(-20 / 3 - 4.302653 * 1.666667, abs=1e-4)
    assert c.ci_high == pytest.approx(-20 / 3 + 4.302653 * 1.666667, abs=1e-4)
    assert c.sd_start == pytest.approx(10.0) and c.effect_size == pytest.approx(-2 / 3)
    assert (c.mean_start, c.mean_end) == (pytest.approx(70), pytest.approx(190 / 3))


def test_change_ignores_incomplete_pairs_and_needs_two():
    c = change(pd.Series([60, np.nan, 80]), pd.Series([55, 60, np.nan]))
    assert c.n == 1 and math.isnan(c.ci_low) and c.mean_change == -5


def test_reliable_change_index_by_hand():
    # sd 10, r .91: SE = 10 * 0.3 = 3, S_diff = 3 * sqrt(2) = 4.2426
    rc = reliable_change_index(pd.Series([70.0, 70.0]), pd.Series([60.0, 62.0]), 10.0, 0.91)
    assert rc.tolist() == pytest.approx([-10 / 4.242641, -8 / 4.242641])
    assert abs(rc[0]) > 1.96 > abs(rc[1])


def test_categories_by_hand_on_cbcl_total_problems():
    scale = INSTRUMENTS["cbcl_6_18"].scale("total_problems")  # r .97, clinical from T 64
    start = pd.Series([70, 70, 60, 55, 62], dtype=float)
    end = pd.Series([60, 65, 57, 61, 55], dtype=float)
    band = lambda s: scale.band(s, "parent")  # noqa: E731
    # sd given 10: S_diff = sqrt(2) * 10 * sqrt(.03) = 2.449; reliable from |change| > 4.80
    got = categories(start, end, band(start), band(end), scale, sd_start=10.0)
    assert got.tolist() == ["recovered", "reliably_improved", "no_reliable_change", "reliably_deteriorated",
                            "reliably_improved"]


def test_higher_is_better_scales_improve_upwards():
    scale = INSTRUMENTS["sdq"].scale("prosocial")
    start, end = pd.Series([4.0, 9.0]), pd.Series([9.0, 4.0])
    got = categories(start, end, scale.band(start, "parent"), scale.band(end, "parent"), scale, sd_start=2.0)
    assert got.tolist() == ["recovered", "reliably_deteriorated"]  # very low -> close to average


def test_category_shares_use_wilson_intervals():
    cats = pd.Series(["recovered"] * 30 + ["no_reliable_change"] * 60 + ["reliably_deteriorated"] * 10)
    shares = category_shares(cats).set_index("category")
    assert shares.loc["recovered", "n"] == 30 and shares.loc["reliably_improved", "n"] == 0
    p, n, z = 0.3, 100, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert shares.loc["recovered", "ci_low"] == pytest.approx(centre - half, abs=1e-6)
    assert shares.loc["recovered", "ci_high"] == pytest.approx(centre + half, abs=1e-6)
    assert shares["share"].sum() == pytest.approx(1.0)


def test_funnel_limits_by_hand():
    limits = funnel_limits(0.5, [100, 400]).iloc[0]
    assert limits["low_95"] == pytest.approx(0.5 - 1.959964 * 0.05)
    assert limits["high_99_8"] == pytest.approx(0.5 + 3.090232 * 0.05)
    wide, narrow = funnel_limits(0.5, [100, 400]).itertuples(index=False)
    assert narrow.high_95 - narrow.low_95 == pytest.approx((wide.high_95 - wide.low_95) / 2)


def test_a_scale_without_reliability_is_refused():
    scale = INSTRUMENTS["sdq"].scale("externalising")
    with pytest.raises(ValueError, match="no reliability"):
        categories(pd.Series([10.0]), pd.Series([5.0]), pd.Series([None]), pd.Series([None]), scale)


# --- pairing windows, response status ----------------------------------------------------------

from ldj.outcomes import (  # noqa: E402
    casemix_fit,
    change_from_sums,
    first_and_last,
    funnel_limits_mean,
    mean_ci_from_sums,
    observed_minus_expected,
    pair_values,
    pairs,
    response_eligible,
    response_status,
    scale_value_columns,
    wilson,
)

TRAJ = pd.DataFrame({"pseudonym": ["a", "b", "c", "d"],
                     "start_date": pd.to_datetime(["2022-01-01"] * 4),
                     "end_date": pd.to_datetime(["2022-07-01", "2022-07-01", None, "2022-07-01"]),
                     "age_at_start": [10, 10, 10, 3]})


def _m(traj, moment, date, t, informant="parent"):
    return {"trajectory": traj, "informant": informant, "moment": moment, "date": pd.Timestamp(date),
            "scores": {"total_problems": {"raw": 40, "t": t, "band": "clinical" if t >= 64 else "normal"}}}


MEAS = pd.DataFrame([
    _m("a", "start", "2021-12-20", 70), _m("a", "start", "2022-01-10", 72),  # first start counts
    _m("a", "end", "2022-06-20", 60), _m("a", "end", "2022-07-05", 58),  # last end counts
    _m("b", "start", "2022-04-11", 66),  # 100 days after the start: outside 90, inside 120
    _m("b", "end", "2022-07-01", 61),
    _m("c", "start", "2022-01-02", 65),  # running: no end yet
    _m("d", "end", "2022-07-02", 50),
])


def test_pairs_take_first_start_and_last_end_within_windows():
    inst = INSTRUMENTS["cbcl_6_18"]
    got = pairs(MEAS, TRAJ, inst, start_window_days=90, end_window_days=90).set_index("trajectory")
    assert list(got.index) == ["a"]
    assert (got.loc["a", "total_problems_start"], got.loc["a", "total_problems_end"]) == (70, 58)
    wider = pairs(MEAS, TRAJ, inst, start_window_days=120, end_window_days=90).set_index("trajectory")
    assert sorted(wider.index) == ["a", "b"] and wider.loc["b", "total_problems_start"] == 66
    four = pairs(MEAS, TRAJ, inst, start_window_days=120, end_window_days=4).set_index("trajectory")
    assert sorted(four.index) == ["a", "b"] and four.loc["a", "total_problems_end"] == 58  # 07-05: 4 days off
    three = pairs(MEAS, TRAJ, inst, start_window_days=120, end_window_days=3)
    assert list(three["trajectory"]) == ["b"]  # a's ends (06-20, 07-05) are both outside


def test_pair_windows_default_to_the_settings(monkeypatch):
    from ldj.settings import get_settings

    inst = INSTRUMENTS["cbcl_6_18"]
    monkeypatch.setenv("LDJ_OUTCOME_START_WINDOW_DAYS", "120")
    get_settings.cache_clear()
    try:
        assert sorted(pairs(MEAS, TRAJ, inst)["trajectory"]) == ["a", "b"]
        monkeypatch.setenv("LDJ_OUTCOME_START_WINDOW_DAYS", "90")
        get_settings.cache_clear()
        assert list(pairs(MEAS, TRAJ, inst)["trajectory"]) == ["a"]
    finally:
        get_settings.cache_clear()


def test_response_status_per_trajectory_and_informant():
    got = response_status(MEAS, TRAJ, ["parent", "youth"], 90, 90).set_index(["trajectory", "informant"])["status"]
    assert got[("a", "parent")] == "completer"
    assert got[("b", "parent")] == "end_only"  # its start is outside the window
    assert got[("c", "parent")] == "start_only"
    assert got[("d", "parent")] == "end_only"
    assert (got.xs("youth", level="informant") == "none").all() and len(got) == 8
    wide = response_status(MEAS, TRAJ, ["parent"], 120, 90).set_index("trajectory")["status"]
    assert wide["b"] == "completer"
    # completers are exactly the pre-post pairs
    assert set(wide[wide == "completer"].index) == set(pairs(MEAS, TRAJ, INSTRUMENTS["cbcl_6_18"], 120, 90)["trajectory"])


def test_response_eligibility_needs_an_end_and_the_instruments_ages():
    assert response_eligible(TRAJ, INSTRUMENTS["cbcl_6_18"]).tolist() == [True, True, False, False]
    assert response_eligible(TRAJ, INSTRUMENTS["satisfaction"]).tolist() == [True, True, False, True]


def test_vectorised_scale_values_pair_like_the_dicts():
    inst = INSTRUMENTS["cbcl_6_18"]
    rng = np.random.default_rng(3)
    n = 400
    traj = pd.DataFrame({"pseudonym": [f"t{i}" for i in range(100)], "start_date": pd.Timestamp("2020-01-01"),
                         "end_date": pd.Timestamp("2020-06-01")})
    rows = []
    for i in range(n):
        t = f"t{rng.integers(100)}"
        moment = rng.choice(["start", "end", "during"])
        date = pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(rng.integers(-30, 200)))
        scores = {s.code: {"raw": float(rng.integers(0, 20)), "t": None if rng.random() < 0.1 else float(rng.integers(50, 90)),
                           "band": "clinical"} for s in inst.scales if rng.random() < 0.9}
        rows.append({"trajectory": t, "informant": "parent", "moment": moment, "date": date, "scores": scores})
    m = pd.DataFrame(rows)
    expected = pairs(m, traj, inst, 90, 90).sort_values("trajectory").reset_index(drop=True)
    flat = pd.concat([m.drop(columns="scores"), scale_value_columns(m["scores"].tolist(), inst)], axis=1)
    got = pair_values(flat, traj, [s.code for s in inst.scales], 90, 90).sort_values("trajectory").reset_index(drop=True)
    assert len(got) == len(expected) > 10
    for s in inst.scales:
        for side in ("start", "end"):
            pd.testing.assert_series_equal(got[f"{s.code}_{side}"].astype(float), expected[f"{s.code}_{side}"].astype(float),
                                           check_names=False)
    firsts, lasts = first_and_last(flat, traj, 90, 90)
    assert firsts.groupby(["trajectory", "informant"]).size().max() == 1


# --- sufficient statistics, funnel for means -----------------------------------------------------

def test_change_from_sums_equals_change_on_raw_values():
    from scipy import stats

    rng = np.random.default_rng(5)
    start = pd.Series(rng.normal(65, 9, 200))
    end = start + rng.normal(-6, 8, 200)
    c = change(start, end)
    d = end - start
    got = change_from_sums([200], [start.sum()], [(start ** 2).sum()], [end.sum()], [d.sum()], [(d ** 2).sum()]).iloc[0]
    for k in ("mean_start", "mean_end", "mean_change", "ci_low", "ci_high", "sd_start", "effect_size"):
        assert got[k] == pytest.approx(getattr(c, k), rel=1e-9)
    low, high = stats.t.interval(0.95, 199, loc=d.mean(), scale=stats.sem(d))
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert math.isnan(mean_ci_from_sums([1], [5.0], [25.0])["ci_low"].iloc[0])


def test_wilson_matches_category_shares():
    low, high = wilson([30, 0], [100, 0])
    shares = category_shares(pd.Series(["recovered"] * 30 + ["no_reliable_change"] * 70)).set_index("category")
    assert low[0] == pytest.approx(shares.loc["recovered", "ci_low"]) and high[0] == pytest.approx(shares.loc["recovered", "ci_high"])
    assert math.isnan(low[1])


def test_funnel_limits_for_means_by_hand():
    got = funnel_limits_mean(-6.0, 8.0, [16, 64]).iloc[0]
    assert got["low_95"] == pytest.approx(-6 - 1.959964 * 2, abs=1e-5)
    assert got["high_99_8"] == pytest.approx(-6 + 3.090232 * 2, abs=1e-5)


def test_reliable_change_boundary_is_strict():
    scale = INSTRUMENTS["cbcl_6_18"].scale("total_problems")  # r .97
    s_diff = math.sqrt(2) * 10 * math.sqrt(1 - 0.97)
    start = pd.Series([60.0, 60.0, 60.0, 64.0, 64.0])
    end = pd.Series([60 - 1.96 * s_diff, 60 - 1.96 * s_diff - 0.01, 60 + 1.96 * s_diff + 0.01, 64 - 4.81, 64 - 4.80])
    band = lambda s: scale.band(s, "parent")  # noqa: E731
    got = categories(start, end, band(start), band(end), scale, sd_start=10.0).tolist()
    # exactly 1.96 is not reliable; T 64 is clinical, 59.19 normal: recovered only when the change is reliable
    assert got == ["no_reliable_change", "reliably_improved", "reliably_deteriorated", "recovered", "no_reliable_change"]


# --- case mix ------------------------------------------------------------------------------------

def _casemix_frame(seed=7, n=600):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"start": rng.normal(65, 9, n), "age": rng.integers(4, 18, n).astype(float),
                          "gender": rng.choice(["male", "female"], n), "intervention": rng.choice(["mst", "iag", "vib"], n),
                          "organisation": rng.choice(["ORG1", "ORG2", "ORG3"], n)})
    effect = frame["organisation"].map({"ORG1": -2.0, "ORG2": 0.0, "ORG3": 2.0})
    frame["end"] = (frame["start"] - 0.3 * (frame["start"] - 65) - 5 + 0.2 * frame["age"]
                    + np.where(frame["intervention"] == "mst", -2, 0) + effect + rng.normal(0, 5, n))
    return frame


def test_casemix_equals_least_squares_by_hand():
    from scipy import stats

    frame = _casemix_frame()
    model = casemix_fit(frame, "change")
    design = np.column_stack([np.ones(len(frame)), frame["start"], frame["age"], frame["gender"] == "male",
                              frame["intervention"] == "mst", frame["intervention"] == "vib"]).astype(float)
    y = frame["end"] - frame["start"]
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    np.testing.assert_allclose(model.expected.to_numpy(), design @ beta, rtol=1e-8)
    table = observed_minus_expected(frame, model).set_index("organisation")
    resid = y - design @ beta
    for org, part in resid.groupby(frame["organisation"]):
        low, high = stats.t.interval(0.95, len(part) - 1, loc=part.mean(), scale=stats.sem(part))
        assert table.loc[org, "difference"] == pytest.approx(part.mean())
        assert (table.loc[org, "ci_low"], table.loc[org, "ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert table.loc[org, "observed"] - table.loc[org, "expected"] == pytest.approx(part.mean())
    # the built-in organisation effects come out in order: ORG1 improves more than expected
    assert table.loc["ORG1", "difference"] < 0 < table.loc["ORG3", "difference"]
    # T_end given T_start gives the same observed - expected
    end_model = casemix_fit(frame, "end")
    np.testing.assert_allclose(observed_minus_expected(frame, end_model)["difference"], table["difference"], atol=1e-9)


def test_casemix_fits_only_the_chosen_rows_and_skips_unknown_levels():
    frame = _casemix_frame(n=300)
    frame.loc[0, "intervention"] = "kamertraining"  # only in a row left out of the fit
    fit = pd.Series(True, index=frame.index)
    fit[:10] = False
    model = casemix_fit(frame, "change", fit=fit)
    assert model.result.nobs == 290 and math.isnan(model.expected[0]) and not math.isnan(model.expected[1])
