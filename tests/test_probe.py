"""The clip probe (issue 11): random_unclipped is the random reward with the PPO clip removed, a mechanism probe that
is never judged as a claim, while every claim variant keeps the preset's clip."""

import pytest

from mtalign import train, verdicts
from mtalign.tasks import get_task

MICRO = "micro-chain_sum-strong"


def test_only_the_probe_removes_the_clip():
    unclipped = [name for name, v in train.load_variants().items() if not v.clip]
    assert unclipped == ["random_unclipped"]
    probe, random = train.load_variants()["random_unclipped"], train.load_variants()["random"]
    # the same reward as `random` in every other respect, so the pair isolates the clip
    assert (probe.reward, probe.reward_kwargs, probe.advantage, probe.data, probe.semantics) == \
        (random.reward, random.reward_kwargs, random.advantage, random.data, random.semantics)


@pytest.mark.parametrize("variant, epsilon, epsilon_high, delta", [
    ("random", 0.2, 0.28, 10.0),  # the toy preset's clip-higher and dual clip
    ("random_unclipped", 1.0, 1e9, None),  # ratio bounds [0, 1e9]: neither side can bind, dual clip off
])
def test_grpo_config_clip(variant, epsilon, epsilon_high, delta):
    run = train.resolve(model=MICRO, preset="toy", variant=variant)
    config = train.grpo_config(run, get_task("chain_sum"), cuda=False)
    assert (config.epsilon, config.epsilon_high, config.delta) == (epsilon, epsilon_high, delta)


def test_probe_is_labelled_and_never_a_claim():
    assert verdicts.claim_of("random_unclipped") == "probe: clip removed"
    assert all("random_unclipped" not in vs for vs in verdicts.CLAIMS.values())


def test_the_probe_is_part_of_the_run_identity():
    # a clipped and an unclipped run never share a run (or a cached result): the flag is in the resolved variant
    a = train.resolve(model=MICRO, preset="smoke", variant="random").record()["variant"]
    b = train.resolve(model=MICRO, preset="smoke", variant="random_unclipped").record()["variant"]
    assert a["clip"] is True and b["clip"] is False


def _steps(clip: dict[str, list[float]]):
    import pandas as pd

    rows = [{"model": "m", "task": "t", "variant": v, "seed": 0, "step": i + 1, "metric": "clip_fraction", "value": x}
            for v, values in clip.items() for i, x in enumerate(values)]
    return pd.DataFrame(rows, columns=["model", "task", "variant", "seed", "step", "metric", "value"])


def test_clip_statement_says_inactive_below_a_tenth_of_a_percent():
    from mtalign import report

    quiet = report.clip_table(_steps({"ground_truth": [0.0002, 0.0004], "random": [0.0, 0.0009]}))
    assert list(quiet["variant"]) == ["ground_truth", "random"]  # display order
    assert quiet.loc[1, "clip_fraction"] == pytest.approx(0.00045) and quiet.loc[1, "max_step"] == 0.0009
    assert "inactive at this scale" in report.clip_statement(quiet)
    busy = report.clip_table(_steps({"ground_truth": [0.0002], "random": [0.004, 0.002]}))
    said = report.clip_statement(busy)
    assert "can act" in said and "`random`" in said and "inactive at this scale" not in said
    assert "cannot be said" in report.clip_statement(report.clip_table(_steps({})))


def test_probe_table_puts_the_probe_beside_random():
    import pandas as pd

    from mtalign import report

    table = pd.DataFrame([
        {"model": "m", "task": "t", "variant": v, "primary": True, "gain": g, "gain_low": g - 0.1,
         "gain_high": g + 0.1, "seeds": 3}
        for v, g in [("ground_truth", 0.2), ("random", 0.05), ("random_unclipped", -0.01), ("nsr", 0.1)]])
    probe = report.probe_table(table)
    assert list(probe["variant"]) == ["random", "random_unclipped"]
    assert list(probe["gain"]) == [0.05, -0.01]
