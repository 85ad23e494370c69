"""A run's parameters, resolved and checked before anything is loaded: the frozen settings of each preset
(params/train/), the variants (params/variants.yaml) and the claims they belong to, and `resolve`, which turns a run
YAML plus arguments into a validated `Run` (STUDY.md §3-4).

    run = resolve(model="toy-chain_sum-strong", variant="nsr", seed=1)   # fails here on any bad name or batch

Run folders are laid out here too (`run_dir`), as `mtalign train` and the run store (mtalign/runs.py) both use them.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtalign import advantages, models, paths, rewards, toyworld
from mtalign.tasks import get_task, list_tasks

DEFAULT_PRESET = "toy"  # the embedded default: the frozen CPU settings of the toy study
PRESETS_DIR = paths.PARAMS / "train"
VARIANTS_FILE = paths.PARAMS / "variants.yaml"
DATA_KINDS = ("full", "one_shot", "few_shot")
SELECTIONS = ("variance", "random")  # 1-shot RLVR's historical variance score, or a random example (its control)
# Rollouts fields (mtalign.rewards.needs) that the engine in mtalign/trainer.py fills.
TOKEN_SIGNALS = ("token_logprobs", "token_entropies", "token_self_certainty")
PROVIDED = frozenset(TOKEN_SIGNALS) | {"extra_votes", "wrong_labels"}

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
    # bf16 mixed precision: on a GPU the model is loaded in bf16; on a CPU the policy's forward and backward passes
    # autocast its blocks' matmuls to bf16 on float32 weights (mtalign/precision.py). It moves numbers, so it is part
    # of a run's identity like every setting.
    bf16: bool = False
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
    """The presets a run can name; `_base.yaml` (what they all inherit) is not one."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if not p.stem.startswith("_"))


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
    claim: str = ""  # the claim it tests, as the report labels it; or baseline, or probe
    about: str = ""
    optional: bool = False  # an alternative form, run only when named; not in its claim's default variants
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
        return rewards.uses_entropy_loss(self.reward, self.semantics)

    def reward_needs(self) -> set[str]:
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


BASELINE, PROBE = "baseline", "probe"  # the `claim` of ground truth, and of mechanism probes (never judged)
DESCRIPTIVE = ("claim", "about", "optional")  # what a variant says about itself, not what it trains


def claims(path: Path | str = VARIANTS_FILE) -> dict[str, list[str]]:
    """{claim label: its variants}, in file order: what each claim notebook runs by default and the report judges.
    Optional variants (alternative forms), the baseline and probes are not among them."""
    out: dict[str, list[str]] = {}
    for name, variant in load_variants(path).items():
        if variant.claim not in (BASELINE, PROBE) and not variant.optional:
            out.setdefault(variant.claim, []).append(name)
    return out


def probes(path: Path | str = VARIANTS_FILE) -> list[str]:
    """The mechanism probes: variants that change one thing of a claim variant, shown beside it, never judged."""
    return [name for name, variant in load_variants(path).items() if variant.claim == PROBE]


def definition(variant: Variant) -> dict[str, Any]:
    """What a variant trains: every field but the descriptive ones (editing a description reuses its runs)."""
    return {k: v for k, v in dataclasses.asdict(variant).items() if k not in DESCRIPTIVE}


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


def default_runs_dir() -> Path:
    return paths.outputs() / "runs"


def run_dir(runs_dir: Path | str, model: str, task: str, variant: str, seed: int, preset: str = DEFAULT_PRESET,
            steps: int | None = None) -> Path:
    """`<runs_dir>/<preset>/<model>__<task>__<variant>__s<seed>`, the one layout of run folders (`mtalign train`
    without --out, and the run store): runs of different settings never mix.

    A run with its steps overridden lives under `<preset>-<steps>steps`, so a short trial is never mistaken for
    the preset's run.
    """
    settings = preset if not steps else f"{preset}-{steps}steps"
    return Path(runs_dir) / settings / run_name(model, task, variant, seed)


def resolve(params: dict[str, Any] | str | Path | None = None, **overrides: Any) -> Run:
    """Merge a run YAML (or dict) with explicit overrides (which win) into a validated `Run`.

    Checks every name (model, task, variant, reward, advantage, semantics, preset), the tasks' splits and
    arguments (building a task reads no data), the batch arithmetic and the one-shot accuracy log, so bad input fails
    here, before a model is loaded or built.
    """
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
    check_model(model_name)
    task = merged.get("task") or default_task(model_name)
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

    preset = merged.get("preset") or DEFAULT_PRESET
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

    settings.batch_shape(num_processes())  # a batch that does not split over the processes fails here

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
    def having(split: str) -> str:
        return ", ".join(n for n in list_tasks() if getattr(get_task(n), split) is not None)

    if task_for(model, task, task_kwargs.get(task)).train_split is None:
        raise ValueError(f"task {task!r} has no training split (it is an evaluation set), so it cannot be trained on; "
                         f"tasks with a training split: {having('train_split')}")
    for name in eval_tasks:
        if task_for(model, name, task_kwargs.get(name)).eval_split is None:
            raise ValueError(f"task {name!r} has no evaluation split, so it cannot be an evaluation task (pass "
                             f"eval_tasks); tasks with an evaluation split: {having('eval_split')}")


def num_processes() -> int:
    """Processes of this run: WORLD_SIZE, as `accelerate launch` and `torchrun` set it (1 otherwise).

    Read from the environment rather than from accelerate's PartialState, whose first construction fixes the
    backend: built here without `cpu=True` it would make a multi-process CPU run single-process.
    """
    return int(os.environ.get("WORLD_SIZE", "1"))


def _variant_spec(variant: Variant) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(variant).items() if k != "name"}


def check_model(name: str) -> None:
    """A name `models.load` can resolve: a toy or SmolLM2 short name, a local path, or a Hugging Face name."""
    if not (models.is_toy(name) or name == models.SMOLLM or Path(name).exists() or "/" in name):
        raise ValueError(f"unknown model {name!r}; valid short names: {', '.join(models.list_models())} (or a local "
                         "path / Hugging Face name such as Qwen/Qwen2.5-7B)")


def default_task(model: str) -> str:
    """A toy model's own task; every other model needs one named (--task). An unknown model fails first."""
    check_model(model)
    if models.is_toy(model):
        return toyworld.spec(model).task
    raise ValueError(f"no task given for model {model!r} (--task); valid tasks: {', '.join(list_tasks())}")


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
    if not given:
        return run_dir(default_runs_dir(), model, task, variant, seed, preset, steps)
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




def task_for(model: str, name: str, kwargs: dict[str, Any] | None = None):
    """Task `name` built with `kwargs` (e.g. data_path); a toy model gets its own task at the difficulty it was
    pretrained on (params/toyworld.yaml), which `kwargs` may override. Building a task reads no data."""
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


