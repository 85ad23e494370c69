#!/usr/bin/env python3
"""Open the study report in headless Chromium, check it, and save a PNG of the verdict matrix (issue 4).

    python scripts/screenshot_report.py outputs/report.html --png docs/verdict_matrix.png --top docs/report_top.png

Pages are opened at 1024 px wide (`--width`), a small laptop screen.

Checks, for the report and for the figure page that is photographed (by default `<report dir>/figures/
verdict_matrix.html`, else the matrix inside the report): no JavaScript exception, no console or log error, no request
to the network (the pages must open offline), and every plotly figure drawn (its div got plotly's `js-plotly-plot`
class and an `svg.main-svg`), and in the report every `--require`d figure id and `--require-text` present (the parts
a reader must find: the verdict matrix, the findings, the forest plots). Prints one JSON summary; exits 0 when all
checks pass, 1 when one fails, 2 on bad input.

Standard library only: Chromium's DevTools protocol over `--remote-debugging-pipe` (the browser reads commands on
file descriptor 3 and writes replies and events on 4, each a JSON message ended by a NUL byte), so neither Playwright
nor a websocket client is needed. Chromium: the Debian package `chromium` (`apt-get install -y chromium`).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Flags that work on a headless Linux box without a GPU, a sandbox user namespace or network access.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--mute-audio", "--remote-debugging-pipe"]
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "devtools:")
# A figure counts as drawn once plotly has plotted into its div.
FIGURES_JS = """(() => {
  const divs = [...document.querySelectorAll('.plotly-graph-div')];
  const drawn = g => g.classList.contains('js-plotly-plot') && g.querySelector('svg.main-svg') !== null;
  return JSON.stringify({total: divs.length, drawn: divs.filter(drawn).length,
                         undrawn: divs.filter(g => !drawn(g)).map(g => g.id)});
})()"""
RECT_JS = """(() => {
  const g = document.getElementById(%s) || document.querySelector('.plotly-graph-div');
  if (!g) return 'null';
  const r = g.getBoundingClientRect();
  return JSON.stringify({x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height});
})()"""
DRAWN_IDS_JS = """JSON.stringify([...document.querySelectorAll('.plotly-graph-div.js-plotly-plot')]
  .filter(g => g.querySelector('svg.main-svg') !== null).map(g => g.id))"""
TEXT_JS = "JSON.stringify(document.body.innerText)"
SIZE_JS = "JSON.stringify({width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight})"


class DevToolsError(RuntimeError):
    pass


class Browser:
    """A headless Chromium driven over the DevTools pipe; `with Browser(...) as b:` ends it and removes its profile."""

    def __init__(self, chromium: str = CHROMIUM, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="mtalign-chromium-")
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Chromium expects the pipe on fds 3 and 4; move ours above 9 first so dup2 in the child cannot clobber them.
        high_read = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
        high_write = fcntl.fcntl(replies_write, fcntl.F_DUPFD, 10)
        for fd in (commands_read, replies_write):
            os.close(fd)

        def to_3_and_4():
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        self.log = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                            pass_fds=(3, 4, high_read, high_write), preexec_fn=to_3_and_4)
        finally:
            os.close(high_read)
            os.close(high_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _stderr_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.time()
            if left <= 0:
                raise DevToolsError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._replies], [], [], min(left, 1.0))
            if not ready:
                if self.process.poll() is not None:
                    raise DevToolsError(f"Chromium exited with {self.process.returncode}: {self._stderr_tail()}")
                continue
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise DevToolsError(f"Chromium closed the DevTools pipe: {self._stderr_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept in `events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.time() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float) -> None:
        deadline = time.time() + timeout
        seen = len(self.events)
        while True:
            if any(e.get("method") == method and e.get("sessionId") == session for e in self.events[seen:]):
                return
            self.events.append(self._read(deadline))

    def evaluate(self, session: str, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise DevToolsError(f"evaluating a check failed: {result['exceptionDetails'].get('text')}")
        return json.loads(result["result"]["value"])


def open_page(browser: Browser, path: Path, width: int = 1024, height: int = 900) -> tuple[str, int]:
    """A fresh tab showing `path`, loaded; returns its session and the index of its first event."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page", "Network"):
        browser.call(f"{domain}.enable", {}, session)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
    first = len(browser.events)
    browser.call("Page.navigate", {"url": path.resolve().as_uri()}, session)
    browser.wait_for("Page.loadEventFired", session, browser.timeout)
    return session, first


def wait_drawn(browser: Browser, session: str, timeout: float) -> dict:
    """Poll until every plotly div is drawn (or time runs out); returns the last count."""
    deadline = time.time() + timeout
    while True:
        state = browser.evaluate(session, FIGURES_JS)
        if (state["total"] and state["drawn"] == state["total"]) or time.time() > deadline:
            return state
        time.sleep(0.25)


def problems(events: list[dict], session: str) -> tuple[list[str], list[str]]:
    """(errors, network requests) among a page's events."""
    errors, network = [], []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + (details.get("exception", {}).get("description") or details.get("text", "")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            errors.append(f"console.{params['type']}: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            if not url.startswith(LOCAL_SCHEMES):
                network.append(url)
    return errors, network


def check_page(browser: Browser, path: Path, timeout: float, width: int = 1024, require: list[str] = (),
               require_text: list[str] = ()) -> tuple[dict, str]:
    session, first = open_page(browser, path, width)
    state = wait_drawn(browser, session, timeout)
    time.sleep(0.3)  # let late console messages from the last draw arrive
    browser.evaluate(session, "JSON.stringify(0)")  # flush: events before this reply are in browser.events
    errors, network = problems(browser.events[first:], session)
    drawn_ids = set(browser.evaluate(session, DRAWN_IDS_JS))
    text = browser.evaluate(session, TEXT_JS)
    missing = [i for i in require if i not in drawn_ids] + [f"text: {t}" for t in require_text if t not in text]
    return {"page": str(path), "figures": state["total"], "drawn": state["drawn"], "undrawn": state["undrawn"],
            "errors": errors, "network_requests": network, "missing": missing,
            "page_width": browser.evaluate(session, SIZE_JS)["width"]}, session


def screenshot_top(browser: Browser, session: str, png: Path, width: int, height: int = 1400) -> list[int]:
    """PNG of the top of the page as a reader first sees it, `width` wide."""
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session)
    time.sleep(0.5)  # responsive figures redraw on resize
    shot = browser.call("Page.captureScreenshot", {"format": "png", "clip": {"x": 0, "y": 0, "width": width,
                                                                              "height": height, "scale": 1}}, session)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(base64.b64decode(shot["data"]))
    return [width, height]


def screenshot(browser: Browser, session: str, element_id: str, png: Path) -> list[int]:
    """PNG of one figure div (the whole figure, even beyond the viewport)."""
    rect = browser.evaluate(session, RECT_JS % json.dumps(element_id))
    if rect is None:
        raise DevToolsError(f"no figure to photograph on the page (looked for #{element_id})")
    size = browser.evaluate(session, SIZE_JS)
    width = int(max(rect["x"] + rect["width"], size["width"])) + 1
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
    rect = browser.evaluate(session, RECT_JS % json.dumps(element_id))  # re-laid out at the new width
    clip = {"x": rect["x"], "y": rect["y"], "width": rect["width"], "height": rect["height"], "scale": 1}
    shot = browser.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                        session)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(base64.b64decode(shot["data"]))
    return [int(rect["width"]), int(rect["height"])]


def run(report: Path, png: Path | None, figure: Path | None, element: str, chromium: str, timeout: float,
        width: int = 1024, top: Path | None = None, require: list[str] = (), require_text: list[str] = ()) -> dict:
    pages = [report] + ([figure] if figure and figure != report else [])
    summary: dict = {"pages": []}
    with Browser(chromium, timeout) as browser:
        sessions = {}
        for page in pages:
            checks = (require, require_text) if page == report else ((), ())
            result, session = check_page(browser, page, timeout, width, *checks)
            summary["pages"].append(result)
            sessions[page] = session
        if top is not None:
            summary["top"] = str(top)
            summary["top_size"] = screenshot_top(browser, sessions[report], top, width)
        if png is not None:
            target = figure or report
            summary["png"] = str(png)
            summary["png_size"] = screenshot(browser, sessions[target], element if target == report else "", png)
    summary["ok"] = all(p["figures"] > 0 and p["drawn"] == p["figures"] and not p["errors"] and
                        not p["network_requests"] and not p["missing"] for p in summary["pages"])
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the report HTML (e.g. outputs/report.html)")
    parser.add_argument("--png", type=Path, help="where to write the verdict matrix screenshot")
    parser.add_argument("--figure", type=Path,
                        help="figure page to photograph (default: figures/verdict_matrix.html beside the report, "
                             "else the matrix inside the report)")
    parser.add_argument("--element", default="fig-verdict_matrix", help="figure div photographed inside the report")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", CHROMIUM), help="browser binary")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the browser and the figures")
    parser.add_argument("--width", type=int, default=1024, help="window width in px (default 1024)")
    parser.add_argument("--top", type=Path, help="where to write a screenshot of the top of the report")
    parser.add_argument("--require", action="append", default=[], metavar="ID",
                        help="id of a figure div the report must contain, drawn (repeatable)")
    parser.add_argument("--require-text", action="append", default=[], metavar="TEXT",
                        help="text the report must show (repeatable)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: report {args.report} not found (make one with `mtalign report --out DIR`)", file=sys.stderr)
        return 2
    if not (Path(args.chromium).is_file() and os.access(args.chromium, os.X_OK)):
        print(f"error: Chromium not found at {args.chromium}; install it (Debian: apt-get install -y chromium) or "
              "pass --chromium PATH", file=sys.stderr)
        return 2
    figure = args.figure
    if figure is None:
        default = args.report.parent / "figures" / "verdict_matrix.html"
        figure = default if default.is_file() else None
    elif not figure.is_file():
        print(f"error: figure page {figure} not found", file=sys.stderr)
        return 2
    try:
        summary = run(args.report, args.png, figure, args.element, args.chromium, args.timeout, args.width, args.top,
                      args.require, args.require_text)
    except DevToolsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
