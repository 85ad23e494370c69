"""A sampling loop for small Llama models without `generate`'s per-token framework overhead (issue 7).

On the toy model (1.06M parameters) transformers' `generate` spends most of each decoding step outside the matmuls:
logits processors and stopping criteria as Python objects, masks rebuilt per step, and a KV cache that grows by
`torch.cat` (copying the whole cache every token). This loop runs the same Llama computation directly on the model's
own parameters (read at call time, so a policy being trained is always sampled as it is now) with:

- a preallocated KV cache, written in place, and attention over its filled part only;
- fused q/k/v and gate/up projections (one matmul each instead of three and two);
- finished rows dropped from the batch (the cache is compacted when a quarter of the rows have stopped).

It samples from exactly the distribution `generate` samples from, with the same random-number consumption: per step,
`generate` calls `torch.multinomial(probs, 1)` on the whole batch, which on CPU and CUDA draws one exponential per
vocabulary entry of every row and takes `argmax(probs / q)`; this loop draws the same `[batch, vocab]` exponentials
(for finished rows too, which it then ignores) and takes the same argmax. With bit-identical logits the samples are
identical; the logits agree with `generate`'s to float rounding (the fused matmuls sum in another order), so a token
can differ only where two candidates tie to within rounding (tests/test_decode.py measures the agreement). Stop
tokens, padding after a stop, the `max_new_tokens` budget and the temperature/top-k/top-p processors are transformers'
own semantics, in transformers' order.

`unsupported(model)` says why a model cannot use this loop (anything but a plain Llama); callers then use `generate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

COMPACT_BELOW = 0.75  # compact the batch (and its cache) when fewer than this share of its rows are still running


def unsupported(model) -> str | None:
    """Why `model` cannot be sampled by `sample` (None when it can): it must be a plain Llama causal LM."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) != "llama":
        return f"model type {getattr(config, 'model_type', None)!r} (only 'llama')"
    rope = getattr(config, "rope_parameters", None) or {}
    checks = {
        "rope_type": (rope.get("rope_type", "default"), "default"),
        "attention_bias": (bool(config.attention_bias), False),
        "mlp_bias": (bool(config.mlp_bias), False),
        "hidden_act": (config.hidden_act, "silu"),
        "pretraining_tp": (getattr(config, "pretraining_tp", 1), 1),
    }
    for name, (value, wanted) in checks.items():
        if value != wanted:
            return f"{name}={value!r} (only {wanted!r})"
    if not hasattr(model, "model") or not hasattr(model.model, "layers") or not hasattr(model, "lm_head"):
        return "not a LlamaForCausalLM module layout"
    return None


@dataclass
class Decoded:
    tokens: torch.Tensor  # [batch, steps] new tokens; `pad_id` after a row's stop token, as `generate` returns them
    logprobs: torch.Tensor | None  # [batch, steps] log-prob of each token under softmax(logits / temperature)


class _Weights:
    """The model's parameters as the loop uses them (fused where that saves a matmul), read once per call."""

    def __init__(self, model):
        config = model.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.embed = model.model.embed_tokens.weight.detach()
        self.layers = []
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight.detach(),
                torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach(),
                a.o_proj.weight.detach(),
                layer.post_attention_layernorm.weight.detach(),
                torch.cat([m.gate_proj.weight, m.up_proj.weight]).detach(),
                m.down_proj.weight.detach(),
            ))
        self.norm = model.model.norm.weight.detach()
        self.lm_head = model.lm_head.weight.detach()
        self.inv_freq = model.model.rotary_emb.inv_freq.detach()
        self.scaling = getattr(model.model.rotary_emb, "attention_scaling", 1.0)
        self.intermediate = config.intermediate_size

    def rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # LlamaRMSNorm, in its order of operations (float32 models)
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@torch.no_grad()
def sample(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
           stop_ids: Sequence[int], pad_id: int, temperature: float = 1.0, top_p: float = 1.0,
           top_k: int | None = None, do_sample: bool = True, logprobs: bool = False) -> Decoded:
    """Continue each left-padded prompt of `input_ids` by up to `max_new_tokens` tokens, like `model.generate`.

    Rows stop after their first token in `stop_ids`; the batch stops when every row has stopped or the budget is
    spent. `do_sample=False` is greedy (no random numbers drawn). `logprobs` adds each chosen token's log-prob under
    softmax(logits / temperature) (the sampler's definition), computed from the unprocessed logits.
    """
    reason = unsupported(model)
    if reason is not None:
        raise ValueError(f"mtalign.decode.sample cannot run this model: {reason}; use model.generate")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if do_sample and not temperature > 0:
        raise ValueError(f"sampling needs temperature > 0, got {temperature} (do_sample=False is greedy)")
    w = _Weights(model)
    device, dtype = w.embed.device, w.embed.dtype
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    batch, prompt_len = input_ids.shape
    total = prompt_len + max_new_tokens
    heads, kv_heads, head_dim = w.heads, w.kv_heads, w.head_dim
    groups = heads // kv_heads

    # Positions as generate computes them: cumulative count of real tokens minus one (padding at 0), then +1 per step.
    pad_len = (attention_mask == 0).sum(-1)  # left padding: row r's real tokens start at pad_len[r]
    positions = torch.arange(total, device=device)[None, :] - pad_len[:, None]
    positions = positions.clamp(min=0)
    freqs = positions[:, :, None].float() * w.inv_freq[None, None, :].float()
    emb = torch.cat((freqs, freqs), dim=-1)
    cos_all, sin_all = (emb.cos() * w.scaling).to(dtype), (emb.sin() * w.scaling).to(dtype)  # [batch, total, d]

    # KV cache: [layer] -> [rows, kv_heads, total, head_dim], written in place
    k_cache = [torch.zeros(batch, kv_heads, total, head_dim, device=device, dtype=dtype) for _ in w.layers]
    v_cache = [torch.zeros_like(k) for k in k_cache]
    key_valid = attention_mask.bool()  # [rows, filled] real (non-padding) key positions
    key_valid = torch.cat([key_valid, torch.ones(batch, max_new_tokens, dtype=torch.bool, device=device)], dim=1)
    # the decode steps' mask as SDPA adds it (0 or -inf; the same numbers as a boolean mask), one per row
    key_bias = torch.zeros(batch, 1, 1, total, dtype=dtype, device=device).masked_fill(
        ~key_valid[:, None, None, :], -float("inf"))

    def forward(x: torch.Tensor, start: int, length: int, mask: torch.Tensor, rows_cos, rows_sin) -> torch.Tensor:
        """Hidden states of `length` new positions starting at `start`, for the rows currently in the batch."""
        b = x.shape[0]
        for i, (ln1, wqkv, wo, ln2, wgu, wd) in enumerate(w.layers):
            h = w.rms(x, ln1)
            qkv = F.linear(h, wqkv).view(b, length, heads + 2 * kv_heads, head_dim).transpose(1, 2)
            qk, v = qkv.split([heads + kv_heads, kv_heads], dim=1)
            cos, sin = rows_cos[:, None], rows_sin[:, None]
            qk = qk * cos + _rotate_half(qk) * sin  # queries and keys in one pass: the same elementwise operations
            q, k = qk.split([heads, kv_heads], dim=1)
            k_cache[i][:, :, start:start + length] = k
            v_cache[i][:, :, start:start + length] = v
            # SDPA is faster on contiguous keys and values than on a slice of the cache, copy included (same numbers)
            keys = k_cache[i][:, :, :start + length].contiguous()
            values = v_cache[i][:, :, :start + length].contiguous()
            if groups > 1:
                keys = keys.repeat_interleave(groups, dim=1)
                values = values.repeat_interleave(groups, dim=1)
            attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            x = x + F.linear(attn.transpose(1, 2).reshape(b, length, heads * head_dim), wo)
            h = w.rms(x, ln2)
            gate, up = F.linear(h, wgu).split(w.intermediate, dim=-1)
            x = x + F.linear(F.silu(gate) * up, wd)
        return w.rms(x, w.norm)

    # Prefill: causal attention among the prompt's real tokens.
    causal = torch.ones(prompt_len, prompt_len, dtype=torch.bool, device=device).tril()
    prefill_mask = causal[None, None] & key_valid[:, None, None, :prompt_len]
    # a padding query row sees no key at all; let it see itself so softmax stays finite (its output is never used)
    prefill_mask = prefill_mask | torch.eye(prompt_len, dtype=torch.bool, device=device)[None, None]
    hidden = forward(F.embedding(input_ids, w.embed), 0, prompt_len, prefill_mask,
                     cos_all[:, :prompt_len], sin_all[:, :prompt_len])[:, -1]

    stop = torch.tensor(list(stop_ids), device=device, dtype=torch.long)
    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    chosen_lp = torch.zeros(batch, max_new_tokens, dtype=torch.float32, device=device) if logprobs else None
    rows = torch.arange(batch, device=device)  # original index of each row still in the compute batch
    rows_bias, rows_cos, rows_sin = key_bias, cos_all, sin_all  # their rows of the per-row tables
    running = torch.ones(batch, dtype=torch.bool, device=device)  # per compute-batch row: not stopped yet
    steps = 0
    for step in range(max_new_tokens):
        logits = F.linear(hidden, w.lm_head).float()
        next_tokens = _choose(logits, batch, rows, temperature, top_p, top_k, do_sample)
        tokens[rows, step] = next_tokens.masked_fill(~running, pad_id)  # a stopped row's next token is padding
        if chosen_lp is not None:
            lp = torch.log_softmax(logits / max(temperature, 1e-6), dim=-1).gather(-1, next_tokens[:, None])[:, 0]
            chosen_lp[rows, step] = lp.masked_fill(~running, 0.0)
        steps = step + 1
        running = running & ~torch.isin(next_tokens, stop)
        n_running = int(running.sum())
        if n_running == 0 or steps == max_new_tokens:
            break
        if n_running < COMPACT_BELOW * len(rows):
            keep = running.nonzero()[:, 0]
            rows, next_tokens, running = rows[keep], next_tokens[keep], running[keep]
            rows_bias, rows_cos, rows_sin = key_bias[rows], cos_all[rows], sin_all[rows]
            for i in range(len(k_cache)):
                k_cache[i] = k_cache[i][keep]
                v_cache[i] = v_cache[i][keep]
        position = prompt_len + step
        hidden = forward(F.embedding(next_tokens[:, None], w.embed), position, 1, rows_bias[..., :position + 1],
                         rows_cos[:, position:position + 1], rows_sin[:, position:position + 1])[:, -1]
    return Decoded(tokens[:, :steps], chosen_lp[:, :steps] if chosen_lp is not None else None)


def _choose(logits: torch.Tensor, batch: int, rows: torch.Tensor, temperature: float, top_p: float,
            top_k: int | None, do_sample: bool) -> torch.Tensor:
    """The next token of each running row, as generate's logits processors and `torch.multinomial` choose it."""
    if not do_sample:
        return logits.argmax(-1)
    scores = logits
    if temperature is not None and temperature != 1.0:  # TemperatureLogitsWarper
        scores = scores / temperature
    if top_k:  # TopKLogitsWarper
        kth = torch.topk(scores, min(top_k, scores.shape[-1]))[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if top_p is not None and top_p < 1.0:  # TopPLogitsWarper, min_tokens_to_keep=1
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        remove = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        remove[..., -1:] = 0
        scores = scores.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))
    probs = torch.softmax(scores, dim=-1)
    # torch.multinomial(probs, 1) on the full batch draws exactly these exponentials: same random stream as generate
    q = torch.empty(batch, probs.shape[-1], dtype=probs.dtype, device=probs.device).exponential_(1)
    return (probs / q[rows]).argmax(-1)
