"""Run the study: expand a grid file into notebook cells, execute each with papermill, then the report (issue 4).

`mtalign study [--params GRID.yaml] [--out DIR] [--workers N] [--only GLOB] [--dry-run] [--executor E]`.

A grid file (params/grids/*.yaml) holds only deltas from each notebook's own defaults. The schema, documented again
at the top of every shipped grid file:

    defaults: {preset: toy}          # set in every notebook that declares the parameter (an error if none does)
    resources: {gpus: 0, cpus: 1}    # per cell: gpus, cpus, mem_gb, time_min (defaults for every notebook)
    slurm: {partition: gpu}          # submitit SlurmExecutor options for --executor slurm
    notebooks:
      01_alignment:                  # notebooks/01_alignment.py
        params: {world: toy}         # fixed overrides
        grid: {seed: [0, 1, 2]}      # swept: the cartesian product of these lists makes the cells
        resources: {gpus: 1}         # overrides the top-level resources for this notebook
      02_reward_signal:
        grid:
          model: [toy-chain_sum-strong, toy-chain_sum-weak]
          domain:                    # a mapping is a bundle: each label sets several parameters together
            math: {task: deepscaler, eval_tasks: [math500]}
    report: 99_report                # run after every cell, even failed ones (or {notebook: 99_report, params: {}})

Keys starting with `x-` anywhere at the top level are ignored, so YAML anchors can live there.

A cell is one (notebook, grid point). It is named from its swept values, cleanrl-style
(`02_reward_signal__model=toy-chain_sum-strong__seed=0`), and runs in `<out>/<notebook>/<cell>/`, which holds the
executed notebook, the notebook's own files, and `params.json` (resolved parameters, versions, times, status). The
runner injects `run_dir` (the cell folder), `runs_dir` (`<out>/runs`, RL runs shared by the whole grid), `study_dir`
(`<out>`) and `gpus` into every notebook that declares them. `params.json` with status `finished` is written last, by
atomic rename, and is the only done marker: a rerun skips those cells and redoes every other one. `<out>/manifest.json`
lists every cell with its status (finished | failed | skipped | pending), error, paths and durations.

Parameter values are checked by name before any cell runs: `model(s)`/`*_model(s)` against mtalign's short model
names (values with a `/` or an existing path are Hugging Face names or local models, not checked), `task(s)`/
`*_task(s)` against the task registry, `variant(s)` and `preset(s)` (and `*_variant(s)`, `*_preset(s)`) against
`mtalign.config.list_variants()` / `list_presets()` when the engine is there.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fnmatch
import hashlib
import itertools
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import yaml

from mtalign import config, cost, paths, runinfo, signals

DEFAULT_GRID = paths.PARAMS / "grids" / "toy.yaml"
EXECUTORS = ("local", "local-submitit", "slurm")
STATUSES = ("finished", "failed", "skipped", "pending")
# Parameters whose value the runner owns; a grid file may not set them.
RUNNER_PARAMETERS = ("run_dir", "runs_dir", "study_dir", "gpus")
# Parameters that hold a path are left out when deciding whether a finished cell is stale, so a moved output folder
# does not rerun the whole grid.
PATH_PARAMETERS = ("run_dir", "runs_dir", "study_dir")
TOP_KEYS = ("defaults", "resources", "slurm", "notebooks", "report")
ENTRY_KEYS = ("params", "grid", "resources", "slurm")
RESOURCE_KEYS = ("gpus", "cpus", "mem_gb", "time_min")
# SlurmExecutor options the runner derives from a cell's resources; the grid's `slurm:` block may not set them.
SLURM_DERIVED = ("gpus_per_node", "cpus_per_task", "mem", "time", "job_name", "nodes", "ntasks_per_node")
NOTEBOOK_FILE = re.compile(r"^\d\d_\w+\.py$")
MAX_NAME = 150  # file names are capped at 255 bytes; leave room for suffixes
STOP_GRACE_S = 60  # after Ctrl-C or SIGTERM, how long running cells get to stop cleanly before they are killed


# -- grid files ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resources:
    """What one cell needs: GPUs (assigned through CUDA_VISIBLE_DEVICES), CPU threads, memory, wall time."""

    gpus: int = 0
    cpus: int = 1
    mem_gb: float | None = None
    time_min: int | None = None


@dataclass
class Entry:
    """One notebook's block in a grid file."""

    params: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    slurm: dict[str, Any] = field(default_factory=dict)


@dataclass
class Grid:
    source: str  # the file it came from (for messages)
    defaults: dict[str, Any]
    notebooks: dict[str, Entry]
    report: str | None
    report_entry: Entry
    slurm: dict[str, Any]
    data: dict[str, Any]  # the parsed YAML, stored in the manifest so `mtalign report` can rebuild without the file


def load_grid(path: Path | str) -> Grid:
    """Read and schema-check a grid file (names and values are checked against the notebooks by `plan`)."""
    path = Path(path)
    if not path.is_file():
        shipped = sorted(p.name for p in (paths.PARAMS / "grids").glob("*.yaml"))
        raise FileNotFoundError(f"grid file {path} not found; shipped grids in params/grids: {', '.join(shipped)}")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"grid file {path} is not UTF-8 text ({err})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    return parse_grid(data, str(path))


def parse_grid(data: Any, source: str = "<grid>") -> Grid:
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a grid file is a mapping with keys {', '.join(TOP_KEYS)}; "
                         f"got {type(data).__name__}")
    unknown = [k for k in data if k not in TOP_KEYS and not str(k).startswith("x-")]
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {', '.join(map(str, unknown))}; valid keys: "
                         f"{', '.join(TOP_KEYS)} (and x-* for YAML anchors)")
    defaults = _mapping(data.get("defaults"), f"{source}: defaults")
    top_resources = _resources(data.get("resources"), Resources(), f"{source}: resources")
    top_slurm = _slurm(data.get("slurm"), f"{source}: slurm")
    notebooks_raw = data.get("notebooks")
    if not isinstance(notebooks_raw, dict) or not notebooks_raw:
        raise ValueError(f"{source}: `notebooks` must map at least one notebook name (e.g. 01_alignment) to "
                         "{params: {...}, grid: {...}, resources: {...}}")
    notebooks = {str(name): _entry(raw, top_resources, top_slurm, f"{source}: notebooks.{name}")
                 for name, raw in notebooks_raw.items()}
    report_raw = data.get("report")
    if report_raw is None:
        report, report_entry = None, Entry()
    elif isinstance(report_raw, str):
        report, report_entry = report_raw, Entry()
    elif isinstance(report_raw, dict) and isinstance(report_raw.get("notebook"), str):
        extra = [k for k in report_raw if k not in ("notebook", "params")]
        if extra:
            raise ValueError(f"{source}: report accepts keys notebook, params; got {', '.join(extra)}")
        report = report_raw["notebook"]
        report_entry = Entry(params=_mapping(report_raw.get("params"), f"{source}: report.params"))
    else:
        raise ValueError(f"{source}: report must be a notebook name (e.g. 99_report) or "
                         "{notebook: NAME, params: {...}}")
    if report in notebooks:
        raise ValueError(f"{source}: {report} is the report; list it under report: only, not under notebooks:")
    return Grid(source, defaults, notebooks, report, report_entry, top_slurm, data)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a mapping, got {type(value).__name__}: {value!r}")
    return {str(k): v for k, v in value.items()}


def _entry(raw: Any, resources: Resources, slurm: dict[str, Any], where: str) -> Entry:
    raw = _mapping(raw, where)
    unknown = [k for k in raw if k not in ENTRY_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(ENTRY_KEYS)} "
                         "(parameters go under params: or grid:)")
    params = _mapping(raw.get("params"), f"{where}.params")
    grid = _mapping(raw.get("grid"), f"{where}.grid")
    for key, values in grid.items():
        if isinstance(values, dict):  # a bundle: label -> {parameter: value}
            for label, bundle in values.items():
                if not isinstance(bundle, dict) or not bundle:
                    raise ValueError(f"{where}.grid.{key}.{label} must be a non-empty mapping of parameters")
        elif not isinstance(values, list):
            raise ValueError(f"{where}.grid.{key} must be a list of values to sweep (or a mapping label -> "
                             f"parameters); got {values!r}. Put fixed values under params:")
    both = sorted(set(params) & set(grid))
    if both:
        raise ValueError(f"{where}: {', '.join(both)} set in both params and grid; keep one")
    return Entry(params, grid, _resources(raw.get("resources"), resources, f"{where}.resources"),
                 {**slurm, **_slurm(raw.get("slurm"), f"{where}.slurm")})


def _resources(raw: Any, base: Resources, where: str) -> Resources:
    raw = _mapping(raw, where)
    unknown = [k for k in raw if k not in RESOURCE_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(RESOURCE_KEYS)}")
    for key, value in raw.items():
        minimum = 0 if key == "gpus" else 1
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum \
                or (key != "mem_gb" and value != int(value)):
            raise ValueError(f"{where}.{key} must be {'a number' if key == 'mem_gb' else 'an integer'} "
                             f">= {minimum}, got {value!r}")
    return replace(base, **{k: (v if k == "mem_gb" else int(v)) for k, v in raw.items()})


def _slurm(raw: Any, where: str) -> dict[str, Any]:
    raw = _mapping(raw, where)
    if not raw:
        return {}
    from submitit.slurm.slurm import SlurmExecutor

    valid = sorted(set(SlurmExecutor._valid_parameters()) - set(SLURM_DERIVED))
    bad = [k for k in raw if k not in valid]
    if bad:
        raise ValueError(f"{where}: unknown or runner-owned option(s) {', '.join(bad)}; valid options: "
                         f"{', '.join(valid)} (gpus, cpus, memory and time come from resources:)")
    return raw


# -- notebooks -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parameter:
    """One line of a notebook's `parameters` cell."""

    name: str
    annotation: str | None
    default: Any  # the literal value; None also when the default is an expression (see `source`)
    source: str  # the default as written


@dataclass(frozen=True)
class Notebook:
    name: str
    source: Path
    parameters: dict[str, Parameter]


def find_notebooks(notebooks_dir: Path | str = paths.NOTEBOOKS) -> dict[str, Path]:
    """Every `NN_name.py` (py:percent) notebook source in a folder, by name."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(f"notebooks folder {notebooks_dir} does not exist")
    return {p.stem: p for p in sorted(notebooks_dir.glob("*.py")) if NOTEBOOK_FILE.match(p.name)}


def read_notebook(source: Path) -> Notebook:
    """A notebook and the parameters its first `parameters`-tagged cell declares.

    Parsed with Python's `ast` rather than papermill's inspector, which silently drops any line with a second `=`
    (as in a comment `k = 1, 2, 4`) and would then reject a real parameter.
    """
    import jupytext

    nb = jupytext.read(source)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(f"{source} has no code cell tagged `parameters` (add `# %% tags=[\"parameters\"]`)")
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as err:
        raise ValueError(f"{source}: its parameters cell is not valid Python: {err}") from None
    parameters = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            targets, annotation = [node.target], ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign):
            targets, annotation = [t for t in node.targets if isinstance(t, ast.Name)], None
        else:
            continue
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            default = None
        for target in targets:
            parameters[target.id] = Parameter(target.id, annotation, default, ast.unparse(node.value))
    return Notebook(source.stem, source, parameters)


# -- planning: grid -> cells -----------------------------------------------------------------------
@dataclass
class Cell:
    """One notebook execution: a notebook with its injected parameters and its own output folder."""

    notebook: str
    name: str
    point: dict[str, Any]  # the swept values (bundle labels for bundles): what names the cell
    overrides: dict[str, Any]  # grid-file parameters (defaults, params, grid), as injected
    parameters: dict[str, Any]  # everything injected: overrides plus the runner's run_dir, runs_dir, ...
    resources: Resources
    slurm: dict[str, Any]
    dir: Path


@dataclass
class Plan:
    grid: Grid
    out: Path
    notebooks_dir: Path
    notebooks: dict[str, Notebook]
    cells: list[Cell]
    report: Cell | None


def plan(grid: Grid, out: Path | str, notebooks_dir: Path | str = paths.NOTEBOOKS) -> Plan:
    """Expand a grid into cells and check everything that can be checked before running (no files written)."""
    out, notebooks_dir = Path(out).resolve(), Path(notebooks_dir).resolve()
    available = find_notebooks(notebooks_dir)
    wanted = list(grid.notebooks) + ([grid.report] if grid.report else [])
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ValueError(f"{grid.source}: unknown notebook(s) {', '.join(unknown)}; notebooks in {notebooks_dir}: "
                         f"{', '.join(available) or 'none'}")
    notebooks = {name: read_notebook(available[name]) for name in wanted}
    problems = []
    declared = {p for nb in notebooks.values() for p in nb.parameters}
    for key in grid.defaults:
        if key in RUNNER_PARAMETERS:
            problems.append(f"defaults.{key} is set by the runner, not the grid file")
        elif key not in declared:
            problems.append(f"defaults.{key} is declared by no notebook of this grid; declared parameters: "
                            f"{', '.join(sorted(declared))}")
    cells = []
    for name, entry in grid.notebooks.items():
        try:
            cells += expand(notebooks[name], entry, grid.defaults, out)
        except ValueError as err:
            problems.append(str(err))
    report = None
    if grid.report:
        try:
            report = expand(notebooks[grid.report], grid.report_entry, grid.defaults, out, report=True)[0]
        except ValueError as err:
            problems.append(str(err))
    if not problems:
        problems += check_values(cells + ([report] if report else []), notebooks)
    if problems:
        raise ValueError(f"{grid.source}: {len(problems)} problem(s) found before running anything:\n  - "
                         + "\n  - ".join(problems))
    return Plan(grid, out, notebooks_dir, notebooks, cells, report)


def expand(notebook: Notebook, entry: Entry, defaults: dict[str, Any], out: Path, report: bool = False) -> list[Cell]:
    """The cells of one notebook's grid block: the cartesian product of its `grid` lists (bundles set several)."""
    where = f"notebooks.{notebook.name}" if not report else f"report {notebook.name}"
    declared = notebook.parameters
    valid = ", ".join(p for p in declared if p not in RUNNER_PARAMETERS)
    keys = list(entry.params) + [k for k, v in entry.grid.items() if not isinstance(v, dict)]
    keys += [k for v in entry.grid.values() if isinstance(v, dict) for bundle in v.values() for k in bundle]
    for key in keys:
        if key in RUNNER_PARAMETERS:
            raise ValueError(f"{where}: {key} is set by the runner, not the grid file"
                             + (" (use resources: {gpus: N})" if key == "gpus" else ""))
        if key not in declared:
            raise ValueError(f"{where}: parameter {key!r} is not declared by {notebook.source.name}; "
                             f"its parameters: {valid}")
    empty = [k for k, v in entry.grid.items() if len(v) == 0]
    if empty:
        raise ValueError(f"{where}: grid axis {', '.join(empty)} is empty, so the grid expands to zero cells")
    base = {k: v for k, v in defaults.items() if k in declared}
    base.update(entry.params)
    axes = [[(k, label) for label in v] if isinstance(v, dict) else [(k, value) for value in v]
            for k, v in entry.grid.items()]
    cells, names = [], {}
    for combo in itertools.product(*axes):
        point, overrides = {}, dict(base)
        for key, value in combo:
            point[key] = value
            bundle = entry.grid[key]
            overrides.update(bundle[value] if isinstance(bundle, dict) else {key: value})
        for key, value in overrides.items():
            _check_type(declared[key], value, where)
        name = cell_name(notebook.name, point)
        if name in names:
            raise ValueError(f"{where}: grid points {names[name]} and {point} both make the cell name {name!r}; "
                             "make the values differ in letters or digits")
        names[name] = point
        cell_dir = out / notebook.name if report else out / notebook.name / name
        injected = dict(overrides)
        runner = {"run_dir": str(cell_dir), "runs_dir": str(out / "runs"), "study_dir": str(out),
                  "gpus": entry.resources.gpus}
        injected.update({k: v for k, v in runner.items() if k in declared})
        cells.append(Cell(notebook.name, name, point, overrides, injected, entry.resources, entry.slurm, cell_dir))
    return cells


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}


def _check_type(parameter: Parameter, value: Any, where: str) -> None:
    """Catch a value of the wrong kind (a list where an int belongs is usually a sweep put under params:)."""
    if value is None:
        return
    annotation = (parameter.annotation or "").split("[")[0].strip()
    expected = _TYPES.get(annotation)
    if expected is None and parameter.default is not None:
        expected = _TYPES.get(type(parameter.default).__name__)
    if expected is None:
        return
    wrong_bool = isinstance(value, bool) and bool not in expected
    if wrong_bool or not isinstance(value, expected):
        hint = " (to sweep it, list it under grid:)" if isinstance(value, list) else ""
        raise ValueError(f"{where}: {parameter.name} must be {annotation or type(parameter.default).__name__} "
                         f"like its default {parameter.source}, got {value!r}{hint}")


def format_value(value: Any) -> str:
    """A value as it appears in a cell name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "+".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}-{format_value(v)}" for k, v in value.items())
    return str(value)


def cell_name(notebook: str, point: dict[str, Any]) -> str:
    """`notebook__key=value__...` in grid order: stable, readable and file-system safe (`/` becomes `_`)."""
    name = notebook + "".join(f"__{key}={format_value(value)}" for key, value in point.items())
    name = re.sub(r"[^A-Za-z0-9._+=,-]", "_", name)
    if len(name) > MAX_NAME:  # keep it readable, keep it unique
        digest = hashlib.sha1(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:10]
        name = f"{name[:MAX_NAME - 12]}__{digest}"
    return name


def _name_kind(name: str) -> str | None:
    for kind in ("model", "task", "variant", "preset"):
        if name in (kind, kind + "s") or name.endswith(("_" + kind, "_" + kind + "s")):
            return kind
    return None


def check_values(cells: list[Cell], notebooks: dict[str, Notebook]) -> list[str]:
    """Model, task and variant names in the overrides, against what mtalign knows (one message per bad name)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for cell in cells:
        for key, value in cell.overrides.items():
            kind = _name_kind(key)
            if kind:
                values = value if isinstance(value, list) else [value]
                seen.setdefault((kind, f"{cell.notebook}.{key}"), set()).update(v for v in values if isinstance(v, str))
    problems = []
    valid: dict[str, list[str]] = {}
    for (kind, where), values in seen.items():
        if kind not in valid:
            valid[kind] = _valid_names(kind)
        names = valid[kind]
        for value in sorted(values):
            if kind == "model" and ("/" in value or Path(value).exists()):
                continue  # a Hugging Face name or a local model folder: resolved by the loader at run time
            if value not in names:
                problems.append(f"{where}: unknown {kind} {value!r}; valid {kind}s: {', '.join(names)}")
    return problems


def _valid_names(kind: str) -> list[str]:
    if kind == "model":
        from mtalign import models

        return models.list_models()
    if kind == "task":
        from mtalign.tasks import list_tasks

        return list_tasks()
    from mtalign import train

    return list(config.list_variants() if kind == "variant" else config.list_presets())


def select(cells: list[Cell], only: list[str] | None) -> list[Cell]:
    """The cells whose names match any of the globs (all cells when there are none)."""
    if not only:
        return list(cells)
    chosen = [c for c in cells if any(fnmatch.fnmatchcase(c.name, pattern) for pattern in only)]
    if not chosen:
        names = [c.name for c in cells]
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        raise ValueError(f"--only {' '.join(only)} matches no cell; cells of this grid: {shown}")
    return chosen


# -- state on disk ---------------------------------------------------------------------------------
def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def cell_state(cell: Cell) -> tuple[str, dict[str, Any] | None]:
    """(`done` | `stale` | `failed` | `unfinished` | `new`, the cell's params.json or None).

    Only a `finished` params.json whose parameters equal the current ones counts as done; anything else reruns.
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
    return ("done" if _normal(before) == _normal(now) else "stale"), record


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
    reason = {"stale": "parameters changed since it finished", "unfinished": "an earlier run did not finish it"}
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


# -- executing one cell (in a worker process, a submitit job, or inline) -----------------------------
def _job(cell: Cell, plan_: Plan, devices: list[str] | None) -> dict[str, Any]:
    """Everything a worker needs, as plain data (it crosses process and machine boundaries)."""
    notebook = plan_.notebooks[cell.notebook]
    resolved = {name: p.default if p.default is not None or p.source == "None" else p.source
                for name, p in notebook.parameters.items()}
    resolved.update(cell.parameters)
    return {
        "notebook": cell.notebook, "cell": cell.name, "input": str(_built(plan_, cell.notebook)),
        "source": str(notebook.source), "dir": str(cell.dir), "injected": cell.parameters, "resolved": resolved,
        "point": cell.point, "resources": cell.resources.__dict__,
        "devices": None if devices is None else ",".join(devices), "kernels": str(plan_.out / ".build" / "jupyter"),
        "grid_file": plan_.grid.source,
    }


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel papermill starts, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cell_environment(job: dict[str, Any]) -> dict[str, str]:
    """The kernel's environment: its thread count, its GPUs (none unless assigned) and this venv's kernel."""
    threads = str(job["resources"]["cpus"])
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
           "TOKENIZERS_PARALLELISM": "false",
           "JUPYTER_PATH": os.pathsep.join(filter(None, [job["kernels"], os.environ.get("JUPYTER_PATH")]))}
    if job["devices"] is not None:  # None: the scheduler (SLURM) has already set CUDA_VISIBLE_DEVICES
        env["CUDA_VISIBLE_DEVICES"] = job["devices"]
    return env


def execute_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Run one cell with papermill in this process; return its params.json record (never raises for a failing cell).

    Order matters for resuming: params.json says `running` before anything else changes, the executed notebook is
    written under a `.partial.ipynb` name and renamed when papermill returns or raises, and params.json with the
    final status is written last. A killed run leaves `running` (or no params.json), so its cell reruns.
    """
    import logging

    import papermill
    from papermill.exceptions import PapermillExecutionError

    # papermill's own inspector misreads some parameters cells (see read_notebook); the grid was checked already.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    cell_dir = Path(job["dir"])
    cell_dir.mkdir(parents=True, exist_ok=True)
    final = cell_dir / f"{job['notebook']}.ipynb"
    partial = cell_dir / f"{job['notebook']}.partial.ipynb"
    record = {
        "notebook": job["notebook"], "cell": job["cell"], "status": "running", "error": None,
        "point": job["point"], "injected": job["injected"], "parameters": job["resolved"],
        "resources": job["resources"], "devices": job["devices"], "source": job["source"],
        "grid_file": job["grid_file"], "executed_notebook": final.name, "started": runinfo.now(), "finished": None,
        "duration_s": None, "pid": os.getpid(), "environment": runinfo.environment(),
    }
    runinfo.write_json(cell_dir / "params.json", record)
    partial.unlink(missing_ok=True)
    final.unlink(missing_ok=True)  # an older attempt's notebook must not pass for this one's
    t0 = time.time()
    try:
        with _environ(cell_environment(job)), _stop_kernel_on_signal() as stopped:
            papermill.execute_notebook(job["input"], str(partial), parameters=job["injected"], kernel_name="python3",
                                       language="python", progress_bar=False, cwd=str(cell_dir))
        record.update(status="finished")
    except PapermillExecutionError as err:
        record.update(status="failed", error=f"{err.ename}: {err.evalue} (in cell [{err.exec_count}])")
    except Exception as err:  # a dead kernel, a missing module in the kernel: still a cell failure, not the runner's
        record.update(status="failed", error=f"{type(err).__name__}: {err}")
    if stopped:  # not the cell's fault: it reruns next time (cell_state treats anything but finished/failed so)
        record.update(status="interrupted", error=f"interrupted by {stopped[0]}")
    if partial.exists():
        os.replace(partial, final)
    record.update(finished=runinfo.now(), duration_s=round(time.time() - t0, 2))
    runinfo.write_json(cell_dir / "params.json", record)  # last: the done marker
    return record


@contextlib.contextmanager
def _stop_kernel_on_signal() -> Iterator[list[str]]:
    """While a cell runs here, SIGINT and SIGTERM interrupt its kernel instead of this process.

    The kernel runs in its own session (jupyter_client starts it so), so neither Ctrl-C nor a signal sent to this
    worker reaches it; killed with its worker, it would keep training and write files while the manifest says
    pending. Here the first signal is passed to the kernel as SIGINT, which ends the cell's code with
    KeyboardInterrupt (a run in it marks itself `interrupted`), papermill returns, and the cell is recorded as
    interrupted; later signals are ignored so that this bookkeeping finishes. The list it yields names the signal.
    """
    import signal

    stopped: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def stop(signum, frame):
        if stopped:
            return
        stopped.append(signal.Signals(signum).name)
        kernels = signals.children(os.getpid())
        if not kernels:  # papermill has not started the kernel yet (or it is gone): nothing to wait for
            raise KeyboardInterrupt(f"stopped by {stopped[0]}")
        signals.send(kernels, signal.SIGINT)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _built(plan_: Plan, notebook: str) -> Path:
    return plan_.out / ".build" / "notebooks" / f"{notebook}.ipynb"


def prepare(plan_: Plan) -> None:
    """Convert the notebooks to .ipynb (build artifacts under <out>/.build) and pin the kernel to this Python."""
    import jupytext

    for name, notebook in plan_.notebooks.items():
        target = _built(plan_, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(jupytext.writes(jupytext.read(notebook.source), fmt="ipynb"))
        os.replace(tmp, target)
    # A kernel named python3 in a folder on JUPYTER_PATH wins over any user-level python3 kernel, so every cell runs
    # in the interpreter (and venv) that runs the grid, here and on cluster nodes.
    runinfo.write_json(plan_.out / ".build" / "jupyter" / "kernels" / "python3" / "kernel.json", {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (mtalign study)", "language": "python"})
    if any("runs_dir" in cell.parameters for cell in plan_.cells):
        (plan_.out / "runs").mkdir(parents=True, exist_ok=True)


# -- scheduling: workers, GPUs, executors ----------------------------------------------------------
def take_gpus(free: list[str], requests: list[int], slots: int) -> list[tuple[int, list[str]]]:
    """Which waiting cells start now and on which GPUs: first fit in grid order, at most `slots` cells.

    `free` are device ids (as CUDA_VISIBLE_DEVICES writes them), `requests[i]` the GPUs cell i needs. A cell that
    needs more GPUs than are free waits; later, smaller cells may start meanwhile.
    """
    free, starts = list(free), []
    for index, need in enumerate(requests):
        if len(starts) >= slots:
            break
        if need <= len(free):
            starts.append((index, free[:need]))
            free = free[need:]
    return starts


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else every device torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def slurm_parameters(cell: Cell) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for one cell: one task on one node, with the cell's resources."""
    r = cell.resources
    params = {"job_name": cell.name, "nodes": 1, "ntasks_per_node": 1, "cpus_per_task": r.cpus,
              "time": r.time_min or 24 * 60, **cell.slurm}
    if r.gpus:
        params["gpus_per_node"] = r.gpus
    if r.mem_gb:
        params["mem"] = f"{int(r.mem_gb)}GB"
    return params


class _Inline:
    """Runs each cell in this process: one worker, no pool (simplest to debug; Ctrl-C stops at once)."""

    def submit(self, cell: Cell, job: dict[str, Any]):
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(execute_cell(job))
        return future

    def close(self, cancel: bool = False) -> None:
        pass


class _Pool:
    """A process pool: each cell's papermill call runs in a worker process, its kernel a child of that."""

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: workers start clean, without this process's threads or open handles
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, cell: Cell, job: dict[str, Any]):
        return self.pool.submit(execute_cell, job)

    def close(self, cancel: bool = False) -> None:
        if not cancel:
            self.pool.shutdown(wait=True)
            return
        # Stop the running cells and wait for them, so that the manifest written next is true and the study lock is
        # released last. Each worker passes the signal to its kernel as SIGINT (`_stop_kernel_on_signal`), whose run
        # marks itself interrupted; the worker then records its cell as interrupted and exits. Ctrl-C already sent
        # SIGINT to the workers (same process group); the SIGTERM here reaches them when only this process was
        # signalled (kill, timeout, SLURM). ProcessPoolExecutor has no public way to stop workers before Python 3.14.
        import signal

        processes = list(getattr(self.pool, "_processes", {}).values())
        family = {p.pid: signals.descendants(p.pid) for p in processes if p.pid is not None}
        for process in processes:
            process.terminate()
        self.pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.time() + STOP_GRACE_S
        for process in processes:
            process.join(timeout=max(0.0, deadline - time.time()))
        for process in processes:  # a kernel that ignores SIGINT (stuck in C code): kill it and its worker
            if process.is_alive() or any(os.path.exists(f"/proc/{pid}") for pid in family.get(process.pid, [])):
                signals.send(family.get(process.pid, []), signal.SIGKILL)
                process.kill()
                process.join(timeout=5)


class _Submitit:
    """Each cell one submitit job: LocalExecutor (subprocesses here) or SlurmExecutor (one SLURM job per cell)."""

    def __init__(self, kind: str, folder: Path):
        if kind == "slurm":
            from submitit.slurm.slurm import SlurmExecutor

            try:
                self.executor = SlurmExecutor(folder=folder / "%j")
            except RuntimeError as err:
                raise ValueError(f"--executor slurm needs a SLURM cluster ({err}); valid executors here: "
                                 "local, local-submitit") from None
        else:
            from submitit import LocalExecutor

            self.executor = LocalExecutor(folder=folder / "%j")
        self.kind, self.jobs = kind, []

    def submit(self, cell: Cell, job: dict[str, Any]):
        if self.kind == "slurm":
            self.executor.update_parameters(**slurm_parameters(cell))
        else:  # GPUs are assigned by the runner (job["devices"]); no gpus_per_node here
            self.executor.update_parameters(timeout_min=cell.resources.time_min or 24 * 60)
        handle = self.executor.submit(execute_cell, job)
        self.jobs.append(handle)
        return handle

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for handle in self.jobs:
                if not handle.done():
                    handle.cancel(check=False)


@dataclass
class Outcome:
    manifest: Path
    entries: dict[str, dict[str, Any]]
    report: dict[str, Any] | None
    exit_code: int


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_study(plan_: Plan, cells: list[Cell] | None = None, workers: int | None = None, executor: str = "local",
              report: bool = True, log=print) -> Outcome:
    """Run the selected cells that are not done, `workers` at a time, then the report; write the manifest."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    cells = plan_.cells if cells is None else cells
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    workers = workers or (10_000 if executor == "slurm" else default_workers())
    gpus: list[str] | None = None  # None: GPUs are the cluster's business
    if executor != "slurm":
        need = max((c.resources.gpus for c in cells), default=0)
        gpus = visible_gpus() if need else []
        if need > len(gpus):
            greedy = [c.name for c in cells if c.resources.gpus > len(gpus)]
            raise ValueError(f"{len(greedy)} cell(s) need {need} GPU(s) but this machine has {len(gpus)} visible "
                             f"({', '.join(greedy[:3])}{', ...' if len(greedy) > 3 else ''}); run them on a GPU "
                             "machine or with --executor slurm")
    plan_.out.mkdir(parents=True, exist_ok=True)
    with _study_lock(plan_.out), signals.sigterm_as_interrupt():  # the lock is released last, after the cells stop
        prepare(plan_)
        started = runinfo.now()
        selected = {c.name for c in cells}
        entries = {c.name: disk_entry(c, plan_.out, "not selected by --only") for c in plan_.cells}
        todo = []
        for cell in cells:
            state, record = cell_state(cell)
            if state == "done":
                log(f"skip     {cell.name} (finished {record.get('finished')})")
            else:
                todo.append(cell)
                entries[cell.name] = manifest_entry(cell, plan_.out, "pending", None, "queued")
        todo = longest_first(plan_, todo)
        write_manifest(plan_, entries, started)
        log(f"{len(todo)} of {len(selected)} selected cell(s) to run ({len(plan_.cells)} in the grid), "
            f"executor {executor}, {min(workers, max(len(todo), 1))} at a time; manifest {plan_.out / 'manifest.json'}")
        progress = Progress(len(todo), workers)
        failed = _execute(plan_, todo, entries, started, workers, executor, gpus, log, progress)
        report_entry = None
        if report and plan_.report is not None:
            report_entry = run_report_cell(plan_, entries, started, log=log)
        manifest = write_manifest(plan_, entries, started, report_entry, progress=progress.record(0.0))
    bad_report = report_entry is not None and report_entry["status"] != "finished"
    counts = {s: sum(e["status"] == s for e in entries.values()) for s in STATUSES}
    log("cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; manifest {manifest}")
    return Outcome(manifest, entries, report_entry, 1 if failed or bad_report else 0)


@dataclass
class Progress:
    """How far a run of the grid is, for a person watching a long study: cells done of those to run, failures so far,
    and the time left, estimated from the durations measured so far (per notebook: an RL cell is not an alignment
    cell) spread over the workers."""

    total: int
    workers: int
    done: int = 0
    failed: int = 0
    durations: dict[str, list[float]] = field(default_factory=dict)  # notebook -> seconds of its finished cells
    started: dict[str, float] = field(default_factory=dict)  # running cell -> time.time() when it started

    def start(self, cell: Cell) -> None:
        self.started[cell.name] = time.time()

    def finish(self, cell: Cell, status: str, duration_s: float | None) -> None:
        self.started.pop(cell.name, None)
        self.done += 1
        self.failed += status != "finished"
        if duration_s is not None:
            self.durations.setdefault(cell.notebook, []).append(duration_s)

    def eta_s(self, waiting: list[Cell], running: list[Cell]) -> float | None:
        """Seconds left: each remaining cell's expected duration (its notebook's mean so far, else every finished
        cell's), less what a running cell has already spent, over the parallel lanes; None before any estimate."""
        measured = [d for ds in self.durations.values() for d in ds]
        if not measured:
            return None
        overall = sum(measured) / len(measured)

        def expected(cell: Cell) -> float:
            own = self.durations.get(cell.notebook)
            return sum(own) / len(own) if own else overall

        now = time.time()
        work = sum(expected(c) for c in waiting) + sum(
            max(expected(c) - (now - self.started.get(c.name, now)), 0.0) for c in running)
        lanes = max(1, min(self.workers, len(waiting) + len(running)))
        return work / lanes

    def line(self, eta: float | None) -> str:
        """`[5/14 done, 1 failed, about 6 min left]`"""
        text = f"[{self.done}/{self.total} done, {self.failed} failed"
        if self.done < self.total:
            text += ", time left unknown yet" if eta is None else f", about {cost.duration(eta)} left"
        return text + "]"

    def record(self, eta: float | None) -> dict[str, Any]:
        return {"cells_to_run": self.total, "done": self.done, "failed": self.failed,
                "running": len(self.started), "eta_s": None if eta is None else round(eta),
                "estimated_finish": None if eta is None else
                time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() + eta))}


def _execute(plan_: Plan, todo: list[Cell], entries: dict[str, dict[str, Any]], started: str, workers: int,
             executor: str, gpus: list[str] | None, log, progress: Progress | None = None) -> int:
    """The scheduling loop shared by every executor: start what fits, collect what finished, keep the manifest."""
    if not todo:
        return 0
    progress = progress or Progress(len(todo), workers)
    if executor == "local":
        backend = _Inline() if workers == 1 else _Pool(min(workers, len(todo)))
    else:
        backend = _Submitit(executor, plan_.out / ".submitit")
    waiting, running, failed, done = list(todo), {}, 0, 0
    free = list(gpus) if gpus is not None else None
    try:
        while waiting or running:
            slots = workers - len(running)
            if free is None:
                starts = [(i, None) for i in range(min(slots, len(waiting)))]
            else:
                starts = take_gpus(free, [c.resources.gpus for c in waiting], slots)
            for index, devices in starts:
                cell = waiting[index]
                if devices is not None:
                    free = [d for d in free if d not in devices]
                log(f"start    {cell.name}" + (f" on GPU {','.join(devices)}" if devices else ""))
                progress.start(cell)
                handle = backend.submit(cell, _job(cell, plan_, devices))
                running[id(handle)] = (handle, cell, devices)
            chosen = {waiting[i].name for i, _ in starts}
            waiting = [c for c in waiting if c.name not in chosen]
            finished = [key for key, (handle, _, _) in running.items() if handle.done()]
            if not finished:
                time.sleep(0.2 if executor == "local" else 1.0)
                continue
            for key in finished:
                handle, cell, devices = running.pop(key)
                try:
                    record = handle.result()
                except Exception as err:  # the worker itself died (killed, out of memory): the cell failed
                    record = {"status": "failed", "error": f"worker failed: {type(err).__name__}: {err}"}
                    backend = _replace_broken(backend, workers, len(waiting))
                if devices is not None:
                    free = sorted(free + devices, key=str)
                if record.get("status") == "interrupted":  # its kernel or worker was signalled: stop the study
                    running[key] = (handle, cell, devices)
                    raise KeyboardInterrupt(record.get("error") or "a cell was interrupted")
                done += 1
                status = record.get("status", "failed")
                failed += status != "finished"
                entries[cell.name] = manifest_entry(cell, plan_.out, status if status in STATUSES else "failed", record)
                progress.finish(cell, status, record.get("duration_s"))
                eta = progress.eta_s(waiting, [c for _, c, _ in running.values()])
                line = f"{status:<8} {cell.name}"
                if record.get("duration_s") is not None:
                    line += f" in {record['duration_s']:.1f} s"
                log(line + (f": {record.get('error')}" if status != "finished" else "") + " " + progress.line(eta))
                write_manifest(plan_, entries, started, progress=progress.record(eta))
    except KeyboardInterrupt:
        backend.close(cancel=True)
        for _, cell, _ in running.values():  # a cell may have finished just before the interrupt
            state, record = cell_state(cell)
            entries[cell.name] = (manifest_entry(cell, plan_.out, "finished", record) if state == "done" else
                                  manifest_entry(cell, plan_.out, "pending", None, "interrupted; reruns next time"))
        write_manifest(plan_, entries, started)
        raise
    backend.close()
    return failed


def _replace_broken(backend, workers: int, waiting: int):
    """A process pool whose worker died cannot run more cells; start a fresh one for the rest."""
    if isinstance(backend, _Pool) and getattr(backend.pool, "_broken", False):
        backend.close(cancel=True)
        return _Pool(max(1, min(workers, waiting)))
    return backend


@contextlib.contextmanager
def _study_lock(out: Path) -> Iterator[None]:
    """One study at a time per output folder: two would run the same cells and overwrite each other's manifest."""
    import fcntl

    handle = open(out / ".study.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(f"another `mtalign study` is running in {out}; wait for it or use another --out") from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


# -- the report ------------------------------------------------------------------------------------
def run_report_cell(plan_: Plan, entries: dict[str, dict[str, Any]], started: str, log=print) -> dict[str, Any]:
    """Run the report notebook in this process after the cells; the manifest it reads is complete by then."""
    cell = plan_.report
    write_manifest(plan_, entries, started)
    log(f"report   {cell.notebook} -> {cell.dir}")
    record = execute_cell(_job(cell, plan_, None))
    if record["status"] == "interrupted":
        raise KeyboardInterrupt(record["error"])
    if record["status"] == "finished":  # the report page is the executed notebook, exported without its code
        from mtalign import report

        try:
            report.export_html(cell.dir / record["executed_notebook"], plan_.out / report.REPORT_FILE)
            report.export_notebooks(plan_.out)  # the cells' executed notebooks, as pages next to the report
        except Exception as err:  # a notebook that ran but cannot be exported is a failed report, not a crash
            record.update(status="failed", error=f"exporting the report page failed: {type(err).__name__}: {err}")
    entry = manifest_entry(cell, plan_.out, record["status"], record)
    log(f"{record['status']:<8} {cell.notebook} in {record['duration_s']:.1f} s"
        + (f": {record['error']}" if record["status"] != "finished" else ""))
    return entry


def run_report(out: Path | str, grid: Grid | Path | str | None = None,
               notebooks_dir: Path | str | None = None, log=print) -> dict[str, Any]:
    """Rebuild the report of a study folder alone (`mtalign report --out DIR`); returns its manifest entry.

    Without `grid`, the grid stored in `<out>/manifest.json` is used, so the report matches the cells that ran.
    """
    out = Path(out).resolve()
    manifest = load_manifest(out, log) if (out / "manifest.json").exists() else None
    if grid is None:
        manifest = manifest or load_manifest(out, log)  # raises the clear error when there is none
        grid = parse_grid(manifest["grid"], f"{out / 'manifest.json'} (grid of {manifest['grid_file']})")
    elif not isinstance(grid, Grid):
        grid = load_grid(grid)
    if grid.report is None:
        raise ValueError(f"{grid.source} names no report notebook (add `report: 99_report`)")
    notebooks_dir = Path(notebooks_dir or (manifest or {}).get("notebooks_dir") or paths.NOTEBOOKS)
    plan_ = plan(grid, out, notebooks_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _study_lock(out):
        prepare(plan_)
        started = manifest["started"] if manifest else runinfo.now()
        entries = {c.name: disk_entry(c, out, "not run yet") for c in plan_.cells}
        entry = run_report_cell(plan_, entries, started, log=log)
        write_manifest(plan_, entries, started, entry)
    return entry


# -- command line ----------------------------------------------------------------------------------
def dry_run(plan_: Plan, cells: list[Cell], workers: int | None = None) -> str:
    """What a run would do, from what is on disk, and what it will cost (`mtalign.cost`); writes nothing."""
    meaning = {"done": "done", "stale": "rerun (parameters changed)", "failed": "rerun (failed before)",
               "unfinished": "rerun (unfinished)", "new": "run"}
    states = {cell.name: cell_state(cell)[0] for cell in cells}
    estimates, cost_lines = _estimates(plan_, [c for c in cells if states[c.name] != "done"], workers)
    lines, counts = [], {}
    for cell in cells:
        state = states[cell.name]
        counts[state] = counts.get(state, 0) + 1
        gpus = f"  gpus={cell.resources.gpus}" if cell.resources.gpus else ""
        seconds = estimates.get(cell.name)
        about = f"  (about {cost.duration(seconds)})" if seconds is not None else ""
        lines.append(f"{meaning[state]:<27} {cell.name}  ->  {cell.dir}{gpus}{about}")
    head = (f"{plan_.grid.source}: {len(cells)} cell(s) selected of {len(plan_.cells)}; "
            f"{counts.get('done', 0)} done, {len(cells) - counts.get('done', 0)} to run; output {plan_.out}")
    tail = [f"then the report: {plan_.report.notebook} -> {plan_.report.dir}"] if plan_.report else []
    return "\n".join([head, *lines, *tail, *cost_lines])


def _estimates(plan_: Plan, todo: list[Cell], workers: int | None) -> tuple[dict[str, float], list[str]]:
    """Each cell's estimated seconds (`mtalign.cost`, from params/costs.yaml) and the grid's summary lines; an
    estimate that cannot be made is reported, never fatal."""
    try:
        costs = cost.load_costs()
        found = cost.estimate_cells(plan_, todo, costs, runs_dir=plan_.out / "runs")
    except (ValueError, FileNotFoundError) as err:
        return {}, [f"no cost estimate: {err}"]
    lanes = sorted({1, default_workers(), *([workers] if workers else [])})
    return ({e.name: e.seconds for e in found if e.seconds is not None},
            cost.summary_lines(found, lanes, costs) if todo else [])


def longest_first(plan_: Plan, todo: list[Cell]) -> list[Cell]:
    """The cells to run, costliest first by their estimate (plan order among equals and unestimated cells last),
    so the grid does not end on one long cell while the other workers idle."""
    estimates, _ = _estimates(plan_, todo, None)
    return sorted(todo, key=lambda c: -estimates.get(c.name, -1.0))


# -- extra seeds where verdicts are within noise ------------------------------------------------------------------
EXTRA_SEEDS = (3, 4)


def extra_seed_cells(plan_: Plan, log=print) -> list[Cell]:
    """`mtalign study --extra-seeds`: one rule, the same for every claim and variant. After the grid's own seeds, a
    claim notebook's cells for a model get seeds EXTRA_SEEDS (all of that claim's variants, with ground truth) when
    any verdict of that claim on that model's primary evaluation task is *within noise*, or ground truth's is (its
    gain is every margin's bar). Verdicts are then recomputed over all seeds. Cells that already sweep those seeds
    are left as they are. Read from the study's own run store (the grid's runs, as the report reads them)."""
    from mtalign import report, verdicts

    study = report.load_study(plan_.out)
    rows = verdicts.cell_verdicts(study.summaries, bootstrap=False)
    noisy = {(r["model"], r["claim"]) for r in rows if r["primary"] and r["verdict"] == verdicts.NOISE}
    have = {c.name for c in plan_.cells}
    out = []
    for cell in plan_.cells:
        claim = report.CLAIM_NOTEBOOKS.get(cell.notebook)
        model = cell.overrides.get("model")
        if claim is None or "seed" not in cell.point or not ((model, claim) in noisy or (model, "baseline") in noisy):
            continue
        for seed in EXTRA_SEEDS:
            point = {**cell.point, "seed": seed}
            name = cell_name(cell.notebook, point)
            if name in have:
                continue
            have.add(name)
            overrides = {**cell.overrides, "seed": seed}
            out.append(replace(cell, name=name, point=point, overrides=overrides,
                               parameters={**cell.parameters, "seed": seed, **(
                                   {"run_dir": str(cell.dir.parent / name)} if "run_dir" in cell.parameters else {})},
                               dir=cell.dir.parent / name))
    log(f"extra seeds {', '.join(map(str, EXTRA_SEEDS))}: {len(out)} cell(s) for "
        f"{len({(c.notebook, c.overrides.get('model')) for c in out})} (claim, model) pair(s) with a verdict within "
        "noise" + (": " + ", ".join(sorted({f"{c.notebook} {c.overrides.get('model')}" for c in out})) if out else ""))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=DEFAULT_GRID,
                        help="grid file (default params/grids/toy.yaml; also smoke, paper, lite)")
    parser.add_argument("--out", type=Path, help="output folder (default outputs/, or $MTALIGN_OUTPUTS)")
    parser.add_argument("--workers", type=int, help="cells at a time (default: CPU count; slurm: unlimited)")
    parser.add_argument("--only", action="append", metavar="GLOB",
                        help="run only cells whose name matches this glob (repeatable), e.g. '02_*seed=0'")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the cells, their folders and which are done, with each cell's and the grid's "
                             "estimated time (params/costs.yaml)")
    parser.add_argument("--executor", default="local", choices=EXECUTORS,
                        help="local: process pool here; local-submitit: submitit LocalExecutor; slurm: one SLURM "
                             "job per cell (docs/cluster.md)")
    parser.add_argument("--notebooks", type=Path, default=paths.NOTEBOOKS, help="folder of NN_name.py notebooks")
    parser.add_argument("--no-report", action="store_true", help="do not run the report notebook afterwards")
    parser.add_argument("--extra-seeds", action="store_true",
                        help=f"after the grid, add seeds {', '.join(map(str, EXTRA_SEEDS))} to every claim cell whose "
                             "model has a verdict within noise for that claim (or for ground truth), then report")


def run(args: argparse.Namespace) -> int:
    grid = load_grid(args.params)
    plan_ = plan(grid, args.out or paths.outputs(), args.notebooks)
    cells = select(plan_.cells, args.only)
    if args.dry_run:
        if args.extra_seeds:  # from the runs finished so far
            extra = extra_seed_cells(plan_)
            plan_, cells = replace(plan_, cells=plan_.cells + extra), cells + extra
        print(dry_run(plan_, cells, args.workers))
        return 0
    if not args.extra_seeds:
        return run_study(plan_, cells, workers=args.workers, executor=args.executor,
                         report=not args.no_report).exit_code
    first = run_study(plan_, cells, workers=args.workers, executor=args.executor, report=False)
    extra = extra_seed_cells(plan_)
    outcome = run_study(replace(plan_, cells=plan_.cells + extra), cells + extra, workers=args.workers,
                        executor=args.executor, report=not args.no_report)
    return max(first.exit_code, outcome.exit_code)
