"""Run the study: a grid's cells (mtalign/grid.py), each executed with papermill, then the report (issue 4).

`mtalign study [--params GRID.yaml] [--out DIR] [--workers N] [--only GLOB] [--dry-run] [--executor E]`.

Each cell runs in `<out>/<notebook>/<cell>/`, which holds the executed notebook, the notebook's own files, and
`params.json` (resolved parameters, versions, times, status). A rerun skips the finished cells and redoes every other
one; `<out>/manifest.json` lists every cell with its status, error, paths and durations (mtalign/manifests.py). The
cells run through mtalign/executors.py, costliest first (mtalign/cost.py), and the report notebook runs last.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from mtalign import cost, pages, paths, runinfo, signals, verdicts
from mtalign.executors import (EXECUTORS, Progress, cell_job, default_workers, execute, execute_cell, prepare,
                               visible_gpus)
from mtalign.grid import DEFAULT_GRID, Cell, Grid, Plan, cell_name, claim_notebooks, load_grid, parse_grid, plan, select
from mtalign.manifests import STATUSES, cell_state, disk_entry, load_manifest, manifest_entry, write_manifest


# -- running the grid --------------------------------------------------------------------------------
@dataclass
class Outcome:
    manifest: Path
    entries: dict[str, dict[str, Any]]
    report: dict[str, Any] | None
    exit_code: int


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
        estimates = cell_estimates(plan_, todo)
        todo = longest_first(todo, estimates)
        write_manifest(plan_, entries, started)
        log(f"{len(todo)} of {len(selected)} selected cell(s) to run ({len(plan_.cells)} in the grid), "
            f"executor {executor}, {min(workers, max(len(todo), 1))} at a time; manifest {plan_.out / 'manifest.json'}")
        progress = Progress(len(todo), workers, estimates=estimates)
        failed = execute(plan_, todo, entries, started, workers, executor, gpus, log, progress)
        report_entry = None
        if report and plan_.report is not None:
            report_entry = run_report_cell(plan_, entries, started, log=log)
        manifest = write_manifest(plan_, entries, started, report_entry, progress=progress.record(0.0))
    bad_report = report_entry is not None and report_entry["status"] != "finished"
    counts = {s: sum(e["status"] == s for e in entries.values()) for s in STATUSES}
    log("cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; manifest {manifest}")
    return Outcome(manifest, entries, report_entry, 1 if failed or bad_report else 0)


@contextlib.contextmanager
def _study_lock(out: Path) -> Iterator[None]:
    """One study at a time per output folder: two would run the same cells and overwrite each other's manifest."""
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
    record = execute_cell(cell_job(cell, plan_, None))
    if record["status"] == "interrupted":
        raise KeyboardInterrupt(record["error"])
    if record["status"] == "finished":  # the report page is the executed notebook, exported without its code
        try:
            pages.export_html(cell.dir / record["executed_notebook"], plan_.out / pages.REPORT_FILE)
            pages.export_notebooks(plan_.out)  # the cells' executed notebooks, as pages next to the report
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
        grid = parse_grid(manifest["grid"], f"{out / 'manifest.json'} (grid of {grid_file_of(manifest)})")
    elif not isinstance(grid, Grid):
        grid = load_grid(grid)
    if grid.report is None:
        raise ValueError(f"{grid.source} names no report notebook (add `report: 99_report`)")
    if notebooks_dir is None:
        notebooks_dir = Path((manifest or {}).get("notebooks_dir") or paths.NOTEBOOKS)
        if not notebooks_dir.is_dir():  # records made in another checkout (the committed study on a fresh clone)
            log(f"the study's notebooks folder {notebooks_dir} is not here; using this project's {paths.NOTEBOOKS}")
            notebooks_dir = paths.NOTEBOOKS
    plan_ = plan(grid, out, notebooks_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _study_lock(out):
        prepare(plan_)
        started = manifest["started"] if manifest else runinfo.now()
        entries = {c.name: disk_entry(c, out, "not run yet") for c in plan_.cells}
        entry = run_report_cell(plan_, entries, started, log=log)
        write_manifest(plan_, entries, started, entry)
    return entry


def grid_file_of(manifest: dict[str, Any]) -> str:
    """The grid file a study was run from, as its manifest names it, however many times its report was rebuilt (each
    rebuild records the grid as read from the manifest: "<out>/manifest.json (grid of <file>)")."""
    source = str(manifest.get("grid_file") or "?")
    while " (grid of " in source and source.endswith(")"):
        source = source.split(" (grid of ", 1)[1][:-1]
    return source


# -- command line ----------------------------------------------------------------------------------
def dry_run(plan_: Plan, cells: list[Cell], workers: int | None = None) -> str:
    """What a run would do, from what is on disk, and what it will cost (`mtalign.cost`); writes nothing."""
    meaning = {"done": "done", "stale": "rerun (parameters changed)", "outdated": "rerun (other code)",
               "failed": "rerun (failed before)", "unfinished": "rerun (unfinished)", "new": "run"}
    states = {cell.name: cell_state(cell)[0] for cell in cells}
    estimates, cost_lines, notes = _estimates(plan_, [c for c in cells if states[c.name] != "done"], workers)
    lines, counts = [], {}
    for cell in cells:
        state = states[cell.name]
        counts[state] = counts.get(state, 0) + 1
        gpus = f"  gpus={cell.resources.gpus}" if cell.resources.gpus else ""
        seconds = estimates.get(cell.name)
        note = f"; {notes[cell.name]}" if cell.name in notes else ""
        about = f"  (about {cost.duration(seconds)}{note})" if seconds is not None else ""
        lines.append(f"{meaning[state]:<27} {cell.name}  ->  {cell.dir}{gpus}{about}")
    head = (f"{plan_.grid.source}: {len(cells)} cell(s) selected of {len(plan_.cells)}; "
            f"{counts.get('done', 0)} done, {len(cells) - counts.get('done', 0)} to run; output {plan_.out}")
    tail = [f"then the report: {plan_.report.notebook} -> {plan_.report.dir}"] if plan_.report else []
    return "\n".join([head, *lines, *tail, *cost_lines, *cpu_warning(plan_)])


def _estimates(plan_: Plan, todo: list[Cell], workers: int | None) -> tuple[dict[str, float], list[str],
                                                                            dict[str, str]]:
    """Each cell's estimated seconds (`mtalign.cost`, from params/costs.yaml), the grid's summary lines and each
    estimated cell's note (the toy models it builds); an estimate that cannot be made is reported, never fatal."""
    try:
        costs = cost.load_costs(local=cost.local_costs_file())
        costs = cost.on_this_machine(costs) if todo else costs
        found = cost.estimate_cells(plan_, todo, costs, runs_dir=plan_.out / "runs")
    except (ValueError, FileNotFoundError) as err:
        return {}, [f"no cost estimate: {err}"], {}
    lanes = sorted({1, default_workers(), *([workers] if workers else [])})
    return ({e.name: e.seconds for e in found if e.seconds is not None},
            cost.summary_lines(found, lanes, costs) if todo else [],
            {e.name: e.note for e in found if e.seconds is not None and e.note})


def cell_estimates(plan_: Plan, todo: list[Cell]) -> dict[str, float]:
    """Each cell's estimated seconds on this machine, for the cells the cost model can estimate."""
    return _estimates(plan_, todo, None)[0]


def longest_first(todo: list[Cell], estimates: dict[str, float]) -> list[Cell]:
    """The cells to run, costliest first by their estimate (plan order among equals and unestimated cells last),
    so the grid does not end on one long cell while the other workers idle."""
    return sorted(todo, key=lambda c: -estimates.get(c.name, -1.0))


# -- extra seeds where verdicts are within noise ------------------------------------------------------------------
EXTRA_SEEDS = (3, 4)


def extra_seed_cells(plan_: Plan, log=print) -> list[Cell]:
    """`mtalign study --extra-seeds`: one rule, the same for every claim and variant. After the grid's own seeds, a
    claim notebook's cells for a model get seeds EXTRA_SEEDS (all of that claim's variants, with ground truth) when
    any verdict of that claim on that model's primary evaluation task is *within noise*, or ground truth's is (its
    gain is every margin's bar). Verdicts are then recomputed over all seeds. Cells that already sweep those seeds
    are left as they are. Read from the study's own run store (the grid's runs, as the report reads them)."""
    # here, not at the top: reading the run store pulls in pandas and the engine (torch), seconds to minutes on a
    # loaded machine before the first cell could start, and only --extra-seeds needs it
    from mtalign import study_files

    study = study_files.load_study(plan_.out)
    rows = verdicts.cell_verdicts(study.summaries, bootstrap=False)
    noisy = {(r["model"], r["claim"]) for r in rows if r["primary"] and r["verdict"] == verdicts.NOISE}
    have = {c.name for c in plan_.cells}
    out, claim_of = [], claim_notebooks(plan_.notebooks_dir)
    for cell in plan_.cells:
        claim = claim_of.get(cell.notebook)
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


def other_cpu_runs(runs_dir: Path) -> dict[str, int]:
    """Finished runs of the store trained on another kind of CPU than this one, counted by kind. Toy models built on
    two kinds of CPU differ beyond a measurement's interval (README: Cost of the toy study), and a run is named by its
    model's recipe, not its weights, so runs trained here would be paired and pooled with runs of another model.
    Runs that record no CPU (trained before runs recorded it) are not counted."""
    from mtalign import cpu_bf16

    here, counts = cpu_bf16.cpu_kind(), {}
    for info_file in sorted(Path(runs_dir).glob("*/*/run.json")):
        try:
            info = json.loads(info_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        kind = info.get("cpu")
        if info.get("status") == "finished" and kind and kind != here:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def cpu_warning(plan_: Plan) -> list[str]:
    """A warning when the study's run store holds runs trained on another kind of CPU (`other_cpu_runs`)."""
    counts = other_cpu_runs(plan_.out / "runs")
    if not counts:
        return []
    from mtalign import cpu_bf16

    kinds = "; ".join(f"{n} on {kind}" for kind, n in sorted(counts.items()))
    return [f"warning: {sum(counts.values())} finished run(s) in {plan_.out / 'runs'} were trained on another kind of "
            f"CPU ({kinds}; this one: {cpu_bf16.cpu_kind()}): toy models built here differ from theirs, and runs "
            "trained here would be paired and pooled with them (README: The toy models are the same only on the "
            "same kind of CPU); use another --out to keep them apart"]


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
    for line in cpu_warning(plan_):
        print(line, file=sys.stderr)
    if not args.extra_seeds:
        return run_study(plan_, cells, workers=args.workers, executor=args.executor,
                         report=not args.no_report).exit_code
    first = run_study(plan_, cells, workers=args.workers, executor=args.executor, report=False)
    extra = extra_seed_cells(plan_)
    outcome = run_study(replace(plan_, cells=plan_.cells + extra), cells + extra, workers=args.workers,
                        executor=args.executor, report=not args.no_report)
    return max(first.exit_code, outcome.exit_code)
