"""The study runner (mtalign/grid.py, issue 4): real papermill runs of tiny notebooks in temporary folders.

Most tests use tests/fixtures/notebooks/10_probe.py (records what the runner injected; raises on `fail: true`) and
99_report.py (reads the manifest, lists missing cells); one runs the shipped smoke grid on 01_alignment.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from mtalign import cli, executors, grid, paths, runner

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Caches and outputs in a temporary folder per test; one thread per process."""


def write_grid(tmp_path: Path, data: dict | str, name: str = "grid.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def probe_plan(tmp_path: Path, data: dict, out: Path | None = None) -> grid.Plan:
    return grid.plan(grid.load_grid(write_grid(tmp_path, data)), out or tmp_path / "out", FIXTURES)


def run(plan_: grid.Plan, **kwargs) -> runner.Outcome:
    lines: list[str] = []
    outcome = runner.run_study(plan_, log=lines.append, **kwargs)
    outcome.log = lines
    return outcome


def params_json(cell_dir: Path) -> dict:
    return json.loads((cell_dir / "params.json").read_text())


def statuses(outcome: runner.Outcome) -> dict[str, str]:
    return {name: e["status"] for name, e in outcome.entries.items()}


# -- the smoke grid, end to end --------------------------------------------------------------------
@pytest.mark.slow
def test_smoke_grid_runs_end_to_end(tmp_path, capfd):
    """params/grids/smoke.yaml: every real notebook at smoke size, two worker processes, then the report."""
    out = tmp_path / "out"
    plan_ = grid.plan(grid.load_grid(paths.PARAMS / "grids" / "smoke.yaml"), out)
    outcome = run(plan_, workers=2)
    assert outcome.exit_code == 0, outcome.log
    assert "without encryption" not in capfd.readouterr().err  # the kernels' start-up warnings stay out of the log
    manifest = json.loads((out / "manifest.json").read_text())
    claims = [f"{nb}__model={m}__seed={s}" for nb in ("02_reward_signal", "03_one_shot", "04_sample_polarity")
              for m in ("micro-chain_sum-strong", "micro-chain_sum-weak") for s in (0, 1)]
    assert sorted(e["name"] for e in manifest["cells"]) == sorted(["01_alignment", *claims, "05_contamination"])
    assert manifest["counts"] == {"finished": 14, "failed": 0, "skipped": 0, "pending": 0}
    for entry in manifest["cells"]:
        cell_dir = out / entry["dir"]
        record = params_json(cell_dir)
        assert record["status"] == "finished" and record["duration_s"] > 0
        assert record["environment"]["packages"]["papermill"]
        # the executed notebook holds papermill's injected cell with this cell's folder, and no error
        nb = nbformat.read(next(cell_dir.glob("*.ipynb")), as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert f'run_dir = "{cell_dir}"' in injected[0].source
        assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
        # the notebook wrote its own files into run_dir
        assert json.loads((cell_dir / "metrics.json").read_text())["finished"]
    # the claim notebooks share one run store: 2 models x 2 seeds x (baseline + 11 variants + 02's clip probe),
    # each trained once; incorrect_source only where the micro model's majority answer is wrong on some training
    # problem, and its 02 cell says so where it is not
    summaries = list((out / "runs" / "smoke").glob("*/summary.json"))
    trained = {p.parent.name for p in summaries if "__incorrect_source__" in p.parent.name}
    said = [e["name"] for e in manifest["cells"] if e["name"].startswith("02_")
            and "incorrect_source: not run on" in (out / e["dir"] / "02_reward_signal.ipynb").read_text()]
    assert len(trained) + len(said) == 2 * 2
    assert len(summaries) == 2 * 2 * 13 - len(said)
    assert (out / "report.html").exists() and not list(out.rglob("*.partial.ipynb"))


# -- expansion and naming --------------------------------------------------------------------------
def test_expansion_names_defaults_and_bundles(tmp_path):
    plan_ = probe_plan(tmp_path, {
        "defaults": {"label": "from-defaults"},
        "notebooks": {"10_probe": {
            "params": {"model": "Qwen/Qwen2.5-7B"},  # a hub name: not checked against short names
            "grid": {"value": [1, 2], "case": {"plain": {"label": "x/y"}, "fails": {"fail": True}}},
        }},
        "report": "99_report",
    })
    names = [c.name for c in plan_.cells]
    assert names == ["10_probe__value=1__case=plain", "10_probe__value=1__case=fails",
                     "10_probe__value=2__case=plain", "10_probe__value=2__case=fails"]
    first, second = plan_.cells[0], plan_.cells[1]
    assert first.overrides == {"label": "x/y", "model": "Qwen/Qwen2.5-7B", "value": 1}  # grid beats defaults
    assert second.overrides == {"label": "from-defaults", "model": "Qwen/Qwen2.5-7B", "value": 1, "fail": True}
    out = (tmp_path / "out").resolve()
    assert first.dir == out / "10_probe" / names[0]
    assert first.parameters["run_dir"] == str(first.dir) and first.parameters["runs_dir"] == str(out / "runs")
    assert first.parameters["study_dir"] == str(out) and first.parameters["gpus"] == 0
    # `label` is in defaults but 99_report does not declare it: not injected there
    assert plan_.report.parameters == {"study_dir": str(out), "run_dir": str(out / "99_report")}


def test_cell_names_are_file_system_safe_and_bounded():
    assert grid.cell_name("02_x", {"model": "meta-llama/Llama-3.1-8B", "lr": 1e-06, "on": True, "k": [1, 2]}) \
        == "02_x__model=meta-llama_Llama-3.1-8B__lr=1e-06__on=true__k=1+2"
    long = grid.cell_name("02_x", {"tasks": ["korbench_operation"] * 20})
    assert len(long) <= grid.MAX_NAME and long == grid.cell_name("02_x", {"tasks": ["korbench_operation"] * 20})
    assert long != grid.cell_name("02_x", {"tasks": ["korbench_operation"] * 21})


def test_read_notebook_keeps_parameters_papermill_drops():
    """papermill's inspector skips `n` in 01_alignment (its comment has a second `=`); the runner must not."""
    import jupytext
    import papermill

    nb = grid.read_notebook(paths.NOTEBOOKS / "01_alignment.py")
    assert "n" in nb.parameters and "run_dir" in nb.parameters
    probe = grid.read_notebook(FIXTURES / "10_probe.py")
    built = nbformat.reads(jupytext.writes(jupytext.read(probe.source), fmt="ipynb"), as_version=4)
    assert "value" in probe.parameters and "value" not in papermill.inspect_notebook(built)


# -- a failing cell, the report, the runner's environment -------------------------------------------
def test_failing_cell_is_recorded_others_finish_and_report_shows_it_missing(tmp_path, monkeypatch):
    """Three one-GPU cells, two workers, on a machine that shows GPUs 3 and 5 (CPU-only here: the probe only records
    what it was given); one cell raises."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    out = tmp_path / "out"
    plan_ = probe_plan(tmp_path, {
        "notebooks": {"10_probe": {"grid": {"case": {"one": {"value": 1}, "two": {"value": 2},
                                                     "bad": {"value": 3, "fail": True}}},
                                   "resources": {"gpus": 1}}},
        "report": "99_report",
    }, out)
    outcome = run(plan_, workers=2)
    assert outcome.exit_code == 1
    assert statuses(outcome) == {"10_probe__case=one": "finished", "10_probe__case=two": "finished",
                                 "10_probe__case=bad": "failed"}
    bad = outcome.entries["10_probe__case=bad"]
    assert "RuntimeError: probe asked to fail (value=3)" in bad["error"]
    assert params_json(out / bad["dir"])["status"] == "failed"
    failed_nb = nbformat.read(out / bad["executed_notebook"], as_version=4)  # the run record is kept
    assert any(o.get("ename") == "RuntimeError" for c in failed_nb.cells for o in c.get("outputs", []))
    # what the runner gave the kernels: one GPU each, never the same one at once (the first two ran together)
    metrics = [json.loads((out / "10_probe" / f"10_probe__case={case}" / "metrics.json").read_text())
               for case in ("one", "two")]
    assert sorted(m["env"]["CUDA_VISIBLE_DEVICES"] for m in metrics) == ["3", "5"]
    assert [m["gpus"] for m in metrics] == [1, 1] and bad["devices"] in ("3", "5")
    resolved = out.resolve()
    assert metrics[0]["runs_dir"] == str(resolved / "runs") and (resolved / "runs").is_dir()
    assert metrics[0]["study_dir"] == str(resolved) and metrics[0]["cwd"] == metrics[0]["run_dir"]
    assert metrics[0]["env"]["OMP_NUM_THREADS"] == "1"
    assert metrics[0]["python"] == sys.executable  # the kernel is this interpreter, whatever kernels the user has
    # the report ran after all cells and shows the failed one as missing, not as a zero
    assert outcome.report["status"] == "finished"
    report = json.loads((out / "99_report" / "report.json").read_text())
    assert report == {"values": {"10_probe__case=one": 2, "10_probe__case=two": 4},
                      "missing": {"10_probe__case=bad": "failed"}}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"finished": 2, "failed": 1, "skipped": 0, "pending": 0}
    assert manifest["report"]["status"] == "finished"

    # `mtalign report --out DIR` path: the report alone, from the grid stored in the manifest
    (out / "99_report" / "report.json").unlink()
    entry = runner.run_report(out, log=lambda line: None)
    assert entry["status"] == "finished" and (out / "99_report" / "report.json").exists()
    assert json.loads((out / "manifest.json").read_text())["cells"][2]["status"] == "failed"


# -- resuming --------------------------------------------------------------------------------------
def test_resume_redoes_only_unfinished_cells(tmp_path):
    out = tmp_path / "out"
    data = {"notebooks": {"10_probe": {"grid": {"value": [1, 2, 3]}}}}
    plan_ = probe_plan(tmp_path, data, out)
    assert run(plan_, workers=1).exit_code == 0
    dirs = {c.name: c.dir for c in plan_.cells}
    first = {name: params_json(d)["started"] for name, d in dirs.items()}
    time.sleep(1.1)  # the stored start times have one-second resolution

    # value=2: killed mid-run, as execute_cell leaves it (status running, a partial notebook)
    two = dirs["10_probe__value=2"]
    record = params_json(two)
    record["status"] = "running"
    (two / "params.json").write_text(json.dumps(record))
    (two / "10_probe.ipynb").rename(two / "10_probe.partial.ipynb")
    # value=3: killed before its marker was written; only the notebook's own file is left
    (dirs["10_probe__value=3"] / "params.json").unlink()
    (dirs["10_probe__value=3"] / "10_probe.ipynb").unlink()

    listing = runner.dry_run(plan_, plan_.cells)
    assert "done                        10_probe__value=1" in listing
    assert "rerun (unfinished)          10_probe__value=2" in listing
    assert "rerun (unfinished)          10_probe__value=3" in listing

    outcome = run(plan_, workers=1)
    assert outcome.exit_code == 0
    assert statuses(outcome) == {"10_probe__value=1": "skipped", "10_probe__value=2": "finished",
                                 "10_probe__value=3": "finished"}
    again = {name: params_json(d)["started"] for name, d in dirs.items()}
    assert again["10_probe__value=1"] == first["10_probe__value=1"]
    assert again["10_probe__value=2"] != first["10_probe__value=2"]
    assert not (two / "10_probe.partial.ipynb").exists() and (two / "10_probe.ipynb").exists()

    # a changed fixed parameter makes every finished cell stale
    data["notebooks"]["10_probe"]["params"] = {"label": "b"}
    changed = probe_plan(tmp_path, data, out)
    assert runner.dry_run(changed, changed.cells).count("rerun (parameters changed)") == 3


def test_killed_run_resumes(tmp_path):
    """A real kill: SIGKILL the runner while a cell executes; the cell is not done, and a rerun finishes it."""
    out, gate = tmp_path / "out", tmp_path / "gate"
    grid_file = write_grid(tmp_path, {"notebooks": {"10_probe": {"grid": {
        "case": {"fast": {"value": 1}, "slow": {"value": 2, "wait_for": str(gate)}}}}}})
    proc = subprocess.Popen([sys.executable, "-m", "mtalign", "study", "--params", str(grid_file), "--out", str(out),
                             "--notebooks", str(FIXTURES), "--workers", "1"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slow = out / "10_probe" / "10_probe__case=slow"
    deadline = time.time() + 90
    while not (slow / "kernel.pid").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert (slow / "kernel.pid").exists(), "the slow cell never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kernel = int((slow / "kernel.pid").read_text())
    _wait_gone(kernel)  # the orphaned kernel notices its parent died and exits

    assert params_json(slow)["status"] == "running" and not (slow / "10_probe.ipynb").exists()
    assert (slow / "10_probe.partial.ipynb").exists()  # papermill's in-progress copy, not the finished name
    gate.touch()
    plan_ = grid.plan(grid.load_grid(grid_file), out, FIXTURES)
    outcome = run(plan_, workers=1)
    assert statuses(outcome) == {"10_probe__case=fast": "skipped", "10_probe__case=slow": "finished"}
    assert not (slow / "10_probe.partial.ipynb").exists() and json.loads((slow / "metrics.json").read_text())


def _wait_gone(pid: int, seconds: float = 15) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)  # the kernel this test started; do not leave it behind
    pytest.fail(f"kernel {pid} outlived its killed runner by {seconds} s")


# -- dry run and --only ----------------------------------------------------------------------------
def test_dry_run_lists_cells_and_runs_nothing(tmp_path, capsys):
    grid_file = write_grid(tmp_path, {"notebooks": {"10_probe": {"grid": {"value": [1, 2], "label": ["a", "b"]}}},
                                      "report": "99_report"})
    out = tmp_path / "out"
    args = argparse.Namespace(params=grid_file, out=out, workers=None, only=["*value=2*"], dry_run=True,
                              executor="local", notebooks=FIXTURES, no_report=False, extra_seeds=False)
    assert runner.run(args) == 0
    printed = capsys.readouterr().out
    assert "2 cell(s) selected of 4; 0 done, 2 to run" in printed
    assert f"run                         10_probe__value=2__label=a  ->  {out.resolve()}/10_probe/" in printed
    assert "10_probe__value=1" not in printed and "then the report: 99_report" in printed
    assert not out.exists()


# -- bad input: every one fails before any cell runs, naming what is valid -------------------------
PROBE = {"notebooks": {"10_probe": {"grid": {"value": [1]}}}}


@pytest.mark.parametrize("data, message", [
    ({"notebooks": {"02_reward_signal": {}}}, "unknown notebook(s) 02_reward_signal; notebooks in"),
    ({**PROBE, "report": "98_summary"}, "unknown notebook(s) 98_summary"),
    ({"notebooks": {"10_probe": {"params": {"steps": 3}}}},
     "parameter 'steps' is not declared by 10_probe.py; its parameters: value, label, fail"),
    ({"notebooks": {"10_probe": {"grid": {"case": {"x": {"lr": 1}}}}}}, "parameter 'lr' is not declared"),
    ({**PROBE, "defaults": {"steps": 300}}, "defaults.steps is declared by no notebook of this grid; "
                                             "declared parameters: fail, gpus, label"),
    ({"notebooks": {"10_probe": {"params": {"model": "toy-chain_sum-medium"}}}},
     "unknown model 'toy-chain_sum-medium'; valid models: toy-chain_sum-strong"),
    ({"notebooks": {"10_probe": {"grid": {"task": ["chain_sum", "sudoku"]}}}},
     "unknown task 'sudoku'; valid tasks: chain_sum, mini_sudoku"),
    ({"notebooks": {"10_probe": {"grid": {"value": []}}}}, "grid axis value is empty, so the grid expands to zero"),
    ({"notebooks": {"10_probe": {"params": {"value": [1, 2]}}}},
     "value must be int like its default 1, got [1, 2] (to sweep it, list it under grid:)"),
    ({"notebooks": {"10_probe": {"params": {"fail": "yes"}}}}, "fail must be bool"),
    ({"notebooks": {"10_probe": {"grid": {"value": 3}}}}, "grid.value must be a list of values to sweep"),
    ({"notebooks": {"10_probe": {"params": {"run_dir": "/tmp/x"}}}}, "run_dir is set by the runner"),
    ({"notebooks": {"10_probe": {"params": {"gpus": 2}}}}, "gpus is set by the runner, not the grid file "
                                                           "(use resources: {gpus: N})"),
    ({"notebooks": {"10_probe": {"params": {"value": 1}, "grid": {"value": [2]}}}}, "value set in both params"),
    ({**PROBE, "seeds": [0]}, "unknown top-level key(s) seeds; valid keys: defaults, resources, slurm, notebooks"),
    ({"notebooks": {"10_probe": {"value": 1}}}, "unknown key(s) value; valid keys: params, grid, resources, slurm"),
    ({**PROBE, "resources": {"gpu": 1}}, "unknown key(s) gpu; valid keys: gpus, cpus, mem_gb, time_min"),
    ({**PROBE, "resources": {"gpus": -1}}, "resources.gpus must be an integer >= 0"),
    ({**PROBE, "slurm": {"partion": "gpu"}}, "unknown or runner-owned option(s) partion; valid options: account"),
    ({**PROBE, "slurm": {"time": 60}}, "unknown or runner-owned option(s) time"),
    ({**PROBE, "report": "10_probe"}, "10_probe is the report; list it under report: only"),
    ({"notebooks": {}}, "`notebooks` must map at least one notebook"),
    ([1, 2], "a grid file is a mapping"),
])
def test_bad_grid_fails_before_running(tmp_path, data, message):
    with pytest.raises(ValueError) as err:
        probe_plan(tmp_path, data)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["variant", "preset"])
def test_unknown_variant_or_preset_is_rejected_when_the_engine_lists_them(tmp_path, kind):
    valid = grid._valid_names(kind)
    assert valid, f"mtalign.train lists no {kind}s"
    with pytest.raises(ValueError, match=rf"unknown {kind} 'golden'; valid {kind}s: {valid[0]}"):
        probe_plan(tmp_path, {"notebooks": {"10_probe": {"params": {kind: "golden"}}}})
    assert probe_plan(tmp_path, {"notebooks": {"10_probe": {"grid": {kind: valid[:2]}}}}).cells


def test_malformed_yaml_and_missing_file_and_cli_exit_code(tmp_path, capsys):
    bad = write_grid(tmp_path, "notebooks:\n  10_probe: {grid: {value: [1, 2}\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        grid.load_grid(bad)
    with pytest.raises(FileNotFoundError, match="shipped grids in params/grids: .*smoke.yaml"):
        grid.load_grid(tmp_path / "nope.yaml")
    assert cli.main(["study", "--params", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "mtalign study: error:" in capsys.readouterr().err


def test_only_matching_nothing_and_gpu_cells_without_gpus(tmp_path, monkeypatch):
    plan_ = probe_plan(tmp_path, {"notebooks": {"10_probe": {"grid": {"value": [1, 2]},
                                                             "resources": {"gpus": 2}}}})
    with pytest.raises(ValueError, match=r"--only 03_\* matches no cell; cells of this grid: 10_probe__value=1"):
        grid.select(plan_.cells, ["03_*"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ValueError, match="2 cell.s. need 2 GPU.s. but this machine has 1 visible"):
        runner.run_study(plan_, log=lambda line: None)
    assert not (tmp_path / "out").exists()


# -- shipped grids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["smoke", "toy", "paper", "lite", "rehearsal"])
def test_shipped_grids_are_valid_for_the_notebooks_that_exist(name, tmp_path):
    """Schema of every grid file, and full checks of each block whose notebook exists in this checkout."""
    g = grid.load_grid(paths.PARAMS / "grids" / f"{name}.yaml")
    available = grid.find_notebooks()
    blocks = [nb for nb in g.notebooks if nb in available]
    if name == "smoke":
        assert blocks == list(g.notebooks) and grid.plan(g, tmp_path / "out").cells
    for nb in blocks:
        notebook = grid.read_notebook(available[nb])
        cells = grid.expand(notebook, g.notebooks[nb], g.defaults, tmp_path)
        assert cells and not grid.check_values(cells, {nb: notebook})
    if name in ("paper", "lite"):  # hub models are named by Hugging Face id, one job per cell with its GPUs
        assert all(e.resources.gpus >= 1 for e in g.notebooks.values())


# -- executors and GPUs ----------------------------------------------------------------------------
def test_local_submitit_executor_runs_a_cell(tmp_path):
    out = tmp_path / "out"
    plan_ = probe_plan(tmp_path, {"notebooks": {"10_probe": {"params": {"value": 21}}}}, out)
    outcome = run(plan_, executor="local-submitit")
    assert outcome.exit_code == 0 and statuses(outcome) == {"10_probe": "finished"}
    metrics = json.loads((out / "10_probe" / "10_probe" / "metrics.json").read_text())
    assert metrics["doubled"] == 42 and metrics["env"] == {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    assert params_json(out / "10_probe" / "10_probe")["pid"] != os.getpid()  # ran as a submitit job
    assert list((out / ".submitit").glob("*/*_result.pkl"))


@pytest.mark.parametrize("free, requests, slots, expected", [
    (["0", "1"], [1, 1, 1], 4, [(0, ["0"]), (1, ["1"])]),  # two GPUs: two one-GPU cells, the third waits
    (["0", "1", "2"], [2, 1], 4, [(0, ["0", "1"]), (1, ["2"])]),  # a two-GPU cell takes two devices
    (["0"], [2, 1], 4, [(1, ["0"])]),  # a cell needing more than is free waits; a smaller one starts meanwhile
    (["0", "1"], [1, 1], 1, [(0, ["0"])]),  # one free worker slot: one cell, whatever the GPUs
    ([], [0, 0, 0], 2, [(0, []), (1, [])]),  # CPU cells take no GPU (CUDA_VISIBLE_DEVICES="")
    (["3", "5"], [1, 1], 2, [(0, ["3"]), (1, ["5"])]),  # ids as CUDA_VISIBLE_DEVICES gives them, not 0..n
])
def test_take_gpus(free, requests, slots, expected):
    assert executors.take_gpus(free, requests, slots) == expected


def test_visible_gpus_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert executors.visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert executors.visible_gpus() == []


def test_slurm_job_script_carries_each_cells_resources(tmp_path):
    """Without a cluster: the sbatch script submitit would submit for one paper cell."""
    from submitit.slurm.slurm import _make_sbatch_string

    g = grid.load_grid(paths.PARAMS / "grids" / "paper.yaml")
    g.notebooks = {"10_probe": grid.Entry(resources=g.notebooks["02_reward_signal"].resources, slurm=g.slurm)}
    g.defaults, g.report = {}, None
    cell = grid.plan(g, tmp_path / "out", FIXTURES).cells[0]
    script = _make_sbatch_string(command="python -m x", folder=tmp_path, **executors.slurm_parameters(cell))
    for line in ("#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=64", "#SBATCH --mem=512GB",
                 "#SBATCH --time=2880", "#SBATCH --job-name=10_probe", "#SBATCH --nodes=1",
                 "source .venv/bin/activate"):
        assert line in script
