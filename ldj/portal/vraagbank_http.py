"""Plain HTTP endpoints of the Vraagbank: the public Atom feed and the steward's CSV export.

A module of its own because it subclasses app.PortalHandler (app imports the pages, so the page module
cannot import app); app.extra_handlers() imports it when the server starts.
"""

from __future__ import annotations

from tornado import web

from .. import governance as gov
from .. import vraagbank as vb
from .app import PortalHandler


class FeedHandler(PortalHandler):
    """GET {prefix}/vraagbank/feed.atom: the newest published questions, for everyone."""

    def get(self):
        visitor = self.visitor()
        feed = vb.atom_feed(visitor.engine, visitor.settings.portal_url, visitor.language)
        self.set_header("Content-Type", "application/atom+xml; charset=utf-8")
        self.write(feed)


class ExportHandler(PortalHandler):
    """GET {prefix}/vraagbank/export.csv: every question as CSV; the domain refuses anyone but a steward."""

    def get(self):
        visitor = self.visitor()
        try:
            text = vb.export_csv(visitor.engine, visitor.name, visitor.language)
        except gov.PermissionDenied as exc:
            raise web.HTTPError(403, str(exc)) from None
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", 'attachment; filename="vraagbank.csv"')
        self.set_header("Cache-Control", "no-store")
        self.write("\ufeff" + text)  # byte-order mark: Excel then reads the file as UTF-8


HANDLERS = [(r"/vraagbank/feed(?:\.atom)?", FeedHandler), (r"/vraagbank/export\.csv", ExportHandler)]
