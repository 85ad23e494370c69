"""One sampling interface, two backends: transformers (batched `generate`, CPU or GPU) and vLLM (GPU).

Both return, for every prompt, `n` samples with their text, token ids and per-token log-probabilities under the
temperature-scaled policy (before top-p truncation), so pass@k, rewards and entropy read the same structure.
Generation stops after `</answer>` (the end of the study's format) or at the model's end-of-sequence token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

STOP = "</answer>"


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0
    batch_size: int = 512  # sequences per `generate` call (transformers backend)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be at least 1")


@dataclass
class Sample:
    text: str
    token_ids: list[int]
    logprobs: list[float] = field(repr=False)

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


class TransformersSampler:
    """Batched sampling on the transformers model, deterministic for a given seed and batch size.

    `decoder="auto"` samples plain Llama models (the toy world) with `mtalign.decode.sample`, a loop without
    `generate`'s per-token overhead that draws the same tokens from the same random stream (its module docstring),
    and every other model with `generate`; `"generate"` forces transformers' `generate` (benchmarks compare the two).
    """

    backend = "transformers"
    DECODERS = ("auto", "generate", "mtalign")

    def __init__(self, model, tokenizer, decoder: str = "auto"):
        from mtalign import decode

        if decoder not in self.DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; valid decoders: {', '.join(self.DECODERS)}")
        reason = decode.unsupported(model)
        if decoder == "mtalign" and reason is not None:
            raise ValueError(f"decoder 'mtalign' cannot sample this model: {reason}; use decoder 'generate'")
        self.model, self.tokenizer = model, tokenizer
        self.decoder = "mtalign" if decoder == "mtalign" or (decoder == "auto" and reason is None) else "generate"
        tokenizer.padding_side = "left"
        self.eos_ids = stop_token_ids(tokenizer)

    def generate(self, prompts: Sequence[str], params: SamplingParams, progress: bool = False) -> list[list[Sample]]:
        import torch

        flat = [p for p in prompts for _ in range(params.n)]
        out: list[Sample] = []
        torch.manual_seed(params.seed)
        batches = range(0, len(flat), params.batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="sampling", unit="batch", leave=False)
        device = next(self.model.parameters()).device
        for start in batches:
            chunk = flat[start:start + params.batch_size]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            new, chosen = self._sample(enc, params)
            for row, lp in zip(new.tolist(), chosen.tolist()):
                length = _length(row, self.eos_ids, self.tokenizer.pad_token_id)
                ids = row[:length]
                out.append(Sample(self.tokenizer.decode(ids, skip_special_tokens=True), ids, lp[:length]))
        return [out[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    def _sample(self, enc, params: SamplingParams):
        """New tokens [batch, steps] (padding after a stop) and each token's log-prob at the sampling temperature."""
        import torch

        greedy = params.temperature == 0
        if self.decoder == "mtalign":
            from mtalign import decode

            result = decode.sample(
                self.model, enc.input_ids, enc.attention_mask, max_new_tokens=params.max_new_tokens,
                stop_ids=self.eos_ids, pad_id=self.tokenizer.pad_token_id, temperature=params.temperature,
                top_p=params.top_p, do_sample=not greedy, logprobs=True)
            return result.tokens, result.logprobs
        with torch.no_grad():
            gen = self.model.generate(
                **enc, do_sample=not greedy, temperature=None if greedy else params.temperature,
                top_p=None if greedy else params.top_p, top_k=None, max_new_tokens=params.max_new_tokens,
                eos_token_id=self.eos_ids, pad_token_id=self.tokenizer.pad_token_id,
                return_dict_in_generate=True, output_logits=True,
            )
        new = gen.sequences[:, enc.input_ids.shape[1]:]
        logits = torch.stack(gen.logits, dim=1).float()
        logprobs = torch.log_softmax(logits / max(params.temperature, 1e-6), dim=-1)
        return new, logprobs.gather(-1, new.unsqueeze(-1)).squeeze(-1)


class VLLMSampler:
    """vLLM backend (GPU). Same outputs as TransformersSampler; log-probs come from vLLM's sampler."""

    backend = "vllm"

    def __init__(self, model_path: str, tokenizer, gpu_memory_utilization: float = 0.5, **kwargs):
        from vllm import LLM

        self.tokenizer = tokenizer
        self.llm = LLM(model=model_path, gpu_memory_utilization=gpu_memory_utilization, **kwargs)

    def generate(self, prompts: Sequence[str], params: SamplingParams, progress: bool = False) -> list[list[Sample]]:
        from vllm import SamplingParams as VParams

        vparams = VParams(n=params.n, temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                          max_tokens=params.max_new_tokens, stop=[STOP], include_stop_str_in_output=True, logprobs=0)
        results = self.llm.generate(list(prompts), vparams, use_tqdm=progress)
        out = []
        for result in results:
            samples = []
            for completion in result.outputs:
                ids = list(completion.token_ids)
                lps = [next(iter(step.values())).logprob if step else math.nan for step in (completion.logprobs or [])]
                samples.append(Sample(completion.text, ids, lps))
            out.append(samples)
        return out


def vllm_available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def make_sampler(loaded, backend: str = "auto"):
    """The sampler for a `models.LoadedModel`: vLLM when asked (or `auto` with vLLM and a GPU), else transformers."""
    valid = ("auto", "transformers", "vllm")
    if backend not in valid:
        raise ValueError(f"unknown sampling backend {backend!r}; valid backends: {', '.join(valid)}")
    if backend == "vllm" or (backend == "auto" and vllm_available() and loaded.style != "compact"):
        return VLLMSampler(loaded.path, loaded.tokenizer)
    return TransformersSampler(loaded.model, loaded.tokenizer)


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end a completion: the tokenizer's end-of-sequence and, where it is one token, `</answer>`."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stop = tokenizer.convert_tokens_to_ids(STOP)
    if isinstance(stop, int) and stop != tokenizer.unk_token_id:
        ids.append(stop)  # toy tokenizers have `</answer>` as one token: stop right after it
    return ids


_stop_token_ids = stop_token_ids  # the old private name, still imported by mtalign/bench_train.py


def _length(row: list[int], stop_ids: list[int], pad_id: int | None) -> int:
    """Tokens up to and including the first stop token (so a closing `</answer>` is kept)."""
    for i, token in enumerate(row):
        if token in stop_ids:
            return i + 1
        if token == pad_id:
            return i
    return len(row)
