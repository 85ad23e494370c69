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
