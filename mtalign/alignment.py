"""Measure model-task alignment (STUDY.md §2): sample n completions per problem, verify, draw pass@k with CIs.

`mtalign alignment --model M --task T --n N` measures one cell; with no model it measures every cell of the
default study (params/alignment.yaml), in parallel processes. Each cell writes `<model>__<task>.json` (enough to
recompute and audit the curve: per-problem ids and correct counts, settings, seed, versions) and a plotly figure.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from mtalign import models, passk, paths, runinfo, toyworld
from mtalign.config import check_model, default_task
from mtalign.tasks import get_task, list_tasks

CONFIG_FILE = paths.PARAMS / "alignment.yaml"


def cell_name(model: str, task: str) -> str:
    """File-system-safe name of a (model, task) cell, addressable by a grid."""
    return f"{model.replace('/', '_')}__{task}"


def validate(model: str, task: str, n: int, ks: list[int] | None) -> list[int]:
    """Check names and k before anything expensive; returns the k values to report."""
    check_model(model)
    if task not in list_tasks():
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(list_tasks())}")
    if n < 1:
        raise ValueError(f"--n (samples per problem) must be at least 1, got {n}")
    return passk.validate_ks(ks, n) if ks else passk.default_ks(n)


def measure(model: str, task: str | None = None, n: int = 64, ks: list[int] | None = None, problems: int = 100,
            split: str | None = None, seed: int = 0, temperature: float = 1.0, top_p: float = 1.0,
            max_new_tokens: int | None = None, batch_size: int = 512, out: Path | str | None = None,
            backend: str = "auto", progress: bool = True, task_kwargs: dict[str, Any] | None = None,
            log=print) -> dict[str, Any]:
    """pass@k of `model` on `task`; writes JSON and HTML into `out` when given. Returns the JSON record.

    `split` defaults to the task's evaluation split; `task_kwargs` go to the task (e.g. data_path, grader).
    """
    from mtalign.sampling import SamplingParams, make_sampler

    task = task or default_task(model)
    ks = validate(model, task, n, ks)
    if problems < 1:
        raise ValueError(f"--problems must be at least 1, got {problems}")
    models.preflight(model, use_vllm=backend == "vllm", vllm_fix="--backend transformers", what=f"sampling {model}")
    task_obj = get_task(task, **{**_toy_difficulty(model, task), **(task_kwargs or {})})
    split = split or task_obj.eval_split
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size,
                            max_new_tokens=max_new_tokens or getattr(task_obj, "max_new_tokens", 1024))
    items = task_obj.problems(split, n=problems, seed=0)  # the eval set is fixed; `seed` varies the sampling
    started = time.time()
    loaded = models.load(model, log=log)
    build_seconds = time.time() - started
    prompts = [loaded.render(task_obj, p) for p in items]
    sampler = make_sampler(loaded, backend)
    t0 = time.time()
    samples = sampler.generate(prompts, params, progress=progress)
    sample_seconds = time.time() - t0
    scores = [[task_obj.score(s.text, p) for s in group] for p, group in zip(items, samples)]
    correct = [sum(sc.reward for sc in group) for group in scores]
    curve = passk.curve(n, [int(c) for c in correct], ks, seed=seed)
    tokens = sum(len(s.token_ids) for group in samples for s in group)
    record = {
        "model": model, "task": task, "split": split, "n": n, "k": ks, "seed": seed,
        "problem_ids": [p.id for p in items], "correct": [int(c) for c in correct],
        "formatted": [int(sum(sc.formatted for sc in group)) for group in scores],
        "curve": curve, "summary": passk.summaries(curve),
        "sampling": {"backend": sampler.backend, "temperature": temperature, "top_p": top_p,
                     "max_new_tokens": params.max_new_tokens, "batch_size": batch_size, "prompt_style": loaded.style},
        "examples": [{"prompt": prompts[i], "completion": samples[i][0].text, "gold": items[i].answer}
                     for i in range(min(3, len(items)))],
        "timing": {"load_or_build_seconds": round(build_seconds, 2), "sampling_seconds": round(sample_seconds, 2),
                   "completions_per_second": round(n * len(items) / sample_seconds, 1),
                   "tokens_per_second": round(tokens / sample_seconds, 1)},
        "model_path": loaded.path, "finished": runinfo.now(), **runinfo.environment(),
    }
    if out is not None:
        write(record, Path(out))
    return record


def write(record: dict[str, Any], out: Path) -> None:
    from mtalign.plots import passk_figure, write_figure

    name = cell_name(record["model"], record["task"])
    write_figure(passk_figure([record], title=f"pass@k of {record['model']} on {record['task']}"), out / f"{name}.html")
    runinfo.write_json(out / f"{name}.json", record)  # written last: its presence means the cell is done


def _toy_difficulty(model: str, task: str) -> dict[str, Any]:
    """A toy model is measured on the task difficulty it was pretrained on (declared in params/toyworld.yaml)."""
    if models.is_toy(model):
        toy = toyworld.spec(model)
        if toy.task == task:
            return dict(toy.task_difficulty)
    return {}


def load_study(path: Path | str = CONFIG_FILE) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--study {path} is a folder; it takes a study YAML file (like {CONFIG_FILE})")
    try:
        config = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ValueError(f"study file {path} is not UTF-8 text ({err})") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    shape = "`cells: [{model: NAME, task: NAME (optional for toy models)}, ...]` and optional n, problems, seed"
    if not isinstance(config, dict) or not isinstance(config.get("cells"), list) or not config["cells"]:
        raise ValueError(f"{path} must be a mapping with {shape}")
    for cell in config["cells"]:
        if not isinstance(cell, dict) or not isinstance(cell.get("model"), str):
            raise ValueError(f"{path}: cell {cell!r} is not a mapping with a model name; expected {shape}")
    for key in ("n", "problems", "seed"):
        if key in config and (not isinstance(config[key], int) or isinstance(config[key], bool)):
            raise ValueError(f"{path}: {key} must be an integer, got {config[key]!r}")
    for key in ("temperature", "top_p"):
        if key in config and not isinstance(config[key], (int, float)):
            raise ValueError(f"{path}: {key} must be a number, got {config[key]!r}")
    return config


def _measure_cell(kwargs: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return measure(**kwargs, progress=False, log=lambda msg: print(f"[{kwargs['model']}] {msg}", flush=True))


def measure_study(config: dict[str, Any], out: Path, workers: int = 2, only_missing: bool = True) -> list[dict]:
    """Every cell of a study config, `workers` processes at a time; finished cells (JSON present) are skipped."""
    settings = {k: config[k] for k in ("n", "problems", "seed", "temperature", "top_p") if k in config}
    jobs = []
    for cell in config["cells"]:
        task = cell.get("task") or default_task(cell["model"])
        validate(cell["model"], task, settings.get("n", 64), cell.get("k") or config.get("k"))
        jobs.append({"model": cell["model"], "task": task, "ks": cell.get("k") or config.get("k"), "out": out,
                     **settings})
    jobs = _interleave_by_task(jobs)
    results, todo = [], []
    for job in jobs:
        done = out / f"{cell_name(job['model'], job['task'])}.json"
        differences = _differences(done, job) if only_missing and done.exists() else ["absent"]
        if not differences:
            print(f"{done.name}: done, skipped")
            results.append(runinfo.read_json(done))
        else:
            if done.exists():
                print(f"{done.name}: measured with other settings ({'; '.join(differences)}); measuring again")
            todo.append(job)
    if todo:
        with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
            for record in pool.map(_measure_cell, todo):
                s = record["summary"]
                print(f"{record['model']} on {record['task']}: " + ", ".join(f"{k} {v:.3f}" for k, v in s.items()))
                results.append(record)
    from mtalign.plots import passk_figure, write_figure

    write_figure(passk_figure(results, title="Model-task alignment of the study's cells"), out / "alignment.html")
    return results


def _differences(done: Path, job: dict[str, Any]) -> list[str]:
    """How the finished record `done` differs from what `job` asks for (empty: it can be reused as is); a damaged
    record differs in everything."""
    try:
        record = runinfo.read_json(done)
    except (OSError, ValueError) as err:
        return [f"unreadable: {err}"]
    sampling = record.get("sampling") or {}
    n = job.get("n", 64)
    wanted = {"n": n, "problems": job.get("problems", 100), "seed": job.get("seed", 0),
              "k": passk.validate_ks(job["ks"], n) if job.get("ks") else passk.default_ks(n),
              "temperature": job.get("temperature", 1.0), "top_p": job.get("top_p", 1.0)}
    found = {"n": record.get("n"), "problems": len(record.get("problem_ids") or []), "seed": record.get("seed"),
             "k": record.get("k"), "temperature": sampling.get("temperature"), "top_p": sampling.get("top_p")}
    return [f"{key} {found[key]!r}, asked {wanted[key]!r}" for key in wanted if found[key] != wanted[key]]


def _interleave_by_task(jobs: list[dict]) -> list[dict]:
    """Round-robin over tasks, so parallel workers start by building different toy bases instead of one."""
    by_task: dict[str, list[dict]] = {}
    for job in jobs:
        by_task.setdefault(job["task"], []).append(job)
    queues = list(by_task.values())
    return [queue[i] for i in range(max(map(len, queues))) for queue in queues if i < len(queue)]


# -- command line -----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model short name (see --list-models), local path or Hugging Face name; "
                                        "omit to measure every cell of --study")
    parser.add_argument("--task", help="task name (see --list-tasks); defaults to a toy model's own task")
    parser.add_argument("--n", type=int, default=64, help="samples per problem (default 64)")
    parser.add_argument("--k", type=int, nargs="+", help="k values to report (default 1, 2, 4, ..., n)")
    parser.add_argument("--problems", type=int, default=100, help="number of evaluation problems (default 100)")
    parser.add_argument("--split", help="which split of the task to measure on (default: the task's eval split)")
    parser.add_argument("--data-path", help="local file or folder holding a hub dataset (hub tasks only)")
    parser.add_argument("--grader", choices=["math_verify", "exact"], help="math grader (hub math tasks only)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, help="default: the task's own limit")
    parser.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"])
    parser.add_argument("--out", type=Path, help="output folder (default outputs/alignment)")
    parser.add_argument("--study", type=Path, default=CONFIG_FILE, help="cells measured when --model is omitted")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel processes for a study")
    parser.add_argument("--list-models", action="store_true", help="print valid model short names and exit")
    parser.add_argument("--list-tasks", action="store_true", help="print valid task names and exit")


def run(args: argparse.Namespace) -> int:
    if args.list_models:
        print("\n".join(models.list_models()))
        return 0
    if args.list_tasks:
        print("\n".join(list_tasks()))
        return 0
    out = args.out or paths.outputs() / "alignment"
    if args.model is None:
        if args.task:
            raise ValueError("--task needs --model; omit both to measure the study's cells")
        measure_study(load_study(args.study), out, workers=args.workers)
        print(f"wrote {out}/alignment.html")
        return 0
    record = measure(args.model, args.task, n=args.n, ks=args.k, problems=args.problems, split=args.split,
                     seed=args.seed, temperature=args.temperature, top_p=args.top_p,
                     max_new_tokens=args.max_new_tokens, backend=args.backend, out=out,
                     task_kwargs={k: v for k, v in (("data_path", args.data_path), ("grader", args.grader)) if v})
    print(", ".join(f"{k} {v:.3f}" for k, v in record["summary"].items()))
    print(f"wrote {out / cell_name(record['model'], record['task'])}.json and .html")
    return 0
