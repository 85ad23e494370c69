#!/usr/bin/env python3
"""Open a claim notebook in JupyterLab as `make lab` serves it, check it, and photograph it at 1024 px (issue 9).

    python scripts/screenshot_lab.py --records outputs --model toy-chain_sum-weak --png docs/lab_claim_notebook.png

The notebook (default 02_reward_signal) is first executed with papermill on a finished study's recorded runs
(`records_dir`: no training), into a temporary folder next to a copy of its .py source, as `make notebooks` pairs them.
JupyterLab then serves that folder with the project's configs/jupyter (what `make lab` uses), and the script checks:
the file browser lists the .py source and hides its .ipynb, the .py opens as a notebook by default (Jupytext), and the
notebook shows its plotly figures drawn. Prints one JSON summary; exits 0 when every check passes, 1 when one fails,
2 on bad input. Chromium: the Debian package `chromium`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot_report import CHROMIUM, Browser, DevToolsError, screenshot_top  # noqa: E402

NOTEBOOK_STATE_JS = """JSON.stringify({
  notebook: document.querySelector('.jp-NotebookPanel .jp-Notebook') !== null,
  title: (document.querySelector('.jp-mod-current .lm-TabBar-tabLabel') || {}).textContent || '',
  figures: document.querySelectorAll('.jp-NotebookPanel .js-plotly-plot').length,
  drawn: [...document.querySelectorAll('.jp-NotebookPanel .js-plotly-plot')]
    .filter(g => g.querySelector('svg.main-svg') !== null).length
})"""


SCROLL_JS = """(() => { const g = document.querySelector('.jp-NotebookPanel .js-plotly-plot');
  if (g) g.closest('.jp-Cell').scrollIntoView({block: 'start'}); return JSON.stringify(g !== null); })()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def execute(notebook: str, folder: Path, parameters: dict) -> Path:
    """The paired .py and its executed .ipynb, side by side in `folder`."""
    import jupytext
    import papermill

    source = ROOT / "notebooks" / f"{notebook}.py"
    shutil.copy(source, folder / source.name)
    built = folder / f".{notebook}.unexecuted.ipynb"
    jupytext.write(jupytext.read(source), built, fmt="ipynb")
    target = folder / f"{notebook}.ipynb"
    papermill.execute_notebook(str(built), str(target), parameters=parameters, kernel_name="python3",
                               progress_bar=False, cwd=str(folder))
    built.unlink()
    # The pair must agree, or Jupytext refuses to open it: the .py is rewritten from the executed notebook (papermill's
    # injected-parameters cell included) and stamped no older than it, as saving in JupyterLab would leave them.
    jupytext.write(jupytext.read(target), folder / source.name, fmt="py:percent")
    stamp = target.stat().st_mtime
    os.utime(folder / source.name, (stamp + 1, stamp + 1))
    return target


def serve(folder: Path, port: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "JUPYTER_CONFIG_PATH": str(ROOT / "configs" / "jupyter")}
    args = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", f"--port={port}",
            "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}"]
    if os.getuid() == 0:
        args.append("--allow-root")
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            get_json(url)
            return
        except OSError:
            if time.time() > deadline:
                raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout:.0f} s") from None
            time.sleep(0.5)


def run(args: argparse.Namespace) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="mtalign-lab-"))  # JupyterLab's root: only the notebook's pair
    scratch = Path(tempfile.mkdtemp(prefix="mtalign-lab-run-"))
    port, token = free_port(), secrets.token_hex(16)
    summary: dict = {"notebook": args.notebook}
    lab = None
    try:
        execute(args.notebook, folder, {"records_dir": str(args.records.resolve()), "model": args.model,
                                        "seed": args.seed, "preset": args.preset, "run_dir": str(scratch),
                                        **dict(args.set)})
        lab = serve(folder, port, token)
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/api/status?token={token}", args.timeout)
        listed = [item["name"] for item in get_json(f"{base}/api/contents?token={token}")["content"]]
        summary["file_browser"] = sorted(listed)
        settings = get_json(f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin?token={token}")
        # configs/jupyter sets the default (default_setting_overrides.json); a user's own setting would win
        viewers = (settings.get("settings") or {}).get("defaultViewers") or \
            settings["schema"]["properties"]["defaultViewers"].get("default") or {}
        summary["default_viewer_for_py"] = viewers.get("python")
        with Browser(args.chromium, args.timeout) as browser:
            target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Page"):
                browser.call(f"{domain}.enable", {}, session)
            browser.call("Emulation.setDeviceMetricsOverride",
                         {"width": args.width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
            browser.call("Page.navigate", {"url": f"{base}/lab/tree/{args.notebook}.py?token={token}"}, session)
            deadline, last = time.time() + args.timeout, None
            while True:  # until at least --min-figures are drawn and the count held still for one poll
                state = browser.evaluate(session, NOTEBOOK_STATE_JS)
                done = state["notebook"] and state["figures"] >= args.min_figures \
                    and state["drawn"] == state["figures"] and state == last
                if done or time.time() > deadline:
                    break
                last = state
                time.sleep(1.0)
            # the first figure at the top of the window: the picture shows the notebook's evidence, not its preamble
            browser.evaluate(session, SCROLL_JS)
            time.sleep(2.0)  # let the layout settle before the picture
            summary["lab"] = state
            if args.png:
                summary["png"] = str(args.png)
                summary["png_size"] = screenshot_top(browser, session, args.png, args.width, args.height)
    finally:
        if lab is not None:
            lab.terminate()
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    py, ipynb = f"{args.notebook}.py", f"{args.notebook}.ipynb"
    lab_state = summary.get("lab") or {}
    summary["ok"] = (py in summary["file_browser"] and ipynb not in summary["file_browser"]
                     and summary["default_viewer_for_py"] == "Jupytext Notebook" and lab_state.get("notebook", False)
                     and lab_state.get("figures", 0) >= args.min_figures
                     and lab_state["drawn"] == lab_state["figures"])
    return summary


def _parameter(text: str) -> tuple[str, object]:
    import yaml

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--set takes NAME=YAML (e.g. 'probes=[]'), got {text!r}")
    return name.strip(), yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, required=True, help="a finished study's folder (e.g. outputs)")
    parser.add_argument("--notebook", default="02_reward_signal", help="claim notebook (default 02_reward_signal)")
    parser.add_argument("--model", default="toy-chain_sum-weak", help="model whose recorded runs to show")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="toy", help="the preset the study's runs were trained with")
    parser.add_argument("--set", action="append", default=[], type=_parameter, metavar="NAME=YAML",
                        help="another notebook parameter, e.g. --set 'variants=[random]' (repeatable)")
    parser.add_argument("--min-figures", type=int, default=1, help="figures the open notebook must show drawn")
    parser.add_argument("--png", type=Path, help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", CHROMIUM))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for JupyterLab and the page")
    args = parser.parse_args(argv)
    if not (args.records / "runs").is_dir():
        print(f"error: {args.records} holds no runs/ folder: give a finished study's folder", file=sys.stderr)
        return 2
    if not (Path(args.chromium).is_file() and os.access(args.chromium, os.X_OK)):
        print(f"error: Chromium not found at {args.chromium} (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except (DevToolsError, TimeoutError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
