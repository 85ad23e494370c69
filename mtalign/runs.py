"""The run store: RL runs cached by name in one folder per grid, reused by every notebook that needs them.

Three claims compare against the same ground-truth baseline; `ensure_run` trains it once (under a file lock, so
two notebooks running in parallel do not train it twice) and every later call reads its `summary.json`.
The report reads runs through `load_summaries` and `load_metrics`, which see only these files.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from pathlib import Path
from typing import Any

from mtalign import paths, runinfo

BASELINE_VARIANT = "ground_truth"  # = verdicts.BASELINE (not imported: verdicts is analysis, this is the store)


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


def is_finished(directory: Path, identity_hash: str | None = None) -> bool:
    """A finished run is there; with `identity_hash`, one whose resolved parameters are exactly those (a run recorded
    before identities existed has none, so it never matches)."""
    if not (directory / "summary.json").exists():
        return False
    try:
        summary = runinfo.read_json(directory / "summary.json")
    except ValueError as err:  # truncated or not UTF-8: not finished, so it is trained again
        _warn(f"{err}; the run counts as not finished")
        return False
    return identity_hash is None or summary.get("identity_hash") == identity_hash


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


_held: dict[Path, int] = {}  # run-folder locks this process holds (ensure_run holds one while train takes it again)


@contextlib.contextmanager
def run_lock(directory: Path | str, wait: bool = True):
    """One writer per run folder: an exclusive lock on `<parent>/.<name>.lock` while a run is written there.

    `wait`: block until the other writer is done (the run store: a second notebook then reads the finished run);
    else stop at once with a message naming the folder (`mtalign train`: two runs writing one folder would mix their
    files). Re-entrant within a process, so `ensure_run` can hold it around `train`, which takes it too.
    """
    directory = Path(directory).resolve()
    if _held.get(directory):
        _held[directory] += 1
        try:
            yield
        finally:
            _held[directory] -= 1
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_file = directory.parent / f".{directory.name}.lock"
    with open(lock_file, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ValueError(f"another process is writing a run in {directory} (it holds {lock_file}); wait for it "
                             "to finish or choose another --out") from None
        _held[directory] = 1
        try:
            yield
        finally:
            _held.pop(directory, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


_lock = run_lock


def ensure_run(runs_dir: Path | str | None, model: str, task: str | None, variant: str, seed: int,
               log=print, **train_kwargs: Any) -> dict[str, Any]:
    """The summary of run (model, task, variant, seed), training it first unless it already finished with exactly
    the same resolved parameters (`train.run_identity`: settings, variant definition with semantics, model build,
    tasks, per-task arguments, evaluation tasks, strict regex). A finished run there with other parameters is
    replaced, and the log names what differed."""
    from mtalign import alignment, train

    task = task or alignment.default_task(model)
    preset, steps = train_kwargs.get("preset") or "toy", train_kwargs.get("steps")
    stage = f"{preset}-ranking" if train_kwargs.get("role") == "ranking" else preset
    directory = run_dir(runs_dir or default_runs_dir(), model, task, variant, seed, stage, steps)
    wanted = train.planned_identity(model=model, task=task, variant=variant, seed=seed, **train_kwargs)
    with _lock(directory):
        if is_finished(directory, wanted["identity_hash"]):
            return {**runinfo.read_json(directory / "summary.json"), "dir": str(directory)}
        if is_finished(directory):
            try:
                old = runinfo.read_json(directory / "summary.json").get("identity") or {}
            except ValueError:
                old = {}
            changed = train.identity_differences(old, wanted["identity"]) if old else ["recorded before run identities"]
            log(f"{directory}: its finished run has other parameters ({'; '.join(changed)[:500]}); training anew")
        summary = train.train(model=model, task=task, variant=variant, seed=seed, out=directory, overwrite=True,
                              log=log, **{"initial_eval_cache": Path(runs_dir or default_runs_dir()) / ".initial_eval",
                                          **train_kwargs})
        return {**summary, "dir": str(directory)}


def ensure_ranking_run(runs_dir: Path | str | None, model: str, task: str | None, seed: int, log=print,
                       **train_kwargs: Any) -> dict[str, Any]:
    """One_shot's ranking step (`train.ranking_overrides`): a ground-truth run on the ranking pool for the preset's
    ranking_epochs, whose `example_accuracy.jsonl` ranks the examples. When the preset's own ground-truth run is that
    run (the toy preset), it is that run; else it lives under `<preset>-ranking/` with role `ranking`, which the
    report never judges."""
    from mtalign import train

    resolvable = {k: v for k, v in train_kwargs.items() if k in train.RUN_KEYS}
    run = train.resolve(model=model, task=task, variant=BASELINE_VARIANT, seed=seed, **resolvable)
    overrides = train.ranking_overrides(run.settings)
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
            (warn or _warn)(f"{err}; left out as not finished")
            continue
        if isinstance(summary, dict):
            summaries.append({**summary, "dir": str(path.parent)})
    return summaries


def load_metrics(directory: Path | str) -> list[dict[str, Any]]:
    """Per-step metrics of one run (readable even while it runs or after it was interrupted)."""
    path = Path(directory) / "metrics.jsonl"
    return runinfo.read_jsonl(path) if path.exists() else []
