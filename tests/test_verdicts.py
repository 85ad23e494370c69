"""The verdict rule, pinned case by case (mtalign/verdicts.py states it)."""

import math

import pytest

from mtalign.verdicts import Effect, cell_verdicts, divergence, effect, verdict


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


GT = Effect(0.40, 0.30, 0.50, 3)


@pytest.mark.parametrize("variant, expected", [
    (Effect(0.30, 0.25, 0.35, 3), "holds"),         # clearly positive and above half of GT's gain (0.20)
    (Effect(0.10, 0.05, 0.15, 3), "fails"),         # positive, but the whole interval is below the 0.20 bar
    (Effect(-0.10, -0.20, -0.01, 3), "fails"),      # hurts the model
    (Effect(0.20, -0.05, 0.45, 3), "inconclusive"),  # interval spans 0 and the bar
    (Effect(0.15, 0.02, 0.28, 3), "inconclusive"),  # positive, mean below the bar, interval reaches above it
    (Effect(0.30, math.nan, math.nan, 1), "inconclusive"),  # one seed: no interval, no verdict
])
def test_verdict_rule(variant, expected):
    assert verdict(variant, GT) == expected


def test_baseline_judged_against_zero():
    assert verdict(Effect(0.05, 0.01, 0.09, 3), None) == "holds"
    assert verdict(Effect(0.00, -0.02, 0.02, 3), None) == "inconclusive"
    # when ground truth does not help, the bar is 0, so a variant only needs a positive interval
    assert verdict(Effect(0.05, 0.01, 0.09, 3), Effect(-0.1, -0.2, 0.0, 3)) == "holds"


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
    assert table[("strong", "majority_vote")] == "holds" and table[("weak", "majority_vote")] == "fails"
    found = {d["variant"]: d["divergence"] for d in divergence(rows, strong="strong", weak="weak")}
    assert found == {"majority_vote": True, "random": False}
