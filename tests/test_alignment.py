"""`mtalign alignment` (mtalign/alignment.py through mtalign.cli.main; issue 2): the JSON records enough to recompute
and audit the curve, the figure is written, names are listed, bad input fails at once with the valid choices and
before any model is built, and a study measures its cells once.
"""

from __future__ import annotations

import json

import pytest
import yaml

from mtalign import cli, passk, runinfo
from mtalign.tasks import get_task

MICRO = "micro-chain_sum-strong"


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    """Caches and outputs in temporary folders, restored afterwards; nothing is written to ~ or the repo."""
    return isolated_module


def alignment(*args) -> int:
    return cli.main(["alignment", *map(str, args)])


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """One measured cell: 6 problems x 8 samples of the micro model, k = 1, 2, 8."""
    out = tmp_path_factory.mktemp("cell")
    assert alignment("--model", MICRO, "--n", 8, "--k", 8, 1, 2, "--problems", 6, "--seed", 3, "--out", out) == 0
    return out


def test_json_records_what_recomputes_the_curve(cell):
    record = json.loads((cell / f"{MICRO}__chain_sum.json").read_text())
    assert (record["model"], record["task"], record["split"], record["n"], record["seed"]) == \
        (MICRO, "chain_sum", "eval", 8, 3)
    assert record["k"] == [1, 2, 8]  # sorted
    # the problems are the task's fixed held-out ones, whatever the sampling seed
    assert record["problem_ids"] == [p.id for p in get_task("chain_sum").problems("eval", n=6)]
    assert len(record["correct"]) == 6 and all(0 <= c <= 8 for c in record["correct"])
    assert len(record["formatted"]) == 6 and all(0 <= f <= 8 for f in record["formatted"])
    curve = record["curve"]
    assert curve == passk.curve(record["n"], record["correct"], record["k"], seed=record["seed"])  # auditable
    assert curve["k"] == record["k"] and len(curve["ci_low"]) == len(curve["ci_high"]) == 3
    assert all(lo <= v <= hi for lo, v, hi in zip(curve["ci_low"], curve["pass_at_k"], curve["ci_high"]))
    assert record["summary"] == pytest.approx(passk.summaries(curve), nan_ok=True)
    assert record["sampling"] == {"backend": "transformers", "temperature": 1.0, "top_p": 1.0,
                                  "max_new_tokens": get_task("chain_sum").max_new_tokens, "batch_size": 512,
                                  "prompt_style": "compact"}
    assert record["packages"]["torch"] and record["packages"]["transformers"] and record["code_version"]
    assert record["examples"][0]["prompt"] == get_task("chain_sum").problems("eval", n=1)[0].metadata["compact"]


def test_correct_counts_are_the_ground_truth_reward(monkeypatch):
    """With the sampler scripted (to isolate the counting from the model), `correct` counts completions that are
    FORMAT and CORRECT, and `formatted` those that are FORMAT, problem by problem."""
    from mtalign import alignment as module, sampling

    task = get_task("chain_sum")
    items = task.problems("eval", n=5)
    n, expected = 4, {"correct": [], "formatted": []}
    scripted = {}
    for i, problem in enumerate(items):
        c = i % (n + 1)
        wrong = str(int(problem.answer) + 1)
        fill = [task.completion(problem, wrong),  # formatted, wrong
                f"<answer>{problem.answer}</answer>",  # right answer, no think: not FORMAT, so reward 0
                problem.answer]  # bare answer, no tags
        texts = [task.completion(problem)] * c + [fill[j % 3] for j in range(n - c)]
        scripted[problem.metadata["compact"]] = texts
        expected["correct"].append(c)
        expected["formatted"].append(c + sum(t.startswith("<think>") for t in texts[c:]))

    class Scripted:
        backend = "scripted"

        def generate(self, prompts, params, progress=False):
            assert params.n == n
            return [[sampling.Sample(t, [0] * len(t), [0.0] * len(t)) for t in scripted[p]] for p in prompts]

    monkeypatch.setattr(sampling, "make_sampler", lambda loaded, backend: Scripted())
    record = module.measure(MICRO, n=n, problems=5, progress=False, log=lambda _: None)
    assert record["correct"] == expected["correct"] == [0, 1, 2, 3, 4]
    assert record["formatted"] == expected["formatted"]
    assert record["curve"]["pass_at_k"][0] == pytest.approx(sum(expected["correct"]) / (n * 5))


def test_html_figure_is_written(cell):
    html = (cell / f"{MICRO}__chain_sum.html").read_text()
    assert "plotly" in html.lower() and MICRO in html


def test_same_seed_same_record(cell, tmp_path):
    assert alignment("--model", MICRO, "--n", 8, "--k", 1, 2, 8, "--problems", 6, "--seed", 3, "--out", tmp_path) == 0
    first = json.loads((cell / f"{MICRO}__chain_sum.json").read_text())
    again = json.loads((tmp_path / f"{MICRO}__chain_sum.json").read_text())
    assert again["correct"] == first["correct"] and again["curve"] == first["curve"]


@pytest.mark.parametrize("flag, expected", [
    ("--list-models", ["micro-chain_sum-strong", "micro-chain_sum-weak", "toy-mini_sudoku-strong",
                       "toy-mini_sudoku-weak"]),
    ("--list-tasks", ["chain_sum", "mini_sudoku"]),
])
def test_listing(capsys, flag, expected):
    assert alignment(flag) == 0
    lines = capsys.readouterr().out.split()
    assert set(expected) <= set(lines)
    if flag == "--list-models":
        assert any("strong" in line for line in lines) and any("weak" in line for line in lines)


# -- bad input: one line, the valid choices, and nothing built --------------------------------------------
@pytest.mark.parametrize("args, says", [
    (["--model", "micro-chain_sum-stronk"],
     ["'micro-chain_sum-stronk'", "micro-chain_sum-strong", "toy-chain_sum-weak"]),
    (["--model", MICRO, "--task", "chain_summ"], ["'chain_summ'", "chain_sum", "mini_sudoku"]),
    (["--model", MICRO, "--n", 4, "--k", 1, 8], ["invalid k [8]", "1..n", "n=4"]),
    (["--model", MICRO, "--n", 4, "--k", 0], ["invalid k [0]", "1..n"]),
    (["--model", MICRO, "--n", 0], ["--n (samples per problem) must be at least 1"]),
    (["--model", MICRO, "--temperature", -1], ["temperature must be >= 0"]),
    (["--task", "chain_sum"], ["--task needs --model"]),
])
def test_bad_input_exits_2_before_building(tmp_path, monkeypatch, capsys, args, says):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MTALIGN_CACHE", str(cache))
    assert alignment(*args, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mtalign alignment: error:")
    for text in says:
        assert text in err
    assert not (cache / "toy-models").exists()  # no model was built, or even started
    assert not (tmp_path / "out").exists()


def test_bad_problem_count_names_the_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MTALIGN_CACHE", str(tmp_path / "cache"))
    assert alignment("--model", MICRO, "--problems", 0, "--out", tmp_path / "out") == 2
    assert "problems" in capsys.readouterr().err


# -- studies ----------------------------------------------------------------------------------------
def study_file(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text if isinstance(text, str) else yaml.safe_dump(text))
    return path


@pytest.mark.parametrize("text, says", [
    ("cells: [\n  {model: micro-chain_sum-strong\n", "is not valid YAML"),
    ("n: 4\n", "must be a mapping with `cells: ["),
    ("cells: []\n", "must be a mapping with `cells: ["),
    ("", "must be a mapping with `cells: ["),
    ("cells:\n  - {model: micro-chain_sum-stronk}\n", "valid short names"),
    ("n: 4\nk: [8]\ncells:\n  - {model: micro-chain_sum-strong}\n", "invalid k [8]"),
])
def test_malformed_study_exits_2_with_a_clear_message(tmp_path, monkeypatch, capsys, text, says):
    monkeypatch.setenv("MTALIGN_CACHE", str(tmp_path / "cache"))
    path = study_file(tmp_path, text)
    assert alignment("--study", path, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("mtalign alignment: error:") and says in err
    assert not (tmp_path / "cache" / "toy-models").exists()


@pytest.mark.parametrize("text", [
    "- {model: micro-chain_sum-strong}\n",  # a list, not a mapping
    "cells:\n  - micro-chain_sum-strong\n",  # names instead of {model: NAME}
    "n: four\ncells:\n  - {model: micro-chain_sum-strong}\n",
])
def test_study_with_wrong_types_exits_2(tmp_path, monkeypatch, capsys, text):
    monkeypatch.setenv("MTALIGN_CACHE", str(tmp_path / "cache"))
    assert alignment("--study", study_file(tmp_path, text), "--out", tmp_path / "out") == 2


def test_study_measures_each_cell_once(tmp_path, capsys):
    out = tmp_path / "out"
    path = study_file(tmp_path, {"n": 2, "problems": 2, "seed": 0, "cells": [
        {"model": "micro-chain_sum-weak"}, {"model": "micro-mini_sudoku-strong"}]})
    assert alignment("--study", path, "--out", out, "--workers", 1) == 0
    names = ["micro-chain_sum-weak__chain_sum", "micro-mini_sudoku-strong__mini_sudoku"]
    for name in names:
        record = runinfo.read_json(out / f"{name}.json")
        assert record["n"] == 2 and len(record["problem_ids"]) == 2 and record["k"] == [1, 2]
        assert (out / f"{name}.html").exists()
    assert (out / "alignment.html").exists()
    stamps = {name: (out / f"{name}.json").stat().st_mtime_ns for name in names}
    capsys.readouterr()

    assert alignment("--study", path, "--out", out, "--workers", 1) == 0  # a rerun measures nothing
    printed = capsys.readouterr().out
    for name in names:
        assert f"{name}.json: done, skipped" in printed
        assert (out / f"{name}.json").stat().st_mtime_ns == stamps[name]
