"""The start page: what the LDJ is, and for a logged-in visitor what waits for them: her unread
notifications (ldj.notifications, in her language, each with its link; a button marks them read), the
APO queue, her projects.

A visitor without login sees only what the LDJ is: the same page for all of them, so it is plain HTML in
the portal's frame (`StartPage`, routed by ldj.portal.pages for requests without a login cookie), not a
Panel session with its document and websocket; the page's text is rendered once per language.
"""

from __future__ import annotations

from functools import lru_cache

import panel as pn
from markupsafe import Markup

from .. import deployment, governance, notifications
from ..i18n import t
from .html import markdown_html, pane
from .layout import PortalHandler, guarded, message, prefix
from .visitor import Visitor


@lru_cache(maxsize=None)
def _intro(language: str) -> Markup:
    return markdown_html(lambda key: t(key, language), "home_intro")


class StartPage(PortalHandler):
    """GET {prefix}/ without login: what the LDJ is, in the portal's frame (no Panel session)."""

    action = "page.home"

    def get(self) -> None:
        visitor = self.visitor()
        self.write_page(visitor, "", visitor.t("nav_home"), _intro(visitor.language))


def _notifications(visitor: Visitor) -> pn.Column:
    """The visitor's unread notifications and a button marking the shown ones read; read again after it."""
    feedback = pn.Column(sizing_mode="stretch_width")
    content = pn.Column(sizing_mode="stretch_width")

    def render() -> None:
        unread = notifications.unread(visitor.engine, visitor.actor)  # the hub's groups, as the page itself
        if not unread:
            content.objects = []
            return
        items = [{"text": n.text(visitor.language), "href": f"{prefix()}{n.link}" if n.link else "",
                  "at": f"{n.created_at:%d-%m-%Y %H:%M}"} for n in unread]
        button = pn.widgets.Button(name=visitor.t("home_mark_read"), button_type="default")

        def mark(_):
            ids = [n.id for n in unread]
            with pn.io.hold():
                if guarded(lambda: notifications.mark_read(visitor.engine, visitor.actor, ids), feedback,
                           visitor.t("home_marked_read")):
                    render()

        button.on_click(mark)
        content.objects = [pane("notifications.html.j2", heading=visitor.t("home_notifications"), items=items),
                           button]

    render()
    return pn.Column(feedback, content, sizing_mode="stretch_width")


def view(visitor: Visitor) -> pn.viewable.Viewable:
    intro = pn.pane.Markdown(visitor.t("home_intro"), sizing_mode="stretch_width")
    if visitor.anonymous:
        return pn.Column(intro, sizing_mode="stretch_width")
    warnings = []
    if visitor.allows("deployment.warnings") and deployment.shared_workspace_accounts(visitor.settings):
        warnings.append(message(visitor.t("home_shared_accounts"), "warning"))
    engine = visitor.engine
    queue = governance.queue_for_reviewer(engine, visitor.name) if visitor.allows("request.review") else None
    projects = sorted({g.project_id for g in governance.active_grants(engine, visitor.name)})
    parts = [_notifications(visitor)] if visitor.allows("notification.read") else []
    return pn.Column(intro, *warnings, pane(
        "home.html.j2", welcome=visitor.t("home_welcome", name=visitor.name),
        apo_queue=visitor.t("home_apo_queue", n=len(queue)) if queue is not None else None,
        projects=visitor.t("home_projects", projects=", ".join(map(str, projects))) if projects else "",
        workspace=visitor.t("home_workspace")), *parts, sizing_mode="stretch_width")
