"""ldj/workflow.py: the one workflow engine, on a tiny workflow of its own and on the real ones (data
requests, Vraagbank questions); on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ldj import audit, policy, store, workflow
from ldj import governance as gov
from ldj import vraagbank as vb
from ldj.workflow import Transition, Workflow, WorkflowError

# --- a tiny workflow of the test's own: tickets --------------------------------------------------

META = sa.MetaData()
TICKETS = sa.Table(
    "wf_test_tickets", META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("owner", sa.String(100)),
    sa.Column("resolution", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
TICKET_EVENTS = sa.Table(
    "wf_test_ticket_events", META,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.Integer, sa.ForeignKey("wf_test_tickets.id"), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
)
OPEN, DOING, DONE = "open", "doing", "done"
TICKET = Workflow(
    name="ticket", table=TICKETS, events=TICKET_EVENTS, object_column="ticket_id", states=(OPEN, DOING, DONE),
    initial=OPEN,
    transitions=(
        Transition(OPEN, DOING, "question.pick_up"),  # a researcher or student
        Transition(DOING, DONE, "request.decide"),  # a steward
        Transition(DOING, OPEN, "question.pickup_manage"),  # a steward, or whoever owns it
    ),
    label=lambda s: f"<{s}>",
)

RITA = policy.Actor("rita", frozenset({policy.RESEARCHER}))
SAM = policy.Actor("sam", frozenset({policy.STUDENT}))
STEVE = policy.Actor("steve", frozenset({policy.STEWARD}))
PIA = policy.Actor("pia", frozenset({policy.MEMBER}))
HOSTILE = "first line\nsecond\r\x1b[2Kforged\u2028line\ttab \u202eevil"


@pytest.fixture
def engine(settings):
    engine = store.get_engine(settings)
    META.create_all(engine)
    return engine


def new_ticket(engine, owner: str = "rita") -> int:
    with engine.begin() as conn:
        ticket = conn.execute(TICKETS.insert().values(status=OPEN, owner=owner)).inserted_primary_key[0]
        workflow.created(conn, TICKET, ticket, policy.Actor(owner, frozenset({policy.RESEARCHER})), "new")
    return ticket


def status(engine, ticket: int) -> str:
    with engine.connect() as conn:
        return workflow.state(conn, TICKET, ticket)


def move(engine, ticket: int, to: str, actor: policy.Actor, comment: str | None = None, **kw) -> workflow.Event:
    with engine.begin() as conn:
        target = policy.Target(owner=conn.execute(sa.select(TICKETS.c.owner).where(TICKETS.c.id == ticket)).scalar())
        return workflow.move(conn, TICKET, ticket, to, actor, target, comment, **kw)


def recorded(engine) -> list[audit.Entry]:
    """The workflow entries of the access log, oldest first."""
    return list(reversed(audit.entries(engine, outcome="recorded", limit=10_000)))


# --- declaring ------------------------------------------------------------------------------------

def test_a_workflow_is_checked_when_it_is_declared():
    base = dict(name="x", table=TICKETS, events=TICKET_EVENTS, object_column="ticket_id", states=(OPEN, DONE),
                initial=OPEN)
    assert Workflow(**base, transitions=(Transition(OPEN, DONE, "request.decide"),)).next_states(OPEN) == (DONE,)
    with pytest.raises(ValueError, match="unknown action"):
        Workflow(**base, transitions=(Transition(OPEN, DONE, "ticket.close"),))
    with pytest.raises(AssertionError, match="unknown state"):
        Workflow(**base, transitions=(Transition(OPEN, DOING, "request.decide"),))
    with pytest.raises(AssertionError, match="twice"):
        Workflow(**base, transitions=(Transition(OPEN, DONE, "request.decide"),) * 2)
    with pytest.raises(AssertionError, match="initial"):
        Workflow(**{**base, "initial": DOING}, transitions=())
    with pytest.raises(AssertionError, match="lacks"):
        Workflow(**{**base, "events": TICKETS}, transitions=())


def test_the_real_workflows_name_their_states_and_policy_actions():
    assert gov.WORKFLOW.next_states(gov.IN_REVIEW) == gov.DECISIONS
    assert gov.WORKFLOW.transition(gov.DRAFT, gov.SUBMITTED).action == "request.edit"
    assert gov.WORKFLOW.next_states(gov.REJECTED) == gov.WORKFLOW.next_states(gov.CLOSED) == ()
    assert vb.WORKFLOW.next_states(vb.PICKED_UP) == (vb.ANSWERED, vb.PUBLISHED)
    assert vb.WORKFLOW.transition(vb.SUBMITTED, vb.PUBLISHED).action == "question.triage"
    assert all(vb.WORKFLOW.next_states(s) == () for s in (vb.ANSWERED, vb.MERGED, vb.DECLINED))
    for flow in (gov.WORKFLOW, vb.WORKFLOW):
        assert {s.action for state in flow.states for s in flow.steps(state)} <= set(policy.RULES)


# --- moving -----------------------------------------------------------------------------------------

def test_an_illegal_transition_is_refused_naming_the_current_and_the_wanted_state(engine):
    ticket = new_ticket(engine)
    with pytest.raises(WorkflowError) as err:
        move(engine, ticket, DONE, STEVE)
    assert (err.value.current, err.value.wanted, err.value.object_id, err.value.workflow) == (OPEN, DONE, ticket,
                                                                                              "ticket")
    assert "<open>" in str(err.value) and "<done>" in str(err.value) and "<doing>" in str(err.value)  # and what can
    assert isinstance(err.value, gov.GovernanceError)  # the portal and the CLI show it as any domain refusal
    move(engine, ticket, DOING, RITA)
    move(engine, ticket, DONE, STEVE)
    with pytest.raises(WorkflowError, match="niets \\(eindstatus\\)") as err:  # a final state: nothing follows
        move(engine, ticket, OPEN, STEVE)
    assert (err.value.current, err.value.wanted) == (DONE, OPEN)
    with pytest.raises(WorkflowError, match="<lost>"):  # a state the workflow does not know
        move(engine, ticket, "lost", STEVE)
    assert status(engine, ticket) == DONE
    assert [e.to_state for e in workflow.history(engine, TICKET, ticket)] == [OPEN, DOING, DONE]


def test_the_policy_refuses_a_transition_and_nothing_is_written(engine):
    ticket = new_ticket(engine, owner="rita")
    with pytest.raises(policy.Refused) as refused:
        move(engine, ticket, DOING, PIA)  # a practitioner does not pick up
    assert refused.value.action == "question.pick_up"
    with pytest.raises(policy.Refused):
        move(engine, ticket, DOING, policy.VISITOR)
    move(engine, ticket, DOING, SAM)
    with pytest.raises(policy.Refused) as refused:
        move(engine, ticket, DONE, RITA)  # only a steward closes
    assert refused.value.action == "request.decide"
    with pytest.raises(policy.Refused):
        move(engine, ticket, OPEN, SAM)  # not hers: rita owns it
    assert status(engine, ticket) == DOING
    assert [(e.from_state, e.to_state, e.actor) for e in workflow.history(engine, TICKET, ticket)] == [
        (None, OPEN, "rita"), (OPEN, DOING, "sam")]
    assert len(recorded(engine)) == 2
    move(engine, ticket, OPEN, RITA)  # the owner may put it back
    assert status(engine, ticket) == OPEN


def test_a_move_sets_the_columns_it_is_given_and_the_time(engine):
    ticket = new_ticket(engine)
    move(engine, ticket, DOING, RITA)
    event = move(engine, ticket, DONE, STEVE, "fixed", values={"resolution": "works"})
    with engine.connect() as conn:
        row = conn.execute(sa.select(TICKETS).where(TICKETS.c.id == ticket)).one()
    assert (row.status, row.resolution) == (DONE, "works")
    assert row.updated_at.replace(tzinfo=UTC) == event.at and event.at.tzinfo is not None


def test_every_event_has_its_audit_entry_and_a_comment_is_stored_as_data(engine, tmp_path):
    start = datetime.now(UTC) - timedelta(seconds=1)
    ticket = new_ticket(engine)
    move(engine, ticket, DOING, RITA, HOSTILE)
    with engine.begin() as conn:
        note = workflow.record(conn, TICKET, ticket, STEVE, "a note\nwith two lines", project=7)
    move(engine, ticket, OPEN, STEVE, None)
    events = workflow.history(engine, TICKET, ticket)
    assert [(e.from_state, e.to_state, e.actor, e.comment) for e in events] == [
        (None, OPEN, "rita", "new"), (OPEN, DOING, "rita", HOSTILE), (DOING, DOING, "steve", "a note\nwith two lines"),
        (DOING, OPEN, "steve", None)]
    assert events[2] == note and all(start <= e.at <= datetime.now(UTC) for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)

    entries = recorded(engine)
    assert [(e.user, e.action, e.outcome, e.reason) for e in entries] == [
        ("rita", "workflow.event", "recorded", "created"), ("rita", "workflow.event", "recorded", "transition"),
        ("steve", "workflow.event", "recorded", "note"), ("steve", "workflow.event", "recorded", "transition")]
    assert [e.details["event"] for e in entries] == [e.id for e in events]
    assert [(e.details["from_state"], e.details["to_state"]) for e in entries] == [
        (e.from_state, e.to_state) for e in events]
    assert [e.details["rule"] for e in entries] == [None, "question.pick_up", None, "question.pickup_manage"]
    assert entries[1].details["comment"] == audit.clean(HOSTILE)  # escaped, one line
    assert entries[1].to_json()["details"]["comment"].startswith("first line\\u000asecond\\u000d\\u001b")
    assert not any(set(e.line()) & set("\n\r\x1b\u2028\u202e") for e in entries)
    assert entries[2].project == 7
    assert entries[1].message() == f"ticket {ticket}: open → doing (question.pick_up, gebeurtenis {events[1].id})"


def test_a_move_that_fails_later_in_its_transaction_leaves_no_event_and_no_audit_entry(engine):
    ticket = new_ticket(engine)
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            workflow.move(conn, TICKET, ticket, DOING, RITA, policy.Target(owner="rita"))
            raise RuntimeError("the caller's next step failed")
    assert status(engine, ticket) == OPEN
    assert len(workflow.history(engine, TICKET, ticket)) == len(recorded(engine)) == 1


def test_the_transitions_an_actor_may_take_now(engine):
    mine = policy.Target(owner="rita")
    assert [s.to_state for s in workflow.available(TICKET, OPEN, RITA, mine)] == [DOING]
    assert workflow.available(TICKET, OPEN, PIA, mine) == ()
    assert workflow.available(TICKET, OPEN, policy.VISITOR, mine) == ()
    assert [s.to_state for s in workflow.available(TICKET, DOING, STEVE, mine)] == [DONE, OPEN]
    assert [s.to_state for s in workflow.available(TICKET, DOING, RITA, mine)] == [OPEN]
    assert workflow.available(TICKET, DOING, SAM, mine) == ()
    assert workflow.available(TICKET, DONE, STEVE, mine) == ()
    inactive = policy.Actor("steve", frozenset({policy.STEWARD}), active=False)
    assert workflow.available(TICKET, DOING, inactive, mine) == ()
    # what `available` offers, `move` takes
    ticket = new_ticket(engine)
    for step in workflow.available(TICKET, OPEN, RITA, mine):
        move(engine, ticket, step.to_state, RITA)
    assert status(engine, ticket) == DOING


# --- concurrency ----------------------------------------------------------------------------------

def test_a_move_from_a_state_read_before_someone_else_moved_it_is_refused(engine):
    ticket = new_ticket(engine)
    read = status(engine, ticket)  # the caller decides on this ...
    move(engine, ticket, DOING, SAM)  # ... someone else moves it meanwhile ...
    with pytest.raises(WorkflowError, match="intussen") as err:  # ... so the move on the old read does nothing
        move(engine, ticket, DOING, RITA, from_state=read)
    assert (err.value.current, err.value.wanted) == (OPEN, DOING)
    assert [e.actor for e in workflow.history(engine, TICKET, ticket)] == ["rita", "sam"]
    assert len(recorded(engine)) == 2


def race(calls) -> tuple[list, list[BaseException]]:
    """Run `calls` at the same moment in threads; (their results, what they raised)."""
    barrier = threading.Barrier(len(calls))
    results, errors, lock = [], [], threading.Lock()

    def run(call):
        barrier.wait()
        try:
            value = call()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_two_concurrent_moves_from_the_same_state_only_one_wins(engine):
    for _ in range(3):
        ticket = new_ticket(engine)
        results, errors = race([lambda t=ticket: move(engine, t, DOING, RITA),
                                lambda t=ticket: move(engine, t, DOING, SAM)])
        assert len(results) == 1 and len(errors) == 1, errors
        assert isinstance(errors[0], WorkflowError) and errors[0].wanted == DOING
        [winner] = results
        assert [(e.to_state, e.actor) for e in workflow.history(engine, TICKET, ticket)][1:] == [(DOING, winner.actor)]
    assert len(recorded(engine)) == 3 * 2


@pytest.mark.databases("postgresql")
def test_on_postgresql_the_second_move_waits_for_the_row_lock_then_sees_the_new_state(engine):
    ticket = new_ticket(engine)
    outcome: dict[str, BaseException | workflow.Event] = {}

    def second():
        try:
            outcome["second"] = move(engine, ticket, DOING, SAM)
        except BaseException as exc:  # noqa: BLE001
            outcome["second"] = exc

    with engine.connect() as first:
        first.begin()
        workflow.move(first, TICKET, ticket, DOING, RITA, policy.Target(owner="rita"))
        thread = threading.Thread(target=second)
        thread.start()
        with engine.connect() as watch:  # wait until the second move is blocked on the row lock
            for _ in range(6000):
                waiting = watch.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%wf_test_tickets%' AND datname = current_database()")).scalar()
                watch.rollback()  # pg_stat_activity is a snapshot per transaction: take a new one
                if waiting or not thread.is_alive():
                    break
                threading.Event().wait(0.01)
        assert waiting == 1 and "second" not in outcome
        first.commit()
    thread.join()
    assert isinstance(outcome["second"], WorkflowError)
    assert (outcome["second"].current, outcome["second"].wanted) == (DOING, DOING)
    assert [e.actor for e in workflow.history(engine, TICKET, ticket)] == ["rita", "rita"]


# --- the real workflows ------------------------------------------------------------------------------

CATALOGUE = {"trajectories": {"intervention", "age_at_start"}}
CRITERIA = {k: "Uitgewerkt antwoord op dit criterium." for k in gov.CRITERIA}


@pytest.fixture
def people(engine):
    add = gov.add_user
    add(engine, "alice", display_name="Alice", organisation="ORG01", roles=["researcher"])
    add(engine, "steve", display_name="Steve", organisation="SEJN", roles=["steward"])
    add(engine, "steph", display_name="Steph", organisation="SEJN", roles=["steward"])
    add(engine, "rev1", display_name="rev1", organisation="RUG", roles=["apo"])
    add(engine, "rev2", display_name="rev2", organisation="VU", roles=["apo"])
    add(engine, "pia", display_name="Pia", organisation="ORG02", roles=["member"])
    add(engine, "sam", display_name="Sam", organisation="Hogeschool Utrecht", roles=["student"])
    return engine


def new_request(engine) -> int:
    today = datetime.now(UTC).date()
    return gov.create_request(engine, "alice", title="Wie heeft baat bij IAG?", applicant_organisation="ORG01",
                              sejn_member=True, criteria=CRITERIA, entries={"trajectories": ["intervention"]},
                              members=[], access_from=today, access_until=today + timedelta(days=30),
                              catalogue=CATALOGUE)


def audit_trail(engine, name: str) -> list[tuple]:
    return [(e.details["id"], e.details["from_state"], e.details["to_state"], e.user)
            for e in recorded(engine) if e.details["workflow"] == name]


def test_every_step_of_a_data_request_lands_in_the_access_log(people):
    engine = people
    rid = new_request(engine)
    gov.submit(engine, rid, "alice", note="eerste\nronde")
    gov.start_review(engine, rid, "steve")
    for reviewer in ("rev1", "rev2"):
        gov.review(engine, rid, reviewer, {n: 4 for n in range(1, 7)}, {}, "approve")
    project = gov.decide(engine, rid, "steve").project_id
    gov.close_project(engine, project, "alice", "Gezinnen met ernstige problemen bij de start gingen het meest "
                                                 "vooruit; teams bespreken dat nu bij de intake.")
    history = gov.request_history(engine, rid)
    assert [(e.from_status, e.to_status) for e in history] == [
        (None, "draft"), ("draft", "submitted"), ("submitted", "in_review"), ("in_review", "approved"),
        ("approved", "closed")]
    assert history[1].note == "eerste\nronde"
    assert audit_trail(engine, "request") == [(rid, e.from_status, e.to_status, e.actor) for e in history]
    assert [e.project for e in recorded(engine)][-1] == project
    with engine.connect() as conn:
        assert [e.id for e in workflow.history(conn, gov.WORKFLOW, rid)] == [e.id for e in history]


def test_the_engine_refuses_an_illegal_step_of_a_data_request(people):
    engine = people
    rid = new_request(engine)
    steward = policy.actor_for(engine, "steve")
    with pytest.raises(WorkflowError) as err:
        with engine.begin() as conn:
            workflow.move(conn, gov.WORKFLOW, rid, gov.APPROVED, steward)
    assert (err.value.current, err.value.wanted) == ("draft", "approved")
    assert "'concept' (draft)" in str(err.value) and "(approved)" in str(err.value)
    with pytest.raises(gov.WorkflowError, match="een besluit"):  # a decision: any of several statuses
        gov.decide(engine, rid, "steve")
    alice = policy.actor_for(engine, "alice")
    assert [s.to_state for s in workflow.available(gov.WORKFLOW, gov.DRAFT, alice, policy.Target(owner="alice"))] \
        == [gov.SUBMITTED]
    assert workflow.available(gov.WORKFLOW, gov.SUBMITTED, alice) == ()
    assert [s.to_state for s in workflow.available(gov.WORKFLOW, gov.IN_REVIEW, steward)] == list(gov.DECISIONS)
    assert workflow.available(gov.WORKFLOW, gov.IN_REVIEW, policy.actor_for(engine, "rev1")) == ()


def test_two_stewards_starting_the_same_review_only_one_wins(people):
    engine = people
    rid = new_request(engine)
    gov.submit(engine, rid, "alice")
    results, errors = race([lambda: gov.start_review(engine, rid, "steve"),
                            lambda: gov.start_review(engine, rid, "steph")])
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], gov.WorkflowError), errors
    assert [e.to_status for e in gov.request_history(engine, rid)].count("in_review") == 1
    assert gov.get_request(engine, rid).round == 1


def test_every_step_and_note_of_a_question_lands_in_the_access_log(people):
    engine = people
    qid = vb.post(engine, "pia", "Werkt MST even goed bij een LVB?", "Een vraag uit de praktijk.", "approach")
    vb.publish(engine, "steve", qid, note="gepubliceerd\r\nna overleg")
    today = datetime.now(UTC).date()
    vb.pick_up(engine, "sam", qid, kind="student", institution="Hogeschool Utrecht", supervisor="Dr. Bakker",
               planned_from=today, planned_until=today + timedelta(days=90))
    pickup = vb.pick_up(engine, "alice", qid, kind="researcher", institution="UU", supervisor=None,
                        planned_from=today, planned_until=today + timedelta(days=90))
    vb.withdraw_pickup(engine, "alice", pickup.id)  # sam still has it: a note, no status change
    vb.answer(engine, "sam", qid, "Even goed.", "https://hu.nl/scriptie/1")
    events = vb.get_question(engine, qid, "steve").events
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, "submitted"), ("submitted", "published"), ("published", "picked_up"), ("picked_up", "picked_up"),
        ("picked_up", "picked_up"), ("picked_up", "answered")]
    assert events[1].note == "gepubliceerd\r\nna overleg"
    assert audit_trail(engine, "question") == [(qid, e.from_status, e.to_status, e.actor) for e in events]
    assert [e.reason for e in recorded(engine)] == ["created", "transition", "transition", "note", "note",
                                                    "transition"]


def test_two_stewards_triaging_the_same_question_only_one_wins(people):
    engine = people
    qid = vb.post(engine, "pia", "Werkt MST even goed bij een LVB?", "Een vraag uit de praktijk.", "approach")
    results, errors = race([lambda: vb.publish(engine, "steve", qid),
                            lambda: vb.decline(engine, "steph", qid, "Dit is geen onderzoeksvraag.")])
    # Overlapping, one wins and the other is refused; on a busy machine the threads may also run one after
    # the other, and a published question may then be declined: either way no move starts from a state
    # the question had already left.
    assert len(results) + len(errors) == 2 and all(isinstance(e, gov.WorkflowError) for e in errors), errors
    events = vb.get_question(engine, qid, "steve").events
    assert len(events) == 1 + len(results)
    assert all(before.to_status == after.from_status for before, after in zip(events, events[1:]))
    assert all(e.current in (vb.SUBMITTED, vb.PUBLISHED, vb.DECLINED) for e in errors)
