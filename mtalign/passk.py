"""pass@k, the study's measure of model-task alignment (STUDY.md §2). It exists here once.

For a problem with n samples of which c are correct, the unbiased estimator (Chen et al. 2021, "Evaluating Large
Language Models Trained on Code") is

    pass@k = 1 - C(n - c, k) / C(n, k) = 1 - prod_{i = n - c + 1}^{n} (1 - k / i)

computed as the product on the right, which is stable where the binomials overflow; it is exactly 1 when
n - c < k. The estimate for a task is its mean over problems. Peers also call "pass@k" the max over n samples,
bootstrap best-of-N and avg@n; we use only this estimator.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `c` correct among `n` samples.

    >>> pass_at_k(4, 1, 1)
    0.25
    >>> pass_at_k(4, 1, 4)
    1.0
    """
    if not (0 <= c <= n):
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not (1 <= k <= n):
        raise ValueError(f"k must be in 1..n={n}, got k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def default_ks(n: int) -> list[int]:
    """k = 1, 2, 4, ... up to n (and n itself when it is not a power of two)."""
    ks = [1 << i for i in range(int(np.log2(n)) + 1)]
    return ks if ks[-1] == n else ks + [n]


def validate_ks(ks: Sequence[int], n: int) -> list[int]:
    """The k values, sorted; k < 1 or k > n is an error (never silently clamped)."""
    bad = [k for k in ks if not isinstance(k, (int, np.integer)) or k < 1 or k > n]
    if bad:
        raise ValueError(f"invalid k {bad}: every k must be an integer in 1..n (n={n} samples per problem)")
    return sorted(set(int(k) for k in ks))


def per_problem(n: int, correct: Sequence[int], ks: Sequence[int]) -> np.ndarray:
    """Matrix [problem, k] of per-problem pass@k."""
    ks = validate_ks(ks, n)
    return np.array([[pass_at_k(n, int(c), k) for k in ks] for c in correct], dtype=float).reshape(len(correct), len(ks))


def curve(n: int, correct: Sequence[int], ks: Sequence[int] | None = None, n_boot: int = 1000,
          confidence: float = 0.95, seed: int = 0) -> dict:
    """pass@k over k with percentile-bootstrap confidence intervals, resampling problems.

    Returns {"k": [...], "pass_at_k": [...], "ci_low": [...], "ci_high": [...], "n": n, "problems": P, ...}.
    """
    if len(correct) == 0:
        raise ValueError("no problems: pass@k needs at least one problem")
    ks = validate_ks(ks if ks is not None else default_ks(n), n)
    table = per_problem(n, correct, ks)
    estimate = table.mean(axis=0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(correct), size=(n_boot, len(correct)))
    boot = table[idx].mean(axis=1)  # [n_boot, k]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    return {"k": ks, "pass_at_k": estimate.tolist(), "ci_low": low.tolist(), "ci_high": high.tolist(),
            "n": n, "problems": len(correct), "confidence": confidence, "n_boot": n_boot, "bootstrap_seed": seed}


def summaries(result: dict) -> dict[str, float]:
    """Scalar summaries of a curve: pass@1, pass@k_max, and the area under pass@k over log2 k (normalised to 0-1)."""
    ks, values = np.array(result["k"], dtype=float), np.array(result["pass_at_k"])
    if len(ks) > 1:
        x = np.log2(ks)
        auc = float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))
    else:
        auc = float(values[0])
    return {"pass@1": float(values[0]) if ks[0] == 1 else float("nan"), f"pass@{int(ks[-1])}": float(values[-1]),
            "auc_log_k": auc}
