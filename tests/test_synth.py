"""The synthetic BergOp delivery generator (ldj/synth.py).

Files are read back the way a data steward's tools would (pandas, `;`, decimal comma, the
encoding of each organisation) and checked against delivery.yaml, the instrument definitions and
the figures of the brief (section 3): severity at the start, change, response, objections.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ldj.instruments import load_instruments
from ldj.pseudonyms import mask_names, name_screen
from ldj.synth import MEASUREMENT_RULES, TRAJECTORY_RULES, generate

CATALOG = Path(__file__).resolve().parents[1] / "catalog"
DATE = "%d-%m-%Y"


@pytest.fixture(scope="module")
def instruments():
    return load_instruments(CATALOG)


@pytest.fixture(scope="module")
def delivery_labels():
    raw = yaml.safe_load((CATALOG / "delivery.yaml").read_text(encoding="utf-8"))
    return {part: [(c["name"], c["label"]) for c in raw[part]] for part in ("common", "trajectories", "measurements")}


@pytest.fixture(scope="module")
def cbcl(tmp_path_factory):
    """The benchmark's shape: CBCL 6-18 only, 25 organisations."""
    out = tmp_path_factory.mktemp("cbcl")
    return generate(out, questionnaires=20_000, organisations=25, seed=3, instruments=["cbcl_6_18"],
                    catalog_dir=CATALOG)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Every defined instrument, a few organisations."""
    out = tmp_path_factory.mktemp("mixed")
    return generate(out, questionnaires=8_000, organisations=6, seed=5, catalog_dir=CATALOG)


def read(info) -> pd.DataFrame:
    return pd.read_csv(info.path, sep=";", decimal=",", encoding=info.encoding, dtype=str,
                       keep_default_na=False)


def trajectories(result) -> pd.DataFrame:
    frames = [read(i) for i in result.files.values() if i.kind == "trajectories"]
    return pd.concat(frames, ignore_index=True)


def measurements(result, code: str) -> pd.DataFrame:
    frames = [read(i) for i in result.files.values() if i.kind == code]
    return pd.concat(frames, ignore_index=True)


def eleven_test(number: str) -> bool:
    if not re.fullmatch(r"\d{9}", number):
        return False
    digits = [int(c) for c in number]
    total = sum(w * d for w, d in zip(range(9, 1, -1), digits[:8])) - digits[8]
    return total % 11 == 0


def cbcl_pairs(result, instruments):
    """Valid CBCL total-problems T joined to trajectories, as the outcome definitions use them."""
    inst = instruments["cbcl_6_18"]
    total = inst.scale("total_problems")
    m = measurements(result, "cbcl_6_18")
    m["T"] = pd.to_numeric(m[f"{total.label['nl']} T"], errors="coerce")
    m["date"] = pd.to_datetime(m["Afnamedatum"], format=DATE, errors="coerce")
    m = m[m["T"].between(*total.t_range) & (m["Informant"] == "ouder") & m["date"].notna()]
    tr = trajectories(result)
    tr["start"] = pd.to_datetime(tr["Startdatum"], format=DATE, errors="coerce")
    tr["end"] = pd.to_datetime(tr["Einddatum"], format=DATE, errors="coerce")
    m = m.merge(tr[["Organisatie", "Trajectnummer", "start", "end", "Interventie"]],
                on=["Organisatie", "Trajectnummer"], how="inner")
    return m, tr


# --- determinism and format ------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(questionnaires=1_500, organisations=4, catalog_dir=CATALOG)
    a = generate(tmp_path / "a", seed=11, **kw)
    b = generate(tmp_path / "b", seed=11, **kw)
    c = generate(tmp_path / "c", seed=12, **kw)
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    common = set(a.files) & set(c.files)
    assert any((tmp_path / "a" / n).read_bytes() != (tmp_path / "c" / n).read_bytes() for n in common)


def test_file_names_and_encodings(mixed, cbcl):
    for result in (mixed, cbcl):
        for name, info in result.files.items():
            kind = "trajecten" if info.kind == "trajectories" else info.kind
            assert name == f"{info.organisation}_{kind}_2024.csv"
            assert info.path.parent == result.out_dir
    encodings = {i.organisation: i.encoding for i in cbcl.files.values()}
    assert set(encodings.values()) == {"utf-8-sig", "cp1252", "utf-8"}
    assert Counter(encodings.values()).most_common(1)[0][0] == "utf-8-sig"
    for info in cbcl.files.values():
        head = info.path.read_bytes()[:1000]
        assert head.startswith(b"\xef\xbb\xbf") == (info.encoding == "utf-8-sig")
        if info.encoding == "cp1252":
            assert b"Cli\xebntnummer" in head  # Windows-1252, not UTF-8
        else:
            assert "Cliëntnummer".encode() in head
        assert b"\r\n" in head  # Excel line ends


def test_columns_are_the_dutch_labels(mixed, instruments, delivery_labels):
    common = [label for _, label in delivery_labels["common"]]
    traj = common + [label for _, label in delivery_labels["trajectories"]]
    meas = common + [label for _, label in delivery_labels["measurements"]]
    kinds = set()
    for info in mixed.files.values():
        frame = read(info)
        assert len(frame) == info.rows
        if info.kind == "trajectories":
            assert list(frame.columns) == traj
            continue
        kinds.add(info.kind)
        inst = instruments[info.kind]
        assert list(frame.columns[: len(meas)]) == meas
        own = [c.lower() for c in frame.columns[len(meas):]]
        labels = inst.column_labels()
        mapped = [labels.get(c, c) for c in own]
        assert mapped == inst.data_columns(), info.path.name
        assert frame["Organisatie"].unique().tolist() == [info.organisation]
        assert frame["Periode"].unique().tolist() == ["2024"]
    assert len(kinds) >= 4  # several instruments in a mixed delivery


def test_values_use_dutch_export_labels(mixed):
    tr = trajectories(mixed)
    assert set(tr["Geslacht"]) <= {"M", "V", "X"}
    assert set(tr["Bezwaar"]) == {"ja", "nee"}
    assert set(tr["LVB"]) <= {"ja", "nee", ""}
    assert tr["Startdatum"].str.fullmatch(r"\d{2}-\d{2}-\d{4}|31-02-2021|gisteren").all()
    assert tr["Behandelaarnummer"].str.fullmatch(r"(P\d{5,})?").all()
    assert tr["Technieken"].str.contains("|", regex=False).any()
    assert set(tr["Reden einde"]) - {""} <= {"volgens plan", "afgerond", "voortijdig door cliënt", "voortijdig door client",
                                           "voortijdig door instelling", "verhuizing", "overig"}
    for info in mixed.files.values():
        if info.kind == "trajectories":
            continue
        m = read(info)
        assert set(m["Informant"]) <= {"ouder", "jongere", "leerkracht", "behandelaar", "buurman"}
        assert set(m["Meetmoment"]) <= {"start", "tussen", "eind", "follow-up"}
    sat = measurements(mixed, "satisfaction")
    assert set(sat["Meetmoment"]) == {"eind"}
    score = sat["Gemiddelde tevredenheid"]
    assert score.str.fullmatch(r"-?\d,\d\d").all()  # decimal comma
    values = pd.to_numeric(score.str.replace(",", "."))
    assert values[values > 0].between(1, 5).all()


def test_questionnaire_total_within_five_percent(cbcl, mixed):
    for result, asked in ((cbcl, 20_000), (mixed, 8_000)):
        assert abs(result.questionnaires - asked) <= 0.05 * asked
        assert sum(i.rows for i in result.files.values() if i.kind != "trajectories") == result.questionnaires
    assert set(cbcl.questionnaires_by_instrument()) == {"cbcl_6_18"}
    # the benchmark's shape: about 1.5 questionnaires per trajectory
    assert 1.2 <= cbcl.questionnaires / cbcl.trajectories <= 2.0


def test_administration_ids_unique_across_delivery(mixed):
    ids = pd.concat([read(i)["Afnamenummer"] for i in mixed.files.values() if i.kind != "trajectories"])
    duplicated = int(ids.duplicated().sum())
    assert duplicated == mixed.invalid_by_rule.get("duplicate_administration_id", 0)
    assert duplicated > 0


# --- realism ------------------------------------------------------------------------------------

def test_response_per_organisation_between_40_and_80_percent(cbcl, instruments):
    m, tr = cbcl_pairs(cbcl, instruments)
    ended = tr[tr["end"].notna()]
    started = m[m["Meetmoment"] == "start"][["Organisatie", "Trajectnummer"]].drop_duplicates()
    finished = m[m["Meetmoment"] == "eind"][["Organisatie", "Trajectnummer"]].drop_duplicates().assign(resp=True)
    base = ended.merge(started, on=["Organisatie", "Trajectnummer"]).merge(
        finished, on=["Organisatie", "Trajectnummer"], how="left")
    rate = base["resp"].fillna(False).astype(bool).groupby(base["Organisatie"]).mean()
    assert len(rate) == 25
    assert rate.between(0.40, 0.80).all(), rate.round(2).to_dict()
    assert rate.max() - rate.min() >= 0.08  # it varies by organisation


def test_severity_at_start_and_trend(cbcl, instruments):
    m, _ = cbcl_pairs(cbcl, instruments)
    start = m[m["Meetmoment"] == "start"]
    assert 62 <= start["T"].mean() <= 68
    assert 7 <= start["T"].std() <= 11
    assert 0.35 <= (start["T"] >= 64).mean() <= 0.65  # roughly half clinical
    year = start["start"].dt.year
    assert start.loc[year >= 2022, "T"].mean() > start.loc[year == 2015, "T"].mean() + 1.5


def test_change_for_completers(cbcl, instruments):
    m, _ = cbcl_pairs(cbcl, instruments)
    key = ["Organisatie", "Trajectnummer"]
    first = m[m["Meetmoment"] == "start"].sort_values("date").groupby(key)["T"].first()
    last = m[m["Meetmoment"] == "eind"].sort_values("date").groupby(key)["T"].last()
    pairs = pd.concat([first, last], axis=1, keys=["s", "e"]).dropna()
    assert len(pairs) > 2000
    delta = pairs["e"] - pairs["s"]
    assert -8 <= delta.mean() <= -4
    assert delta.std() >= 6  # large spread
    # reliable change (Jacobson & Truax) with the definition's reliability
    r = instruments["cbcl_6_18"].scale("total_problems").reliability
    s_diff = np.sqrt(2) * first.std() * np.sqrt(1 - r)
    rc = delta / s_diff
    assert 0.20 <= (rc < -1.96).mean() <= 0.50
    assert (rc > 1.96).mean() < 0.10
    # it varies by intervention type
    by_type = delta.groupby(m.drop_duplicates(key).set_index(key).loc[pairs.index, "Interventie"]).mean()
    assert by_type.max() - by_type.min() >= 1.5


def test_measurement_dates_within_trajectory(cbcl, instruments):
    m, tr = cbcl_pairs(cbcl, instruments)
    ok_traj = tr["start"].notna()
    m = m[m["start"].notna()]
    inside = m[m["Meetmoment"].isin(["start", "tussen", "eind"])]
    assert (inside["date"] >= inside["start"]).mean() > 0.99
    ended = inside[inside["end"].notna() & (inside["end"] >= inside["start"])]
    assert (ended["date"] <= ended["end"]).mean() > 0.99
    assert (m[m["Meetmoment"] == "follow-up"]["date"] > m[m["Meetmoment"] == "follow-up"]["end"]).all()
    running = tr[ok_traj & (tr["Einddatum"] == "")]
    assert 0.08 <= len(running) / len(tr) <= 0.22
    no_end = m.merge(running[["Organisatie", "Trajectnummer"]], on=["Organisatie", "Trajectnummer"])
    assert not (no_end["Meetmoment"] == "eind").any()


def test_objections_and_background(cbcl):
    tr = trajectories(cbcl)
    assert 0.01 <= (tr["Bezwaar"] == "ja").mean() <= 0.06
    assert 0.05 <= (tr["LVB"] == "ja").mean() <= 0.11
    assert 0.50 <= (tr["Geslacht"] == "M").mean() <= 0.62
    assert tr["Team"].str.startswith("Team ").all()
    teams = tr.groupby("Organisatie")["Team"].nunique()
    assert teams.between(2, 6).all()
    pz = tr[tr["Interventie"].str.contains("leegzorg|MTFC", regex=True) & (tr["Einddatum"] != "")]
    breakdown = (pz["Plaatsing voortijdig beëindigd"] == "ja").mean()
    assert 0.12 <= breakdown <= 0.28
    assert (tr.loc[~tr["Interventie"].isin(["MST", "Multisysteemtherapie", "Yoga"]), "Modelgetrouw uitgevoerd"] == "").all()


def test_item_level_answers(mixed, instruments):
    sdq = instruments["sdq"]
    m = measurements(mixed, "sdq")
    items = m[[f"Vraag {i}" for i in range(1, sdq.item_count + 1)]].apply(pd.to_numeric, errors="coerce")
    assert 0.01 <= items.isna().mean().mean() <= 0.06
    values = items.stack().dropna()
    assert (values == values.round()).all()
    bad = values[(values < sdq.item_min) | (values > sdq.item_max)]
    assert len(bad) == mixed.invalid_by_rule.get("item_out_of_range", 0) - _item_invalid(mixed, "kidscreen10")
    items.columns = sdq.item_columns
    scores = sdq.score_items(items.where(items <= sdq.item_max))
    start = scores[m["Meetmoment"] == "start"]
    assert 12 <= start["total_difficulties_raw"].mean() <= 22  # a clinical population
    assert start["prosocial_raw"].corr(start["total_difficulties_raw"]) < -0.2  # higher is better
    assert scores.loc[m["Meetmoment"] == "eind", "total_difficulties_raw"].mean() < start["total_difficulties_raw"].mean()


def _item_invalid(result, code: str) -> int:
    return sum(i.invalid.get("item_out_of_range", 0) for i in result.files.values() if i.kind == code)


# --- privacy: BSN-like numbers in free text ---------------------------------------------------------

def test_planted_bsn_numbers_pass_the_eleven_test_and_are_all_found(cbcl, mixed):
    for result in (cbcl, mixed):
        assert result.bsn_injected > 0
        assert all(eleven_test(n) for n in result.bsn_numbers)
        found = []
        for info in result.files.values():
            frame = read(info)
            text_cols = [c for c in ("Toelichting", "Contextfactoren", "Opmerking") if c in frame]
            for col in text_cols:
                found += [n for cell in frame[col] for n in re.findall(r"(?<!\d)\d{9}(?!\d)", cell)]
            assert sum(1 for col in text_cols for cell in frame[col] for _ in re.findall(r"(?<!\d)\d{9}(?!\d)", cell)) == info.bsn
        assert Counter(found) == Counter(result.bsn_numbers)
    assert not eleven_test("123456789")  # the check itself can fail


# --- privacy: person names in free text ------------------------------------------------------------

def test_planted_names_come_from_the_list_and_are_all_found(cbcl, mixed):
    screen = name_screen(CATALOG / "names.yaml")
    listed = set(screen.first_names + screen.surnames + screen.ambiguous)
    surnames = {s.lower() for s in screen.surnames + screen.ambiguous_surnames}
    for result in (cbcl, mixed):
        assert result.names_injected > 0
        assert sum(i.names for i in result.files.values()) == result.names_injected
        cells = []
        for info in result.files.values():
            frame = read(info)
            text_cols = [c for c in ("Toelichting", "Contextfactoren", "Opmerking") if c in frame]
            file_cells = [cell for col in text_cols for cell in frame[col] if cell]
            # every planted name is one mask, and nothing else in the synthetic text is taken for a name
            assert sum(mask_names(cell, screen)[1] for cell in file_cells) == info.names, info.path.name
            cells += file_cells
        text = "\n".join(cells)
        for name in result.planted_names:
            first, *surname = name.split()  # "De Vries", "Daan" or "Daan van den Berg"
            assert name in listed or (first in screen.first_names and " ".join(surname).lower() in surnames), name
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), name
    assert any(i.kind == "satisfaction" and i.names for i in mixed.files.values())  # answers, not only remarks
    assert any(i.kind == "trajectories" and i.names for i in mixed.files.values())


def test_names_in_a_windows_1252_file_are_ones_it_can_hold(tmp_path):
    result = generate(tmp_path, questionnaires=20_000, organisations=3, seed=2, instruments=["satisfaction"],
                      catalog_dir=CATALOG)
    assert any(c in n for n in result.planted_names for c in "ğışŞ")  # the list has such names
    cp1252 = [i for i in result.files.values() if i.encoding == "cp1252"]
    assert cp1252 and all(i.names for i in cp1252)
    text = "".join(i.path.read_bytes().decode("cp1252") for i in cp1252)
    assert sum(1 for n in set(result.planted_names) if n in text) >= 10


def test_names_are_planted_with_and_without_cues(mixed):
    screen = name_screen(CATALOG / "names.yaml")
    cells = [cell for info in mixed.files.values() for col in ("Toelichting", "Contextfactoren", "Opmerking")
             for cell in read(info).get(col, pd.Series(dtype=str)) if cell and mask_names(cell, screen)[1]]
    cued = [c for c in cells if re.search(r"(?i)\b(mevrouw|dhr\.|de heer|juf|zoon|broer|bedankt)\s", c)]
    assert cued and len(cued) < len(cells)


# --- invalid rows ---------------------------------------------------------------------------------------

def test_invalid_rows_are_counted_per_rule_and_file(cbcl, mixed, instruments):
    assert set(cbcl.invalid_by_rule) <= set(TRAJECTORY_RULES) | set(MEASUREMENT_RULES)
    assert len(cbcl.invalid_by_rule) >= 8  # spread over the rules
    rows = sum(i.rows for i in cbcl.files.values())
    assert 0.005 * rows <= cbcl.invalid_rows <= 0.015 * rows
    for result in (cbcl, mixed):
        for info in result.files.values():
            frame = read(info)
            if info.kind == "trajectories":
                assert (frame["Interventie"] == "Yoga").sum() == info.invalid.get("unknown_intervention", 0)
                assert (frame["Cliëntnummer"] == "").sum() == info.invalid.get("empty_client_id", 0)
                start = pd.to_datetime(frame["Startdatum"], format=DATE, errors="coerce")
                end = pd.to_datetime(frame["Einddatum"], format=DATE, errors="coerce")
                assert (end < start).sum() == info.invalid.get("end_before_start", 0)
                assert start.isna().sum() == info.invalid.get("unparseable_date", 0)
                continue
            inst = instruments[info.kind]
            assert (frame["Informant"] == "buurman").sum() == info.invalid.get("unknown_informant", 0)
            out = pd.Series(False, index=frame.index)
            for s in inst.delivered_scales:
                if s.t_range is not None:
                    t = pd.to_numeric(frame[f"{s.label['nl']} T"])
                    out |= (t < s.t_range[0]) | (t > s.t_range[1])
            assert out.sum() == info.invalid.get("t_out_of_range", 0)
            assert (frame["Cliëntnummer"] == "").sum() == info.invalid.get("empty_client_id", 0)
            dates = pd.to_datetime(frame["Afnamedatum"], format=DATE, errors="coerce")
            assert dates.isna().sum() == info.invalid.get("unparseable_date", 0)
    assert cbcl.invalid_by_rule["unknown_informant"] > 0 and cbcl.invalid_by_rule["t_out_of_range"] > 0


def test_no_invalid_share_gives_clean_files(tmp_path, instruments):
    result = generate(tmp_path, questionnaires=4_000, organisations=5, seed=9, invalid_share=0.0, catalog_dir=CATALOG)
    assert result.invalid_rows == 0
    admin = []
    for info in result.files.values():
        assert not info.invalid
        frame = read(info)
        assert (frame["Cliëntnummer"] != "").all()
        if info.kind == "trajectories":
            start = pd.to_datetime(frame["Startdatum"], format=DATE)
            end = pd.to_datetime(frame["Einddatum"], format=DATE, errors="coerce")
            birth = pd.to_datetime(frame["Geboortedatum"], format=DATE)
            assert (birth < start).all() and not (end < start).any()
            assert start.between("2012-01-01", "2024-12-31").all()
            assert "Yoga" not in set(frame["Interventie"])
            continue
        inst = instruments[info.kind]
        admin.append(frame["Afnamenummer"])
        assert pd.to_datetime(frame["Afnamedatum"], format=DATE).notna().all()
        assert "buurman" not in set(frame["Informant"])
        for s in inst.delivered_scales:
            raw_label = next(lab for lab, col in inst.extra_labels.items() if col == s.raw_column) \
                if s.raw_column in inst.extra_labels.values() else f"{s.label['nl']} ruw"
            raw = pd.to_numeric(frame[raw_label].str.replace(",", "."))
            assert raw.between(*s.raw_range).all(), (info.path.name, s.code)
            if s.t_range is not None:
                t = pd.to_numeric(frame[f"{s.label['nl']} T"])
                assert t.between(*s.t_range).all(), (info.path.name, s.code)
                assert (t == t.round()).all() and (raw == raw.round()).all()
                # raw scores rise with T
                order = np.argsort(t.to_numpy(), kind="stable")
                assert (np.diff(raw.to_numpy()[order]) >= 0).all()
        if inst.level == "item":
            items = frame[[f"Vraag {i}" for i in range(1, inst.item_count + 1)]].apply(pd.to_numeric)
            assert items.stack().dropna().between(inst.item_min, inst.item_max).all()
    admin = pd.concat(admin)
    assert admin.is_unique


def test_rejects_unknown_instrument(tmp_path):
    with pytest.raises(ValueError, match="unknown instruments"):
        generate(tmp_path, questionnaires=100, instruments=["nope"], catalog_dir=CATALOG)


def test_lead_share_makes_org01_a_large_provider(tmp_path):
    result = generate(tmp_path / "d", questionnaires=4000, organisations=5, seed=2, invalid_share=0.0,
                      lead_share=0.5)
    rows = Counter()
    for info in result.files.values():
        if info.kind != "trajectories":
            rows[info.organisation] += info.rows
    assert 0.4 < rows["ORG01"] / sum(rows.values()) < 0.6
    with pytest.raises(ValueError, match="lead_share"):
        generate(tmp_path / "e", questionnaires=100, organisations=2, lead_share=1.5)
