"""Issue 13: what a careful user's abuse must not break. One test (or a few) per case of the issue:

1. graders on pathological answers return "ungradable" within 2 s, from any thread, leaving nothing spinning;
2. one writer per run folder; 3. SIGTERM handled like SIGINT (train, study, its workers and kernels);
4. `alignment --study` compares settings before reusing a result; 5. damaged files are skipped or rebuilt, named;
6. bad flags fail before any model loads; 7. one run-folder layout; 8. files follow the umask; 9. clear messages.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from mtalign import alignment, executors, grid, manifests, report, runinfo, runner, runs, signals, train
from mtalign.tasks import graders

MICRO = "micro-chain_sum-strong"
FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
BOUND_S = 2.0  # the issue's bound for one grader call


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Caches and outputs in a temporary folder per test; one thread per process."""


# -- 1. graders: a hard time and size limit --------------------------------------------------------------------
def pathological_answers(seed: int = 0) -> list[str]:
    """Generated LaTeX that sympy cannot finish: towers of powers, factorials of huge numbers, deep nesting, huge
    integers, in several spellings (whitespace and brackets defeat naive shape checks; the hard limit catches them)."""
    rng = random.Random(seed)
    out = []
    for _ in range(6):
        a, b, c = (rng.randint(7, 99) for _ in range(3))
        out += [f"{a}^{{{b}^{{{c}^{{{a}}}}}}}", f"{a}^{{{b}^{{{c}}}}}", f"{a} ^ {{ {b} ^ {{ {c} }} }}",
                f"({a}^{{{b}^{{{c}}}}})!", f"{rng.randint(10**5, 10**6)}!", f"{a}**{b}**{c}",
                f"\\left({a}\\right)^{{{b}^{{{c}}}}}"]
    out += ["9^{9^{9^{9}}}", "10^{10^{10^{10}}}", "(10^{10^{10}})!", "{" * 100_000 + "1" + "}" * 100_000,
            "(" * 50 + "1" + ")" * 50, "9" * 299, "\\frac{" * 60 + "1" + "}{2}" * 60]
    return out


def test_graders_return_within_two_seconds_on_generated_pathological_answers():
    """Every call, from a thread (where math-verify's own timeouts cannot work), ends within the bound; counted."""
    answers = pathological_answers()
    timings: list[tuple[str, str, float]] = []

    def work():
        for answer in answers:
            for name, call in (("canonical", lambda a: graders.canonical(a)),
                               ("math_verify", lambda a: graders.math_verify_equal(a, "1"))):
                start = time.perf_counter()
                call(answer)
                timings.append((name, answer[:40], time.perf_counter() - start))

    graders.canonical("1")  # the child's start-up (imports) is not a call's time
    before = graders.ungradable_count()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=len(answers) * 2 * BOUND_S + 30)
    assert not thread.is_alive(), f"graders hung; finished {len(timings)} of {2 * len(answers)} calls"
    slow = [t for t in timings if t[2] > BOUND_S]
    assert not slow, f"calls over {BOUND_S} s: {slow}"
    # each answer refused by shape (not merely over-long) is counted by both calls; the others when they hit the limit
    refused = [a for a in answers if len(a) <= graders.MAX_MATH_ANSWER_CHARS and graders.refuse(a)]
    assert len(refused) >= 30 and graders.ungradable_count() - before >= 2 * len(refused)
    assert graders.canonical("\\frac{1}{2}") == "0.5" and graders.math_verify_equal("0.5", "\\frac{1}{2}")


def test_hard_limit_kills_the_worker_and_the_next_call_works():
    """Past the shape checks (called directly), sympy's hang is stopped by killing the child: nothing keeps spinning."""
    graders.canonical("1")
    child = graders._worker.process
    start = time.perf_counter()
    assert graders._limited("canonical", ("9^{9^{9^{9}}}",), default=None) is None
    assert time.perf_counter() - start < BOUND_S
    child.wait(timeout=5)
    assert child.returncode is not None  # killed and reaped, not left computing
    assert graders.canonical("27.0") == "27"


def test_no_grader_child_outlives_its_parent_even_mid_computation():
    """A training process killed outright (SIGKILL) while its grader child computes: the child dies with it."""
    code = ("from mtalign.tasks import graders as g; g.canonical('1'); "
            "print(g._worker.process.pid, g._spare.process.pid, flush=True); g.HARD_LIMIT_S = 60; "
            "g._limited('canonical', ('9^{9^{9^{9}}}',), None)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    children = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(children) == 2, "the parent did not start a worker and a spare"
    time.sleep(1)  # the worker is inside sympy now
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in children) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]


def test_each_training_step_records_its_ungradable_grader_calls(tmp_path, monkeypatch):
    """The step's count is the running total's growth while its rollouts were scored (a fake total that grows by 3
    per reading stands in for a math task's pathological answers: the toy task grades without math-verify)."""
    readings = iter(range(0, 10_000, 3))
    monkeypatch.setattr(graders, "ungradable_count", lambda: next(readings))
    train.train(model=MICRO, preset="smoke", out=tmp_path / "run", log=lambda _: None)
    metrics = runinfo.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(metrics) == 2 and [m["ungradable"] for m in metrics] == [3, 3]


def test_normal_answers_stay_cheap_and_right():
    """The hard limit costs a pipe round trip per call, not a process per call (measured: ~0.2 ms here)."""
    graders.canonical("1")
    start = time.perf_counter()
    for _ in range(200):
        graders.canonical("\\frac{3}{4}")
    per_call = (time.perf_counter() - start) / 200
    assert per_call < 0.02, f"{per_call * 1000:.1f} ms per call"
    assert [graders.canonical(a) for a in ("2^{10}", "10^{400}", "5!", "2^{2^{2}}", "x+1")] == \
        ["1024", "10**400", "120", "16", "x + 1"]
    assert graders.refuse("2^{10}") is None and graders.refuse("9^{9^{9}}")


# -- 2. one writer per run folder ------------------------------------------------------------------------------
def test_a_second_writer_on_a_run_folder_stops_with_a_message_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "params.json").write_text("{}")  # the first writer's file
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from mtalign import runs\n"
        f"with runs.run_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=f"another process is writing a run in {out}"):
            train.train(model=MICRO, preset="smoke", out=out, log=lambda _: None)
        assert (out / "params.json").read_text() == "{}" and sorted(p.name for p in out.iterdir()) == ["params.json"]
    finally:
        holder.kill()
        holder.wait()


def test_the_run_lock_is_reentrant_within_a_process_so_the_run_store_can_hold_it(tmp_path):
    with runs.run_lock(tmp_path / "run"), runs.run_lock(tmp_path / "run", wait=False):
        pass


# -- 3. SIGTERM is handled like SIGINT ---------------------------------------------------------------------------
def _wait_for(predicate, seconds: float, what: str, proc=None) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited early ({proc.returncode}): {proc.stdout.read()[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {seconds} s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_sigterm_stops_mtalign_train_and_marks_the_run_interrupted(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mtalign", "train", "--model", MICRO, "--preset", "smoke",
                             "--steps", "500", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        _wait_for(lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text().strip(), 180,
                  "the run's first step", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, proc.stdout.read()[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "summary.json").exists()
    # every step records its ungradable grader calls (0 here: the toy task grades by string, not math-verify)
    assert all(m["ungradable"] == 0 for m in runinfo.read_jsonl(out / "metrics.jsonl"))


TRAIN_NOTEBOOK = '''# %% tags=["parameters"]
model: str = "micro-chain_sum-strong"  # the micro toy model
run_dir: str = ""  # set by the runner
runs_dir: str = ""  # set by the runner

# %%
from pathlib import Path
from mtalign import train
train.train(model=model, preset="smoke", steps=500, out=Path(run_dir) / "run", log=print)
'''


def test_sigterm_stops_a_study_its_workers_and_kernels_and_marks_runs_interrupted(tmp_path):
    """SIGTERM to the runner alone (as `kill` sends it): the kernels are interrupted (an RL run in one says
    interrupted), the workers exit, the manifest says pending, and the lock is free once the runner has exited."""
    notebooks, out, gate = tmp_path / "notebooks", tmp_path / "out", tmp_path / "gate"
    notebooks.mkdir()
    (notebooks / "10_probe.py").write_text((FIXTURES / "10_probe.py").read_text())
    (notebooks / "11_train.py").write_text(TRAIN_NOTEBOOK)
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({"notebooks": {"10_probe": {"params": {"wait_for": str(gate)}},
                                                       "11_train": {}}}))
    proc = subprocess.Popen([sys.executable, "-m", "mtalign", "study", "--params", str(grid_file), "--out", str(out),
                             "--notebooks", str(notebooks), "--workers", "2", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    probe, run = out / "10_probe" / "10_probe", out / "11_train" / "11_train" / "run"
    family: list[int] = []
    try:
        _wait_for(lambda: (probe / "kernel.pid").exists() and (run / "metrics.jsonl").exists()
                  and (run / "metrics.jsonl").read_text().strip(), 240, "both cells running", proc)
        family = signals.descendants(proc.pid)  # workers and kernels
        assert len(family) >= 4
        proc.send_signal(signal.SIGTERM)
        signalled = time.time()
        assert proc.wait(timeout=executors.STOP_GRACE_S + 30) == 143, proc.stdout.read()[-3000:]
        assert time.time() - signalled < executors.STOP_GRACE_S  # stopped cleanly (10 s here), not killed at the grace
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(1)
        leftovers = [pid for pid in family if _alive(pid)]
        signals.send(leftovers, signal.SIGKILL)
    assert not leftovers, f"processes left running after the study exited: {leftovers}"
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    manifest = json.loads((out / "manifest.json").read_text())
    assert {c["name"]: c["status"] for c in manifest["cells"]} == {"10_probe": "pending", "11_train": "pending"}
    for cell in (probe.parent / "10_probe", out / "11_train" / "11_train"):
        assert json.loads((cell / "params.json").read_text())["status"] == "interrupted"
    assert not (probe / "metrics.json").exists()  # the probe never got past its wait
    with open(out / ".study.lock", "a+") as handle:  # released: a new study may start
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


# -- 4. alignment --study compares settings ----------------------------------------------------------------------
def test_alignment_study_measures_again_when_the_settings_differ(tmp_path, monkeypatch, capsys):
    out = tmp_path / "alignment"
    record = {"model": "toy-chain_sum-weak", "task": "chain_sum", "n": 2, "k": [1, 2], "seed": 0,
              "problem_ids": [f"p{i}" for i in range(6)], "sampling": {"temperature": 1.0, "top_p": 1.0},
              "curve": {}, "summary": {}}
    runinfo.write_json(out / f"{alignment.cell_name('toy-chain_sum-weak', 'chain_sum')}.json", record)
    measured = []

    class Inline:  # the pool, without processes or models: records what would be measured
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, jobs):
            for job in jobs:
                measured.append(job)
                yield {**record, "n": job["n"], "summary": {"pass@1": 0.5}}

    monkeypatch.setattr(alignment, "ProcessPoolExecutor", Inline)
    monkeypatch.setattr("mtalign.plots.write_figure", lambda *a, **k: None)
    monkeypatch.setattr("mtalign.plots.passk_figure", lambda *a, **k: None)
    config = {"cells": [{"model": "toy-chain_sum-weak"}], "n": 8, "problems": 6}
    alignment.measure_study(config, out)
    assert [job["n"] for job in measured] == [8]
    assert "n 2, asked 8" in capsys.readouterr().out
    measured.clear()
    alignment.measure_study({**config, "n": 2, "k": [1, 2]}, out)  # the stored settings: reused
    assert measured == []


# -- 5. damaged files ----------------------------------------------------------------------------------------
def test_read_jsonl_skips_a_line_that_is_not_utf8_and_keeps_the_others(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "x": "\xff"}\n{"step": 3}\n{"step": 4')
    assert runinfo.read_jsonl(path) == [{"step": 1}, {"step": 3}]


def test_a_truncated_summary_means_not_finished_with_a_warning_naming_it(tmp_path, capsys):
    good, bad = tmp_path / "runs" / "smoke" / "a", tmp_path / "runs" / "smoke" / "b"
    runinfo.write_json(good / "summary.json", {"run": "a"})
    runinfo.write_json(bad / "summary.json", {"run": "b"})
    (bad / "summary.json").write_text('{"run": "b", "ga')
    assert runs.is_finished(good) and not runs.is_finished(bad)
    assert f"{bad / 'summary.json'} is damaged" in capsys.readouterr().err
    warnings: list[str] = []
    assert [s["run"] for s in runs.load_summaries(tmp_path / "runs", warn=warnings.append)] == ["a"]
    assert len(warnings) == 1 and str(bad / "summary.json") in warnings[0]
    study = report.load_study(tmp_path)  # the report reads on, and says which file it left out
    assert any(str(bad / "summary.json") in w for w in study.warnings)


def test_the_run_store_trains_again_over_a_truncated_summary(tmp_path, capsys):
    """The cell that needs the run no longer fails on every rerun: the damaged run counts as unfinished."""
    first = runs.ensure_run(tmp_path / "runs", MICRO, None, "ground_truth", 0, log=lambda _: None, preset="smoke")
    summary = Path(first["dir"]) / "summary.json"
    summary.write_text(summary.read_text()[:50])
    again = runs.ensure_run(tmp_path / "runs", MICRO, None, "ground_truth", 0, log=lambda _: None, preset="smoke")
    assert again["dir"] == first["dir"] and json.loads(summary.read_text())["run"] == first["run"]
    assert f"{summary} is damaged" in capsys.readouterr().err


def test_a_truncated_manifest_is_rebuilt_from_the_cell_folders(tmp_path):
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({"notebooks": {"10_probe": {"grid": {"value": [1, 2]}}}}))
    out = tmp_path / "out"
    plan_ = grid.plan(grid.load_grid(grid_file), out, FIXTURES)
    assert runner.run_study(plan_, workers=1, report=False, log=lambda _: None).exit_code == 0
    whole = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text((out / "manifest.json").read_text()[:200])
    lines: list[str] = []
    manifest = manifests.load_manifest(out, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith(f"warning: {out / 'manifest.json'} is damaged (JSONDecodeError")
    assert lines[0].endswith("; rebuilding it from the cell folders")
    assert [(c["name"], c["status"]) for c in manifest["cells"]] == \
        [(c["name"], "skipped") for c in whole["cells"]]
    assert json.loads((out / "manifest.json").read_text())["grid"] == whole["grid"]
    study = report.load_study(out)  # the report reads it too
    assert study.manifest is not None


# -- 6. every flag is checked before a model loads ---------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "seed (--seed) must be an integer from 0 to 4294967295, got -1"),
    (["--seed", str(2 ** 32)], "seed (--seed) must be an integer"),
    (["--out", "FILE"], "out (--out) FILE is a file"),
    (["--params", "BADYAML"], "BADYAML is not UTF-8 text"),
    (["--initial-eval-cache", "FILE"], "initial_eval_cache (--initial-eval-cache) FILE is a file"),
])
def test_bad_train_flags_fail_up_front_naming_the_flag(argv, message, tmp_path, monkeypatch, capsys):
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "BADYAML").write_bytes(b"model: \xff\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mtalign.models.load", lambda *a, **k: pytest.fail("a model was loaded"))
    from mtalign import cli

    assert cli.main(["train", "--model", MICRO, "--preset", "smoke", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists() and not any(Path(os.environ["MTALIGN_OUTPUTS"]).glob("**/run.json"))


# -- 7. one run-folder layout --------------------------------------------------------------------------------
def test_train_writes_where_the_run_store_does_and_a_step_override_elsewhere():
    plain = train.resolve(model=MICRO, preset="smoke")
    short = train.resolve(model=MICRO, preset="smoke", steps=8)
    store = runs.default_runs_dir()
    assert plain.out == runs.run_dir(store, MICRO, "chain_sum", "ground_truth", 0, "smoke")
    assert plain.out == store / "smoke" / f"{MICRO}__chain_sum__ground_truth__s0"
    assert short.out == store / "smoke-8steps" / f"{MICRO}__chain_sum__ground_truth__s0"


# -- 8. files follow the umask -------------------------------------------------------------------------------
@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(mask, mode, tmp_path):
    old = os.umask(mask)
    try:
        path = runinfo.write_json(tmp_path / "summary.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


# -- 9. messages name what is wrong --------------------------------------------------------------------------
def test_a_grid_or_study_file_that_is_not_utf8_is_named(tmp_path):
    bad = tmp_path / "grid.yaml"
    bad.write_bytes(b"notebooks:\n  10_probe: {}\n# caf\xe9\n")
    with pytest.raises(ValueError, match=f"grid file {bad} is not UTF-8 text"):
        grid.load_grid(bad)
    with pytest.raises(ValueError, match=f"study file {bad} is not UTF-8 text"):
        alignment.load_study(bad)


def test_params_naming_a_folder_says_so(tmp_path):
    with pytest.raises(ValueError, match=f"--params {tmp_path} is a folder"):
        train.resolve(params=tmp_path)


def test_a_model_path_to_a_folder_that_is_no_model_is_one_clear_line(tmp_path):
    folder = tmp_path / "not_a_model"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        train.train(model=str(folder), task="chain_sum", preset="smoke", out=tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()  # failed before the run folder was made
