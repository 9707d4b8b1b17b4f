"""The start page: what the LDJ is, and for a logged-in visitor what waits for them."""

from __future__ import annotations

import panel as pn

from .. import deployment, governance
from .html import pane
from .layout import message
from .visitor import Visitor


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
    return pn.Column(intro, *warnings, pane(
        "home.html.j2", welcome=visitor.t("home_welcome", name=visitor.name),
        apo_queue=visitor.t("home_apo_queue", n=len(queue)) if queue is not None else None,
        projects=visitor.t("home_projects", projects=", ".join(map(str, projects))) if projects else "",
        workspace=visitor.t("home_workspace")), sizing_mode="stretch_width")
