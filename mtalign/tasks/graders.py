"""Math graders: is the content of a completion's answer tag the gold answer? (STUDY.md §3, CORRECT for math.)

Two graders, chosen per run by name (`GRADERS`, `get_grader`):

- `math_verify` (default): symbolic equivalence by math-verify 0.9.0, so `0.5`, `1/2` and `\\frac{1}{2}` all match.
- `exact`: the released code of the paper, plain string equality of the stripped answer-tag content with the gold
  answer, so `27.0` does not match `27`.

Every grader takes `(answer, gold)` as strings and returns a bool; it never raises, whatever the answer holds.
`canonical(answer)` gives a cheap normal form for majority voting (TTRL, STUDY.md §3) that agrees with
`math_verify` on the common cases; its limits are in its docstring.
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from math_verify import parse, verify

# A final answer longer than this is not a math answer. The cap also bounds parsing time: math-verify needs
# ~1.6 s for 300 unbalanced brackets, and some junk (`x_x_x_…`) never finishes without its timeout.
MAX_MATH_ANSWER_CHARS = 300
# math-verify's timeouts (per parse and per comparison) use SIGALRM, which only works in the main thread.
TIMEOUT_S = 2

Grader = Callable[[str, str], bool]

# math-verify logs a warning for every string it cannot parse; for model output that is the normal case.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _parse(text: str) -> list:
    # math-verify ignores our <answer> tags and looks for LaTeX anchors, so the bare content is wrapped in $…$.
    return parse(f"${text}$", parsing_timeout=TIMEOUT_S)


@functools.lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> tuple:
    """Gold answers repeat across the samples of a problem; parse each once."""
    return tuple(_parse(gold))


_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _in_main_thread(fn: Callable[..., Any], *args: Any, default: Any) -> Any:
    """Run `fn` where math-verify's signal timeouts work: here in the main thread, else in a worker process.

    Without its timeouts math-verify can hang for good on junk, and it raises when given timeouts outside the
    main thread, so a call from a thread goes to one spawned worker process (whose main thread runs it).
    """
    global _pool
    if threading.current_thread() is threading.main_thread():
        return fn(*args)
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        pool = _pool
    future = pool.submit(fn, *args)
    try:
        # Generous: the first call pays the worker's start-up and imports (a few seconds).
        return future.result(timeout=30 + 3 * TIMEOUT_S)
    except (FutureTimeout, BrokenProcessPool):
        with _pool_lock:  # a wedged or dead worker: drop it, the next call starts a fresh one
            if _pool is pool:
                _pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        return default


def math_verify_equal(answer: str, gold: str) -> bool:
    """Does math-verify judge `answer` equal to `gold`? Never raises; safe to call from any thread.

    >>> math_verify_equal("0.5", "\\\\frac{1}{2}")
    True
    >>> math_verify_equal("27", "28")
    False
    """
    return _in_main_thread(_math_verify_equal_here, answer, gold, default=False)


def _math_verify_equal_here(answer: str, gold: str) -> bool:
    try:
        if not isinstance(answer, str) or not isinstance(gold, str):
            return False
        answer = answer.strip()
        if not answer or len(answer) > MAX_MATH_ANSWER_CHARS:
            return False
        gold_parsed = list(_parse_gold(gold.strip()))
        predicted = _parse(answer)
        if not gold_parsed or not predicted:
            return False
        # Gold first: math-verify's comparison is not symmetric (e.g. a gold equation `x=2` accepts a bare `2`).
        return bool(verify(gold_parsed, predicted, timeout_seconds=TIMEOUT_S))
    except Exception:  # a timeout or a parser crash on junk is a wrong answer, not a crashed run
        return False


def exact_equal(answer: str, gold: str) -> bool:
    """The paper's grader: the stripped answer-tag content is the gold answer, character for character.

    >>> exact_equal(" 27 ", "27")
    True
    >>> exact_equal("27.0", "27")
    False
    """
    return isinstance(answer, str) and isinstance(gold, str) and answer.strip() == gold.strip()


GRADERS: dict[str, Grader] = {"math_verify": math_verify_equal, "exact": exact_equal}


def get_grader(name: str) -> Grader:
    """The grader called `name`; an unknown name is an error that lists the valid ones."""
    if name not in GRADERS:
        raise ValueError(f"unknown math grader {name!r}; valid graders: {', '.join(GRADERS)}")
    return GRADERS[name]


def _number_text(value: float) -> str:
    """A number rounded the way math-verify compares floats (6 decimals), without trailing zeros."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def canonical(answer: str | None) -> str | None:
    """A normal form of a math answer for majority voting; None for an empty, over-long or non-string answer.

    The form is math-verify's parsed expression: real numbers are rounded to 6 decimals (so `27`, `27.0`, `0.5`,
    `1/2` and `\\frac{1}{2}` group as math-verify would judge them), an equation `x = 2` becomes its right-hand
    side, anything else is sympy's printed form (sympy orders sums and products, so `x+1` and `1+x` agree).

    Limits: two answers math-verify calls equal can still get different forms when equality needs simplification
    (`\\sin^2 x + \\cos^2 x` vs `1`), when math-verify relaxes a comparison (`10\\%` vs `10`, intervals vs tuples), or
    for text answers that parse into products of symbols. Numbers are rounded, so two values that differ only
    beyond the 6th decimal share a form (math-verify also calls those equal). Text that math-verify cannot parse
    keeps its whitespace-collapsed self, since math-verify then compares the strings themselves.
    """
    return _in_main_thread(_canonical_here, answer, default=None)


def _canonical_here(answer: str | None) -> str | None:
    try:
        if not isinstance(answer, str):
            return None
        answer = answer.strip()
        if not answer or len(answer) > MAX_MATH_ANSWER_CHARS:
            return None
        parsed = _parse(answer)
        if not parsed:
            return None
        expr = parsed[0]
        if isinstance(expr, str):
            return " ".join(expr.split()) or None
        # math-verify treats a gold `x=2` and a prediction `2` as equal; voting should too.
        if getattr(expr, "is_Relational", False) and getattr(expr.lhs, "is_Symbol", False) and expr.rel_op == "==":
            expr = expr.rhs
        if getattr(expr, "is_Integer", False):  # exact, and no float overflow for huge integers
            return str(int(expr))
        if getattr(expr, "is_number", False) and getattr(expr, "is_real", False):
            value = float(expr.evalf())
            if math.isfinite(value):  # 10^{400} is a real number but no float
                return _number_text(value)
        return " ".join(str(expr).split())
    except Exception:  # unparseable junk has no normal form
        return None
