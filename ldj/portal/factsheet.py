"""The live factsheet (public): what the LDJ holds, in the published numbers of ldj.factsheet.

`/factsheet` is plain HTML in the portal's frame, the one page everybody may open at once: every view
asks `factsheet()` for the shown data version (`ldj.versions`: the last one whose refresh after an
import finished; cached per version by the domain), so a new import shows without a restart and
nobody waits for its computation, and the page's content is made once per version and language. A hidden
cell reads "te weinig gegevens", never a number. `/factsheet.json` is `Factsheet.to_json()`;
`/factsheet.pdf` is written by the domain's `ldj.factsheet.build` once per data version and language
into `<data_dir>/factsheet/<version>-<lang>/` and served from there (older versions' folders are removed).
"""

from __future__ import annotations

import json
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
from markupsafe import Markup
from tornado.ioloop import IOLoop

from .. import factsheet as fs
from .. import paths, versions
from ..settings import Settings
from .html import render
from .layout import PortalHandler, prefix
from .params import one_of
from .visitor import LANGUAGES, Visitor

PAGE = "factsheet"

CHART_HEIGHT = 300


class FactsheetPage(PortalHandler):
    """GET {prefix}/factsheet[?lang=en]: the page in the portal's frame, as plain HTML. Its content is the
    same for every visitor, so it is made once per factsheet and language and a view costs a lookup;
    the chart is drawn by BokehJS from its `json_item` (no Bokeh document or websocket on the server)."""

    action = "page.factsheet"

    def get(self):
        visitor = self.visitor()
        sheet = fs.factsheet(visitor.engine, visitor.settings)  # per view: a new import shows once refreshed
        self.set_header("Cache-Control", "no-cache")  # revalidate: the ETag changes with the data version
        self.set_header("X-LDJ-Data-Version", sheet.data_version)
        pending = versions.behind(visitor.engine, sheet.data_version)
        content = render("factsheet/content.html.j2", content=_content(sheet, visitor),
                         pending=visitor.t("portal_pending") if pending else "")
        self.write_page(visitor, PAGE, visitor.t("fs_title"), content, head=_head())


_content_cache: dict[tuple, Markup] = {}


def _content(sheet: fs.Factsheet, visitor: Visitor) -> Markup:
    """The page's HTML (the domain's `render_content`, as in the PDF), made once per factsheet and language."""
    key = (sheet.data_version, sheet.computed_at, visitor.language)
    if key not in _content_cache:
        chart = render("factsheet/chart.html.j2", height=CHART_HEIGHT,
                       item=json_item(hv.render(growth_chart(sheet, visitor), backend="bokeh")))
        downloads = [(f"factsheet.pdf?lang={visitor.language}", visitor.t("fsp_download_pdf")),
                     ("factsheet.json", visitor.t("fsp_download_json"))]
        if len(_content_cache) >= 8:
            _content_cache.clear()
        _content_cache[key] = Markup(fs.render_content(
            sheet, visitor.settings, visitor.language, chart=chart, downloads=downloads,
            growth_heading=visitor.t("fsp_growth_heading"), growth_help=visitor.t("fsp_growth_help")))
    return _content_cache[key]


def _head() -> Markup:
    """BokehJS from the portal's own static files (versioned URL: browsers keep it), and the content's CSS."""
    return render("factsheet/head.html.j2", prefix=prefix(), bokeh_version=bokeh.__version__)


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


# --- downloads ---------------------------------------------------------------------------------

_build_lock = threading.Lock()


def pdf_path(engine: sa.Engine, settings: Settings, language: str) -> Path:
    """The factsheet PDF of the shown data version (ldj.versions), built once per version and language."""
    path = paths.factsheet_pdf(settings.data_dir, fs.factsheet(engine, settings).data_version, language)
    root = path.parent.parent
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
            folder = paths.factsheet_pdf(settings.data_dir, version, language).parent
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

    action = "page.factsheet"

    def get(self):
        visitor = self.visitor()
        sheet = fs.factsheet(visitor.engine, visitor.settings)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-LDJ-Data-Version", sheet.data_version)
        self.write(json.dumps(sheet.to_json(), ensure_ascii=False))


class PdfHandler(PortalHandler):
    """GET {prefix}/factsheet.pdf[?lang=en]: the printable factsheet (A4), for everyone."""

    action = "page.factsheet"

    async def get(self):
        visitor = self.visitor()
        language = self.arg("lang", one_of(LANGUAGES), visitor.language)
        # weasyprint takes a few seconds the first time per version: not on the server's event loop
        name, pdf = await IOLoop.current().run_in_executor(None, pdf_bytes, visitor.engine, visitor.settings, language)
        self.set_header("Content-Type", "application/pdf")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Disposition", f'attachment; filename="ldj-factsheet-{name}.pdf"')
        self.write(pdf)


HANDLERS = [(r"/factsheet\.json", JsonHandler), (r"/factsheet\.pdf", PdfHandler)]
