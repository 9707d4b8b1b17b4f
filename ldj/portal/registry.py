"""/onderzoek: the research registry (public) over ldj.registry, which checks every rule.

Everyone sees the list (LDJ projects and members' research, with what they give practice) with a search
and a filter. A logged-in member, researcher, student or steward registers research without LDJ data,
and finishes (with its result) or removes what they registered. User text is shown only as the domain's
sanitised HTML; everything else is escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
import panel as pn

from .. import registry as reg
from .html import html_of, text
from .layout import guarded
from .visitor import Visitor

PAGE = "onderzoek"
CSS = """
.reg-study { border-bottom: 1px solid #ddd; padding: 6px 0 10px; }
.reg-study h4 { font-size: 1.1em; font-weight: 600; margin: 0.3em 0; }
.reg-meta { color: #555; }
.reg-badge { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e7eef6; color: #1f4e79;
             font-size: 0.85em; margin-right: 6px; }
.reg-badge.finished { background: #dff0d8; color: #2b6b2b; }
.reg-result { background: #f3f9f1; border-left: 3px solid #5a9e4b; padding: 4px 12px; }
.reg-error { color: #a94442; background: #f2dede; padding: 6px 10px; border-radius: 4px; }
"""


def _text(value: str, tag: str = "p", css: str = "") -> pn.pane.HTML:
    return text(value, tag, css, [CSS])


def _day(value: date | None) -> str:
    return f"{value:%d-%m-%Y}" if value else "…"


def _listing(visitor: Visitor, found: list[reg.Study]) -> dict:
    t = visitor.t
    studies = [{"kind": st.kind, "id": st.id, "title": st.title, "status": st.status,
                "kind_label": t("reg_kind_" + st.kind), "status_label": t("reg_" + st.status),
                "organisation": st.organisation, "period": t("reg_period", start=_day(st.starts), end=_day(st.ends)),
                "summary": st.summary, "questions": list(st.questions), "released": st.released,
                "result": st.result or "", "url": st.url or ""}
               for st in found]
    return dict(studies=studies, count=t("reg_count", n=len(found)), none=t("reg_none"),
                questions_label=t("reg_questions"), released_label=t("reg_released"), result_label=t("reg_result"),
                more_label=t("reg_more"))


def _browse(visitor: Visitor) -> tuple[pn.Column, Callable[[], None]]:
    t = visitor.t
    search = pn.widgets.TextInput(name=t("reg_search"), sizing_mode="stretch_width", min_width=200)
    kind = pn.widgets.Select(name=t("reg_kind"), options={t("reg_kind_all"): "", t("reg_kind_ldj"): reg.LDJ,
                                                           t("reg_kind_member"): reg.MEMBER}, width=220)
    listing = pn.pane.HTML(stylesheets=[CSS], sizing_mode="stretch_width")  # the count and the list, in place

    def refresh(*_):
        found = reg.studies(visitor.engine, visitor.name, kind=kind.value or None, text=search.value)
        listing.object = html_of("registry/studies.html.j2", **_listing(visitor, found))

    search.param.watch(refresh, "value")
    kind.param.watch(refresh, "value")
    refresh()
    return pn.Column(pn.Row(search, kind, sizing_mode="stretch_width"), listing, sizing_mode="stretch_width"), refresh


def _register_form(visitor: Visitor, on_done) -> pn.Column:
    t = visitor.t
    feedback = pn.Column(sizing_mode="stretch_width")
    title = pn.widgets.TextInput(name=t("reg_title"), sizing_mode="stretch_width")
    organisation = pn.widgets.TextInput(name=t("reg_organisation"), value=visitor.organisation or "")
    summary = pn.widgets.TextAreaInput(name=t("reg_summary"), height=110, sizing_mode="stretch_width")
    starts = pn.widgets.DatePicker(name=t("reg_starts"), value=date.today())
    ends = pn.widgets.DatePicker(name=t("reg_ends"), value=date.today() + timedelta(days=365))
    url = pn.widgets.TextInput(name=t("reg_url"), placeholder="https://", sizing_mode="stretch_width")
    send = pn.widgets.Button(name=t("reg_register"), button_type="primary")
    created: list[int] = []

    def register(_):
        def action():
            created.append(reg.register(visitor.engine, visitor.name, title=title.value,
                                        organisation=organisation.value, summary=summary.value, starts=starts.value,
                                        ends=ends.value, url=url.value))
        if guarded(action, feedback):
            feedback.append(_text(t("reg_registered", id=created[-1]), css="reg-registered"))
            title.value = summary.value = url.value = ""
            on_done()

    send.on_click(register)
    return pn.Column(_text(t("reg_register_heading"), "h3"), title, organisation, summary,
                     pn.Row(starts, ends), url, send, feedback, sizing_mode="stretch_width")


def _own(visitor: Visitor, holder: pn.Column, feedback: pn.Column, on_done) -> None:
    """The visitor's own running studies, each with finish and remove; what happened shows in `feedback`,
    which stays when the list is drawn again."""
    t = visitor.t
    parts = []
    for st in reg.studies(visitor.engine, visitor.name, kind=reg.MEMBER, status=reg.RUNNING):
        if not st.mine:
            continue
        result = pn.widgets.TextAreaInput(name=t("reg_finish_label"), height=80, sizing_mode="stretch_width")
        finish = pn.widgets.Button(name=t("reg_finish"), button_type="success")
        remove = pn.widgets.Button(name=t("reg_remove"), button_type="warning")

        def done(_, study=st.id, text=result):
            if guarded(lambda: reg.finish(visitor.engine, visitor.name, study, text.value), feedback,
                       t("reg_finished_saved")):
                on_done()

        def gone(_, study=st.id):
            if guarded(lambda: reg.remove(visitor.engine, visitor.name, study), feedback, t("reg_removed")):
                on_done()

        finish.on_click(done)
        remove.on_click(gone)
        parts.append(pn.Column(_text(st.title, "h4"), result, pn.Row(finish, remove),
                               sizing_mode="stretch_width"))
    holder.objects = parts


def view(visitor: Visitor) -> pn.viewable.Viewable:
    t = visitor.t
    head = pn.Column(_text(t("nav_registry"), "h2"), _text(t("reg_intro")), sizing_mode="stretch_width")
    browse, refresh = _browse(visitor)
    if not visitor.allows("study.register"):
        note = _text(t("reg_login_to_register"), css="reg-meta") if visitor.anonymous else None
        return pn.Column(head, *([note] if note else []), browse, sizing_mode="stretch_width")
    own, feedback = pn.Column(sizing_mode="stretch_width"), pn.Column(sizing_mode="stretch_width")

    def changed() -> None:
        refresh()
        _own(visitor, own, feedback, changed)

    _own(visitor, own, feedback, changed)
    return pn.Column(head, browse, feedback, own, _register_form(visitor, changed), sizing_mode="stretch_width")
