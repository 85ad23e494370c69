"""A study folder's state on disk: each cell's params.json (its done marker) and `<out>/manifest.json`, which lists
every cell of the grid with its status (finished | failed | skipped | pending), error, paths and durations.

`params.json` with status `finished` is written last, by atomic rename, and is the only done marker: a rerun skips
those cells and redoes every other one. The report reads the manifest (`load_manifest`), and rebuilds a damaged one
from the cell folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtalign import paths, runinfo
from mtalign.grid import Cell, Plan, load_grid, plan

STATUSES = ("finished", "failed", "skipped", "pending")
PRESENT = ("finished", "skipped")  # statuses whose files are complete
# Parameters that hold a path are left out when deciding whether a finished cell is stale, so a moved output folder
# does not rerun the whole grid.
PATH_PARAMETERS = ("run_dir", "runs_dir", "study_dir")


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def cell_state(cell: Cell) -> tuple[str, dict[str, Any] | None]:
    """(`done` | `stale` | `outdated` | `failed` | `unfinished` | `new`, the cell's params.json or None).

    Only a `finished` params.json whose parameters equal the current ones counts as done, and only while every RL
    run it used was computed by this engine (code and package versions, `runinfo.engine_differences`); anything else
    reruns (`outdated`: a run it used came from other code, and the cell trains it anew: `runinfo.is_finished`).
    """
    marker = cell.dir / "params.json"
    if not marker.exists():
        return ("unfinished" if cell.dir.exists() and any(cell.dir.iterdir()) else "new"), None
    try:
        record = runinfo.read_json(marker)
    except (OSError, ValueError):  # truncated or not UTF-8 (a killed write, a damaged disk): the cell reruns
        return "unfinished", None
    if not isinstance(record, dict):
        return "unfinished", None
    if record.get("status") == "failed":
        return "failed", record
    if record.get("status") != "finished":
        return "unfinished", record
    before = {k: v for k, v in (record.get("injected") or {}).items() if k not in PATH_PARAMETERS}
    now = {k: v for k, v in cell.parameters.items() if k not in PATH_PARAMETERS}
    if _normal(before) != _normal(now):
        return "stale", record
    return ("outdated" if outdated_runs(cell) else "done"), record


def outdated_runs(cell: Cell) -> list[str]:
    """The runs a finished cell used (the `runs` its metrics.json lists, in the store its parameters name) that were
    computed by another engine than this process's. A cell that trains no RL run (a measurement) lists none."""
    runs_dir = cell.parameters.get("runs_dir")
    try:
        metrics = runinfo.read_json(cell.dir / "metrics.json")
    except (OSError, ValueError):
        return []
    names = metrics.get("runs") if isinstance(metrics, dict) else None
    if not runs_dir or not isinstance(names, list):
        return []
    return [name for name in names for directory in sorted(Path(runs_dir).glob(f"*/{name}"))
            if runinfo.stale_engine(directory)]


def _relative(path: Path | str | None, out: Path) -> str | None:
    if path is None:
        return None
    try:
        return str(Path(path).relative_to(out))
    except ValueError:
        return str(path)


def manifest_entry(cell: Cell, out: Path, status: str, record: dict[str, Any] | None = None,
                   reason: str | None = None) -> dict[str, Any]:
    record = record or {}
    notebook = cell.dir / f"{cell.notebook}.ipynb"
    return {
        "name": cell.name, "notebook": cell.notebook, "status": status, "point": cell.point,
        "error": record.get("error") if status == "failed" else None, "reason": reason,
        "dir": _relative(cell.dir, out), "executed_notebook": _relative(notebook, out) if notebook.exists() else None,
        "params_file": _relative(cell.dir / "params.json", out) if record else None,
        "parameters": _normal(cell.parameters), "resources": cell.resources.__dict__,
        "devices": record.get("devices"), "started": record.get("started"), "finished": record.get("finished"),
        "duration_s": record.get("duration_s"),
    }


def disk_entry(cell: Cell, out: Path, reason_if_pending: str) -> dict[str, Any]:
    """A cell this run did not execute, described from its folder."""
    state, record = cell_state(cell)
    if state == "done":
        return manifest_entry(cell, out, "skipped", record, "finished in an earlier run")
    if state == "failed":
        return manifest_entry(cell, out, "failed", record, "failed in an earlier run")
    reason = {"stale": "parameters changed since it finished", "unfinished": "an earlier run did not finish it",
              "outdated": "computed by other code or package versions than this"}
    return manifest_entry(cell, out, "pending", None, reason.get(state, reason_if_pending))


def write_manifest(plan_: Plan, entries: dict[str, dict[str, Any]], started: str,
                   report: dict[str, Any] | None = None, progress: dict[str, Any] | None = None) -> Path:
    """`<out>/manifest.json`: every cell of the grid in grid order, rewritten atomically after each cell; `progress`
    (Progress.record) says how far this run of the grid is and how long it should still take."""
    cells = [entries[c.name] for c in plan_.cells]
    counts = {s: sum(e["status"] == s for e in cells) for s in STATUSES}
    return runinfo.write_json(plan_.out / "manifest.json", {
        "grid_file": plan_.grid.source, "grid": plan_.grid.data, "out": str(plan_.out),
        "notebooks_dir": str(plan_.notebooks_dir), "started": started, "updated": runinfo.now(),
        "counts": counts, "cells": cells, "report": report, "environment": runinfo.environment(),
        "progress": progress,
    })


def load_manifest(out: Path | str, log=print) -> dict[str, Any]:
    """The manifest of a study folder (a clear error when there is none); a damaged one is rebuilt from the cell
    folders (`rebuild_manifest`), with a warning naming it."""
    path = Path(out) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: no study has run in {out}; run `mtalign study --out {out}`")
    try:
        manifest = runinfo.read_json(path)
        if isinstance(manifest, dict) and isinstance(manifest.get("grid"), dict):
            return manifest
        problem = f"{path} is not a study manifest"
    except ValueError as err:
        problem = str(err)  # names the file
    log(f"warning: {problem}; rebuilding it from the cell folders")
    return rebuild_manifest(Path(out))


def rebuild_manifest(out: Path, notebooks_dir: Path | str | None = None) -> dict[str, Any]:
    """Write `<out>/manifest.json` anew from what the cell folders hold: every cell's params.json names the grid file
    it ran from, so the grid is read again and each of its cells described from its folder (as a rerun would)."""
    grid_files, sources = set(), set()
    for record_file in sorted(out.glob("*/*/params.json")):
        try:
            record = runinfo.read_json(record_file)
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("grid_file"):
            grid_files.add(record["grid_file"])
            sources.add(str(Path(record.get("source") or paths.NOTEBOOKS / "x").parent))
    readable = sorted(f for f in grid_files if Path(f).is_file())
    if not readable:
        raise ValueError(f"{out / 'manifest.json'} is damaged and no cell folder names a grid file that still exists "
                         f"({', '.join(sorted(grid_files)) or 'none found'}); rerun `mtalign study --out {out} "
                         "--params GRID` to rebuild it")
    if len(readable) > 1:
        raise ValueError(f"{out / 'manifest.json'} is damaged and the cell folders name several grid files "
                         f"({', '.join(readable)}); rerun `mtalign study --out {out} --params GRID` to rebuild it")
    notebooks_dir = notebooks_dir or (sources.pop() if len(sources) == 1 else paths.NOTEBOOKS)
    plan_ = plan(load_grid(readable[0]), out, notebooks_dir)
    entries = {c.name: disk_entry(c, out, "not run yet") for c in plan_.cells}
    write_manifest(plan_, entries, runinfo.now())
    return runinfo.read_json(out / "manifest.json")
