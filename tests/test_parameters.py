"""Notebook parameters as users pass them to papermill (issue 9): `-p variants '["random", "majority_vote"]'` arrives
as a string, and every notebook's second cell turns it back into a list (mtalign/parameters.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import jupytext

from mtalign import parameters, paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.py"))


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    return isolated_module


@pytest.mark.parametrize("text, kind, expected", [
    ('["random", "majority_vote"]', list, ["random", "majority_vote"]),  # JSON, as the README shows for -p
    ("[random, majority_vote]", list, ["random", "majority_vote"]),  # YAML flow list
    ("", list, []),  # `-p variants ''`: the empty default
    ('{"chain_sum": {"size": 3}}', dict, {"chain_sum": {"size": 3}}),
    ("true", bool, True), ("no", bool, False),
    (3, float, 3.0),  # papermill reads `-p fraction 1` as the int 1
    (7, str, "7"),  # ... and `-p model 7` as the int 7
    ("5", int, 5),
])
def test_text_becomes_the_declared_type(text, kind, expected):
    value = parameters.coerce("x", text, kind)
    assert value == expected and type(value) is type(expected)


def test_real_lists_and_dicts_pass_through_untouched():
    value = ["random"]
    assert parameters.coerce("variants", value, list) is value
    assert parameters.coerce("variants", ["a"], list[str]) == ["a"]


@pytest.mark.parametrize("value, kind, words", [
    ("random", list, ["'variants'", "must be a list", "got str"]),  # a bare word is not silently wrapped
    ("[random", list, ["'variants'", "not valid YAML"]),
    ("[1, 2]", dict, ["'variants'", "must be a dict"]),
    ("maybe", bool, ["'variants'", "true or false"]),
    ("three", int, ["'variants'", "integer"]),
])
def test_bad_text_names_the_parameter(value, kind, words):
    with pytest.raises(ValueError) as err:
        parameters.coerce("variants", value, kind)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_parse_rewrites_a_namespace_by_its_annotations():
    ns = {"__annotations__": {"variants": list, "seed": int, "fraction": float}, "variants": '["psr"]', "seed": 1,
          "fraction": 1}
    changed = parameters.parse(ns)
    assert ns["variants"] == ["psr"] and ns["fraction"] == 1.0 and ns["seed"] == 1
    assert set(changed) == {"variants", "fraction"}


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_parses_its_parameters_first(source):
    """The call sits in the cell right after the parameters cell, where papermill's injected values have landed."""
    nb = nbformat.reads(jupytext.writes(jupytext.read(source), fmt="ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    assert "parameters.parse(globals())" in code[first + 1].source


def _papermill(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The papermill CLI as a user runs it, on the .ipynb that `make notebooks` builds (jupytext)."""
    notebook = tmp_path / "02_reward_signal.ipynb"
    jupytext.write(jupytext.read(paths.NOTEBOOKS / "02_reward_signal.py"), notebook, fmt="ipynb")
    return subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(tmp_path / "out.ipynb"),
                           "--cwd", str(tmp_path), "-k", "python3", "--no-progress-bar",
                           "-p", "run_dir", str(tmp_path / "run"), *args], capture_output=True, text=True, timeout=300)


def test_papermill_cli_p_list_reaches_the_notebook_as_a_list(tmp_path):
    """The command from the README with one unknown variant: the error lists ['nope'], not the string's characters."""
    done = _papermill(tmp_path, "-p", "variants", '["random", "nope"]')
    assert done.returncode != 0
    assert "unknown variant(s) ['nope']" in done.stderr, done.stderr[-2000:]


def test_papermill_cli_bad_list_text_is_a_one_line_error(tmp_path):
    done = _papermill(tmp_path, "-p", "variants", "[random")
    assert done.returncode != 0
    assert "parameter 'variants'" in done.stderr and "not valid YAML" in done.stderr, done.stderr[-2000:]


def test_papermill_cli_y_form_still_works(tmp_path):
    done = _papermill(tmp_path, "-y", "variants: [random, nope]")
    assert done.returncode != 0
    assert "unknown variant(s) ['nope']" in done.stderr, done.stderr[-2000:]
