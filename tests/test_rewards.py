"""Pins every reward variant of the study (mtalign/rewards.py) on hand-built groups of real completions, table-driven.

The problems are real reasoning-gym problems of the real tasks; the completions are strings a model could write.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import mtalign.rewards as rw
from mtalign.advantages import grpo
from mtalign.rewards import (
    REWARDS, SEMANTICS, RewardOutput, Rollouts, base_metrics, compute, entropy_min, get_reward, majority_vote, needs,
    pseudo_labels, random, random_draws, uses_entropy_loss,
)
from mtalign.tasks import get_task
from mtalign.tasks.gym import ChainSum


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Caches and outputs in a temporary folder per test; one thread per process."""


CHAIN = get_task("chain_sum")
SUDOKU = get_task("mini_sudoku")
_CHAIN_PROBLEMS = CHAIN.problems("train", n=3, seed=0)
_SUDOKU_PROBLEMS = SUDOKU.problems("train", n=2, seed=0)
# The literal completions below are written for these problems; fail clearly if the generator ever changes.
P = _CHAIN_PROBLEMS[1]  # ^4-1-7=   -> -4 (scratchpad 4-1=3,3-7=-4; the lagging convention answer is 3)
Q = _CHAIN_PROBLEMS[2]  # ^1-5-2=   -> -6
S = _SUDOKU_PROBLEMS[1]  # ^21_3/4_1_/1234/3_21= -> 2143/4312/1234/3421


def test_fixture_problems_are_the_ones_the_completions_answer():
    assert (P.metadata["compact"], P.answer) == ("^4-1-7=", "-4")
    assert (Q.metadata["compact"], Q.answer) == ("^1-5-2=", "-6")
    assert S.metadata["compact"] == "^21_3/4_1_/1234/3_21="
    assert SUDOKU.canonical(S.answer) == "2143/4312/1234/3421"


# Completions for P (gold -4). F = FORMAT, C = CORRECT.
RIGHT = "<think>4-1=3,3-7=-4</think><answer>-4</answer>"  # F C
WRONG = "<think>4-1=3,3-7=-4</think><answer>3</answer>"  # F, answers the lagging running total
UNF_RIGHT = "The answer is <answer>-4</answer>"  # C, no think block
UNF_WRONG = "<answer>3</answer><answer>-4</answer>"  # two answer tags: unformatted; the first (3) is the answer
NO_ANSWER = "<think>4-1=3,3-7=-4</think>"  # no answer tag at all
EMPTY_ANSWER = "<think>4-1=3</think><answer></answer>"  # F (an empty tag is still the format), no answer content
MIXED = [RIGHT, WRONG, UNF_RIGHT, UNF_WRONG, NO_ANSWER, EMPTY_ANSWER]

ALL_WRONG = [WRONG, "<think>4-1=3,3-7=-3</think><answer>-3</answer>", "<think>4+1=5</think><answer>5</answer>", WRONG]
ALL_RIGHT = [
    RIGHT,
    "<think> 4-1=3, 3-7=-4 </think> <answer> -4 </answer>",  # spaces around everything: still F C
    "<think>4-1=3\n3-7=-4</think>\n<answer>-4</answer>",  # a newline inside <think>: F (unless strict_paper_regex)
    RIGHT,
]
# A 2-2 tie between -4 (voted first) and 3, and extra TTRL votes that break it towards 3 (3, 3, one without an answer).
TIE = [RIGHT, WRONG, RIGHT, WRONG]
TIE_BREAKERS = [WRONG, "<answer>3</answer>", NO_ANSWER]
# Nothing here parses as an integer answer.
NOTHING_PARSES = ["", NO_ANSWER, "<answer>four</answer>", EMPTY_ANSWER]
# Completions for Q (gold -6) that agree on the wrong -4.
Q_WRONG_CONSENSUS = [
    "<answer>-4</answer>",
    "<think>1-5=-4</think><answer>-4</answer>",
    "<think>1-5=-4,-4-2=-6</think><answer>-6</answer>",
    "<answer>-4</answer>",
]
# Completions for the sudoku S (solution 2143/4312/1234/3421).
SUDOKU_GROUP = [
    "<think>13=4,22=3,24=2,42=4</think><answer>2143/4312/1234/3421</answer>",  # F C
    "<think>13=4</think><answer>2 1 4 3\n4 3 1 2\n1 2 3 4\n3 4 2 1</answer>",  # F C, same grid written in rows
    "<think>13=4</think><answer>2413/1324/4132/3241</answer>",  # F, the transposed grid: breaks the clues
    "<think>13=4</think><answer>2143/4312/1234/34</answer>",  # F, not a grid
]
# Junk a model (or a broken tokenizer) can produce: empty, 100 KB, answers hidden past the checking limit, bytes.
JUNK = [
    "",
    "x" * 100_000,
    "<think>" + "1" * 100_000 + "</think><answer>-4</answer>",
    "<answer>" * 12_500,
    b"\xff\xfe\x00<answer>-4",
]


def rollouts(groups, task=CHAIN, **kwargs) -> Rollouts:
    """Rollouts from [(problem, [completion, ...]), ...], all groups the same size."""
    size = len(groups[0][1])
    completions = [c for _, group in groups for c in group]
    problems = [p for p, group in groups for _ in group]
    return Rollouts(completions, problems, task, size, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# The definitions, one case per row: (reward, semantics, options, rollouts, expected rewards).
# ---------------------------------------------------------------------------------------------------------------

CASES = [
    # ground_truth, mixed group: only the formatted and correct completion scores.
    ("ground_truth", "paper", {}, lambda: rollouts([(P, MIXED)]), [1, 0, 0, 0, 0, 0]),
    # ground_truth, all-wrong group: nothing.
    ("ground_truth", "paper", {}, lambda: rollouts([(P, ALL_WRONG)]), [0, 0, 0, 0]),
    # ground_truth, all-right group: every variant of a right completion, spaces and newlines included.
    ("ground_truth", "paper", {}, lambda: rollouts([(P, ALL_RIGHT)]), [1, 1, 1, 1]),
    # ground_truth with the released code's regex (no DOTALL): a newline inside <think> loses the reward.
    ("ground_truth", "paper", {}, lambda: rollouts([(P, ALL_RIGHT)], strict_paper_regex=True), [1, 1, 0, 1]),
    # ground_truth has no separate source definition: "source" means the same.
    ("ground_truth", "source", {}, lambda: rollouts([(P, MIXED)]), [1, 0, 0, 0, 0, 0]),
    # ground_truth on the sudoku: any spelling of the valid grid counts; the transposed grid and a fragment do not.
    ("ground_truth", "paper", {}, lambda: rollouts([(S, SUDOKU_GROUP)], task=SUDOKU), [1, 1, 0, 0]),
    # format_only paper: FORMAT whatever the answer, the empty answer tag included.
    ("format_only", "paper", {}, lambda: rollouts([(P, MIXED)]), [1, 1, 0, 0, 0, 1]),
    # format_only source (Spurious Rewards, "a non-empty boxed answer exists"): any non-empty answer tag.
    ("format_only", "source", {}, lambda: rollouts([(P, MIXED)]), [1, 1, 1, 1, 0, 0]),
    # format_only paper, all-wrong group: all formatted, all rewarded.
    ("format_only", "paper", {}, lambda: rollouts([(P, ALL_WRONG)]), [1, 1, 1, 1]),
    # incorrect paper: FORMAT and not CORRECT (the empty answer is formatted and wrong).
    ("incorrect", "paper", {}, lambda: rollouts([(P, MIXED)]), [0, 1, 0, 0, 0, 1]),
    # incorrect paper, all-right group: nothing — the released math code would have given 1s here.
    ("incorrect", "paper", {}, lambda: rollouts([(P, ALL_RIGHT)]), [0, 0, 0, 0]),
    # incorrect paper, all-wrong group: everything.
    ("incorrect", "paper", {}, lambda: rollouts([(P, ALL_WRONG)]), [1, 1, 1, 1]),
    # incorrect source: the answer equals the base model's wrong label "3", formatted or not.
    ("incorrect", "source", {}, lambda: rollouts([(P, MIXED)], wrong_labels={P.id: "3"}), [0, 1, 0, 1, 0, 0]),
    # incorrect source, all-wrong group: only the wrong answers that match the label, not every wrong answer.
    ("incorrect", "source", {}, lambda: rollouts([(P, ALL_WRONG)], wrong_labels={P.id: " 3 "}), [1, 0, 0, 1]),
    # incorrect source on the sudoku: the label (transposed grid) matches whatever way the grid is written.
    ("incorrect", "source", {},
     lambda: rollouts([(S, SUDOKU_GROUP)], task=SUDOKU, wrong_labels={S.id: "2 4 1 3 1 3 2 4 4 1 3 2 3 2 4 1"}),
     [0, 0, 1, 0]),
    # majority_vote, mixed group: votes -4,3,-4,3 (the rest have no parseable answer) tie; -4 was voted first.
    ("majority_vote", "paper", {}, lambda: rollouts([(P, MIXED)]), [1, 0, 1, 0, 0, 0]),
    # majority_vote tie the other way round: 3 is voted first, so the wrong answer becomes the label.
    ("majority_vote", "paper", {}, lambda: rollouts([(P, [WRONG, RIGHT, UNF_WRONG, UNF_RIGHT])]), [1, 0, 1, 0]),
    # majority_vote, all-wrong group: a wrong consensus (3, twice) is rewarded.
    ("majority_vote", "paper", {}, lambda: rollouts([(P, ALL_WRONG)]), [1, 0, 0, 1]),
    # majority_vote, all-right group: unanimous.
    ("majority_vote", "paper", {}, lambda: rollouts([(P, ALL_RIGHT)]), [1, 1, 1, 1]),
    # majority_vote on the sudoku: two spellings of one grid vote together.
    ("majority_vote", "paper", {}, lambda: rollouts([(S, SUDOKU_GROUP)], task=SUDOKU), [1, 1, 0, 0]),
    # majority_vote, a group where nothing parses: no label, no reward.
    ("majority_vote", "paper", {}, lambda: rollouts([(P, NOTHING_PARSES)]), [0, 0, 0, 0]),
    # majority_vote source (TTRL): the extra votes (3, 3, and one without an answer) turn a -4 tie into label 3.
    ("majority_vote", "source", {}, lambda: rollouts([(P, TIE)], extra_votes=[TIE_BREAKERS]), [0, 1, 0, 1]),
    # majority_vote paper ignores extra votes: the tie goes to -4, voted first.
    ("majority_vote", "paper", {}, lambda: rollouts([(P, TIE)], extra_votes=[TIE_BREAKERS]), [1, 0, 1, 0]),
    # random paper with p=1: the gate alone decides, so exactly the formatted completions score.
    ("random", "paper", {"p": 1.0}, lambda: rollouts([(P, MIXED)]), [1, 1, 0, 0, 0, 1]),
    # random source with p=1: no gate, every completion scores whatever it says.
    ("random", "source", {"p": 1.0}, lambda: rollouts([(P, MIXED)]), [1, 1, 1, 1, 1, 1]),
    # random source with format_gate=True: the gate put back.
    ("random", "source", {"p": 1.0, "format_gate": True}, lambda: rollouts([(P, MIXED)]), [1, 1, 0, 0, 0, 1]),
    # random paper with format_gate=False: the gate removed.
    ("random", "paper", {"p": 1.0, "format_gate": False}, lambda: rollouts([(P, MIXED)]), [1, 1, 1, 1, 1, 1]),
    # random with p=0: never.
    ("random", "source", {"p": 0.0}, lambda: rollouts([(P, MIXED)]), [0, 0, 0, 0, 0, 0]),
    # entropy_min paper: the mean token log-prob of each completion (content does not matter).
    ("entropy_min", "paper", {},
     lambda: rollouts([(P, [RIGHT, WRONG])], token_logprobs=[[-0.1, -0.3], [-2.0, -1.0, -3.0]]), [-0.2, -2.0]),
    # entropy_min with RENT's signal: minus the mean token entropy.
    ("entropy_min", "paper", {"signal": "neg_entropy"},
     lambda: rollouts([(P, [RIGHT, WRONG])], token_entropies=[[0.5, 0.1], [2.0]]), [-0.3, -2.0]),
    # entropy_min with Intuitor's signal: the mean self-certainty.
    ("entropy_min", "paper", {"signal": "self_certainty"},
     lambda: rollouts([(P, [RIGHT, WRONG])], token_self_certainty=[[3.0, 4.0], [0.5, 0.5]]), [3.5, 0.5]),
]


@pytest.mark.parametrize(
    "name, semantics, kwargs, make, expected", CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)]
)
def test_definitions(name, semantics, kwargs, make, expected):
    out = compute(name, make(), semantics=semantics, **kwargs)
    assert isinstance(out, RewardOutput) and out.rewards.dtype == np.float64
    np.testing.assert_allclose(out.rewards, expected, rtol=0, atol=1e-12)
    # Calling the function directly gives the same as dispatching by name.
    np.testing.assert_array_equal(REWARDS[name](make(), semantics=semantics, **kwargs).rewards, out.rewards)


def test_scores_are_computed_once():
    # Each reward reads the cached r.scores; the verifier runs once per completion however many rewards are asked.
    class Counting(ChainSum):
        calls = 0

        def score(self, *args, **kwargs):
            Counting.calls += 1
            return super().score(*args, **kwargs)

    r = rollouts([(P, MIXED)], task=Counting(), wrong_labels={P.id: "3"}, extra_votes=[[WRONG]])
    for name in ("ground_truth", "format_only", "random", "incorrect", "majority_vote"):
        for semantics in SEMANTICS:
            compute(name, r, semantics=semantics)
    base_metrics(r)
    assert Counting.calls == len(MIXED)


# ---------------------------------------------------------------------------------------------------------------
# Majority vote: labels and metrics.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "groups, kwargs, semantics, labels, metrics",
    [
        # mixed group: -4 wins the tie (first voted); 4 of 6 completions vote; the label is right.
        ([(P, MIXED)], {}, "paper", [("-4", 2, 4)],
         {"pseudo_label_accuracy": 1.0, "label_agreement": 1.0, "vote_share": 0.5, "no_label_frac": 0.0}),
        # all-wrong group: wrong consensus 3 (2 of 4 votes); 2 of 4 rewards disagree with correctness.
        ([(P, ALL_WRONG)], {}, "paper", [("3", 2, 4)],
         {"pseudo_label_accuracy": 0.0, "label_agreement": 0.5, "vote_share": 0.5, "no_label_frac": 0.0}),
        # two groups, one right label (P, unanimous) and one wrong (Q answered -4 three times, -6 once): every Q reward
        # disagrees with correctness.
        ([(P, ALL_RIGHT), (Q, Q_WRONG_CONSENSUS)], {}, "paper",
         [("-4", 4, 4), ("-4", 3, 4)],
         {"pseudo_label_accuracy": 0.5, "label_agreement": 4 / 8, "vote_share": 7 / 8, "no_label_frac": 0.0}),
        # a group without any parseable answer: label None, which counts as a wrong label.
        ([(P, NOTHING_PARSES)], {}, "paper", [(None, 0, 0)],
         {"pseudo_label_accuracy": 0.0, "label_agreement": 1.0, "vote_share": 0.0, "no_label_frac": 1.0}),
        # TTRL: extra votes change the label from -4 (right) to 3 (wrong): pseudo-label accuracy drops to 0.
        ([(P, TIE)], {"extra_votes": [TIE_BREAKERS]}, "source", [("3", 4, 6)],
         {"pseudo_label_accuracy": 0.0, "label_agreement": 0.0, "vote_share": 4 / 6, "no_label_frac": 0.0}),
        # TTRL: extra votes alone can supply a label to a group whose own completions have no answer.
        ([(P, [NO_ANSWER, ""])], {"extra_votes": [[RIGHT]]}, "source", [("-4", 1, 1)],
         {"pseudo_label_accuracy": 1.0, "label_agreement": 1.0, "vote_share": 1.0, "no_label_frac": 0.0}),
    ],
)
def test_majority_vote_labels_and_metrics(groups, kwargs, semantics, labels, metrics):
    r = rollouts(groups, **kwargs)
    assert pseudo_labels(r, semantics) == labels
    out = majority_vote(r, semantics=semantics)
    assert out.metrics == pytest.approx(metrics)


def test_majority_vote_label_accuracy_on_sudoku_uses_the_verifier():
    # The label is the canonical grid; the task's verifier (any valid grid keeping the clues) judges it.
    out = majority_vote(rollouts([(S, SUDOKU_GROUP)], task=SUDOKU))
    assert out.metrics["pseudo_label_accuracy"] == 1.0
    wrong = majority_vote(rollouts([(S, SUDOKU_GROUP[2:3] * 3 + SUDOKU_GROUP[:1])], task=SUDOKU))
    assert wrong.metrics["pseudo_label_accuracy"] == 0.0 and wrong.rewards.tolist() == [1, 1, 1, 0]


# ---------------------------------------------------------------------------------------------------------------
# Random reward: reproducible, different across steps, rate ~p.
# ---------------------------------------------------------------------------------------------------------------


def _coins(seed=0, step=0, draw=0, n=64, p=0.5):
    return random(rollouts([(P, [RIGHT] * n)], seed=seed, step=step, draw=draw), p=p).rewards


def test_random_is_reproducible_from_seed_and_step():
    # Two separately built batches with the same (seed, step) get the same coins.
    np.testing.assert_array_equal(_coins(seed=3, step=7), _coins(seed=3, step=7))


@pytest.mark.parametrize(
    "other",
    [
        # the next step draws new coins,
        {"seed": 3, "step": 8},
        # another seed draws new coins,
        {"seed": 4, "step": 7},
        # and so does the second generation batch of the same step (dynamic sampling).
        {"seed": 3, "step": 7, "draw": 1},
    ],
)
def test_random_differs_across_steps_seeds_and_draws(other):
    assert not np.array_equal(_coins(seed=3, step=7), _coins(**other))  # equal by chance with probability 2**-64


def test_random_coin_depends_on_index_not_batch_size():
    # Completion i gets the same coin in a batch of 8 as in a batch of 64.
    np.testing.assert_array_equal(_coins(n=8), _coins(n=64)[:8])
    np.testing.assert_array_equal(random_draws(1, 2, 5), random_draws(1, 2, 50)[:5])


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_random_rate_is_p(p):
    # 20,000 formatted completions over 100 steps: the rate is within 5 standard errors of p.
    n, steps = 200, 100
    rate = np.mean([_coins(seed=11, step=t, n=n, p=p).mean() for t in range(steps)])
    assert abs(rate - p) < 5 * np.sqrt(p * (1 - p) / (n * steps))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"p": 1.5}, r"p must be a probability in \[0, 1\], got 1.5"),
        ({"p": -0.1}, r"p must be a probability"),
        ({"format_gate": "yes"}, r"format_gate must be None .* True or False"),
    ],
)
def test_random_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        random(rollouts([(P, MIXED)]), **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Entropy minimisation: ordering and errors.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signal, field, confident, unsure",
    [
        # log-probs near 0 are a confident completion.
        (None, "token_logprobs", [-0.05, -0.1, -0.02], [-2.3, -1.1, -3.0]),
        # low token entropy is a confident completion (RENT).
        ("neg_entropy", "token_entropies", [0.1, 0.05], [1.9, 2.2]),
        # high KL(uniform || policy) is a confident completion (Intuitor).
        ("self_certainty", "token_self_certainty", [5.0, 6.0], [0.3, 0.1]),
    ],
)
def test_entropy_min_rewards_confidence(signal, field, confident, unsure):
    # The same text twice: only the policy's confidence distinguishes them, and it wins the group's advantage.
    r = rollouts([(P, [WRONG, WRONG])], **{field: [unsure, confident]})
    rewards = entropy_min(r, signal=signal).rewards
    assert rewards[1] > rewards[0]
    assert grpo(rewards, 2)[1] > 0 > grpo(rewards, 2)[0]


@pytest.mark.parametrize(
    "signal, kwargs, message",
    [
        # no log-probs given: the message names the field the engine must fill.
        (None, {}, r"signal='logprob'.*needs Rollouts.token_logprobs"),
        # RENT's signal needs entropies, not log-probs.
        ("neg_entropy", {"token_logprobs": [[-1.0], [-1.0]]}, r"needs Rollouts.token_entropies"),
        # Intuitor's signal needs self-certainty.
        ("self_certainty", {}, r"needs Rollouts.token_self_certainty"),
        # an unknown signal lists the valid ones.
        ("confidence", {},
         r"unknown entropy_min signal 'confidence'; valid signals: logprob, neg_entropy, self_certainty"),
        # a completion with no tokens has no mean log-prob.
        (None, {"token_logprobs": [[-1.0], []]}, r"token_logprobs\[1\] is empty"),
        # -inf log-probs make the reward undefined.
        (None, {"token_logprobs": [[-1.0], [float("-inf")]]}, r"token_logprobs\[1\] has non-finite values"),
    ],
)
def test_entropy_min_errors(signal, kwargs, message):
    with pytest.raises(ValueError, match=message):
        entropy_min(rollouts([(P, [RIGHT, WRONG])], **kwargs), signal=signal)


def test_entropy_min_source_is_a_loss_not_a_reward():
    r = rollouts([(P, [RIGHT, WRONG])], token_logprobs=[[-1.0], [-1.0]])
    with pytest.raises(ValueError, match=r"One-shot EM: an entropy loss.*uses_entropy_loss"):
        entropy_min(r, semantics="source")


# ---------------------------------------------------------------------------------------------------------------
# Junk never raises and never scores.
# ---------------------------------------------------------------------------------------------------------------

JUNK_CALLS = [
    # every content-based reward in both semantics (random with p=1: the format gate alone must refuse junk).
    ("ground_truth", "paper", {}),
    ("format_only", "paper", {}),
    ("format_only", "source", {}),
    ("random", "paper", {"p": 1.0}),
    ("incorrect", "paper", {}),
    ("incorrect", "source", {}),
    ("majority_vote", "paper", {}),
    ("majority_vote", "source", {}),
]


@pytest.mark.parametrize("task, problem", [(CHAIN, P), (SUDOKU, S)], ids=["chain_sum", "mini_sudoku"])
@pytest.mark.parametrize("name, semantics, kwargs", JUNK_CALLS, ids=[f"{c[0]}-{c[1]}" for c in JUNK_CALLS])
def test_junk_gets_zero(task, problem, name, semantics, kwargs):
    r = rollouts(
        [(problem, JUNK)], task=task,
        wrong_labels={P.id: "3", S.id: "2413/1324/4132/3241"},
        extra_votes=[JUNK],
    )
    np.testing.assert_array_equal(compute(name, r, semantics=semantics, **kwargs).rewards, np.zeros(len(JUNK)))


def test_junk_base_metrics():
    assert base_metrics(rollouts([(P, JUNK)])) == {"gt_accuracy": 0.0, "format_rate": 0.0, "answer_accuracy": 0.0}


def test_base_metrics_mixed():
    # 1 of 6 is FORMAT and CORRECT; 3 of 6 formatted; 2 of 6 correct answers (one unformatted).
    expected = {"gt_accuracy": 1 / 6, "format_rate": 0.5, "answer_accuracy": 2 / 6}
    assert base_metrics(rollouts([(P, MIXED)])) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------------------------
# Registry, needs(), and bad input.
# ---------------------------------------------------------------------------------------------------------------


def test_registry_names():
    assert list(REWARDS) == ["ground_truth", "format_only", "random", "incorrect", "majority_vote", "entropy_min"]
    assert SEMANTICS == ("paper", "source")
    for name in REWARDS:
        assert get_reward(name) is REWARDS[name]


def test_unknown_reward_lists_valid():
    valid = "ground_truth, format_only, random, incorrect, majority_vote, entropy_min"
    calls = (
        lambda: get_reward("gt"),
        lambda: compute("gt", rollouts([(P, MIXED)])),
        lambda: needs("gt", "paper"),
        lambda: uses_entropy_loss("gt", "paper"),
    )
    for call in calls:
        with pytest.raises(ValueError, match=f"unknown reward 'gt'; valid rewards: {valid}"):
            call()


@pytest.mark.parametrize("name", list(REWARDS))
def test_unknown_semantics_lists_valid(name):
    r = rollouts([(P, [RIGHT, WRONG])], token_logprobs=[[-1.0], [-1.0]])
    calls = (
        lambda: REWARDS[name](r, semantics="both"),
        lambda: compute(name, r, semantics="both"),
        lambda: needs(name, "both"),
        lambda: uses_entropy_loss(name, "both"),
    )
    for call in calls:
        with pytest.raises(ValueError, match=r"unknown semantics 'both'; valid semantics: paper, source"):
            call()


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("random", {"prob": 0.5}, r"reward 'random' takes no option 'prob'; valid options: p, format_gate"),
        ("ground_truth", {"p": 0.5}, r"reward 'ground_truth' takes no option 'p'; valid options: \(none\)"),
        ("entropy_min", {"coef": -0.01}, r"takes no option 'coef'; valid options: signal"),
    ],
)
def test_unknown_option_lists_valid(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute(name, rollouts([(P, MIXED)]), **kwargs)
    with pytest.raises(ValueError, match=message):
        needs(name, "paper", **kwargs)


@pytest.mark.parametrize(
    "name, semantics, kwargs, expected",
    [
        # rewards read from the completions alone need nothing extra.
        ("ground_truth", "paper", {}, set()),
        ("format_only", "source", {}, set()),
        ("random", "source", {"p": 0.3}, set()),
        ("incorrect", "paper", {}, set()),
        ("majority_vote", "paper", {}, set()),
        # the source incorrect reward needs the base model's wrong labels.
        ("incorrect", "source", {}, {"wrong_labels"}),
        # TTRL needs extra votes.
        ("majority_vote", "source", {}, {"extra_votes"}),
        # each confidence signal needs its own per-token values.
        ("entropy_min", "paper", {}, {"token_logprobs"}),
        ("entropy_min", "paper", {"signal": "neg_entropy"}, {"token_entropies"}),
        ("entropy_min", "paper", {"signal": "self_certainty"}, {"token_self_certainty"}),
        # One-shot EM is a loss the engine computes itself: no reward, no Rollouts field.
        ("entropy_min", "source", {}, set()),
    ],
)
def test_needs(name, semantics, kwargs, expected):
    assert needs(name, semantics, **kwargs) == expected


@pytest.mark.parametrize("name", list(REWARDS))
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_uses_entropy_loss_only_for_one_shot_em(name, semantics):
    assert uses_entropy_loss(name, semantics) == (name == "entropy_min" and semantics == "source")


@pytest.mark.parametrize(
    "make, message",
    [
        # the source incorrect reward without labels says what they are.
        (lambda: rw.incorrect(rollouts([(P, MIXED)]), semantics="source"), r"needs Rollouts.wrong_labels"),
        # a problem without a wrong label is named.
        (lambda: rw.incorrect(rollouts([(P, MIXED)], wrong_labels={Q.id: "1"}), semantics="source"),
         rf"no label for problem '{P.id}'"),
        # a "wrong" label the verifier accepts would make this the ground-truth reward (the released code's bug).
        (lambda: rw.incorrect(rollouts([(P, MIXED)], wrong_labels={P.id: "-4"}), semantics="source"),
         r"accepted by the verifier"),
        # a label that is not an answer of the task.
        (lambda: rw.incorrect(rollouts([(P, MIXED)], wrong_labels={P.id: "three"}), semantics="source"),
         r"not a parseable answer"),
        # TTRL without extra votes.
        (lambda: majority_vote(rollouts([(P, MIXED)]), semantics="source"), r"needs Rollouts.extra_votes"),
    ],
)
def test_missing_inputs(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "build, message",
    [
        # 7 completions cannot form groups of 4: both numbers named.
        (lambda: Rollouts([RIGHT] * 7, [P] * 7, CHAIN, 4), r"batch of 7 completions does not divide into groups of 4"),
        # one problem per completion.
        (lambda: Rollouts([RIGHT] * 4, [P] * 3, CHAIN, 2), r"got 4 completions but 3 problems"),
        # a group that mixes two problems is a misordered batch.
        (lambda: Rollouts([RIGHT] * 4, [P, Q, Q, Q], CHAIN, 2), r"group 0 mixes problems"),
        # group size must be a positive integer.
        (lambda: Rollouts([RIGHT] * 4, [P] * 4, CHAIN, 0), r"group_size must be a positive integer"),
        # an empty batch.
        (lambda: Rollouts([], [], CHAIN, 4), r"at least one completion"),
        # per-completion token lists must match the completions.
        (lambda: Rollouts([RIGHT] * 4, [P] * 4, CHAIN, 2, token_logprobs=[[-1.0]] * 3),
         r"token_logprobs has 3 entries for 4 completions"),
        # extra votes come one list per group.
        (lambda: Rollouts([RIGHT] * 4, [P] * 4, CHAIN, 2, extra_votes=[[RIGHT]]),
         r"extra_votes has 1 entries for 2 groups"),
        # seeds and steps are non-negative integers.
        (lambda: Rollouts([RIGHT] * 2, [P] * 2, CHAIN, 2, step=-1), r"step must be a non-negative integer"),
        # the task must be a task.
        (lambda: Rollouts([RIGHT] * 2, [P] * 2, "chain_sum", 2), r"task must be an mtalign Task"),
    ],
)
def test_bad_rollouts(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_docstring_examples():
    result = doctest.testmod(rw)
    assert result.attempted >= 20 and result.failed == 0
