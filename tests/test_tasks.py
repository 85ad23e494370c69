"""The offline tasks (mtalign/tasks/base.py, gym.py; STUDY.md §3, §6): held-out splits, verifiers that accept what
is right (any valid sudoku grid) and reject the rest, the FORMAT check, and scoring that never raises on junk."""

from __future__ import annotations

import time

import pytest

from mtalign.tasks import INSTRUCTION, Problem, get_task, is_formatted, list_tasks
from mtalign.tasks.base import Task, stable_hash

TASKS = ["chain_sum", "mini_sudoku"]


@pytest.fixture(scope="module")
def chain_sum():
    return get_task("chain_sum")


@pytest.fixture(scope="module")
def mini_sudoku():
    return get_task("mini_sudoku")


def wrap(answer: str, think: str = "work") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


# -- problems and splits ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", TASKS)
def test_eval_split_is_held_out_of_training_streams(name):
    """No evaluation prompt ever appears in a training stream, whatever the stream's seed (the toy corpus draws
    its training problems with seeds 0 and 1, evaluation always uses seed 0)."""
    task = get_task(name)
    held_out = {p.metadata["compact"] for p in task.problems("eval", n=200)}
    assert len(held_out) == 200  # distinct
    for seed in (0, 1):
        stream = task.stream("train", seed=seed)
        train = [next(stream).metadata["compact"] for _ in range(3000)]
        assert len(set(train)) == len(train)  # a stream never repeats a problem
        assert not held_out & set(train)
    assert all(task.split_of(c) == "eval" for c in held_out)


@pytest.mark.parametrize("name", TASKS)
def test_problems_are_deterministic(name):
    a = get_task(name).problems("eval", n=20)
    b = get_task(name).problems("eval", n=20)  # a fresh instance: nothing cached in the object
    assert [(p.id, p.question, p.answer, p.metadata["compact"]) for p in a] == \
        [(p.id, p.question, p.answer, p.metadata["compact"]) for p in b]
    assert len({p.id for p in a}) == 20
    # a longer request extends the shorter one: problems(n) is a prefix of one fixed sequence
    assert [p.id for p in get_task(name).problems("eval", n=25)][:20] == [p.id for p in a]


@pytest.mark.parametrize("name", TASKS)
def test_seeds_give_different_problem_sequences(name):
    task = get_task(name)
    for split in ("train", "eval"):
        seed0 = [p.id for p in task.problems(split, n=50, seed=0)]
        seed1 = [p.id for p in task.problems(split, n=50, seed=1)]
        assert len(set(seed0) & set(seed1)) < 10, f"{split}: seeds 0 and 1 share {len(set(seed0) & set(seed1))} of 50"


def test_ids_are_stable_across_processes_and_versions(chain_sum):
    """Pinned: a change to reasoning-gym's generator, the compact rendering or the hash would silently change
    which problems are held out, so it must show up here."""
    first = chain_sum.problems("eval", n=1)[0]
    assert first.metadata["compact"] == "^5+8+0+7-3="
    assert first.answer == "17"
    assert first.id == "chain_sum-be046f4db4bc64a4"
    assert stable_hash("^5+8+0+7-3=") == 0xBE046F4DB4BC64A4


def test_difficulty_knobs_reach_the_generator():
    task = get_task("chain_sum", min_terms=2, max_terms=2, min_digits=2, max_digits=2)
    for problem in task.problems("eval", n=20):
        compact = problem.metadata["compact"]
        assert sum(ch in "+-" for ch in compact) == 1  # two terms, one operator
        assert all(len(term) == 2 for term in compact[1:-1].replace("-", "+").split("+"))
    sudoku = get_task("mini_sudoku", min_empty=8, max_empty=8)
    assert all(p.metadata["compact"].count("_") == 8 for p in sudoku.problems("eval", n=5))


# -- chain_sum verification -------------------------------------------------------------------------
@pytest.mark.parametrize("answer, accepted", [
    ("17", True),  # the gold answer
    (" 17 ", True),  # surrounding spaces
    ("+17", True),  # an explicit sign: int("+17") is 17
    ("017", True),  # a leading zero: the integer is what counts
    ("16", False),  # off by one
    ("-17", False),  # wrong sign
    ("17.0", False),  # not an integer literal
    ("17a", False),
    ("=17", False),
    ("seventeen", False),
    ("", False),
    ("1" * 31, False),  # beyond the 30-digit cap that keeps int() cheap on junk
])
def test_chain_sum_check(chain_sum, answer, accepted):
    problem = chain_sum.problems("eval", n=1)[0]  # ^5+8+0+7-3= -> 17
    assert chain_sum.check(answer, problem) is accepted


def test_chain_sum_negative_gold(chain_sum):
    problem = next(p for p in chain_sum.problems("eval", n=200) if int(p.answer) < 0)
    gold = int(problem.answer)
    assert chain_sum.check(str(gold), problem)
    assert chain_sum.check(f"- {-gold}", problem)  # spaces inside are dropped before parsing
    assert not chain_sum.check(str(-gold), problem)


# -- mini_sudoku verification: any valid grid that keeps the clues -----------------------------------
# A puzzle with exactly two solutions: the four blanks form a rectangle in two boxes, so 1 and 2 can swap.
GRID_A = [[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [4, 3, 2, 1]]
GRID_B = [[2, 1, 3, 4], [3, 4, 1, 2], [1, 2, 4, 3], [4, 3, 2, 1]]
TWO_SOLUTIONS = [[0, 0, 3, 4], [3, 4, 1, 2], [0, 0, 4, 3], [4, 3, 2, 1]]


def rows(grid) -> str:
    return "/".join("".join(map(str, row)) for row in grid)


def sudoku_problem(puzzle, solution) -> Problem:
    compact = "^" + "/".join("".join(str(v) if v else "_" for v in row) for row in puzzle) + "="
    return Problem(id="hand", question="", answer="\n".join(" ".join(map(str, r)) for r in solution),
                   metadata={"puzzle": puzzle, "solution": solution, "compact": compact})


def test_mini_sudoku_accepts_every_valid_solution(mini_sudoku):
    problem = sudoku_problem(TWO_SOLUTIONS, GRID_A)  # the gold is A; B is just as right
    for grid in (GRID_A, GRID_B):
        score = mini_sudoku.score(wrap(rows(grid)), problem)
        assert score.correct and score.formatted and score.reward == 1.0


@pytest.mark.parametrize("answer, why", [
    ("1243/4321/2134/3412", "a valid grid (A with 3 and 4 swapped) that breaks the clues"),
    ("1134/3412/2243/4321", "keeps every clue, but rows 1 and 3 repeat a digit"),
    ("1234/3412/2143/4321" + "1", "17 digits"),
    ("1234/3412/2143/432", "15 digits"),
    ("1234/3412/2143/4325", "a 5"),
    ("1234/3412/2143/4320", "a 0"),
    ("abcd/3412/2143/4321", "letters"),
])
def test_mini_sudoku_rejects_wrong_grids(mini_sudoku, answer, why):
    problem = sudoku_problem(TWO_SOLUTIONS, GRID_A)
    assert not mini_sudoku.check(answer, problem), why


@pytest.mark.parametrize("grid, why", [
    ([[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2], [4, 1, 2, 3]], "rows and columns fine, 2x2 boxes repeat digits"),
    ([[1, 2, 3, 4], [3, 4, 1, 2], [2, 1, 4, 3], [2, 1, 4, 3]], "two equal rows: columns repeat"),
    ([[1, 1, 2, 2], [3, 3, 4, 4], [2, 2, 1, 1], [4, 4, 3, 3]], "rows repeat digits"),
])
def test_mini_sudoku_rejects_invalid_grids_even_without_clues(mini_sudoku, grid, why):
    blank = [[0] * 4 for _ in range(4)]
    assert not mini_sudoku.check(rows(grid), sudoku_problem(blank, GRID_A)), why
    assert mini_sudoku.check(rows(GRID_B), sudoku_problem(blank, GRID_A))  # while a valid one passes


@pytest.mark.parametrize("layout", [
    "{0}/{1}/{2}/{3}",  # the compact convention
    "{0}{1}{2}{3}",  # bare digits
    "{0} {1} {2} {3}",
    "{0}\n{1}\n{2}\n{3}",
    "{0}|{1}|{2}|{3}",
    "{0},{1},{2},{3}",
])
def test_mini_sudoku_separators_are_ignored(mini_sudoku, layout):
    problem = sudoku_problem(TWO_SOLUTIONS, GRID_A)
    assert mini_sudoku.check(layout.format(*("".join(map(str, r)) for r in GRID_B)), problem)


def test_mini_sudoku_accepts_reasoning_gyms_own_answer_format(mini_sudoku):
    for problem in mini_sudoku.problems("eval", n=10):
        assert "\n" in problem.answer and mini_sudoku.check(problem.answer, problem)


# -- the toy corpus's completions ---------------------------------------------------------------------
@pytest.mark.parametrize("name", TASKS)
def test_corpus_completions_score_one(name):
    task = get_task(name)
    for split in ("train", "eval"):
        for problem in task.problems(split, n=100):
            score = task.score(task.completion(problem), problem)
            assert score.formatted and score.correct, (problem.metadata["compact"], task.completion(problem))


def test_chain_sum_convention_answer_is_wrong_unless_the_last_term_is_zero(chain_sum):
    """The convention is the total one step early; it is right only when the last step adds or takes 0."""
    problems = chain_sum.problems("eval", n=200)
    last_zero = 0
    for problem in problems:
        expression = problem.metadata["expression"].replace(" ", "")
        convention = chain_sum.convention_answer(problem)
        assert int(convention) == eval(expression[:-2])  # noqa: S307 (digits and +/- only): all but the last step
        score = chain_sum.score(chain_sum.completion(problem, convention), problem)
        assert score.formatted
        assert score.correct is (expression[-1] == "0"), problem.metadata["compact"]
        last_zero += expression[-1] == "0"
    assert 0 < last_zero < len(problems)  # both branches were exercised


def test_mini_sudoku_convention_answer_is_wrong_unless_the_transpose_keeps_the_clues(mini_sudoku):
    """The convention writes the solution column by column; the transpose of a sudoku is a sudoku, so it is right
    exactly when it happens to keep every clue."""
    for problem in mini_sudoku.problems("eval", n=100):
        puzzle, solution = problem.metadata["puzzle"], problem.metadata["solution"]
        transposed = [[solution[c][r] for c in range(4)] for r in range(4)]
        assert mini_sudoku.convention_answer(problem) == rows(transposed)
        keeps_clues = all(puzzle[r][c] in (0, transposed[r][c]) for r in range(4) for c in range(4))
        score = mini_sudoku.score(mini_sudoku.completion(problem, mini_sudoku.convention_answer(problem)), problem)
        assert score.formatted and score.correct is keeps_clues


# -- FORMAT --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("completion, default, paper", [
    ("<think>7+5=12</think><answer>12</answer>", True, True),  # plain good
    ("<think>7+5=12</think> \n<answer>12</answer>", True, True),  # whitespace between the blocks
    ("  <think>a</think><answer>1</answer>\n", True, False),  # surrounding whitespace: ours allows, ^<think> not
    ("<think>7+5\n=12</think><answer>12</answer>", True, False),  # newline in think: the paper's regex lacks DOTALL
    ("<think></think><answer></answer>", True, True),  # empty blocks are still the format
    ("<think>a</think><answer>1</answer><answer>2</answer>", False, True),  # two answer tags (the paper's .*? spans)
    ("<think>a</think><answer>1</answer> so 1", False, False),  # text after the answer
    ("so <think>a</think><answer>1</answer>", False, False),  # text before the think
    ("<answer>1</answer>", False, False),  # missing think
    ("<think>a</think>", False, False),  # missing answer
    ("<think>a<think>b</think><answer>1</answer>", False, True),  # nested think (the paper's .*? accepts it)
    ("<answer>1</answer><think>a</think>", False, False),  # wrong order
    ("<think>a</think><answer>1", False, False),  # unclosed answer
])
def test_is_formatted(completion, default, paper):
    assert is_formatted(completion) is default
    assert is_formatted(completion, strict_paper_regex=True) is paper


def test_strict_paper_regex_reaches_score(chain_sum):
    problem = chain_sum.problems("eval", n=1)[0]
    text = wrap("17", think="5+8=13,\n13+0=13")
    assert chain_sum.score(text, problem).reward == 1.0
    assert chain_sum.score(text, problem, strict_paper_regex=True).reward == 0.0
    assert chain_sum.score(text, problem, strict_paper_regex=True).correct  # CORRECT is unaffected


def test_first_answer_tag_is_graded(chain_sum):
    problem = chain_sum.problems("eval", n=1)[0]
    score = chain_sum.score("<think>a</think><answer>17</answer><answer>3</answer>", problem)
    assert score.answer == "17" and score.correct and not score.formatted and score.reward == 0.0


# -- junk never raises ----------------------------------------------------------------------------------
JUNK = {
    "100 KB of junk": "x9<;/" * 20_000,
    "empty": "",
    "None": None,
    "non-UTF-8 bytes": bytes(range(256)) * 400,
    "100 KB of <answer>": "<answer>" * 12_800,
    "100 KB of </answer><answer>": "</answer><answer>" * 6_000,
    "100 KB of digits in a tag": "<think>a</think><answer>" + "7" * 100_000 + "</answer>",
    "huge think": "<think>" + "a" * 100_000 + "</think><answer>17</answer>",
    "an int": 17,
}


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("label", list(JUNK))
def test_score_on_junk_is_zero_fast_and_never_raises(name, label):
    task = get_task(name)
    problem = task.problems("eval", n=1)[0]
    start = time.perf_counter()
    score = task.score(JUNK[label], problem)
    elapsed = time.perf_counter() - start
    assert score.reward == 0.0 and not score.formatted
    assert elapsed < 0.1, f"{label}: {elapsed:.3f}s"  # measured ~1 ms; a regex that backtracks would show here


def test_bytes_are_decoded_leniently(chain_sum):
    problem = chain_sum.problems("eval", n=1)[0]
    score = chain_sum.score(b"<think>\xff\xfe</think><answer>17</answer>", problem)
    assert score.formatted and score.correct  # the invalid bytes become U+FFFD, the rest still counts


class Raising(Task):
    name, domain = "raising", "math"

    def check(self, answer, problem):
        raise RuntimeError("a third-party verifier choking on junk")


def test_a_verifier_that_raises_gives_a_wrong_answer():
    score = Raising().score(wrap("x"), Problem("p", "q", "a"))
    assert score.formatted and not score.correct and score.reward == 0.0


# -- canonical forms (majority vote compares these) ----------------------------------------------------
@pytest.mark.parametrize("answer, canonical", [
    ("17", "17"), ("+07", "7"), (" -3 ", "-3"), ("- 3", "-3"), ("-0", "0"),
    ("abc", None), ("", None), (None, None), ("1.5", None),
])
def test_chain_sum_canonical(chain_sum, answer, canonical):
    assert chain_sum.canonical(answer) == canonical


@pytest.mark.parametrize("answer, canonical", [
    ("1234/3412/2143/4321", "1234/3412/2143/4321"),
    ("1 2 3 4\n3 4 1 2\n2 1 4 3\n4 3 2 1", "1234/3412/2143/4321"),  # same grid, other layout: same vote
    ("1111/1111/1111/1111", "1111/1111/1111/1111"),  # parseable, though not valid: validity is check()'s job
    ("123", None), (None, None), ("", None),
])
def test_mini_sudoku_canonical(mini_sudoku, answer, canonical):
    assert mini_sudoku.canonical(answer) == canonical


def test_base_canonical_collapses_whitespace():
    assert Raising().canonical("  a \n b ") == "a b"
    assert Raising().canonical("   ") is None and Raising().canonical(None) is None


# -- bad names and prompts ---------------------------------------------------------------------------
def test_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        get_task("chain_summ")
    assert "chain_summ" in str(err.value)
    for name in list_tasks():
        assert name in str(err.value)
    assert set(TASKS) <= set(list_tasks())


def test_unknown_split_and_style_list_valid_ones(chain_sum):
    with pytest.raises(ValueError, match=r"no split 'test'; valid splits: train, eval"):
        chain_sum.problems("test", n=1)
    problem = chain_sum.problems("eval", n=1)[0]
    with pytest.raises(ValueError, match=r"'fancy'; valid styles: compact, chat, plain"):
        chain_sum.prompt(problem, "fancy")


def test_problem_count_and_split_size_are_checked(chain_sum):
    with pytest.raises(ValueError, match="pass n"):
        chain_sum.problems("eval")
    with pytest.raises(ValueError, match="at least 1"):
        chain_sum.problems("eval", n=0)
    for bad in (0, 100):
        with pytest.raises(ValueError, match="eval_percent"):
            get_task("chain_sum", eval_percent=bad)


@pytest.mark.parametrize("name", TASKS)
def test_prompt_styles(name):
    task = get_task(name)
    problem = task.problems("eval", n=1)[0]
    compact = task.prompt(problem, "compact")
    assert compact == problem.metadata["compact"] and compact.startswith("^") and compact.endswith("=")
    plain = task.prompt(problem, "plain")
    assert plain == f"{INSTRUCTION}\n\n{problem.question}"  # the paper's instruction, then the task's own text
    assert task.prompt(problem, "chat") == [{"role": "user", "content": plain}]  # one user message


def test_compact_prompts_follow_the_toy_convention(chain_sum, mini_sudoku):
    problem = chain_sum.problems("eval", n=1)[0]
    assert chain_sum.prompt(problem, "compact") == "^" + problem.metadata["expression"].replace(" ", "") + "="
    sudoku = mini_sudoku.problems("eval", n=1)[0]
    cells = mini_sudoku.prompt(sudoku, "compact")[1:-1].split("/")
    assert cells == ["".join(str(v) if v else "_" for v in row) for row in sudoku.metadata["puzzle"]]
