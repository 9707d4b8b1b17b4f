"""hub/jupyterhub_config.py for real: LDJ logins, and only members of an active project get a workspace."""

from __future__ import annotations

import json
import re
import time
from datetime import date, timedelta

import pytest
import requests

from portalserver import make_stack
from ldj import governance as gov
from ldj import store
from ldj.catalogue import load_entries
from ldj.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.slow
CRITERIA = {"aim_question": "Vraag", "fit_with_aims": "Past", "answerable_with_ldj": "Ja", "analyses": "Regressie",
            "practical_relevance": "Teams", "researchers": "Promovendus"}
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")  # pytest removes it (keeps the last 3 runs)
    settings = Settings(data_dir=root / "var")
    engine = store.get_engine(settings)
    catalogue = {e.id: set(e.variable_names) for e in load_entries(REPO_ROOT / "catalog").values()}
    gov.add_user(engine, "stew", display_name="S", organisation="SEJN", roles=["steward"])
    for name in ("apo1", "apo2"):
        gov.add_user(engine, name, display_name=name, organisation=name, roles=["apo"])
    for name, roles in (("onderzoeker", ["researcher"]), ("zonderproject", ["researcher"]), ("praktijk", ["member"])):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=roles, password=PASSWORD)
    request = gov.create_request(engine, "onderzoeker", title="t", applicant_organisation="ORG01", sejn_member=True,
                                 criteria=CRITERIA, entries={"trajectories": ["client", "intervention"]}, members=[],
                                 access_from=date.today(), access_until=date.today() + timedelta(days=30),
                                 catalogue=catalogue)
    gov.submit(engine, request, "onderzoeker")
    gov.start_review(engine, request, "stew")
    for reviewer in ("apo1", "apo2"):
        gov.review(engine, request, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
    gov.decide(engine, request, "stew")

    stack = make_stack(root, workspace_check_seconds="1").start()
    try:
        yield {"url": stack.url, "stack": stack, "root": root, "engine": engine}
    finally:
        stack.stop()


def login(hub, name: str, password: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{hub['url']}/hub/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    data = {"username": name, "password": password, **({"_xsrf": xsrf.group(1)} if xsrf else {})}
    response = session.post(f"{hub['url']}/hub/login?next=", data=data, allow_redirects=False)
    if response.status_code == 302:
        hub["stack"].sessions[name] = session
    return session


def api(hub, method: str, path: str) -> requests.Response:
    """The hub's REST API as the user named in `path` (/users/<name>...), in the session of their last login."""
    return hub["stack"].api(path.split("/")[2], method, path)


def test_ldj_accounts_log_in_and_wrong_passwords_do_not(hub):
    ok = login(hub, "praktijk", PASSWORD)
    assert any(c.name.startswith("jupyterhub-session") or c.name == "jupyterhub-hub-login" for c in ok.cookies)
    bad = login(hub, "praktijk", "fout")
    assert not any(c.name == "jupyterhub-hub-login" for c in bad.cookies)
    groups = set(api(hub, "GET", "/users/praktijk").json()["groups"])
    assert {"role-member", "org-ORG01"} <= groups


def test_roles_and_projects_become_groups_at_login(hub):
    login(hub, "onderzoeker", PASSWORD)
    groups = set(api(hub, "GET", "/users/onderzoeker").json()["groups"])
    assert {"role-researcher", "org-ORG01", "project-1"} <= groups


@pytest.mark.parametrize("name", ["zonderproject", "praktijk"])
def test_no_workspace_without_an_active_project_even_through_the_rest_api(hub, name):
    login(hub, name, PASSWORD)
    response = api(hub, "POST", f"/users/{name}/server")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        model = api(hub, "GET", f"/users/{name}").json()
        if not model["servers"] or not model["servers"].get("", {}).get("pending"):
            break
        time.sleep(0.5)
    assert not model["servers"], (response.status_code, response.text, model["servers"])
    assert "Geen actief, goedgekeurd project" in (hub["root"] / "hub.log").read_text()


def test_a_researcher_with_a_project_gets_a_workspace_with_the_catalogue(hub):
    login(hub, "onderzoeker", PASSWORD)
    response = api(hub, "POST", "/users/onderzoeker/server")
    assert response.status_code in (201, 202), response.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        model = api(hub, "GET", "/users/onderzoeker").json()
        if model["servers"].get("", {}).get("ready"):
            break
        time.sleep(0.5)
    assert model["servers"][""]["ready"], (hub["root"] / "hub.log").read_text()[-3000:]
    catalogue = hub["stack"].home("onderzoeker") / "ldj-catalogus.yaml"
    text = catalogue.read_text()
    assert "trajectories" in text and "cbcl" not in text and "JUPYTERHUB_API_TOKEN" in text
    assert api(hub, "DELETE", "/users/onderzoeker/server").status_code in (202, 204)
    json.dumps(model)


def test_revoking_the_grant_stops_the_running_workspace_and_logs_it(hub):
    import sqlalchemy as sa

    engine = hub["engine"]
    login(hub, "onderzoeker", PASSWORD)
    assert api(hub, "POST", "/users/onderzoeker/server").status_code in (201, 202)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not api(hub, "GET", "/users/onderzoeker").json()["servers"].get("", {}).get("ready"):
        time.sleep(0.5)
    for grant in gov.active_grants(engine, "onderzoeker"):
        gov.revoke_grant(engine, grant.id, "stew")
    deadline = time.monotonic() + 30  # the check runs every LDJ_WORKSPACE_CHECK_SECONDS (1 s here)
    while time.monotonic() < deadline and api(hub, "GET", "/users/onderzoeker").json()["servers"]:
        time.sleep(0.5)
    assert not api(hub, "GET", "/users/onderzoeker").json()["servers"]
    with engine.connect() as conn:
        stops = conn.execute(sa.select(store.access_log).where(store.access_log.c.outcome == "stopped",
                                                              store.access_log.c.user_name == "onderzoeker")).all()
    assert len(stops) == 1
