"""ldj/policy.py: the one access policy, walked as an attacker would (issue 12 points 1, 7 and 10).

The access matrix: for every action in `policy.RULES` and every column of the role × action table
(the anonymous visitor, each role, an inactive account), the real domain operation the action guards is
called by a fresh account of that column, on an object the account has nothing to do with and on one it
made or works on (the relations of the table). Whether it was refused is compared with the table's cell.
Actions that guard only a page, an endpoint, the data service or the hub go through `policy.check`
here; their HTTP routes are walked by the portal, data-service and hub tests.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ldj import governance as gov
from ldj import airlock, policy, registry, safe, store
from ldj import vraagbank as vb
from ldj.hub import hub_groups
from ldj.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = {"trajectories": {"trajectory", "client", "intervention"}}
ENTRIES = {"trajectories": ["trajectory", "intervention"]}
CRITERIA = {k: "Een volledig uitgewerkt antwoord op dit criterium." for k in gov.CRITERIA}
REPORT = "Wat dit betekent voor de praktijk: teams bespreken de CBCL bij de start met elk gezin, en vaker."
SUMMARY = "Een onderzoek onder gezinshuisouders naar werkdruk, steun en het besluit om te stoppen."
BODY = "Wij zien in ons team dat jongeren met een LVB vaker uitvallen. Werkt MST voor hen even goed?"
VISITOR, INACTIVE = "visitor", "inactive"
COLUMNS = (*policy.COLUMNS, INACTIVE)
OBJECT_RELATIONS = {"gepubliceerd", "ingediend"}  # facts about the object: they hold for visitors too


def today() -> date:
    return date.today()


class World:
    """A store with the people every scenario needs, and fresh objects on demand."""

    def __init__(self, engine):
        self.engine = engine
        self.counter = itertools.count(1)
        add = gov.add_user
        add(engine, "olga", display_name="Olga Onderzoeker", organisation="ORG01", roles=["researcher"])
        add(engine, "pia", display_name="Pia Praktijk", organisation="ORG03", roles=["member"])
        add(engine, "sam", display_name="Sam Student", organisation="Hogeschool Utrecht", roles=["student"])
        add(engine, "steve", display_name="Steve Steward", organisation="SEJN", roles=["steward"])
        add(engine, "rev1", display_name="Rev One", organisation="RUG", roles=["apo"])
        add(engine, "rev2", display_name="Rev Two", organisation="VU", roles=["apo"])
        add(engine, "chk1", display_name="Check One", organisation="CBS", roles=["checker"])
        add(engine, "chk2", display_name="Check Two", organisation="UvA", roles=["checker"])

    def account(self, column: str) -> str | None:
        """A fresh account of `column` (an inactive one holds every role until it is deactivated)."""
        if column == VISITOR:
            return None
        name = f"{column}{next(self.counter)}"
        roles = list(policy.ROLES) if column == INACTIVE else [column]
        gov.add_user(self.engine, name, display_name=f"Naam van {name}", organisation=f"Org-{name}", roles=roles)
        return name

    @contextmanager
    def roles(self, name: str | None, *extra: str):
        """`name` holds `extra` roles for the setup only (a person whose roles changed since)."""
        if name is None:
            yield
            return
        before = gov.get_user(self.engine, name).roles
        gov.set_roles(self.engine, name, [*before, *extra])
        try:
            yield
        finally:
            gov.set_roles(self.engine, name, before)

    # --- data requests and projects ---
    def request(self, applicant: str = "olga", members: tuple[str, ...] = (), stage: str = gov.DRAFT) -> int:
        with ExitStack() as researchers:  # the applicant and members are researchers when they apply
            for name in (applicant, *members):
                researchers.enter_context(self.roles(name, policy.RESEARCHER))
            rid = gov.create_request(self.engine, applicant, title="MST en LVB", applicant_organisation="ORG01",
                                     sejn_member=True, criteria=CRITERIA, entries=ENTRIES, members=list(members),
                                     access_from=today() - timedelta(days=1), access_until=today() + timedelta(days=60),
                                     catalogue=CATALOGUE)
            if stage != gov.DRAFT:
                gov.submit(self.engine, rid, applicant)
        if stage in (gov.IN_REVIEW, "voted", gov.APPROVED):
            gov.start_review(self.engine, rid, "steve")
        if stage in ("voted", gov.APPROVED):
            for reviewer in ("rev1", "rev2"):
                gov.review(self.engine, rid, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
        if stage == gov.APPROVED:
            gov.decide(self.engine, rid, "steve")
        return rid

    def project(self, applicant: str = "olga", members: tuple[str, ...] = ()) -> int:
        return gov.get_request(self.engine, self.request(applicant, members, gov.APPROVED)).project_id

    def join(self, project_id: int, name: str) -> None:
        """`name` joins the project by an approved amendment of its applicant, olga."""
        with self.roles(name, policy.RESEARCHER):
            amendment = gov.create_amendment(self.engine, project_id, "olga", add_members=[name], reason="Erbij")
            gov.submit(self.engine, amendment, "olga")
        gov.start_review(self.engine, amendment, "steve")
        for reviewer in ("rev1", "rev2"):
            gov.review(self.engine, amendment, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
        gov.decide(self.engine, amendment, "steve")

    # --- the airlock ---
    def release(self, project_id: int | None = None, stage: str = airlock.SUBMITTED, public: bool = False) -> int:
        """A release request of olga's (in `project_id`, else a new project), taken to `stage` by chk1 and chk2."""
        pid = project_id or self.project()
        folder = Path(tempfile.mkdtemp(prefix="ldj-policy-release-"))
        acro = safe.OutputSession(folder)
        acro.crosstab(pd.Series(["MST", "IAG"] * 40, name="interventie"), pd.Series(["m"] * 80, name="geslacht"))
        acro.finalise()
        rid = airlock.submit(self.engine, "olga", pid, folder, title="Tabel", description="Trajecten per interventie",
                             public=[o["name"] for o in acro.outputs()] if public else ())
        if stage != airlock.SUBMITTED:
            self.review(rid, ("chk1", "chk2"))
        if stage == airlock.RELEASED:
            airlock.decide(self.engine, rid, "chk1", airlock.APPROVED)
            airlock.release(self.engine, rid, "chk1")
        return rid

    def review(self, rid: int, checkers: tuple[str, ...]) -> None:
        for checker in checkers:
            if checker not in airlock.get_release(self.engine, rid, "steve").reviewers:
                airlock.claim(self.engine, rid, checker)
        for checker in checkers:
            for f in airlock.get_release(self.engine, rid, "steve").files:
                airlock.review_file(self.engine, rid, checker, f.file, airlock.APPROVE, public=True)

    # --- the Vraagbank and the registry ---
    def question(self, asker: str = "pia", published: bool = True) -> int:
        with self.roles(asker, policy.MEMBER):
            qid = vb.post(self.engine, asker, "Werkt MST even goed bij een LVB?", BODY, "approach")
        if published:
            vb.publish(self.engine, "steve", qid)
        return qid

    def pickup(self, qid: int, by: str = "sam", request_id: int | None = None) -> vb.Pickup:
        with self.roles(by, policy.STUDENT):
            return vb.pick_up(self.engine, by, qid, kind="student", institution="Hogeschool Utrecht",
                              supervisor="Dr. Bakker", planned_from=today(), planned_until=today() + timedelta(days=90),
                              request_id=request_id)

    def study(self, by: str = "pia") -> int:
        with self.roles(by, policy.MEMBER):
            return registry.register(self.engine, by, title="Werkdruk bij gezinshuisouders", organisation="ORG03",
                                     summary=SUMMARY, starts=today())


@pytest.fixture
def world(settings, monkeypatch):
    monkeypatch.setenv("LDJ_DATA_DIR", str(settings.data_dir))  # the hub's login reads the same store
    monkeypatch.setenv("LDJ_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield World(store.get_engine(settings))
    get_settings.cache_clear()


# --- the scenarios: per action, an operation on an unrelated object and on related ones ----------------

@dataclass(frozen=True)
class Scenario:
    relations: frozenset[str]  # the table's relation words that hold between the actor and the object
    setup: Callable[[World, str | None], Callable[[], object]]  # (world, actor) -> the operation
    first: str | None = None  # an action checked before this one when the actor cannot own the prerequisite


def plain(setup, *relations: str) -> Scenario:
    return Scenario(frozenset(relations), setup)


def related(setup, *relations: str, first: str | None = None) -> Scenario:
    return Scenario(frozenset(relations), setup, first)


def listed(found: bool) -> None:
    """A list that filters by the policy: leaving the object out is its refusal."""
    if not found:
        raise policy.Refused("not listed")


def _review(w, who):
    rid = w.request(stage=gov.IN_REVIEW)
    return lambda: (gov.review(w.engine, rid, who, {i: 3 for i in range(1, 7)}, {}, None),
                    gov.queue_for_reviewer(w.engine, who))


def _view_request(rid_of):
    def setup(w, who):
        rid = rid_of(w, who)
        return lambda: (gov.request_for(w.engine, rid, who),
                        listed(rid in [r.id for r in gov.requests_for(w.engine, who)]))
    return setup


def _view_question(qid_of):
    def setup(w, who):
        qid = qid_of(w, who)
        return lambda: (vb.get_question(w.engine, qid, who),
                        listed(qid in [q.id for q in vb.list_questions(w.engine, who, status=vb.STATUSES)]))
    return setup


def _asker_name(qid_of):
    def setup(w, who):
        qid = qid_of(w, who)
        return lambda: listed(vb.get_question(w.engine, qid, who).asker is not None)
    return setup


def _shown(w, name):
    gov.set_show_name(w.engine, name, True, by=name)
    return name


def _decide(w, who):
    rid = w.release()

    def op():
        airlock.claim(w.engine, rid, who)
        w.review(rid, ("chk1", who))
        airlock.decide(w.engine, rid, who, airlock.APPROVED)
        airlock.release(w.engine, rid, who)
    return op


def _download(release_of):
    def setup(w, who):
        rid = release_of(w, who)
        name = airlock.get_release(w.engine, rid, "steve").files[0].file
        return lambda: airlock.download(w.engine, rid, name, who)
    return setup


def _link(request_of):
    def setup(w, who):
        pickup = w.pickup(w.question(), who or "sam")
        rid = request_of(w, who)
        return lambda: vb.link_request(w.engine, who, pickup.id, rid)
    return setup


DOMAIN: dict[str, list[Scenario]] = {
    "user.manage": [plain(lambda w, who: lambda: (  # by=None is the operator at the console: a visitor is not
        gov.deactivate(w.engine, w.account("member"), by=who or policy.VISITOR),
        gov.set_roles(w.engine, "sam", ["student"], by=who or policy.VISITOR)))],
    "user.preferences": [
        plain(lambda w, who: lambda: gov.set_show_name(w.engine, "olga", False, by=who or policy.VISITOR)),
        related(lambda w, who: lambda: gov.set_show_name(w.engine, who or "olga", True, by=who or policy.VISITOR),
                "eigen")],
    "request.create": [plain(lambda w, who: lambda: gov.create_request(
        w.engine, who, title="Eigen aanvraag", applicant_organisation="ORG01", sejn_member=True, criteria=CRITERIA,
        entries=ENTRIES, members=[], access_from=today(), access_until=today() + timedelta(days=9),
        catalogue=CATALOGUE))],
    "request.edit": [
        plain(lambda w, who: (lambda rid: lambda: gov.update_request(w.engine, rid, who, title="Gewijzigd"))(
            w.request())),
        related(lambda w, who: (lambda rid: lambda: (gov.update_request(w.engine, rid, who, title="Gewijzigd"),
                                                     gov.submit(w.engine, rid, who)))(w.request(who or "olga")),
                "eigen", first="request.create"),
    ],
    "request.view": [
        plain(_view_request(lambda w, who: w.request())),
        plain(_view_request(lambda w, who: w.request(stage=gov.SUBMITTED)), "ingediend"),
        related(_view_request(lambda w, who: w.request(members=(who,)) if who else w.request()), "betrokken",
                first="request.view"),
    ],
    "request.start_review": [plain(lambda w, who: (lambda rid: lambda: gov.start_review(w.engine, rid, who))(
        w.request(stage=gov.SUBMITTED)))],
    "request.review": [plain(_review)],
    "request.decide": [plain(lambda w, who: (lambda rid: lambda: gov.decide(w.engine, rid, who))(
        w.request(stage="voted")))],
    "request.amend": [
        plain(lambda w, who: (lambda pid: lambda: gov.create_amendment(
            w.engine, pid, who, extend_until=today() + timedelta(days=400), reason="Meer tijd nodig"))(w.project())),
        related(lambda w, who: (lambda pid: lambda: gov.create_amendment(
            w.engine, pid, who, extend_until=today() + timedelta(days=400), reason="Meer tijd nodig"))(
            w.project(members=(who,) if who else ())), "betrokken", first="request.amend"),
    ],
    "project.view": [
        plain(lambda w, who: (lambda pid: lambda: listed(pid in [p.id for p in gov.projects_for(w.engine, who)]))(
            w.project())),
        related(lambda w, who: (lambda pid: lambda: listed(pid in [p.id for p in gov.projects_for(w.engine, who)]))(
            w.project(members=(who,) if who else ())), "betrokken", first="project.view"),
    ],
    "project.close": [
        plain(lambda w, who: (lambda pid: lambda: gov.close_project(w.engine, pid, who, REPORT))(w.project())),
        related(lambda w, who: (lambda pid: lambda: gov.close_project(w.engine, pid, who, REPORT))(
            w.project(who or "olga")), "eigen", first="project.close"),
    ],
    "grant.revoke": [plain(lambda w, who: (lambda pid: lambda: (
        gov.revoke_grant(w.engine, gov.project_grants(w.engine, pid)[0].id, who),
        gov.revoke_user(w.engine, pid, "olga", who)))(w.project()))],
    "question.view": [
        plain(_view_question(lambda w, who: w.question(published=False))),
        plain(_view_question(lambda w, who: w.question()), "gepubliceerd"),
        related(_view_question(lambda w, who: w.question(who or "pia", published=False)), "eigen",
                first="question.post"),
    ],
    "question.post": [plain(lambda w, who: lambda: vb.post(w.engine, who, "Een nieuwe vraag", BODY, "outcome"))],
    "question.edit": [
        plain(lambda w, who: (lambda qid: lambda: vb.update_question(w.engine, who, qid, title="Een betere titel"))(
            w.question())),
        related(lambda w, who: (lambda qid: lambda: vb.update_question(w.engine, who, qid, title="Een betere titel"))(
            w.question(who or "pia", published=False)), "eigen", first="question.post"),
    ],
    "question.triage": [plain(lambda w, who: (lambda a, b, c: lambda: (
        vb.publish(w.engine, who, a), vb.decline(w.engine, who, b, "Geen onderzoeksvraag, maar een casus."),
        vb.merge_duplicate(w.engine, who, c, a)))(*(w.question(published=False) for _ in range(3))))],
    "question.vote": [
        plain(lambda w, who: (lambda qid: lambda: (vb.vote(w.engine, who, qid), vb.unvote(w.engine, who, qid)))(
            w.question()), "niet eigen"),
        related(lambda w, who: (lambda qid: lambda: vb.vote(w.engine, who, qid))(w.question(who or "pia")), "eigen",
                first="question.post"),
    ],
    "question.comment": [plain(lambda w, who: (lambda qid: lambda: vb.comment(w.engine, who, qid, "Mee eens!"))(
        w.question()))],
    "question.comment_hide": [plain(lambda w, who: (lambda c: lambda: vb.hide_comment(w.engine, who, c.id))(
        vb.comment(w.engine, "pia", w.question(), "Een reactie")))],
    "question.pick_up": [plain(lambda w, who: (lambda qid: lambda: vb.pick_up(
        w.engine, who, qid, kind="researcher", institution="UU", supervisor=None, planned_from=today(),
        planned_until=today() + timedelta(days=30)))(w.question()))],
    "question.pickup_manage": [
        plain(lambda w, who: (lambda p: lambda: vb.withdraw_pickup(w.engine, who, p.id))(w.pickup(w.question()))),
        related(lambda w, who: (lambda p: lambda: vb.withdraw_pickup(w.engine, who, p.id))(
            w.pickup(w.question(), who or "sam")), "eigen", first="question.pickup_manage"),
    ],
    "question.link_request": [
        related(_link(lambda w, who: w.request()), first="question.pickup_manage"),
        related(_link(lambda w, who: w.request(who or "olga")), "betrokken", first="question.pickup_manage"),
    ],
    "question.answer": [
        plain(lambda w, who: (lambda qid: lambda: vb.answer(w.engine, who, qid, "Ja.", "https://hu.nl/verslag"))(
            (lambda q: (w.pickup(q), q)[1])(w.question()))),
        related(lambda w, who: (lambda qid: lambda: vb.answer(w.engine, who, qid, "Ja.", "https://hu.nl/verslag"))(
            (lambda q: (w.pickup(q, who or "sam"), q)[1])(w.question())), "betrokken", first="question.answer"),
    ],
    "question.mine": [plain(lambda w, who: lambda: vb.my_questions(w.engine, who))],
    "question.export": [plain(lambda w, who: lambda: vb.export_csv(w.engine, who))],
    "question.queue": [plain(lambda w, who: lambda: vb.triage_queue(w.engine, who))],
    "person.see_name": [
        plain(_asker_name(lambda w, who: w.question())),
        plain(_asker_name(lambda w, who: w.question(_shown(w, w.account("member")))), "gepubliceerd"),
        related(_asker_name(lambda w, who: w.question(who or "pia")), "betrokken", first="person.see_name"),
        related(_asker_name(lambda w, who: (lambda q: (w.pickup(q, who or "sam"), q)[1])(w.question())), "betrokken",
                first="person.see_name"),
    ],
    "release.review": [
        plain(lambda w, who: (lambda rid: lambda: airlock.claim(w.engine, rid, who))(w.release()), "niet betrokken"),
        related(lambda w, who: (lambda rid: lambda: airlock.claim(w.engine, rid, who))(
            w.release(w.project(members=(who,) if who else ()))), first="release.review"),
    ],
    "release.decide": [related(_decide, "niet betrokken", first="release.review")],
    "release.download": [
        plain(_download(lambda w, who: w.release(stage=airlock.RELEASED))),
        plain(_download(lambda w, who: w.release(stage=airlock.RELEASED, public=True)), "gepubliceerd"),
        related(_download(lambda w, who: w.release(w.project(members=(who,) if who else ()), airlock.RELEASED)),
                "betrokken", first="release.download"),
    ],
    "study.register": [plain(lambda w, who: lambda: registry.register(
        w.engine, who, title="Eigen onderzoek", organisation="ORG01", summary=SUMMARY, starts=today()))],
    "study.edit": [
        plain(lambda w, who: (lambda sid: lambda: registry.finish(w.engine, who, sid, REPORT))(w.study())),
        related(lambda w, who: (lambda sid: lambda: (registry.finish(w.engine, who, sid, REPORT),
                                                     registry.remove(w.engine, who, sid)))(w.study(who or "pia")),
                "eigen", first="study.edit"),
    ],
}

# actions whose domain operation belongs to another area (figures, audit, CKAN) or that guard only a page,
# an endpoint, the data service or the hub: `policy.check` with the facts the caller will pass
TARGETS: dict[str, list[tuple[frozenset[str], Callable[[policy.Actor], policy.Target]]]] = {
    "owner": [(frozenset(), lambda a: policy.Target(owner="someone-else")),
              (frozenset({"eigen"}), lambda a: policy.Target(owner=a.name))],
    "own_organisation": [(frozenset(), lambda a: policy.Target(organisation="ORG99")),
                         (frozenset({"eigen organisatie"}), lambda a: policy.Target(organisation=a.organisation))],
    "project": [(frozenset(), lambda a: policy.Target(project=999)),
                (frozenset({"project"}), lambda a: policy.Target(project=min(a.projects, default=-1)))],
    "member_of": [(frozenset(), lambda a: policy.Target(owner="someone-else", members=frozenset({"x"}))),
                  (frozenset({"betrokken"}), lambda a: policy.Target(owner="x", members=frozenset({a.name})))],
    "published": [(frozenset(), lambda a: policy.Target()),
                  (frozenset({"gepubliceerd"}), lambda a: policy.Target(public=True))],
    "submitted": [(frozenset(), lambda a: policy.Target()),
                  (frozenset({"ingediend"}), lambda a: policy.Target(submitted=True))],
    "not_member": [(frozenset(), lambda a: policy.Target(owner=a.name)),
                   (frozenset(), lambda a: policy.Target(owner="x", members=frozenset({a.name}))),
                   (frozenset({"niet betrokken"}), lambda a: policy.Target(owner="x", members=frozenset({"y"}),
                                                                           project=999))],
    "has_project": [(frozenset(), lambda a: policy.Target()),
                    (frozenset({"met project"}), lambda a: policy.Target())],
}


def _relation_of(rule: policy.Rule) -> str | None:
    relations = {c.partition(":")[2] for c in rule.clauses} - {""}
    assert len(relations) <= 1, f"{rule.action}: add scenarios for several relations"
    return relations.pop() if relations else None


def test_every_action_has_a_scenario():
    for action, rule in policy.RULES.items():
        assert action in DOMAIN or _relation_of(rule) in (None, *TARGETS), action


def _expected(cell: str, relations: frozenset[str], column: str) -> bool:
    held = relations if column not in (VISITOR, INACTIVE) else relations & OBJECT_RELATIONS
    return cell == "ja" or bool(held & set(cell.split(", ")))


def _outcome(action: str, scenario: Scenario, op: Callable[[], object]) -> bool | str:
    """True: done; False: refused (by this action, or the prerequisite `first`); a string: a wrong error."""
    try:
        op()
    except policy.Refused as refused:
        if refused.action in (action, scenario.first) or str(refused) == "not listed":
            return False
        return f"refused by {refused.action}"
    except gov.NotFound:
        return False if action.startswith(("question.", "person.")) else "NotFound"  # hidden, not leaked
    except Exception as exc:  # noqa: BLE001 - reported as a mismatch with its type
        return f"{type(exc).__name__}: {exc}"
    return True


def test_the_access_matrix_of_the_domain(world):
    """Every domain action, every role, the visitor and an inactive account: refused exactly as the table says."""
    cells = {row.action: {**row.cells, INACTIVE: row.cells[VISITOR]} for row in policy.table()}
    mismatches = []
    for action, scenarios in DOMAIN.items():
        for scenario, column in itertools.product(scenarios, COLUMNS):
            who = world.account(column)
            op = scenario.setup(world, who)
            if column == INACTIVE:
                gov.deactivate(world.engine, who)
            expected = _expected(cells[action][column], scenario.relations, column)
            got = _outcome(action, scenario, op)
            if got is not expected:
                mismatches.append(f"{action} {column} {sorted(scenario.relations)}: expected "
                                  f"{'allowed' if expected else 'refused'}, got {got}")
    assert mismatches == []


def test_the_access_matrix_of_pages_endpoints_and_services(world):
    """The other actions through `policy.check`, with actors read from the store as the edges build them."""
    pid = world.project()
    cells = {row.action: {**row.cells, INACTIVE: row.cells[VISITOR]} for row in policy.table()}
    mismatches = []
    for action, rule in policy.RULES.items():
        if action in DOMAIN:
            continue
        targets = TARGETS.get(_relation_of(rule) or "", [(frozenset(), lambda a: policy.Target())])
        for (relations, target_of), column in itertools.product(targets, COLUMNS):
            who = world.account(column)
            if who is not None and relations & {"project", "met project"}:
                world.join(pid, who)
            if column == INACTIVE:
                gov.deactivate(world.engine, who)
            actor = policy.actor_for(world.engine, who)
            got = _outcome(action, Scenario(relations, None), lambda: policy.check(actor, action, target_of(actor)))
            expected = _expected(cells[action][column], relations, column)
            if got is not expected:
                mismatches.append(f"{action} {column} {sorted(relations)}: expected "
                                  f"{'allowed' if expected else 'refused'}, got {got}")
    assert mismatches == []


# --- grants that expire, are revoked, or whose account is deactivated ------------------------------------

def test_expired_revoked_and_deactivated_grants_end_access(world):
    engine = world.engine
    for name in ("bob", "carl", "dina"):
        gov.add_user(engine, name, display_name=name.title(), organisation="ORG01", roles=["researcher"])
    pid = world.project(members=("bob", "carl", "dina"))
    ends = gov.get_project(engine, pid).ends
    on_project = policy.Target(project=pid)

    def may_read(name, on=None):
        actor = policy.actor_for(engine, name, on)
        return policy.allows(actor, "extract.read", on_project), policy.allows(actor, "workspace.start")

    assert may_read("bob") == (True, True) and f"project-{pid}" in hub_groups("bob")
    assert may_read("bob", ends + timedelta(days=1)) == (False, False)  # expired the day after the end
    assert may_read("bob", today() - timedelta(days=2)) == (False, False)  # not started yet

    gov.revoke_user(engine, pid, "carl", "steve")
    assert may_read("carl") == (False, False) and f"project-{pid}" not in hub_groups("carl")
    with pytest.raises(policy.Refused) as refused:  # and with it, the project's amendments and lists
        gov.create_amendment(engine, pid, "carl", extend_until=ends + timedelta(days=9), reason="Ik wil terug")
    assert refused.value.action == "request.amend"
    assert pid not in [p.id for p in gov.projects_for(engine, "carl")]

    gov.deactivate(engine, "dina")
    assert may_read("dina") == (False, False) and hub_groups("dina") == []
    actor = policy.actor_for(engine, "dina")
    assert not actor.active and policy.permitted(actor, policy.RULES) == {
        a for a, r in policy.RULES.items() if policy.PUBLIC in r.clauses}
    with pytest.raises(policy.Refused, match="niet actief"):
        gov.request_for(engine, gov.get_project(engine, pid).request_id, "dina")

    gov.close_project(engine, pid, "olga", REPORT)  # a closed project ends every grant
    assert may_read("bob") == (False, False) and may_read("olga") == (False, False)


def test_the_hub_groups_are_the_actor(world):
    pid = world.project()
    actor = policy.actor_for(world.engine, "olga")
    assert hub_groups("olga") == actor.groups() == ["role-researcher", "org-ORG01", f"project-{pid}"]
    assert policy.actor_from_groups("olga", hub_groups("olga")) == actor
    assert hub_groups("nobody") == [] and policy.actor_for(world.engine, "nobody").active is False


# --- the check itself ---------------------------------------------------------------------------------

def test_unknown_actions_raise_and_every_refusal_names_its_action():
    with pytest.raises(ValueError, match="unknown action"):
        policy.check(policy.VISITOR, "page.nope")
    with pytest.raises(ValueError, match="unknown action"):
        policy.allows(policy.Actor("x", frozenset(policy.ROLES)), "nope")
    for action in policy.RULES:
        for actor in (policy.VISITOR, policy.Actor("x"), policy.Actor("y", frozenset(policy.ROLES), active=False)):
            try:
                policy.check(actor, action, policy.Target())
            except policy.Refused as refused:
                assert refused.action == action and str(refused)
    assert not hasattr(gov, "PermissionDenied")  # one refusal type, no second name


def test_a_visitor_is_asked_to_log_in_and_an_inactive_account_is_told_so():
    with pytest.raises(policy.Refused, match="Log in"):
        policy.check(policy.VISITOR, "question.post")
    with pytest.raises(policy.Refused, match="niet actief"):
        policy.check(policy.Actor("x", frozenset({policy.MEMBER}), active=False), "question.post")
    with pytest.raises(policy.Refused, match="geen toegang"):
        policy.check(policy.Actor("x", frozenset({policy.APO})), "question.post")


def test_refined_rules():
    """Where the real rules differ from a first guess, as the domain enforces them."""
    apo, researcher = policy.Actor("a", frozenset({policy.APO})), policy.Actor("r", frozenset({policy.RESEARCHER}))
    assert not policy.allows(apo, "request.view", policy.Target(owner="x"))  # a draft is the applicant's
    assert policy.allows(apo, "request.view", policy.Target(owner="x", submitted=True))
    assert not policy.allows(policy.Actor("a", frozenset({policy.APO})), "project.close", policy.Target(owner="a"))
    assert policy.allows(researcher, "project.close", policy.Target(owner="r"))
    assert policy.allows(researcher, "question.answer", policy.Target(members=frozenset({"r"})))  # picked it up
    assert not policy.allows(researcher, "question.answer", policy.Target(members=frozenset({"x"})))
    assert policy.allows(policy.VISITOR, "person.see_name", policy.Target(owner="x", public=True))


# --- the table in docs/security.md ------------------------------------------------------------------------

def test_the_table_in_docs_security_is_the_modules():
    document = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert "Wie mag wat (role × action)" in document
    assert policy.with_table(document) == document, "run: ldj policy table --update docs/security.md"
    table = document[document.index(policy.TABLE_START):document.index(policy.TABLE_END)]
    assert sum(line.startswith("| `") for line in table.splitlines()) == len(policy.RULES)


def test_ldj_policy_table_prints_and_updates_the_table(tmp_path):
    from click.testing import CliRunner

    from ldj.cli import main

    runner = CliRunner()
    printed = runner.invoke(main, ["policy", "table"])
    assert printed.exit_code == 0 and printed.output == policy.table_markdown()
    document = tmp_path / "security.md"
    document.write_text("# Security\n\n<!-- policy-table -->\nold\n<!-- /policy-table -->\n\nMore.\n")
    assert runner.invoke(main, ["policy", "table", "--update", str(document)]).exit_code == 0
    assert document.read_text() == f"# Security\n\n<!-- policy-table -->\n{policy.table_markdown()}" \
                                   "<!-- /policy-table -->\n\nMore.\n"
    document.write_text("no markers")
    refused = runner.invoke(main, ["policy", "table", "--update", str(document)])
    assert refused.exit_code == 1 and "policy-table" in refused.output


def test_no_permission_logic_outside_the_policy():
    """The domain modules ask `policy.check`; none decides by a role of its own or raises a refusal itself."""
    import re

    by_role = re.compile(r"""has_role\(\s*(["']|[A-Z_]+\b|policy\.)""")
    for module in ("governance", "vraagbank", "registry", "indicators", "factsheet", "hub", "portal/visitor"):
        source = (ROOT / "ldj" / f"{module}.py").read_text(encoding="utf-8")
        assert not by_role.search(source), module
        assert "PermissionDenied(" not in source and "Refused(" not in source, module
        assert not re.search(r"""(?<![A-Z_])ROLES\s*=\s*\(""", source), module  # roles are defined once, in ldj.policy
