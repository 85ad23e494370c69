"""Run benchmark: one RL run end to end, its time split into parts, each part against its floor (matmuls, cache reads).

    mtalign bench run [--model toy-chain_sum-strong] [--variant ground_truth] [--seed 0] [--no-compare] [--save-costs]

It trains one run exactly as `mtalign train` does (the frozen preset, one thread, a temporary output folder) and
times in CPU seconds (on a shared machine, what the run costs a core of its own), by wrapping the functions that do
them: set-up (imports, model load, trainer construction and data), rollout
generation, the policy's forward and backward passes, the optimiser, reward scoring, held-out evaluation, and the
rest (TRL's bookkeeping, tokenisation, advantages, logging, files). Each part's FLOPs are counted from the tokens it
processed (2 x matmul parameters per token forward, plus attention; backward twice the forward) and set against a
single-thread matmul rate measured in the same process on the model's own weight shapes: the part's *floor* is the
time those FLOPs take at that rate, and the run's fraction of the floor is the sum of the floors over the run's time.
Generation's floor also counts the bytes decoding must read: each decoding step attends over every earlier position
of its row, so it reads the row's whole KV cache (float32) once per token: a roofline's memory term, those bytes at
a single-thread read rate measured in the same process, added to the matmuls' time.

With comparison on (the default), every generation call also runs transformers' `generate` (the old path) on the
same inputs and random state before the new decode loop, checks that both give the same tokens, and reports both
times; the old path's time is left out of the run's parts and total.

`mtalign bench run` computes bf16 matmuls as every mtalign command does (mtalign/cpu_bf16.py on a CPU without bf16
instructions); `python -m mtalign.bench_run` leaves torch's own kernels in place, so the two side by side show what
that kernel changes on such a CPU (the first lines of each say which kernel ran).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mtalign import cpu_bf16


def _now() -> float:
    """CPU seconds of this process: on a shared machine a one-thread run's wall time counts the time other processes
    held its core; its CPU time is what the run costs one core of its own (wall time is reported beside it)."""
    return time.process_time()


PARTS = ("set-up", "rollout generation", "policy forward/backward", "optimiser", "reward scoring",
         "held-out evaluation", "rest")
ADAMW_FLOPS_PER_PARAMETER = 12  # moments, bias correction, decay, update: elementwise work, not matmuls
TARGETS = {"chain_sum": 30.0, "mini_sudoku": 45.0}  # issue 7: seconds per toy run on one core
FLOOR_TARGET = 0.60
KV_BYTES = 4  # the decode loop's KV cache is float32: sampling computes in float32 (mtalign/precision.py)
READ_MEGABYTES = 32  # the read rate's buffer: about one 128-row decode call's KV cache at the toy shapes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="toy-chain_sum-strong",
                        help="model short name (default: %(default)s; toy models are built on first use, minutes)")
    parser.add_argument("--variant", default="ground_truth", help="variant to train (default: %(default)s)")
    parser.add_argument("--preset", default="toy", help="frozen settings (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="override the preset's steps (default: the preset's; fewer steps is not a toy run)")
    parser.add_argument("--save-costs", action="store_true",
                        help="keep this run's cost entry as this machine's own (the cache folder's costs.json), which "
                             "`mtalign study --dry-run` then uses for the model's family instead of moving the "
                             "committed params/costs.yaml entry here")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="skip timing transformers' generate beside the new decode loop")
    parser.add_argument("--trim-micro-batch", type=int, metavar="N", default=None,
                        help="measure a candidate lever that is NOT the study's engine: the update's forward passes "
                             "take each batch as length-sorted micro-batches of N completions, each cut to its "
                             "longest completion (padding is not computed; the log-probs are the same up to "
                             "rounding, so the run's numbers differ from the study's in rounding)")


class _Clock:
    """Seconds, calls and FLOPs per part, plus the old generation path's figures."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.flops: dict[str, float] = defaultdict(float)
        self.bytes: dict[str, float] = defaultdict(float)  # KV cache read by decoding (generation's memory floor)
        self.tokens: dict[str, int] = defaultdict(int)
        self.completions: dict[str, int] = defaultdict(int)
        self.old = {"rollout": [0.0, 0.0, 0], "evaluation": [0.0, 0.0, 0]}  # old s, new s, calls
        self.mismatches = 0
        self.nested_old = 0.0  # old-path seconds so far (subtracted from the parts they ran inside)
        self._inner: list[float] = []  # per open part: seconds of the parts timed inside it

    @contextlib.contextmanager
    def part(self, name: str):
        """Time a part exclusively: parts timed inside it, and old-path generation, are not counted twice."""
        started, nested = _now(), self.nested_old
        self._inner.append(0.0)
        try:
            yield
        finally:
            inner = self._inner.pop()
            elapsed = _now() - started - (self.nested_old - nested)
            self.seconds[name] += elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed


class _Shapes:
    """FLOP counts of the model's forward pass per token (its matmuls, and attention over the context)."""

    def __init__(self, model):
        import torch

        config = model.config
        self.layers, self.hidden = config.num_hidden_layers, config.hidden_size
        self.matmul_params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        self.parameters = sum(p.numel() for p in model.parameters())
        self.weights = [tuple(m.weight.shape) for m in model.modules() if isinstance(m, torch.nn.Linear)]
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.cache_bytes_per_position = 2 * self.layers * kv_heads * head_dim * KV_BYTES  # K and V, every layer

    def forward(self, lengths, prefix=None) -> float:
        """Forward FLOPs of sequences of `lengths` tokens (each token attends to those before it and itself);
        `prefix`: tokens already in the cache before them (generation after the prompt)."""
        prefix = prefix or [0] * len(lengths)
        attention = sum(4 * self.layers * self.hidden * ((p + n) * (p + n + 1) - p * (p + 1)) / 2
                        for n, p in zip(lengths, prefix))
        return 2 * self.matmul_params * sum(lengths) + attention

    def cache_reads(self, lengths, prefix) -> float:
        """Bytes of KV cache that decoding completions of `lengths` tokens after prompts of `prefix` real tokens must
        read: a row of n tokens takes n - 1 decoding steps (its first token comes from the prompt's forward pass), and
        the step after token t reads the p + t cached positions before it (padding not counted: a floor)."""
        return self.cache_bytes_per_position * sum((n - 1) * p + (n - 1) * n / 2
                                                   for n, p in zip(lengths, prefix) if n > 1)


def read_rate(megabytes: int = READ_MEGABYTES, seconds: float = 0.5) -> float:
    """Bytes/s one thread reads streaming through a float32 buffer of `megabytes`: the best rate at which decoding's
    attention can read a KV cache of that size (it reads each cached key and value once per step)."""
    import torch

    x = torch.ones(megabytes * 2**20 // 4)
    x.sum()
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or calls < 3:
        x.sum()
        calls += 1
    return calls * x.numel() * 4 / elapsed


def matmul_rate(shapes: _Shapes, rows: int, seconds: float = 0.5, dtype: str = "float32") -> float:
    """FLOP/s of one thread on `x @ W.T` for every weight shape of the model, `rows` rows at a time, in `dtype`."""
    return weights_rate(shapes.weights, rows, seconds, dtype)


def weights_rate(weight_shapes, rows: int, seconds: float = 0.5, dtype: str = "float32") -> float:
    """FLOP/s of `x @ W.T` for each `(out, in)` weight shape, `rows` rows at a time, on `dtype` operands; bfloat16
    under CPU autocast, as the update computes it, so with the kernel this machine's autocast uses (mtalign/cpu_bf16.py
    on a CPU without bf16 instructions, torch's native one elsewhere, where this is the plain bf16 matmul's rate)."""
    import torch
    import torch.nn.functional as F

    weights = [torch.randn(out, inp, dtype=getattr(torch, dtype)) for out, inp in weight_shapes]
    inputs = {inp: torch.randn(rows, inp, dtype=getattr(torch, dtype)) for _, inp in weight_shapes}
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with torch.no_grad(), autocast:
        for w in weights:  # warm-up
            F.linear(inputs[w.shape[1]], w)
        flops, repeats, started = 0.0, 0, _now()
        while _now() - started < seconds or repeats < 3:
            for w in weights:
                F.linear(inputs[w.shape[1]], w)
                flops += 2 * rows * w.numel()
            repeats += 1
    return flops / (_now() - started)


def trimmed_micro_batches(original, rows: int):
    """`original` (the trainer's `_get_per_token_logps_and_entropies`) over length-sorted micro-batches of `rows`
    completions, each cut to its longest completion: TRL pads every completion of a step to the step's longest, and
    the update computes that padding (`mtalign bench run` prints its share). A candidate lever for the study's engine,
    measured here only: cutting a causal model's inputs on the right leaves every kept position's log-prob the same up
    to the rounding of a smaller matmul, and the loss reads kept positions only (the completion mask)."""
    import torch

    def logps(self, model, input_ids, attention_mask, logits_to_keep, *rest, **kwargs):
        prompt_width = input_ids.shape[1] - logits_to_keep
        lengths = attention_mask[:, prompt_width:].sum(-1)
        order = torch.argsort(lengths, descending=True, stable=True)
        all_logps = all_entropies = None
        for start in range(0, len(order), rows):
            chunk = order[start:start + rows]
            keep = max(int(lengths[chunk].max()), 1)
            chunk_logps, chunk_entropies, _ = original(self, model, input_ids[chunk, :prompt_width + keep],
                                                       attention_mask[chunk, :prompt_width + keep], keep, *rest,
                                                       **kwargs)
            if all_logps is None:
                all_logps = chunk_logps.new_zeros(len(order), logits_to_keep)
                all_entropies = None if chunk_entropies is None else chunk_entropies.new_zeros(len(order),
                                                                                               logits_to_keep)
            all_logps[chunk, :keep] = chunk_logps
            if chunk_entropies is not None:
                all_entropies[chunk, :keep] = chunk_entropies
        return all_logps, all_entropies, None

    return logps


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.trim_micro_batch is not None and args.trim_micro_batch < 1:
        raise ValueError(f"--trim-micro-batch must be at least 1, got {args.trim_micro_batch}")
    clock = _Clock()
    wall_started, cpu_started = time.perf_counter(), _now()
    with clock.part("set-up"):
        import torch
        import transformers  # noqa: F401
        import trl  # noqa: F401
        from accelerate import Accelerator
        from transformers import TrainerCallback

        from mtalign import evaluate, models, sampling, train
        from mtalign import trainer as engine
    imports_s = clock.seconds["set-up"]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    resolved = train.resolve(model=args.model, variant=args.variant, preset=args.preset, seed=args.seed,
                             steps=args.steps)  # bad names fail here, before a model is loaded
    preset_steps = train.resolve(model=args.model, variant=args.variant, preset=args.preset,
                                 seed=args.seed).settings.steps  # the targets judge only a whole toy run
    state: dict[str, Any] = {"settings": resolved.settings}
    patches = []

    def patch(owner, name, make):
        original = getattr(owner, name)
        patches.append((owner, name, original))
        setattr(owner, name, make(original))

    def timed_load(original):
        def load(*a, **kw):
            with clock.part("set-up"):
                loaded = original(*a, **kw)
            state["shapes"] = _Shapes(loaded.model)
            return loaded
        return load

    def timed_rollouts(original):
        def generate(self, prompt_ids, *rest, **kw):
            if args.compare and self.fast_decode and self._fast_decode_ok(*rest[:2]):
                rng = torch.random.get_rng_state()
                self.fast_decode, started = False, _now()
                try:
                    old = original(self, prompt_ids, *rest, **kw)
                finally:
                    self.fast_decode = True
                old_s = _now() - started
                clock.nested_old += old_s
                torch.random.set_rng_state(rng)
            else:
                old, old_s = None, None
            started = _now()
            with clock.part("rollout generation"):
                result = original(self, prompt_ids, *rest, **kw)
            if old is not None:
                clock.old["rollout"][0] += old_s
                clock.old["rollout"][1] += _now() - started
                clock.old["rollout"][2] += 1
                clock.mismatches += old[0] != result[0]
            lengths = [len(c) for c in result[0]]
            clock.completions["rollout generation"] += len(lengths)
            clock.tokens["rollout generation"] += sum(lengths)
            clock.flops["rollout generation"] += state["shapes"].forward([len(p) for p in prompt_ids]) + \
                state["shapes"].forward(lengths, prefix=[len(p) for p in prompt_ids])
            clock.bytes["rollout generation"] += state["shapes"].cache_reads(lengths, [len(p) for p in prompt_ids])
            return result
        return generate

    def timed_eval_sampling(original):
        def sample(self, enc, params):
            if args.compare and self.decoder == "mtalign":
                rng = torch.random.get_rng_state()
                self.decoder, started = "generate", _now()
                try:
                    old = original(self, enc, params)
                finally:
                    self.decoder = "mtalign"
                old_s = _now() - started
                clock.nested_old += old_s
                torch.random.set_rng_state(rng)
            else:
                old, old_s = None, None
            started = _now()
            new, logprobs = original(self, enc, params)
            if old is not None:
                clock.old["evaluation"][0] += old_s
                clock.old["evaluation"][1] += _now() - started
                clock.old["evaluation"][2] += 1
                clock.mismatches += not torch.equal(old[0], new)
            prompt = enc.attention_mask.sum(-1).tolist()
            lengths = [sampling._length(row, self.eos_ids, self.tokenizer.pad_token_id) for row in new.tolist()]
            clock.completions["held-out evaluation"] += len(lengths)
            clock.tokens["held-out evaluation"] += sum(lengths)
            clock.flops["held-out evaluation"] += state["shapes"].forward(prompt) + \
                state["shapes"].forward(lengths, prefix=prompt)
            clock.bytes["held-out evaluation"] += state["shapes"].cache_reads(lengths, prompt)
            return new, logprobs
        return sample

    def timed(part, original):
        def wrapper(*a, **kw):
            with clock.part(part):
                return original(*a, **kw)
        return wrapper

    def counted_positions(original):
        def logps(self, model, input_ids, attention_mask, *a, **kw):
            # the update's forward passes (old log-probs, token signals, the loss): positions computed, and real ones
            clock.tokens["update positions computed"] += input_ids.numel()
            clock.tokens["update positions real"] += int(attention_mask.sum())
            return original(self, model, input_ids, attention_mask, *a, **kw)
        return logps

    def timed_logps(original):
        def logps(self, model, input_ids, attention_mask, *a, **kw):
            with clock.part("policy forward/backward"):
                result = original(self, model, input_ids, attention_mask, *a, **kw)
            if not state.get("in_loss"):  # TRL's old log-probs (two updates per step) or the engine's token signals
                clock.flops["policy forward/backward"] += state["shapes"].forward(attention_mask.sum(-1).tolist())
            return result
        return logps

    def timed_loss(original):
        def compute_loss(self, model, inputs, *a, **kw):
            state["in_loss"] = True
            try:
                with clock.part("policy forward/backward"):
                    result = original(self, model, inputs, *a, **kw)
            finally:
                state["in_loss"] = False
            prompt = inputs["prompt_mask"].sum(-1).tolist()
            completion = inputs["completion_mask"].sum(-1).tolist()
            # forward now, backward (twice the forward's FLOPs) in Accelerator.backward
            clock.flops["policy forward/backward"] += 3 * state["shapes"].forward(
                [p + c for p, c in zip(prompt, completion)])
            clock.tokens["policy forward/backward"] += int(sum(prompt) + sum(completion))
            clock.completions["policy forward/backward"] += len(prompt)
            return result
        return compute_loss

    class OptimiserClock(TrainerCallback):
        def on_pre_optimizer_step(self, *a, **kw):
            state["optimiser"] = _now()

        def on_optimizer_step(self, *a, **kw):
            clock.seconds["optimiser"] += _now() - state.pop("optimiser")
            clock.flops["optimiser"] += ADAMW_FLOPS_PER_PARAMETER * state["shapes"].parameters

    patch(models, "load", timed_load)
    patch(train, "build", lambda original: timed("set-up", original))
    patch(engine.StudyGRPOTrainer, "_generate_single_turn", timed_rollouts)
    patch(sampling.TransformersSampler, "_sample", timed_eval_sampling)
    patch(engine, "score_rows", lambda original: timed("reward scoring", original))
    patch(evaluate, "heldout", lambda original: timed("held-out evaluation", original))
    patch(engine.StudyGRPOTrainer, "compute_loss", timed_loss)
    patch(engine.StudyGRPOTrainer, "_get_per_token_logps_and_entropies", counted_positions)
    if args.trim_micro_batch:
        patch(engine.StudyGRPOTrainer, "_get_per_token_logps_and_entropies",
              lambda original: trimmed_micro_batches(original, args.trim_micro_batch))
    patch(engine.StudyGRPOTrainer, "_get_per_token_logps_and_entropies", timed_logps)
    patch(Accelerator, "backward", lambda original: timed("policy forward/backward", original))
    try:
        with tempfile.TemporaryDirectory(prefix="mtalign-bench-run-") as tmp:
            summary = train.train(model=args.model, variant=args.variant, preset=args.preset, seed=args.seed,
                                  steps=args.steps, out=Path(tmp) / "run", callbacks=[OptimiserClock()],
                                  log=lambda _: None)
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)
    total = _now() - cpu_started - clock.nested_old
    wall = time.perf_counter() - wall_started
    clock.seconds["rest"] = total - sum(clock.seconds[p] for p in PARTS if p != "rest")

    shapes = state["shapes"]
    # the update's matmuls run at the preset's precision (bf16 autocast on a CPU: mtalign/precision.py), sampling's in
    # float32: each part's floor is set against the rate of the dtype it computes in
    training_dtype = "bfloat16" if state["settings"].bf16 and not torch.cuda.is_available() else "float32"
    rates = {"decode": matmul_rate(shapes, rows=128),
             "training": matmul_rate(shapes, rows=4096, dtype=training_dtype)}
    rate_of = {"rollout generation": rates["decode"], "held-out evaluation": rates["decode"],
               "policy forward/backward": rates["training"]}
    reads = read_rate()  # bytes/s: what the decoding steps' KV-cache reads cost at best
    parts = {}
    for p in PARTS:
        flops, cache = clock.flops.get(p, 0.0), clock.bytes.get(p, 0.0)
        matmul_floor = flops / rate_of[p] if p in rate_of else 0.0
        parts[p] = {"seconds": clock.seconds[p], "share": clock.seconds[p] / total, "gflop": flops / 1e9,
                    "gflop_per_s": flops / 1e9 / clock.seconds[p] if flops and clock.seconds[p] else None,
                    "cache_gb": cache / 1e9, "matmul_floor_seconds": matmul_floor,
                    "floor_seconds": matmul_floor + cache / reads,
                    "tokens": clock.tokens.get(p), "completions": clock.completions.get(p)}
    floor_total = sum(v["floor_seconds"] for v in parts.values())
    old = {kind: {"old_seconds": o, "new_seconds": n, "calls": c, "speedup": o / n if n else None}
           for kind, (o, n, c) in clock.old.items() if c}
    figures = {
        "model": args.model, "task": summary["task"], "variant": args.variant, "seed": args.seed,
        "preset": args.preset, "steps": summary["steps"], "threads": torch.get_num_threads(),
        "shape": (f"{state['settings'].prompts_per_step} prompts x {state['settings'].group_size}, "
                  f"{state['settings'].updates_per_step} update(s)/step"),
        "device": "cuda" if torch.cuda.is_available() else "cpu", "total_seconds": total, "wall_seconds": wall,
        "imports_seconds": imports_s, "parts": parts, "matmul_gflop_per_s": {k: v / 1e9 for k, v in rates.items()},
        "read_gb_per_s": reads / 1e9,
        "training_dtype": training_dtype, "cpu_bf16": cpu_bf16.kernel(),
        "floor_seconds": floor_total, "floor_fraction": floor_total / total, "generation_paths": old,
        "token_mismatches": clock.mismatches if old else None,
        "dominant": max((p for p in PARTS if p != "rest"), key=lambda p: parts[p]["seconds"]),
        "gain": summary["gain"], "floor_target": FLOOR_TARGET, "trim_micro_batch": args.trim_micro_batch,
        "update_positions": {"computed": clock.tokens.get("update positions computed", 0),
                             "real": clock.tokens.get("update positions real", 0)},
        # the targets are for the toy world's runs at the frozen toy preset, all its steps
        "target_seconds": TARGETS.get(summary["task"]) if args.preset == "toy" and args.model.startswith("toy-")
        and summary["steps"] == preset_steps else None,
    }
    figures["cost_entry"] = cost_entry(figures)
    _print(figures)
    if args.save_costs:
        from mtalign import cost

        saved = cost.save_local(cost.family(args.model), figures["cost_entry"])
        print(f"saved as this machine's costs of {cost.family(args.model)}: {saved} (mtalign study --dry-run uses it)")
    return figures


def cost_entry(f: dict[str, Any]) -> dict[str, float]:
    """This run's figures as an entry of params/costs.yaml (`mtalign.cost`): seconds per unit of work."""
    p = f["parts"]
    trained = p["policy forward/backward"]["completions"] or 1
    rollouts = p["rollout generation"]["completions"] or 0
    return {
        "setup_s": round(p["set-up"]["seconds"] - f["imports_seconds"], 2),
        "rollout_s": round((p["rollout generation"]["seconds"] + p["reward scoring"]["seconds"]) / max(1, rollouts), 5),
        "update_s": round((p["policy forward/backward"]["seconds"] + p["optimiser"]["seconds"] + p["rest"]["seconds"])
                          / trained, 5),
        "eval_s": round(p["held-out evaluation"]["seconds"] / max(1, p["held-out evaluation"]["completions"] or 0), 5),
        "generation_batches": round(rollouts / trained, 2),
        # matmul GFLOP per unit: what moves with a machine's matmul rate (mtalign.cost.PartCosts.on)
        "rollout_gflop": round(p["rollout generation"]["gflop"] / max(1, rollouts), 5),
        "update_gflop": round(p["policy forward/backward"]["gflop"] / trained, 5),
        "eval_gflop": round(p["held-out evaluation"]["gflop"] / max(1, p["held-out evaluation"]["completions"] or 0), 5),
    }


def _print(f: dict[str, Any]) -> None:
    print(f"run benchmark: {f['model']} on {f['task']}, {f['variant']} seed {f['seed']}, {f['preset']} preset "
          f"({f['steps']} steps of {f['shape']}), {f['threads']} thread(s), {f['device']}; held-out gain "
          f"{f['gain']:+.3f}")
    if f["trim_micro_batch"]:
        print(f"CANDIDATE LEVER, not the study's engine: the update in length-sorted micro-batches of "
              f"{f['trim_micro_batch']} completions cut to their longest (--trim-micro-batch); this run's numbers "
              "differ from the study's in rounding")
    rates = f["matmul_gflop_per_s"]
    print(f"matmul rate, this process, one thread, the model's weight shapes: {rates['decode']:.1f} GFLOP/s at "
          f"128 rows (generation, float32), {rates['training']:.1f} GFLOP/s at 4096 rows (training, "
          f"{f['training_dtype']})" + (f"; bf16 matmuls by {f['cpu_bf16']}" if f["training_dtype"] == "bfloat16" else ""))
    cache = {name: p["cache_gb"] for name, p in f["parts"].items() if p["cache_gb"]}
    if cache:
        print(f"memory: decoding reads each row's KV cache once per token ("
              + ", ".join(f"{name} {gb:.1f} GB" for name, gb in cache.items())
              + f"); this process reads {f['read_gb_per_s']:.1f} GB/s (one thread, a {READ_MEGABYTES} MB buffer), "
              "which the generation floors below add to their matmuls' time")
    print(f"seconds are CPU seconds of this process (one thread: the cost on a core of its own); wall time "
          f"{f['wall_seconds']:.1f}s" + (" including the old path's generation" if f["generation_paths"] else ""))
    print(f"{'part':<24} {'seconds':>8} {'share':>6} {'GFLOP':>7} {'GFLOP/s':>8} {'floor s':>8} {'of floor':>8}")
    for name, p in f["parts"].items():
        rate = f"{p['gflop_per_s']:.1f}" if p["gflop_per_s"] else "-"
        frac = f"{p['floor_seconds'] / p['seconds']:.0%}" if p["floor_seconds"] and p["seconds"] else "-"
        note = f"  ({f['imports_seconds']:.1f}s imports)" if name == "set-up" else ""
        print(f"{name:<24} {p['seconds']:>8.2f} {p['share']:>6.0%} {p['gflop']:>7.1f} {rate:>8} "
              f"{p['floor_seconds']:>8.2f} {frac:>8}{note}")
    print(f"{'total':<24} {f['total_seconds']:>8.2f} {'100%':>6} "
          f"{sum(p['gflop'] for p in f['parts'].values()):>7.1f} {'':>8} {f['floor_seconds']:>8.2f} "
          f"{f['floor_fraction']:>8.0%}")
    for kind, g in f["generation_paths"].items():
        print(f"{kind} generation, same inputs and random state: transformers generate {g['old_seconds']:.2f}s, "
              f"mtalign decode {g['new_seconds']:.2f}s ({g['speedup']:.1f}x, {g['calls']} calls)")
    if f["generation_paths"]:
        print(f"tokens differing between the two paths: {f['token_mismatches']} of "
              f"{sum(g['calls'] for g in f['generation_paths'].values())} calls")
    positions = f["update_positions"]
    if positions["computed"]:
        print(f"update forward passes: {positions['real']} real token positions of {positions['computed']} computed "
              f"({1 - positions['real'] / positions['computed']:.0%} padding: a step's completions are padded to its "
              "longest; --trim-micro-batch N measures cutting it)")
    print(f"dominant part: {f['dominant']}")
    entry = ", ".join(f"{k}: {v}" for k, v in f["cost_entry"].items())
    from mtalign import cost

    print(f"as a params/costs.yaml entry: {cost.family(f['model'])}: {{{entry}}} (imports {f['imports_seconds']:.1f}s: "
          "part of kernel_s)")
    if f["target_seconds"]:
        met = "met" if f["total_seconds"] <= f["target_seconds"] else "NOT met"
        floor_met = "met" if f["floor_fraction"] >= f["floor_target"] else "NOT met"
        print(f"target: a {f['task']} run <= {f['target_seconds']:.0f}s on one core ({met}); run at >= "
              f"{f['floor_target']:.0%} of its floor ({floor_met})")
    elif f["preset"] == "toy" and f["model"].startswith("toy-"):
        print(f"target: not judged ({f['steps']} steps is not a toy run; the targets are for the preset's whole run)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m mtalign.bench_run", description=__doc__.splitlines()[0])
    add_arguments(parser)
    run(parser.parse_args())
