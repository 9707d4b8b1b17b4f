"""Plain HTTP downloads of the factsheet (public): `/factsheet.json` and `/factsheet.pdf`.

The JSON is `Factsheet.to_json()` at the current data version. The PDF is written by the domain's
`ldj.factsheet.build` once per data version and language into `<data_dir>/factsheet/<version>-<lang>/`
and served from there; older versions' folders are removed after a new one is built.
A module of its own because it subclasses app.PortalHandler (see vraagbank_http.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

import sqlalchemy as sa
from tornado import web
from tornado.ioloop import IOLoop

from .. import factsheet as fs
from ..settings import Settings
from .app import PortalHandler
from .visitor import LANGUAGES

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
