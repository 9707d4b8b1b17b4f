"""Disclosure control for every aggregate that leaves the platform (brief section 5).

Scalars: `controlled_count` suppresses a count of fewer than `disclosure_threshold` clients (0
included: a lone "0" versus "< 10" from a freely filtered feasibility count would tell whether
anybody matches) and rounds the rest half up to a multiple of `disclosure_rounding`.

Tables: `suppress` applies primary and secondary suppression to a table of cells, one row per cell,
the cell's number of distinct clients in column `n`, optional margin rows holding `total` in one or
more dims (`with_margins` adds them).

- Primary: 0 < n < threshold. A cell with n == 0 is published as 0 (not suppressed): an empty cell
  says nothing about a person, most zeros in these tables are structural (a teacher does not fill in
  the OBVL), and hiding them would force needless secondary suppressions. The price is that a reader
  knows every hidden cell holds at least one client; the audit below takes that into account.
- Secondary: a "line" is every cell sharing the values of all dims but one, its margin cell
  included. No line may hold exactly one suppressed non-zero cell: the smallest other non-zero cell
  of that line is suppressed too (cells at the finest level first, margins last), for every dim,
  until stable. Lines are protected even when their margin row is not in the table, because totals
  are often published elsewhere (a scalar on the same page).
- Audit: the line rule is necessary, not sufficient (two suppressed rectangles joined by one cell
  give that cell away). Every suppressed cell is therefore checked with integer programming against
  what a reader knows: the published cells, the margins (an equation where the margin is the sum of
  its line, inequalities `cell <= margin <= sum` where it is a count of distinct clients) and
  "hidden cells are not zero". A cell whose smallest and largest possible values coincide, or whose
  largest possible value is under the threshold (a reader would know it holds a small group: nine
  hidden years of a row whose total is 15 each hold 1 to 7), gets a further secondary suppression
  in one of its lines; repeated until every hidden cell has at least two possible values and can be
  as large as the threshold. The audit uses exact counts, so rounding is extra protection, not
  relied on.

What is published may differ from what drives suppression: pass `value="questionnaires"` to publish
(rounded) questionnaire counts for cells whose suppression is decided by their distinct clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse.csgraph import connected_components

from .settings import Settings, get_settings

SUPPRESSED = None  # what a suppressed cell becomes; the portal shows "te weinig gegevens"
TOTAL = "__total__"
OUTPUT_COLUMNS = ("n_published", "suppressed", "suppression")


def rounded(n: int, settings: Settings | None = None) -> int:
    """`n` rounded half up to a multiple of `disclosure_rounding` (no threshold check)."""
    base = (settings or get_settings()).disclosure_rounding
    return int((n + base / 2) // base * base) if base > 1 else int(n)


def controlled_count(n: int | None, settings: Settings | None = None) -> int | None:
    """A count safe to publish: None below the threshold, else rounded (half up) to the base."""
    settings = settings or get_settings()
    if n is None or n < settings.disclosure_threshold:
        return SUPPRESSED
    return rounded(n, settings)


def differences_safe(slices: Sequence[int], settings: Settings | None = None, *, empty_is_safe: bool = True) -> bool:
    """True when every group a reader could isolate by subtracting two published counts (the
    `slices`, in distinct clients) is at least `disclosure_threshold` clients, or empty when
    `empty_is_safe`. Where a reader chooses the groups freely (feasibility counts) pass
    `empty_is_safe=False`: a group that is empty must be answered as a small one, else the
    answer tells "none" from "a few"."""
    threshold = (settings or get_settings()).disclosure_threshold
    return all((n == 0 and empty_is_safe) or n >= threshold for n in slices)


def with_margins(frame: pd.DataFrame, n: str, dims: Sequence[str], *, total: str = TOTAL,
                 margins: pd.DataFrame | None = None) -> pd.DataFrame:
    """`frame` (one row per finest cell) plus a margin row for every combination of dims set to `total`.

    Margin values are sums of the cells over the totalled dims, for `n` and every other numeric
    column. That is right for additive counts (questionnaires) but NOT for distinct clients: a client
    seen at start and at end is one client in the moment margin, not two. Pass the real margin counts
    in `margins` (rows keyed by the dims, `total` where totalled; any subset of the columns): they
    replace the sums. Rows of `frame` that already hold `total` are replaced.
    """
    dims = list(dims)
    is_margin = np.zeros(len(frame), dtype=bool)
    for d in dims:
        is_margin |= (frame[d] == total).to_numpy()
    cells = frame.loc[~is_margin]
    numeric = [c for c in cells.columns if c not in dims and pd.api.types.is_numeric_dtype(cells[c])
               and not pd.api.types.is_bool_dtype(cells[c])]
    if n not in numeric:
        numeric.append(n)
    parts = [cells.astype({d: object for d in dims})]
    for k in range(1, len(dims) + 1):
        for totalled in combinations(dims, k):
            kept = [d for d in dims if d not in totalled]
            if kept:
                summed = cells.groupby(kept, dropna=False, sort=True)[numeric].sum().reset_index()
            else:
                summed = cells[numeric].sum().to_frame().T
            for d in totalled:
                summed[d] = total
            parts.append(summed[dims + numeric].astype({d: object for d in dims}))
    out = pd.concat(parts, ignore_index=True)
    for c in numeric:
        if pd.api.types.is_integer_dtype(cells[c]):
            out[c] = out[c].astype(cells[c].dtype)
    if margins is not None and len(margins):
        given = margins.astype({d: object for d in dims}).set_index(dims)
        out = out.set_index(dims)
        new = given.index.difference(out.index)
        if len(new):
            out = pd.concat([out, given.loc[new].reindex(columns=out.columns)])
        common = given.index.intersection(out.index)
        for c in given.columns:
            if c in out.columns:
                out.loc[common, c] = given.loc[common, c].to_numpy()
        out = out.reset_index()
    return out


def suppress(table: pd.DataFrame, n: str, dims: Sequence[str], *, settings: Settings | None = None,
             total: str = TOTAL, value: str | None = None, hide: Sequence[bool] | None = None) -> pd.DataFrame:
    """The table with `n_published` (Int64, <NA> when hidden), `suppressed` and `suppression`.

    `suppression` is '' (published), 'primary' (0 < n < threshold) or 'secondary' (hidden so the
    primary cells cannot be recovered by subtraction); see the module doc. `n_published` is the
    rounded `value` column when given (suppression is still decided by `n`), else the controlled `n`.
    `hide` (one flag per row) hides non-zero cells in any case, as secondary: for a margin that
    another published table shares and hides.
    """
    settings = settings or get_settings()
    dims = list(dims)
    out = table.drop(columns=[c for c in OUTPUT_COLUMNS if c in table.columns]).reset_index(drop=True)
    counts = out[n]
    if counts.isna().any():
        raise ValueError(f"column {n!r} has missing counts")
    counts = counts.astype("int64").to_numpy()
    shown = (out[value] if value else out[n]).astype("int64").to_numpy()
    markers = np.zeros(len(out), dtype=int)
    for d in dims:
        markers += (out[d] == total).to_numpy()
    order = np.lexsort((np.arange(len(out)), counts, markers))  # finest first, then smallest
    rank = np.empty(len(out), dtype=int)
    rank[order] = np.arange(len(out))

    primary = (counts > 0) & (counts < settings.disclosure_threshold)
    hidden = primary.copy()
    if hide is not None:
        hidden |= np.asarray(hide, dtype=bool) & (counts > 0)
    lines = _lines(out, dims, total)

    small_known: set[int] = set()  # known to be small, nothing left to hide in their lines: accepted
    while True:
        _protect_lines(lines, hidden, counts, rank)
        exposed = _exposed(lines, hidden, shown, counts, settings.disclosure_threshold, small_known)
        if exposed is None:
            break
        row, exact = exposed
        if not _widen(row, lines, hidden, counts, rank):
            if not exact:  # its lines are all hidden: widen a line of a neighbour, else accept it
                neighbours = np.unique(np.concatenate([line.members for line in lines if row in line.members]))
                if not any(_widen(int(r), lines, hidden, counts, rank) for r in neighbours if r != row):
                    small_known.add(row)
                continue
            hidden[:] = counts > 0  # nothing left to add: hide every non-zero cell
            break

    out["n_published"] = pd.array(
        [pd.NA if h else (rounded(int(v), settings) if value else controlled_count(int(c), settings) or 0)
         for h, v, c in zip(hidden, shown, counts, strict=True)], dtype="Int64")
    out["suppressed"] = hidden
    out["suppression"] = np.where(primary, "primary", np.where(hidden, "secondary", ""))
    return out


class _Line:
    __slots__ = ("cells", "margin")

    def __init__(self, cells: np.ndarray, margin: int | None):
        self.cells = cells  # row positions of the non-margin cells of the line
        self.margin = margin  # row position of the line's margin cell, when in the table

    @property
    def members(self) -> np.ndarray:
        return self.cells if self.margin is None else np.append(self.cells, self.margin)


def _lines(frame: pd.DataFrame, dims: list[str], total: str) -> list[_Line]:
    lines = []
    for d in dims:
        others = [o for o in dims if o != d]
        groups = (frame.groupby(others, dropna=False, sort=False).indices if others
                  else {(): np.arange(len(frame))})
        is_total = (frame[d] == total).to_numpy()
        for rows in groups.values():
            rows = np.asarray(rows)
            margin = rows[is_total[rows]]
            lines.append(_Line(rows[~is_total[rows]], int(margin[0]) if len(margin) else None))
    return [line for line in lines if len(line.members) > 1]


def _protect_lines(lines: list[_Line], hidden: np.ndarray, counts: np.ndarray, rank: np.ndarray) -> None:
    """No line keeps exactly one hidden non-zero cell.

    Of a line's candidates, the one that repairs most of its other lines (those with one hidden
    cell) and opens fewest new ones (those with none) goes first, then the finest and smallest.
    """
    through: dict[int, list[int]] = {}
    for i, line in enumerate(lines):
        for r in line.members:
            through.setdefault(int(r), []).append(i)

    def hidden_in(i: int) -> int:
        members = lines[i].members
        return int(np.count_nonzero(hidden[members] & (counts[members] > 0)))

    changed = True
    while changed:
        changed = False
        for i, line in enumerate(lines):
            if hidden_in(i) != 1:
                continue
            members = line.members
            candidates = members[~hidden[members] & (counts[members] > 0)]
            if not len(candidates):
                continue

            def cost(r: int, i: int = i) -> tuple[int, int]:
                effect = sum({0: 1, 1: -1}.get(hidden_in(j), 0) for j in through[int(r)] if j != i)
                return effect, int(rank[r])

            hidden[min(candidates, key=cost)] = True
            changed = True


def _exposed(lines: list[_Line], hidden: np.ndarray, shown: np.ndarray, counts: np.ndarray,
             threshold: int, small_known: set[int]) -> tuple[int, bool] | None:
    """(row, exact) of a hidden cell whose value a reader can work out from the published table
    (exact), or whose every possible value lies under the threshold (a small group, even if not its
    exact size; rows in `small_known` are not reported again), or None."""
    hidden_rows = np.flatnonzero(hidden & (counts > 0))
    if not len(hidden_rows):
        return None
    var = {row: i for i, row in enumerate(hidden_rows)}
    a_eq, b_eq, a_ub, b_ub = [], [], [], []

    def side(rows: np.ndarray) -> tuple[np.ndarray, float]:
        coef = np.zeros(len(var))
        known = 0.0
        for r in rows:
            if r in var:
                coef[var[r]] += 1
            else:
                known += shown[r]
        return coef, known

    for line in lines:
        if line.margin is None or not hidden[line.members].any():
            continue
        cells, known = side(line.cells)
        margin, margin_known = side(np.array([line.margin]))
        if shown[line.cells].sum() == shown[line.margin]:  # additive: sum of cells == margin
            a_eq.append(cells - margin)
            b_eq.append(margin_known - known)
        else:  # distinct counts: every cell <= margin <= sum of cells
            a_ub.append(margin - cells)
            b_ub.append(known - margin_known)
            for r in line.cells:
                cell, cell_known = side(np.array([r]))
                if cell.any() or margin.any():
                    a_ub.append(cell - margin)
                    b_ub.append(margin_known - cell_known)
    if not a_eq and not a_ub:
        return None
    row_of = {i: row for row, i in var.items()}
    try:  # exposed when its value is both the max and the min, or surely small; the first one found
        for i, extreme in _extremes(np.array(a_eq) if a_eq else None, np.array(b_eq) if b_eq else None,
                                    np.array(a_ub) if a_ub else None, np.array(b_ub) if b_ub else None,
                                    np.ones(len(var)), np.full(len(var), np.inf)):
            row = row_of[i]
            high = extreme(-1)
            if high < threshold and int(row) not in small_known:
                return int(row), high == shown[row] and extreme(1) == high
            if high == shown[row] and extreme(1) == high:
                return int(row), True
    except ValueError as exc:  # the true values satisfy what a reader knows, so this is a bug
        raise RuntimeError(f"disclosure audit failed: {exc}") from None
    return None


def ranges(a_eq, b_eq, a_ub, b_ub, lower, upper) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest value each integer unknown x can take given what a reader knows:
    `a_eq @ x == b_eq`, `a_ub @ x <= b_ub`, `lower <= x <= upper` (matrices dense or sparse, or
    None; `upper` may be inf). The suppression audit asks this of a table; an attacker's model of
    everything published asks it too (tests/test_differencing.py). Unknowns that share no relation
    are solved apart (one small integer program per connected group). `high` is inf where
    unbounded. Raises ValueError when no integer point satisfies the relations."""
    low, high = np.asarray(lower, dtype=float).copy(), np.asarray(upper, dtype=float).copy()
    for i, extreme in _extremes(a_eq, b_eq, a_ub, b_ub, lower, upper):
        high[i], low[i] = extreme(-1), extreme(1)
    return low, high


def _extremes(a_eq, b_eq, a_ub, b_ub, lower, upper):
    """Per unknown i that shares a relation: (i, extreme), where extreme(1) is its smallest and
    extreme(-1) its largest integer value (solved when asked: the audit often needs only one)."""
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    size = len(lower)
    blocks = [(sparse.csr_array(a), np.asarray(b, dtype=float), kind) for a, b, kind in
              ((a_eq, b_eq, "eq"), (a_ub, b_ub, "ub")) if a is not None and np.shape(a)[0]]
    incidence = sparse.vstack([abs(a) for a, _, _ in blocks] or [sparse.csr_array((0, size))]).tocsr()
    link = (incidence.T @ incidence) + sparse.identity(size, format="csr")
    _, group = connected_components(link, directed=False)
    for g in np.unique(group):
        cols = np.flatnonzero(group == g)
        constraints = []
        for a, b, kind in blocks:
            sub = a[:, cols]
            touched = np.flatnonzero(abs(sub).sum(axis=1))
            if len(touched):
                rhs = b[touched]
                constraints.append(LinearConstraint(sub[touched], rhs if kind == "eq" else -np.inf, rhs))
        if not constraints:
            continue
        bounds, integral = Bounds(lower[cols], upper[cols]), np.ones(len(cols))
        feasible = milp(np.zeros(len(cols)), constraints=constraints, bounds=bounds, integrality=integral)
        if feasible.status == 2 or feasible.x is None:
            raise ValueError(f"no integer solution: {feasible.message}")
        for k in range(len(cols)):
            yield int(cols[k]), _extreme_of(k, len(cols), constraints, bounds, integral)


def _extreme_of(k: int, size: int, constraints, bounds, integral):
    def extreme(sign: int) -> float:
        objective = np.zeros(size)
        objective[k] = sign
        solved = milp(objective, constraints=constraints, bounds=bounds, integrality=integral)
        if solved.status == 3 or "unbounded" in solved.message.lower():  # feasible (checked), so unbounded
            return -np.inf if sign > 0 else np.inf
        if solved.status != 0:
            raise RuntimeError(f"integer program failed: {solved.message}")
        return float(round(sign * solved.fun))
    return extreme


def _widen(row: int, lines: list[_Line], hidden: np.ndarray, counts: np.ndarray, rank: np.ndarray) -> bool:
    """Hide one more cell in a line through `row`: the finest, smallest available."""
    candidates = np.unique(np.concatenate([line.members for line in lines if row in line.members]))
    candidates = candidates[~hidden[candidates] & (counts[candidates] > 0)]
    if not len(candidates):
        return False
    hidden[candidates[np.argmin(rank[candidates])]] = True
    return True
