"""The output release pages in a real browser (Debian chromium through Playwright) against the real hub and
portal: two checkers take a request, review its outputs (each seeing the other's verdict only after giving her
own), decide and release; the download route gives the files to whom the policy allows; the released output
is the answer on the practitioner's question, and the start page tells her so."""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
import requests
from playwright.sync_api import expect, sync_playwright
from projects import add_committee, approve

import browser
from ldj import airlock, notifications, safe, store
from ldj import governance as gov
from ldj import vraagbank as vb
from ldj.catalogue import load_entries
from ldj.settings import REPO_ROOT, Settings
from portalserver import make_stack

pytestmark = pytest.mark.slow
PASSWORD = "uitvoer-test-2026"
PORTAL = "/services/ldj-portal"
ACCOUNTS = [("olga", "ORG01", ["researcher"]), ("bram", "ORG02", ["researcher"]), ("pia", "ORG03", ["member"]),
            ("chk1", "CBS", ["checker"]), ("chk2", "UvA", ["checker"])]
TITLE = "Uitval per interventie"
DESCRIPTION = "Jongeren met een LVB vallen **even vaak** uit bij MST als zonder LVB."
QUESTION = "Werkt MST even goed bij jongeren met een LVB?"
NOTE = "Samenvatting voor de praktijk: geen verschil in uitval."


def outputs(folder):
    """An ldj.safe folder: a table that passes, a histogram with thin bins, and a text for practitioners."""
    session = safe.OutputSession(folder)
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"interventie": rng.choice(["MST", "IAG"], 240), "lvb": rng.choice(["ja", "nee"], 240),
                          "tscore": rng.normal(63, 9, 240)})
    session.crosstab(frame["interventie"], frame["lvb"])
    session.hist(frame, "tscore")
    session.add_comments("output_2", "Verdeling van de T-scores bij de start.")
    session.add_exception("output_2", "De randklassen tonen geen personen: alleen aantallen.")
    note = folder.parent / "samenvatting.txt"
    note.write_text(NOTE, encoding="utf-8")
    text = session.custom_output(str(note), "Tekst zonder cijfers")
    session.finalise()
    return text


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal-airlock")
    settings = Settings(data_dir=root / "var")
    engine = store.get_engine(settings)
    add_committee(engine, PASSWORD)
    for name, organisation, roles in ACCOUNTS:
        gov.add_user(engine, name, display_name=name.capitalize(), organisation=organisation, roles=roles,
                     password=PASSWORD)
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    pid = approve(engine, "olga", {"trajectories": ["trajectory", "intervention"]}, catalogue)
    question = vb.post(engine, "pia", QUESTION, "In ons team vallen jongeren met een LVB vaker uit.", "approach")
    vb.publish(engine, "steward", question)
    vb.pick_up(engine, "olga", question, kind="researcher", institution="UU", supervisor=None,
               planned_from=date.today(), planned_until=date.today() + timedelta(days=60),
               request_id=gov.get_project(engine, pid).request_id)
    folder = root / "werk" / "outputs"
    text = outputs(folder)
    release_id = airlock.submit(engine, "olga", pid, folder, title=TITLE, description=DESCRIPTION, public=[text],
                                settings=settings)
    running = make_stack(root).start()
    running.engine, running.ids = engine, {"release": release_id, "question": question, "project": pid}
    running.files = {f.output: f.file for f in airlock.get_release(engine, release_id, "steward").files
                     if not f.file.endswith(safe.META_SUFFIX)}
    running.text_output = text
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


def login(page, stack, user: str, path: str) -> None:
    browser.login(page, stack.url, user, PASSWORD, next_path=f"{PORTAL}{path}")


def click(page, button: str, then: str, nth: int = 0) -> None:
    """Click a button and wait for the message the page shows after the domain answered."""
    page.get_by_role("button", name=button, exact=True).nth(nth).click()
    page.wait_for_selector(f"text={then}")
    browser.wait_idle(page)


def give_verdict(page, number: int, output: str, verdict: str = "goedkeuren", comment: str = "",
                 public: bool = False) -> None:
    """The checker's verdict on the `number`-th output of the page."""
    page.get_by_label("Uw oordeel", exact=True).nth(number).select_option(label=verdict)
    if comment:
        field = page.get_by_label("Toelichting (verplicht bij wijzigingen vragen of afwijzen)").nth(number)
        field.fill(comment)
        field.blur()
    if public:
        page.get_by_role("checkbox").nth(number).check()  # "Mag openbaar", the only checkbox of each output
    click(page, "Oordeel geven", f"Uw oordeel over {output} is opgeslagen.", number)


def test_two_checkers_review_decide_and_release_in_the_browser(stack, page):
    release_id, engine = stack.ids["release"], stack.engine
    outputs_in_order = list(stack.files)  # output_1 (table), output_2 (histogram), the text
    login(page, stack, "chk1", "/uitvoer")
    queue = page.locator("table.alp-table").first
    expect(queue.get_by_role("link", name=TITLE)).to_have_count(1)
    assert re.search(r"\d+ minuten", queue.inner_text())  # how long it has waited
    queue.get_by_role("link", name=TITLE).click()
    page.wait_for_url(f"**uitvoer?id={release_id}")
    browser.wait_idle(page)
    assert page.get_by_text("te weinig bijdragers").count() >= 1  # the histogram's thin bins, in words
    assert page.locator(".alp-findings li", has_text="klasse").count() >= 1
    assert page.locator(".alp-preview table td", has_text="MST").count() == 1  # the table as a table
    assert page.locator(".alp-preview img[src^='data:image/png;base64,']").count() == 1  # the histogram inline
    assert page.locator(".alp-preview pre", has_text=NOTE).count() == 1
    assert page.locator(".alp-output p", has_text="De randklassen tonen geen personen").count() == 1  # the researcher's exception
    assert page.get_by_role("button", name="Oordeel geven").count() == 0  # not hers to review yet
    click(page, "Dit verzoek oppakken", "U controleert dit verzoek nu.")
    assert airlock.get_release(engine, release_id, "chk1").reviewers == ("chk1",)
    give_verdict(page, 0, outputs_in_order[0])
    give_verdict(page, 1, outputs_in_order[1], "wijzigingen vragen", "Voeg de randklassen samen.")
    give_verdict(page, 2, outputs_in_order[2], public=True)

    login(page, stack, "chk2", f"/uitvoer?id={release_id}")
    assert page.get_by_text("chk1 over").count() == 0  # not before she gave her own
    assert page.get_by_text("Voeg de randklassen samen").count() == 0
    click(page, "Dit verzoek oppakken", "U controleert dit verzoek nu.")
    give_verdict(page, 1, outputs_in_order[1], "goedkeuren")
    assert page.locator(".alp-verdict", has_text=f"chk1 over {stack.files['output_2']}").count() == 1
    assert page.get_by_text("Voeg de randklassen samen").count() >= 1  # on the histogram and its metadata
    assert page.get_by_text(f"chk1 over {stack.files['output_1']}").count() == 0  # still hidden there
    give_verdict(page, 0, outputs_in_order[0])
    give_verdict(page, 2, outputs_in_order[2], public=True)
    click(page, "Goedkeuren", "goedkeuren kan alleen als beide controleurs elk bestand goedkeuren")  # refused
    assert airlock.get_release(engine, release_id, "chk2").status == airlock.IN_REVIEW

    login(page, stack, "chk1", f"/uitvoer?id={release_id}")  # she changes her mind on the histogram
    give_verdict(page, 1, outputs_in_order[1], "goedkeuren")
    click(page, "Goedkeuren", "Het verzoek is goedgekeurd.")
    assert airlock.get_release(engine, release_id, "chk1").status == airlock.APPROVED
    browser.screenshot(page, "uitvoer-beoordeling")
    click(page, "Vrijgeven", "De uitvoer is vrijgegeven.")
    assert airlock.get_release(engine, release_id, "chk1").status == airlock.RELEASED
    assert vb.get_question(engine, stack.ids["question"], None).status == vb.ANSWERED

    login(page, stack, "olga", f"/uitvoer?id={release_id}")  # the author sees the verdicts and her files
    assert page.locator(".alp-verdict").count() >= 6
    expect(page.locator(".alp-downloads a").first).to_be_visible()
    assert page.locator(f".alp-downloads a[href='uitvoer/bestand?id={release_id}&bestand={stack.files['output_1']}']"
                        ).count() == 1


def released(stack) -> None:
    """The request released, as the browser test leaves it; through the domain when that test did not run
    first (run alone, or it failed: then it fails on its own)."""
    release_id, engine = stack.ids["release"], stack.engine
    if airlock.get_release(engine, release_id, "steward").status == airlock.RELEASED:
        return
    if airlock.get_release(engine, release_id, "steward").status != airlock.APPROVED:
        for checker in ("chk1", "chk2"):
            if checker not in airlock.get_release(engine, release_id, "steward").reviewers:
                airlock.claim(engine, release_id, checker)
            for f in airlock.get_release(engine, release_id, checker).files:
                airlock.review_file(engine, release_id, checker, f.file, airlock.APPROVE, public=True)
        airlock.decide(engine, release_id, "chk1", airlock.APPROVED)
    airlock.release(engine, release_id, "chk1")


def test_the_download_route_gives_files_only_to_whom_the_policy_allows(stack):
    released(stack)
    release_id = stack.ids["release"]
    url = f"{stack.portal}/uitvoer/bestand"
    table, text = stack.files["output_1"], stack.files[stack.text_output]
    olga = stack.portal_session("olga", PASSWORD)
    response = olga.get(url, params={"id": release_id, "bestand": table}, timeout=30)
    assert response.status_code == 200 and b"MST" in response.content
    assert response.headers["Content-Disposition"] == f'attachment; filename="{table}"'
    bram = stack.portal_session("bram", PASSWORD)
    for session in (bram, requests.Session(), stack.portal_session("chk1", PASSWORD)):
        assert session.get(url, params={"id": release_id, "bestand": table}, timeout=30).status_code == 403
    public = requests.get(url, params={"id": release_id, "bestand": text}, timeout=30)  # both checkers agreed
    assert public.status_code == 200 and public.content.decode("utf-8") == NOTE
    for params, status in (({"id": release_id, "bestand": "bestaat-niet.csv"}, 404), ({"id": 999, "bestand": table}, 404),
                           ({"id": release_id, "bestand": "../ldj.sqlite"}, 400), ({"id": release_id}, 400)):
        assert requests.get(url, params=params, timeout=30).status_code == status, params
    with stack.engine.connect() as conn:
        logged = conn.execute(store.access_log.select().where(store.access_log.c.action == "release.download")).all()
    assert {row.user_name for row in logged} >= {"olga", "-"}


def test_the_question_shows_the_released_output_as_its_answer_and_the_asker_is_told(stack, page):
    released(stack)
    question = stack.ids["question"]
    browser.open_page(page, f"{stack.portal}/vraagbank?vraag={question}")  # anyone, without login
    answer = page.locator(".vbp-released")
    expect(answer).to_have_count(1)
    assert TITLE in answer.inner_text()
    assert answer.locator("strong", has_text="even vaak").count() == 1  # the description as Markdown
    links = [a.get_attribute("href") for a in answer.locator("a").all()]
    assert links == [f"uitvoer/bestand?id={stack.ids['release']}&bestand={stack.files[stack.text_output]}"]
    browser.screenshot(page, "vraagbank-uitvoer-antwoord")

    login(page, stack, "pia", "/")
    told = page.locator(".ldj-notifications a", has_text=QUESTION)
    expect(told).to_have_count(1)
    assert told.get_attribute("href") == f"{PORTAL}/vraagbank?vraag={question}"
    click(page, "Gelezen", "De meldingen zijn als gelezen gemarkeerd.")
    assert page.locator(".ldj-notifications").count() == 0
    assert notifications.unread(stack.engine, "pia") == []


def test_a_researcher_outside_the_project_sees_no_request(stack, page):
    login(page, stack, "bram", f"/uitvoer?id={stack.ids['release']}")
    assert page.get_by_text(TITLE).count() == 0
    assert page.get_by_text("geen toegang").count() >= 1
    browser.open_page(page, f"{stack.portal}/uitvoer")
    assert page.get_by_role("link", name=TITLE).count() == 0
    assert page.get_by_text("Geen vrijgaveverzoeken.").count() == 1  # an empty list says so


def test_the_author_withdraws_her_request_and_its_files_go(stack, page):
    folder = stack.root / "werk2" / "outputs"
    outputs(folder)
    settings = Settings(data_dir=stack.data_dir)
    release_id = airlock.submit(stack.engine, "olga", stack.ids["project"], folder, title="Nog een tabel",
                                description="Per interventie.", settings=settings)
    assert airlock.release_folder(settings, release_id).is_dir()
    login(page, stack, "chk1", f"/uitvoer?id={release_id}")
    assert page.get_by_role("button", name="Verzoek intrekken").count() == 0  # the author's alone
    login(page, stack, "olga", "/uitvoer")
    expect(page.get_by_role("link", name="Nog een tabel")).to_have_count(1)  # her project's requests
    browser.open_page(page, f"{stack.portal}/uitvoer?id={release_id}")
    assert page.get_by_role("button", name="Dit verzoek oppakken").count() == 0
    page.get_by_label("Waarom (optioneel)").fill("Verkeerde map.")
    page.get_by_label("Waarom (optioneel)").blur()
    click(page, "Verzoek intrekken", "Het verzoek is ingetrokken.")
    assert airlock.get_release(stack.engine, release_id, "olga").status == airlock.WITHDRAWN
    assert airlock.history(stack.engine, release_id)[-1].comment == "Verkeerde map."
    assert not airlock.release_folder(settings, release_id).exists()
    assert page.get_by_role("button", name="Verzoek intrekken").count() == 0  # nothing left to withdraw
