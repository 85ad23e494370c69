"""The run store: RL runs cached by name in one folder per grid, reused by every notebook that needs them.

Three claims compare against the same ground-truth baseline; `ensure_run` trains it once (under a file lock, so
two notebooks running in parallel do not train it twice) and every later call reads its `summary.json`.
The report reads runs through `load_summaries` and `load_metrics`, which see only these files.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Any

from mtalign import paths, runinfo


def default_runs_dir() -> Path:
    return paths.outputs() / "runs"


def run_dir(runs_dir: Path | str, model: str, task: str, variant: str, seed: int, preset: str = "toy",
            steps: int | None = None) -> Path:
    """`<runs_dir>/<preset>/<model>__<task>__<variant>__s<seed>`: runs of different settings never mix.

    A run with its steps overridden lives under `<preset>-<steps>steps`, so a short trial is never mistaken for
    the preset's run.
    """
    from mtalign.train import run_name

    settings = preset if not steps else f"{preset}-{steps}steps"
    return Path(runs_dir) / settings / run_name(model, task, variant, seed)


def is_finished(directory: Path) -> bool:
    return (directory / "summary.json").exists()


@contextlib.contextmanager
def _lock(directory: Path):
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / f".{directory.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_run(runs_dir: Path | str | None, model: str, task: str | None, variant: str, seed: int,
               log=print, **train_kwargs: Any) -> dict[str, Any]:
    """The summary of run (model, task, variant, seed), training it first unless it already finished."""
    from mtalign import alignment, train

    task = task or alignment.default_task(model)
    preset, steps = train_kwargs.get("preset") or "toy", train_kwargs.get("steps")
    directory = run_dir(runs_dir or default_runs_dir(), model, task, variant, seed, preset, steps)
    with _lock(directory):
        if is_finished(directory):
            return {**runinfo.read_json(directory / "summary.json"), "dir": str(directory)}
        summary = train.train(model=model, task=task, variant=variant, seed=seed, out=directory, overwrite=True,
                              log=log, **{"initial_eval_cache": Path(runs_dir or default_runs_dir()) / ".initial_eval",
                                          **train_kwargs})
        return {**summary, "dir": str(directory)}


def load_summaries(runs_dir: Path | str) -> list[dict[str, Any]]:
    """Every finished run's summary under `runs_dir`, with its folder as `dir` (unfinished runs are absent)."""
    return [{**runinfo.read_json(p), "dir": str(p.parent)} for p in sorted(Path(runs_dir).rglob("summary.json"))]


def load_metrics(directory: Path | str) -> list[dict[str, Any]]:
    """Per-step metrics of one run (readable even while it runs or after it was interrupted)."""
    path = Path(directory) / "metrics.jsonl"
    return runinfo.read_jsonl(path) if path.exists() else []
