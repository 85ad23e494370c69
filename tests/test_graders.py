"""The math graders (STUDY.md §3: `math_verify` by default, the paper's `exact` as an option) and `canonical`."""

from __future__ import annotations

import threading
import time

import pytest

from mtalign.tasks import graders
from mtalign.tasks.graders import GRADERS, canonical, exact_equal, get_grader, math_verify_equal

# (answer, gold, math_verify says, exact says) — one reason per case.
CASES = [
    ("27", "27", True, True),  # identical
    ("  27 ", "27", True, True),  # both graders strip the answer-tag content
    ("27.0", "27", True, False),  # AMC's float gold rendered as an integer: only math_verify forgives
    ("27", "27.0", True, False),  # and the other way round
    ("33", "033", True, False),  # AIME's zero-padded answers
    ("0.5", "\\frac{1}{2}", True, False),  # decimal vs fraction
    ("1/2", "\\frac{1}{2}", True, False),  # plain-text fraction
    ("\\dfrac{1}{2}", "\\frac{1}{2}", True, False),  # LaTeX variant
    ("\\boxed{70}", "70", True, False),  # a boxed answer inside the answer tag
    ("2", "x = 2", True, False),  # math-verify compares a bare value with a gold equation's right side
    ("\\sqrt{8}", "2\\sqrt{2}", True, False),  # symbolic equality
    ("C", "\\text{(C)}", True, False),  # multiple-choice letter
    ("28", "27", False, False),  # wrong number
    ("3.14159", "\\pi", False, False),  # a rounded value is not pi
    ("-27", "27", False, False),  # sign matters
    ("", "27", False, False),  # empty answer
]


@pytest.mark.parametrize("answer,gold,by_math_verify,by_exact", CASES)
def test_graders_table(answer, gold, by_math_verify, by_exact):
    assert math_verify_equal(answer, gold) is by_math_verify
    assert exact_equal(answer, gold) is by_exact


def test_grader_registry_and_unknown_name():
    assert set(GRADERS) == {"math_verify", "exact"}
    assert get_grader("exact") is exact_equal
    with pytest.raises(ValueError) as error:
        get_grader("sympy")
    assert "sympy" in str(error.value) and "math_verify" in str(error.value) and "exact" in str(error.value)


JUNK = [
    "x" * 100_000,  # 100 KB of junk
    "",  # nothing
    b"\xff\xfe\xfa\x00\x9c".decode("utf-8", errors="replace"),  # undecodable bytes, decoded leniently
    "\\frac{" * 40,  # unbalanced LaTeX
    "x_" * 150,  # within the length cap, and math-verify never finishes it without its timeout
    "(" * 250,  # deep nesting under the cap: slow to parse, must still just be wrong
    "$$$$",
]


@pytest.mark.parametrize("junk", JUNK, ids=range(len(JUNK)))
def test_junk_is_wrong_never_an_exception(junk):
    start = time.perf_counter()
    assert math_verify_equal(junk, "27") is False
    assert exact_equal(junk, "27") is False
    canonical(junk)  # must not raise; its value for junk does not matter
    assert time.perf_counter() - start < 3 * graders.TIMEOUT_S + 1


def test_non_strings_are_wrong():
    assert math_verify_equal(None, "27") is False  # type: ignore[arg-type]
    assert exact_equal(27, "27") is False  # type: ignore[arg-type]
    assert canonical(None) is None


def test_math_verify_from_a_thread_uses_a_worker_process():
    """math-verify's timeouts need the main thread; from another thread the check runs in a worker process."""
    results = {}

    def work():
        results["right"] = math_verify_equal("0.5", "\\frac{1}{2}")
        results["wrong"] = math_verify_equal("0.4", "\\frac{1}{2}")
        results["form"] = canonical("1/2")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=120)
    assert results == {"right": True, "wrong": False, "form": "0.5"}


# Pairs math-verify calls equal, which voting must group, and pairs it tells apart, which voting must not.
SAME_FORM = [("27", "27.0"), ("0.5", "\\frac{1}{2}"), ("1/2", "\\dfrac12"), ("\\boxed{5}", "5"), ("x=2", "2"),
             ("x+1", "1+x"), ("\\sqrt{18}", "3\\sqrt{2}"), ("1/3", "0.333333"), ("-0", "0"), ("10^{400}", "10^{400}")]
DIFFERENT_FORM = [("27", "28"), ("\\pi", "3.14159"), ("x+1", "x-1"), ("1/2", "1/3")]


@pytest.mark.parametrize("a,b", SAME_FORM)
def test_canonical_groups_what_math_verify_equates(a, b):
    assert math_verify_equal(a, b)
    assert canonical(a) is not None and canonical(a) == canonical(b)


@pytest.mark.parametrize("a,b", DIFFERENT_FORM)
def test_canonical_separates_different_answers(a, b):
    assert not math_verify_equal(a, b)
    assert canonical(a) != canonical(b)


def test_canonical_of_nothing_and_of_overlong_answers_is_none():
    assert canonical("") is None
    assert canonical("   ") is None
    assert canonical("1" * (graders.MAX_MATH_ANSWER_CHARS + 1)) is None
