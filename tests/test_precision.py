"""bf16 mixed precision on a CPU (issue 7, mtalign/precision.py): the blocks' matmuls in bf16 inside the context,
float32 everywhere else, and everything put back after; a run with the preset's `bf16` samples the same rollouts as
one without it and updates the policy slightly differently, as a separate run identity."""

from __future__ import annotations

import copy

import numpy as np
import pytest

MICRO = "micro-chain_sum-strong"


@pytest.fixture(scope="module", autouse=True)
def _caches(isolated_module):
    return isolated_module


@pytest.fixture(scope="module")
def micro():
    from mtalign import models

    return models.load(MICRO, log=lambda _: None)


def _batch(tokenizer):
    enc = tokenizer(["12+3+", "7+", "1+2+3+4+"], padding=True, return_tensors="pt", add_special_tokens=False)
    return enc.input_ids, enc.attention_mask


def test_bf16_blocks_autocasts_the_blocks_only_and_restores_the_model(micro):
    import torch
    import torch.nn.functional as F

    from mtalign import precision

    model = copy.deepcopy(micro.model)
    ids, mask = _batch(micro.tokenizer)
    backbone = model.get_decoder()
    attention = model.config._attn_implementation
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        with precision.bf16_blocks(model):
            assert model.config._attn_implementation == "eager"
            hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
            mixed = model(input_ids=ids, attention_mask=mask).logits
        after = model(input_ids=ids, attention_mask=mask).logits
    # the residual stream and the head stay float32: the logits are the float32 head applied to the blocks' output
    assert hidden.dtype == mixed.dtype == torch.float32
    assert torch.equal(mixed, F.linear(hidden, model.lm_head.weight))
    # the blocks did compute in bf16 (the logits moved), to bf16's precision
    real = mask.bool()
    difference = (mixed - full)[real].abs().max().item()
    assert 0 < difference < 0.1, difference
    # and everything is put back: the class's forward, the attention implementation, float32 results
    assert "forward" not in backbone.__dict__
    assert model.config._attn_implementation == attention
    assert torch.equal(after, full)


def test_bf16_blocks_backward_gives_float32_gradients_close_to_float32s(micro):
    import torch

    from mtalign import precision

    ids, mask = _batch(micro.tokenizer)
    # a token is a label only where the position predicting it is real (left padding: not the first real token,
    # which padding would predict, differently in each attention implementation)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, 1:] = labels[:, 1:].masked_fill(mask[:, :-1] == 0, -100)
    grads = {}
    for enabled in (False, True):
        model = copy.deepcopy(micro.model)
        with precision.bf16_blocks(model, enabled=enabled):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()  # outside the context: autograd follows the forward's dtypes
        grads[enabled] = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads[True].keys() == grads[False].keys()
    for name, g in grads[True].items():
        assert g.dtype == torch.float32, name
        reference = grads[False][name]
        cosine = torch.nn.functional.cosine_similarity(g.flatten(), reference.flatten(), dim=0).item()
        relative = ((g - reference).norm() / reference.norm()).item()
        assert cosine > 0.99 and relative < 0.1, (name, cosine, relative)
    assert any(not torch.equal(grads[True][n], grads[False][n]) for n in grads[True])


def test_bf16_blocks_disabled_changes_nothing(micro):
    from mtalign import precision

    model = micro.model
    before = dict(model.get_decoder().__dict__)
    with precision.bf16_blocks(model, enabled=False):
        assert model.get_decoder().__dict__.keys() == before.keys()


@pytest.mark.slow
def test_a_bf16_run_samples_the_same_rollouts_and_updates_in_bf16(micro, tmp_path):
    """Two smoke runs from one seed (entropy minimisation: the untaught micro model scores nothing, but its entropy loss has a gradient), with and
    without `bf16`: sampling is float32 in both, so the first step's
    rollouts are the same; the update's matmuls differ, so the weights end close but not equal; and
    the setting is part of the run's identity, so the run store never serves one for the other."""
    import torch

    from mtalign import runinfo, train

    summaries, weights, metrics = {}, {}, {}
    for bf16 in (False, True):
        loaded = copy.deepcopy(micro)
        out = tmp_path / f"bf16={bf16}"
        summaries[bf16] = train.train(model=loaded, variant="entropy_min", preset="smoke", out=out, steps=2,
                                      settings={"bf16": bf16}, log=lambda _: None)
        weights[bf16] = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
        metrics[bf16] = runinfo.read_jsonl(out / "metrics.jsonl")
    first = [{k: m[0][k] for k in ("gt_accuracy", "format_rate", "response_length")} for m in metrics.values()]
    assert first[0] == first[1]  # the same rollouts
    # entropy minimisation's reward is the policy's own per-token entropy, from the update's forward pass: in bf16
    # it moves, by bf16's rounding
    rewards = [m[0]["reward_mean"] for m in metrics.values()]
    assert rewards[0] != rewards[1] and abs(rewards[0] - rewards[1]) < 1e-3 * abs(rewards[0])
    assert any(not torch.equal(weights[True][n], weights[False][n]) for n in weights[True])
    for n, w in weights[True].items():
        np.testing.assert_allclose(w.numpy(), weights[False][n].numpy(), atol=5e-3, err_msg=n)
    assert summaries[True]["identity_hash"] != summaries[False]["identity_hash"]
