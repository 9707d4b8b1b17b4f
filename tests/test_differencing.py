"""Differencing, as an attacker does it (issue 12, points 8 and 10).

A member of ORG01 collects, from the HTTP responses of a running portal, every figure of one filter
combination and of all its siblings: the dashboard's figures (`/dashboard/figures.json`, the page's own
tables) for every gender × age group (each also "all"), the feasibility answers
(`/catalogus/telling.json`) on the same grid, and the factsheet (`/factsheet.json`). They write down
everything they know: a published count p stands for a true count in p ± rounding/2 (at least the
threshold when not 0); a hidden one for any count; categories add up to their total, along every
dimension of the grid and inside a figure (categories to the pairs, statuses to the trajectories, the
organisations of the funnel to SEJN). `ldj.disclosure.ranges` (the integer programming the
suppression audit uses) then gives the smallest and largest value every hidden count can have. A hidden
count whose every possible value lies between 1 and the threshold would be a small group given away:
there must be none.

The attacker's model is checked too: the true counts (the same figures without threshold or rounding)
must satisfy it, and against a naive publication (small cells hidden, nothing else) it must find
small groups.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import requests

from ldj import governance as gov
from ldj import indicators, store
from ldj.disclosure import TOTAL, ranges
from ldj.refresh import import_delivery
from ldj.portal.dashboards import FiguresRequest, figures_json
from ldj.settings import Settings
from ldj.synth import generate
from portalserver import make_stack

pytestmark = pytest.mark.slow
PASSWORD = "differencing-test-2026"
BASE = {"instrument": "cbcl_6_18", "scale": "total_problems", "informant": "parent", "funnel": "change"}
ENTRY = "cbcl_6_18_pairs"
ALL = None  # a grid coordinate: no filter on that dimension


@pytest.fixture(scope="module")
def stack():
    root = Path(tempfile.mkdtemp(prefix="ldj-diff-"))
    settings = Settings(data_dir=root / "var")
    generate(root / "d", questionnaires=3000, organisations=4, seed=8, invalid_share=0.0, lead_share=0.4,
             instruments=["cbcl_6_18", "satisfaction"])
    reports = import_delivery([root / "d"], settings=settings, refresh_views=False)
    assert all(r.status == "loaded" for r in reports)
    engine = store.get_engine(settings)
    gov.add_user(engine, "praktijk", display_name="P", organisation="ORG01", roles=["member"], password=PASSWORD)
    gov.add_user(engine, "student", display_name="S", organisation="HU", roles=["student"], password=PASSWORD)
    indicators.get_cube(engine, settings)  # as `ldj ingest` does after an import
    running = make_stack(root).start()
    running.engine, running.settings = engine, settings
    running.member = running.portal_session("praktijk", PASSWORD)
    yield running
    running.stop()


def grid(stack) -> tuple[list, list]:
    opts = indicators.options("praktijk", stack.engine, stack.settings)
    return [*opts["genders"], ALL], [*opts["age_groups"], ALL]


# --- what leaves the server ------------------------------------------------------------------------

def collect_dashboard(stack) -> dict[tuple, dict]:
    genders, ages = grid(stack)
    views = {}
    for gender, age in itertools.product(genders, ages):
        params = {**BASE, **({"gender": gender} if gender else {}), **({"age_group": age} if age else {})}
        response = stack.member.get(f"{stack.portal}/dashboard/figures.json", params=params, timeout=120)
        assert response.status_code == 200, response.text
        views[gender, age] = response.json()["figures"]
    return views


def collect_feasibility(stack) -> dict[tuple, dict]:
    options = requests.get(f"{stack.portal}/catalogus/telling.json", params={"entry": ENTRY}, timeout=60).json()
    assert not options["suppressed"]
    from ldj import feasibility

    dims = feasibility.options(stack.engine, ENTRY, stack.settings)
    answers = {}
    for gender, age in itertools.product([*dims["gender"], ALL], [*dims["age_group"], ALL]):
        params = {"entry": ENTRY, **({"gender": gender} if gender else {}), **({"age_group": age} if age else {})}
        response = requests.get(f"{stack.portal}/catalogus/telling.json", params=params, timeout=60)
        assert response.status_code == 200, response.text
        answers[gender, age] = response.json()
    return answers


def truth(stack) -> dict[tuple, dict]:
    """The same figures without threshold or rounding (the attacker never sees these)."""
    exact = stack.settings.model_copy(update={"disclosure_threshold": 1, "disclosure_rounding": 1})
    genders, ages = grid(stack)
    views = {}
    for gender, age in itertools.product(genders, ages):
        view = indicators.View(BASE["instrument"], BASE["scale"], BASE["informant"], gender=gender, age_group=age)
        figures = indicators.dashboard(view, "praktijk", stack.engine, exact, funnel_indicator="change")
        shown = figures_json(figures, FiguresRequest(view, "change", None), "")["figures"]
        # a figure not shown even without threshold is an empty one
        views[gender, age] = {name: [{k: (0 if k in ("n", "total") and v is None else v) for k, v in row.items()}
                                     for row in rows] for name, rows in shown.items()}
    return views


# --- the attacker's model ------------------------------------------------------------------------------

class Model:
    """Unknown counts, their bounds and the sums that tie them; `solve` gives every unknown's range."""

    def __init__(self, threshold: int, rounding: int):
        self.threshold, self.rounding = threshold, rounding
        self.index: dict[tuple, int] = {}
        self.low: list[float] = []
        self.high: list[float] = []
        self.hidden: set[tuple] = set()
        self.eq: list[dict[int, int]] = []
        self.ub: list[dict[int, int]] = []

    def var(self, key: tuple) -> int:
        if key not in self.index:
            self.index[key] = len(self.low)
            self.low.append(0)
            self.high.append(math.inf)
        return self.index[key]

    def published(self, key: tuple, value, at_least: int = 0) -> None:
        """A count as published: None when hidden, else rounded (half up) to `rounding`."""
        i = self.var(key)
        if value is None:
            self.hidden.add(key)
            self.low[i] = max(self.low[i], at_least)
            return
        value = int(value)
        if value == 0:
            low, high = 0, 0
        else:  # rounded(n) == value  <=>  value - r/2 <= n < value + r/2; published: n >= threshold
            low = max(math.ceil(value - self.rounding / 2), self.threshold)
            high = math.ceil(value + self.rounding / 2) - 1
        self.low[i], self.high[i] = max(self.low[i], low), min(self.high[i], high)

    def total(self, parts: list[tuple], whole: tuple, exact: bool = True) -> None:
        """sum(parts) == whole (a partition), or <= whole (some rows fall in no category)."""
        row: dict[int, int] = {}
        for key in parts:
            row[self.var(key)] = row.get(self.var(key), 0) + 1
        row[self.var(whole)] = row.get(self.var(whole), 0) - 1
        (self.eq if exact else self.ub).append(row)

    def solve(self) -> dict[tuple, tuple[float, float]]:
        from scipy import sparse

        def matrix(rows):
            if not rows:
                return None, None
            a = sparse.lil_array((len(rows), len(self.low)))
            for r, row in enumerate(rows):
                for i, coef in row.items():
                    a[r, i] = coef
            return a.tocsr(), np.zeros(len(rows))

        a_eq, b_eq = matrix(self.eq)
        a_ub, b_ub = matrix(self.ub)
        low, high = ranges(a_eq, b_eq, a_ub, b_ub, self.low, self.high)
        return {key: (low[i], high[i]) for key, i in self.index.items()}

    def small_groups(self) -> list[tuple]:
        """Hidden counts the attacker pins between 1 and threshold - 1 (every possible value)."""
        solved = self.solve()
        return [(key, solved[key]) for key in sorted(self.hidden, key=str)
                if solved[key][0] >= 1 and solved[key][1] < self.threshold]


def series(figures: dict[str, list[dict]]) -> dict[tuple, object]:
    """Every count a view's figures publish, by (figure, scope or organisation, part)."""
    out = {}
    for name in ("change", "casemix", "satisfaction"):
        for row in figures[name]:
            out[name, row["scope"], TOTAL] = row["n"]
    for name, part in (("reliable_change", "category"), ("response", "status")):
        for row in figures[name]:
            out[name, row["scope"], row[part]] = row["n"]
            out[name, row["scope"], TOTAL] = row["total"]
    for row in figures["severity_trend"]:
        out["severity_trend", row["scope"], row["start_year"]] = row["n"]
    for row in figures["funnel"]:
        out["funnel", row["label"], TOTAL] = row["n"]
    return out


def dashboard_model(views: dict[tuple, dict], model: Model) -> Model:
    published = {coordinates: series(figures) for coordinates, figures in views.items()}
    keys = set().union(*published.values())
    for coordinates, values in published.items():
        for key in keys:  # a row a view does not have (a year, an organisation) is an empty one: 0
            model.published((*key, *coordinates), values.get(key, 0))
    genders = sorted({g for g, _ in views if g is not ALL})
    ages = sorted({a for _, a in views if a is not ALL})
    for key in keys:  # every category of a dimension adds up to the view without that filter
        for age in [*ages, ALL]:
            model.total([(*key, g, age) for g in genders], (*key, ALL, age))
        for gender in [*genders, ALL]:
            model.total([(*key, gender, a) for a in ages], (*key, gender, ALL))
    for coordinates in views:  # inside the figures
        for name in ("reliable_change", "response"):
            for scope in ("organisation", "sejn"):
                parts = [k for k in keys if k[0] == name and k[1] == scope and k[2] != TOTAL]
                model.total([(*k, *coordinates) for k in parts], (name, scope, TOTAL, *coordinates))
        funnel = [k for k in keys if k[0] == "funnel"]  # the organisations make up SEJN (funnel of "change")
        model.total([(*k, *coordinates) for k in funnel], ("change", "sejn", TOTAL, *coordinates))
    return model


def feasibility_model(answers: dict[tuple, dict], model: Model) -> Model:
    for (gender, age), answer in answers.items():
        model.published(("feasibility", gender, age), answer["rows"])
    genders = sorted({g for g, _ in answers if g is not ALL})
    ages = sorted({a for _, a in answers if a is not ALL})
    for age in [*ages, ALL]:  # rows without a gender or age fall in no category: at most the whole
        model.total([("feasibility", g, age) for g in genders], ("feasibility", ALL, age), exact=False)
    for gender in [*genders, ALL]:
        model.total([("feasibility", gender, a) for a in ages], ("feasibility", gender, ALL), exact=False)
    return model


def factsheet_model(sheet: dict, model: Model) -> Model:
    for name, table in sheet["tables"].items():
        dims = table["dims"]
        cells = {tuple(row[d] for d in dims): row for row in table["rows"]}
        for cell, row in cells.items():  # a hidden factsheet cell is never empty (ldj.disclosure)
            model.published(("factsheet", name, *cell), row["value"], at_least=1)
        for d, dim in enumerate(dims):
            for cell in cells:
                if cell[d] != TOTAL:
                    continue
                parts = [c for c in cells if c[d] != TOTAL and all(c[o] == cell[o] for o in range(len(dims)) if o != d)]
                if parts:
                    model.total([("factsheet", name, *c) for c in parts], ("factsheet", name, *cell))
    return model


# --- the tests ---------------------------------------------------------------------------------------

def test_no_published_combination_gives_a_small_group_away(stack):
    settings = stack.settings
    views = collect_dashboard(stack)
    answers = collect_feasibility(stack)
    sheet = stack.member.get(f"{stack.portal}/factsheet.json", timeout=120).json()
    model = Model(settings.disclosure_threshold, settings.disclosure_rounding)
    dashboard_model(views, model)
    feasibility_model(answers, model)
    factsheet_model(sheet, model)
    assert len(model.hidden) > 50, "the grid has hidden cells to attack"

    # the attacker's model is sound: the true counts satisfy it
    exact = Model(1, 1)
    dashboard_model(truth(stack), exact)
    true = {key: exact.high[i] for key, i in exact.index.items()}
    solved = model.solve()
    dashboard_keys = [k for k in model.hidden if k[0] != "feasibility" and k[0] != "factsheet"]
    small = [k for k in dashboard_keys if 1 <= true[k] < settings.disclosure_threshold]
    assert len(small) > 10, "small groups are hidden in this grid: something to find"
    for key, i in exact.index.items():
        assert solved[key][0] <= true[key] <= solved[key][1], (key, true[key], solved[key])

    found = model.small_groups()
    assert not found, f"hidden counts an attacker pins between 1 and the threshold: {found[:10]}"


def test_the_attack_finds_small_groups_in_a_naive_publication(stack):
    """The same attack against small cells hidden and nothing else (no secondary suppression, no
    rounding): it must find them, or the test above proves nothing."""
    threshold = stack.settings.disclosure_threshold
    naive = {}
    for coordinates, figures in truth(stack).items():
        naive[coordinates] = {name: [{**row, **{c: None for c in ("n", "total") if c in row and row[c] is not None
                                                and 0 < row[c] < threshold}} for row in rows]
                              for name, rows in figures.items()}
    found = dashboard_model(naive, Model(threshold, 1)).small_groups()
    assert len(found) > 5


def test_figures_download_parses_its_arguments_and_checks_the_policy(stack):
    url = f"{stack.portal}/dashboard/figures.json"
    csv = stack.member.get(f"{stack.portal}/dashboard/figures.csv", params={**BASE, "figure": "change"}, timeout=120)
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert csv.content.decode("utf-8-sig").splitlines()[0].split(";")[:3] == ["scope", "label", "n"]
    # the CSV download holds the same numbers as the JSON the attack above collected
    shown = stack.member.get(url, params=BASE, timeout=120).json()["figures"]["reliable_change"]
    table = stack.member.get(f"{stack.portal}/dashboard/figures.csv", params={**BASE, "figure": "reliable_change"},
                             timeout=120).content.decode("utf-8-sig").splitlines()
    head = table[0].split(";")
    assert [r.split(";")[head.index("n")] for r in table[1:]] == ["" if r["n"] is None else str(r["n"]) for r in shown]
    for bad in ({"instrument": "nope"}, {"scale": "../etc"}, {"gender": "<script>"}, {"start_year": "20x1"},
                {"start_year": "1900"}, {"funnel": "x"}, {"colour": "red"}, {"figure": "secret"}):
        response = stack.member.get(url, params={**BASE, **bad}, timeout=60)
        assert response.status_code == 400, (bad, response.status_code)
        assert "<script>" not in response.text and response.headers["Content-Type"].startswith("text/plain")
    assert stack.member.get(f"{stack.portal}/dashboard/figures.csv", params=BASE, timeout=60).status_code == 400
    # another organisation's figures, a visitor without login, a student: refused
    assert stack.member.get(url, params={**BASE, "organisation": "ORG02"}, timeout=60).status_code == 403
    assert requests.get(url, params=BASE, timeout=60).status_code == 403
    student = stack.portal_session("student", PASSWORD)
    assert student.get(url, params=BASE, timeout=60).status_code == 403
    # the feasibility endpoint: unknown entry, dimension or category
    count = f"{stack.portal}/catalogus/telling.json"
    for bad in ({"entry": "nope"}, {"entry": ENTRY, "postcode": "1234"}, {"entry": ENTRY, "gender": "<b>"}):
        assert requests.get(count, params=bad, timeout=60).status_code == 400
