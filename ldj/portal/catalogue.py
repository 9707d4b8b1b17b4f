"""The catalogue browser (public): entries with their data dictionaries, a self-service feasibility
count (ldj.feasibility, disclosure-controlled) and "request this data"."""

from __future__ import annotations

import json

import panel as pn

from .. import feasibility
from ..catalogue import Entry, load_age_groups, load_entries
from .html import markdown, pane, text
from .layout import PortalHandler, Refusal, message
from .params import arg, identifier
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


def _result_text(visitor: Visitor, result: feasibility.Feasibility) -> pn.pane.HTML:
    if result.suppressed:
        return message(visitor.t(f"cat_suppressed_{result.reason}", threshold=visitor.settings.disclosure_threshold),
                       "warning")
    return message(visitor.t("cat_count", rows=result.rows, clients=result.clients), "info")


def _entry_page(visitor: Visitor, entry: Entry) -> pn.Column:
    engine = visitor.engine
    lang = visitor.language
    parts = [pane("catalogue/entry.html.j2", title=entry.title.get(lang, entry.id),
                  description=entry.description.get(lang, ""), id=entry.id, sensitivity=entry.sensitivity,
                  sensitivity_label=visitor.t("cat_sensitivity"), themes=", ".join(entry.themes),
                  themes_label=visitor.t("cat_themes"), request=visitor.t("cat_request"))]
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
        parts += [text(visitor.t("cat_feasibility"), "h3"), text(visitor.t("cat_feasibility_help")),
                  pn.FlexBox(*widgets.values()), button, result]
    dictionary = entry.dictionary(lang).rename(columns={"variable": visitor.t("cat_col_variable"),
                                                        "type": visitor.t("cat_col_type"),
                                                        "label": visitor.t("cat_col_label"),
                                                        "values": visitor.t("cat_col_values")})
    parts += [text(visitor.t("cat_dictionary"), "h3"),
              pn.widgets.Tabulator(dictionary, disabled=True, show_index=False, sizing_mode="stretch_width",
                                   layout="fit_data_stretch")]
    return pn.Column(*parts, sizing_mode="stretch_width")


def view(visitor: Visitor) -> pn.viewable.Viewable:
    """/catalogus: every entry with its size; `?entry=ID` one entry with dictionary and feasibility count."""
    entries = load_entries(visitor.settings.catalog_dir)
    chosen = arg("entry", identifier, language=visitor.language)
    if chosen is not None:
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
        rows.append({"id": entry.id, "title": entry.title.get(visitor.language, entry.id),
                     "description": entry.description.get(visitor.language, ""), "themes": ", ".join(entry.themes),
                     "count": count})
    heads = [visitor.t(k) for k in ("cat_col_entry", "cat_themes", "cat_col_rows")]
    return pn.Column(text(visitor.t("nav_catalogue"), "h2"), markdown(visitor.t, "cat_intro"),
                     pane("catalogue/list.html.j2", heads=heads, rows=rows), sizing_mode="stretch_width")


class CountHandler(PortalHandler):
    """GET {prefix}/catalogus/telling.json?entry=ID[&dim=value...]: the feasibility count as the page
    answers it (ldj.feasibility), for everyone. Every dimension must be one of the entry's and every
    value one of its categories (a dimension may be repeated to choose several), else 400."""

    plain_errors = True
    action = "feasibility.count"

    def get(self):
        visitor = self.visitor()
        arguments = self.arguments()
        entry = arguments.pop("entry", [None])
        if len(entry) != 1 or entry[0] not in load_entries(visitor.settings.catalog_dir):
            raise Refusal(400, visitor.t("dash_bad_argument", name="entry"))
        try:
            options = feasibility.options(visitor.engine, entry[0], visitor.settings)
        except (LookupError, ValueError) as exc:
            raise Refusal(400, str(exc)) from None
        filters = {}
        for dim, values in arguments.items():
            known = {str(v): v for v in options.get(dim, [])}
            if dim not in options or any(v not in known for v in values):
                raise Refusal(400, visitor.t("dash_bad_argument", name=dim if dim in feasibility.DIMENSIONS
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


HANDLERS = [(r"/catalogus/telling\.json", CountHandler)]
