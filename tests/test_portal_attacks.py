"""Attacks on the portal in a real browser (Debian chromium through Playwright) against one running stack
(hub, proxy, portal): reflected script in every page's query arguments, stored script in every user text
field shown to other users, open redirects, security headers on every kind of response, cookie flags, and
sessions after logging out of the hub. A payload that runs sets `window.__xss`; none may."""

from __future__ import annotations

import re
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from bokeh.util.token import get_token_payload
from cryptography.fernet import Fernet
from playwright.sync_api import sync_playwright
from projects import approve
from tornado.web import decode_signed_value

import browser
from ldj import airlock, policy, registry, safe, store
from ldj import governance as gov
from ldj import vraagbank as vb
from ldj.catalogue import load_entries
from ldj.portal import pages as portal_pages
from ldj.settings import REPO_ROOT, Settings
from portalserver import make_stack

pytestmark = pytest.mark.slow
PASSWORD = "aanval-test-2026"
ACCOUNTS = [("beheer", "SEJN", ["steward"]), ("apo-a", "UNI01", ["apo"]), ("apo-b", "UNI02", ["apo"]),
            ("onderzoeker", "ORG01", ["researcher"]), ("onderzoeker-b", "ORG02", ["researcher"]),
            ("praktijk", "ORG01", ["member"]),
            ("student", "Hogeschool Utrecht", ["student"]), ("controleur", "CBS", ["checker"]),
            ("controleur-b", "UNI03", ["checker"])]
PORTAL = "/services/ldj-portal"
SCRIPT = '"><img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'
LINK = "[klik](javascript:window.__xss=1)"
TEXT = f"Tekst {SCRIPT} en {LINK} <svg onload=\"window.__xss=1\"></svg>"
CHECK_SECONDS = 2  # the stack's portal_session_check_seconds: how long a hub logout may take to reach the portal


@pytest.fixture(scope="module")
def stack():
    """One stack for the module, with every user text field holding script (stored through the domain, as a
    form would send it)."""
    root = Path(tempfile.mkdtemp(prefix="ldj-portal-attacks-"))
    engine = store.get_engine(Settings(data_dir=root / "var"))
    for name, organisation, roles in ACCOUNTS:
        gov.add_user(engine, name, display_name=name, organisation=organisation, roles=roles, password=PASSWORD)
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    request = gov.create_request(
        engine, "onderzoeker", title=f"Aanvraag {SCRIPT}", applicant_organisation=f"Organisatie {SCRIPT}",
        sejn_member=True, criteria={key: TEXT for key in gov.CRITERIA},
        entries={"trajectories": ["trajectory", "intervention"]}, members=[], access_from=date.today(),
        access_until=date.today() + timedelta(days=90), catalogue=catalogue)
    gov.submit(engine, request, "onderzoeker")
    gov.start_review(engine, request, "beheer")
    gov.review(engine, request, "apo-a", {i: 3 for i in range(1, 7)}, {1: TEXT}, "approve", TEXT)

    question = vb.post(engine, "praktijk", f"Vraag {SCRIPT}", TEXT, "approach", {"intervention": ["mst"]})
    vb.publish(engine, "beheer", question)
    vb.comment(engine, "student", question, TEXT)
    vb.pick_up(engine, "student", question, kind="student", institution=f"Hogeschool {SCRIPT}",
               supervisor=f"Dr. {SCRIPT}", planned_from=date.today(), planned_until=date.today() + timedelta(days=90))
    declined = vb.post(engine, "praktijk", "Een vraag die wordt afgewezen", "Waarom is dit zo?", "outcome")
    vb.decline(engine, "beheer", declined, f"Reden {SCRIPT}")

    study = registry.register(engine, "praktijk", title=f"Studie {SCRIPT}", organisation=f"Organisatie {SCRIPT}",
                              summary=TEXT, starts=date.today())
    registry.finish(engine, "praktijk", study, TEXT)

    release, project = released_output(engine, root, catalogue)

    running = make_stack(root, portal_session_check_seconds=str(CHECK_SECONDS)).start()
    running.engine = engine
    running.ids = {"request": request, "question": question, "declined": declined, "release": release,
                   "project": project}
    yield running
    running.stop()


def released_output(engine, root: Path, catalogue) -> tuple[int, int]:
    """A released request of onderzoeker-b's project (no role account's), with script in every text of it:
    its table is for the project only, so the download route answers the steward alone."""
    project = approve(engine, "onderzoeker-b", {"trajectories": ["trajectory", "intervention"]}, catalogue,
                      steward="beheer", reviewers=("apo-a", "apo-b"), title=f"Project {SCRIPT}")
    session = safe.OutputSession(root / "werk" / "outputs")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"interventie": rng.choice(["MST", "IAG"], 200), "lvb": rng.choice(["ja", "nee"], 200)})
    session.crosstab(frame["interventie"], frame["lvb"])
    session.add_comments("output_1", TEXT)
    session.add_exception("output_1", TEXT)
    session.finalise()
    release = airlock.submit(engine, "onderzoeker-b", project, root / "werk" / "outputs", title=f"Uitvoer {SCRIPT}",
                             description=TEXT, settings=Settings(data_dir=root / "var"))
    assert (release, [f.file for f in airlock.get_release(engine, release, "beheer").files]) == \
        (RELEASE, ["output_1.meta.json", RELEASED_FILE]), "ROUTE_PATHS names this file"
    for checker in ("controleur", "controleur-b"):
        airlock.claim(engine, release, checker)
        for name in ("output_1.meta.json", RELEASED_FILE):
            airlock.review_file(engine, release, checker, name, airlock.APPROVE, TEXT)
    airlock.decide(engine, release, "controleur", airlock.APPROVED, TEXT)
    airlock.release(engine, release, "controleur-b", TEXT)
    return release, project


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


def no_script_ran(page) -> None:
    page.wait_for_timeout(300)  # an injected image fails to load and fires its handler by now
    assert page.evaluate("() => window.__xss") is None, page.url
    assert page.locator("img[src='x'], svg[onload], [onerror], script:has-text('__xss')").count() == 0, page.url
    assert page.locator("a[href^='javascript']").count() == 0, page.url


def login(page, stack, user: str, path: str) -> None:
    browser.login(page, stack.url, user, PASSWORD, next_path=f"{PORTAL}{path}")


# --- reflected script ---------------------------------------------------------------------------

QUERY_ARGUMENTS = {  # every page and the arguments it takes (and one it does not)
    "": ["lang", "x"], "vraagbank": ["vraag", "nieuw", "mijn", "triage", "lang"], "catalogus": ["entry", "x"],
    "aanvragen": ["id", "entry", "new"], "apo": ["id", "x"], "onderzoek": ["x"], "dashboard": ["x"],
    "uitvoer": ["id", "x"],
}


def test_script_in_any_query_argument_of_any_page_does_not_run(stack, page):
    login(page, stack, "beheer", "/")  # the steward opens every page
    for path, names in QUERY_ARGUMENTS.items():
        for name in names:
            page.goto(f"{stack.portal}/{path}?{name}={requests.utils.quote(SCRIPT + LINK)}")
            browser.wait_idle(page)
            no_script_ran(page)
            if name in ("vraag", "id", "entry", "lang", "nieuw", "mijn", "triage", "new"):  # refused as such
                assert page.get_by_text(f"Ongeldige waarde voor '{name}'").count() == 1, page.url


def test_script_in_a_plain_handlers_arguments_is_refused_with_400(stack):
    quoted = requests.utils.quote(SCRIPT)
    for path in (f"factsheet?lang={quoted}", f"factsheet.pdf?lang={quoted}", f"taal?lang={quoted}",
                 f"vraagbank/feed.atom?lang={quoted}"):
        response = requests.get(f"{stack.portal}/{path}", allow_redirects=False, timeout=30)
        assert response.status_code == 400, path
        assert "<img" not in response.text and "<script>window" not in response.text
        assert "Ongeldige waarde voor &#39;lang&#39;" in response.text


# --- stored script --------------------------------------------------------------------------------

def test_script_typed_into_user_fields_does_not_run_for_other_users(stack, page):
    request, question = stack.ids["request"], stack.ids["question"]
    shown = {  # who opens which page, and which stored field shows there as text
        None: [("/vraagbank", "Vraag"), (f"/vraagbank?vraag={question}", "Hogeschool"), ("/onderzoek", "Studie")],
        "apo-b": [("/apo", "Aanvraag"), (f"/apo?id={request}", "Organisatie")],
        "beheer": [(f"/apo?id={request}", "Organisatie"), ("/aanvragen", "Aanvraag"),
                   (f"/vraagbank?vraag={question}", "Dr."), ("/vraagbank?triage=1", None)],
        "praktijk": [("/vraagbank?mijn=1", "Reden"), ("/onderzoek", "Studie")],
        "controleur": [(f"/uitvoer?id={stack.ids['release']}", "Uitvoer"), ("/uitvoer", "Uitvoer")],
        "onderzoeker-b": [(f"/uitvoer?id={stack.ids['release']}", "Tekst"), ("/", "Uw vrijgaveverzoek 'Uitvoer")],
    }
    for user, pages in shown.items():
        page.context.clear_cookies()
        for number, (path, field) in enumerate(pages):
            if user is not None and number == 0:
                login(page, stack, user, path)
            else:
                browser.open_page(page, f"{stack.portal}{path}")
            no_script_ran(page)
            if field:  # the field is there, as the text that was typed
                assert page.get_by_text(f'{field} "><img src=x onerror=').count() >= 1, (user, path)


def test_the_review_tally_and_history_show_reviewers_text_as_text(stack, page):
    login(page, stack, "beheer", f"/apo?id={stack.ids['request']}")
    no_script_ran(page)
    assert page.locator(".tabulator-cell", has_text="<svg onload").count() >= 1  # the review's comment, as text


# --- open redirects ----------------------------------------------------------------------------------

ELSEWHERE = ["//evil.example/", "/\\evil.example", "/%2F%2Fevil.example", "/%5Cevil.example", "https://evil.example/",
             "javascript:alert(1)", "/%09/evil.example", "%2F%2Fevil.example", "/\\/evil.example"]


def test_the_language_switch_redirects_only_within_the_portal(stack):
    for target in ELSEWHERE:
        response = requests.get(f"{stack.portal}/taal", params={"lang": "en", "next": target}, allow_redirects=False,
                                timeout=30)
        assert response.status_code == 400, target
        assert "Location" not in response.headers
    response = requests.get(f"{stack.portal}/taal", params={"lang": "en", "next": f"{PORTAL}/vraagbank?vraag=1"},
                            allow_redirects=False, timeout=30)
    assert (response.status_code, response.headers["Location"]) == (302, f"{PORTAL}/vraagbank?vraag=1")


def test_login_sends_nobody_to_another_site_afterwards(stack):
    for target in ELSEWHERE:
        response = requests.get(f"{stack.portal}/login", params={"next": target}, allow_redirects=False, timeout=30)
        assert response.status_code == 400, target
    response = requests.get(f"{stack.portal}/login", params={"next": f"{PORTAL}/onderzoek"}, allow_redirects=False,
                            timeout=30)
    assert response.status_code == 302 and response.headers["Location"].startswith("/hub/api/oauth2/authorize")


# --- headers and cookies ---------------------------------------------------------------------------------

def test_every_kind_of_response_carries_the_security_headers(stack):
    kinds = {"panel page": ("/onderzoek", 200), "plain page": ("/", 200), "plain handler": ("/vraagbank/feed.atom", 200),
             "static file": ("/static/js/bokeh.min.js", 200), "unknown path": ("/bestaat-niet", 404),
             "bad argument": ("/taal?lang=xx", 400), "redirect": ("/taal?lang=en", 302),
             "refusal": ("/vraagbank/export.csv", 403), "login": ("/login", 302)}
    for kind, (path, status) in kinds.items():
        response = requests.get(f"{stack.portal}{path}", allow_redirects=False, timeout=60)
        assert response.status_code == status, kind
        csp = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp, kind
        assert response.headers.get("X-Content-Type-Options") == "nosniff", kind
        assert response.headers.get("Referrer-Policy") == "same-origin", kind


def test_cookies_are_httponly_samesite_and_for_the_portal_only(stack, page):
    login(page, stack, "praktijk", "/")
    page.get_by_text("EN", exact=True).click()
    page.wait_for_selector("text=Learning Youth Database")
    cookies = {c["name"]: c for c in page.context.cookies() if c["path"].startswith(PORTAL)}
    assert {"user", "access_token", "id_token", "ldj_taal"} <= set(cookies)
    for name, cookie in cookies.items():
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax", name
    assert page.evaluate("() => document.cookie").find("access_token") == -1
    browser.wait_idle(page)
    no_script_ran(page)


# --- sessions after logout ---------------------------------------------------------------------------------

def test_logging_out_of_the_hub_ends_the_portal_session_and_its_token(stack, page):
    export = f"{stack.portal}/vraagbank/export.csv"
    question = stack.ids["question"]
    login(page, stack, "beheer", "/vraagbank")
    assert page.request.get(export).status == 200
    still_open = page.context.new_page()  # a page opened before the logout, its websocket still connected
    browser.open_page(still_open, f"{stack.portal}/vraagbank?vraag={question}")
    stolen = {c["name"]: c["value"] for c in page.context.cookies()}
    secret = (stack.data_dir / "hub" / "portal_cookie_secret").read_text().strip()
    key = (stack.data_dir / "hub" / "portal_encryption_key").read_text().strip()
    signed = decode_signed_value(secret, "access_token", stolen["access_token"].strip('"'))
    token = Fernet(key).decrypt(signed).decode()  # the cookie holds the hub token encrypted, not readable
    assert token.encode() not in signed
    hub_user = f"{stack.url}/hub/api/user"
    assert requests.get(hub_user, headers={"Authorization": f"token {token}"}, timeout=30).status_code == 200
    # the page embeds a session token holding the request's cookies (a signed cookie is only base64 inside):
    # a script there finds the hub token encrypted, not readable
    embedded = get_token_payload(re.search(r'"token":\s*"([^"]+)"', still_open.content()).group(1))
    inside = decode_signed_value(secret, "access_token", embedded["cookies"]["access_token"])
    assert inside and token.encode() not in inside and Fernet(key).decrypt(inside).decode() == token

    page.goto(f"{stack.url}/hub/logout")  # the hub's own logout, not the portal's
    page.wait_for_url("**/hub/login**")
    # the hub deleted the tokens of that login, the portal's included
    assert requests.get(hub_user, headers={"Authorization": f"token {token}"}, timeout=30).status_code == 403
    page.wait_for_timeout(CHECK_SECONDS * 1000 + 500)  # what the portal may still trust from its last check
    browser.open_page(page, f"{stack.portal}/vraagbank")
    assert page.get_by_text("Inloggen").count() == 1 and page.get_by_text("Uitloggen").count() == 0
    assert page.get_by_role("link", name="Exporteren (CSV)").count() == 0
    assert page.request.get(export).status == 403
    replayed = requests.get(export, cookies=stolen, timeout=30)  # a copied cookie stops working too
    assert replayed.status_code == 403
    still_open.get_by_role("button", name="Verbergen").click()  # an action on the page opened before
    still_open.wait_for_selector("text=Uw sessie is beëindigd")
    assert not any(c.hidden for c in vb.get_question(stack.engine, question, "beheer").comments)


def test_the_portals_logout_ends_the_hub_login_too(stack, page):
    login(page, stack, "praktijk", "/")
    page.get_by_text("Uitloggen").click()
    page.wait_for_url("**/hub/login**")
    browser.open_page(page, f"{stack.portal}/")
    assert page.get_by_text("Inloggen").count() == 1
    assert not [c for c in page.context.cookies() if c["name"] in ("user", "access_token")]
    page.goto(f"{stack.url}/hub/home")
    page.wait_for_url("**/hub/login**")  # no hub session left either


# --- every page and route for every role: the access matrix over HTTP ---------------------------------------

ROLE_ACCOUNTS = {"visitor": None, policy.STEWARD: "beheer", policy.APO: "apo-a", policy.RESEARCHER: "onderzoeker",
                 policy.MEMBER: "praktijk", policy.STUDENT: "student", policy.CHECKER: "controleur"}
RELEASE, RELEASED_FILE = 1, "output_1.csv"  # the stack's released output (released_output), for its route
ROUTE_PATHS = {  # a path for every plain route; a new route needs one here
    r"/taal": f"/taal?lang=nl&next={PORTAL}/", r"/uitloggen": "/uitloggen", r"/factsheet": "/factsheet",
    r"/factsheet\.json": "/factsheet.json", r"/factsheet\.pdf": "/factsheet.pdf",
    r"/vraagbank/feed(?:\.atom)?": "/vraagbank/feed.atom", r"/vraagbank/export\.csv": "/vraagbank/export.csv",
    r"/dashboard/figures\.(json|csv)": "/dashboard/figures.json", r"/catalogus/telling\.json": "/catalogus/telling.json",
    r"/uitvoer/bestand": f"/uitvoer/bestand?id={RELEASE}&bestand={RELEASED_FILE}",
}
LOGIN_NEEDED, NO_ACCESS = "Log in om deze pagina te zien", "U heeft geen toegang"
CELLS = {row.action: row.cells for row in policy.table()}  # the table of docs/security.md


def test_every_plain_route_answers_every_role_as_the_policy_table_says(stack):
    routes = [(pattern, handler) for pattern, handler, _ in portal_pages.extra_handlers()]
    assert {pattern for pattern, _ in routes} == set(ROUTE_PATHS), "give every plain route a path in ROUTE_PATHS"
    mismatches = []
    for role, account in ROLE_ACCOUNTS.items():
        session = requests.Session() if account is None else stack.portal_session(account, PASSWORD)
        for pattern, handler in sorted(routes, key=lambda route: route[0] == r"/uitloggen"):  # logout ends it: last
            allowed = CELLS[handler.action][role] == "ja"
            response = session.get(f"{stack.portal}{ROUTE_PATHS[pattern]}", allow_redirects=False, timeout=120)
            if (response.status_code == 403) == allowed or response.status_code >= 500:
                mismatches.append(f"{pattern} as {role}: expected {'answered' if allowed else 'refused'}, "
                                  f"got {response.status_code}")
    assert "\n".join(mismatches) == ""


def test_every_page_shows_or_refuses_every_role_as_the_policy_table_says(stack, chromium):
    mismatches = []
    for role, account in ROLE_ACCOUNTS.items():
        context = chromium.new_context()
        page = context.new_page()
        if account is not None:
            login(page, stack, account, "/")
        for portal_page in portal_pages.PAGES:
            if portal_page.handler:
                continue  # a plain page: a route of the test above
            browser.open_page(page, f"{stack.portal}/{portal_page.path}")
            allowed = CELLS[portal_page.action][role] == "ja"
            refusal = LOGIN_NEEDED if account is None else NO_ACCESS
            refused = page.get_by_text(refusal).count() > 0
            if refused == allowed:
                mismatches.append(f"/{portal_page.path} as {role}: expected {'shown' if allowed else 'refused'}")
        context.close()
    assert "\n".join(mismatches) == ""


def test_id_bearing_pages_show_an_object_only_to_whom_the_policy_allows(stack, chromium):
    """IDOR: a submitted data request, an unpublished question and a release request, opened by id by every
    role and by a researcher who is not on the request (the release is hers: she sees it)."""
    request, declined, release = stack.ids["request"], stack.ids["declined"], stack.ids["release"]
    asker = vb.get_question(stack.engine, declined, "beheer").asker
    for label, account in {**ROLE_ACCOUNTS, "other researcher": "onderzoeker-b"}.items():
        actor = policy.actor_for(stack.engine, account)
        context = chromium.new_context()
        page = context.new_page()
        if account is not None:
            login(page, stack, account, "/")
        browser.open_page(page, f"{stack.portal}/vraagbank?vraag={declined}")
        may_see = policy.allows(actor, "question.view", policy.Target(owner=asker))
        assert (page.get_by_text("Een vraag die wordt afgewezen").count() > 0) == may_see, (label, "question")
        for path, action in ((f"/aanvragen?id={request}", "page.requests"), (f"/apo?id={request}", "page.apo")):
            browser.open_page(page, f"{stack.portal}{path}")
            may_see = policy.allows(actor, action) and policy.allows(
                actor, "request.view", policy.Target(owner="onderzoeker", submitted=True))
            shown = page.get_by_text('Organisatie "><img src=x onerror=').count() > 0
            assert shown == may_see, (label, path)
        browser.open_page(page, f"{stack.portal}/uitvoer?id={release}")
        may_see = policy.allows(actor, "page.releases") and policy.allows(actor, "release.view", policy.Target(
            owner="onderzoeker-b", project=stack.ids["project"], members=frozenset({"onderzoeker-b"})))
        assert (page.get_by_text('Uitvoer "><img src=x onerror=').count() > 0) == may_see, (label, "release")
        context.close()
    assert not policy.allows(policy.actor_for(stack.engine, "onderzoeker-b"), "request.view",
                             policy.Target(owner="onderzoeker", submitted=True))
