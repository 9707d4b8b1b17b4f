"""The dashboard page in a real browser: a member's own organisation next to all SEJN, the same numbers as
ldj.indicators, small groups shown as "te weinig gegevens", and no other organisation named."""

from __future__ import annotations


import pytest
from playwright.sync_api import sync_playwright

import browser
from ldj import governance as gov
from ldj import indicators, store
from ldj.refresh import import_delivery
from ldj.settings import Settings
from ldj.synth import generate
from portalserver import make_stack

pytestmark = pytest.mark.slow
PASSWORD = "dashboard-test-2026"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")  # pytest removes it (keeps the last 3 runs)
    settings = Settings(data_dir=root / "var")
    generate(root / "d", questionnaires=6000, organisations=4, seed=8, invalid_share=0.0, lead_share=0.4)
    reports = import_delivery([root / "d"], settings=settings, refresh_views=False)
    assert all(r.status == "loaded" for r in reports)
    engine = store.get_engine(settings)
    gov.add_user(engine, "praktijk", display_name="P", organisation="ORG01", roles=["member"], password=PASSWORD)
    gov.add_user(engine, "beheer", display_name="B", organisation="SEJN", roles=["steward"], password=PASSWORD)
    indicators.get_cube(engine, settings)  # as `ldj ingest` does after an import
    running = make_stack(root).start()
    running.engine, running.settings = engine, settings
    yield running
    running.stop()


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        chromium.close()


def number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def test_a_member_sees_own_organisation_next_to_sejn_with_the_indicator_numbers(stack, page):
    browser.login(page, stack.url, "praktijk", PASSWORD, next_path="/services/ldj-portal/dashboard")
    page.wait_for_selector("text=Alle SEJN-leden")
    view = indicators.View("cbcl_6_18", "total_problems", "parent")
    change = indicators.change(view, "praktijk", stack.engine, stack.settings).set_index("scope")
    assert change.loc["sejn", "published"] and change.loc["organisation", "published"]
    for scope in ("sejn", "organisation"):
        assert page.get_by_text(number(change.loc[scope, "mean_change"]), exact=True).count() >= 1
        assert page.get_by_text(number(change.loc[scope, "effect_size"], 2), exact=True).count() >= 1
    browser.screenshot(page, "dashboard")
    # a member has no organisation choice, and no other organisation is named anywhere
    assert page.get_by_label("Organisatie", exact=True).count() == 0
    for other in ("ORG02", "ORG03", "ORG04"):
        assert page.get_by_text(other).count() == 0


def test_a_small_group_shows_too_little_data_not_a_number(stack, page):
    view = indicators.View("cbcl_6_18", "total_problems", "parent")
    years = indicators.options("praktijk", stack.engine, stack.settings)["start_years"]
    small = next(y for y in years
                 if not indicators.change(indicators.View("cbcl_6_18", "total_problems", "parent", start_year=y),
                                          "praktijk", stack.engine, stack.settings).set_index("scope")
                 .loc["organisation", "published"])
    browser.open_page(page, f"{stack.portal}/dashboard")
    page.get_by_label("Startjaar", exact=True).select_option(label=str(small))
    page.get_by_role("button", name="Toon").click()
    page.wait_for_selector("text=te weinig gegevens")
    assert indicators.change(view, "praktijk", stack.engine, stack.settings)["published"].all()


def test_the_steward_chooses_any_organisation(stack, page):
    browser.login(page, stack.url, "beheer", PASSWORD, next_path="/services/ldj-portal/dashboard")
    assert page.get_by_label("Organisatie", exact=True).count() == 1
