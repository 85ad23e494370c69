"""Pins every advantage estimator of the study (mtalign/advantages.py) on hand-built groups, table-driven."""

from __future__ import annotations

import doctest
import inspect

import numpy as np
import pytest
import torch

import mtalign.advantages as adv
from mtalign.advantages import ADVANTAGES, compute, group_view, grpo, nsr, psr, w_reinforce, zero_variance_groups

EPS = 1e-4
# The unbiased std of one 1 and three 0s is exactly 0.5, so a [1,0,0,0] group normalises to these values.
UP, DOWN = 0.75 / (0.5 + EPS), -0.25 / (0.5 + EPS)
# One 0 and three 1s: the mirror image.
UP3, DOWN3 = 0.25 / (0.5 + EPS), -0.75 / (0.5 + EPS)


# ---------------------------------------------------------------------------------------------------------------
# TRL 1.16's advantage computation, re-implemented line by line to compare against.
# ---------------------------------------------------------------------------------------------------------------


def trl_advantages(rewards: list[float], num_generations: int, scale_rewards: str) -> np.ndarray:
    """Mirrors trl/trainer/grpo_trainer.py lines 2765-2787 (trl 1.16.0, `_generate_and_score_completions`,
    multi_objective_aggregation="sum_then_normalize" with one reward function of weight 1), with TRL's own `nanstd`
    (trl/trainer/utils.py line 1021: Bessel-corrected) and its hard-coded 1e-4, followed by line 2810's nan_to_num.
    """
    from trl.trainer.utils import nanstd

    rewards = torch.tensor(rewards, dtype=torch.float32)
    mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)
    mean_grouped_rewards = mean_grouped_rewards.repeat_interleave(num_generations, dim=0)
    if scale_rewards in ["group", "none"]:
        if num_generations > 1:
            std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)
            std_rewards = std_rewards.repeat_interleave(num_generations, dim=0)
        else:
            std_rewards = torch.zeros_like(rewards)
    elif scale_rewards == "batch":
        std_rewards = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    advantages = rewards - mean_grouped_rewards
    if scale_rewards != "none":
        advantages = advantages / (std_rewards + 1e-4)
    return torch.nan_to_num(advantages, nan=0.0).numpy()


def test_trl_source_still_has_the_mirrored_lines():
    # If a TRL upgrade changes the formula, the re-implementation above no longer describes it: fail loudly.
    from trl.trainer.grpo_trainer import GRPOTrainer

    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    for line in (
        "mean_grouped_rewards = torch.nanmean(rewards.view(-1, num_generations), dim=1)",
        "std_rewards = nanstd(rewards.view(-1, num_generations), dim=1)",
        "std_rewards = nanstd(rewards).expand_as(rewards)",
        "advantages = rewards - mean_grouped_rewards",
        "advantages = advantages / (std_rewards + 1e-4)",
    ):
        assert line in source, f"TRL's GRPO advantage code changed: {line!r} is gone"


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("group_size", [1, 2, 4, 16])
@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_grpo_equals_trl_grpo_trainer(scale, group_size, kind):
    # Random batches of 0/1 (verifiable) and continuous (confidence) rewards, every scale and several group sizes,
    # including all-equal groups (zero std) that binary rewards produce often at these sizes.
    rng = np.random.default_rng(group_size * 10 + len(scale))
    n = group_size * 6
    rewards = rng.integers(0, 2, n).astype(float) if kind == "binary" else rng.normal(-1.0, 0.7, n)
    expected = trl_advantages(rewards.tolist(), group_size, scale)
    np.testing.assert_allclose(grpo(rewards, group_size, scale=scale), expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# The definitions, one case per row.
# ---------------------------------------------------------------------------------------------------------------

MIXED = [1, 0, 0, 0]
MOSTLY_RIGHT = [1, 1, 0, 1]
ALL_WRONG = [0, 0, 0, 0]
ALL_RIGHT = [1, 1, 1, 1]

CASES = [
    # grpo, mixed group: the one correct sample is pushed up, the others down, by the normalised gap.
    ("grpo", {}, MIXED, [UP, DOWN, DOWN, DOWN]),
    # grpo, all-wrong group: zero std, zero advantage — the mechanism behind the paper's weak-alignment failures.
    ("grpo", {}, ALL_WRONG, [0, 0, 0, 0]),
    # grpo, all-right group: zero advantage too.
    ("grpo", {}, ALL_RIGHT, [0, 0, 0, 0]),
    # grpo, scale none: centred only (Dr. GRPO style), no division.
    ("grpo", {"scale": "none"}, MIXED, [0.75, -0.25, -0.25, -0.25]),
    # grpo, two groups with scale batch: group mean baseline, std of the whole batch [1,0,0,0,1,1,0,1] (0.5345).
    ("grpo", {"scale": "batch"}, MIXED + MOSTLY_RIGHT,
     np.array([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, -0.75, 0.25]) / (np.std([1, 0, 0, 0, 1, 1, 0, 1], ddof=1) + EPS)),
    # psr paper, mixed: GRPO advantage kept on the rewarded sample only.
    ("psr", {}, MIXED, [UP, 0, 0, 0]),
    # psr paper, mostly right: the three rewarded samples keep their (small) GRPO advantage.
    ("psr", {}, MOSTLY_RIGHT, [UP3, UP3, 0, UP3]),
    # psr paper, all-right group: GRPO gives 0, so nothing is learnt from it.
    ("psr", {}, ALL_RIGHT, [0, 0, 0, 0]),
    # psr paper, all-wrong group: nothing rewarded, nothing kept.
    ("psr", {}, ALL_WRONG, [0, 0, 0, 0]),
    # psr source (Zhu et al.), mixed: +1 on the correct sample, no normalisation.
    ("psr", {"semantics": "source"}, MIXED, [1, 0, 0, 0]),
    # psr source, all-right group: +1 everywhere — unlike GRPO, a solved prompt still reinforces.
    ("psr", {"semantics": "source"}, ALL_RIGHT, [1, 1, 1, 1]),
    # psr source, all-wrong group: nothing.
    ("psr", {"semantics": "source"}, ALL_WRONG, [0, 0, 0, 0]),
    # nsr paper, mixed: GRPO advantage kept on the three unrewarded samples.
    ("nsr", {}, MIXED, [0, DOWN, DOWN, DOWN]),
    # nsr paper, mostly right: only the one wrong sample is pushed down, by the large normalised gap.
    ("nsr", {}, MOSTLY_RIGHT, [0, 0, DOWN3, 0]),
    # nsr paper, all-wrong group: GRPO advantages are 0, so the paper's NSR learns nothing from it.
    ("nsr", {}, ALL_WRONG, [0, 0, 0, 0]),
    # nsr paper, all-right group: nothing unrewarded.
    ("nsr", {}, ALL_RIGHT, [0, 0, 0, 0]),
    # nsr source (Zhu et al.), mixed: -1 on each wrong sample.
    ("nsr", {"semantics": "source"}, MIXED, [0, -1, -1, -1]),
    # nsr source, all-wrong group: still -1 everywhere — the gradient the paper's masked version lacks.
    ("nsr", {"semantics": "source"}, ALL_WRONG, [-1, -1, -1, -1]),
    # nsr source, all-right group: nothing.
    ("nsr", {"semantics": "source"}, ALL_RIGHT, [0, 0, 0, 0]),
    # w_reinforce default lam 0.1: +0.1 on correct, -1 on wrong.
    ("w_reinforce", {}, MOSTLY_RIGHT, [0.1, 0.1, -1, 0.1]),
    # w_reinforce, all-wrong group: -1 everywhere (it is NSR plus a little PSR).
    ("w_reinforce", {}, ALL_WRONG, [-1, -1, -1, -1]),
    # w_reinforce, all-right group: +lam everywhere.
    ("w_reinforce", {"lam": 0.25}, ALL_RIGHT, [0.25, 0.25, 0.25, 0.25]),
    # w_reinforce with lam 0: exactly the source NSR.
    ("w_reinforce", {"lam": 0.0}, MIXED, [0, -1, -1, -1]),
]


@pytest.mark.parametrize("name, kwargs, rewards, expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_definitions(name, kwargs, rewards, expected):
    got = compute(name, rewards, 4, **kwargs)
    assert got.shape == (len(rewards),) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # Calling the function directly gives the same as dispatching by name.
    np.testing.assert_array_equal(ADVANTAGES[name](rewards, 4, **kwargs), got)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_paper_masks_split_grpo_in_two(scale):
    # For 0/1 rewards every sample is either rewarded or not, so paper psr + paper nsr is GRPO itself.
    rewards = np.random.default_rng(1).integers(0, 2, 48)
    both = psr(rewards, 8, scale=scale) + nsr(rewards, 8, scale=scale)
    np.testing.assert_allclose(both, grpo(rewards, 8, scale=scale))


def test_w_reinforce_is_lam_psr_plus_nsr():
    # Zhu et al.'s objective: lam * PSR + NSR, with the source (unnormalised) PSR and NSR.
    rewards = np.random.default_rng(2).integers(0, 2, 40)
    expected = 0.3 * psr(rewards, 5, semantics="source") + nsr(rewards, 5, semantics="source")
    np.testing.assert_allclose(w_reinforce(rewards, 5, lam=0.3), expected)


def test_paper_masks_with_continuous_rewards():
    # entropy_min's rewards are log-probs (all negative): paper psr keeps nothing, paper nsr keeps all of GRPO.
    rewards = np.array([-0.2, -1.5, -0.7, -3.0])
    np.testing.assert_array_equal(psr(rewards, 4), np.zeros(4))
    np.testing.assert_allclose(nsr(rewards, 4), grpo(rewards, 4))


@pytest.mark.parametrize(
    "rewards, group_size, expected",
    [
        # all-equal groups of 0s and of 1s are zero-variance; a mixed group is not.
        ([0, 0, 0, 1, 1, 1, 0, 1, 0], 3, [True, True, False]),
        # continuous rewards count as equal only when exactly equal.
        ([-0.5, -0.5, -0.5, -0.50001], 2, [True, False]),
        # a group of one has no variance by definition.
        ([1, 0], 1, [True, True]),
    ],
)
def test_zero_variance_groups(rewards, group_size, expected):
    got = zero_variance_groups(rewards, group_size)
    assert got.dtype == bool
    np.testing.assert_array_equal(got, expected)


def test_zero_variance_groups_are_where_grpo_gives_nothing():
    rewards = np.random.default_rng(3).integers(0, 2, 64)
    zero = zero_variance_groups(rewards, 4)
    assert zero.any() and not zero.all()
    advantages = group_view(grpo(rewards, 4), 4)
    assert (advantages[zero] == 0).all() and (np.abs(advantages[~zero]).sum(axis=1) > 0).all()


# ---------------------------------------------------------------------------------------------------------------
# Bad input: clear errors that name what was wrong and what is valid.
# ---------------------------------------------------------------------------------------------------------------


def test_group_view_shape():
    np.testing.assert_array_equal(group_view([1, 2, 3, 4, 5, 6], 3), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize("function", [group_view, grpo, psr, nsr, w_reinforce, zero_variance_groups])
def test_batch_not_divisible_into_groups(function):
    with pytest.raises(ValueError, match=r"batch of 7 completions does not divide into groups of 4"):
        function([1, 0, 1, 0, 1, 0, 1], 4)


@pytest.mark.parametrize(
    "values, group_size, message",
    [
        ([1, 0], 0, "group_size must be a positive integer"),
        ([1, 0], 1.5, "group_size must be a positive integer"),
        ([1, 0], True, "group_size must be a positive integer"),
        ([], 4, "empty batch"),
        ([[1, 0], [0, 1]], 2, r"1-D sequence\), got shape \(2, 2\)"),
        ([1, float("nan"), 0, 1], 2, r"non-finite values at indices \[1\]"),
    ],
)
def test_group_view_rejects(values, group_size, message):
    with pytest.raises(ValueError, match=message):
        group_view(values, group_size)


@pytest.mark.parametrize("function", [psr, nsr])
def test_unknown_semantics_lists_valid(function):
    with pytest.raises(ValueError, match=r"unknown semantics 'zhu'; valid semantics: paper, source"):
        function([1, 0], 2, semantics="zhu")


@pytest.mark.parametrize("function", [grpo, psr, nsr])
def test_unknown_scale_lists_valid(function):
    with pytest.raises(ValueError, match=r"unknown scale 'std'; valid scales: group, batch, none"):
        function([1, 0], 2, scale="std")


@pytest.mark.parametrize(
    "function, kwargs",
    [(psr, {"semantics": "source"}), (nsr, {"semantics": "source"}), (w_reinforce, {})],
)
def test_zhu_estimators_need_binary_rewards(function, kwargs):
    with pytest.raises(ValueError, match=r"needs 0/1 rewards.*-0.5"):
        function([1, -0.5], 2, **kwargs)


@pytest.mark.parametrize("lam", [-0.1, float("inf"), "0.1", True])
def test_w_reinforce_rejects_bad_lam(lam):
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        w_reinforce([1, 0], 2, lam=lam)


def test_unknown_advantage_lists_valid():
    with pytest.raises(ValueError, match=r"unknown advantage 'ppo'; valid advantages: grpo, psr, nsr, w_reinforce"):
        compute("ppo", [1, 0], 2)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("grpo", {"semantics": "source"}, r"advantage 'grpo' takes no option 'semantics'; valid options: scale, eps"),
        ("w_reinforce", {"lambda_": 0.1}, r"takes no option 'lambda_'; valid options: lam"),
        ("psr", {"eps": 0.1}, r"takes no option 'eps'; valid options: semantics, scale"),
    ],
)
def test_unknown_option_lists_valid(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute(name, [1, 0], 2, **kwargs)


def test_docstring_examples():
    result = doctest.testmod(adv)
    assert result.attempted >= 7 and result.failed == 0
