"""The fast decode loop (mtalign/decode.py; issue 7) against transformers' `generate` on a micro toy model: the same
tokens from the same random stream under every sampling setting the study uses, the same stops, padding and
lengths; the sampler and the trainer's generation hook built on it; and refusal of models it does not cover.

The micro model is barely trained, so it rarely stops by itself; extra stop tokens (frequent characters) make rows
stop at many different lengths, which exercises the batch compaction that finished rows trigger.
"""

from __future__ import annotations

import copy

import pytest
import torch

from mtalign import decode, evaluate, models
from mtalign.sampling import SamplingParams, TransformersSampler, stop_token_ids
from mtalign.tasks import get_task

MICRO = "micro-chain_sum-strong"


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    return isolated_module


@pytest.fixture(scope="module")
def loaded():
    return models.load(MICRO, log=lambda _: None)


@pytest.fixture(scope="module")
def batch(loaded):
    """16 prompts of different lengths, 4 rows each, left-padded as both samplers pad them."""
    task = get_task("chain_sum", min_terms=2, max_terms=5)
    prompts = [loaded.render(task, p) for p in task.problems("eval", n=16) for _ in range(4)]
    loaded.tokenizer.padding_side = "left"
    enc = loaded.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert (enc.attention_mask == 0).any(), "the prompts should need padding"
    return enc


def _generate(loaded, enc, stop, seed, **kw):
    torch.manual_seed(seed)
    out = loaded.model.generate(**enc, max_new_tokens=kw.pop("max_new_tokens"), eos_token_id=stop,
                                pad_token_id=loaded.tokenizer.pad_token_id, top_k=kw.pop("top_k", None), **kw)
    return out[:, enc.input_ids.shape[1]:], torch.rand(4)  # and the random stream after it


def _decode(loaded, enc, stop, seed, **kw):
    torch.manual_seed(seed)
    out = decode.sample(loaded.model, enc.input_ids, enc.attention_mask, stop_ids=stop,
                        pad_id=loaded.tokenizer.pad_token_id, **kw)
    return out.tokens, torch.rand(4)


SETTINGS = [  # (generate's keyword arguments, decode's), one per sampling setting the study or its presets use
    ({"do_sample": True, "temperature": 1.0, "top_p": 1.0}, {"temperature": 1.0, "top_p": 1.0}),  # the toy study
    ({"do_sample": True, "temperature": 0.6, "top_p": 0.95}, {"temperature": 0.6, "top_p": 0.95}),  # paper eval-like
    ({"do_sample": True, "temperature": 1.3, "top_k": 5}, {"temperature": 1.3, "top_k": 5}),
    ({"do_sample": False, "temperature": None, "top_p": None}, {"do_sample": False}),  # greedy
]


@pytest.mark.parametrize("gen_kw, dec_kw", SETTINGS)
@pytest.mark.parametrize("extra_stops", [[], [5, 9, 12, 20, 33]])
def test_same_tokens_and_random_stream_as_generate(loaded, batch, gen_kw, dec_kw, extra_stops):
    stop = stop_token_ids(loaded.tokenizer) + extra_stops
    expected, rng_expected = _generate(loaded, batch, stop, 3, max_new_tokens=40, **gen_kw)
    got, rng_got = _decode(loaded, batch, stop, 3, max_new_tokens=40, **dec_kw)
    # same shape: the batch ran the same number of steps (all stopped, or the budget) and padded the same way
    assert got.shape == expected.shape
    assert torch.equal(got, expected)
    assert torch.equal(rng_got, rng_expected)  # the same random numbers were consumed
    if extra_stops and dec_kw.get("do_sample", True):  # not vacuous: rows stopped at many lengths (compaction ran) and got padding
        pad = loaded.tokenizer.pad_token_id
        lengths = [int((row != pad).sum()) for row in got]
        assert len(set(lengths)) > 5 and sum(n < 40 for n in lengths) > len(lengths) / 2


def test_budget_of_one_token_and_logprobs_of_the_chosen_tokens(loaded, batch):
    stop = stop_token_ids(loaded.tokenizer)
    torch.manual_seed(0)
    one = decode.sample(loaded.model, batch.input_ids, batch.attention_mask, max_new_tokens=1, stop_ids=stop,
                        pad_id=loaded.tokenizer.pad_token_id, logprobs=True)
    assert one.tokens.shape == (len(batch.input_ids), 1)
    # the log-prob of the first token is that of a plain forward pass at the last prompt position
    with torch.no_grad():
        logits = loaded.model(**batch).logits[:, -1].float()
    expected = torch.log_softmax(logits, -1).gather(-1, one.tokens)[:, 0]
    assert torch.allclose(one.logprobs[:, 0], expected, atol=1e-5)


def test_sampler_gives_the_same_samples_with_either_decoder(loaded):
    task = get_task("chain_sum")
    prompts = [loaded.render(task, p) for p in task.problems("eval", n=6)]
    params = SamplingParams(n=5, max_new_tokens=32, seed=11, batch_size=16)
    fast = TransformersSampler(loaded.model, loaded.tokenizer).generate(prompts, params)
    slow = TransformersSampler(loaded.model, loaded.tokenizer, decoder="generate").generate(prompts, params)
    assert TransformersSampler(loaded.model, loaded.tokenizer).decoder == "mtalign"
    for group_fast, group_slow in zip(fast, slow):
        for a, b in zip(group_fast, group_slow):
            # the same tokens and the very same log-probs: the loop's logits are generate's, bit for bit
            assert (a.text, a.token_ids, a.logprobs) == (b.text, b.token_ids, b.logprobs)


def test_models_it_does_not_cover_are_refused_with_the_reason(loaded):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=64, n_positions=32))
    assert "gpt2" in decode.unsupported(gpt2)
    assert TransformersSampler(gpt2, loaded.tokenizer).decoder == "generate"  # auto falls back to generate
    with pytest.raises(ValueError, match="decoder 'mtalign' cannot sample this model"):
        TransformersSampler(gpt2, loaded.tokenizer, decoder="mtalign")
    with pytest.raises(ValueError, match="valid decoders: auto, generate, mtalign"):
        TransformersSampler(loaded.model, loaded.tokenizer, decoder="fast")
    biased = copy.deepcopy(loaded.model)
    biased.config.attention_bias = True
    assert decode.unsupported(biased) == "attention_bias=True (only False)"
    with pytest.raises(ValueError, match="temperature > 0"):
        decode.sample(loaded.model, torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.long),
                      max_new_tokens=4, stop_ids=[1], pad_id=0, temperature=0)


# -- the trainer's generation hook (StudyGRPOTrainer._generate_single_turn, a pinned TRL 1.16 hook) ----------------
def _trainer(loaded, out, **overrides):
    from mtalign import train

    run = train.resolve(model=loaded, preset="smoke", out=out, variant="ground_truth", **overrides)
    out.mkdir(parents=True, exist_ok=True)
    trainer, _, _ = train.build(run, loaded, log=lambda _: None)
    return trainer


def test_trainer_hook_generates_what_trls_generate_does(loaded, tmp_path):
    trainer = _trainer(copy.deepcopy(loaded), tmp_path / "run")
    assert trainer._fast_decode_ok(None, {})
    task = get_task("chain_sum")
    prompt_ids = [loaded.tokenizer(loaded.render(task, p), add_special_tokens=False).input_ids
                  for p in task.problems("eval", n=6) for _ in range(4)]
    results = {}
    for fast in (True, False):
        trainer.fast_decode = fast
        torch.manual_seed(5)
        results[fast] = trainer._generate_single_turn(prompt_ids, None, {}, 4), torch.rand(3)
    (ids_fast, lp_fast), rng_fast = results[True]
    (ids_slow, lp_slow), rng_slow = results[False]
    assert ids_fast == ids_slow and lp_fast is None and lp_slow is None
    assert torch.equal(rng_fast, rng_slow)
    stops = set(trainer.eos_token_ids)
    assert all(ids[-1] in stops or len(ids) == trainer.generation_config.max_new_tokens for ids in ids_fast)


def test_a_run_trains_identically_with_either_generation_path(loaded, tmp_path):
    from mtalign import runinfo

    finals = {}
    for fast in (True, False):
        trainer = _trainer(copy.deepcopy(loaded), tmp_path / str(fast), steps=2)
        trainer.fast_decode = fast
        trainer.train()
        metrics = runinfo.read_jsonl(tmp_path / str(fast) / "metrics.jsonl")
        finals[fast] = ([(m["reward_mean"], m["response_length"], m["loss"]) for m in metrics],
                        {k: v.detach().clone() for k, v in trainer.model.named_parameters()})
    assert finals[True][0] == finals[False][0]
    for name, value in finals[True][1].items():
        assert torch.equal(value, finals[False][1][name]), name


def test_generation_config_beyond_temperature_top_k_top_p_falls_back_to_trl(loaded, tmp_path):
    trainer = _trainer(copy.deepcopy(loaded), tmp_path / "run")
    trainer.generation_config.repetition_penalty = 1.2
    assert not trainer._fast_decode_ok(None, {})


def test_cached_evaluations_are_invalidated_by_an_edit_of_the_decode_loop(monkeypatch):
    """The step-0 evaluation cache is keyed on `eval_code_version`; the decode loop samples those evaluations."""
    from pathlib import Path

    from mtalign import train

    before = evaluate.eval_code_version()
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: read_bytes(self) + (b"# edited" if self.name == "decode.py" else b""))
    assert evaluate.eval_code_version() != before
