"""ldj.safe: the disclosure rules against their definitions, boundaries included; suppression; the
record (rename, remove, comments, exceptions, manifest); and `ldj airlock check` on what it wrote.

Small synthetic frames built here; no hub, no store."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ldj import safe
from ldj.cli import main
from ldj.safe import OutputError, OutputSession, evaluate, read_meta
from ldj.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    """An empty working folder (no ldj.toml of the developer) and a fresh module session."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(safe, "_session", None)
    return tmp_path


def session(tmp_path, suppress=False, **settings) -> OutputSession:
    return OutputSession(tmp_path / "out", suppress=suppress, settings=Settings(**settings))


def only(acro: OutputSession) -> dict:
    [output] = acro.outputs()
    return output


def reason(output: dict, rule: str) -> dict | None:
    found = [r for r in output["reasons"] if r["rule"] == rule]
    return found[0] if found else None


def magnitude_frame(*cells: list[float]) -> pd.DataFrame:
    """One row per contributor: cell `c0`, `c1`, ... with the given values, all in column x."""
    rows = [(f"c{i}", "x", v) for i, values in enumerate(cells) for v in values]
    return pd.DataFrame(rows, columns=["group", "column", "value"])


# --- threshold and zeros ------------------------------------------------------------------------

def test_a_cell_of_nine_fails_and_a_cell_of_ten_passes(tmp_path):
    acro = session(tmp_path)
    index = pd.Series(["a"] * 10 + ["b"] * 9, name="g")
    columns = pd.Series(["x"] * 19, name="h")
    table = acro.crosstab(index, columns)
    pd.testing.assert_frame_equal(table, pd.crosstab(index, columns))  # what pandas returns, untouched
    output = only(acro)
    assert output["kind"] == "table" and output["status"] == "fail"
    assert reason(output, "threshold") == {"rule": "threshold", "outcome": "fail",
                                          "cells": [{"row": ["b"], "column": ["x"], "n": 9}]}
    acro.remove_output(output["name"])
    acro.crosstab(pd.Series(["a"] * 10 + ["b"] * 10), pd.Series(["x"] * 20))
    assert only(acro)["status"] == "pass" and only(acro)["reasons"] == []


def test_a_structural_zero_goes_to_review_not_to_fail(tmp_path):
    """No teacher fills in the OBVL: the empty cell is not a small group, but a checker looks at it."""
    data = pd.DataFrame({"instrument": ["cbcl"] * 20 + ["obvl"] * 10,
                         "informant": ["parent"] * 10 + ["teacher"] * 10 + ["parent"] * 10})
    acro = session(tmp_path)
    table = acro.crosstab(data.instrument, data.informant)
    assert table.loc["obvl", "teacher"] == 0
    output = only(acro)
    assert output["status"] == "review"
    assert reason(output, "zeros")["cells"] == [{"row": ["obvl"], "column": ["teacher"], "n": 0}]
    assert reason(output, "threshold") is None
    lenient = session(tmp_path, safe_zeros_review=False)
    assert only(lenient)["status"] == "pass"  # the same metadata, checked under other settings


def test_margins_are_checked_like_cells(tmp_path):
    data = pd.DataFrame({"g": ["a"] * 6 + ["b"] * 20, "h": ["x", "y"] * 13})
    acro = session(tmp_path)
    acro.crosstab(data.g, data.h, margins=True)
    cells = reason(only(acro), "threshold")["cells"]
    assert {"row": ["a"], "column": ["All"], "n": 6} in cells  # the row total of a is 6 people
    assert {"row": ["a"], "column": ["x"], "n": 3} in cells
    assert all(c["row"] == ["a"] for c in cells)


def test_contributors_count_people_not_rows(tmp_path):
    """Twelve questionnaires of three clients are three contributors, not twelve."""
    data = pd.DataFrame({"g": ["a"] * 12, "h": ["x"] * 12, "client": ["p1", "p2", "p3"] * 4,
                         "score": np.arange(12.0) + 50})
    acro = session(tmp_path)
    acro.crosstab(data.g, data.h)
    assert only(acro)["status"] == "pass"
    acro.remove_output("output_1")
    acro.pivot_table(data, values="score", index="g", columns="h", aggfunc="mean", contributors="client")
    assert reason(only(acro), "threshold")["cells"] == [{"row": ["a"], "column": ["x"], "n": 3}]


# --- magnitude tables: NK, p%, all-the-same, negative and missing values -----------------------

def test_nk_fails_at_exactly_ninety_percent_and_passes_just_under(tmp_path):
    exactly = [45, 45] + [1.25] * 8          # 90 of 100
    under = [44.9, 45] + [1.2625] * 8        # 89.9 of 100
    data = magnitude_frame(exactly, under)
    acro = session(tmp_path)
    table = acro.pivot_table(data, values="value", index="group", columns="column", aggfunc="sum")
    pd.testing.assert_frame_equal(table, pd.pivot_table(data, values="value", index="group", columns="column",
                                                        aggfunc="sum"))
    output = only(acro)
    assert reason(output, "nk-rule")["cells"] == [{"row": ["c0"], "column": ["x"], "nk_share": 0.9}]
    assert output["status"] == "fail"
    assert reason(output, "threshold") is None  # ten contributors each


def test_p_percent_fails_just_under_ten_percent_and_passes_at_it(tmp_path):
    """(total - largest - second) / largest: 10 / 100 passes, 9.6 / 100 fails."""
    at = [100, 50] + [1.25] * 8
    under = [100, 50] + [1.2] * 8
    data = magnitude_frame(at, under)
    acro = session(tmp_path)
    acro.crosstab(data.group, data.column, values=data.value, aggfunc="sum")
    assert reason(only(acro), "p-ratio")["cells"] == [{"row": ["c1"], "column": ["x"], "p_ratio": 0.096}]


def test_nk_and_p_percent_follow_their_settings(tmp_path):
    data = magnitude_frame([45, 45] + [1.25] * 8)
    acro = session(tmp_path, safe_nk_k=0.95, safe_p_ratio=0.3)
    acro.pivot_table(data, values="value", index="group", columns="column", aggfunc="mean")
    output = only(acro)
    assert reason(output, "nk-rule") is None
    assert reason(output, "p-ratio")["cells"][0]["p_ratio"] == pytest.approx(10 / 45, abs=1e-6)


def test_all_values_the_same_fails(tmp_path):
    data = magnitude_frame([3.0] * 10, [3.0] * 9 + [4.0])
    acro = session(tmp_path)
    acro.pivot_table(data, values="value", index="group", columns="column", aggfunc="mean")
    output = only(acro)
    assert reason(output, "all-values-are-same")["cells"] == [{"row": ["c0"], "column": ["x"], "n": 10}]
    assert output["status"] == "fail"


def test_negative_values_go_to_review_and_nk_weighs_their_size(tmp_path):
    """A change score can be negative: the cell goes to review, and NK and p% take absolute values."""
    data = magnitude_frame([-5.0, 6] + [4.0] * 8, [-40.0, 45] + [1.0] * 8)
    acro = session(tmp_path)
    acro.pivot_table(data, values="value", index="group", columns="column", aggfunc="mean")
    output = only(acro)
    assert reason(output, "negative")["cells"] == [{"row": ["c0"], "column": ["x"], "negative": 1},
                                                   {"row": ["c1"], "column": ["x"], "negative": 1}]
    assert reason(output, "nk-rule")["cells"] == [{"row": ["c1"], "column": ["x"], "nk_share": 0.913978}]
    assert output["status"] == "fail"
    acro.remove_output("output_1")
    acro.pivot_table(data[data.group == "c0"], values="value", index="group", columns="column", aggfunc="mean")
    assert only(acro)["status"] == "review"


def test_missing_values_go_to_review_and_do_not_count_as_contributors(tmp_path):
    ten_and_one_missing = [float(v) for v in range(10, 20)] + [np.nan]
    nine_and_one_missing = [float(v) for v in range(10, 19)] + [np.nan]
    data = magnitude_frame(ten_and_one_missing, nine_and_one_missing)
    acro = session(tmp_path)
    acro.pivot_table(data, values="value", index="group", columns="column", aggfunc="median")
    output = only(acro)
    assert reason(output, "missing")["cells"] == [{"row": ["c0"], "column": ["x"], "missing": 1},
                                                  {"row": ["c1"], "column": ["x"], "missing": 1}]
    assert reason(output, "threshold")["cells"] == [{"row": ["c1"], "column": ["x"], "n": 9}]


def test_an_unsupported_aggregate_is_refused(tmp_path):
    data = magnitude_frame([1.0] * 10)
    with pytest.raises(OutputError, match="max"):
        session(tmp_path).pivot_table(data, values="value", index="group", aggfunc="max")
    assert session(tmp_path).outputs() == []


# --- suppression ----------------------------------------------------------------------------------

def test_suppression_masks_the_failing_cell_and_the_margins_that_would_give_it_back(tmp_path):
    data = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 23, "h": ["x"] * 10 + ["y"] * 10 + ["x"] * 20 + ["y"] * 3})
    acro = session(tmp_path, suppress=True)
    table = acro.crosstab(data.g, data.h, margins=True)
    plain = pd.crosstab(data.g, data.h, margins=True)
    hidden = {("b", "y"), ("b", "All"), ("All", "y"), ("All", "All")}
    for row in plain.index:
        for column in plain.columns:
            if (row, column) in hidden:
                assert np.isnan(table.loc[row, column]), (row, column)
            else:
                assert table.loc[row, column] == plain.loc[row, column], (row, column)
    output = only(acro)
    assert output["status"] == "review"  # nothing failing is shown, a checker still looks
    assert reason(output, "threshold") == {"rule": "threshold", "outcome": "review", "suppressed": True,
                                          "cells": [{"row": ["b"], "column": ["y"], "n": 3}]}
    assert {(c["row"][0], c["column"][0]) for c in reason(output, "suppression")["cells"]} == hidden
    written = pd.read_csv(tmp_path / "out" / "output_1.csv", index_col=0)
    assert np.isnan(written.loc["b", "y"]) and written.loc["a", "x"] == 10


def test_suppression_per_call_and_a_suppressed_histogram_is_not_drawn(tmp_path):
    acro = session(tmp_path)
    data = pd.DataFrame({"score": [1.0] * 3 + [2.0] * 10})
    assert acro.hist(data, "score", bins=2, suppress=True) is None
    output = only(acro)
    assert output["status"] == "fail" and output["files"] == []


# --- regressions ------------------------------------------------------------------------------

@pytest.mark.parametrize("rows, status", [(11, "fail"), (12, "pass")])
def test_regressions_need_ten_residual_degrees_of_freedom(tmp_path, rows, status):
    import statsmodels.api as sm

    rng = np.random.default_rng(rows)
    x = rng.normal(size=rows)
    y = 2 * x + rng.normal(size=rows)
    acro = session(tmp_path)
    results = acro.ols(y, sm.add_constant(x))
    assert results.df_resid == rows - 2
    np.testing.assert_allclose(results.params, sm.OLS(y, sm.add_constant(x)).fit().params)
    output = only(acro)
    assert output["kind"] == "regression" and output["status"] == status
    if status == "fail":
        assert output["reasons"] == [{"rule": "dof", "outcome": "fail", "figures": {"dof_resid": 9.0, "minimum": 10}}]
    assert "OLS Regression Results" in (tmp_path / "out" / "output_1.txt").read_text()


def test_formula_regression_and_logit(tmp_path):
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    data = pd.DataFrame({"x": rng.normal(size=60)})
    data["y"] = 1.5 * data.x + rng.normal(size=60)
    data["event"] = (data.x + rng.normal(size=60) > 0).astype(int)
    acro = session(tmp_path)
    assert acro.olsr("y ~ x", data).df_resid == 58
    logit = acro.logit(data.event, sm.add_constant(data.x))
    assert logit.df_resid == 58
    assert [(o["method"], o["status"]) for o in acro.outputs()] == [("olsr", "pass"), ("logit", "pass")]


# --- histograms and custom outputs --------------------------------------------------------------

def test_histogram_bins_under_the_threshold_fail_and_a_safe_one_goes_to_review(tmp_path):
    acro = session(tmp_path)
    safe_data = pd.DataFrame({"t": [50.0] * 10 + [60.0] * 10})
    acro.hist(safe_data, "t", bins=2)
    small = pd.DataFrame({"t": [50.0] * 10 + [60.0] * 9})
    acro.hist(small, "t", bins=2)
    first, second = acro.outputs()
    assert first["status"] == "review"  # the axis shows the minimum and maximum
    assert [r["rule"] for r in first["reasons"]] == ["extremes"]
    assert (tmp_path / "out" / "output_1.png").read_bytes()[:4] == b"\x89PNG"
    assert second["status"] == "fail"
    assert reason(second, "threshold")["bins"] == [{"bin": 1, "from": 55.0, "to": 60.0, "n": 9}]


def test_a_custom_output_is_always_reviewed(tmp_path):
    figure = tmp_path / "figuur.svg"
    figure.write_text("<svg/>")
    acro = session(tmp_path)
    name = acro.custom_output(figure, "Verloop van de T-score per jaar")
    output = only(acro)
    assert (name, output["kind"], output["status"]) == ("output_1", "custom", "review")
    assert output["comments"] == ["Verloop van de T-score per jaar"]
    assert (tmp_path / "out" / "output_1.svg").read_text() == "<svg/>"


# --- the record: names, comments, exceptions, manifest ----------------------------------------------

def _small_table(acro: OutputSession) -> None:
    acro.crosstab(pd.Series(["a"] * 12 + ["b"] * 4), pd.Series(["x"] * 16))


def test_rename_remove_comments_and_exceptions(tmp_path):
    acro = session(tmp_path)
    _small_table(acro)
    _small_table(acro)
    acro.rename_output("output_1", "leeftijd-per-groep")
    acro.add_comments("leeftijd-per-groep", "Aantal cliënten per groep")
    acro.add_exception("leeftijd-per-groep", "Groep b is een structureel kleine pilot")
    acro.remove_output("output_2")
    [output] = acro.outputs()
    assert output["name"] == "leeftijd-per-groep" and output["files"] == ["leeftijd-per-groep.csv"]
    assert output["comments"] == ["Aantal cliënten per groep"]
    assert output["exception"] == "Groep b is een structureel kleine pilot"
    assert output["status"] == "fail"  # an exception is for the checker; the finding stays
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["leeftijd-per-groep.csv",
                                                                    "leeftijd-per-groep.meta.json"]
    _small_table(acro)  # numbering goes on from what the folder holds, in the order written
    assert [o["name"] for o in acro.outputs()] == ["leeftijd-per-groep", "output_2"]
    acro.rename_output("leeftijd-per-groep", "output_4")
    _small_table(acro)
    assert [o["name"] for o in acro.outputs()] == ["output_4", "output_2", "output_5"]


@pytest.mark.parametrize("bad", ["../buiten", "Mooie Naam", "a/b", "", "manifest", ".verborgen", "x" * 65, "tabel.csv"])
def test_output_names_are_short_slugs(tmp_path, bad):
    acro = session(tmp_path)
    _small_table(acro)
    with pytest.raises(OutputError):
        acro.rename_output("output_1", bad)
    with pytest.raises(OutputError):
        acro.add_comments(bad, "x")
    assert [o["name"] for o in acro.outputs()] == ["output_1"]
    assert not (tmp_path / "buiten.meta.json").exists()


def test_unknown_and_taken_names_are_refused(tmp_path):
    acro = session(tmp_path)
    _small_table(acro)
    _small_table(acro)
    with pytest.raises(OutputError, match="geen uitvoer"):
        acro.remove_output("output_9")
    with pytest.raises(OutputError, match="al een uitvoer"):
        acro.rename_output("output_1", "output_2")


def test_finalise_writes_the_manifest_of_every_output(tmp_path):
    acro = session(tmp_path)
    _small_table(acro)
    acro.crosstab(pd.Series(["a"] * 10), pd.Series(["x"] * 10))
    acro.add_comments("output_2", "Alle cliënten")
    path = acro.finalise()
    assert path == (tmp_path / "out" / "manifest.json").resolve()
    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["format"] == "ldj.safe.manifest/1"
    assert manifest["counts"] == {"pass": 1, "fail": 1, "review": 0}
    assert manifest["rules"]["safe_threshold"] == 10
    first, second = manifest["outputs"]
    assert (first["name"], first["status"], second["name"], second["status"]) == ("output_1", "fail", "output_2", "pass")
    assert second["comments"] == ["Alle cliënten"] and first["metadata"] == "output_1.meta.json"
    [file] = first["files"]
    digest = hashlib.sha256((tmp_path / "out" / "output_1.csv").read_bytes()).hexdigest()
    assert file == {"name": "output_1.csv", "sha256": digest}


def test_finalise_takes_acros_arguments_and_copies_into_a_new_folder(tmp_path):
    acro = session(tmp_path)
    _small_table(acro)
    acro.add_exception("output_1", "Structureel")
    path = acro.finalise(str(tmp_path / "final"), "json")  # ACRO: finalise(path, ext)
    assert path == (tmp_path / "final" / "manifest.json").resolve()
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == \
        ["manifest.json", "output_1.csv", "output_1.meta.json"]
    checked = safe.check_paths([tmp_path / "final"])
    assert [(c["name"], c["status"], c["exception"]) for c in checked] == [("output_1", "fail", "Structureel")]
    assert not (tmp_path / "out" / "manifest.json").exists()  # the session's own folder is left as it was
    with pytest.raises(OutputError, match="bestaat al"):
        acro.finalise(tmp_path / "final")
    with pytest.raises(OutputError, match="alleen als JSON"):
        acro.finalise(ext="xlsx")
    assert acro.finalise("out") == (tmp_path / "out" / "manifest.json").resolve()  # its own folder: in place


def test_submitting_needs_a_title_and_description_and_a_workspace(tmp_path, monkeypatch):
    acro = session(tmp_path)
    _small_table(acro)
    with pytest.raises(OutputError, match="titel en een beschrijving"):
        acro.finalise(title="Alleen een titel")
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    monkeypatch.delenv("LDJ_DATA_SERVICE_URL", raising=False)
    with pytest.raises(safe.SubmitError, match="alleen in je LDJ-werkomgeving: JUPYTERHUB_API_TOKEN, "
                                               "LDJ_DATA_SERVICE_URL ontbreekt"):
        acro.submit("Titel", "Beschrijving")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "token")
    monkeypatch.setenv("LDJ_DATA_SERVICE_URL", "http://127.0.0.1:9/services/ldj-data")  # nothing listens there
    with pytest.raises(safe.SubmitError, match="niet bereikbaar"):
        safe.submit("Titel", "Beschrijving", project=1)


def test_the_metadata_alone_re_runs_the_checks(tmp_path):
    """No data, only the recorded counts and ratios: the same findings, and other settings give other ones."""
    acro = session(tmp_path)
    _small_table(acro)
    meta = read_meta(tmp_path / "out" / "output_1.meta.json")
    assert evaluate(meta, Settings()) == (meta["status"], meta["reasons"])
    assert evaluate(meta, Settings(safe_threshold=4)) == ("pass", [])
    text = json.dumps(meta)
    assert "nk_share" not in text  # a frequency table records counts only


def test_module_functions_write_to_the_output_dir_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("LDJ_OUTPUT_DIR", str(tmp_path / "mijn-uitvoer"))
    get_settings.cache_clear()
    try:
        safe.crosstab(pd.Series(["a"] * 10), pd.Series(["x"] * 10))
        safe.add_comments("output_1", "test")
        assert [(o["name"], o["status"]) for o in safe.outputs()] == [("output_1", "pass")]
        assert safe.finalise() == (tmp_path / "mijn-uitvoer" / "manifest.json").resolve()
    finally:
        get_settings.cache_clear()


def test_importing_ldj_safe_needs_no_store_hub_portal_or_statsmodels():
    code = ("import sys, ldj.safe; heavy = ['statsmodels', 'matplotlib', 'sqlalchemy', 'jupyterhub', 'panel', "
            "'ldj.store', 'ldj.governance']; print([m for m in heavy if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- ldj airlock check --------------------------------------------------------------------------------

def airlock(*args: str, language: str = "nl"):
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["airlock", "check", *args], env={"LDJ_LANGUAGE": language})
    get_settings.cache_clear()
    return result


def test_airlock_check_reports_outputs_from_their_metadata_and_free_files_as_review(tmp_path):
    acro = session(tmp_path)
    _small_table(acro)                                              # output_1: fail
    acro.crosstab(pd.Series(["a"] * 10), pd.Series(["x"] * 10))     # output_2: pass
    (tmp_path / "out" / "aantekeningen.txt").write_text("n = 4 in groep b")
    result = airlock(str(tmp_path / "out"))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("output_1 (tabel): afgekeurd — te weinig bijdragers (1)") for line in lines)
    assert any(line.startswith("output_2 (tabel): geslaagd") for line in lines)
    assert any(line.startswith("aantekeningen.txt (eigen bestand): beoordelen — geen metadata") for line in lines)
    assert lines[-1] == "3 uitvoer: 1 geslaagd, 1 afgekeurd, 1 te beoordelen"

    passing = airlock(str(tmp_path / "out" / "output_2.csv"))
    assert passing.exit_code == 0, passing.stdout

    as_json = airlock("--json", str(tmp_path / "out" / "output_1.csv"), str(tmp_path / "out" / "aantekeningen.txt"))
    assert as_json.exit_code == 1
    first, free = (json.loads(line) for line in as_json.stdout.splitlines())
    assert (first["name"], first["status"]) == ("output_1", "fail")
    assert first["reasons"][0]["cells"] == [{"row": ["b"], "column": ["x"], "n": 4}]
    assert (free["status"], free["reasons"][0]["rule"]) == ("review", "no-metadata")


def test_airlock_check_sends_a_file_changed_after_the_check_to_review(tmp_path):
    acro = session(tmp_path)
    acro.crosstab(pd.Series(["a"] * 10), pd.Series(["x"] * 10))
    (tmp_path / "out" / "output_1.csv").write_text("row_0,col_0\na,3\n")
    result = airlock("--json", str(tmp_path / "out"))
    [checked] = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1
    assert checked["status"] == "review"
    assert checked["reasons"] == [{"rule": "changed", "outcome": "review", "figures": {"files": ["output_1.csv"]}}]


def test_airlock_check_speaks_english_when_asked(tmp_path):
    acro = session(tmp_path)
    acro.crosstab(pd.Series(["a"] * 10), pd.Series(["x"] * 10))
    result = airlock(str(tmp_path / "out"), language="en")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"output_1 (table): pass — -  [{tmp_path / 'out' / 'output_1.meta.json'}]",
                                          "1 outputs: 1 passed, 0 failed, 0 to review"]


def test_airlock_check_sends_metadata_edited_by_hand_to_review(tmp_path):
    acro = session(tmp_path)
    _small_table(acro)
    meta_path = tmp_path / "out" / "output_1.meta.json"
    meta = json.loads(meta_path.read_text())
    meta["checks"]["cells"] = [{"row": ["b"]}]  # the counts gone
    meta["kind"] = "spreadsheet"
    meta_path.write_text(json.dumps(meta))
    (tmp_path / "out" / "other.meta.json").write_text("{not json")
    result = airlock("--json", str(tmp_path / "out"))
    assert result.exit_code == 1
    checked = {c["name"]: (c["status"], c["reasons"][0]["rule"]) for c in map(json.loads, result.stdout.splitlines())}
    assert checked == {"output_1": ("review", "bad-metadata"), "other.meta.json": ("review", "bad-metadata")}
    meta["kind"] = "table"
    meta_path.write_text(json.dumps(meta))
    assert json.loads(airlock("--json", str(meta_path)).stdout)["reasons"][0]["rule"] == "bad-metadata"


def test_two_level_tables_with_margins_and_suppression(tmp_path):
    data = pd.DataFrame({"org": ["A"] * 40 + ["B"] * 24, "year": [2024, 2025] * 32,
                         "sex": ["m"] * 20 + ["v"] * 20 + ["m"] * 20 + ["v"] * 4})
    acro = session(tmp_path, suppress=True)
    table = acro.crosstab([data.org, data.year], data.sex, margins=True)
    plain = pd.crosstab([data.org, data.year], data.sex, margins=True)
    hidden = {(("B", 2024), "v"), (("B", 2025), "v"), (("B", 2024), "All"), (("B", 2025), "All"),
              (("All", ""), "v"), (("All", ""), "All")}
    for row in plain.index:
        for column in plain.columns:
            shown = table.loc[row, column]
            assert np.isnan(shown) if (row, column) in hidden else shown == plain.loc[row, column], (row, column)
    output = only(acro)
    assert reason(output, "threshold")["cells"] == [{"row": ["B", 2024], "column": ["v"], "n": 2},
                                                    {"row": ["B", 2025], "column": ["v"], "n": 2}]
    unsuppressed = acro.crosstab([data.org, data.year], data.sex, margins=True, suppress=False)
    pd.testing.assert_frame_equal(unsuppressed, plain)


def test_a_safe_table_is_returned_unchanged_under_suppression(tmp_path):
    index, columns = pd.Series(["a"] * 10 + ["b"] * 10), pd.Series(["x"] * 20)
    table = session(tmp_path, suppress=True).crosstab(index, columns, margins=True)
    pd.testing.assert_frame_equal(table, pd.crosstab(index, columns, margins=True))


def test_an_output_cannot_be_written_outside_its_folder_through_a_link(tmp_path):
    outside = tmp_path / "elders.csv"
    outside.write_text("van iemand anders")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "output_1.csv").symlink_to(outside)
    with pytest.raises(ValueError, match="buiten"):
        session(tmp_path).crosstab(pd.Series(["a"] * 10), pd.Series(["x"] * 10))
    assert outside.read_text() == "van iemand anders"
