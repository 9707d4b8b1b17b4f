"""Output release (the airlock) pages over ldj.airlock, which checks every rule.

/uitvoer lists the release requests the visitor may see: for an output checker the queue (submitted or in
review, still looking for a checker, with how long they have waited) and the requests she checks; for
everyone the requests of her projects (the steward: all). `?id=N` opens one request: its outputs with the
automatic findings, the researcher's comments and a preview of each file, the verdicts the visitor may
see, and the buttons of her part in it (take it, give verdicts, decide, release; the author: withdraw).
Every button calls one ldj.airlock function with the visitor's name; a refusal is shown as a message.

An output is a file and its ldj.safe metadata (`<name>.meta.json`): a checker gives her verdict on an
output (`airlock.review_output`), which the domain keeps for each of its files. Released files are downloaded through
the plain route `/uitvoer/bestand` (`DownloadHandler`), where `airlock.download` decides.
"""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, datetime
from typing import Callable
from urllib.parse import urlencode

import panel as pn

from .. import airlock as al
from .. import governance as gov
from .. import policy, safe
from ..i18n import TEXTS
from .html import markdown, markdown_html, pane, text
from .layout import PortalHandler, Refusal, guarded, message
from .params import arg, integer
from .visitor import Visitor

PAGE = "uitvoer"
DOWNLOAD = "uitvoer/bestand"
QUEUED = (al.SUBMITTED, al.IN_REVIEW)
OPEN_FOR_AUTHOR = (al.SUBMITTED, al.IN_REVIEW, al.RETURNED)
IMAGES = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
CSS = """
h2, h3, h4 { font-weight: 600; } h2 { font-size: 1.5em; margin: 0.4em 0; } h3 { font-size: 1.3em; }
h4 { font-size: 1.1em; margin: 0.8em 0 0.3em; }
.alp-table { border-collapse: collapse; width: 100%; font-size: 0.95em; }
.alp-table th, .alp-table td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
.alp-output { border: 1px solid #c7d4e2; border-radius: 6px; padding: 6px 14px; margin: 10px 0 4px; }
.alp-status { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e7eef6; color: #1f4e79;
              font-size: 0.85em; white-space: nowrap; }
.alp-status.fail { background: #f2dede; color: #a94442; } .alp-status.pass { background: #dff0d8; color: #2b6b2b; }
.alp-status.review { background: #fcf8e3; color: #8a6d3b; }
.alp-meta { color: #555; }
.alp-preview { max-height: 420px; overflow: auto; border-left: 3px solid #c7d4e2; padding-left: 10px; }
.alp-preview img { max-width: 100%; }
.alp-preview pre { white-space: pre-wrap; font-size: 0.9em; }
.alp-description { border-left: 3px solid #5a9e4b; padding-left: 12px; }
"""


def _html(template: str, **values) -> pn.pane.HTML:
    return pane(f"uitvoer/{template}", [CSS], **values)


def _text(value: str, tag: str = "p", css: str = "") -> pn.pane.HTML:
    return text(value, tag, css, [CSS])


def download_href(release_id: int, file: str) -> str:
    """The download route of a released file, relative to a page of the portal (any prefix)."""
    return f"{DOWNLOAD}?" + urlencode({"id": release_id, "bestand": file})


def _waited(visitor: Visitor, since: datetime) -> str:
    minutes = max(0, int((datetime.now(UTC) - since).total_seconds() // 60))
    if minutes < 120:
        return visitor.t("alp_waited_minutes", n=minutes)
    if minutes < 48 * 60:
        return visitor.t("alp_waited_hours", n=minutes // 60)
    return visitor.t("alp_waited_days", n=minutes // (24 * 60))


# --- the lists ---------------------------------------------------------------------------------------

def _table(visitor: Visitor, releases: list[al.Release], waiting: bool = False) -> pn.pane.HTML:
    heads = [visitor.t(k) for k in ("alp_col_id", "alp_col_title", "alp_col_project", "alp_col_author",
                                    "alp_col_status", "alp_col_checkers",
                                    "alp_col_waiting" if waiting else "alp_col_submitted")]
    rows = [{"id": r.id, "title": r.title, "project": r.project_id, "author": r.author,
             "status": visitor.t(f"al_status_{r.status}"),
             "checkers": ", ".join(r.reviewers) or "–",
             "when": _waited(visitor, r.waiting_since or r.created_at) if waiting else f"{r.created_at:%d-%m-%Y}"}
            for r in releases]
    return _html("table.html.j2", base=PAGE, heads=heads, rows=rows, empty=visitor.t("alp_none"))


def _lists(visitor: Visitor) -> pn.Column:
    visible = al.list_releases(visitor.engine, visitor.name)
    sees_all = visitor.allows("release.view")  # about no request in particular: the roles that see every one
    checker = visitor.allows("release.review", policy.Target())
    parts: list = [_text(visitor.t("nav_releases"), "h2"), _text(visitor.t("alp_intro"))]
    if visitor.projects:  # how her outputs get here: from the workspace
        parts.append(markdown(visitor.t, "alp_how_to_submit", [CSS]))
    if checker:
        queue = sorted((r for r in visible if al.may_claim(r, visitor.actor)), key=lambda r: r.id)  # the longest waiting first
        checking = [r for r in visible if visitor.name in r.reviewers]
        parts += [_text(visitor.t("alp_queue"), "h3"), _table(visitor, queue, waiting=True),
                  _text(visitor.t("alp_mine_checking"), "h3"), _table(visitor, checking)]
    if sees_all and not checker:  # the steward
        parts += [_text(visitor.t("alp_all"), "h3"), _table(visitor, visible)]
    else:
        own = [r for r in visible if r.author == visitor.name or r.project_id in visitor.projects] if sees_all \
            else visible
        if own or not checker:  # a checker without requests of her own sees only her queue
            parts += [_text(visitor.t("alp_projects"), "h3"), _table(visitor, own)]
    return pn.Column(*parts, sizing_mode="stretch_width")


# --- one request -------------------------------------------------------------------------------------

def _preview(visitor: Visitor, release: al.Release, file: str) -> dict:
    """What the page shows of a kept file: a table (CSV, the first rows), an image, text, or nothing."""
    try:
        path = al.kept_file(release, file, visitor.settings)
        size = path.stat().st_size
    except (OSError, gov.GovernanceError):
        return {"kind": "none"}
    if size > visitor.settings.release_preview_bytes:
        return {"kind": "none"}
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in IMAGES:
        return {"kind": "image", "src": f"data:{IMAGES[suffix]};base64,{base64.b64encode(data).decode('ascii')}"}
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return {"kind": "none"}
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(content)))
        limit = visitor.settings.release_preview_rows
        if rows:
            body = rows[1:]
            return {"kind": "table", "head": rows[0], "rows": body[:limit],
                    "note": visitor.t("alp_preview_rows", n=limit, total=len(body)) if len(body) > limit else ""}
    return {"kind": "text", "text": content}


def _reason_items(visitor: Visitor, reason: dict) -> list[str]:
    """The cells, bins or figures a finding is about, in words."""
    items = []
    for cell in reason.get("cells") or ():
        figures = ", ".join(f"{k} = {_number(v)}" for k, v in cell.items() if k not in ("row", "column", "margin")
                            and v is not None)
        items.append(visitor.t("alp_cell", row=" / ".join(map(str, cell.get("row") or ["–"])),
                               column=" / ".join(map(str, cell.get("column") or ["–"])), figures=figures))
    for b in reason.get("bins") or ():
        items.append(visitor.t("alp_bin", bin=b.get("bin"), start=_number(b.get("from")), end=_number(b.get("to")),
                               n=b.get("n")))
    figures = reason.get("figures") or {}
    if figures:
        items.append(", ".join(f"{k} = {_number(v)}" for k, v in figures.items() if v is not None))
    return items


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _findings(visitor: Visitor, reasons: list[dict]) -> list[dict]:
    found = []
    for reason in reasons:
        rule = str(reason.get("rule", "")).replace("-", "_")
        key = f"safe_rule_{rule}"
        label = visitor.t(key) if key in TEXTS else rule
        if reason.get("suppressed"):
            label += " " + visitor.t("alp_suppressed")
        outcome = reason.get("outcome", "review")
        found.append({"rule": label, "outcome": outcome, "outcome_label": visitor.t(f"safe_status_{outcome}")
                      if outcome in ("pass", "fail", "review") else outcome, "details": _reason_items(visitor, reason)})
    return found


def _outputs(release: al.Release) -> dict[str, list[al.ReleaseFile]]:
    """The request's files by output, in the order submitted (an output: its file(s) and its metadata)."""
    grouped: dict[str, list[al.ReleaseFile]] = {}
    for f in release.files:
        grouped.setdefault(f.output, []).append(f)
    return grouped


def _verdict_lines(visitor: Visitor, seen: dict[str, list[al.Review]], files: list[al.ReleaseFile]) -> list[dict]:
    return [{"text": visitor.t("alp_verdict_line", reviewer=r.reviewer, file=f.file,
                               verdict=visitor.t(f"al_verdict_{r.verdict}"),
                               public=visitor.t("alp_verdict_public") if r.public else ""),
             "comment": r.comment or "", "verdict": r.verdict}
            for f in files for r in seen.get(f.file, [])]


def _button(label: str, action: Callable[[], object], feedback: pn.Column, success: str | Callable[[], str],
            render: Callable[[], None], kind: str = "primary") -> pn.widgets.Button:
    button = pn.widgets.Button(name=label, button_type=kind)

    def click(_):
        with pn.io.hold():  # the message and the request as it now is reach the browser together
            if guarded(action, feedback):
                feedback.append(message(success() if callable(success) else success, "success"))
                render()

    button.on_click(click)
    return button


def _review_form(visitor: Visitor, release: al.Release, name: str, files: list[al.ReleaseFile],
                 seen: dict[str, list[al.Review]], feedback: pn.Column, render: Callable[[], None]) -> pn.Row:
    """The checker's verdict on one output, given to each of its files."""
    mine = next((r for f in files for r in seen.get(f.file, []) if r.reviewer == visitor.name), None)
    verdict = pn.widgets.Select(name=visitor.t("alp_your_verdict"), value=mine.verdict if mine else al.APPROVE,
                                options={visitor.t(f"al_verdict_{v}"): v for v in al.VERDICTS}, width=200)
    comment = pn.widgets.TextAreaInput(name=visitor.t("alp_verdict_comment"), height=70, value=mine.comment or ""
                                       if mine else "", sizing_mode="stretch_width")
    public = pn.widgets.Checkbox(name=visitor.t("alp_may_be_public"), value=mine.public if mine else False)

    send = _button(visitor.t("alp_send_verdict"),
                   lambda: al.review_output(visitor.engine, release.id, visitor.name, name, verdict.value, comment.value,
                                            public=public.value),
                   feedback, visitor.t("alp_verdict_saved", output=name), render)
    return pn.Row(verdict, comment, pn.Column(public, send), sizing_mode="stretch_width")


def _output_parts(visitor: Visitor, release: al.Release, name: str, files: list[al.ReleaseFile],
                  seen: dict[str, list[al.Review]], public: set[str], reviewer: bool, feedback: pn.Column,
                  render: Callable[[], None]) -> list:
    first = files[0]
    data_files = [f for f in files if not f.file.endswith(safe.META_SUFFIX)] or files
    metadata = [f for f in files if f.file.endswith(safe.META_SUFFIX) and f not in data_files]
    kind = first.kind if first.kind in safe.KINDS else "custom"
    downloads = [{"href": download_href(release.id, f.file), "text": visitor.t("alp_download", file=f.file)}
                 for f in files if release.status == al.RELEASED
                 and visitor.allows("release.download", release.target(public=f.file in public))]
    values = dict(
        name=name, status=first.status,
        heading=visitor.t("alp_kind_status", kind=visitor.t(f"safe_kind_{kind}"),
                          status=visitor.t(f"safe_status_{first.status}")),
        findings_label=visitor.t("alp_findings"), findings=_findings(visitor, first.reasons),
        no_findings=visitor.t("alp_no_findings"),
        comments_label=visitor.t("alp_comments"), comments=first.comments or "",
        exception_label=visitor.t("alp_exception"), exception=first.exception or "",
        offered_public=visitor.t("alp_offered_public") if any(f.public for f in files) else "",
        preview_label=visitor.t("alp_preview"), no_preview=visitor.t("alp_no_preview"),
        previews=[{"file": f.file, **_preview(visitor, release, f.file)} for f in data_files],
        metadata=[{"label": visitor.t("alp_metadata", file=f.file), **_preview(visitor, release, f.file)}
                  for f in metadata],
        verdicts_label=visitor.t("alp_verdicts"), verdicts=_verdict_lines(visitor, seen, files),
        no_verdicts=visitor.t("alp_no_verdicts"), downloads=downloads)
    parts: list = [_html("output.html.j2", **values)]
    if reviewer and release.status in QUEUED:
        parts.append(_review_form(visitor, release, name, files, seen, feedback, render))
    return parts


def _decisions(visitor: Visitor, release: al.Release, feedback: pn.Column, render: Callable[[], None]) -> list:
    engine = visitor.engine
    if release.status == al.APPROVED:
        return [_text(visitor.t("alp_decision"), "h3"),
                _button(visitor.t("alp_release"), lambda: al.release(engine, release.id, visitor.name), feedback,
                        visitor.t("alp_released"), render, "success")]
    if release.status != al.IN_REVIEW:
        return []
    comment = pn.widgets.TextAreaInput(name=visitor.t("alp_decision_comment"), height=70, sizing_mode="stretch_width")
    buttons = []
    for decision, label, kind in ((al.RETURNED, "alp_return", "warning"), (al.APPROVED, "alp_approve", "success"),
                                  (al.REJECTED, "alp_reject", "danger")):
        buttons.append(_button(visitor.t(label), lambda d=decision: al.decide(engine, release.id, visitor.name, d,
                                                                               comment.value), feedback,
                               visitor.t("alp_decided", status=visitor.t(f"al_status_{decision}")), render, kind))
    return [_text(visitor.t("alp_decision"), "h3"), comment, pn.Row(*buttons)]


def _release_parts(visitor: Visitor, release: al.Release, feedback: pn.Column, render: Callable[[], None]) -> list:
    t, engine = visitor.t, visitor.engine
    reviewer = visitor.name in release.reviewers
    summary = markdown_html(t, "alp_meta", project=release.project_id, author=release.author,
                            status=t(f"al_status_{release.status}"), created=f"{release.created_at:%d-%m-%Y %H:%M}")
    outputs = _outputs(release)
    parts: list = [_html("head.html.j2", title=release.title, id=release.id, status=release.status, summary=summary,
                         checkers_label=t("alp_checkers"), checkers=", ".join(release.reviewers) or t("alp_no_checkers"),
                         description_label=t("alp_description"), description=release.description)]
    for question_id, title in al.questions_for(engine, release.project_id):  # lineage: the question it answers
        parts.append(pane("link.html.j2", [CSS], href="vraagbank?" + urlencode({"vraag": question_id}),
                          text=t("alp_answers_question", title=title), css="", button=False))
    parts.append(pane("link.html.j2", [CSS], href=f"onderzoek#ldj-{int(release.project_id)}",
                      text=t("alp_project_in_registry", project=release.project_id), css="", button=False))
    if al.may_claim(release, visitor.actor):
        parts.append(_button(t("alp_claim"), lambda: al.claim(engine, release.id, visitor.name), feedback,
                             t("alp_claimed"), render))
    seen = al.reviews(engine, release.id, visitor.name)
    public = al.public_files(engine, release)
    parts.append(_text(t("alp_outputs", n=len(outputs)), "h3"))
    for name, files in outputs.items():
        parts += _output_parts(visitor, release, name, files, seen, public, reviewer, feedback, render)
    if reviewer:
        parts += _decisions(visitor, release, feedback, render)
    if release.author == visitor.name and release.status in OPEN_FOR_AUTHOR:
        why = pn.widgets.TextInput(name=t("alp_withdraw_comment"), sizing_mode="stretch_width")
        parts += [why, _button(t("alp_withdraw"), lambda: al.withdraw(engine, release.id, visitor.name,
                                                                      why.value or None),
                               feedback, t("alp_withdrawn"), render, "danger")]
    events = [{"at": f"{e.at:%d-%m-%Y %H:%M}", "actor": e.actor, "status": t(f"al_status_{e.to_state}"),
               "note": e.comment or ""} for e in al.history(engine, release.id)]
    parts.append(_html("history.html.j2", heading=t("alp_history"), events=events))
    return parts


def _release(visitor: Visitor, release_id: int) -> pn.Column:
    """One request; after each action it is read again, so what shows is what the domain now holds."""
    feedback = pn.Column(sizing_mode="stretch_width")
    content = pn.Column(sizing_mode="stretch_width")

    def render() -> None:
        try:
            release = al.get_release(visitor.engine, release_id, visitor.name)
            content.objects = _release_parts(visitor, release, feedback, render)
        except (gov.GovernanceError, policy.Refused) as exc:
            content.objects = [message(str(exc))]

    render()
    back = pane("link.html.j2", [CSS], href=PAGE, text="← " + visitor.t("alp_back"), css="", button=False)
    return pn.Column(back, feedback, content, sizing_mode="stretch_width")


def view(visitor: Visitor) -> pn.viewable.Viewable:
    """/uitvoer: the lists; `?id=N` one request."""
    visitor.check("page.releases")
    release_id = arg("id", integer, language=visitor.language)
    if release_id is not None:
        return _release(visitor, release_id)
    return _lists(visitor)


# --- the download route ----------------------------------------------------------------------------------

def file_name(raw: str) -> str:
    """`?bestand=`: a file name of a release (no folder, no control characters); whether it exists is the domain's."""
    if not raw or raw in (".", "..") or "/" in raw or "\\" in raw or any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ValueError(raw)
    return raw


class DownloadHandler(PortalHandler):
    """GET {prefix}/uitvoer/bestand?id=N&bestand=NAME: a released file, for the project's members and the
    steward, and for everyone when both checkers agreed it may be public. The policy decides on the file
    (its project, whether it is public) before the handler runs; `airlock.download` decides again and
    writes the access log. 404: no such released file; 403: not for this visitor."""

    action = "release.download"
    plain_errors = True

    def target(self) -> policy.Target:
        release_id, name = self.arg("id", integer), self.arg("bestand", file_name)
        if release_id is None or name is None:
            raise Refusal(400, self.visitor().t("param_bad", name="id, bestand", value=""))
        try:
            return al.download_target(self.visitor().engine, release_id, name)
        except gov.GovernanceError as exc:
            raise Refusal(404, str(exc)) from None

    def get(self):
        visitor = self.visitor()
        release_id, name = self.arg("id", integer), self.arg("bestand", file_name)
        try:
            path = al.download(visitor.engine, release_id, name, visitor.name)
        except policy.Refused as exc:
            raise Refusal(403, str(exc)) from None
        except gov.GovernanceError as exc:
            raise Refusal(404, str(exc)) from None
        safe_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in path.name) or "uitvoer"
        self.set_header("Content-Type", "application/octet-stream")  # a download, never shown in the portal
        self.set_header("Content-Disposition", f'attachment; filename="{safe_name}"')
        self.set_header("Cache-Control", "no-store")
        self.write(path.read_bytes())


HANDLERS = [(r"/uitvoer/bestand", DownloadHandler)]
