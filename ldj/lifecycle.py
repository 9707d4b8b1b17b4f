"""Workspace lifecycle: a hub service that stops a running workspace once its owner no longer has an
active grant (expired, revoked, project closed, account deactivated). Every stop is logged.

Run as a hub-managed service (`python -m ldj.lifecycle`); it checks every
`LDJ_WORKSPACE_CHECK_SECONDS`. The data service already refuses reads at once; this also takes
away the running server, and (ldj.retention) removes the extracts of projects that ended. When the
store's current data version was left without its derived files for a whole round (an import with
`--no-snapshots`, or one stopped half-way), it refreshes them in the background (`ldj.versions`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request

from . import deployment, governance, refresh, retention, store, versions
from .audit import Reason, log_access
from .settings import get_settings

log = logging.getLogger("ldj.lifecycle")


class Hub:
    """The few hub REST calls this service needs, with its own service token."""

    def __init__(self, api_url: str, token: str):
        self.api_url = api_url.rstrip("/")
        self.token = token

    def _call(self, method: str, path: str):
        req = urllib.request.Request(f"{self.api_url}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            return json.loads(body) if body else None

    def running(self) -> list[str]:
        return [u["name"] for u in self._call("GET", "/users?state=active") if u.get("servers")]

    def stop(self, name: str) -> None:
        self._call("DELETE", f"/users/{name}/server")


def check_once(hub: Hub, engine) -> list[str]:
    """Stop the servers of users without an active grant; returns their names."""
    stopped = []
    for name in hub.running():
        if governance.active_grants(engine, name):
            continue
        hub.stop(name)
        log_access(engine, user=name, action="workspace.stop", outcome="stopped", reason=Reason("no_active_grant"))
        log.info("stopped %s's workspace: no active grant", name)
        stopped.append(name)
    return stopped


def refresh_if_needed(engine, settings, unready_before: str | None) -> tuple[str | None, threading.Thread | None]:
    """The current version when it is unready and nobody refreshes it, and a background refresh when it
    was so the round before too: a steward importing file by file with `--no-snapshots` is not
    interrupted between files, and a version left unready is refreshed one round later."""
    unready = store.data_version(engine)[0] if versions.needs_refresh(engine, settings) else None
    if unready is None or unready != unready_before:
        return unready, None

    def run() -> None:
        try:
            version = refresh.refresh(engine, settings)
            log.info("data version %s refreshed", version)
        except Exception:  # logged; the next round tries again
            log.exception("refresh failed")

    thread = threading.Thread(target=run, name="ldj-refresh", daemon=True)
    thread.start()
    return None, thread


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(asctime)s ldj.lifecycle] %(message)s")
    deployment.private_umask()  # what housekeeping writes into the data folder stays the service account's
    settings = get_settings()
    hub = Hub(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    engine = store.get_engine(settings)
    refreshing: threading.Thread | None = None
    unready: str | None = None
    try:
        while True:
            try:
                check_once(hub, engine)
            except OSError as exc:  # the hub restarting: try again next round
                log.warning("hub not reachable: %s", exc)
            try:  # housekeeping on the data folder, whatever the hub does
                if refreshing is None or not refreshing.is_alive():
                    unready, refreshing = refresh_if_needed(engine, settings, unready)
                for removal in retention.prune(engine, settings):
                    log.info("removed %s (%s)", removal.path, removal.reason)
            except Exception:  # logged; the next round tries again
                log.exception("housekeeping failed")
            time.sleep(settings.workspace_check_seconds)
    except KeyboardInterrupt:  # the hub stops its managed services with SIGINT
        pass


if __name__ == "__main__":
    main()
