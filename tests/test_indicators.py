"""Dashboard indicators: every figure against an independent pandas/scipy computation on the same
data, disclosure control (small cells, differencing across filters), objections and access."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from deliveries import cbcl, trajectory, write_csv
from scipy import stats

from ldj import governance as gov
from ldj import indicators as ind
from ldj import policy
from ldj import store
from ldj.ingest import Ingestor
from ldj.refresh import import_delivery
from ldj.instruments import load_instruments
from ldj.settings import REPO_ROOT

INSTRUMENTS = load_instruments(REPO_ROOT / "catalog")
WINDOW = 90


def _users(engine):
    gov.add_user(engine, "praktijk", display_name="P", organisation="ORG01", roles=["member"])
    gov.add_user(engine, "anders", display_name="A", organisation="ORG02", roles=["member"])
    gov.add_user(engine, "steward", display_name="S", organisation="SEJN", roles=["steward"])
    gov.add_user(engine, "onderzoeker", display_name="O", organisation="ORG01", roles=["researcher"])


@pytest.fixture
def synthetic(filled_store, synthetic_delivery):
    """Synthetic deliveries (three organisations), imported; exact figures (threshold 1, no rounding).
    Imported once per session and database (tests/conftest.py); each test gets a copy."""
    delivery = synthetic_delivery(questionnaires=4000, organisations=3, seed=5, invalid_share=0.0,
                                  instruments=["cbcl_6_18", "satisfaction"])

    def fill(settings):
        reports = import_delivery(delivery.paths, settings=settings, refresh_views=False)
        assert all(r.status == "loaded" for r in reports)
        _users(store.get_engine(settings))

    settings = filled_store("indicators", fill)
    return settings.model_copy(update={"disclosure_threshold": 1, "disclosure_rounding": 1}), store.get_engine(settings)


# --- an independent computation in plain pandas --------------------------------------------------

def _raw(engine):
    with engine.connect() as conn:
        tr = pd.read_sql(sa.text("SELECT t.pseudonym, t.client, t.organisation, t.team, t.intervention, t.start_date, "
                                 "t.end_date, t.age_at_start, c.gender, c.objection FROM trajectories t "
                                 "JOIN clients c ON c.pseudonym = t.client"), conn)
        m = pd.read_sql(sa.text("SELECT trajectory, instrument, informant, moment, date, scores FROM measurements"), conn)
    tr["start_date"] = pd.to_datetime(tr["start_date"])
    tr["end_date"] = pd.to_datetime(tr["end_date"])
    tr["objection"] = tr["objection"].astype(bool)
    m["date"] = pd.to_datetime(m["date"])
    m["scores"] = m["scores"].map(lambda x: json.loads(x) if isinstance(x, str) else x)
    return tr, m


def _selected(tr, m, instrument, informant, scale):
    """First start within the window of the start date, last end within the window of the end date."""
    m = m[(m["instrument"] == instrument) & (m["informant"] == informant)].merge(
        tr[["pseudonym", "start_date", "end_date"]], left_on="trajectory", right_on="pseudonym")
    starts = m[(m["moment"] == "start") & ((m["date"] - m["start_date"]).abs() <= pd.Timedelta(days=WINDOW))]
    ends = m[(m["moment"] == "end") & ((m["date"] - m["end_date"]).abs() <= pd.Timedelta(days=WINDOW))]
    first = starts.sort_values("date").drop_duplicates("trajectory", keep="first")
    last = ends.sort_values("date").drop_duplicates("trajectory", keep="last")
    kind = "t" if INSTRUMENTS[instrument].scale(scale).t_range else "raw"

    def value(scores):
        return (scores.get(scale) or {}).get(kind) if scores else None

    def band(scores):
        return (scores.get(scale) or {}).get("band") if scores else None

    first = first.assign(v=first["scores"].map(value).astype(float), band=first["scores"].map(band))
    last = last.assign(v=last["scores"].map(value).astype(float), band=last["scores"].map(band))
    return first[["trajectory", "v", "band"]], last[["trajectory", "v", "band"]]


def _pairs(tr, m, instrument="cbcl_6_18", informant="parent", scale="total_problems"):
    first, last = _selected(tr, m, instrument, informant, scale)
    both = first.merge(last, on="trajectory", suffixes=("_s", "_e")).dropna(subset=["v_s", "v_e"])
    return both.merge(tr, left_on="trajectory", right_on="pseudonym")


def _mean_ci(x):
    x = pd.Series(x, dtype=float)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return x.mean(), low, high


def _wilson(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


VIEW = ind.View("cbcl_6_18", "total_problems", "parent")


def test_change_matches_pandas_and_scipy_own_organisation_with_objectors_sejn_without(synthetic):
    settings, engine = synthetic
    tr, m = _raw(engine)
    p = _pairs(tr, m)
    assert p["objection"].any(), "the synthetic data should hold pairs of objecting clients"
    got = ind.change(VIEW, "praktijk", engine, settings).set_index("scope")
    for scope, part in (("organisation", p[p["organisation"] == "ORG01"]), ("sejn", p[~p["objection"]])):
        row = got.loc[scope]
        d = part["v_e"] - part["v_s"]
        mean, low, high = _mean_ci(d)
        assert row["published"] and row["n"] == len(part)
        assert row["mean_change"] == pytest.approx(mean) and row["ci_low"] == pytest.approx(low)
        assert row["ci_high"] == pytest.approx(high)
        assert row["mean_start"] == pytest.approx(part["v_s"].mean()) and row["mean_end"] == pytest.approx(part["v_e"].mean())
        assert row["effect_size"] == pytest.approx(mean / part["v_s"].std(ddof=1))
    # objectors: in their own organisation's figure, never in SEJN's
    org01 = p[p["organisation"] == "ORG01"]
    assert got.loc["sejn", "n"] == (~p["objection"]).sum() < len(p)
    assert got.loc["organisation", "label"] == "ORG01" and got.loc["sejn", "label"] == "Alle SEJN-leden"
    if org01["objection"].any():
        assert got.loc["organisation", "n"] > (~org01["objection"]).sum()


def test_filters_and_teams_match_pandas(synthetic):
    settings, engine = synthetic
    tr, m = _raw(engine)
    p = _pairs(tr, m)
    org = p[p["organisation"] == "ORG01"]
    intervention = org["intervention"].value_counts().index[0]
    team = org["team"].value_counts().index[0]
    view = ind.View("cbcl_6_18", "total_problems", "parent", intervention=intervention, team=team)
    got = ind.change(view, "praktijk", engine, settings).set_index("scope")
    part = org[(org["intervention"] == intervention) & (org["team"] == team)]
    assert got.loc["team", "label"] == team and got.loc["team", "n"] == len(part)
    assert got.loc["team", "mean_change"] == pytest.approx((part["v_e"] - part["v_s"]).mean())
    sejn = p[~p["objection"] & (p["intervention"] == intervention)]
    assert got.loc["sejn", "n"] == len(sejn)
    p["age_group"] = pd.cut(p["age_at_start"], [0, 6, 12, 18, 24], right=False, labels=["0-5", "6-11", "12-17", "18-23"])
    p["year"] = p["start_date"].dt.year
    year = int(p["year"].median())
    view = ind.View("cbcl_6_18", "total_problems", "parent", age_group="12-17", gender="female", start_year=year)
    got = ind.change(view, "praktijk", engine, settings).set_index("scope")
    sel = p[(p["age_group"] == "12-17") & (p["gender"] == "female") & (p["year"] == year)]
    assert got.loc["organisation", "n"] == (sel["organisation"] == "ORG01").sum()
    assert got.loc["sejn", "n"] == (~sel["objection"]).sum()
    assert got.loc["sejn", "mean_start"] == pytest.approx(sel.loc[~sel["objection"], "v_s"].mean())


def test_reliable_change_categories_match_a_hand_computation(synthetic):
    settings, engine = synthetic
    tr, m = _raw(engine)
    p = _pairs(tr, m)
    sd = p.loc[~p["objection"], "v_s"].std(ddof=1)  # SEJN pairs at start, objectors left out
    rc = (p["v_e"] - p["v_s"]) / (math.sqrt(2) * sd * math.sqrt(1 - 0.97))
    clinical = lambda b: b == "clinical"  # noqa: E731
    p["category"] = np.select([(rc < -1.96) & clinical(p["band_s"]) & ~clinical(p["band_e"]), rc < -1.96, rc > 1.96],
                              ["recovered", "reliably_improved", "reliably_deteriorated"], "no_reliable_change")
    got = ind.reliable_change(VIEW, "praktijk", engine, settings)
    for scope, part in (("organisation", p[p["organisation"] == "ORG01"]), ("sejn", p[~p["objection"]])):
        rows = got[got["scope"] == scope].set_index("category")
        assert list(rows.index) == list(ind.CATEGORIES)
        for cat in ind.CATEGORIES:
            k = int((part["category"] == cat).sum())
            assert rows.loc[cat, "total"] == len(part)
            if k:
                assert rows.loc[cat, "n"] == k and rows.loc[cat, "share"] == pytest.approx(k / len(part))
                low, high = _wilson(k, len(part))
                assert rows.loc[cat, "ci_low"] == pytest.approx(low) and rows.loc[cat, "ci_high"] == pytest.approx(high)
    assert (p["category"] == "recovered").any() and (p["category"] == "reliably_improved").any()


def test_response_trend_and_satisfaction_match_pandas(synthetic):
    settings, engine = synthetic
    tr, m = _raw(engine)
    first, last = _selected(tr, m, "cbcl_6_18", "parent", "total_problems")
    eligible = tr[tr["end_date"].notna() & (tr["age_at_start"].isna() | tr["age_at_start"].between(6, 18))].copy()
    eligible["s"] = eligible["pseudonym"].isin(first["trajectory"])
    eligible["e"] = eligible["pseudonym"].isin(last["trajectory"])
    eligible["status"] = np.select([eligible["s"] & eligible["e"], eligible["s"], eligible["e"]],
                                   ["completer", "start_only", "end_only"], "none")
    got = ind.response(VIEW, "praktijk", engine, settings)
    for scope, part in (("organisation", eligible[eligible["organisation"] == "ORG01"]),
                        ("sejn", eligible[~eligible["objection"]])):
        rows = got[got["scope"] == scope].set_index("status")
        for status in ind.STATUSES:
            k = int((part["status"] == status).sum())
            assert rows.loc[status, "n"] == k and rows.loc[status, "total"] == len(part)
            assert rows.loc[status, "share"] == pytest.approx(k / len(part))
    assert (eligible["status"] == "completer").any() and (eligible["status"] == "start_only").any()

    trend = ind.severity_trend(VIEW, "praktijk", engine, settings)
    starts = first.dropna(subset=["v"]).merge(tr, left_on="trajectory", right_on="pseudonym")
    starts["year"] = starts["start_date"].dt.year
    sejn = starts[~starts["objection"]]
    rows = trend[trend["scope"] == "sejn"].set_index("start_year")
    assert sorted(rows.index) == sorted(sejn["year"].unique())
    for year, part in sejn.groupby("year"):
        assert rows.loc[year, "n"] == len(part) and rows.loc[year, "mean"] == pytest.approx(part["v"].mean())
        if len(part) > 1:
            assert rows.loc[year, "ci_high"] == pytest.approx(_mean_ci(part["v"])[2])

    sat = ind.satisfaction(VIEW, "praktijk", engine, settings).set_index("scope")
    _, last_sat = _selected(tr, m, "satisfaction", "parent", "mean")
    last_sat = last_sat.dropna(subset=["v"]).merge(tr, left_on="trajectory", right_on="pseudonym")
    for scope, part in (("organisation", last_sat[last_sat["organisation"] == "ORG01"]),
                        ("sejn", last_sat[~last_sat["objection"]])):
        mean, low, high = _mean_ci(part["v"])
        assert sat.loc[scope, "n"] == len(part) and sat.loc[scope, "mean"] == pytest.approx(mean)
        assert sat.loc[scope, "ci_low"] == pytest.approx(low)


def test_casemix_and_funnel_match_pandas(synthetic):
    settings, engine = synthetic
    tr, m = _raw(engine)
    p = _pairs(tr, m).dropna(subset=["age_at_start"]).reset_index(drop=True)
    fit = p[~p["objection"]]
    levels = lambda col: sorted(fit[col].unique())[1:]  # noqa: E731
    genders, interventions = levels("gender"), levels("intervention")

    def design(frame):
        cols = [np.ones(len(frame)), frame["v_s"], frame["age_at_start"].astype(float)]
        cols += [(frame["gender"] == g).astype(float) for g in genders]
        cols += [(frame["intervention"] == i).astype(float) for i in interventions]
        return np.column_stack(cols)

    beta, *_ = np.linalg.lstsq(design(fit), fit["v_e"] - fit["v_s"], rcond=None)
    p["resid"] = (p["v_e"] - p["v_s"]) - design(p) @ beta
    got = ind.casemix(VIEW, "praktijk", engine, settings).set_index("scope")
    for scope, part in (("organisation", p[p["organisation"] == "ORG01"]), ("sejn", p[~p["objection"]])):
        mean, low, high = _mean_ci(part["resid"])
        assert got.loc[scope, "n"] == len(part)
        assert got.loc[scope, "difference"] == pytest.approx(mean, abs=1e-9)
        assert got.loc[scope, "ci_low"] == pytest.approx(low) and got.loc[scope, "ci_high"] == pytest.approx(high)
        assert got.loc[scope, "observed"] == pytest.approx((part["v_e"] - part["v_s"]).mean())
    assert got.loc["sejn", "difference"] == pytest.approx(0, abs=1e-9)  # the model was fitted on exactly these

    points, limits = ind.funnel(VIEW, "praktijk", "change", engine, settings)
    sejn = _pairs(tr, m)
    sejn = sejn[~sejn["objection"]]
    per_org = (sejn["v_e"] - sejn["v_s"]).groupby(sejn["organisation"]).agg(["mean", "size"])
    assert len(points) == len(per_org) and points["own"].tolist() == [True, False, False]
    assert points.loc[0, "label"] == "ORG01" and points.loc[0, "value"] == pytest.approx(per_org.loc["ORG01", "mean"])
    assert sorted(points["value"]) == pytest.approx(sorted(per_org["mean"]))
    assert sorted(points["n"]) == sorted(per_org["size"])
    assert np.allclose(limits["centre"], (sejn["v_e"] - sejn["v_s"]).mean())
    assert (limits["low_95"] < limits["centre"]).all() and (limits["high_99_8"] > limits["high_95"]).all()


def test_cube_is_built_after_an_import_and_again_for_a_new_data_version(synthetic, tmp_path):
    settings, engine = synthetic
    first = ind.get_cube(engine, settings)
    assert first.folder == settings.data_dir / "indicators" / store.data_version(engine)[0]
    assert {"scales.parquet", "response.parquet", "meta.json"} <= {p.name for p in first.folder.iterdir()}
    before = ind.change(VIEW, "praktijk", engine, settings).set_index("scope").loc["sejn", "n"]
    rows = [trajectory(f"N{i}", f"NT{i}", Organisatie="ORG03", Periode="2025") for i in range(3)]
    rows_m = [cbcl(f"N{i}", f"NT{i}", f"NA{i}{mo}", mo, 70 if mo == "start" else 60, Organisatie="ORG03", Periode="2025")
              for i in range(3) for mo in ("start", "eind")]
    reports = Ingestor(settings).ingest_many([write_csv(tmp_path / "n" / "traj.csv", rows),
                                              write_csv(tmp_path / "n" / "cbcl.csv", rows_m)])
    assert all(r.status == "loaded" for r in reports)
    second = ind.get_cube(engine, settings)
    assert second.version != first.version and second.folder.exists()
    assert ind.change(VIEW, "praktijk", engine, settings).set_index("scope").loc["sejn", "n"] == before + 3


# --- hand-made deliveries for disclosure, objections and access ----------------------------------

def _org_rows(org, n, *, team=lambda i: "Team Noord", gender=lambda i: "M", objection=lambda i: False,
              start=lambda i: 70, end=lambda i: 60):
    tr, cb = [], []
    for i in range(n):
        client, traj = f"{org}C{i}", f"{org}T{i}"
        tr.append(trajectory(client, traj, Organisatie=org, Team=team(i), Geslacht=gender(i),
                             Bezwaar="ja" if objection(i) else "nee"))
        cb.append(cbcl(client, traj, f"{traj}s", "start", start(i), Organisatie=org))
        cb.append(cbcl(client, traj, f"{traj}e", "eind", end(i), Organisatie=org))
    return tr, cb


@pytest.fixture
def hand(sqlite_settings, tmp_path):
    """ORG01: 34 pairs (Team Noord 30, Team Zuid 4; 20 boys, 11 girls, 3 other; 2 objectors);
    ORG02: 40 pairs. Threshold 10, no rounding."""
    genders = ["M"] * 20 + ["V"] * 11 + ["X"] * 3
    o1 = _org_rows("ORG01", 34, team=lambda i: "Team Zuid" if i >= 30 else "Team Noord", gender=genders.__getitem__,
                   objection=lambda i: i in (0, 1), start=lambda i: 60 + i % 13, end=lambda i: 55 + (i * 7) % 11)
    o2 = _org_rows("ORG02", 40, start=lambda i: 62 + i % 9, end=lambda i: 58 + i % 5)
    paths = []
    for org, (tr, cb) in (("ORG01", o1), ("ORG02", o2)):
        paths.append(write_csv(tmp_path / "h" / f"{org}_trajecten.csv", tr))
        paths.append(write_csv(tmp_path / "h" / f"{org}_cbcl.csv", cb))
    reports = import_delivery(paths, settings=sqlite_settings, refresh_views=False)
    assert all(r.status == "loaded" for r in reports), [r.lines() for r in reports]
    engine = store.get_engine(sqlite_settings)
    _users(engine)
    return sqlite_settings.model_copy(update={"disclosure_threshold": 10, "disclosure_rounding": 1}), engine


def test_small_cells_show_too_little_data(hand):
    settings, engine = hand
    got = ind.change(ind.View("cbcl_6_18", "total_problems", "parent", team="Team Zuid"), "praktijk", engine, settings)
    zuid = got.set_index("scope").loc["team"]
    assert not zuid["published"] and zuid["suppression"] == "primary" and zuid["message"] == "te weinig gegevens"
    assert pd.isna(zuid["n"]) and all(math.isnan(zuid[c]) for c in ("mean_change", "ci_low", "ci_high", "effect_size"))
    english = ind.change(ind.View("cbcl_6_18", "total_problems", "parent", team="Team Zuid"), "praktijk", engine,
                         settings.model_copy(update={"language": "en"}))
    assert english.set_index("scope").loc["team", "message"] == "too little data"


def test_differencing_across_filters_reveals_nothing(hand):
    settings, engine = hand

    def row(**filters):
        frame = ind.change(ind.View("cbcl_6_18", "total_problems", "parent", **filters), "praktijk", engine, settings)
        return frame.set_index("scope").loc["team" if "team" in filters else "organisation"]

    whole = row()
    assert whole["published"] and whole["n"] == 34  # own organisation, objectors included
    # team: Noord (30) = organisation (34) - Zuid (4): publishing Noord would give Zuid away
    noord = row(team="Team Noord")
    assert not noord["published"] and noord["suppression"] == "secondary"
    # gender: other (3) is small; boys (20) and girls (11) and the total (34) would give it away
    by_gender = {g: row(gender=g) for g in ("male", "female", "other")}
    assert by_gender["other"]["suppression"] == "primary"
    assert sum(r["published"] for r in by_gender.values()) <= 1, "two published siblings and the total reveal the third"
    published = [g for g, r in by_gender.items() if r["published"]]
    # the attack: total sum minus the published siblings must not isolate the small group
    if published:
        rest = whole["n"] - sum(by_gender[g]["n"] for g in published)
        assert rest >= settings.disclosure_threshold
    # the same guard holds inside tables: no single hidden category among the reliable-change rows
    rc = ind.reliable_change(ind.View("cbcl_6_18", "total_problems", "parent"), "praktijk", engine, settings)
    own = rc[rc["scope"] == "organisation"]
    assert (~own["published"]).sum() != 1


def test_objectors_count_only_in_their_own_organisation(hand):
    settings, engine = hand
    own = ind.change(VIEW, "praktijk", engine, settings).set_index("scope")
    assert own.loc["organisation", "n"] == 34 and own.loc["sejn", "n"] == 32 + 40
    other = ind.change(VIEW, "anders", engine, settings).set_index("scope")
    assert other.loc["organisation", "n"] == 40 and other.loc["sejn", "n"] == 72
    points, _ = ind.funnel(VIEW, "anders", "change", engine, settings)
    assert sorted(points["n"].dropna()) == [32, 40]  # ORG01 without its objectors


def test_access_members_see_only_their_own_organisation_identified(hand):
    settings, engine = hand
    with pytest.raises(policy.Refused):
        ind.change(ind.View("cbcl_6_18", "total_problems", "parent", organisation="ORG02"), "praktijk", engine, settings)
    with pytest.raises(policy.Refused):
        ind.dashboard(ind.View("cbcl_6_18", "total_problems", "parent", organisation="ORG02"), "praktijk", engine, settings)
    with pytest.raises(policy.Refused):
        ind.change(VIEW, "onderzoeker", engine, settings)  # a researcher is not a member's staff
    points, _ = ind.funnel(VIEW, "praktijk", "change", engine, settings)
    text = points.to_csv()
    assert "ORG02" not in text and "organisation" not in points.columns
    assert points["label"].tolist() == ["ORG01", "Organisatie A"]
    steward = ind.change(ind.View("cbcl_6_18", "total_problems", "parent", organisation="ORG02"), "steward", engine, settings)
    assert steward.set_index("scope").loc["organisation", "n"] == 40
    spoints, _ = ind.funnel(VIEW, "steward", "change", engine, settings)
    assert set(spoints["organisation"]) == {"ORG01", "ORG02"}


def test_dashboard_options_and_download(hand):
    settings, engine = hand
    opts = ind.options("praktijk", engine, settings)
    assert opts["teams"] == ["Team Noord", "Team Zuid"] and "cbcl_6_18" in opts["instruments"]
    assert "total_problems" in opts["instruments"]["cbcl_6_18"]["scales"] and opts["organisations"] is None
    board = ind.dashboard(VIEW, "praktijk", engine, settings)
    assert set(board) == {"response", "change", "reliable_change", "severity_trend", "satisfaction", "casemix",
                          "funnel", "funnel_limits"}
    table = ind.download_table(board["change"])
    assert "suppression" not in table.columns and {"n", "mean_change", "published", "message"} <= set(table.columns)
