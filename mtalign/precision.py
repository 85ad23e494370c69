"""bf16 mixed precision for the policy's forward and backward passes on a CPU (issue 7).

A CPU with AVX-512 BF16 multiplies bfloat16 matrices about 4.5 times faster than float32 ones (measured on the
toy model's shapes: 88-96 GFLOP/s in float32, 420-440 in bfloat16, one thread). `bf16_blocks(model)` runs the
model's transformer blocks under `torch.autocast(dtype=bfloat16)` for the forward passes inside it:

- the blocks' matmuls (projections, attention scores and values) take bfloat16 inputs and accumulate in float32;
- the weights, their gradients and the optimiser's state stay float32, and so does everything autocast does not
  cast: the residual stream, the norms, the softmax, the output head and the log-probs computed from it;
- attention runs as transformers' "eager" implementation while inside: under autocast, torch's CPU flash-attention
  backward in bfloat16 is five times slower than in float32, while eager attention's matmuls take the bfloat16 rate.

The backward pass follows the forward's dtypes (autograd records them), so it need not run inside the context.
Sampling (rollouts and evaluations, `mtalign.decode`) stays float32: the policy samples as it is, and the update
computes its log-probs at bfloat16 matmul precision, as a GPU run's bf16 trainer does beside its sampler.
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def bf16_blocks(model, enabled: bool = True):
    """Inside, forward passes of `model` (a causal LM, possibly wrapped) compute its blocks under bf16 autocast."""
    if not enabled:
        yield
        return
    while hasattr(model, "module"):  # DDP and similar wrappers
        model = model.module
    backbone = model.get_decoder()
    config = backbone.config
    own = backbone.__dict__.get("forward")  # an instance-level forward set by someone else, restored after
    inner = backbone.forward
    device = next(backbone.parameters()).device.type

    def forward(*args, **kwargs):
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            return inner(*args, **kwargs)

    attention = config._attn_implementation
    backbone.forward = forward
    config._attn_implementation = "eager"
    try:
        yield
    finally:
        config._attn_implementation = attention
        if own is None:
            del backbone.forward
        else:
            backbone.forward = own
