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
