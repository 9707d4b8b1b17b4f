"""ldj/governance.py: accounts, the APO request workflow, reviews and decisions, projects and grants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ldj import governance as gov
from ldj import policy
from ldj import store
from ldj.settings import get_settings

CATALOGUE = {
    "trajectories": {"trajectory", "client", "organisation", "intervention", "age_at_start", "gender"},
    "cbcl_scores": {"measurement", "moment", "total_t", "internalising_t", "externalising_t"},
    "sdq_pairs": {"trajectory", "sdq_total_start", "sdq_total_end"},
}
ENTRIES = {"cbcl_scores": ["total_t", "externalising_t"], "trajectories": ["intervention", "age_at_start"]}
CRITERIA = {
    "aim_question": "Which children improve in IAG, and is baseline severity a moderator?",
    "fit_with_aims": "What works for whom in daily youth care.",
    "answerable_with_ldj": "CBCL start and end scores per trajectory are in the LDJ.",
    "analyses": "Multilevel regression of T-score change on baseline, age and intervention.",
    "practical_relevance": "Teams learn which families benefit; results go back in a members' meeting.",
    "researchers": "PhD student supervised by a professor of youth care.",
}
REPORT = ("Families with severe problems at the start improved most in IAG; teams now discuss the CBCL "
          "at the start of care with every family.")


def today():
    return datetime.now(UTC).date()


@pytest.fixture
def engine(settings):
    return store.get_engine(settings)


@pytest.fixture
def people(engine):
    add = gov.add_user
    add(engine, "alice", display_name="Alice", organisation="ORG01", roles=["researcher"])  # the applicant
    add(engine, "bob", display_name="Bob", organisation="ORG01", roles=["researcher"])  # a project member
    add(engine, "carol", display_name="Carol", organisation="UU", roles=["researcher"])  # joins by amendment
    add(engine, "ext", display_name="Ext", organisation="Institute X", roles=["researcher"])  # external
    add(engine, "steve", display_name="Steve", organisation="SEJN", roles=["steward"])
    for name, org in [("rev1", "RUG"), ("rev2", "VU"), ("rev3", "UvA")]:
        add(engine, name, display_name=name, organisation=org, roles=["apo"])
    add(engine, "rev_same", display_name="Same org", organisation="org01 ", roles=["apo"])  # applicant's org
    add(engine, "rev_member", display_name="Member", organisation="LUMC", roles=["apo", "researcher"])
    return engine


def new_request(engine, applicant="alice", **overrides):
    fields = dict(title="Who benefits from IAG?", applicant_organisation="ORG01", sejn_member=True,
                  criteria=CRITERIA, entries=ENTRIES, members=["bob"], access_from=today() - timedelta(days=10),
                  access_until=today() + timedelta(days=100), catalogue=CATALOGUE)
    fields.update(overrides)
    return gov.create_request(engine, applicant, **fields)


SCORES = {1: 4, 2: 5, 3: 4, 4: 3, 5: 5, 6: 4}


def vote(engine, request_id, reviewer, v, **kw):
    return gov.review(engine, request_id, reviewer, SCORES, {1: "clear question"}, v, **kw)


def into_review(engine, request_id):
    gov.submit(engine, request_id, gov.get_request(engine, request_id).applicant)
    gov.start_review(engine, request_id, "steve")


def decided(engine, request_id, votes, conditions=None, **kw):
    into_review(engine, request_id)
    for reviewer, v in zip(["rev1", "rev2", "rev3"], votes):
        vote(engine, request_id, reviewer, v)
    return gov.decide(engine, request_id, "steve", conditions, **kw)


def to_status(engine, request_id, status):
    """Bring a fresh draft request to `status` through the public API."""
    if status == "draft":
        return
    if status == "submitted":
        gov.submit(engine, request_id, "alice")
    elif status == "in_review":
        into_review(engine, request_id)
    elif status == "revision_requested":
        decided(engine, request_id, ["revise", "revise"])
    elif status == "approved":
        decided(engine, request_id, ["approve", "approve"])
    elif status == "rejected":
        decided(engine, request_id, ["reject", "reject"])
    elif status == "closed":
        project_id = decided(engine, request_id, ["approve", "approve"]).project_id
        gov.close_project(engine, project_id, "alice", REPORT)
    assert gov.get_request(engine, request_id).status == status


def grant_set(grants):
    return {(g.user_name, g.entry, tuple(g.variables)) for g in grants}


# --- accounts --------------------------------------------------------------------------------

def test_password_hash_and_check(engine, monkeypatch):
    monkeypatch.setenv("LDJ_PASSWORD_HASH_COST", "14")  # the format carries the parameters
    get_settings.cache_clear()
    gov.add_user(engine, "pat", display_name="Pat", organisation="ORG02", roles=["researcher", "member"],
                 password="correct horse battery")
    gov.add_user(engine, "sam", display_name="Sam", organisation="ORG02", roles=["member"],
                 password="correct horse battery")
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(store.users.c.name, store.users.c.password_hash)).all())
    assert "correct horse battery" not in stored["pat"]
    assert stored["pat"].startswith("scrypt$16384$8$1$")
    assert stored["pat"] != stored["sam"]  # a random salt per hash
    assert gov.check_password(engine, "pat", "correct horse battery")
    assert not gov.check_password(engine, "pat", "correct horse battery ")
    assert not gov.check_password(engine, "pat", "")
    assert not gov.check_password(engine, "nobody", "correct horse battery")
    gov.deactivate(engine, "pat")
    assert not gov.check_password(engine, "pat", "correct horse battery")
    assert gov.get_user(engine, "pat").active is False


def test_hash_with_default_cost_verifies(monkeypatch):
    monkeypatch.delenv("LDJ_PASSWORD_HASH_COST")  # the suite hashes at 2^10 (tests/conftest.py)
    get_settings.cache_clear()
    stored = gov.hash_password("s3cret!")
    assert stored.startswith(f"scrypt${2**17}$") and "s3cret!" not in stored
    assert gov.verify_password(stored, "s3cret!")
    assert not gov.verify_password(stored, "s3cret")
    assert not gov.verify_password("plain$text", "s3cret!")


def test_roles_are_checked(engine):
    with pytest.raises(gov.ValidationError, match="admin"):
        gov.add_user(engine, "x", display_name="X", organisation="O", roles=["researcher", "admin"])
    gov.add_user(engine, "x", display_name="X", organisation="O", roles=["researcher"])
    with pytest.raises(gov.ValidationError, match="x"):
        gov.add_user(engine, "x", display_name="X", organisation="O", roles=["researcher"])
    assert gov.set_roles(engine, "x", ["apo", "steward"]).roles == ("apo", "steward")
    assert gov.get_user(engine, "x").roles == ("apo", "steward")


# --- the happy path --------------------------------------------------------------------------

def test_happy_path_creates_project_and_exact_grants(people):
    engine = people
    rid = new_request(engine)
    request = gov.get_request(engine, rid)
    assert request.status == "draft" and request.members == ["alice", "bob"] and request.round == 0
    gov.submit(engine, rid, "alice")
    gov.start_review(engine, rid, "steve")
    assert [r.id for r in gov.queue_for_reviewer(engine, "rev1")] == [rid]
    vote(engine, rid, "rev1", "approve")
    vote(engine, rid, "rev2", "approve", comment="well argued")
    assert gov.queue_for_reviewer(engine, "rev1") == []
    assert [r.id for r in gov.queue_for_reviewer(engine, "rev3")] == [rid]
    decision = gov.decide(engine, rid, "steve")
    assert decision.status == "approved" and decision.tally == {"approve": 2}

    request = gov.get_request(engine, rid)
    assert request.status == "approved" and request.project_id == decision.project_id
    project = gov.get_project(engine, decision.project_id)
    assert (project.title, project.status, project.starts, project.ends) == (
        "Who benefits from IAG?", "active", request.access_from, request.access_until)
    assert len(project.salt) == 32 and int(project.salt, 16) >= 0
    grants = gov.project_grants(engine, project.id)
    assert grant_set(grants) == {
        ("alice", "cbcl_scores", ("total_t", "externalising_t")),
        ("alice", "trajectories", ("intervention", "age_at_start")),
        ("bob", "cbcl_scores", ("total_t", "externalising_t")),
        ("bob", "trajectories", ("intervention", "age_at_start")),
    }
    assert len(grants) == 4
    assert all((g.valid_from, g.valid_until) == (project.starts, project.ends) for g in grants)
    assert grant_set(gov.active_grants(engine, "bob")) == {g for g in grant_set(grants) if g[0] == "bob"}
    assert gov.active_grants(engine, "carol") == []
    assert gov.granted_variables(engine, "alice", project.id, "cbcl_scores") == {"total_t", "externalising_t"}


def test_second_project_has_its_own_salt(people):
    one = decided(people, new_request(people), ["approve", "approve"]).project_id
    two = decided(people, new_request(people, title="Another"), ["approve", "approve"]).project_id
    assert one != two
    assert gov.get_project(people, one).salt != gov.get_project(people, two).salt


# --- illegal transitions ---------------------------------------------------------------------

ACTIONS = {
    "submit": ("submitted", lambda e, rid: gov.submit(e, rid, "alice")),
    "start_review": ("in_review", lambda e, rid: gov.start_review(e, rid, "steve")),
    "decide": ("approved|approved_with_conditions|rejected|revision_requested".split("|"),
               lambda e, rid: gov.decide(e, rid, "steve")),
}
ILLEGAL = [
    ("draft", "start_review"), ("draft", "decide"),
    ("submitted", "submit"), ("submitted", "decide"),
    ("in_review", "submit"), ("in_review", "start_review"),
    ("revision_requested", "start_review"), ("revision_requested", "decide"),
    ("approved", "submit"), ("approved", "start_review"), ("approved", "decide"),
    ("rejected", "submit"), ("rejected", "start_review"), ("rejected", "decide"),
    ("closed", "submit"), ("closed", "start_review"), ("closed", "decide"),
]


@pytest.mark.parametrize("status", sorted({s for s, _ in ILLEGAL}))
def test_illegal_transitions_are_refused_with_both_statuses(people, status):
    engine = people
    rid = new_request(engine)
    to_status(engine, rid, status)
    events_before = len(gov.request_history(engine, rid))
    for action in [a for s, a in ILLEGAL if s == status]:
        wanted, call = ACTIONS[action]
        with pytest.raises(gov.WorkflowError) as err:
            call(engine, rid)
        message = str(err.value)
        assert err.value.current == status
        assert f"({status})" in message or f"'{status}'" in message, message
        for w in [wanted] if isinstance(wanted, str) else wanted:
            assert w in message, message
        assert gov.get_request(engine, rid).status == status
    assert len(gov.request_history(engine, rid)) == events_before


def test_review_only_while_in_review(people):
    rid = new_request(people)
    gov.submit(people, rid, "alice")
    with pytest.raises(gov.WorkflowError, match="submitted"):
        vote(people, rid, "rev1", "approve")


def test_only_the_right_people_move_a_request(people):
    engine = people
    rid = new_request(engine)
    with pytest.raises(policy.Refused, match="bob") as refused:
        gov.submit(engine, rid, "bob")
    assert refused.value.action == "request.edit"
    gov.submit(engine, rid, "alice")
    with pytest.raises(policy.Refused, match="rev1") as refused:
        gov.start_review(engine, rid, "rev1")
    assert refused.value.action == "request.start_review"
    gov.start_review(engine, rid, "steve")
    with pytest.raises(policy.Refused) as refused:
        vote(engine, rid, "steve", "approve")
    assert refused.value.action == "request.review"
    vote(engine, rid, "rev1", "approve")
    vote(engine, rid, "rev2", "approve")
    with pytest.raises(policy.Refused) as refused:
        gov.decide(engine, rid, "rev1")
    assert refused.value.action == "request.decide"
    with pytest.raises(gov.WorkflowError, match="in_review"):
        gov.update_request(engine, rid, "alice", title="Changed while in review")


# --- reviews, conflicts, decisions ---------------------------------------------------------------

def test_conflict_of_interest_cannot_vote_but_may_abstain(people):
    engine = people
    rid = new_request(engine, members=["bob", "rev_member"])
    into_review(engine, rid)
    with pytest.raises(gov.ConflictOfInterest, match="ORG01"):  # same organisation, despite case and spaces
        vote(engine, rid, "rev_same", "approve")
    with pytest.raises(gov.ConflictOfInterest, match="rev_member"):  # a project member
        vote(engine, rid, "rev_member", "reject")
    assert gov.list_reviews(engine, rid) == []
    abstention = vote(engine, rid, "rev_same", None)
    assert abstention.vote is None and abstention.scores == SCORES
    assert gov.conflict_of_interest(engine, rid, "rev_member") is not None
    assert gov.conflict_of_interest(engine, rid, "rev1") is None
    vote(engine, rid, "rev1", "approve")
    with pytest.raises(gov.DecisionError, match="1"):  # the abstention is not a vote
        gov.decide(engine, rid, "steve")


def test_too_few_votes_refused_and_minimum_is_configurable(people):
    engine = people
    rid = new_request(engine)
    into_review(engine, rid)
    with pytest.raises(gov.DecisionError):
        gov.decide(engine, rid, "steve")
    vote(engine, rid, "rev1", "approve")
    with pytest.raises(gov.DecisionError, match="2"):
        gov.decide(engine, rid, "steve")
    assert gov.get_request(engine, rid).status == "in_review"
    vote(engine, rid, "rev2", "approve")
    with pytest.raises(gov.DecisionError, match="3"):
        gov.decide(engine, rid, "steve", min_votes=3)
    assert gov.decide(engine, rid, "steve", min_votes=2).status == "approved"


def test_tie_between_approve_and_reject_asks_for_revision(people):
    engine = people
    rid = new_request(engine)
    decision = decided(engine, rid, ["approve", "reject"])
    assert decision.status == "revision_requested" and decision.project_id is None
    assert gov.list_requests(engine, status="revision_requested")[0].id == rid
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.projects)).scalar_one() == 0


def test_a_second_review_in_the_round_replaces_the_first(people):
    engine = people
    rid = new_request(engine)
    into_review(engine, rid)
    vote(engine, rid, "rev1", "reject")
    vote(engine, rid, "rev1", "approve")
    vote(engine, rid, "rev2", "approve")
    assert [(r.reviewer, r.vote) for r in gov.list_reviews(engine, rid)] == [("rev1", "approve"), ("rev2", "approve")]
    assert gov.decide(engine, rid, "steve").status == "approved"


def test_approved_with_conditions_requires_conditions(people):
    engine = people
    rid = new_request(engine)
    with pytest.raises(gov.DecisionError, match="approved_with_conditions"):
        decided(engine, rid, ["approve", "approve_with_conditions"])
    assert gov.get_request(engine, rid).status == "in_review"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.projects)).scalar_one() == 0
    decision = gov.decide(engine, rid, "steve", "Report results per team only above 10 clients.")
    assert decision.status == "approved_with_conditions" and decision.project_id is not None
    request = gov.get_request(engine, rid)
    assert request.conditions == "Report results per team only above 10 clients."
    assert request.decision == "approved_with_conditions"
    assert len(gov.project_grants(engine, decision.project_id)) == 4


def test_conditions_with_a_plain_approval_are_refused(people):
    rid = new_request(people)
    with pytest.raises(gov.DecisionError, match="approved_with_conditions"):
        decided(people, rid, ["approve", "approve"], conditions="Something")


def test_unanimous_rule_selected_by_name(people):
    engine = people
    majority = new_request(engine)
    assert decided(engine, majority, ["approve", "approve", "reject"]).status == "approved"
    unanimous = new_request(engine)
    assert decided(engine, unanimous, ["approve", "approve", "reject"], rule="unanimous").status == "revision_requested"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.projects)).scalar_one() == 1
    with pytest.raises(gov.ValidationError, match="majority"):
        gov.get_rule("consensus")


@pytest.mark.parametrize("votes, majority, unanimous", [
    (["approve", "approve"], "approved", "approved"),
    (["approve", "approve_with_conditions"], "approved_with_conditions", "approved_with_conditions"),
    (["approve", "reject"], "revision_requested", "revision_requested"),
    (["approve", "revise"], "revision_requested", "revision_requested"),
    (["revise", "reject"], "revision_requested", "revision_requested"),
    (["reject", "reject", "approve"], "rejected", "rejected"),
    (["approve", "approve", "reject"], "approved", "revision_requested"),
    (["approve_with_conditions", "approve", "revise"], "approved_with_conditions", "revision_requested"),
    (["revise", "revise", "approve"], "revision_requested", "revision_requested"),
    (["reject", "reject", "reject"], "rejected", "rejected"),
])
def test_decision_rules(votes, majority, unanimous):
    assert gov.MajorityRule().decide(votes) == majority
    assert gov.get_rule("unanimous").decide(votes) == unanimous
    with pytest.raises(gov.DecisionError):
        gov.MajorityRule(min_votes=len(votes) + 1).decide(votes)


def test_resubmission_opens_round_two_and_old_votes_do_not_count(people):
    engine = people
    rid = new_request(engine)
    assert decided(engine, rid, ["revise", "revise"]).status == "revision_requested"
    assert gov.get_request(engine, rid).round == 1
    new_criteria = {"analyses": "Multilevel regression with a random intercept per team, as the APO asked."}
    gov.update_request(engine, rid, "alice", criteria=new_criteria)
    assert gov.get_request(engine, rid).criteria["aim_question"] == CRITERIA["aim_question"]  # merged
    gov.submit(engine, rid, "alice")
    gov.start_review(engine, rid, "steve")
    assert gov.get_request(engine, rid).round == 2
    assert [r.id for r in gov.queue_for_reviewer(engine, "rev1")] == [rid]  # reviewed round 1 only
    vote(engine, rid, "rev1", "approve")
    with pytest.raises(gov.DecisionError):  # two round-1 votes exist, but they do not count
        gov.decide(engine, rid, "steve")
    vote(engine, rid, "rev2", "approve")
    assert gov.decide(engine, rid, "steve").status == "approved"
    assert [(r.round, r.vote) for r in gov.list_reviews(engine, rid)] == [
        (1, "revise"), (1, "revise"), (2, "approve"), (2, "approve")]
    assert [r.vote for r in gov.list_reviews(engine, rid, round=2)] == ["approve", "approve"]


# --- content of the request --------------------------------------------------------------------

def test_external_applicant_needs_a_fee(people):
    engine = people
    rid = new_request(engine, "ext", applicant_organisation="Institute X", sejn_member=False, members=[])
    with pytest.raises(gov.ValidationError, match="fee|vergoeding"):
        gov.submit(engine, rid, "ext")
    assert gov.get_request(engine, rid).status == "draft"
    gov.update_request(engine, rid, "ext", fee_eur="1250.00")
    assert gov.submit(engine, rid, "ext").status == "submitted"
    assert gov.get_request(engine, rid).fee_eur == Decimal("1250.00")
    with pytest.raises(gov.ValidationError):  # members pay nothing
        new_request(engine, fee_eur=100)


def test_missing_criterion_refused_on_submission(people):
    rid = new_request(people, criteria={**CRITERIA, "practical_relevance": "  "})
    with pytest.raises(gov.ValidationError, match="practical_relevance"):
        gov.submit(people, rid, "alice")
    with pytest.raises(gov.ValidationError, match="feasibility"):
        new_request(people, criteria={**CRITERIA, "feasibility": "yes"})


@pytest.mark.parametrize("entries, named", [
    ({"cbcl_itemz": ["total_t"]}, "cbcl_itemz"),
    ({"cbcl_scores": ["total_t", "bsn"]}, "bsn"),
    ({"trajectories": ["intervention"], "sdq_pairs": ["sdq_total_start", "name"]}, "name"),
])
def test_unknown_entry_or_variable_refused(people, entries, named):
    with pytest.raises(gov.ValidationError, match=named):
        new_request(people, entries=entries)
    rid = new_request(people)
    with pytest.raises(gov.ValidationError, match=named):
        gov.update_request(people, rid, "alice", entries=entries, catalogue=CATALOGUE)
    assert gov.get_request(people, rid).entries == {k: v for k, v in sorted(ENTRIES.items())}


# --- amendments ---------------------------------------------------------------------------------

def test_amendment_adds_member_entry_and_time_only_after_its_own_approval(people):
    engine = people
    project_id = decided(engine, new_request(engine), ["approve", "approve"]).project_id
    project = gov.get_project(engine, project_id)
    later = project.ends + timedelta(days=60)
    aid = gov.create_amendment(engine, project_id, "alice", add_members=["carol"],
                               add_entries={"sdq_pairs": ["sdq_total_start", "sdq_total_end"]},
                               extend_until=later, reason="A second cohort and the SDQ.", catalogue=CATALOGUE)
    amendment = gov.get_request(engine, aid)
    assert (amendment.kind, amendment.project_id, amendment.status) == ("amendment", project_id, "draft")

    def unchanged():
        assert gov.active_grants(engine, "carol") == []
        assert gov.get_project(engine, project_id).ends == project.ends
        assert gov.active_grants(engine, "alice", on=project.ends + timedelta(days=1)) == []
        assert "sdq_pairs" not in {g.entry for g in gov.active_grants(engine, "alice")}

    unchanged()
    gov.submit(engine, aid, "alice")
    gov.start_review(engine, aid, "steve")
    gov.set_roles(engine, "carol", ["researcher", "apo"])
    with pytest.raises(gov.ConflictOfInterest, match="carol"):  # another organisation, but joins the project
        vote(engine, aid, "carol", "approve")
    vote(engine, aid, "rev1", "approve")
    unchanged()
    vote(engine, aid, "rev2", "approve")
    decision = gov.decide(engine, aid, "steve")
    assert (decision.status, decision.project_id) == ("approved", project_id)

    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.projects)).scalar_one() == 1
    assert gov.get_project(engine, project_id).ends == later
    assert gov.project_members(engine, project_id) == ["alice", "bob", "carol"]
    on = project.ends + timedelta(days=30)  # only valid because of the extension
    sdq = ("sdq_pairs", ("sdq_total_start", "sdq_total_end"))
    for person in ("alice", "bob", "carol"):
        assert grant_set(gov.active_grants(engine, person, on=on)) == {
            (person, "cbcl_scores", ("total_t", "externalising_t")),
            (person, "trajectories", ("intervention", "age_at_start")),
            (person, *sdq),
        }
    assert gov.active_grants(engine, "carol", on=later + timedelta(days=1)) == []
    # added access is not back-dated to the project's start
    assert gov.active_grants(engine, "carol", on=project.starts) == []
    assert {g.entry for g in gov.active_grants(engine, "bob", on=project.starts)} == {"cbcl_scores", "trajectories"}


def test_amendment_rules(people):
    engine = people
    project_id = decided(engine, new_request(engine), ["approve", "approve"]).project_id
    ends = gov.get_project(engine, project_id).ends
    with pytest.raises(gov.ValidationError):
        gov.create_amendment(engine, project_id, "alice", reason="nothing")
    with pytest.raises(gov.ValidationError, match="bob"):
        gov.create_amendment(engine, project_id, "alice", add_members=["bob"], reason="again")
    with pytest.raises(gov.ValidationError):
        gov.create_amendment(engine, project_id, "alice", extend_until=ends, reason="not later")
    with pytest.raises(policy.Refused, match="carol"):
        gov.create_amendment(engine, project_id, "carol", add_members=["carol"], reason="let me in")
    with pytest.raises(gov.ValidationError, match="nope"):
        gov.create_amendment(engine, project_id, "alice", add_entries={"nope": ["x"]}, reason="r",
                             catalogue=CATALOGUE)
    aid = gov.create_amendment(engine, project_id, "bob", extend_until=ends + timedelta(days=1), reason="more time")
    assert decided(engine, aid, ["reject", "reject"]).status == "rejected"
    assert gov.get_project(engine, project_id).ends == ends


# --- revocation, expiry, closing ----------------------------------------------------------------

def test_revocation_and_expiry_take_effect_at_the_next_read(people):
    engine = people
    project_id = decided(engine, new_request(engine), ["approve", "approve"]).project_id
    ends = gov.get_project(engine, project_id).ends
    assert len(gov.active_grants(engine, "bob", on=ends)) == 2
    assert gov.active_grants(engine, "bob", on=ends + timedelta(days=1)) == []  # expired the day after
    assert gov.active_grants(engine, "bob", on=today() - timedelta(days=11)) == []  # not started yet

    first = gov.active_grants(engine, "bob")[0]
    with pytest.raises(policy.Refused):
        gov.revoke_grant(engine, first.id, "alice")
    assert gov.revoke_grant(engine, first.id, "steve") is True
    assert gov.revoke_grant(engine, first.id, "steve") is False
    assert [g.id for g in gov.active_grants(engine, "bob")] != [] and first.id not in {
        g.id for g in gov.active_grants(engine, "bob")}
    assert len(gov.active_grants(engine, "alice")) == 2

    assert gov.revoke_user(engine, project_id, "alice", "steve") == 2
    assert gov.active_grants(engine, "alice") == []
    assert gov.project_members(engine, project_id) == ["bob"]
    revoked = [g for g in gov.project_grants(engine, project_id) if g.revoked_at is not None]
    assert len(revoked) == 3 and all(g.revoked_by == "steve" and g.revoked_at.tzinfo for g in revoked)

    gov.deactivate(engine, "bob")
    assert gov.active_grants(engine, "bob") == []


def test_closing_needs_a_final_report(people):
    engine = people
    rid = new_request(engine)
    project_id = decided(engine, rid, ["approve", "approve"]).project_id
    for report in ["", "   ", "Done.", "x" * 49]:
        with pytest.raises(gov.ValidationError, match="50"):
            gov.close_project(engine, project_id, "alice", report)
    assert gov.get_project(engine, project_id).status == "active"
    assert len(gov.active_grants(engine, "bob")) == 2
    with pytest.raises(policy.Refused):
        gov.close_project(engine, project_id, "rev1", REPORT)

    project = gov.close_project(engine, project_id, "alice", REPORT)
    assert project.status == "closed" and project.final_report == REPORT and project.closed_at.tzinfo
    assert gov.get_request(engine, rid).status == "closed"
    assert gov.active_grants(engine, "alice") == [] and gov.active_grants(engine, "bob") == []
    with pytest.raises(gov.WorkflowError):
        gov.close_project(engine, project_id, "alice", REPORT)
    with pytest.raises(gov.WorkflowError):
        gov.create_amendment(engine, project_id, "alice", extend_until=project.ends + timedelta(days=5),
                             reason="too late")


# --- audit ------------------------------------------------------------------------------------

def test_every_transition_has_an_event_with_actor_and_time(people):
    engine = people
    start = datetime.now(UTC)
    rid = new_request(engine)
    decided(engine, rid, ["revise", "revise"], note="Please name the analyses")
    gov.submit(engine, rid, "alice")
    gov.start_review(engine, rid, "steve")
    vote(engine, rid, "rev1", "approve")
    vote(engine, rid, "rev2", "approve")
    project_id = gov.decide(engine, rid, "steve").project_id
    gov.close_project(engine, project_id, "steve", REPORT)
    events = gov.request_history(engine, rid)
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [
        (None, "draft", "alice"),
        ("draft", "submitted", "alice"),
        ("submitted", "in_review", "steve"),
        ("in_review", "revision_requested", "steve"),
        ("revision_requested", "submitted", "alice"),
        ("submitted", "in_review", "steve"),
        ("in_review", "approved", "steve"),
        ("approved", "closed", "steve"),
    ]
    assert events[3].note == "Please name the analyses"
    end = datetime.now(UTC)
    assert all(e.at.tzinfo is not None and start - timedelta(seconds=1) <= e.at <= end for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)


@pytest.mark.parametrize("statement", [
    "UPDATE request_events SET actor = 'mallory'",
    "DELETE FROM request_events",
])
def test_request_events_are_append_only(people, statement):
    engine = people
    rid = new_request(engine)
    gov.submit(engine, rid, "alice")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert [e.actor for e in gov.request_history(engine, rid)] == ["alice", "alice"]


def test_who_may_see_a_request(people):
    draft = new_request(people)
    submitted = new_request(people, members=[])
    gov.submit(people, submitted, "alice")
    assert [r.id for r in gov.requests_for(people, "alice")] == [draft, submitted]
    assert [r.id for r in gov.requests_for(people, "bob")] == [draft]  # a member of the draft only
    assert [r.id for r in gov.requests_for(people, "rev1")] == [submitted]  # the APO sees what was submitted
    assert [r.id for r in gov.requests_for(people, "steve")] == [draft, submitted]
    assert gov.requests_for(people, "carol") == []
    with pytest.raises(policy.Refused):
        gov.request_for(people, draft, "carol")
    with pytest.raises(policy.Refused):
        gov.request_for(people, draft, "rev1")
    assert gov.request_for(people, submitted, "rev2").id == submitted


def test_projects_for_members_and_stewards(people):
    request = new_request(people)
    project = decided(people, request, ["approve", "approve"]).project_id
    assert [p.id for p in gov.projects_for(people, "bob")] == [project]
    assert [p.id for p in gov.projects_for(people, "steve")] == [project]
    assert gov.projects_for(people, "carol") == []


# --- names: a person's own choice ------------------------------------------------------------------

def test_show_name_is_off_by_default_and_set_from_the_command_line(settings, monkeypatch):
    from click.testing import CliRunner

    from ldj.cli import main
    from ldj.settings import get_settings

    monkeypatch.setenv("LDJ_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LDJ_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        added = runner.invoke(main, ["users", "add", "femke", "--display-name", "Femke de Vries", "--organisation",
                                     "ORG03", "--role", "member"])
        assert added.exit_code == 0, added.output
        shown = runner.invoke(main, ["users", "add", "joost", "--display-name", "Joost", "--organisation", "ORG07",
                                     "--role", "member", "--show-name"])
        assert shown.exit_code == 0, shown.output
        engine = store.get_engine(settings)
        assert (gov.get_user(engine, "femke").show_name, gov.get_user(engine, "joost").show_name) == (False, True)
        result = runner.invoke(main, ["users", "set-show-name", "femke", "yes"])
        assert result.exit_code == 0 and "naam zichtbaar" in result.output
        assert gov.get_user(engine, "femke").show_name is True
        assert runner.invoke(main, ["users", "set-show-name", "femke", "misschien"]).exit_code == 2
        unknown = runner.invoke(main, ["users", "set-show-name", "niemand", "no"])
        assert unknown.exit_code == 1 and "niemand" in unknown.output and "Traceback" not in unknown.output
    finally:
        get_settings.cache_clear()
