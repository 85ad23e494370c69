"""The grid: a grid file's schema, expanded into notebook cells and checked before anything runs (issue 4).

`mtalign study` runs the cells (mtalign/runner.py). A grid file (params/grids/*.yaml) holds only deltas from each
notebook's own defaults. The schema, documented again at the top of every shipped grid file:

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
(`02_reward_signal__model=toy-chain_sum-strong__seed=0`), and runs in `<out>/<notebook>/<cell>/`. The runner injects
`run_dir` (the cell folder), `runs_dir` (`<out>/runs`, RL runs shared by the whole grid), `study_dir` (`<out>`) and
`gpus` into every notebook that declares them; a grid file may not set them.

Parameter values are checked by name before any cell runs: `model(s)`/`*_model(s)` against mtalign's short model
names (values with a `/` or an existing path are Hugging Face names or local models, not checked), `task(s)`/
`*_task(s)` against the task registry, `variant(s)` and `preset(s)` (and `*_variant(s)`, `*_preset(s)`) against
`mtalign.config.list_variants()` / `list_presets()` when the engine is there.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from submitit.slurm.slurm import SlurmExecutor

from mtalign import paths

DEFAULT_GRID = paths.PARAMS / "grids" / "toy.yaml"
# Parameters whose value the runner owns; a grid file may not set them.
RUNNER_PARAMETERS = ("run_dir", "runs_dir", "study_dir", "gpus")
TOP_KEYS = ("defaults", "resources", "slurm", "notebooks", "report")
ENTRY_KEYS = ("params", "grid", "resources", "slurm")
RESOURCE_KEYS = ("gpus", "cpus", "mem_gb", "time_min")
# SlurmExecutor options the runner derives from a cell's resources; the grid's `slurm:` block may not set them.
SLURM_DERIVED = ("gpus_per_node", "cpus_per_task", "mem", "time", "job_name", "nodes", "ntasks_per_node")
NOTEBOOK_FILE = re.compile(r"^\d\d_\w+\.py$")
MAX_NAME = 150  # file names are capped at 255 bytes; leave room for suffixes



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


CLAIM_TITLE = re.compile(r"^# # \d\d · (RQ\d+):", re.M)  # a claim notebook's title: "# 04 · RQ3: ..."


def claim_notebooks(notebooks_dir: Path | str = paths.NOTEBOOKS) -> dict[str, str]:
    """Claim notebook -> the claim it tests. Its title names the claim ("# 04 · RQ3: ..."), matched to the labels of
    params/variants.yaml (config.claims), so a new claim notebook is found without a table to extend."""
    from mtalign import config  # variants and their registries: only when claims are asked for

    labels = list(config.claims())
    found = {}
    for name, source in find_notebooks(notebooks_dir).items():
        title = CLAIM_TITLE.search(source.read_text())
        label = [c for c in labels if title and c.split(" ")[0] == title.group(1)]
        if label:
            found[name] = label[0]
    return found


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
    import jupytext  # here, not at the top: about a second to import, and the report reads manifests via this module

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
    # imported here: models, tasks and the engine's config pull in torch and transformers, and may be absent
    if kind == "model":
        from mtalign import models

        return models.list_models()
    if kind == "task":
        from mtalign.tasks import list_tasks

        return list_tasks()
    from mtalign import config

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

