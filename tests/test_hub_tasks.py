"""Real dataset loaders and verifiers (STUDY.md §5), tested on schema-faithful fixtures in tests/fixtures/hub."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import mtalign.tasks as tasks
from mtalign.tasks import INSTRUCTION, Problem, get_task, hub, korbench, synlogic

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hub"
ROOT = Path(__file__).resolve().parent.parent

# Every hub task with the fixture folder it reads.
TASK_FIXTURES = {
    "deepscaler": "deepscaler", "math500": "math500", "aime24": "aime24", "aime25": "aime25", "amc23": "amc23",
    "synlogic": "synlogic", "korbench_operation": "korbench", "korbench_counterfactual": "korbench",
    "korbench_puzzle": "korbench", "korbench_cipher": "korbench", "korbench_logic": "korbench",
}


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Nothing here may write to ~ or the repo, nor reach for the network."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MTALIGN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MTALIGN_OUTPUTS", str(tmp_path / "outputs"))
    # datasets and huggingface_hub read these at import; patch the values they use at call time.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def fixture_task(name: str, **kwargs):
    return get_task(name, data_path=FIXTURES / TASK_FIXTURES[name], **kwargs)


def completion(answer: str) -> str:
    return f"<think>working</think><answer>{answer}</answer>"


# -- registry and laziness -------------------------------------------------------------------------------------

def test_registry_lists_every_hub_task():
    assert set(tasks._hub_tasks()) == set(TASK_FIXTURES)
    assert set(TASK_FIXTURES) <= set(tasks.list_tasks())


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        get_task("math-500")
    for name in ("math500", "synlogic", "korbench_cipher", "chain_sum"):
        assert name in str(error.value)


def test_building_and_listing_tasks_reads_no_data(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("data was read while building a task")

    monkeypatch.setattr(hub, "load_split", forbidden)
    monkeypatch.setattr(korbench.KorBench, "_load_rows", forbidden)
    tasks.list_tasks()
    for name in TASK_FIXTURES:
        get_task(name)  # no data_path, no cache: still fine until problems() is called


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="valid graders: math_verify, exact"):
        get_task("math500", grader="sympy")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_task("math500", data_path=FIXTURES / "no-such-folder")
    with pytest.raises(ValueError, match="valid configs: easy, hard"):
        get_task("synlogic", config="medium")
    with pytest.raises(ValueError, match="unknown SynLogic task type.*valid types"):
        get_task("synlogic", task_types=["sudokuu"])


# -- math datasets ---------------------------------------------------------------------------------------------

MATH_EXPECTED = {
    # name: (split, ids, gold answers)
    "math500": ("test", ["math500-test/counting_and_probability/1.json", "math500-test/algebra/2.json",
                         "math500-test/prealgebra/3.json", "math500-test/precalculus/4.json"],
                ["70", "\\frac{14}{3}", "\\text{(C)}", "\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}"]),
    "aime24": ("train", ["aime24-60", "aime24-61", "aime24-62"], ["033", "204", "25"]),  # parquet, string answers
    "aime25": ("test", ["aime25-0", "aime25-1"], ["70", "32"]),
    "amc23": ("test", ["amc23-0", "amc23-1", "amc23-2"], ["27", "0.5", "36"]),  # float64 27.0 -> "27"
}


@pytest.mark.parametrize("name", sorted(MATH_EXPECTED))
def test_math_loader(name):
    split, ids, answers = MATH_EXPECTED[name]
    task = fixture_task(name)
    problems = task.problems()  # the evaluation split by default
    assert task.eval_split == split and task.domain == "math"
    assert [p.id for p in problems] == ids
    assert [p.answer for p in problems] == answers
    assert all(isinstance(p.answer, str) and p.question for p in problems)
    prompt = task.prompt(problems[0], "chat")
    assert prompt == [{"role": "user", "content": f"{INSTRUCTION}\n\n{problems[0].question}"}]


def test_math_metadata_keeps_the_other_fields():
    math500 = fixture_task("math500").problems()[0]
    assert math500.metadata == {"solution": "$\\boxed{70}$", "subject": "Counting & Probability", "level": 2,
                                "unique_id": "test/counting_and_probability/1.json"}
    amc = fixture_task("amc23").problems()[0]
    assert amc.question == "What is $3^3$?" and amc.metadata["url"].startswith("https://")


def test_deepscaler_hashes_ids_keeps_repeats_apart_and_drops_unanswered_rows():
    task = fixture_task("deepscaler")
    assert task.train_split == "train" and task.eval_split is None
    with pytest.warns(UserWarning, match="dropped 1 rows with an empty answer"):
        problems = task.problems("train")
    assert [p.answer for p in problems] == ["27", "\\frac{1}{2}", "27", "5"]
    first, _, repeat, _ = (p.id for p in problems)
    assert first.startswith("deepscaler-") and repeat == f"{first}-2"
    assert len({p.id for p in problems}) == 4
    with pytest.warns(UserWarning):
        assert fixture_task("deepscaler").problems("train")[0].id == first  # stable across instances


def test_a_training_set_has_no_default_evaluation_split():
    with pytest.raises(ValueError, match="'deepscaler' has no evaluation split; pass one of: train"):
        fixture_task("deepscaler").problems()


def test_one_file_as_data_path():
    task = get_task("aime25", data_path=FIXTURES / "aime25" / "test.jsonl")
    assert [p.answer for p in task.problems("test")] == ["70", "32"]


def test_split_names_are_the_datasets_own():
    with pytest.raises(ValueError, match="valid splits: test"):
        fixture_task("math500").problems("eval")
    with pytest.raises(ValueError, match="valid splits: train, validation"):
        fixture_task("synlogic").problems("test")


def test_wrong_schema_names_the_missing_field():
    task = get_task("math500", data_path=FIXTURES / "amc23")  # AMC rows have `question`, not `problem`
    with pytest.raises(ValueError) as error:
        task.problems("test")
    assert "lacks field(s) problem" in str(error.value) and "question" in str(error.value)


def test_n_is_a_seeded_subset_and_a_prefix_of_larger_ones():
    task = fixture_task("math500")
    assert [p.id for p in task.problems(n=3, seed=7)] == [p.id for p in task.problems(n=3, seed=7)]
    assert [p.id for p in task.problems(n=2, seed=7)] == [p.id for p in task.problems(n=3, seed=7)][:2]
    orders = {tuple(p.id for p in task.problems(n=4, seed=seed)) for seed in range(10)}
    assert len(orders) > 1  # the seed matters
    assert sorted(next(iter(orders))) == sorted(p.id for p in task.problems())  # n = all: a permutation
    with pytest.warns(UserWarning, match="asked for 9 problems, the split has 4"):
        assert len(task.problems(n=9)) == 4
    with pytest.raises(ValueError, match="n must be at least 1"):
        task.problems(n=0)


GRADED = [
    # (task, problem index, answer-tag content, correct by math_verify, correct by exact)
    ("amc23", 0, "27", True, True),
    ("amc23", 0, "27.0", True, False),  # the dataset's own float form of the gold answer
    ("amc23", 0, "28", False, False),
    ("amc23", 1, "\\frac{1}{2}", True, False),
    ("aime24", 0, "33", True, False),  # gold is the string "033"
    ("aime24", 0, "033", True, True),
    ("aime24", 0, "34", False, False),
    ("math500", 1, "14/3", True, False),
    ("math500", 1, "\\frac{14}{3}", True, True),
    ("math500", 1, "\\frac{3}{14}", False, False),
    ("math500", 2, "C", True, False),
    ("math500", 3, "\\begin{pmatrix}1\\\\3\\end{pmatrix}", True, False),
    ("aime25", 0, "70", True, True),
]


@pytest.mark.parametrize("name,index,answer,by_math_verify,by_exact", GRADED)
def test_math_verification_with_both_graders(name, index, answer, by_math_verify, by_exact):
    for grader, expected in (("math_verify", by_math_verify), ("exact", by_exact)):
        task = fixture_task(name, grader=grader)
        problem = task.problems()[index]
        assert task.check(answer, problem) is expected, grader
        score = task.score(completion(answer), problem)
        assert score.formatted and score.answer == answer
        assert score.reward == float(expected), grader


def test_canonical_follows_the_grader():
    assert fixture_task("amc23").canonical("27.0") == fixture_task("amc23").canonical(" 27 ") == "27"
    exact = fixture_task("amc23", grader="exact")
    assert exact.canonical(" 27.0 ") == "27.0" and exact.canonical("  ") is None


# -- junk never raises ---------------------------------------------------------------------------------------

JUNK = [
    "x" * 100_000,  # 100 KB of junk, no tags
    "",  # empty completion
    b"\xff\xfe<answer>\xc3\x28</answer>",  # non-UTF-8 bytes
    completion("y" * 100_000),  # 100 KB inside the answer tag
    completion(""),  # an empty answer
    completion("\\frac{" * 50),  # broken LaTeX
    completion("((((" * 60),  # deep nesting
]


def first_problem(name: str):
    task = fixture_task(name, verifiable_only=True) if name == "synlogic" else fixture_task(name)
    problems = task.problems(task.train_split if name == "deepscaler" else None)
    return task, problems[0]


@pytest.mark.filterwarnings("ignore:.*dropped 1 rows")
@pytest.mark.parametrize("name", sorted(TASK_FIXTURES))
def test_junk_scores_zero_and_never_raises(name):
    task, problem = first_problem(name)
    for junk in JUNK:
        assert task.score(junk, problem).reward == 0.0


# -- SynLogic --------------------------------------------------------------------------------------------------

def synlogic_problems(split: str) -> dict[str, Problem]:
    return {p.metadata["task_type"]: p for p in fixture_task("synlogic", verifiable_only=True).problems(split)}


def test_synlogic_validation_strips_the_val_prefix():
    problems = synlogic_problems("validation")
    assert set(problems) == {"dyck_language", "mathador"}
    assert problems["dyck_language"].metadata["data_source"] == "val/dyck_language"
    assert problems["dyck_language"].metadata["game_data"]["metadata"]["full_sequence"] == "{[()]}"
    assert problems["dyck_language"].metadata["extra_info"] == {"index": 0}  # game_data_str parsed, not repeated
    assert problems["dyck_language"].metadata["ability"] == "logic"


def test_synlogic_refuses_unverifiable_rows_unless_asked_to_drop_them():
    for split, kind in (("train", "web_of_lies"), ("validation", "campsite")):
        with pytest.raises(ValueError) as error:
            fixture_task("synlogic").problems(split)
        message = str(error.value)
        assert f"no verifier for SynLogic task(s) {kind} (1)" in message
        assert "verifiable_only=True" in message and "sudoku" in message
    assert len(fixture_task("synlogic", verifiable_only=True).problems("train")) == 6


def test_synlogic_folder_without_its_card_reads_only_the_chosen_config(tmp_path):
    """A copy of the hub folder without README.md holds synlogic_easy/ and synlogic_hard/: never mix them."""
    shutil.copytree(FIXTURES / "synlogic" / "synlogic_easy", tmp_path / "synlogic_easy")
    (tmp_path / "synlogic_hard").mkdir()
    hard_row = json.loads((FIXTURES / "synlogic" / "synlogic_easy" / "train.jsonl").open().readline())
    (tmp_path / "synlogic_hard" / "validation.jsonl").write_text(json.dumps(hard_row) + "\n")
    easy = get_task("synlogic", data_path=tmp_path, verifiable_only=True).problems("validation")
    assert [p.metadata["task_type"] for p in easy] == ["dyck_language", "mathador"]
    hard = get_task("synlogic", data_path=tmp_path, config="hard", verifiable_only=True).problems("validation")
    assert [p.metadata["task_type"] for p in hard] == ["sudoku"]


def test_synlogic_task_types_filter():
    task = fixture_task("synlogic", task_types=["sudoku", "mathador"])
    assert sorted(p.metadata["task_type"] for p in task.problems("train")) == ["mathador", "sudoku"]
    with pytest.raises(ValueError, match="types present"):
        fixture_task("synlogic", task_types=["zebra_puzzle"]).problems("train")


def test_synlogic_prompt_is_the_datasets_own():
    task = fixture_task("synlogic", verifiable_only=True)
    problem = task.problems("train")[0]
    rows = [json.loads(line) for line in (FIXTURES / "synlogic" / "synlogic_easy" / "train.jsonl").open()]
    assert task.prompt(problem, "chat") == rows[0]["prompt"]
    assert task.prompt(problem, "plain") == rows[0]["prompt"][0]["content"]
    with pytest.raises(ValueError, match="valid styles: chat, plain"):
        task.prompt(problem, "compact")


SOLUTION = [[5, 3, 4, 6, 7, 8, 9, 1, 2], [6, 7, 2, 1, 9, 5, 3, 4, 8], [1, 9, 8, 3, 4, 2, 5, 6, 7],
            [8, 5, 9, 7, 6, 1, 4, 2, 3], [4, 2, 6, 8, 5, 3, 7, 9, 1], [7, 1, 3, 9, 2, 4, 8, 5, 6],
            [9, 6, 1, 5, 3, 7, 2, 8, 4], [2, 8, 7, 4, 1, 9, 6, 3, 5], [3, 4, 5, 2, 8, 6, 1, 7, 9]]
SWAPPED = [row[:] for row in SOLUTION]
SWAPPED[0][0], SWAPPED[0][1] = SWAPPED[0][1], SWAPPED[0][0]
RELABELLED = [[{1: 2, 2: 1}.get(v, v) for v in row] for row in SOLUTION]  # a valid sudoku that breaks the clues

SYNLOGIC_CASES = [
    # (type, answer-tag content, correct?) — one reason per case
    ("sudoku", f"```python\n{SOLUTION}\n```", True),  # the wrapper the prompt asks for
    ("sudoku", str(tuple(tuple(r) for r in SOLUTION)), True),  # bare tuple literal
    ("sudoku", str(SWAPPED), False),  # rows and columns broken
    ("sudoku", str(RELABELLED), False),  # valid grid, but not this puzzle's
    ("sudoku", "[[1]*9]*9", False),  # not a literal
    ("mathador", "```python\n(7 - 8 / 8) * 4\n```", True),
    ("mathador", "(7-8/8)*4 = 24", True),  # a trailing `= result` is fine
    ("mathador", "7 * 4 - 8 + 8", False),  # right numbers, wrong value: SynLogic's own verifier accepts this
    ("mathador", "(7 - 8 / 8) * 4 * 1", False),  # an extra number
    ("mathador", "(7 - 8 / 8) * 4 ** 1", False),  # an operator that is not allowed
    ("mathador", "__import__('os').getcwd()", False),  # never evaluated
    ("mathador", "8 / (8 - 8) + 7 * 4", False),  # division by zero
    ("dyck_language", "([])({})([()])", True),
    ("dyck_language", "\"([])({}) ([()])\"", True),  # quotes and whitespace ignored
    ("dyck_language", "([])({})([(])", False),
    ("boolean_expressions", "\\boxed{A, C}", True),
    ("boolean_expressions", "C, A", True),  # a set of letters; the box is optional here
    ("boolean_expressions", "\\boxed{A}", False),
    ("word_sorting", "\\boxed{apple, banana, cherry}", True),
    ("word_sorting", "apple,banana,cherry", True),
    ("word_sorting", "banana, apple, cherry", False),
    ("object_counting", "\\boxed{7}", True),
    ("object_counting", "7", True),
    ("object_counting", "8", False),
    ("object_counting", "seven", False),
]


@pytest.mark.parametrize("kind,answer,correct", SYNLOGIC_CASES)
def test_synlogic_verifiers(kind, answer, correct):
    task = fixture_task("synlogic", verifiable_only=True)
    problem = synlogic_problems("train")[kind]
    assert task.check(answer, problem) is correct
    assert task.score(completion(answer), problem).reward == float(correct)


def test_synlogic_validation_rows_verify_like_train_rows():
    task = fixture_task("synlogic", verifiable_only=True)
    problems = synlogic_problems("validation")
    assert task.check("{[()]}", problems["dyck_language"]) and not task.check("{[(]}", problems["dyck_language"])
    assert task.check("2 + 3 * 4", problems["mathador"]) and not task.check("(2 + 3) * 4", problems["mathador"])


def test_synlogic_check_without_a_verifier_is_an_error_that_names_the_type():
    task = fixture_task("synlogic", verifiable_only=True)
    problem = Problem(id="x", question="q", answer="a",
                      metadata={"task_type": "campsite", "game_data": {"answer": "a", "metadata": {}}})
    with pytest.raises(ValueError, match="no verifier for SynLogic task 'campsite'"):
        task.check("a", problem)
    assert task.score(completion("a"), problem).reward == 0.0  # a run never crashes on it
    assert synlogic.task_type("val/sudoku") == "sudoku" and synlogic.task_type("sudoku") == "sudoku"


# -- KOR-Bench -------------------------------------------------------------------------------------------------

def kor_problem(subset: str, idx: str, data_path: Path = FIXTURES / "korbench"):
    task = get_task(f"korbench_{subset}", data_path=data_path)
    return task, next(p for p in task.problems() if p.metadata["idx"] == idx)


KOR_CASES = [
    # (subset, idx, answer-tag content, correct?)
    ("operation", "1", "[[24]]", True),
    ("operation", "1", "24", True),  # brackets optional inside the answer tag
    ("operation", "1", "[[25]]", False),
    ("operation", "6", "[[5or125or650]]", True),  # `or` answers in any order
    ("operation", "6", "[[5 or 125]]", False),  # one missing
    ("operation", "18", "[[-6-\\sqrt{22}or-6+\\sqrt{22}]]", True),
    ("operation", "18", "[[\\sqrt{22}-6 or -\\sqrt{22}-6]]", True),  # a LaTeX item: symbolic equality
    ("operation", "18", "[[-6+\\sqrt{22}]]", False),
    ("counterfactual", "1", "[[C]]", True),
    ("counterfactual", "1", "[[A]]", False),  # the real-world answer is wrong in the story's world
    ("puzzle", "10", "[[france spain chile cuba]]", True),
    ("puzzle", "10", "[[France Spain Chile]]", False),
    ("puzzle", "18", "[[re]]", True),  # one of the listed answers
    ("puzzle", "18", "[[pre]]", True),
    ("puzzle", "18", "[[de]]", False),
    ("puzzle", "36", "[[dove]]", True),
    ("puzzle", "36", "[[dov]]", False),  # KOR-Bench's substring test would accept this
    ("puzzle", "36", "[[]]", False),  # and this
    ("puzzle", "42", "[[T=2, O=1, U=0, G=8]]", True),  # assignments in any order
    ("puzzle", "42", "[[O=1,T=2,G=8,U=1]]", False),
    ("cipher", "1", "[[N]]", True),
    ("cipher", "1", "[[n]]", False),  # ciphers are case-sensitive
    ("cipher", "9", "[[GOSXMWQIHMC]]", True),
    ("logic", "1", "[[p1 & p2];[p3||p4];[(p3&~p4)||(~p3&p4)]]", True),  # spaces ignored
    ("logic", "1", "[[p3||p4];[p1&p2];[(p3&~p4)||(~p3&p4)]]", False),  # order matters outside rule 5
    ("logic", "5", "[[D]]", True),
    ("logic", "41", "[[z=3;x=1;y=2]]", True),  # rule 5: parts in any order
]


@pytest.mark.parametrize("subset,idx,answer,correct", KOR_CASES)
def test_korbench_verification(subset, idx, answer, correct):
    task, problem = kor_problem(subset, idx)
    assert task.check(answer, problem) is correct
    assert task.score(completion(answer), problem).reward == float(correct)


def test_korbench_loads_from_clone_data_folder_or_subset_folder():
    for path in (FIXTURES / "korbench", FIXTURES / "korbench" / "data", FIXTURES / "korbench" / "data" / "cipher"):
        task, problem = kor_problem("cipher", "9", path)
        assert problem.id == "korbench_cipher-9" and problem.answer == "[[GOSXMWQIHMC]]"
        assert problem.metadata["category"] == "Encryption"
        assert "substitution_alphabet" in problem.metadata["rule_content"]
    with pytest.raises(FileNotFoundError, match="data/puzzle/sample.jsonl"):
        get_task("korbench_puzzle", data_path=FIXTURES / "amc23").problems()


def test_korbench_prompt_has_instruction_rule_and_question():
    task, problem = kor_problem("operation", "1")
    text = task.prompt(problem, "plain")
    assert text.startswith(INSTRUCTION)
    assert "### Operation Rule:" in text and problem.metadata["rule_content"] in text and problem.question in text
    assert task.prompt(problem, "chat") == [{"role": "user", "content": text}]


def test_korbench_without_data_path_says_where_to_get_it():
    with pytest.raises(hub.DatasetUnavailable, match="git clone https://github.com/KOR-Bench/KOR-Bench"):
        get_task("korbench_logic").problems()


# -- the Hugging Face cache, in fresh processes (the hub libraries read HF_HOME when imported) -------------------

def run_isolated(code: str, env: dict[str, str]) -> dict:
    """Run `code` in a fresh interpreter with `env`; it prints one JSON line, which is returned."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update({"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **env})
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, capture_output=True,
                            text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


FAIL_FAST = """
    import json, time
    from mtalign.tasks import get_task, hub
    task = get_task("math500")
    start = time.perf_counter()
    try:
        task.problems()
        print(json.dumps({"raised": None}))
    except hub.DatasetUnavailable as error:
        print(json.dumps({"raised": str(error), "seconds": time.perf_counter() - start}))
"""


def test_uncached_dataset_offline_fails_fast_and_says_how_to_get_it(tmp_path):
    out = run_isolated(FAIL_FAST, {"HF_HOME": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"})
    assert out["raised"] is not None and out["seconds"] < 5
    for needed in ("HuggingFaceH4/MATH-500", "hf download HuggingFaceH4/MATH-500 --repo-type dataset",
                   "data_path=", "HF_HUB_OFFLINE is set"):
        assert needed in out["raised"]


def test_unreachable_hub_fails_fast_without_the_offline_flag(tmp_path):
    # Port 9 on localhost refuses at once; datasets alone would retry for ~25 s.
    out = run_isolated(FAIL_FAST, {"HF_HOME": str(tmp_path / "empty"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert out["raised"] is not None and "unreachable" in out["raised"] and out["seconds"] < 10


def test_a_cached_snapshot_is_read_offline(tmp_path):
    """`hf download` leaves snapshots in HF_HOME/hub; offline, the loaders must find them there."""
    for repo, folder in (("HuggingFaceH4/MATH-500", "math500"), ("MiniMaxAI/SynLogic", "synlogic")):
        cache = tmp_path / "hf" / "hub" / f"datasets--{repo.replace('/', '--')}"
        shutil.copytree(FIXTURES / folder, cache / "snapshots" / "0123abcd")
        (cache / "refs").mkdir()
        (cache / "refs" / "main").write_text("0123abcd")
    out = run_isolated("""
        import json
        from mtalign.tasks import get_task
        math = get_task("math500").problems()
        logic = get_task("synlogic", verifiable_only=True).problems("validation")
        print(json.dumps({"math": [p.answer for p in math], "logic": [p.metadata["task_type"] for p in logic]}))
    """, {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert out == {"math": MATH_EXPECTED["math500"][2], "logic": ["dyck_language", "mathador"]}
