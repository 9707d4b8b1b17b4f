"""Instrument definitions (catalog/instruments/*.yaml) and ldj/instruments.py.

Hand-worked examples; the SDQ scoring is also checked against an independent plain-Python
implementation using exact fractions.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ldj.instruments import (
    INFORMANTS,
    SCORING_METHODS,
    InstrumentError,
    load_instruments,
    resolve_instrument,
)

CATALOG = Path(__file__).resolve().parents[1] / "catalog"
EXPECTED = {"cbcl_1_5", "cbcl_6_18", "ysr", "trf", "sdq", "obvl", "satisfaction", "kidscreen10"}


@pytest.fixture(scope="module")
def instruments():
    return load_instruments(CATALOG)


@pytest.fixture(scope="module")
def sdq(instruments):
    return instruments["sdq"]


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def sdq_rows(*rows: dict[int, float]) -> pd.DataFrame:
    """One row per dict {item number: answer}; items not named are unanswered."""
    return pd.DataFrame(
        [[row.get(i, np.nan) for i in range(1, 26)] for row in rows],
        columns=[f"item_{i}" for i in range(1, 26)],
        dtype=float,
    )


def all_items(value: float) -> dict[int, float]:
    return {i: value for i in range(1, 26)}


# ---------------------------------------------------------------------------------------------
# The shipped definitions


def test_every_shipped_definition_loads(instruments):
    assert EXPECTED <= set(instruments)  # more may be added: that is a data change
    files = sorted(p.name for p in (CATALOG / "instruments").glob("*.y*ml"))
    assert len(files) == len(instruments)
    for code, inst in instruments.items():
        assert inst.code == code
        assert inst.source is not None and inst.source.name in files
        assert set(inst.name) >= {"nl", "en"}, code
        assert set(inst.description) >= {"nl", "en"}, code
        assert inst.informants and set(inst.informants) <= set(INFORMANTS)
        assert inst.level in ("item", "scale")
        assert inst.scales
        for s in inst.scales:
            assert set(s.label) >= {"nl", "en"}, (code, s.code)
            assert s.method in SCORING_METHODS
            if inst.level == "scale":
                assert s.method in ("delivered", "sum_of"), (code, s.code)


def test_codes_and_aliases_unique(instruments):
    # instrument codes are keys (the loader refuses duplicates); the normalised code/alias
    # spellings must not point at two instruments, or resolve_instrument would pick one silently
    owner: dict[str, str] = {}
    for inst in instruments.values():
        for spelling in {_norm(inst.code), *(_norm(a) for a in inst.aliases)}:
            assert owner.setdefault(spelling, inst.code) == inst.code, spelling
        scale_codes = [s.code for s in inst.scales]
        assert len(scale_codes) == len(set(scale_codes)), inst.code


def test_bands_ascend_and_are_labelled(instruments):
    n_banded = 0
    for inst in instruments.values():
        for s in inst.scales:
            if not s.bands:
                assert not s.clinical_bands, (inst.code, s.code)
                continue
            n_banded += 1
            assert s.band_basis in ("raw", "t"), (inst.code, s.code)
            if s.band_basis == "t":
                assert s.t_range is not None, (inst.code, s.code)
            labels = set()
            for informant, bands in s.bands.items():
                assert informant == "default" or informant in inst.informants, (inst.code, s.code)
                lowers = [b.lower for b in bands]
                assert all(a < b for a, b in zip(lowers, lowers[1:])), (inst.code, s.code)
                labels |= {b.label for b in bands}
            assert set(s.clinical_bands) <= labels, (inst.code, s.code)
            assert s.clinical_bands, (inst.code, s.code)
            if inst.band_labels:
                assert labels <= set(inst.band_labels), (inst.code, s.code)
                for lab in labels:
                    assert set(inst.band_labels[lab]) >= {"nl", "en"}
    assert n_banded >= 40


def test_scales_used_for_change_have_a_reliability(instruments):
    # A scale is used for change (delta T, reliable change, recovered) when it has a T score or
    # clinical bands. Any reliability given must be a proportion.
    used = 0
    for inst in instruments.values():
        for s in inst.scales:
            if s.t_range is not None or s.clinical_bands:
                used += 1
                assert s.reliability is not None, (inst.code, s.code)
            if s.reliability is not None:
                assert isinstance(s.reliability, float), (inst.code, s.code)
                assert 0 < s.reliability < 1, (inst.code, s.code)
    assert used >= 50
    assert instruments["kidscreen10"].scale("total").reliability == pytest.approx(0.82)
    assert instruments["obvl"].scale("total").reliability == pytest.approx(0.90)


def test_ranges_are_ordered(instruments):
    for inst in instruments.values():
        for s in inst.scales:
            for rng in (s.raw_range, s.t_range):
                if rng is not None:
                    assert rng[0] < rng[1], (inst.code, s.code)


def test_ysr_trf_mirror_cbcl_6_18(instruments):
    cbcl = instruments["cbcl_6_18"]
    codes = [s.code for s in cbcl.scales]
    for code, informant, ages in (("ysr", "youth", (11, 18)), ("trf", "teacher", (6, 18))):
        inst = instruments[code]
        assert [s.code for s in inst.scales] == codes
        assert inst.informants == (informant,)
        assert inst.age_range == ages
        for s in inst.scales:
            assert s.bands["default"] == cbcl.scale(s.code).bands["default"]
    # "a little lower for the YSR"
    ysr, trf = instruments["ysr"], instruments["trf"]
    assert sum(s.reliability for s in ysr.scales) < sum(s.reliability for s in cbcl.scales)
    assert sum(s.reliability for s in ysr.scales) < sum(s.reliability for s in trf.scales)


def test_cbcl_1_5_scales(instruments):
    inst = instruments["cbcl_1_5"]
    assert [s.code for s in inst.scales] == [
        "emotionally_reactive", "anxious_depressed", "somatic_complaints", "withdrawn",
        "sleep_problems", "attention_problems", "aggressive",
        "internalising", "externalising", "total_problems",
    ]
    assert inst.level == "scale" and inst.informants == ("parent",)


def test_obvl_definition(instruments):
    obvl = instruments["obvl"]
    assert obvl.level == "scale" and obvl.informants == ("parent",)
    ranges = {s.code: s.raw_range for s in obvl.scales}
    assert ranges["total"] == (34.0, 136.0)
    subscales = [r for c, r in ranges.items() if c != "total"]
    assert len(subscales) == 5
    # the subscales' item counts (min of a 1-4 answer scale) add up to the 34 items
    assert sum(lo for lo, _ in subscales) == 34
    assert all(hi == 4 * lo for lo, hi in subscales)
    t = pd.Series([59, 60, 64, 65, np.nan])
    assert obvl.scale("total").band(t, "parent").tolist() == [
        "normal", "borderline", "borderline", "clinical", None
    ]
    assert obvl.band_labels["borderline"]["nl"] == "subklinisch"


def test_satisfaction_definition(instruments):
    sat = instruments["satisfaction"]
    assert set(sat.informants) == {"parent", "youth"}
    mean = sat.scale("mean")
    assert mean.method == "delivered" and mean.raw_range == (1.0, 5.0)
    assert mean.t_range is None and mean.higher_is_better and not mean.bands
    assert sat.free_text == ("comment",)
    assert sat.data_columns() == ["mean_raw", "comment"]
    labels = sat.column_labels()
    assert labels["opmerking"] == "comment"
    assert labels["gemiddelde tevredenheid"] == "mean_raw"
    assert labels["tevredenheid gemiddeld"] == "mean_raw"


def test_column_labels_are_lower_case(instruments):
    # exports are matched case-insensitively: every key is lower case
    for inst in instruments.values():
        for key in inst.column_labels():
            assert key == key.lower(), (inst.code, key)
    labels = instruments["cbcl_6_18"].column_labels()
    assert labels["angstig/depressief ruw"] == "anxious_depressed_raw"
    assert labels["totale problemen t-score"] == "total_problems_t"
    assert instruments["sdq"].column_labels()["vraag 25"] == "item_25"


def test_data_columns(instruments):
    cbcl = instruments["cbcl_1_5"].data_columns()
    assert cbcl[:2] == ["emotionally_reactive_raw", "emotionally_reactive_t"]
    assert len(cbcl) == 20
    ks = instruments["kidscreen10"].data_columns()
    assert ks == [f"item_{i}" for i in range(1, 11)]  # total is computed, not delivered


# ---------------------------------------------------------------------------------------------
# SDQ scoring, hand-worked


SDQ_COLS = ["emotional", "conduct", "hyperactivity", "peer", "prosocial",
            "total_difficulties", "externalising", "internalising"]


def scored(sdq, *rows) -> list[dict]:
    out = sdq.score_items(sdq_rows(*rows))
    return [
        {c: (None if pd.isna(v) else v) for c, v in zip(SDQ_COLS, r)}
        for r in out[[f"{c}_raw" for c in SDQ_COLS]].itertuples(index=False)
    ]


def test_sdq_all_answered(sdq):
    twos, zeros, ones = scored(sdq, all_items(2), all_items(0), all_items(1))
    # all 2: reversed items (7; 21, 25; 11, 14) count 0
    assert twos == dict(emotional=10, conduct=8, hyperactivity=6, peer=6, prosocial=10,
                        total_difficulties=30, externalising=14, internalising=16)
    # all 0: reversed items count 2
    assert zeros == dict(emotional=0, conduct=2, hyperactivity=4, peer=4, prosocial=0,
                         total_difficulties=10, externalising=6, internalising=4)
    assert ones == dict(emotional=5, conduct=5, hyperactivity=5, peer=5, prosocial=5,
                        total_difficulties=20, externalising=10, internalising=10)


def test_sdq_mixed_answers(sdq):
    row = {
        3: 2, 8: 1, 13: 0, 16: 2, 24: 1,   # emotional 6
        5: 1, 7: 0, 12: 1, 18: 0, 22: 2,   # conduct 1 + (2-0) + 1 + 0 + 2 = 6
        2: 2, 10: 2, 15: 1, 21: 1, 25: 0,  # hyperactivity 2 + 2 + 1 + 1 + 2 = 8
        6: 0, 11: 2, 14: 1, 19: 1, 23: 0,  # peer 0 + 0 + 1 + 1 + 0 = 2
        1: 2, 4: 1, 9: 2, 17: 0, 20: 1,    # prosocial 6
    }
    (r,) = scored(sdq, row)
    assert r == dict(emotional=6, conduct=6, hyperactivity=8, peer=2, prosocial=6,
                     total_difficulties=22, externalising=14, internalising=8)


def test_sdq_three_of_five_scored_two_of_five_missing(sdq):
    three = all_items(1) | {3: np.nan, 8: np.nan, 13: 2, 16: 1, 24: 0}  # 3 answered, sum 3 -> 5
    two = all_items(1) | {3: np.nan, 8: np.nan, 13: np.nan, 16: 2, 24: 2}  # 2 answered
    r3, r2 = scored(sdq, three, two)
    assert r3["emotional"] == 5
    assert r2["emotional"] is None
    assert r3["total_difficulties"] == 20
    assert r2["total_difficulties"] is None
    assert r2["internalising"] is None
    assert r2["externalising"] == 10 and r2["conduct"] == 5  # other scales unaffected


@pytest.mark.parametrize(
    "answers, expected",
    [
        ((1, 1, 0, 0), 3),     # 4 answered, sum 2: 2.5 -> 3 (half up, not half to even)
        ((2, 2, 1, 1), 8),     # sum 6: 7.5 -> 8
        ((1, 0, 0, 0), 1),     # sum 1: 1.25 -> 1
        ((1, 1, 1, 0), 4),     # sum 3: 3.75 -> 4
        ((2, 2, 1, 0), 6),     # sum 5: 6.25 -> 6
        ((2, 2, 2, 1), 9),     # sum 7: 8.75 -> 9
        ((1, 0, 0), 2),        # 3 answered, sum 1: 1.67 -> 2
        ((1, 1, 0), 3),        # sum 2: 3.33 -> 3
        ((2, 2, 1), 8),        # sum 5: 8.33 -> 8
        ((2, 2, 2), 10),
        ((0, 0, 0), 0),
    ],
)
def test_sdq_proration_rounds_half_up(sdq, answers, expected):
    items = [3, 8, 13, 16, 24]  # emotional: no reversed items
    row = dict(zip(items, answers))
    (r,) = scored(sdq, row)
    assert r["emotional"] == expected


def test_sdq_proration_with_reversed_item(sdq):
    # conduct, 4 answered: 5=0, 7=2 (reversed: 0), 12=1, 18=1 -> sum 2 -> 2.5 -> 3
    (r,) = scored(sdq, {5: 0, 7: 2, 12: 1, 18: 1})
    assert r["conduct"] == 3
    # hyperactivity, 4 answered: 2=2, 10=2, 21=0 (-> 2), 25=np.nan, 15=0 -> sum 6 -> 7.5 -> 8
    (r,) = scored(sdq, {2: 2, 10: 2, 21: 0, 15: 0})
    assert r["hyperactivity"] == 8


@pytest.mark.parametrize(
    "item, scale, others",
    [(7, "conduct", [5, 12, 18, 22]),
     (21, "hyperactivity", [2, 10, 15, 25]),
     (25, "hyperactivity", [2, 10, 15, 21]),
     (11, "peer", [6, 14, 19, 23]),
     (14, "peer", [6, 11, 19, 23])],
)
def test_sdq_reverse_items(sdq, item, scale, others):
    # the other four items are set so they contribute 0, whether or not they are reversed
    reversed_ = {7, 21, 25, 11, 14}
    base = {o: (2 if o in reversed_ else 0) for o in others}
    rows = [base | {item: a} for a in (0, 1, 2)]
    assert [r[scale] for r in scored(sdq, *rows)] == [2, 1, 0]


def test_sdq_non_reversed_items_not_reversed(sdq):
    for item in (3, 5, 2, 6, 1, 12, 10, 19, 9):
        (r,) = scored(sdq, all_items(0) | {item: 2})
        (base,) = scored(sdq, all_items(0))
        scale = next(k for k in ("emotional", "conduct", "hyperactivity", "peer", "prosocial")
                     if item in sdq.scale(k).items)
        assert r[scale] == base[scale] + 2, item


@pytest.mark.parametrize("missing", ["emotional", "conduct", "hyperactivity", "peer"])
def test_sdq_total_missing_when_any_difficulty_scale_missing(sdq, missing):
    row = all_items(1)
    for i in sdq.scale(missing).items[:3]:
        row[i] = np.nan  # 2 of 5 left
    (r,) = scored(sdq, row)
    assert r[missing] is None
    assert r["total_difficulties"] is None
    present = [k for k in ("emotional", "conduct", "hyperactivity", "peer") if k != missing]
    assert all(r[k] == 5 for k in present)
    ext_missing = missing in ("conduct", "hyperactivity")
    assert (r["externalising"] is None) == ext_missing
    assert (r["internalising"] is None) == (not ext_missing)
    assert r["externalising" if not ext_missing else "internalising"] == 10


def test_sdq_prosocial_not_in_total(sdq):
    prosocial = [1, 4, 9, 17, 20]
    a = all_items(1) | {i: 0 for i in prosocial}
    b = all_items(1) | {i: 2 for i in prosocial}
    c = all_items(1) | {i: np.nan for i in prosocial}
    ra, rb, rc = scored(sdq, a, b, c)
    assert (ra["prosocial"], rb["prosocial"], rc["prosocial"]) == (0, 10, None)
    assert ra["total_difficulties"] == rb["total_difficulties"] == rc["total_difficulties"] == 20


def test_sdq_empty_row_all_missing(sdq):
    (r,) = scored(sdq, {})
    assert all(v is None for v in r.values())


def test_sdq_keeps_index(sdq):
    df = sdq_rows(all_items(1), all_items(2))
    df.index = [17, 4]
    out = sdq.score_items(df)
    assert list(out.index) == [17, 4]
    assert out.loc[4, "emotional_raw"] == 10


# ---------------------------------------------------------------------------------------------
# SDQ bands (parent report, four-band UK classification)


@pytest.mark.parametrize(
    "scale, values, labels",
    [
        ("total_difficulties", [0, 13, 14, 16, 17, 19, 20, 40],
         ["close_to_average", "close_to_average", "slightly_raised", "slightly_raised",
          "high", "high", "very_high", "very_high"]),
        ("emotional", [3, 4, 5, 6, 7, 10],
         ["close_to_average", "slightly_raised", "high", "high", "very_high", "very_high"]),
        ("conduct", [2, 3, 4, 5, 6],
         ["close_to_average", "slightly_raised", "high", "high", "very_high"]),
        ("hyperactivity", [5, 6, 7, 8, 9],
         ["close_to_average", "slightly_raised", "slightly_raised", "high", "very_high"]),
        ("peer", [2, 3, 4, 5],
         ["close_to_average", "slightly_raised", "high", "very_high"]),
        ("prosocial", [0, 5, 6, 7, 8, 10],
         ["very_low", "very_low", "low", "slightly_lowered", "close_to_average", "close_to_average"]),
    ],
)
def test_sdq_parent_bands_at_boundaries(sdq, scale, values, labels):
    s = sdq.scale(scale)
    got = s.band(pd.Series(values, dtype=float), "parent")
    assert got.tolist() == labels


def test_sdq_band_missing_and_other_informants(sdq):
    s = sdq.scale("total_difficulties")
    values = pd.Series([20.0, np.nan, 20.0, 20.0])
    informants = pd.Series(["parent", "parent", "teacher", None])
    # no teacher cut-offs are defined (and no default): no band rather than the parent's
    assert s.band(values, informants).tolist() == ["very_high", None, None, None]
    assert s.is_clinical("very_high") and s.is_clinical("high")
    assert not s.is_clinical("slightly_raised") and not s.is_clinical(None)
    p = sdq.scale("prosocial")
    assert p.is_clinical("very_low") and not p.is_clinical("close_to_average")


def test_sdq_score_then_band(sdq):
    out = sdq.score_items(sdq_rows(all_items(2), all_items(0)))
    bands = sdq.scale("total_difficulties").band(out["total_difficulties_raw"], "parent")
    assert bands.tolist() == ["very_high", "close_to_average"]  # 30 and 10


# ---------------------------------------------------------------------------------------------
# SDQ against an independent implementation

REFERENCE_SCALES = {
    "emotional": ([3, 8, 13, 16, 24], []),
    "conduct": ([5, 7, 12, 18, 22], [7]),
    "hyperactivity": ([2, 10, 15, 21, 25], [21, 25]),
    "peer": ([6, 11, 14, 19, 23], [11, 14]),
    "prosocial": ([1, 4, 9, 17, 20], []),
}


def reference_sdq(answers: list) -> dict:
    """Plain-Python SDQ scoring: answers[i-1] is item i, None when not answered."""
    out: dict = {}
    for name, (items, rev) in REFERENCE_SCALES.items():
        vals = [(2 - answers[i - 1]) if i in rev else answers[i - 1]
                for i in items if answers[i - 1] is not None]
        if len(vals) < 3:
            out[name] = None
        else:
            exact = Fraction(sum(vals) * 5, len(vals))
            out[name] = math.floor(exact + Fraction(1, 2))  # half up
    diff = [out[k] for k in ("emotional", "conduct", "hyperactivity", "peer")]
    out["total_difficulties"] = None if None in diff else sum(diff)
    ext = [out["conduct"], out["hyperactivity"]]
    out["externalising"] = None if None in ext else sum(ext)
    internal = [out["emotional"], out["peer"]]
    out["internalising"] = None if None in internal else sum(internal)
    return out


def test_sdq_matches_independent_implementation(sdq):
    rng = np.random.default_rng(20240611)
    n = 2000
    answers = rng.integers(0, 3, size=(n, 25)).astype(float)
    p_missing = rng.choice([0.0, 0.1, 0.3, 0.5, 0.8], size=(n, 1))
    answers[rng.random((n, 25)) < p_missing] = np.nan
    df = pd.DataFrame(answers, columns=[f"item_{i}" for i in range(1, 26)])
    got = sdq.score_items(df)

    n_missing = {c: 0 for c in SDQ_COLS}
    n_half = 0
    for r in range(n):
        row = [None if np.isnan(a) else int(a) for a in answers[r]]
        want = reference_sdq(row)
        for c in SDQ_COLS:
            value = got.at[r, f"{c}_raw"]
            if want[c] is None:
                n_missing[c] += 1
                assert pd.isna(value), (r, c, row)
            else:
                assert value == want[c], (r, c, row, value, want[c])
        for items, rev in REFERENCE_SCALES.values():
            vals = [(2 - row[i - 1]) if i in rev else row[i - 1]
                    for i in items if row[i - 1] is not None]
            if len(vals) == 4 and (sum(vals) * 5) % 4 == 2:
                n_half += 1
    # the sample exercises what it is meant to: missing scales, missing totals, exact halves
    assert 50 < n_missing["emotional"] < n - 50
    assert 50 < n_missing["total_difficulties"] < n - 50
    assert n_half > 50


# ---------------------------------------------------------------------------------------------
# CBCL bands


@pytest.mark.parametrize("code", ["cbcl_6_18", "cbcl_1_5", "ysr", "trf"])
def test_aseba_bands(instruments, code):
    inst = instruments[code]
    informant = inst.informants[0]
    broad_t = pd.Series([59, 60, 63, 64, np.nan, 100])
    for scale in ("internalising", "externalising", "total_problems"):
        got = inst.scale(scale).band(broad_t, informant).tolist()
        assert got == ["normal", "borderline", "borderline", "clinical", None, "clinical"], scale
    syndrome_t = pd.Series([50, 64, 65, 69, 70, None], dtype=float)
    syndromes = [s for s in inst.scales
                 if s.code not in ("internalising", "externalising", "total_problems")]
    assert len(syndromes) in (7, 8)
    for s in syndromes:
        got = s.band(syndrome_t, informant).tolist()
        assert got == ["normal", "normal", "borderline", "borderline", "clinical", None], s.code
        assert s.is_clinical("clinical") and not s.is_clinical("borderline")


def test_cbcl_bands_per_row_informant(instruments):
    s = instruments["cbcl_6_18"].scale("total_problems")
    values = pd.Series([70.0, 55.0, 62.0], index=[10, 11, 12])
    got = s.band(values, pd.Series(["parent", "parent", "parent"], index=[10, 11, 12]))
    assert got.to_dict() == {10: "clinical", 11: "normal", 12: "borderline"}


# ---------------------------------------------------------------------------------------------
# KIDSCREEN-10: an instrument added as data only


def test_kidscreen10_scoring(instruments):
    ks = instruments["kidscreen10"]
    assert ks.level == "item" and ks.item_count == 10 and (ks.item_min, ks.item_max) == (1, 5)
    assert set(ks.informants) == {"youth", "parent"} and ks.age_range == (8, 18)
    total = ks.scale("total")
    assert total.reverse == (3, 4) and total.higher_is_better and total.t_range is None
    rows = pd.DataFrame(
        [
            [5] * 10,                          # 8*5 + (6-5)*2 = 42
            [1] * 10,                          # 8*1 + (6-1)*2 = 18
            [1, 2, 3, 4, 5, 1, 2, 3, 4, 5],    # 1+2+(6-3)+(6-4)+5+1+2+3+4+5 = 28
            [5, 5, 1, 1, 5, 5, 5, 5, 5, 5],    # best possible: 50
            [1, 1, 5, 5, 1, 1, 1, 1, 1, 1],    # worst possible: 10
            [5, 5, 1, 1, 5, 5, 5, 5, 5, np.nan],  # one item missing: no score
        ],
        columns=[f"item_{i}" for i in range(1, 11)],
        dtype=float,
    )
    got = ks.score_items(rows)["total_raw"].tolist()
    assert got[:5] == [42, 18, 28, 50, 10]
    assert pd.isna(got[5])


# ---------------------------------------------------------------------------------------------
# Loader errors


def minimal_item_instrument() -> dict:
    return {
        "code": "toy",
        "name": {"nl": "Speelgoed", "en": "Toy"},
        "level": "item",
        "informants": ["parent"],
        "items": {"count": 4, "min": 0, "max": 3},
        "scales": [
            {"code": "a", "method": "sum", "items": [1, 2], "reverse": [2],
             "bands": [{"from": 0, "label": "low"}, {"from": 4, "label": "high"}]},
            {"code": "b", "method": "prorated_sum", "items": [3, 4], "min_answered": 1},
            {"code": "both", "method": "sum_of", "sum_of": ["a", "b"]},
        ],
    }


def write_catalog(tmp_path: Path, data, name: str = "toy_def.yaml") -> Path:
    folder = tmp_path / "instruments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return tmp_path


def test_fixture_definition_is_valid(tmp_path):
    inst = load_instruments(write_catalog(tmp_path, minimal_item_instrument()))["toy"]
    df = pd.DataFrame({"item_1": [3.0, 1.0], "item_2": [0.0, np.nan],
                       "item_3": [1.0, np.nan], "item_4": [np.nan, np.nan]})
    out = inst.score_items(df)
    # a = 3 + (3-0) = 6 | second row: item_2 missing, sum needs all -> missing
    # b: 1 answered of 2, sum 1 -> mean 1 x 2 = 2 | none answered -> missing
    assert out["a_raw"].tolist()[0] == 6 and pd.isna(out["a_raw"].tolist()[1])
    assert out["b_raw"].tolist()[0] == 2 and pd.isna(out["b_raw"].tolist()[1])
    assert out["both_raw"].tolist()[0] == 8 and pd.isna(out["both_raw"].tolist()[1])


def test_bands_default_and_informant_override(tmp_path):
    data = minimal_item_instrument()
    data["informants"] = ["parent", "teacher"]
    data["scales"][0]["bands"] = {
        "default": [{"from": 0, "label": "low"}, {"from": 4, "label": "high"}],
        "teacher": [{"from": 1, "label": "low"}, {"from": 3, "label": "high"}],
    }
    a = load_instruments(write_catalog(tmp_path, data))["toy"].scale("a")
    values = pd.Series([-1, 0, 3, 4, -1, 0, 1, 3, np.nan], dtype=float)
    informants = pd.Series(["parent"] * 4 + ["teacher"] * 4 + ["teacher"])
    # below the lowest bound: no band; parent falls back to the default list
    assert a.band(values, informants).tolist() == [
        None, "low", "low", "high", None, None, "low", "high", None
    ]


def _break_unknown_method(d):
    d["scales"][1]["method"] = "median"


def _break_missing_code(d):
    del d["code"]


def _break_missing_scale_code(d):
    del d["scales"][0]["code"]


def _break_bands_descending(d):
    d["scales"][0]["bands"] = [{"from": 4, "label": "high"}, {"from": 0, "label": "low"}]


def _break_bands_equal(d):
    d["scales"][0]["bands"] = [{"from": 0, "label": "low"}, {"from": 0, "label": "high"}]


def _break_bands_unsorted_for_informant(d):
    d["scales"][0]["bands"] = {"parent": [{"from": 0, "label": "low"}, {"from": 4, "label": "mid"},
                                          {"from": 2, "label": "high"}]}


def _break_bands_unknown_informant(d):
    d["scales"][0]["bands"] = {"parnet": [{"from": 0, "label": "low"}]}


def _break_sum_of_unknown(d):
    d["scales"][2]["sum_of"] = ["a", "c"]


def _break_sum_of_order(d):
    d["scales"] = [d["scales"][2], d["scales"][0], d["scales"][1]]


def _break_item_out_of_range(d):
    d["scales"][1]["items"] = [3, 5]


def _break_item_zero(d):
    d["scales"][1]["items"] = [0, 3]


def _break_item_method_on_scale_level(d):
    d["level"] = "scale"


def _break_reverse_not_in_items(d):
    d["scales"][0]["reverse"] = [3]


def _break_reverse_without_item_range(d):
    del d["items"]["min"]


def _break_duplicate_scale(d):
    d["scales"][1]["code"] = "a"
    d["scales"][2]["sum_of"] = ["a"]


def _break_unknown_informant(d):
    d["informants"] = ["parent", "grandparent"]


def _break_level(d):
    d["level"] = "items"


def _break_raw_range(d):
    d["scales"][0]["raw_range"] = [0]


def _break_missing_name(d):
    del d["name"]


BREAKS = [
    _break_unknown_method, _break_missing_code, _break_missing_scale_code,
    _break_bands_descending, _break_bands_equal, _break_bands_unsorted_for_informant,
    _break_bands_unknown_informant, _break_sum_of_unknown, _break_sum_of_order,
    _break_item_out_of_range, _break_item_zero, _break_item_method_on_scale_level,
    _break_reverse_not_in_items, _break_reverse_without_item_range, _break_duplicate_scale,
    _break_unknown_informant, _break_level, _break_raw_range, _break_missing_name,
]


@pytest.mark.parametrize("breaker", BREAKS, ids=[b.__name__[7:] for b in BREAKS])
def test_loader_rejects_bad_definition(tmp_path, breaker):
    data = minimal_item_instrument()
    breaker(data)
    catalog = write_catalog(tmp_path, data, name="broken_one.yaml")
    with pytest.raises(InstrumentError, match=r"broken_one\.yaml"):
        load_instruments(catalog)


def test_loader_rejects_empty_file(tmp_path):
    (tmp_path / "instruments").mkdir()
    (tmp_path / "instruments" / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(InstrumentError, match=r"empty\.yaml"):
        load_instruments(tmp_path)


def test_loader_rejects_duplicate_instrument_code(tmp_path):
    write_catalog(tmp_path, minimal_item_instrument(), name="a.yaml")
    write_catalog(tmp_path, minimal_item_instrument(), name="b.yaml")
    with pytest.raises(InstrumentError, match=r"b\.yaml.*defined twice"):
        load_instruments(tmp_path)


def test_new_instrument_is_data_only(tmp_path):
    # the shipped catalogue plus one new YAML file: loads and scores without any code change
    folder = tmp_path / "instruments"
    folder.mkdir()
    for p in (CATALOG / "instruments").glob("*.yaml"):
        (folder / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    write_catalog(tmp_path, minimal_item_instrument(), name="toy.yaml")
    found = load_instruments(tmp_path)
    assert set(found) == set(load_instruments(CATALOG)) | {"toy"}
    assert resolve_instrument("TOY", found).code == "toy"


# ---------------------------------------------------------------------------------------------
# resolve_instrument


@pytest.mark.parametrize(
    "name, code",
    [
        ("CBCL/6-18", "cbcl_6_18"), ("cbcl 6-18", "cbcl_6_18"), ("CBCL", "cbcl_6_18"),
        ("cbcl_6_18", "cbcl_6_18"), ("SDQ", "sdq"), ("sdq-nl", "sdq"), (" sdq ", "sdq"),
        ("CBCL/1½-5", "cbcl_1_5"), ("CBCL/1.5-5", "cbcl_1_5"), ("CBCL 1,5-5", "cbcl_1_5"),
        ("YSR", "ysr"), ("ysr/11-18", "ysr"), ("TRF", "trf"), ("OBVL", "obvl"),
        ("Opvoedingsbelastingvragenlijst", "obvl"), ("KIDSCREEN-10", "kidscreen10"),
        ("Cliënttevredenheid", "satisfaction"), ("tevredenheid", "satisfaction"),
    ],
)
def test_resolve_instrument(instruments, name, code):
    found = resolve_instrument(name, instruments)
    assert found is not None and found.code == code


@pytest.mark.parametrize("name", ["XYZ", "", "CBCL 4-18", "KIDSCREEN-27"])
def test_resolve_instrument_unknown(instruments, name):
    assert resolve_instrument(name, instruments) is None
