"""The Vraagbank (question bank, brief section 4): practitioners' questions, from posting to the answer.

The domain layer under the portal's Vraagbank pages and `ldj vraagbank`; no web or CLI code here. Every
function takes an engine and the acting user's login name (None: a visitor who is not logged in) or a
`policy.Actor`, checks the actor's permission through `ldj.policy` (a refusal is `policy.Refused`,
naming the action), and runs in one transaction, so a status change and its event land together.
Workflow and input errors are the governance errors (`ValidationError`, `NotFound`, `WorkflowError`)
with a message for people in the configured language. A question the viewer may not see is NotFound,
so its existence does not leak.

Workflow (`WORKFLOW`, declared on the engine of `ldj.workflow`; each step names the policy action
that allows it)::

    submitted -> published | merged | declined               question.triage (a steward)
    published -> picked_up                                   question.pick_up
    published -> answered                                    question.answer (a steward, from known research)
    published -> merged | declined                           question.triage
    picked_up -> answered                                    question.answer (whoever picked it up, a steward)
    picked_up -> published                                   question.pickup_manage (every pick-up withdrawn)
    answered, merged, declined: final

Each step and each new question is an event in the append-only `question_events` and an entry in the
access log (`ldj.audit`); so is a note that changes no status (another pick-up, a linked request, a
withdrawal with pick-ups left, a duplicate merged into the question).

Who does what: members (practitioners) post and vote, not on their own question; any logged-in user
who can see a question comments; researchers and students pick questions up and link their APO data
request; whoever picked a question up, or a steward, answers it; stewards triage, moderate comments
and export. Visitors see published, picked-up and answered questions; askers also see their own
questions in every status; stewards see everything.

Names (policy `person.see_name`): the records carry a person's login and display name only for viewers
who may see them (the person, a steward, the people on the same question: its asker and whoever picked
it up, members of the linked project), or when the person chose to show their name (`users.show_name`).
Everyone else gets the `*_label` fields: a role and an institution ("een student van Hogeschool Utrecht").

Merging a duplicate copies its votes to the target (a user who voted on both counts once) and makes
the duplicate's asker a voter on the target, so they see the answer on their own page.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from . import policy, workflow
from .governance import NotFound, User, ValidationError, person_label, role_label, users_by_name
from .i18n import t
from .markup import render_markdown
from .settings import get_settings
from .store import (
    data_requests,
    question_comments,
    question_events,
    question_pickups,
    question_tags,
    question_votes,
    questions,
    request_members,
)
from .workflow import Transition, WorkflowError

# --- vocabulary ------------------------------------------------------------------------------

SUBMITTED = "submitted"  # ingediend
PUBLISHED = "published"  # gepubliceerd
PICKED_UP = "picked_up"  # opgepakt
ANSWERED = "answered"  # beantwoord
MERGED = "merged"  # samengevoegd
DECLINED = "declined"  # afgewezen
STATUSES = (SUBMITTED, PUBLISHED, PICKED_UP, ANSWERED, MERGED, DECLINED)
PUBLIC_STATUSES = (PUBLISHED, PICKED_UP, ANSWERED)
OPEN_FOR_VOTES = (PUBLISHED, PICKED_UP)

CATEGORIES = ("target_group", "approach", "outcome")  # doelgroep, aanpak, resultaat
TAG_KINDS = ("instrument", "intervention", "age_group")
PICKUP_KINDS = ("student", "researcher")

MEMBER = policy.MEMBER  # roles are defined in ldj.policy
RESEARCHER = policy.RESEARCHER
STUDENT = policy.STUDENT
STEWARD = policy.STEWARD

SORTS = ("votes", "newest")

# what a viewer may do with a question: `Question.actions`
EDIT = "edit"
PUBLISH = "publish"
MERGE = "merge"
DECLINE = "decline"
VOTE = "vote"
UNVOTE = "unvote"
COMMENT = "comment"
PICK_UP = "pick_up"
ANSWER = "answer"
ACTIONS = (EDIT, PUBLISH, MERGE, DECLINE, VOTE, UNVOTE, COMMENT, PICK_UP, ANSWER)

TITLE_MIN = 5
TITLE_MAX = 200
BODY_MAX = 20_000
COMMENT_MAX = 5_000
REASON_MIN = 10
TAGS_MAX_PER_KIND = 10


# --- records ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuestionSummary:
    """A question in a list. Names of people are None for visitors who are not logged in."""

    id: int
    title: str
    category: str
    status: str
    tags: dict[str, tuple[str, ...]]  # kind -> codes, every kind of TAG_KINDS present
    votes: int
    comment_count: int
    asker_organisation: str | None
    created_at: datetime
    published_at: datetime | None
    merged_into: int | None  # the question a merged duplicate now lives on
    decline_reason: str | None  # only declined questions have one; only their asker and stewards see them
    answer_summary: str | None  # Markdown; set once answered
    answer_url: str | None
    answered_at: datetime | None

    def answer_html(self) -> str:
        return render_markdown(self.answer_summary)


@dataclass(frozen=True)
class Comment:
    id: int
    question_id: int
    author: str | None  # login name; None unless the viewer may see the author's name
    author_name: str | None  # display name; None unless the viewer may see it
    body: str  # Markdown: show body_html()
    created_at: datetime
    hidden: bool  # moderated; only stewards get hidden comments at all
    author_label: str = ""  # what to show: the display name, or a role and an institution

    def body_html(self) -> str:
        return render_markdown(self.body)


@dataclass(frozen=True)
class Pickup:
    id: int
    question_id: int
    picked_by: str | None  # None unless the viewer may see the name
    picked_by_name: str | None
    kind: str  # student | researcher
    institution: str
    supervisor: str | None  # free text; None unless the viewer may see names on this question
    planned_from: date
    planned_until: date
    request_id: int | None  # the linked APO data request
    entries: tuple[str, ...]  # catalogue entries the project could use
    created_at: datetime
    withdrawn_at: datetime | None
    picked_by_label: str = ""  # what to show: the display name, or "een student van Hogeschool Utrecht"
    supervisor_label: str | None = None  # the supervisor's name, or "een begeleider van ..."; None: none named


@dataclass(frozen=True)
class Event:
    id: int
    question_id: int
    from_status: str | None
    to_status: str
    actor: str | None  # None unless the viewer may see the actor's name
    at: datetime
    note: str | None  # None unless the viewer may see the actor's name (notes may hold names or a reason)
    actor_label: str = ""  # what to show: the display name, or a role and an institution


@dataclass(frozen=True)
class Question:
    """One question as `viewer` may see it, with what `viewer` may do (`actions`)."""

    id: int
    title: str
    body: str  # Markdown
    category: str
    status: str
    tags: dict[str, tuple[str, ...]]
    asker: str | None  # None unless the viewer may see the asker's name
    asker_name: str | None  # display name, on the same terms
    asker_organisation: str | None
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    merged_into: int | None
    decline_reason: str | None
    answer_summary: str | None  # Markdown
    answer_url: str | None
    answered_by: str | None  # None unless the viewer may see the name
    answered_at: datetime | None
    votes: int
    comments: tuple[Comment, ...]
    pickups: tuple[Pickup, ...]  # active and withdrawn, oldest first
    events: tuple[Event, ...]  # oldest first
    viewer: str | None
    viewer_voted: bool
    actions: frozenset[str]  # of ACTIONS
    asker_label: str = ""  # what to show: the display name, or "een medewerker van ORG03"
    answered_by_label: str | None = None

    @property
    def active_pickups(self) -> tuple[Pickup, ...]:
        return tuple(p for p in self.pickups if p.withdrawn_at is None)

    def body_html(self) -> str:
        return render_markdown(self.body)

    def answer_html(self) -> str:
        return render_markdown(self.answer_summary)


@dataclass(frozen=True)
class MyQuestions:
    """A user's own page: what they asked, what they voted on, what they picked up."""

    asked: list[QuestionSummary]  # every status
    voted: list[QuestionSummary]  # includes votes carried over by a merge
    picked_up: list[QuestionSummary]  # questions with one of the user's active pick-ups


# --- texts and vocabulary for pages -----------------------------------------------------------

def status_label(status: str, language: str | None = None) -> str:
    return t(f"vb_status_{status}", language)


WORKFLOW = workflow.Workflow(  # who may take each step: the policy action's rule
    name="question", table=questions, events=question_events, object_column="question_id",
    states=STATUSES, initial=SUBMITTED,
    transitions=(
        Transition(SUBMITTED, PUBLISHED, "question.triage"),
        Transition(SUBMITTED, MERGED, "question.triage"),
        Transition(SUBMITTED, DECLINED, "question.triage"),
        Transition(PUBLISHED, PICKED_UP, "question.pick_up"),
        Transition(PUBLISHED, ANSWERED, "question.answer"),  # a steward, from research already known
        Transition(PUBLISHED, MERGED, "question.triage"),
        Transition(PUBLISHED, DECLINED, "question.triage"),
        Transition(PICKED_UP, ANSWERED, "question.answer"),
        Transition(PICKED_UP, PUBLISHED, "question.pickup_manage"),  # the last pick-up withdrawn
    ),
    label=status_label, illegal_text="vb_illegal_transition", changed_text="vb_changed_meanwhile",
)


def category_label(category: str, language: str | None = None) -> str:
    return t(f"vb_category_{category}", language)


def tag_kind_label(kind: str, language: str | None = None) -> str:
    return t(f"vb_tag_kind_{kind}", language)


def pickup_kind_label(kind: str, language: str | None = None) -> str:
    return t(f"vb_pickup_kind_{kind}", language)


def question_link(base_url: str, question_id: int) -> str:
    """The portal address of one question; the Atom feed links here."""
    return f"{base_url.rstrip('/')}/vraagbank?vraag={question_id}"


def _catalog_dir(catalog_dir: Path | None) -> Path:
    return Path(catalog_dir or get_settings().catalog_dir).resolve()


@lru_cache(maxsize=8)
def _vocabulary(catalog_dir: Path) -> dict[str, dict[str, dict[str, str]]]:
    """kind -> code -> {"nl": label, "en": label}, from the catalogue's data files."""
    from .catalogue import load_age_groups, load_interventions
    from .instruments import load_instruments

    instruments = {code: dict(inst.name) for code, inst in sorted(load_instruments(catalog_dir).items())}
    interventions = {str(r["code"]): dict(r["name"]) for r in load_interventions(catalog_dir)}
    age_groups = {g.code: dict(g.name) for g in load_age_groups(catalog_dir)}
    return {"instrument": instruments, "intervention": interventions, "age_group": age_groups}


def tag_vocabulary(language: str | None = None, catalog_dir: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """The allowed tags per kind as (code, label) pairs, in catalogue order: for the pages' pickers."""
    language = language or get_settings().language
    return {kind: [(code, names.get(language) or names.get("nl") or code) for code, names in codes.items()]
            for kind, codes in _vocabulary(_catalog_dir(catalog_dir)).items()}


def tag_label(kind: str, code: str, language: str | None = None, catalog_dir: Path | None = None) -> str:
    names = _vocabulary(_catalog_dir(catalog_dir)).get(kind, {}).get(code, {})
    return names.get(language or get_settings().language) or names.get("nl") or code


# --- helpers ---------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _target(row: Any) -> policy.Target:
    """A question as the policy sees it: its asker, and whether it is public."""
    return policy.Target(owner=row.asker, organisation=row.asker_organisation, public=row.status in PUBLIC_STATUSES)


def _visible(viewer: policy.Actor, row: Any) -> bool:
    return policy.allows(viewer, "question.view", _target(row))


def _moderates(viewer: policy.Actor) -> bool:
    """A steward's edit window (until final) instead of the asker's (while submitted)."""
    return policy.allows(viewer, "question.triage")


def _row(conn: sa.Connection, question_id: int, *, lock: bool = False) -> Any:
    query = sa.select(questions).where(questions.c.id == question_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(t("vb_unknown_question", id=question_id))
    return row


def _visible_row(conn: sa.Connection, viewer: policy.Actor, question_id: int, *, lock: bool = False) -> Any:
    """The question if `viewer` may see it; otherwise NotFound, so its existence does not leak."""
    row = _row(conn, question_id, lock=lock)
    if not _visible(viewer, row):
        raise NotFound(t("vb_unknown_question", id=question_id))
    return row


def _text(value: str | None) -> str:
    return (value or "").strip()


def _check_title(title: str | None) -> str:
    title = " ".join(_text(title).split())
    if len(title) < TITLE_MIN:
        raise ValidationError(t("vb_title_short", minimum=TITLE_MIN))
    if len(title) > TITLE_MAX:
        raise ValidationError(t("vb_title_long", maximum=TITLE_MAX, length=len(title)))
    return title


def _check_body(body: str | None) -> str:
    body = _text(body)
    if not body:
        raise ValidationError(t("vb_body_empty"))
    if len(body) > BODY_MAX:
        raise ValidationError(t("vb_body_long", maximum=BODY_MAX, length=len(body)))
    return body


def _check_category(category: str | None) -> str:
    if category not in CATEGORIES:
        raise ValidationError(t("vb_bad_category", category=category,
                                allowed=", ".join(f"{c} ({category_label(c)})" for c in CATEGORIES)))
    return category


def _check_tags(tags: Mapping[str, Iterable[str] | str] | None, catalog_dir: Path | None) -> list[tuple[str, str]]:
    """(kind, code) pairs, each code known in the catalogue's data (instruments by code or alias)."""
    if not tags:
        return []
    vocabulary = _vocabulary(_catalog_dir(catalog_dir))
    cleaned: list[tuple[str, str]] = []
    for kind, values in tags.items():
        if kind not in TAG_KINDS:
            raise ValidationError(t("vb_bad_tag_kind", kind=kind, allowed=", ".join(TAG_KINDS)))
        if isinstance(values, str):
            values = [values]
        codes: list[str] = []
        for value in values or ():
            code = _resolve_tag(kind, str(value).strip(), vocabulary[kind], catalog_dir)
            if code is None:
                raise ValidationError(t("vb_unknown_tag", kind=tag_kind_label(kind), value=value,
                                        known=", ".join(vocabulary[kind])))
            if code not in codes:
                codes.append(code)
        if len(codes) > TAGS_MAX_PER_KIND:
            raise ValidationError(t("vb_too_many_tags", kind=tag_kind_label(kind), maximum=TAGS_MAX_PER_KIND))
        cleaned.extend((kind, c) for c in codes)
    return cleaned


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _resolve_tag(kind: str, value: str, known: Mapping[str, Any], catalog_dir: Path | None) -> str | None:
    if value in known:
        return value
    if kind == "instrument":
        from .instruments import load_instruments, resolve_instrument

        inst = resolve_instrument(value, load_instruments(_catalog_dir(catalog_dir)))
        return inst.code if inst else None
    if kind == "intervention":
        from .catalogue import load_interventions

        for r in load_interventions(_catalog_dir(catalog_dir)):
            if _norm(value) in {_norm(str(r["code"])), *(_norm(str(a)) for a in r.get("aliases") or ())}:
                return str(r["code"])
    return None


def _write_tags(conn: sa.Connection, question_id: int, tags: list[tuple[str, str]]) -> None:
    conn.execute(sa.delete(question_tags).where(question_tags.c.question_id == question_id))
    if tags:
        conn.execute(sa.insert(question_tags), [{"question_id": question_id, "kind": k, "value": v} for k, v in tags])


def _check_url(url: str | None) -> str:
    url = _text(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise ValidationError(t("vb_bad_url", url=url))
    if len(url) > 500:
        raise ValidationError(t("vb_url_long", maximum=500))
    return url


# --- what a viewer may do with a question now: the policy's permission, then the workflow ---------

def _permission(viewer: policy.Actor, action: str, target: policy.Target | None = None) -> policy.Refused | None:
    try:
        policy.check(viewer, action, target)
    except policy.Refused as refused:
        return refused
    return None


def _refusal(action: str, user: policy.Actor, row: Any, conn: sa.Connection) -> Exception | None:
    """Why `user` may not do `action` on the question in `row` now; None when allowed."""
    if action == EDIT:
        refused = _permission(user, "question.edit", _target(row))
        if refused is not None:
            return refused
        editable = row.status not in (MERGED, DECLINED, ANSWERED) if _moderates(user) else row.status == SUBMITTED
        return None if editable else WorkflowError(t("vb_not_editable", id=row.id, status=status_label(row.status)),
                                                   current=row.status)
    if action in (PUBLISH, MERGE, DECLINE):
        refused = _permission(user, "question.triage", _target(row))
        if refused is not None:
            return refused
        wanted = {PUBLISH: PUBLISHED, MERGE: MERGED, DECLINE: DECLINED}[action]
        return None if WORKFLOW.transition(row.status, wanted) else WORKFLOW.illegal(row.id, row.status, wanted)
    if action in (VOTE, UNVOTE):
        refused = _permission(user, "question.vote", _target(row))
        if refused is not None:
            return refused
        if row.status not in OPEN_FOR_VOTES:
            return WorkflowError(t("vb_votes_closed", id=row.id, status=status_label(row.status)),
                                 current=row.status)
        voted = _has_voted(conn, row.id, user.name)
        if action == VOTE and voted:
            return ValidationError(t("vb_already_voted", name=user.name, id=row.id))
        if action == UNVOTE and not voted:
            return ValidationError(t("vb_not_voted", name=user.name, id=row.id))
        return None
    if action == COMMENT:
        refused = _permission(user, "question.comment", _target(row))
        if refused is not None:
            return refused
        if row.status in (MERGED, DECLINED):
            return WorkflowError(t("vb_comments_closed", id=row.id, status=status_label(row.status)),
                                 current=row.status)
        return None
    if action == PICK_UP:
        refused = _permission(user, "question.pick_up", _target(row))
        if refused is not None:
            return refused
        if WORKFLOW.transition(row.status, PICKED_UP) is None and row.status != PICKED_UP:
            return WorkflowError(t("vb_pickup_closed", id=row.id, status=status_label(row.status)),
                                 current=row.status, wanted=PICKED_UP)
        if _active_pickup(conn, row.id, user.name) is not None:
            return ValidationError(t("vb_already_picked_up", name=user.name, id=row.id))
        return None
    if action == ANSWER:
        refused = _permission(user, "question.answer", _answer_target(conn, row))
        if refused is not None:
            return refused
        return None if WORKFLOW.transition(row.status, ANSWERED) else WORKFLOW.illegal(row.id, row.status, ANSWERED)
    raise ValueError(f"unknown action {action!r}")


def _answer_target(conn: sa.Connection, row: Any) -> policy.Target:
    """Who may answer: whoever picked the question up (and has not withdrawn), or a steward."""
    pickers = frozenset(conn.execute(sa.select(question_pickups.c.picked_by).where(
        question_pickups.c.question_id == row.id, question_pickups.c.withdrawn_at.is_(None))).scalars())
    return policy.Target(members=pickers, public=False)


def _check(action: str, user: policy.Actor, row: Any, conn: sa.Connection) -> None:
    refusal = _refusal(action, user, row, conn)
    if refusal is not None:
        raise refusal


def _has_voted(conn: sa.Connection, question_id: int, user_name: str) -> bool:
    return conn.execute(sa.select(question_votes.c.id).where(
        question_votes.c.question_id == question_id, question_votes.c.user_name == user_name)).first() is not None


def _active_pickup(conn: sa.Connection, question_id: int, user_name: str) -> Any:
    return conn.execute(sa.select(question_pickups).where(
        question_pickups.c.question_id == question_id, question_pickups.c.picked_by == user_name,
        question_pickups.c.withdrawn_at.is_(None))).first()


def _actions(conn: sa.Connection, user: policy.Actor, row: Any) -> frozenset[str]:
    if user.anonymous:
        return frozenset()
    return frozenset(a for a in ACTIONS if _refusal(a, user, row, conn) is None)


# --- posting and editing -----------------------------------------------------------------------

def post(engine: sa.Engine, actor: str, title: str, body: str, category: str,
         tags: Mapping[str, Iterable[str] | str] | None = None, *, catalog_dir: Path | None = None) -> int:
    """A member posts a question; it waits for triage (status submitted). Returns its id.

    `tags` maps a kind of TAG_KINDS to codes: {"instrument": ["cbcl_6_18"], "intervention": ["mst"],
    "age_group": ["12-17"]}; instrument and intervention aliases ("CBCL", "MST") are accepted.
    """
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.post")
        values = dict(title=_check_title(title), body=_check_body(body), category=_check_category(category))
        cleaned_tags = _check_tags(tags, catalog_dir)
        now = _now()
        question_id = conn.execute(sa.insert(questions).values(
            **values, asker=user.name, asker_organisation=user.organisation, status=SUBMITTED,
            created_at=now, updated_at=now)).inserted_primary_key[0]
        _write_tags(conn, question_id, cleaned_tags)
        workflow.created(conn, WORKFLOW, question_id, user, at=now)
    return question_id


_UNSET: Any = object()


def update_question(engine: sa.Engine, actor: str, question_id: int, *, title: str = _UNSET, body: str = _UNSET,
                    category: str = _UNSET, tags: Mapping[str, Iterable[str] | str] = _UNSET,
                    catalog_dir: Path | None = None) -> Question:
    """The asker edits while the question waits for triage; a steward edits until it is final."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        row = _visible_row(conn, user, question_id, lock=True)
        _check(EDIT, user, row, conn)
        values: dict[str, Any] = {}
        if title is not _UNSET:
            values["title"] = _check_title(title)
        if body is not _UNSET:
            values["body"] = _check_body(body)
        if category is not _UNSET:
            values["category"] = _check_category(category)
        if tags is not _UNSET:
            _write_tags(conn, question_id, _check_tags(tags, catalog_dir))
        values["updated_at"] = _now()
        conn.execute(sa.update(questions).where(questions.c.id == question_id).values(**values))
        return _question(conn, user, question_id)


# --- triage ----------------------------------------------------------------------------------

def publish(engine: sa.Engine, actor: str, question_id: int, note: str | None = None) -> Question:
    """A steward publishes a submitted question: visible to all, open for votes and pick-ups."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.triage")
        row = _visible_row(conn, user, question_id, lock=True)
        _check(PUBLISH, user, row, conn)
        workflow.move(conn, WORKFLOW, row.id, PUBLISHED, user, _target(row), note, from_state=row.status,
                      values={"published_at": _now()})
        return _question(conn, user, question_id)


def decline(engine: sa.Engine, actor: str, question_id: int, reason: str) -> Question:
    """A steward declines a question with a reason the asker reads on their page."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.triage")
        row = _visible_row(conn, user, question_id, lock=True)
        _check(DECLINE, user, row, conn)
        reason = _text(reason)
        if len(reason) < REASON_MIN:
            raise ValidationError(t("vb_reason_required", minimum=REASON_MIN))
        workflow.move(conn, WORKFLOW, row.id, DECLINED, user, _target(row), reason, from_state=row.status,
                      values={"decline_reason": reason})
        return _question(conn, user, question_id)


def merge_duplicate(engine: sa.Engine, actor: str, question_id: int, into: int) -> Question:
    """A steward merges a duplicate into a published (or picked-up, or answered) question.

    The duplicate's votes are copied to the target (a user who voted on both counts once) and its
    asker becomes a voter on the target (unless they asked the target too). Returns the target.
    """
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.triage")
        row = _visible_row(conn, user, question_id, lock=True)
        _check(MERGE, user, row, conn)
        if into == question_id:
            raise ValidationError(t("vb_merge_self", id=question_id))
        target = _row(conn, into, lock=True)
        if target.status not in PUBLIC_STATUSES:
            raise WorkflowError(t("vb_merge_target_status", id=into, status=status_label(target.status)),
                                current=target.status)
        now = _now()
        already = set(conn.execute(sa.select(question_votes.c.user_name)
                                   .where(question_votes.c.question_id == into)).scalars())
        carried = [r.user_name for r in conn.execute(sa.select(question_votes.c.user_name)
                                                     .where(question_votes.c.question_id == question_id)
                                                     .order_by(question_votes.c.id))]
        new_voters = [n for n in dict.fromkeys([*carried, row.asker]) if n not in already and n != target.asker]
        if new_voters:
            conn.execute(sa.insert(question_votes), [
                {"question_id": into, "user_name": n, "created_at": now, "carried_from": question_id}
                for n in new_voters])
        workflow.move(conn, WORKFLOW, row.id, MERGED, user, _target(row), t("vb_note_merged_into", target=into),
                      from_state=row.status, values={"merged_into": into})
        workflow.record(conn, WORKFLOW, into, user, t("vb_note_merged_from", source=question_id, votes=len(new_voters)))
        conn.execute(sa.update(questions).where(questions.c.id == into).values(updated_at=now))
        return _question(conn, user, into)


# --- votes and comments ------------------------------------------------------------------------

def vote(engine: sa.Engine, actor: str, question_id: int) -> int:
    """"Ik wil dit ook weten": a member votes once on someone else's open question. Returns the count."""
    try:
        with engine.begin() as conn:
            user = policy.actor_of(conn, actor)
            row = _visible_row(conn, user, question_id)
            _check(VOTE, user, row, conn)
            conn.execute(sa.insert(question_votes).values(question_id=question_id, user_name=user.name,
                                                          created_at=_now()))
            return _vote_count(conn, question_id)
    except sa.exc.IntegrityError:  # a second vote at the same moment: the unique constraint holds
        raise ValidationError(t("vb_already_voted", name=getattr(actor, "name", actor), id=question_id)) from None


def unvote(engine: sa.Engine, actor: str, question_id: int) -> int:
    """Take one's vote back while the question is open. Returns the count."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        row = _visible_row(conn, user, question_id)
        _check(UNVOTE, user, row, conn)
        conn.execute(sa.delete(question_votes).where(question_votes.c.question_id == question_id,
                                                     question_votes.c.user_name == user.name))
        return _vote_count(conn, question_id)


def comment(engine: sa.Engine, actor: str, question_id: int, body: str) -> Comment:
    """Any logged-in user who can see the question comments (Markdown), until it is merged or declined."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        row = _visible_row(conn, user, question_id)
        _check(COMMENT, user, row, conn)
        body = _text(body)
        if not body:
            raise ValidationError(t("vb_comment_empty"))
        if len(body) > COMMENT_MAX:
            raise ValidationError(t("vb_comment_long", maximum=COMMENT_MAX, length=len(body)))
        comment_id = conn.execute(sa.insert(question_comments).values(
            question_id=question_id, author=user.name, body=body, created_at=_now())).inserted_primary_key[0]
        return _comments(conn, user, question_id, comment_id=comment_id)[0]


def hide_comment(engine: sa.Engine, actor: str, comment_id: int) -> None:
    """A steward hides a comment (moderation); it is kept, and shown to stewards only."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.comment_hide")
        result = conn.execute(sa.update(question_comments)
                              .where(question_comments.c.id == comment_id, question_comments.c.hidden_at.is_(None))
                              .values(hidden_at=_now(), hidden_by=user.name))
        if result.rowcount != 1 and conn.execute(sa.select(question_comments.c.id)
                                                 .where(question_comments.c.id == comment_id)).first() is None:
            raise NotFound(t("vb_unknown_comment", id=comment_id))


# --- pick-up and answer ------------------------------------------------------------------------

def pick_up(engine: sa.Engine, actor: str, question_id: int, *, kind: str, institution: str,
            supervisor: str | None, planned_from: date, planned_until: date, request_id: int | None = None,
            entries: Iterable[str] = (), catalog_dir: Path | None = None) -> Pickup:
    """A researcher or student takes the question up as a project; more than one project may.

    `kind` is student or researcher; a student project names its supervisor. `entries` are catalogue
    entry ids the project could use; `request_id` links the APO data request (also later: link_request).
    """
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        row = _visible_row(conn, user, question_id, lock=True)
        _check(PICK_UP, user, row, conn)
        if kind not in PICKUP_KINDS:
            raise ValidationError(t("vb_bad_pickup_kind", kind=kind, allowed=", ".join(PICKUP_KINDS)))
        institution = _text(institution)
        if not institution:
            raise ValidationError(t("vb_institution_empty"))
        supervisor = _text(supervisor) or None
        if kind == STUDENT and not supervisor:
            raise ValidationError(t("vb_supervisor_required"))
        if not isinstance(planned_from, date) or not isinstance(planned_until, date):
            raise ValidationError(t("vb_period_missing"))
        if planned_from > planned_until:
            raise ValidationError(t("gov_bad_period", start=planned_from, end=planned_until))
        entries = _check_entries(entries, catalog_dir)
        if request_id is not None:
            _check_request(conn, user, request_id)
        now = _now()
        pickup_id = conn.execute(sa.insert(question_pickups).values(
            question_id=question_id, picked_by=user.name, kind=kind, institution=institution,
            supervisor=supervisor, planned_from=planned_from, planned_until=planned_until, request_id=request_id,
            entries=entries, created_at=now)).inserted_primary_key[0]
        note = t("vb_note_picked_up", name=_display_name(conn, user.name), kind=pickup_kind_label(kind),
                 institution=institution)
        if row.status == PICKED_UP:  # another project on the same question
            workflow.record(conn, WORKFLOW, question_id, user, note)
        else:
            workflow.move(conn, WORKFLOW, question_id, PICKED_UP, user, _target(row), note, from_state=row.status)
        return _pickups(conn, user, question_id, pickup_id=pickup_id)[0]


def _check_entries(entries: Iterable[str], catalog_dir: Path | None) -> list[str]:
    entries = list(dict.fromkeys(str(e).strip() for e in entries or () if str(e).strip()))
    if entries:
        from .catalogue import load_entries

        known = load_entries(_catalog_dir(catalog_dir))
        unknown = [e for e in entries if e not in known]
        if unknown:
            raise ValidationError(t("gov_unknown_entry", entry=", ".join(unknown)))
    return entries


def _check_request(conn: sa.Connection, user: policy.Actor, request_id: int) -> None:
    """The data request exists and `user` may link it (`question.link_request`: its applicant or a member)."""
    row = conn.execute(sa.select(data_requests.c.applicant).where(data_requests.c.id == request_id)).first()
    if row is None:
        raise NotFound(t("gov_unknown_request", id=request_id))
    members = frozenset(conn.execute(sa.select(request_members.c.user_name)
                                     .where(request_members.c.request_id == request_id)).scalars())
    policy.check(user, "question.link_request", policy.Target(owner=row.applicant, members=members))


def _pickup_row(conn: sa.Connection, pickup_id: int) -> Any:
    row = conn.execute(sa.select(question_pickups).where(question_pickups.c.id == pickup_id)).first()
    if row is None:
        raise NotFound(t("vb_unknown_pickup", id=pickup_id))
    return row


def _own_pickup(conn: sa.Connection, user: policy.Actor, pickup_id: int) -> Any:
    pickup = _pickup_row(conn, pickup_id)
    policy.check(user, "question.pickup_manage", policy.Target(owner=pickup.picked_by))
    if pickup.withdrawn_at is not None:
        raise WorkflowError(t("vb_pickup_withdrawn", id=pickup_id))
    return pickup


def link_request(engine: sa.Engine, actor: str, pickup_id: int, request_id: int) -> Pickup:
    """Link a pick-up to its APO data request: by whoever picked up (who must be on the request) or a steward."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        pickup = _own_pickup(conn, user, pickup_id)
        _check_request(conn, user, request_id)
        conn.execute(sa.update(question_pickups).where(question_pickups.c.id == pickup_id)
                     .values(request_id=request_id))
        workflow.record(conn, WORKFLOW, pickup.question_id, user, t("vb_note_request_linked", request=request_id))
        return _pickups(conn, user, pickup.question_id, pickup_id=pickup_id)[0]


def withdraw_pickup(engine: sa.Engine, actor: str, pickup_id: int, note: str | None = None) -> Question:
    """Whoever picked up (or a steward) withdraws; with no project left the question is published again."""
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        pickup = _own_pickup(conn, user, pickup_id)
        row = _row(conn, pickup.question_id, lock=True)
        if row.status != PICKED_UP:
            raise WorkflowError(t("vb_pickup_final", id=row.id, status=status_label(row.status)),
                                current=row.status)
        now = _now()
        conn.execute(sa.update(question_pickups).where(question_pickups.c.id == pickup_id).values(withdrawn_at=now))
        left = conn.execute(sa.select(sa.func.count()).select_from(question_pickups).where(
            question_pickups.c.question_id == row.id, question_pickups.c.withdrawn_at.is_(None))).scalar_one()
        text = t("vb_note_withdrawn", id=pickup_id) + (f": {_text(note)}" if _text(note) else "")
        if left:
            workflow.record(conn, WORKFLOW, row.id, user, text)
        else:
            workflow.move(conn, WORKFLOW, row.id, PUBLISHED, user, policy.Target(owner=pickup.picked_by), text,
                          from_state=row.status)
        return _question(conn, user, row.id)


def answer(engine: sa.Engine, actor: str, question_id: int, summary: str, report_url: str) -> Question:
    """The question ends answered: a summary (Markdown) and a link to the report.

    By whoever picked it up, or a steward (also straight from published, when research already answers it).
    The asker and the voters see the answer on their own page (`my_questions`).
    """
    with engine.begin() as conn:
        user = policy.actor_of(conn, actor)
        row = _visible_row(conn, user, question_id, lock=True)
        _check(ANSWER, user, row, conn)
        summary = _text(summary)
        if not summary:
            raise ValidationError(t("vb_summary_empty"))
        if len(summary) > BODY_MAX:
            raise ValidationError(t("vb_body_long", maximum=BODY_MAX, length=len(summary)))
        url = _check_url(report_url)
        now = _now()
        workflow.move(conn, WORKFLOW, row.id, ANSWERED, user, _answer_target(conn, row), from_state=row.status,
                      values={"answer_summary": summary, "answer_url": url, "answered_by": user.name,
                              "answered_at": now})
        return _question(conn, user, question_id)


def answer_with_release(conn: sa.Connection, question_id: int, author: policy.Actor, summary: str,
                        project_members: frozenset[str]) -> None:
    """A released output of the project the question was picked up for answers it (`ldj.airlock.release`,
    in its transaction): the researcher's description is the summary; the question page lists the
    released outputs. The author may answer as one of the pick-up's people or of its project."""
    row = _row(conn, question_id, lock=True)
    target = _answer_target(conn, row)
    target = policy.Target(members=target.members | project_members)
    workflow.move(conn, WORKFLOW, row.id, ANSWERED, author, target, from_state=row.status,
                  values={"answer_summary": _text(summary)[:BODY_MAX], "answer_url": None,
                          "answered_by": author.name, "answered_at": _now()})


# --- reading -----------------------------------------------------------------------------------

def _vote_count(conn: sa.Connection, question_id: int) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(question_votes)
                        .where(question_votes.c.question_id == question_id)).scalar_one()


def _tags(conn: sa.Connection, ids: Sequence[int]) -> dict[int, dict[str, tuple[str, ...]]]:
    """Tags per question, each kind in the catalogue's order (codes no longer in the catalogue last)."""
    found: dict[int, dict[str, list[str]]] = {i: {k: [] for k in TAG_KINDS} for i in ids}
    if ids:
        for r in conn.execute(sa.select(question_tags).where(question_tags.c.question_id.in_(ids))):
            found[r.question_id].setdefault(r.kind, []).append(r.value)
    order = {kind: {code: n for n, code in enumerate(codes)} for kind, codes in _vocabulary(_catalog_dir(None)).items()}

    def ranked(kind: str, codes: list[str]) -> tuple[str, ...]:
        rank = order.get(kind, {})
        return tuple(sorted(codes, key=lambda c: (rank.get(c, len(rank)), c)))

    return {i: {k: ranked(k, v) for k, v in kinds.items()} for i, kinds in found.items()}


def _display_name(conn: sa.Connection, name: str) -> str:
    person = users_by_name(conn, [name]).get(name)
    return (person.display_name if person else None) or name


class _Names:
    """Who on one question `viewer` may see by name (policy `person.see_name`), and what the others look like.

    The question's circle is its asker and whoever picked it up (not withdrawn); they see each other's
    names, and so do the members of a pick-up's linked project. Others see a role and an institution."""

    def __init__(self, conn: sa.Connection, viewer: policy.Actor, row: Any, pickups: Sequence[Any],
                 language: str | None = None):
        self.conn, self.viewer, self.row, self.language = conn, viewer, row, language
        active = [p for p in pickups if p.withdrawn_at is None]
        self.circle = frozenset({row.asker, *(p.picked_by for p in active)})
        self.pickups = {p.picked_by: p for p in [*pickups, *active]}  # a person's active pick-up wins
        linked = {p.request_id for p in pickups if p.request_id is not None}
        self.projects = dict(conn.execute(sa.select(data_requests.c.id, data_requests.c.project_id)
                                          .where(data_requests.c.id.in_(linked))).all()) if linked else {}
        self.people: dict[str, User] = {}

    def _person(self, name: str) -> User | None:
        if name not in self.people:
            self.people.update(users_by_name(self.conn, [name]))
        return self.people.get(name)

    def project_of(self, pickup: Any) -> int | None:
        return self.projects.get(pickup.request_id) if pickup.request_id is not None else None

    def of(self, name: str | None) -> tuple[str | None, str | None, str]:
        """(login name, display name, label): the first two None unless the viewer may see them."""
        if not name:
            return None, None, ""
        person = self._person(name)
        if name == self.row.asker:
            role, organisation, project = MEMBER, self.row.asker_organisation, None
        elif name in self.pickups:
            pickup = self.pickups[name]
            role, organisation, project = pickup.kind, pickup.institution, self.project_of(pickup)
        else:
            role, organisation, project = None, None, None
        members = self.circle if name in self.circle else frozenset()
        login, label = person_label(self.viewer, person, role=role, organisation=organisation, members=members,
                                    project=project, language=self.language)
        return login, (label if login else None), label

    def supervisor(self, pickup: Any) -> tuple[str | None, str | None]:
        """(the supervisor as typed, or None; the label to show): names only within the question's circle."""
        if not pickup.supervisor:
            return None, None
        target = policy.Target(members=self.circle, project=self.project_of(pickup))
        if policy.allows(self.viewer, "person.see_name", target):
            return pickup.supervisor, pickup.supervisor
        return None, role_label("supervisor", pickup.institution, self.language)


def _pickup_rows(conn: sa.Connection, question_id: int) -> list[Any]:
    return conn.execute(sa.select(question_pickups).where(question_pickups.c.question_id == question_id)
                        .order_by(question_pickups.c.id)).all()


def _names(conn: sa.Connection, viewer: policy.Actor, question_id: int) -> _Names:
    return _Names(conn, viewer, _row(conn, question_id), _pickup_rows(conn, question_id))


def _comments(conn: sa.Connection, user: policy.Actor, question_id: int, comment_id: int | None = None,
              names: _Names | None = None) -> list[Comment]:
    names = names or _names(conn, user, question_id)
    query = sa.select(question_comments).where(question_comments.c.question_id == question_id)
    if comment_id is not None:
        query = query.where(question_comments.c.id == comment_id)
    if not policy.allows(user, "question.comment_hide"):  # moderators see hidden comments
        query = query.where(question_comments.c.hidden_at.is_(None))
    found = []
    for r in conn.execute(query.order_by(question_comments.c.id)).all():
        login, display, label = names.of(r.author)
        found.append(Comment(id=r.id, question_id=r.question_id, author=login, author_name=display, body=r.body,
                             created_at=_aware(r.created_at), hidden=r.hidden_at is not None, author_label=label))
    return found


def _pickups(conn: sa.Connection, user: policy.Actor, question_id: int, pickup_id: int | None = None,
             names: _Names | None = None) -> list[Pickup]:
    names = names or _names(conn, user, question_id)
    found = []
    for r in _pickup_rows(conn, question_id):
        if pickup_id is not None and r.id != pickup_id:
            continue
        login, display, label = names.of(r.picked_by)
        supervisor, supervisor_label = names.supervisor(r)
        found.append(Pickup(
            id=r.id, question_id=r.question_id, picked_by=login, picked_by_name=display, kind=r.kind,
            institution=r.institution, supervisor=supervisor, planned_from=r.planned_from,
            planned_until=r.planned_until, request_id=r.request_id, entries=tuple(r.entries or ()),
            created_at=_aware(r.created_at), withdrawn_at=_aware(r.withdrawn_at), picked_by_label=label,
            supervisor_label=supervisor_label))
    return found


def _events(conn: sa.Connection, names: _Names, question_id: int) -> list[Event]:
    found = []
    for e in workflow.history(conn, WORKFLOW, question_id):
        login, _, label = names.of(e.actor)
        found.append(Event(id=e.id, question_id=e.object_id, from_status=e.from_state, to_status=e.to_state,
                           actor=login, at=e.at, note=e.comment if login else None, actor_label=label))
    return found


def _question(conn: sa.Connection, user: policy.Actor, question_id: int, language: str | None = None) -> Question:
    row = _visible_row(conn, user, question_id)
    names = _Names(conn, user, row, _pickup_rows(conn, row.id), language)
    asker, asker_name, asker_label = names.of(row.asker)
    answered_by, _, answered_by_label = names.of(row.answered_by)
    return Question(
        id=row.id, title=row.title, body=row.body, category=row.category, status=row.status,
        tags=_tags(conn, [row.id])[row.id], asker=asker, asker_name=asker_name,
        asker_organisation=row.asker_organisation, created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at), published_at=_aware(row.published_at), merged_into=row.merged_into,
        decline_reason=row.decline_reason, answer_summary=row.answer_summary, answer_url=row.answer_url,
        answered_by=answered_by, answered_at=_aware(row.answered_at),
        votes=_vote_count(conn, row.id), comments=tuple(_comments(conn, user, row.id, names=names)),
        pickups=tuple(_pickups(conn, user, row.id, names=names)), events=tuple(_events(conn, names, row.id)),
        viewer=user.name, viewer_voted=not user.anonymous and _has_voted(conn, row.id, user.name),
        actions=_actions(conn, user, row), asker_label=asker_label, answered_by_label=answered_by_label or None,
    )


def get_question(engine: sa.Engine, question_id: int, viewer: policy.Actor | str | None = None,
                 language: str | None = None) -> Question:
    """One question with votes, comments, pick-ups and events, as `viewer` may see it (NotFound otherwise);
    people's labels in `language` (default: the configured one)."""
    with engine.connect() as conn:
        return _question(conn, policy.actor_of(conn, viewer), question_id, language)


def _summary_query(user: policy.Actor) -> sa.Select:
    votes = (sa.select(sa.func.count()).select_from(question_votes)
             .where(question_votes.c.question_id == questions.c.id).scalar_subquery())
    comments = (sa.select(sa.func.count()).select_from(question_comments)
                .where(question_comments.c.question_id == questions.c.id, question_comments.c.hidden_at.is_(None))
                .scalar_subquery())
    query = sa.select(questions, votes.label("votes"), comments.label("comment_count"))
    if policy.allows(user, "question.view", policy.Target()):  # neither public nor theirs: sees every question
        return query
    if policy.allows(user, "question.view", policy.Target(owner=user.name)):
        return query.where(sa.or_(questions.c.status.in_(PUBLIC_STATUSES), questions.c.asker == user.name))
    return query.where(questions.c.status.in_(PUBLIC_STATUSES))


def _summaries(conn: sa.Connection, rows: Sequence[Any]) -> list[QuestionSummary]:
    tags = _tags(conn, [r.id for r in rows])
    return [QuestionSummary(
        id=r.id, title=r.title, category=r.category, status=r.status, tags=tags[r.id], votes=r.votes,
        comment_count=r.comment_count, asker_organisation=r.asker_organisation, created_at=_aware(r.created_at),
        published_at=_aware(r.published_at), merged_into=r.merged_into, decline_reason=r.decline_reason,
        answer_summary=r.answer_summary,
        answer_url=r.answer_url, answered_at=_aware(r.answered_at)) for r in rows]


def _like(word: str) -> str:
    return "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def list_questions(engine: sa.Engine, viewer: str | None = None, *, status: str | Iterable[str] | None = None,
                   category: str | None = None, tag: str | None = None, tag_kind: str | None = None,
                   text: str | None = None, asker: str | None = None, request_id: int | None = None,
                   sort: str = "votes", limit: int | None = None, offset: int = 0) -> list[QuestionSummary]:
    """The questions `viewer` may see, filtered and sorted.

    Without `status` the list holds the public statuses (published, picked up, answered). Other
    statuses must be asked for by name, and then show only what the viewer may see: their own
    questions, or everything for a steward. `tag` matches a tag code of any kind, or of `tag_kind`. `text`: every word must occur
    in the title or the body (case-insensitive). `request_id`: questions picked up (and not withdrawn)
    with that APO data request linked, the lineage from practice to research. `sort`: votes (most
    first, then newest) or newest.
    """
    if sort not in SORTS:
        raise ValidationError(t("vb_bad_sort", sort=sort, allowed=", ".join(SORTS)))
    with engine.connect() as conn:
        user = policy.actor_of(conn, viewer)
        query = _summary_query(user)
        statuses = [status] if isinstance(status, str) else list(status) if status is not None else list(PUBLIC_STATUSES)
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise ValidationError(t("vb_bad_status", status=", ".join(unknown), allowed=", ".join(STATUSES)))
        query = query.where(questions.c.status.in_(statuses))
        if category is not None:
            query = query.where(questions.c.category == _check_category(category))
        if asker is not None:
            query = query.where(questions.c.asker == asker)
        if request_id is not None:
            query = query.where(questions.c.id.in_(sa.select(question_pickups.c.question_id).where(
                question_pickups.c.request_id == request_id, question_pickups.c.withdrawn_at.is_(None))))
        if tag:
            tagged = sa.select(question_tags.c.question_id).where(question_tags.c.value == tag)
            if tag_kind:
                tagged = tagged.where(question_tags.c.kind == tag_kind)
            query = query.where(questions.c.id.in_(tagged))
        for word in _text(text).split():
            pattern = _like(word)
            query = query.where(sa.or_(questions.c.title.ilike(pattern, escape="\\"),
                                       questions.c.body.ilike(pattern, escape="\\")))
        newest = sa.func.coalesce(questions.c.published_at, questions.c.created_at)
        if sort == "votes":
            query = query.order_by(sa.literal_column("votes").desc(), newest.desc(), questions.c.id.desc())
        else:
            query = query.order_by(newest.desc(), questions.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        return _summaries(conn, conn.execute(query).all())


def triage_queue(engine: sa.Engine, actor: str) -> list[QuestionSummary]:
    """Submitted questions waiting for a steward, oldest first."""
    with engine.connect() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.queue")
        rows = conn.execute(_summary_query(user).where(questions.c.status == SUBMITTED)
                            .order_by(questions.c.created_at, questions.c.id)).all()
        return _summaries(conn, rows)


def my_questions(engine: sa.Engine, actor: str) -> MyQuestions:
    """The actor's page: questions asked (any status, with a decline reason or the merge target),
    voted on (including votes carried over by a merge), and picked up; answered ones carry the answer."""
    with engine.connect() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.mine")
        base = _summary_query(user)
        newest = sa.func.coalesce(questions.c.answered_at, questions.c.published_at, questions.c.created_at)
        asked = conn.execute(base.where(questions.c.asker == user.name)
                             .order_by(newest.desc(), questions.c.id.desc())).all()
        voted_ids = sa.select(question_votes.c.question_id).where(question_votes.c.user_name == user.name)
        voted = conn.execute(base.where(questions.c.id.in_(voted_ids), questions.c.status.in_(PUBLIC_STATUSES))
                             .order_by(newest.desc(), questions.c.id.desc())).all()
        picked_ids = sa.select(question_pickups.c.question_id).where(question_pickups.c.picked_by == user.name,
                                                                     question_pickups.c.withdrawn_at.is_(None))
        picked = conn.execute(base.where(questions.c.id.in_(picked_ids))
                              .order_by(newest.desc(), questions.c.id.desc())).all()
        return MyQuestions(asked=_summaries(conn, asked), voted=_summaries(conn, voted),
                           picked_up=_summaries(conn, picked))


# --- feed and export ---------------------------------------------------------------------------

def atom_feed(engine: sa.Engine, base_url: str, language: str | None = None, limit: int = 50) -> bytes:
    """An Atom feed of the newest published questions (public content only, no people's names)."""
    from feedgen.feed import FeedGenerator

    language = language or get_settings().language
    base = base_url.rstrip("/")
    with engine.connect() as conn:
        query = (_summary_query(policy.VISITOR).order_by(questions.c.published_at.desc(), questions.c.id.desc()).limit(limit))
        rows = conn.execute(query).all()
        tags = _tags(conn, [r.id for r in rows])
    feed = FeedGenerator()
    feed.id(f"{base}/vraagbank/feed")
    feed.title(t("vb_feed_title", language))
    feed.subtitle(t("vb_feed_subtitle", language))
    feed.author({"name": t("vb_feed_author", language)})
    feed.link(href=f"{base}/vraagbank", rel="alternate")
    feed.link(href=f"{base}/vraagbank/feed", rel="self")
    feed.language(language)
    feed.updated(max((_aware(r.published_at) for r in rows), default=_now()))
    for r in rows:
        entry = feed.add_entry(order="append")
        link = question_link(base, r.id)
        entry.id(link)
        entry.title(r.title)
        entry.link(href=link)
        entry.published(_aware(r.published_at))
        entry.updated(_aware(r.answered_at or r.published_at))
        entry.content(render_markdown(r.body), type="html")
        entry.category(term=r.category, label=category_label(r.category, language))
        for kind in TAG_KINDS:
            for code in tags[r.id][kind]:
                entry.category(term=f"{kind}:{code}", label=tag_label(kind, code, language))
    return feed.atom_str(pretty=True)


CSV_COLUMNS = ("id", "title", "category", "status", "asker", "asker_organisation", "instruments", "interventions",
               "age_groups", "votes", "comments", "created_at", "published_at", "merged_into", "decline_reason",
               "pickups", "request_ids", "answered_at", "answer_url")


def export_csv(engine: sa.Engine, actor: str, language: str | None = None) -> str:
    """Every question as CSV (semicolon-separated, as Dutch Excel opens it), for stewards only."""
    with engine.connect() as conn:
        user = policy.actor_of(conn, actor)
        policy.check(user, "question.export")
        rows = conn.execute(_summary_query(user).order_by(questions.c.id)).all()
        tags = _tags(conn, [r.id for r in rows])
        pickups: dict[int, list[Any]] = {}
        for p in conn.execute(sa.select(question_pickups).where(question_pickups.c.withdrawn_at.is_(None))
                              .order_by(question_pickups.c.id)):
            pickups.setdefault(p.question_id, []).append(p)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow([t(f"vb_col_{c}", language) for c in CSV_COLUMNS])

    def when(value: datetime | None) -> str:
        return _aware(value).strftime("%Y-%m-%d %H:%M") if value else ""

    for r in rows:
        mine = pickups.get(r.id, [])
        writer.writerow([_cell(v) for v in [
            r.id, r.title, category_label(r.category, language), status_label(r.status, language), r.asker,
            r.asker_organisation or "", ", ".join(tags[r.id]["instrument"]), ", ".join(tags[r.id]["intervention"]),
            ", ".join(tags[r.id]["age_group"]), r.votes, r.comment_count, when(r.created_at), when(r.published_at),
            r.merged_into or "", r.decline_reason or "",
            " | ".join(f"{pickup_kind_label(p.kind, language)}: {p.institution}" for p in mine),
            ", ".join(str(p.request_id) for p in mine if p.request_id is not None),
            when(r.answered_at), r.answer_url or "",
        ]])
    return out.getvalue()


def _cell(value: Any) -> Any:
    """User text that a spreadsheet would run as a formula is prefixed with an apostrophe (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# --- demo content ------------------------------------------------------------------------------

DEMO_PRACTITIONERS = (  # name, display name, organisation: members besides `praktijk`, to ask and vote
    ("praktijk-femke", "Femke de Vries (ORG03)", "ORG03"),
    ("praktijk-joost", "Joost Mulder (ORG07)", "ORG07"),
    ("praktijk-aisha", "Aisha El Amrani (ORG12)", "ORG12"),
)
DEMO_NEEDS = ("steward", "onderzoeker", "student", "praktijk")  # made by `ldj demo-accounts`

_MST = "Werkt MST even goed voor jongeren met een licht verstandelijke beperking?"
_IAG = "Welke gezinnen hebben het meeste baat bij IAG: maakt de ernst bij de start uit?"
_FOSTER = "Voorspelt de opvoedingsbelasting bij de start dat een pleegzorgplaatsing voortijdig stopt?"
_DUPLICATE = "Stress bij pleegouders en afgebroken plaatsingen"
_SDQ = "Is de SDQ-zelfrapportage bruikbaar bij jongeren in kamertraining?"
_VIB = "Verschilt het effect van VIB tussen gezinnen met jonge en oudere kinderen?"
_CLIENT = "Kunnen jullie de CBCL-scores van mijn cliënt opzoeken?"
_DAY = "Zijn de resultaten van dagbehandeling sinds 2015 slechter geworden?"

DEMO_QUESTIONS: tuple[dict[str, Any], ...] = (
    {"title": _MST, "asker": "praktijk", "category": "approach",
     "tags": {"intervention": ["mst"], "instrument": ["cbcl_6_18"], "age_group": ["12-17"]},
     "body": "In ons MST-team hebben steeds meer jongeren een **licht verstandelijke beperking** (LVB). "
             "Collega's twijfelen of het protocol voor hen even goed werkt, of dat we het moeten aanpassen "
             "(kortere sessies, meer visuele ondersteuning).\n\n"
             "- Dalen de CBCL-problemen bij jongeren met een LVB even sterk als bij jongeren zonder?\n"
             "- Stoppen zij vaker voortijdig?",
     "votes": ["praktijk-femke", "praktijk-joost", "praktijk-aisha"],
     "comments": [("praktijk-femke", "Herkenbaar: bij ons gaat het vooral mis bij de huiswerkopdrachten voor ouders."),
                  ("onderzoeker", "Goede vraag. Het LDJ heeft het LVB-kenmerk en CBCL-paren voor MST; "
                                  "we nemen dit op in ons project.")],
     "pickup": {"by": "onderzoeker", "kind": "researcher", "institution": "ORG01 en Universiteit Utrecht",
                "supervisor": "Prof. Jansen", "months": 12, "entries": ["trajectories", "cbcl_6_18_pairs"],
                "link_demo_request": True}},
    {"title": _IAG, "asker": "praktijk-femke", "category": "target_group",
     "tags": {"intervention": ["iag"], "instrument": ["cbcl_6_18", "obvl"], "age_group": ["6-11", "12-17"]},
     "body": "Bij IAG zien we gezinnen met heel zware problemen én gezinnen waar het eigenlijk al redelijk gaat. "
             "Hebben gezinnen met ernstige problemen bij de start (CBCL in het klinische gebied, hoge OBVL) "
             "meer of juist minder baat bij IAG?",
     "votes": ["praktijk", "praktijk-joost"],
     "comments": [("praktijk", "Wij willen dit ook graag weten voor onze intake.")],
     "pickup": {"by": "student", "kind": "student", "institution": "Hogeschool Utrecht",
                "supervisor": "Dr. Bakker", "months": 6, "entries": ["cbcl_6_18_pairs", "obvl_pairs"]},
     "answer": ("Gezinnen die in het **klinische gebied** starten, gaan het meest vooruit: gemiddeld 9 T-punten "
                "op de CBCL-totaalschaal, tegen 3 punten bij gezinnen die niet klinisch starten. Ook na correctie "
                "voor leeftijd en geslacht blijft dat verschil. Voor de praktijk: ernstige problemen bij de start "
                "zijn geen reden om IAG af te raden.",
                "https://www.hu.nl/onderzoek/scripties/iag-ernst-bij-start")},
    {"title": _FOSTER, "asker": "praktijk-joost", "category": "outcome",
     "tags": {"intervention": ["pleegzorg", "therapeutische_pleegzorg"], "instrument": ["obvl"],
              "age_group": ["0-5", "6-11"]},
     "body": "Pleegouders vullen bij de start de OBVL in. Wij vragen ons af of een hoge opvoedingsbelasting "
             "een signaal is dat de plaatsing dreigt af te breken, zodat we die pleeggezinnen eerder extra "
             "ondersteuning kunnen bieden.",
     "votes": ["praktijk", "praktijk-femke"],
     "comments": [("praktijk-aisha", "Zou het helpen om ook de OBVL halverwege mee te nemen?"),
                  ("praktijk-joost", "Ja, als die er is. Bij ons wordt hij na zes maanden opnieuw afgenomen.")]},
    {"title": _DUPLICATE, "asker": "praktijk-aisha", "category": "outcome",
     "tags": {"intervention": ["pleegzorg"], "instrument": ["obvl"]},
     "body": "Hangt stress bij pleegouders samen met het voortijdig afbreken van de plaatsing?",
     "votes": ["praktijk-femke"], "merge_into": _FOSTER},
    {"title": _SDQ, "asker": "praktijk-aisha", "category": "target_group",
     "tags": {"intervention": ["kamertraining"], "instrument": ["sdq"], "age_group": ["18-23"]},
     "body": "De SDQ is gemaakt voor kinderen tot 17 jaar. In kamertraining zijn veel jongeren 18 of ouder. "
             "Meet de zelfrapportage bij hen nog iets zinnigs, of kunnen we beter een ander instrument kiezen?",
     "votes": ["praktijk-joost"],
     "comments": [("student", "Interessant als scriptieonderwerp; weet iemand of de Nederlandse normen tot 18 "
                              "jaar lopen?")]},
    {"title": _VIB, "asker": "praktijk-joost", "category": "approach",
     "tags": {"intervention": ["vib"], "instrument": ["obvl"], "age_group": ["0-5", "6-11"]},
     "body": "Wij zetten VIB in bij gezinnen met baby's en bij gezinnen met basisschoolkinderen. "
             "Daalt de opvoedingsbelasting in beide groepen even sterk?",
     "votes": [], "comments": []},
    {"title": _CLIENT, "asker": "praktijk", "category": "outcome", "tags": {"instrument": ["cbcl_6_18"]},
     "body": "Ik wil voor een evaluatiegesprek de scores van een cliënt van vorig jaar terugzien.",
     "decline": "De Vraagbank is voor onderzoeksvragen over groepen cliënten, niet voor gegevens over één cliënt. "
                "Het LDJ bevat alleen gepseudonimiseerde gegevens; de scores van je cliënt vind je in BergOp."},
    {"title": _DAY, "asker": "praktijk-femke", "category": "outcome",
     "tags": {"intervention": ["dagbehandeling"], "instrument": ["cbcl_6_18"], "age_group": ["6-11"]},
     "body": "Onze teams hebben het gevoel dat kinderen in dagbehandeling sinds 2015 met zwaardere problemen "
             "binnenkomen en minder vooruitgaan. Klopt dat beeld, ook bij andere organisaties?",
     "submitted_only": True},
)


def seed_demo(engine: sa.Engine, password: str | None = None, catalog_dir: Path | None = None) -> int:
    """Demo content for `make demo`: questions in every status, with votes, comments, pick-ups and answers.

    Needs the accounts of `ldj demo-accounts`; adds the practitioners of DEMO_PRACTITIONERS (with
    `password`, so they can log in). Idempotent: a question whose title exists is left alone.
    Returns the number of questions created.
    """
    from . import governance

    existing = {u.name for u in governance.list_users(engine)}
    missing = [n for n in DEMO_NEEDS if n not in existing]
    if missing:
        raise NotFound(t("vb_demo_accounts_missing", names=", ".join(missing)))
    for name, display, organisation in DEMO_PRACTITIONERS:
        if name not in existing:
            governance.add_user(engine, name, display_name=display, organisation=organisation, roles=[MEMBER],
                                password=password)
    steward = "steward"
    with engine.connect() as conn:
        ids = {r.title: r.id for r in conn.execute(sa.select(questions.c.id, questions.c.title))}
    demo_request = next((r.id for r in governance.list_requests(engine, applicant="onderzoeker")
                         if r.status in governance.APPROVING), None)
    created = 0
    today = _now().date()
    for spec in DEMO_QUESTIONS:
        if spec["title"] in ids:
            continue
        qid = post(engine, spec["asker"], spec["title"], spec["body"], spec["category"], spec["tags"],
                   catalog_dir=catalog_dir)
        ids[spec["title"]] = qid
        created += 1
        if spec.get("submitted_only"):
            continue
        if "decline" in spec:
            decline(engine, steward, qid, spec["decline"])
            continue
        publish(engine, steward, qid)
        for voter in spec.get("votes", ()):
            vote(engine, voter, qid)
        for author, text in spec.get("comments", ()):
            comment(engine, author, qid, text)
        if "merge_into" in spec:
            merge_duplicate(engine, steward, qid, ids[spec["merge_into"]])
            continue
        if "pickup" in spec:
            p = spec["pickup"]
            pick_up(engine, p["by"], qid, kind=p["kind"], institution=p["institution"], supervisor=p["supervisor"],
                    planned_from=today, planned_until=today + timedelta(days=30 * p["months"]),
                    request_id=demo_request if p.get("link_demo_request") else None, entries=p["entries"],
                    catalog_dir=catalog_dir)
            if "answer" in spec:
                answer(engine, p["by"], qid, *spec["answer"])
    return created
