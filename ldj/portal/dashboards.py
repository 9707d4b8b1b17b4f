"""Dashboards (members, steward): own organisation and teams against all SEJN members.

Every number comes from ldj.indicators, which checks who may see what and applies disclosure
control; this page only lays the tables out and draws them with hvplot. Each figure has its table
as CSV next to it; the plots' own toolbar saves them as PNG. `/dashboard/figures.json` and
`/dashboard/figures.csv?figure=...` serve exactly those tables over plain HTTP for the same choices
(query arguments parsed and validated by `parse_figures_request`; 400 on anything unknown).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import holoviews as hv
import hvplot.pandas  # noqa: F401 - registers .hvplot
import numpy as np
import pandas as pd
import panel as pn
from tornado.ioloop import IOLoop

from .. import indicators, policy, versions
from ..factsheet import display_labels
from ..instruments import load_instruments
from .html import pane, text
from .layout import PortalHandler, Refusal, login_still_stands, message
from .visitor import Visitor

ALL = "__all__"


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A figure's table as the page offers it for download (Dutch Excel: `;`, UTF-8 with BOM)."""
    return indicators.download_table(frame).to_csv(index=False, sep=";").encode("utf-8-sig")


def _csv_download(frame: pd.DataFrame, name: str, label: str) -> pn.widgets.FileDownload:
    def payload() -> io.BytesIO:
        if not login_still_stands():  # the hub has ended this login since the page opened: no download
            raise PermissionError("the hub has ended this login")
        return io.BytesIO(csv_bytes(frame))

    return pn.widgets.FileDownload(callback=payload, filename=f"{name}.csv", label=label, button_type="light",
                                   width=220)


def _number(value, digits: int = 1) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}".replace(".", ",")


def _table(visitor: Visitor, head_keys: tuple[str, ...], rows: list[dict]) -> pn.pane.HTML:
    return pane("dashboards/table.html.j2", heads=[visitor.t(k) for k in head_keys], rows=rows,
                width=len(head_keys) - 1)


def _change_table(visitor: Visitor, frame: pd.DataFrame) -> pn.pane.HTML:
    rows = []
    for _, r in frame.iterrows():
        cells = [] if not r["published"] else [
            {"text": r["n"]}, {"text": _number(r["mean_start"])}, {"text": _number(r["mean_end"])},
            {"text": f"{_number(r['mean_change'])} [{_number(r['ci_low'])}; {_number(r['ci_high'])}]", "bold": True},
            {"text": _number(r["effect_size"], 2)}]
        rows.append({"label": r["label"], "hidden": "" if r["published"] else r["message"], "cells": cells})
    return _table(visitor, ("dash_col_scope", "dash_col_n", "dash_col_start", "dash_col_end", "dash_col_change",
                            "dash_col_es"), rows)


def _shares_plot(visitor: Visitor, frame: pd.DataFrame, part: str, title: str):
    shown = frame[frame["published"]].copy()
    if shown.empty:
        return message(visitor.t("ind_too_little_data").capitalize(), "warning")
    shown[part] = [visitor.t(f"ind_{'status' if part == 'status' else 'category'}_{p}") for p in shown[part]]
    shown["percentage"] = shown["share"] * 100
    plot = shown.hvplot.barh(x="label", y="percentage", by=part, stacked=True, height=260, responsive=True,
                             title=title, ylabel="%", xlabel="", legend="bottom", hover_cols=["n", "total"])
    hidden = frame[~frame["published"]]
    note = [] if hidden.empty else [text(visitor.t("dash_hidden", what=", ".join(sorted(set(hidden["label"])))),
                                         css="ldj-suppressed", stylesheets=[".ldj-suppressed{font-style:italic}"])]
    return pn.Column(pn.pane.HoloViews(plot, sizing_mode="stretch_width"), *note, sizing_mode="stretch_width")


def _trend_plot(visitor: Visitor, frame: pd.DataFrame, scale_label: str):
    shown = frame[frame["published"]]
    if shown.empty:
        return message(visitor.t("ind_too_little_data").capitalize(), "warning")
    plot = shown.hvplot.line(x="start_year", y="mean", by="label", markers=True, height=320, responsive=True,
                             xlabel=visitor.t("cat_dim_start_year"), ylabel=scale_label,
                             title=visitor.t("dash_trend"), hover_cols=["n", "ci_low", "ci_high"])
    return pn.pane.HoloViews(plot, sizing_mode="stretch_width")


def _funnel_plot(visitor: Visitor, points: pd.DataFrame, limits: pd.DataFrame, indicator: str):
    shown = points[points["published"]].copy()
    if shown.empty:
        return message(visitor.t("ind_too_little_data").capitalize(), "warning")
    shown["n"] = shown["n"].astype(float)
    scale = 100 if indicator in ("improved", "deteriorated", "response") else 1
    shown["value"] = shown["value"] * scale
    lines = []
    for column, style in (("low_95", "dashed"), ("high_95", "dashed"), ("low_99_8", "dotted"), ("high_99_8", "dotted")):
        if column in limits:
            lines.append(hv.Curve((limits["n"], limits[column] * scale)).opts(color="grey", line_dash=style))
    centre = hv.HLine(float(limits["centre"].iloc[0]) * scale).opts(color="black", line_width=1) \
        if "centre" in limits and pd.notna(limits["centre"].iloc[0]) else None
    others = shown[~shown["own"]].hvplot.scatter(x="n", y="value", hover_cols=["label"], color="#9aa5b1", size=60,
                                                 label=visitor.t("dash_other_orgs"))
    own = shown[shown["own"]].hvplot.scatter(x="n", y="value", hover_cols=["label"], color="#d9480f", size=120,
                                             label=visitor.t("dash_own_org"))
    overlay = hv.Overlay([*lines, *([centre] if centre is not None else []), others, own]).opts(
        height=360, responsive=True, title=visitor.t(f"dash_funnel_{indicator}"),
        xlabel=visitor.t("dash_col_n"), ylabel=visitor.t(f"dash_funnel_{indicator}"), legend_position="top_right")
    return pn.pane.HoloViews(overlay, sizing_mode="stretch_width")


def _scope_table(visitor: Visitor, frame: pd.DataFrame, columns: dict[str, str]) -> pn.pane.HTML:
    rows = [{"label": r["label"], "hidden": "" if r["published"] else r["message"],
             "cells": [{"text": r[c] if c == "n" else _number(r[c])} for c in columns] if r["published"] else []}
            for _, r in frame.iterrows()]
    return _table(visitor, ("dash_col_scope", *columns.values()), rows)


def _figure(title: str, body, frame: pd.DataFrame, name: str, visitor: Visitor) -> pn.Card:
    return pn.Card(body, _csv_download(frame, name, visitor.t("dash_download_csv")), title=title,
                   sizing_mode="stretch_width", collapsible=False)


def view(visitor: Visitor) -> pn.viewable.Viewable:
    visitor.check("page.dashboard")
    settings = visitor.settings.model_copy(update={"language": visitor.language})
    engine = visitor.engine
    try:
        opts = indicators.options(visitor.actor, engine, settings)
    except Exception as exc:  # no data yet, or no cube: say so rather than fail the page
        return message(visitor.t("dash_no_data", detail=str(exc)), "warning")
    if not opts["instruments"]:
        return message(visitor.t("dash_no_data", detail=""), "warning")
    instruments = load_instruments(settings.catalog_dir)
    lang = visitor.language
    labels = display_labels(settings, lang)  # the names the factsheet uses too

    def inst_label(code):
        return labels["instrument"].get(code, code)

    def informants(code) -> dict[str, str]:
        return {labels["informant"].get(i, i): i for i in opts["instruments"][code]["informants"]}

    def scale_labels(code) -> dict[str, str]:
        scales = {s.code: s.label.get(lang, s.code) for s in instruments[code].scales} if code in instruments else {}
        return {scales.get(s, s): s for s in opts["instruments"][code]["scales"]}

    def with_all(values: list, label_of=str) -> dict:
        return {visitor.t("dash_all"): ALL, **{label_of(v): v for v in values}}

    choices = [c for c in opts["instruments"] if c != "satisfaction"] or list(opts["instruments"])
    default = "cbcl_6_18" if "cbcl_6_18" in choices else choices[0]
    instrument = pn.widgets.Select(name=visitor.t("dash_instrument"), options={inst_label(c): c for c in choices},
                                   value=default)
    scale = pn.widgets.Select(name=visitor.t("dash_scale"), options=scale_labels(default))
    if "total_problems" in scale.options.values():
        scale.value = "total_problems"
    informant = pn.widgets.Select(name=visitor.t("cat_dim_informant"), options=informants(default))
    intervention = pn.widgets.Select(name=visitor.t("cat_dim_intervention"), options=with_all(opts["interventions"]))
    age_group = pn.widgets.Select(name=visitor.t("cat_dim_age_group"), options=with_all(opts["age_groups"]))
    gender = pn.widgets.Select(name=visitor.t("cat_dim_gender"), options=with_all(opts["genders"]))
    year = pn.widgets.Select(name=visitor.t("cat_dim_start_year"), options=with_all(opts["start_years"]))
    team = pn.widgets.Select(name=visitor.t("dash_team"), options=with_all(opts["teams"]))
    funnel_indicator = pn.widgets.Select(name=visitor.t("dash_funnel"), options={
        visitor.t(f"dash_funnel_{k}"): k for k in indicators.FUNNEL_INDICATORS})
    organisation = None
    if opts["organisations"] is not None:  # the steward chooses whose figures
        organisation = pn.widgets.Select(name=visitor.t("dash_organisation"), options=opts["organisations"])
    results = pn.Column(sizing_mode="stretch_width")

    def on_instrument(event):
        scale.options = scale_labels(event.new)
        informant.options = informants(event.new)

    instrument.param.watch(on_instrument, "value")

    def chosen(widget):
        return None if widget.value == ALL else widget.value

    def render(*_):
        results.clear()
        the_view = indicators.View(instrument.value, scale.value, informant.value, intervention=chosen(intervention),
                                   age_group=chosen(age_group), gender=chosen(gender), start_year=chosen(year),
                                   team=chosen(team), organisation=organisation.value if organisation else None)
        try:
            figures = indicators.dashboard(the_view, visitor.actor, engine, settings,
                                           funnel_indicator=funnel_indicator.value)
        except Exception as exc:  # a refusal and bad choices come back as a message
            results.append(message(str(exc)))
            return
        scale_label = next((k for k, v in scale.options.items() if v == scale.value), scale.value)
        results.extend([
            _figure(visitor.t("dash_change"), _change_table(visitor, figures["change"]), figures["change"],
                    "verandering", visitor),
            pn.Row(_figure(visitor.t("dash_categories"), _shares_plot(visitor, figures["reliable_change"], "category",
                                                                      visitor.t("dash_categories")),
                           figures["reliable_change"], "betrouwbare-verandering", visitor),
                   _figure(visitor.t("dash_response"), _shares_plot(visitor, figures["response"], "status",
                                                                    visitor.t("dash_response")),
                           figures["response"], "respons", visitor), sizing_mode="stretch_width"),
            pn.Row(_figure(visitor.t("dash_funnel"), _funnel_plot(visitor, figures["funnel"], figures["funnel_limits"],
                                                                  funnel_indicator.value),
                           figures["funnel"], "funnel", visitor),
                   _figure(visitor.t("dash_casemix"), _scope_table(visitor, figures["casemix"], {
                       "n": "dash_col_n", "observed": "dash_col_observed", "expected": "dash_col_expected",
                       "difference": "dash_col_difference"}), figures["casemix"], "casemix", visitor),
                   sizing_mode="stretch_width"),
            pn.Row(_figure(visitor.t("dash_trend"), _trend_plot(visitor, figures["severity_trend"], scale_label),
                           figures["severity_trend"], "ernst-bij-start", visitor),
                   _figure(visitor.t("dash_satisfaction"), _scope_table(visitor, figures["satisfaction"], {
                       "n": "dash_col_n", "mean": "dash_col_mean"}), figures["satisfaction"], "tevredenheid", visitor),
                   sizing_mode="stretch_width"),
        ])

    show = pn.widgets.Button(name=visitor.t("dash_show"), button_type="primary")
    show.on_click(render)
    render()
    controls = [instrument, scale, informant, intervention, age_group, gender, year, team, funnel_indicator]
    if organisation is not None:
        controls.insert(0, organisation)
    who = opts["organisation"] or visitor.t("ind_sejn")
    pending = versions.behind(engine, indicators.get_cube(engine, settings).version)
    return pn.Column(text(f"{visitor.t('nav_dashboard')}: {who}", "h2"), text(visitor.t("dash_intro")),
                     *([message(visitor.t("portal_pending"), "warning")] if pending else []),
                     pn.FlexBox(*[pn.Column(w, width=230) for w in controls], show), results,
                     sizing_mode="stretch_width")


# --- plain HTTP: the figures of a view --------------------------------------------------------------

FIGURES = ("change", "reliable_change", "response", "funnel", "funnel_limits", "casemix", "severity_trend",
           "satisfaction")
FILTER_ARGUMENTS = ("intervention", "age_group", "gender", "start_year", "team")
ARGUMENTS = ("instrument", "scale", "informant", *FILTER_ARGUMENTS, "organisation", "funnel", "figure", "lang")


class BadArgument(ValueError):
    """A query argument that is not one of the values the viewer can choose."""


@dataclass(frozen=True)
class FiguresRequest:
    """The typed, validated query of a figures download: the view, the funnel's indicator, one figure (CSV)."""

    view: indicators.View
    funnel: str
    figure: str | None


def parse_figures_request(arguments: dict[str, list[str]], opts: dict, visitor: Visitor,
                          csv: bool) -> FiguresRequest:
    """`arguments` (name: values, as tornado has them) into a `FiguresRequest`, with the page's
    defaults; every value must be one the viewer can choose (`indicators.options`), else BadArgument."""
    for name in arguments:
        if name not in ARGUMENTS:
            raise BadArgument(visitor.t("dash_unknown_argument", known=", ".join(ARGUMENTS)))

    def one(name: str) -> str | None:
        values = arguments.get(name) or []
        if len(values) > 1:
            raise BadArgument(visitor.t("dash_bad_argument", name=name))
        return values[0] if values and values[0] not in ("", ALL) else None

    def chosen(name: str, allowed, default=None):
        value = one(name)
        if value is None:
            return default
        if name == "start_year":
            if not value.isdigit() or int(value) not in allowed:
                raise BadArgument(visitor.t("dash_bad_argument", name=name))
            return int(value)
        if value not in allowed:
            raise BadArgument(visitor.t("dash_bad_argument", name=name))
        return value

    instruments = opts["instruments"]
    choices = [c for c in instruments if c != "satisfaction"] or list(instruments)
    default = "cbcl_6_18" if "cbcl_6_18" in choices else (choices[0] if choices else None)
    instrument = chosen("instrument", instruments, default)
    if instrument is None:
        raise BadArgument(visitor.t("dash_bad_argument", name="instrument"))
    scales, informants = instruments[instrument]["scales"], instruments[instrument]["informants"]
    scale = chosen("scale", scales, "total_problems" if "total_problems" in scales else scales[0])
    informant = chosen("informant", informants, informants[0])
    filters = {name: chosen(name, opts[{"age_group": "age_groups", "start_year": "start_years"}.get(name, name + "s")])
               for name in FILTER_ARGUMENTS}
    organisation = chosen("organisation", opts["organisations"] or [visitor.organisation])
    funnel = chosen("funnel", indicators.FUNNEL_INDICATORS, "improved")
    figure = chosen("figure", FIGURES)
    if csv and figure is None:
        raise BadArgument(visitor.t("dash_bad_argument", name="figure"))
    return FiguresRequest(indicators.View(instrument, scale, informant, organisation=organisation, **filters),
                          funnel, figure)


def figures_json(figures: dict[str, pd.DataFrame], request: FiguresRequest, version: str) -> dict:
    """What the page shows, as JSON: every figure's download table (hidden figures carry no numbers)."""
    def rows(frame: pd.DataFrame) -> list[dict]:
        table = indicators.download_table(frame).astype(object)
        return [{k: (None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else
                     v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                for r in table.where(table.notna(), None).to_dict(orient="records")]

    view = {k: v for k, v in vars(request.view).items() if v is not None}
    return {"data_version": version, "view": view, "funnel_indicator": request.funnel,
            "figures": {name: rows(figures[name]) for name in FIGURES if request.figure in (None, name)}}


class FiguresHandler(PortalHandler):
    """GET {prefix}/dashboard/figures.json|.csv?instrument=&scale=&informant=&intervention=&age_group=&gender=
    &start_year=&team=&organisation=&funnel=&figure=: exactly the figures the dashboard page shows for those
    choices (JSON: all of them, CSV: `figure`), behind login; `ldj.policy` "figures.own_organisation"
    ("figures.all_organisations" for another organisation's)."""

    plain_errors = True
    action = "page.dashboard"

    async def get(self, kind: str):
        visitor = self.visitor()
        settings = visitor.settings.model_copy(update={"language": visitor.language})
        arguments = self.arguments(skip=())
        organisation = (arguments.get("organisation") or [None])[-1] or visitor.organisation
        self.check("figures.own_organisation", policy.Target(organisation=visitor.organisation))
        if organisation != visitor.organisation:
            self.check("figures.all_organisations", policy.Target(organisation=organisation))
        engine = visitor.engine
        loop = IOLoop.current()
        try:
            opts = await loop.run_in_executor(None, lambda: indicators.options(
                visitor.actor, engine, settings, organisation=organisation if visitor.allows("figures.all_organisations") else None))
            request = parse_figures_request(arguments, opts, visitor, csv=kind == "csv")
            figures = await loop.run_in_executor(None, lambda: indicators.dashboard(
                request.view, visitor.actor, engine, settings, funnel_indicator=request.funnel))
        except BadArgument as exc:
            raise Refusal(400, str(exc)) from None
        except policy.Refused as exc:
            raise Refusal(403, str(exc)) from None
        version = indicators.get_cube(engine, settings).version
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-LDJ-Data-Version", version)
        if kind == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", f'attachment; filename="{request.figure}.csv"')
            self.write(csv_bytes(figures[request.figure]))
        else:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.write(json.dumps(figures_json(figures, request, version), ensure_ascii=False))


HANDLERS = [(r"/dashboard/figures\.(json|csv)", FiguresHandler)]
