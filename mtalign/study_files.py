"""What a study left on disk, read once (issues 4, 9): the files behind the report, never a notebook's internals.

`load_study` reads `<study>/manifest.json` (the grid's cells, their status and errors), each run's `summary.json`
in the run store `<study>/runs` (only the runs this grid asked for, matched to its cells by `expected_runs`), the
alignment cell JSONs that 01_alignment writes and 05_contamination's `metrics.json` into a `Study`. The per-run
tables (per-seed gains, per-step values from `metrics.jsonl`/`eval.jsonl`, pass@k before and after RL) and each
cell's base alignment are drawn from it here; mtalign/tables.py and mtalign/report.py build the report on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtalign import grid, runinfo, runs, verdicts
from mtalign.manifests import PRESENT, load_manifest
from mtalign.verdicts import BASELINE, CLAIMS

ALIGNMENT_NOTEBOOK, CONTAMINATION_NOTEBOOK = "01_alignment", "05_contamination"
SUMMARY_KEYS = ("model", "task", "variant", "seed", "gain", "before", "after")
# Per-step values drawn from each run's files: metrics.jsonl (rollouts, every step) and eval.jsonl (held out).
STEP_METRICS = ("gt_accuracy", "reward_mean", "entropy", "zero_variance_frac", "clip_fraction", "pseudo_label_accuracy",
                "clip_low_fraction", "clip_high_fraction")


# -- reading a study folder ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    """One RL run the grid asked for (a claim notebook's cell makes it), whether or not it finished."""

    model: str
    task: str | None  # None when it could not be resolved; then any task of the model matches
    variant: str
    seed: int | None
    cell: str
    status: str  # the cell's manifest status
    error: str | None
    preset: str | None


@dataclass
class Study:
    """The files of one study folder, read once."""

    dir: Path
    manifest: dict[str, Any] | None
    summaries: list[dict[str, Any]]  # finished runs this study asked for (all finished runs without a manifest)
    alignment: list[dict[str, Any]]  # 01_alignment cell records: model, task, curve, summary (+ source)
    contamination: list[dict[str, Any]]  # 05_contamination's per-model rows (colour, evidence, truth)
    expected: list[Expected]
    warnings: list[str] = field(default_factory=list)
    unused_runs: list[str] = field(default_factory=list)  # finished runs in the store the grid did not ask for

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"


def load_study(study_dir: Path | str) -> Study:
    """Read every per-run file of a study folder; a folder with nothing in it gives an empty study."""
    study = Path(study_dir)
    warnings: list[str] = []
    manifest = _load_manifest(study, warnings)
    summaries = _load_summaries(study / "runs", warnings)
    expected = expected_runs(study, manifest) if manifest else []
    unused: list[str] = []
    if expected:  # a shared run store may hold runs of other grids: show only what this grid asked for
        asked = [any(_matches(e, s) for e in expected) for s in summaries]
        unused = sorted(s.get("run") or f"{s['model']}__{s['task']}__{s['variant']}__s{s['seed']}"
                        for s, ok in zip(summaries, asked) if not ok)
        summaries = [s for s, ok in zip(summaries, asked) if ok]
    warnings += _preset_warnings(summaries, expected)
    return Study(study, manifest, summaries, _load_alignment(study, manifest), _load_contamination(study, manifest),
                 expected, warnings, unused)


def _load_manifest(study: Path, warnings: list[str]) -> dict[str, Any] | None:
    """The study's manifest; a damaged one is rebuilt from its cell folders (manifests.load_manifest), with a warning
    naming it; one that cannot be rebuilt is left out with the reason (the report then shows the runs alone)."""
    if not (study / "manifest.json").exists():
        return None
    try:
        return load_manifest(study, log=warnings.append)
    except (OSError, ValueError) as err:
        warnings.append(str(err))
        return None


def store_summaries(study_dir: Path | str, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every finished study run in a study folder's run store, whichever grid asked for it (`load_study` keeps only
    the current manifest's): a folder filled batch by batch, like the alignment ladder's, is read whole."""
    return _load_summaries(Path(study_dir) / "runs", warnings if warnings is not None else [])


def _load_summaries(runs_dir: Path, warnings: list[str]) -> list[dict[str, Any]]:
    if not runs_dir.is_dir():
        return []
    good = []
    for s in runs.load_summaries(runs_dir, warn=warnings.append):
        lacking = [k for k in SUMMARY_KEYS if k not in s]
        if lacking:
            warnings.append(f"run {s.get('run', '?')}: summary.json lacks {', '.join(lacking)}; left out")
        elif s.get("role", "study") == "study":  # one_shot's ranking runs rank examples; they are never judged
            good.append(s)
    return good


def _cells(manifest: dict[str, Any] | None, notebook: str) -> list[dict[str, Any]]:
    return [c for c in (manifest or {}).get("cells", []) if c.get("notebook") == notebook]


def _default_task(model: str) -> str | None:
    """A toy model's own task (from its name); None for other models, whose task a cell must set."""
    try:
        from mtalign import config  # here, not at the top: variants and models load the engine's registries

        return config.default_task(model)
    except (ValueError, KeyError, ImportError):
        return None


def expected_runs(study: Path, manifest: dict[str, Any]) -> list[Expected]:
    """The runs each claim notebook cell of the manifest asks for: ground truth plus its claim's variants.

    A cell's parameters are its resolved ones from its params.json (notebook defaults included) when it ran,
    overridden by the manifest's (the current grid); a cell that never ran falls back to verdicts.CLAIMS.
    """
    out = []
    # which claim each claim notebook tests is named in its title; its variants are verdicts.CLAIMS[claim] unless
    # the cell set `variants`
    for notebook, claim in grid.claim_notebooks().items():
        for cell in _cells(manifest, notebook):
            record_file = study / cell["dir"] / "params.json" if cell.get("dir") else None
            resolved = {}
            if record_file is not None and record_file.exists():
                try:
                    resolved = runinfo.read_json(record_file).get("parameters") or {}
                except ValueError:  # a half-written file of a killed run: its cell reruns anyway
                    resolved = {}
            params = {**resolved, **(cell.get("parameters") or {})}
            model = params.get("model")
            if not model:
                continue
            eval_tasks = params.get("eval_tasks") or []
            task = (eval_tasks[0] if eval_tasks else None) or params.get("task") or _default_task(model)
            variants = list(params.get("variants") or CLAIMS[claim]) + list(params.get("probes") or [])
            seed = params.get("seed")
            error = cell.get("error") or cell.get("reason")
            for variant in [BASELINE] + [v for v in variants if v != BASELINE]:
                out.append(Expected(model, task, variant, seed, cell["name"], cell["status"], error,
                                    params.get("preset")))
    return out


def _task_of(summary: dict[str, Any]) -> str:
    return summary.get("eval_task") or summary["task"]


def _matches(e: Expected, s: dict[str, Any]) -> bool:
    return (e.model == s["model"] and e.variant == s["variant"] and (e.seed is None or e.seed == s["seed"])
            and (e.task is None or e.task == _task_of(s)))


def _preset_warnings(summaries: list[dict[str, Any]], expected: list[Expected]) -> list[str]:
    """Runs trained with other frozen settings than the grid asked for would silently mix into the verdicts."""
    out = []
    by_cell: dict[tuple[str, str], set[str]] = {}
    for s in summaries:
        by_cell.setdefault((s["model"], _task_of(s)), set()).add(str(s.get("preset")))
        wanted = {e.preset for e in expected if e.preset and _matches(e, s)}
        if wanted and s.get("preset") not in wanted:
            out.append(f"run {s.get('run')} was trained with preset {s.get('preset')!r} but the grid asks for "
                       f"{', '.join(sorted(wanted))}: an older run in the store was reused (run names do not include "
                       "the preset); delete it and rerun to train it with the grid's settings")
    for (model, task), presets in sorted(by_cell.items()):
        if len(presets) > 1:
            out.append(f"{model} on {task} mixes runs of presets {', '.join(sorted(presets))}: settings are not "
                       "frozen across these variants")
    for mixed in verdicts.mixed_settings(summaries):
        out.append(f"{mixed['model']} on {mixed['task']} mixes runs of different settings "
                   f"({'; '.join(mixed['settings'])}), differing in {'; '.join(mixed['differences'])[:400]}: they "
                   "are judged separately (one row per settings), never pooled or paired across settings")
    return out


def _record_dirs(study: Path, manifest: dict[str, Any] | None, notebook: str) -> list[Path]:
    """Folders holding a notebook's files: its present cells by the manifest, else any folder named after it
    (`<study>/<notebook>/...` from the grid, `<outputs>/notebooks/<notebook>` when run on its own)."""
    if manifest is not None:
        return [study / c["dir"] for c in _cells(manifest, notebook) if c.get("status") in PRESENT and c.get("dir")]
    return sorted(p for p in study.glob(f"**/{notebook}") if p.is_dir() and "runs" not in p.relative_to(study).parts)


def _load_alignment(study: Path, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    records = []
    for folder in _record_dirs(study, manifest, ALIGNMENT_NOTEBOOK):
        for path in sorted(folder.rglob("*.json")):
            if path.name in ("metrics.json", "params.json"):
                continue
            try:
                record = runinfo.read_json(path)
            except ValueError:
                continue
            if isinstance(record, dict) and {"model", "task", "curve", "summary"} <= set(record):
                records.append({**record, "source": str(path.relative_to(study))})
    return records


def _load_contamination(study: Path, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for folder in _record_dirs(study, manifest, CONTAMINATION_NOTEBOOK):
        for path in sorted(folder.rglob("metrics.json")):
            try:
                data = runinfo.read_json(path)
            except ValueError:  # damaged: its cell reruns (cell_state), the report goes on without it
                continue
            rows += [{**row, "source": str(path.relative_to(study))} for row in data.get("cells", [])]
    return rows


# -- drawn from the runs: base alignment, per-seed gains, per-step curves, pass@k, seeds, code --------------------
def cell_alignment(study: Study) -> dict[tuple[str, str], tuple[float, str]]:
    """(model, task) -> (base pass@1, where it came from): the alignment JSONs when measured, else the runs'
    pass@1 before RL (same base model, the RL evaluation's problems)."""
    out: dict[tuple[str, str], tuple[float, str]] = {}
    by_cell: dict[tuple[str, str], list[float]] = {}
    for s in study.summaries:
        value = (s.get("passk_before") or {}).get("pass@1")
        if value is not None:
            by_cell.setdefault((s["model"], _task_of(s)), []).append(value)
    for key, values in by_cell.items():
        out[key] = (float(np.mean(values)), f"pass@1 before RL, mean of {len(values)} run(s)")
    measured: dict[tuple[str, str], list[float]] = {}
    for r in study.alignment:
        measured.setdefault((r["model"], r["task"]), []).append(r["summary"]["pass@1"])
    for key, values in measured.items():
        out[key] = (float(np.mean(values)), f"01_alignment pass@1 ({len(values)} measurement(s))")
    return out


def run_gains(study: Study) -> pd.DataFrame:
    """One row per finished run: model, task, variant, seed, gain (the dots of the forest plot)."""
    rows = [{"model": s["model"], "task": _task_of(s), "variant": s["variant"], "seed": s["seed"], "gain": s["gain"]}
            for s in study.summaries]
    return pd.DataFrame(rows, columns=["model", "task", "variant", "seed", "gain"])


def _run_dir(study: Study, summary: dict[str, Any]) -> Path | None:
    """A run's folder: where summary.json was found (runs.load_summaries records it), else by name in the store."""
    if summary.get("dir") and Path(summary["dir"]).is_dir():
        return Path(summary["dir"])
    return study.runs_dir / summary["run"] if summary.get("run") else None


def step_values(study: Study) -> pd.DataFrame:
    """Per-step values of every finished run, long format (model, task, variant, seed, step, metric, value):
    the STEP_METRICS of metrics.jsonl (rollouts, every step) and `heldout_accuracy` from eval.jsonl (the primary
    evaluation task: before training, every eval_every steps, after)."""
    rows = []
    for s in study.summaries:
        folder = _run_dir(study, s)
        if folder is None:
            continue
        key = {"model": s["model"], "task": _task_of(s), "variant": s["variant"], "seed": s["seed"]}
        for m in runs.load_metrics(folder) if (folder / "metrics.jsonl").exists() else []:
            for metric in STEP_METRICS:
                if m.get(metric) is not None and "step" in m:
                    rows.append({**key, "step": m["step"], "metric": metric, "value": float(m[metric])})
        if (folder / "eval.jsonl").exists():
            for e in runinfo.read_jsonl(folder / "eval.jsonl"):
                if e.get("accuracy") is not None and (e.get("eval_task") or key["task"]) == key["task"]:
                    rows.append({**key, "step": e["step"], "metric": "heldout_accuracy", "value": e["accuracy"]})
    return pd.DataFrame(rows, columns=["model", "task", "variant", "seed", "step", "metric", "value"])


def passk_curves(study: Study) -> pd.DataFrame:
    """pass@k of every finished run on its primary evaluation task before (initial_passk.json) and after RL
    (final_passk.json), long format: model, task, variant, seed, when, k, pass_at_k."""
    rows = []
    for s in study.summaries:
        folder = _run_dir(study, s)
        for when, name in (("before", "initial_passk.json"), ("after", "final_passk.json")):
            if folder is None or not (folder / name).exists():
                continue
            try:
                curve = runinfo.read_json(folder / name)
            except ValueError:  # damaged: a curve missing from the figure, not a failed report
                continue
            for k, value in zip(curve.get("k", []), curve.get("pass_at_k", [])):
                rows.append({"model": s["model"], "task": _task_of(s), "variant": s["variant"], "seed": s["seed"],
                             "when": when, "k": k, "pass_at_k": value})
    return pd.DataFrame(rows, columns=["model", "task", "variant", "seed", "when", "k", "pass_at_k"])


def seed_counts(study: Study) -> list[int]:
    """The distinct numbers of seeds behind the verdicts (one value when every cell has the same)."""
    per_cell: dict[tuple[str, str, str], set] = {}
    for s in study.summaries:
        per_cell.setdefault((s["model"], _task_of(s), s["variant"]), set()).add(s["seed"])
    return sorted({len(v) for v in per_cell.values()})


def study_code_versions(study: Study) -> dict[str, int]:
    """Code version -> number of runs trained by it (from each run's run.json)."""
    out: dict[str, int] = {}
    for s in study.summaries:
        folder = _run_dir(study, s)
        info = runinfo.read_json(folder / "run.json") if folder and (folder / "run.json").exists() else {}
        version = info.get("code_version") or (info.get("environment") or {}).get("code_version") or "unknown"
        out[version] = out.get(version, 0) + 1
    return out
