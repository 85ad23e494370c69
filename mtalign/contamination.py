"""The paper's partial-prompt contamination test, and the Red/Green/Gray colouring of a (model, task) cell.

Give the model the first part of each evaluation problem and let it continue greedily; a model that saw the
problem in pretraining reproduces the rest more often than chance. Continuations are scored against the true rest
with exact match and ROUGE-L (STUDY.md §5). The paper reads contamination off absolute scores; where fresh
problems of the same distribution exist (the toy world), we compare against them instead, which needs no threshold.

Colours (the paper's): Red = possibly contaminated; Green = clean and strongly aligned; Gray = clean and weakly
aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mtalign.tasks import Problem, Task


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
    exact, rouge = [], []
    for (_, rest), (sample,) in zip(pairs, outputs):
        continuation = sample.text[:len(rest)]
        exact.append(float(continuation == rest))
        rouge.append(rouge_l(tokens(continuation, unit), tokens(rest, unit)))
    return {"exact": exact, "rouge_l": rouge}


def bootstrap_difference(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                         confidence: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile bootstrap interval (independent samples)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    boots = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1) - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boots, [alpha, 1 - alpha])
    return float(a.mean() - b.mean()), float(low), float(high)


@dataclass(frozen=True)
class Verdict:
    colour: str  # Red, Green or Gray
    contaminated: bool
    strong: bool
    evidence: str


def classify(eval_rouge: Sequence[float], pass_at_1: float, reference_rouge: Sequence[float] | None = None,
             strong_threshold: float = 0.2, rouge_threshold: float = 0.7) -> Verdict:
    """Colour one cell. Contamination: evaluation problems are continued better than fresh ones (CI of the ROUGE-L
    difference above 0) when a reference exists, else mean ROUGE-L >= `rouge_threshold` (the paper's absolute
    reading). Strong alignment: pass@1 >= `strong_threshold` (our stated cut; the paper gives none)."""
    if reference_rouge is not None and len(reference_rouge):
        diff, low, high = bootstrap_difference(eval_rouge, reference_rouge)
        contaminated = low > 0
        evidence = f"ROUGE-L eval - fresh = {diff:+.3f} (95% CI {low:+.3f}, {high:+.3f})"
    else:
        mean = float(np.mean(eval_rouge))
        contaminated = mean >= rouge_threshold
        evidence = f"mean ROUGE-L {mean:.3f} vs threshold {rouge_threshold}"
    strong = pass_at_1 >= strong_threshold
    colour = "Red" if contaminated else ("Green" if strong else "Gray")
    return Verdict(colour, contaminated, strong, evidence + f"; pass@1 {pass_at_1:.3f} vs {strong_threshold}")
