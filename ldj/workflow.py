"""The one workflow engine: states, the transitions between them, who may take each, and their events.

Data requests (`ldj.governance`), Vraagbank questions (`ldj.vraagbank`) and, next, the airlock's
releases each declare one `Workflow`: its states, its transitions (from-state -> to-state, each with
the `ldj.policy` action whose rule says who may take it; the policy stays the one place for
who-may), the table of the objects (their state in a column) and the append-only table of their
events. The engine moves an object (`move`), records its first event (`created`) and notes that
change nothing (`record`), reads the history (`history`) and lists the transitions an actor may take
now (`available`, for showing only the buttons that work). It knows no domain: governance and the
Vraagbank import it, never the other way round, and it has no web or CLI code.

Every event is a row of the workflow's events table (actor, time, from, to, comment; the comment is
stored as typed, newlines and all) and an entry in the access log (`ldj.audit`, action
`workflow.event`, outcome `recorded`, reason `transition`, `created` or `note` with the workflow, the
object, the states, the policy action and the comment, normalised as every access-log value is), in
the caller's transaction: the move, its event, its audit entry and whatever the caller changes with
it land together or not at all. Refused moves raise and leave no trace.

Two moves of the same object cannot both win: `move` reads the state under a row lock (PostgreSQL:
`SELECT ... FOR UPDATE`; the second waits, then sees the new state and is refused as illegal), and
writes it with a compare-and-set (`UPDATE ... WHERE state = <the state read>`; on SQLite, where
there is no row lock, the second writer waits for the first to commit, updates no row and gets
`WorkflowError`).

One events table per workflow, not one `workflow_events` table for all: `request_events` and
`question_events` stay as they are, each keyed by a foreign key to its own objects, with their
append-only triggers, their grants to the service role and every reader of them untouched; no
migration moves rows that the triggers exist to keep still. A workflow names its events table;
the airlock adds `release_events` (same columns, the same triggers, a line in
`ldj.store.APPEND_ONLY`) in its own migration. The access log is where all workflows meet.

Declaring a workflow::

    RELEASE = Workflow(
        name="release", table=store.releases, events=store.release_events, object_column="release_id",
        states=(SUBMITTED, IN_REVIEW, RETURNED, APPROVED, RELEASED, REJECTED, WITHDRAWN), initial=SUBMITTED,
        transitions=(Transition(SUBMITTED, IN_REVIEW, "release.start_review"), ...),
        label=status_label, illegal_text="al_illegal_transition", changed_text="al_changed_meanwhile")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from . import audit, policy
from .i18n import t

EVENT_COLUMNS = ("id", "from_status", "to_status", "actor", "at", "note")  # besides the object's column


class DomainError(Exception):
    """Base of every refusal of a domain rule (governance, Vraagbank, airlock); the message is for people.

    `ldj.governance.GovernanceError` is this class: it lives here so that `WorkflowError` is one."""


class WorkflowError(DomainError):
    """The object's state does not allow this; `current` and `wanted` name the states (None: not about one)."""

    def __init__(self, message: str, *, workflow: str | None = None, object_id: int | None = None,
                 current: str | None = None, wanted: str | None = None):
        super().__init__(message)
        self.workflow = workflow
        self.object_id = object_id
        self.current = current
        self.wanted = wanted


@dataclass(frozen=True)
class Transition:
    from_state: str
    to_state: str
    action: str  # the ldj.policy action whose rule says who may take it


@dataclass(frozen=True)
class Workflow:
    """One kind of object's life: data, checked when declared (states, policy actions, event columns)."""

    name: str  # "request", "question", "release": in the access log's entries
    states: tuple[str, ...]
    initial: str
    transitions: tuple[Transition, ...]
    table: sa.Table  # the objects: an integer `id` and `state_column`
    events: sa.Table  # append-only: `object_column` and EVENT_COLUMNS
    object_column: str  # the events' column naming the object ("request_id")
    state_column: str = "status"
    touch_column: str | None = "updated_at"  # set to the time of each move; None: no such column
    label: Callable[[str], str] = str  # a state for people
    illegal_text: str = "workflow_illegal_transition"  # i18n keys; fields id, workflow, current, wanted, allowed
    changed_text: str = "workflow_changed_meanwhile"
    any_of_text: str | None = None  # "one of" when several states are wanted at once (a decision)
    _next: Mapping[str, Mapping[str, Transition]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        known = set(self.states)
        assert self.initial in known, f"{self.name}: initial state {self.initial!r} is not a state"
        following: dict[str, dict[str, Transition]] = {s: {} for s in self.states}
        for step in self.transitions:
            assert {step.from_state, step.to_state} <= known, f"{self.name}: unknown state in {step}"
            assert step.to_state not in following[step.from_state], f"{self.name}: {step} is declared twice"
            policy.rule(step.action)  # ValueError for an action ldj.policy does not know
            following[step.from_state][step.to_state] = step
        assert self.state_column in self.table.c and "id" in self.table.c, f"{self.name}: table lacks id or state"
        assert self.touch_column is None or self.touch_column in self.table.c, f"{self.name}: no {self.touch_column}"
        missing = [c for c in (self.object_column, *EVENT_COLUMNS) if c not in self.events.c]
        assert not missing, f"{self.name}: events table {self.events.name} lacks {missing}"
        object.__setattr__(self, "_next", following)

    def next_states(self, state: str) -> tuple[str, ...]:
        """The states `state` may move to, in declaration order; () for a final state."""
        return tuple(self._next.get(state, {}))

    def transition(self, from_state: str, to_state: str) -> Transition | None:
        return self._next.get(from_state, {}).get(to_state)

    def steps(self, state: str) -> tuple[Transition, ...]:
        """The transitions out of `state`, in declaration order."""
        return tuple(self._next.get(state, {}).values())

    def illegal(self, object_id: int, current: str, wanted: str | Sequence[str]) -> WorkflowError:
        """The refusal of a move from `current` to `wanted` (or to any of several states)."""
        if isinstance(wanted, str):
            wanted_text = self.label(wanted)
        else:
            wanted_text = (f"{t(self.any_of_text)} ({', '.join(wanted)})" if self.any_of_text
                           else " | ".join(map(self.label, wanted)))
            wanted = "|".join(wanted)
        allowed = self.next_states(current)
        message = t(self.illegal_text, id=object_id, workflow=self.name, current=self.label(current),
                    wanted=wanted_text,
                    allowed=", ".join(map(self.label, allowed)) if allowed else t("workflow_nothing"))
        return WorkflowError(message, workflow=self.name, object_id=object_id, current=current, wanted=wanted)

    def check(self, object_id: int, current: str, wanted: str) -> Transition:
        """The transition from `current` to `wanted`, or the refusal (`WorkflowError`)."""
        step = self.transition(current, wanted)
        if step is None:
            raise self.illegal(object_id, current, wanted)
        return step


@dataclass(frozen=True)
class Event:
    id: int
    workflow: str
    object_id: int
    from_state: str | None  # None: the object's first event
    to_state: str
    actor: str
    at: datetime
    comment: str | None  # as typed


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def state(conn: sa.Connection, workflow: Workflow, object_id: int, *, lock: bool = False) -> str:
    """The object's state now (`lock`: held until the transaction ends, where the database has row locks)."""
    query = sa.select(workflow.table.c[workflow.state_column]).where(workflow.table.c.id == object_id)
    found = conn.execute(query.with_for_update() if lock else query).first()
    if found is None:
        raise LookupError(f"{workflow.name} {object_id} does not exist")
    return found[0]


def _write(conn: sa.Connection, workflow: Workflow, object_id: int, from_state: str | None, to_state: str,
           actor: policy.Actor, comment: str | None, at: datetime, reason: str, action: str | None,
           project: int | None) -> Event:
    if actor.name is None:
        raise ValueError("a workflow event needs an actor with a name")
    event_id = conn.execute(workflow.events.insert().values(
        {workflow.object_column: object_id, "from_status": from_state, "to_status": to_state, "actor": actor.name,
         "at": at, "note": comment})).inserted_primary_key[0]
    audit.log_access(conn, user=actor.name, action="workflow.event", outcome="recorded", project=project,
                     reason=audit.Reason(reason, {"workflow": workflow.name, "id": object_id, "event": event_id,
                                                  "from_state": from_state, "to_state": to_state, "rule": action,
                                                  "comment": comment}))
    return Event(event_id, workflow.name, object_id, from_state, to_state, actor.name, at, comment)


def move(conn: sa.Connection, workflow: Workflow, object_id: int, to_state: str, actor: policy.Actor,
         target: policy.Target | None = None, comment: str | None = None, *, from_state: str | None = None,
         values: Mapping[str, Any] | None = None, project: int | None = None) -> Event:
    """Move the object to `to_state`, in the caller's transaction, and return its event.

    Refused with `WorkflowError` (naming the current and the wanted state) when the workflow has no
    such transition from the current state, or when someone else moved the object meanwhile; with
    `policy.Refused` when the transition's policy action does not allow `actor` on `target`.
    `from_state`: the state the caller read (and based its decision on); the move then only happens
    from that state. Otherwise the state is read here, under a row lock. `values`: other columns of
    the object to set with the move. `project`: the project the object belongs to, for the access log."""
    current = from_state if from_state is not None else state(conn, workflow, object_id, lock=True)
    step = workflow.check(object_id, current, to_state)
    policy.check(actor, step.action, target)
    now = _now()
    table = workflow.table
    changes = {**(values or {}), workflow.state_column: to_state}
    if workflow.touch_column:
        changes.setdefault(workflow.touch_column, now)
    result = conn.execute(sa.update(table).where(table.c.id == object_id,
                                                 table.c[workflow.state_column] == current).values(changes))
    if result.rowcount != 1:  # moved between the caller's read and this write
        raise WorkflowError(t(workflow.changed_text, id=object_id, workflow=workflow.name), workflow=workflow.name,
                            object_id=object_id, current=current, wanted=to_state)
    return _write(conn, workflow, object_id, current, to_state, actor, comment, now, "transition", step.action,
                  project)


def created(conn: sa.Connection, workflow: Workflow, object_id: int, actor: policy.Actor,
            comment: str | None = None, *, at: datetime | None = None, project: int | None = None) -> Event:
    """The object's first event (nothing -> the initial state), once the caller inserted it in that state."""
    return _write(conn, workflow, object_id, None, workflow.initial, actor, comment, at or _now(), "created", None,
                  project)


def record(conn: sa.Connection, workflow: Workflow, object_id: int, actor: policy.Actor, comment: str | None,
           *, project: int | None = None) -> Event:
    """An event that changes no state (a note: a second pick-up, a linked request). Who may write it is
    the caller's check, made for the domain action that asks for the note."""
    current = state(conn, workflow, object_id)
    return _write(conn, workflow, object_id, current, current, actor, comment, _now(), "note", None, project)


def history(conn: sa.Connection | sa.Engine, workflow: Workflow, object_id: int) -> list[Event]:
    """The object's events, oldest first."""
    events = workflow.events
    query = sa.select(events).where(events.c[workflow.object_column] == object_id).order_by(events.c.id)
    if isinstance(conn, sa.Engine):
        with conn.connect() as connection:
            rows = connection.execute(query).all()
    else:
        rows = conn.execute(query).all()
    return [Event(r.id, workflow.name, r._mapping[workflow.object_column], r.from_status, r.to_status, r.actor,
                  _aware(r.at), r.note) for r in rows]


def available(workflow: Workflow, current: str, actor: policy.Actor,
              target: policy.Target | None = None) -> tuple[Transition, ...]:
    """The transitions `actor` may take from `current` on `target` now (the buttons that work)."""
    return tuple(step for step in workflow.steps(current) if policy.allows(actor, step.action, target))
