"""The live factsheet page in a real browser (Debian chromium through Playwright) against the real hub,
proxy and portal: published numbers as the domain computes them (and as pandas counts the delivery),
"te weinig gegevens" for hidden cells, no login needed, English, downloads, and a second import through
the CLI that shows without a restart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
from playwright.sync_api import sync_playwright

import browser
from ldj import governance as gov
from ldj import refresh, store, versions
from ldj.disclosure import TOTAL, controlled_count
from ldj.factsheet import TOTALS, factsheet
from ldj.ingest import Ingestor
from ldj.instruments import load_instruments
from ldj.settings import Settings
from ldj.synth import generate
from portalserver import make_stack

pytestmark = pytest.mark.slow
PASSWORD = "factsheet-wachtwoord"
TOO_LITTLE = {"nl": "te weinig gegevens", "en": "too little data"}
CELLS_JS = "els => els.map(e => [e.dataset.cell, e.innerText.trim()])"
TOTALS_JS = "els => els.map(e => [e.dataset.total, e.querySelector('.value').innerText.trim()])"


def ordered(files) -> list[Path]:
    return sorted(files, key=lambda p: ("traject" not in p.name, p.name))


def read_delivery_csv(path: Path) -> pd.DataFrame:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return pd.read_csv(path, sep=";", dtype=str, keep_default_na=False, encoding=encoding)
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"{path}: neither UTF-8 nor cp1252")


def counted_with_pandas(files: list[Path]) -> dict[str, int]:
    """Independent of ldj: organisations, clients, trajectories and questionnaires of the clients who
    did not object, counted from the delivered CSV files."""
    trajectories = pd.concat([read_delivery_csv(p) for p in files if "trajecten" in p.name], ignore_index=True)
    measurements = pd.concat([read_delivery_csv(p) for p in files if "trajecten" not in p.name], ignore_index=True)
    assert set(trajectories["Bezwaar"]) <= {"ja", "nee"}
    client = ["Organisatie", "Cliëntnummer"]
    objecting = trajectories.loc[trajectories["Bezwaar"] == "ja", client].drop_duplicates()
    usable = trajectories.merge(objecting, on=client, how="left", indicator=True).query("_merge == 'left_only'")
    kept = measurements.merge(objecting, on=client, how="left", indicator=True).query("_merge == 'left_only'")
    return {"organisations": usable["Organisatie"].nunique(), "clients": len(usable[client].drop_duplicates()),
            "trajectories": len(usable), "questionnaires": len(kept)}


def shown(value: int | None, language: str = "nl") -> str:
    """A published number as the page writes it."""
    if value is None:
        return TOO_LITTLE[language]
    text = f"{value:,}"
    return text if language == "en" else text.replace(",", ".")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal-factsheet")  # pytest removes it (keeps the last 3 runs)
    settings = Settings(data_dir=root / "var", progress="never")
    engine = store.get_engine(settings)
    # 3 organisations (fewer than the threshold of 10: that total is hidden) and ~2,000 questionnaires:
    # moments "during" and "follow-up" per instrument are too small and hidden
    generate(root / "first", questionnaires=2000, organisations=3, seed=5, invalid_share=0.0)
    files = ordered((root / "first").glob("*.csv"))
    assert all(r.status == "loaded" for r in Ingestor(settings).ingest_many(files))
    gov.add_user(engine, "praktijk", display_name="praktijk", organisation="ORG01", roles=["member"], password=PASSWORD)
    running = make_stack(root).start()
    running.engine, running.settings, running.files = engine, settings, files
    yield running
    running.stop()


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        instance = browser.launch(playwright)
        yield instance
        instance.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def page_numbers(page) -> tuple[dict[str, str], dict[str, str]]:
    """The totals and every table cell as the browser shows them (the panes live in shadow DOM)."""
    page.wait_for_selector("[data-total='questionnaires']")
    totals = dict(page.locator("[data-total]").evaluate_all(TOTALS_JS))
    cells = dict(page.locator("td[data-cell]").evaluate_all(CELLS_JS))
    return totals, cells


def expected_cells(sheet) -> dict[str, tuple[int | None, bool]]:
    """Questionnaire and pair cells of the domain's factsheet, keyed as the page keys them."""
    out = {}
    for name, dims in (("questionnaires", ["instrument", "informant", "moment"]), ("pairs", ["instrument", "informant"])):
        for row in sheet.tables[name].to_dict(orient="records"):
            value = None if pd.isna(row["n_published"]) else int(row["n_published"])
            out["|".join([name, *(str(row[d]) for d in dims)])] = (value, bool(row["suppressed"]))
    return out


def check_page_against(page, sheet, language: str = "nl") -> dict[str, str]:
    totals, cells = page_numbers(page)
    assert totals == {key: shown(sheet.totals[key], language) for key in TOTALS}
    expected = expected_cells(sheet)
    compared = 0
    for ref, text in cells.items():
        if ref in expected:
            value, suppressed = expected[ref]
            assert text == (TOO_LITTLE[language] if suppressed else shown(value, language)), ref
            compared += 1
    assert compared > 40  # every questionnaire and pair cell on the page is one of the domain's
    return totals


def test_the_public_factsheet_shows_the_published_numbers_and_hides_small_cells(stack, page):
    browser.open_page(page, f"{stack.portal}/factsheet")  # no login
    assert page.get_by_text("Inloggen").count() == 1
    sheet = factsheet(stack.engine, stack.settings)
    totals = check_page_against(page, sheet)

    # the totals before disclosure control, counted with pandas from the delivery, then rounded
    raw = counted_with_pandas(stack.files)
    assert raw["organisations"] == 3 and totals["organisations"] == "te weinig gegevens"
    for key in ("clients", "trajectories", "questionnaires"):
        assert raw[key] >= stack.settings.disclosure_threshold
        assert totals[key] == shown(controlled_count(raw[key], stack.settings)), key

    # a hidden cell shows the words, never a number
    hidden = sheet.cells("questionnaires").query("suppressed").iloc[0]
    ref = f"questionnaires|{hidden.instrument}|{hidden.informant}|{hidden.moment}"
    assert page.locator(f"td[data-cell='{ref}']").inner_text().strip() == "te weinig gegevens"
    shown_cell = sheet.cells("questionnaires").query("not suppressed and n_published > 0").iloc[0]
    ref = f"questionnaires|{shown_cell.instrument}|{shown_cell.informant}|{shown_cell.moment}"
    assert page.locator(f"td[data-cell='{ref}']").inner_text().strip() == shown(int(shown_cell.n_published))

    # readable labels from the instrument definitions and i18n, the time span and the last import
    cbcl = load_instruments(stack.settings.catalog_dir)["cbcl_6_18"].name["nl"]
    assert page.locator("td.key", has_text=cbcl).count() == 2  # questionnaires (one informant: no total row) and pairs
    assert page.locator("th", has_text="tussentijds").count() == 1
    assert page.locator("[data-span]").inner_text() == f"{sheet.first_year}–{sheet.last_year}"
    assert page.locator("[data-last-import]").inner_text() == sheet.last_import.isoformat()
    # intervention types with their trajectory counts
    mst = sheet.margin("interventions", "intervention").set_index("intervention").loc["mst"]
    assert page.locator("td[data-cell='interventions|intervention|mst']").inner_text().strip() == (
        "te weinig gegevens" if mst.suppressed else shown(int(mst.n_published)))

    # the growth chart: hvplot's data are the published cumulative numbers
    cumulative = page.wait_for_function("""() => {
        const out = [];
        for (const doc of Bokeh.documents) {
            for (const m of doc.all_models) {
                const data = m.type === 'ColumnDataSource' ? m.data : null;
                const column = data && (data instanceof Map ? data.get('cumulative') : data.cumulative);
                if (column) out.push(Array.from(column));
            }
        }
        return out.length ? out : null;
    }""").json_value()
    assert page.locator(".bk-Canvas, canvas").count() >= 1  # drawn
    yearly = [float(v) for v in sheet.growth_yearly["cumulative"].dropna()]
    assert any([v for v in series if v == v] == yearly for series in cumulative)
    page.set_viewport_size({"width": 1280, "height": 2300})  # the whole page in the screenshot
    browser.wait_idle(page)
    browser.screenshot(page, "factsheet")


def test_the_factsheet_is_plain_html_revalidated_by_data_version(stack):
    """No Panel session per view (many people open it at once): one HTML answer, an ETag that holds
    until the data change, the data version in a header, and the language as an argument."""
    sheet = factsheet(stack.engine, stack.settings)
    first = requests.get(f"{stack.portal}/factsheet", timeout=30)
    assert first.status_code == 200 and first.headers["Content-Type"].startswith("text/html")
    assert first.headers["X-LDJ-Data-Version"] == sheet.data_version
    assert '"token"' not in first.text and "/ws" not in first.text  # no Bokeh session or websocket
    assert f"data-cell=\"questionnaires|{TOTAL}|{TOTAL}|{TOTAL}\"" in first.text
    again = requests.get(f"{stack.portal}/factsheet", headers={"If-None-Match": first.headers["ETag"]}, timeout=30)
    assert again.status_code == 304 and not again.content
    english = requests.get(f"{stack.portal}/factsheet", params={"lang": "en"}, timeout=30)
    assert "too little data" in english.text and "te weinig gegevens" not in english.text
    assert english.headers["ETag"] != first.headers["ETag"]
    source = re.search(r'<script src="([^"]+bokeh\.min\.js[^"]*)"', first.text).group(1)  # the portal's own copy
    script = requests.get(stack.url + source, timeout=30)
    assert script.status_code == 200 and b"Bokeh" in script.content[:5000]


def test_a_logged_in_visitor_sees_the_factsheet_in_their_own_frame(stack, page):
    browser.login(page, stack.url, "praktijk", PASSWORD, next_path="/services/ldj-portal/factsheet")
    page.wait_for_selector("[data-total='questionnaires']")
    assert page.get_by_text("Uitloggen").count() == 1 and page.get_by_text("praktijk").count() >= 1
    assert page.locator("a", has_text="Dashboard").count() == 1  # a member's navigation
    page.locator("a", has_text="Dashboard").click()
    browser.wait_idle(page)
    assert "/dashboard" in page.url and page.get_by_text("Inloggen").count() == 0  # one login for both kinds of page


def test_the_factsheet_speaks_english(stack, page):
    browser.open_page(page, f"{stack.portal}/factsheet")
    page.get_by_text("EN", exact=True).click()
    browser.wait_idle(page)
    page.wait_for_selector("text=Questionnaires per instrument, informant and moment")
    check_page_against(page, factsheet(stack.engine, stack.settings), "en")
    assert page.get_by_text("too little data").count() >= 1
    assert page.get_by_text("te weinig gegevens").count() == 0


def test_the_factsheet_downloads_as_json_and_pdf(stack):
    sheet = factsheet(stack.engine, stack.settings)
    response = requests.get(f"{stack.portal}/factsheet.json", timeout=30)  # no cookies: public
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    data = response.json()
    assert data["data_version"] == sheet.data_version and data["totals"] == sheet.totals
    assert data["tables"] == json.loads(json.dumps(sheet.to_json()["tables"]))
    hidden = [r for r in data["tables"]["questionnaires"]["rows"] if r["suppressed"]]
    assert hidden and all(r["value"] is None for r in hidden)

    for language in ("nl", "en"):
        pdf = requests.get(f"{stack.portal}/factsheet.pdf", params={"lang": language}, timeout=120)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        assert pdf.headers["Content-Type"] == "application/pdf"
        assert (stack.settings.data_dir / "factsheet" / f"{sheet.data_version}-{language}" / "factsheet.pdf").is_file()


def test_a_second_import_through_the_cli_shows_without_a_restart(stack, page):
    browser.open_page(page, f"{stack.portal}/factsheet")
    before = factsheet(stack.engine, stack.settings)
    assert page_numbers(page)[0]["questionnaires"] == shown(before.totals["questionnaires"])

    env = {k: v for k, v in os.environ.items() if not k.startswith("LDJ_")}
    env.update(LDJ_DATA_DIR=str(stack.settings.data_dir), LDJ_PROGRESS="never")
    ldj = [str(Path(sys.executable).parent / "ldj")]  # the installed command, as a steward runs it
    subprocess.run([*ldj, "synth", str(stack.root / "second"), "--questionnaires", "2400", "--organisations", "4",
                    "--seed", "11", "--invalid-share", "0"], env=env, check=True, capture_output=True)
    new_org = ordered((stack.root / "second").glob("ORG04_*.csv"))  # an organisation the store does not hold yet
    assert new_org
    done = subprocess.run([*ldj, "ingest", "--brief", *map(str, new_org)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = factsheet(stack.engine, stack.settings)
    assert after.data_version != before.data_version
    assert f"factsheet bijgewerkt voor gegevensversie {after.data_version}" in done.stderr
    assert list((stack.settings.data_dir / "factsheet" / "cache").glob(f"{after.data_version}-*.json"))  # warmed

    raw = counted_with_pandas([*stack.files, *new_org])
    assert after.totals["questionnaires"] == controlled_count(raw["questionnaires"], stack.settings)
    assert after.totals["questionnaires"] > before.totals["questionnaires"]
    browser.open_page(page, f"{stack.portal}/factsheet")  # the same running portal
    totals = check_page_against(page, after)
    assert totals["questionnaires"] == shown(controlled_count(raw["questionnaires"], stack.settings))
    assert requests.get(f"{stack.portal}/factsheet.json", timeout=30).json()["data_version"] == after.data_version
    pdf = requests.get(f"{stack.portal}/factsheet.pdf", timeout=120)
    assert pdf.content.startswith(b"%PDF") and after.data_version in pdf.headers["Content-Disposition"]
    # the previous version's PDF folder is cleaned up
    assert not (stack.settings.data_dir / "factsheet" / f"{before.data_version}-nl").exists()


def test_while_an_import_is_refreshed_the_page_shows_the_last_ready_version(stack, page):
    before = factsheet(stack.engine, stack.settings)
    generate(stack.root / "third", questionnaires=2500, organisations=5, seed=12, invalid_share=0.0)
    new_org = ordered((stack.root / "third").glob("ORG05_*.csv"))  # an organisation the store does not hold yet
    with versions.updating(stack.settings):  # as an import holds it: the lifecycle service cannot refresh now
        assert all(r.status == "loaded" for r in Ingestor(stack.settings).ingest_many(new_org))
        assert store.data_version(stack.engine)[0] != before.data_version
        answer = requests.get(f"{stack.portal}/factsheet", timeout=60)
        assert answer.status_code == 200 and answer.headers["X-LDJ-Data-Version"] == before.data_version
        browser.open_page(page, f"{stack.portal}/factsheet")
        assert page.get_by_text("Er is net een nieuwe levering ingelezen").count() == 1
        check_page_against(page, before)
        browser.screenshot(page, "factsheet-bijwerken")

    assert refresh.refresh(stack.engine, stack.settings) == store.data_version(stack.engine)[0]
    after = factsheet(stack.engine, stack.settings)
    assert after.totals["questionnaires"] != before.totals["questionnaires"]
    answer = requests.get(f"{stack.portal}/factsheet", timeout=60)
    assert answer.headers["X-LDJ-Data-Version"] == after.data_version
    browser.open_page(page, f"{stack.portal}/factsheet")
    assert page.get_by_text("Er is net een nieuwe levering ingelezen").count() == 0
    check_page_against(page, after)
