"""Debian's chromium driven by Playwright, for portal tests; screenshots go to docs/screenshots/."""

from __future__ import annotations

from pathlib import Path

from ldj.settings import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
IDLE = "() => window.Bokeh !== undefined && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"
# A page is ready when it has loaded and, where it runs BokehJS (Panel pages, the factsheet's chart), its
# document is idle; a plain page without Bokeh (the start page without login) once it has loaded.
READY = ("() => document.readyState === 'complete' && (document.querySelector('script[src*=\"/bokeh.min.js\"]') === null"
         f" || ({IDLE[6:]}))")


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def wait_idle(page, timeout: float = 30_000) -> None:
    page.wait_for_function(READY, timeout=timeout)


def open_page(page, url: str) -> None:
    page.goto(url)
    wait_idle(page)


def login(page, hub_url: str, name: str, password: str, next_path: str = "/services/ldj-portal/") -> None:
    """The portal's "Inloggen": the hub's login form, then single sign-on back into the portal at next_path."""
    page.context.clear_cookies()  # a fresh visitor: no hub session, no portal session
    page.goto(f"{hub_url}/services/ldj-portal/login?next={next_path}")
    page.wait_for_url("**/hub/login**")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"**{next_path}**")
    wait_idle(page)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
