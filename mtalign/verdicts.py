"""Does a claim hold in a cell? One rule, stated once, applied to every (claim, variant, model, task).

A claim's variant is compared with the base model and with standard RL (ground truth), across training seeds:

    gain = held-out accuracy after RL - before RL (per seed), mean and 95% t-interval across seeds
    tau  = FRACTION x max(mean ground-truth gain, 0)
    holds        if the interval's lower end > 0 and the mean gain >= tau
    fails        if the interval's upper end < tau, or <= 0
    inconclusive otherwise (also with fewer than two seeds: no interval)

The paper's divergence, per claim and task family: the variant holds on the strongly aligned model, fails on the
weakly aligned one, while ground-truth RL holds on both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

FRACTION = 0.5
BASELINE = "ground_truth"
# claim -> the variants (paper semantics) that test it; every notebook and the report use this one table
CLAIMS: dict[str, list[str]] = {
    "RQ1 reward signal": ["format_only", "random", "incorrect", "majority_vote", "entropy_min"],
    "RQ2 one-shot": ["one_shot", "one_shot_random"],
    "RQ3 sample polarity": ["psr", "nsr", "w_reinforce"],
}
RULE = (f"A variant **holds** in a cell when its gain in held-out accuracy over the base model has a 95% interval "
        f"across seeds entirely above 0 and a mean of at least {FRACTION:.0%} of ground-truth RL's mean gain; it "
        f"**fails** when the interval lies entirely below that bar (or at or below 0); otherwise it is "
        f"**inconclusive**. Ground-truth RL itself holds when its interval is above 0.")


def claim_of(variant: str) -> str | None:
    for claim, variants in CLAIMS.items():
        if variant in variants:
            return claim
    return "baseline" if variant == BASELINE else None


@dataclass(frozen=True)
class Effect:
    mean: float
    low: float
    high: float
    seeds: int

    def __str__(self) -> str:
        if self.seeds < 2:
            return f"{self.mean:+.3f} (1 seed)"
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


# two-sided 95% Student t quantiles by degrees of freedom (scipy is not a dependency)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}


def _t975(df: int) -> float:
    """The tabulated quantile of the nearest df at or below (slightly conservative between table rows)."""
    if df > 30:
        return 1.96 + 2.4 / df  # within 0.003 of the exact quantile beyond 30
    return _T975[max(k for k in _T975 if k <= df)]


def effect(values: Sequence[float]) -> Effect:
    """Mean and 95% t-interval across seeds; NaN bounds with a single seed."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return Effect(math.nan, math.nan, math.nan, 0)
    if len(x) == 1:
        return Effect(float(x[0]), math.nan, math.nan, 1)
    half = _t975(len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return Effect(float(x.mean()), float(x.mean() - half), float(x.mean() + half), len(x))


def verdict(variant: Effect, baseline: Effect | None, fraction: float = FRACTION) -> str:
    """holds / fails / inconclusive by the rule in this module's docstring (baseline None: judge against 0)."""
    if variant.seeds < 2 or math.isnan(variant.low):
        return "inconclusive"
    bar = fraction * max(baseline.mean, 0.0) if baseline is not None and not math.isnan(baseline.mean) else 0.0
    if variant.low > 0 and variant.mean >= bar:
        return "holds"
    if variant.high < bar or variant.high <= 0:
        return "fails"
    return "inconclusive"


def cell_verdicts(summaries: Iterable[dict], fraction: float = FRACTION) -> list[dict]:
    """One row per (model, task, variant): gain across seeds, its verdict, and the cell's base alignment."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for s in summaries:
        groups.setdefault((s["model"], s.get("eval_task") or s["task"], s["variant"]), []).append(s)
    baselines = {(m, t): effect([s["gain"] for s in runs]) for (m, t, v), runs in groups.items() if v == BASELINE}
    rows = []
    for (model, task, variant), runs in sorted(groups.items()):
        gain = effect([s["gain"] for s in runs])
        base = baselines.get((model, task))
        is_baseline = variant == BASELINE
        rows.append({
            "model": model, "task": task, "variant": variant, "claim": claim_of(variant),
            "seeds": gain.seeds, "before": float(np.mean([s["before"]["accuracy"] for s in runs])),
            "after": float(np.mean([s["after"]["accuracy"] for s in runs])),
            "gain": gain.mean, "gain_low": gain.low, "gain_high": gain.high,
            "gt_gain": base.mean if base else math.nan,
            "verdict": verdict(gain, None if is_baseline else base, fraction) if (base or is_baseline) else "no baseline",
            "pass@1_base": _pass1(runs),
        })
    return rows


def _pass1(runs: list[dict]) -> float:
    values = [(s.get("passk_before") or {}).get("pass@1") for s in runs]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


def divergence(rows: list[dict], strong: str, weak: str) -> list[dict]:
    """Per task and variant: does the paper's divergence appear between the `strong` and `weak` models?"""
    by = {(r["model"], r["task"], r["variant"]): r for r in rows}
    out = []
    tasks = sorted({r["task"] for r in rows})
    for task in tasks:
        gt_strong, gt_weak = by.get((strong.format(task=task), task, BASELINE)), by.get((weak.format(task=task), task, BASELINE))
        for claim, variants in CLAIMS.items():
            for variant in variants:
                s, w = by.get((strong.format(task=task), task, variant)), by.get((weak.format(task=task), task, variant))
                if s is None or w is None:
                    continue
                gt_both = bool(gt_strong and gt_weak and gt_strong["verdict"] == gt_weak["verdict"] == "holds")
                appears = s["verdict"] == "holds" and w["verdict"] == "fails" and gt_both
                out.append({"task": task, "claim": claim, "variant": variant, "strong": s["verdict"],
                            "weak": w["verdict"], "ground_truth_holds_on_both": gt_both, "divergence": appears,
                            "strong_gain": s["gain"], "weak_gain": w["gain"]})
    return out
