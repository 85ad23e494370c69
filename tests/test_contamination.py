"""The partial-prompt contamination test (mtalign/contamination.py, STUDY.md §5): ROUGE-L on hand examples, the
prefix/rest split, the bootstrap difference, the scoring of continuations, and the Red/Green/Gray colouring."""

from __future__ import annotations

import pytest

from mtalign import contamination, sampling, toyworld
from mtalign.contamination import bootstrap_difference, classify, rouge_l, split_text
from mtalign.models import LoadedModel
from mtalign.tasks import get_task


# -- ROUGE-L ---------------------------------------------------------------------------------------------
def test_rouge_l_identical_and_disjoint():
    assert rouge_l(list("^7+5-3="), list("^7+5-3=")) == 1.0
    assert rouge_l(list("abc"), list("xyz")) == 0.0
    assert rouge_l([], list("abc")) == 0.0 and rouge_l(list("abc"), []) == 0.0 and rouge_l([], []) == 0.0


def test_rouge_l_worked_examples():
    # LCS("abcbdab", "bdcaba") = 4 (e.g. "bcba"): P = 4/7, R = 4/6, F1 = 2PR / (P + R) = (32/42) / (52/42) = 8/13
    assert rouge_l(list("abcbdab"), list("bdcaba")) == pytest.approx(8 / 13)
    # words: LCS = "the cat on the mat" = 5 of 6 on each side, so P = R = F1 = 5/6
    assert rouge_l("the cat sat on the mat".split(), "the cat is on the mat".split()) == pytest.approx(5 / 6)
    # a prefix: LCS = 3, P = 3/3, R = 3/6, F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert rouge_l(list("abc"), list("abcdef")) == pytest.approx(2 / 3)
    # order matters (a subsequence, not a bag): "ba" vs "ab" share only one in order: P = R = 1/2
    assert rouge_l(list("ba"), list("ab")) == pytest.approx(0.5)


def test_rouge_l_is_symmetric():
    a, b = list("^12_4/3_21/"), list("^1234/3421/")
    assert rouge_l(a, b) == rouge_l(b, a)


# -- split --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, fraction, prefix, rest", [
    ("abcdefghij", 0.6, "abcdef", "ghij"),
    ("abcdefghij", 0.5, "abcde", "fghij"),
    ("ab", 0.01, "a", "b"),  # at least one character shown...
    ("ab", 0.99, "a", "b"),  # ...and at least one left to predict
])
def test_split_text(text, fraction, prefix, rest):
    assert split_text(text, fraction) == (prefix, rest)


@pytest.mark.parametrize("fraction", [0, 1, -0.5, 1.5])
def test_split_text_rejects_fractions_outside_0_1(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_text("abcdef", fraction)


# -- bootstrap difference ----------------------------------------------------------------------------
def test_bootstrap_difference_sign_and_interval():
    high, low = [0.9, 0.8, 1.0, 0.85, 0.95] * 4, [0.2, 0.3, 0.1, 0.25, 0.15] * 4
    diff, lo, hi = bootstrap_difference(high, low)
    assert diff == pytest.approx(0.7) and 0 < lo <= diff <= hi
    diff, lo, hi = bootstrap_difference(low, high)
    assert diff == pytest.approx(-0.7) and lo <= diff <= hi < 0
    assert bootstrap_difference([0.5] * 6, [0.5] * 9) == (0.0, 0.0, 0.0)  # nothing to resample
    assert bootstrap_difference(high, low, seed=1) == bootstrap_difference(high, low, seed=1)


def test_bootstrap_difference_spans_zero_for_overlapping_samples():
    a, b = [0.1, 0.9, 0.4, 0.6, 0.5, 0.3], [0.2, 0.8, 0.5, 0.5, 0.6, 0.4]
    _, lo, hi = bootstrap_difference(a, b)
    assert lo < 0 < hi


# -- scoring continuations ------------------------------------------------------------------------------
def test_partial_prompt_scores_compare_the_continuation_with_the_rest(monkeypatch):
    """The sampler is scripted (to isolate the scoring from a model): problem 0 is continued exactly and then
    rambles on (only the first len(rest) characters count), problem 1 half right, problem 2 wrong."""
    task = get_task("chain_sum")
    problems = task.problems("eval", n=3)
    rests = [split_text(task.prompt(p, "compact"), 0.6)[1] for p in problems]
    continuations = [rests[0] + "<think>1+1=2", rests[1][:len(rests[1]) // 2] + "#" * 20, "#" * 20]
    seen = {}

    class Scripted:
        def __init__(self, model, tokenizer):
            pass

        def generate(self, prompts, params, progress=False):
            seen["prompts"], seen["params"] = prompts, params
            return [[sampling.Sample(text, [], [])] for text in continuations]

    monkeypatch.setattr(sampling, "TransformersSampler", Scripted)
    loaded = LoadedModel("scripted", None, toyworld.build_tokenizer(), "compact", "")
    scores = contamination.partial_prompt_scores(loaded, task, problems, fraction=0.6)
    assert seen["prompts"] == [split_text(task.prompt(p, "compact"), 0.6)[0] for p in problems]
    assert seen["params"].temperature == 0  # greedy
    assert seen["params"].max_new_tokens >= max(len(r) for r in rests)  # one character is one token here
    assert scores["exact"] == [1.0, 0.0, 0.0]
    assert scores["rouge_l"][0] == 1.0 and 0 < scores["rouge_l"][1] < 1 and scores["rouge_l"][2] == 0.0


# -- colours ---------------------------------------------------------------------------------------------
MEMORISED, FRESH = [0.95, 0.9, 1.0, 0.85] * 5, [0.3, 0.4, 0.35, 0.25] * 5


@pytest.mark.parametrize("eval_rouge, pass_at_1, reference, colour", [
    (MEMORISED, 0.6, FRESH, "Red"),  # eval problems continued far better than fresh ones: contaminated
    (MEMORISED, 0.05, FRESH, "Red"),  # contamination wins over weak alignment
    (FRESH, 0.6, FRESH[::-1], "Green"),  # no better than fresh ones, and strong
    (FRESH, 0.05, FRESH[::-1], "Gray"),  # clean and weak
    (FRESH, 0.6, MEMORISED, "Green"),  # worse than the reference is not contamination
    ([0.9] * 10, 0.6, None, "Red"),  # no reference: the paper's absolute reading, mean >= 0.7
    ([0.7] * 10, 0.05, None, "Red"),  # exactly at the threshold counts
    ([0.3] * 10, 0.6, None, "Green"),
    ([0.3] * 10, 0.2, None, "Green"),  # pass@1 exactly at the strong threshold counts as strong
    ([0.3] * 10, 0.19, None, "Gray"),
    ([0.9] * 10, 0.6, [], "Red"),  # an empty reference is no reference
])
def test_classify(eval_rouge, pass_at_1, reference, colour):
    verdict = classify(eval_rouge, pass_at_1, reference)
    assert verdict.colour == colour
    assert verdict.contaminated is (colour == "Red")
    assert verdict.strong is (pass_at_1 >= 0.2)
    assert f"pass@1 {pass_at_1:.3f}" in verdict.evidence
    assert ("eval - fresh" in verdict.evidence) is bool(reference)  # says which reading decided


def test_classify_thresholds_are_parameters():
    assert classify([0.5] * 4, 0.3, rouge_threshold=0.4).colour == "Red"
    assert classify([0.5] * 4, 0.3, strong_threshold=0.5).colour == "Gray"
