"""The research registry: LDJ projects with their final report and Vraagbank questions, and members'
research without LDJ data, registered, finished and removed by the right people only."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ldj import governance as gov
from ldj import policy, registry, store
from ldj import vraagbank as vb
from projects import add_committee, approve

SUMMARY = "Wij volgen 40 gezinnen in de pleegzorg een jaar lang met interviews over de match."
REPORT = "Pleeggezinnen met een tweede begeleider breken minder vaak af; teams plannen dat nu vanaf de start."
CATALOGUE = {"trajectories": {"trajectory", "intervention"}}


@pytest.fixture
def engine(settings):
    engine = store.get_engine(settings)
    add_committee(engine)
    for name, organisation, roles in (("pia", "ORG01", ["member"]), ("anna", "ORG02", ["researcher"]),
                                      ("sam", "Hogeschool Utrecht", ["student"]), ("apo3", "VU", ["apo"])):
        gov.add_user(engine, name, display_name=name.capitalize(), organisation=organisation, roles=roles)
    return engine


def test_a_member_registers_and_finishes_research_the_public_reads_it(engine):
    sid = registry.register(engine, "pia", title="Matching in de pleegzorg", organisation="ORG01",
                            summary=SUMMARY, starts=date(2026, 1, 1), url="https://org01.nl/onderzoek")
    [study] = registry.studies(engine)
    assert (study.kind, study.id, study.status, study.organisation) == (registry.MEMBER, sid, registry.RUNNING, "ORG01")
    assert not study.mine and registry.studies(engine, "pia")[0].mine
    registry.finish(engine, "pia", sid, REPORT)
    [study] = registry.studies(engine, status=registry.FINISHED)
    assert study.result == REPORT and study.url == "https://org01.nl/onderzoek"
    with pytest.raises(gov.WorkflowError, match="al afgerond"):
        registry.finish(engine, "pia", sid, REPORT)


def test_only_the_registrant_or_a_steward_finishes_or_removes(engine):
    sid = registry.register(engine, "sam", title="Ouderbetrokkenheid bij IAG", organisation="Hogeschool Utrecht",
                            summary=SUMMARY, starts=date(2026, 2, 1))
    with pytest.raises(policy.Refused, match="pia") as refused:
        registry.finish(engine, "pia", sid, REPORT)
    assert refused.value.action == "study.edit"
    with pytest.raises(policy.Refused, match="apo3") as refused:
        registry.register(engine, "apo3", title="Een APO-studie", organisation="VU", summary=SUMMARY,
                          starts=date(2026, 1, 1))
    assert refused.value.action == "study.register"
    with pytest.raises(policy.Refused, match="Log in"):
        registry.register(engine, None, title="Anoniem", organisation="ORG01", summary=SUMMARY, starts=date.today())
    registry.remove(engine, "steward", sid)
    assert registry.studies(engine) == []
    with pytest.raises(gov.NotFound):
        registry.finish(engine, "sam", sid, REPORT)
    with engine.connect() as conn:  # kept in the store, marked removed
        assert conn.execute(store.studies.select()).one().removed_at is not None


@pytest.mark.parametrize("field, value, message", [
    ("title", "Kort", "titel: 5 tot 200"), ("summary", "Te kort.", "beschrijving: 20 tot 5000"),
    ("url", "javascript:alert(1)", "geen webadres"), ("ends", date(2025, 1, 1), "periode klopt niet")])
def test_bad_input_is_refused_with_a_clear_message(engine, field, value, message):
    fields = dict(title="Matching in de pleegzorg", organisation="ORG01", summary=SUMMARY, starts=date(2026, 1, 1))
    fields[field] = value
    with pytest.raises(gov.ValidationError, match=message):
        registry.register(engine, "pia", **fields)
    assert registry.studies(engine) == []


def test_ldj_projects_are_listed_with_their_question_and_final_report(engine):
    catalogue = CATALOGUE
    project = approve(engine, "anna", {"trajectories": ["trajectory", "intervention"]}, catalogue)
    request = gov.get_project(engine, project).request_id
    question = vb.post(engine, "pia", "Werkt IAG beter bij jonge kinderen?", "Wij zien verschillen per leeftijd.",
                       "approach", {"intervention": ["iag"]})
    vb.publish(engine, "steward", question)
    vb.pick_up(engine, "anna", question, kind="researcher", institution="UvA", supervisor=None,
               planned_from=date.today(), planned_until=date.today() + timedelta(days=60), request_id=request)
    registry.register(engine, "pia", title="Matching in de pleegzorg", organisation="ORG01", summary=SUMMARY,
                      starts=date(2020, 1, 1))

    ldj = registry.studies(engine, kind=registry.LDJ)
    assert [(s.id, s.status, s.organisation, s.result) for s in ldj] == [(project, registry.RUNNING, "ORG01", None)]
    assert ldj[0].questions == ((question, "Werkt IAG beter bij jonge kinderen?"),)
    assert ldj[0].summary.startswith("Werkt MST beter")  # the research question from the request
    assert registry.study_of_request(engine, request).id == project
    draft = gov.create_request(engine, "anna", title="Nog een concept", applicant_organisation="ORG02",
                               sejn_member=True, criteria={}, entries={}, members=[], catalogue=catalogue,
                               access_from=None, access_until=None)
    assert registry.study_of_request(engine, draft) is None  # not approved: no project yet
    gov.close_project(engine, project, "anna", REPORT)
    [closed] = registry.studies(engine, kind=registry.LDJ)
    assert (closed.status, closed.result) == (registry.FINISHED, REPORT)
    assert [s.kind for s in registry.studies(engine)] == [registry.MEMBER, registry.LDJ]  # running ones first
    assert [s.kind for s in registry.studies(engine, text="pleegzorg matching")] == [registry.MEMBER]


def test_the_public_registry_and_its_lineage_name_no_people(engine):
    """Issue 12 point 7: organisations, never people (the registrant, the applicant)."""
    project = approve(engine, "anna", {"trajectories": ["trajectory", "intervention"]}, CATALOGUE)
    request = gov.get_project(engine, project).request_id
    registry.register(engine, "pia", title="Matching in de pleegzorg", organisation="ORG01", summary=SUMMARY,
                      starts=date(2020, 1, 1))
    public = registry.studies(engine) + [registry.study_of_request(engine, request)]
    text = repr(public)
    assert "ORG01" in text and not [n for n in ("anna", "Anna", "pia", "Pia", "sam", "Sam") if f"'{n}'" in text]


def test_markdown_is_sanitised(engine):
    registry.register(engine, "pia", title="Matching in de pleegzorg", organisation="ORG01",
                      summary=SUMMARY + ' <script>alert(1)</script> <img src=x onerror="alert(1)">',
                      starts=date(2026, 1, 1))
    html = registry.studies(engine)[0].summary_html()
    assert "<script" not in html and "<img" not in html and "40 gezinnen" in html
    assert "&lt;script&gt;" in html  # shown as the text that was typed, never run


def test_the_demo_studies_are_added_once(engine):
    for name in ("praktijk", "student"):
        gov.add_user(engine, name, display_name=name, organisation="ORG01", roles=["member"])
    assert registry.demo(engine) == len(registry.DEMO_STUDIES)
    assert registry.demo(engine) == 0
    found = registry.studies(engine, kind=registry.MEMBER)
    assert sorted(s.status for s in found) == [registry.FINISHED, registry.RUNNING]
