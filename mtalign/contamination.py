"""Is a (model, task) cell contaminated? The paper's partial-prompt test, two probes that fit short templated
problems, the flag rule, and the Red/Green/Gray colouring, validated against the toy world's known recipes.

Every probe scores each problem in [0, 1] on the evaluation problems ("seen": the toy world's contaminated recipe
repeats them in pretraining) and on as many fresh problems of the same split and difficulty, which no model saw; a
contaminated model scores higher on the first set. The paper reads contamination off absolute scores; where fresh
problems of the same distribution exist we compare against them instead, which needs no threshold on the score.

- `partial_prompt` (the paper, STUDY.md §5): show the first part of the problem, score the greedy continuation
  against the rest with ROUGE-L (exact match reported too). Needs problems whose first part pins down the rest.
- `accuracy` (Wu et al. 2025's clean-benchmark comparison): the task's reward on seen versus fresh problems.
- `answer_recall`: the problem, the study's format with the work removed (or cut short), and the answer tag
  opened; a model that memorised answers writes them without the work more often on seen problems.

Colours (the paper's): Red = possibly contaminated; Green = clean and strongly aligned; Gray = clean and weakly
aligned; and "cannot tell" when no probe flags and none could have ruled contamination out.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mtalign.tasks import Problem, Task, get_task


def rouge_l(candidate: Sequence, reference: Sequence) -> float:
    """ROUGE-L F1: the longest common subsequence of two token sequences, as an F-measure (Lin, 2004)."""
    if not candidate or not reference:
        return 0.0
    previous = [0] * (len(reference) + 1)
    for a in candidate:
        current = [0]
        for j, b in enumerate(reference):
            current.append(previous[j] + 1 if a == b else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(candidate), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def problem_text(task: Task, problem: Problem, style: str) -> str:
    """The text whose prefix is shown: what a toy model was pretrained on, else the problem statement itself."""
    return task.prompt(problem, "compact") if style == "compact" else problem.question


def split_text(text: str, fraction: float) -> tuple[str, str]:
    """Prefix with `fraction` of the characters (at least one on each side), and the rest."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
    cut = min(max(1, round(len(text) * fraction)), len(text) - 1)
    return text[:cut], text[cut:]


def tokens(text: str, unit: str) -> list[str]:
    return list(text) if unit == "char" else text.split()


def partial_prompt_scores(loaded, task: Task, problems: list[Problem], fraction: float = 0.6,
                          unit: str | None = None, batch_size: int = 256) -> dict[str, list[float]]:
    """Greedy continuation of each problem's prefix, scored against the true rest: exact match and ROUGE-L."""
    from mtalign.sampling import SamplingParams, TransformersSampler

    unit = unit or ("char" if loaded.style == "compact" else "word")
    pairs = [split_text(problem_text(task, p, loaded.style), fraction) for p in problems]
    sampler = TransformersSampler(loaded.model, loaded.tokenizer)
    longest = max(len(loaded.tokenizer(rest, add_special_tokens=False).input_ids) for _, rest in pairs)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=longest + 2, batch_size=batch_size)
    outputs = sampler.generate([prefix for prefix, _ in pairs], params)
    exact, rouge, continuations = [], [], []
    for (_, rest), (sample,) in zip(pairs, outputs):
        continuation = sample.text[:len(rest)]
        continuations.append(continuation)
        exact.append(float(continuation == rest))
        rouge.append(rouge_l(tokens(continuation, unit), tokens(rest, unit)))
    return {"exact": exact, "rouge_l": rouge, "prefix": [p for p, _ in pairs], "rest": [r for _, r in pairs],
            "continuation": continuations}


def bootstrap_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                         confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile bootstrap interval (independent samples)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    boots = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1) - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return float(a.mean() - b.mean()), float(low), float(high)


# -- the probes: each scores every problem in [0, 1], on seen and on fresh problems alike ----------------------
# The partial-prompt test needs problems long and varied enough that their first part pins down the rest. Short
# templated problems (chain_sum: `^5+8+0+7-3=`, 9 characters) fail that: the rest is a few characters the prefix does
# not determine. Two probes fit such problems (Wu et al. 2025's clean-benchmark comparison, and answer recall).
PROBES = ("partial_prompt", "accuracy", "answer_recall")
PROBE_SCORES = {"partial_prompt": "ROUGE-L of the greedy continuation of the problem's first part",
                "accuracy": "share of sampled completions that are correct (the task's own reward)",
                "answer_recall": "greedy answer correct when the answer tag follows the problem with the work cut"}

# The flag rule, fixed before the validation was run (issue 14) and never tuned on it: per cell, a family-wise
# one-sided alpha of 0.05 split evenly over the probes (Bonferroni), and 0.10 as the smallest effect (seen minus
# fresh score) worth detecting. Below it a probe that does not flag says "clear" only if it rules that effect out.
ALPHA = 0.05
MIN_EFFECT = 0.10
POWER = 0.8  # for the stated minimum detectable effect only; decisions use the intervals


def difficulty(task: Task, problem: Problem) -> int:
    """Steps of the worked solution (chain_sum: terms - 1; mini_sudoku: empty cells): what matches fresh problems
    to seen ones in difficulty."""
    return len(task.scratchpad(problem))


def seen_and_fresh(task: Task, eval_set_size: int, problems: int | None = None,
                   max_draws: int = 100_000) -> tuple[list[Problem], list[Problem]]:
    """The first `problems` of the evaluation set (the toy world's contaminated recipe trains on its first
    `eval_set_size`), and as many fresh problems from the same split after it, matched one to one in difficulty."""
    problems = problems or eval_set_size
    if not 1 <= problems <= eval_set_size:
        raise ValueError(f"problems must be between 1 and the evaluation set's size {eval_set_size}, got {problems}")
    stream = task.stream("eval", seed=0)
    evaluation = [next(stream) for _ in range(eval_set_size)]  # same problems as task.problems("eval", n=...)
    seen = evaluation[:problems]
    wanted: dict[int, list[int]] = {}
    for i, problem in enumerate(seen):
        wanted.setdefault(difficulty(task, problem), []).append(i)
    fresh: list[Problem | None] = [None] * problems
    for _, candidate in zip(range(max_draws), stream):
        slots = wanted.get(difficulty(task, candidate))
        if slots:
            fresh[slots.pop(0)] = candidate
            if all(f is not None for f in fresh):
                return seen, fresh
    missing = sorted(k for k, slots in wanted.items() if slots)
    raise ValueError(f"no fresh {task.name} problems of difficulty {missing} in {max_draws} draws after the "
                     f"evaluation set: the generator's settings cannot match the seen problems")


def accuracy_scores(loaded, task: Task, problems: list[Problem], n: int = 8, seed: int = 0,
                    temperature: float = 1.0, batch_size: int = 512) -> list[float]:
    """Per problem, the share of `n` sampled completions the task grades correct (pass@1's estimate per problem)."""
    from mtalign.sampling import SamplingParams, TransformersSampler

    params = SamplingParams(n=n, temperature=temperature, seed=seed, batch_size=batch_size,
                            max_new_tokens=getattr(task, "max_new_tokens", 128))
    outputs = TransformersSampler(loaded.model, loaded.tokenizer).generate(
        [loaded.render(task, p) for p in problems], params)
    return [sum(task.score(s.text, p).reward for s in group) / n for p, group in zip(problems, outputs)]


def recall_prompt(task: Task, problem: Problem, rendered: str, keep: float = 0.0) -> str:
    """The problem, then the study's format with the work cut to its first `keep` share of steps (0: removed)
    and the answer tag opened: what is left for the model to write is the answer alone."""
    if not 0 <= keep < 1:
        raise ValueError(f"keep (share of the work shown) must be in [0, 1), got {keep}")
    steps = task.scratchpad(problem)
    return rendered + "<think>" + ",".join(steps[:int(len(steps) * keep)]) + "</think><answer>"


def answer_recall_scores(loaded, task: Task, problems: list[Problem], keep: float = 0.0,
                         batch_size: int = 512) -> list[float]:
    """1 where the greedy answer after `recall_prompt` is correct: a model that memorised a problem's answer can
    write it without the work; one that computes it cannot."""
    from mtalign.sampling import SamplingParams, TransformersSampler

    prompts = [recall_prompt(task, p, loaded.render(task, p), keep) for p in problems]
    params = SamplingParams(n=1, temperature=0.0, batch_size=batch_size,
                            max_new_tokens=getattr(task, "max_new_tokens", 128))
    outputs = TransformersSampler(loaded.model, loaded.tokenizer).generate(prompts, params)
    return [float(_checks(task, sample.text.split("</answer>")[0].strip(), p)) for p, (sample,) in
            zip(problems, outputs)]


def text_logprobs(loaded, texts: Sequence[str]) -> list[float]:
    """Log-likelihood (nats) of each text under the model, every token after the first: a membership signal that
    decides nothing here (the rule was fixed on the three probes) but tells whether a model kept any trace of texts
    it saw, which greedy decoding may not show."""
    import torch

    device = next(loaded.model.parameters()).device
    out = []
    for text in texts:
        ids = loaded.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            logits = loaded.model(ids).logits[0, :-1].float()
        out.append(float(logits.log_softmax(-1).gather(-1, ids[0, 1:, None]).sum()))
    return out


def _checks(task: Task, answer: str, problem: Problem) -> bool:
    try:
        return bool(task.check(answer, problem))
    except Exception:  # a verifier that raises on junk is a wrong answer
        return False


# -- deciding ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeResult:
    probe: str
    seen: float  # mean score on seen problems
    fresh: float  # ...and on fresh ones
    diff: float  # seen - fresh
    low: float  # one-sided (1 - alpha) lower bound of the difference
    high: float  # one-sided (1 - alpha) upper bound
    alpha: float  # per-probe alpha
    mde: float  # smallest effect the test detects with probability POWER, for this many problems (inf: none)
    outcome: str  # "flag", "clear" or "cannot tell"


def min_problems(alpha: float = ALPHA / len(PROBES), effect: float = MIN_EFFECT) -> int:
    """Fewest seen problems that could ever rule out `effect`: with none of n scoring, a one-sided exact binomial
    bound excludes a rate of `effect` only when (1 - effect)^n <= alpha."""
    return math.ceil(math.log(alpha) / math.log(1 - effect))


def minimum_detectable_effect(fresh: Sequence[float], n_seen: int, alpha: float = ALPHA / len(PROBES),
                              power: float = POWER) -> float:
    """Smallest d with (z_{1-alpha} + z_power) * sqrt(var_fresh / n_fresh + v(m + d) / n_seen) <= d, where m is
    the fresh mean and v(mu) = mu (1 - mu) is the largest variance a [0, 1] score of mean mu can have (exact for 0/1
    scores, an upper bound for ROUGE-L or sample shares). inf when no effect up to the ceiling 1 - m qualifies."""
    fresh = np.asarray(fresh, float)
    m, var = float(fresh.mean()), float(fresh.var(ddof=1)) if len(fresh) > 1 else 0.0
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    for d in np.linspace(0.001, 1 - m, 1000) if m < 1 else []:
        mu = m + d
        if z * math.sqrt(var / len(fresh) + mu * (1 - mu) / n_seen) <= d:
            return float(d)
    return math.inf


def compare(probe: str, seen: Sequence[float], fresh: Sequence[float], alpha: float = ALPHA / len(PROBES),
            min_effect: float = MIN_EFFECT, n_boot: int = 4000, seed: int = 0) -> ProbeResult:
    """One probe's call: "flag" when the one-sided lower bound of seen - fresh is above 0 (a one-sided test at
    `alpha`); "clear" when the upper bound is below `min_effect` and there are enough problems to ever say so
    (`min_problems`); else "cannot tell". Bounds: percentile bootstrap over problems (independent samples)."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; valid probes: {', '.join(PROBES)}")
    if not len(seen) or not len(fresh):
        raise ValueError(f"probe {probe}: needs scores on seen and fresh problems, got {len(seen)} and {len(fresh)}")
    diff, low, high = bootstrap_difference(seen, fresh, n_boot=n_boot, seed=seed, confidence=1 - 2 * alpha)
    if low > 0:
        outcome = "flag"
    elif high < min_effect and len(seen) >= min_problems(alpha, min_effect):
        outcome = "clear"
    else:
        outcome = "cannot tell"
    return ProbeResult(probe, float(np.mean(seen)), float(np.mean(fresh)), diff, low, high, alpha,
                       minimum_detectable_effect(fresh, len(seen), alpha), outcome)


@dataclass(frozen=True)
class CellVerdict:
    colour: str  # Red (contaminated), Green (clean, strong), Gray (clean, weak) or "cannot tell"
    contaminated: bool | None  # None: cannot tell
    strong: bool
    decided_by: list[str]  # the probes whose outcome decided the colour
    evidence: str


def verdict(results: Sequence[ProbeResult], pass_at_1: float, strong_threshold: float = 0.2) -> CellVerdict:
    """Red when any probe flags (named); clean (Green or Gray by pass@1) when none flags and at least one rules
    out the minimum effect; otherwise "cannot tell", never Green by default."""
    flagged = [r.probe for r in results if r.outcome == "flag"]
    cleared = [r.probe for r in results if r.outcome == "clear"]
    strong = pass_at_1 >= strong_threshold
    evidence = "; ".join(f"{r.probe} {r.outcome}: seen - fresh {r.diff:+.3f} [{r.low:+.3f}, {r.high:+.3f}]"
                         for r in results) + f"; pass@1 {pass_at_1:.3f} vs {strong_threshold}"
    if flagged:
        return CellVerdict("Red", True, strong, flagged, evidence)
    if cleared:
        return CellVerdict("Green" if strong else "Gray", False, strong, cleared, evidence)
    return CellVerdict("cannot tell", None, strong, [], evidence)


# -- one model, a world of them, and the validation against known truth -------------------------------------
def power_statement(task: Task, evaluation: list[Problem], fraction: float) -> dict[str, float]:
    """What limits the partial-prompt test on this task: problem length, how much is left to predict, and how many
    evaluation problems share each shown prefix (a continuation cannot single out one of several)."""
    pairs = [split_text(problem_text(task, p, "compact"), fraction) for p in evaluation]
    counts = Counter(prefix for prefix, _ in pairs)
    shared = [counts[prefix] for prefix, _ in pairs]
    return {"problem_chars": float(np.mean([len(a) + len(b) for a, b in pairs])),
            "rest_chars": float(np.mean([len(rest) for _, rest in pairs])),
            "prefix_shared_mean": float(np.mean(shared)), "prefix_shared_max": int(max(shared)),
            "prefix_unique_share": float(np.mean([s == 1 for s in shared])),
            "min_problems": min_problems()}


def check_model(name: str, fraction: float = 0.6, problems: int | None = None, n: int = 8, keep: float = 0.0,
                seed: int = 0, strong_threshold: float = 0.2, examples: int = 5, log=print) -> dict[str, Any]:
    """Every probe on one toy model, on its task's evaluation problems and as many fresh ones of matched difficulty;
    the cell's verdict, the truth from its recipe, the power statement, and a few continuations to read."""
    from mtalign import models, toyworld

    toy = toyworld.spec(name)
    task = get_task(toy.task, **toy.task_difficulty)
    eval_set_size = toy.stage.eval_set_size  # read from the declaration, the set the contaminated recipe repeats
    seen, fresh = seen_and_fresh(task, eval_set_size, problems)
    loaded = models.load(name, log=log)
    partial = {side: partial_prompt_scores(loaded, task, items, fraction) for side, items in
               (("seen", seen), ("fresh", fresh))}
    accuracy = {side: accuracy_scores(loaded, task, items, n=n, seed=seed) for side, items in
                (("seen", seen), ("fresh", fresh))}
    recall = {side: answer_recall_scores(loaded, task, items, keep) for side, items in
              (("seen", seen), ("fresh", fresh))}
    scores = {"partial_prompt": {s: partial[s]["rouge_l"] for s in partial}, "accuracy": accuracy,
              "answer_recall": recall}
    results = [compare(probe, scores[probe]["seen"], scores[probe]["fresh"]) for probe in PROBES]
    loglik = {side: text_logprobs(loaded, [problem_text(task, p, loaded.style) for p in items]) for side, items in
              (("seen", seen), ("fresh", fresh))}
    pass_at_1 = float(np.mean(accuracy["seen"]))  # on the evaluation problems, as 01_alignment measures it
    cell = verdict(results, pass_at_1, strong_threshold)
    truth = toy.stage.eval_exposure > 0
    row = {"model": name, "task": toy.task, "recipe": toy.recipe, "problems": len(seen),
           "eval_set_size": eval_set_size, "pass@1": pass_at_1, "colour": cell.colour,
           "decided_by": ", ".join(cell.decided_by) or "no probe", "truly_contaminated": truth,
           "test_correct": cell.contaminated is truth,
           "exact_eval": float(np.mean(partial["seen"]["exact"])),
           "exact_fresh": float(np.mean(partial["fresh"]["exact"])),
           "rouge_eval": float(np.mean(partial["seen"]["rouge_l"])),
           "rouge_fresh": float(np.mean(partial["fresh"]["rouge_l"])),
           **power_statement(task, task.problems("eval", n=eval_set_size, seed=0), fraction)}
    for r in results:
        row.update({f"{r.probe}_{key}": getattr(r, key)
                    for key in ("seen", "fresh", "diff", "low", "high", "mde", "outcome")})
    diff, low, high = bootstrap_difference(loglik["seen"], loglik["fresh"])  # 95%: a diagnostic, not a probe
    row.update({"loglik_seen": float(np.mean(loglik["seen"])), "loglik_fresh": float(np.mean(loglik["fresh"])),
                "loglik_diff": diff, "loglik_low": low, "loglik_high": high})
    row["evidence"] = cell.evidence
    row["examples"] = [{"prefix": p, "rest": r, "continuation": c, "exact": e}
                       for p, r, c, e in list(zip(partial["seen"]["prefix"], partial["seen"]["rest"],
                                                  partial["seen"]["continuation"], partial["seen"]["exact"]))[:examples]]
    return row


def check_world(world: str, tasks: Sequence[str], recipes: Sequence[str], log=print, **kwargs) -> list[dict]:
    """`check_model` on every `<world>-<task>-<recipe>` toy model; unknown names fail first, with the valid ones."""
    from mtalign import toyworld

    names = [f"{world}-{task}-{recipe}" for task in tasks for recipe in recipes]
    for name in names:
        toyworld.spec(name)  # fails on a bad world, task or recipe before any model is built
    return [check_model(name, log=log, **kwargs) for name in names]


# What 05_contamination shows of check_model's rows: each cell's verdict with every probe's numbers, and what
# limited each test (its power; the log-likelihood diagnostic last).
VERDICT_COLUMNS = (["model", "problems", "pass@1", "colour", "decided_by", "truly_contaminated", "test_correct"]
                   + [f"{p}_{k}" for p in PROBES for k in ("diff", "low", "high", "outcome")])
POWER_COLUMNS = (["model", "problems", "problem_chars", "rest_chars", "prefix_shared_mean", "prefix_unique_share",
                  "min_problems"] + [f"{p}_mde" for p in PROBES] + ["loglik_diff", "loglik_low", "loglik_high"])
RULE = {"alpha": ALPHA, "min_effect": MIN_EFFECT, "probes": list(PROBES)}  # as 05's metrics.json records it


def cell_table(rows: Sequence[dict]) -> "pd.DataFrame":
    """`check_model`'s rows as a table, one row per model, without the example continuations and evidence text."""
    return pd.DataFrame(rows).drop(columns=["examples", "evidence"])


def continuations(rows: Sequence[dict]) -> str:
    """For each truly contaminated model: its first seen problems' shown prefix, the model's greedy continuation
    and the true rest (the partial-prompt test's raw material, to read)."""
    lines = []
    for row in rows:
        if row["truly_contaminated"]:
            lines.append(row["model"])
            lines += [f"  {ex['prefix']!r:>24} -> {ex['continuation']!r:<14} (true rest {ex['rest']!r})"
                      for ex in row["examples"]]
    return "\n".join(lines)


def validation_table(rows: Sequence[dict]) -> "pd.DataFrame":
    """Each probe and the combined verdict against the recipes' truth: positives flagged, clean models flagged,
    and cells where it could not tell."""
    out = []
    for name in (*PROBES, "verdict"):
        positives = [_call(r, name) for r in rows if r["truly_contaminated"]]
        negatives = [_call(r, name) for r in rows if not r["truly_contaminated"]]
        out.append({"probe": name, "contaminated flagged": f"{positives.count('flag')}/{len(positives)}",
                    "clean flagged": f"{negatives.count('flag')}/{len(negatives)}",
                    "clean cleared": f"{negatives.count('clear')}/{len(negatives)}",
                    "cannot tell": positives.count("cannot tell") + negatives.count("cannot tell")})
    return pd.DataFrame(out)


def _call(row: dict, probe: str) -> str:
    """"flag", "clear" or "cannot tell": one probe's outcome, or the cell's colour read the same way."""
    if probe == "verdict":
        return {"Red": "flag", "cannot tell": "cannot tell"}.get(row["colour"], "clear")
    return row[f"{probe}_outcome"]
