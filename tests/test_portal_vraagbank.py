"""The Vraagbank pages in a real browser (Debian chromium through Playwright) against the real hub and portal:
the whole loop by different users, public browsing, script injection, the Atom feed and the steward's export."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect, sync_playwright

import browser
from ldj import governance as gov
from ldj import store
from ldj import vraagbank as vb
from ldj.settings import Settings
from portalserver import make_stack

pytestmark = pytest.mark.slow
PASSWORD = "vraagbank-test-2026"
ACCOUNTS = [("beheer", "SEJN", ["steward"]), ("praktijk", "ORG01", ["member"]), ("praktijk2", "ORG02", ["member"]),
            ("student", "Hogeschool Utrecht", ["student"])]
PORTAL = "/services/ldj-portal"
ATOM = "{http://www.w3.org/2005/Atom}"

LOOP_TITLE = "Werkt MST even goed voor jongeren met een LVB?"
PUBLISHED_TITLE = "Voorspelt de OBVL bij de start een afgebroken pleegzorgplaatsing?"
SUBMITTED_TITLE = "Zijn de resultaten van dagbehandeling sinds 2015 slechter geworden?"
ANSWER = "Jongeren met een LVB gaan op de CBCL evenveel vooruit: gemiddeld 6 T-punten."
XSS_TITLE = 'Vraag <img src=x onerror="window.__xss=1">'
XSS_BODY = ('<img src=x onerror="window.__xss=1">\n\n<script>window.__xss=1</script>\n\n'
            "[klik](javascript:window.__xss=1)")
XSS_COMMENT = '<svg onload="window.__xss=1"></svg> [hier](javascript:window.__xss=1)'


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("portal-vb")  # pytest removes it (keeps the last 3 runs)
    engine = store.get_engine(Settings(data_dir=root / "var"))
    for name, organisation, roles in ACCOUNTS:
        gov.add_user(engine, name, display_name=name.capitalize(), organisation=organisation, roles=roles,
                     password=PASSWORD)
    published = vb.post(engine, "praktijk2", PUBLISHED_TITLE, "Pleegouders vullen bij de start de OBVL in.",
                        "outcome", {"instrument": ["obvl"], "intervention": ["pleegzorg"]})
    vb.publish(engine, "beheer", published)
    vb.post(engine, "praktijk2", SUBMITTED_TITLE, "Onze teams zien zwaardere problemen.", "outcome",
            {"intervention": ["dagbehandeling"]})
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


def login(page, stack, user: str, query: str = "") -> None:
    browser.login(page, stack.url, user, PASSWORD, next_path=f"{PORTAL}/vraagbank{query}")


def fill(page, label: str, text: str) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(text)
    field.blur()  # Panel text fields send their value on change (Tab could open the next field's date picker)


def click(page, button: str, then: str) -> None:
    """Click a button and wait for the success text the page shows after the domain accepted the action."""
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_selector(f"text={then}")
    browser.wait_idle(page)


def post_question(page, title: str, body: str) -> int:
    fill(page, "Titel", title)
    fill(page, "Uw vraag (Markdown)", body)
    page.get_by_label("Categorie", exact=True).select_option(label="aanpak")
    page.get_by_label("Multisysteemtherapie (MST)", exact=True).check()
    page.get_by_label("12–17 jaar (adolescenten)", exact=True).check()
    click(page, "Vraag insturen", "is ingestuurd")
    text = page.locator(".vbp-posted").inner_text()
    return int(text.split("nummer ")[1].split(")")[0])


def test_the_whole_loop_by_asker_steward_voter_and_student(stack, page):
    engine = stack.engine
    login(page, stack, "praktijk", "?nieuw=1")
    qid = post_question(page, LOOP_TITLE, "Steeds meer jongeren in ons MST-team hebben een **LVB**.")
    question = vb.get_question(engine, qid, "praktijk")
    assert (question.title, question.status, question.category) == (LOOP_TITLE, vb.SUBMITTED, "approach")
    assert question.tags == {"instrument": (), "intervention": ("mst",), "age_group": ("12-17",)}

    login(page, stack, "beheer", "?triage=1")  # the steward's queue lists it
    expect(page.get_by_role("link", name=LOOP_TITLE)).to_have_count(1)  # the queue may still be drawing
    page.get_by_role("link", name=LOOP_TITLE).click()
    page.wait_for_url(f"**vraagbank?vraag={qid}")
    browser.wait_idle(page)
    click(page, "Publiceren", "De vraag is gepubliceerd")
    assert vb.get_question(engine, qid).status == vb.PUBLISHED
    assert page.get_by_role("button", name="Publiceren").count() == 0

    login(page, stack, "praktijk2", f"?vraag={qid}")
    click(page, "Ik wil dit ook weten", "Uw stem is geteld")
    assert page.get_by_text("1 stem(men)").count() == 1
    assert page.get_by_role("button", name="Ik wil dit ook weten").count() == 0  # a second vote is not offered
    with pytest.raises(gov.ValidationError):  # ... and not accepted when sent anyway
        vb.vote(engine, "praktijk2", qid)
    fill(page, "Uw reactie (Markdown)", "Bij ons **ook** een vraag van het team.")
    click(page, "Reageren", "Uw reactie is geplaatst")
    assert page.locator(".vbp-comment strong", has_text="ook").count() == 1
    assert vb.get_question(engine, qid).votes == 1

    login(page, stack, "student", f"?vraag={qid}")
    fill(page, "Instelling", "Hogeschool Utrecht")
    fill(page, "Begeleider", "Dr. Bakker")
    click(page, "Vraag oppakken", "U heeft de vraag opgepakt")
    picked = vb.get_question(engine, qid, "student")
    assert picked.status == vb.PICKED_UP and picked.active_pickups[0].supervisor == "Dr. Bakker"
    fill(page, "Samenvatting van het antwoord (Markdown)", ANSWER)
    fill(page, "Link naar het verslag", "https://www.hu.nl/scripties/mst-lvb")
    click(page, "Antwoord vastleggen", "De vraag is beantwoord")
    answered = vb.get_question(engine, qid)
    assert (answered.status, answered.answer_url) == (vb.ANSWERED, "https://www.hu.nl/scripties/mst-lvb")
    browser.screenshot(page, "vraagbank-vraag")

    for user in ("praktijk", "praktijk2"):  # the asker and the voter see the answer on their own page
        login(page, stack, user, "?mijn=1")
        assert page.locator(".vbp-answer", has_text=ANSWER).count() == 1
        assert page.get_by_role("link", name="Lees het verslag").get_attribute("href") == \
            "https://www.hu.nl/scripties/mst-lvb"


def test_a_visitor_without_login_sees_published_questions_only(stack, page):
    browser.open_page(page, f"{stack.portal}/vraagbank")
    assert page.get_by_role("link", name=PUBLISHED_TITLE).count() == 1
    assert page.get_by_text(SUBMITTED_TITLE).count() == 0
    assert page.get_by_role("link", name="Stel een vraag").count() == 0
    browser.screenshot(page, "vraagbank")
    fill(page, "Zoeken", "pleegzorgplaatsing")
    page.wait_for_selector("text=1 vraag/vragen")
    expect(page.get_by_role("link", name=PUBLISHED_TITLE)).to_have_count(1)  # the list may redraw after the count
    expect(page.get_by_role("link", name=LOOP_TITLE)).to_have_count(0)

    submitted = vb.list_questions(stack.engine, "beheer", status=vb.SUBMITTED, text="dagbehandeling")[0]
    browser.open_page(page, f"{stack.portal}/vraagbank?vraag={submitted.id}")
    assert page.get_by_text(f"vraag {submitted.id} bestaat niet").count() == 1
    assert page.get_by_text(SUBMITTED_TITLE).count() == 0


def test_script_in_a_question_is_stored_but_does_not_run(stack, page):
    login(page, stack, "praktijk", "?nieuw=1")
    qid = post_question(page, XSS_TITLE, XSS_BODY)
    with stack.engine.connect() as conn:
        stored = conn.execute(sa.select(store.questions.c.title, store.questions.c.body)
                              .where(store.questions.c.id == qid)).one()
    assert (stored.title, stored.body) == (XSS_TITLE, XSS_BODY)  # kept as typed
    vb.publish(stack.engine, "beheer", qid)
    vb.comment(stack.engine, "praktijk2", qid, XSS_COMMENT)

    for query in (f"?vraag={qid}", ""):  # the question page and the list
        browser.open_page(page, f"{stack.portal}/vraagbank{query}")
        page.wait_for_timeout(500)  # an injected image would fail to load and fire its handler by now
        assert page.evaluate("window.__xss") is None
        assert page.locator("img[src='x'], svg[onload], [onerror]").count() == 0
        assert page.locator("a[href^='javascript']").count() == 0
    assert page.get_by_role("link", name=XSS_TITLE).count() == 1  # the title shows as text
    browser.open_page(page, f"{stack.portal}/vraagbank?vraag={qid}")
    assert page.locator(".vbp-body", has_text="<script>window.__xss=1</script>").count() == 1
    assert page.locator(".vbp-body script").count() == 0


def test_the_atom_feed_lists_published_questions_only(stack):
    response = requests.get(f"{stack.portal}/vraagbank/feed.atom", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    entries = ET.fromstring(response.content).findall(f"{ATOM}entry")
    titles = {e.findtext(f"{ATOM}title") for e in entries}
    assert PUBLISHED_TITLE in titles and SUBMITTED_TITLE not in titles
    links = {e.find(f"{ATOM}link").get("href") for e in entries}
    assert all(link.startswith(f"{stack.portal}/vraagbank?vraag=") for link in links)


def cookies_of(page, stack, user: str) -> dict[str, str]:
    login(page, stack, user)
    return {c["name"]: c["value"] for c in page.context.cookies()}


def test_the_csv_export_is_for_the_steward_only_even_when_requested_directly(stack, page):
    url = f"{stack.portal}/vraagbank/export.csv"
    assert requests.get(url, timeout=10).status_code == 403
    practitioner = cookies_of(page, stack, "praktijk")
    assert "user" in practitioner  # the portal's login cookie is sent along, and still refused
    assert requests.get(url, cookies=practitioner, timeout=10).status_code == 403
    assert page.get_by_role("link", name="Exporteren (CSV)").count() == 0

    steward = cookies_of(page, stack, "beheer")
    assert page.get_by_role("link", name="Exporteren (CSV)").count() == 1
    response = requests.get(url, cookies=steward, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    text = response.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("nummer;titel;")
    assert SUBMITTED_TITLE in text and PUBLISHED_TITLE in text  # the steward's export holds every status
