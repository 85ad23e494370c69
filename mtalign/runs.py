"""The run store: RL runs cached by name in one folder per grid, reused by every notebook that needs them.

Three claims compare against the same ground-truth baseline; `ensure_run` trains it once (under a file lock, so
two notebooks running in parallel do not train it twice) and every later call reads its `summary.json`.
The report reads runs through `load_summaries` and `load_metrics`, which see only these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtalign import runinfo, train
from mtalign.config import DEFAULT_PRESET, RUN_KEYS, default_task, resolve
from mtalign.config import default_runs_dir, run_dir  # noqa: F401  the one layout of run folders (mtalign train's too)
from mtalign.data import ranking_overrides
from mtalign.identity import identity_differences, planned_identity
from mtalign.runinfo import is_finished, run_lock  # noqa: F401  a run folder's state, for the store's readers

BASELINE_VARIANT = "ground_truth"  # = verdicts.BASELINE (not imported: verdicts is analysis, this is the store)


def ensure_run(runs_dir: Path | str | None, model: str, task: str | None, variant: str, seed: int,
               log=print, **train_kwargs: Any) -> dict[str, Any]:
    """The summary of run (model, task, variant, seed), training it first unless it already finished with exactly
    the same resolved parameters (`identity.run_identity`: settings, variant definition with semantics, model build,
    tasks, per-task arguments, evaluation tasks, strict regex). A finished run there with other parameters is
    replaced, and the log names what differed."""
    task = task or default_task(model)
    preset, steps = train_kwargs.get("preset") or DEFAULT_PRESET, train_kwargs.get("steps")
    stage = f"{preset}-ranking" if train_kwargs.get("role") == "ranking" else preset
    directory = run_dir(runs_dir or default_runs_dir(), model, task, variant, seed, stage, steps)
    wanted = planned_identity(model=model, task=task, variant=variant, seed=seed, **train_kwargs)
    with run_lock(directory):
        if is_finished(directory, wanted["identity_hash"]):
            return {**runinfo.read_json(directory / "summary.json"), "dir": str(directory)}
        if is_finished(directory):
            try:
                old = runinfo.read_json(directory / "summary.json").get("identity") or {}
            except ValueError:
                old = {}
            changed = identity_differences(old, wanted["identity"]) if old else ["recorded before run identities"]
            log(f"{directory}: its finished run has other parameters ({'; '.join(changed)[:500]}); training anew")
        summary = train.train(model=model, task=task, variant=variant, seed=seed, out=directory, overwrite=True,
                              log=log, **{"initial_eval_cache": Path(runs_dir or default_runs_dir()) / ".initial_eval",
                                          **train_kwargs})
        return {**summary, "dir": str(directory)}


def ensure_ranking_run(runs_dir: Path | str | None, model: str, task: str | None, seed: int, log=print,
                       **train_kwargs: Any) -> dict[str, Any]:
    """One_shot's ranking step (`data.ranking_overrides`): a ground-truth run on the ranking pool for the preset's
    ranking_epochs, whose `example_accuracy.jsonl` ranks the examples. When the preset's own ground-truth run is that
    run (the toy preset), it is that run; else it lives under `<preset>-ranking/` with role `ranking`, which the
    report never judges."""
    resolvable = {k: v for k, v in train_kwargs.items() if k in RUN_KEYS}
    run = resolve(model=model, task=task, variant=BASELINE_VARIANT, seed=seed, **resolvable)
    overrides = ranking_overrides(run.settings)
    if not overrides:
        return ensure_run(runs_dir, model, task, BASELINE_VARIANT, seed, log=log, **train_kwargs)
    kwargs = {**train_kwargs, "settings": {**(train_kwargs.get("settings") or {}), **overrides}, "role": "ranking",
              "steps": None}
    log(f"ranking step for one_shot: ground-truth RL on {overrides['train_problems']} problems for "
        f"{run.settings.ranking_epochs} epochs ({overrides['steps']} steps)")
    return ensure_run(runs_dir, model, task, BASELINE_VARIANT, seed, log=log, **kwargs)


def load_summaries(runs_dir: Path | str, warn=None) -> list[dict[str, Any]]:
    """Every finished run's summary under `runs_dir`, with its folder as `dir` (unfinished runs are absent).

    A damaged summary.json (truncated, not UTF-8) is left out and `warn` (default: a line on stderr) names it."""
    summaries = []
    for path in sorted(Path(runs_dir).rglob("summary.json")):
        try:
            summary = runinfo.read_json(path)
        except ValueError as err:
            (warn or runinfo.warn)(f"{err}; left out as not finished")
            continue
        if isinstance(summary, dict):
            summaries.append({**summary, "dir": str(path.parent)})
    return summaries


def load_metrics(directory: Path | str) -> list[dict[str, Any]]:
    """Per-step metrics of one run (readable even while it runs or after it was interrupted)."""
    path = Path(directory) / "metrics.jsonl"
    return runinfo.read_jsonl(path) if path.exists() else []
