"""The notebooks as papermill runs them (issue 2, "Notebook"; STYLE.md rules 1-4): 01_alignment executed with
injected parameters writes its run record and draws its figures without an error, and every notebook declares a
`parameters` cell that papermill can read, with a `run_dir` for its files."""

from __future__ import annotations

import json
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest

from mtalign import grid, paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    """Caches and outputs in temporary folders (the kernel inherits them), restored afterwards."""
    return isolated_module


def as_ipynb(source: Path, directory: Path) -> Path:
    """The .ipynb that `make notebooks` builds from a py:percent source (jupytext), in a temporary folder."""
    path = directory / (source.stem + ".ipynb")
    jupytext.write(jupytext.read(source), path, fmt="ipynb")
    return path


def test_01_alignment_runs_with_injected_parameters(tmp_path):
    run_dir = tmp_path / "run"
    injected = {"problems": 3, "n": 4, "tasks": ["chain_sum"], "workers": 1, "smollm": "no", "seed": 2,
                "run_dir": str(run_dir)}
    executed = tmp_path / "01_alignment.executed.ipynb"
    papermill.execute_notebook(str(as_ipynb(paths.NOTEBOOKS / "01_alignment.py", tmp_path)), str(executed),
                               parameters=injected, kernel_name="python3", cwd=str(tmp_path), progress_bar=False)

    nb = nbformat.read(executed, as_version=4)
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("injected-parameters" in cell.metadata.get("tags", []) for cell in nb.cells)
    # one plotly figure per task family
    assert sum("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs) == 1

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["notebook"] == "01_alignment"
    assert metrics["parameters"] == {"world": "micro", "tasks": ["chain_sum"], "recipes": ["strong", "weak"],
                                     "n": 4, "problems": 3, "seed": 2}
    assert sorted(c["model"] for c in metrics["cells"]) == ["micro-chain_sum-strong", "micro-chain_sum-weak"]
    assert all(c["task"] == "chain_sum" and 0 <= c["pass@1"] <= c["pass@4"] <= 1 for c in metrics["cells"])
    for model in ("micro-chain_sum-strong", "micro-chain_sum-weak"):
        record = json.loads((run_dir / f"{model}__chain_sum.json").read_text())
        assert record["n"] == 4 and len(record["problem_ids"]) == 3 and record["seed"] == 2
    assert metrics["packages"]["papermill"]


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_a_parameters_cell_with_run_dir(tmp_path, source):
    """What `papermill --help-notebook` shows: the tagged cell's names, with run_dir among them."""
    path = as_ipynb(source, tmp_path)
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"  # jupytext kept the tag
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is tagged[0]  # the parameters come first (STYLE.md)
    assert "run_dir" in papermill.inspect_notebook(str(path))


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_help_shows_every_parameter(tmp_path, source):
    """Every name the grid can inject (read with ast by mtalign.grid) is visible to papermill's own inspector."""
    shown = papermill.inspect_notebook(str(as_ipynb(source, tmp_path)))
    assert set(grid.read_notebook(source).parameters) <= set(shown)


# -- the claim notebooks: one set-up, one record writer, verdicts of their own runs (issue 10) ------------------------
def execute(name: str, directory: Path, parameters: dict) -> nbformat.NotebookNode:
    """Notebook `name` executed by papermill with `parameters` injected (cwd `directory`), errors raised."""
    executed = directory / f"{name}.executed.ipynb"
    papermill.execute_notebook(str(as_ipynb(paths.NOTEBOOKS / f"{name}.py", directory)), str(executed),
                               parameters=parameters, kernel_name="python3", cwd=str(directory), progress_bar=False)
    return nbformat.read(executed, as_version=4)


def printed(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.output_type == "stream")


@pytest.fixture(scope="module")
def claim_store(tmp_path_factory) -> Path:
    """One run store for the three claim notebooks, as the grid shares it: ground truth is trained once."""
    return tmp_path_factory.mktemp("runs")


# 03 is given its sub-type key, so it runs whether or not the task classes declare `subtype_key` yet
@pytest.mark.slow
@pytest.mark.parametrize("name, injected", [("02_reward_signal", {}), ("03_one_shot", {"subtype": "num_terms"}),
                                            ("04_sample_polarity", {})])
def test_claim_notebook_writes_its_record_and_prints_its_verdicts(tmp_path, claim_store, name, injected):
    """Each claim notebook at its smoke defaults (a micro model, 2 steps) writes metrics.json exactly as before the
    set-up and the writer moved into mtalign.notebook, and ends with the verdicts of its own runs: one seed, so each
    says too few seeds."""
    run_dir = tmp_path / "run"
    nb = execute(name, tmp_path, {"run_dir": str(run_dir), "runs_dir": str(claim_store), **injected})
    defaults = {n: p.default for n, p in grid.read_notebook(paths.NOTEBOOKS / f"{name}.py").parameters.items()}
    given = {**defaults, **injected}
    asked = ["ground_truth", *given["variants"], *given.get("probes", [])]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics)[:6] == ["notebook", "started", "finished", "parameters", "runs", "results"]
    assert metrics["notebook"] == name and metrics["started"] <= metrics["finished"]
    assert metrics["parameters"] == {n: given[n] for n in ("model", "task", "eval_tasks", "seed", "variants", "probes",
                                                           "subtype", "preset", "steps") if n in given}
    variants = [r["variant"] for r in metrics["results"]]
    # incorrect_source trains on the problems where the base model's majority answer is wrong: the micro model writes
    # no parseable answer, so it has none, and claims.run_claim says so and runs the others
    assert variants == [v for v in asked if v in variants] and set(asked) - set(variants) <= {"incorrect_source"}
    assert metrics["runs"] == [f"micro-chain_sum-strong__chain_sum__{v}__s0" for v in variants]
    assert metrics["packages"]["papermill"] and metrics["code_version"]
    if name == "03_one_shot":
        assert {r["variant"] for r in metrics["by_subtype"]} == set(variants)
        assert {r["num_terms"] for r in metrics["by_subtype"]} <= {3, 4, 5}  # params/toyworld.yaml's chain_sum terms

    text = printed(nb)
    verdict_lines = [line for line in text.splitlines() if line.startswith(("chain_sum ", " chain_sum "))]
    assert len(verdict_lines) == len(variants) and all(line.rstrip().endswith("too few seeds")
                                                       for line in verdict_lines)
    assert "too few seeds, every one: these runs have seed 0 only" in text
    assert nb.cells[-2].cell_type == "markdown" and "What the figures show" in nb.cells[-2].source


def test_subtype_key_is_read_from_the_task_class():
    """03 splits held-out accuracy by the field the task class declares; a task that declares nothing is named."""
    from mtalign import notebook

    class Declares:
        name, subtype_key = "declares", "num_terms"

    class HasNone:
        name, subtype_key = "has_none", None

    class Silent:
        name = "silent"

    assert notebook.subtype_key(Declares()) == "num_terms" and notebook.subtype_key(HasNone()) == ""
    with pytest.raises(AttributeError, match=r"task 'silent' \(.*Silent\) declares no `subtype_key`"):
        notebook.subtype_key(Silent())


@pytest.mark.parametrize("name", ["chain_sum", "mini_sudoku"])
def test_each_toy_task_declares_a_subtype_key_its_problems_carry(name):
    from mtalign import notebook
    from mtalign.tasks import OFFLINE_TASKS, get_task

    if not hasattr(OFFLINE_TASKS[name], notebook.SUBTYPE_KEY):
        pytest.skip(f"the task classes do not declare `{notebook.SUBTYPE_KEY}` yet")
    task = get_task(name)
    key = notebook.subtype_key(task)
    assert key and all(key in p.metadata for p in task.problems(task.eval_split, n=20, seed=0))


def test_each_claim_notebook_runs_its_claims_variants_by_default():
    """params/variants.yaml says which variants test which claim (config.claims: the claim's variants, optional
    alternatives left out, in file order); each claim notebook (its title names the claim, "02 · RQ1: ...") runs
    exactly those by default, and 02 the mechanism probes (config.probes)."""
    import re

    from mtalign import config

    claims = config.claims()
    found = {}
    for source in NOTEBOOKS:
        title = next(c for c in jupytext.read(source).cells if c.cell_type == "markdown").source.splitlines()[0]
        named = re.match(r"# \d\d · (RQ\d+):", title)
        if not named:
            continue
        label = [claim for claim in claims if claim.split(" ")[0] == named.group(1)]
        assert len(label) == 1, f"{source.name} names {named.group(1)}; config.claims() has {list(claims)}"
        parameters = grid.read_notebook(source).parameters
        assert parameters["variants"].default == claims[label[0]], source.name
        if "probes" in parameters:
            assert parameters["probes"].default == config.probes(), source.name
        found[label[0]] = source.stem
    assert set(found) == set(claims) and found["RQ1 reward signal"] == "02_reward_signal"


def test_06_reads_a_ladder_study_and_the_report_shows_its_results(tmp_path):
    """The ladder grid's report cell: 06_alignment_ladder pointed at a ladder study (a synthetic one: rung records and
    run summaries, nothing trained or sampled) writes its transitions, separation and validation, and 99_report's
    ladder section reads them in the same words; without a ladder it says what to run."""
    from mtalign import report
    from test_ladder import add_held_out_rungs, synthetic_ladder

    assert not report.ladder_results(tmp_path / "none").found
    assert "mtalign study --params params/grids/ladder.yaml" in report.ladder_results(tmp_path / "none").text
    # one_shot has runs in the store but is not among the variants analysed: it is in no table
    study = add_held_out_rungs(synthetic_ladder(tmp_path / "ladder", gains={"chain_sum": {"one_shot": lambda x, d: 0.0}}),
                               pass1=0.5, variants=("ground_truth", "psr"), dials=("fidelity",))
    run_dir = study / "06_alignment_ladder"
    injected = {"world": "toy", "tasks": ["chain_sum", "mini_sudoku"], "rungs_per_dial": 0, "seeds": [0, 1, 2],
                "variants": ["psr", "nsr", "random", "majority_vote"], "bootstrap": 50, "measure": False,
                "study_dir": str(study), "run_dir": str(run_dir)}
    executed = tmp_path / "06.executed.ipynb"
    papermill.execute_notebook(str(as_ipynb(paths.NOTEBOOKS / "06_alignment_ladder.py", tmp_path)), str(executed),
                               parameters=injected, kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["rungs"]) == 22 and metrics["validation"] and metrics["transitions"]
    # the held-out rung is in no fit, and is predicted from its family's ladder
    assert [(r["model"], r["variant"]) for r in metrics["held_out"]] == [("toy-chain_sum-fid60", "psr")]
    assert "held-out rung" in {r["scheme"] for r in metrics["validation"]}
    assert "one_shot" not in {r["name"] for r in metrics["validation"]} | {r["variant"] for r in metrics["transitions"]}

    shown = report.ladder_results(study)
    assert shown.found and "22 rungs, 22 of them with RL runs" in shown.text
    # psr's synthetic margin crosses 0 at pass@1 = 0.30 on every dial (tests/test_ladder.py GAINS)
    assert "chain_sum fidelity, psr: reaches half of ground truth's gain at pass@1 0.3" in shown.text
    assert "leave one rung out" in shown.text.lower() and "Brier" in shown.text
    assert "toy-chain_sum-fid60, never seen by the chain_sum ladder, at pass@1 0.500: 1 of 1" in shown.text
    assert set(shown.figures) == {"ladder_alignment", "ladder__RQ1", "ladder__RQ3"}
    assert len(shown.validation) == len(metrics["validation"])
    # rungs measured, no RL run yet (the committed ladder today): the rungs are shown and the command to train given
    metrics["cells"] = metrics["transitions"] = metrics["separation"] = metrics["validation"] = []
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    shown = report.ladder_results(study)
    assert shown.found and set(shown.figures) == {"ladder_alignment"}
    assert "22 rungs measured (pass@k and maj@k, below), no RL runs on them yet" in shown.text
