"""Governance: accounts and the APO data-request workflow (brief section 4), projects and grants.

The domain layer under the `ldj apo` CLI, the portal pages and the JupyterHub authenticator; no web or
CLI code here. Every function takes a SQLAlchemy engine and runs in one transaction
(`engine.begin()`), so a transition, its audit event and its consequences (a project, grants) land
together or not at all. Times are timezone-aware UTC.

Workflow (`WORKFLOW`, declared on the engine of `ldj.workflow`; each step names the policy action
that allows it)::

    draft -> submitted                                       request.edit
    submitted -> in_review                                   request.start_review
    in_review -> revision_requested | approved | approved_with_conditions | rejected
                                                             request.decide
    revision_requested -> submitted                          request.edit (resubmission; the next in_review
                                                             opens a new round)
    approved | approved_with_conditions -> closed            project.close (close_project, with a final report)

Each step and each new request is an event in the append-only `request_events` (actor, time, note) and
an entry in the access log (`ldj.audit`), in the same transaction. A step the workflow does not allow
from the current status is `WorkflowError` (naming both statuses).

Who does what (the rules are `ldj.policy.RULES`, checked with `policy.check`; a refusal is
`policy.Refused`): the applicant (role `researcher`) creates, edits and submits; a steward moves submitted
requests into review, records the decision, revokes grants; reviewers (role `apo`) score the six
criteria and vote. Functions take the actor as a login name (read from the store at the call) or a
`policy.Actor`. The decision follows a `DecisionRule` (default: majority of votes cast); the steward
cannot override it. A reviewer from the applicant's organisation, the applicant or a (project) member
has a conflict of interest: they may score and comment but not vote.

The review round is not stored on the request: round n is the n-th move into `in_review`, counted from
the append-only `request_events`, so it cannot drift from the audit trail.

Access is evaluated at read time: `active_grants` checks validity dates, revocation, the project's
status and the user's account on every call, so revocation and expiry take effect at the next read.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import sqlalchemy as sa

from . import policy, workflow
from .i18n import TEXTS, t
from .settings import get_settings
from .store import (
    data_requests,
    grants,
    projects,
    request_entries,
    request_events,
    request_members,
    reviews,
    users,
)
from .workflow import Transition, WorkflowError

# --- texts (to move into ldj/i18n.py TEXTS; keys are used unchanged) ---------------------------



def _t(key: str, **fields: Any) -> str:
    return t(key, **fields)


def status_label(status: str) -> str:
    """A status for people: its label in the configured language, with its code when they differ."""
    key = f"gov_status_{status}"
    label = _t(key) if key in TEXTS else status
    return f"'{status}'" if label == status else f"'{label}' ({status})"


# --- vocabulary ------------------------------------------------------------------------------

ROLES = policy.ROLES  # defined once, in ldj.policy
CRITERIA = ("aim_question", "fit_with_aims", "answerable_with_ldj", "analyses", "practical_relevance", "researchers")
AMENDMENT_REASON = "amendment_reason"  # an amendment's criteria: the project's six answers plus the reason
VOTES = ("approve", "approve_with_conditions", "revise", "reject")

DRAFT = "draft"
SUBMITTED = "submitted"
IN_REVIEW = "in_review"
REVISION_REQUESTED = "revision_requested"
APPROVED = "approved"
APPROVED_WITH_CONDITIONS = "approved_with_conditions"
REJECTED = "rejected"
CLOSED = "closed"
STATUSES = (DRAFT, SUBMITTED, IN_REVIEW, REVISION_REQUESTED, APPROVED, APPROVED_WITH_CONDITIONS, REJECTED, CLOSED)
DECISIONS = (REVISION_REQUESTED, APPROVED, APPROVED_WITH_CONDITIONS, REJECTED)
APPROVING = (APPROVED, APPROVED_WITH_CONDITIONS)
EDITABLE = (DRAFT, REVISION_REQUESTED)

WORKFLOW = workflow.Workflow(  # who may take each step: the policy action's rule
    name="request", table=data_requests, events=request_events, object_column="request_id",
    states=STATUSES, initial=DRAFT,
    transitions=(
        Transition(DRAFT, SUBMITTED, "request.edit"),
        Transition(SUBMITTED, IN_REVIEW, "request.start_review"),
        *(Transition(IN_REVIEW, decision, "request.decide") for decision in DECISIONS),
        Transition(REVISION_REQUESTED, SUBMITTED, "request.edit"),  # resubmission
        Transition(APPROVED, CLOSED, "project.close"),
        Transition(APPROVED_WITH_CONDITIONS, CLOSED, "project.close"),
    ),
    label=status_label, illegal_text="gov_illegal_transition", changed_text="gov_changed_meanwhile",
    any_of_text="gov_a_decision",
)

NEW = "new"
AMENDMENT = "amendment"
PROJECT_ACTIVE = "active"
PROJECT_CLOSED = "closed"

DEFAULT_RULE = "majority"
DEFAULT_MIN_VOTES = 2
DEFAULT_FINAL_REPORT_MIN_CHARS = 50

# scrypt at OWASP's recommended cost (N=2^17, r=8, p=1: 128 MiB, ~0.3 s); N is the setting
# LDJ_PASSWORD_HASH_COST (log2 N; the tests hash at 2^10). Parameters are stored in each hash, so
# changing them later leaves existing hashes verifiable.
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SCRYPT_MAXMEM = 512 * 1024 * 1024


# --- errors ----------------------------------------------------------------------------------

# Base of every refusal here; the message is for people, in the configured language. It is the
# workflow engine's base, so that `WorkflowError` (defined there, re-exported here) is one too.
GovernanceError = workflow.DomainError


class ValidationError(GovernanceError, ValueError):
    """The input is incomplete or wrong (unknown entry, missing criterion, no fee, ...)."""


class NotFound(GovernanceError, LookupError):
    pass



class ConflictOfInterest(GovernanceError):
    """A reviewer with a conflict of interest tried to vote."""


class DecisionError(GovernanceError):
    """The decision cannot be taken: too few votes, conditions missing or not applicable."""


# --- records ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    name: str
    display_name: str | None
    email: str | None
    organisation: str | None
    roles: tuple[str, ...]
    active: bool
    created_at: datetime
    show_name: bool = False  # the person chose to show their name to everyone (else: role and organisation)

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Request:
    id: int
    kind: str  # new | amendment
    project_id: int | None  # an amendment's project; for a new request, its project once approved
    title: str
    applicant: str
    applicant_organisation: str
    sejn_member: bool
    fee_eur: Decimal | None
    criteria: dict[str, str]
    entries: dict[str, list[str]]
    members: list[str]  # for a new request the applicant included; for an amendment the people it adds
    access_from: date | None
    access_until: date | None  # for an amendment: the requested new end date, or None
    status: str
    decision: str | None
    conditions: str | None
    round: int  # 0 before the first review; n during and after the n-th review round
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Review:
    id: int
    request_id: int
    round: int
    reviewer: str
    scores: dict[int, int]
    comments: dict[int, str]
    vote: str | None  # None: an abstention (always so for a reviewer with a conflict of interest)
    comment: str | None
    submitted_at: datetime


@dataclass(frozen=True)
class Event:
    id: int
    request_id: int
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str | None


@dataclass(frozen=True)
class Project:
    id: int
    request_id: int
    title: str
    status: str
    starts: date
    ends: date
    salt: str
    final_report: str | None
    closed_at: datetime | None


@dataclass(frozen=True)
class Grant:
    id: int
    project_id: int
    user_name: str
    entry: str
    variables: tuple[str, ...]
    valid_from: date
    valid_until: date
    revoked_at: datetime | None
    revoked_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class Decision:
    request_id: int
    status: str  # one of DECISIONS
    tally: dict[str, int]  # votes cast in the deciding round, per vote
    project_id: int | None  # the project created (new request) or amended (amendment) on approval


# --- helpers ---------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def _today() -> date:
    return _now().date()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _setting(name: str, default: Any) -> Any:
    return getattr(get_settings(), name, default)


def _user_from_row(row: Any) -> User:
    return User(name=row.name, display_name=row.display_name, email=row.email, organisation=row.organisation,
                roles=tuple(row.roles or ()), active=bool(row.active), created_at=_aware(row.created_at),
                show_name=bool(row.show_name))


def _load_user(conn: sa.Connection, name: str) -> User:
    row = conn.execute(sa.select(users).where(users.c.name == name)).first()
    if row is None:
        raise NotFound(_t("gov_unknown_user", name=name))
    return _user_from_row(row)


def _may(engine: sa.Engine | sa.Connection, who: policy.Actor | str | None, action: str,
         target: policy.Target | None = None) -> policy.Actor:
    """The actor, once it may do `action` on `target` (else `policy.Refused`)."""
    actor = policy.actor_of(engine, who)
    policy.check(actor, action, target)
    return actor


def _request_target(conn: sa.Connection, request: Request) -> policy.Target:
    """A request as the policy sees it: its applicant, the people on it and on its project."""
    people = set(request.members)
    if request.project_id is not None:
        people |= _project_members(conn, request.project_id)
    return policy.Target(owner=request.applicant, organisation=request.applicant_organisation,
                         project=request.project_id, members=frozenset(people), submitted=request.status != DRAFT)


def _project_target(conn: sa.Connection, project: Project) -> policy.Target:
    """A project as the policy sees it: its applicant (who leads it) and its members."""
    applicant = conn.execute(sa.select(data_requests.c.applicant)
                             .where(data_requests.c.id == project.request_id)).scalar()
    return policy.Target(owner=applicant, project=project.id, members=frozenset(_project_members(conn, project.id)))


def _check_roles(roles: Iterable[str]) -> list[str]:
    roles = list(dict.fromkeys(roles))
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValidationError(_t("gov_bad_roles", roles=", ".join(unknown), allowed=", ".join(ROLES)))
    return roles


def _round(conn: sa.Connection, request_id: int) -> int:
    return conn.execute(
        sa.select(sa.func.count()).select_from(request_events)
        .where(request_events.c.request_id == request_id, request_events.c.to_status == IN_REVIEW)
    ).scalar_one()


def _load_request(conn: sa.Connection, request_id: int, *, lock: bool = False) -> Request:
    query = sa.select(data_requests).where(data_requests.c.id == request_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(_t("gov_unknown_request", id=request_id))
    entries = {
        r.entry: list(r.variables)
        for r in conn.execute(sa.select(request_entries).where(request_entries.c.request_id == request_id)
                              .order_by(request_entries.c.entry))
    }
    members = list(conn.execute(
        sa.select(request_members.c.user_name).where(request_members.c.request_id == request_id)
        .order_by(request_members.c.user_name)
    ).scalars())
    return Request(
        id=row.id, kind=row.kind, project_id=row.project_id, title=row.title, applicant=row.applicant,
        applicant_organisation=row.applicant_organisation, sejn_member=bool(row.sejn_member),
        fee_eur=Decimal(row.fee_eur) if row.fee_eur is not None else None, criteria=dict(row.criteria or {}),
        entries=entries, members=members, access_from=row.access_from, access_until=row.access_until,
        status=row.status, decision=row.decision, conditions=row.conditions, round=_round(conn, request_id),
        created_at=_aware(row.created_at), updated_at=_aware(row.updated_at),
    )


def _load_project(conn: sa.Connection, project_id: int, *, lock: bool = False) -> Project:
    query = sa.select(projects).where(projects.c.id == project_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(_t("gov_unknown_project", id=project_id))
    return Project(id=row.id, request_id=row.request_id, title=row.title, status=row.status, starts=row.starts,
                   ends=row.ends, salt=row.salt, final_report=row.final_report, closed_at=_aware(row.closed_at))


def _grant_from_row(row: Any) -> Grant:
    return Grant(id=row.id, project_id=row.project_id, user_name=row.user_name, entry=row.entry,
                 variables=tuple(row.variables), valid_from=row.valid_from, valid_until=row.valid_until,
                 revoked_at=_aware(row.revoked_at), revoked_by=row.revoked_by, created_at=_aware(row.created_at))


# --- accounts --------------------------------------------------------------------------------

def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` (salt and hash in hex) with a fresh random salt."""
    if not password:
        raise ValidationError(_t("gov_password_empty"))
    salt = secrets.token_bytes(16)
    n = 2 ** get_settings().password_hash_cost
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            maxmem=SCRYPT_MAXMEM, dklen=SCRYPT_DKLEN)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches a stored `scrypt$...` hash; constant-time comparison."""
    try:
        scheme, n, r, p, salt, expected = (stored or "").split("$")
        if scheme != "scrypt":
            return False
        expected_bytes = bytes.fromhex(expected)
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                maxmem=SCRYPT_MAXMEM, dklen=len(expected_bytes))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected_bytes)


_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_hex(16))
    return _DUMMY_HASH


def add_user(engine: sa.Engine, name: str, *, display_name: str, organisation: str | None, roles: Iterable[str],
             email: str | None = None, password: str | None = None, show_name: bool = False,
             by: policy.Actor | str | None = None) -> User:
    """A new account. `by`: who does it (a steward); None: the operator at the console (`ldj users`)."""
    if by is not None:
        _may(engine, by, "user.manage")
    name = (name or "").strip()
    if not name:
        raise ValidationError(_t("gov_user_name_empty"))
    roles = _check_roles(roles)
    password_hash = hash_password(password) if password is not None else None
    with engine.begin() as conn:
        if conn.execute(sa.select(users.c.name).where(users.c.name == name)).first() is not None:
            raise ValidationError(_t("gov_user_exists", name=name))
        conn.execute(sa.insert(users).values(name=name, display_name=display_name, email=email,
                                             organisation=organisation, roles=roles, password_hash=password_hash,
                                             active=True, show_name=bool(show_name), created_at=_now()))
        return _load_user(conn, name)


def get_user(engine: sa.Engine, name: str) -> User:
    with engine.connect() as conn:
        return _load_user(conn, name)


def list_users(engine: sa.Engine, *, role: str | None = None, active_only: bool = False) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.name)).all()
    found = [_user_from_row(r) for r in rows]
    return [u for u in found if (role is None or u.has_role(role)) and (u.active or not active_only)]


def set_roles(engine: sa.Engine, name: str, roles: Iterable[str], *, by: policy.Actor | str | None = None) -> User:
    if by is not None:
        _may(engine, by, "user.manage")
    roles = _check_roles(roles)
    with engine.begin() as conn:
        _load_user(conn, name)
        conn.execute(sa.update(users).where(users.c.name == name).values(roles=roles))
        return _load_user(conn, name)


def set_password(engine: sa.Engine, name: str, password: str, *, by: policy.Actor | str | None = None) -> None:
    if by is not None:
        _may(engine, by, "user.manage")
    password_hash = hash_password(password)
    with engine.begin() as conn:
        _load_user(conn, name)
        conn.execute(sa.update(users).where(users.c.name == name).values(password_hash=password_hash))


def deactivate(engine: sa.Engine, name: str, *, by: policy.Actor | str | None = None) -> User:
    """The account can no longer log in, act, or read data (its grants stop being active)."""
    if by is not None:
        _may(engine, by, "user.manage")
    with engine.begin() as conn:
        _load_user(conn, name)
        conn.execute(sa.update(users).where(users.c.name == name).values(active=False))
        return _load_user(conn, name)


def set_show_name(engine: sa.Engine, name: str, show: bool, *, by: policy.Actor | str | None = None) -> User:
    """Whether others (visitors, people outside one's projects) see one's name, or a role and organisation.
    The person's own choice: `by` must be that person; None: the operator at the console."""
    if by is not None:
        _may(engine, by, "user.preferences", policy.Target(owner=name))
    with engine.begin() as conn:
        _load_user(conn, name)
        conn.execute(sa.update(users).where(users.c.name == name).values(show_name=bool(show)))
        return _load_user(conn, name)


# --- names: who sees a person's name, and what the others see ------------------------------------

LABEL_ROLES = (policy.MEMBER, policy.RESEARCHER, policy.STUDENT, policy.APO, policy.STEWARD)  # first held names a person


def role_label(role: str, organisation: str | None, language: str | None = None) -> str:
    """A person without their name: "een student van Hogeschool Utrecht"."""
    noun = t(f"person_role_{role}", language) if f"person_role_{role}" in TEXTS else role
    if organisation:
        return t("person_label", language, role=noun, organisation=organisation)
    return t("person_label_bare", language, role=noun)


def person_label(viewer: policy.Actor, person: User | None, *, role: str | None = None,
                 organisation: str | None = None, members: Iterable[str] = (), project: int | None = None,
                 language: str | None = None) -> tuple[str | None, str]:
    """(the login name or None, the label to show) of `person` for `viewer` (policy `person.see_name`).

    The name when the viewer may see it: the person, a steward, someone in the same circle (`members`, the
    people working on the same question or project, or a member of `project`), or anyone when the person
    chose to show it (`show_name`). Otherwise their `role` (default: the first of LABEL_ROLES they hold)
    and `organisation` (default: theirs)."""
    if person is None:
        return None, role_label(role or policy.MEMBER, organisation, language)
    target = policy.Target(owner=person.name, members=frozenset(members), project=project, public=person.show_name)
    if policy.allows(viewer, "person.see_name", target):
        return person.name, person.display_name or person.name
    role = role or next((r for r in LABEL_ROLES if person.has_role(r)), policy.MEMBER)
    return None, role_label(role, organisation if organisation is not None else person.organisation, language)


def users_by_name(conn: sa.Connection, names: Iterable[str | None]) -> dict[str, User]:
    names = {n for n in names if n}
    if not names:
        return {}
    return {r.name: _user_from_row(r) for r in conn.execute(sa.select(users).where(users.c.name.in_(names)))}


def check_password(engine: sa.Engine, name: str, password: str) -> bool:
    """True only for an active user whose stored hash matches. Unknown users cost the same time."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(users.c.password_hash, users.c.active).where(users.c.name == name)).first()
    if row is None or row.password_hash is None:
        verify_password(_dummy_hash(), password or "")
        return False
    return verify_password(row.password_hash, password or "") and bool(row.active)


# --- validation of a request's content ---------------------------------------------------------

def _check_criteria_keys(criteria: Mapping[str, Any], *, allow_reason: bool = False) -> dict[str, str]:
    allowed = CRITERIA + ((AMENDMENT_REASON,) if allow_reason else ())
    unknown = [k for k in criteria if k not in allowed]
    if unknown:
        raise ValidationError(_t("gov_criteria_unknown", keys=", ".join(map(str, unknown)),
                                 allowed=", ".join(CRITERIA)))
    return {k: ("" if v is None else str(v)) for k, v in criteria.items()}


def _check_entries(entries: Mapping[str, Iterable[str]], catalogue: Mapping[str, Collection[str]] | None
                   ) -> dict[str, list[str]]:
    """Entries and their variables, checked against the catalogue (entry id -> variable names)."""
    cleaned: dict[str, list[str]] = {}
    if entries and catalogue is None:
        raise ValidationError(_t("gov_catalogue_needed"))
    for entry, variables in entries.items():
        if isinstance(variables, str):
            variables = [variables]
        variables = list(dict.fromkeys(variables or ()))
        if entry not in catalogue:
            raise ValidationError(_t("gov_unknown_entry", entry=entry))
        if not variables:
            raise ValidationError(_t("gov_no_variables", entry=entry))
        known = catalogue[entry]
        unknown = [v for v in variables if v not in known]
        if unknown:
            raise ValidationError(_t("gov_unknown_variables", entry=entry, variables=", ".join(unknown)))
        cleaned[entry] = variables
    return cleaned


def _check_members(conn: sa.Connection, names: Iterable[str]) -> list[str]:
    """People who will work with the data: active researchers (a fact about them, not a permission)."""
    names = list(dict.fromkeys(n.strip() for n in names))
    for name in names:
        _load_user(conn, name)  # NotFound for an unknown name
        if not policy.allows(policy.actor_for(conn, name), "request.create"):  # inactive, or not a researcher
            raise ValidationError(_t("gov_not_a_researcher", name=name))
    return names


def _fee(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        fee = Decimal(str(value))
    except InvalidOperation:
        raise ValidationError(_t("gov_bad_fee", fee=value)) from None
    if not fee.is_finite() or fee < 0:
        raise ValidationError(_t("gov_bad_fee", fee=value))
    return fee


def _check_fee(sejn_member: bool, fee: Decimal | None) -> None:
    if sejn_member and fee:
        raise ValidationError(_t("gov_member_no_fee"))


def _check_period(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and start > end:
        raise ValidationError(_t("gov_bad_period", start=start.isoformat(), end=end.isoformat()))


def _check_complete(conn: sa.Connection, request: Request) -> None:
    """Everything a request needs before the APO sees it."""
    if not request.title.strip():
        raise ValidationError(_t("gov_title_empty"))
    missing = [k for k in CRITERIA if not (request.criteria.get(k) or "").strip()]
    if missing:
        raise ValidationError(_t("gov_criteria_missing", keys=", ".join(missing)))
    if not request.sejn_member and not (request.fee_eur and request.fee_eur > 0):
        raise ValidationError(_t("gov_fee_required"))
    _check_fee(request.sejn_member, request.fee_eur)
    _check_members(conn, request.members)
    if request.kind == NEW:
        if not request.entries:
            raise ValidationError(_t("gov_no_entries"))
        if request.access_from is None or request.access_until is None:
            raise ValidationError(_t("gov_no_period"))
        _check_period(request.access_from, request.access_until)
    else:
        project = _load_project(conn, request.project_id)
        if project.status != PROJECT_ACTIVE:
            raise WorkflowError(_t("gov_project_not_active", id=project.id, status=project.status),
                                object_id=request.id, current=request.status)
        if not (request.entries or request.members or request.access_until):
            raise ValidationError(_t("gov_amendment_empty"))
        if not (request.criteria.get(AMENDMENT_REASON) or "").strip():
            raise ValidationError(_t("gov_amendment_reason"))
        if request.access_until is not None and request.access_until <= project.ends:
            raise ValidationError(_t("gov_extend_not_later", until=request.access_until.isoformat(),
                                     ends=project.ends.isoformat()))


def _write_entries(conn: sa.Connection, request_id: int, entries: Mapping[str, list[str]]) -> None:
    conn.execute(sa.delete(request_entries).where(request_entries.c.request_id == request_id))
    if entries:
        conn.execute(sa.insert(request_entries),
                     [{"request_id": request_id, "entry": e, "variables": v} for e, v in entries.items()])


def _write_members(conn: sa.Connection, request_id: int, members: Iterable[str]) -> None:
    conn.execute(sa.delete(request_members).where(request_members.c.request_id == request_id))
    rows = [{"request_id": request_id, "user_name": m} for m in dict.fromkeys(members)]
    if rows:
        conn.execute(sa.insert(request_members), rows)


# --- requests --------------------------------------------------------------------------------

def create_request(engine: sa.Engine, applicant: str, *, title: str, applicant_organisation: str, sejn_member: bool,
                   criteria: Mapping[str, str], entries: Mapping[str, Iterable[str]], members: Iterable[str],
                   access_from: date | None, access_until: date | None, fee_eur: Any = None,
                   catalogue: Mapping[str, Collection[str]]) -> int:
    """A new data request in status draft; returns its id. The applicant is always a member.

    `catalogue` maps each catalogue entry id to its variable names; unknown entries or variables are
    refused. Completeness (all six criteria, a period, a fee for externals) is checked on submission.
    """
    if not (title or "").strip():
        raise ValidationError(_t("gov_title_empty"))
    if not (applicant_organisation or "").strip():
        raise ValidationError(_t("gov_organisation_empty"))
    criteria = _check_criteria_keys(criteria)
    cleaned_entries = _check_entries(entries, catalogue)
    fee = _fee(fee_eur)
    _check_fee(sejn_member, fee)
    _check_period(access_from, access_until)
    actor = _may(engine, applicant, "request.create")
    applicant = actor.name
    now = _now()
    with engine.begin() as conn:
        member_names = _check_members(conn, [applicant, *members])
        request_id = conn.execute(sa.insert(data_requests).values(
            kind=NEW, project_id=None, title=title.strip(), applicant=applicant,
            applicant_organisation=applicant_organisation.strip(), sejn_member=bool(sejn_member), fee_eur=fee,
            criteria=criteria, access_from=access_from, access_until=access_until, status=DRAFT,
            created_at=now, updated_at=now,
        )).inserted_primary_key[0]
        _write_entries(conn, request_id, cleaned_entries)
        _write_members(conn, request_id, member_names)
        workflow.created(conn, WORKFLOW, request_id, actor, _t("gov_note_created"), at=now)
    return request_id


_UNSET: Any = object()


def update_request(engine: sa.Engine, request_id: int, actor: str, *, title: str = _UNSET,
                   applicant_organisation: str = _UNSET, sejn_member: bool = _UNSET,
                   criteria: Mapping[str, str] = _UNSET, entries: Mapping[str, Iterable[str]] = _UNSET,
                   members: Iterable[str] = _UNSET, access_from: date | None = _UNSET,
                   access_until: date | None = _UNSET, fee_eur: Any = _UNSET,
                   catalogue: Mapping[str, Collection[str]] | None = None) -> Request:
    """Change a request while it is draft or revision_requested; only the applicant may.

    `criteria` is merged key by key; `entries` and `members` replace the previous ones (for an
    amendment: the entries and people it adds; `access_until` is its new end date).
    """
    who = policy.actor_of(engine, actor)
    with engine.begin() as conn:
        request = _load_request(conn, request_id, lock=True)
        policy.check(who, "request.edit", _request_target(conn, request))
        if request.status not in EDITABLE:
            raise WorkflowError(_t("gov_not_editable", id=request_id, current=status_label(request.status)),
                                object_id=request_id, current=request.status)
        values: dict[str, Any] = {}
        if title is not _UNSET:
            if not (title or "").strip():
                raise ValidationError(_t("gov_title_empty"))
            values["title"] = title.strip()
        if applicant_organisation is not _UNSET:
            if not (applicant_organisation or "").strip():
                raise ValidationError(_t("gov_organisation_empty"))
            values["applicant_organisation"] = applicant_organisation.strip()
        if sejn_member is not _UNSET:
            values["sejn_member"] = bool(sejn_member)
        if fee_eur is not _UNSET:
            values["fee_eur"] = _fee(fee_eur)
        _check_fee(values.get("sejn_member", request.sejn_member), values.get("fee_eur", request.fee_eur))
        if criteria is not _UNSET:
            values["criteria"] = {**request.criteria,
                                  **_check_criteria_keys(criteria, allow_reason=request.kind == AMENDMENT)}
        if access_from is not _UNSET:
            values["access_from"] = access_from
        if access_until is not _UNSET:
            values["access_until"] = access_until
        _check_period(values.get("access_from", request.access_from), values.get("access_until", request.access_until))
        if entries is not _UNSET:
            _write_entries(conn, request_id, _check_entries(entries, catalogue))
        if members is not _UNSET:
            if request.kind == NEW:
                _write_members(conn, request_id, _check_members(conn, [request.applicant, *members]))
            else:
                _write_members(conn, request_id, _check_new_members(conn, request.project_id, members))
        values["updated_at"] = _now()
        conn.execute(sa.update(data_requests).where(data_requests.c.id == request_id).values(**values))
        return _load_request(conn, request_id)


def submit(engine: sa.Engine, request_id: int, actor: str, note: str | None = None) -> Request:
    """The applicant submits (draft) or resubmits (revision_requested) a complete request."""
    who = policy.actor_of(engine, actor)
    with engine.begin() as conn:
        request = _load_request(conn, request_id, lock=True)
        target = _request_target(conn, request)
        policy.check(who, "request.edit", target)
        WORKFLOW.check(request_id, request.status, SUBMITTED)
        _check_complete(conn, request)
        workflow.move(conn, WORKFLOW, request_id, SUBMITTED, who, target, note, from_state=request.status,
                      project=request.project_id)
        return _load_request(conn, request_id)


def start_review(engine: sa.Engine, request_id: int, steward: str, note: str | None = None) -> Request:
    """A steward puts a submitted request before the APO; this opens the next review round."""
    actor = _may(engine, steward, "request.start_review")
    with engine.begin() as conn:
        request = _load_request(conn, request_id, lock=True)
        workflow.move(conn, WORKFLOW, request_id, IN_REVIEW, actor, _request_target(conn, request), note,
                      from_state=request.status, project=request.project_id)
        return _load_request(conn, request_id)


def get_request(engine: sa.Engine, request_id: int) -> Request:
    with engine.connect() as conn:
        return _load_request(conn, request_id)


def list_requests(engine: sa.Engine, *, status: str | None = None, applicant: str | None = None,
                  project_id: int | None = None) -> list[Request]:
    query = sa.select(data_requests.c.id).order_by(data_requests.c.id)
    if status is not None:
        query = query.where(data_requests.c.status == status)
    if applicant is not None:
        query = query.where(data_requests.c.applicant == applicant)
    if project_id is not None:
        query = query.where(data_requests.c.project_id == project_id)
    with engine.connect() as conn:
        return [_load_request(conn, i) for i in conn.execute(query).scalars().all()]


def request_for(engine: sa.Engine, request_id: int, actor: policy.Actor | str | None) -> Request:
    """A request as `actor` may see it (`request.view`): applicant, members, project members, APO (once
    submitted), stewards."""
    who = policy.actor_of(engine, actor)
    with engine.connect() as conn:
        request = _load_request(conn, request_id)
        policy.check(who, "request.view", _request_target(conn, request))
        return request


def requests_for(engine: sa.Engine, actor: policy.Actor | str | None, *, status: str | None = None) -> list[Request]:
    """Every request `actor` may see (see `request_for`), oldest first."""
    who = policy.actor_of(engine, actor)
    with engine.connect() as conn:
        query = sa.select(data_requests.c.id).order_by(data_requests.c.id)
        if status is not None:
            query = query.where(data_requests.c.status == status)
        found = [_load_request(conn, i) for i in conn.execute(query).scalars().all()]
        return [r for r in found if policy.allows(who, "request.view", _request_target(conn, r))]


def projects_for(engine: sa.Engine, actor: policy.Actor | str | None) -> list[Project]:
    """The projects `actor` may see (`project.view`: its members, stewards), newest first."""
    who = policy.actor_of(engine, actor)
    with engine.connect() as conn:
        ids = conn.execute(sa.select(projects.c.id).order_by(projects.c.id.desc())).scalars().all()
        found = [_load_project(conn, i) for i in ids]
        return [p for p in found if policy.allows(who, "project.view", _project_target(conn, p))]


def request_history(engine: sa.Engine, request_id: int) -> list[Event]:
    """Every transition of the request, oldest first, with who and when."""
    with engine.connect() as conn:
        _load_request(conn, request_id)
        events = workflow.history(conn, WORKFLOW, request_id)
    return [Event(id=e.id, request_id=e.object_id, from_status=e.from_state, to_status=e.to_state, actor=e.actor,
                  at=e.at, note=e.comment) for e in events]


# --- reviews ---------------------------------------------------------------------------------

def _criterion_number(key: Any) -> int | None:
    try:
        number = int(key)
    except (TypeError, ValueError):
        return None
    return number if 1 <= number <= 6 and str(number) == str(key).strip() else None


def _check_scores(scores: Mapping[Any, Any]) -> dict[str, int]:
    cleaned: dict[str, int] = {}
    for key, value in scores.items():
        number = _criterion_number(key)
        if number is None:
            raise ValidationError(_t("gov_bad_scores", detail=f"criterion {key!r}"))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise ValidationError(_t("gov_bad_scores", detail=f"{number}: {value!r}"))
        cleaned[str(number)] = value
    missing = [str(n) for n in range(1, 7) if str(n) not in cleaned]
    if missing:
        raise ValidationError(_t("gov_bad_scores", detail="missing " + ", ".join(missing)))
    return cleaned


def _check_comments(comments: Mapping[Any, Any] | None) -> dict[str, str]:
    cleaned: dict[str, str] = {}
    for key, value in (comments or {}).items():
        number = _criterion_number(key)
        if number is None:
            raise ValidationError(_t("gov_bad_comments", detail=f"criterion {key!r}"))
        if value is not None and str(value).strip():
            cleaned[str(number)] = str(value)
    return cleaned


def _project_members(conn: sa.Connection, project_id: int) -> set[str]:
    """A project's members: whoever holds a grant in it that is not revoked."""
    return set(conn.execute(
        sa.select(grants.c.user_name).distinct()
        .where(grants.c.project_id == project_id, grants.c.revoked_at.is_(None))
    ).scalars())


def _conflict(conn: sa.Connection, request: Request, reviewer: User) -> str | None:
    """Why `reviewer` may not vote on `request`, or None."""
    if reviewer.name == request.applicant:
        return _t("gov_conflict_applicant")
    own = (reviewer.organisation or "").strip().casefold()
    if own and own == request.applicant_organisation.strip().casefold():
        return _t("gov_conflict_organisation", organisation=request.applicant_organisation)
    people = set(request.members)
    if request.project_id is not None:
        people |= _project_members(conn, request.project_id)
    if reviewer.name in people:
        return _t("gov_conflict_member")
    return None


def conflict_of_interest(engine: sa.Engine, request_id: int, reviewer: str) -> str | None:
    """The reason `reviewer` may not vote on the request (applicant, same organisation, member), or None."""
    with engine.connect() as conn:
        return _conflict(conn, _load_request(conn, request_id), _load_user(conn, reviewer))


def review(engine: sa.Engine, request_id: int, reviewer: str, scores: Mapping[int, int],
           comments: Mapping[int, str] | None, vote: str | None, comment: str | None = None) -> Review:
    """An APO member's review in the current round: a score 1-5 for each of the six criteria, comments
    per criterion, and a vote (None: abstain). A second review in the same round replaces the first.

    A reviewer with a conflict of interest may store a review only with `vote=None`.
    """
    if vote is not None and vote not in VOTES:
        raise ValidationError(_t("gov_bad_vote", vote=vote, allowed=", ".join(VOTES)))
    cleaned_scores = _check_scores(scores)
    cleaned_comments = _check_comments(comments)
    actor = _may(engine, reviewer, "request.review")
    reviewer = actor.name
    with engine.begin() as conn:
        request = _load_request(conn, request_id, lock=True)
        if request.status != IN_REVIEW:
            raise WorkflowError(_t("gov_not_in_review", id=request_id, current=status_label(request.status),
                                   in_review=status_label(IN_REVIEW)), object_id=request_id, current=request.status)
        user = _load_user(conn, reviewer)
        if vote is not None:
            reason = _conflict(conn, request, user)
            if reason is not None:
                raise ConflictOfInterest(_t("gov_conflict_vote", reviewer=reviewer, id=request_id, reason=reason))
        values = dict(scores=cleaned_scores, comments=cleaned_comments, vote=vote, comment=comment,
                      submitted_at=_now())
        key = (reviews.c.request_id == request_id, reviews.c.round == request.round, reviews.c.reviewer == reviewer)
        existing = conn.execute(sa.select(reviews.c.id).where(*key)).scalar()
        if existing is None:
            conn.execute(sa.insert(reviews).values(request_id=request_id, round=request.round, reviewer=reviewer,
                                                   **values))
        else:
            conn.execute(sa.update(reviews).where(reviews.c.id == existing).values(**values))
        return _reviews(conn, request_id, request.round, reviewer)[0]


def _reviews(conn: sa.Connection, request_id: int, round_: int | None, reviewer: str | None = None) -> list[Review]:
    query = sa.select(reviews).where(reviews.c.request_id == request_id).order_by(reviews.c.round, reviews.c.id)
    if round_ is not None:
        query = query.where(reviews.c.round == round_)
    if reviewer is not None:
        query = query.where(reviews.c.reviewer == reviewer)
    return [Review(id=r.id, request_id=r.request_id, round=r.round, reviewer=r.reviewer,
                   scores={int(k): v for k, v in r.scores.items()}, comments={int(k): v for k, v in r.comments.items()},
                   vote=r.vote, comment=r.comment, submitted_at=_aware(r.submitted_at))
            for r in conn.execute(query)]


def list_reviews(engine: sa.Engine, request_id: int, round: int | None = None) -> list[Review]:  # noqa: A002
    """The request's reviews, of one round or (round=None) of all rounds."""
    with engine.connect() as conn:
        _load_request(conn, request_id)
        return _reviews(conn, request_id, round)


def queue_for_reviewer(engine: sa.Engine, reviewer: str) -> list[Request]:
    """Requests in review that `reviewer` has not reviewed in their current round, oldest first."""
    reviewer = _may(engine, reviewer, "request.review").name
    with engine.connect() as conn:
        ids = conn.execute(sa.select(data_requests.c.id).where(data_requests.c.status == IN_REVIEW)
                           .order_by(data_requests.c.id)).scalars().all()
        queue = []
        for request_id in ids:
            request = _load_request(conn, request_id)
            if not _reviews(conn, request_id, request.round, reviewer):
                queue.append(request)
        return queue


# --- decision rules --------------------------------------------------------------------------

class DecisionRule(abc.ABC):
    """Turns the votes cast in a round into one of DECISIONS. Subclasses implement `outcome`."""

    name: ClassVar[str]

    def __init__(self, min_votes: int = DEFAULT_MIN_VOTES):
        if min_votes < 1:
            raise ValidationError(_t("gov_bad_min_votes"))
        self.min_votes = min_votes

    def decide(self, votes: Sequence[str]) -> str:
        votes = list(votes)
        for vote in votes:
            if vote not in VOTES:
                raise ValidationError(_t("gov_bad_vote", vote=vote, allowed=", ".join(VOTES)))
        if len(votes) < self.min_votes:
            raise DecisionError(_t("gov_too_few_votes", votes=len(votes), minimum=self.min_votes))
        return self.outcome(Counter(votes))

    @abc.abstractmethod
    def outcome(self, tally: Counter[str]) -> str: ...

    @staticmethod
    def approval(tally: Counter[str]) -> str:
        """approved, or approved_with_conditions when any approving vote asked for conditions."""
        return APPROVED_WITH_CONDITIONS if tally["approve_with_conditions"] else APPROVED

    def __repr__(self) -> str:
        return f"{type(self).__name__}(min_votes={self.min_votes})"


class MajorityRule(DecisionRule):
    """Most votes cast wins: approving (approve + approve_with_conditions), revise, or reject.

    Any tie for the most votes (approve against reject included) gives revision_requested.
    """

    name = "majority"

    def outcome(self, tally: Counter[str]) -> str:
        groups = {
            "approve": tally["approve"] + tally["approve_with_conditions"],
            "revise": tally["revise"],
            "reject": tally["reject"],
        }
        most = max(groups.values())
        winners = [g for g, n in groups.items() if n == most]
        if len(winners) > 1:
            return REVISION_REQUESTED
        return {"approve": self.approval(tally), "revise": REVISION_REQUESTED, "reject": REJECTED}[winners[0]]


class UnanimousRule(DecisionRule):
    """Approval only when every vote cast approves; rejected when a strict majority rejects;
    otherwise revision_requested."""

    name = "unanimous"

    def outcome(self, tally: Counter[str]) -> str:
        total = sum(tally.values())
        if tally["approve"] + tally["approve_with_conditions"] == total:
            return self.approval(tally)
        if tally["reject"] * 2 > total:
            return REJECTED
        return REVISION_REQUESTED


RULES: dict[str, type[DecisionRule]] = {MajorityRule.name: MajorityRule, UnanimousRule.name: UnanimousRule}


def get_rule(name: str, min_votes: int = DEFAULT_MIN_VOTES) -> DecisionRule:
    """The decision rule registered under `name` (see RULES), requiring `min_votes` votes cast."""
    try:
        return RULES[name](min_votes=min_votes)
    except KeyError:
        raise ValidationError(_t("gov_unknown_rule", name=name, known=", ".join(RULES))) from None


def _resolve_rule(rule: DecisionRule | str | None, min_votes: int | None) -> DecisionRule:
    if isinstance(rule, DecisionRule):
        return rule
    if min_votes is None:
        min_votes = _setting("apo_min_votes", DEFAULT_MIN_VOTES)
    return get_rule(rule or _setting("apo_decision_rule", DEFAULT_RULE), min_votes)


# --- decision, projects, grants ----------------------------------------------------------------

def decide(engine: sa.Engine, request_id: int, steward: str, conditions: str | None = None, *,
           rule: DecisionRule | str | None = None, min_votes: int | None = None,
           note: str | None = None) -> Decision:
    """Apply the decision rule to the votes cast in the current round and record the outcome.

    `rule` is a DecisionRule or its name; by default the settings' `apo_decision_rule` (majority) with
    `apo_min_votes` (2). Conditions are required for, and only accepted with, approved_with_conditions.
    Approval of a new request creates its project and grants; approval of an amendment extends the
    project. All of it in one transaction with the transition.
    """
    decision_rule = _resolve_rule(rule, min_votes)
    conditions = (conditions or "").strip() or None
    actor = _may(engine, steward, "request.decide")
    with engine.begin() as conn:
        request = _load_request(conn, request_id, lock=True)
        if request.status != IN_REVIEW:
            raise WORKFLOW.illegal(request_id, request.status, DECISIONS)
        votes = [r.vote for r in _reviews(conn, request_id, request.round) if r.vote is not None]
        outcome = decision_rule.decide(votes)
        if outcome == APPROVED_WITH_CONDITIONS and conditions is None:
            raise DecisionError(_t("gov_conditions_required", status=status_label(outcome)))
        if outcome != APPROVED_WITH_CONDITIONS and conditions is not None:
            raise DecisionError(_t("gov_conditions_not_applicable", status=status_label(outcome),
                                   awc=status_label(APPROVED_WITH_CONDITIONS)))
        if outcome in APPROVING and request.kind == AMENDMENT:
            project = _load_project(conn, request.project_id, lock=True)
            if project.status != PROJECT_ACTIVE:
                raise WorkflowError(_t("gov_project_not_active", id=project.id, status=project.status),
                                    object_id=request_id, current=request.status, wanted=outcome)
        workflow.move(conn, WORKFLOW, request_id, outcome, actor, _request_target(conn, request), note,
                      from_state=request.status, values={"decision": outcome, "conditions": conditions},
                      project=request.project_id)
        project_id = None
        if outcome in APPROVING:
            project_id = _create_project(conn, request) if request.kind == NEW else _apply_amendment(conn, request)
        return Decision(request_id=request_id, status=outcome, tally=dict(Counter(votes)), project_id=project_id)


def _grant_rows(project_id: int, members: Iterable[str], entries: Mapping[str, Sequence[str]], valid_from: date,
                valid_until: date, now: datetime) -> list[dict[str, Any]]:
    return [{"project_id": project_id, "user_name": m, "entry": e, "variables": list(v), "valid_from": valid_from,
             "valid_until": valid_until, "created_at": now} for m in members for e, v in entries.items()]


def _create_project(conn: sa.Connection, request: Request) -> int:
    now = _now()
    project_id = conn.execute(sa.insert(projects).values(
        request_id=request.id, title=request.title, status=PROJECT_ACTIVE, starts=request.access_from,
        ends=request.access_until, salt=secrets.token_hex(16),
    )).inserted_primary_key[0]
    conn.execute(sa.update(data_requests).where(data_requests.c.id == request.id).values(project_id=project_id))
    rows = _grant_rows(project_id, request.members, request.entries, request.access_from, request.access_until, now)
    if rows:
        conn.execute(sa.insert(grants), rows)
    return project_id


def _project_scope(conn: sa.Connection, project_id: int) -> dict[str, list[str]]:
    """The entries and variables approved for a project: its request plus its approved amendments."""
    scope: dict[str, list[str]] = {}
    rows = conn.execute(
        sa.select(request_entries.c.entry, request_entries.c.variables)
        .join(data_requests, data_requests.c.id == request_entries.c.request_id)
        .where(data_requests.c.project_id == project_id, data_requests.c.status.in_(APPROVING))
        .order_by(data_requests.c.id, request_entries.c.entry)
    )
    for entry, variables in rows:
        scope[entry] = list(dict.fromkeys([*scope.get(entry, []), *variables]))
    return scope


def _apply_amendment(conn: sa.Connection, request: Request) -> int:
    project = _load_project(conn, request.project_id, lock=True)
    now = _now()
    ends = project.ends
    if request.access_until is not None and request.access_until > project.ends:
        ends = request.access_until
        conn.execute(sa.update(projects).where(projects.c.id == project.id).values(ends=ends))
        conn.execute(sa.update(grants).where(grants.c.project_id == project.id, grants.c.revoked_at.is_(None),
                                             grants.c.valid_until == project.ends).values(valid_until=ends))
    since = max(project.starts, now.date())  # added access is not back-dated
    current = sorted(_project_members(conn, project.id))
    added_people = [m for m in request.members if m not in current]
    rows = _grant_rows(project.id, current, request.entries, since, ends, now)
    rows += _grant_rows(project.id, added_people, _project_scope(conn, project.id), since, ends, now)
    if rows:
        conn.execute(sa.insert(grants), rows)
    return project.id


def get_project(engine: sa.Engine, project_id: int) -> Project:
    with engine.connect() as conn:
        return _load_project(conn, project_id)


def project_members(engine: sa.Engine | sa.Connection, project_id: int) -> list[str]:
    """Whoever holds a grant in the project that is not revoked (`engine` may be an open connection)."""
    if isinstance(engine, sa.Connection):
        _load_project(engine, project_id)
        return sorted(_project_members(engine, project_id))
    with engine.connect() as conn:
        _load_project(conn, project_id)
        return sorted(_project_members(conn, project_id))


def project_grants(engine: sa.Engine, project_id: int, *, include_revoked: bool = True) -> list[Grant]:
    query = sa.select(grants).where(grants.c.project_id == project_id).order_by(grants.c.id)
    if not include_revoked:
        query = query.where(grants.c.revoked_at.is_(None))
    with engine.connect() as conn:
        _load_project(conn, project_id)
        return [_grant_from_row(r) for r in conn.execute(query)]


def _check_new_members(conn: sa.Connection, project_id: int, names: Iterable[str]) -> list[str]:
    names = _check_members(conn, names)
    current = _project_members(conn, project_id)
    for name in names:
        if name in current:
            raise ValidationError(_t("gov_already_member", name=name, id=project_id))
    return names


def create_amendment(engine: sa.Engine, project_id: int, applicant: str, *,
                     add_entries: Mapping[str, Iterable[str]] | None = None, add_members: Iterable[str] | None = None,
                     extend_until: date | None = None, reason: str,
                     catalogue: Mapping[str, Collection[str]] | None = None) -> int:
    """An amendment to an active project (more data, people or time) as a draft request of kind
    amendment; it is submitted, reviewed and decided like a new request. Returns its id.

    Its criteria are the project's six answers plus `amendment_reason`; organisation, membership and
    fee are the project's. `catalogue` is needed when `add_entries` is given.
    """
    if not (reason or "").strip():
        raise ValidationError(_t("gov_amendment_reason"))
    if not (add_entries or add_members or extend_until):
        raise ValidationError(_t("gov_amendment_empty"))
    cleaned_entries = _check_entries(add_entries or {}, catalogue)
    now = _now()
    actor = policy.actor_of(engine, applicant)
    applicant = actor.name
    with engine.begin() as conn:
        project = _load_project(conn, project_id)
        policy.check(actor, "request.amend", _project_target(conn, project))
        if project.status != PROJECT_ACTIVE:
            raise WorkflowError(_t("gov_project_not_active", id=project_id, status=project.status))
        if extend_until is not None and extend_until <= project.ends:
            raise ValidationError(_t("gov_extend_not_later", until=extend_until.isoformat(),
                                     ends=project.ends.isoformat()))
        new_members = _check_new_members(conn, project_id, add_members or [])
        original = _load_request(conn, project.request_id)
        request_id = conn.execute(sa.insert(data_requests).values(
            kind=AMENDMENT, project_id=project_id, title=project.title, applicant=applicant,
            applicant_organisation=original.applicant_organisation, sejn_member=original.sejn_member,
            fee_eur=original.fee_eur, criteria={**original.criteria, AMENDMENT_REASON: reason.strip()},
            access_from=None, access_until=extend_until, status=DRAFT, created_at=now, updated_at=now,
        )).inserted_primary_key[0]
        _write_entries(conn, request_id, cleaned_entries)
        _write_members(conn, request_id, new_members)
        workflow.created(conn, WORKFLOW, request_id, actor, _t("gov_note_created"), at=now, project=project_id)
    return request_id


def revoke_grant(engine: sa.Engine, grant_id: int, by: str) -> bool:
    """A steward revokes one grant; True if it was active until now, False if it was already revoked."""
    by = _may(engine, by, "grant.revoke").name
    with engine.begin() as conn:
        row = conn.execute(sa.select(grants).where(grants.c.id == grant_id)).first()
        if row is None:
            raise NotFound(_t("gov_unknown_grant", id=grant_id))
        result = conn.execute(sa.update(grants).where(grants.c.id == grant_id, grants.c.revoked_at.is_(None))
                              .values(revoked_at=_now(), revoked_by=by))
        return result.rowcount == 1


def revoke_user(engine: sa.Engine, project_id: int, user: str, by: str) -> int:
    """A steward revokes all of a user's grants in a project; returns how many were revoked."""
    by = _may(engine, by, "grant.revoke").name
    with engine.begin() as conn:
        _load_project(conn, project_id)
        _load_user(conn, user)
        result = conn.execute(sa.update(grants).where(grants.c.project_id == project_id, grants.c.user_name == user,
                                                      grants.c.revoked_at.is_(None))
                              .values(revoked_at=_now(), revoked_by=by))
        return result.rowcount


def active_grants(engine: sa.Engine, user: str, on: date | None = None) -> list[Grant]:
    """The user's grants valid on `on` (default: today, UTC): within their dates, not revoked, of an
    active project, held by an active account. Read from the database on every call."""
    on = on or _today()
    query = (
        sa.select(grants)
        .join(projects, projects.c.id == grants.c.project_id)
        .join(users, users.c.name == grants.c.user_name)
        .where(grants.c.user_name == user, grants.c.revoked_at.is_(None), grants.c.valid_from <= on,
               grants.c.valid_until >= on, projects.c.status == PROJECT_ACTIVE, users.c.active.is_(True))
        .order_by(grants.c.project_id, grants.c.entry, grants.c.id)
    )
    with engine.connect() as conn:
        return [_grant_from_row(r) for r in conn.execute(query)]


def granted_variables(engine: sa.Engine, user: str, project_id: int, entry: str, on: date | None = None
                      ) -> set[str]:
    """The variables of `entry` the user may read in the project on `on`: the union of their active
    grants (an amendment adding variables adds a grant). Empty: no access."""
    found: set[str] = set()
    for grant in active_grants(engine, user, on):
        if grant.project_id == project_id and grant.entry == entry:
            found.update(grant.variables)
    return found


def close_project(engine: sa.Engine, project_id: int, actor: str, final_report: str) -> Project:
    """Close a project with its final report (what the results mean for practice); its approved
    requests move to closed and its grants stop being active. The project's applicant or a steward."""
    minimum = _setting("final_report_min_chars", DEFAULT_FINAL_REPORT_MIN_CHARS)
    report = (final_report or "").strip()
    if len(report) < minimum:
        raise ValidationError(_t("gov_report_too_short", minimum=minimum, length=len(report)))
    who = policy.actor_of(engine, actor)
    with engine.begin() as conn:
        project = _load_project(conn, project_id, lock=True)
        target = _project_target(conn, project)
        policy.check(who, "project.close", target)
        if project.status != PROJECT_ACTIVE:
            raise WorkflowError(_t("gov_project_not_active", id=project_id, status=project.status))
        original = _load_request(conn, project.request_id, lock=True)
        WORKFLOW.check(original.id, original.status, CLOSED)
        conn.execute(sa.update(projects).where(projects.c.id == project_id)
                     .values(status=PROJECT_CLOSED, final_report=report, closed_at=_now()))
        note = _t("gov_note_project_closed", id=project_id)
        ids = conn.execute(sa.select(data_requests.c.id).where(data_requests.c.project_id == project_id,
                                                               data_requests.c.status.in_(APPROVING))
                           .order_by(data_requests.c.id)).scalars().all()
        for request_id in ids:
            workflow.move(conn, WORKFLOW, request_id, CLOSED, who, target, note, project=project_id)
        return _load_project(conn, project_id)
