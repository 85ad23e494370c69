"""What the claim notebooks share: run a claim's variants next to the ground-truth baseline, and tabulate them.

A notebook calls `run_claim` for one (model, seed) cell of the grid; every run lands in the grid's run store
(`mtalign.runs`), so the baseline is trained once for all claims and the report reads the same files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from mtalign import config, runinfo, runs
from mtalign.data import NothingToTrain
from mtalign.verdicts import BASELINE

# per-step metrics the notebooks draw (mtalign/train.py writes them to metrics.jsonl)
CURVES = {"gt_accuracy": "ground-truth accuracy of rollouts", "reward_mean": "training reward",
          "entropy": "policy token entropy", "zero_variance_frac": "zero-variance groups"}


def run_claim(model: str, seed: int, variants: list[str], runs_dir: str | Path | None = None,
              task: str | None = None, log=print, **train_kwargs: Any) -> list[dict[str, Any]]:
    """Summaries of the baseline and each variant for (model, seed), training whatever is not finished yet.

    One-shot variants selected by historical variance (1-shot RLVR) read the per-example accuracy log of the ranking
    step (`runs.ensure_ranking_run`: the baseline itself where the preset's run already makes the ranking epochs, a
    short ground-truth run on the ranking subset otherwise). `train_kwargs` (preset, steps, eval_tasks, task_kwargs,
    ...) are the same for every variant.
    """
    task = task or config.default_task(model)
    defined = config.load_variants(train_kwargs.get("variants_file") or config.VARIANTS_FILE)
    unknown = [v for v in variants if v not in defined]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; valid variants: {', '.join(defined)}")
    runs_dir = Path(runs_dir) if runs_dir else runs.default_runs_dir()
    summaries = [runs.ensure_run(runs_dir, model, task, BASELINE, seed, log=log, **train_kwargs)]
    ranking_log = None
    for variant in (v for v in variants if v != BASELINE):
        extra = {}
        data = defined[variant].data
        if data["kind"] != "full" and data.get("selection", "variance") == "variance":
            if ranking_log is None:
                ranking = runs.ensure_ranking_run(runs_dir, model, task, seed, log=log, **train_kwargs)
                ranking_log = Path(ranking["dir"]) / "example_accuracy.jsonl"
            extra = {"accuracy_log": ranking_log}
        try:
            summaries.append(runs.ensure_run(runs_dir, model, task, variant, seed, log=log, **train_kwargs, **extra))
        except NothingToTrain as err:  # this model gives the variant no data: its other variants still run
            log(f"{variant}: not run on {model}, seed {seed}: {err}")
    return summaries


def table(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: held-out accuracy before and after, the gain, and what else separates the mechanisms."""
    rows = []
    for s in summaries:
        last = s.get("last_step") or {}
        rows.append({
            "variant": s["variant"], "seed": s["seed"], "before": s["before"]["accuracy"],
            "after": s["after"]["accuracy"], "gain": s["gain"],
            "format_after": s["after"]["format_rate"],
            "pass@1_before": (s.get("passk_before") or {}).get("pass@1", math.nan),
            "zero_var_groups": s.get("mean_zero_variance_frac"),
            "pseudo_label_acc": last.get("pseudo_label_accuracy"),
            "s/step": s.get("seconds_per_step"),
        })
    return pd.DataFrame(rows)


def curves(runs_dir: str | Path | None, summaries: list[dict[str, Any]]) -> dict[str, list[dict]]:
    """variant -> its per-step metrics (the rows of metrics.jsonl)."""
    return {s["variant"]: runs.load_metrics(_dir(runs_dir, s)) for s in summaries}


def _dir(runs_dir: str | Path | None, summary: dict[str, Any]) -> Path:
    if summary.get("dir"):
        return Path(summary["dir"])
    return (Path(runs_dir) if runs_dir else runs.default_runs_dir()) / summary["run"]


def heldout_by(runs_dir: str | Path | None, summary: dict[str, Any], key: str, task) -> pd.DataFrame:
    """Held-out accuracy after training, split by a problem metadata field (e.g. chain_sum's num_terms).

    Reads the per-problem correct counts of `final_passk.json`; the problems are regenerated from the task,
    which is deterministic, to recover their metadata.
    """
    final = runinfo.read_json(_dir(runs_dir, summary) / "final_passk.json")
    problems = {p.id: p for p in task.problems(task.eval_split, n=len(final["problem_ids"]), seed=0)}
    rows = [{key: problems[pid].metadata.get(key), "accuracy": c / final["n"]}
            for pid, c in zip(final["problem_ids"], final["correct"]) if pid in problems]
    return pd.DataFrame(rows).groupby(key, as_index=False)["accuracy"].mean()


def recorded(study_dir: str | Path, model: str, seed: int, variants: list[str], task: str | None = None,
             preset: str | None = None, log=print) -> list[dict[str, Any]]:
    """Summaries of the baseline and each variant for (model, seed) as a finished study recorded them, never training.

    Reads `<study_dir>/runs/**/summary.json` (the committed records of the toy study are in outputs/, README
    "Results in the repository"), so a claim notebook given `study_dir` draws the study's real figures in seconds.
    Each summary's `dir` is where its files are, so `curves` and `heldout_by` read them from there.
    """
    study = Path(study_dir)
    if not (study / "runs").is_dir():
        raise FileNotFoundError(f"study_dir {study} has no runs/ folder: point it at a study's output folder "
                                "(e.g. outputs/, which holds the committed toy study) or leave it empty to train")
    task = task or config.default_task(model)
    found = [s for s in runs.load_summaries(study / "runs")
             if s["model"] == model and s["seed"] == seed and (s.get("eval_task") or s["task"]) == task
             and (preset is None or s.get("preset") == preset)]
    by_variant = {s["variant"]: s for s in found}
    wanted = [BASELINE] + [v for v in variants if v != BASELINE]
    skipped = [v for v in wanted if v not in by_variant and _gave_no_data(study, model, task, v, seed)]
    for variant in skipped:  # recorded as the study's claim notebook said it: not run on this model
        log(f"{variant}: not run on {model}, seed {seed}: the model gave it no data to train on (its run.json)")
    missing = [v for v in wanted if v not in by_variant and v not in skipped]
    if missing:
        have = sorted({(s["model"], s["seed"], s.get("preset")) for s in runs.load_summaries(study / "runs")})
        shown = ", ".join(f"{m} seed {sd} ({p})" for m, sd, p in have[:8]) + (", ..." if len(have) > 8 else "")
        raise ValueError(f"{study / 'runs'} holds no finished run of {', '.join(missing)} for {model} on {task}, "
                         f"seed {seed}" + (f", preset {preset}" if preset else "") + f"; it has: {shown or 'none'}")
    return [by_variant[v] for v in wanted if v in by_variant]


def _gave_no_data(study: Path, model: str, task: str, variant: str, seed: int) -> bool:
    """Did the study try this run and find no data for it (data.NothingToTrain in its run.json)?"""
    name = config.run_name(model, task, variant, seed)
    for info in (study / "runs").glob(f"*/{name}/run.json"):
        try:
            if str(runinfo.read_json(info).get("error", "")).startswith(NothingToTrain.__name__):
                return True
        except ValueError:
            continue
    return False
