"""Reward variants of the study (STUDY.md §3, RQ1 reward signal), each in the paper's and the source paper's sense.

A reward function takes a `Rollouts` batch (completions in group order plus what some rewards need: token
log-probs, extra votes, wrong labels) and returns a `RewardOutput`: one float per completion and a few metrics.
`semantics="paper"` (default) is the definition in the paper's released code minus its known bugs;
`semantics="source"` is the definition of the paper that first made the claim. Where the two agree the switch is
accepted and changes nothing.

Known defects of the released code that are *not* copied: its math `incorrect` reward is silently the ground-truth
reward; majority vote is missing; entropy minimisation reads log-probs before they exist; its format regex lacks
DOTALL (available as `Rollouts(strict_paper_regex=True)`, off by default).
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np

from mtalign.advantages import SEMANTICS, check_semantics, is_integer, is_number
from mtalign.tasks.base import Problem, Score, Task, extract_answer

__all__ = [
    "Rollouts", "RewardOutput", "SEMANTICS", "REWARDS", "SIGNALS",
    "ground_truth", "format_only", "random", "incorrect", "majority_vote", "entropy_min",
    "get_reward", "compute", "uses_entropy_loss", "needs", "pseudo_labels", "random_draws", "base_metrics",
]

# Mixed into the random reward's seed so its coin flips never coincide with another numpy stream of the same seed.
_RANDOM_SALT = 0x5EED_4A4D


@dataclass
class Rollouts:
    """A batch of completions in group order: completions g*group_size .. (g+1)*group_size-1 answer one prompt."""

    completions: list[str]
    problems: list[Problem]  # one per completion (repeated within a group)
    task: Task
    group_size: int
    seed: int = 0  # run seed; with `step` (and `draw`) it seeds the random reward
    step: int = 0
    token_logprobs: list[list[float]] | None = None  # per completion, under the current policy (entropy_min)
    token_entropies: list[list[float]] | None = None  # per completion, per token entropy of the policy
    token_self_certainty: list[list[float]] | None = None  # per token KL(uniform || policy) (Intuitor)
    extra_votes: list[list[str]] | None = None  # per group: extra completions used only for voting (TTRL source)
    wrong_labels: dict[str, str] | None = None  # problem id -> base model's most frequent wrong answer (incorrect)
    strict_paper_regex: bool = False
    # Which generation batch of this step (DAPO dynamic sampling draws up to 2 per step): without it the second
    # batch would get the same random-reward coins as the first, index by index.
    draw: int = 0

    def __post_init__(self) -> None:
        # Every check here is cheap and runs before any scoring, so a malformed batch fails at once and says why.
        if not is_integer(self.group_size) or self.group_size < 1:
            raise ValueError(f"group_size must be a positive integer, got {self.group_size!r}")
        n = len(self.completions)
        if n == 0:
            raise ValueError("Rollouts needs at least one completion, got none")
        if len(self.problems) != n:
            raise ValueError(f"got {n} completions but {len(self.problems)} problems; give one problem per completion")
        if n % self.group_size:
            raise ValueError(
                f"a batch of {n} completions does not divide into groups of {self.group_size} "
                f"({n} % {self.group_size} = {n % self.group_size}); completions must come in whole groups"
            )
        for name in ("score", "check", "canonical"):
            if not callable(getattr(self.task, name, None)):
                raise TypeError(f"task must be an mtalign Task (with score, check, canonical), got {self.task!r}")
        for g in range(self.n_groups):
            ids = {p.id for p in self.problems[g * self.group_size:(g + 1) * self.group_size]}
            if len(ids) != 1:
                raise ValueError(
                    f"group {g} mixes problems {sorted(ids)}; each group of {self.group_size} consecutive "
                    "completions must answer one problem"
                )
        for name in ("seed", "step", "draw"):
            value = getattr(self, name)
            if not is_integer(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("token_logprobs", "token_entropies", "token_self_certainty"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} completions; give one list per completion")
        if self.extra_votes is not None and len(self.extra_votes) != self.n_groups:
            raise ValueError(
                f"extra_votes has {len(self.extra_votes)} entries for {self.n_groups} groups; give one list per group"
            )

    @property
    def n_groups(self) -> int:
        return len(self.completions) // self.group_size

    def group_problem(self, g: int) -> Problem:
        return self.problems[g * self.group_size]

    @cached_property
    def scores(self) -> list[Score]:
        """`task.score` of each completion (FORMAT, CORRECT, answer), computed once."""
        strict = self.strict_paper_regex
        return [self.task.score(c, p, strict_paper_regex=strict) for c, p in zip(self.completions, self.problems)]

    @cached_property
    def canonical_answers(self) -> list[str | None]:
        """Each completion's answer in the task's normal form, None when it has no parseable answer."""
        return [_canonical(self.task, s.answer) for s in self.scores]


@dataclass
class RewardOutput:
    rewards: np.ndarray  # float per completion
    metrics: dict[str, float] = field(default_factory=dict)  # e.g. {"pseudo_label_accuracy": ...}; empty if none


def _canonical(task: Task, answer: str | None) -> str | None:
    """`task.canonical`, with a canonicaliser that raises on junk treated as 'no parseable answer'."""
    if answer is None:
        return None
    try:
        return task.canonical(answer)
    except Exception:
        return None


def _accepts(task: Task, answer: str | None, problem: Problem) -> bool:
    """`task.check`, never raising: a verifier that raises rejects."""
    if answer is None:
        return False
    try:
        return bool(task.check(answer, problem))
    except Exception:
        return False


def _out(values, metrics: dict[str, float] | None = None) -> RewardOutput:
    return RewardOutput(np.asarray(values, dtype=np.float64), dict(metrics or {}))


def base_metrics(r: Rollouts) -> dict[str, float]:
    """What every run logs whatever its training reward (STUDY.md §3): ground-truth accuracy and format rate.

    gt_accuracy is the ground-truth reward (FORMAT and CORRECT); answer_accuracy counts CORRECT alone.
    """
    return {
        "gt_accuracy": float(np.mean([s.reward for s in r.scores])),
        "format_rate": float(np.mean([s.formatted for s in r.scores])),
        "answer_accuracy": float(np.mean([s.correct for s in r.scores])),
    }


# ---------------------------------------------------------------------------------------------------------------
# The rewards
# ---------------------------------------------------------------------------------------------------------------


def ground_truth(r: Rollouts, semantics: str = "paper") -> RewardOutput:
    """Ground-truth reward (the paper's baseline): 1 if the completion is FORMAT and CORRECT, else 0.

    Both semantics mean the same here (the table in STUDY.md §3 has no source definition).

    Example:
    ```python
    >>> from mtalign.tasks import Problem, get_task
    >>> p = Problem("p", "7+5=", "12")
    >>> c = ["<think>7+5=12</think><answer>12</answer>", "<answer>12</answer>"]
    >>> r = Rollouts(c, [p, p], get_task("chain_sum"), group_size=2)
    >>> ground_truth(r).rewards
    array([1., 0.])

    ```
    """
    check_semantics(semantics)
    return _out([s.reward for s in r.scores])


def format_only(r: Rollouts, semantics: str = "paper") -> RewardOutput:
    """Format reward (Spurious Rewards, Shao et al. 2025): correctness is ignored.

    paper: 1 if FORMAT (`<think>…</think><answer>…</answer>` and nothing else).
    source: 1 if a non-empty answer exists — Spurious Rewards rewards any response containing a non-empty
    `\\boxed{}`; our answer container is the `<answer>` tag, so think tags and surrounding text do not matter.

    Example:
    ```python
    >>> from mtalign.tasks import Problem, get_task
    >>> p = Problem("p", "7+5=", "12")
    >>> c = ["<think>7+5=13</think><answer>13</answer>", "so <answer>12</answer>"]
    >>> r = Rollouts(c, [p, p], get_task("chain_sum"), group_size=2)
    >>> format_only(r).rewards, format_only(r, semantics="source").rewards
    (array([1., 0.]), array([1., 1.]))

    ```
    """
    if check_semantics(semantics) == "paper":
        return _out([s.formatted for s in r.scores])
    return _out([bool(s.answer) for s in r.scores])


def random_draws(seed: int, step: int, n: int, draw: int = 0) -> np.ndarray:
    """n uniforms in [0, 1); the i-th depends only on (seed, step, draw, i), not on n."""
    generator = np.random.default_rng(np.random.SeedSequence([_RANDOM_SALT, int(seed), int(step), int(draw)]))
    return generator.random(n)


def random(r: Rollouts, p: float = 0.5, format_gate: bool | None = None, semantics: str = "paper") -> RewardOutput:
    """Random reward (Spurious Rewards, Shao et al. 2025): a coin flip that ignores the completion's content.

    paper: FORMAT and Bernoulli(p). source: Bernoulli(p) with no format gate. `format_gate=True/False` overrides
    the gate of either semantics. The coin of completion i is reproducible from (r.seed, r.step, r.draw, i).

    Example:
    ```python
    >>> from mtalign.tasks import Problem, get_task
    >>> p = Problem("p", "7+5=", "12")
    >>> r = Rollouts(["<answer>12</answer>"] * 4, [p] * 4, get_task("chain_sum"), 4, seed=0, step=3)
    >>> random(r, p=1.0).rewards, random(r, p=1.0, semantics="source").rewards  # unformatted: gated in paper
    (array([0., 0., 0., 0.]), array([1., 1., 1., 1.]))

    ```
    """
    check_semantics(semantics)
    if not is_number(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if format_gate is not None and not isinstance(format_gate, (bool, np.bool_)):
        raise ValueError(f"format_gate must be None (use the semantics' default), True or False; got {format_gate!r}")
    gate = (semantics == "paper") if format_gate is None else bool(format_gate)
    coins = random_draws(r.seed, r.step, len(r.completions), r.draw) < p
    if gate:
        coins &= np.array([s.formatted for s in r.scores], dtype=bool)
    return _out(coins)


def incorrect(r: Rollouts, semantics: str = "paper") -> RewardOutput:
    """Incorrect reward (Spurious Rewards, Shao et al. 2025): reward answers that are wrong.

    paper: FORMAT and not CORRECT (the released math code silently used the ground-truth reward instead; we do not).
    source: 1 if the completion's answer equals, in the task's canonical form, `r.wrong_labels[problem.id]`: the
    base model's most frequent wrong answer (Spurious Rewards: majority vote of 64 samples, kept only where wrong).
    Every problem needs a label, and the task's verifier must reject it; otherwise a ValueError says which.

    Example:
    ```python
    >>> from mtalign.tasks import Problem, get_task
    >>> p = Problem("p", "7+5=", "12")
    >>> c = ["<think>7+5=12</think><answer>12</answer>", "<think>7+5=13</think><answer>13</answer>",
    ...      "<answer>13</answer>"]
    >>> r = Rollouts(c, [p] * 3, get_task("chain_sum"), 3, wrong_labels={"p": "13"})
    >>> incorrect(r).rewards, incorrect(r, semantics="source").rewards
    (array([0., 1., 0.]), array([0., 1., 1.]))

    ```
    """
    if check_semantics(semantics) == "paper":
        return _out([s.formatted and not s.correct for s in r.scores])
    if r.wrong_labels is None:
        raise ValueError(
            "incorrect with semantics='source' needs Rollouts.wrong_labels: problem id -> the base model's most "
            "frequent wrong answer (majority vote of its samples, kept only where that answer is wrong)"
        )
    labels: dict[str, str] = {}
    for g in range(r.n_groups):
        problem = r.group_problem(g)
        if problem.id in labels:
            continue
        if problem.id not in r.wrong_labels:
            raise ValueError(
                f"wrong_labels has no label for problem {problem.id!r}; train incorrect/source only on problems "
                "where the base model's majority answer is wrong (as Spurious Rewards did)"
            )
        label = _canonical(r.task, r.wrong_labels[problem.id])
        if label is None:
            raise ValueError(
                f"wrong label {r.wrong_labels[problem.id]!r} of problem {problem.id!r} is not a parseable answer"
            )
        if _accepts(r.task, label, problem):
            raise ValueError(
                f"wrong label {r.wrong_labels[problem.id]!r} of problem {problem.id!r} is accepted by the verifier: "
                "it is the right answer, so this reward would be the ground-truth reward"
            )
        labels[problem.id] = label
    return _out([a is not None and a == labels[p.id] for a, p in zip(r.canonical_answers, r.problems)])


def pseudo_labels(r: Rollouts, semantics: str = "paper") -> list[tuple[str | None, int, int]]:
    """Per group: (pseudo-label, votes for it, votes cast) of majority voting (TTRL, Zuo et al. 2025).

    Votes are the canonical answers of the group's completions (paper), followed by those of
    `r.extra_votes[g]` (source); completions without a parseable answer do not vote; ties go to the answer that
    was voted first; a group with no votes has label None.
    """
    if check_semantics(semantics) == "source" and r.extra_votes is None:
        raise ValueError(
            "majority_vote with semantics='source' (TTRL) needs Rollouts.extra_votes: per group, the extra sampled "
            "completions that vote but are not trained on (TTRL samples 64 and trains on 32)"
        )
    out = []
    for g in range(r.n_groups):
        votes = r.canonical_answers[g * r.group_size:(g + 1) * r.group_size]
        if semantics == "source":
            votes = votes + [_canonical(r.task, extract_answer(c)) for c in r.extra_votes[g]]
        votes = [v for v in votes if v is not None]
        if not votes:
            out.append((None, 0, 0))
            continue
        counts = Counter(votes)
        first = {}
        for i, v in enumerate(votes):
            first.setdefault(v, i)
        label = max(counts, key=lambda v: (counts[v], -first[v]))
        out.append((label, counts[label], len(votes)))
    return out


def majority_vote(r: Rollouts, semantics: str = "paper") -> RewardOutput:
    """Majority-vote self-reward (TTRL, Zuo et al. 2025): 1 if the answer equals the group's most frequent answer.

    paper: the votes are the group's own completions (the paper's scripts name this reward; its code is missing).
    source (TTRL): the votes are the group plus `r.extra_votes[g]` (TTRL votes with 64 samples, trains on 32).
    Answers are compared in the task's canonical form; the reward has no format gate, as in TTRL. See
    `pseudo_labels` for ties and completions without an answer.

    Metrics: pseudo_label_accuracy (fraction of groups whose pseudo-label the verifier accepts; a group without
    a label counts as wrong), label_agreement (fraction of completions whose reward equals their CORRECT bit: TTRL's
    "reward accuracy"), vote_share (mean fraction of a group's votes behind its label, 0 without votes),
    no_label_frac (fraction of groups with no parseable answer at all).

    Example:
    ```python
    >>> from mtalign.tasks import Problem, get_task
    >>> p = Problem("p", "7+5=", "12")
    >>> c = ["<think>7+5=13</think><answer>13</answer>", "<answer>13</answer>",
    ...      "<think>7+5=12</think><answer>12</answer>"]
    >>> out = majority_vote(Rollouts(c, [p] * 3, get_task("chain_sum"), 3))
    >>> out.rewards, out.metrics["pseudo_label_accuracy"]
    (array([1., 1., 0.]), 0.0)

    ```
    """
    labels = pseudo_labels(r, semantics)
    rewards = np.zeros(len(r.completions))
    for i, answer in enumerate(r.canonical_answers):
        label = labels[i // r.group_size][0]
        rewards[i] = float(label is not None and answer == label)
    correct = np.array([s.correct for s in r.scores], dtype=np.float64)
    label_correct = [_accepts(r.task, label, r.group_problem(g)) for g, (label, _, _) in enumerate(labels)]
    metrics = {
        "pseudo_label_accuracy": float(np.mean(label_correct)),
        "label_agreement": float(np.mean(rewards == correct)),
        "vote_share": float(np.mean([k / n if n else 0.0 for _, k, n in labels])),
        "no_label_frac": float(np.mean([lab is None for lab, _, _ in labels])),
    }
    return _out(rewards, metrics)


# entropy_min's confidence signals: name -> (Rollouts field, sign applied to its per-token mean, source paper).
SIGNALS: dict[str, tuple[str, float, str]] = {
    "logprob": ("token_logprobs", 1.0, "the paper's code: mean token log-probability"),
    "neg_entropy": ("token_entropies", -1.0, "RENT (Prabhudesai et al. 2025): minus the mean token entropy"),
    "self_certainty": ("token_self_certainty", 1.0, "Intuitor (Zhao et al. 2025): mean KL(uniform || policy)"),
}


def _signal(signal: str | None) -> str:
    signal = "logprob" if signal is None else signal
    if signal not in SIGNALS:
        raise ValueError(f"unknown entropy_min signal {signal!r}; valid signals: {', '.join(SIGNALS)} (None = logprob)")
    return signal


def entropy_min(r: Rollouts, semantics: str = "paper", signal: str | None = None) -> RewardOutput:
    """Confidence self-reward, later group-normalised by the advantage (entropy minimisation without labels).

    paper: the completion's mean token log-probability under the current policy (`signal=None` or "logprob").
    `signal="neg_entropy"`: RENT's reward, minus the mean token entropy; `signal="self_certainty"`: Intuitor's
    reward, the mean per-token KL(uniform || policy). A more confident completion gets a higher reward.
    source (One-shot EM, Gao et al. 2025) is an entropy *loss* with no reward: calling this function with it is a
    ValueError; the engine checks `uses_entropy_loss(name, semantics)` and adds the loss itself.

    Example:
    ```python
    >>> from mtalign.tasks import Problem, get_task
    >>> p = Problem("p", "7+5=", "12")
    >>> r = Rollouts(["<answer>12</answer>", "<answer>13</answer>"], [p, p], get_task("chain_sum"), 2,
    ...              token_logprobs=[[-0.1, -0.3], [-2.0, -1.0]])
    >>> entropy_min(r).rewards
    array([-0.2, -1.5])

    ```
    """
    if check_semantics(semantics) == "source":
        raise ValueError(
            "entropy_min with semantics='source' is One-shot EM: an entropy loss on the policy's own samples, not a "
            "reward. The engine must add it as a loss (uses_entropy_loss('entropy_min', 'source') is True) instead "
            "of calling this reward; use semantics='paper' for the log-prob reward"
        )
    name = _signal(signal)
    attribute, sign, meaning = SIGNALS[name]
    per_token = getattr(r, attribute)
    if per_token is None:
        raise ValueError(
            f"entropy_min with signal={name!r} ({meaning}) needs Rollouts.{attribute}: one list of per-token values "
            "per completion, computed under the current policy"
        )
    rewards = np.empty(len(per_token))
    for i, values in enumerate(per_token):
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            raise ValueError(f"Rollouts.{attribute}[{i}] is empty; every completion has at least one token (its end)")
        if not np.isfinite(values).all():
            raise ValueError(f"Rollouts.{attribute}[{i}] has non-finite values; the reward would be undefined")
        rewards[i] = sign * values.mean()
    return _out(rewards)


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------

REWARDS: dict[str, Callable[..., RewardOutput]] = {
    "ground_truth": ground_truth,
    "format_only": format_only,
    "random": random,
    "incorrect": incorrect,
    "majority_vote": majority_vote,
    "entropy_min": entropy_min,
}


def get_reward(name: str) -> Callable[..., RewardOutput]:
    """The reward function called `name`, or a ValueError listing the valid names."""
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; valid rewards: {', '.join(REWARDS)}")
    return REWARDS[name]


def options(name: str) -> tuple[str, ...]:
    """The keyword options reward `name` takes besides the rollouts and semantics (e.g. p, format_gate)."""
    parameters = inspect.signature(get_reward(name)).parameters
    return tuple(p for p in parameters if p not in ("r", "semantics"))


def _check_options(name: str, kwargs: dict[str, Any]) -> None:
    valid = options(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"reward {name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )


def compute(name: str, r: Rollouts, semantics: str = "paper", **kwargs: Any) -> RewardOutput:
    """Reward by name; an unknown name, semantics or option is a ValueError listing the valid ones."""
    function = get_reward(name)
    check_semantics(semantics)
    _check_options(name, kwargs)
    return function(r, semantics=semantics, **kwargs)


def uses_entropy_loss(name: str, semantics: str) -> bool:
    """True where the variant is an entropy loss rather than a reward (entropy_min, source: One-shot EM)."""
    get_reward(name)
    check_semantics(semantics)
    return name == "entropy_min" and semantics == "source"


def needs(name: str, semantics: str, **kwargs: Any) -> set[str]:
    """The optional Rollouts fields reward `name` needs under `semantics` and options `kwargs`.

    >>> sorted(needs("majority_vote", "source")), sorted(needs("entropy_min", "paper", signal="neg_entropy"))
    (['extra_votes'], ['token_entropies'])
    """
    get_reward(name)
    check_semantics(semantics)
    _check_options(name, kwargs)
    if name == "incorrect" and semantics == "source":
        return {"wrong_labels"}
    if name == "majority_vote" and semantics == "source":
        return {"extra_votes"}
    if name == "entropy_min" and semantics == "paper":
        return {SIGNALS[_signal(kwargs.get("signal"))][0]}
    return set()
