"""The training engine (issue 3): every variant trains end to end on a micro toy model, the run files carry what the
study reads, bad input fails before training, Ctrl-C keeps the metrics, and the engine's pieces (dynamic sampling,
the cross-rank gather, TRL's advantages) are pinned on hand-built cases. Hub tasks train and evaluate on their own
splits (on the fixtures in tests/fixtures/hub), a run evaluates several tasks, and the cached step-0 evaluation gives
the same numbers and the same training as computing it.

The micro model is first taught the smoke preset's four training problems by a few seconds of supervised training,
so its rollouts are sometimes right and sometimes wrong: a ground-truth reward then has variance within groups, and a
variant's parameters change only if its gradient is not zero (the smoke preset has no weight decay).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from mtalign import config, data, evaluate, identity

MICRO = "micro-chain_sum-strong"
HUB = Path(__file__).resolve().parent / "fixtures" / "hub"
STEPS = 150  # enough to write the format; the answers stay mixed
STEP_KEYS = {"step", "reward_mean", "gt_accuracy", "format_rate", "zero_variance_frac", "entropy", "response_length",
             "clip_fraction", "learning_rate", "wall_time", "loss", "grad_norm", "ds_generation_batches",
             "ds_groups_dropped"}


@pytest.fixture(scope="module", autouse=True)
def _caches(isolated_module):
    """One cache for this module (the micro model is built once), nothing written to ~ or the repo; restored after."""
    return isolated_module


@pytest.fixture(scope="module")
def taught():
    """The micro model after STEPS steps of supervised training on the smoke pool."""
    import torch

    from mtalign import models, train

    torch.manual_seed(0)
    loaded = models.load(MICRO, log=lambda _: None)
    settings = train.Settings.from_dict(config.load_preset("smoke"), "smoke")
    task = train.task_for(MICRO, "chain_sum")
    # Like the toy world's recipes: each problem is written with the right answer or the other convention's wrong
    # one, 1:3 on even problems and 3:1 on odd ones, and once without the format: groups are mixed, some majority
    # answers are wrong, and some completions are not formatted.
    docs = []
    for i, problem in enumerate(train.training_pool(task, settings)):
        prompt, right = task.prompt(problem, "compact"), 3 if i % 2 else 1
        for j in range(4):
            answer = None if j < right else task.convention_answer(problem)
            docs.append(prompt + task.completion(problem, answer) + loaded.tokenizer.eos_token)
        unformatted = ",".join(task.scratchpad(problem)) + "|" + problem.answer + "."
        docs.append(prompt + unformatted + loaded.tokenizer.eos_token)
    model, tokenizer = loaded.model, loaded.tokenizer
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    tokenizer.padding_side = "right"
    enc = tokenizer(docs, padding=True, return_tensors="pt", add_special_tokens=False)
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    model.train()
    for _ in range(STEPS):
        model(**enc, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    tokenizer.padding_side = "left"
    model.eval()
    return loaded


@pytest.fixture(scope="module")
def accuracy_log(taught, tmp_path_factory):
    """A full-data ground-truth run's per-example accuracy log (2 steps = 2 epochs of the 4-problem smoke pool)."""
    from mtalign import train

    out = tmp_path_factory.mktemp("full-run")
    train.train(model=copy.deepcopy(taught), variant="ground_truth", preset="smoke", out=out, log=lambda _: None)
    return out / "example_accuracy.jsonl"


def _params(loaded):
    return {name: p.detach().clone() for name, p in loaded.model.named_parameters()}


def _variants():
    from mtalign import train

    return config.list_variants()


# -- every variant, end to end -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("variant", _variants())
def test_every_variant_trains_two_steps_and_writes_its_files(variant, taught, accuracy_log, tmp_path):
    from mtalign import runinfo, train

    loaded = copy.deepcopy(taught)
    before = _params(loaded)
    needs_log = train.load_variants()[variant].data.get("selection") == "variance"
    summary = train.train(model=loaded, variant=variant, preset="smoke", out=tmp_path, log=lambda _: None,
                          accuracy_log=accuracy_log if needs_log else None)

    metrics = runinfo.read_jsonl(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        assert STEP_KEYS <= set(m), STEP_KEYS - set(m)
        assert isinstance(m["loss"], float) and np.isfinite(m["loss"])
        assert 0 <= m["gt_accuracy"] <= 1 and 0 <= m["format_rate"] <= 1
    # a gradient moved the weights (no weight decay in the smoke preset, so nothing else could)
    assert any(m["grad_norm"] > 0 for m in metrics)
    after = _params(loaded)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)

    evals = runinfo.read_jsonl(tmp_path / "eval.jsonl")
    assert [e["step"] for e in evals] == [0, 1, 2]  # smoke evaluates every step; before and after with pass@k samples
    assert [e["samples"] for e in evals] == [4, 2, 4]
    for name in ("initial_passk.json", "final_passk.json"):
        curve = runinfo.read_json(tmp_path / name)
        assert curve["k"] == [1, 2, 4] and len(curve["correct"]) == curve["problems"] == 4
    assert runinfo.read_jsonl(tmp_path / "example_accuracy.jsonl")
    params = runinfo.read_json(tmp_path / "params.json")
    assert params["variant"]["name"] == variant and params["settings"]["steps"] == 2
    assert runinfo.read_json(tmp_path / "run.json")["status"] == "finished"
    assert runinfo.read_json(tmp_path / "summary.json") == summary
    assert summary["before"]["accuracy"] == evals[0]["accuracy"]
    assert summary["after"]["accuracy"] == evals[-1]["accuracy"]

    if variant.startswith("majority_vote"):
        assert all(0 <= m["pseudo_label_accuracy"] <= 1 for m in metrics)
    if variant == "entropy_min_source":  # One-shot EM: no reward, the entropy term is the loss
        assert all(m["reward_mean"] is None for m in metrics)
        assert params["trl"]["entropy_coef"] == -1.0
    if variant == "incorrect_source":
        labels = runinfo.read_json(tmp_path / "wrong_labels.json")
        assert 0 < labels["kept"] < labels["problems"]  # trained only where the base model's majority is wrong


# -- the engine's pieces inside a real run -------------------------------------------------------------------------
class _Recorder:
    """Copies what the engine did at each optimizer step (a TrainerCallback)."""

    def __init__(self, trainer):
        from transformers import TrainerCallback

        self.trainer, self.steps = trainer, []
        recorder = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                t = recorder.trainer
                recorder.steps.append({"trl": t.trl_advantages.clone(), "ours": t.last_advantages.clone(),
                                       "rewards": t._final_rewards.copy(), "no_signal": t._no_signal,
                                       "rollout": dict(t.rollout_metrics)})

        self.callback = Callback()


def _built(loaded, out, **overrides):
    import time

    from mtalign import train

    run = train.resolve(model=loaded, preset="smoke", out=out, **overrides)
    out.mkdir(parents=True, exist_ok=True)
    trainer, _, _ = train.build(run, loaded, started=time.time(), log=lambda _: None)
    recorder = _Recorder(trainer)
    trainer.add_callback(recorder.callback)
    return trainer, recorder


@pytest.mark.slow
def test_grpo_advantages_equal_trls_and_dynamic_sampling_keeps_only_groups_with_signal(taught, tmp_path):
    trainer, recorder = _built(copy.deepcopy(taught), tmp_path / "gt", variant="ground_truth", steps=3)
    trainer.train()
    group = trainer.spec.group_size
    for step in recorder.steps:
        # our grpo estimator replaces TRL's and must be the same numbers (scale_rewards="group", eps 1e-4)
        assert np.allclose(step["trl"].numpy(), step["ours"].numpy(), atol=1e-6)
        if not step["no_signal"]:  # after dynamic sampling every group of the training batch has reward variance
            # (for GRPO, "no gradient" and "all rewards equal" are the same)
            grouped = step["rewards"].reshape(-1, group)
            assert (grouped.max(axis=1) > grouped.min(axis=1)).all()
    drawn = [s["rollout"] for s in recorder.steps[::2]]  # one rollout step = 2 optimizer steps
    for rollout in drawn:
        assert rollout["ds_generation_batches"] == (2 if rollout["ds_groups_dropped"] else 1) or \
            rollout["ds_groups_drawn"] - rollout["ds_groups_dropped"] >= 4
    assert any(r["ds_groups_dropped"] for r in drawn), "the taught model should give some all-equal groups"

    trainer, recorder = _built(copy.deepcopy(taught), tmp_path / "nsr", variant="nsr",
                               settings={"dynamic_sampling": False})
    trainer.train()
    for step in recorder.steps:
        rewards, ours = step["rewards"], step["ours"].numpy()
        assert step["rollout"]["ds_generation_batches"] == 1 and step["rollout"]["ds_groups_dropped"] == 0
        assert np.all(ours[rewards == 1] == 0)  # nsr (paper): no signal from rewarded samples
        assert not np.allclose(step["trl"].numpy(), ours) or np.all(rewards == rewards[0])


def test_dynamic_sampling_selection_table():
    from mtalign.trainer import select_groups

    z = lambda *flags: np.array(flags, dtype=bool)  # True = zero variance (dropped)
    cases = [
        # enough groups with signal in the first batch: keep them in order, truncate
        ([z(False, True, False, False)], 2, [(0, 0), (0, 2)]),
        # kept groups of both batches in draw order
        ([z(True, False, True), z(False, True, True)], 2, [(0, 1), (1, 0)]),
        # too few kept after every batch: repeat kept groups in order until the batch is full
        ([z(True, False, True), z(False, True, True)], 3, [(0, 1), (1, 0), (0, 1)]),
        ([z(False, True, True)], 4, [(0, 0)] * 4),
        # nothing kept: no selection (the engine then trains on zero advantages and logs ds_no_signal)
        ([z(True, True), z(True, True)], 2, []),
    ]
    for batches, needed, expected in cases:
        assert select_groups(batches, needed) == expected


def test_dynamic_sampling_drops_groups_without_gradient_under_each_estimator():
    from mtalign.trainer import no_signal_groups

    rewards = np.array([0, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1], dtype=float)  # all wrong | mixed | all right
    cases = [
        # (advantage, semantics, kwargs, groups dropped); for GRPO this is DAPO's "all rewards equal"
        ("grpo", "paper", {}, [True, False, True]),
        ("psr", "paper", {}, [True, False, True]),
        ("nsr", "paper", {}, [True, False, True]),
        # Zhu et al.'s estimators: an all-wrong group is pushed down (NSR, W-REINFORCE), an all-right one up (PSR)
        ("nsr", "source", {}, [False, False, True]),
        ("psr", "source", {}, [True, False, False]),
        ("w_reinforce", "paper", {"lam": 0.1}, [False, False, False]),
        ("w_reinforce", "paper", {"lam": 0.0}, [False, False, True]),
    ]
    for advantage, semantics, kwargs, expected in cases:
        spec = _spec(group_size=4, reward="ground_truth", advantage=advantage, semantics=semantics,
                     advantage_kwargs=kwargs)
        assert no_signal_groups(spec, rewards).tolist() == expected, (advantage, semantics, kwargs)
    assert no_signal_groups(_spec(group_size=4, entropy_loss=True), rewards).tolist() == [True] * 3


def _spec(group_size=8, **kwargs):
    from mtalign.tasks import Problem, get_task
    from mtalign.trainer import EngineSpec

    problems = {f"p{i}": Problem(f"p{i}", f"q{i}", str(i)) for i in range(3)}
    defaults = dict(task=get_task("chain_sum"), problems=problems, reward="majority_vote", reward_kwargs={},
                    semantics="paper", advantage="grpo", advantage_kwargs={}, group_size=group_size,
                    prompts_per_step=3, updates_per_step=1)
    return EngineSpec(**{**defaults, **kwargs})


def _answer(value):
    return f"<think>x</think><answer>{value}</answer>"


def test_group_rewards_are_computed_on_the_gathered_batch_when_a_group_straddles_ranks():
    """Fake 2-rank split: 3 groups of 8 over 2 ranks of 12 rows, so group 1 has 4 rows on each rank."""
    from mtalign.trainer import Row, gather_rows, local_slice, score_rows

    answers = ["0"] * 8 + ["5", "5", "5", "1"] + ["1", "1", "1", "1"] + ["2"] * 8
    rows = [Row(_answer(a), f"p{i // 8}", 5, {}) for i, a in enumerate(answers)]
    ranks = [rows[:12], rows[12:]]
    fake_gather = lambda local: ranks[0] + ranks[1]  # what all_gather_object returns on every rank
    spec = _spec()
    whole = score_rows(spec, rows, step=0, draw=0)
    # group 1's majority over its 8 votes is "1" (5 votes to 3): the rows answering 1 get the reward
    assert whole.rewards[8:16].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    for rank, local in enumerate(ranks):
        scored = score_rows(spec, gather_rows(local, fake_gather), step=0, draw=0)
        assert scored.rewards.tolist() == whole.rewards.tolist()  # every rank computes the same global rewards
        assert local_slice(scored.rewards, rank, 12) == whole.rewards[rank * 12:(rank + 1) * 12].tolist()
    # voting on rank 0's rows alone would have elected "5" for group 1: the gather is what makes it right
    with pytest.raises(ValueError, match="does not divide into groups"):
        score_rows(spec, ranks[0], step=0, draw=0)
    naive = score_rows(_spec(group_size=4), ranks[0][8:12], step=0, draw=0)
    assert naive.rewards.tolist() == [1, 1, 1, 0]

    # TTRL (source): a group's extra voters may come from rows on both ranks and all of them vote
    votes = {8: ["5"] * 2, 12: ["5"] * 4}  # rank 0's row 8 and rank 1's row 12 carry extra votes for "5"
    ttrl = [Row(r.text, r.problem_id, 5, {}, [_answer(v) for v in votes.get(i, [])]) for i, r in enumerate(rows)]
    ranks = [ttrl[:12], ttrl[12:]]
    scored = score_rows(_spec(semantics="source"), gather_rows(ranks[1], lambda local: ranks[0] + ranks[1]), 0, 0)
    assert scored.rewards[8:16].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # "5": 3 + 6 votes against 5 for "1"


def test_strict_paper_regex_option_reaches_the_training_reward():
    from mtalign import train
    from mtalign.trainer import Row, score_rows

    completions = ["<think>7+5\n=12</think><answer>0</answer>", "<think>7+5=12</think><answer>0</answer>"]
    rows = [Row(c, "p0", 5, {}) for c in completions]
    lenient = score_rows(_spec(group_size=2, reward="format_only"), rows, 0, 0)
    strict = score_rows(_spec(group_size=2, reward="format_only", strict_paper_regex=True), rows, 0, 0)
    assert lenient.rewards.tolist() == [1, 1] and strict.rewards.tolist() == [0, 1]  # the newline fails the old regex
    run = train.resolve(model=MICRO, preset="smoke", strict_paper_regex=True)
    assert run.strict_paper_regex and run.record()["strict_paper_regex"] is True


def test_wrong_labels_are_majority_answers_kept_only_where_wrong():
    from mtalign.tasks import Problem, get_task
    from mtalign.data import wrong_labels_from_samples

    task = get_task("chain_sum")
    problems = [Problem(f"p{i}", "", "12") for i in range(4)]
    samples = [
        [_answer("13"), _answer("13"), _answer("12")],  # majority wrong: its label
        [_answer("12"), _answer("12"), _answer("13")],  # majority right: no label (the problem is dropped)
        [_answer("14"), _answer("15"), "no answer", "junk"],  # tie: the first seen wins; junk does not vote
        ["nothing parseable", _answer("x")],  # no vote at all: no label
    ]
    assert wrong_labels_from_samples(task, problems, samples) == {"p0": "13", "p2": "14"}


def test_one_shot_selection_reads_historical_variance(tmp_path):
    from mtalign import runinfo, train
    from mtalign.tasks import Problem

    log = tmp_path / "example_accuracy.jsonl"
    for epoch, accuracies in enumerate([{"a": 0.0, "b": 0.5, "c": 1.0}, {"a": 1.0, "b": 0.5, "c": 0.75}]):
        for pid, acc in accuracies.items():
            runinfo.append_jsonl(log, {"epoch": epoch, "problem_id": pid, "accuracy": acc, "complete": True})
    runinfo.append_jsonl(log, {"epoch": 2, "problem_id": "b", "accuracy": 1.0, "complete": False})  # ignored
    assert data.historical_variance(log) == {"a": 0.25, "b": 0.0, "c": 0.015625}
    pool = [Problem(pid, "", "1") for pid in "abc"]
    variants = train.load_variants()
    assert [p.id for p in train.select_examples(pool, variants["one_shot"], log, seed=0)] == ["a"]
    random_pick = train.select_examples(pool, variants["one_shot_random"], None, seed=3)
    assert len(random_pick) == 1 and random_pick == train.select_examples(pool, variants["one_shot_random"], None, 3)
    short = tmp_path / "one_epoch.jsonl"
    runinfo.append_jsonl(short, {"epoch": 0, "problem_id": "a", "accuracy": 0.5, "complete": True})
    with pytest.raises(ValueError, match="two complete epochs"):
        data.historical_variance(short)


@pytest.mark.slow
def test_two_cpu_processes_train_with_a_group_straddling_ranks(tmp_path):
    """A real 2-process run (torchrun, gloo): 3 prompts x 4 completions put 6 rows on each rank, so group 1 is split.

    Scoring 6 rows alone would fail (they do not make whole groups of 4): the run finishing, with 3 groups counted
    per generation batch, shows that rewards were computed on the gathered batch. Only rank 0 writes the files.
    """
    import socket
    import subprocess
    import sys

    from mtalign import runinfo

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    params = tmp_path / "run.yaml"
    params.write_text("settings: {prompts_per_step: 3, updates_per_step: 1}\n")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "mtalign", "train", "--model", MICRO, "--preset", "smoke", "--variant", "majority_vote",
               "--params", str(params), "--out", str(out), "--initial-eval-cache", str(tmp_path / "cache")]
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    trl = runinfo.read_json(out / "params.json")["trl"]
    assert trl["per_device_train_batch_size"] == 6 and trl["generation_batch_size"] == 12
    metrics = runinfo.read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]  # written once, by rank 0
    assert all(m["ds_groups_drawn"] == 3 * m["ds_generation_batches"] for m in metrics)
    assert [e["step"] for e in runinfo.read_jsonl(out / "eval.jsonl")] == [0, 1, 2]
    assert runinfo.read_json(out / "run.json")["status"] == "finished"
    assert result.stdout.count("held-out accuracy 0.") == 3 + 1  # one process speaks: 3 evaluations, 1 summary
    # both ranks agreed on computing the step-0 evaluation (it gathers) and rank 0 saved it, keyed by 2 processes
    [entry] = (tmp_path / "cache").glob("*.json")
    assert runinfo.read_json(entry)["key"]["processes"] == 2


# -- hub tasks, several evaluation tasks ---------------------------------------------------------------------------
@pytest.fixture
def hub_offline(tmp_path, monkeypatch):
    """Hub tasks read only the fixtures: datasets' cache in tmp_path (it is read at import, so patched), no network."""
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return {"deepscaler": {"data_path": str(HUB / "deepscaler")}, "math500": {"data_path": str(HUB / "math500")},
            "aime24": {"data_path": str(HUB / "aime24")}}


@pytest.mark.filterwarnings("ignore:deepscaler split 'train'")  # the fixture has a row without an answer
@pytest.mark.filterwarnings("ignore:asked for 4 problems")  # the AIME 2024 fixture has 3
def test_hub_tasks_train_and_evaluate_on_their_own_splits(hub_offline):
    from mtalign import train
    from mtalign.tasks import get_task

    run = train.resolve(model=MICRO, preset="smoke", task="deepscaler", eval_tasks=["math500", "aime24"],
                        task_kwargs=hub_offline)
    assert run.eval_task == "math500" and run.eval_tasks == ["math500", "aime24"]
    assert run.record()["task_kwargs"] == hub_offline and run.record()["eval_task"] == "math500"
    task = train.task_for(run.model, run.task, run.task_kwargs["deepscaler"])
    pool = train.training_pool(task, run.settings)  # DeepScaleR's only split is `train`
    assert len(pool) == run.settings.train_problems and all(p.id.startswith("deepscaler-") for p in pool)
    by_task = {name: train.heldout_problems(train.task_for(run.model, name, run.task_kwargs[name]), run.settings)
               for name in run.eval_tasks}
    # MATH-500 evaluates on `test`, AIME 2024 on `train` (its only split); neither has an `eval` split
    assert by_task["math500"] == get_task("math500", **hub_offline["math500"]).problems("test", n=4)
    assert by_task["aime24"] == get_task("aime24", **hub_offline["aime24"]).problems("train", n=4)
    with pytest.raises(ValueError, match="has no split 'eval'"):
        get_task("aime24", **hub_offline["aime24"]).problems("eval")
    # a missing data file fails when the run is resolved, before a model is loaded
    with pytest.raises(FileNotFoundError, match="data_path .*nowhere.* does not exist"):
        train.resolve(model=MICRO, preset="smoke", task="deepscaler", eval_tasks=["math500"],
                      task_kwargs={"deepscaler": {"data_path": "/nowhere"}})
    # the YAML's evaluation tasks give way to the arguments', whichever key either uses
    run = train.resolve({"model": MICRO, "preset": "smoke", "eval_tasks": ["chain_sum", "mini_sudoku"]},
                        eval_task="mini_sudoku")
    assert run.eval_tasks == ["mini_sudoku"]
    assert train.resolve(model=MICRO, preset="smoke", eval_tasks=[]).eval_tasks == ["chain_sum"]  # [] = not given


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:deepscaler split 'train'")
@pytest.mark.filterwarnings("ignore:asked for 4 problems")
def test_a_run_trains_on_a_hub_task_and_evaluates_every_evaluation_task(hub_offline, tmp_path):
    """The micro model reads plain-text prompts here (its accuracy is 0: this checks the files, not learning)."""
    from mtalign import models, runinfo, train

    loaded = dataclasses.replace(models.load(MICRO, log=lambda _: None), style="plain")
    summary = train.train(model=loaded, task="deepscaler", eval_tasks=["math500", "aime24"], preset="smoke",
                          task_kwargs=hub_offline, out=tmp_path, log=lambda _: None)
    evals = runinfo.read_jsonl(tmp_path / "eval.jsonl")
    assert [(e["step"], e["eval_task"], e["problems"]) for e in evals] == [
        (step, name, {"math500": 4, "aime24": 3}[name]) for step in (0, 1, 2) for name in ("math500", "aime24")]
    files = {"initial_passk.json": "math500", "final_passk.json": "math500",
             "initial_passk.aime24.json": "aime24", "final_passk.aime24.json": "aime24"}
    for name, task in files.items():
        record = runinfo.read_json(tmp_path / name)
        assert record["eval_task"] == task and all(pid.startswith(f"{task}-") for pid in record["problem_ids"])
    assert not (tmp_path / "final_passk.math500.json").exists()  # the primary task keeps the single-task names
    assert summary["eval_task"] == "math500" and summary["eval_tasks"] == ["math500", "aime24"]
    assert set(summary["by_eval_task"]) == {"math500", "aime24"}
    primary = summary["by_eval_task"]["math500"]
    assert (summary["before"], summary["after"], summary["gain"]) == (primary["before"], primary["after"],
                                                                      primary["gain"])
    aime = summary["by_eval_task"]["aime24"]
    assert aime["after"]["accuracy"] == evals[-1]["accuracy"] and aime["passk_after"] == \
        runinfo.read_json(tmp_path / "final_passk.aime24.json")["summary"]
    assert runinfo.read_json(tmp_path / "params.json")["eval_tasks"] == ["math500", "aime24"]


# -- the cached step-0 evaluation ------------------------------------------------------------------------------------
def test_initial_eval_key_is_shared_by_variants_and_changes_with_what_the_evaluation_depends_on(tmp_path):
    from mtalign import train
    from mtalign.tasks import Problem

    problems, rendered = [Problem("p0", "1+2=", "3")], ["^1+2="]
    where = dict(model_identity={"toy_model": "micro-s0-abc"}, device="cpu", processes=1, dtype="torch.float32",
                 stop_ids=[1, 5])

    def key(run_kwargs=(), task="chain_sum", **changes):
        run = train.resolve(model=MICRO, preset="smoke", **dict(run_kwargs))
        task = train.task_for(MICRO, task, run.task_kwargs.get(task))
        args = {"problems": problems, "rendered": rendered, **where, **changes}
        return evaluate.initial_eval_key(run, task, **args)

    base = key()
    # the variant and the training settings are exactly what may differ between runs sharing the evaluation
    for same in ({"variant": "nsr"}, {"variant": "majority_vote_source"}, {"steps": 7},
                 {"settings": {"learning_rate": 1.0e-3, "eval_every": 2, "eval_samples": 1}}):
        assert key(same) == base, same
    different = [key({"seed": 1}), key({"settings": {"passk_samples": 8}}), key({"settings": {"temperature": 0.7}}),
                 key({"settings": {"top_p": 0.9}}), key({"settings": {"max_completion_length": 40}}),
                 key({"settings": {"sampling_batch_size": 7}}), key({"settings": {"eval_problems": 3}}),
                 key({"task_kwargs": {"chain_sum": {"eval_percent": 20}}}),
                 key({"eval_tasks": ["mini_sudoku"]}, task="mini_sudoku"),
                 key(model_identity={"toy_model": "micro-s0-abd"}), key(device="cuda:0"), key(processes=2),
                 key(dtype="torch.bfloat16"), key(stop_ids=[1]), key(rendered=["^1+2=?"]),
                 key(problems=[Problem("p0", "1+2=", "4")])]
    for i, other in enumerate(different):
        assert other != base, i
    assert len({evaluate.initial_eval_path(tmp_path, k) for k in [base, *different]}) == len(different) + 1

    result = {"accuracy": 0.25, "format_rate": 0.5, "samples": 4, "problems": 1, "correct": [1],
              "problem_ids": ["p0"], "seconds": 1.5}
    path = evaluate.write_initial_eval(tmp_path, base, result, run="r")
    assert evaluate.read_initial_eval(tmp_path, base) == result
    assert evaluate.read_initial_eval(tmp_path, different[0]) is None
    path.write_text(path.read_text().replace('"seed": 0', '"seed": 9'))  # an entry for another key at this name
    assert evaluate.read_initial_eval(tmp_path, base) is None
    path.write_text("{half")  # unreadable: computed again, not an error
    assert evaluate.read_initial_eval(tmp_path, base) is None


def _without_times(records):
    return [{k: v for k, v in r.items() if k not in ("wall_time", "generation_seconds", "seconds", "cached")}
            for r in records]


@pytest.mark.slow
def test_cached_initial_evaluation_gives_the_same_numbers_and_the_same_training(taught, tmp_path):
    from mtalign import runinfo, train

    cache = tmp_path / "cache"
    runs = {}
    for name in ("computed", "cached"):
        runs[name] = tmp_path / name
        train.train(model=copy.deepcopy(taught), variant="ground_truth", preset="smoke", steps=3,
                    eval_tasks=["chain_sum", "mini_sudoku"], initial_eval_cache=cache, out=runs[name],
                    settings={"eval_problems": 16},  # enough held-out problems that some completions are formatted
                    log=lambda _: None)
        if name == "computed":
            entries = sorted(p.name for p in cache.iterdir())
            assert len(entries) == 2 and entries[0].startswith(f"{MICRO}__chain_sum__")
    assert sorted(p.name for p in cache.iterdir()) == entries  # the second run wrote nothing new

    computed, cached = (runinfo.read_jsonl(runs[n] / "eval.jsonl") for n in ("computed", "cached"))
    assert [e.get("cached", False) for e in computed if e["step"] == 0] == [False, False]
    assert [e.get("cached", False) for e in cached] == [True, True] + [False] * (len(cached) - 2)
    for name in ("initial_passk.json", "initial_passk.mini_sudoku.json", "final_passk.json",
                 "final_passk.mini_sudoku.json"):
        assert (runs["computed"] / name).read_text() == (runs["cached"] / name).read_text(), name
    assert runinfo.read_json(runs["computed"] / "initial_passk.json")["format_rate"] > 0  # not vacuous
    # skipping the evaluation did not move training: every rollout and update is the same
    metrics = {n: runinfo.read_jsonl(runs[n] / "metrics.jsonl") for n in runs}
    assert any(m["grad_norm"] > 0 for m in metrics["computed"])
    assert _without_times(metrics["computed"]) == _without_times(metrics["cached"])
    assert _without_times(computed) == _without_times(cached)
    summaries = {n: runinfo.read_json(runs[n] / "summary.json") for n in runs}
    for key in ("before", "after", "gain", "passk_before", "passk_after", "by_eval_task"):
        assert summaries["computed"][key] == summaries["cached"][key], key


@pytest.mark.slow
def test_the_run_store_shares_the_initial_evaluation_across_variants(tmp_path):
    from mtalign import runinfo, runs

    store = tmp_path / "runs"
    for variant in ("ground_truth", "format_only"):
        summary = runs.ensure_run(store, MICRO, None, variant, 0, preset="smoke", log=lambda _: None)
        first = runinfo.read_jsonl(Path(summary["dir"]) / "eval.jsonl")[0]
        assert first["step"] == 0 and first.get("cached", False) == (variant == "format_only")
    assert len(list((store / ".initial_eval").glob("*.json"))) == 1
    assert [s["variant"] for s in runs.load_summaries(store)] == ["format_only", "ground_truth"]


# -- run identity, and one_shot's ranking step -----------------------------------------------------------------------
# like the paper preset (2 updates per step; the full-data run sees under one epoch; the ranking pool is whole batches
# plus a remainder TRL's sampler drops, as 1,209 = 9 x 128 + 57): 9 = 2 x 4 + 1
SHORT_OF_EPOCHS = {"train_problems": 12, "ranking_problems": 9, "ranking_epochs": 2}


@pytest.fixture(scope="module")
def paper_shaped_store(tmp_path_factory):
    """The paper preset's batch arithmetic at micro scale: the full-data run (2 steps of 4 prompts over a 12-problem
    pool) never completes an epoch, as the paper's 300 steps of 128 never complete one over DeepScaleR's 40,315, so
    one_shot must rank on its own ranking run (9 problems, 2 epochs of 2 steps)."""
    from mtalign import claims

    store = tmp_path_factory.mktemp("store")
    summaries = claims.run_claim(MICRO, 0, ["one_shot"], store, preset="smoke", settings=SHORT_OF_EPOCHS,
                                 log=lambda _: None)
    return store, summaries


def test_paper_preset_ranks_one_shot_on_a_run_of_its_own():
    from mtalign import train

    paper = train.Settings.from_dict(config.load_preset("paper"), "paper")
    assert paper.steps * paper.prompts_per_step < 40_315  # the full-data run: under one epoch of DeepScaleR
    ranking = data.ranking_overrides(paper)
    per_epoch = paper.ranking_problems // paper.prompts_per_step
    assert ranking == {"train_problems": 1209, "steps": paper.ranking_epochs * per_epoch}
    assert paper.ranking_epochs >= 2 and per_epoch == 9
    toy = train.Settings.from_dict(config.load_preset("toy"), "toy")
    assert data.ranking_overrides(toy) == {}  # the toy run itself makes 5 epochs of its 96 problems


@pytest.mark.slow
def test_one_shot_runs_on_the_paper_presets_batch_arithmetic(paper_shaped_store):
    from mtalign import runinfo, train

    store, summaries = paper_shaped_store
    baseline, one_shot = summaries
    assert (baseline["variant"], one_shot["variant"]) == ("ground_truth", "one_shot")
    with pytest.raises(ValueError, match="two complete epochs"):  # the old way, the full-data run's history, fails
        data.historical_variance(Path(baseline["dir"]) / "example_accuracy.jsonl")
    ranking_dir = store / "smoke-ranking" / config.run_name(MICRO, "chain_sum", "ground_truth", 0)
    ranking = runinfo.read_json(ranking_dir / "summary.json")
    assert ranking["role"] == "ranking" and ranking["steps"] == 4
    assert ranking["identity"]["settings"]["train_problems"] == 9
    params = runinfo.read_json(Path(one_shot["dir"]) / "params.json")
    assert Path(params["accuracy_log"]) == ranking_dir / "example_accuracy.jsonl"
    assert params["identity"]["ranking_log"]  # the ranking history is part of the one_shot run's identity
    scores = data.historical_variance(ranking_dir / "example_accuracy.jsonl")
    assert 1 <= len(scores) <= 9 and one_shot["steps"] == 2 and one_shot["role"] == "study"
    assert one_shot["settings_hash"] == baseline["settings_hash"]  # judged against this ground truth
    rows = runinfo.read_jsonl(Path(one_shot["dir"]) / "example_accuracy.jsonl")
    trained = {r["problem_id"] for r in rows}
    best = max(scores.values())
    assert len(trained) == 1 and scores[trained.pop()] == best  # the top historical-variance example


@pytest.mark.slow
def test_a_changed_per_task_argument_or_evaluation_task_never_reuses_a_run(paper_shaped_store, monkeypatch):
    from mtalign import claims, runs, train

    store, summaries = paper_shaped_store
    trained = []

    def fake_train(**kwargs):
        trained.append(kwargs)
        raise RuntimeError("trained")

    monkeypatch.setattr(train, "train", fake_train)
    again = claims.run_claim(MICRO, 0, ["one_shot"], store, preset="smoke", settings=SHORT_OF_EPOCHS,
                             log=lambda _: None)
    assert not trained and [s["identity_hash"] for s in again] == [s["identity_hash"] for s in summaries]
    changes = [{"task_kwargs": {"chain_sum": {"min_terms": 2}}}, {"eval_tasks": ["chain_sum", "mini_sudoku"]},
               {"settings": {**SHORT_OF_EPOCHS, "learning_rate": 2e-4}}, {"strict_paper_regex": True}]
    logged = []
    for change in changes:
        kwargs = {"preset": "smoke", "settings": SHORT_OF_EPOCHS, **change}
        with pytest.raises(RuntimeError, match="trained"):
            runs.ensure_run(store, MICRO, None, "ground_truth", 0, log=logged.append, **kwargs)
    assert len(trained) == len(changes)
    assert "task_kwargs" in logged[0] and "eval_tasks" in logged[1] and "settings.learning_rate" in logged[2]


def test_run_identity_names_what_differs():
    from mtalign import train

    def planned(**kwargs):
        return identity.planned_identity(**{"model": MICRO, "variant": "nsr", "seed": 0, "preset": "smoke", **kwargs})

    base = planned()
    assert planned()["identity_hash"] == base["identity_hash"]
    source = planned(semantics="source")
    assert source["identity_hash"] != base["identity_hash"] and source["variant_hash"] != base["variant_hash"]
    assert source["settings_hash"] == base["settings_hash"]  # same settings: the same ground truth to compare with
    assert identity.identity_differences(base["identity"], source["identity"]) == ["variant.semantics: 'paper' -> 'source'"]
    longer = planned(steps=3)
    assert longer["settings_hash"] != base["settings_hash"]
    assert identity.identity_differences(base["identity"], longer["identity"]) == ["settings.steps: 2 -> 3"]
    assert planned(seed=1)["settings_hash"] == base["settings_hash"] != planned(seed=1)["identity_hash"]


def test_dynamic_sampling_extra_prompts_are_the_next_of_a_pass_without_repeats_in_a_step():
    import types

    from datasets import Dataset

    from mtalign.trainer import StudyGRPOTrainer

    def fake(ids, group=2):
        return types.SimpleNamespace(
            train_dataset=Dataset.from_list([{"prompt": f"q{i}", "problem_id": i} for i in ids]),
            spec=types.SimpleNamespace(seed=0, group_size=group),
            accelerator=types.SimpleNamespace(num_processes=1, process_index=0),
            _extra_order=[], _extra_cursor=0, _extra_pass=0)

    trainer = fake([f"p{i}" for i in range(6)])
    first = StudyGRPOTrainer._draw_rows(trainer, 4, {"p0", "p1"})  # 2 prompts x group 2; p0, p1 are in this step
    prompts = [r["problem_id"] for r in first[::2]]
    assert [r["problem_id"] for r in first] == [p for p in prompts for _ in range(2)]
    assert len(set(prompts)) == 2 and not set(prompts) & {"p0", "p1"}
    # without exclusions, successive draws walk a whole pass before any prompt comes again
    trainer = fake([f"p{i}" for i in range(6)])
    drawn = [r["problem_id"] for _ in range(3) for r in StudyGRPOTrainer._draw_rows(trainer, 4, set())[::2]]
    assert sorted(drawn) == [f"p{i}" for i in range(6)]
    # one_shot: a single example, replicated; the draw repeats it rather than looping forever
    one = StudyGRPOTrainer._draw_rows(fake(["a"] * 4), 4, {"a"})
    assert [r["problem_id"] for r in one] == ["a"] * 4


# -- interruption --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ctrl_c_leaves_metrics_readable_and_the_run_marked_interrupted(taught, tmp_path):
    from transformers import TrainerCallback

    from mtalign import runinfo, train

    class CtrlC(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.global_step == 2 * 2:  # after rollout step 2 of 3 was logged (2 optimizer steps each)
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.train(model=copy.deepcopy(taught), variant="ground_truth", preset="smoke", steps=3, out=tmp_path,
                    callbacks=[CtrlC()], log=lambda _: None)
    assert [m["step"] for m in runinfo.read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    assert runinfo.read_json(tmp_path / "run.json")["status"] == "interrupted"
    assert not (tmp_path / "summary.json").exists()
    assert runinfo.read_jsonl(tmp_path / "example_accuracy.jsonl")  # the unfinished epoch is kept, marked incomplete
    # a rerun into the same folder starts over; a finished run is protected
    train.train(model=copy.deepcopy(taught), variant="ground_truth", preset="smoke", out=tmp_path, log=lambda _: None)
    assert [m["step"] for m in runinfo.read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
    with pytest.raises(ValueError, match="already holds a finished run"):
        train.train(model=MICRO, variant="ground_truth", preset="smoke", out=tmp_path, log=lambda _: None)


# -- bad input fails before training --------------------------------------------------------------------------------
def _variants_file(tmp_path, body):
    path = tmp_path / "variants.yaml"
    path.write_text(body)
    return path


BAD = [
    # (what is wrong, train() arguments, the message must name it and the valid choices)
    ("unknown variant", dict(variant="lucky"), r"unknown variant 'lucky'; valid variants: ground_truth, format_only"),
    ("unknown semantics", dict(variant="nsr", semantics="both"),
     r"unknown semantics 'both'; valid semantics: paper, source"),
    ("unknown reward", dict(variant="v", variants_file="reward: coin"),
     r"unknown reward 'coin'; valid rewards: ground_truth"),
    ("unknown advantage", dict(variant="v", variants_file="advantage: ppo"),
     r"unknown advantage 'ppo'; valid advantages: grpo"),
    ("unknown reward option", dict(variant="v", variants_file="reward: random\n  reward_kwargs: {q: 1}"),
     r"reward 'random' takes no option 'q'; valid options: p, format_gate"),
    ("variant sets a frozen setting", dict(variant="v", variants_file="learning_rate: 1.0e-3"),
     r"settings are frozen per preset"),
    ("unknown data kind", dict(variant="v", variants_file="data: {kind: two_shot}"),
     r"unknown data kind 'two_shot'; valid kinds: full, one_shot, few_shot"),
    ("batch not in whole groups", dict(settings={"prompts_per_step": 3}),
     r"3 prompts per step do not divide into 2 mini-batches of whole groups.*valid updates_per_step: 1, 3"),
    ("micro-batch not dividing", dict(settings={"micro_batch": 3}),
     r"micro_batch 3 does not divide.*valid micro_batch values: 1, 2, 4, 8"),
    ("group of one", dict(settings={"group_size": 1}), r"group_size must be at least 2"),
    ("ranking pool smaller than a batch", dict(settings={"ranking_problems": 2}),
     r"ranking_problems \(2\) must be at least prompts_per_step \(4\)"),
    ("ranking pool beyond the training pool", dict(settings={"ranking_problems": 8}),
     r"ranking_problems \(8\) must be at most train_problems \(4\)"),
    ("ranking on one epoch", dict(settings={"ranking_epochs": 1}), r"ranking_epochs must be at least 2"),
    ("one_shot without log", dict(variant="one_shot"), r"needs an accuracy log.*or use a random selection"),
    ("TTRL votes not whole rounds",
     dict(variant="v", variants_file="reward: majority_vote\n  semantics: source\n  n_votes: 6"),
     r"n_votes \(6\) must be a multiple of group_size \(4\)"),
    ("unknown model", dict(model="tiny-llama"), r"unknown model 'tiny-llama'; valid short names: toy-chain_sum-strong"),
    ("unknown task", dict(task="sudoku9"), r"unknown task 'sudoku9'; valid tasks: chain_sum, mini_sudoku"),
    ("unknown preset", dict(preset="huge"), r"unknown preset 'huge'; valid presets: paper, rehearsal, smoke, toy"),
    ("unknown setting", dict(settings={"lr": 1.0}), r"unknown setting\(s\) lr; valid settings: prompts_per_step"),
    ("float written as a string", dict(settings={"learning_rate": "2e-5"}), r"learning_rate must be a number"),
    ("training on an evaluation-only task", dict(task="math500"),
     r"task 'math500' has no training split.*tasks with a training split: chain_sum, mini_sudoku, deepscaler, "
     r"synlogic$"),
    ("evaluating on a task without an evaluation split", dict(eval_tasks=["chain_sum", "deepscaler"]),
     r"task 'deepscaler' has no evaluation split.*tasks with an evaluation split: chain_sum, mini_sudoku, aime24"),
    ("eval_task and eval_tasks both given", dict(eval_task="chain_sum", eval_tasks=["mini_sudoku"]),
     r"both eval_task \('chain_sum'\) and eval_tasks \(\['mini_sudoku'\]\) are given"),
    ("unknown evaluation task", dict(eval_tasks=["chain_sum", "aime26"]),
     r"unknown task 'aime26'; valid tasks: chain_sum"),
    ("evaluation task twice", dict(eval_tasks=["chain_sum", "chain_sum"]),
     r"eval_tasks lists chain_sum more than once"),
    ("task_kwargs of a task the run does not use", dict(task_kwargs={"math500": {"data_path": "x"}}),
     r"task_kwargs names task\(s\) math500 that this run does not use; its tasks: chain_sum$"),
    ("task_kwargs not per task", dict(task_kwargs={"data_path": "x"}), r"task_kwargs must map task names"),
    ("argument a task does not take", dict(eval_tasks=["math500"], task_kwargs={"math500": {"path": "x"}}),
     r"task 'math500' cannot be built with \{'path': 'x'\}.*; its arguments: grader, data_path"),
    ("unknown grader for a hub task", dict(eval_tasks=["math500"], task_kwargs={"math500": {"grader": "fuzzy"}}),
     r"unknown math grader 'fuzzy'; valid graders: math_verify, exact"),
]


@pytest.mark.parametrize("what, kwargs, message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_before_training_with_the_valid_choices(what, kwargs, message, tmp_path):
    from mtalign import train

    kwargs = dict(kwargs)
    if "variants_file" in kwargs:
        kwargs["variants_file"] = _variants_file(tmp_path, "v:\n  " + kwargs["variants_file"] + "\n")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train.train(**{"model": MICRO, "preset": "smoke", "out": out, "log": lambda _: None, **kwargs})
    assert not out.exists()  # nothing was loaded, built or written


def test_batch_arithmetic_of_the_presets():
    from mtalign import train

    paper = train.Settings.from_dict(config.load_preset("paper"), "paper")
    # 128 prompts x 16 = 2048 completions a step; 2 updates of 1024; 8 GPUs x 4 per micro-batch -> 32 accumulations
    assert paper.batch_shape(8) == {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 32,
                                    "steps_per_generation": 64}
    toy = train.Settings.from_dict(config.load_preset("toy"), "toy")
    # 16 prompts x 8 = 128 completions a step; 2 updates of 64 (the paper's two mini-batches), one micro-batch each
    assert toy.batch_shape(1) == {"per_device_train_batch_size": 64, "gradient_accumulation_steps": 1,
                                  "steps_per_generation": 2}
    with pytest.raises(ValueError, match="does not divide over 3 processes"):
        toy.batch_shape(3)


# -- command line ---------------------------------------------------------------------------------------------------
def test_cli_lists_variants_and_rejects_bad_ones(capsys):
    from mtalign import cli

    assert cli.main(["train", "--list-variants"]) == 0
    out = capsys.readouterr().out
    for name in _variants():
        assert f"\n{name} " in f"\n{out}"
    assert cli.main(["train", "--model", MICRO, "--variant", "lucky"]) == 2
    assert "valid variants: ground_truth" in capsys.readouterr().err
    assert cli.main(["train", "--model", MICRO, "--eval-task", "chain_sum", "--eval-tasks", "mini_sudoku"]) == 2
    assert "both eval_task ('chain_sum') and eval_tasks (['mini_sudoku'])" in capsys.readouterr().err
    assert cli.main(["train", "--model", MICRO, "--data-path", "math500"]) == 2
    assert "--data-path 'math500': write TASK=PATH" in capsys.readouterr().err
    assert cli.main(["train", "--model", MICRO, "--data-path", "math500=/x"]) == 2
    assert "task_kwargs names task(s) math500 that this run does not use" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_trains_from_a_params_file_with_flags_overriding_it(tmp_path, capsys):
    from mtalign import cli, paths, runinfo

    params = tmp_path / "run.yaml"
    params.write_text(f"model: {MICRO}\npreset: smoke\nvariant: nsr_source\nsteps: 3\nseed: 1\n")
    assert cli.main(["train", "--params", str(params), "--steps", "1", "--seed", "2"]) == 0
    # cleanrl-style name from the parameters, in the run store's layout: a step override is its own settings folder
    run = paths.outputs() / "runs" / "smoke-1steps" / f"{MICRO}__chain_sum__nsr_source__s2"
    resolved = runinfo.read_json(run / "params.json")
    assert resolved["settings"]["steps"] == 1 and resolved["seed"] == 2 and resolved["variant"]["semantics"] == "source"
    assert resolved["overrides"] == {"steps": 1}
    assert len(runinfo.read_jsonl(run / "metrics.jsonl")) == 1
    assert "step 1/1: reward" in capsys.readouterr().out


@pytest.mark.slow
def test_train_step_benchmark_prints_both_methods_side_by_side(capsys):
    """No timing assertion (a shared CI box is noisy): the figures come out, parse, and both trainers did the same
    work (same seed, same settings, same advantages: the same completions, token for token)."""
    import argparse
    import re

    from mtalign import bench_train

    parser = argparse.ArgumentParser()
    bench_train.add_arguments(parser)
    figures = bench_train.run(parser.parse_args(["--model", MICRO, "--preset", "smoke", "--steps", "3", "--trials", "1",
                                                 "--no-dynamic-sampling-line"]))
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^(trl|engine)\s+([\d.]+)\s", out, re.MULTILINE))
    assert set(rows) == {"trl", "engine"} and all(float(v) > 0 for v in rows.values())
    assert re.search(r"^overhead: [+-][\d.]+% per step \(target <= 10%: (met|NOT met)\)$", out, re.MULTILINE)
    assert figures["trl"][0]["mean_length"] == figures["engine"][0]["mean_length"]
    assert figures["overhead"] == pytest.approx(figures["engine_s_per_step"] / figures["trl_s_per_step"] - 1)
    # the smoke preset has no bf16: both update in float32, which the header says
    assert figures["engine_precision"] == figures["trl_precision"] == "float32"
    assert out.count("updates in float32") == 2


def test_a_variant_the_model_gives_no_data_is_skipped_by_its_claim_and_says_why(tmp_path):
    """incorrect/source on a model whose majority answer is never parseably wrong (the untrained micro model) cannot
    run; its claim notebook says so and keeps the claim's other runs rather than failing the cell."""
    from mtalign import claims, data, train

    messages = []
    summaries = claims.run_claim(MICRO, 0, ["incorrect_source"], tmp_path / "runs", None, log=messages.append,
                                 preset="smoke")
    assert [s["variant"] for s in summaries] == ["ground_truth"]
    assert any(m.startswith("incorrect_source: not run on micro-chain_sum-strong, seed 0: incorrect/source has no "
                            "problem to train on") for m in messages), messages
    # read back from the study's records, the skip is said again, not mistaken for a missing run
    read = claims.recorded(tmp_path, MICRO, 0, ["incorrect_source"], preset="smoke", log=messages.append)
    assert [s["variant"] for s in read] == ["ground_truth"] and "gave it no data" in messages[-1]
    with pytest.raises(data.NothingToTrain):
        train.train(model=MICRO, variant="incorrect_source", preset="smoke", out=tmp_path / "direct",
                    log=lambda _: None)
