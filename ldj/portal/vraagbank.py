"""The Vraagbank pages (brief section 4) over ldj.vraagbank, which checks every rule.

/vraagbank browses and searches the questions (public). `?vraag=N` opens one question with the buttons
its `actions` allow the visitor; `?nieuw=1` posts a question (members); `?mijn=1` is the visitor's own
page (asked, voted, picked up, with the answers); `?triage=1` is the steward's queue. The Atom feed and
the steward's CSV export are plain HTTP endpoints (`HANDLERS`, at the end). Links are relative to
the page, so they work under any prefix. User text is shown only as `body_html()`/`answer_html()`
(sanitised by ldj.markup); everything else is escaped.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

import panel as pn

from .. import airlock as al
from .. import governance as gov
from .. import policy, safe
from .. import registry
from .. import vraagbank as vb
from ..catalogue import load_entries
from .airlock import download_href
from .html import html_of, pane, text
from .layout import PortalHandler, Refusal, guarded, message
from .params import arg, flag, integer
from .visitor import Visitor

PAGE = "vraagbank"
FEED = "vraagbank/feed.atom"
EXPORT = "vraagbank/export.csv"
CSS = """
h2, h3, h4 { font-weight: 600; } h2 { font-size: 1.5em; margin: 0.4em 0; } h3 { font-size: 1.3em; }
h4 { font-size: 1.1em; margin: 0.8em 0 0.3em; }
.vbp-table { border-collapse: collapse; width: 100%; font-size: 0.95em; }
.vbp-table th, .vbp-table td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
.vbp-table td.num { text-align: right; }
.vbp-status { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e7eef6; color: #1f4e79;
              font-size: 0.85em; white-space: nowrap; }
.vbp-status.answered { background: #dff0d8; color: #2b6b2b; }
.vbp-status.submitted { background: #fcf8e3; color: #8a6d3b; }
.vbp-status.declined, .vbp-status.merged { background: #eee; color: #555; }
.vbp-tag { display: inline-block; margin: 0 4px 2px 0; padding: 0 6px; border: 1px solid #c7d4e2; border-radius: 4px;
           font-size: 0.85em; color: #333; }
.vbp-meta { color: #555; }
.vbp-error { color: #a94442; background: #f2dede; padding: 6px 10px; border-radius: 4px; }
.vbp-body { border-left: 3px solid #c7d4e2; padding-left: 12px; }
.vbp-answer { background: #f3f9f1; border-left: 3px solid #5a9e4b; padding: 4px 12px; }
.vbp-comment { border-top: 1px solid #eee; padding: 4px 0; }
.vbp-links a { margin-right: 1.2em; }
"""


def _html(template: str, **values) -> pn.pane.HTML:
    return pane(f"vraagbank/{template}", [CSS], **values)


def _text(value: str, tag: str = "p", css: str = "") -> pn.pane.HTML:
    return text(value, tag, css, [CSS])


def _day(value: datetime | date | None) -> str:
    return f"{value:%d-%m-%Y}" if value else ""


def _status(visitor: Visitor, status: str) -> dict:
    return {"code": status, "label": vb.status_label(status, visitor.language)}


def _tags(visitor: Visitor, tags: dict[str, tuple[str, ...]]) -> list[dict]:
    return [{"kind": vb.tag_kind_label(kind, visitor.language), "label": vb.tag_label(kind, code, visitor.language)}
            for kind in vb.TAG_KINDS for code in tags.get(kind, ())]


def _outcome(visitor: Visitor, q: vb.QuestionSummary | vb.Question) -> dict | None:
    """What became of a question: the answer, the merge target or the reason it was declined."""
    if q.status == vb.ANSWERED and q.answer_summary:
        return {"kind": "answered", "heading": visitor.t("vbp_answer"), "summary": q.answer_summary,
                "answered_on": visitor.t("vbp_answered_on", date=_day(q.answered_at)), "url": q.answer_url or "",
                "report": visitor.t("vbp_report")}
    if q.status == vb.MERGED and q.merged_into:
        before, _, after = visitor.t("vbp_merged_into", link="\0").partition("\0")
        return {"kind": "merged", "target": q.merged_into, "before": before, "after": after}
    if q.status == vb.DECLINED and q.decline_reason:
        return {"kind": "declined", "text": visitor.t("vbp_declined", reason=q.decline_reason)}
    return None


def _table(visitor: Visitor, items: list[vb.QuestionSummary], outcomes: bool = False) -> pn.pane.HTML:
    return _html("table.html.j2", **_table_values(visitor, items, outcomes))


def _table_values(visitor: Visitor, items: list[vb.QuestionSummary], outcomes: bool = False, count: str | None = None,
                  error: str = "") -> dict:
    """Questions as a table; with `outcomes`, each answer (or decline reason, merge) under its question."""
    heads = [visitor.t(k) for k in ("vbp_col_id", "vbp_col_title", "vbp_col_category", "vbp_col_status",
                                    "vbp_col_votes", "vbp_col_comments", "vbp_col_tags")]
    rows = [{"id": q.id, "title": q.title, "category": vb.category_label(q.category, visitor.language),
             "status": _status(visitor, q.status), "votes": q.votes, "comments": q.comment_count,
             "tags": _tags(visitor, q.tags), "outcome": _outcome(visitor, q) if outcomes else None} for q in items]
    return {"heads": heads, "rows": rows, "none": visitor.t("vbp_none"), "count": count, "error": error}


def _links(visitor: Visitor) -> pn.pane.HTML:
    links = [{"href": PAGE, "text": visitor.t("vbp_all_link")}]
    if visitor.allows("question.post"):
        links.append({"href": f"{PAGE}?nieuw=1", "text": visitor.t("vbp_post_link")})
    if not visitor.anonymous:
        links.append({"href": f"{PAGE}?mijn=1", "text": visitor.t("vbp_mine_link")})
    if visitor.allows("question.queue"):
        links.append({"href": f"{PAGE}?triage=1", "text": visitor.t("vbp_triage_link")})
    if visitor.allows("question.export"):
        links.append({"href": EXPORT, "text": visitor.t("vbp_export_link"), "download": True})
    links.append({"href": FEED, "text": visitor.t("vbp_feed_link"), "type": "application/atom+xml"})
    return _html("links.html.j2", links=links, note=visitor.t("vbp_login_to_ask") if visitor.anonymous else "")


# --- browsing ----------------------------------------------------------------------------------

def _browse(visitor: Visitor) -> pn.Column:
    language = visitor.language
    everyone = visitor.t("vbp_all")
    shown = vb.STATUSES if visitor.allows("question.queue") else vb.PUBLIC_STATUSES
    wide = dict(sizing_mode="stretch_width", min_width=150)
    text = pn.widgets.TextInput(name=visitor.t("vbp_search"), placeholder=visitor.t("vbp_search_placeholder"), **wide)
    status = pn.widgets.Select(name=visitor.t("vbp_status"), options={
        visitor.t("vbp_all_public"): "", **{vb.status_label(s, language): s for s in shown}}, **wide)
    category = pn.widgets.Select(name=visitor.t("vbp_category"), options={
        everyone: "", **{vb.category_label(c, language): c for c in vb.CATEGORIES}}, **wide)
    tag = pn.widgets.Select(name=visitor.t("vbp_tag"), options={
        everyone: "", **{f"{vb.tag_kind_label(kind, language)}: {label}": f"{kind}:{code}"
                         for kind, pairs in vb.tag_vocabulary(language, visitor.settings.catalog_dir).items()
                         for code, label in pairs}}, **wide)
    sort = pn.widgets.Select(name=visitor.t("vbp_sort"), options={visitor.t("vbp_sort_votes"): "votes",
                                                                  visitor.t("vbp_sort_newest"): "newest"}, **wide)
    listing = pn.pane.HTML(stylesheets=[CSS], sizing_mode="stretch_width")  # count and table change together

    def refresh(*_):
        kind, _, code = tag.value.partition(":")
        try:
            found = vb.list_questions(visitor.engine, visitor.name, status=status.value or None,
                                      category=category.value or None, tag=code or None, tag_kind=kind or None,
                                      text=text.value, sort=sort.value)
        except gov.GovernanceError as exc:
            listing.object = html_of("vraagbank/table.html.j2", **_table_values(visitor, [], error=str(exc)))
            return
        listing.object = html_of("vraagbank/table.html.j2", **_table_values(
            visitor, found, count=visitor.t("vbp_count", n=len(found))))

    for widget in (text, status, category, tag, sort):
        widget.param.watch(refresh, "value")
    refresh()
    return pn.Column(pn.Row(text, status, category, tag, sort, sizing_mode="stretch_width"), listing,
                     sizing_mode="stretch_width")


# --- one question ------------------------------------------------------------------------------

def _question(visitor: Visitor, question_id: int) -> pn.Column:
    """One question; after each action it is read again, so what shows is what the domain now holds."""
    feedback = pn.Column(sizing_mode="stretch_width")
    content = pn.Column(sizing_mode="stretch_width")

    def render() -> None:
        try:
            q = vb.get_question(visitor.engine, question_id, visitor.name, language=visitor.language)
        except gov.GovernanceError as exc:
            content.objects = [message(str(exc))]
            return
        content.objects = _question_parts(visitor, q, feedback, render)

    render()
    back = pane("link.html.j2", [CSS], href=PAGE, text="← " + visitor.t("vbp_back"), css="", button=False)
    return pn.Column(back, feedback, content, sizing_mode="stretch_width")


def _button(text: str, action: Callable[[], object], feedback: pn.Column, success: str, render: Callable[[], None],
            kind: str = "primary") -> pn.widgets.Button:
    button = pn.widgets.Button(name=text, button_type=kind)

    def click(_):
        with pn.io.hold():  # the message and the question as it now is reach the browser together
            if guarded(action, feedback, success):
                render()

    button.on_click(click)
    return button


def _question_parts(visitor: Visitor, q: vb.Question, feedback: pn.Column, render: Callable[[], None]) -> list:
    t, engine, language = visitor.t, visitor.engine, visitor.language
    who = q.asker_label
    meta = [x for x in (vb.category_label(q.category, language), t("vbp_asked_by", name=who) if who else "",
                        _day(q.published_at or q.created_at)) if x]
    released = _released(visitor, q.id)
    outcome = _outcome(visitor, q)
    if released and outcome and outcome["kind"] == "answered" and not q.answer_url:
        outcome = None  # the released output is the answer: its summary shows below, with the files
    parts: list = [_html("question.html.j2", q=q, status=_status(visitor, q.status), meta=meta,
                         tags=_tags(visitor, q.tags), outcome=outcome)]
    if released:
        parts.append(_html("released.html.j2", heading=t("vbp_answer"), releases=released))

    votes = [_html("votes.html.j2", votes=t("vbp_votes", n=q.votes), voted=t("vbp_voted") if q.viewer_voted else "")]
    if vb.VOTE in q.actions:
        votes.append(_button(t("vbp_vote"), lambda: vb.vote(engine, visitor.name, q.id), feedback,
                             t("vbp_vote_saved"), render))
    if vb.UNVOTE in q.actions:
        votes.append(_button(t("vbp_unvote"), lambda: vb.unvote(engine, visitor.name, q.id), feedback,
                             t("vbp_vote_removed"), render, "default"))
    parts.append(pn.Row(*votes, sizing_mode="stretch_width"))

    if q.active_pickups:
        parts.append(_text(t("vbp_pickups"), "h4"))
        for p in q.active_pickups:
            parts.append(_pickup(visitor, p, q.status == vb.PICKED_UP, feedback, render))
    parts += _comments(visitor, q, feedback, render)
    if vb.PICK_UP in q.actions:
        parts.append(_pickup_form(visitor, q, feedback, render))
    if vb.ANSWER in q.actions:
        parts.append(_answer_form(visitor, q, feedback, render))
    if q.actions & {vb.PUBLISH, vb.MERGE, vb.DECLINE}:
        parts.append(_triage_actions(visitor, q, feedback, render))
    if q.events:
        events = [{"at": e.at, "actor": e.actor_label, "status": vb.status_label(e.to_status, language),
                   "note": e.note or ""} for e in q.events]
        parts.append(_html("history.html.j2", heading=t("vbp_history"), events=events))
    return parts


def _released(visitor: Visitor, question_id: int) -> list[dict]:
    """The outputs released by the projects the question was picked up for (lineage: its answer): title,
    the researcher's description (through the sanitiser in the template) and the public files to download."""
    return [{"title": r.title, "label": visitor.t("alp_released_answer"), "description": r.description,
             "files": [{"href": download_href(r.id, f.file), "text": visitor.t("alp_download", file=f.file)}
                       for f in r.files if not f.file.endswith(safe.META_SUFFIX)]}
            for r in al.released_for_question(visitor.engine, question_id)]


def _pickup(visitor: Visitor, p: vb.Pickup, withdrawable: bool, feedback: pn.Column,
            render: Callable[[], None]) -> pn.Column:
    t = visitor.t
    line = t("vbp_pickup_line", kind=vb.pickup_kind_label(p.kind, visitor.language), institution=p.institution,
             supervisor=p.supervisor_label or "–", start=_day(p.planned_from), end=_day(p.planned_until))
    if p.picked_by_label:
        line += " " + t("vbp_by", name=p.picked_by_label)
    study = None
    if p.request_id is not None:  # lineage: the question's data request, and the project it became
        found = registry.study_of_request(visitor.engine, p.request_id, visitor.name)
        if found is not None:
            study = {"label": t("vbp_project"), "id": found.id, "title": found.title,
                     "status": t("reg_" + found.status)}
    parts: list = [_html("pickup.html.j2", line=line, request_id=p.request_id, study=study,
                         request_text=t("vbp_request_link", id=p.request_id) if p.request_id is not None else "",
                         entries=list(p.entries), entries_label=t("vbp_entries"))]
    if visitor.name and p.picked_by == visitor.name:
        row: list = []
        if p.request_id is None:
            mine = _own_requests(visitor)
            if visitor.allows("request.create"):
                parts.append(pane("link.html.j2", [CSS], href="aanvragen?new=1", text=t("vbp_ask_data"), css="",
                                  button=False))
            if mine:
                choice = pn.widgets.Select(name=t("vbp_request"), options=mine)
                row += [choice, _button(t("vbp_link_request"), lambda: vb.link_request(
                    visitor.engine, visitor.name, p.id, choice.value), feedback, t("vbp_linked"), render, "default")]
        if withdrawable:
            row.append(_button(t("vbp_withdraw"), lambda: vb.withdraw_pickup(visitor.engine, visitor.name, p.id),
                               feedback, t("vbp_withdrawn"), render, "warning"))
        if row:
            parts.append(pn.Row(*row))
    return pn.Column(*parts, sizing_mode="stretch_width")


def _own_requests(visitor: Visitor) -> dict[str, int]:
    """The visitor's own data requests (applicant or member): those a pick-up may be linked to."""
    return {f"#{r.id} {r.title}": r.id for r in gov.requests_for(visitor.engine, visitor.name)
            if r.applicant == visitor.name or visitor.name in r.members}


def _comments(visitor: Visitor, q: vb.Question, feedback: pn.Column, render: Callable[[], None]) -> list:
    t = visitor.t
    parts: list = [_text(f"{t('vbp_comments')} ({len(q.comments)})", "h4")]
    if not q.comments:
        parts.append(_text(t("vbp_no_comments"), css="vbp-meta"))
    steward = visitor.allows("question.comment_hide")
    for c in q.comments:
        head = " · ".join(x for x in (c.author_label, _day(c.created_at),
                                      t("vbp_hidden") if c.hidden else "") if x)
        shown = _html("comment.html.j2", head=head, body=c.body)
        if steward and not c.hidden:
            hide = _button(t("vbp_hide"), lambda c=c: vb.hide_comment(visitor.engine, visitor.name, c.id), feedback,
                           t("vbp_comment_hidden"), render, "light")
            parts.append(pn.Row(shown, hide, sizing_mode="stretch_width"))
        else:
            parts.append(shown)
    if vb.COMMENT in q.actions:
        text = pn.widgets.TextAreaInput(name=t("vbp_comment"), height=80, sizing_mode="stretch_width")
        parts += [text, _button(t("vbp_comment_send"), lambda: vb.comment(visitor.engine, visitor.name, q.id,
                                                                          text.value),
                                feedback, t("vbp_comment_saved"), render, "default")]
    return parts


def _pickup_form(visitor: Visitor, q: vb.Question, feedback: pn.Column, render: Callable[[], None]) -> pn.Column:
    t, language = visitor.t, visitor.language
    default = vb.STUDENT if visitor.has_role(vb.STUDENT) and not visitor.has_role(vb.RESEARCHER) else vb.RESEARCHER
    kind = pn.widgets.Select(name=t("vbp_pickup_kind"), value=default,
                             options={vb.pickup_kind_label(k, language): k for k in vb.PICKUP_KINDS})
    institution = pn.widgets.TextInput(name=t("vbp_institution"), value=visitor.organisation or "")
    supervisor = pn.widgets.TextInput(name=t("vbp_supervisor"))
    start = pn.widgets.DatePicker(name=t("vbp_from"), value=date.today())
    until = pn.widgets.DatePicker(name=t("vbp_until"), value=date.today() + timedelta(days=182))
    request = pn.widgets.Select(name=t("vbp_request"), options={t("vbp_no_request"): 0, **_own_requests(visitor)})
    entries = pn.widgets.MultiChoice(name=t("vbp_entries"), sizing_mode="stretch_width", options={
        f"{e.title.get(language, e.id)} ({e.id})": e.id for e in load_entries(visitor.settings.catalog_dir).values()})
    send = _button(t("vbp_pickup_send"), lambda: vb.pick_up(
        visitor.engine, visitor.name, q.id, kind=kind.value, institution=institution.value,
        supervisor=supervisor.value, planned_from=start.value, planned_until=until.value,
        request_id=request.value or None, entries=entries.value), feedback, t("vbp_picked_up"), render)
    return pn.Column(_text(t("vbp_pickup_heading"), "h4"), pn.Row(kind, institution, supervisor),
                     pn.Row(start, until, request), entries, send, sizing_mode="stretch_width")


def _answer_form(visitor: Visitor, q: vb.Question, feedback: pn.Column, render: Callable[[], None]) -> pn.Column:
    t = visitor.t
    summary = pn.widgets.TextAreaInput(name=t("vbp_summary"), height=120, sizing_mode="stretch_width")
    url = pn.widgets.TextInput(name=t("vbp_report_url"), placeholder="https://", sizing_mode="stretch_width")
    send = _button(t("vbp_answer_send"), lambda: vb.answer(visitor.engine, visitor.name, q.id, summary.value,
                                                           url.value), feedback, t("vbp_answered"), render)
    return pn.Column(_text(t("vbp_answer_heading"), "h4"), summary, url, send,
                     sizing_mode="stretch_width")


def _triage_actions(visitor: Visitor, q: vb.Question, feedback: pn.Column, render: Callable[[], None]) -> pn.Column:
    t, engine = visitor.t, visitor.engine
    parts: list = [_text(t("vbp_triage_heading"), "h4")]
    if vb.PUBLISH in q.actions:
        parts.append(_button(t("vbp_publish"), lambda: vb.publish(engine, visitor.name, q.id), feedback,
                             t("vbp_published"), render, "success"))
    if vb.MERGE in q.actions:
        targets = {f"#{s.id} {s.title}": s.id for s in vb.list_questions(engine, visitor.name, sort="newest")
                   if s.id != q.id}
        if targets:
            target = pn.widgets.Select(name=t("vbp_merge_into"), options=targets, sizing_mode="stretch_width")
            parts.append(pn.Row(target, _button(t("vbp_merge"), lambda: vb.merge_duplicate(
                engine, visitor.name, q.id, target.value), feedback, t("vbp_merged"), render, "default"),
                sizing_mode="stretch_width"))
    if vb.DECLINE in q.actions:
        reason = pn.widgets.TextAreaInput(name=t("vbp_decline_reason"), height=70, sizing_mode="stretch_width")
        parts += [reason, _button(t("vbp_decline"), lambda: vb.decline(engine, visitor.name, q.id, reason.value),
                                  feedback, t("vbp_declined_done"), render, "danger")]
    return pn.Column(*parts, sizing_mode="stretch_width")


# --- posting, my questions, triage ----------------------------------------------------------------

def _post_form(visitor: Visitor) -> pn.Column:
    visitor.check("question.post")
    t, language = visitor.t, visitor.language
    feedback = pn.Column(sizing_mode="stretch_width")
    title = pn.widgets.TextInput(name=t("vbp_title"), sizing_mode="stretch_width")
    body = pn.widgets.TextAreaInput(name=t("vbp_question"), height=180, sizing_mode="stretch_width")
    category = pn.widgets.Select(name=t("vbp_category"),
                                 options={vb.category_label(c, language): c for c in vb.CATEGORIES})
    tags = {kind: pn.widgets.CheckBoxGroup(name=vb.tag_kind_label(kind, language), inline=False,
                                           options={label: code for code, label in pairs})
            for kind, pairs in vb.tag_vocabulary(language, visitor.settings.catalog_dir).items()}
    send = pn.widgets.Button(name=t("vbp_post_send"), button_type="primary")

    def post(_):
        created: list[int] = []

        def act():
            created.append(vb.post(visitor.engine, visitor.name, title.value, body.value, category.value,
                                   {k: list(w.value) for k, w in tags.items()},
                                   catalog_dir=visitor.settings.catalog_dir))

        if guarded(act, feedback):
            feedback.append(_html("posted.html.j2", text=t("vbp_posted", id=created[0]), id=created[0],
                                  link=t("vbp_view_posted")))
            title.value, body.value = "", ""
            for widget in tags.values():
                widget.value = []

    send.on_click(post)
    columns = [pn.Column(_text(w.name, "b"), w) for w in tags.values()]
    return pn.Column(_text(t("vbp_post_heading"), "h3"), _text(t("vbp_post_intro")),
                     feedback, title, body, category, pn.Row(*columns), send, sizing_mode="stretch_width")


def _mine(visitor: Visitor) -> pn.Column:
    visitor.check("question.mine")
    mine = vb.my_questions(visitor.engine, visitor.name)
    t = visitor.t
    return pn.Column(_text(t("vbp_mine_heading"), "h3"), _text(t("vbp_mine_asked"), "h4"),
                     _table(visitor, mine.asked, outcomes=True),
                     _text(t("vbp_mine_voted"), "h4"), _table(visitor, mine.voted, outcomes=True),
                     _text(t("vbp_mine_picked"), "h4"),
                     _table(visitor, mine.picked_up, outcomes=True), sizing_mode="stretch_width")


def _triage(visitor: Visitor) -> pn.Column:
    visitor.check("question.queue")
    queue = vb.triage_queue(visitor.engine, visitor.name)
    t = visitor.t
    intro = t("vbp_triage_intro", n=len(queue)) if queue else t("vbp_triage_empty")
    return pn.Column(_text(t("vbp_triage_heading"), "h3"), _text(intro),
                     _table(visitor, queue), sizing_mode="stretch_width")


def view(visitor: Visitor) -> pn.viewable.Viewable:
    """/vraagbank: browse (public); ?vraag=N, ?nieuw=1, ?mijn=1, ?triage=1."""
    head = [_text(visitor.t("nav_vraagbank"), "h2"), _text(visitor.t("vbp_intro")), _links(visitor)]
    language = visitor.language
    question_id = arg("vraag", integer, language=language)
    if question_id is not None:
        return pn.Column(_links(visitor), _question(visitor, question_id), sizing_mode="stretch_width")
    if arg("nieuw", flag, False, language):
        return pn.Column(*head, _post_form(visitor), sizing_mode="stretch_width")
    if arg("mijn", flag, False, language):
        return pn.Column(*head, _mine(visitor), sizing_mode="stretch_width")
    if arg("triage", flag, False, language):
        return pn.Column(*head, _triage(visitor), sizing_mode="stretch_width")
    parts = list(head)
    if visitor.allows("question.queue"):
        waiting = len(vb.triage_queue(visitor.engine, visitor.name))
        if waiting:
            parts.append(pane("link.html.j2", [CSS], href=f"{PAGE}?triage=1", css="", button=False,
                              text=visitor.t("vbp_triage_intro", n=waiting)))
    return pn.Column(*parts, _browse(visitor), sizing_mode="stretch_width")


# --- plain HTTP endpoints ---------------------------------------------------------------------

class FeedHandler(PortalHandler):
    """GET {prefix}/vraagbank/feed.atom: the newest published questions, for everyone."""

    action = "page.vraagbank"

    def get(self):
        visitor = self.visitor()
        feed = vb.atom_feed(visitor.engine, visitor.settings.portal_url, visitor.language)
        self.set_header("Content-Type", "application/atom+xml; charset=utf-8")
        self.write(feed)


class ExportHandler(PortalHandler):
    """GET {prefix}/vraagbank/export.csv: every question as CSV, for the steward."""

    action = "question.export"

    def get(self):
        visitor = self.visitor()
        try:
            text = vb.export_csv(visitor.engine, visitor.name, visitor.language)  # the domain checks it too
        except policy.Refused as exc:
            raise Refusal(403, str(exc)) from None
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", 'attachment; filename="vraagbank.csv"')
        self.set_header("Cache-Control", "no-store")
        self.write("\ufeff" + text)  # byte-order mark: Excel then reads the file as UTF-8


HANDLERS = [(r"/vraagbank/feed(?:\.atom)?", FeedHandler), (r"/vraagbank/export\.csv", ExportHandler)]
