"""Disclosure control: thresholds, rounding, primary and secondary suppression, margins."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from ldj.disclosure import TOTAL, controlled_count, ranges, rounded, suppress, with_margins
from ldj.settings import Settings

EXACT = Settings(disclosure_threshold=10, disclosure_rounding=1)
DEFAULT = Settings(disclosure_threshold=10, disclosure_rounding=5)


def grid(values: list[list[int]], rows="abc", cols="xyz") -> pd.DataFrame:
    return pd.DataFrame([{"r": r, "c": c, "n": values[i][j]}
                         for i, r in enumerate(rows) for j, c in enumerate(cols)])


def line_equations(table: pd.DataFrame, dims: list[str]):
    """Every complete line as (cell rows, margin row): sum of cells == margin."""
    out = []
    for d in dims:
        others = [o for o in dims if o != d]
        groups = table.groupby(others[0] if len(others) == 1 else others).groups if others else {(): table.index}
        for rows in groups.values():
            part = table.loc[rows]
            margin = part.index[part[d] == TOTAL]
            if len(margin):
                out.append((list(part.index[part[d] != TOTAL]), margin[0]))
    return out


def brute_force_values(published: pd.DataFrame, dims: list[str], upper: int) -> dict[int, set[int]]:
    """Every value each hidden cell can take, given the published cells and margins: all integer
    assignments 1..upper of the hidden cells (zeros are published, so hidden cells are >= 1) that
    satisfy every line sum, enumerated."""
    hidden = list(published.index[published["suppressed"]])
    known = published["n_published"]
    equations = line_equations(published, dims)
    grids = np.array(list(itertools.product(range(1, upper + 1), repeat=len(hidden))))
    value = {row: grids[:, k] for k, row in enumerate(hidden)}
    ok = np.ones(len(grids), dtype=bool)
    for cells, margin in equations:
        total = sum(value[r] if r in value else int(known[r]) for r in cells)
        ok &= total == (value[margin] if margin in value else int(known[margin]))
    return {row: set(value[row][ok].tolist()) for row in hidden}


def lp_range(published: pd.DataFrame, exact: pd.Series, dims: list[str], row: int) -> tuple[int, int]:
    """Smallest and largest integer value of one hidden cell given the published table (independent
    check with scipy's MILP, equations from every complete line)."""
    hidden = list(published.index[published["suppressed"]])
    index = {r: k for k, r in enumerate(hidden)}
    a, b = [], []
    for cells, margin in line_equations(published, dims):
        coef, rhs = np.zeros(len(hidden)), 0
        for r in cells:
            if r in index:
                coef[index[r]] += 1
            else:
                rhs -= exact[r]
        if margin in index:
            coef[index[margin]] -= 1
        else:
            rhs += exact[margin]
        if coef.any():
            a.append(coef)
            b.append(rhs)
    objective = np.zeros(len(hidden))
    objective[index[row]] = 1
    kwargs = dict(A_eq=np.array(a), b_eq=np.array(b), bounds=[(1, None)] * len(hidden),
                  integrality=np.ones(len(hidden)))
    low, high = linprog(objective, **kwargs), linprog(-objective, **kwargs)
    return round(low.fun), (round(-high.fun) if high.fun is not None else np.inf)  # None: unbounded


def test_three_by_three_with_margins_hand_worked():
    cells = grid([[11, 3, 14], [12, 10, 16], [20, 18, 13]])
    table = with_margins(cells, "n", ["r", "c"])
    assert len(table) == 16
    out = suppress(table, "n", ["r", "c"], settings=EXACT)
    hidden = {(r, c): s for r, c, s in out.loc[out.suppressed, ["r", "c", "suppression"]].itertuples(index=False)}
    # (a,y)=3 is primary. Row a then hides its smallest other cell (a,x)=11; column y its smallest
    # other cell (b,y)=10; column x is closed by (b,x)=12, which also closes row b: a 2x2 rectangle.
    assert hidden == {("a", "y"): "primary", ("a", "x"): "secondary", ("b", "y"): "secondary",
                      ("b", "x"): "secondary"}
    assert not out.loc[out.r.eq(TOTAL) | out.c.eq(TOTAL), "suppressed"].any()
    # Published values are the exact counts (rounding 1), hidden ones <NA>.
    assert out.loc[~out.suppressed, "n_published"].tolist() == out.loc[~out.suppressed, "n"].tolist()
    assert out.loc[out.suppressed, "n_published"].isna().all()

    solutions = brute_force_values(out, ["r", "c"], upper=30)
    for row, values in solutions.items():
        assert out.at[row, "n"] in values
        assert len(values) >= 2, f"hidden cell {out.loc[row, ['r', 'c']].tolist()} is recoverable"
    # Concretely: one degree of freedom t around the rectangle, (a,y) = 3 + t, (b,y) = 10 - t >= 1.
    assert solutions[out.index[(out.r == "a") & (out.c == "y")][0]] == set(range(1, 13))


def test_line_rule_alone_is_not_enough_the_audit_widens():
    # Two primary 1s in one row: the line rule is satisfied (two hidden cells), but a reader knows
    # hidden cells are >= 1 (zeros are published), so 52 - 50 = 2 = 1 + 1 gives both away.
    table = with_margins(pd.DataFrame({"r": ["a", "b", "c"], "n": [1, 1, 50]}), "n", ["r"])
    out = suppress(table, "n", ["r"], settings=EXACT)
    assert out.suppression.tolist() == ["primary", "primary", "secondary", ""]
    solutions = brute_force_values(out, ["r"], upper=60)
    assert all(len(values) >= 2 for values in solutions.values())


def test_bridged_rectangles_are_caught():
    # Primary cells forming two 2x2 rectangles joined by one cell: every line holds 0 or >= 2 hidden
    # cells, yet rows 1+2 minus columns 1+2 give the joining cell (1,3) exactly.
    small = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (0, 2)}
    values = [[3 if (i, j) in small else 40 + 7 * i + j for j in range(4)] for i in range(4)]
    cells = grid(values, rows="ABCD", cols="wxyz")
    table = with_margins(cells, "n", ["r", "c"])
    out = suppress(table, "n", ["r", "c"], settings=EXACT)
    assert (out.suppression == "primary").sum() == 9
    assert (out.suppression == "secondary").sum() >= 1
    for row in out.index[out.suppressed]:
        low, high = lp_range(out, out["n"], ["r", "c"], row)
        assert low < high, f"hidden cell {out.loc[row, ['r', 'c']].tolist()} is recoverable"


def test_three_dimensional_table_is_protected():
    rng = np.random.default_rng(7)
    rows = [{"i": i, "f": f, "m": m, "n": int(rng.choice([0, 0, 2, 6, 15, 40, 300]))}
            for i, f, m in itertools.product(range(4), range(3), range(3))]
    table = with_margins(pd.DataFrame(rows), "n", ["i", "f", "m"])
    assert len(table) == 5 * 4 * 4
    out = suppress(table, "n", ["i", "f", "m"], settings=DEFAULT)
    assert (out.suppression == "primary").eq((out.n > 0) & (out.n < 10)).all()
    for line_cells, margin in line_equations(out, ["i", "f", "m"]):
        members = [*line_cells, margin]
        assert (out.loc[members, "suppressed"] & (out.loc[members, "n"] > 0)).sum() != 1
    for row in out.index[out.suppressed]:
        low, high = lp_range(out, out["n"], ["i", "f", "m"], row)
        assert low < high and high >= 10  # never pinned, and never surely small


@pytest.mark.parametrize("threshold, base, n, expected", [
    (10, 5, 9, None), (10, 5, 10, 10), (10, 5, 12, 10), (10, 5, 13, 15),
    (5, 1, 5, 5), (5, 1, 4, None), (3, 10, 14, 10), (3, 10, 15, 20)])
def test_threshold_and_rounding_settings_are_honoured(threshold, base, n, expected):
    settings = Settings(disclosure_threshold=threshold, disclosure_rounding=base)
    assert controlled_count(n, settings) == expected
    table = pd.DataFrame({"r": ["a", "b", "c"], "n": [n, 500, 600]})
    out = suppress(table, "n", ["r"], settings=settings)
    published = out.n_published.iloc[0]
    assert (None if pd.isna(published) else published) == expected
    assert out.suppressed.iloc[1] == (expected is None)  # the secondary partner of a hidden cell
    assert out.n_published.iloc[2] == rounded(600, settings) == controlled_count(600, settings)


def test_zero_is_published_and_never_protects():
    cells = grid([[0, 4, 30], [0, 25, 40], [0, 35, 50]])
    out = suppress(with_margins(cells, "n", ["r", "c"]), "n", ["r", "c"], settings=EXACT)
    zeros = out.n == 0
    assert (out.loc[zeros, "n_published"] == 0).all() and not out.loc[zeros, "suppressed"].any()
    # Row a's only other non-zero cell is (a,z): it is hidden, not the zero (a,x).
    assert out.loc[(out.r == "a") & (out.c == "z"), "suppression"].item() == "secondary"
    for values in brute_force_values(out, ["r", "c"], upper=40).values():
        assert len(values) >= 2
    # A scalar 0 stays suppressed: from a freely filtered count, 0 versus "< 10" tells whether anyone matches.
    assert controlled_count(0, EXACT) is None


def test_idempotent():
    table = with_margins(grid([[11, 3, 14], [12, 10, 16], [20, 18, 13]]), "n", ["r", "c"])
    once = suppress(table, "n", ["r", "c"], settings=DEFAULT)
    twice = suppress(once, "n", ["r", "c"], settings=DEFAULT)
    pd.testing.assert_frame_equal(once, twice)


def test_lines_without_margin_rows_are_still_protected():
    out = suppress(pd.DataFrame({"r": list("abc"), "n": [4, 20, 30]}), "n", ["r"], settings=EXACT)
    assert out.suppression.tolist() == ["primary", "secondary", ""]


def test_published_value_differs_from_the_suppression_count():
    cells = pd.DataFrame({"r": list("abc"), "clients": [4, 20, 30], "questionnaires": [11, 52, 64]})
    table = with_margins(cells, "clients", ["r"])
    assert table.loc[table.r == TOTAL, "questionnaires"].item() == 127
    out = suppress(table, "clients", ["r"], settings=DEFAULT, value="questionnaires")
    # (a) has 4 clients though 11 questionnaires: hidden, and (b) with it.
    assert out.suppression.tolist() == ["primary", "secondary", "", ""]
    assert out.n_published.tolist()[2:] == [65, 125]


def test_with_margins_takes_real_distinct_counts():
    cells = pd.DataFrame({"instrument": ["cbcl", "cbcl", "sdq", "sdq"], "moment": ["start", "end"] * 2,
                          "clients": [40, 30, 25, 3]})
    summed = with_margins(cells, "clients", ["instrument", "moment"])
    key = (summed.instrument == "cbcl") & (summed.moment == TOTAL)
    assert summed.loc[key, "clients"].item() == 70
    # 30 of the cbcl clients were measured at start and at end: 40 distinct, not 70.
    real = pd.DataFrame({"instrument": ["cbcl", "sdq", TOTAL, TOTAL, TOTAL],
                         "moment": [TOTAL, TOTAL, "start", "end", TOTAL], "clients": [40, 25, 60, 32, 61]})
    table = with_margins(cells, "clients", ["instrument", "moment"], margins=real)
    assert len(table) == 9
    assert table.loc[key, "clients"].item() == 40
    assert table.loc[(table.instrument == TOTAL) & (table.moment == TOTAL), "clients"].item() == 61
    out = suppress(table, "clients", ["instrument", "moment"], settings=EXACT)
    assert out.loc[(out.instrument == "sdq") & (out.moment == "end"), "suppression"].item() == "primary"
    # The sdq row's margin (25) is not a sum, so its other cell alone would not protect the 3 by
    # subtraction; with distinct counts a reader still bounds cells by their margins: the audit
    # keeps every hidden cell with at least two possible values.
    assert out.suppressed.sum() >= 2


def test_a_table_whose_total_is_itself_small_is_hidden_whole_without_failing():
    table = pd.DataFrame({"d": ["a", "b", "c", TOTAL], "n": [3, 4, 0, 7]})
    out = suppress(table, "n", ["d"], settings=Settings(_env_file=None))
    assert out["n_published"].isna().tolist() == [True, True, False, True]
    assert out.loc[2, "n_published"] == 0


def test_ranges_solve_what_a_reader_can_work_out():
    # x0 + x1 == 10 (both hidden, not zero); x2 alone in [2, 5]; x3 + x4 <= 3 with x3 >= 2
    a_eq, b_eq = np.array([[1, 1, 0, 0, 0]]), np.array([10])
    a_ub, b_ub = np.array([[0, 0, 0, 1, 1]]), np.array([3])
    low, high = ranges(a_eq, b_eq, a_ub, b_ub, [1, 1, 2, 2, 0], [np.inf] * 5)
    assert low.tolist()[:2] == [1, 1] and high.tolist()[:2] == [9, 9]
    assert (low[2], high[2]) == (2, np.inf)  # no relation: its own bounds
    assert (low[3], high[3], low[4], high[4]) == (2, 3, 0, 1)
    with pytest.raises(ValueError, match="no integer solution"):
        ranges(a_eq, np.array([1]), None, None, [1, 1, 0, 0, 0], [np.inf] * 5)


def test_hidden_cells_that_are_surely_small_are_widened():
    """Two small cells hidden together with a published rest: their sum (7) says both are small."""
    table = with_margins(pd.DataFrame({"d": ["a", "b", "c"], "n": [3, 4, 30]}), "n", ["d"])
    out = suppress(table, "n", ["d"], settings=DEFAULT)
    assert out.loc[out.d == "c", "suppressed"].item(), "the large cell is hidden too"
    for row in out.index[out.suppressed]:
        assert lp_range(out, out["n"], ["d"], row)[1] >= 10
