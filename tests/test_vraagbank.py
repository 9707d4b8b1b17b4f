"""ldj/vraagbank.py: the question bank from posting to the answer, its rules, visibility, feed and export."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ldj import governance as gov
from ldj import policy
from ldj import store
from ldj import vraagbank as vb
from ldj.governance import NotFound, ValidationError, WorkflowError

ATOM = "{http://www.w3.org/2005/Atom}"
TAGS = {"instrument": ["cbcl_6_18"], "intervention": ["mst"], "age_group": ["12-17"]}
BODY = "Wij zien in ons team dat jongeren met een **LVB** vaker uitvallen. Werkt MST voor hen even goed?"


def today():
    return datetime.now(UTC).date()


@pytest.fixture
def engine(settings):
    return store.get_engine(settings)


@pytest.fixture
def people(engine):
    add = gov.add_user
    add(engine, "pia", display_name="Pia Praktijk", organisation="ORG01", roles=["member"])  # asks
    add(engine, "mo", display_name="Mo", organisation="ORG02", roles=["member"])  # votes
    add(engine, "noor", display_name="Noor", organisation="ORG03", roles=["member"])  # votes
    add(engine, "steve", display_name="Steve", organisation="SEJN", roles=["steward"])
    add(engine, "sam", display_name="Sam Student", organisation="Hogeschool Utrecht", roles=["student", "researcher"])
    add(engine, "rita", display_name="Rita", organisation="UU", roles=["researcher"])
    add(engine, "apo1", display_name="APO", organisation="RUG", roles=["apo"])
    return engine


def published(engine, asker="pia", title="Werkt MST even goed bij een LVB?", body=BODY, category="approach",
              tags=TAGS):
    qid = vb.post(engine, asker, title, body, category, tags)
    vb.publish(engine, "steve", qid)
    return qid


def pick(engine, actor, qid, **overrides):
    fields = dict(kind="student", institution="Hogeschool Utrecht", supervisor="Dr. Bakker",
                  planned_from=today(), planned_until=today() + timedelta(days=180))
    fields.update(overrides)
    return vb.pick_up(engine, actor, qid, **fields)


def data_request(engine, applicant="sam"):
    criteria = {k: "Uitgewerkt antwoord op dit criterium." for k in gov.CRITERIA}
    return gov.create_request(engine, applicant, title="MST en LVB", applicant_organisation="Hogeschool Utrecht",
                              sejn_member=True, criteria=criteria, entries={"trajectories": ["intervention"]},
                              members=[], access_from=today(), access_until=today() + timedelta(days=100),
                              catalogue={"trajectories": {"intervention", "lvb"}})


# --- the whole loop ---------------------------------------------------------------------------

def test_the_full_loop_by_three_users(people):
    engine = people
    qid = vb.post(engine, "pia", "  Werkt MST even goed   bij een LVB? ", BODY, "approach",
                  {"instrument": ["CBCL 6-18"], "intervention": "MST", "age_group": ["12-17"]})
    q = vb.get_question(engine, qid, "pia")
    assert (q.status, q.title, q.asker_organisation) == (vb.SUBMITTED, "Werkt MST even goed bij een LVB?", "ORG01")
    assert q.tags == {"instrument": ("cbcl_6_18",), "intervention": ("mst",), "age_group": ("12-17",)}
    assert vb.PUBLISH not in q.actions and vb.EDIT in q.actions

    assert [s.id for s in vb.triage_queue(engine, "steve")] == [qid]
    vb.publish(engine, "steve", qid)
    assert vb.vote(engine, "mo", qid) == 1
    assert vb.vote(engine, "noor", qid) == 2
    with pytest.raises(ValidationError, match="al gestemd"):
        vb.vote(engine, "mo", qid)
    assert vb.get_question(engine, qid).votes == 2
    said = vb.comment(engine, "mo", qid, "Bij ons **ook**: vooral bij de huiswerkopdrachten.")
    assert (said.author, said.author_name, said.body_html().count("<strong>")) == ("mo", "Mo", 1)

    pickup = pick(engine, "sam", qid, entries=["cbcl_6_18_pairs"])
    assert (pickup.kind, pickup.request_id, pickup.entries) == ("student", None, ("cbcl_6_18_pairs",))
    request_id = data_request(engine)
    assert vb.link_request(engine, "sam", pickup.id, request_id).request_id == request_id

    with pytest.raises(policy.Refused):
        vb.answer(engine, "rita", qid, "Ik weet het.", "https://uu.nl/x")  # did not pick it up
    done = vb.answer(engine, "sam", qid, "Even goed: **geen verschil** in T-score.", "https://hu.nl/scriptie/42")
    assert (done.status, done.answered_by, done.answer_url) == (vb.ANSWERED, "sam", "https://hu.nl/scriptie/42")
    assert "<strong>geen verschil</strong>" in done.answer_html()

    for user in ("pia", "mo", "noor"):  # the asker and the voters see the answer on their own page
        page = vb.my_questions(engine, user)
        mine = page.asked if user == "pia" else page.voted
        assert [(s.id, s.status, s.answer_url) for s in mine] == [(qid, vb.ANSWERED, "https://hu.nl/scriptie/42")]
        assert mine[0].answer_summary.startswith("Even goed") and "<strong>" in mine[0].answer_html()
    assert [s.id for s in vb.my_questions(engine, "sam").picked_up] == [qid]
    assert vb.my_questions(engine, "rita") == vb.MyQuestions([], [], [])

    events = vb.get_question(engine, qid, "steve").events
    assert [(e.from_status, e.to_status, e.actor) for e in events] == [
        (None, "submitted", "pia"), ("submitted", "published", "steve"), ("published", "picked_up", "sam"),
        ("picked_up", "picked_up", "sam"), ("picked_up", "answered", "sam")]
    assert str(request_id) in events[3].note


def test_a_data_request_lists_the_questions_it_takes_up_until_a_pickup_is_withdrawn(people):
    engine = people
    linked = published(engine, "pia", "Werkt MST even goed bij een LVB?")
    other = published(engine, "pia", "Voorspelt de OBVL afgebroken pleegzorg?")
    request_id = data_request(engine)
    pickup = pick(engine, "sam", linked, request_id=request_id)
    pick(engine, "sam", other)  # picked up, but without this request
    assert [q.id for q in vb.list_questions(engine, request_id=request_id)] == [linked]
    assert vb.list_questions(engine, request_id=data_request(engine)) == []
    vb.withdraw_pickup(engine, "sam", pickup.id)
    assert vb.list_questions(engine, request_id=request_id) == []


def test_merge_carries_votes_over_without_counting_anyone_twice(people):
    engine = people
    target = published(engine, "pia", "Voorspelt de OBVL afgebroken pleegzorg?")
    duplicate = published(engine, "mo", "Stress bij pleegouders en breakdown")
    vb.vote(engine, "noor", target)
    vb.vote(engine, "noor", duplicate)  # voted on both: counts once
    vb.vote(engine, "pia", duplicate)  # the target's asker: follows already, not added
    merged_target = vb.merge_duplicate(engine, "steve", duplicate, target)
    assert merged_target.id == target
    assert merged_target.votes == 2  # noor, and mo (the duplicate's asker)
    with engine.connect() as conn:
        voters = conn.execute(sa.select(store.question_votes.c.user_name, store.question_votes.c.carried_from)
                              .where(store.question_votes.c.question_id == target)
                              .order_by(store.question_votes.c.user_name)).all()
    assert [tuple(v) for v in voters] == [("mo", duplicate), ("noor", None)]
    dup = vb.get_question(engine, duplicate, "mo")
    assert (dup.status, dup.merged_into) == (vb.MERGED, target)
    assert [s.id for s in vb.my_questions(engine, "mo").voted] == [target]  # sees the target's answer later
    assert [s.merged_into for s in vb.my_questions(engine, "mo").asked] == [target]
    with pytest.raises(NotFound):
        vb.get_question(engine, duplicate)  # merged questions leave the public list
    assert "samengevoegd" in merged_target.events[-1].note
    with pytest.raises(NotFound):
        vb.vote(engine, "noor", duplicate)  # gone from view for everyone but its asker and stewards


def test_merge_needs_a_public_target_and_another_question(people):
    engine = people
    first = vb.post(engine, "pia", "Een eerste vraag", BODY, "outcome")
    second = vb.post(engine, "mo", "Een tweede vraag", BODY, "outcome")
    with pytest.raises(WorkflowError, match="gepubliceerde"):
        vb.merge_duplicate(engine, "steve", second, first)  # target still waits for triage
    with pytest.raises(ValidationError):
        vb.merge_duplicate(engine, "steve", second, second)
    with pytest.raises(NotFound):
        vb.merge_duplicate(engine, "steve", second, 999)


def test_decline_needs_a_reason_that_the_asker_reads(people):
    engine = people
    qid = vb.post(engine, "pia", "Scores van mijn cliënt opzoeken", "Kunnen jullie dit opzoeken?", "outcome")
    for reason in ("", "   ", "nee"):
        with pytest.raises(ValidationError, match="reden"):
            vb.decline(engine, "steve", qid, reason)
    assert vb.get_question(engine, qid, "pia").status == vb.SUBMITTED
    vb.decline(engine, "steve", qid, "De Vraagbank is voor vragen over groepen cliënten.")
    mine = vb.my_questions(engine, "pia").asked
    assert [(s.status, s.decline_reason) for s in mine] == [(vb.DECLINED, "De Vraagbank is voor vragen over groepen cliënten.")]
    with pytest.raises(NotFound):
        vb.get_question(engine, qid, "mo")
    with pytest.raises(WorkflowError, match="afgewezen"):
        vb.publish(engine, "steve", qid)


# --- rules ------------------------------------------------------------------------------------

@contextmanager
def refused(action: str, match: str | None = None):
    """A `policy.Refused` for `action` (and a message matching `match`)."""
    with pytest.raises(policy.Refused, match=match) as info:
        yield
    assert info.value.action == action


def test_role_violations_are_refused(people):
    engine = people
    with refused("question.post", match="Log in"):
        vb.post(engine, None, "Een vraag zonder login", BODY, "approach")
    with refused("question.post"):
        vb.post(engine, "rita", "Een onderzoeker post", BODY, "approach")  # practitioners post
    qid = vb.post(engine, "pia", "Werkt MST even goed bij een LVB?", BODY, "approach", TAGS)
    with pytest.raises(NotFound):
        vb.vote(engine, "mo", qid)  # not published yet: others cannot even see it
    for actor in ("pia", "mo", "sam", "apo1"):
        with refused("question.triage", match=actor):
            vb.publish(engine, actor, qid)
    vb.publish(engine, "steve", qid)
    with refused("question.vote", match="Log in"):
        vb.vote(engine, None, qid)
    with refused("question.comment", match="Log in"):
        vb.comment(engine, None, qid, "anoniem")
    with refused("question.vote", match="pia"):
        vb.vote(engine, "pia", qid)  # not on one's own question
    with refused("question.vote", match="rita"):
        vb.vote(engine, "rita", qid)
    with refused("question.vote", match="niet actief"):
        vb.vote(engine, "nobody", qid)  # an unknown account is not an active one
    with refused("question.pick_up"):
        pick(engine, "mo", qid)  # members do not pick up
    with refused("question.answer"):
        vb.answer(engine, "sam", qid, "Antwoord", "https://x.nl")  # not picked up by sam
    pickup = pick(engine, "sam", qid)
    with refused("question.answer"):
        vb.answer(engine, "mo", qid, "Antwoord", "https://x.nl")  # a member cannot answer someone else's pick-up
    with refused("question.pickup_manage"):
        vb.link_request(engine, "rita", pickup.id, data_request(engine, "rita"))  # not her pick-up
    with refused("question.link_request", match="sam"):
        vb.link_request(engine, "sam", pickup.id, data_request(engine, "rita"))  # not his request
    with refused("question.triage"):
        vb.merge_duplicate(engine, "sam", qid, qid)
    with refused("question.export"):
        vb.export_csv(engine, "pia")
    with refused("question.comment_hide"):
        vb.hide_comment(engine, "pia", 1)
    gov.deactivate(engine, "noor")
    with refused("question.vote", match="niet actief"):
        vb.vote(engine, "noor", qid)


def test_only_legal_transitions(people):
    engine = people
    qid = vb.post(engine, "pia", "Werkt MST even goed bij een LVB?", BODY, "approach")
    with pytest.raises(WorkflowError, match="ingediend"):
        vb.answer(engine, "steve", qid, "Antwoord", "https://x.nl")
    with pytest.raises(NotFound):
        pick(engine, "sam", qid)  # not published yet: sam cannot see it
    vb.publish(engine, "steve", qid)
    with pytest.raises(WorkflowError, match="gepubliceerd"):
        vb.publish(engine, "steve", qid)
    first = pick(engine, "sam", qid)
    second = pick(engine, "rita", qid, kind="researcher", supervisor=None, institution="UU")
    with pytest.raises(ValidationError):
        pick(engine, "sam", qid)  # already picked up by sam
    assert vb.withdraw_pickup(engine, "sam", first.id).status == vb.PICKED_UP  # rita still works on it
    assert vb.withdraw_pickup(engine, "rita", second.id).status == vb.PUBLISHED  # nobody left: published again
    with pytest.raises(WorkflowError):
        vb.withdraw_pickup(engine, "rita", second.id)
    steward_answer = vb.answer(engine, "steve", qid, "Al bekend uit eerder onderzoek.", "https://sejn.nl/r")
    assert steward_answer.status == vb.ANSWERED
    for action in (lambda: vb.decline(engine, "steve", qid, "Te laat voor een afwijzing."),
                   lambda: vb.vote(engine, "mo", qid), lambda: pick(engine, "sam", qid),
                   lambda: vb.answer(engine, "steve", qid, "Nog eens", "https://sejn.nl/r")):
        with pytest.raises(WorkflowError):
            action()


def test_input_is_validated_against_the_catalogue(people):
    engine = people
    for kwargs, match in (({"title": "kort"}, "titel"), ({"title": "x" * 201}, "titel"), ({"body": " "}, "vraag"),
                          ({"category": "doelgroep"}, "categorie"), ({"tags": {"instrument": ["XYZ"]}}, "XYZ"),
                          ({"tags": {"intervention": ["wandeltherapie"]}}, "wandeltherapie"),
                          ({"tags": {"age_group": ["12-18"]}}, "12-18"), ({"tags": {"colour": ["blue"]}}, "colour")):
        fields = dict(title="Een goede titel", body=BODY, category="outcome", tags=None) | kwargs
        with pytest.raises(ValidationError, match=match):
            vb.post(engine, "pia", **fields)
    qid = published(engine)
    with pytest.raises(ValidationError, match="begeleider"):
        pick(engine, "sam", qid, supervisor=" ")
    with pytest.raises(ValidationError):
        pick(engine, "sam", qid, planned_until=today() - timedelta(days=1))
    with pytest.raises(ValidationError):
        pick(engine, "sam", qid, kind="promovendus")
    with pytest.raises(ValidationError):
        pick(engine, "sam", qid, entries=["no_such_entry"])
    with pytest.raises(NotFound):
        pick(engine, "sam", qid, request_id=999)
    pick(engine, "sam", qid)
    for url in ("javascript:alert(1)", "ftp://x.nl/r", "verslag.pdf", ""):
        with pytest.raises(ValidationError, match="link"):
            vb.answer(engine, "sam", qid, "Samenvatting", url)
    with pytest.raises(ValidationError):
        vb.answer(engine, "sam", qid, "  ", "https://hu.nl/r")
    with pytest.raises(ValidationError):
        vb.comment(engine, "mo", qid, " ")


def test_asker_edits_until_triage_and_unvote_and_moderation(people):
    engine = people
    qid = vb.post(engine, "pia", "Een eerste titel", BODY, "outcome")
    edited = vb.update_question(engine, "pia", qid, title="Een betere titel", tags={"age_group": ["6-11"]})
    assert (edited.title, edited.tags["age_group"]) == ("Een betere titel", ("6-11",))
    with pytest.raises(NotFound):
        vb.update_question(engine, "mo", qid, title="Van een ander")
    vb.publish(engine, "steve", qid)
    with pytest.raises(WorkflowError):
        vb.update_question(engine, "pia", qid, title="Na publicatie")
    assert vb.update_question(engine, "steve", qid, title="Door de steward").title == "Door de steward"
    assert vb.vote(engine, "mo", qid) == 1
    assert vb.unvote(engine, "mo", qid) == 0
    with pytest.raises(ValidationError):
        vb.unvote(engine, "mo", qid)
    assert vb.vote(engine, "mo", qid) == 1  # may vote again after taking it back
    rude = vb.comment(engine, "noor", qid, "iets ongepasts")
    vb.hide_comment(engine, "steve", rude.id)
    assert vb.get_question(engine, qid, "mo").comments == ()
    assert [c.hidden for c in vb.get_question(engine, qid, "steve").comments] == [True]
    assert vb.list_questions(engine)[0].comment_count == 0
    with pytest.raises(NotFound):
        vb.hide_comment(engine, "steve", 999)


def test_actions_list_exactly_what_the_rules_allow(people):
    engine = people
    qid = published(engine)
    assert vb.get_question(engine, qid).actions == frozenset()
    assert vb.get_question(engine, qid, "mo").actions == {vb.VOTE, vb.COMMENT}
    assert vb.get_question(engine, qid, "pia").actions == {vb.COMMENT}
    assert vb.get_question(engine, qid, "sam").actions == {vb.COMMENT, vb.PICK_UP}
    assert vb.get_question(engine, qid, "steve").actions == {vb.EDIT, vb.MERGE, vb.DECLINE, vb.COMMENT, vb.ANSWER}
    vb.vote(engine, "mo", qid)
    mo = vb.get_question(engine, qid, "mo")
    assert mo.viewer_voted and mo.actions == {vb.UNVOTE, vb.COMMENT}
    pick(engine, "sam", qid)
    assert vb.get_question(engine, qid, "sam").actions == {vb.COMMENT, vb.ANSWER}
    assert vb.get_question(engine, qid, "rita").actions == {vb.COMMENT, vb.PICK_UP}  # a second project may join


# --- reading ----------------------------------------------------------------------------------

def test_visibility_for_visitors_askers_and_stewards(people):
    engine = people
    public = published(engine, "pia", "Een gepubliceerde vraag")
    vb.comment(engine, "mo", public, "Mee eens")
    pick(engine, "sam", public)
    waiting = vb.post(engine, "pia", "Een vraag die wacht", BODY, "outcome")
    declined = vb.post(engine, "mo", "Een afgewezen vraag", BODY, "outcome")
    vb.decline(engine, "steve", declined, "Dit is geen onderzoeksvraag.")

    assert [s.id for s in vb.list_questions(engine)] == [public]
    visitor = vb.get_question(engine, public)
    assert (visitor.asker, visitor.asker_name, visitor.viewer) == (None, None, None)
    assert visitor.asker_organisation == "ORG01"
    assert [(c.author, c.author_name, c.body) for c in visitor.comments] == [(None, None, "Mee eens")]
    assert [(p.picked_by, p.institution) for p in visitor.pickups] == [(None, "Hogeschool Utrecht")]
    assert all(e.actor is None and e.note is None for e in visitor.events)  # notes may name people
    outside = vb.get_question(engine, public, "noor")  # a member outside the question: no names either
    assert (outside.asker, outside.asker_name, outside.comments[0].author_name) == (None, None, None)
    assert outside.events[-1].note is None
    asker = vb.get_question(engine, public, "pia")  # the asker and whoever picked it up see each other
    assert "Sam Student" in asker.events[-1].note and asker.pickups[0].picked_by_name == "Sam Student"
    assert vb.get_question(engine, public, "sam").asker_name == "Pia Praktijk"
    for hidden in (waiting, declined):
        with pytest.raises(NotFound):
            vb.get_question(engine, hidden)
    with pytest.raises(NotFound):
        vb.get_question(engine, waiting, "mo")
    assert vb.get_question(engine, waiting, "pia").status == vb.SUBMITTED
    every = list(vb.STATUSES)
    assert {s.id for s in vb.list_questions(engine, "pia", status=every)} == {public, waiting}
    assert {s.id for s in vb.list_questions(engine, "mo", status=every)} == {public, declined}
    assert {s.id for s in vb.list_questions(engine, "steve", status=every)} == {public, waiting, declined}
    assert [s.id for s in vb.list_questions(engine, None, status=every)] == [public]
    with pytest.raises(NotFound):
        vb.get_question(engine, 999, "steve")


def test_names_only_for_the_question_s_people_and_stewards_labels_for_everyone_else(people):
    """Issue 12 point 7: a visitor, or a member outside the question, sees "een student van Hogeschool
    Utrecht", not the picker's, supervisor's, asker's or commenter's name, unless that person shows it."""
    engine = people
    qid = published(engine, "pia", "Een vraag met mensen erbij")
    vb.comment(engine, "mo", qid, "Mee eens")
    pick(engine, "sam", qid)
    vb.answer(engine, "sam", qid, "Ja, even goed.", "https://hu.nl/verslag")
    names = ("Pia Praktijk", "Sam Student", "Dr. Bakker", "'pia'", "'sam'", "'mo'", "'steve'")

    for viewer in (None, "noor", "rita"):  # the public, a member and a researcher outside the question
        q = vb.get_question(engine, qid, viewer)
        assert (q.asker, q.asker_name, q.asker_label) == (None, None, "een medewerker van ORG01")
        [p] = q.pickups
        assert (p.picked_by, p.picked_by_name, p.picked_by_label) == (None, None, "een student van Hogeschool Utrecht")
        assert (p.supervisor, p.supervisor_label) == (None, "een begeleider van Hogeschool Utrecht")
        assert (q.comments[0].author, q.comments[0].author_label) == (None, "een medewerker van ORG02")
        assert (q.answered_by, q.answered_by_label) == (None, "een student van Hogeschool Utrecht")
        assert all(e.actor is None and e.note is None and e.actor_label for e in q.events)
        assert [e.actor_label for e in q.events][:2] == ["een medewerker van ORG01", "een databeheerder van SEJN"]
        assert not [n for n in names if n in repr(q)], viewer

    asker = vb.get_question(engine, qid, "pia")  # the asker and whoever picked it up see each other
    assert (asker.pickups[0].picked_by_name, asker.pickups[0].supervisor) == ("Sam Student", "Dr. Bakker")
    assert asker.answered_by_label == "Sam Student" and asker.comments[0].author_name is None  # mo is not on it
    assert vb.get_question(engine, qid, "sam").asker_label == "Pia Praktijk"
    assert vb.get_question(engine, qid, "mo").comments[0].author_label == "Mo"  # one's own name
    steward = vb.get_question(engine, qid, "steve")
    assert (steward.asker, steward.pickups[0].picked_by, steward.comments[0].author) == ("pia", "sam", "mo")

    english = vb.get_question(engine, qid, None, language="en")
    assert (english.asker_label, english.pickups[0].picked_by_label) == ("a practitioner at ORG01",
                                                                        "a student at Hogeschool Utrecht")
    gov.set_show_name(engine, "sam", True, by="sam")  # sam chooses to show the name
    q = vb.get_question(engine, qid)
    assert (q.pickups[0].picked_by_label, q.answered_by_label) == ("Sam Student", "Sam Student")
    assert q.pickups[0].supervisor is None and q.asker_label == "een medewerker van ORG01"  # only sam's own name
    with pytest.raises(policy.Refused):
        gov.set_show_name(engine, "pia", True, by="sam")  # nobody chooses for someone else


def test_a_linked_project_s_members_see_the_picker_s_name(people):
    engine = people
    gov.add_user(engine, "rev1", display_name="R1", organisation="RUG", roles=["apo"])
    gov.add_user(engine, "rev2", display_name="R2", organisation="VU", roles=["apo"])
    qid = published(engine)
    request_id = data_request(engine, "rita")
    gov.update_request(engine, request_id, "rita", members=["sam"])
    gov.submit(engine, request_id, "rita")
    gov.start_review(engine, request_id, "steve")
    for reviewer in ("rev1", "rev2"):
        gov.review(engine, request_id, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
    gov.decide(engine, request_id, "steve")
    pick(engine, "sam", qid, request_id=request_id)
    assert vb.get_question(engine, qid, "rita").pickups[0].picked_by_name == "Sam Student"  # on sam's project
    assert vb.get_question(engine, qid, "noor").pickups[0].picked_by_name is None
    lineage = vb.list_questions(engine, None, request_id=request_id)  # the public lineage names nobody
    assert [q.id for q in lineage] == [qid] and "Sam" not in repr(lineage) and "Rita" not in repr(lineage)


def test_search_filters_and_sorting(people):
    engine = people
    mst = published(engine, "pia", "Werkt MST bij een LVB?", "Uitval bij 100% van de jongeren?", "approach",
                    {"intervention": ["mst"], "age_group": ["12-17"]})
    iag = published(engine, "mo", "Baat bij IAG", "Ernst bij de start en de CBCL.", "target_group",
                    {"intervention": ["iag"], "instrument": ["cbcl_6_18"]})
    foster = published(engine, "noor", "Breakdown in pleegzorg", "OBVL bij pleegouders.", "outcome",
                       {"intervention": ["pleegzorg"], "instrument": ["obvl"], "age_group": ["0-5"]})
    vb.vote(engine, "pia", iag)
    vb.vote(engine, "noor", iag)
    vb.vote(engine, "pia", foster)

    def ids(**kw):
        return [s.id for s in vb.list_questions(engine, **kw)]

    assert ids() == [iag, foster, mst]  # by votes, then newest
    assert ids(sort="newest") == [foster, iag, mst]
    assert ids(category="outcome") == [foster]
    assert ids(tag="mst") == [mst]
    assert ids(tag="cbcl_6_18", tag_kind="instrument") == [iag]
    assert ids(tag="cbcl_6_18", tag_kind="intervention") == []
    assert ids(text="cbcl") == [iag]  # case-insensitive, in the body
    assert ids(text="pleegzorg OBVL") == [foster]  # every word, title or body
    assert ids(text="pleegzorg IAG") == []
    assert ids(text="100%") == [mst] and ids(text="0%") == [mst] and ids(text="%") == [mst]  # % is literal
    assert ids(text="_") == []
    assert ids(status="answered") == []
    assert ids(limit=2, offset=1) == [foster, mst]
    first = vb.list_questions(engine)[0]
    assert (first.votes, first.tags["instrument"], first.tags["age_group"]) == (2, ("cbcl_6_18",), ())
    with pytest.raises(ValidationError):
        vb.list_questions(engine, sort="random")
    with pytest.raises(ValidationError):
        vb.list_questions(engine, status="open")


def test_stored_markdown_is_raw_and_rendered_safe(people):
    engine = people
    payload = 'Kijk <script>alert("x")</script> [hier](javascript:alert(1)) <img src=x onerror=alert(1)>'
    qid = published(engine, body=payload)
    q = vb.get_question(engine, qid)
    assert q.body == payload  # stored as typed
    html = q.body_html()
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;" in html


def test_atom_feed_parses_and_lists_only_published_questions(people):
    engine = people
    older = published(engine, "pia", "Een oudere gepubliceerde vraag", body="Met <script>alert(1)</script> erin")
    newer = published(engine, "mo", "Een nieuwere gepubliceerde vraag", tags={"intervention": ["iag"]})
    vb.post(engine, "noor", "Een vraag die nog wacht", BODY, "outcome")
    declined = vb.post(engine, "noor", "Een afgewezen vraag", BODY, "outcome")
    vb.decline(engine, "steve", declined, "Geen onderzoeksvraag.")

    root = ET.fromstring(vb.atom_feed(engine, "https://ldj.example/services/ldj-portal/", "nl"))
    assert root.tag == f"{ATOM}feed"
    assert root.find(f"{ATOM}title").text.startswith("Vraagbank")
    entries = root.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["Een nieuwere gepubliceerde vraag",
                                                             "Een oudere gepubliceerde vraag"]
    links = [e.find(f"{ATOM}link").get("href") for e in entries]
    assert links == [vb.question_link("https://ldj.example/services/ldj-portal", q) for q in (newer, older)]
    assert links[0] == f"https://ldj.example/services/ldj-portal/vraagbank?vraag={newer}"
    content = entries[1].find(f"{ATOM}content").text
    assert "<script" not in content and "&lt;script&gt;" in content
    assert {c.get("term") for c in entries[0].findall(f"{ATOM}category")} == {"approach", "intervention:iag"}
    assert "Pia" not in ET.tostring(root, encoding="unicode")  # no people's names in public content
    english = ET.fromstring(vb.atom_feed(engine, "https://ldj.example", "en"))
    assert english.find(f"{ATOM}title").text.startswith("LDJ question bank")


def test_csv_export_is_for_stewards_only(people):
    engine = people
    first = published(engine, "pia", "=HYPERLINK(\"https://evil.example\") een vraag")
    vb.vote(engine, "mo", first)
    declined = vb.post(engine, "mo", "Een afgewezen vraag", BODY, "outcome")
    vb.decline(engine, "steve", declined, "-geen onderzoeksvraag; zie de richtlijnen.")
    for actor in ("pia", "sam", "apo1", None):
        with pytest.raises(policy.Refused):
            vb.export_csv(engine, actor)
    rows = list(csv.DictReader(io.StringIO(vb.export_csv(engine, "steve")), delimiter=";"))
    assert [r["nummer"] for r in rows] == [str(first), str(declined)]
    assert rows[0]["titel"].startswith("'=HYPERLINK")  # never a formula in Excel
    assert (rows[0]["status"], rows[0]["stemmen"], rows[0]["vrager"]) == ("gepubliceerd", "1", "pia")
    assert rows[1]["reden afwijzing"].startswith("'-geen")
    english = list(csv.DictReader(io.StringIO(vb.export_csv(engine, "steve", "en")), delimiter=";"))
    assert english[1]["status"] == "declined"


def test_the_event_log_is_append_only(people):
    engine = people
    qid = published(engine)
    events = store.question_events
    for statement in (sa.update(events).where(events.c.question_id == qid).values(actor="someone else"),
                      sa.delete(events).where(events.c.question_id == qid)):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(statement)
    assert [e.actor for e in vb.get_question(engine, qid, "steve").events] == ["pia", "steve"]


def test_tag_vocabulary_comes_from_the_catalogue(sqlite_settings):
    vocabulary = vb.tag_vocabulary("nl")
    assert ("mst", "Multisysteemtherapie (MST)") in vocabulary["intervention"]
    assert ("cbcl_6_18", "CBCL 6-18 (ouderversie)") in vocabulary["instrument"]
    assert [code for code, _ in vocabulary["age_group"]] == ["0-5", "6-11", "12-17", "18-23"]
    assert vb.tag_label("age_group", "12-17", "en") == "12–17 years (adolescents)"
    assert [vb.status_label(s) for s in vb.STATUSES] == ["ingediend", "gepubliceerd", "opgepakt", "beantwoord",
                                                          "samengevoegd", "afgewezen"]
    assert [vb.category_label(c) for c in vb.CATEGORIES] == ["doelgroep", "aanpak", "resultaat"]


# --- demo content and the command line ------------------------------------------------------------

def demo_accounts(engine):
    for name, roles in (("steward", ["steward"]), ("onderzoeker", ["researcher"]),
                        ("student", ["student", "researcher"]), ("praktijk", ["member"])):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=roles)


def test_seed_demo_fills_every_status_once(engine):
    with pytest.raises(NotFound, match="demo-accounts"):
        vb.seed_demo(engine)
    demo_accounts(engine)
    assert vb.seed_demo(engine) == len(vb.DEMO_QUESTIONS)
    assert vb.seed_demo(engine) == 0  # idempotent
    everything = vb.list_questions(engine, "steward", status=list(vb.STATUSES))
    assert len(everything) == len(vb.DEMO_QUESTIONS)
    assert {s.status for s in everything} == set(vb.STATUSES)
    answered = [s for s in everything if s.status == vb.ANSWERED]
    assert answered and all(s.answer_summary and s.answer_url for s in answered)
    page = vb.my_questions(engine, "praktijk")
    assert any(s.status == vb.ANSWERED for s in page.voted)  # the demo practitioner sees an answer
    assert any(s.status == vb.DECLINED and s.decline_reason for s in page.asked)
    assert all(s.votes > 0 for s in vb.list_questions(engine) if s.status == vb.PICKED_UP)


LDJ = Path(sys.executable).parent / "ldj"


def ldj(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LDJ_")}
    env.update(LDJ_DATA_DIR=str(data_dir), LDJ_PROGRESS="never")
    result = subprocess.run([str(LDJ), *args], env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_the_command_line(sqlite_settings, tmp_path):
    data = sqlite_settings.data_dir
    engine = store.get_engine(sqlite_settings)
    demo_accounts(engine)
    assert "8 demovragen" in ldj("vraagbank", "demo", data_dir=data).stdout
    public = ldj("vraagbank", "list", data_dir=data).stdout
    assert "beantwoord" in public and "ingediend" not in public and "afgewezen" not in public
    queue = ldj("vraagbank", "queue", "--as", "steward", data_dir=data).stdout.split()
    waiting = int(queue[0])
    refused = ldj("vraagbank", "publish", str(waiting), "--as", "praktijk", data_dir=data, check=False)
    assert refused.returncode == 1 and "geen toegang" in refused.stderr and "Traceback" not in refused.stderr
    assert "gepubliceerd" in ldj("vraagbank", "publish", str(waiting), "--as", "steward", data_dir=data).stdout
    assert f"vraag {waiting}:" in ldj("vraagbank", "show", str(waiting), data_dir=data).stdout
    other = vb.post(engine, "praktijk", "Nog een vraag over dagbehandeling", BODY, "outcome")
    no_reason = ldj("vraagbank", "decline", str(other), "--reason", "nee", "--as", "steward", data_dir=data,
                    check=False)
    assert no_reason.returncode == 1 and "reden" in no_reason.stderr
    merged = ldj("vraagbank", "merge", str(other), "--into", str(waiting), "--as", "steward", data_dir=data)
    assert f"samengevoegd met vraag {waiting}" in merged.stdout
    out = tmp_path / "vraagbank.csv"
    ldj("vraagbank", "export", "--out", str(out), "--as", "steward", data_dir=data)
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig")), delimiter=";"))
    assert len(rows) == len(vb.DEMO_QUESTIONS) + 1
