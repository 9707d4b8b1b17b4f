"""Data requests (researchers) and the APO review (APO members, the steward): pages over ldj.governance.

Every button calls one governance function with the visitor's name; governance checks the role and
the workflow step, so these pages hold no rule of their own. `?id=N` opens one request. HTML comes from
the templates in portal/templates/requests/; the applicant's text only through the sanitiser.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import panel as pn

from .. import governance as gov
from .. import vraagbank as vb
from ..catalogue import load_entries
from .html import html_of, markdown_html, pane, text
from .layout import guarded, message
from .params import arg, flag, identifier, integer
from .visitor import Visitor

CRITERIA_KEYS = {key: f"req_criterion_{i}" for i, key in enumerate(gov.CRITERIA, start=1)}


def _status(visitor: Visitor, status: str) -> str:
    key = f"gov_status_{status}"
    return visitor.t(key)


def _catalogue(visitor: Visitor):
    return load_entries(visitor.settings.catalog_dir)


def _request_table(visitor: Visitor, requests: list[gov.Request], base: str) -> pn.pane.HTML:
    if not requests:
        return pn.pane.Markdown(visitor.t("req_none"))
    rows = [{"id": r.id, "title": r.title, "applicant": r.applicant, "status": _status(visitor, r.status),
             "updated": f"{r.updated_at:%Y-%m-%d}"} for r in requests]
    heads = [visitor.t(k) for k in ("req_col_id", "req_col_title", "req_col_applicant", "req_col_status",
                                    "req_col_updated")]
    return pane("requests/table.html.j2", base=base, heads=heads, rows=rows)


def _details(visitor: Visitor, request: gov.Request) -> pn.Column:
    entries = _catalogue(visitor)
    sections = [{"heading": visitor.t(text_key), "text": request.criteria.get(key) or ""}
                for key, text_key in CRITERIA_KEYS.items()]
    if gov.AMENDMENT_REASON in request.criteria:
        sections.append({"heading": visitor.t("req_reason"), "text": request.criteria[gov.AMENDMENT_REASON]})
    questions = vb.list_questions(visitor.engine, visitor.name, request_id=request.id)  # lineage: from practice
    summary = markdown_html(visitor.t, "req_summary", status=_status(visitor, request.status),
                            applicant=request.applicant, organisation=request.applicant_organisation,
                            period=f"{request.access_from or '?'} – {request.access_until or '?'}",
                            members=", ".join(request.members) or "–")
    parts = [pane(
        "requests/details.html.j2", title=request.title, id=request.id, summary=summary,
        amendment_of=visitor.t("req_amendment_of", project=request.project_id)
        if request.kind == gov.AMENDMENT else "",
        conditions=request.conditions or "", conditions_label=visitor.t("req_conditions"), sections=sections,
        data_label=visitor.t("req_data"),
        entries=[{"id": e, "title": entries[e].title.get(visitor.language, e) if e in entries else e,
                  "variables": list(v)} for e, v in request.entries.items()],
        questions_label=visitor.t("req_questions"),
        questions=[{"id": q.id, "title": q.title, "status": vb.status_label(q.status, visitor.language)}
                   for q in questions])]
    history = gov.request_history(visitor.engine, request.id)
    frame = pd.DataFrame([{visitor.t("req_col_when"): f"{e.at:%Y-%m-%d %H:%M}", visitor.t("req_col_who"): e.actor,
                           visitor.t("req_col_status"): _status(visitor, e.to_status),
                           visitor.t("req_col_note"): e.note or ""} for e in history])
    parts += [text(visitor.t("req_history"), "h3"),
              pn.widgets.Tabulator(frame, disabled=True, show_index=False, sizing_mode="stretch_width")]
    return pn.Column(*parts, sizing_mode="stretch_width")


def _form(visitor: Visitor, request: gov.Request | None, feedback: pn.Column, preselect: str | None = None) -> pn.Column:
    """Write or change a request (draft or revision requested), then save and submit it; `preselect`: the
    catalogue entry a new request starts with (`?entry=`)."""
    entries = _catalogue(visitor)
    chosen = dict(request.entries) if request else ({preselect: entries[preselect].variable_names}
                                                   if preselect in entries else {})
    title = pn.widgets.TextInput(name=visitor.t("req_col_title"), value=request.title if request else "",
                                 sizing_mode="stretch_width")
    organisation = pn.widgets.TextInput(name=visitor.t("req_organisation"),
                                        value=request.applicant_organisation if request else
                                        (visitor.organisation or ""))
    member = pn.widgets.Checkbox(name=visitor.t("req_sejn_member"), value=request.sejn_member if request else True)
    fee = pn.widgets.FloatInput(name=visitor.t("req_fee"), value=float(request.fee_eur) if request and
                                request.fee_eur else None, start=0)
    criteria = {key: pn.widgets.TextAreaInput(name=visitor.t(text_key), height=90, sizing_mode="stretch_width",
                                              value=(request.criteria.get(key, "") if request else ""))
                for key, text_key in CRITERIA_KEYS.items()}
    options = {f"{e.title.get(visitor.language, e.id)} ({e.id})": e.id for e in entries.values()}
    entry_choice = pn.widgets.MultiChoice(name=visitor.t("req_data"), options=options, value=list(chosen),
                                          sizing_mode="stretch_width")
    researchers = [u.name for u in gov.list_users(visitor.engine, role="researcher", active_only=True)
                   if u.name != visitor.name]
    members = pn.widgets.MultiChoice(name=visitor.t("req_members"), options=researchers,
                                     value=[m for m in (request.members if request else []) if m != visitor.name])
    start = pn.widgets.DatePicker(name=visitor.t("req_from"),
                                  value=request.access_from if request and request.access_from else date.today())
    until = pn.widgets.DatePicker(name=visitor.t("req_until"), value=request.access_until if request and
                                  request.access_until else date.today() + timedelta(days=365))
    variables = pn.Column(sizing_mode="stretch_width")

    def show_variables(*_):
        keep = {e: w.value for e, w in ((w.name_entry, w) for w in variables.objects)}
        variables.clear()
        for entry_id in entry_choice.value:
            names = entries[entry_id].variable_names
            widget = pn.widgets.MultiChoice(name=visitor.t("req_variables_of", entry=entry_id), options=names,
                                            value=keep.get(entry_id, chosen.get(entry_id, names)),
                                            sizing_mode="stretch_width")
            widget.name_entry = entry_id
            variables.append(widget)

    entry_choice.param.watch(show_variables, "value")
    show_variables()
    state = {"id": request.id if request else None}

    def fields() -> dict:
        return dict(title=title.value, applicant_organisation=organisation.value, sejn_member=member.value,
                    criteria={k: w.value for k, w in criteria.items() if w.value.strip()},
                    entries={w.name_entry: list(w.value) for w in variables.objects},
                    members=list(members.value), access_from=start.value, access_until=until.value,
                    fee_eur=fee.value, catalogue={e.id: set(e.variable_names) for e in entries.values()})

    def save() -> None:
        if state["id"] is None:
            state["id"] = gov.create_request(visitor.engine, visitor.name, **fields())
        else:
            gov.update_request(visitor.engine, state["id"], visitor.name, **fields())

    def on_save(_):
        guarded(save, feedback, visitor.t("req_saved", id=state["id"] or ""))

    def on_submit(_):
        if guarded(save, feedback) and guarded(lambda: gov.submit(visitor.engine, state["id"], visitor.name),
                                               feedback, visitor.t("req_submitted", id=state["id"])):
            pn.state.location.search = f"?id={state['id']}"
            pn.state.location.reload = True

    save_button = pn.widgets.Button(name=visitor.t("req_save"), button_type="default")
    submit_button = pn.widgets.Button(name=visitor.t("req_submit"), button_type="primary")
    save_button.on_click(on_save)
    submit_button.on_click(on_submit)
    return pn.Column(title, pn.Row(organisation, member, fee), *criteria.values(), entry_choice, variables, members,
                     pn.Row(start, until), pn.Row(save_button, submit_button), sizing_mode="stretch_width")


def _project_actions(visitor: Visitor, request: gov.Request, feedback: pn.Column) -> pn.Column:
    """For an approved request: the project, its amendment form and its final report."""
    project = gov.get_project(visitor.engine, request.project_id)
    summary = markdown_html(visitor.t, "req_project", id=project.id, starts=project.starts, ends=project.ends,
                            status=project.status)
    if project.status != gov.PROJECT_ACTIVE:
        return pn.Column(pane("requests/project.html.j2", summary=summary, final_report=project.final_report or "",
                              final_report_heading=visitor.t("req_final_report")), sizing_mode="stretch_width")
    parts = [pane("requests/project.html.j2", summary=summary, final_report="", final_report_heading="")]
    entries = _catalogue(visitor)
    reason = pn.widgets.TextAreaInput(name=visitor.t("req_reason"), height=70, sizing_mode="stretch_width")
    more_entries = pn.widgets.MultiChoice(name=visitor.t("req_more_data"), options=sorted(entries),
                                          sizing_mode="stretch_width")
    researchers = [u.name for u in gov.list_users(visitor.engine, role="researcher", active_only=True)]
    more_people = pn.widgets.MultiChoice(name=visitor.t("req_more_people"), options=researchers)
    extend = pn.widgets.DatePicker(name=visitor.t("req_extend"), value=None)
    amend = pn.widgets.Button(name=visitor.t("req_amend"))

    def on_amend(_):
        def act():
            new = gov.create_amendment(
                visitor.engine, project.id, visitor.name, reason=reason.value, extend_until=extend.value,
                add_members=list(more_people.value),
                add_entries={e: entries[e].variable_names for e in more_entries.value},
                catalogue={e.id: set(e.variable_names) for e in entries.values()})
            gov.submit(visitor.engine, new, visitor.name)
        guarded(act, feedback, visitor.t("req_amendment_submitted"))

    amend.on_click(on_amend)
    report = pn.widgets.TextAreaInput(name=visitor.t("req_final_report"), height=120, sizing_mode="stretch_width")
    close = pn.widgets.Button(name=visitor.t("req_close"), button_type="warning")
    close.on_click(lambda _: guarded(lambda: gov.close_project(visitor.engine, project.id, visitor.name,
                                                               report.value), feedback, visitor.t("req_closed")))
    parts += [text(visitor.t("req_amendment"), "h3"), reason, more_entries,
              pn.Row(more_people, extend), amend, text(visitor.t("req_final_report"), "h3"), report, close]
    return pn.Column(*parts, sizing_mode="stretch_width")


def _chosen(visitor: Visitor, request_id: int) -> gov.Request | pn.pane.HTML:
    """The request `request_id` as the visitor may see it, or the refusal to show (unknown, not theirs)."""
    try:
        return gov.request_for(visitor.engine, request_id, visitor.name)
    except (gov.GovernanceError, LookupError) as exc:
        return message(str(exc))


def view(visitor: Visitor) -> pn.viewable.Viewable:
    """/aanvragen: my requests and projects; `?id=N` one request; `?new=1` or `?entry=E` a new one."""
    visitor.check("page.requests")
    feedback = pn.Column(sizing_mode="stretch_width")
    base = "aanvragen"
    request_id = arg("id", integer, language=visitor.language)
    preselect = arg("entry", identifier, language=visitor.language)
    arg("new", flag, language=visitor.language)  # `?new=1` opens the list with the form: checked, nothing more
    if request_id is not None:
        request = _chosen(visitor, request_id)
        if not isinstance(request, gov.Request):
            return request
        parts = [_details(visitor, request)]
        mine = request.applicant == visitor.name
        if mine and request.status in gov.EDITABLE:
            parts += [text(visitor.t("req_edit"), "h3"), _form(visitor, request, feedback)]
        if request.status in gov.APPROVING and request.project_id and request.kind == gov.NEW:
            parts.append(_project_actions(visitor, request, feedback))
        return pn.Column(feedback, *parts, sizing_mode="stretch_width")
    parts = [text(visitor.t("nav_requests"), "h2"),
             _request_table(visitor, gov.requests_for(visitor.engine, visitor.name), base)]
    if visitor.allows("request.create"):
        parts += [text(visitor.t("req_new"), "h3"), feedback, _form(visitor, None, feedback, preselect)]
    return pn.Column(*parts, sizing_mode="stretch_width")


def _review_form(visitor: Visitor, request: gov.Request, feedback: pn.Column) -> pn.Column:
    conflict = gov.conflict_of_interest(visitor.engine, request.id, visitor.name)
    mine = [r for r in gov.list_reviews(visitor.engine, request.id, request.round) if r.reviewer == visitor.name]
    earlier = mine[0] if mine else None
    scores, comments = {}, {}
    rows = []
    for number, (key, text_key) in enumerate(CRITERIA_KEYS.items(), start=1):
        scores[number] = pn.widgets.RadioButtonGroup(
            name=visitor.t(text_key), options=[1, 2, 3, 4, 5], value=earlier.scores.get(number, 3) if earlier else 3)
        comments[number] = pn.widgets.TextInput(placeholder=visitor.t("req_comment"), sizing_mode="stretch_width",
                                                value=earlier.comments.get(number, "") if earlier else "")
        rows.append(pn.Row(pn.pane.HTML(html_of("text.html.j2", tag="span", css="", text=visitor.t(text_key)),
                                        width=360), scores[number],
                           comments[number], sizing_mode="stretch_width"))
    votes = {visitor.t(f"req_vote_{v}"): v for v in gov.VOTES}
    votes[visitor.t("req_vote_abstain")] = None
    vote = pn.widgets.Select(name=visitor.t("req_vote"), options=votes,
                             value=(earlier.vote if earlier else gov.VOTES[0]) if not conflict else None,
                             disabled=bool(conflict))
    overall = pn.widgets.TextAreaInput(name=visitor.t("req_comment"), height=70, sizing_mode="stretch_width",
                                       value=earlier.comment or "" if earlier else "")
    send = pn.widgets.Button(name=visitor.t("req_send_review"), button_type="primary")
    send.on_click(lambda _: guarded(lambda: gov.review(
        visitor.engine, request.id, visitor.name, {n: w.value for n, w in scores.items()},
        {n: w.value for n, w in comments.items() if w.value.strip()}, vote.value, overall.value or None),
        feedback, visitor.t("req_review_saved")))
    parts = [text(visitor.t("req_your_review", round=request.round), "h3")]
    if conflict:
        parts.append(message(visitor.t("req_conflict", reason=conflict), "warning"))
    return pn.Column(*parts, *rows, vote, overall, send, sizing_mode="stretch_width")


def _steward_actions(visitor: Visitor, request: gov.Request, feedback: pn.Column) -> pn.Column:
    parts = []
    if request.status == gov.SUBMITTED:
        start = pn.widgets.Button(name=visitor.t("req_start_review"), button_type="primary")
        start.on_click(lambda _: guarded(lambda: gov.start_review(visitor.engine, request.id, visitor.name),
                                         feedback, visitor.t("req_review_started")))
        parts.append(start)
    if request.status == gov.IN_REVIEW:
        reviews = gov.list_reviews(visitor.engine, request.id, request.round)
        tally = pd.DataFrame([{visitor.t("req_col_who"): r.reviewer,
                               visitor.t("req_vote"): visitor.t(f"req_vote_{r.vote or 'abstain'}"),
                               **{str(n): s for n, s in sorted(r.scores.items())},
                               visitor.t("req_comment"): r.comment or ""} for r in reviews])
        conditions = pn.widgets.TextAreaInput(name=visitor.t("req_conditions"), height=70,
                                              sizing_mode="stretch_width")
        decide = pn.widgets.Button(name=visitor.t("req_decide"), button_type="primary")
        decide.on_click(lambda _: guarded(lambda: feedback.append(message(visitor.t(
            "req_decided", status=_status(visitor, gov.decide(visitor.engine, request.id, visitor.name,
                                                              conditions.value or None).status)), "success")),
            feedback))
        parts += [text(visitor.t("req_reviews"), "h3"),
                  pn.widgets.Tabulator(tally, disabled=True, show_index=False, sizing_mode="stretch_width")
                  if len(tally) else text(visitor.t("req_no_reviews")), conditions, decide]
    return pn.Column(*parts, sizing_mode="stretch_width")


def apo_view(visitor: Visitor) -> pn.viewable.Viewable:
    """/apo: the reviewer's queue and all submitted requests; `?id=N` to review or (steward) decide."""
    visitor.check("page.apo")
    feedback = pn.Column(sizing_mode="stretch_width")
    base = "apo"
    request_id = arg("id", integer, language=visitor.language)
    if request_id is not None:
        request = _chosen(visitor, request_id)
        if not isinstance(request, gov.Request):
            return request
        parts = [feedback, _details(visitor, request)]
        if visitor.allows("request.review") and request.status == gov.IN_REVIEW:
            parts.append(_review_form(visitor, request, feedback))
        if visitor.allows("request.decide"):
            parts.append(_steward_actions(visitor, request, feedback))
        return pn.Column(*parts, sizing_mode="stretch_width")
    parts = [text(visitor.t("nav_apo"), "h2")]
    if visitor.allows("request.review"):
        parts += [text(visitor.t("req_queue"), "h3"),
                  _request_table(visitor, gov.queue_for_reviewer(visitor.engine, visitor.name), base)]
    visible = [r for r in gov.requests_for(visitor.engine, visitor.name) if r.status != gov.DRAFT]
    parts += [text(visitor.t("req_all"), "h3"), _request_table(visitor, visible, base)]
    return pn.Column(*parts, sizing_mode="stretch_width")
