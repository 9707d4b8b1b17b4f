"""The catalogue browser (public): entries with their data dictionaries, a self-service feasibility
count (ldj.feasibility, disclosure-controlled) and "request this data"."""

from __future__ import annotations

import json
from html import escape

import panel as pn
from tornado import web

from .. import feasibility, policy
from ..catalogue import Entry, load_age_groups, load_entries
from .layout import PortalHandler, message, query_arg
from .visitor import Visitor


def _labels(visitor: Visitor, entry: Entry, dim: str, values: list) -> dict[str, object]:
    """Widget options: a readable label per category (value labels from the data dictionary)."""
    if dim == "age_group":
        names = {g.code: g.name[visitor.language] for g in load_age_groups(visitor.settings.catalog_dir)}
        return {names.get(str(v), str(v)): v for v in values}
    if dim in entry.variable_names:
        labels = entry.variable(dim).value_labels
        return {f"{labels[v]} ({v})" if v in labels and labels[v] != v else str(v): v for v in values}
    return {str(v): v for v in values}


def _result_text(visitor: Visitor, result: feasibility.Feasibility) -> pn.pane.Alert:
    if result.suppressed:
        return message(visitor.t(f"cat_suppressed_{result.reason}", threshold=visitor.settings.disclosure_threshold),
                       "warning")
    return message(visitor.t("cat_count", rows=result.rows, clients=result.clients), "info")


def _entry_page(visitor: Visitor, entry: Entry) -> pn.Column:
    engine = visitor.engine
    lang = visitor.language
    parts = [pn.pane.Markdown(f"## {escape(entry.title.get(lang, entry.id))}\n\n{escape(entry.description.get(lang, ''))}"
                              f"\n\n`{entry.id}` · {visitor.t('cat_sensitivity')}: {escape(entry.sensitivity)} · "
                              f"{visitor.t('cat_themes')}: {escape(', '.join(entry.themes))}",
                              sizing_mode="stretch_width"),
             pn.pane.HTML(f'<a class="btn btn-primary" href="aanvragen?entry={escape(entry.id)}">'
                          f'{escape(visitor.t("cat_request"))}</a>')]
    try:
        options = feasibility.options(engine, entry.id, visitor.settings)
    except (LookupError, ValueError):
        options = {}
    if options:
        widgets = {dim: pn.widgets.MultiChoice(name=visitor.t(f"cat_dim_{dim}"),
                                               options=_labels(visitor, entry, dim, values), width=280)
                   for dim, values in options.items()}
        result = pn.Column(_result_text(visitor, feasibility.count(engine, entry.id, {}, visitor.settings)))
        button = pn.widgets.Button(name=visitor.t("cat_count_button"), button_type="primary")

        def on_count(_):
            result.clear()
            try:
                found = feasibility.count(engine, entry.id, {d: w.value for d, w in widgets.items()},
                                          visitor.settings)
            except ValueError as exc:
                result.append(message(str(exc)))
                return
            result.append(_result_text(visitor, found))

        button.on_click(on_count)
        parts += [pn.pane.Markdown(f"### {visitor.t('cat_feasibility')}\n\n{visitor.t('cat_feasibility_help')}"),
                  pn.FlexBox(*widgets.values()), button, result]
    dictionary = entry.dictionary(lang).rename(columns={"variable": visitor.t("cat_col_variable"),
                                                        "type": visitor.t("cat_col_type"),
                                                        "label": visitor.t("cat_col_label"),
                                                        "values": visitor.t("cat_col_values")})
    parts += [pn.pane.Markdown(f"### {visitor.t('cat_dictionary')}"),
              pn.widgets.Tabulator(dictionary, disabled=True, show_index=False, sizing_mode="stretch_width",
                                   layout="fit_data_stretch")]
    return pn.Column(*parts, sizing_mode="stretch_width")


def view(visitor: Visitor) -> pn.viewable.Viewable:
    """/catalogus: every entry with its size; `?entry=ID` one entry with dictionary and feasibility count."""
    entries = load_entries(visitor.settings.catalog_dir)
    chosen = query_arg("entry")
    if chosen:
        if chosen not in entries:
            return message(visitor.t("cat_unknown", entry=chosen))
        return _entry_page(visitor, entries[chosen])
    rows = []
    for entry in entries.values():
        try:
            size = feasibility.count(visitor.engine, entry.id, {}, visitor.settings)
            count = visitor.t("ind_too_little_data") if size.suppressed else f"{size.rows:,}".replace(",", ".")
        except (LookupError, ValueError):
            count = "–"
        rows.append(f'<tr><td><a href="catalogus?entry={escape(entry.id)}">{escape(entry.title.get(visitor.language, entry.id))}'
                    f'</a><br><small>{escape(entry.description.get(visitor.language, ""))}</small></td>'
                    f"<td>{escape(', '.join(entry.themes))}</td><td style='text-align:right'>{count}</td></tr>")
    head = "".join(f"<th>{escape(visitor.t(k))}</th>" for k in ("cat_col_entry", "cat_themes", "cat_col_rows"))
    return pn.Column(pn.pane.Markdown(f"## {visitor.t('nav_catalogue')}\n\n{visitor.t('cat_intro')}"),
                     pn.pane.HTML(f'<table class="table table-sm"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
                                  "</tbody></table>", sizing_mode="stretch_width"),
                     sizing_mode="stretch_width")


class CountHandler(PortalHandler):
    """GET {prefix}/catalogus/telling.json?entry=ID[&dim=value...]: the feasibility count as the page
    answers it (ldj.feasibility), for everyone. Every dimension must be one of the entry's and every
    value one of its categories (a dimension may be repeated to choose several), else 400."""

    def get(self):
        visitor = self.visitor()
        try:
            visitor.check("feasibility.count")
        except policy.Refused as exc:
            raise web.HTTPError(403, str(exc)) from None
        arguments = {k: [v.decode() for v in vs] for k, vs in self.request.query_arguments.items() if k != "lang"}
        entry = arguments.pop("entry", [None])
        if len(entry) != 1 or entry[0] not in load_entries(visitor.settings.catalog_dir):
            raise web.HTTPError(400, visitor.t("dash_bad_argument", name="entry"))
        try:
            options = feasibility.options(visitor.engine, entry[0], visitor.settings)
        except (LookupError, ValueError) as exc:
            raise web.HTTPError(400, str(exc)) from None
        filters = {}
        for dim, values in arguments.items():
            known = {str(v): v for v in options.get(dim, [])}
            if dim not in options or any(v not in known for v in values):
                raise web.HTTPError(400, visitor.t("dash_bad_argument", name=dim if dim in feasibility.DIMENSIONS
                                                   else "?"))
            filters[dim] = [known[v] for v in values]
        result = feasibility.count(visitor.engine, entry[0], filters, visitor.settings)
        text = (visitor.t(f"cat_suppressed_{result.reason}", threshold=visitor.settings.disclosure_threshold)
                if result.suppressed else visitor.t("cat_count", rows=result.rows, clients=result.clients))
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps({"entry": result.entry, "rows": result.rows, "clients": result.clients,
                               "suppressed": result.suppressed, "message": text, "data_version": result.version},
                              ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(error.log_message if isinstance(error, web.HTTPError) and error.log_message else self._reason)


HANDLERS = [(r"/catalogus/telling\.json", CountHandler)]
