"""Math graders: is the content of a completion's answer tag the gold answer? (STUDY.md §3, CORRECT for math.)

Two graders, chosen per run by name (`GRADERS`, `get_grader`):

- `math_verify` (default): symbolic equivalence by math-verify 0.9.0, so `0.5`, `1/2` and `\\frac{1}{2}` all match.
- `exact`: the released code of the paper, plain string equality of the stripped answer-tag content with the gold
  answer, so `27.0` does not match `27`.

Every grader takes `(answer, gold)` as strings and returns a bool; it never raises, whatever the answer holds, and
returns within 2 s from any thread or process: answers whose value is too large to compute are refused up front
(`refuse`), and every parse and comparison runs in a child process that is killed at `HARD_LIMIT_S`. Such an answer
is *ungradable*: wrong for a grader, no normal form for `canonical`, and counted (`ungradable_count`), which the
training step records per step.
`canonical(answer)` gives a cheap normal form for majority voting (TTRL, STUDY.md §3) that agrees with
`math_verify` on the common cases; its limits are in its docstring.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import math
import os
import re
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

from math_verify import parse, verify

# A final answer longer than this is not a math answer. The cap also bounds parsing time: math-verify needs
# ~1.6 s for 300 unbalanced brackets, and some junk (`x_x_x_…`) never finishes without its timeout.
MAX_MATH_ANSWER_CHARS = 300
# math-verify's own timeouts (per parse and per comparison; SIGALRM, so main thread only: they run in the grader's
# child process). Below the hard limit (HARD_LIMIT_S), so most slow inputs end there without killing the child.
TIMEOUT_S = 1

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


# -- the hard limit: every parse, comparison and normal form runs in one reused child process ----------------------
# sympy can run for hours inside C code on a short answer (`9^{9^{9^{9}}}` builds a number with ~10^369 digits), and
# neither math-verify's signal timeouts nor a thread can stop that. So the work runs in a child process that is
# killed when it overruns (SIGKILL: nothing is left spinning) and restarted for the next call; cheap shape checks
# (`refuse`) turn away the known pathological forms before they reach sympy, so a kill is the exception. One warm
# child serves every call of this process over a pipe (a fraction of a millisecond per call, measured in
# tests/test_hardening.py). The child is a plain `python -c` subprocess rather than a multiprocessing one, so it
# works whatever the caller's main module is (a script without a `__main__` guard, a notebook kernel).
HARD_LIMIT_S = 1.5  # wall time one call may take in the child before it is killed: "ungradable" within 2 s
START_LIMIT_S = 60.0  # a fresh child imports math-verify and sympy first (about 2 s here); not part of a call's limit

_worker: "_Child | None" = None
_spare: "_Child | None" = None
_worker_lock = threading.Lock()
_ungradable = 0  # calls refused or killed in this process (the training step records its share)


def ungradable_count() -> int:
    """How many grader calls in this process were refused or hit the hard limit so far (a running total)."""
    return _ungradable


def _count_ungradable() -> None:
    global _ungradable
    _ungradable += 1


# The child first asks Linux to SIGKILL it when its parent dies (PR_SET_PDEATHSIG = 1; elsewhere it ends when its
# input closes), before its imports, so a parent killed outright leaves nothing computing.
_CHILD = """
try:
    import ctypes, signal
    ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))
except Exception:
    pass
from mtalign.tasks.graders import _serve
_serve()
"""


class _Child:
    """One child process that runs grader functions by name, one call at a time, as JSON lines over a pipe."""

    def __init__(self):
        root = str(Path(__file__).resolve().parents[2])  # so the child imports this very package
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ready = False

    def call(self, name: str, args: tuple, limit: float) -> tuple[bool, Any]:
        """(True, result) or (False, None) when the child did not answer within `limit` seconds or died."""
        try:
            if not self.ready:  # the first answer is the child's "ready" line, after its imports
                if not self._readable(START_LIMIT_S) or json.loads(self.process.stdout.readline()) != "ready":
                    return False, None
                self.ready = True
            self.process.stdin.write(json.dumps([name, list(args)]) + "\n")
            self.process.stdin.flush()
            if self._readable(limit):
                line = self.process.stdout.readline()
                if line:
                    return True, json.loads(line)
        except (OSError, ValueError):  # a dead child: a broken pipe, an empty or torn line
            pass
        return False, None

    def _readable(self, limit: float) -> bool:
        return bool(select.select([self.process.stdout], [], [], limit)[0])

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: sympy inside C code ignores anything gentler
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()


def _serve() -> None:
    """The child's loop: its main thread runs each call, so math-verify's own signal timeouts work here too."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the answers
    functions = {"canonical": _canonical_here, "equal": _math_verify_equal_here}
    _canonical_here("1/2")  # warm up math-verify and sympy before saying ready
    protocol.write(json.dumps("ready") + "\n")
    for line in sys.stdin:
        name, args = json.loads(line)
        protocol.write(json.dumps(functions[name](*args)) + "\n")


@atexit.register
def _stop_children() -> None:
    for child in (_worker, _spare):
        if child is not None and child.process.poll() is None:
            child.kill()


def _limited(name: str, args: tuple, default: Any) -> Any:
    """Run grader function `name` in the child under the hard limit; `default` (ungradable) when it overruns.

    A spare child waits, already started, to replace a killed one at once: a fresh child needs about 2 s for its
    imports, which would otherwise push the call after a kill past the bound.
    """
    global _worker, _spare
    with _worker_lock:  # one call at a time: the child answers in order
        if _worker is None or _worker.process.poll() is not None:
            if _spare is not None and _spare.process.poll() is None:
                _worker, _spare = _spare, None
            else:
                _worker = _Child()
        if _spare is None:
            _spare = _Child()
        ok, result = _worker.call(name, args, HARD_LIMIT_S)
        if ok:
            return result
        _worker.kill()
        _worker = None  # the next call takes the spare and starts another
        _count_ungradable()
        return default


# Shapes whose value sympy cannot compute in time: an exponent tower or a factorial whose value has more than
# MAX_DIGITS digits, and brackets nested deeper than MAX_NESTING. Only plain-number towers are sized; anything else
# is left to the hard limit.
MAX_DIGITS = 10_000
MAX_NESTING = 40
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def refuse(answer: str) -> str | None:
    """Why `answer` is refused before any parsing (too long, too deep, a number too large to compute), or None.

    >>> refuse("9^{9^{9^{9}}}")
    'a number with more than 10000 digits'
    >>> refuse("2^{10}") is None
    True
    """
    if len(answer) > MAX_MATH_ANSWER_CHARS:
        return f"longer than {MAX_MATH_ANSWER_CHARS} characters"
    depth = deepest = 0
    for char in answer:
        if char in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "})]":
            depth -= 1
    if deepest > MAX_NESTING:
        return f"brackets nested deeper than {MAX_NESTING}"
    if "^" in answer or "!" in answer or "**" in answer:
        try:
            # spacing and \left( \right) change nothing of the value; without them the tower reads plainly
            _log10_magnitudes(re.sub(r"\s+|\\left|\\right", "", answer).replace("**", "^"))
        except _TooLarge:
            return f"a number with more than {MAX_DIGITS} digits"
    return None


class _TooLarge(Exception):
    pass


def _log10_magnitudes(text: str) -> None:
    """Raise _TooLarge when a plain-number power tower or factorial in `text` has more than MAX_DIGITS digits."""
    position = 0
    while position < len(text):
        if text[position].isdigit() or text[position] in "({":
            value, end = _operand(text, position)
            if value is not None and end > position:
                position = end
                continue
        position += 1


def _operand(text: str, i: int) -> tuple[float | None, int]:
    """log10 of the plain-number expression starting at i (a number, a {group} or (group), with ^ and !), or None."""
    if i >= len(text):
        return None, i
    if text[i] in "({":
        close = {"(": ")", "{": "}"}[text[i]]
        inner, j = _operand(text, i + 1)
        if j >= len(text) or text[j] != close:
            return None, i + 1
        value, j = inner, j + 1
    else:
        match = _NUMBER.match(text, i)
        if not match:
            return None, i
        number = float(match.group())
        value, j = (math.log10(number) if number > 0 else 0.0), match.end()
    while j < len(text) and text[j] in "^!":
        if text[j] == "!":
            if value is not None:
                if value > 7:  # lgamma below stays exact enough; (10^7)! has ~6.6e7 digits anyway
                    raise _TooLarge
                value = math.lgamma(10 ** value + 1) / math.log(10)  # log10 of n!
                if value > MAX_DIGITS:
                    raise _TooLarge
            j += 1
            continue
        exponent, k = _operand(text, j + 1)
        if exponent is None:
            return None, j + 1
        if value is not None and value > 0 and (exponent > 7 or 10 ** exponent * value > MAX_DIGITS):
            raise _TooLarge  # a base above 1 raised that high; 0 and 1 stay small whatever the exponent
        value, j = (None if value is None else 10 ** exponent * value), k
    return value, j


def math_verify_equal(answer: str, gold: str) -> bool:
    """Does math-verify judge `answer` equal to `gold`? Never raises; safe to call from any thread.

    >>> math_verify_equal("0.5", "\\\\frac{1}{2}")
    True
    >>> math_verify_equal("27", "28")
    False
    """
    if not isinstance(answer, str) or not isinstance(gold, str) or not answer.strip():
        return False
    if len(answer.strip()) > MAX_MATH_ANSWER_CHARS:  # not a math answer: wrong, not ungradable
        return False
    if refuse(answer.strip()) is not None:  # gold answers come from the dataset; the hard limit still guards them
        _count_ungradable()
        return False
    return _limited("equal", (answer, gold), default=False)


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
    if not isinstance(answer, str) or not answer.strip() or len(answer.strip()) > MAX_MATH_ANSWER_CHARS:
        return None
    if refuse(answer.strip()) is not None:
        _count_ungradable()
        return None
    return _limited("canonical", (answer,), default=None)


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
