"""The portal in a real browser (Debian chromium through Playwright) against the real hub, proxy and portal:
single sign-on, public pages, the language switch, and role checks on the server."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests
from playwright.sync_api import sync_playwright

import browser
from ldj import governance as gov
from ldj import store
from ldj import registry
from ldj import vraagbank as vb
from ldj.refresh import import_delivery
from ldj.catalogue import load_entries
from ldj.settings import REPO_ROOT, Settings
from ldj.synth import generate
from portalserver import make_stack
from projects import approve

pytestmark = pytest.mark.slow
PASSWORD = "portaal-test-2026"
ACCOUNTS = [("beheer", "SEJN", ["steward"]), ("apo-a", "UNI01", ["apo"]), ("apo-b", "UNI02", ["apo"]),
            ("apo-c", "ORG01", ["apo"]), ("onderzoeker", "ORG01", ["researcher"]),
            ("praktijk", "ORG01", ["member"]), ("praktijk2", "ORG02", ["member"])]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal")  # pytest removes it (keeps the last 3 runs)
    settings = Settings(data_dir=root / "var")
    engine = store.get_engine(settings)
    generate(root / "d", questionnaires=3000, organisations=3, seed=3, invalid_share=0.0)
    reports = import_delivery([root / "d"], settings=settings, refresh_views=False)
    assert all(r.status == "loaded" for r in reports)
    for name, organisation, roles in ACCOUNTS:
        gov.add_user(engine, name, display_name=name, organisation=organisation, roles=roles, password=PASSWORD)
    running = make_stack(root).start()
    running.engine = engine
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


def test_a_visitor_without_login_sees_the_public_start_page(stack, page):
    browser.open_page(page, f"{stack.url}/")  # the hub URL opens the portal
    assert "/services/ldj-portal/" in page.url
    assert page.get_by_text("wat werkt voor wie").count() == 1
    assert page.get_by_text("Inloggen").count() == 1
    assert page.evaluate("window.Bokeh === undefined")  # plain HTML: no Panel session for a visitor without login
    browser.screenshot(page, "start")


def test_a_request_with_a_login_cookie_gets_the_panel_start_page_which_checks_it(stack):
    """The plain start page answers requests without a login cookie only; with one (here forged) the Panel page
    answers, checks it and shows the page for guests."""
    plain = requests.get(f"{stack.portal}/", timeout=60)
    forged = requests.get(f"{stack.portal}/", cookies={"user": "beheer"}, timeout=60)
    assert plain.status_code == forged.status_code == 200
    assert '"token"' not in plain.text and "wat werkt voor wie" in plain.text
    assert '"token"' in forged.text and "Inloggen" in forged.text and "beheer" not in forged.text


def test_login_through_the_hub_is_single_sign_on_into_the_portal(stack, page):
    browser.login(page, stack.url, "praktijk", PASSWORD)
    assert page.get_by_text("Welkom, praktijk").count() == 1
    assert page.get_by_text("Uitloggen").count() == 1
    # a practitioner is no researcher: no data-request or APO entries in the navigation
    assert page.get_by_text("APO-beoordeling").count() == 0


def test_the_interface_switches_to_english_and_remembers_it(stack, page):
    browser.open_page(page, f"{stack.portal}/")
    page.get_by_text("EN", exact=True).click()
    browser.wait_idle(page)
    page.wait_for_selector("text=Learning Youth Database")
    browser.open_page(page, f"{stack.portal}/")
    assert page.get_by_text("what works for whom").count() == 1


def test_pages_for_other_roles_are_refused_by_the_server(stack, page):
    browser.open_page(page, f"{stack.portal}/apo")
    assert page.get_by_text("Log in om deze pagina te zien").count() == 1
    browser.login(page, stack.url, "praktijk", PASSWORD, next_path="/services/ldj-portal/apo")
    assert page.get_by_text("U heeft geen toegang").count() == 1
    assert page.get_by_text("Alle ingediende aanvragen").count() == 0


def test_the_portal_refuses_cross_site_websockets(stack):
    """Pages are rendered over a websocket; another site cannot open one with the visitor's cookies."""
    response = requests.get(f"{stack.portal}/ws", headers={"Origin": "http://evil.example", "Upgrade": "websocket",
                                                            "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                                            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 403


def fill(page, label: str, text: str) -> None:
    """Type into the Panel text field labelled `label` (labels and inputs live in shadow DOM)."""
    field = page.get_by_label(label, exact=True)
    field.fill(text)
    field.press("Tab")  # Panel text areas send their value on change


def click(page, text: str) -> None:
    page.get_by_role("button", name=text).click()
    browser.wait_idle(page)


def test_a_request_is_written_submitted_reviewed_by_two_apo_members_and_approved(stack, page):
    browser.login(page, stack.url, "onderzoeker", PASSWORD, next_path="/services/ldj-portal/aanvragen?entry=trajectories")
    fill(page, "Titel", "Wat werkt voor jongeren met een LVB?")
    for number, text in enumerate(["Helder doel", "Past bij SEJN", "Ja, met trajecten", "Regressie", "Teams leren",
                                   "Promovendus met begeleiding"], start=1):
        fill(page, page.get_by_text(f"{number}. ", exact=False).first.inner_text(), text)
    click(page, "Indienen bij de APO")
    page.wait_for_url("**/aanvragen?id=*")
    browser.wait_idle(page)
    browser.screenshot(page, "aanvraag")
    request = gov.requests_for(stack.engine, "onderzoeker")[-1]
    assert request.status == gov.SUBMITTED and request.entries["trajectories"]
    assert request.title == "Wat werkt voor jongeren met een LVB?"

    apo = f"/services/ldj-portal/apo?id={request.id}"
    browser.login(page, stack.url, "beheer", PASSWORD, next_path=apo)
    click(page, "Voorleggen aan de APO")
    page.wait_for_selector("text=De aanvraag ligt nu bij de APO")
    assert gov.get_request(stack.engine, request.id).status == gov.IN_REVIEW
    browser.login(page, stack.url, "apo-c", PASSWORD, next_path=apo)  # same organisation as the applicant
    assert page.get_by_text("belangenconflict").count() == 1
    for reviewer in ("apo-a", "apo-b"):
        browser.login(page, stack.url, reviewer, PASSWORD, next_path=apo)
        click(page, "Beoordeling opslaan")
        page.wait_for_selector("text=Uw beoordeling is opgeslagen")
    browser.screenshot(page, "apo-beoordeling")
    assert {r.reviewer: r.vote for r in gov.list_reviews(stack.engine, request.id)} == {
        "apo-a": "approve", "apo-b": "approve"}
    browser.login(page, stack.url, "beheer", PASSWORD, next_path=apo)
    click(page, "Besluit vastleggen")
    page.wait_for_selector("text=Besluit vastgelegd: goedgekeurd")
    browser.login(page, stack.url, "onderzoeker", PASSWORD,
                  next_path=f"/services/ldj-portal/aanvragen?id={request.id}")
    project = gov.get_request(stack.engine, request.id).project_id
    assert page.get_by_text(f"Project {project}").count() == 1
    assert gov.active_grants(stack.engine, "onderzoeker")


def test_the_catalogue_shows_entries_dictionaries_and_a_controlled_feasibility_count(stack, page):
    browser.open_page(page, f"{stack.portal}/catalogus")
    assert page.get_by_text("CBCL 6-18 (ouderversie): voor- en nametingparen").count() == 1
    browser.open_page(page, f"{stack.portal}/catalogus?entry=cbcl_6_18_pairs")
    assert page.get_by_text("Datawoordenboek").count() == 1
    assert page.get_by_text("total_problems_start").count() >= 1
    click(page, "Tel")
    page.wait_for_selector("text=/Ongeveer|Te weinig gegevens/")
    browser.screenshot(page, "catalogus")
    page.get_by_text("Vraag deze gegevens aan").click()
    browser.wait_idle(page)
    assert page.get_by_text("Log in om deze pagina te zien").count() == 1


def test_single_sign_on_carries_the_hub_groups_into_the_portal(stack, page):
    """Roles come from the hub's groups: the user model the portal receives at login holds them."""
    import base64
    import json

    from cryptography.fernet import Fernet
    from tornado.web import decode_signed_value

    browser.login(page, stack.url, "apo-a", PASSWORD)
    cookie = next(c for c in page.context.cookies() if c["name"] == "id_token")
    secret = (stack.root / "var" / "hub" / "portal_cookie_secret").read_text().strip()
    key = (stack.root / "var" / "hub" / "portal_encryption_key").read_text().strip()
    token = Fernet(key).decrypt(decode_signed_value(secret, "id_token", cookie["value"].strip('"'))).decode()
    payload = token.split(".")[1] if token.count(".") == 2 else token
    model = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert model["name"] == "apo-a"
    assert {"role-apo", "org-UNI01"} <= set(model["groups"])
    assert page.get_by_text("APO-beoordeling").count() == 1


def approve_here(stack, title: str, criterion: str) -> int:
    """An approved project of `onderzoeker` on trajectories, through the real workflow in this stack's store."""
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    return approve(stack.engine, "onderzoeker", {"trajectories": ["trajectory", "intervention"]}, catalogue,
                   title=title, criteria={key: criterion for key in gov.CRITERIA}, steward="beheer",
                   reviewers=("apo-a", "apo-b"))


def test_a_project_is_closed_with_its_final_report_from_the_request_page(stack, page):
    project = approve_here(stack, "Afsluiten met eindverslag", "Voldoende uitgewerkt voor dit project.")
    request = gov.get_project(stack.engine, project).request_id
    question = vb.post(stack.engine, "praktijk", "Welke gezinnen hebben baat bij IAG?", "Wij willen dit weten.",
                       "approach", {"intervention": ["iag"]})
    vb.publish(stack.engine, "beheer", question)
    vb.pick_up(stack.engine, "onderzoeker", question, kind="researcher", institution="UvA", supervisor="Dr. Visser",
               planned_from=date.today(), planned_until=date.today() + timedelta(days=90), request_id=request)
    browser.login(page, stack.url, "onderzoeker", PASSWORD, next_path=f"/services/ldj-portal/aanvragen?id={request}")
    assert page.get_by_role("button", name="Wijziging indienen").count() == 1  # the amendment form is there
    # lineage: the request names the Vraagbank question it takes up, and links to it
    assert page.get_by_text("Vragen uit de Vraagbank die dit onderzoek oppakt").count() == 1
    assert page.get_by_role("link", name="Welke gezinnen hebben baat bij IAG?").get_attribute("href") == \
        f"vraagbank?vraag={question}"
    short = "Te kort."
    fill(page, "Eindverslag: wat betekenen de resultaten voor de praktijk?", short)
    click(page, "Project afsluiten")
    page.wait_for_selector("text=minstens")  # governance refuses a report that says too little
    assert gov.get_project(stack.engine, project).status == gov.PROJECT_ACTIVE
    fill(page, "Eindverslag: wat betekenen de resultaten voor de praktijk?",
         "Teams zien welke gezinnen baat hadden bij de hulp en passen hun intake daarop aan.")
    click(page, "Project afsluiten")
    page.wait_for_selector("text=Het project is afgesloten")
    assert gov.get_project(stack.engine, project).status == gov.PROJECT_CLOSED
    page.context.clear_cookies()  # the public follows the question to the project and its result
    browser.open_page(page, f"{stack.portal}/vraagbank?vraag={question}")
    link = page.get_by_role("link", name="Afsluiten met eindverslag")
    assert link.get_attribute("href") == f"onderzoek#ldj-{project}"
    assert page.get_by_text("(afgerond)").count() == 1


def type_in(page, label: str, text: str) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(text)
    field.blur()  # sends the value without tabbing into the next field (a date picker would open)


def test_the_research_registry_lists_ldj_projects_and_members_research_with_results(stack, page):
    project = approve_here(stack, "Kamertraining en zelfstandigheid", "Welke jongeren hebben baat bij kamertraining?")
    gov.close_project(stack.engine, project, "onderzoeker",
                      "Jongeren met een vast mentoruur wonen vaker zelfstandig; teams roosteren dat nu in.")

    browser.login(page, stack.url, "praktijk", PASSWORD, next_path="/services/ldj-portal/onderzoek")
    type_in(page, "Titel", "Samen beslissen in de gezinsbehandeling")
    type_in(page, "Beschrijving: vraag en aanpak (Markdown)",
            "Interviews met **30 gezinnen** <script>window.__xss=1</script> over gedeelde besluiten.")
    type_in(page, "Webadres (optioneel)", "https://org01.example/samen-beslissen")
    click(page, "Aanmelden")
    page.wait_for_selector("text=Het onderzoek staat in het register")
    [study] = [s for s in registry.studies(stack.engine, kind=registry.MEMBER) if s.title.startswith("Samen")]
    assert (study.organisation, study.status) == ("ORG01", registry.RUNNING)
    type_in(page, "Resultaat: wat betekent het voor de praktijk? (Markdown)",
            "Gezinnen die samen beslissen ronden de behandeling vaker af.")
    click(page, "Afronden met resultaat")
    page.wait_for_selector("text=Het onderzoek is afgerond")
    assert registry.studies(stack.engine, kind=registry.MEMBER, text="samen beslissen")[0].status == registry.FINISHED

    page.context.clear_cookies()  # the public sees both kinds, with results, and no script runs
    browser.open_page(page, f"{stack.portal}/onderzoek")
    assert page.locator(f".reg-study[data-kind='ldj'][data-id='{project}']").count() == 1
    assert page.get_by_text("Jongeren met een vast mentoruur wonen vaker zelfstandig").count() == 1
    assert page.get_by_text("Gezinnen die samen beslissen ronden de behandeling vaker af.").count() == 1
    assert page.locator(".reg-study strong", has_text="30 gezinnen").count() == 1
    assert page.evaluate("() => window.__xss") is None
    assert page.get_by_role("button", name="Aanmelden").count() == 0  # registering needs a login
    browser.screenshot(page, "onderzoek")
    type_in(page, "Zoeken", "kamertraining")
    page.wait_for_selector("text=1 onderzoek(en)")
    assert page.locator(".reg-study").count() == 1
