"""The airlock's whole path, as its people take it (issue 13 point 8): a researcher makes a table in her
real workspace (its own OS account, the local spawner) with ldj.safe and submits it from there; two output
checkers review it in the portal in chromium and release it; the practitioner whose question the project
took up finds the released output as the answer, and her start page tells her."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from projects import add_committee, approve

import browser
from ldj import airlock, store
from ldj import governance as gov
from ldj import vraagbank as vb
from ldj.catalogue import load_entries
from ldj.refresh import import_delivery
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate
from portalserver import make_stack

pytestmark = pytest.mark.slow
PASSWORD = "de hele weg naar buiten"
PORTAL = "/services/ldj-portal"
QUESTION = "Vallen jongeren met een LVB vaker uit bij MST?"
SUMMARY = "Uitval bij MST is voor jongeren met en zonder LVB ongeveer gelijk."
WORKSPACE_CODE = f"""
import os, intake
from ldj import safe
frame = intake.from_yaml_file(os.environ["LDJ_CATALOG"])["trajectories"].read()
safe.crosstab(frame["intervention"], frame["gender"], suppress=True)
with open("samenvatting.txt", "w", encoding="utf-8") as f:
    f.write({SUMMARY!r})
summary = safe.custom_output("samenvatting.txt", "Samenvatting zonder cijfers")
print("release", safe.submit("Uitval per interventie", {SUMMARY!r}, public=[summary]))
"""


@pytest.fixture(scope="module")
def world():
    root = Path(tempfile.mkdtemp(prefix="ldj-airlock-path-"))
    hub = make_stack(root)
    settings = Settings(data_dir=hub.data_dir, progress="never")
    generate(root / "d", questionnaires=400, organisations=2, seed=13, invalid_share=0.0, instruments=["cbcl_6_18"])
    import_delivery([root / "d"], settings=settings, refresh_views=False)
    engine = store.get_engine(settings)
    add_committee(engine, PASSWORD)
    for name, organisation, roles in (("olga", "ORG01", ["researcher"]), ("pia", "ORG02", ["member"]),
                                      ("chk1", "CBS", ["checker"]), ("chk2", "UvA", ["checker"])):
        gov.add_user(engine, name, display_name=name.capitalize(), organisation=organisation, roles=roles,
                     password=PASSWORD)
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    pid = approve(engine, "olga", {"trajectories": ["trajectory", "intervention", "gender"]}, catalogue)
    question = vb.post(engine, "pia", QUESTION, "In ons team lijken jongeren met een LVB vaker af te haken.",
                       "approach")
    vb.publish(engine, "steward", question)
    vb.pick_up(engine, "olga", question, kind="researcher", institution="UU", supervisor=None,
               planned_from=date.today(), planned_until=date.today() + timedelta(days=90),
               request_id=gov.get_project(engine, pid).request_id)
    hub.start()
    try:
        yield {"hub": hub, "engine": engine, "question": question, "project": pid}
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def chromium():
    with sync_playwright() as playwright:
        instance = browser.launch(playwright)
        yield instance
        instance.close()


def review_in_the_portal(page, hub, checker: str, release_id: int, outputs: list[str]) -> None:
    """The checker takes the request and approves every output (one verdict form each), as may-be-public."""
    browser.login(page, hub.url, checker, PASSWORD, next_path=f"{PORTAL}/uitvoer?id={release_id}")
    page.get_by_role("button", name="Dit verzoek oppakken", exact=True).click()
    page.wait_for_selector("text=U controleert dit verzoek nu.")
    browser.wait_idle(page)
    assert page.get_by_role("button", name="Oordeel geven", exact=True).count() == len(outputs)
    for number, output in enumerate(outputs):
        page.get_by_label("Uw oordeel", exact=True).nth(number).select_option(label="goedkeuren")
        page.get_by_role("checkbox").nth(number).check()  # may be public
        page.get_by_role("button", name="Oordeel geven", exact=True).nth(number).click()
        page.wait_for_selector(f"text=Uw oordeel over {output} is opgeslagen.")
        browser.wait_idle(page)


def test_from_the_workspace_through_two_checkers_to_the_answer_on_the_question(world, chromium):
    hub, engine = world["hub"], world["engine"]
    token = hub.user_token("olga", PASSWORD)
    hub.spawn(hub.login("olga", PASSWORD), "olga")
    try:  # in a thread of its own: playwright's sync API holds this thread's event loop
        with ThreadPoolExecutor(1) as pool:
            out = pool.submit(hub.execute, "olga", token, WORKSPACE_CODE).result()
    finally:
        hub.stop_server("olga")
    release_id = int(out.split("release")[-1].split()[0])
    release = airlock.get_release(engine, release_id, "olga")
    assert release.project_id == world["project"] and release.status == airlock.SUBMITTED
    outputs = list(dict.fromkeys(f.output for f in release.files))
    assert len(outputs) == 2  # the table and the summary

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        for checker in ("chk1", "chk2"):
            review_in_the_portal(page, hub, checker, release_id, outputs)
        page.get_by_role("button", name="Goedkeuren", exact=True).click()
        page.wait_for_selector("text=Het verzoek is goedgekeurd.")
        browser.wait_idle(page)
        page.get_by_role("button", name="Vrijgeven", exact=True).click()
        page.wait_for_selector("text=De uitvoer is vrijgegeven.")
        assert airlock.get_release(engine, release_id, "olga").status == airlock.RELEASED
        question = page.locator(f"a[href='vraagbank?vraag={world['question']}']")  # lineage, both ways
        assert question.count() == 1 and QUESTION in question.inner_text()

        context.clear_cookies()
        browser.login(page, hub.url, "pia", PASSWORD, next_path=f"{PORTAL}/")
        browser.wait_idle(page)
        assert page.get_by_text("heeft een antwoord").count() >= 1  # her start page tells her
        browser.open_page(page, f"{hub.portal}/vraagbank?vraag={world['question']}")
        assert page.get_by_text(SUMMARY).count() >= 1  # the researcher's description is the answer
        link = page.locator(f"a[href*='uitvoer/bestand?id={release_id}']").first
        with page.expect_download() as download:
            link.click()
        assert Path(download.value.path()).read_bytes()
    finally:
        context.close()
    assert vb.get_question(engine, world["question"], None).status == vb.ANSWERED
