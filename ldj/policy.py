"""The one access policy: roles, the actor of a request, the actions, and the one check.

Every permission decision in the LDJ goes through `check` (or `allows`, its yes/no twin): domain
operations, portal pages, plain endpoints, data-service routes and the hub's spawner. A refusal is
always `Refused`; the web edges turn it into 403 "U heeft geen toegang". Workflow rules (a request
must be submitted before review) and input checks are not permissions: they stay in the domain with
their own errors.

An action's rule is a list of clauses `"role"` or `"role:relation"` (`*` any logged-in role,
`public` anyone, including visitors without login). A clause holds when the actor has the role and
the relation holds between the actor and the `Target` (the object acted on, described by the
caller with the facts the relation needs). `docs/security.md` shows the table (`ldj policy table`
regenerates it); `tests/test_policy.py` walks it.

Roles are defined here once. The hub's groups are the one source at run time: `role-<role>`,
`org-<organisation>` and `project-<id>` groups, synced from the LDJ accounts (or the login's claims)
at every login, become the `Actor`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from .i18n import t

if TYPE_CHECKING:  # sqlalchemy is imported where the store is read, so the CLI starts fast
    import sqlalchemy as sa

# --- roles -----------------------------------------------------------------------------------

RESEARCHER = "researcher"
APO = "apo"
STEWARD = "steward"
MEMBER = "member"
STUDENT = "student"
CHECKER = "checker"  # output checker of the airlock
ROLES: tuple[str, ...] = (RESEARCHER, APO, STEWARD, MEMBER, STUDENT, CHECKER)
ROLE_LABELS = {  # the table's column heads and the pages' words for a role
    RESEARCHER: ("onderzoeker", "researcher"), APO: ("APO-lid", "APO member"),
    STEWARD: ("databeheerder", "data steward"), MEMBER: ("lid (praktijk)", "member (practice)"),
    STUDENT: ("student", "student"), CHECKER: ("uitvoercontroleur", "output checker"),
}
ANY = "*"  # any logged-in role
PUBLIC = "public"  # anyone, no login needed

ROLE_GROUP = "role-"
ORGANISATION_GROUP = "org-"
PROJECT_GROUP = "project-"


class Refused(PermissionError):
    """The one refusal. `action` names the rule that refused; the message is for people."""

    def __init__(self, message: str, action: str | None = None):
        super().__init__(message)
        self.action = action


# --- the actor ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Actor:
    """Who acts: built once per request (from the hub's groups, or from the store for the CLI)."""

    name: str | None
    roles: frozenset[str] = frozenset()
    organisation: str | None = None
    projects: frozenset[int] = frozenset()  # projects with an active grant today
    active: bool = True

    @property
    def anonymous(self) -> bool:
        return self.name is None

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    def groups(self) -> list[str]:
        """The hub groups that carry this actor (the inverse of `actor_from_groups`); none when inactive."""
        if not self.active:
            return []
        groups = [f"{ROLE_GROUP}{r}" for r in sorted(self.roles)]
        if self.organisation:
            groups.append(f"{ORGANISATION_GROUP}{self.organisation}")
        return groups + [f"{PROJECT_GROUP}{p}" for p in sorted(self.projects)]


VISITOR = Actor(None)


def actor_from_groups(name: str | None, groups: Iterable[str] | None) -> Actor:
    """The actor a hub login carries: roles, organisation and projects from its groups."""
    if not name:
        return VISITOR
    groups = list(groups or ())
    roles = frozenset(g[len(ROLE_GROUP):] for g in groups if g.startswith(ROLE_GROUP)) & set(ROLES)
    organisations = sorted(g[len(ORGANISATION_GROUP):] for g in groups if g.startswith(ORGANISATION_GROUP))
    projects = frozenset(int(g[len(PROJECT_GROUP):]) for g in groups
                         if g.startswith(PROJECT_GROUP) and g[len(PROJECT_GROUP):].isdigit())
    return Actor(name, roles, organisations[0] if organisations else None, projects)


def actor_for(engine: sa.Engine | sa.Connection, name: str | None, on: date | None = None) -> Actor:
    """The actor of an LDJ account as the store has it now (CLI, hub login, services).

    An unknown account is an actor without roles; an inactive one is marked so and refused everything
    but public actions. `engine` may be an open connection (inside a domain transaction)."""
    import sqlalchemy as sa

    from .store import grants, projects, users  # the schema only; no domain module

    if not name:
        return VISITOR
    on = on or date.today()

    def read(conn: sa.Connection) -> Actor:
        row = conn.execute(sa.select(users.c.roles, users.c.organisation, users.c.active)
                           .where(users.c.name == name)).first()
        if row is None:
            return Actor(name, active=False)
        active_projects = conn.execute(
            sa.select(grants.c.project_id).distinct().join(projects, projects.c.id == grants.c.project_id)
            .where(grants.c.user_name == name, grants.c.revoked_at.is_(None), grants.c.valid_from <= on,
                   grants.c.valid_until >= on, projects.c.status == "active")).scalars().all()
        return Actor(name, frozenset(row.roles or ()) & set(ROLES), row.organisation, frozenset(active_projects),
                     bool(row.active))

    if isinstance(engine, sa.Connection):
        return read(engine)
    with engine.connect() as conn:
        return read(conn)


def actor_of(engine: sa.Engine | sa.Connection, who: Actor | str | None) -> Actor:
    """`who` as an actor: an `Actor` as given, a login name (None: a visitor) read from the store."""
    return who if isinstance(who, Actor) else actor_for(engine, who)


# --- the target of an action ---------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """The facts about the object acted on that the relations look at; the caller supplies them."""

    owner: str | None = None  # who made it: the applicant, the asker, the registrant, the picker
    organisation: str | None = None  # the organisation it belongs to
    project: int | None = None  # the project it belongs to
    members: frozenset[str] = frozenset()  # the people on it (a request's or project's members)
    public: bool = False  # published for everyone (a published question; a person who shows their name)
    submitted: bool = False  # a data request past its draft (what the APO gets to see)


RELATIONS: dict[str, tuple[Callable[[Actor, Target], bool], str]] = {
    "owner": (lambda a, x: a.name is not None and a.name == x.owner, "eigen"),
    "not_owner": (lambda a, x: a.name is not None and a.name != x.owner, "niet eigen"),
    "member_of": (lambda a, x: a.name is not None and (a.name in x.members or a.name == x.owner
                                                     or (x.project is not None and x.project in a.projects)),
                  "betrokken"),
    "not_member": (lambda a, x: a.name is not None and a.name != x.owner and a.name not in x.members
                   and (x.project is None or x.project not in a.projects), "niet betrokken"),
    "project": (lambda a, x: x.project is not None and x.project in a.projects, "project"),
    "has_project": (lambda a, x: bool(a.projects), "met project"),
    "own_organisation": (lambda a, x: a.organisation is not None and a.organisation == x.organisation,
                         "eigen organisatie"),
    "published": (lambda a, x: x.public, "gepubliceerd"),
    "submitted": (lambda a, x: x.submitted, "ingediend"),
}


# --- the actions and their rules -------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    action: str
    clauses: tuple[str, ...]
    description: str
    kind: str = "domain"  # domain | page | endpoint | data (the data service) | hub

    def holds(self, actor: Actor, target: Target) -> bool:
        for clause in self.clauses:
            role, _, relation = clause.partition(":")
            if role == PUBLIC:
                pass
            elif actor.anonymous or not actor.active:
                continue
            elif role != ANY and role not in actor.roles:
                continue
            if not relation or RELATIONS[relation][0](actor, target):
                return True
        return False


def _rules(*rules: Rule) -> dict[str, Rule]:
    table = {r.action: r for r in rules}
    assert len(table) == len(rules), "an action is defined twice"
    for r in rules:
        for clause in r.clauses:
            role, _, relation = clause.partition(":")
            assert role in (*ROLES, ANY, PUBLIC), f"{r.action}: unknown role {role!r}"
            assert not relation or relation in RELATIONS, f"{r.action}: unknown relation {relation!r}"
    return table


RULES: dict[str, Rule] = _rules(
    # portal pages
    Rule("page.home", (PUBLIC,), "startpagina", "page"),
    Rule("page.factsheet", (PUBLIC,), "factsheet (HTML, PDF, JSON)", "page"),
    Rule("page.catalogue", (PUBLIC,), "catalogus en haalbaarheidstellingen", "page"),
    Rule("page.vraagbank", (PUBLIC,), "Vraagbank: gepubliceerde vragen", "page"),
    Rule("page.registry", (PUBLIC,), "onderzoeksregister", "page"),
    Rule("page.dashboard", (MEMBER, STEWARD), "dashboards", "page"),
    Rule("page.requests", (RESEARCHER, STEWARD), "eigen data-aanvragen", "page"),
    Rule("page.apo", (APO, STEWARD), "APO-beoordeling", "page"),
    Rule("page.releases", (ANY,), "uitvoer vrijgeven: eigen projecten, controleurs de wachtrij", "page"),
    Rule("page.session", (PUBLIC,), "taal kiezen en uitloggen", "endpoint"),
    # accounts
    Rule("user.manage", (STEWARD,), "accounts aanmaken, rollen geven, deactiveren"),
    Rule("user.preferences", (f"{ANY}:owner",), "eigen voorkeuren (naam tonen)"),
    Rule("notification.read", (ANY,), "eigen meldingen lezen"),
    # data requests and projects (governance)
    Rule("request.create", (RESEARCHER,), "data-aanvraag opstellen"),
    Rule("request.edit", (f"{RESEARCHER}:owner",), "eigen aanvraag wijzigen en indienen"),
    Rule("request.view", (STEWARD, f"{APO}:submitted", f"{ANY}:member_of"),
         "aanvraag inzien (APO: na indienen)"),
    Rule("request.start_review", (STEWARD,), "aanvraag in beoordeling nemen"),
    Rule("request.review", (APO,), "aanvraag beoordelen en stemmen"),
    Rule("request.decide", (STEWARD,), "besluit vastleggen"),
    Rule("request.amend", (f"{RESEARCHER}:member_of",), "wijziging van een project aanvragen"),
    Rule("project.view", (STEWARD, f"{ANY}:member_of"), "project inzien"),
    Rule("project.close", (STEWARD, f"{RESEARCHER}:owner"), "project afsluiten met eindverslag (aanvrager)"),
    Rule("grant.revoke", (STEWARD,), "toegang intrekken"),
    # the Vraagbank
    Rule("question.view", (PUBLIC + ":published", STEWARD, f"{ANY}:owner"), "vraag inzien"),
    Rule("question.post", (MEMBER,), "vraag stellen"),
    Rule("question.edit", (STEWARD, f"{MEMBER}:owner"), "vraag wijzigen"),
    Rule("question.triage", (STEWARD,), "vraag publiceren, samenvoegen of afwijzen"),
    Rule("question.vote", (f"{MEMBER}:not_owner",), "stemmen op een vraag"),
    Rule("question.comment", (ANY,), "reageren op een vraag"),
    Rule("question.comment_hide", (STEWARD,), "reactie verbergen (en verborgen reacties zien)"),
    Rule("question.pick_up", (RESEARCHER, STUDENT), "vraag oppakken voor onderzoek"),
    Rule("question.pickup_manage", (STEWARD, f"{ANY}:owner"), "eigen oppakking koppelen of intrekken"),
    Rule("question.link_request", (STEWARD, f"{ANY}:member_of"),
         "data-aanvraag aan een oppakking koppelen (eigen aanvraag)"),
    Rule("question.answer", (STEWARD, f"{ANY}:member_of"), "antwoord terugleggen (wie de vraag oppakte)"),
    Rule("question.mine", (ANY,), "eigen vragen, stemmen en oppakkingen"),
    Rule("question.export", (STEWARD,), "alle vragen als CSV", "endpoint"),
    Rule("question.queue", (STEWARD,), "vragen die wachten op triage"),
    Rule("person.see_name", (STEWARD, f"{ANY}:member_of", f"{PUBLIC}:published"),
         "naam van een persoon zien (anders rol en instelling; gepubliceerd: die persoon toont de naam)"),
    # the airlock (ldj.airlock): a project's checked outputs leave only as a reviewed release
    Rule("release.submit", (f"{ANY}:project",), "uitvoer ter vrijgave indienen (project met toekenning)"),
    Rule("release.view", (STEWARD, CHECKER, f"{ANY}:member_of"),
         "vrijgaveverzoek inzien (projectleden, controleurs)"),
    Rule("release.withdraw", (f"{ANY}:owner",), "eigen vrijgaveverzoek intrekken"),
    Rule("release.verdicts", (STEWARD, f"{ANY}:member_of"),
         "oordelen van de controleurs zien (projectleden: na het besluit)"),
    Rule("release.review", (f"{CHECKER}:not_member",),
         "uitvoer beoordelen als een van twee controleurs (niet de auteur, geen projectlid)"),
    Rule("release.decide", (f"{CHECKER}:not_member",),
         "vrijgaveverzoek teruggeven, goedkeuren, afwijzen of vrijgeven (een van de twee controleurs)"),
    Rule("release.download", (STEWARD, f"{ANY}:member_of", f"{PUBLIC}:published"),
         "vrijgegeven uitvoer downloaden (projectleden; iedereen als openbaar)", "endpoint"),
    # the research registry
    Rule("study.register", (MEMBER, RESEARCHER, STUDENT, STEWARD), "eigen onderzoek registreren"),
    Rule("study.edit", (STEWARD, f"{ANY}:owner"), "geregistreerd onderzoek afronden of verwijderen"),
    # figures
    Rule("figures.own_organisation", (STEWARD, f"{MEMBER}:own_organisation"),
         "cijfers van de eigen organisatie en teams"),
    Rule("figures.all_organisations", (STEWARD,), "cijfers van elke organisatie herkenbaar"),
    Rule("feasibility.count", (PUBLIC,), "haalbaarheidstelling (afgerond, onderdrukt)", "endpoint"),
    # person-level data
    Rule("extract.read", (f"{ANY}:project",), "extract van een toegekend item lezen", "data"),
    Rule("grants.list", (ANY,), "eigen toekenningen zien", "data"),
    Rule("workspace.start", (f"{ANY}:has_project",), "werkomgeving starten", "hub"),
    Rule("audit.read", (STEWARD,), "toegangslog lezen"),
    Rule("quarantine.read", (STEWARD,), "quarantaine lezen en exporteren"),
    Rule("catalogue.publish", (STEWARD,), "catalogus publiceren (CKAN)"),
    Rule("deployment.warnings", (STEWARD,), "waarschuwingen over de inrichting zien (gedeelde accounts)"),
)


# --- the check ---------------------------------------------------------------------------------------

def rule(action: str) -> Rule:
    try:
        return RULES[action]
    except KeyError:
        raise ValueError(f"unknown action {action!r}: add a row to ldj.policy.RULES") from None


def allows(actor: Actor, action: str, target: Target | None = None) -> bool:
    return rule(action).holds(actor, target or Target())


def check(actor: Actor, action: str, target: Target | None = None, language: str | None = None) -> None:
    """Refuse (`Refused`) unless `actor` may do `action` on `target`."""
    if allows(actor, action, target):
        return
    if actor.anonymous and not allows(Actor("-", frozenset(ROLES)), action, target):
        key = "policy_refused"
    elif actor.anonymous:
        key = "policy_login_needed"
    elif not actor.active:
        key = "policy_inactive"
    else:
        key = "policy_refused"
    raise Refused(t(key, language, name=actor.name or "-", action=rule(action).description), action)


def permitted(actor: Actor, actions: Iterable[str], target: Target | None = None) -> frozenset[str]:
    """Of `actions`, those `actor` may do on `target` (for showing only the buttons that work)."""
    return frozenset(a for a in actions if allows(actor, a, target))


@dataclass(frozen=True)
class TableRow:
    action: str
    kind: str
    description: str
    cells: dict[str, str] = field(default_factory=dict)  # column (visitor or role) -> "ja", "—" or relations


COLUMNS = ("visitor", *ROLES)


def table() -> list[TableRow]:
    """The role × action table: what each role may do, and under which relation."""
    rows = []
    for r in RULES.values():
        cells = {}
        for column in COLUMNS:
            conditions = []
            for clause in r.clauses:
                role, _, relation = clause.partition(":")
                if role == PUBLIC or (column != "visitor" and role in (ANY, column)):
                    conditions.append(RELATIONS[relation][1] if relation else "ja")
            cells[column] = "ja" if "ja" in conditions else (", ".join(dict.fromkeys(conditions)) or "—")
        rows.append(TableRow(r.action, r.kind, r.description, cells))
    return rows


def table_markdown() -> str:
    heads = ["handeling", "soort", "wat", "bezoeker", *(ROLE_LABELS[r][0] for r in ROLES)]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for row in table():
        lines.append("| " + " | ".join([f"`{row.action}`", row.kind, row.description,
                                         *(row.cells[c] for c in COLUMNS)]) + " |")
    return "\n".join(lines) + "\n"


TABLE_START = "<!-- policy-table -->"
TABLE_END = "<!-- /policy-table -->"


def with_table(document: str) -> str:
    """`document` (docs/security.md) with the table between its markers regenerated from RULES."""
    head, start, rest = document.partition(TABLE_START)
    _, end, tail = rest.partition(TABLE_END)
    if not start or not end:
        raise ValueError(f"the document needs the markers {TABLE_START} and {TABLE_END}")
    return f"{head}{TABLE_START}\n{table_markdown()}{TABLE_END}{tail}"

