"""The start page: what the LDJ is, and for a logged-in visitor what waits for them."""

from __future__ import annotations

import panel as pn

from .. import deployment, governance
from .visitor import Visitor


def view(visitor: Visitor) -> pn.viewable.Viewable:
    parts: list = [pn.pane.Markdown(visitor.t("home_intro"), sizing_mode="stretch_width")]
    if visitor.anonymous:
        return pn.Column(*parts, sizing_mode="stretch_width")
    parts.append(pn.pane.Markdown(f"### {visitor.t('home_welcome', name=visitor.name)}"))
    if visitor.allows("deployment.warnings") and deployment.shared_workspace_accounts(visitor.settings):
        parts.append(pn.pane.Alert(visitor.t("home_shared_accounts"), alert_type="warning"))
    engine = visitor.engine
    if visitor.has_role("apo"):
        queue = governance.queue_for_reviewer(engine, visitor.name)
        parts.append(pn.pane.Markdown(visitor.t("home_apo_queue", n=len(queue))))
    grants = governance.active_grants(engine, visitor.name)
    if grants:
        projects = sorted({g.project_id for g in grants})
        parts.append(pn.pane.Markdown(visitor.t("home_projects", projects=", ".join(map(str, projects)))))
        parts.append(pn.pane.HTML(f'<a href="/hub/spawn">{visitor.t("home_workspace")}</a>'))
    return pn.Column(*parts, sizing_mode="stretch_width")
