"""Training-step benchmark: seconds per step of the study engine versus a plain TRL GRPOTrainer, side by side.

Both train the same model (a fresh copy per trial) on the same prompts with the same TRL arguments (the preset's,
dynamic sampling off so both generate one batch per step); the plain trainer gets the ground-truth reward as an
ordinary TRL reward function. Trials alternate (engine, plain, engine, plain, ...) so machine load hits both alike.
The overhead target is at most 10%. With dynamic sampling on, the engine draws extra batches: that is more work by
design, reported on its own line, not overhead.

    mtalign bench train_step [--model toy-chain_sum-strong] [--steps 6] [--trials 2]
    python -m mtalign.bench_train ...       # the same, without the `mtalign bench` registry
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mtalign import data

TARGET = 0.10  # engine overhead per step over plain TRL, at most


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="toy-chain_sum-strong",
                        help="model short name or path (default: %(default)s; toy models are built on first use, "
                             "minutes; micro-chain_sum-strong builds in seconds but its steps are too short to time)")
    parser.add_argument("--task", default=None, help="task (default: the toy model's own task)")
    parser.add_argument("--preset", default="toy", help="frozen settings to time (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=6, help="rollout steps per trial; the first is warm-up "
                                                             "(default: %(default)s)")
    parser.add_argument("--trials", type=int, default=2, help="trials per method, alternating (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both trainers (default: %(default)s)")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false",
                        help="turn the preset's bf16 off for both trainers: on a CPU plain TRL computes in float32, so "
                             "this times the engine's own overhead like for like (default: the preset as the study "
                             "runs it)")
    parser.add_argument("--no-dynamic-sampling-line", dest="dynamic_line", action="store_false",
                        help="skip the extra trial with dynamic sampling on")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.steps < 2 or args.trials < 1:
        raise ValueError(f"need --steps >= 2 (the first is warm-up) and --trials >= 1, got {args.steps}, {args.trials}")
    import torch

    from mtalign import models, train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    base = dict(model=args.model, task=args.task, preset=args.preset, seed=args.seed, variant="ground_truth",
                # evaluation is not part of a step: the engine's step-0 evaluation is shrunk and no other runs
                settings={"steps": args.steps, "dynamic_sampling": False, "eval_every": args.steps + 1,
                          "eval_problems": 4, "eval_samples": 1, "passk_samples": 1,
                          **({} if getattr(args, "bf16", True) else {"bf16": False})})
    run_ = train.resolve(**base)  # bad names fail here, before a model is built
    loaded = models.load(run_.model, log=print)
    results: dict[str, list[dict[str, float]]] = {"trl": [], "engine": []}
    with tempfile.TemporaryDirectory(prefix="mtalign-bench-") as tmp:
        for trial in range(args.trials):
            for method in ("engine", "trl"):
                out = Path(tmp) / f"{method}{trial}"
                results[method].append(_trial(method, train.resolve(**base, out=out), loaded))
        ds = None
        if args.dynamic_line:
            ds_run = train.resolve(**{**base, "settings": {**base["settings"], "dynamic_sampling": True}},
                                   out=Path(tmp) / "engine-ds")
            ds = _trial("engine", ds_run, loaded)
    s = run_.settings
    figures = {
        "model": run_.model, "task": run_.task, "preset": run_.preset, "prompts": s.prompts_per_step,
        "group_size": s.group_size, "updates_per_step": s.updates_per_step, "steps": args.steps,
        "threads": torch.get_num_threads(), "device": "cuda" if torch.cuda.is_available() else "cpu",
        "trl": results["trl"], "engine": results["engine"],
        "trl_s_per_step": statistics.median(r["s_per_step"] for r in results["trl"]),
        "engine_s_per_step": statistics.median(r["s_per_step"] for r in results["engine"]),
        "dynamic_sampling": ds, "target": TARGET,
        # what each trainer's update computes in: the engine's blocks in bf16 where the preset asks for it on a CPU
        # (mtalign/precision.py); plain TRL on a CPU always in float32 (its bf16 is a GPU setting here)
        "engine_precision": "bf16 blocks" if s.bf16 and not _cuda() else ("bf16" if s.bf16 else "float32"),
        "trl_precision": "bf16" if s.bf16 and _cuda() else "float32",
    }
    figures["overhead"] = figures["engine_s_per_step"] / figures["trl_s_per_step"] - 1
    _print(figures)
    return figures


def _trial(method: str, run, loaded) -> dict[str, float]:
    """One training run of `run.settings.steps` rollout steps; seconds per step after the first."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from mtalign import train
    from mtalign.sampling import _stop_token_ids
    from mtalign.trainer import trl_reward_function

    model = copy.deepcopy(loaded)
    updates = run.settings.updates_per_step
    stamps: list[float] = []
    lengths: list[float] = []
    batches: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % updates == 0:
                stamps.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                lengths.append(logs["completions/mean_length"])

    run.out.mkdir(parents=True, exist_ok=True)
    if method == "engine":
        trainer, _, _ = train.build(run, model, callbacks=[Clock()], log=lambda _: None)
    else:
        task = train.task_for(run.model, run.task)
        pool = train.training_pool(task, run.settings)
        rows = data.dataset_rows(pool, model, task, run.settings, fill_to=run.settings.prompts_per_step)
        model.model.generation_config.eos_token_id = _stop_token_ids(model.tokenizer)  # as the engine does
        trainer = GRPOTrainer(model=model.model, reward_funcs=trl_reward_function(task, {p.id: p for p in pool}),
                              args=train.grpo_config(run, task, cuda=_cuda()), train_dataset=Dataset.from_list(rows),
                              processing_class=model.tokenizer, callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)  # as the engine does: no raw log dicts on stdout
    started = time.perf_counter()
    trainer.train()
    if method == "engine":
        batches = [m["ds_generation_batches"] for m in _read(run.out / "metrics.jsonl")]
    steps = len(stamps) - 1
    return {"s_per_step": (stamps[-1] - stamps[0]) / steps, "first_step_s": stamps[0] - started,
            "mean_length": sum(lengths) / len(lengths) if lengths else float("nan"),
            "generation_batches": sum(batches) / len(batches) if batches else 1.0}


def _read(path: Path) -> list[dict]:
    from mtalign import runinfo

    return runinfo.read_jsonl(path) if path.exists() else []


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _print(f: dict[str, Any]) -> None:
    print(f"training-step benchmark: {f['model']} on {f['task']}, {f['preset']} preset: {f['prompts']} prompts x "
          f"{f['group_size']}, {f['updates_per_step']} updates/step, {f['steps']} steps per trial (first = warm-up), "
          f"dynamic sampling off, {f['threads']} thread(s), {f['device']}")
    print(f"  trl    = trl.GRPOTrainer with the ground-truth reward as a plain reward function; updates in "
          f"{f['trl_precision']}")
    print("  engine = mtalign.trainer.StudyGRPOTrainer (rewards on the gathered batch, its own advantages, metrics, "
          f"run files, and rollouts from mtalign.decode instead of generate); updates in {f['engine_precision']}")
    print(f"{'method':<7} {'s/step':>7}  {'trials':<22} {'completion tokens':>17}")
    for method in ("trl", "engine"):
        trials = " ".join(f"{r['s_per_step']:.3f}" for r in f[method])
        length = statistics.mean(r["mean_length"] for r in f[method])
        print(f"{method:<7} {f[method + '_s_per_step']:>7.3f}  {trials:<22} {length:>17.1f}")
    verdict = "met" if f["overhead"] <= f["target"] else "NOT met"
    print(f"overhead: {100 * f['overhead']:+.1f}% per step (target <= {100 * f['target']:.0f}%: {verdict})")
    if f["dynamic_sampling"]:
        ds = f["dynamic_sampling"]
        print(f"engine with dynamic sampling on: {ds['s_per_step']:.3f} s/step, {ds['generation_batches']:.2f} "
              "generation batches per step (extra generation by design, not overhead)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m mtalign.bench_train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args())
