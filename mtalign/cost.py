"""What a grid will cost before it runs (issue 7): each cell's and the grid's estimated wall time.

`mtalign study --dry-run` prints these; `mtalign study` runs the costliest cells first, so the last minutes of a
grid do not run on one core while the others idle. The estimate is built from measured per-part costs in
`params/costs.yaml` (written from `mtalign bench run` on this machine, one thread per run), scaled by what each run
does under its preset and variant:

    run = setup + rollout_s * completions generated (group x prompts x steps x generation batches per step, plus
          TTRL's extra voters) + update_s * completions trained + eval_s * completions evaluated (step-0 pass@k,
          the periodic evaluations and the final pass@k; the step-0 one once per model and seed, since the run store
          caches it) + eval_s * incorrect/source's wrong-label samples
    cell = kernel start and imports + the runs it trains that no earlier cell trains (the shared baseline once)
           + building the toy models it is the first to use that are not in the cache yet
    grid = the cells spread over N workers, longest first (a greedy schedule, as `mtalign study` runs them)

Costs are measured on one machine (params/costs.yaml's `rates`: its single-thread matmul rates on the toy model's
shapes). On another, `on_this_machine` measures the same rates (about a second) and moves each part by the time its
FLOPs take at this machine's rate instead of the measured one (`*_gflop` per unit of work): the matmuls scale, the
rest of a part (framework overhead, memory traffic) is taken as it was measured, so a machine slower at that rest
costs more than the moved estimate says (this project's machine without bf16 instructions: a chain_sum run moved to
53 s, measured 68-77 s). A CPU without bf16 instructions multiplies bf16 at float32 speed at best (mtalign/cpu_bf16.py)
where the measuring machine did 4.6x better, so its bf16 updates cost more; model builds (bf16 pretraining) scale as
their family's update does. `mtalign bench run --save-costs` measures a family on this machine instead and keeps its
entry in the cache folder's costs.json (`local_costs_file`), which the estimates then use as measured, unmoved.

Costs are per task family and model world (`toy-chain_sum`, `micro-chain_sum`, ...); a model with no measured cost
(a hub model, a GPU) gets no estimate, and the totals say how many cells they leave out. Runs already finished in
the run store cost nothing, and so do cells already done.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtalign import config, paths

COSTS_FILE = paths.PARAMS / "costs.yaml"
LOCAL_NAME = "costs.json"  # in the cache folder (MTALIGN_CACHE): this machine's own entries, never committed
RL_PARAMETERS = ("model", "variants", "seed", "preset")  # a notebook declaring these trains RL runs per cell


@dataclass(frozen=True)
class PartCosts:
    """Measured seconds of one task family's runs on one core, per unit of work (params/costs.yaml)."""

    setup_s: float  # per run: model load, trainer construction, data
    rollout_s: float  # per rollout completion generated and scored
    update_s: float  # per completion trained: forward, backward, optimiser, TRL's bookkeeping
    eval_s: float  # per held-out completion sampled and graded
    generation_batches: float  # mean generation batches per step with dynamic sampling on (1 without)
    # GFLOP of matmuls per unit of work (`mtalign bench run`): what moves with a machine's matmul rate; 0 = not known
    rollout_gflop: float = 0.0
    update_gflop: float = 0.0
    eval_gflop: float = 0.0
    source: str = ""

    def on(self, measured: "Rates | None", here: "Rates | None", bf16: bool) -> "PartCosts":
        """These costs on a machine whose matmul rates are `here`, measured where the rates were `measured`: each
        unit moved by the time its FLOPs take at the new rate instead of the old (the update at its precision)."""
        if measured is None or here is None:
            return self

        def moved(seconds: float, gflop: float, old: float, new: float) -> float:
            return max(0.0, seconds + gflop * (1 / new - 1 / old))

        update_old, update_new = measured.update(bf16), here.update(bf16)
        return dataclasses.replace(
            self, rollout_s=moved(self.rollout_s, self.rollout_gflop, measured.generation, here.generation),
            update_s=moved(self.update_s, self.update_gflop, update_old, update_new),
            eval_s=moved(self.eval_s, self.eval_gflop, measured.generation, here.generation))


@dataclass(frozen=True)
class Rates:
    """Single-thread matmul rates (GFLOP/s) on the toy model's weight shapes: generation's (float32, 128 rows) and
    the update's (4096 rows) in bfloat16 and in float32."""

    generation: float
    update_bfloat16: float
    update_float32: float

    def update(self, bf16: bool) -> float:
        return self.update_bfloat16 if bf16 else self.update_float32

    def __str__(self) -> str:
        return (f"{self.generation:.0f} GFLOP/s generation (float32), {self.update_bfloat16:.0f} bf16 and "
                f"{self.update_float32:.0f} float32 updates")


@dataclass(frozen=True)
class WorldCosts:
    """Measured seconds of a notebook over a model world's models (01_alignment), per model: measuring it always,
    building it only when the toy model is not in the cache yet."""

    measure_s: float
    build_s: float


@dataclass
class Costs:
    kernel_s: float  # per notebook cell: kernel start and the package's imports
    families: dict[str, PartCosts]  # "toy-chain_sum" -> costs
    notebooks: dict[str, float | WorldCosts]  # non-RL notebooks: seconds per cell, or per model of its world
    machine: str = ""
    rates: Rates | None = None  # the measuring machine's matmul rates
    here: Rates | None = None  # this machine's (`on_this_machine`); None: estimate as measured
    local: dict[str, PartCosts] = field(default_factory=dict)  # families measured on this machine itself

    def family(self, name: str, bf16: bool) -> PartCosts | None:
        """A family's costs on this machine: measured here, else moved here from the measuring machine (as measured
        where `here` is not set); None where not measured anywhere."""
        if name in self.local:
            return self.local[name]
        part = self.families.get(name)
        return None if part is None else part.on(self.rates, self.here, bf16)

    def speed_note(self) -> str:
        """How this machine compares with the measuring one, for the dry run's summary."""
        notes = []
        if self.local:
            notes.append(f"measured on this machine (mtalign bench run --save-costs): {', '.join(sorted(self.local))}")
        moved = sorted(set(self.families) - set(self.local))
        if self.rates is not None and self.here is not None and moved:
            bf16 = self.here.update_bfloat16 / self.rates.update_bfloat16
            gen = self.here.generation / self.rates.generation
            notes.append(f"this machine's matmul rates: {self.here} (measured there: {self.rates}); "
                         f"{', '.join(moved)} moved by {gen:.2f}x generation and {bf16:.2f}x bf16 update speed "
                         "(matmuls only: `mtalign bench run --save-costs` measures a family here)")
        return "\n  ".join(notes)


def local_costs_file() -> Path:
    """This machine's own cost entries (`mtalign bench run --save-costs`), in the cache folder."""
    return paths.cache() / LOCAL_NAME


def cpu_name() -> str:
    """The CPU's kind and core count: a local cost table is kept for one CPU."""
    from mtalign import cpu_bf16

    return f"{cpu_bf16.cpu_kind()}; {os.cpu_count()} cores"


def save_local(family_name: str, entry: dict[str, float], path: Path | None = None) -> Path:
    """Keep `entry` (a `mtalign bench run` cost entry) as this machine's measured costs of `family_name`. Two
    benchmarks saving at once each keep their entry: one writer at a time, and the file is replaced whole."""
    import json

    from mtalign import runinfo

    path = path or local_costs_file()
    with runinfo.run_lock(path):
        data = json.loads(path.read_text()) if path.exists() else None
        if not data or data.get("cpu") != cpu_name():
            data = {"cpu": cpu_name(), "families": {}}
        data["families"][family_name] = {**entry, "source": f"mtalign bench run --save-costs, {runinfo.now()}"}
        return runinfo.write_json(path, data)


def _load_local(path: Path) -> dict[str, PartCosts]:
    """The local table's entries, if it was measured on this CPU (a cache folder may move between machines)."""
    import json

    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text()) or {}
        if data.get("cpu") != cpu_name():
            return {}
        return {name: PartCosts(**values) for name, values in (data.get("families") or {}).items()}
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: malformed local cost table ({err}); delete it and rerun "
                         "`mtalign bench run --save-costs`") from None


def load_costs(path: Path | str = COSTS_FILE, local: Path | None = None) -> Costs:
    """The committed cost table, with this machine's own entries where `local` (a `local_costs_file()`) has them."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cost table {path} not found (it ships in params/; `mtalign bench run` measures it)")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        families = {name: PartCosts(**values) for name, values in (data.get("families") or {}).items()}
        return Costs(kernel_s=float(data["kernel_s"]), families=families,
                     notebooks={k: WorldCosts(**v) if isinstance(v, dict) else float(v)
                                for k, v in (data.get("notebooks") or {}).items()},
                     machine=str(data.get("machine", "")),
                     rates=Rates(**data["rates"]) if data.get("rates") else None,
                     local=_load_local(local) if local is not None else {})
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: malformed cost table ({err}); see its header for the fields") from None


@functools.lru_cache(maxsize=1)
def machine_rates(seconds: float = 0.3) -> Rates:
    """This process's single-thread matmul rates on the toy model's weight shapes (`mtalign bench run` measures
    the same way), with CPU autocast's bf16 kernels as this machine runs them (mtalign/cpu_bf16.py); measured once
    per process (about a second)."""
    import torch

    from mtalign import bench_run, cpu_bf16, toyworld

    cpu_bf16.install()
    model = toyworld.load_config()["worlds"]["toy"]["model"]
    h, i, vocab = model["hidden_size"], model["intermediate_size"], len(toyworld.SPECIAL + toyworld.TAGS + toyworld.CHARS)
    # the toy model's weights, as `mtalign bench run` measures them: each block's q, k, v, o, gate, up and down, and
    # the output head
    shapes = ([(h, h)] * 4 + [(i, h)] * 2 + [(h, i)]) * model["num_hidden_layers"] + [(vocab, h)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rate = lambda rows, dtype: bench_run.weights_rate(shapes, rows, seconds, dtype) / 1e9  # noqa: E731
        return Rates(generation=rate(128, "float32"), update_bfloat16=rate(4096, "bfloat16"),
                     update_float32=rate(4096, "float32"))
    finally:
        torch.set_num_threads(threads)


def on_this_machine(costs: Costs, rates: Rates | None = None) -> Costs:
    """`costs` moved to this machine's matmul rates (measured unless given); unchanged if the table has none."""
    if costs.rates is None:
        return costs
    return dataclasses.replace(costs, here=rates or machine_rates())


def family(model: str) -> str:
    """`toy-chain_sum-weak` -> `toy-chain_sum`: the world and task a toy model's costs are measured for."""
    from mtalign import toyworld

    if model in toyworld.list_models():
        spec = toyworld.spec(model)
        return f"{model.split('-')[0]}-{spec.task}"
    return model


@dataclass
class RunWork:
    """The units of work of one RL run (see the module docstring)."""

    rollout: int  # completions per generation batch summed over steps (dynamic sampling's extra batches: run_seconds)
    trained: int
    evaluated: int


def run_work(settings, variant, eval_tasks: int, pays_initial_eval: bool) -> RunWork:
    """Work of one run of `variant` (a `config.Variant`) under frozen `settings` (`train.Settings`), evaluated on
    `eval_tasks` tasks; `pays_initial_eval`: it runs the step-0 evaluation (else the run store's cache serves it)."""
    s = settings
    trained = s.steps * s.prompts_per_step * s.group_size
    votes = 0
    if variant.n_votes and "extra_votes" in variant.reward_needs():
        votes = s.steps * s.prompts_per_step * (variant.n_votes - s.group_size)
    periodic = len(range(s.eval_every, s.steps, s.eval_every)) if s.eval_every else 0
    evaluated = s.eval_problems * (s.passk_samples * (2 if pays_initial_eval else 1) + s.eval_samples * periodic)
    evaluated *= eval_tasks
    if "wrong_labels" in variant.reward_needs():
        evaluated += s.train_problems * s.wrong_label_samples
    return RunWork(rollout=trained + votes, trained=trained, evaluated=evaluated)


def run_seconds(costs: PartCosts, work: RunWork, dynamic_sampling: bool) -> float:
    batches = costs.generation_batches if dynamic_sampling else 1.0
    return (costs.setup_s + costs.rollout_s * work.rollout * batches + costs.update_s * work.trained
            + costs.eval_s * work.evaluated)


@dataclass
class CellEstimate:
    name: str
    seconds: float | None  # None: no measured cost for what it runs
    runs: list[str] = field(default_factory=list)  # the RL runs it trains (shared ones only in the first cell)
    note: str = ""


def estimate_cells(plan_, cells, costs: Costs, runs_dir: Path | None = None) -> list[CellEstimate]:
    """Estimated seconds of each cell, in plan order (the order that decides which cell trains a shared run)."""
    from mtalign import claims, runinfo, runs, train

    trained: set[tuple] = set()  # runs some earlier cell trains
    paid_eval: set[tuple] = set()  # (model, task, seed, preset, steps) whose step-0 evaluation is paid
    built: set[str] = set()  # toy models some earlier cell builds (or measures, once built)
    out = []
    for cell in cells:
        notebook = plan_.notebooks[cell.notebook]
        values = {name: p.default for name, p in notebook.parameters.items()}
        values.update(cell.overrides)
        if not all(p in notebook.parameters for p in RL_PARAMETERS):
            # a notebook over a whole model world costs what that world costs: 01_alignment:toy, 05_contamination:micro
            key = f"{cell.notebook}:{values['world']}" if values.get("world") else cell.notebook
            seconds = costs.notebooks.get(key)
            if isinstance(seconds, WorldCosts):
                seconds = _world_seconds(seconds, values, costs, built)
            out.append(CellEstimate(cell.name, seconds, note="" if seconds is not None else
                                    f"no measured cost for notebook {key}"))
            continue
        model, seed, preset = values["model"], int(values["seed"]), values["preset"] or "toy"
        steps = int(values.get("steps") or 0) or None
        if family(model) not in costs.families:
            out.append(CellEstimate(cell.name, None, note=f"no measured cost for {family(model)}"))
            continue
        # the cell trains its variants, the baseline they are judged against, and its mechanism probes (02's
        # unclipped random reward): each an RL run
        wanted = [*values["variants"], *(values.get("probes") or [])]
        variants = [claims.BASELINE, *dict.fromkeys(v for v in wanted if v != claims.BASELINE)]
        # the settings are frozen per preset, the same for every variant: resolve the baseline's run once
        run = train.resolve(model=model, task=values.get("task") or None, variant=claims.BASELINE, seed=seed,
                            preset=preset, steps=steps)
        part = costs.family(family(model), bf16=run.settings.bf16)
        defined = train.load_variants()
        unknown = [v for v in variants if v not in defined]
        if unknown:
            raise ValueError(f"{cell.name}: unknown variant(s) {unknown}; valid variants: {', '.join(defined)}")
        seconds, names, note = costs.kernel_s, [], ""
        if model not in built and _unbuilt(model):  # the first cell to use a model not in the cache builds it
            seconds += _build_seconds(model, costs)
            note = f"builds {model}"
        built.add(model)
        for variant in variants:
            key = (model, run.task, variant, seed, preset, steps)
            if key in trained:
                continue
            trained.add(key)
            eval_key = key[:2] + key[3:]
            pays_initial_eval = eval_key not in paid_eval
            paid_eval.add(eval_key)  # a finished run left its step-0 evaluation in the store's cache too
            directory = None if runs_dir is None else runs.run_dir(runs_dir, model, run.task, variant, seed, preset,
                                                                    steps)
            if directory is not None and runs.is_finished(directory) and not runinfo.stale_engine(directory):
                continue  # reused (a run of other code is trained anew: runinfo.is_finished)
            work = run_work(run.settings, defined[variant], len(run.eval_tasks), pays_initial_eval)
            # entropy minimisation has no reward, so no group is dropped: one generation batch per step
            dynamic = run.settings.dynamic_sampling and not defined[variant].entropy_loss
            seconds += run_seconds(part, work, dynamic)
            names.append(variant)
        out.append(CellEstimate(cell.name, seconds, names, note))
    return out


def _world_models(values: dict[str, Any]) -> list[str]:
    """The `{world}-{task}-{recipe}` models a world cell (01_alignment) measures."""
    return [f"{values['world']}-{task}-{recipe}" for task in values["tasks"] for recipe in values["recipes"]]


def _unbuilt(name: str) -> bool:
    """A toy model not in the toy-model cache yet (`ensure_model`'s rule): its first user builds it."""
    from mtalign import models, toyworld

    return models.is_toy(name) and not toyworld.model_dir(toyworld.spec(name)).exists()


def _moved(costs: Costs, name: str, unit: str) -> float:
    """How much `unit` of `name`'s family costs on this machine against where it was measured (1 if unknown)."""
    measured = costs.families.get(family(name))
    if measured is None or not getattr(measured, unit):
        return 1.0
    return getattr(costs.family(family(name), bf16=True), unit) / getattr(measured, unit)


def _build_seconds(name: str, costs: Costs) -> float:
    """Building toy model `name` (bf16 pretraining), moved to this machine as its family's bf16 update is; 0 where
    its world has no measured build cost."""
    world = costs.notebooks.get(f"01_alignment:{name.split('-')[0]}")
    return world.build_s * _moved(costs, name, "update_s") if isinstance(world, WorldCosts) else 0.0


def _world_seconds(world: WorldCosts, values: dict[str, Any], costs: Costs, built: set[str]) -> float:
    """A cell over `{world}-{task}-{recipe}` models: each measured (`measure_s` is for n = 64 samples of 100
    problems; sampling scales with both, moved to this machine as its generation is), each not yet in the toy-model
    cache built (`_build_seconds`) unless an earlier cell builds it (`built`, updated)."""
    names = _world_models(values)
    sampled = int(values.get("n") or 64) * int(values.get("problems") or 100) / (64 * 100)
    builds = [name for name in names if name not in built and _unbuilt(name)]
    built.update(names)
    return (sum(world.measure_s * sampled * _moved(costs, name, "eval_s") for name in names)
            + sum(world.build_s * _moved(costs, name, "update_s") for name in builds))


def makespan(seconds: list[float], workers: int) -> float:
    """Wall time of jobs run longest first on `workers` lanes, each job starting when a lane frees up."""
    lanes = [0.0] * max(1, min(workers, len(seconds) or 1))
    for s in sorted(seconds, reverse=True):
        heapq.heappush(lanes, heapq.heappop(lanes) + s)
    return max(lanes)


def summary_lines(estimates: list[CellEstimate], workers: list[int], costs: Costs) -> list[str]:
    known = [e.seconds for e in estimates if e.seconds is not None]
    unknown = [e for e in estimates if e.seconds is None]
    total = sum(known)
    import os

    cores = os.cpu_count() or 1
    walls = ", ".join(f"{w} worker{'s' if w > 1 else ''} {duration(makespan(known, w))}"
                      + (f" (if it had {w} cores; this machine has {cores})" if w > cores else "") for w in workers)
    lines = [f"estimated cost: {duration(total)} of one core over {len(known)} cell(s); wall time (longest first) "
             f"with {walls}" + (f"; params/costs.yaml measured on {costs.machine}" if costs.machine else "")]
    if costs.speed_note():
        lines.append("  " + costs.speed_note())
    if unknown:
        lines.append(f"  not estimated: {len(unknown)} cell(s) ({unknown[0].note}{', ...' if len(unknown) > 1 else ''});"
                     " the totals leave them out")
    return lines


def duration(seconds: float) -> str:
    """A length of time as a person reads it: 45 s, 12 min, 1 h 05 min (dry-run estimates and study progress)."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
