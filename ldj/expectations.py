"""Data contracts: Great Expectations suites, one per delivery kind, kept as JSON in `expectations/`.

`build_suites` derives them from the delivery format and the instrument definitions
(`ldj expectations build`); a steward may add expectations by hand to a suite file. The ingest
validates every typed chunk with the suite and gets back exactly the failing rows.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .delivery import Column, DeliverySpec, RowError
from .i18n import t

SUITE_VERSION = 1


def _exp(type_: str, rule: str, col: Column, message: str, **kwargs) -> dict:
    return {"type": type_, "kwargs": kwargs, "meta": {"rule": rule, "column": col.name, "label": col.label,
                                                      "message": message}}


def suite_for(kind: str, spec: DeliverySpec) -> dict:
    """The suite (as JSON data) for a file kind: `trajectories`, an instrument code or another declared kind."""
    exps = []
    inst = spec.instruments.get(kind)
    by_name = {c.name: c for c in spec.columns(kind)}
    for col in spec.columns(kind):
        if col.required:
            exps.append(_exp("expect_column_values_to_not_be_null", "not_null", col,
                             t("row_not_null", "nl", label=col.label), column=col.name))
        values = list(col.values)
        if col.name == "informant" and inst is not None:
            values = list(inst.informants)
        if col.name == "moment" and inst is not None:
            values = list(inst.moments)
        if col.values_from == "interventions":
            values = sorted(set(spec.interventions.values()))
        if values:
            exps.append(_exp("expect_column_values_to_be_in_set", "in_set", col,
                             t("row_in_set", "nl", label=col.label, values=", ".join(values)),
                             column=col.name, value_set=values))
        if col.type in ("integer", "number") and (col.min is not None or col.max is not None):
            exps.append(_exp("expect_column_values_to_be_between", "between", col,
                             t("row_between", "nl", label=col.label, min=_fmt(col.min), max=_fmt(col.max)),
                             column=col.name, min_value=col.min, max_value=col.max))
        if col.regex:
            exps.append(_exp("expect_column_values_to_match_regex", "regex", col,
                             t("row_regex", "nl", label=col.label), column=col.name, regex=col.regex))
        if col.after:
            other = by_name[col.after]
            exps.append(_exp("expect_column_pair_values_a_to_be_greater_than_b", "after", col,
                             t("row_after", "nl", label=col.label, other=other.label),
                             column_A=col.name, column_B=col.after, or_equal=True,
                             ignore_row_if="either_value_is_missing"))
    unique = spec.kind(kind).key
    # Unique within one delivery (organisation and period): the ingest may validate several files at once.
    exps.append(_exp("expect_compound_columns_to_be_unique", "unique", by_name[unique],
                     t("row_unique", "nl", label=by_name[unique].label),
                     column_list=["organisation", "period", unique]))
    return {"name": kind, "expectations": exps, "meta": {"ldj_suite_version": SUITE_VERSION,
                                                         "generated_from": "catalog/delivery.yaml + catalog/instruments"}}


def _fmt(v) -> str:
    return "" if v is None else (str(int(v)) if float(v).is_integer() else str(v))


def build_suites(spec: DeliverySpec) -> dict[str, dict]:
    return {kind: suite_for(kind, spec) for kind in spec.kind_names()}


def write_suites(spec: DeliverySpec, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, suite in build_suites(spec).items():
        path = folder / f"{kind}.json"
        path.write_text(json.dumps(suite, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


def load_suite(kind: str, folder: Path) -> dict | None:
    path = Path(folder) / f"{kind}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class _Compiled:
    """A suite made ready for one layout of frame (its columns): the expectation objects,
    the metrics each needs and the graph of metrics the whole suite needs. None of it depends on the
    rows, so it serves every frame of that layout."""

    engine: object
    batch_id: str
    runtime: dict
    items: list  # (configuration, expectation object, its validation dependencies)
    edges: list


@dataclass
class SuiteValidator:
    """Validates dataframes against one suite with an ephemeral GX context.

    Great Expectations' own `batch.validate(suite)` rebuilds, for every frame, a validator, every
    expectation object and the graph of metrics they need: about 10 ms per expectation whatever the
    rows, most of a small file's import. This builds them once per layout of frame (`_compile`)
    and per frame only computes the metrics and asks each expectation for its verdict, as GX's
    `Validator.graph_validate` does. `tests/test_expectations.py` checks that it finds exactly the
    rows GX's own run finds.
    """

    suite_json: dict
    builds: int = 0  # suites compiled (once per layout of frame)
    runs: int = 0  # frames validated

    @staticmethod
    def load_library() -> None:
        """Import Great Expectations now (seconds: it pulls in altair, jsonschema and scipy). The import
        forks a helper process per call; a helper forked after this inherits the library instead of
        importing it again for every call."""
        import great_expectations  # noqa: F401

    def __post_init__(self) -> None:
        import great_expectations as gx

        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        context = gx.get_context(mode="ephemeral")
        try:
            context.variables.progress_bars = gx.data_context.types.base.ProgressBarsConfig(globally=False)
        except Exception:  # pragma: no cover - cosmetic only
            pass
        asset = context.data_sources.add_pandas("ldj").add_dataframe_asset("delivery")
        self._batch_definition = asset.add_batch_definition_whole_dataframe("chunk")
        self._suite = gx.ExpectationSuite(**{k: v for k, v in self.suite_json.items() if k != "meta"})
        self._compiled: dict[tuple, _Compiled] = {}

    def _compile(self, frame: pd.DataFrame) -> _Compiled:
        batch = self._batch_definition.get_batch(batch_parameters={"dataframe": frame})
        validator = batch._create_validator(result_format="COMPLETE")._wrapped_validator
        engine, batch_id = validator._execution_engine, validator.active_batch_id
        runtime = {"result_format": "COMPLETE"}
        items, edges = [], []
        for config in validator.process_expectations_for_validation(self._suite.expectation_configurations, None):
            evaluated = copy.deepcopy(config)
            evaluated.kwargs["batch_id"] = batch_id
            expectation = evaluated.to_domain_obj()
            needs = expectation.get_validation_dependencies(execution_engine=engine,
                                                            runtime_configuration=copy.deepcopy(runtime))
            graph = validator._metrics_calculator.build_metric_dependency_graph(
                metric_configurations=needs.get_metric_configurations(), runtime_configuration=runtime)
            items.append((config, expectation, needs))
            edges += graph.edges
        self.builds += 1
        return _Compiled(engine, batch_id, runtime, items, edges)

    def validate(self, frame: pd.DataFrame) -> list[RowError]:
        from great_expectations.validator.validation_graph import ValidationGraph

        layout = tuple(frame.columns)  # what the metrics depend on; not the dtypes (an empty column is float)
        if layout not in self._compiled:
            self._compiled[layout] = self._compile(frame)
        compiled = self._compiled[layout]
        self.runs += 1
        engine = compiled.engine
        engine.load_batch_data(compiled.batch_id, frame)
        engine._metric_cache.clear()  # metrics of the previous frame carry the same ids
        graph = ValidationGraph(execution_engine=engine, edges=compiled.edges)
        try:
            metrics, aborted = graph.resolve(runtime_configuration=compiled.runtime, show_progress_bars=False)
        finally:
            engine.load_batch_data(compiled.batch_id, frame.iloc[:0])  # hold no rows between frames
            engine._metric_cache.clear()
        present = set(frame.columns)
        errors: list[RowError] = []
        for config, expectation, needs in compiled.items:
            meta = config.meta or {}
            kwargs = config.kwargs
            column = kwargs.get("column") or kwargs.get("column_A") or (kwargs.get("column_list") or [None])[-1]
            if column is not None and column not in present:
                continue
            ids = {name: mc.id for name, mc in needs.metric_configurations.items()}
            missing = [i for i in ids.values() if i not in metrics]
            if missing:
                info = next((aborted[i] for i in missing if i in aborted), None)
                reason = info["exception_info"].exception_message if info else f"metrics {missing} not computed"
                raise RuntimeError(f"expectation {config.type} on {column} failed to run: {reason}")
            runtime = copy.deepcopy(compiled.runtime)
            runtime["result_format"] = needs.result_format
            result = expectation._validate(metrics={name: metrics[i] for name, i in ids.items()},
                                           runtime_configuration=runtime, execution_engine=engine)
            if not isinstance(result, dict):
                result = result.to_json_dict()
            if result["success"]:
                continue
            rule = f"{meta.get('rule', config.type)}:{column}"
            message = meta.get("message") or config.type
            for idx in (result.get("result") or {}).get("unexpected_index_list") or []:
                value = frame.at[idx, column] if column in present else None
                errors.append(RowError(idx, rule, column, value, message))
        return errors
