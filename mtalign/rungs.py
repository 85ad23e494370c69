"""The alignment ladder's rungs (issue 11): which they are, read from params/toyworld.yaml's `ladders:` (the only
reader: rung names are typed nowhere else), and each rung's measurement, pass@k and maj@k from one set of samples.

maj@k, the accuracy of the majority answer among k samples (what majority-vote self-reward trains toward), needs
each sample's answer, which 01_alignment does not keep, so `measure` draws the samples once (the same prompts,
settings and sampler as `mtalign.alignment.measure`, hence the same samples) and keeps both the correct counts and
the answers' votes. mtalign/ladder.py analyses the ladder study built from these rungs.
"""

from __future__ import annotations

import contextlib
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mtalign import alignment, models, passk, runinfo, toyworld
from mtalign.config import default_task

SUMMARIES = ("pass@1", "pass@k_max", "auc_log_k", "maj@k_max")  # a rung's alignment, as the ladder compares them
RECORD_SUFFIX = ".ladder.json"  # a rung's measurement: `<model>__<task>.ladder.json`
MAJ_DRAWS = 200  # random k-subsets per problem for maj@k (k < n); its Monte Carlo error is under 0.01 per task
BOOTSTRAP = 1000


# -- the ladders ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rung:
    world: str
    task: str  # the task family
    dial: str
    recipe: str
    position: int  # 0 = the dial's first (least aligned) recipe; -1 for a held-out rung
    held_out: bool = False  # built on the dial but left out of every ladder fit (`held_out:`), to test predictions

    @property
    def model(self) -> str:
        return f"{self.world}-{self.task}-{self.recipe}"


def ladders(config: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """dial -> its recipes in dial order, as params/toyworld.yaml's `ladders:` declares them."""
    config = config or toyworld.load_config()
    declared = config.get("ladders")
    if not isinstance(declared, dict) or not declared:
        raise ValueError(f"{toyworld.CONFIG_FILE} declares no `ladders:` (dial: [recipe, ...]); the ladder needs it")
    unknown = sorted({r for recipes in declared.values() for r in recipes} - set(config["recipes"]))
    if unknown:
        raise ValueError(f"{toyworld.CONFIG_FILE}: ladder rung(s) {', '.join(unknown)} are not recipes; recipes: "
                         f"{', '.join(config['recipes'])}")
    return {str(dial): list(recipes) for dial, recipes in declared.items()}


def rungs(world: str = "toy", tasks: Sequence[str] | None = None, dials: Sequence[str] | None = None,
          per_dial: int = 0, config: dict[str, Any] | None = None) -> list[Rung]:
    """The rungs of `dials` (default all) on `tasks` (default every task family) in `world`; `per_dial` > 0 keeps
    that many rungs of each dial, spread evenly from its first to its last (a smoke ladder)."""
    config = config or toyworld.load_config()
    declared = ladders(config)
    _check_names(config, world, tasks, dials)
    out = []
    for task in tasks or list(config["tasks"]):
        for dial in dials or list(declared):
            recipes = declared[dial]
            out += [Rung(world, task, dial, recipes[i], i) for i in spread(len(recipes), per_dial)]
    return out


def _check_names(config: dict[str, Any], world: str, tasks: Sequence[str] | None,
                 dials: Sequence[str] | None = None) -> None:
    """An unknown world, task or dial is one error naming the valid ones."""
    for kind, wanted, valid in (("world", [world], config["worlds"]), ("task", tasks or [], config["tasks"]),
                                ("dial", dials or [], ladders(config))):
        bad = [w for w in wanted if w not in valid]
        if bad:
            raise ValueError(f"unknown {kind}(s) {', '.join(map(str, bad))}; valid: {', '.join(valid)}")


def held_out(config: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """dial -> the recipes params/toyworld.yaml's `held_out:` builds on it and keeps out of the ladder."""
    config = config or toyworld.load_config()
    declared, on_ladder = config.get("held_out") or {}, ladders(config)
    if not isinstance(declared, dict):
        raise ValueError(f"{toyworld.CONFIG_FILE}: `held_out:` must map a dial to recipes, got {declared!r}")
    for dial, recipes in declared.items():
        if dial not in on_ladder:
            raise ValueError(f"{toyworld.CONFIG_FILE}: held-out dial {dial!r} is not a ladder; ladders: "
                             f"{', '.join(on_ladder)}")
        bad = [r for r in recipes if r not in config["recipes"] or r in on_ladder[dial]]
        if bad:
            raise ValueError(f"{toyworld.CONFIG_FILE}: held-out rung(s) {', '.join(bad)} of {dial} must be recipes "
                             f"that are not on its ladder ({', '.join(on_ladder[dial])})")
    return {str(dial): list(recipes) for dial, recipes in declared.items()}


def held_out_rungs(world: str = "toy", tasks: Sequence[str] | None = None,
                   config: dict[str, Any] | None = None) -> list[Rung]:
    """The held-out rungs on `tasks` (default every task family) in `world`: the ladder never fits them."""
    config = config or toyworld.load_config()
    _check_names(config, world, tasks)
    return [Rung(world, task, dial, recipe, -1, held_out=True) for task in tasks or list(config["tasks"])
            for dial, recipes in held_out(config).items() for recipe in recipes]


def spread(length: int, count: int) -> list[int]:
    """`count` indices of 0..length-1 spread evenly, both ends included (all of them when count <= 0 or >= length)."""
    if count <= 0 or count >= length:
        return list(range(length))
    if count == 1:
        return [0]
    return sorted({int(round(i * (length - 1) / (count - 1))) for i in range(count)})


def rung_index(config: dict[str, Any] | None = None, held_out: bool = False) -> dict[str, list[Rung]]:
    """model name -> its rungs (a recipe on two dials is a rung of each), over every world and task; with `held_out`,
    the held-out rungs instead of the ladder's."""
    config = config or toyworld.load_config()
    index: dict[str, list[Rung]] = {}
    for world in config["worlds"]:
        for rung in (held_out_rungs if held_out else rungs)(world, config=config):
            index.setdefault(rung.model, []).append(rung)
    return index


# -- measuring a rung: pass@k and maj@k from one set of samples ---------------------------------------------------
def measure(model: str, task: str | None = None, n: int = 64, problems: int = 100, seed: int = 0,
            backend: str = "auto", batch_size: int = 512, max_new_tokens: int | None = None,
            out: Path | str | None = None, progress: bool = False, log=print) -> dict[str, Any]:
    """pass@k and maj@k of `model` on `task` (its own task for a toy model) from n samples per problem.

    The samples are those `mtalign.alignment.measure` draws with the same arguments (same problems, prompts,
    sampling settings, seed and batch size), so the correct counts equal 01_alignment's; beside them the record keeps
    each problem's votes (`record`). Names and the model's availability are checked before any weights are loaded;
    a model that cannot be loaded fails with one line, before any sampling. Writes `<model>__<task>.ladder.json`
    into `out` when given.
    """
    from mtalign.sampling import SamplingParams, make_sampler
    from mtalign.tasks import get_task

    task = task or default_task(model)
    alignment.validate(model, task, n, None)
    if problems < 1:
        raise ValueError(f"problems must be at least 1, got {problems}")
    with loadable(model):
        models.preflight(model, use_vllm=backend == "vllm", vllm_fix="--backend transformers",
                         what=f"sampling {model}")
    task_obj = get_task(task, **alignment._toy_difficulty(model, task))
    items = task_obj.problems(task_obj.eval_split, n=problems, seed=0)  # the fixed evaluation set, as 01's
    with loadable(model):
        loaded = models.load(model, log=log)
    params = SamplingParams(n=n, temperature=1.0, top_p=1.0, seed=seed, batch_size=batch_size,
                            max_new_tokens=max_new_tokens or getattr(task_obj, "max_new_tokens", 1024))
    sampler = make_sampler(loaded, backend)
    samples = sampler.generate([loaded.render(task_obj, p) for p in items], params, progress=progress)
    result = record(model, task_obj, items, [[s.text for s in group] for group in samples], seed)
    result["sampling"] = {"backend": sampler.backend, "temperature": 1.0, "top_p": 1.0, "batch_size": batch_size,
                          "max_new_tokens": params.max_new_tokens, "prompt_style": loaded.style}
    result.update(model_path=loaded.path, finished=runinfo.now(), **runinfo.environment())
    if out is not None:
        write_record(result, Path(out))
    return result


@contextlib.contextmanager
def loadable(model: str):
    """Any failure to check or load `model` as one line (the CLI prints it without a traceback)."""
    try:
        yield
    except (ValueError, FileNotFoundError, ModuleNotFoundError):
        raise
    except Exception as err:  # a damaged checkpoint, a config transformers cannot read, ...
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise ValueError(f"cannot load model {model!r}: {type(err).__name__}: {first}") from None


def record(model: str, task, items: Sequence, completions: Sequence[Sequence[str]], seed: int = 0) -> dict[str, Any]:
    """A rung's record from its completions (one list of n texts per problem): what pass@k reads (`correct`: samples
    formatted and correct, as 01_alignment counts them) and what maj@k reads (`votes`: per problem, each distinct
    answer in the task's canonical form with its count and whether the verifier accepts it, and `unvoted`, the
    samples with no parseable answer). Votes have no format gate, as in majority-vote self-reward (TTRL)."""
    from mtalign.rewards import Rollouts

    n = len(completions[0])
    if any(len(group) != n for group in completions):
        raise ValueError("every problem needs the same number of completions")
    rollouts = Rollouts([c for group in completions for c in group], [p for p in items for _ in range(n)], task, n)
    correct, votes, unvoted = [], [], []
    for g in range(len(items)):
        scores = rollouts.scores[g * n:(g + 1) * n]
        answers = rollouts.canonical_answers[g * n:(g + 1) * n]
        correct.append(int(sum(s.reward for s in scores)))
        tally: dict[str, list] = {}
        for answer, score in zip(answers, scores):
            if answer is not None:
                entry = tally.setdefault(answer, [answer, 0, False])
                entry[1] += 1
                entry[2] = entry[2] or bool(score.correct)
        votes.append(sorted(tally.values(), key=lambda e: (-e[1], e[0])))
        unvoted.append(n - sum(e[1] for e in tally.values()))
    ks = passk.default_ks(n)
    maj = majority_table(votes, unvoted, n, ks, seed=seed)
    curve = passk.curve(n, correct, ks, seed=seed)
    return {"model": model, "task": task.name, "split": task.eval_split, "n": n, "k": ks, "seed": seed,
            "problem_ids": [p.id for p in items], "correct": correct, "votes": votes, "unvoted": unvoted,
            "curve": curve, "maj_curve": {"k": ks, "maj_at_k": maj.mean(axis=0).tolist()},
            "summary": {**passk.summaries(curve), f"maj@{n}": float(maj[:, -1].mean())}}


def write_record(result: dict[str, Any], out: Path) -> Path:
    return runinfo.write_json(out / f"{alignment.cell_name(result['model'], result['task'])}{RECORD_SUFFIX}", result)


def majority_table(votes: Sequence[Sequence[Sequence]], unvoted: Sequence[int], n: int, ks: Sequence[int],
                   draws: int = MAJ_DRAWS, seed: int = 0) -> np.ndarray:
    """Matrix [problem, k] of maj@k: the chance that the most frequent answer among k of the n samples, drawn
    without replacement, is correct. Ties go to one of the tied answers at random; samples without a parseable
    answer do not vote, and k samples with no vote at all count as wrong. Exact for k = n up to ties; otherwise the
    mean over `draws` random subsets (seeded)."""
    rng = np.random.default_rng(seed)
    table = np.zeros((len(votes), len(ks)))
    for p, (answers, missing) in enumerate(zip(votes, unvoted)):
        if not answers:
            continue
        labels = np.repeat(np.arange(len(answers) + 1), [a[1] for a in answers] + [missing])  # last label: no vote
        if len(labels) != n:
            raise ValueError(f"problem {p}: {len(labels)} votes and blanks for n = {n} samples")
        right = np.array([bool(a[2]) for a in answers] + [False])
        for j, k in enumerate(ks):
            picks = labels[np.argsort(rng.random((draws if k < n else 1, n)), axis=1)[:, :k]]
            counts = (picks[:, :, None] == np.arange(len(answers))).sum(axis=1)  # [draw, answer]; blanks left out
            # random tie-break: a jitter below 1 reorders only equal counts
            winner = np.argmax(counts + rng.random(counts.shape) * 0.5, axis=1)
            voted = counts.max(axis=1) > 0
            if k == n:  # exact over the tie-break: the share of tied maxima that are correct
                top = counts[0] == counts[0].max()
                table[p, j] = float(right[:-1][top].mean()) if voted[0] else 0.0
            else:
                table[p, j] = float((right[winner] & voted).mean())
    return table


def per_problem_summaries(result: dict[str, Any], k_max: int | None = None) -> np.ndarray:
    """Matrix [problem, SUMMARIES] of one record at k_max (default its n): every summary is a mean over problems of
    these per-problem values, so one bootstrap over problems gives all their intervals. maj@k_max is NaN for a
    record without votes (01_alignment's)."""
    n = int(result["n"])
    k = int(k_max or n)
    if not 1 <= k <= n:
        raise ValueError(f"k_max {k} needs 1 <= k_max <= n = {n} samples per problem ({result['model']})")
    ks = passk.default_ks(k)
    table = passk.per_problem(n, result["correct"], ks)
    auc = [passk.summaries({"k": ks, "pass_at_k": row})["auc_log_k"] for row in table]
    if result.get("votes") is not None:
        maj = majority_table(result["votes"], result["unvoted"], n, [k], seed=int(result.get("seed", 0)))[:, 0]
    else:
        maj = np.full(len(table), math.nan)
    return np.column_stack([table[:, 0], table[:, -1], auc, maj])


def summarize(result: dict[str, Any], k_max: int | None = None, n_boot: int = BOOTSTRAP,
              seed: int = 0) -> dict[str, float]:
    """SUMMARIES of one record at k_max, each with a 95% percentile-bootstrap interval over problems (`<name>_low`,
    `<name>_high`)."""
    table = per_problem_summaries(result, k_max)
    rng = np.random.default_rng(seed)
    boot = table[rng.integers(0, len(table), size=(n_boot, len(table)))].mean(axis=1)  # [resample, summary]
    out: dict[str, float] = {"k_max": int(k_max or result["n"])}
    for i, name in enumerate(SUMMARIES):
        low, high = np.percentile(boot[:, i], [2.5, 97.5]) if np.isfinite(table[:, i]).all() else (math.nan,) * 2
        out.update({name: float(table[:, i].mean()), f"{name}_low": float(low), f"{name}_high": float(high)})
    return out


def measure_rungs(ladder_rungs: Sequence[Rung], out: Path | str, n: int = 64, problems: int = 100, seed: int = 0,
                  workers: int = 1, log=print) -> list[dict[str, Any]]:
    """`measure` on every rung into `out`, reusing a rung's record there when it was measured with the same n,
    problems and seed; `workers` processes (one thread each) at a time."""
    out = Path(out)
    results, todo = {}, []
    for rung in ladder_rungs:
        path = out / f"{alignment.cell_name(rung.model, rung.task)}{RECORD_SUFFIX}"
        found = _readable(path)
        if found and (found["n"], len(found["problem_ids"]), found["seed"]) == (n, problems, seed):
            results[rung.model] = found
        else:
            todo.append(dict(model=rung.model, task=rung.task, n=n, problems=problems, seed=seed, out=out))
    if todo:
        log(f"measuring pass@k and maj@k of {len(todo)} rung(s) ({n} samples x {problems} problems each)")
        with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
            for result in pool.map(_measure_quietly, todo):
                results[result["model"]] = result
    return [results[r.model] for r in ladder_rungs]


def _measure_quietly(kwargs: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return measure(**kwargs, log=lambda message: None)


def _readable(path: Path) -> dict[str, Any] | None:
    try:
        return runinfo.read_json(path) if path.exists() else None
    except ValueError:
        return None


def load_records(folder: Path | str) -> list[dict[str, Any]]:
    """Every rung record (`*.ladder.json`) under `folder`."""
    found = [_readable(p) for p in sorted(Path(folder).rglob(f"*{RECORD_SUFFIX}"))] if Path(folder).is_dir() else []
    return [r for r in found if isinstance(r, dict)]
