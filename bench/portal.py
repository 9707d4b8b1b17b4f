"""Portal benchmark: factsheet query time, the factsheet page's time to idle in a real browser, and N
concurrent sessions loading it.

    .venv/bin/python bench/portal.py                  # 112k store; 10M figure printed as nan
    .venv/bin/python bench/portal.py --quick          # fewer runs and loops (a smoke run)
    .venv/bin/python bench/portal.py --size-10m [--data-dir-10m DIR]   # also the 10M store (long: see docs)

1. Factsheet query (`ldj.factsheet.factsheet()`, what every page view calls): p50/p95 of warm calls
   after one cold computation, via `bench/factsheet.py measure()`, on stores bulk-loaded by its
   `bulk_load` (BENCH ONLY: synthetic rows written straight into the tables) — 112,000 questionnaires
   and, with --size-10m, 10,000,000 (kept in --data-dir-10m and re-used by later runs).
2. Page time to idle: the real stack (hub, proxy, portal and data service from hub/jupyterhub_config.py,
   tests/portalserver.py) over the 112k store on loopback; Debian's chromium through Playwright opens
   /services/ldj-portal/factsheet in a fresh browser context (no cache, no cookies, no login) and the
   clock stops when the figures are on screen and Bokeh reports the chart idle (tests/browser.py IDLE).
   One warm-up load first.
3. N concurrent sessions, each loading the page `--loops` times in a row (bounded), all at once,
   against the running portal through the hub's proxy:
   a. on the wire, as a first visit with an empty cache: GET the page and every script and stylesheet
      it names on the portal (for a Panel page also its websocket and document); the clock stops at
      the last byte. This is the portal's answer under load and RESULT's concurrent50_p95_s. The same
      for the start page without login (plain HTML since 2026-12-05, a Panel page before): start50_p95_s;
      and for a Panel page (`--panel-page`, default the public research registry /onderzoek: a Panel
      session for every view, its page, static files, websocket and document): panel50_p95_s, the
      interactive pages' figure.
   b. in chromium (asyncio, one browser): N tabs of one profile whose cache holds the static files
      (`--fresh-profiles`: N empty profiles), time from navigation to idle — and the same N tabs
      against a copy of the page served as static files by Python's http.server (the control). The N
      tabs render on the same cores as the portal; on a small machine they dominate, which the
      control shows (`--no-browser-sessions` skips b).
4. An import while visitors look: `ldj ingest` of a new organisation's delivery (synthetic, the real
   import and its refresh) while one visitor reloads the factsheet page every 0.1 s: the page's
   answer times meanwhile (p50/p95/max) and when the new data version appears (`ldj.versions`: the
   page shows the last ready version until the refresh is done, so no visit waits for a build).
`--sessions-only` runs 3a alone on the stack (no chromium, no import): the quick way to the two
concurrent figures; the others are then printed as nan. The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import factsheet as factsheet_bench  # noqa: E402  (bench/factsheet.py)
import sqlalchemy as sa  # noqa: E402

from ldj import store  # noqa: E402
from ldj.settings import Settings  # noqa: E402

PAGE = "/services/ldj-portal/factsheet"
START = "/services/ldj-portal/"  # the start page without login: RESULT's start50_p95_s
PANEL = "/services/ldj-portal/onderzoek"  # a public Panel page (session, websocket, document): panel50_p95_s
READY = "[data-total='questionnaires']"  # the page's figures are on screen


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (as bench/factsheet.py)."""
    ordered = sorted(values)
    return ordered[max(0, int(round(q * len(ordered))) - 1)] if ordered else math.nan


def store_with(data_dir: Path, questionnaires: int) -> tuple[sa.Engine, Settings, int]:
    """A store of at least `questionnaires` (bulk-loaded when empty), and how many it holds."""
    settings = Settings(data_dir=data_dir, progress="never")
    engine = store.get_engine(settings)
    with engine.connect() as conn:
        present = conn.execute(sa.select(sa.func.count()).select_from(store.measurements)).scalar()
    if not present:
        t0 = time.perf_counter()
        factsheet_bench.bulk_load(engine, questionnaires)
        print(f"bulk load {questionnaires:,} questionnaires: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        with engine.connect() as conn:
            present = conn.execute(sa.select(sa.func.count()).select_from(store.measurements)).scalar()
    return engine, settings, present


def import_while_visited(url: str, data_dir: Path, root: Path, questionnaires: int = 26_000) -> None:
    """`ldj ingest` of a new organisation (ORG25: the bulk store holds ORG00..ORG24) while one visitor
    reloads the factsheet page; prints the page's answer times and when the new version showed."""
    import requests

    env = {k: v for k, v in os.environ.items() if not k.startswith("LDJ_")}
    env.update(LDJ_DATA_DIR=str(data_dir), LDJ_PROGRESS="never")
    ldj = str(Path(sys.executable).parent / "ldj")
    subprocess.run([ldj, "synth", str(root / "second"), "--questionnaires", str(questionnaires), "--organisations", "26",
                    "--seed", "5", "--invalid-share", "0"], env=env, check=True, capture_output=True)
    files = sorted((root / "second").glob("ORG25_*.csv"), key=lambda p: ("traject" not in p.name, p.name))
    before = requests.get(url, timeout=60).headers["X-LDJ-Data-Version"]
    times, switched = [], None
    t0 = time.perf_counter()
    job = subprocess.Popen([ldj, "ingest", "--brief", *map(str, files)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    while switched is None and time.perf_counter() - t0 < 1800:  # bounded
        start = time.perf_counter()
        answer = requests.get(url, timeout=600)
        times.append(time.perf_counter() - start)
        if answer.headers["X-LDJ-Data-Version"] != before:
            switched = time.perf_counter() - t0
        time.sleep(0.1)
    stderr = job.communicate(timeout=1800)[1]
    done = time.perf_counter() - t0
    if job.returncode != 0:
        raise SystemExit(f"ldj ingest failed: {stderr}")
    print(f"an import while a visitor reloads the factsheet ({len(files)} files of a new organisation; import and "
          f"refresh {done:.1f} s): {len(times)} page views, p50 {percentile(times, 0.5) * 1000:.0f} ms, "
          f"p95 {percentile(times, 0.95) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms; the new data version "
          f"showed after {switched if switched is not None else math.nan:.1f} s", flush=True)


def query_times(engine: sa.Engine, settings: Settings, label: str, repeats: int) -> dict:
    out = factsheet_bench.measure(engine, settings, repeats)
    print(f"factsheet query at {label} ({engine.dialect.name}): warm p50 {out['p50_ms']:.2f} ms, "
          f"p95 {out['p95_ms']:.2f} ms over {repeats} calls; cold {out['cold_ms'] / 1000:.1f} s, "
          f"recompute {out['recompute_ms'] / 1000:.1f} s", flush=True)
    return out


def page_idle(url: str, runs: int) -> tuple[float, list[float]]:
    """(warm-up load, then `runs` loads) in fresh browser contexts: seconds from navigation to idle."""
    import browser
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        try:
            for _ in range(runs + 1):
                context = chromium.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                t0 = time.perf_counter()
                page.goto(url)
                page.wait_for_function(browser.IDLE, timeout=120_000, polling=50)
                page.wait_for_selector(READY)
                times.append(time.perf_counter() - t0)
                context.close()
        finally:
            chromium.close()
    return times[0], times[1:]


async def _sessions(url: str, n: int, loops: int, cached: bool = True) -> tuple[list[float], int, float]:
    import browser
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # every tab renders as if in front: no timer throttling or paused frames for background tabs
        chromium = await playwright.chromium.launch(executable_path=browser.CHROMIUM, args=[
            *browser.ARGS, "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows"])
        if cached:  # n tabs of one browser profile whose cache already holds the static files (one warm-up load)
            contexts = [await chromium.new_context(viewport={"width": 1280, "height": 900})]
            warm = await contexts[0].new_page()
            await warm.goto(url)
            await warm.wait_for_function(browser.IDLE, timeout=180_000, polling=50)
            await warm.close()
            pages = [await contexts[0].new_page() for _ in range(n)]
        else:  # n fresh profiles: every tab fetches and compiles BokehJS and Panel itself
            contexts = [await chromium.new_context(viewport={"width": 1280, "height": 900}) for _ in range(n)]
            pages = [await c.new_page() for c in contexts]
        failures = 0

        async def session(page) -> list[float]:
            nonlocal failures
            out = []
            for _ in range(loops):  # bounded: each session loads the page `loops` times
                t0 = time.perf_counter()
                try:
                    await page.goto(url, timeout=180_000)
                    await page.wait_for_function(browser.IDLE, timeout=180_000, polling=50)
                    await page.wait_for_selector(READY, timeout=60_000)
                    out.append(time.perf_counter() - t0)
                except Exception as exc:  # a load that never became idle counts as a failure, not a time
                    failures += 1
                    print(f"  session load failed: {exc.__class__.__name__}: {str(exc)[:200]}", file=sys.stderr)
            return out

        t0 = time.perf_counter()
        results = await asyncio.gather(*(session(p) for p in pages))
        wall = time.perf_counter() - t0
        for c in contexts:
            await c.close()
        await chromium.close()
    return [t for r in results for t in r], failures, wall


def concurrent(url: str, n: int, loops: int, cached: bool = True) -> tuple[list[float], int, float]:
    return asyncio.run(_sessions(url, n, loops, cached))


async def _protocol_sessions(url: str, n: int, loops: int) -> tuple[list[float], int, float]:
    """What a browser does on the wire, without rendering, on a first visit (empty cache): GET the page,
    then every script and stylesheet it names on the portal, and for a Panel page (one that carries a
    Bokeh session token) open the session's websocket and pull the document. The clock stops at the last
    byte of the last of these (for a Panel page the server's PULL-DOC-REPLY: the whole page's models)."""
    import re
    from urllib.parse import urljoin, urlparse

    from bokeh.client.websocket import WebSocketClientConnectionWrapper
    from bokeh.protocol import Protocol
    from bokeh.protocol.receiver import Receiver
    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.websocket import websocket_connect

    AsyncHTTPClient.configure(None, max_clients=n)
    client = AsyncHTTPClient()
    parts = urlparse(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    ws_url = f"ws://{parts.netloc}{parts.path.rstrip('/')}/ws"
    failures = 0

    async def document(token: str, cookie: str) -> None:
        socket = await websocket_connect(HTTPRequest(ws_url, headers={"Origin": origin, "Cookie": cookie},
                                                     request_timeout=180), subprotocols=["bokeh", token])
        protocol = Protocol()
        receiver = Receiver(protocol)

        async def read():
            while True:
                fragment = await socket.read_message()
                if fragment is None:
                    raise ConnectionError("websocket closed")
                message = await receiver.consume(fragment)
                if message is not None:
                    return message

        try:
            assert (await read()).msgtype == "ACK"
            await protocol.create("PULL-DOC-REQ").send(WebSocketClientConnectionWrapper(socket))
            reply = await read()
            assert reply.msgtype == "PULL-DOC-REPLY", reply.msgtype
        finally:
            socket.close()

    async def load() -> float:
        t0 = time.perf_counter()
        response = await client.fetch(url, request_timeout=180)
        html = response.body.decode()
        assert response.code == 200 and ('class="ldj-header"' in html or '"token"' in html), "not a portal page"
        resources = {urljoin(url, ref) for ref in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)}
        for resource in sorted(r for r in resources if r.startswith(origin)):
            answer = await client.fetch(resource, request_timeout=180, raise_error=False)
            if answer.code != 200:
                raise ConnectionError(f"{resource}: HTTP {answer.code}")
        token = re.search(r'"token":\s*"([^"]+)"', html)
        if token:
            cookie = "; ".join(c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie"))
            await document(token.group(1), cookie)
        return time.perf_counter() - t0

    async def session() -> list[float]:
        nonlocal failures
        out = []
        for _ in range(loops):
            try:
                out.append(await load())
            except Exception as exc:
                failures += 1
                print(f"  protocol load failed: {exc.__class__.__name__}: {str(exc)[:200]}", file=sys.stderr)
        return out

    t0 = time.perf_counter()
    results = await asyncio.gather(*(session() for _ in range(n)))
    return [t for r in results for t in r], failures, time.perf_counter() - t0


def concurrent_protocol(url: str, n: int, loops: int) -> tuple[list[float], int, float]:
    return asyncio.run(_protocol_sessions(url, n, loops))


def browser_sessions(url: str, n: int, loops: int, fresh_profiles: bool, root: Path) -> None:
    """3b: N chromium tabs against the portal, then against the same page as static files (the control)."""
    import functools
    import re
    import shutil
    import threading
    import urllib.request

    import bokeh.util.paths

    times, failures, wall = concurrent(url, n, loops, cached=not fresh_profiles)
    profiles = "fresh profiles" if fresh_profiles else "tabs of one profile, static files cached"
    print(f"{n} concurrent sessions x {loops} loads in one chromium ({profiles}; to idle, rendering on "
          f"the same cores): {len(times)} idle, {failures} failed; p50 {percentile(times, 0.5):.2f} s, "
          f"p95 {percentile(times, 0.95):.2f} s, max {max(times, default=math.nan):.2f} s; wall {wall:.1f} s "
          f"({len(times) / wall:.1f} page loads/s)", flush=True)

    static = root / "static-control"
    static.mkdir(exist_ok=True)
    html = urllib.request.urlopen(url, timeout=60).read().decode()
    html = re.sub(r'src="[^"]*/bokeh\.min\.js[^"]*"', 'src="bokeh.min.js"', html)
    (static / "factsheet.html").write_text(html, encoding="utf-8")
    shutil.copy(bokeh.util.paths.bokehjs_path() / "js" / "bokeh.min.js", static / "bokeh.min.js")
    handler = functools.partial(QuietFiles, directory=str(static))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        control = f"http://127.0.0.1:{server.server_address[1]}/factsheet.html"
        times, failures, wall = concurrent(control, n, loops, cached=not fresh_profiles)
    finally:
        server.shutdown()
    print(f"  control, the same page as static files (http.server): {len(times)} idle, {failures} failed; "
          f"p50 {percentile(times, 0.5):.2f} s, p95 {percentile(times, 0.95):.2f} s; wall {wall:.1f} s", flush=True)


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs and loops; the 10M figure is nan")
    parser.add_argument("--size-10m", action="store_true", help="also measure the factsheet query at 10M (long)")
    parser.add_argument("--data-dir-10m", type=Path, default=Path(tempfile.gettempdir()) / "ldj-bench-portal-10m",
                        help="the 10M store's folder, re-used when it holds data (default: %(default)s)")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent sessions (default 50)")
    parser.add_argument("--loops", type=int, default=None, help="page loads per session (default 3; quick 1)")
    parser.add_argument("--page-runs", type=int, default=None, help="single page loads (default 10; quick 3)")
    parser.add_argument("--no-browser-sessions", dest="browser_sessions", action="store_false",
                        help="skip the N chromium tabs (3b) and their static-file control")
    parser.add_argument("--sessions-only", action="store_true",
                        help="only the concurrent sessions on the wire (3a): no chromium, no import while visited")
    parser.add_argument("--panel-page", default=PANEL, help="the Panel page of panel50_p95_s (default %(default)s)")
    parser.add_argument("--fresh-profiles", action="store_true",
                        help="concurrent sessions in fresh browser profiles (nothing cached) instead of tabs of one")
    args = parser.parse_args()
    loops = args.loops or (1 if args.quick else 3)
    page_runs = args.page_runs or (3 if args.quick else 10)
    repeats = 50 if args.quick else 200
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}", flush=True)

    root = Path(tempfile.mkdtemp(prefix="ldj-bench-portal-"))
    engine, settings, n = store_with(root / "var", 112_000)
    small = query_times(engine, settings, f"{n:,} questionnaires (112k)", repeats)
    p95_10m = math.nan
    if args.size_10m and not args.quick:
        big_engine, big_settings, n = store_with(args.data_dir_10m, 10_000_000)
        p95_10m = query_times(big_engine, big_settings, f"{n:,} questionnaires (10M)", repeats)["p95_ms"]
        big_engine.dispose()
    else:
        print("factsheet query at 10,000,000 questionnaires: not run (--size-10m)", flush=True)

    from ldj import refresh
    from portalserver import make_stack

    t0 = time.perf_counter()
    refresh.refresh(engine, settings)  # the state `ldj ingest` leaves: snapshots, cube and factsheet ready
    print(f"refresh of the 112k store (snapshots, dashboard cube, factsheet): {time.perf_counter() - t0:.1f} s",
          flush=True)
    stack = make_stack(root)
    t0 = time.perf_counter()
    stack.start()
    print(f"stack up (hub, proxy, portal, data service): {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        url = stack.url + PAGE
        idle = [math.nan]
        if not args.sessions_only:
            first, idle = page_idle(url, page_runs)
            print(f"page time to idle ({PAGE}, fresh browser context, no login): median "
                  f"{statistics.median(idle):.2f} s, p95 {percentile(idle, 0.95):.2f} s over {len(idle)} loads; "
                  f"warm-up load {first:.2f} s", flush=True)
        print(f"load average before the concurrent sessions: {os.getloadavg()[0]:.1f}", flush=True)
        wire, wire_failures, wire_wall = concurrent_protocol(url, args.sessions, loops)
        print(f"{args.sessions} concurrent sessions x {loops} loads of the factsheet, on the wire (page and its static "
              f"files, empty cache): {len(wire)} complete, {wire_failures} failed; p50 {percentile(wire, 0.5):.2f} s, "
              f"p95 {percentile(wire, 0.95):.2f} s, max {max(wire, default=math.nan):.2f} s; wall {wire_wall:.1f} s "
              f"({len(wire) / wire_wall:.1f} page views/s)", flush=True)
        start_wire, start_failures, start_wall = concurrent_protocol(stack.url + START, args.sessions, loops)
        print(f"{args.sessions} concurrent sessions x {loops} loads of the start page without login ({START}: the page "
              f"and its static files; for a Panel page also websocket and document): {len(start_wire)} complete, "
              f"{start_failures} failed; p50 {percentile(start_wire, 0.5):.2f} s, p95 {percentile(start_wire, 0.95):.2f} s, "
              f"max {max(start_wire, default=math.nan):.2f} s; {len(start_wire) / start_wall:.1f} page views/s",
              flush=True)
        print(f"load average before the Panel sessions: {os.getloadavg()[0]:.1f}", flush=True)
        panel_wire, panel_failures, panel_wall = concurrent_protocol(stack.url + args.panel_page, args.sessions, loops)
        print(f"{args.sessions} concurrent sessions x {loops} loads of a Panel page ({args.panel_page}: page, static "
              f"files, websocket and document, empty cache): {len(panel_wire)} complete, {panel_failures} failed; "
              f"p50 {percentile(panel_wire, 0.5):.2f} s, p95 {percentile(panel_wire, 0.95):.2f} s, "
              f"max {max(panel_wire, default=math.nan):.2f} s; wall {panel_wall:.1f} s "
              f"({len(panel_wire) / panel_wall:.1f} page views/s); load average after {os.getloadavg()[0]:.1f}",
              flush=True)
        if args.browser_sessions and not args.sessions_only:
            browser_sessions(url, args.sessions, loops, args.fresh_profiles, root)
        if not args.sessions_only:
            import_while_visited(url, settings.data_dir, root)
    finally:
        stack.stop()
    p95_concurrent = percentile(wire, 0.95) if not wire_failures else math.inf
    p95_start = percentile(start_wire, 0.95) if not start_failures else math.inf
    p95_panel = percentile(panel_wire, 0.95) if not panel_failures else math.inf
    print(f"RESULT factsheet_p95_ms_112k={small['p95_ms']:.3f} factsheet_p95_ms_10m={p95_10m:.3f} "
          f"page_idle_s={statistics.median(idle):.3f} concurrent50_p95_s={p95_concurrent:.3f} "
          f"start50_p95_s={p95_start:.3f} panel50_p95_s={p95_panel:.3f}")


if __name__ == "__main__":
    main()
