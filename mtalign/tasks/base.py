"""What every task shares: problems, prompts, the answer format and a verifier that never raises.

The format is the study's (STUDY.md §3): FORMAT = the completion is `<think>…</think>` followed by
`<answer>…</answer>` and nothing else; CORRECT = the task's verifier accepts the content of the answer tag.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

# The paper's instruction for chat and base models (one user message, STUDY.md §5).
INSTRUCTION = (
    "Think step by step inside <think> and </think> tags, then give only the final answer inside "
    "<answer> and </answer> tags, like this: <think> reasoning here </think><answer> final answer here </answer>."
)

# Completions longer than this are junk for every task here; checking them costs time, not accuracy.
MAX_CHECK_CHARS = 20_000

_FORMAT = re.compile(r"\s*<think>(?:(?!<think>|</think>).)*</think>\s*<answer>((?:(?!<answer>|</answer>).)*)</answer>\s*", re.DOTALL)
# The released code's regex has no DOTALL, so a newline inside <think> fails the format. Offered as an option only.
_FORMAT_PAPER = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$")


@dataclass(frozen=True)
class Problem:
    """One verifiable problem. `question` is the task's own text; `answer` the gold answer as a string."""

    id: str
    question: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Score:
    formatted: bool  # FORMAT
    correct: bool  # CORRECT: the verifier accepts the first answer tag's content
    answer: str | None  # that content, or None when there is no answer tag

    @property
    def reward(self) -> float:
        """The ground-truth reward of the study: FORMAT and CORRECT."""
        return float(self.formatted and self.correct)


def as_text(completion: Any) -> str:
    """Model output as text: bytes are decoded leniently, None is empty, anything else is str()."""
    if completion is None:
        return ""
    if isinstance(completion, (bytes, bytearray)):
        return bytes(completion).decode("utf-8", errors="replace")
    return completion if isinstance(completion, str) else str(completion)


def is_formatted(completion: Any, strict_paper_regex: bool = False) -> bool:
    """FORMAT: exactly one `<think>…</think>` then exactly one `<answer>…</answer>`, nothing else around them.

    >>> is_formatted("<think>7+5=12</think><answer>12</answer>")
    True
    >>> is_formatted("<think>a\\nb</think><answer>1</answer>", strict_paper_regex=True)  # the released regex
    False
    """
    text = as_text(completion)
    if len(text) > MAX_CHECK_CHARS:
        return False
    if strict_paper_regex:
        return _FORMAT_PAPER.match(text) is not None
    return _FORMAT.fullmatch(text) is not None


def extract_answer(completion: Any) -> str | None:
    """Content of the first `<answer>…</answer>` tag, stripped; None when there is none."""
    text = as_text(completion)[:MAX_CHECK_CHARS]
    # str.find rather than a lazy regex: linear even on 100 KB of repeated tags
    start = text.find("<answer>")
    if start < 0:
        return None
    end = text.find("</answer>", start + len("<answer>"))
    return text[start + len("<answer>"):end].strip() if end >= 0 else None


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and on every machine (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


class Task:
    """A named, verifiable task. Subclasses set `name`, `domain` and implement problems, prompt, check."""

    name: str = ""
    domain: str = ""  # "math" or "logic"
    splits: tuple[str, ...] = ("train", "eval")
    train_split: str | None = "train"  # the split RL trains on (None: the task is evaluation-only)
    eval_split: str | None = "eval"  # the split alignment and held-out accuracy are measured on
    styles: tuple[str, ...] = ("chat", "plain")  # prompt styles this task can render
    max_new_tokens: int = 1024  # default sampling budget (the paper allows 8192 on GPUs)
    subtype_key: str | None = None  # the problem metadata that splits it into sub-types (03_one_shot), if any

    def problems(self, split: str = "eval", n: int | None = None, seed: int = 0) -> list[Problem]:
        raise NotImplementedError

    def prompt(self, problem: Problem, style: str = "chat") -> str | list[dict[str, str]]:
        """The model input: a string for `compact`/`plain`, a one-message conversation for `chat`."""
        self._check_style(style)
        text = f"{INSTRUCTION}\n\n{problem.question}"
        return text if style == "plain" else [{"role": "user", "content": text}]

    def check(self, answer: str, problem: Problem) -> bool:
        """Does the verifier accept `answer` (the answer tag's content) for `problem`? Never raises."""
        raise NotImplementedError

    def canonical(self, answer: str | None) -> str | None:
        """A normal form for comparing two answers with each other (majority vote); None if unparseable."""
        if answer is None:
            return None
        text = " ".join(answer.split())
        return text or None

    def score(self, completion: Any, problem: Problem, strict_paper_regex: bool = False) -> Score:
        """FORMAT, CORRECT and the extracted answer of one completion. Junk gives zeros, never an exception."""
        answer = extract_answer(completion)
        correct = False
        if answer is not None:
            try:
                correct = bool(self.check(answer, problem))
            except Exception:  # a verifier that raises on junk is a wrong answer, not a crashed run
                correct = False
        return Score(is_formatted(completion, strict_paper_regex), correct, answer)

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has no split {split!r}; valid splits: {', '.join(self.splits)}")

    def _check_style(self, style: str) -> None:
        if style not in self.styles:
            raise ValueError(
                f"task {self.name!r} cannot render prompt style {style!r}; valid styles: {', '.join(self.styles)}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, domain={self.domain!r})"
