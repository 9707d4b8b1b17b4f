"""The suites and the format documentation are data derived from the catalogue: they must be in sync."""

from __future__ import annotations

import json

import pandas as pd

from ldj.delivery import Limits, coerce, load_spec, open_delivery
from ldj.docs import delivery_format_markdown
from ldj.expectations import SuiteValidator, build_suites, load_suite
from ldj.settings import REPO_ROOT


def test_committed_suites_equal_the_generated_ones():
    spec = load_spec(REPO_ROOT / "catalog")
    for kind, suite in build_suites(spec).items():
        committed = load_suite(kind, REPO_ROOT / "expectations")
        assert committed is not None, f"expectations/{kind}.json missing: run 'ldj expectations build'"
        assert json.loads(json.dumps(suite)) == committed, f"expectations/{kind}.json is stale"


def test_committed_format_doc_is_up_to_date():
    spec = load_spec(REPO_ROOT / "catalog")
    doc = (REPO_ROOT / "docs" / "delivery-format.md").read_text(encoding="utf-8")
    assert doc == delivery_format_markdown(spec), "docs/delivery-format.md is stale: run 'ldj docs'"


def test_every_instrument_has_a_suite_with_ranges_for_each_scale():
    spec = load_spec(REPO_ROOT / "catalog")
    for code, inst in spec.instruments.items():
        suite = load_suite(code, REPO_ROOT / "expectations")
        between = {e["kwargs"]["column"] for e in suite["expectations"]
                   if e["type"] == "expect_column_values_to_be_between"}
        for s in inst.delivered_scales:
            assert s.raw_column in between
            if s.t_range:
                assert s.t_column in between


def test_validator_returns_exactly_the_failing_rows():
    suite = load_suite("sdq", REPO_ROOT / "expectations")
    frame = pd.DataFrame({
        "organisation": ["O"] * 4, "period": ["2024", "2024", "24", "2024"], "client_id": ["a", None, "c", "d"],
        "trajectory_id": ["t"] * 4, "administration_id": ["1", "3", "2", "3"], "instrument": ["sdq"] * 4,
        "informant": ["parent", "parent", "professional", "youth"], "moment": ["start"] * 4,
        "date": pd.to_datetime(["2023-01-01"] * 4),
        **{f"item_{i}": [0.0, 1.0, 2.0, 3.0 if i == 5 else 1.0] for i in range(1, 26)},
    }, index=[10, 11, 12, 13])
    errors = SuiteValidator(suite).validate(frame)
    found = sorted((e.index, e.rule) for e in errors)
    assert found == [
        (11, "not_null:client_id"),
        (11, "unique:administration_id"),  # unique within organisation and period
        (12, "in_set:informant"),          # SDQ has no professional informant
        (12, "regex:period"),
        (13, "between:item_5"),
        (13, "unique:administration_id"),
    ]


def _gx_own_verdicts(suite: dict, frame: pd.DataFrame) -> set[tuple[int, str]]:
    """What Great Expectations' own `batch.validate(suite)` finds: a fresh validator for the frame."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("ref").add_dataframe_asset("ref").add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": frame}))
    result = batch.validate(gx.ExpectationSuite(**{k: v for k, v in suite.items() if k != "meta"}), result_format="COMPLETE")
    found = set()
    for res in result.results:
        assert not (res.exception_info or {}).get("raised_exception")
        kwargs = res.expectation_config.kwargs
        column = kwargs.get("column") or kwargs.get("column_A") or kwargs["column_list"][-1]
        found |= {(idx, f"{res.expectation_config.meta['rule']}:{column}")
                  for idx in res.result.get("unexpected_index_list") or []}
    return found


def test_a_validator_built_once_finds_on_every_frame_what_a_fresh_gx_run_finds(synthetic_delivery, sqlite_settings):
    """The suite is compiled once and then serves frame after frame (files, windows, chunks): nothing of one
    frame may leak into the verdicts on the next."""
    result = synthetic_delivery(questionnaires=1200, organisations=3, seed=5, invalid_share=0.2,
                                instruments=["sdq", "cbcl_6_18"])
    spec = load_spec(REPO_ROOT / "catalog")
    limits = Limits.from_settings(sqlite_settings)
    for kind, marker in (("trajectories", "trajecten"), ("sdq", "_sdq_"), ("cbcl_6_18", "cbcl_6_18")):
        validator = SuiteValidator(load_suite(kind, REPO_ROOT / "expectations"))
        frames = []
        for path in sorted(p for p in result.paths if marker in p.name):
            raw = pd.concat(list(open_delivery(path, spec, 100_000, limits).chunks))
            frames.append(coerce(raw, spec.columns(kind), spec)[0])
        assert len(frames) >= 2
        for frame in frames:
            mine = {(e.index, e.rule) for e in validator.validate(frame)}
            assert mine, f"{kind}: the synthetic file should break some rules"
            assert mine == _gx_own_verdicts(validator.suite_json, frame)
        assert (validator.builds, validator.runs) == (1, len(frames))
