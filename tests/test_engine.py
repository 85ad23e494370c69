"""The engine every run records (issue 7): a run, or a cell that used one, computed by other code or package versions
is never reused. A run's identity names its settings, model and data, not the code that trained it; the engine check
is what keeps a changed sampler or trainer from being served the runs of the code before it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mtalign import grid, manifests, paths, runinfo, runner, runs

MICRO = "micro-chain_sum-strong"
FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
OTHER = "0123456789abcdef"  # an engine digest no code has


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Caches and outputs in a temporary folder per test; one thread per process."""


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True, timeout=60)


def test_the_engine_digest_follows_the_engine_files_and_nothing_else(tmp_path, monkeypatch):
    (tmp_path / "mtalign").mkdir()
    for name in (*runinfo.ENGINE_FILES, "mtalign/runner.py"):
        source = paths.ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    digests = []

    def digest_after(edit=None):
        if edit is not None:
            path = tmp_path / edit
            path.write_text(path.read_text() + "\n# edited\n")
        runinfo.engine_digest.cache_clear()
        digests.append(runinfo.engine_digest())

    try:
        digest_after()
        digest_after("mtalign/runner.py")  # the grid runner computes no number of a run
        digest_after("mtalign/tasks/gym.py")  # a task's verifier does
        digest_after("mtalign/decode.py")  # and so does the sampler
    finally:
        runinfo.engine_digest.cache_clear()
    assert digests[0] == digests[1] != digests[2] != digests[3] and len(set(digests)) == 3


def test_engine_differences_name_the_code_and_the_packages_that_differ():
    here = runinfo.environment()
    assert here["engine"] == runinfo.engine_digest() and runinfo.engine_differences(here) == []
    other = runinfo.engine_differences({**here, "engine": OTHER})
    assert len(other) == 1 and other[0].startswith(f"study code {OTHER} (now {runinfo.engine_digest()}")
    torch_then = {**here["packages"], "torch": "2.0.0"}
    assert runinfo.engine_differences({**here, "packages": torch_then}) == [
        f"torch 2.0.0 (now {here['packages']['torch']})"]
    papermill_then = {**here["packages"], "papermill": "0.1"}  # it runs notebooks; it computes nothing of a run
    assert runinfo.engine_differences({**here, "packages": papermill_then}) == []


def test_a_record_from_before_engines_were_recorded_is_checked_by_its_commit():
    head = _git("rev-parse", "--short=12", "HEAD").stdout.strip()
    if not head:
        pytest.skip("not a git clone: a record's commit cannot be compared")
    uncommitted = tuple(_git("diff", "--name-only", "HEAD", "--", *runinfo.ENGINE_FILES).stdout.split())
    assert runinfo.engine_differences({"code_version": head}) == [
        f"{name} changed since {head}" for name in uncommitted]
    root = _git("rev-list", "--max-parents=0", "HEAD").stdout.split()
    if not root or _git("cat-file", "-e", f"{root[0]}^{{commit}}").returncode != 0:
        pytest.skip("a shallow clone: the first commit is not here")
    first = runinfo.engine_differences({"code_version": root[0]})
    assert f"mtalign/decode.py changed since {root[0]}" in first  # the decode loop came later (issue 7)
    # what git cannot tell: uncommitted code, a commit this clone does not have, no version at all
    for version in (f"{head}+dirty", "0" * 12, "unknown", None):
        assert runinfo.engine_differences({"code_version": version}) is None
    assert runinfo.engine_differences({"code_version": "unknown", "packages": {"torch": "2.0.0"}}) == [
        f"torch 2.0.0 (now {runinfo.package_versions()['torch']})"]


def test_a_finished_run_of_another_engine_is_trained_anew_and_the_warning_says_why(tmp_path, capsys):
    store = tmp_path / "runs"
    first = runs.ensure_run(store, MICRO, None, "ground_truth", 0, log=lambda _: None, preset="smoke")
    info_file = Path(first["dir"]) / "run.json"
    info = runinfo.read_json(info_file)
    assert info["engine"] == runinfo.engine_digest()
    ended = info["ended"]
    again = runs.ensure_run(store, MICRO, None, "ground_truth", 0, log=lambda _: None, preset="smoke")
    assert runinfo.read_json(info_file)["ended"] == ended and again["identity_hash"] == first["identity_hash"]

    runinfo.write_json(info_file, {**info, "engine": OTHER})  # as if trained by other code
    assert runinfo.stale_engine(Path(first["dir"]))
    capsys.readouterr()
    logged = []
    runs.ensure_run(store, MICRO, None, "ground_truth", 0, log=logged.append, preset="smoke")
    err = capsys.readouterr().err
    assert f"{first['dir']}: its run was computed by another engine (study code {OTHER}" in err
    assert "it is not reused" in err and any("training anew" in line for line in logged)
    retrained = runinfo.read_json(info_file)
    assert retrained["engine"] == runinfo.engine_digest() and retrained["started"] != info["started"]

    # a run recorded before runs named their engine: reused while git cannot tell (uncommitted code) ...
    legacy = {k: v for k, v in retrained.items() if k != "engine"}
    runinfo.write_json(info_file, {**legacy, "code_version": "abc+dirty"})
    runs.ensure_run(store, MICRO, None, "ground_truth", 0, log=lambda _: None, preset="smoke")
    assert runinfo.read_json(info_file)["code_version"] == "abc+dirty"
    # ... and trained anew when the packages it records differ
    runinfo.write_json(info_file, {**legacy, "code_version": "abc+dirty",
                                   "packages": {**legacy["packages"], "trl": "0.1.0"}})
    runs.ensure_run(store, MICRO, None, "ground_truth", 0, log=lambda _: None, preset="smoke")
    assert runinfo.read_json(info_file)["engine"] == runinfo.engine_digest()


def test_a_finished_cell_whose_run_another_engine_computed_reruns(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({"notebooks": {"10_probe": {"grid": {"value": [1]}}}}))
    out = tmp_path / "out"
    plan_ = grid.plan(grid.load_grid(grid_file), out, FIXTURES)
    assert runner.run_study(plan_, workers=1, report=False, log=lambda _: None).exit_code == 0
    (cell,) = plan_.cells
    assert manifests.cell_state(cell)[0] == "done"
    # the cell names a run it used, as the claim notebooks do, and that run's record names its engine
    metrics = json.loads((cell.dir / "metrics.json").read_text())
    (cell.dir / "metrics.json").write_text(json.dumps({**metrics, "runs": ["some_run"]}))
    run_dir = Path(cell.parameters["runs_dir"]) / "smoke" / "some_run"
    runinfo.write_json(run_dir / "summary.json", {"run": "some_run"})
    runinfo.write_json(run_dir / "run.json", {**runinfo.environment(), "status": "finished"})
    assert manifests.cell_state(cell)[0] == "done" and manifests.outdated_runs(cell) == []
    runinfo.write_json(run_dir / "run.json", {**runinfo.environment(), "status": "finished", "engine": OTHER})
    assert manifests.cell_state(cell)[0] == "outdated" and manifests.outdated_runs(cell) == ["some_run"]
    assert f"rerun (other code)          {cell.name}" in runner.dry_run(plan_, plan_.cells)
    lines = []
    assert runner.run_study(plan_, workers=1, report=False, log=lines.append).exit_code == 0
    assert any(line.startswith(f"finished {cell.name}") or cell.name in line and "finished" in line for line in lines)
    assert not any(line.startswith(f"skip     {cell.name}") for line in lines)
