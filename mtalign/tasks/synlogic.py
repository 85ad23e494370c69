"""Verifiers for SynLogic puzzles (MiniMaxAI/SynLogic, STUDY.md §5 logic domain), written from SynLogic's own.

Each SynLogic row names its puzzle type in `data_source` (validation rows carry a `val/` prefix) and holds the
puzzle's ground truth in `extra_info.game_data_str`: a JSON object `{"question", "answer", "difficulty",
"metadata", "gpt_response"}` (SynLogic's `base.data.Data`). The paper's reward code strips `val/`, parses that JSON
and calls SynLogic's verifier for the type on the content of the first `<answer>` tag; we do the same with small
verifiers of our own for the types below, following SynLogic's `games/tasks/<type>/scripts/<type>_verifier.py`
(github.com/MiniMax-AI/SynLogic) with these deliberate differences:

- The wrapper a SynLogic prompt asks for inside the answer (`\\boxed{…}` or a ```python block) is optional here;
  the answer tag already isolates the answer. Only the wrapper is optional, never any part of the content.
- mathador / game of 24: SynLogic's verifier overwrites the target with the answer's own value and so accepts any
  expression that uses the right numbers; ours requires the expression to equal `metadata.result`, evaluated
  exactly with fractions and without `eval`.
- sudoku: any size with square boxes (4x4, 9x9, 16x16), not only 9x9.

Every other SynLogic type has no verifier here; asking to verify one is an error that names it.
"""

from __future__ import annotations

import ast
import operator
import re
from collections import Counter
from fractions import Fraction
from typing import Any, Callable

# The 35 task types of SynLogic's task2verifier.py (easy is a subset of 27), plus `game_of_24`, the name some
# pipelines use for mathador.
SYNLOGIC_TASK_TYPES: tuple[str, ...] = (
    "arc_agi", "arrow_maze", "boolean_expressions", "buggy_tables", "calcudoko", "campsite", "cipher", "cryptarithm",
    "dyck_language", "dyck_language_errors", "dyck_language_reasoning_errors", "futoshiki", "game_of_24",
    "goods_exchange", "kukurasu", "math_path", "mathador", "minesweeper", "norinori", "number_wall", "numbrix",
    "object_counting", "object_properties", "operation", "skyscraper_puzzle", "space_reasoning",
    "space_reasoning_tree", "star_placement_puzzle", "sudoku", "survo", "time_sequence", "web_of_lies",
    "word_sorting", "word_sorting_mistake", "wordscapes", "zebra_puzzle",
)

# Game data: the parsed `extra_info.game_data_str` of one row.
GameData = dict[str, Any]


def task_type(data_source: str) -> str:
    """The puzzle type of a row: its `data_source` without the split prefix (`val/sudoku` -> `sudoku`)."""
    for prefix in ("val/", "train/", "test/"):
        if data_source.startswith(prefix):
            return data_source[len(prefix):]
    return data_source


# -- answer wrappers ---------------------------------------------------------------------------------------------

def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` (nested braces allowed), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j].strip()
    return None


def last_code_block(text: str) -> str | None:
    """Content of the last fenced code block (```python … ``` or ``` … ```), or None."""
    blocks = re.findall(r"```(?:python)?\s*(.*?)```", text, re.DOTALL)
    return blocks[-1].strip() if blocks else None


def _boxed_or_all(answer: str) -> str:
    boxed = last_boxed(answer)
    return (boxed if boxed is not None else answer).strip()


def _code_or_all(answer: str) -> str:
    code = last_code_block(answer)
    return (code if code is not None else answer).strip()


# -- exact arithmetic without eval ------------------------------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate_arithmetic(expression: str) -> Fraction:
    """Value of an expression of integers, + - * / and parentheses, computed exactly. Raises on anything else."""
    def value(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](value(node.left), value(node.right))  # x/0 raises ZeroDivisionError
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        raise ValueError(f"not plain arithmetic: {ast.dump(node)[:80]}")

    if len(expression) > 500:  # a puzzle answer, not a program
        raise ValueError("expression too long")
    return value(ast.parse(expression, mode="eval"))


# -- the verifiers: (answer-tag content, game data) -> correct? ---------------------------------------------------

def verify_sudoku(answer: str, game: GameData) -> bool:
    """A complete grid (Python list/tuple literal) that keeps every clue of `metadata.original_sudoku` and has
    each of 1..n once in every row, column and box."""
    text = _code_or_all(answer)
    puzzle = game["metadata"]["original_sudoku"]
    n = len(puzzle)
    box = int(round(n ** 0.5))
    if box * box != n or len(text) > 40 * n * n:  # SynLogic's sudokus are 9x9; a grid is a few hundred chars
        return False
    grid = ast.literal_eval(text)
    if not isinstance(grid, (list, tuple)) or len(grid) != n:
        return False
    if any(not isinstance(row, (list, tuple)) or len(row) != n for row in grid):
        return False
    if any(type(v) is not int for row in grid for v in row):
        return False
    full = set(range(1, n + 1))
    rows = [set(row) for row in grid]
    cols = [{grid[r][c] for r in range(n)} for c in range(n)]
    boxes = [{grid[r][c] for r in range(br, br + box) for c in range(bc, bc + box)}
             for br in range(0, n, box) for bc in range(0, n, box)]
    # Blanks are 0 or "X"/"x" in SynLogic's puzzles; clues may be ints or digit strings.
    clues = all(str(puzzle[r][c]) in ("0", "X", "x") or int(puzzle[r][c]) == grid[r][c]
                for r in range(n) for c in range(n))
    return clues and all(group == full for group in rows + cols + boxes)


def verify_arithmetic_target(answer: str, game: GameData) -> bool:
    """mathador / game of 24: an expression that uses exactly the given numbers, only the allowed operators and
    parentheses, and equals `metadata.result`. A trailing `= result` is allowed."""
    meta = game["metadata"]
    expression = _code_or_all(answer).replace("×", "*").replace("÷", "/")
    expression = expression.split("=")[0].strip()
    allowed = {str(op).replace("×", "*").replace("÷", "/") for op in meta["operators"]}
    if any(ch not in allowed and ch not in "()" for ch in re.sub(r"[0-9\s]", "", expression)):
        return False
    if Counter(re.findall(r"\d+", expression)) != Counter(str(x) for x in meta["numbers"]):
        return False
    return evaluate_arithmetic(expression) == Fraction(str(meta["result"]))


def verify_dyck_language(answer: str, game: GameData) -> bool:
    """The completed bracket sequence, `metadata.full_sequence`, ignoring whitespace and surrounding quotes."""
    text = "".join(answer.split())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text == game["metadata"]["full_sequence"]


def verify_boolean_expressions(answer: str, game: GameData) -> bool:
    """The set of option letters (case-insensitive) equals the gold set, as SynLogic compares them."""
    letters = set(re.findall(r"[a-z]", _boxed_or_all(answer).lower()))
    gold = set(re.findall(r"[a-z]", _boxed_or_all(str(game["answer"])).lower()))
    return bool(gold) and letters == gold


def _word_list(text: str) -> list[str]:
    return [w.strip() for w in text.replace("，", ",").replace(" ", "").split(",")]


def verify_word_sorting(answer: str, game: GameData) -> bool:
    """The comma-separated words in the gold order (spaces ignored)."""
    return _word_list(_boxed_or_all(answer)) == _word_list(str(game["answer"]))


def verify_object_counting(answer: str, game: GameData) -> bool:
    """The gold count as an integer."""
    text = _boxed_or_all(answer)
    return re.fullmatch(r"[+-]?\d{1,12}", text) is not None and int(text) == int(str(game["answer"]).strip())


VERIFIERS: dict[str, Callable[[str, GameData], bool]] = {
    "sudoku": verify_sudoku,
    "mathador": verify_arithmetic_target,
    "game_of_24": verify_arithmetic_target,
    "dyck_language": verify_dyck_language,
    "boolean_expressions": verify_boolean_expressions,
    "word_sorting": verify_word_sorting,
    "object_counting": verify_object_counting,
}


def verify(kind: str, answer: str, game: GameData) -> bool:
    """Does `answer` solve the puzzle of type `kind`? Junk is a wrong answer; a type without a verifier is an error."""
    if kind not in VERIFIERS:
        raise ValueError(f"no verifier for SynLogic task {kind!r}; verifiable tasks: {', '.join(sorted(VERIFIERS))}")
    try:
        return bool(VERIFIERS[kind](answer, game))
    except Exception:  # unparseable grids, bad expressions, division by zero: the answer is wrong
        return False
