"""Benchmarks that print their figures: `mtalign bench [sampling]`, and others registered in BENCHMARKS.

These are not timed tests: speed depends on the machine and its load, so a benchmark measures its alternatives side
by side in one run, prints the figures and the target they aim at, and leaves the verdict to the reader (and the
README, which quotes them). Tests only check that the figures come out and make sense.

To add a benchmark, write `add_<name>_arguments(parser)` and `run_<name>(args) -> dict` (it prints its figures and
returns them) and add one entry to BENCHMARKS; heavy imports go inside `run_<name>` so `mtalign --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Benchmark:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]


# -- sampling (issue 2): mtalign's batched sampler versus a naive one-completion-per-call generate loop -----------
SAMPLING_TARGET = 5.0  # the sampler should give at least 5x the naive loop's completions per second


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="toy-chain_sum-strong",
                        help="model short name or path (default: %(default)s; toy models are built on first use, "
                             "minutes; `micro-chain_sum-strong` builds in seconds)")
    parser.add_argument("--task", default=None,
                        help="task to draw prompts from (default: the toy model's own task, else chain_sum)")
    parser.add_argument("--prompts", type=int, default=32, help="evaluation problems (default: %(default)s)")
    parser.add_argument("--n", type=int, default=8, help="completions per prompt (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="generation budget per completion (default: the task's own budget)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature, the study's rollout setting (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=512,
                        help="sequences per generate call of the sampler (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="problem and sampling seed (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")


def run_sampling(args: argparse.Namespace) -> dict[str, Any]:
    """Completions/s and tokens/s of TransformersSampler and of a naive loop, on the same prompts, in one run."""
    for name in ("prompts", "n", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")

    import torch

    from mtalign import models
    from mtalign.sampling import SamplingParams, TransformersSampler

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    task = _task_for(args.model, args.task)  # before loading: a bad task name fails before a toy model is built
    loaded = models.load(args.model, seed=0)
    loaded.model.to(args.device)
    problems = task.problems("eval", n=args.prompts, seed=args.seed)
    prompts = [loaded.render(task, problem) for problem in problems]
    params = SamplingParams(n=args.n, temperature=args.temperature, seed=args.seed, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens or getattr(task, "max_new_tokens", 128))
    sampler = TransformersSampler(loaded.model, loaded.tokenizer)
    batched_generate = TransformersSampler(loaded.model, loaded.tokenizer, decoder="generate")

    # Warm up both paths once (first calls pay for allocation and kernel selection), then time each on its own.
    warmup = dataclasses.replace(params, n=1)
    _naive_generate(loaded, sampler.eos_ids, prompts[:1], warmup)
    sampler.generate(prompts[:1], warmup)
    results = {}
    batched_generate.generate(prompts[:1], warmup)
    for method, generate in (("naive", lambda: _naive_generate(loaded, sampler.eos_ids, prompts, params)),
                             ("generate", lambda: batched_generate.generate(prompts, params)),
                             ("sampler", lambda: sampler.generate(prompts, params))):
        start = time.perf_counter()
        samples = generate()
        seconds = time.perf_counter() - start
        results[method] = _figures(samples, problems, task, seconds)
    figures = {
        "model": args.model, "task": task.name, "prompts": len(prompts), "n": params.n,
        "max_new_tokens": params.max_new_tokens, "temperature": params.temperature, "threads": threads,
        "device": str(args.device), **results,
        "speedup": results["sampler"]["completions_per_s"] / results["naive"]["completions_per_s"],
        "speedup_tokens": results["sampler"]["tokens_per_s"] / results["naive"]["tokens_per_s"],
        "decoder": sampler.decoder,
        "speedup_vs_generate": results["sampler"]["tokens_per_s"] / results["generate"]["tokens_per_s"],
        "target": SAMPLING_TARGET,
    }
    _print_sampling(figures)
    return figures


def _task_for(model: str, task_name: str | None):
    """The task whose prompts the benchmark samples; a toy model gets its own task at its world's difficulty."""
    from mtalign import toyworld
    from mtalign.tasks import get_task

    difficulty: dict[str, Any] = {}
    if model in toyworld.list_models():
        spec = toyworld.spec(model)
        task_name = task_name or spec.task
        if task_name == spec.task:
            difficulty = spec.task_difficulty
    return get_task(task_name or "chain_sum", **difficulty)


def _naive_generate(loaded, stop_ids: list[int], prompts: list[str], params) -> list[list[Any]]:
    """The baseline a first script would write: one `generate` call per completion, one prompt, one sequence.

    Same model, stop tokens, temperature and budget as the sampler, and the KV cache on (generate's default); it
    does less work than the sampler, which also returns per-token log-probs.
    """
    import torch

    from mtalign.sampling import Sample

    tokenizer, model = loaded.tokenizer, loaded.model
    device = next(model.parameters()).device
    greedy = params.temperature == 0
    torch.manual_seed(params.seed)
    out = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        samples = []
        for _ in range(params.n):
            with torch.no_grad():
                sequence = model.generate(
                    **enc, do_sample=not greedy, temperature=None if greedy else params.temperature,
                    top_p=None if greedy else params.top_p, top_k=None, max_new_tokens=params.max_new_tokens,
                    eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id,
                )
            ids = sequence[0, enc.input_ids.shape[1]:].tolist()  # one sequence: no padding, ends at its stop
            samples.append(Sample(tokenizer.decode(ids, skip_special_tokens=True), ids, []))
        out.append(samples)
    return out


def _figures(samples: list[list[Any]], problems, task, seconds: float) -> dict[str, float]:
    completions = sum(len(group) for group in samples)
    tokens = sum(len(sample.token_ids) for group in samples for sample in group)
    # Mean ground-truth reward: both methods sample the same policy, so these should agree within noise.
    rewards = [task.score(sample.text, problem).reward for group, problem in zip(samples, problems) for sample in group]
    return {"completions": completions, "tokens": tokens, "seconds": seconds,
            "completions_per_s": completions / seconds, "tokens_per_s": tokens / seconds,
            "reward_mean": sum(rewards) / len(rewards)}


def _print_sampling(f: dict[str, Any]) -> None:
    print(f"sampling benchmark: {f['model']} on {f['task']}, {f['prompts']} prompts x {f['n']} completions, "
          f"at most {f['max_new_tokens']} new tokens, temperature {f['temperature']}, {f['threads']} thread(s), "
          f"{f['device']}")
    print("  naive   = model.generate once per completion (one prompt, one sequence per call)")
    print("  generate = TransformersSampler(decoder='generate'): batched transformers generate, per-token log-probs")
    print(f"  sampler = TransformersSampler, its default decoder ({f['decoder']}; mtalign.decode for plain Llama "
          "models): the same tokens")
    print(f"{'method':<8} {'completions':>11} {'tokens':>8} {'seconds':>8} {'completions/s':>14} {'tokens/s':>10} "
          f"{'reward':>7}")
    for method in ("naive", "generate", "sampler"):
        r = f[method]
        print(f"{method:<8} {r['completions']:>11d} {r['tokens']:>8d} {r['seconds']:>8.3f} "
              f"{r['completions_per_s']:>14.1f} {r['tokens_per_s']:>10.1f} {r['reward_mean']:>7.3f}")
    verdict = "met" if f["speedup"] >= f["target"] else "NOT met"
    print(f"speed-up: {f['speedup']:.1f}x completions/s, {f['speedup_tokens']:.1f}x tokens/s "
          f"(target >= {f['target']:g}x completions/s: {verdict}); {f['speedup_vs_generate']:.1f}x tokens/s over "
          "batched generate")


# -- the registry: name -> benchmark. `mtalign bench` alone runs DEFAULT with its default settings. ---------------
from mtalign import bench_run, bench_train  # noqa: E402  (standard library only at import time)

BENCHMARKS: dict[str, Benchmark] = {
    "sampling": Benchmark("sampling throughput: mtalign's batched sampler vs a naive one-at-a-time generate loop",
                          add_sampling_arguments, run_sampling),
    "train_step": Benchmark("seconds per training step: the study engine vs a plain TRL GRPOTrainer",
                            bench_train.add_arguments, bench_train.run),
    "run": Benchmark("one RL run end to end: time, FLOPs and floor per part; old vs new generation path",
                     bench_run.add_arguments, bench_run.run),
}
DEFAULT = "sampling"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="which", metavar="BENCHMARK",
                                help=f"which benchmark (default: {DEFAULT}); `mtalign bench BENCHMARK --help` "
                                     f"lists its options")
    for name, benchmark in BENCHMARKS.items():
        benchmark.add_arguments(sub.add_parser(name, help=benchmark.help, description=benchmark.help))


def run(args: argparse.Namespace) -> int:
    if args.which is None:
        defaults = argparse.ArgumentParser()
        BENCHMARKS[DEFAULT].add_arguments(defaults)
        args = defaults.parse_args([])
        args.which = DEFAULT
    BENCHMARKS[args.which].run(args)
    return 0
