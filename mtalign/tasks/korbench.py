"""KOR-Bench's five subsets (STUDY.md §5), evaluation-only logic tasks: its prompt, loader and grading.

KOR-Bench is not on the Hugging Face hub. Its source is github.com/KOR-Bench/KOR-Bench: `data/<subset>/sample.jsonl`
(idx, question, answer as `[[…]]`, rule_id, plus per-subset fields such as needle, category, real_life_answer)
and `data/<subset>/rule.jsonl` (idx, title, rule_content, tag); `data_path` is a clone of that repository, its
`data/` folder or one subset folder. Its prompt is KOR-Bench's `config/prompt/zero-shot-cot.yaml` template filled
with the rule and the question, after the study's answer-format instruction. Its grading follows KOR-Bench's
`eval/eval_utils.py` (`evaluate_response_vs_answer`) on the content of the answer tag; see `korbench_correct`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mtalign.tasks import graders, synlogic
from mtalign.tasks.base import INSTRUCTION, Problem
from mtalign.tasks.hub import DatasetUnavailable, HubTask, require_fields

# -- KOR-Bench ----------------------------------------------------------------------------------------------------

# KOR-Bench's zero-shot-cot prompt (config/prompt/zero-shot-cot.yaml), one per subset: {rule} then {question}.
_KOR_ROLES = {
    "cipher": ("You are an intelligent assistant that specializes in encryption and decryption tasks. Below are the "
               "rules for a specific cipher. When responding, please ensure that your output adheres to the specified "
               "encryption and decryption rules and format.",
               ["Identify the relevant properties and objects specified in the rule, including the plaintext, "
                "keyword, and ciphertext.",
                "Follow the specified encryption or decryption operations precisely as described in the rules.",
                "Ensure your output is formatted according to the specified notation and symbols."],
               "Cipher Rule"),
    "counterfactual": ("You are an advanced assistant with expertise in storytelling and rule-based reasoning. Your "
                       "task is to carefully analyze the provided story, which includes specific rules and details, "
                       "and use this information to accurately answer related questions.",
                       ["Thoroughly review the story to identify and understand the relevant details and rules.",
                        "Use the context provided by the story to offer precise and insightful answers.",
                        "Ensure your responses align with the rules and information given in the story."],
                       "Story Rule"),
    "logic": ("You are an intelligent assistant that helps with various logical reasoning tasks. Below is a "
              "custom-defined rule for a specific type of logic. When responding, please ensure that your output "
              "adheres to the specified logical rules and format.",
              ["Identify the relevant properties and objects as specified in the rule.",
               "Apply the given logical operations or reasoning patterns.",
               "Ensure your output is formatted according to the specified notation and symbols."],
              "Logic Rule"),
    "operation": ("You are an intelligent assistant specializing in evaluating custom operations. Below is a specific "
                  "rule defined for a custom operation. Your task is to apply this rule accurately to the provided "
                  "question.",
                  ["Carefully read and understand the definitions of the new operations in the rule.",
                   "If the question does not specifically ask for it, your answer should be a number or a group of "
                   "numbers.",
                   "Double-check your final answer to ensure it follows the rule accurately."],
                  "Operation Rule"),
    "puzzle": ("You are an intelligent assistant specializing in solving custom puzzle problems. Below is a specific "
               "rule defined for a custom puzzle. Your task is to apply this rule accurately to the provided question.",
               ["Thoroughly understand the rule provided. If needed, break down the rule into simpler components or "
                "steps.",
                "Apply the rule carefully to address the question presented.",
                "Verify your answer to ensure it aligns with the rule and the context of the puzzle."],
               "Puzzle Rule"),
}


def korbench_prompt(subset: str, rule: str, question: str) -> str:
    role, steps, heading = _KOR_ROLES[subset]
    numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    return (f"{role}\n\n### Instructions:\n\n{numbered}\n\n### {heading}:\n\n{rule}\n\n### Question:\n{question}\n\n"
            f"Let's think step by step.\n\n### Answer:\n")


# KOR-Bench grades these operation items (LaTeX answers) by symbolic equality; we use math-verify for them.
_KOR_MATH_IDX = frozenset([18, 73, 74, 77, 94, 115, 116, 117, 121, 122, 123, 125, 131, 132, 134, 135, 136, 141, 143,
                           145, 146, 147, 149, 151, 152, 153, 154, 155, 156, 160, 161, 162, 164, 165, 166, 170, 206,
                           209, 211, 212, 213, 214, 215, 217, 218])


def _kor_inner(text: str) -> str:
    """The answer inside KOR-Bench's `[[…]]` (else `$\\boxed{…}$`, else `[…]`); the whole text if none.

    The last fallback is ours: the answer tag already isolates the answer, so `A` counts like `[[A]]`.
    """
    for pattern in (r"\[\[\s*(.*?)\s*\]\]", r"\$\\boxed\{(.*?)\}\$", r"\[\s*(.*?)\s*\]"):
        match = re.search(pattern, text, re.DOTALL)
        if match:
            return match.group(1).strip()
    return text.strip()


def _drop(text: str, chars: str) -> str:
    return text.translate({ord(c): None for c in chars})


def korbench_correct(subset: str, answer: str, gold: str, rule_id: str, idx: str) -> bool:
    """KOR-Bench's `evaluate_response_vs_answer`, applied to the answer tag's content.

    cipher, counterfactual: exact match after dropping quotes, newlines, spaces and brackets. logic: exact after
    dropping quotes, newlines, spaces and periods (rule 5: `;`-separated parts in any order). operation: `or`-
    separated answers in any order; the LaTeX items KOR-Bench checks with sympy are checked with math-verify; its
    special rules 18 (same characters), 23-25 (same integers) and items 178-179 (same inequalities) are kept.
    puzzle: KOR-Bench's per-rule matchers, with two fixes: rule 4 needs one of the listed words (KOR-Bench tests a
    substring, so an empty answer passed) and rules 2-4 compare case-insensitively on both sides.
    """
    response, expected = _kor_inner(answer), _kor_inner(gold)
    if not response:
        return False
    if subset == "logic":
        r, e = _drop(response, '"\n .'), _drop(expected, '"\n .')
        return sorted(r.split(";")) == sorted(e.split(";")) if rule_id == "5" else r == e
    if subset == "operation":
        r, e = _drop(response, '"\n []'), _drop(expected, '"\n []')
        if idx in ("178", "179"):
            return _inequalities(r) == _inequalities(e)
        if rule_id == "18":
            return sorted(re.sub(r"\W+", "", r)) == sorted(re.sub(r"\W+", "", e))
        if rule_id in ("23", "24", "25"):
            return [int(x) for x in re.findall(r"\d+", r)] == [int(x) for x in re.findall(r"\d+", e)]
        r_parts = [p.strip() for p in r.replace("\\text{or}", "or").split("or")]
        e_parts = [p.strip() for p in e.split("or")]
        if idx.isdigit() and int(idx) in _KOR_MATH_IDX:
            return _same_multiset(r_parts, e_parts, lambda a, b: a == b or graders.math_verify_equal(a, b))
        return sorted(r_parts) == sorted(e_parts)
    if subset == "puzzle":
        return _kor_puzzle(rule_id, response, expected)
    return _drop(response, '"\n []') == _drop(expected, '"\n []')


def _inequalities(text: str) -> list[str]:
    return sorted("".join(m) for m in re.findall(r"(≥|≤)\s*(-?\d+\.?\d*)", text))


def _letters(text: str) -> str:
    return re.sub(r"[^A-Za-z]", "", text).lower()


def _same_multiset(left: list[str], right: list[str], same) -> bool:
    """Can `left` and `right` be paired one to one with `same`?"""
    if len(left) != len(right):
        return False
    unmatched = list(right)
    for item in left:
        match = next((i for i, other in enumerate(unmatched) if same(item, other)), None)
        if match is None:
            return False
        unmatched.pop(match)
    return True


def _kor_puzzle(rule_id: str, response: str, expected: str) -> bool:
    letters = _letters
    if rule_id == "1":  # the letters, in order
        return letters(response) == letters(expected)
    if rule_id == "2":  # one of the comma-separated answers
        return letters(response) in {letters(item) for item in expected.split(",")}
    if rule_id == "3":  # the same words in any order
        return sorted(w for w in re.split(r"\W+", response.lower()) if w) == sorted(expected.lower().split())
    if rule_id == "4":  # one of the space-separated words
        return letters(response) in {letters(item) for item in expected.split() if letters(item)}
    if rule_id == "5":  # the same comma-separated assignments in any order
        return sorted(re.sub(r"\s+", "", response).split(",")) == sorted(expected.split(","))
    if rule_id == "9":  # the same operators, and the expression evaluates to the gold result
        r = response.replace("×", "*").replace("−", "-")
        e = expected.replace("×", "*").replace("−", "-")
        if re.findall(r"[+\-*/]", r.split("=")[0]) != re.findall(r"[+\-*/]", e.split("=")[0]):
            return False
        target = re.search(r"=\s*(-?\d+)", e)
        return target is not None and synlogic.evaluate_arithmetic(r.split("=")[0]) == int(target.group(1))
    if rule_id == "10":  # the same numbers, evaluating to 24
        r = response.replace("×", "*").replace("−", "-").split("=")[0]
        e = expected.split("\n")[0].split("=")[0]
        if sorted(re.sub(r"\W+", "", r)) != sorted(re.sub(r"\W+", "", e)):
            return False
        return synlogic.evaluate_arithmetic(r) == 24
    if rule_id == "18":
        return re.sub(r"[,\s\[\]]+", "", response) == re.sub(r"[,\s\[\]]+", "", expected)
    return re.sub(r"\W+", "", response) == re.sub(r"\W+", "", expected)


class KorBench(HubTask):
    """One KOR-Bench subset (Operation, Counterfactual, Puzzle, Cipher, Logic; STUDY.md §5 logic evaluation)."""

    domain = "logic"
    subset = ""
    repo = "github.com/KOR-Bench/KOR-Bench"

    def _load_rows(self, split: str) -> list[dict[str, Any]]:
        if self.data_path is None:
            raise DatasetUnavailable(
                f"KOR-Bench is not on the Hugging Face hub: on a machine with internet access run `git clone "
                f"https://github.com/KOR-Bench/KOR-Bench`, copy the clone here and pass data_path=<the clone> (or "
                f"its data/ folder, or data/{self.subset})."
            )
        folder = self._subset_folder(self.data_path)
        samples = _read_jsonl(folder / "sample.jsonl")
        rules = {str(rule["idx"]): rule for rule in _read_jsonl(folder / "rule.jsonl")}
        require_fields(samples, ("idx", "question", "answer", "rule_id"), f"{self.name} sample.jsonl")
        rows = []
        for sample in samples:
            rule = rules.get(str(sample["rule_id"]))
            if rule is None or "rule_content" not in rule:
                raise ValueError(f"{self.name}: sample {sample['idx']} refers to rule {sample['rule_id']!r}, which "
                                 f"rule.jsonl in {folder} does not define")
            rows.append({**sample, "rule_content": rule["rule_content"], "title": rule.get("title", ""),
                         "tag": rule.get("tag", "")})
        return rows

    def _subset_folder(self, path: Path) -> Path:
        for folder in (path / "data" / self.subset, path / self.subset, path):
            if (folder / "sample.jsonl").is_file() and (folder / "rule.jsonl").is_file():
                return folder
        raise FileNotFoundError(
            f"{self.name}: no KOR-Bench data under {str(path)!r}; expected data/{self.subset}/sample.jsonl and "
            f"rule.jsonl in a clone of github.com/KOR-Bench/KOR-Bench"
        )

    def _to_problems(self, rows: list[dict[str, Any]], split: str) -> list[Problem]:
        return [
            Problem(
                id=f"{self.name}-{row['idx']}",
                question=str(row["question"]),
                answer=str(row["answer"]),
                metadata={k: (str(v) if k in ("idx", "rule_id") else v)
                          for k, v in row.items() if k not in ("question", "answer")},
            )
            for row in rows
        ]

    def prompt(self, problem: Problem, style: str = "chat") -> str | list[dict[str, str]]:
        """The study's answer-format instruction, then KOR-Bench's prompt with the rule and the question."""
        self._check_style(style)
        text = f"{INSTRUCTION}\n\n{korbench_prompt(self.subset, problem.metadata['rule_content'], problem.question)}"
        return text if style == "plain" else [{"role": "user", "content": text}]

    def check(self, answer: str, problem: Problem) -> bool:
        return korbench_correct(self.subset, answer, problem.answer, problem.metadata["rule_id"],
                                problem.metadata["idx"])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}: line {number} is not JSON ({error})") from error
    return rows


class KorBenchOperation(KorBench):
    name, subset = "korbench_operation", "operation"


class KorBenchCounterfactual(KorBench):
    name, subset = "korbench_counterfactual", "counterfactual"


class KorBenchPuzzle(KorBench):
    name, subset = "korbench_puzzle", "puzzle"


class KorBenchCipher(KorBench):
    name, subset = "korbench_cipher", "cipher"


class KorBenchLogic(KorBench):
    name, subset = "korbench_logic", "logic"


KORBENCH_TASKS = (KorBenchOperation, KorBenchCounterfactual, KorBenchPuzzle, KorBenchCipher, KorBenchLogic)
