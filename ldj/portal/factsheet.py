"""The live factsheet (public): what the LDJ holds, in the published numbers of ldj.factsheet.

`/factsheet` is plain HTML in the portal's frame, the one page everybody may open at once: every view
asks `factsheet()` for the store's current data version (cached per version by the domain), so a new
import shows without a restart, and the page's content is made once per version and language. A hidden
cell reads "te weinig gegevens", never a number. `/factsheet.json` is `Factsheet.to_json()`;
`/factsheet.pdf` is written by the domain's `ldj.factsheet.build` once per data version and language
into `<data_dir>/factsheet/<version>-<lang>/` and served from there (older versions' folders are removed).
"""

from __future__ import annotations

import json
from html import escape

import shutil
import tempfile
import threading
from pathlib import Path

import bokeh
import holoviews as hv
import hvplot.pandas  # noqa: F401  (registers .hvplot on DataFrames)
import pandas as pd
import sqlalchemy as sa
from bokeh.embed import json_item
from tornado import web
from tornado.ioloop import IOLoop

from .. import factsheet as fs
from ..disclosure import TOTAL
from ..instruments import INFORMANTS, MOMENTS
from ..settings import Settings
from .layout import PortalHandler
from .visitor import LANGUAGES, Visitor

PAGE = "factsheet"

CHART_HEIGHT = 300
CSS = """
.fsp-figures { display: flex; flex-wrap: wrap; gap: .6rem; margin: .4rem 0 .8rem; }
.fsp-figure { flex: 1 1 9rem; border: 1px solid #c9d6df; border-radius: 4px; padding: .5rem .7rem; }
.fsp-figure .value { font-size: 1.6rem; font-weight: bold; color: #1f4e79; }
.fsp-figure .name { color: #44515c; }
table.fsp { border-collapse: collapse; margin: .3rem 0 1rem; }
table.fsp th, table.fsp td { border-bottom: 1px solid #e1e8ed; padding: .2rem .6rem; text-align: right; }
table.fsp th.key, table.fsp td.key { text-align: left; }
table.fsp thead th { background: #eef3f6; }
table.fsp tr.total td, table.fsp td.total { font-weight: bold; }
.ldj-suppressed { color: #8a6d3b; font-style: italic; font-weight: normal; }
.fsp-figure .value .ldj-suppressed { font-size: 1.1rem; }
.fsp-note { color: #44515c; font-size: .9rem; }
.fsp-cols { display: flex; flex-wrap: wrap; gap: 2rem; }
"""


class FactsheetPage(PortalHandler):
    """GET {prefix}/factsheet[?lang=en]: the page in the portal's frame, as plain HTML. Its content is the
    same for every visitor, so it is made once per factsheet and language and a view costs a lookup;
    the chart is drawn by BokehJS from its `json_item` (no Bokeh document or websocket on the server)."""

    def get(self):
        visitor = self.visitor()
        sheet = fs.factsheet(visitor.engine, visitor.settings)  # per view: a new import shows at once
        self.set_header("Cache-Control", "no-cache")  # revalidate: the ETag changes with the data version
        self.set_header("X-LDJ-Data-Version", sheet.data_version)
        self.write_page(visitor, PAGE, visitor.t("fs_title"), _content(sheet, visitor), head=_head())


_content_cache: dict[tuple, str] = {}


def _content(sheet: fs.Factsheet, visitor: Visitor) -> str:
    """The page's HTML, made once per factsheet and language (the same for every visitor)."""
    key = (sheet.data_version, sheet.computed_at, visitor.language)
    if key not in _content_cache:
        page = _Page(visitor, sheet)
        item = json.dumps(json_item(hv.render(growth_chart(sheet, visitor), backend="bokeh")))
        item = item.replace("</", "<\\/")  # inside <script>: no "</script>" from a label
        if len(_content_cache) >= 8:
            _content_cache.clear()
        _content_cache[key] = (
            page.header()
            + f'<h3>{page.t("fsp_growth_heading")}</h3><p>{page.t("fsp_growth_help")}</p>'
            + f'<div id="fsp-growth" class="fsp-chart" style="height: {CHART_HEIGHT}px"></div>'
            + f'<script type="application/json" id="fsp-growth-item">{item}</script>'
            + "<script>Bokeh.embed.embed_item(JSON.parse(document.getElementById('fsp-growth-item').textContent),"
              " 'fsp-growth')</script>"
            + page.tables())
    return _content_cache[key]


def _head() -> str:
    """BokehJS from the portal's own static files (versioned URL: browsers keep it), and the page's CSS."""
    from .app import prefix

    return (f'<script src="{prefix()}/static/js/bokeh.min.js?v={bokeh.__version__}"></script>'
            f"<style>{CSS}</style>")


def growth_chart(sheet: fs.Factsheet, visitor: Visitor):
    """Cumulative questionnaires at the end of each quarter (line, gaps where hidden) and year (points)."""
    def ends(series: pd.DataFrame, months: int, label: str) -> pd.DataFrame:
        frame = pd.DataFrame({
            "end": pd.to_datetime(series["period_start"]) + pd.DateOffset(months=months) - pd.Timedelta(days=1),
            "cumulative": series["cumulative"].astype("Float64").astype(float),
            "period": series["period"].astype(str)})
        frame["series"] = label
        return frame

    x_label, y_label = visitor.t("fsp_up_to"), visitor.t("fs_cumulative")
    quarters = ends(sheet.growth_quarterly, 3, visitor.t("fsp_per_quarter"))
    years = ends(sheet.growth_yearly, 12, visitor.t("fsp_per_year"))
    options = dict(x="end", y="cumulative", xlabel=x_label, ylabel=y_label, hover_cols=["period"],
                   responsive=True, height=CHART_HEIGHT, yformatter="%d")
    line = quarters.hvplot.line(label=visitor.t("fsp_per_quarter"), color="#2a6f97", **options)
    points = years.hvplot.scatter(label=visitor.t("fsp_per_year"), color="#e07a1f", size=40, **options)
    return (line * points).opts(legend_position="top_left", show_grid=True)


class _Page:
    """The HTML parts of the page, from published numbers only."""

    def __init__(self, visitor: Visitor, sheet: fs.Factsheet):
        self.visitor, self.sheet = visitor, sheet
        self.labels = fs.display_labels(visitor.settings, visitor.language)  # the names the PDF uses as well

    def t(self, key: str, **fields) -> str:
        return escape(self.visitor.t(key, **fields))

    def number(self, value) -> str:
        if value is None or pd.isna(value):
            return "–"
        text = f"{int(value):,}"
        return text if self.visitor.language == "en" else text.replace(",", ".")

    def cell(self, value, suppressed: bool, ref: str, css: str = "") -> str:
        """A published count, or "te weinig gegevens" for a hidden one (never a number)."""
        if suppressed or (value is not None and pd.isna(value)):
            return (f'<td class="ldj-suppressed {css}" data-cell="{escape(ref)}">'
                    f'{self.t("ind_too_little_data")}</td>')
        return f'<td class="{css}" data-cell="{escape(ref)}">{self.number(value)}</td>'

    def label(self, kind: str, value) -> str:
        if value == TOTAL:
            return self.t("fs_total")
        return escape(self.labels.get(kind, {}).get(value, str(value)))

    def header(self) -> str:
        sheet, lang = self.sheet, self.visitor.language
        figures = []
        for key in fs.TOTALS:
            value = sheet.totals.get(key)
            shown = (f'<span class="ldj-suppressed">{self.t("ind_too_little_data")}</span>' if value is None
                     else self.number(value))
            figures.append(f'<div class="fsp-figure" data-total="{key}"><div class="value">{shown}</div>'
                           f'<div class="name">{self.t("fs_" + key)}</div></div>')
        span = f"{sheet.first_year}–{sheet.last_year}" if sheet.first_year else self.t("fs_no_data")
        last = sheet.last_import.isoformat() if sheet.last_import else "–"
        downloads = (f'<a href="factsheet.pdf?lang={lang}" download>{self.t("fsp_download_pdf")}</a> · '
                     f'<a href="factsheet.json" download>{self.t("fsp_download_json")}</a>')
        return (f'<h2>{self.t("fs_title")}</h2>'
                f'<p>{self.t("fs_lead", version=sheet.data_version, date=sheet.computed_at.date().isoformat())}</p>'
                f'<div class="fsp-figures">{"".join(figures)}</div>'
                f'<p><strong>{self.t("fs_span")}:</strong> <span data-span>{span}</span> · '
                f'<strong>{self.t("fs_last_import")}:</strong> <span data-last-import>{last}</span> · '
                f'<strong>{self.t("fsp_downloads")}:</strong> {downloads}</p>')

    def tables(self) -> str:
        sheet = self.sheet
        parts = [f'<h3>{self.t("fs_questionnaires_heading")}</h3>', self.questionnaires(),
                 f'<h3>{self.t("fs_pairs_heading")}</h3>', self.pairs(),
                 '<div class="fsp-cols">',
                 self.one_way("fs_interventions_heading", "interventions", "intervention", "fs_intervention"),
                 self.one_way("fs_start_years_heading", "interventions", "start_year", "fs_start_year"),
                 self.one_way("fs_years_heading", "growth", "year", "fs_year"),
                 "</div>",
                 f'<p class="fsp-note">{self.t("fsp_disclosure_note", threshold=sheet.threshold, rounding=sheet.rounding)}</p>']
        return "".join(parts)

    def _rows(self, frame: pd.DataFrame, rows: list[str], column: str, order: tuple) -> tuple[list, list]:
        columns, found = fs.pivot_rows(frame, rows, column, order)
        return columns, [(key, cells) for key, cells in found if any(v or s for v, s in cells.values())]

    def questionnaires(self) -> str:
        table = self.sheet.tables["questionnaires"]
        table = table[table.instrument.ne(TOTAL) | table.informant.eq(TOTAL)]  # no informant margins per moment
        if table.empty:
            return f'<p>{self.t("fs_no_data")}</p>'
        columns, rows = self._rows(table, ["instrument", "informant"], "moment", MOMENTS)
        head = (f'<th class="key">{self.t("fs_instrument")}</th><th class="key">{self.t("fs_informant")}</th>'
                + "".join(f"<th>{self.label('moment', c)}</th>" for c in columns))
        per_instrument = {}
        for (instrument, informant), cells in rows:
            per_instrument.setdefault(instrument, []).append(cells)
        body, previous = [], None
        for (instrument, informant), cells in rows:
            if informant == TOTAL and instrument != TOTAL and per_instrument[instrument].count(cells) == 2:
                continue  # one informant only: its total row would repeat it
            name = self.label("instrument", instrument) if instrument != previous or informant == TOTAL else ""
            previous = instrument
            tds = "".join(self.cell(*cells.get(c, (0, False)), f"questionnaires|{instrument}|{informant}|{c}",
                                    "total" if c == TOTAL else "") for c in columns)
            css = ' class="total"' if informant == TOTAL else ""
            body.append(f'<tr{css}><td class="key">{name}</td><td class="key">{self.label("informant", informant)}'
                        f"</td>{tds}</tr>")
        return f'<table class="fsp"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'

    def pairs(self) -> str:
        table = self.sheet.tables["pairs"]
        if table.empty:
            return f'<p>{self.t("fs_no_data")}</p>'
        columns, rows = self._rows(table, ["instrument"], "informant", INFORMANTS)
        head = f'<th class="key">{self.t("fs_instrument")}</th>' + "".join(
            f"<th>{self.label('informant', c)}</th>" for c in columns)
        body = []
        for (instrument,), cells in rows:
            tds = "".join(self.cell(*cells.get(c, (0, False)), f"pairs|{instrument}|{c}", "total" if c == TOTAL else "")
                          for c in columns)
            css = ' class="total"' if instrument == TOTAL else ""
            body.append(f'<tr{css}><td class="key">{self.label("instrument", instrument)}</td>{tds}</tr>')
        return f'<table class="fsp"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'

    def one_way(self, heading: str, name: str, by: str, key_text: str) -> str:
        """A one-way margin (e.g. trajectories per intervention) with its published total."""
        margin = self.sheet.margin(name, by)
        counts = "fs_trajectories" if name == "interventions" else "fs_questionnaires"
        body = []
        for row in margin.sort_values(by, key=lambda s: s.astype(str)).itertuples(index=False):
            value, suppressed = row.n_published, bool(row.suppressed)
            if not suppressed and (pd.isna(value) or value == 0) and by == "intervention":
                continue  # intervention types without trajectories
            body.append(f'<tr><td class="key">{self.label(by, getattr(row, by))}</td>'
                        f'{self.cell(None if pd.isna(value) else value, suppressed, f"{name}|{by}|{getattr(row, by)}")}</tr>')
        total = self.sheet.grand_total(name)
        body.append(f'<tr class="total"><td class="key">{self.t("fs_total")}</td>'
                    f'{self.cell(total, total is None, f"{name}|{by}|{TOTAL}")}</tr>')
        return (f'<div><h3>{self.t(heading)}</h3><table class="fsp"><thead><tr><th class="key">{self.t(key_text)}</th>'
                f'<th>{self.t(counts)}</th></tr></thead><tbody>{"".join(body)}</tbody></table></div>')


# --- downloads ---------------------------------------------------------------------------------

_build_lock = threading.Lock()


def pdf_path(engine: sa.Engine, settings: Settings, language: str) -> Path:
    """The factsheet PDF at the store's current data version, built once per version and language."""
    root = settings.data_dir / "factsheet"
    path = root / f"{fs.factsheet(engine, settings).data_version}-{language}" / "factsheet.pdf"
    if path.exists():
        return path
    with _build_lock:
        if path.exists():
            return path
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            built = fs.build(work, engine=engine, settings=settings, language=language)
            version = json.loads(built["json"].read_text(encoding="utf-8"))["data_version"]  # what it was built from
            folder = root / f"{version}-{language}"
            if not folder.exists():
                work.rename(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for stale in root.glob(f"*-{language}"):
            if stale.is_dir() and stale != folder:
                shutil.rmtree(stale, ignore_errors=True)
    return folder / "factsheet.pdf"


def pdf_bytes(engine: sa.Engine, settings: Settings, language: str) -> tuple[str, bytes]:
    """(version-language, PDF), retried once when a newer version's build just removed the file."""
    try:
        path = pdf_path(engine, settings, language)
        return path.parent.name, path.read_bytes()
    except FileNotFoundError:
        path = pdf_path(engine, settings, language)
        return path.parent.name, path.read_bytes()


class JsonHandler(PortalHandler):
    """GET {prefix}/factsheet.json: the published numbers as JSON, for everyone."""

    def get(self):
        visitor = self.visitor()
        sheet = fs.factsheet(visitor.engine, visitor.settings)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-LDJ-Data-Version", sheet.data_version)
        self.write(json.dumps(sheet.to_json(), ensure_ascii=False))


class PdfHandler(PortalHandler):
    """GET {prefix}/factsheet.pdf[?lang=en]: the printable factsheet (A4), for everyone."""

    async def get(self):
        visitor = self.visitor()
        language = self.get_argument("lang", visitor.language)
        if language not in LANGUAGES:
            raise web.HTTPError(400, f"unknown language {language!r}")
        # weasyprint takes a few seconds the first time per version: not on the server's event loop
        name, pdf = await IOLoop.current().run_in_executor(None, pdf_bytes, visitor.engine, visitor.settings, language)
        self.set_header("Content-Type", "application/pdf")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Disposition", f'attachment; filename="ldj-factsheet-{name}.pdf"')
        self.write(pdf)


HANDLERS = [(r"/factsheet\.json", JsonHandler), (r"/factsheet\.pdf", PdfHandler)]
