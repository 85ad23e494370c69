"""Advantage estimators of the study (STUDY.md §3, RQ3 sample polarity): numpy in, numpy out.

Every function takes one reward per completion in group order (completions g*group_size .. (g+1)*group_size-1
answer one prompt) and returns one advantage per completion; the engine turns them into torch tensors.

- `grpo`: group-normalised advantages exactly as TRL 1.16's GRPOTrainer computes them (the paper's estimator).
- `psr` / `nsr`: positive- / negative-sample reinforcement. `semantics="paper"` masks the GRPO advantages (the
  paper's code); `semantics="source"` is Zhu et al. 2025, "The Surprising Effectiveness of Negative Reinforcement in
  LLM Reasoning": unnormalised +1 on correct / -1 on wrong samples.
- `w_reinforce`: Zhu et al.'s weighted REINFORCE, +lam on correct and -1 on wrong samples.
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

# Where a variant's meaning differs between the paper's code and the paper it tests (STUDY.md §3).
SEMANTICS = ("paper", "source")
# TRL 1.16's `scale_rewards` values (GRPOConfig), with the same meaning.
SCALES = ("group", "batch", "none")


def is_integer(value) -> bool:
    """An int (numpy ints included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """A finite real number, not a bool."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return bool(np.isfinite(value))


def check_semantics(semantics: str) -> str:
    """`semantics` itself, or a ValueError listing the valid values."""
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown semantics {semantics!r}; valid semantics: {', '.join(SEMANTICS)}")
    return semantics


def group_view(values, group_size: int) -> np.ndarray:
    """Rewards (or advantages) as a [groups, group_size] float array; a ValueError if they do not divide.

    >>> group_view([1, 0, 0, 1], 2)
    array([[1., 0.],
           [0., 1.]])
    """
    if not is_integer(group_size) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"expected one value per completion (a 1-D sequence), got shape {array.shape}")
    if array.size == 0:
        raise ValueError("expected at least one value per completion, got an empty batch")
    if array.size % group_size:
        raise ValueError(
            f"a batch of {array.size} completions does not divide into groups of {group_size} "
            f"({array.size} % {group_size} = {array.size % group_size}); completions must come in whole groups"
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        # TRL treats NaN as "unscorable"; none of our rewards produce one, so a NaN here is a bug upstream.
        raise ValueError(f"rewards must be finite; non-finite values at indices {bad[:10].tolist()}")
    return array.reshape(-1, group_size)


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")


def _binary(rewards, group_size: int, who: str) -> np.ndarray:
    """Rewards as groups, insisting they are 0/1: Zhu et al.'s estimators are defined for verifiable rewards only."""
    grouped = group_view(rewards, group_size)
    if not np.isin(grouped, (0.0, 1.0)).all():
        odd = sorted(set(grouped[~np.isin(grouped, (0.0, 1.0))].tolist()))[:5]
        raise ValueError(f"{who} needs 0/1 rewards (correct or wrong), got values such as {odd}")
    return grouped


def grpo(rewards, group_size: int, scale: str = "group", eps: float = 1e-4) -> np.ndarray:
    """GRPO advantages (Shao et al. 2024, DeepSeekMath), computed as TRL 1.16 GRPOTrainer does.

    Mirrors `_generate_and_score_completions` (trl/trainer/grpo_trainer.py lines 2765-2787, trl 1.16.0):
    the baseline is always the group mean; `scale="group"` divides by the group's unbiased standard deviation
    (Bessel-corrected `nanstd`) plus `eps`; `scale="batch"` divides by the unbiased standard deviation of the whole
    batch plus `eps` (the baseline stays the group mean); `scale="none"` does not divide. A group of one has
    standard deviation 0, as in TRL. Groups whose rewards are all equal get advantage 0.

    >>> grpo([1, 0, 0, 0, 1, 1, 1, 1], group_size=4).round(3)
    array([ 1.5, -0.5, -0.5, -0.5,  0. ,  0. ,  0. ,  0. ])
    """
    _check_scale(scale)
    grouped = group_view(rewards, group_size)
    centred = grouped - grouped.mean(axis=1, keepdims=True)
    if scale == "none":
        return centred.ravel()
    if scale == "group":
        std = grouped.std(axis=1, ddof=1, keepdims=True) if group_size > 1 else np.zeros((len(grouped), 1))
    else:
        std = grouped.std(ddof=1) if grouped.size > 1 else 0.0
    return (centred / (std + eps)).ravel()


def psr(rewards, group_size: int, semantics: str = "paper", scale: str = "group") -> np.ndarray:
    """Positive-sample reinforcement: learn only from rewarded samples (RQ3).

    paper: the GRPO advantages (`scale` as in `grpo`) kept where reward > 0, 0 elsewhere.
    source (Zhu et al. 2025, PSR): +1 where the reward is 1, 0 elsewhere, no normalisation; needs 0/1 rewards and
    ignores `scale`.

    >>> psr([1, 0, 0, 0], 4).round(3)
    array([1.5, 0. , 0. , 0. ])
    >>> psr([1, 0, 0, 0], 4, semantics="source")
    array([1., 0., 0., 0.])
    """
    check_semantics(semantics)
    _check_scale(scale)
    if semantics == "source":
        return (_binary(rewards, group_size, "psr with semantics='source'") == 1.0).astype(np.float64).ravel()
    flat = group_view(rewards, group_size).ravel()
    return np.where(flat > 0, grpo(flat, group_size, scale=scale), 0.0)


def nsr(rewards, group_size: int, semantics: str = "paper", scale: str = "group") -> np.ndarray:
    """Negative-sample reinforcement: learn only from unrewarded samples (RQ3).

    paper: the GRPO advantages (`scale` as in `grpo`) kept where reward < 1, 0 elsewhere; an all-wrong group gets
    0 everywhere, since its GRPO advantages are 0.
    source (Zhu et al. 2025, NSR): -1 where the reward is 0, 0 elsewhere, no normalisation, so all-wrong groups
    still push probability away from every sample; needs 0/1 rewards and ignores `scale`.

    >>> nsr([1, 0, 0, 0], 4).round(3)
    array([ 0. , -0.5, -0.5, -0.5])
    >>> nsr([0, 0, 0, 0], 4, semantics="source")
    array([-1., -1., -1., -1.])
    """
    check_semantics(semantics)
    _check_scale(scale)
    if semantics == "source":
        return -(_binary(rewards, group_size, "nsr with semantics='source'") == 0.0).astype(np.float64).ravel()
    flat = group_view(rewards, group_size).ravel()
    return np.where(flat < 1, grpo(flat, group_size, scale=scale), 0.0)


def w_reinforce(rewards, group_size: int, lam: float = 0.1) -> np.ndarray:
    """Weighted REINFORCE (Zhu et al. 2025): +lam on correct samples, -1 on wrong ones, no normalisation.

    Zhu et al. recommend lam = 0.1: mostly negative reinforcement, with a little positive reinforcement.

    >>> w_reinforce([1, 0, 1, 0], 2)
    array([ 0.1, -1. ,  0.1, -1. ])
    """
    if not is_number(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    grouped = _binary(rewards, group_size, "w_reinforce")
    return np.where(grouped == 1.0, float(lam), -1.0).ravel()


def zero_variance_groups(rewards, group_size: int) -> np.ndarray:
    """One bool per group: True where all its rewards are exactly equal (DAPO's dynamic sampling drops these).

    Such groups give GRPO no signal: their advantages are all 0.

    >>> zero_variance_groups([1, 1, 0, 1, 0, 0], 2)
    array([ True, False,  True])
    """
    grouped = group_view(rewards, group_size)
    return (grouped == grouped[:, :1]).all(axis=1)


ADVANTAGES: dict[str, Callable[..., np.ndarray]] = {
    "grpo": grpo,
    "psr": psr,
    "nsr": nsr,
    "w_reinforce": w_reinforce,
}


def get_advantage(name: str) -> Callable[..., np.ndarray]:
    """The estimator called `name`, or a ValueError listing the valid names."""
    if name not in ADVANTAGES:
        raise ValueError(f"unknown advantage {name!r}; valid advantages: {', '.join(ADVANTAGES)}")
    return ADVANTAGES[name]


def options(name: str) -> tuple[str, ...]:
    """The keyword arguments estimator `name` accepts besides rewards and group_size."""
    parameters = inspect.signature(get_advantage(name)).parameters
    return tuple(p for p in parameters if p not in ("rewards", "group_size"))


def compute(name: str, rewards, group_size: int, **kwargs) -> np.ndarray:
    """Advantages by estimator name; an unknown name or keyword is a ValueError listing the valid ones.

    >>> compute("w_reinforce", [1, 0], 2, lam=0.5)
    array([ 0.5, -1. ])
    """
    function = get_advantage(name)
    valid = options(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"advantage {name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    return function(rewards, group_size, **kwargs)
