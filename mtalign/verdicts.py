"""Does a claim hold in a cell? One rule, stated once, applied to every (claim, variant, model, evaluation task).

A claim's variant is compared with the base model and with standard RL (ground truth) trained on the same seed, with
the same data order and evaluated on the same problems, so the comparison is paired by seed:

    gain_s   = held-out accuracy after RL - before RL, on seed s
    margin_s = gain_s(variant) - FRACTION x gain_s(ground truth)          (the variant's distance above the bar)
    each with its mean and 95% t-interval across seeds (the margin over the seeds both runs have)

    holds            margin interval above 0 and gain interval above 0
    below the bar    margin interval below 0, gain interval above 0 (a real gain, under half of ground truth's)
    no gain / harms  gain interval at or below 0, or margin interval below 0 without a gain shown above 0
    within noise     otherwise: the margin interval contains 0, so seeds cannot tell the variant from the bar
    too few seeds    fewer than two paired seeds: no interval

Ground truth itself is judged against 0 (holds / no gain / harms / within noise). Only runs of identical resolved
settings (mtalign.identity.run_identity: preset, steps, model build, tasks, evaluation tasks, regex) are pooled, and a
variant is paired only with the ground truth of the same settings; a variant's definition (semantics included) is
part of its condition. As a check on the evaluation's own noise, the margin is also bootstrapped over evaluation
problems (same resample for every seed and both runs), when the runs' per-problem correctness is at hand.

The paper's divergence, per claim and task family: the variant holds on the strongly aligned model, falls below the
bar or gains nothing on the weakly aligned one, while ground-truth RL holds on both.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mtalign import config

FRACTION = 0.5
BASELINE = "ground_truth"
# claim -> the variants that test it, as params/variants.yaml declares them (`claim:`, alternatives marked optional
# left out): what each claim notebook runs by default and the report judges. incorrect is the paper's definition
# (FORMAT and not CORRECT); incorrect_source is Spurious Rewards' (the base model's wrong majority answer as a fixed
# label), the form the spurious-reward claim was made with.
CLAIMS: dict[str, list[str]] = config.claims()
# mechanism probes, shown beside the claims and never judged as one: random_unclipped is the random reward with the
# PPO clip removed, next to `random` on the same cells (is a random-reward gain the clip's doing? Shao et al. 2025)
# label -> {probe variant: the claim variant it changes one thing of}; its probe variants are config.probes()
# (params/variants.yaml's `claim: probe`), which tests/test_verdicts.py checks
PROBES: dict[str, dict[str, str]] = {"probe: clip removed": {"random_unclipped": "random"}}
HOLDS, BELOW, NO_GAIN, NOISE, FEW = "holds", "below the bar", "no gain / harms", "within noise", "too few seeds"
VERDICTS = (HOLDS, BELOW, NO_GAIN, NOISE, FEW)
FAILS = (BELOW, NO_GAIN)  # what "fails on the weak model" means in the divergence
BOOTSTRAP = 2000  # resamples of evaluation problems for the check
RULE = (f"Verdicts are paired by seed: on each seed, a variant's **margin** is its gain in held-out accuracy over the "
        f"base model minus {FRACTION:.0%} of ground-truth RL's gain on the same seed (same data order, same evaluation "
        f"problems); gain and margin each have a 95% t-interval across seeds. A variant **holds** in a cell when its "
        f"margin interval and its gain interval are both above 0; it is **below the bar** when its margin interval "
        f"is below 0 but its gain interval above 0; **no gain / harms** when its gain interval reaches or lies below "
        f"0 and it is not above the bar; **within noise** when the margin interval contains 0 (the seeds cannot "
        f"tell it from the bar); **too few seeds** with fewer than two paired seeds. Ground-truth RL itself is judged "
        f"against 0. Only runs with identical resolved settings are pooled or paired. The margin is also "
        f"bootstrapped over evaluation problems as a check on evaluation noise.")


def claim_of(variant: str) -> str | None:
    for claim, variants in CLAIMS.items():
        if variant in variants:
            return claim
    for probe, variants in PROBES.items():
        if variant in variants:
            return probe
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


def margins(variant: dict[int, float], baseline: dict[int, float], fraction: float = FRACTION) -> dict[int, float]:
    """Per seed both runs have: the variant's gain minus `fraction` of ground truth's gain on that seed."""
    return {seed: variant[seed] - fraction * baseline[seed] for seed in sorted(set(variant) & set(baseline))}


def verdict(gain: Effect, margin: Effect | None) -> str:
    """The rule of this module's docstring; `margin` None judges against 0 (ground truth itself)."""
    if gain.seeds < 2 or math.isnan(gain.low) or (margin is not None and (margin.seeds < 2 or math.isnan(margin.low))):
        return FEW
    if margin is None:
        return HOLDS if gain.low > 0 else NO_GAIN if gain.high <= 0 else NOISE
    if margin.low > 0 and gain.low > 0:
        return HOLDS
    if gain.high <= 0 or (margin.high < 0 and gain.low <= 0):
        return NO_GAIN
    if margin.high < 0:
        return BELOW
    return NOISE


# -- which runs pool -------------------------------------------------------------------------------------------
def settings_key(summary: dict[str, Any]) -> str:
    """What a cell's seeds and variants must share to be pooled and paired: the run's `settings_hash`, or for a run
    recorded before run identities, a digest of what its summary says (preset, steps, evaluation tasks)."""
    if summary.get("settings_hash"):
        return summary["settings_hash"]
    legacy = [summary.get("preset"), summary.get("steps"), summary.get("eval_tasks"), summary.get("role")]
    return "legacy-" + hashlib.sha1(json.dumps(legacy, default=str).encode()).hexdigest()[:10]


def variant_key(summary: dict[str, Any]) -> str:
    """A variant's condition: its definition's hash, or (older runs) its name and semantics."""
    return summary.get("variant_hash") or f"{summary['variant']}/{summary.get('semantics', 'paper')}"


def settings_label(summary: dict[str, Any]) -> str:
    """A short human name of a run's settings: preset and steps, and the settings hash."""
    return f"{summary.get('preset')}, {summary.get('steps')} steps [{settings_key(summary)[:8]}]"


def per_eval_task(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per evaluation task of a run (`by_eval_task`), each like a single-task summary; `primary` marks
    the run's first evaluation task."""
    primary = summary.get("eval_task") or summary["task"]
    by_task = summary.get("by_eval_task") or {primary: {k: summary.get(k) for k in
                                                        ("before", "after", "gain", "passk_before", "passk_after")}}
    return [{**summary, **numbers, "eval_task": name, "primary": name == primary} for name, numbers in by_task.items()]


def problem_accuracy(summary: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """(problem ids, per-problem accuracy before, after) of one evaluation task of a run, from its
    initial_passk/final_passk files (pass@k samples per problem); None when the files are not at hand."""
    if not summary.get("dir"):
        return None
    directory, task = Path(summary["dir"]), summary.get("eval_task") or summary["task"]
    suffix = "" if summary.get("primary", True) else f".{task}"
    try:
        before = json.loads((directory / f"initial_passk{suffix}.json").read_text())
        after = json.loads((directory / f"final_passk{suffix}.json").read_text())
    except (OSError, ValueError):
        return None
    if before.get("problem_ids") != after.get("problem_ids"):
        return None
    return (list(after["problem_ids"]), np.asarray(before["correct"], float) / before["n"],
            np.asarray(after["correct"], float) / after["n"])


def bootstrap_margin(variant: dict[int, dict], baseline: dict[int, dict], fraction: float = FRACTION,
                     resamples: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean paired margin when evaluation problems are resampled (the same resample
    for every seed and both runs: they were evaluated on the same problems); seeds stay fixed. Each argument maps
    seed -> `problem_accuracy` output. (nan, nan) when no seed has both, or the problem lists differ."""
    seeds = sorted(set(variant) & set(baseline))
    if not seeds or any(variant[s][0] != baseline[s][0] or variant[s][0] != variant[seeds[0]][0] for s in seeds):
        return math.nan, math.nan
    # per seed and problem: the margin's contribution, so a resample's margin is the mean over its problems
    per = np.stack([(variant[s][2] - variant[s][1]) - fraction * (baseline[s][2] - baseline[s][1]) for s in seeds])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, per.shape[1], size=(resamples, per.shape[1]))
    means = per[:, picks].mean(axis=2).mean(axis=0)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def cell_verdicts(summaries: Iterable[dict], fraction: float = FRACTION, bootstrap: bool = True) -> list[dict]:
    """One row per (model, evaluation task, variant, settings): gain and paired margin across seeds, the verdict,
    and the cell's base alignment. Every evaluation task of every run is judged (`primary` marks each run's first).
    Rows of different settings are never pooled: the `settings` column names them."""
    groups: dict[tuple, list[dict]] = {}
    for s in summaries:
        for record in per_eval_task(s):
            key = (record["model"], record["eval_task"], record["variant"], settings_key(record), variant_key(record))
            groups.setdefault(key, []).append(record)
    baselines = {(m, t, k): runs for (m, t, v, k, _), runs in groups.items() if v == BASELINE}
    rows = []
    for (model, task, variant, key, _), runs in sorted(groups.items()):
        gains = {r["seed"]: r["gain"] for r in runs}
        gain = effect(list(gains.values()))
        base = baselines.get((model, task, key))
        is_baseline = variant == BASELINE
        margin, boot, base_gain = None, (math.nan, math.nan), effect([])
        if base is not None and not is_baseline:
            base_gains = {r["seed"]: r["gain"] for r in base}
            base_gain = effect(list(base_gains.values()))
            margin = effect(list(margins(gains, base_gains, fraction).values()))
            if bootstrap:
                mine = {r["seed"]: problem_accuracy(r) for r in runs}
                theirs = {r["seed"]: problem_accuracy(r) for r in base}
                boot = bootstrap_margin({s: v for s, v in mine.items() if v is not None},
                                        {s: v for s, v in theirs.items() if v is not None}, fraction)
        elif is_baseline:
            base_gain = gain
        judged = is_baseline or base is not None
        rows.append({
            "model": model, "task": task, "train_task": runs[0]["task"], "primary": bool(runs[0]["primary"]),
            "variant": variant, "claim": claim_of(variant), "semantics": runs[0].get("semantics", "paper"),
            "settings": settings_label(runs[0]), "settings_key": key,
            "seeds": gain.seeds, "seed_list": sorted(gains),
            "before": float(np.mean([r["before"]["accuracy"] for r in runs])),
            "after": float(np.mean([r["after"]["accuracy"] for r in runs])),
            "gain": gain.mean, "gain_low": gain.low, "gain_high": gain.high,
            "gt_gain": base_gain.mean, "gt_gain_low": base_gain.low, "gt_gain_high": base_gain.high,
            "margin": margin.mean if margin else math.nan, "margin_low": margin.low if margin else math.nan,
            "margin_high": margin.high if margin else math.nan, "paired_seeds": margin.seeds if margin else 0,
            "margin_boot_low": boot[0], "margin_boot_high": boot[1],
            "verdict": verdict(gain, None if is_baseline else margin) if judged else "no baseline",
            "pass@1_base": _pass1(runs),
        })
    return rows


def _pass1(runs: list[dict]) -> float:
    values = [(s.get("passk_before") or {}).get("pass@1") for s in runs]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else math.nan


def mixed_settings(summaries: Iterable[dict]) -> list[dict[str, Any]]:
    """(model, task) cells whose runs have more than one settings key: each with its settings labels and what
    differs between their recorded identities (`mtalign.train.identity_differences`)."""
    from mtalign.identity import identity_differences

    cells: dict[tuple[str, str], dict[str, dict]] = {}
    for s in summaries:
        cells.setdefault((s["model"], s.get("eval_task") or s["task"]), {}).setdefault(settings_key(s), s)
    out = []
    for (model, task), by_key in sorted(cells.items()):
        if len(by_key) < 2:
            continue
        first, *others = by_key.values()
        shared = lambda s: {k: v for k, v in (s.get("identity") or {}).items() if k not in ("variant", "seed",  # noqa
                                                                                          "ranking_log")}
        differences = sorted({d for o in others for d in identity_differences(shared(first), shared(o))
                              if shared(first) and shared(o)})
        if not differences:  # runs recorded before identities: say what their summaries say
            differences = sorted({f"{k}: {first.get(k)!r} vs {o.get(k)!r}" for o in others
                                  for k in ("preset", "steps", "eval_tasks", "role") if first.get(k) != o.get(k)})
        out.append({"model": model, "task": task, "settings": [settings_label(s) for s in by_key.values()],
                    "differences": differences})
    return out


def multiplicity(rows: Sequence[dict], level: float = 0.95) -> dict[str, Any]:
    """How many verdicts were judged, and how many could flip by chance: each rests on a 95% interval, so among n
    verdicts about n x 5% intervals miss their true value; no correction is applied (see `MULTIPLICITY`)."""
    judged = [r for r in rows if r["verdict"] in (HOLDS, BELOW, NO_GAIN, NOISE)
              and r.get("claim") not in PROBES]  # a mechanism probe is shown, never judged as a claim
    noise = [r for r in judged if r["verdict"] == NOISE]
    expected = len(judged) * (1 - level)
    return {"judged": len(judged), "within_noise": len(noise), "expected_chance_misses": expected,
            "text": MULTIPLICITY.format(n=len(judged), expected=expected, noise=len(noise))}


MULTIPLICITY = (
    "**{n} verdicts** were judged, each on a 95% interval, so about {expected:.1f} of those intervals would miss "
    "their true value by chance alone: a single verdict, above all one near a boundary, may be a chance flip. No "
    "multiplicity correction (Bonferroni, Holm, false discovery rate) is applied: with a few seeds per verdict the "
    "t-quantile at 0.05/{n} would widen every interval several-fold and leave every cell within noise, and the "
    "study's conclusions "
    "are not any single cell but patterns that need several cells to agree (a divergence needs ground truth to hold "
    "on both models, the variant to hold on the strong one and to fall short on the weak one). Verdicts whose margin "
    "interval contains 0 are marked **within noise** ({noise} here) rather than forced to a side; `mtalign study "
    "--extra-seeds` adds seeds to their cells.")


def divergence(rows: list[dict], strong: str, weak: str) -> list[dict]:
    """Per task and variant: does the paper's divergence appear between the `strong` and `weak` models?

    Rows of one task must come from one settings key (the report splits mixed cells before judging)."""
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
                gt_both = bool(gt_strong and gt_weak and gt_strong["verdict"] == gt_weak["verdict"] == HOLDS)
                appears = s["verdict"] == HOLDS and w["verdict"] in FAILS and gt_both
                out.append({"task": task, "claim": claim, "variant": variant, "strong": s["verdict"],
                            "weak": w["verdict"], "ground_truth_holds_on_both": gt_both, "divergence": appears,
                            "strong_gain": s["gain"], "weak_gain": w["gain"]})
    return out
