"""What every notebook does around its science: read its parameters, make its folder, get a claim cell's runs, and
write its run record (`metrics.json`, which the report reads; STYLE.md rule 4).

    parameters.parse(globals())                              # the cell after the parameters cell
    cell = notebook.setup("02_reward_signal", globals())
    summaries = notebook.claim_runs(cell, variants + probes)  # trained, or read from a finished study
    notebook.print_verdicts(summaries)                         # the verdict rule on the cell's own runs
    notebook.write_claim_metrics(cell, summaries, results)    # the last cell
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from mtalign import claims, config, cpu_bf16, paths, runinfo, verdicts

cpu_bf16.install()  # a notebook's bf16 updates and model builds at float32 speed on CPUs without bf16 instructions

# What a claim notebook records of its parameters, in this order, where it declares them: not where its files are
# (runs_dir, run_dir, records_dir) nor task_kwargs (data paths on one machine).
CLAIM_RECORDED = ("model", "task", "eval_tasks", "seed", "variants", "probes", "subtype", "preset", "steps")


@dataclass
class Cell:
    """One execution of a notebook: its name, its own folder, when it started, and (claim notebooks) what every run
    of the cell shares besides model, task and seed (`claims.run_claim`'s train_kwargs)."""

    notebook: str
    run_dir: Path
    started: str
    train_kwargs: dict[str, Any]
    # the notebook's globals: parameters are recorded as the notebook holds them when it writes its record, so a value
    # it resolves after set-up (03's subtype) is recorded resolved
    namespace: dict[str, Any] = field(repr=False)


def setup(notebook: str, namespace: dict[str, Any]) -> Cell:
    """Make the notebook's folder (`run_dir`, default `outputs/notebooks/<notebook>`), note the start time and, for a
    claim notebook, the training arguments. `namespace` is the notebook's `globals()`, its parameters already parsed
    by `parameters.parse(globals())` on the line before (tests/test_parameters.py pins that call there)."""
    run_dir = Path(namespace.get("run_dir") or paths.outputs() / "notebooks" / notebook)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_kwargs = {}
    if "preset" in namespace:
        train_kwargs = {"preset": namespace["preset"], "steps": namespace.get("steps") or None,
                        "eval_tasks": namespace.get("eval_tasks") or None,
                        "task_kwargs": namespace.get("task_kwargs") or None}
    return Cell(notebook, run_dir, runinfo.now(), train_kwargs, namespace)


def claim_runs(cell: Cell, variants: list[str]) -> list[dict[str, Any]]:
    """The summaries of ground truth and `variants` on the cell's (model, seed): read from `records_dir` (a finished
    study) when it is set, never training; else from the run store, training what is not finished yet."""
    p = cell.namespace
    task = p.get("task") or None
    if p.get("records_dir"):
        return claims.recorded(p["records_dir"], p["model"], p["seed"], variants, task, p["preset"])
    return claims.run_claim(p["model"], p["seed"], variants, p.get("runs_dir") or None, task, **cell.train_kwargs)


# -- 03: accuracy within and across a task's sub-types -------------------------------------------------------------
SUBTYPE_KEY = "subtype_key"  # the Task class attribute naming the problem metadata field that makes a sub-type


def eval_task(cell: Cell):
    """The claim cell's primary evaluation task (its first `eval_tasks`, else its training task), built as its runs
    build it (a toy model's task at the difficulty it was pretrained on). Building a task reads no data."""
    p = cell.namespace
    name = (p.get("eval_tasks") or [None])[0] or p.get("task") or config.default_task(p["model"])
    return config.task_for(p["model"], name, (p.get("task_kwargs") or {}).get(name))


def subtype_key(task) -> str:
    """The problem metadata field that splits `task` into sub-types (chain_sum: num_terms), as its class declares it
    in `subtype_key`; "" for a task that declares None (no sub-types)."""
    if not hasattr(task, SUBTYPE_KEY):
        raise AttributeError(f"task {task.name!r} ({type(task).__module__}.{type(task).__name__}) declares no "
                             f"`{SUBTYPE_KEY}`: the problem metadata field that splits it into sub-types (None if it "
                             "has none) belongs on the task class; or pass 03's `subtype` parameter")
    return getattr(task, SUBTYPE_KEY) or ""


def heldout_by_subtype(cell: Cell, summaries: list[dict[str, Any]], key: str, task) -> pd.DataFrame:
    """Held-out accuracy after training per (sub-type, variant), from each run's final_passk.json
    (`claims.heldout_by`); empty when `key` is "" (the task has no sub-types)."""
    if not key:
        return pd.DataFrame()
    runs_dir = cell.namespace.get("runs_dir") or None
    return pd.concat([claims.heldout_by(runs_dir, s, key, task).assign(variant=s["variant"]) for s in summaries])


# -- the verdicts of a claim cell's own runs -----------------------------------------------------------------------
# what the verdict table shows of mtalign.verdicts.cell_verdicts' rows
VERDICT_COLUMNS = ("task", "claim", "variant", "seeds", "gain", "gain_low", "gain_high", "margin", "margin_low",
                   "margin_high", "verdict")


def verdict_table(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """The study's verdict rule (`mtalign.verdicts`) on these runs alone: one row per evaluation task and variant,
    in the runs' order (ground truth first), each with its gain and paired margin across the seeds it has."""
    order = {s["variant"]: i for i, s in enumerate(summaries)}
    rows = sorted(verdicts.cell_verdicts(summaries), key=lambda r: (not r["primary"], r["task"], order[r["variant"]]))
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def print_verdicts(summaries: list[dict[str, Any]], log=print) -> None:
    """Print `verdict_table`, then say how many seeds it rests on: with one, every verdict is "too few seeds"."""
    table = verdict_table(summaries)
    log(table.round(3).to_string(index=False))
    seeds = ", ".join(map(str, sorted({s["seed"] for s in summaries})))
    if (table["verdict"] == verdicts.FEW).all():
        log(f"{verdicts.FEW}, every one: these runs have seed {seeds} only, and the rule needs an interval across at "
            "least two seeds; 99_report judges these variants across the grid's seeds")
    else:
        log(f"verdicts across seeds {seeds} (the rule: mtalign/verdicts.py)")


def write_metrics(cell: Cell, recorded: Iterable[str], log=print, **record: Any) -> None:
    """`<run_dir>/metrics.json`: the notebook's name, start and end, the `recorded` parameters (names, read from the
    notebook's namespace now), then `record`, then the environment (`runinfo.environment`)."""
    path = runinfo.write_json(cell.run_dir / "metrics.json", {
        "notebook": cell.notebook, "started": cell.started, "finished": runinfo.now(),
        "parameters": {name: cell.namespace[name] for name in recorded}, **record, **runinfo.environment()})
    log(f"wrote {path}")


def write_claim_metrics(cell: Cell, summaries: list[dict[str, Any]], results: pd.DataFrame, log=print,
                        **record: Any) -> None:
    """A claim notebook's record: its parameters (`CLAIM_RECORDED`), the runs it used, their table, then `record`."""
    write_metrics(cell, [name for name in CLAIM_RECORDED if name in cell.namespace], log=log,
                  runs=[s["run"] for s in summaries], results=results.to_dict(orient="records"), **record)
