"""pass@k (mtalign/passk.py, STUDY.md §2): the unbiased estimator against hand arithmetic and the binomial formula,
the bootstrap curve over problems, the k grid, and the scalar summaries."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from mtalign import passk


# -- the estimator --------------------------------------------------------------------------------
@pytest.mark.parametrize("n, c, k, expected", [
    (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (6, 2, 3, 0.8),  # 1 - C(4,3)/C(6,3) = 1 - 4/20
    (10, 3, 1, 0.3),  # k = 1 is the fraction correct: 3/10
    (8, 1, 4, 0.5),  # one correct among 8, 4 drawn: it is in the draw half the time
    (5, 0, 3, 0.0),  # c = 0: nothing to find
    (5, 5, 1, 1.0),  # c = n: every draw is correct
    (5, 1, 5, 1.0),  # k = n: the draw is every sample, and one is correct
    (5, 0, 5, 0.0),  # k = n with c = 0 is still 0
    (5, 3, 3, 1.0),  # n - c = 2 < k = 3: any 3 samples include a correct one
])
def test_pass_at_k_by_hand(n, c, k, expected):
    assert passk.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_exactly_one_when_fewer_wrong_than_k():
    # not 1 - 1e-16: the short-cut must give exactly 1
    for n, c, k in [(4, 1, 4), (10, 8, 3), (64, 60, 5), (64, 64, 64)]:
        assert passk.pass_at_k(n, c, k) == 1.0


def _binomial(n: int, c: int, k: int) -> Fraction:
    """The textbook form with exact integers (math.comb is 0 when n - c < k, which gives 1)."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


TABLE = [(n, c, k) for n in (1, 2, 3, 7, 16, 33, 64) for c in sorted({0, 1, n // 3, n // 2, n - 1, n}) if 0 <= c <= n
         for k in sorted({1, 2, n // 2, n - 1, n}) if 1 <= k <= n]


@pytest.mark.parametrize("n, c, k", TABLE)
def test_pass_at_k_agrees_with_binomial_formula(n, c, k):
    assert passk.pass_at_k(n, c, k) == pytest.approx(float(_binomial(n, c, k)), abs=1e-12)


def test_pass_at_k_stable_where_binomials_overflow_floats():
    # C(2000, 1000) has ~600 digits: far beyond a float; the product form stays exact to rounding
    n, c, k = 2000, 3, 1000
    assert math.comb(n, k) > 1e308
    assert passk.pass_at_k(n, c, k) == pytest.approx(float(_binomial(n, c, k)), abs=1e-12)
    assert passk.pass_at_k(10_000, 1, 1) == pytest.approx(1e-4, rel=1e-9)


@pytest.mark.parametrize("n, c, k, what", [
    (5, -1, 1, "c"),  # negative count
    (5, 6, 1, "c"),  # more correct than samples
    (5, 2, 0, "k"),  # k < 1
    (5, 2, 6, "k"),  # k > n: never clamped to n
    (5, 2, -3, "k"),
])
def test_pass_at_k_rejects_bad_counts(n, c, k, what):
    with pytest.raises(ValueError, match=f"{what}="):
        passk.pass_at_k(n, c, k)


# -- the k grid -----------------------------------------------------------------------------------
@pytest.mark.parametrize("n, expected", [
    (1, [1]),
    (2, [1, 2]),
    (3, [1, 2, 3]),  # n itself is appended when it is not a power of two
    (8, [1, 2, 4, 8]),
    (10, [1, 2, 4, 8, 10]),
    (64, [1, 2, 4, 8, 16, 32, 64]),
])
def test_default_ks(n, expected):
    assert passk.default_ks(n) == expected


def test_validate_ks_sorts_and_deduplicates():
    assert passk.validate_ks([8, 1, 4, 1], n=8) == [1, 4, 8]
    assert passk.validate_ks([np.int64(2)], n=4) == [2]


@pytest.mark.parametrize("ks", [[0], [-1, 2], [1, 9], [2, 64], [1.5]])
def test_validate_ks_errors_instead_of_clamping(ks):
    with pytest.raises(ValueError) as err:
        passk.validate_ks(ks, n=8)
    assert "1..n" in str(err.value) and "n=8" in str(err.value)  # says what is valid


# -- the curve over problems -----------------------------------------------------------------------
N = 8
CORRECT = [0, 1, 0, 3, 8, 2, 0, 5, 1, 7, 0, 4, 6, 0, 2, 1, 8, 0, 3, 5]


def test_curve_estimate_is_the_mean_of_per_problem_values():
    result = passk.curve(N, CORRECT, seed=0)
    assert result["k"] == [1, 2, 4, 8]
    for i, k in enumerate(result["k"]):
        by_hand = sum(float(_binomial(N, c, k)) for c in CORRECT) / len(CORRECT)
        assert result["pass_at_k"][i] == pytest.approx(by_hand, abs=1e-12)
    assert result["pass_at_k"][0] == pytest.approx(sum(CORRECT) / (N * len(CORRECT)))  # pass@1 = mean accuracy
    assert result["n"] == N and result["problems"] == len(CORRECT)


def test_curve_intervals_bracket_the_estimate_and_have_width():
    result = passk.curve(N, CORRECT, seed=0)
    for low, value, high in zip(result["ci_low"], result["pass_at_k"], result["ci_high"]):
        assert low <= value <= high
        assert high - low > 0.05  # 20 problems this mixed leave real uncertainty
    # a 50% interval is narrower than the 95% one
    narrow = passk.curve(N, CORRECT, confidence=0.5, seed=0)
    assert all(nh - nl < h - l for nl, nh, l, h in
               zip(narrow["ci_low"], narrow["ci_high"], result["ci_low"], result["ci_high"]))


def test_curve_intervals_degenerate_when_every_problem_alike():
    # resampling identical problems changes nothing
    result = passk.curve(N, [3] * 12, seed=0)
    for low, value, high in zip(result["ci_low"], result["pass_at_k"], result["ci_high"]):
        assert low == pytest.approx(value, abs=1e-12) and high == pytest.approx(value, abs=1e-12)


def test_curve_is_deterministic_in_its_seed():
    a, b = passk.curve(N, CORRECT, seed=3), passk.curve(N, CORRECT, seed=3)
    assert a == b
    other = passk.curve(N, CORRECT, seed=4)
    assert other["pass_at_k"] == a["pass_at_k"]  # the estimate does not depend on the bootstrap
    assert (other["ci_low"], other["ci_high"]) != (a["ci_low"], a["ci_high"])
    assert a["bootstrap_seed"] == 3


def test_curve_rejects_bad_input():
    with pytest.raises(ValueError, match="no problems"):
        passk.curve(N, [])
    with pytest.raises(ValueError, match="invalid k"):
        passk.curve(4, [1, 2], ks=[1, 8])  # k > n is an error, not a silent clamp
    with pytest.raises(ValueError, match="c <= n"):
        passk.curve(4, [1, 5])


def test_per_problem_table_shape():
    table = passk.per_problem(4, [0, 4, 2], [1, 4])
    assert table.shape == (3, 2)
    assert table.tolist() == [[0.0, 0.0], [1.0, 1.0], [0.5, 1.0]]


# -- summaries -------------------------------------------------------------------------------------
def test_summaries_on_a_hand_example():
    # k = 1, 2, 4 sit at log2 k = 0, 1, 2; trapezoids: (0.2 + 0.5) / 2 * 1 + (0.5 + 0.8) / 2 * 1 = 0.35 + 0.65 = 1.0,
    # divided by the log2 range 2 - 0: auc 0.5
    result = {"k": [1, 2, 4], "pass_at_k": [0.2, 0.5, 0.8]}
    assert passk.summaries(result) == pytest.approx({"pass@1": 0.2, "pass@4": 0.8, "auc_log_k": 0.5})


def test_summaries_edge_cases():
    # one k: pass@1 and pass@k_max are the same key, and the area is the value itself
    assert passk.summaries({"k": [1], "pass_at_k": [0.3]}) == pytest.approx({"pass@1": 0.3, "auc_log_k": 0.3})
    flat = passk.summaries({"k": [1, 8, 64], "pass_at_k": [0.4, 0.4, 0.4]})
    assert flat["auc_log_k"] == pytest.approx(0.4)  # a flat curve's normalised area is its height
    no_one = passk.summaries({"k": [2, 4], "pass_at_k": [0.5, 0.6]})
    assert math.isnan(no_one["pass@1"])  # pass@1 is not invented when k = 1 was not measured
    assert no_one["pass@4"] == 0.6


def test_summaries_of_a_real_curve():
    result = passk.curve(N, CORRECT, seed=0)
    s = passk.summaries(result)
    assert s["pass@1"] == result["pass_at_k"][0] and s[f"pass@{N}"] == result["pass_at_k"][-1]
    assert s["pass@1"] <= s["auc_log_k"] <= s[f"pass@{N}"]  # pass@k rises with k, so the mean lies between
