"""The GPU check of the training engine (run by scripts/gpu_check.sh; docs/scaling.md).

On a machine with one GPU, torch and transformers (and the rest of mtalign's pins), no internet and maybe no vLLM: build
a micro toy model there, train it a few steps on CUDA through every engine path that touches the device (token
log-probs and entropies for entropy_min, dynamic sampling, TTRL's extra votes, held-out evaluation and pass@k), and,
when vLLM is installed, once more with vLLM colocated. With `--real-model NAME` (a cached Hugging Face model, a local
folder, or smollm2-135m) it then runs the real path on that model: the preflight (cached, fits the GPU at the paper
preset), pass@k on the MATH-500 fixture through its chat template and math_verify, and a rehearsal-preset run on the
DeepScaleR fixture in bf16. It prints one line per verified fact, then a verdict, and exits 1 if any check failed.
`--device cpu` runs the same checks without a GPU (to test this script itself).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = ("torch", "transformers", "trl", "accelerate", "datasets", "reasoning_gym", "yaml", "numpy")
results: list[tuple[bool, str]] = []


def check(ok: bool, what: str) -> bool:
    results.append((bool(ok), what))
    print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
    return bool(ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="micro-chain_sum-strong",
                        help="toy model to build and train (default: %(default)s, seconds; toy-* take minutes)")
    parser.add_argument("--steps", type=int, default=3, help="rollout steps per check run (default: %(default)s)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="cuda (the check) or cpu (to test this script on a machine without a GPU)")
    parser.add_argument("--skip-vllm", action="store_true", help="do not try vLLM even when it is installed")
    parser.add_argument("--real-model", help="also check the real path on this model: a cached Hugging Face name "
                                             "(e.g. Qwen/Qwen2.5-0.5B-Instruct), a local folder, or smollm2-135m")
    parser.add_argument("--skip-toy", action="store_true", help="only the real-model checks (needs --real-model)")
    args = parser.parse_args()
    if args.skip_toy and not args.real_model:
        parser.error("--skip-toy needs --real-model")

    missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        print(f"gpu_check: missing packages {', '.join(missing)}; install the project first: pip install -e .")
        return 2
    sys.path.insert(0, str(ROOT))
    import torch

    print(f"gpu_check: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    if args.device == "cuda":
        if not check(torch.cuda.is_available(), "a CUDA device is visible to torch"):
            return 1
        print(f"  device: {torch.cuda.get_device_name(0)}, "
              f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the engine picks CUDA whenever torch sees it

    tmp = Path(tempfile.mkdtemp(prefix="mtalign-gpu-check-"))
    # A real model is read from the user's Hugging Face cache; everything the check writes goes to a temporary folder.
    hf_home = {} if args.real_model else {"HF_HOME": str(tmp / "hf")}
    os.environ.update(MTALIGN_CACHE=str(tmp / "cache"), MTALIGN_OUTPUTS=str(tmp / "outputs"), HF_HUB_OFFLINE="1",
                      HF_DATASETS_CACHE=str(tmp / "datasets"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "4"),
                      **hf_home)
    from mtalign import models, runinfo, train

    bf16 = args.device == "cuda" and torch.cuda.is_bf16_supported()
    if args.skip_toy:
        real_check(args, tmp, bf16)
        return verdict(args)

    started = time.time()
    loaded = models.load(args.model, log=lambda m: print(f"  {m}"))
    check(True, f"built toy model {args.model} here, offline ({time.time() - started:.0f}s)")
    settings = {"bf16": bf16, "steps": args.steps}

    def run(variant: str, **extra) -> tuple[dict, Path, dict]:
        from transformers import TrainerCallback

        seen: dict = {}

        class Spy(TrainerCallback):
            def on_step_end(self, _args, state, control, model=None, **kwargs):
                seen["device"] = str(next(model.parameters()).device)
                if torch.cuda.is_available():
                    seen["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30

        out = tmp / "runs" / variant
        policy = copy.deepcopy(loaded)
        before = {k: v.detach().cpu().clone() for k, v in policy.model.named_parameters()}
        started = time.time()
        summary = train.train(model=policy, variant=variant, preset="smoke", out=out,
                              settings={**settings, **extra}, callbacks=[Spy()], log=lambda m: print(f"    {m}"))
        changed = any(not torch.equal(before[k], v.detach().cpu()) for k, v in policy.model.named_parameters())
        seen.update(changed=changed, seconds=time.time() - started)
        return summary, out, seen

    for variant, why in (("entropy_min", "token log-probs on the device, a reward with variance in every group"),
                         ("ground_truth", "dynamic sampling (drop, redraw, fill) and the ground-truth verifier"),
                         ("majority_vote_source", "TTRL's extra voters generated on the device")):
        print(f"- {variant}: {why}")
        try:
            summary, out, seen = run(variant)
        except Exception:
            traceback.print_exc()
            check(False, f"{variant}: trained {args.steps} steps without an error")
            continue
        metrics = runinfo.read_jsonl(out / "metrics.jsonl")
        check(seen.get("device", "").startswith(args.device), f"{variant}: the policy trained on {seen.get('device')}")
        check(len(metrics) == args.steps and all(math.isfinite(m["loss"]) for m in metrics),
              f"{variant}: a finite loss was logged at each of {args.steps} steps ({seen['seconds']:.0f}s"
              + (f", peak {seen['peak_gib']:.2f} GiB" if "peak_gib" in seen else "") + ")")
        if variant == "entropy_min":
            check(seen["changed"] and any(m["grad_norm"] > 0 for m in metrics), f"{variant}: the parameters changed")
            check(params_say(out, "bf16") == bf16, f"{variant}: bf16 mixed precision is {'on' if bf16 else 'off'}")
        check((out / "summary.json").exists() and len(runinfo.read_jsonl(out / "eval.jsonl")) == args.steps + 1,
              f"{variant}: held-out evaluations and pass@k written "
              f"(accuracy {summary['before']['accuracy']:.2f} -> {summary['after']['accuracy']:.2f})")

    if args.skip_vllm:
        print("- vLLM: skipped (--skip-vllm)")
    elif importlib.util.find_spec("vllm") is None:
        print("- vLLM: not installed here, not exercised (pip install -e '.[gpu]' installs vllm==0.31.0)")
    elif args.device != "cuda":
        print("- vLLM: needs a GPU, not exercised on cpu")
    else:
        print("- vLLM colocated with training (TRL's vllm_mode=colocate, one process via torchrun)")
        vllm_check(tmp, args)

    if args.real_model:
        real_check(args, tmp, bf16)
    return verdict(args)


def verdict(args) -> int:
    failed = [what for ok, what in results if not ok]
    print(f"gpu_check: {len(results) - len(failed)} of {len(results)} checks passed"
          + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    ready = "the lite grid (params/grids/lite.yaml)" if args.real_model else "the engine (add --real-model for a model)"
    print(f"gpu_check: verdict: {'NOT READY' if failed else 'READY'} for {ready} on {args.device}")
    return 1 if failed else 0


def real_check(args, tmp: Path, bf16: bool) -> None:
    """The real path on a real model, on the hub fixtures (the datasets themselves need not be cached)."""
    from mtalign import alignment, models, runinfo, train

    name, hub = args.real_model, ROOT / "tests" / "fixtures" / "hub"
    data = {"deepscaler": {"data_path": str(hub / "deepscaler" / "deepscaler.json")},
            "math500": {"data_path": str(hub / "math500")}}
    print(f"- the real path on {name} (hub fixtures, rehearsal preset, bf16 {'on' if bf16 else 'off'})")
    try:
        models.preflight(name, training=True, bf16=bf16, what="training at preset 'paper'")
    except Exception as err:  # noqa: BLE001 - reported as a failed check, the message says what to do
        check(False, f"{name}: preflight ({err})")
        return
    fits = "" if name == models.SMOLLM else \
        "; fits this device's free memory at the paper preset (weights, gradients, AdamW)"
    check(True, f"{name}: preflight passed (available here{fits})")
    started = time.time()
    try:
        record = alignment.measure(name, "math500", n=4, problems=4, max_new_tokens=256, task_kwargs=data["math500"],
                                   out=tmp / "alignment", backend="transformers", progress=False,
                                   log=lambda m: print(f"    {m}"))
    except Exception:
        traceback.print_exc()
        check(False, f"{name}: pass@k on the MATH-500 fixture")
        return
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(models.smollm_checkpoint() if name == models.SMOLLM else name)
    check(record["sampling"]["prompt_style"] == "chat", f"{name}: prompts rendered with its chat template "
                                                        f"(style {record['sampling']['prompt_style']})")
    check(not any(t in e["completion"] for e in record["examples"] for t in tokenizer.all_special_tokens),
          f"{name}: completions decoded without special tokens")
    curve = ", ".join(f"{k} {v:.2f}" for k, v in record["summary"].items())
    check(True, f"{name}: pass@k on the MATH-500 fixture, 4 problems x 4 samples, math_verify: {curve} "
                f"({time.time() - started:.0f}s)")
    out = tmp / "runs" / "real"
    started = time.time()
    try:
        summary = train.train(model=name, task="deepscaler", eval_tasks=["math500"], task_kwargs=data,
                              preset="rehearsal", settings={"bf16": bf16, "steps": args.steps}, out=out,
                              log=lambda m: print(f"    {m}"))
    except Exception:
        traceback.print_exc()
        check(False, f"{name}: a rehearsal-preset run of {args.steps} steps")
        return
    metrics = runinfo.read_jsonl(out / "metrics.jsonl")
    check(len(metrics) == args.steps and all(math.isfinite(m["loss"]) for m in metrics),
          f"{name}: {args.steps} rehearsal-preset steps on the DeepScaleR fixture, a finite loss each "
          f"({time.time() - started:.0f}s)")
    check(params_say(out, "bf16") == bf16, f"{name}: bf16 mixed precision is {'on' if bf16 else 'off'}")
    check(all("truncated_frac" in m for m in metrics),
          f"{name}: truncation at max_completion_length counted (truncated_frac "
          f"{', '.join(str(round(m['truncated_frac'], 2)) for m in metrics)})")
    check((out / "summary.json").exists(), f"{name}: held-out accuracy {summary['before']['accuracy']:.2f} -> "
                                           f"{summary['after']['accuracy']:.2f} written")


def params_say(out: Path, key: str):
    from mtalign import runinfo

    return runinfo.read_json(out / "params.json")["trl"][key]


def vllm_check(tmp: Path, args) -> None:
    """vLLM colocate needs torch.distributed even on one GPU, so the run goes through torchrun."""
    from mtalign import runinfo

    out = tmp / "runs" / "vllm"
    params = tmp / "vllm.yaml"
    params.write_text("settings: {use_vllm: true, vllm_mode: colocate, vllm_gpu_memory_utilization: 0.2, "
                      f"steps: {args.steps}}}\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(port),
               "-m", "mtalign", "train", "--model", args.model, "--preset", "smoke", "--variant", "ground_truth",
               "--params", str(params), "--out", str(out)]
    started = time.time()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-4000:], sep="\n")
    check(result.returncode == 0, f"vLLM: a {args.steps}-step run finished ({time.time() - started:.0f}s)")
    if result.returncode == 0:
        check(params_say(out, "use_vllm") is True, "vLLM: TRL generated the rollouts with vLLM (use_vllm recorded)")
        check(len(runinfo.read_jsonl(out / "metrics.jsonl")) == args.steps, "vLLM: every step's metrics were logged")


if __name__ == "__main__":
    sys.exit(main())
