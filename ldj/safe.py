"""Output checking in the workspace: tables, regressions and histograms checked before they leave.

The interface is ACRO 1.0's (SACRO), so researchers who know it need nothing new, and it mirrors pandas
and statsmodels: `crosstab`, `pivot_table`, `ols`, `olsr`, `logit` (and `logitr`, `probit`, `probitr`),
`hist`, `custom_output`, `add_comments`, `add_exception`, `rename_output`, `remove_output`, `outputs`,
`finalise`. Module-level functions use one session on `LDJ_OUTPUT_DIR`; `ACRO(suppress=True)` (an
`OutputSession`) gives one of your own, as in ACRO. Every call computes the result with pandas or
statsmodels, checks it, returns it unchanged (or suppressed, when asked), and writes it as an output.

`submit(title, description, project=None)` (or `finalise(title=..., description=...)`) then sends the
finalised folder from the workspace to the data service (`POST api/projects/<project>/releases`, with
the workspace's own hub token), which makes it a release request for the output checkers (ldj.airlock).

Rules (settings `LDJ_SAFE_*`, ACRO's defaults; docs/airlock.md has the table):

- threshold: a cell with 1 to `safe_threshold` - 1 contributors fails (10 passes, 9 fails).
- zeros: a cell without contributors (a count of 0, an empty magnitude cell) goes to review when
  `safe_zeros_review`; it is not a threshold failure (it says nothing about a person, but a checker
  confirms it is structural).
- magnitude tables (an aggregate of `values`: mean, median, sum, std):
  - nk-rule: the `safe_nk_n` largest contributions make up `safe_nk_k` of the cell's total or more:
    fail (exactly 90% fails; ACRO's own code fails only above 90%);
  - p-ratio: (total - largest - second largest) / largest < `safe_p_ratio`: fail (exactly 10% passes);
  - all-values-are-same: two or more contributors, all with the same value: fail;
  - negative: a negative value in the cell: review (nk and p% are then applied to the contributions'
    absolute values, as the SDC handbook advises for variables that can be negative: a change score);
  - missing: missing values in the cell: review (they are left out of the statistic).
- dof: a regression with fewer than `safe_min_dof` residual degrees of freedom fails.
- histogram: a bin with 1 to `safe_threshold` - 1 values fails, an empty bin is a zero; a histogram
  without failing bins still goes to review (extremes: its axis shows the minimum and maximum, as ACRO).
- custom: a file added with `custom_output` is always review.

A contributor is a row, as in ACRO, unless a call names `contributors=` (a client pseudonym): then a
cell counts distinct contributors and each one's values are summed before nk and p% are applied.

Status of an output: `fail` when a fail rule holds for a cell that is shown; else `review` when any
finding (a review rule, or a failing cell that was suppressed); else `pass`. `suppress=True` masks
failing cells with NaN, and with them the margins of their rows and columns and the grand total (so
no margin gives a hidden cell back); the table then goes to review with a `suppression` finding.

Files in the output folder, each name a short slug (`output_1`, renamed as you like):

- `<name>.csv` (tables), `<name>.txt` (regression summary), `<name>.png` (histogram; `<name>.csv`
  with the bins when matplotlib is missing), `<name><ext>` (custom outputs);
- `<name>.meta.json`, the metadata the checks re-run from (`ldj airlock check`)::

    {"format": "ldj.safe/1", "name": "output_1", "sequence": 1, "kind": "table|regression|histogram|custom",
     "method": "crosstab", "created": "2026-12-05T10:00:00+00:00",
     "files": {"output_1.csv": "<sha256>"},        # a file changed afterwards sends it to review
     "checks": {...},                               # the numbers the rules need, below
     "status": "fail", "reasons": [...],            # as found when written, with the settings then
     "rules": {"safe_threshold": 10, ...},
     "comments": ["..."], "exception": "why a failing cell is acceptable" | null}

  `checks` holds counts and ratios, never a person's value: tables `{"magnitude": bool, "nk_n": 2,
  "cells": [{"row": [...], "column": [...], "margin": bool, "n": contributors, and for magnitude
  tables "missing", "negative", "nk_share", "p_ratio", "all_same"}], "masked": [cell refs]}`;
  regressions `{"model": "OLS", "nobs", "dof_resid", "params"}`; histograms `{"counts": [...],
  "edges": [...]}`; custom outputs `{"original": "file name"}`.
- `manifest.json`, written by `finalise()`, what a release request reads::

    {"format": "ldj.safe.manifest/1", "created": "...", "rules": {...},
     "counts": {"pass": 1, "fail": 0, "review": 2},
     "outputs": [{"name", "kind", "method", "status", "reasons", "comments", "exception",
                  "metadata": "output_1.meta.json", "files": [{"name": "output_1.csv", "sha256": "..."}]}]}

A reason is `{"rule": name, "outcome": "fail"|"review", ...}` with `cells` (tables: `row`, `column`
and the figure concerned: `n`, `nk_share`, `p_ratio`, `missing`, `negative`), `bins` (histograms) or
`figures` (regressions, custom outputs); `"suppressed": true` marks failing cells that were masked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from .i18n import t
from .paths import within
from .settings import Settings, get_settings

FORMAT = "ldj.safe/1"
MANIFEST_FORMAT = "ldj.safe.manifest/1"
MANIFEST = "manifest.json"
META_SUFFIX = ".meta.json"
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")
KINDS = ("table", "regression", "histogram", "custom")
FAIL_RULES = ("threshold", "nk-rule", "p-ratio", "all-values-are-same", "dof")
RULE_ORDER = ("threshold", "nk-rule", "p-ratio", "all-values-are-same", "dof", "zeros", "missing", "negative",
              "extremes", "custom", "suppression", "settings", "changed", "no-metadata", "bad-metadata")
FREQUENCY_AGGFUNCS = ("count", "size")
MAGNITUDE_AGGFUNCS = ("mean", "median", "sum", "std")
RULE_SETTINGS = ("safe_threshold", "safe_p_ratio", "safe_nk_n", "safe_nk_k", "safe_min_dof", "safe_zeros_review")
SUBMIT_TIMEOUT = 300  # seconds for the data service to take a release request (an upload of up to LDJ_RELEASE_MAX_MB)
EPSILON = 1e-12  # "exactly 90%" and "exactly 10%" stay exact through floating point


class OutputError(ValueError):
    """A call ldj.safe cannot record: a bad name, an unknown output, an unsupported aggregate."""


# --- the rules: from the recorded numbers to findings -----------------------------------------

def evaluate(meta: dict, settings: Settings | None = None, folder: Path | None = None) -> tuple[str, list[dict]]:
    """Status and reasons of an output from its metadata alone (and, given its folder, whether its
    files are still the ones written). The same function checks at writing time and in `ldj airlock check`."""
    settings = settings or get_settings()
    kind, checks = meta.get("kind"), meta.get("checks") or {}
    if kind == "table":
        reasons = _table_reasons(checks, settings)
    elif kind == "regression":
        reasons = _regression_reasons(checks, settings)
    elif kind == "histogram":
        reasons = _histogram_reasons(checks, settings)
    elif kind == "custom":
        reasons = [{"rule": "custom", "outcome": "review", "figures": {"original": checks.get("original")}}]
    else:
        reasons = [{"rule": "bad-metadata", "outcome": "review", "figures": {"kind": kind}}]
    if folder is not None:
        changed = [name for name, digest in (meta.get("files") or {}).items() if _digest(folder, name) != digest]
        if changed:
            reasons.append({"rule": "changed", "outcome": "review", "figures": {"files": changed}})
    reasons.sort(key=lambda r: (RULE_ORDER.index(r["rule"]), r.get("suppressed", False)))
    return status_of(reasons), reasons


def status_of(reasons: list[dict]) -> str:
    if any(r["outcome"] == "fail" for r in reasons):
        return "fail"
    return "review" if reasons else "pass"


def _table_reasons(checks: dict, s: Settings) -> list[dict]:
    masked = {_ref_key(ref) for ref in checks.get("masked", [])}
    found: dict[tuple[str, bool], list[dict]] = {}

    def add(rule: str, cell: dict, **figures) -> None:
        hidden = rule in FAIL_RULES and _ref_key(cell) in masked
        found.setdefault((rule, hidden), []).append({"row": cell["row"], "column": cell["column"], **figures})

    magnitude = checks.get("magnitude", False)
    for cell in checks.get("cells", []):
        n = cell["n"]
        if n == 0:
            if s.safe_zeros_review:
                add("zeros", cell, n=0)
        elif n < s.safe_threshold:
            add("threshold", cell, n=n)
        if not magnitude:
            continue
        if cell.get("missing"):
            add("missing", cell, missing=cell["missing"])
        if cell.get("negative"):
            add("negative", cell, negative=cell["negative"])
        if n == 0:
            continue
        if cell.get("nk_share") is not None and cell["nk_share"] >= s.safe_nk_k - EPSILON:
            add("nk-rule", cell, nk_share=cell["nk_share"])
        if cell.get("p_ratio") is not None and cell["p_ratio"] < s.safe_p_ratio - EPSILON:
            add("p-ratio", cell, p_ratio=cell["p_ratio"])
        if n >= 2 and cell.get("all_same"):
            add("all-values-are-same", cell, n=n)
    reasons = []
    for (rule, hidden), cells in found.items():
        outcome = "review" if hidden or rule not in FAIL_RULES else "fail"
        reasons.append({"rule": rule, "outcome": outcome, **({"suppressed": True} if hidden else {}), "cells": cells})
    if masked:
        reasons.append({"rule": "suppression", "outcome": "review", "cells": checks["masked"]})
    if magnitude and checks.get("nk_n", s.safe_nk_n) != s.safe_nk_n:
        reasons.append({"rule": "settings", "outcome": "review",
                        "figures": {"nk_n_recorded": checks.get("nk_n"), "safe_nk_n": s.safe_nk_n}})
    return reasons


def _regression_reasons(checks: dict, s: Settings) -> list[dict]:
    dof = checks.get("dof_resid")
    if dof is None or dof < s.safe_min_dof:
        return [{"rule": "dof", "outcome": "fail", "figures": {"dof_resid": dof, "minimum": s.safe_min_dof}}]
    return []


def _histogram_reasons(checks: dict, s: Settings) -> list[dict]:
    counts, edges = checks.get("counts", []), checks.get("edges", [])
    small, empty = [], []
    for i, n in enumerate(counts):
        bin_ = {"bin": i, "from": edges[i], "to": edges[i + 1], "n": n}
        if n == 0:
            empty.append(bin_)
        elif n < s.safe_threshold:
            small.append(bin_)
    reasons = []
    if small:
        reasons.append({"rule": "threshold", "outcome": "fail", "bins": small})
    if empty and s.safe_zeros_review:
        reasons.append({"rule": "zeros", "outcome": "review", "bins": empty})
    reasons.append({"rule": "extremes", "outcome": "review",
                    "figures": {"minimum": edges[0] if edges else None, "maximum": edges[-1] if edges else None}})
    return reasons


def _ref_key(ref: dict) -> str:
    return json.dumps([ref["row"], ref["column"]])


# --- the numbers the rules need, from the data --------------------------------------------------

def _plain(value):
    """A label as JSON holds it: numpy scalars become Python ones, anything else its text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if np.isnan(value) else value
    return str(value)


def _keys(label, levels: int, margins: bool, margins_name: str) -> tuple[tuple, bool]:
    """A table label as the tuple of its key values, and whether it is the margin."""
    if levels == 0:
        return (), False
    parts = label if isinstance(label, tuple) else (label,)
    is_margin = margins and parts[0] == margins_name
    return tuple(_plain(p) for p in parts), is_margin


def _cell_numbers(long: pd.DataFrame, keys: list[str], magnitude: bool, nk_n: int) -> dict[tuple, dict]:
    """Per combination of `keys` (all rows when empty): contributors and, for magnitude tables, what
    the nk and p% rules need. `long` holds the keys, `unit` (the contributor) and, if magnitude, `value`."""
    keys = keys or ["_all"]
    frame = long.assign(_all=0)
    if not magnitude:
        n = frame.groupby(keys, sort=False)["unit"].nunique()
        return {_key_tuple(k, keys): {"n": int(v)} for k, v in n.items()}
    frame = frame.assign(_missing=frame["value"].isna(), _negative=frame["value"] < 0)
    per_unit = frame.groupby([*keys, "unit"], sort=False).agg(
        value=("value", "sum"), filled=("value", "count"), missing=("_missing", "sum"),
        negative=("_negative", "sum")).reset_index()
    per_unit["value"] = per_unit["value"].where(per_unit["filled"] > 0)  # a contributor with only missing values
    out = {}
    for key, group in per_unit.groupby(keys, sort=False):
        values = group["value"].dropna().to_numpy(dtype=float)
        sizes = np.sort(np.abs(values))[::-1]  # NK and p% weigh how large a contribution is, whatever its sign
        total = float(sizes.sum())
        top = np.pad(sizes, (0, max(0, max(nk_n, 2) - len(sizes))))
        numbers = {"n": int(len(values)), "missing": int(group["missing"].sum()),
                   "negative": int(group["negative"].sum()), "nk_share": None, "p_ratio": None,
                   "all_same": bool(len(values) >= 1 and values.min() == values.max())}
        if len(values) and total > 0:
            numbers["nk_share"] = round(float(top[:nk_n].sum() / total), 6)
            numbers["p_ratio"] = round(float((total - top[0] - top[1]) / top[0]), 6)
        out[_key_tuple(key, keys)] = numbers
    return out


def _key_tuple(key, keys: list[str]) -> tuple:
    if keys == ["_all"]:
        return ()
    return tuple(_plain(k) for k in (key if isinstance(key, tuple) else (key,)))


EMPTY_CELL = {"n": 0, "missing": 0, "negative": 0, "nk_share": None, "p_ratio": None, "all_same": False}


def _table_checks(table: pd.DataFrame, long: pd.DataFrame, row_levels: int, col_levels: int, magnitude: bool,
                  margins: bool, margins_name: str, nk_n: int) -> tuple[dict, list[tuple[int, int]]]:
    """The checks of every cell of `table` (margins included), and each cell's position."""
    rkeys = [f"r{i}" for i in range(row_levels)]
    ckeys = [f"c{i}" for i in range(col_levels)]
    long = long.dropna(subset=rkeys + ckeys)  # as pandas: rows with a missing key are in no cell
    body = _cell_numbers(long, rkeys + ckeys, magnitude, nk_n)
    row_margin = _cell_numbers(long, rkeys, magnitude, nk_n) if margins else {}
    col_margin = _cell_numbers(long, ckeys, magnitude, nk_n) if margins else {}
    grand = _cell_numbers(long, [], magnitude, nk_n) if margins else {}
    empty = EMPTY_CELL if magnitude else {"n": 0}
    cells, positions = [], []
    for i, row_label in enumerate(table.index):
        row, row_is_margin = _keys(row_label, row_levels, margins, margins_name)
        for j, col_label in enumerate(table.columns):
            col, col_is_margin = _keys(col_label, col_levels, margins, margins_name)
            if row_is_margin and col_is_margin:
                numbers = grand.get(())
            elif row_is_margin:
                numbers = col_margin.get(col)
            elif col_is_margin:
                numbers = row_margin.get(row)
            else:
                numbers = body.get(row + col)
            cells.append({"row": [_plain(p) for p in _parts(row_label)],
                          "column": [_plain(p) for p in _parts(col_label)],
                          "margin": bool(row_is_margin or col_is_margin), **(numbers or empty)})
            positions.append((i, j, row_is_margin, col_is_margin))
    return {"magnitude": magnitude, "nk_n": nk_n, "cells": cells, "masked": []}, positions


def _parts(label) -> tuple:
    return label if isinstance(label, tuple) else (label,)


def _suppress(table: pd.DataFrame, checks: dict, positions: list[tuple], settings: Settings) -> pd.DataFrame:
    """Mask failing cells, the margins of their rows and columns and the grand total; record them."""
    failing = {_ref_key(c) for r in _table_reasons({**checks, "masked": []}, settings)
               if r["rule"] in FAIL_RULES for c in r["cells"]}
    hide = {k for k, cell in enumerate(checks["cells"]) if _ref_key(cell) in failing}
    rows = {positions[k][0] for k in hide}
    cols = {positions[k][1] for k in hide}
    for k, (i, j, row_is_margin, col_is_margin) in enumerate(positions):
        if hide and ((row_is_margin and col_is_margin) or (col_is_margin and i in rows)
                     or (row_is_margin and j in cols)):
            hide.add(k)
    if not hide:
        return table
    safe = table.astype(float)
    for k in sorted(hide):
        safe.iat[positions[k][0], positions[k][1]] = np.nan
    checks["masked"] = [{"row": checks["cells"][k]["row"], "column": checks["cells"][k]["column"]}
                        for k in sorted(hide)]
    return safe


# --- files --------------------------------------------------------------------------------------

def _digest(folder: Path, name: str) -> str | None:
    try:
        path = within(folder, name)
    except ValueError:
        return None
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, default=_plain), encoding="utf-8")
    os.replace(tmp, path)


def check_name(name: str) -> str:
    """An output's name: a short slug (lower-case letters, digits, - and _), never the manifest's."""
    if not isinstance(name, str) or NAME.fullmatch(name) is None or name == "manifest":
        raise OutputError(t("safe_bad_name", name=name))
    return name


def read_meta(path: Path) -> dict:
    meta = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not ldj.safe metadata")
    return meta


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --- the session ------------------------------------------------------------------------------

class OutputSession:
    """Checked outputs in one folder (`output_dir`, default the setting `LDJ_OUTPUT_DIR`).

    The folder is the record: outputs written earlier (another kernel, yesterday) are listed, renamed
    and finalised like new ones."""

    def __init__(self, output_dir: Path | str | None = None, *, suppress: bool | None = None,
                 settings: Settings | None = None):
        self.settings = settings or get_settings()
        self.output_dir = Path(output_dir if output_dir is not None else self.settings.output_dir)
        self.suppress = self.settings.safe_suppress if suppress is None else suppress

    # tables

    def crosstab(self, index, columns, values=None, aggfunc=None, margins: bool = False, *, rownames=None,
                 colnames=None, margins_name: str = "All", dropna: bool = True, normalize=False,
                 contributors=None, suppress: bool | None = None) -> pd.DataFrame:
        """`pandas.crosstab`, checked: a frequency table, or with `values` and `aggfunc` a magnitude table."""
        rows, cols = _as_list(index), _as_list(columns)
        magnitude = _magnitude(values, aggfunc)
        table = pd.crosstab(index, columns, values=values, rownames=rownames, colnames=colnames, aggfunc=aggfunc,
                            margins=margins, margins_name=margins_name, dropna=dropna, normalize=normalize)
        long = pd.DataFrame({**{f"r{i}": _array(a) for i, a in enumerate(rows)},
                             **{f"c{i}": _array(a) for i, a in enumerate(cols)}})
        long["unit"] = np.arange(len(long)) if contributors is None else _array(contributors)
        if values is not None:
            long["value"] = pd.to_numeric(pd.Series(_array(values)), errors="coerce").to_numpy()
            if not magnitude:  # a count of values counts the rows where one is filled in
                long = long[long["value"].notna()]
        return self._table(table, long, len(rows), len(cols), magnitude, margins, margins_name, "crosstab", suppress)

    def pivot_table(self, data: pd.DataFrame, values=None, index=None, columns=None, aggfunc="mean", *,
                    margins: bool = False, margins_name: str = "All", dropna: bool = True, fill_value=None,
                    contributors: str | None = None, suppress: bool | None = None) -> pd.DataFrame:
        """`pandas.pivot_table`, checked (one `values` column; `contributors` a column of `data`)."""
        if not isinstance(values, str) or index is None:
            raise OutputError(t("safe_one_values"))
        rows, cols = _as_list(index), _as_list(columns) if columns is not None else []
        magnitude = _magnitude(values, aggfunc)
        table = pd.pivot_table(data, values=values, index=index, columns=columns, aggfunc=aggfunc, margins=margins,
                               margins_name=margins_name, dropna=dropna, fill_value=fill_value)
        if isinstance(table, pd.Series):
            table = table.to_frame()
        long = pd.DataFrame({**{f"r{i}": data[c].to_numpy() for i, c in enumerate(rows)},
                             **{f"c{i}": data[c].to_numpy() for i, c in enumerate(cols)}})
        long["unit"] = np.arange(len(long)) if contributors is None else data[contributors].to_numpy()
        long["value"] = pd.to_numeric(data[values], errors="coerce").to_numpy()
        if not magnitude:  # a count of a column counts the rows where it is filled in
            long = long[long["value"].notna()]
        return self._table(table, long, len(rows), len(cols), magnitude, margins, margins_name, "pivot_table",
                           suppress)

    def _table(self, table, long, row_levels, col_levels, magnitude, margins, margins_name, method, suppress):
        checks, positions = _table_checks(table, long, row_levels, col_levels, magnitude, margins, margins_name,
                                          self.settings.safe_nk_n)
        if self.suppress if suppress is None else suppress:
            table = _suppress(table, checks, positions, self.settings)
        name = self._next_name()
        self._record(name, "table", method, checks, {f"{name}.csv": lambda p: table.to_csv(p)})
        return table

    # regressions

    def ols(self, endog, exog=None, **kwargs):
        """`statsmodels.api.OLS(endog, exog).fit()`, checked."""
        import statsmodels.api as sm

        return self._regression(sm.OLS(endog, exog, **kwargs).fit(), "ols")

    def olsr(self, formula: str, data: pd.DataFrame, **kwargs):
        """`statsmodels.formula.api.ols(formula, data).fit()`, checked."""
        import statsmodels.formula.api as smf

        return self._regression(smf.ols(formula, data, **kwargs).fit(), "olsr")

    def logit(self, endog, exog=None, **kwargs):
        """`statsmodels.api.Logit(endog, exog).fit()`, checked."""
        import statsmodels.api as sm

        return self._regression(sm.Logit(endog, exog, **kwargs).fit(disp=False), "logit")

    def logitr(self, formula: str, data: pd.DataFrame, **kwargs):
        import statsmodels.formula.api as smf

        return self._regression(smf.logit(formula, data, **kwargs).fit(disp=False), "logitr")

    def probit(self, endog, exog=None, **kwargs):
        import statsmodels.api as sm

        return self._regression(sm.Probit(endog, exog, **kwargs).fit(disp=False), "probit")

    def probitr(self, formula: str, data: pd.DataFrame, **kwargs):
        import statsmodels.formula.api as smf

        return self._regression(smf.probit(formula, data, **kwargs).fit(disp=False), "probitr")

    def _regression(self, results, method: str):
        checks = {"model": type(results.model).__name__, "nobs": int(results.nobs),
                  "dof_resid": float(results.df_resid), "params": int(len(results.params))}
        name = self._next_name()
        text = results.summary().as_text()
        self._record(name, "regression", method, checks,
                     {f"{name}.txt": lambda p: p.write_text(text + "\n", encoding="utf-8")})
        return results

    # histograms

    def hist(self, data: pd.DataFrame, column: str, bins=10, *, suppress: bool | None = None, **kwargs):
        """`DataFrame.hist(column=...)`, checked; the bins are counted as numpy.histogram counts them.
        With suppression a failing histogram is not drawn (None is returned), as in ACRO."""
        values = pd.to_numeric(data[column], errors="coerce").dropna()
        if len(values):
            counts, edges = np.histogram(values, bins, range=(values.min(), values.max()))
        else:
            counts, edges = np.array([], dtype=int), np.array([])
        checks = {"column": str(column), "counts": [int(c) for c in counts], "edges": [float(e) for e in edges]}
        failing = status_of(_histogram_reasons(checks, self.settings)) == "fail"
        hide = failing and (self.suppress if suppress is None else suppress)
        name = self._next_name()
        try:
            import matplotlib  # noqa: F401
        except ImportError:  # pragma: no cover - matplotlib is a dependency; the fallback is for slim workspaces
            bins_table = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "n": counts})
            self._record(name, "histogram", "hist", checks, {f"{name}.csv": lambda p: bins_table.to_csv(p, index=False)})
            return None
        if hide:
            self._record(name, "histogram", "hist", checks, {})
            return None
        axes = data.hist(column=column, bins=edges if len(edges) else bins, **kwargs)
        figure = np.ravel(axes)[0].get_figure()
        self._record(name, "histogram", "hist", checks, {f"{name}.png": lambda p: figure.savefig(p, format="png")})
        return axes

    # anything else

    def custom_output(self, path: str | Path, comment: str | None = None) -> str:
        """A file made some other way (a figure, a document): copied into the folder; always reviewed."""
        source = Path(path)
        if not source.is_file():
            raise OutputError(t("safe_not_a_file", path=path))
        extension = source.suffix.lower()
        if EXTENSION.fullmatch(extension) is None:
            extension = ".bin"
        name = self._next_name()
        self._record(name, "custom", "custom_output", {"original": source.name},
                     {f"{name}{extension}": lambda p: shutil.copyfile(source, p)},
                     comments=[comment] if comment else [])
        return name

    # the record

    def add_comments(self, name: str, comment: str) -> None:
        """A comment for the checker: what the output shows."""
        meta = self._meta(name)
        meta["comments"].append(str(comment))
        self._save(meta)

    def add_exception(self, name: str, reason: str) -> None:
        """Why a failing or reviewed output is acceptable all the same; the checker decides."""
        meta = self._meta(name)
        meta["exception"] = str(reason)
        self._save(meta)

    def rename_output(self, old: str, new: str) -> None:
        meta = self._meta(old)
        check_name(new)
        if self._meta_path(new).exists():
            raise OutputError(t("safe_output_exists", name=new))
        files = {}
        for file_name, digest in meta["files"].items():
            renamed = new + file_name[len(old):]
            os.replace(within(self.output_dir, file_name), within(self.output_dir, renamed))
            files[renamed] = digest
        meta.update(name=new, files=files)
        self._save(meta)
        self._meta_path(old).unlink()

    def remove_output(self, name: str) -> None:
        meta = self._meta(name)
        for file_name in meta["files"]:
            within(self.output_dir, file_name).unlink(missing_ok=True)
        self._meta_path(name).unlink()

    def outputs(self) -> list[dict]:
        """Every output in the folder, checked again now: name, kind, method, status, reasons, files,
        comments, exception."""
        listed = []
        for meta in self._all_meta():
            status, reasons = evaluate(meta, self.settings, self.output_dir)
            listed.append({"name": meta["name"], "kind": meta["kind"], "method": meta.get("method"), "status": status,
                           "reasons": reasons, "files": sorted(meta["files"]), "comments": list(meta["comments"]),
                           "exception": meta.get("exception")})
        return listed

    def print_outputs(self) -> str:
        """The outputs as text (ACRO's print_outputs), also returned."""
        text = "\n".join(describe(o) for o in self.outputs())
        print(text)
        return text

    def finalise(self, path: str | Path | None = None, ext: str = "json", *, title: str | None = None,
                 description: str | None = None, submit: bool | None = None, project: int | None = None):
        """Write `manifest.json` (module docstring) of every output in the folder; its path.

        As ACRO: `path` another folder to finalise into (the outputs are copied there; it must not exist
        yet), `ext` only "json". With `title` and `description` (or `submit=True`) the folder is then sent
        as a release request of `project` (`submit`), and the request's id is returned instead."""
        if ext != "json":
            raise OutputError(t("safe_bad_ext", ext=ext))
        target = self
        if path is not None and Path(path).resolve() != self.output_dir.resolve():
            target = self._copy_to(Path(path))
        manifest = target._write_manifest()
        if not (submit if submit is not None else bool(title or description)):
            return manifest
        if not title or not description:
            raise OutputError(t("safe_submit_needs"))
        return target._send(title, description, project)

    def submit(self, title: str, description: str, project: int | None = None, *, public: Sequence[str] = (),
               release: int | None = None) -> int:
        """Finalise the folder and send it, from the workspace through the data service, as a release
        request of `project` (default: the one project you hold a grant on); the request's id.
        `public`: outputs you offer for public download (if both checkers agree); `release`: the id of
        your returned request, answered with the folder as it is now (changed files are reviewed again).

        Raises `SubmitError` outside a workspace (no hub token or data-service URL in the environment),
        when the project is not clear, or when the data service refuses (its message, e.g. no grant)."""
        self._write_manifest()
        return self._send(title, description, project, public=public, release=release)

    def _write_manifest(self) -> Path:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        entries = []
        for output in self.outputs():
            entries.append({**{k: output[k] for k in ("name", "kind", "method", "status", "reasons", "comments",
                                                       "exception")},
                            "metadata": output["name"] + META_SUFFIX,
                            "files": [{"name": f, "sha256": _digest(self.output_dir, f)} for f in output["files"]]})
        counts = {status: sum(e["status"] == status for e in entries) for status in ("pass", "fail", "review")}
        path = within(self.output_dir, MANIFEST)
        _write_json(path, {"format": MANIFEST_FORMAT, "created": _now(), "rules": self._rules(), "counts": counts,
                           "outputs": entries})
        return path

    def _copy_to(self, folder: Path) -> OutputSession:
        """Every output (its files and metadata) copied into the new folder `folder`; a session on it."""
        if folder.exists():
            raise OutputError(t("safe_path_exists", path=folder))
        folder.mkdir(parents=True)
        for name in self._release_files():
            if name != MANIFEST:
                shutil.copy2(within(self.output_dir, name), within(folder, name))
        return OutputSession(folder, suppress=self.suppress, settings=self.settings)

    def _release_files(self) -> list[str]:
        """The folder's files a release request holds: the manifest (when written), each output's
        metadata and its files that exist."""
        names = [MANIFEST] if within(self.output_dir, MANIFEST).is_file() else []
        for meta in self._all_meta():
            names.append(meta["name"] + META_SUFFIX)
            names += [f for f in meta["files"] if _digest(self.output_dir, f) is not None]
        return names

    def _send(self, title: str, description: str, project: int | None, *, public: Sequence[str] = (),
              release: int | None = None) -> int:
        token, service = _workspace()
        headers = {"Authorization": f"token {token}"}
        me = _me(service, headers)
        project = _only_project(me) if project is None else int(project)
        names = self._release_files()
        size = sum(within(self.output_dir, name).stat().st_size for name in names)
        limit = me.get("release_max_mb")
        if limit and size > limit * 2**20:  # refused before anything is sent
            raise SubmitError(t("safe_too_large", size=round(size / 2**20, 1), limit=limit))
        with ExitStack() as files:
            parts = [("file", (name, files.enter_context(within(self.output_dir, name).open("rb")),
                               "application/octet-stream")) for name in names]
            response = _call("post", f"{service}/api/projects/{project}/releases", headers=headers,
                             data={"title": title, "description": description, "public": ",".join(public),
                                   **({"release": str(int(release))} if release is not None else {})}, files=parts)
        if response.status_code != 201:
            raise SubmitError(t("safe_submit_refused", status=response.status_code, error=_error_text(response)),
                              response.status_code)
        answer = response.json()
        print(t("safe_submitted", id=answer["release"], project=project, url=answer.get("url") or "-"))
        return int(answer["release"])

    def _rules(self) -> dict:
        return {name: getattr(self.settings, name) for name in RULE_SETTINGS}

    def _record(self, name: str, kind: str, method: str, checks: dict, writers: dict, comments=()) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for file_name, write in writers.items():
            write(within(self.output_dir, file_name))
        meta = {"format": FORMAT, "name": name, "sequence": _number(name), "kind": kind, "method": method,
                "created": _now(),
                "files": {f: _digest(self.output_dir, f) for f in writers}, "checks": checks,
                "rules": self._rules(), "comments": list(comments), "exception": None}
        meta["status"], meta["reasons"] = evaluate(meta, self.settings)
        _write_json(self._meta_path(name), meta)

    def _save(self, meta: dict) -> None:
        _write_json(self._meta_path(meta["name"]), meta)

    def _meta_path(self, name: str) -> Path:
        return within(self.output_dir, check_name(name) + META_SUFFIX)

    def _meta(self, name: str) -> dict:
        path = self._meta_path(name)
        if not path.is_file():
            raise OutputError(t("safe_unknown_output", name=name))
        return read_meta(path)

    def _all_meta(self) -> list[dict]:
        if not self.output_dir.is_dir():
            return []
        found = []
        for path in self.output_dir.glob("*" + META_SUFFIX):
            try:
                meta = read_meta(path)
            except (ValueError, OSError):
                continue
            if meta.get("name") == path.name[: -len(META_SUFFIX)]:
                found.append(meta)
        return sorted(found, key=lambda m: (m.get("sequence", 0), m.get("created", ""), m["name"]))

    def _next_name(self) -> str:
        """`output_<n>`, n one more than any output's so far (renamed ones keep their place)."""
        metas = self._all_meta()
        n = max([0, *(m.get("sequence", 0) for m in metas), *(_number(m["name"]) for m in metas)]) + 1
        while self._meta_path(f"output_{n}").exists():
            n += 1
        return f"output_{n}"


ACRO = OutputSession  # `acro = ACRO(suppress=True)`, as researchers know it


class SubmitError(RuntimeError):
    """A release request not made: outside a workspace, the project not clear, the service unreachable or
    refusing (`status`: its HTTP status, when it answered)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def _workspace() -> tuple[str, str]:
    """The workspace's hub token and data-service URL, as the spawner sets them (and the Intake driver
    reads them); `SubmitError` outside a workspace."""
    found = {name: os.environ.get(name) for name in ("JUPYTERHUB_API_TOKEN", "LDJ_DATA_SERVICE_URL")}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise SubmitError(t("safe_not_in_workspace", missing=", ".join(missing)))
    return found["JUPYTERHUB_API_TOKEN"], found["LDJ_DATA_SERVICE_URL"].rstrip("/")


def _call(method: str, url: str, **kwargs) -> requests.Response:
    try:
        return requests.request(method, url, timeout=SUBMIT_TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise SubmitError(t("safe_service_unreachable", url=url, error=exc)) from None


def _error_text(response: requests.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.reason or response.text[:200]


def _me(service: str, headers: dict) -> dict:
    """The data service's `api/me`: the caller's active grants and the upload limit."""
    response = _call("get", f"{service}/api/me", headers=headers)
    if response.status_code != 200:
        raise SubmitError(t("safe_submit_refused", status=response.status_code, error=_error_text(response)),
                          response.status_code)
    return response.json()


def _only_project(me: dict) -> int:
    """The one project the caller holds an active grant on; else `SubmitError`."""
    projects = sorted({int(g["project"]) for g in me.get("grants", [])})
    if not projects:
        raise SubmitError(t("safe_no_project"))
    if len(projects) > 1:
        raise SubmitError(t("safe_which_project", projects=", ".join(map(str, projects)), first=projects[0]))
    return projects[0]


def _number(name: str) -> int:
    match = re.fullmatch(r"output_(\d+)", name)
    return int(match.group(1)) if match else 0


def _as_list(keys) -> list:
    return list(keys) if isinstance(keys, (list, tuple)) else [keys]


def _array(values) -> np.ndarray:
    return values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)


def _magnitude(values, aggfunc) -> bool:
    """Whether the table aggregates values (nk, p% and the rest apply) or counts (threshold only)."""
    if aggfunc is None or aggfunc in FREQUENCY_AGGFUNCS:
        if aggfunc is None and values is not None:
            raise OutputError(t("safe_bad_aggfunc", aggfunc=aggfunc, allowed=", ".join(MAGNITUDE_AGGFUNCS)))
        return False
    if aggfunc not in MAGNITUDE_AGGFUNCS:
        raise OutputError(t("safe_bad_aggfunc", aggfunc=aggfunc,
                            allowed=", ".join(MAGNITUDE_AGGFUNCS + FREQUENCY_AGGFUNCS)))
    if values is None:
        raise OutputError(t("safe_one_values"))
    return True


# --- describing findings ----------------------------------------------------------------------

def describe(output: dict, language: str | None = None) -> str:
    """One line: name, kind, status and the findings with how many cells, bins or which figures."""
    parts = []
    for reason in output["reasons"]:
        label = t(f"safe_rule_{reason['rule'].replace('-', '_')}", language)
        if reason.get("suppressed"):
            label += " " + t("safe_suppressed", language)
        items = reason.get("cells", reason.get("bins"))
        if items is not None:
            label += f" ({len(items)})"
        elif reason.get("figures"):
            label += " (" + ", ".join(f"{k}={v}" for k, v in reason["figures"].items() if v is not None) + ")"
        parts.append(label)
    kind = output["kind"] if output["kind"] in KINDS else "custom"
    return t("safe_line", language, name=output["name"], kind=t(f"safe_kind_{kind}", language),
             status=t(f"safe_status_{output['status']}", language), findings="; ".join(parts) or "-")


def check_paths(paths: list[Path], settings: Settings | None = None) -> list[dict]:
    """`ldj airlock check`: every output among `paths` (files or folders) checked from its metadata;
    a file no metadata lists is `review`. One dict per output or free file: path, name, kind, status, reasons."""
    settings = settings or get_settings()
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.name != MANIFEST
                            and not p.name.endswith(".tmp"))
        else:
            files.append(path)
    results, seen_meta = [], set()
    for file in files:
        meta_path = file if file.name.endswith(META_SUFFIX) else file.with_name(file.name.split(".")[0] + META_SUFFIX)
        if meta_path.resolve() in seen_meta:
            continue
        try:
            meta = read_meta(meta_path)
        except (OSError, ValueError):
            meta = None
        if meta is None or (file != meta_path and file.name not in meta.get("files", {})):
            rule = "bad-metadata" if file.name.endswith(META_SUFFIX) else "no-metadata"
            results.append({"path": str(file), "name": file.name, "kind": "custom", "status": "review",
                            "reasons": [{"rule": rule, "outcome": "review", "figures": {"file": file.name}}]})
            continue
        seen_meta.add(meta_path.resolve())
        try:
            status, reasons = evaluate(meta, settings, meta_path.parent)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError):  # metadata edited by hand
            status, reasons = "review", [{"rule": "bad-metadata", "outcome": "review", "figures": {"file": meta_path.name}}]
        results.append({"path": str(meta_path), "name": meta.get("name"), "kind": meta.get("kind"), "status": status,
                        "reasons": reasons, "comments": meta.get("comments", []),
                        "exception": meta.get("exception"), "files": list(meta.get("files") or {})})
    return results


# --- the module-level interface (one session on LDJ_OUTPUT_DIR) ----------------------------------

_session: OutputSession | None = None


def session() -> OutputSession:
    """The module's session, made on first use from the settings."""
    global _session
    if _session is None:
        _session = OutputSession()
    return _session


def crosstab(index, columns, values=None, aggfunc=None, margins: bool = False, **kwargs) -> pd.DataFrame:
    return session().crosstab(index, columns, values=values, aggfunc=aggfunc, margins=margins, **kwargs)


def pivot_table(data, values=None, index=None, columns=None, aggfunc="mean", **kwargs) -> pd.DataFrame:
    return session().pivot_table(data, values=values, index=index, columns=columns, aggfunc=aggfunc, **kwargs)


def ols(endog, exog=None, **kwargs):
    return session().ols(endog, exog, **kwargs)


def olsr(formula, data, **kwargs):
    return session().olsr(formula, data, **kwargs)


def logit(endog, exog=None, **kwargs):
    return session().logit(endog, exog, **kwargs)


def logitr(formula, data, **kwargs):
    return session().logitr(formula, data, **kwargs)


def probit(endog, exog=None, **kwargs):
    return session().probit(endog, exog, **kwargs)


def probitr(formula, data, **kwargs):
    return session().probitr(formula, data, **kwargs)


def hist(data, column, bins=10, **kwargs):
    return session().hist(data, column, bins, **kwargs)


def custom_output(path, comment=None) -> str:
    return session().custom_output(path, comment)


def add_comments(name, comment) -> None:
    session().add_comments(name, comment)


def add_exception(name, reason) -> None:
    session().add_exception(name, reason)


def rename_output(old, new) -> None:
    session().rename_output(old, new)


def remove_output(name) -> None:
    session().remove_output(name)


def outputs() -> list[dict]:
    return session().outputs()


def print_outputs() -> str:
    return session().print_outputs()


def finalise(path=None, ext="json", **kwargs):
    return session().finalise(path, ext, **kwargs)


def submit(title, description, project=None, *, public=(), release=None) -> int:
    return session().submit(title, description, project, public=public, release=release)
