"""Train one (model, task, variant, seed) RL run with the study's GRPO/DAPO engine (STUDY.md §3-4; issue 3).

    mtalign train --model toy-chain_sum-strong --variant nsr --seed 1
    mtalign train --params RUN.yaml --steps 20          # flags override the YAML
    mtalign train --model Qwen/Qwen2.5-7B --task deepscaler --eval-tasks math500 aime24 aime25 amc23
    mtalign train --list-variants

A variant (params/variants.yaml) chooses only the reward, the advantage and the data; every other setting is frozen
per preset (params/train/<preset>.yaml: `toy` for CPU, `paper` for the paper's GPU runs, `smoke` for tests and
notebook defaults). The engine itself is `mtalign.trainer.StudyGRPOTrainer`.

Tasks. The run trains on its task's `train_split` and evaluates on each evaluation task's `eval_split` (the toy
tasks' `train`/`eval`; a hub dataset's own split names, e.g. MATH-500 `test`, AIME 2024 `train`). `eval_tasks`
lists the held-out tasks (default: the training task); the first is the *primary* one, whose results keep the
single-task names below; `eval_task: NAME` is shorthand for `eval_tasks: [NAME]` (giving both is an error).
`task_kwargs` maps a task name to the arguments its task is built with, wherever the run uses it, e.g. in a run YAML

    task: deepscaler
    eval_tasks: [math500, aime24, aime25, amc23]
    task_kwargs: {deepscaler: {data_path: /data/deepscaler}, math500: {data_path: /data/math500, grader: exact}}

(`--data-path TASK=PATH` on the command line). A run folder holds:

    params.json           the fully resolved parameters (preset settings, variant, TRL arguments)
    run.json              versions, start/end times, status: running | finished | failed | interrupted
    metrics.jsonl         one flushed line per step (reward, gt accuracy, format rate, zero-variance groups, ...)
    eval.jsonl            held-out accuracy (FORMAT and CORRECT) before training, every eval_every steps, and after:
                          one line per evaluation task, named by `eval_task` (`cached: true` on a reused step 0)
    example_accuracy.jsonl  per-example training accuracy per epoch (one_shot's variance selection reads it)
    initial_passk.json, final_passk.json   pass@k curves on the primary evaluation task before and after training
    initial_passk.<task>.json, final_passk.<task>.json   the same for each other evaluation task
    wrong_labels.json     incorrect_source only: the base model's wrong majority answers it is trained towards
    summary.json          written last: its presence means the run finished. `before`/`after`/`gain` are the primary
                          task's; `by_eval_task` holds {task: {before, after, gain, passk_before, passk_after}} for all

The step-0 evaluation of the base model is the same for every variant of a (model, evaluation tasks, seed,
evaluation settings) cell; with `initial_eval_cache=DIR` (the run store passes `<runs_dir>/.initial_eval`) it is
computed once and reused, bit for bit (see `initial_eval_key` for what it is keyed by).

Python: `train(model=..., variant=..., seed=...)` returns the summary; `resolve(...)` validates a run without
loading anything; `build(run)` returns the trainer before its first step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from mtalign import models, runinfo, signals
from mtalign.config import DEFAULT_PRESET, RUN_KEYS, Run, Settings, load_variants, num_processes, resolve, task_for
from mtalign.data import dataset_rows, find_wrong_labels, heldout_problems, ranking_pool, select_examples, training_pool
from mtalign.evaluate import EvalCallback, model_identity, passk_file, passk_record
from mtalign.identity import identity_hashes, model_build, run_identity
from mtalign.runinfo import is_finished, run_lock
from mtalign.sampling import stop_token_ids

RUN_FILES = ("params.json", "run.json", "metrics.jsonl", "eval.jsonl", "example_accuracy.jsonl", "wrong_labels.json",
             "initial_passk.json", "final_passk.json", "summary.json")
RUN_FILE_PATTERNS = ("initial_passk.*.json", "final_passk.*.json")  # the other evaluation tasks' pass@k curves


# -- the run -------------------------------------------------------------------------------------------------------
def train(model: Any = None, task: str | None = None, variant: str | None = None, seed: int | None = None,
          preset: str | None = None, steps: int | None = None, out: str | Path | None = None,
          semantics: str | None = None, accuracy_log: str | Path | None = None, eval_task: str | None = None,
          save_model: bool | None = None, overwrite: bool | None = None, settings: dict[str, Any] | None = None,
          params: dict[str, Any] | str | Path | None = None, variants_file: str | Path | None = None,
          strict_paper_regex: bool | None = None, eval_tasks: list[str] | None = None,
          task_kwargs: dict[str, dict[str, Any]] | None = None, initial_eval_cache: str | Path | None = None,
          callbacks: list | None = None, role: str | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train one run and return its summary (also written to `<out>/summary.json`).

    `model` is a short name, a path or Hugging Face name, or an already loaded `models.LoadedModel` (it is trained
    in place). `params` is a run YAML or dict; the other arguments override it. `settings` overrides preset settings
    and is recorded in params.json as `overrides`. `strict_paper_regex` makes the training rewards use the released
    code's FORMAT regex, which fails any completion with a newline inside <think> (STUDY.md §3; held-out evaluation
    keeps the study's FORMAT, so runs stay comparable). `eval_tasks` are the held-out tasks, the first one primary
    (`eval_task` is the one-task shorthand; not both); `task_kwargs` maps a task name to its constructor arguments
    (e.g. {"math500": {"data_path": ...}}); `initial_eval_cache` is a folder where the step-0 evaluation is reused
    from and saved to (see the module docstring). Extra `callbacks` (transformers TrainerCallbacks) are added
    to the trainer. `role` is `study` (default) or `ranking` (one_shot's ranking step; see `ranking_overrides`).
    params.json and summary.json record the run's identity (`run_identity`) and its hashes.
    """
    loaded_given = model if hasattr(model, "tokenizer") else None
    run = resolve(params, model=model, task=task, variant=variant, seed=seed, preset=preset, steps=steps, out=out,
                  semantics=semantics, accuracy_log=accuracy_log, eval_task=eval_task, eval_tasks=eval_tasks,
                  task_kwargs=task_kwargs, save_model=save_model, overwrite=overwrite, settings=settings,
                  variants_file=variants_file, strict_paper_regex=strict_paper_regex,
                  initial_eval_cache=initial_eval_cache, role=role)
    # a model handed in may have been changed in memory: it is named by its weights, as the step-0 cache does
    build_id = model_identity(loaded_given, loaded_from_files=False) if loaded_given is not None \
        else model_build(run.model)
    identity = run_identity(run, build_id)
    identity = {"identity": identity, **identity_hashes(identity)}
    if loaded_given is None:  # a model that cannot be fetched, run or fit fails here, in one line
        s = run.settings
        models.preflight(run.model, training=True, use_vllm=s.use_vllm, bf16=s.bf16,
                         vllm_memory_fraction=s.vllm_gpu_memory_utilization if s.vllm_mode == "colocate" else 0.0,
                         vllm_fix="run with settings {use_vllm: false}", what=f"training at preset {run.preset!r}")
    if not _is_main():
        log = lambda _: None  # noqa: E731  (one process speaks for a multi-process run)
    # One writer per run folder: a second `mtalign train` on it stops here, naming it, instead of deleting this run's
    # files. SIGTERM (kill, timeout, SLURM) stops the run as Ctrl-C does, so run.json says interrupted.
    with (run_lock(run.out, wait=False) if _is_main() else contextlib.nullcontext()), \
            signals.sigterm_as_interrupt():
        return _train(run, loaded_given, callbacks, identity, log)


def _train(run: Run, loaded_given, callbacks: list | None, identity: dict[str, Any], log) -> dict[str, Any]:
    """`train` once its run is resolved and its folder locked: prepare the folder, train, write the files."""
    _prepare_out(run, log)
    started = time.time()
    run_info = {"run": run.name, "status": "running", "started": runinfo.now(), **runinfo.environment()}
    if _is_main():
        runinfo.write_json(run.out / "run.json", run_info)  # before the model is loaded or built (minutes)
    trainer = None
    try:
        trainer, loaded, tasks = build(run, loaded_given, callbacks or [], started, log)
        if trainer.accelerator.is_main_process:
            runinfo.write_json(run.out / "params.json", {**run.record(), "trl": _trl_record(trainer.args), **identity})
        log(f"training {run.name}: {run.variant.describe()}; {run.settings.steps} steps of "
            f"{run.settings.prompts_per_step} prompts x {run.settings.group_size} ({run.preset} preset)")
        train_started = time.time()
        trainer.train()
        train_seconds = time.time() - train_started
        trainer.flush_example_accuracy()  # the last epoch, marked complete only if it ran to its end
        summary = {**_finish(run, trainer, loaded, tasks, train_seconds, started, log), "role": run.role, **identity}
    except KeyboardInterrupt:
        with signals.deferred():  # a second Ctrl-C must not cut this write short, leaving "running"
            _mark(run, run_info, trainer, "interrupted", None)
        raise
    except BaseException as err:
        _mark(run, run_info, trainer, "failed", f"{type(err).__name__}: {err}")
        raise
    if trainer.accelerator.is_main_process:
        runinfo.write_json(run.out / "run.json", {**run_info, "status": "finished", "ended": runinfo.now()})
        runinfo.write_json(run.out / "summary.json", summary)  # last: its presence means the run finished
    return summary


def _is_main() -> bool:
    """The process that writes run files (RANK 0 under accelerate launch / torchrun), known before accelerate starts."""
    return os.environ.get("RANK", "0") == "0"


def _prepare_out(run: Run, log) -> None:
    if is_finished(run.out) and not run.overwrite:  # a damaged summary.json is not a finished run
        raise ValueError(f"{run.out} already holds a finished run (summary.json); pass overwrite (--overwrite) or "
                         "another out folder")
    run.out.mkdir(parents=True, exist_ok=True)
    if not _is_main():  # only the main process cleans up: another rank could delete files it has just written
        return
    stale = [name for name in RUN_FILES if (run.out / name).exists()]
    stale += sorted(p.name for pattern in RUN_FILE_PATTERNS for p in run.out.glob(pattern))
    if stale:
        log(f"{run.out}: replacing the files of an earlier run ({', '.join(stale)})")
        for name in stale:
            (run.out / name).unlink(missing_ok=True)


def _mark(run: Run, run_info: dict, trainer, status: str, error: str | None) -> None:
    """Record how a run ended early; metrics written so far stay as they are (each line was flushed)."""
    if trainer is not None:
        try:
            trainer.flush_example_accuracy()
        except Exception:  # the run is already failing; keep the original error
            pass
    is_main = _is_main() if trainer is None else trainer.accelerator.is_main_process
    if is_main and run.out.exists():
        runinfo.write_json(run.out / "run.json", {**run_info, "status": status, "ended": runinfo.now(),
                                                  **({"error": error} if error else {})})


def build(run: Run, loaded=None, callbacks: list | None = None, started: float | None = None, log=print):
    """Load model and tasks, build the data and the trainer: everything before the first training step.

    Returns (trainer, loaded model, {"task", "eval_task", "eval_problems", "eval_tasks", "eval_problems_by_task"}):
    `eval_task`/`eval_problems` are the primary evaluation task's, the `*_by_task`/`eval_tasks` dicts hold every
    evaluation task's. `train` calls it, then `trainer.train()`. `run.out` must exist (evaluations write there).
    """
    import torch  # torch and TRL (through the engine) are heavy: imported when a run starts, not by `mtalign --help`

    from mtalign.trainer import EngineSpec, RunFiles, StepMetricsCallback, StudyGRPOTrainer

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    s, variant = run.settings, run.variant
    task = task_for(run.model, run.task, run.task_kwargs.get(run.task))
    eval_tasks = {name: task if name == run.task else task_for(run.model, name, run.task_kwargs.get(name))
                  for name in run.eval_tasks}
    if variant.data["kind"] == "full":
        examples = training_pool(task, s)
    else:  # chosen from the ranking run's pool, whether by its history or at random (the control)
        examples = select_examples(ranking_pool(task, s), variant, run.accuracy_log, run.seed)
    eval_problems = {name: heldout_problems(t, s) for name, t in eval_tasks.items()}

    cuda = torch.cuda.is_available()
    # The cache may reuse an earlier step-0 evaluation only of the very same base model: one loaded here from its
    # files is named by them; one handed in (possibly changed in memory) is named by a digest of its weights.
    identity = None
    if run.initial_eval_cache is not None:
        identity = model_identity(loaded, loaded_from_files=False) if loaded is not None else None
    if loaded is None:
        loaded = models.load(run.model, seed=0, dtype="bfloat16" if (cuda and s.bf16) else "auto", log=log)
        if run.initial_eval_cache is not None:
            identity = model_identity(loaded, loaded_from_files=True)
    # Rollouts stop where the study's sampler stops (after `</answer>` when it is one token), so training and
    # evaluation see the same completions.
    loaded.model.generation_config.eos_token_id = stop_token_ids(loaded.tokenizer)

    wrong_labels = None
    if "wrong_labels" in variant.reward_needs():
        wrong_labels, examples = find_wrong_labels(run, loaded, task, examples, log)
    rows = dataset_rows(examples, loaded, task, s, fill_to=s.prompts_per_step)

    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    spec = EngineSpec(
        task=task, problems={p.id: p for p in examples}, reward=variant.reward, reward_kwargs=variant.reward_kwargs,
        semantics=variant.semantics, advantage=variant.advantage, advantage_kwargs=variant.advantage_kwargs,
        group_size=s.group_size, prompts_per_step=s.prompts_per_step, updates_per_step=s.updates_per_step,
        seed=run.seed, dynamic_sampling=s.dynamic_sampling, max_generation_batches=s.max_generation_batches,
        entropy_loss=variant.entropy_loss, n_votes=variant.n_votes, wrong_labels=wrong_labels,
        strict_paper_regex=run.strict_paper_regex, needs=variant.reward_needs(), bf16_blocks=s.bf16 and not cuda,
    )
    config = grpo_config(run, task, cuda)
    trainer = StudyGRPOTrainer(
        model=loaded.model, reward_funcs=_named_reward(variant.reward), args=config,
        train_dataset=Dataset.from_list(rows), processing_class=loaded.tokenizer, spec=spec,
        run_files=RunFiles(run.out, is_main=True),
    )
    trainer.files.is_main = trainer.accelerator.is_main_process
    trainer.remove_callback(PrinterCallback)  # it prints TRL's raw log dicts; StepMetricsCallback logs one line
    trainer.add_callback(StepMetricsCallback(trainer, time.time() if started is None else started, log))
    trainer.add_callback(EvalCallback(run, trainer, loaded, eval_tasks, eval_problems, log, identity))
    for callback in callbacks or []:
        trainer.add_callback(callback)
    return trainer, loaded, {"task": task, "eval_task": eval_tasks[run.eval_task],
                             "eval_problems": eval_problems[run.eval_task], "eval_tasks": eval_tasks,
                             "eval_problems_by_task": eval_problems}


def _named_reward(name: str):
    """TRL needs a reward function to name in its logs; the engine computes rewards itself (trainer.py)."""
    def reward(prompts, completions, **_):
        raise RuntimeError("the study engine computes rewards in StudyGRPOTrainer._generate, not through TRL")

    reward.__name__ = name
    return reward


TRACKING_ENV = "MTALIGN_REPORT_TO"


def live_tracking() -> str | list[str]:
    """TRL's own `report_to`, off ("none") unless $MTALIGN_REPORT_TO names installed integrations, comma-separated
    (tensorboard, trackio, wandb, ...; `MTALIGN_REPORT_TO=tensorboard mtalign study`, logs under each run's trl/).
    Watching a run cannot change its numbers, so this is not part of the run's parameters or identity."""
    value = os.environ.get(TRACKING_ENV, "").strip()
    names = [n.strip() for n in value.split(",") if n.strip() and n.strip() != "none"]
    if not names:
        return "none"
    from transformers.integrations import get_available_reporting_integrations

    available = get_available_reporting_integrations()
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"{TRACKING_ENV}={value!r}: {', '.join(missing)} not installed; installed: "
                         f"{', '.join(available) or 'none'} (e.g. pip install tensorboard), or unset {TRACKING_ENV}")
    return names


def grpo_config(run: Run, task, cuda: bool):
    """TRL arguments for the frozen settings (STUDY.md §4 in TRL terms: loss_type dapo, epsilon 0.2/0.28, beta 0)."""
    from trl import GRPOConfig

    s = run.settings
    shape = s.batch_shape(num_processes())
    vllm = {}
    if s.use_vllm:
        vllm = {"use_vllm": True, "vllm_mode": s.vllm_mode,
                "vllm_gpu_memory_utilization": s.vllm_gpu_memory_utilization,
                "vllm_tensor_parallel_size": s.vllm_tensor_parallel_size, "vllm_server_host": s.vllm_server_host,
                "vllm_server_port": s.vllm_server_port}
    return GRPOConfig(
        output_dir=str(run.out / "trl"), seed=run.seed, data_seed=run.seed,
        use_cpu=not cuda, bf16=bool(cuda and s.bf16), gradient_checkpointing=s.gradient_checkpointing,
        save_strategy="no", report_to=live_tracking(), logging_steps=s.updates_per_step, disable_tqdm=True,
        max_steps=s.steps * s.updates_per_step, num_generations=s.group_size, **shape,
        max_completion_length=s.completion_budget(task), temperature=s.temperature, top_p=s.top_p, top_k=0,
        learning_rate=s.learning_rate, lr_scheduler_type="constant_with_warmup",
        warmup_steps=s.warmup_steps * s.updates_per_step, weight_decay=s.weight_decay, max_grad_norm=s.max_grad_norm,
        loss_type=s.loss_type, beta=s.kl_coef, **_clip_arguments(s, run.variant.clip),
        scale_rewards=s.scale_rewards, num_iterations=1, mask_truncated_completions=False,
        entropy_coef=-run.variant.entropy_loss_coef if run.variant.entropy_loss else s.entropy_coef,
        remove_unused_columns=False, log_completions=False, dataloader_num_workers=0,
        vllm_importance_sampling_correction=s.vllm_importance_sampling_correction, **vllm,
    )


def _clip_arguments(s: Settings, clip: bool) -> dict[str, Any]:
    """TRL's clip arguments; unclipped (the probe), the ratio's bounds are [0, 1e9] and the dual clip is off, so
    neither side can bind while the loss is otherwise the same."""
    if clip:
        return {"epsilon": s.clip_low, "epsilon_high": s.clip_high, "delta": s.dual_clip}
    return {"epsilon": 1.0, "epsilon_high": 1e9, "delta": None}


def _trl_record(args) -> dict[str, Any]:
    keys = ("per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation",
            "generation_batch_size", "num_generations", "max_steps", "logging_steps", "learning_rate",
            "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "loss_type", "beta", "epsilon",
            "epsilon_high", "delta", "scale_rewards", "num_iterations", "temperature", "top_p", "top_k",
            "max_completion_length", "entropy_coef", "bf16", "use_vllm", "vllm_mode", "seed",
            "vllm_importance_sampling_correction", "vllm_importance_sampling_mode")
    return {k: getattr(args, k, None) for k in keys}


def _finish(run: Run, trainer, loaded, tasks: dict, train_seconds: float, started: float, log) -> dict[str, Any]:
    s = run.settings
    callback = next(c for c in trainer.callback_handler.callbacks if isinstance(c, EvalCallback))
    after = callback.evaluate(s.steps, s.passk_samples)
    before = trainer.initial_eval
    by_task = {}
    for name in run.eval_tasks:
        final = passk_record(after[name], run.seed, s.steps, name)
        if trainer.accelerator.is_main_process:
            runinfo.write_json(run.out / passk_file("final", name, run), final)
        by_task[name] = {"before": _outcome(before[name]), "after": _outcome(after[name]),
                         "gain": after[name]["accuracy"] - before[name]["accuracy"],
                         "passk_before": callback.initial_passk[name]["summary"], "passk_after": final["summary"]}
    if run.save_model:
        trainer.save_model(str(run.out / "model"))
        loaded.tokenizer.save_pretrained(str(run.out / "model"))
    shutil.rmtree(run.out / "trl", ignore_errors=True)  # TRL's output_dir: empty, nothing is saved there
    metrics = runinfo.read_jsonl(run.out / "metrics.jsonl") if (run.out / "metrics.jsonl").exists() else []

    def mean(key):
        values = [m[key] for m in metrics if m.get(key) is not None]
        return sum(values) / len(values) if values else None

    primary = by_task[run.eval_task]
    summary = {
        "run": run.name, "status": "finished", "model": run.model, "task": run.task, "eval_task": run.eval_task,
        "eval_tasks": list(run.eval_tasks), "variant": run.variant.name, "semantics": run.variant.semantics,
        "seed": run.seed, "preset": run.preset, "steps": s.steps,
        # the primary evaluation task's numbers, which the report and the verdicts read
        "before": primary["before"], "after": primary["after"], "gain": primary["gain"],
        "passk_before": primary["passk_before"], "passk_after": primary["passk_after"],
        "by_eval_task": by_task,
        "mean_zero_variance_frac": mean("zero_variance_frac"), "mean_gt_accuracy": mean("gt_accuracy"),
        "last_step": metrics[-1] if metrics else None,
        "train_seconds": round(train_seconds, 1), "seconds_per_step": round(train_seconds / max(1, s.steps), 3),
        "wall_seconds": round(time.time() - started, 1), "finished": runinfo.now(),
    }
    others = "".join(f"; {name} {r['before']['accuracy']:.3f} -> {r['after']['accuracy']:.3f}"
                     for name, r in by_task.items() if name != run.eval_task)
    log(f"{run.name}: held-out accuracy {primary['before']['accuracy']:.3f} -> {primary['after']['accuracy']:.3f}"
        f"{others} ({summary['seconds_per_step']}s/step); files in {run.out}")
    return summary


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": result["accuracy"], "format_rate": result["format_rate"], "samples": result["samples"]}


# -- command line --------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", help="run YAML (keys: " + ", ".join(RUN_KEYS) + "); flags override it")
    parser.add_argument("--model", help="model short name (e.g. toy-chain_sum-strong), path or Hugging Face name")
    parser.add_argument("--task", help="task (default: a toy model's own task)")
    parser.add_argument("--eval-task", help="held-out task (default: --task's evaluation split); one-task shorthand "
                                            "of --eval-tasks")
    parser.add_argument("--eval-tasks", nargs="+", metavar="TASK",
                        help="held-out tasks, each on its own evaluation split; the first is the primary one")
    parser.add_argument("--data-path", action="append", metavar="TASK=PATH",
                        help="local data of a hub task (its task_kwargs data_path); repeat for several tasks")
    parser.add_argument("--initial-eval-cache", metavar="DIR",
                        help="reuse (and save) the step-0 evaluation of the base model from this folder")
    parser.add_argument("--variant", help="variant name from params/variants.yaml (default: ground_truth)")
    parser.add_argument("--semantics", help="override the variant's semantics: paper | source")
    parser.add_argument("--preset", help=f"frozen settings, params/train/<preset>.yaml (default: {DEFAULT_PRESET})")
    parser.add_argument("--steps", type=int, help="rollout steps (default: the preset's)")
    parser.add_argument("--seed", type=int, help="run seed (default: 0)")
    parser.add_argument("--out", help="run folder (default: outputs/runs/<preset>/<model>__<task>__<variant>__s<seed>, "
                                      "under <preset>-<N>steps with --steps N, as `mtalign study` stores runs)")
    parser.add_argument("--accuracy-log", help="one_shot/few_shot: example_accuracy.jsonl (or folder) of a full run")
    parser.add_argument("--save-model", action="store_true", default=None, help="save the trained model in <out>/model")
    parser.add_argument("--overwrite", action="store_true", default=None, help="replace a finished run in --out")
    parser.add_argument("--strict-paper-regex", action="store_true", default=None,
                        help="training rewards use the released code's FORMAT regex (no DOTALL; STUDY.md §3)")
    parser.add_argument("--list-variants", action="store_true", help="print the valid variant names and exit")


def run(args: argparse.Namespace) -> int:
    if args.list_variants:
        variants = load_variants()
        width, claim_width = max(map(len, variants)), max(len(v.claim) for v in variants.values())
        for name, variant in variants.items():
            optional = " (optional)" if variant.optional else ""
            print(f"{name:<{width}}  {variant.claim:<{claim_width}}  {variant.describe()}{optional}")
        return 0
    train(model=args.model, task=args.task, eval_task=args.eval_task, eval_tasks=args.eval_tasks,
          task_kwargs=_data_paths(args.data_path), variant=args.variant, semantics=args.semantics,
          preset=args.preset, steps=args.steps, seed=args.seed, out=args.out, accuracy_log=args.accuracy_log,
          save_model=args.save_model, overwrite=args.overwrite, params=args.params,
          strict_paper_regex=args.strict_paper_regex, initial_eval_cache=args.initial_eval_cache,
          log=lambda message: print(message, flush=True))
    return 0


def _data_paths(values: list[str] | None) -> dict[str, dict[str, str]] | None:
    """`--data-path TASK=PATH ...` as task_kwargs."""
    if not values:
        return None
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--data-path {value!r}: write TASK=PATH, e.g. --data-path math500=/data/math500")
        out[name] = {"data_path": path}
    return out


if __name__ == "__main__":  # `python -m mtalign.train` is `mtalign train`
    from mtalign.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
