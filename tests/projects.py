"""An APO-approved project through the real workflow, for tests that need one: submitted by the
applicant, put in review by `steward`, approved by `apo1` and `apo2`, decided by `steward`."""

from __future__ import annotations

from datetime import date, timedelta

from ldj import governance as gov

CRITERIA = {"aim_question": "Werkt MST beter voor jongeren met LVB dan zonder?",
            "fit_with_aims": "Past bij wat werkt voor wie.", "answerable_with_ldj": "CBCL-paren per interventie.",
            "analyses": "Multilevel regressie op de verandering in T-score.",
            "practical_relevance": "Teams kiezen beter tussen MST en IAG.", "researchers": "Promovendus met begeleider."}


def add_committee(engine, password: str | None = None) -> None:
    """The steward and two APO members the workflow needs."""
    gov.add_user(engine, "steward", display_name="Steward", organisation="SEJN", roles=["steward"], password=password)
    for name, organisation in (("apo1", "UvA"), ("apo2", "RU")):
        gov.add_user(engine, name, display_name=name, organisation=organisation, roles=["apo"], password=password)


def approve(engine, applicant: str, entries: dict[str, list[str]], catalogue, *, members: list[str] = (),
            until: date | None = None, criteria: dict[str, str] = CRITERIA, title: str | None = None,
            steward: str = "steward", reviewers: tuple[str, str] = ("apo1", "apo2")) -> int:
    """The project of an approved request by `applicant` (access from yesterday until `until`)."""
    request = gov.create_request(engine, applicant, title=title or f"Project van {applicant}",
                                 applicant_organisation="ORG01",
                                 sejn_member=True, criteria=criteria, entries=entries, members=list(members),
                                 access_from=date.today() - timedelta(days=1),
                                 access_until=until or date.today() + timedelta(days=30), catalogue=catalogue)
    gov.submit(engine, request, applicant)
    gov.start_review(engine, request, steward)
    for reviewer in reviewers:
        gov.review(engine, request, reviewer, {i: 4 for i in range(1, 7)}, {}, "approve")
    return gov.decide(engine, request, steward).project_id
