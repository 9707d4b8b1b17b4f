"""The research registry (brief section 8): what research runs with and beside the LDJ, so members learn
from each other and results go back to practice.

Two kinds of study, one list:
- `ldj`: every project an APO approval made (ldj.governance), with its organisation, period, research
  question and, once closed, its final report on what the results mean for practice, and the Vraagbank
  questions it takes up (the lineage from practice to research and back);
- `member`: research by members that does not use LDJ data, registered by a member, researcher, student
  or steward; whoever registered it (or a steward) finishes it with its result, or removes it.

The registry is public and names organisations, never people. User text is Markdown, shown only as
sanitised HTML (ldj.markup). Who may register and finish is the policy's (`study.register`,
`study.edit` in ldj.policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from urllib.parse import urlparse

import sqlalchemy as sa

from . import airlock, policy, store
from . import governance as gov
from . import vraagbank as vb
from .i18n import t
from .markup import render_markdown

LDJ = "ldj"
MEMBER = "member"
KINDS = (LDJ, MEMBER)
RUNNING = "running"
FINISHED = "finished"
WRITERS = tuple(r for r in policy.ROLES  # the roles that may register (for pages that still ask by role)
                if policy.allows(policy.Actor("-", frozenset({r})), "study.register"))
TITLE_CHARS = (5, 200)
SUMMARY_CHARS = (20, 5000)


@dataclass(frozen=True)
class Study:
    kind: str  # ldj | member
    id: int  # the project id (ldj) or the registry id (member)
    title: str
    organisation: str
    summary: str  # Markdown
    starts: date
    ends: date | None
    status: str  # running | finished
    result: str | None  # Markdown: the final report or the registered result
    url: str | None
    questions: tuple[tuple[int, str], ...] = ()  # Vraagbank questions (id, title) an LDJ project takes up
    released: int = 0  # outputs the project released through the airlock (ldj.airlock)
    mine: bool = False  # the viewer registered it (member studies)

    def summary_html(self) -> str:
        return render_markdown(self.summary)

    def result_html(self) -> str:
        return render_markdown(self.result or "")


def _text(value: str | None, field: str, bounds: tuple[int, int]) -> str:
    text = (value or "").strip()
    if not bounds[0] <= len(text) <= bounds[1]:
        raise gov.ValidationError(t("reg_bad_length", field=t(f"reg_field_{field}"), low=bounds[0], high=bounds[1],
                                    length=len(text)))
    return text


def _url(value: str | None) -> str | None:
    url = (value or "").strip()
    if not url:
        return None
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise gov.ValidationError(t("reg_bad_url", url=url))
    return url


def register(engine: sa.Engine, actor: policy.Actor | str | None, *, title: str, organisation: str, summary: str, starts: date,
             ends: date | None = None, url: str | None = None) -> int:
    """Register member research that does not use LDJ data; returns its id."""
    user = policy.actor_of(engine, actor)
    policy.check(user, "study.register")
    if ends is not None and ends < starts:
        raise gov.ValidationError(t("gov_bad_period", start=starts, end=ends))
    values = dict(title=_text(title, "title", TITLE_CHARS), organisation=_text(organisation, "organisation", (2, 200)),
                  summary=_text(summary, "summary", SUMMARY_CHARS), starts=starts, ends=ends, url=_url(url),
                  registered_by=user.name, created_at=datetime.now(timezone.utc))
    with engine.begin() as conn:
        return conn.execute(store.studies.insert().values(**values)).inserted_primary_key[0]


def _own_study(conn: sa.Connection, user: policy.Actor, study_id: int):
    row = conn.execute(sa.select(store.studies).where(store.studies.c.id == study_id,
                                                      store.studies.c.removed_at.is_(None))).first()
    if row is None:
        raise gov.NotFound(t("reg_unknown", id=study_id))
    policy.check(user, "study.edit", policy.Target(owner=row.registered_by, organisation=row.organisation))
    return row


def finish(engine: sa.Engine, actor: policy.Actor | str | None, study_id: int, result: str,
           url: str | None = None) -> None:
    """Record what a registered study found (for practice); by whoever registered it or a steward."""
    user = policy.actor_of(engine, actor)
    text = _text(result, "result", SUMMARY_CHARS)
    with engine.begin() as conn:
        row = _own_study(conn, user, study_id)
        if row.finished_at is not None:
            raise gov.WorkflowError(t("reg_already_finished", id=study_id))
        conn.execute(store.studies.update().where(store.studies.c.id == study_id).values(
            result=text, url=_url(url) or row.url, finished_at=datetime.now(timezone.utc)))


def remove(engine: sa.Engine, actor: policy.Actor | str | None, study_id: int) -> None:
    """Take a registered study off the list (kept in the store, marked removed)."""
    user = policy.actor_of(engine, actor)
    with engine.begin() as conn:
        _own_study(conn, user, study_id)
        conn.execute(store.studies.update().where(store.studies.c.id == study_id)
                     .values(removed_at=datetime.now(timezone.utc)))


def _ldj_studies(engine: sa.Engine, viewer: str | None, request_id: int | None = None) -> list[Study]:
    p, r = store.projects, store.data_requests
    query = (sa.select(p.c.id, p.c.request_id, p.c.title, p.c.status, p.c.starts, p.c.ends, p.c.final_report,
                       r.c.applicant_organisation, r.c.criteria)
             .select_from(p.join(r, r.c.id == p.c.request_id)))
    if request_id is not None:  # the project a request (or one of its amendments) belongs to
        query = query.where(p.c.id == sa.select(r.c.project_id).where(r.c.id == request_id).scalar_subquery())
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        released = airlock.released_per_project(conn)
    out = []
    for row in rows:
        questions = tuple((q.id, q.title) for q in vb.list_questions(engine, viewer, request_id=row.request_id))
        out.append(Study(LDJ, row.id, row.title, row.applicant_organisation,
                         (row.criteria or {}).get("aim_question", ""), row.starts, row.ends,
                         FINISHED if row.status == gov.PROJECT_CLOSED else RUNNING,
                         row.final_report if row.status == gov.PROJECT_CLOSED else None, None, questions,
                         released=released.get(row.id, 0)))
    return out


def study_of_request(engine: sa.Engine, request_id: int, viewer: str | None = None) -> Study | None:
    """The LDJ project an APO data request led to, as the registry shows it (None while not approved)."""
    found = _ldj_studies(engine, viewer, request_id)
    return found[0] if found else None


def _member_studies(engine: sa.Engine, viewer: str | None) -> list[Study]:
    s = store.studies
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s).where(s.c.removed_at.is_(None))).all()
    return [Study(MEMBER, row.id, row.title, row.organisation, row.summary, row.starts, row.ends,
                  FINISHED if row.finished_at else RUNNING, row.result, row.url,
                  mine=viewer is not None and row.registered_by == viewer) for row in rows]


def studies(engine: sa.Engine, viewer: str | None = None, *, kind: str | None = None, status: str | None = None,
            text: str | None = None) -> list[Study]:
    """The registry as `viewer` (None: the public) sees it: running studies first, newest start first.
    `text`: every word must occur in the title, organisation, summary or result (case-insensitive)."""
    if kind not in (None, *KINDS):
        raise gov.ValidationError(t("reg_bad_kind", kind=kind, allowed=", ".join(KINDS)))
    if status not in (None, RUNNING, FINISHED):
        raise gov.ValidationError(t("reg_bad_status", status=status))
    found = ([] if kind == MEMBER else _ldj_studies(engine, viewer)) + \
        ([] if kind == LDJ else _member_studies(engine, viewer))
    words = (text or "").lower().split()
    found = [st for st in found if (status is None or st.status == status) and
             all(w in f"{st.title} {st.organisation} {st.summary} {st.result or ''}".lower() for w in words)]
    return sorted(found, key=lambda st: (st.status != RUNNING, -st.starts.toordinal(), st.kind, st.id))


DEMO_STUDIES = (  # registrant, title, organisation, summary, start (years ago), result or None
    ("praktijk", "Samen beslissen in de ambulante gezinsbehandeling", "ORG01",
     "Hoe vaak beslissen ouders, jongeren en behandelaars **samen** over de doelen? Interviews met 30 gezinnen en "
     "hun behandelaars, zonder LDJ-gegevens.", 1, None),
    ("student", "Werkdruk en verloop bij gezinshuisouders", "Hogeschool Utrecht",
     "Een vragenlijst onder gezinshuisouders van drie SEJN-leden over werkdruk, steun en het besluit om te stoppen.",
     2, "Gezinshuisouders met vaste **respijtzorg** stoppen minder vaak; twee leden bieden die nu standaard aan."),
)


def demo(engine: sa.Engine) -> int:
    """The demo's registered studies (after `ldj demo-accounts`); safe to run twice. Returns how many were added."""
    with engine.connect() as conn:
        present = set(conn.execute(sa.select(store.studies.c.title)).scalars())
    added = 0
    for who, title, organisation, summary, years, result in DEMO_STUDIES:
        if title in present:
            continue
        starts = date.today().replace(month=1, day=1, year=date.today().year - years)
        study = register(engine, who, title=title, organisation=organisation, summary=summary, starts=starts,
                         ends=starts.replace(year=starts.year + 2))
        if result:
            finish(engine, who, study, result)
        added += 1
    return added
