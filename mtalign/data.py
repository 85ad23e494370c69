"""What a run trains on: the training and held-out problems of a preset, one_shot's ranking step and example
selection (1-shot RLVR's historical variance), the TRL dataset rows, and incorrect/source's wrong labels."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mtalign import runinfo
from mtalign.config import Run, Settings, Variant
from mtalign.sampling import SamplingParams, TransformersSampler
from mtalign.tasks import Problem, Task


class NothingToTrain(ValueError):
    """A variant that this base model gives no data to train on (incorrect/source where its majority answer is never
    wrong): the run cannot exist, and a claim notebook says so instead of failing its other variants."""


def training_pool(task, settings: Settings) -> list:
    """The training problems every variant of a preset draws from (fixed data seed 0; the run seed orders them).

    Drawn from the task's own training split (`train` for the toy tasks, e.g. `train` for DeepScaleR).
    """
    if task.train_split is None:
        raise ValueError(f"task {task.name!r} has no training split; it cannot be trained on")
    return task.problems(task.train_split, n=settings.train_problems, seed=0)


def heldout_problems(task, settings: Settings) -> list:
    """The held-out problems of an evaluation task: its own evaluation split (`eval` for the toy tasks, `test` for
    MATH-500, `train` for AIME 2024, `validation` for SynLogic), the same fixed subset for every run (seed 0)."""
    if task.eval_split is None:
        raise ValueError(f"task {task.name!r} has no evaluation split; it cannot be an evaluation task")
    return task.problems(task.eval_split, n=settings.eval_problems, seed=0)


def ranking_pool(task, settings: Settings) -> list:
    """The examples one_shot/few_shot choose from: the first `ranking_problems` of the training split (fixed data seed
    0), the very pool the ranking run trains on (1-shot RLVR ranked DeepScaleR's 1,209-problem subset DSR-sub)."""
    if task.train_split is None:
        raise ValueError(f"task {task.name!r} has no training split; it cannot be trained on")
    return task.problems(task.train_split, n=settings.ranking_problems, seed=0)


def ranking_overrides(settings: Settings) -> dict[str, int]:
    """One_shot's ranking step, its own run: ground-truth RL on `ranking_pool` for `ranking_epochs` complete epochs
    (an epoch is ranking_problems // prompts_per_step steps: TRL's sampler drops a partial last batch), with every
    other setting of the preset. Its `example_accuracy.jsonl` is the history `historical_variance` scores. A preset
    whose own run already is that run (toy: 96 problems, 5 epochs in 30 steps) needs no separate one; on the paper
    preset the 300-step full-data run sees under one epoch of DeepScaleR, so ranking must be a run of its own.
    Returns the settings overrides of the ranking run (empty when they change nothing)."""
    per_epoch = settings.ranking_problems // settings.prompts_per_step
    wanted = {"train_problems": settings.ranking_problems, "steps": settings.ranking_epochs * per_epoch}
    return {} if all(getattr(settings, k) == v for k, v in wanted.items()) else wanted


def historical_variance(log_path: Path) -> dict[str, float]:
    """1-shot RLVR's historical variance score: per example, the variance of its training accuracy across epochs.

    Only complete epochs count; an example needs at least two of them.
    """
    per_example: dict[str, list[float]] = {}
    for record in runinfo.read_jsonl(log_path):
        if record.get("complete"):
            per_example.setdefault(record["problem_id"], []).append(float(record["accuracy"]))
    scores = {pid: float(np.var(acc)) for pid, acc in per_example.items() if len(acc) >= 2}
    if not scores:
        raise ValueError(f"accuracy log {log_path} has no example with two complete epochs: rank with the ranking "
                         "run (`ranking_overrides`; mtalign.runs.ensure_ranking_run), which makes ranking_epochs "
                         "complete passes over ranking_problems problems")
    return scores


def select_examples(pool: list, variant: Variant, accuracy_log: Path | None, seed: int) -> list:
    """The examples a one_shot/few_shot variant trains on: top historical variance, or random (seeded by the run)."""
    k = 1 if variant.data["kind"] == "one_shot" else variant.data["k"]
    if k > len(pool):
        raise ValueError(f"variant {variant.name!r} needs {k} examples but the training pool has {len(pool)}")
    if variant.data.get("selection", "variance") == "random":
        picks = np.random.default_rng([seed, 0x1507]).choice(len(pool), size=k, replace=False)
        return [pool[int(i)] for i in sorted(picks)]
    scores = historical_variance(accuracy_log)
    by_id = {p.id: p for p in pool}
    ranked = sorted((pid for pid in scores if pid in by_id), key=lambda pid: (-scores[pid], pid))
    if len(ranked) < k:
        raise ValueError(f"accuracy log {accuracy_log} scores {len(ranked)} examples of this run's training pool, "
                         f"need {k}: was it written by a run on the same task and preset?")
    return [by_id[pid] for pid in ranked[:k]]


def dataset_rows(problems: list, loaded, task, settings: Settings, fill_to: int) -> list[dict[str, Any]]:
    """TRL dataset rows: the prompt (a conversation for chat models, text otherwise) and the problem id.

    One- and few-shot data repeat their examples until a step's batch is full (1-shot RLVR replicates the example).
    """
    rows = [{"prompt": task.prompt(p, loaded.style), "problem_id": p.id} for p in problems]
    if settings.max_prompt_length:
        kept = [r for r, p in zip(rows, problems)
                if len(loaded.tokenizer(loaded.render(task, p), add_special_tokens=False).input_ids)
                <= settings.max_prompt_length]
        if not kept:
            raise ValueError(f"every training prompt is longer than max_prompt_length={settings.max_prompt_length}")
        rows = kept
    while len(rows) < fill_to:
        rows = rows + rows[:fill_to - len(rows)]
    return rows




def find_wrong_labels(run: Run, loaded, task, examples: list, log):
    """incorrect/source: the base model's majority answer per training problem, kept only where it is wrong.

    Spurious Rewards (64 samples) trained only on problems whose majority label is wrong; the others are dropped.
    """
    import torch  # heavy: imported where a model runs, so reading a run's data stays light

    s = run.settings
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded.model.to(device)
    params = SamplingParams(n=s.wrong_label_samples, temperature=s.temperature, top_p=s.top_p, seed=run.seed,
                            max_new_tokens=s.completion_budget(task), batch_size=s.sampling_batch_size)
    started = time.time()
    samples = TransformersSampler(loaded.model, loaded.tokenizer).generate(
        [loaded.render(task, p) for p in examples], params)
    labels = wrong_labels_from_samples(task, examples, [[x.text for x in group] for group in samples])
    kept = [p for p in examples if p.id in labels]
    runinfo.write_json(run.out / "wrong_labels.json", {"samples": s.wrong_label_samples, "labels": labels,
                                                       "problems": len(examples), "kept": len(kept)})
    log(f"wrong labels: the base model's majority answer is wrong on {len(kept)} of {len(examples)} training "
        f"problems ({s.wrong_label_samples} samples each, {time.time() - started:.1f}s); training on those")
    if not kept:
        raise NothingToTrain(f"incorrect/source has no problem to train on: on none of the {len(examples)} training "
                         "problems is the base model's majority answer wrong (it is right, or no sample has a "
                         "parseable answer)")
    return labels, kept


def wrong_labels_from_samples(task: Task, problems: Sequence[Problem],
                              samples: Sequence[Sequence[str]]) -> dict[str, str]:
    """Spurious Rewards' incorrect labels: per problem, the base model's majority answer, kept only where it is wrong.

    Answers are compared in canonical form (unparseable ones do not vote); ties go to the answer seen first; a
    problem whose majority answer the verifier accepts, or with no parseable answer, gets no label.
    """
    labels = {}
    for problem, texts in zip(problems, samples):
        counts: dict[str, int] = {}
        for text in texts:
            answer = task.score(text, problem).answer
            canonical = task.canonical(answer) if answer is not None else None
            if canonical is not None:
                counts[canonical] = counts.get(canonical, 0) + 1
        if not counts:
            continue
        majority = max(counts, key=lambda a: counts[a])  # max keeps the first-seen answer among ties
        if not task.check(majority, problem):
            labels[problem.id] = majority
    return labels
