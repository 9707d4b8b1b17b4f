"""Feasibility counts: the same numbers as plain pandas on the snapshot, suppressed when small, and
no small group isolated by adding or dropping one category of a filter."""

from __future__ import annotations

import pandas as pd
import pytest

from ldj import feasibility, store
from ldj.catalogue import load_entries, snapshot
from ldj.refresh import import_delivery
from ldj.instruments import load_instruments
from ldj.synth import generate

ENTRY = "cbcl_6_18_pairs"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from ldj.settings import Settings

    root = tmp_path_factory.mktemp("feasibility")
    settings = Settings(data_dir=root / "var")
    generate(root / "d", questionnaires=6000, organisations=4, seed=5, invalid_share=0.0)
    reports = import_delivery([root / "d"], settings=settings, refresh_views=False)
    assert all(r.status == "loaded" for r in reports)
    engine = store.get_engine(settings)
    path = snapshot(engine, load_entries(settings.catalog_dir)[ENTRY], load_instruments(settings.catalog_dir),
                    settings.data_dir / "snapshots" / store.data_version(engine)[0], settings=settings)
    return settings, engine, pd.read_parquet(path)


def rounded(n: int) -> int:
    return int((n + 2.5) // 5 * 5)


def test_count_equals_plain_pandas(loaded):
    settings, engine, pairs = loaded
    intervention = pairs["intervention"].value_counts().index[0]
    teens = pairs[(pairs["intervention"] == intervention) & pairs["age_at_start"].between(12, 17)]
    per_year = teens.assign(year=pd.to_datetime(teens["start_date"]).dt.year).groupby("year")["client"].nunique()
    years = [int(y) for y in per_year.nlargest(3).index]
    # a threshold this small data set can meet in every slice (the arithmetic is what is tested here)
    settings = settings.model_copy(update={"disclosure_threshold": int(per_year.nlargest(3).min())})
    result = feasibility.count(engine, ENTRY, {"intervention": [intervention], "age_group": ["12-17"],
                                               "start_year": years}, settings)
    expected = pairs[(pairs["intervention"] == intervention) & pairs["age_at_start"].between(12, 17)
                     & pd.to_datetime(pairs["start_date"]).dt.year.isin(years)]
    assert not result.suppressed, result
    assert result.rows == rounded(len(expected)) and result.clients == rounded(expected["client"].nunique())
    everything = feasibility.count(engine, ENTRY, {}, settings)
    assert everything.rows == rounded(len(pairs))


def test_options_list_the_categories_present(loaded):
    settings, engine, pairs = loaded
    found = feasibility.options(engine, ENTRY, settings)
    assert set(found["intervention"]) == set(pairs["intervention"].dropna())
    assert set(found["start_year"]) == set(pd.to_datetime(pairs["start_date"]).dt.year)
    assert set(found["age_group"]) <= {"0-5", "6-11", "12-17", "18-23"}


def test_a_small_group_is_suppressed(loaded):
    settings, engine, pairs = loaded
    counts = pairs.groupby("intervention")["client"].nunique()
    small_year = pd.to_datetime(pairs["start_date"]).dt.year
    cell = pairs.assign(year=small_year).groupby(["intervention", "year"])["client"].nunique()
    intervention, year = cell[(cell > 0) & (cell < 10)].index[0]
    result = feasibility.count(engine, ENTRY, {"intervention": [intervention], "start_year": [int(year)]}, settings)
    assert result.suppressed and result.reason == "small" and result.rows is None and result.clients is None
    assert counts[intervention] >= 10


def test_adding_one_small_category_to_a_filter_cannot_reveal_it(loaded):
    settings, engine, pairs = loaded
    years = pd.to_datetime(pairs["start_date"]).dt.year
    per_year = pairs.assign(year=years).groupby("year")["client"].nunique()
    small = [int(per_year.idxmin())]
    settings = settings.model_copy(update={"disclosure_threshold": int(per_year.min()) + 1})
    big = [int(y) for y, n in per_year.items() if n >= settings.disclosure_threshold][1:]  # leave one big year out
    assert big
    alone = feasibility.count(engine, ENTRY, {"start_year": big}, settings)
    with_small = feasibility.count(engine, ENTRY, {"start_year": big + small[:1]}, settings)
    assert not alone.suppressed
    assert with_small.suppressed and with_small.reason == "differencing"
    # and leaving the small year out of "everything" is caught by the complement
    rest = [int(y) for y in per_year.index if int(y) != small[0]]
    assert feasibility.count(engine, ENTRY, {"start_year": rest}, settings).reason == "differencing"


def test_unknown_filters_and_entries_are_refused(loaded):
    settings, engine, _ = loaded
    with pytest.raises(ValueError, match="unknown filter"):
        feasibility.count(engine, ENTRY, {"postcode": ["1234"]}, settings)
    with pytest.raises(LookupError):
        feasibility.count(engine, "nope", {}, settings)


def test_none_is_answered_as_a_few(loaded):
    """'none' and 'a few' give the same answer, alone and as one category of a filter (issue 12)."""
    settings, engine, pairs = loaded
    settings = settings.model_copy(update={"disclosure_threshold": 3})  # so that single cells can be published
    cells = (pairs.assign(year=pd.to_datetime(pairs["start_date"]).dt.year)
             .groupby(["intervention", "year"])["client"].nunique().unstack(fill_value=0))
    found = None
    for intervention, row in cells.iterrows():
        zero = [int(y) for y, n in row.items() if n == 0]
        few = [int(y) for y, n in row.items() if 0 < n < settings.disclosure_threshold]
        big = [int(y) for y, n in row.items() if n >= settings.disclosure_threshold and not feasibility.count(
            engine, ENTRY, {"intervention": [intervention], "start_year": [int(y)]}, settings).suppressed]
        if zero and few and big:
            found = intervention, zero[0], few[0], big[0]
            break
    assert found, "the synthetic data hold an intervention with an empty, a small and a published year"
    intervention, zero, few, big = found
    answers = [feasibility.count(engine, ENTRY, {"intervention": [intervention], "start_year": [year]}, settings)
               for year in (zero, few)]
    assert answers[0] == answers[1] and answers[0].reason == "small" and answers[0].rows is None
    alone = feasibility.count(engine, ENTRY, {"intervention": [intervention], "start_year": [big]}, settings)
    assert not alone.suppressed
    widened = [feasibility.count(engine, ENTRY, {"intervention": [intervention], "start_year": [big, year]}, settings)
               for year in (zero, few)]
    assert widened[0] == widened[1] and widened[0].suppressed, "an empty category must not pass where a small one fails"


def test_selecting_every_category_is_no_filter(loaded):
    settings, engine, pairs = loaded
    every = sorted(pairs["informant"].dropna().unique())
    assert pairs["informant"].notna().all()
    assert feasibility.count(engine, ENTRY, {"informant": every}, settings) == feasibility.count(engine, ENTRY, {},
                                                                                                  settings)
