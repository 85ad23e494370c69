"""The verdict rule, pinned case by case (mtalign/verdicts.py states it)."""

import math
import re

import numpy as np

import pytest

from mtalign import paths, verdicts
from mtalign.verdicts import Effect, cell_verdicts, divergence, effect, margins, verdict


def test_effect_t_interval_by_hand():
    # mean 0.2, sd 0.1, n 3: half-width = 4.303 * 0.1 / sqrt(3) = 0.2484
    e = effect([0.1, 0.2, 0.3])
    assert e.mean == pytest.approx(0.2)
    assert e.low == pytest.approx(0.2 - 0.24844, abs=1e-4)
    assert e.high == pytest.approx(0.2 + 0.24844, abs=1e-4)
    assert e.seeds == 3


def test_effect_single_seed_has_no_interval():
    e = effect([0.4])
    assert e.mean == 0.4 and math.isnan(e.low) and e.seeds == 1


@pytest.mark.parametrize("gain, margin, expected", [
    (Effect(0.30, 0.25, 0.35, 3), Effect(0.10, 0.05, 0.15, 3), "holds"),  # above the bar on every seed's pairing
    (Effect(0.10, 0.05, 0.15, 3), Effect(-0.10, -0.15, -0.05, 3), "below the bar"),  # a gain, under half of GT's
    (Effect(-0.10, -0.20, -0.01, 3), Effect(-0.3, -0.4, -0.2, 3), "no gain / harms"),  # hurts the model
    (Effect(0.02, -0.01, 0.05, 3), Effect(-0.2, -0.3, -0.1, 3), "no gain / harms"),  # below the bar, gain not shown
    (Effect(-0.03, -0.05, -0.01, 3), Effect(-0.01, -0.04, 0.02, 3), "no gain / harms"),  # GT gains nothing either
    (Effect(0.20, 0.05, 0.35, 3), Effect(0.01, -0.05, 0.07, 3), "within noise"),  # margin interval contains 0
    (Effect(0.05, -0.01, 0.11, 3), Effect(0.04, 0.01, 0.07, 3), "within noise"),  # above a negative bar, gain unsure
    (Effect(0.30, math.nan, math.nan, 1), Effect(0.1, math.nan, math.nan, 1), "too few seeds"),  # no interval
])
def test_verdict_rule(gain, margin, expected):
    assert verdict(gain, margin) == expected


def test_baseline_judged_against_zero():
    assert verdict(Effect(0.05, 0.01, 0.09, 3), None) == "holds"
    assert verdict(Effect(0.00, -0.02, 0.02, 3), None) == "within noise"
    assert verdict(Effect(-0.05, -0.08, -0.02, 3), None) == "no gain / harms"


def test_margins_pair_seeds():
    # ground truth's gain varies a lot across seeds and the variant's follows it: paired, the variant is above half
    # of ground truth's gain on every seed, which the unpaired comparison (gain interval against an uncertain bar,
    # ground truth's own interval being [-0.05, +0.45]) could not show
    gt = {0: 0.10, 1: 0.20, 2: 0.30}
    variant = {0: 0.10, 1: 0.14, 2: 0.18, 3: 0.5}  # seed 3 has no ground truth: not paired
    m = margins(variant, gt)
    assert m == pytest.approx({0: 0.05, 1: 0.04, 2: 0.03})
    assert effect(list(gt.values())).low < 0
    assert verdict(effect(list(variant.values())[:3]), effect(list(m.values()))) == "holds"


def _summary(model, variant, seed, before, after):
    return {"model": model, "task": "chain_sum", "eval_task": "chain_sum", "variant": variant, "seed": seed,
            "gain": after - before, "before": {"accuracy": before}, "after": {"accuracy": after},
            "passk_before": {"pass@1": before}}


def test_divergence_appears_only_when_the_pattern_is_complete():
    runs = []
    for seed, jitter in enumerate([0.0, 0.02, -0.02]):
        runs += [_summary("strong", "ground_truth", seed, 0.5, 0.8 + jitter),
                 _summary("weak", "ground_truth", seed, 0.1, 0.5 + jitter),
                 _summary("strong", "majority_vote", seed, 0.5, 0.75 + jitter),  # holds on strong
                 _summary("weak", "majority_vote", seed, 0.1, 0.0 + jitter / 4),  # collapses on weak
                 _summary("strong", "random", seed, 0.5, 0.3 + jitter),           # fails everywhere
                 _summary("weak", "random", seed, 0.1, 0.05 + jitter / 4)]
    rows = cell_verdicts(runs)
    table = {(r["model"], r["variant"]): r["verdict"] for r in rows}
    assert table[("strong", "ground_truth")] == table[("weak", "ground_truth")] == "holds"
    assert table[("strong", "majority_vote")] == "holds" and table[("weak", "majority_vote")] == "no gain / harms"
    found = {d["variant"]: d["divergence"] for d in divergence(rows, strong="strong", weak="weak")}
    assert found == {"majority_vote": True, "random": False}


def test_runs_of_other_steps_or_semantics_are_never_pooled():
    from mtalign.verdicts import mixed_settings

    runs = []
    for seed, jitter in enumerate([0.0, 0.02, -0.02]):
        for steps in (2, 30):  # a 2-step trial beside the 30-step study: never averaged as extra seeds
            runs += [{**_summary("strong", "ground_truth", seed, 0.5, 0.8 + jitter), "steps": steps, "preset": "toy"},
                     {**_summary("strong", "nsr", seed, 0.5, 0.7 + jitter), "steps": steps, "preset": "toy"}]
        runs.append({**_summary("strong", "nsr", seed, 0.5, 0.2 + jitter), "steps": 30, "preset": "toy",
                     "semantics": "source"})  # nsr under --semantics source: its own condition
    rows = cell_verdicts(runs, bootstrap=False)
    assert sorted((r["variant"], r["semantics"], r["settings"].split(" [")[0], r["seeds"]) for r in rows) == [
        ("ground_truth", "paper", "toy, 2 steps", 3), ("ground_truth", "paper", "toy, 30 steps", 3),
        ("nsr", "paper", "toy, 2 steps", 3), ("nsr", "paper", "toy, 30 steps", 3),
        ("nsr", "source", "toy, 30 steps", 3)]
    assert {r["verdict"] for r in rows if r["variant"] == "nsr" and r["semantics"] == "source"} == {"no gain / harms"}
    mixed = mixed_settings(runs)
    assert len(mixed) == 1 and mixed[0]["model"] == "strong" and len(mixed[0]["settings"]) == 2
    assert mixed[0]["differences"] == ["steps: 2 vs 30"]


def test_every_evaluation_task_is_judged():
    runs = []
    for seed, jitter in enumerate([0.0, 0.02, -0.02]):
        for variant, other in (("ground_truth", 0.3), ("random", 0.0)):
            s = _summary("strong", variant, seed, 0.5, 0.8 + jitter if variant == "ground_truth" else 0.5 + jitter)
            s["by_eval_task"] = {"chain_sum": {k: s[k] for k in ("before", "after", "gain", "passk_before")},
                                 "aime24": {"before": {"accuracy": 0.1}, "after": {"accuracy": 0.1 + other + jitter},
                                            "gain": other + jitter, "passk_before": {"pass@1": 0.1}}}
            runs.append(s)
    rows = {(r["task"], r["variant"]): r for r in cell_verdicts(runs, bootstrap=False)}
    assert set(rows) == {(t, v) for t in ("chain_sum", "aime24") for v in ("ground_truth", "random")}
    assert rows[("chain_sum", "random")]["primary"] and not rows[("aime24", "random")]["primary"]
    assert rows[("aime24", "ground_truth")]["verdict"] == "holds"
    assert rows[("aime24", "random")]["verdict"] in ("no gain / harms", "within noise")


def test_bootstrap_over_problems_checks_the_evaluation_noise():
    from mtalign.verdicts import bootstrap_margin

    ids = [f"p{i}" for i in range(200)]
    rng = np.random.default_rng(0)
    before = rng.random(200) * 0.7
    base = {s: (ids, before, before + 0.2) for s in range(3)}
    clear = {s: (ids, before, before + 0.2) for s in range(3)}  # the same gain as ground truth
    low, high = bootstrap_margin(clear, base)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)  # margin 0.5 x 0.2 on every problem
    # +0.2 on half the problems, 0 on the others: a mean gain of exactly the bar, so the margin's interval holds 0
    flat = {s: (ids, before, before + np.where(np.arange(200) % 2, 0.2, 0.0)) for s in range(3)}
    low, high = bootstrap_margin(flat, base)
    assert low < 0 < high
    other = {s: (ids[::-1], before, before) for s in range(3)}  # evaluated on other problems: no paired check
    assert all(np.isnan(x) for x in bootstrap_margin(other, base))


def test_multiplicity_counts_judged_verdicts_and_states_no_correction():
    from mtalign.verdicts import multiplicity

    rows = [{"verdict": v} for v in ["holds"] * 30 + ["within noise"] * 6 + ["below the bar"] * 4 + ["missing"] * 2
            + ["too few seeds"]] + [{"verdict": "holds", "claim": "probe: clip removed"}]  # probes do not count
    m = multiplicity(rows)
    assert (m["judged"], m["within_noise"]) == (40, 6) and m["expected_chance_misses"] == pytest.approx(2.0)
    assert "40 verdicts" in m["text"] and "No multiplicity correction" in m["text"]


def test_claims_and_probes_are_params_variants_yaml():
    """Claim membership lives in params/variants.yaml only: verdicts.CLAIMS is config.claims(), spelled as the report
    labels claims, and the probes of verdicts.PROBES are config.probes(), each changing one variant of a claim."""
    from mtalign import config, verdicts

    assert verdicts.CLAIMS == config.claims()
    assert list(verdicts.CLAIMS) == ["RQ1 reward signal", "RQ2 one-shot", "RQ3 sample polarity"]
    assert sorted(v for probes in verdicts.PROBES.values() for v in probes) == sorted(config.probes())
    claimed = {v for variants in verdicts.CLAIMS.values() for v in variants}
    assert all(target in claimed for probes in verdicts.PROBES.values() for target in probes.values())


# -- the README's tables say what the rule says -------------------------------------------------------------------
_NUM = r"[+−-]?\d+\.\d+"
# "gain [lo, hi]; margin m [lo, hi] **verdict**" (the main study's table)
_MAIN_CELL = re.compile(rf"({_NUM}) \[({_NUM}), ({_NUM})\]; margin ({_NUM}) \[({_NUM}), ({_NUM})\] \*\*([a-z /]+)\*\*")
# "gain (margin [lo, hi]) verdict" (the ladder's tables, whose gain interval is not shown)
_LADDER_CELL = re.compile(rf"({_NUM}) \(({_NUM}) \[({_NUM}), ({_NUM})\]\) ([a-z /]+?)(?= \||$)")


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def test_every_verdict_in_the_readme_tables_follows_from_the_intervals_printed_beside_it():
    """A reader checks a verdict against the interval printed next to it: a margin interval that holds 0 (touches
    the bar) must read "within noise", and a bound that rounds to 0.00 must be printed with the digit that says
    its side (tools regenerate these tables from the records; a hand edit or a rounding slip fails here)."""
    tables = [line for line in (paths.ROOT / "README.md").read_text().splitlines()
              if line.startswith("| ") and ("margin" in line or ") " in line)]
    checked = 0
    for line in tables:
        for m in _MAIN_CELL.finditer(line):
            gain, margin = (Effect(*map(_number, m.group(a, a + 1, a + 2)), 3) for a in (1, 4))
            assert verdicts.verdict(gain, margin) == m.group(7), m.group(0)
            checked += 1
        for m in _LADDER_CELL.finditer(line):
            low, high, said = _number(m.group(3)), _number(m.group(4)), m.group(5)
            assert (said == verdicts.NOISE) == (low <= 0 <= high) or said == verdicts.NO_GAIN, m.group(0)
            checked += 1
    assert checked > 100  # the main table's 44 cells and the ladder's
