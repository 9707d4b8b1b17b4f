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
