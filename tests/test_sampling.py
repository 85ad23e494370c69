"""The sampler (mtalign/sampling.py; issue 2, "Sampling and pass@k") on a micro toy model: shapes, texts that decode
the token ids, log-probabilities that match a forward pass, seeds, greedy decoding, the full distribution (no hidden
top-k), stopping after `</answer>` or end-of-sequence, and parameter validation.

The micro model is barely trained, so its samples are close to random text: good for seeds and stopping (it emits
`</answer>` and `<eos>` by chance at every length), useless for accuracy, which no test here reads.
"""

from __future__ import annotations

import pytest

from mtalign import models, sampling, toyworld
from mtalign.sampling import SamplingParams, TransformersSampler
from mtalign.tasks import get_task

MICRO = "micro-chain_sum-strong"


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    """Caches and outputs in temporary folders, restored afterwards; nothing is written to ~ or the repo."""
    return isolated_module


@pytest.fixture(scope="module")
def loaded():
    return models.load(MICRO, log=lambda _: None)


@pytest.fixture(scope="module")
def prompts(loaded):
    task = get_task("chain_sum")
    return [loaded.render(task, p) for p in task.problems("eval", n=4)]


@pytest.fixture(scope="module")
def sampler(loaded):
    return TransformersSampler(loaded.model, loaded.tokenizer)


def forward_logprobs(loaded, prompt, ids, temperature=1.0):
    """log p(token | prefix) of each token of `ids` after `prompt`, from one plain forward pass, and each one's rank."""
    import torch

    prefix = loaded.tokenizer(prompt, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = loaded.model(torch.tensor([prefix + ids])).logits[0].float()
    logprobs = torch.log_softmax(logits / temperature, dim=-1)[len(prefix) - 1:len(prefix) - 1 + len(ids)]
    ranks = [(row > row[tok]).sum().item() for row, tok in zip(logprobs, ids)]
    return [row[tok].item() for row, tok in zip(logprobs, ids)], ranks


# -- shapes and contents ------------------------------------------------------------------------------
def test_n_samples_per_prompt_with_decoded_texts_and_logprobs(loaded, sampler, prompts):
    out = sampler.generate(prompts, SamplingParams(n=5, max_new_tokens=24, seed=0))
    assert len(out) == len(prompts) and all(len(group) == 5 for group in out)
    for group in out:
        for sample in group:
            assert len(sample.token_ids) <= 24
            assert sample.text == loaded.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
            assert len(sample.logprobs) == len(sample.token_ids)
            assert all(lp <= 0 for lp in sample.logprobs)
    assert sum(len(s.token_ids) for g in out for s in g) > 0


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_are_those_of_the_temperature_scaled_policy(loaded, sampler, prompts, temperature):
    """Batched, left-padded generation gives each token the log-prob a plain forward pass gives it."""
    out = sampler.generate(prompts[:2], SamplingParams(n=3, max_new_tokens=16, seed=1, temperature=temperature))
    checked = 0
    for prompt, group in zip(prompts, out):
        for sample in group:
            expected, _ = forward_logprobs(loaded, prompt, sample.token_ids, temperature)
            assert sample.logprobs == pytest.approx(expected, abs=1e-4)
            checked += len(expected)
    assert checked > 10


def test_sampling_uses_the_full_distribution(loaded, sampler, prompts):
    """transformers' global default top_k=50 must not apply (the toy vocabulary has 64 tokens): with top_p=1 some
    sampled tokens rank below the top 50 of a near-uniform micro model."""
    assert len(loaded.tokenizer) > 50
    out = sampler.generate(prompts[:1], SamplingParams(n=32, max_new_tokens=16, seed=0))
    ranks = [r for s in out[0] for r in forward_logprobs(loaded, prompts[0], s.token_ids)[1]]
    assert max(ranks) >= 50


def test_same_seed_same_samples_other_seed_other_samples(sampler, prompts):
    params = SamplingParams(n=4, max_new_tokens=16, seed=7)
    first = sampler.generate(prompts, params)
    again = sampler.generate(prompts, params)
    assert [[s.token_ids for s in g] for g in first] == [[s.token_ids for s in g] for g in again]
    other = sampler.generate(prompts, SamplingParams(n=4, max_new_tokens=16, seed=8))
    assert [[s.token_ids for s in g] for g in first] != [[s.token_ids for s in g] for g in other]
    # and the n samples of one prompt are not copies of each other
    assert len({tuple(s.token_ids) for s in first[0]}) > 1


def test_temperature_zero_is_greedy_and_seed_independent(loaded, sampler, prompts):
    import torch

    out = {seed: sampler.generate(prompts[:2], SamplingParams(n=2, temperature=0, max_new_tokens=12, seed=seed))
           for seed in (0, 1)}
    assert [[s.token_ids for s in g] for g in out[0]] == [[s.token_ids for s in g] for g in out[1]]
    for prompt, group in zip(prompts, out[0]):
        assert group[0].token_ids == group[1].token_ids
        # the argmax, one token at a time, without generate()
        ids = loaded.tokenizer(prompt, add_special_tokens=False).input_ids
        greedy = []
        for _ in range(12):
            with torch.no_grad():
                token = int(loaded.model(torch.tensor([ids + greedy])).logits[0, -1].argmax())
            greedy.append(token)
            if token in sampler.eos_ids:
                break
        assert group[0].token_ids == greedy


# -- stopping -----------------------------------------------------------------------------------------
def test_generation_stops_after_answer_close_or_eos(loaded, sampler, prompts):
    """Every sample ends at its first stop token (kept, so `</answer>` closes the text) or runs to the budget."""
    stop = set(sampler.eos_ids)
    answer_close = loaded.tokenizer.convert_tokens_to_ids("</answer>")
    assert stop == {loaded.tokenizer.eos_token_id, answer_close}
    out = sampler.generate(prompts, SamplingParams(n=16, max_new_tokens=32, seed=0))
    stopped = {"</answer>": 0, "eos": 0, "budget": 0}
    for group in out:
        for sample in group:
            ids = sample.token_ids
            assert not stop & set(ids[:-1])  # nothing after a stop token
            if ids and ids[-1] == answer_close:
                stopped["</answer>"] += 1
                assert sample.text.endswith("</answer>")
            elif ids and ids[-1] == loaded.tokenizer.eos_token_id:
                stopped["eos"] += 1
                assert "<eos>" not in sample.text  # special tokens are not in the text
            else:
                # the budget, or cut at a sampled <pad> (test_length_rule): an untrained model's accident
                stopped["budget"] += len(ids) == 32
    assert min(stopped.values()) > 0, stopped  # every way of ending was exercised


@pytest.mark.parametrize("row, length, why", [
    ([5, 6, 9, 7, 8], 3, "up to and including the first stop token (9)"),
    ([5, 1, 0, 0], 2, "eos (1) kept, the padding after it dropped"),
    ([5, 6, 7], 3, "no stop token: the whole budget"),
    ([9], 1, "a stop token first"),
    ([0, 0], 0, "padding only (a sequence that had finished in its batch)"),
    ([5, 9, 1], 2, "the first of two stop tokens wins"),
    ([], 0, "empty"),
])
def test_length_rule(row, length, why):
    assert sampling._length(row, stop_ids=[1, 9], pad_id=0) == length, why


def test_stop_token_ids_only_where_answer_close_is_one_token():
    from tokenizers import Tokenizer, models as tok_models
    from transformers import PreTrainedTokenizerFast

    toy = toyworld.build_tokenizer()
    assert sampling.stop_token_ids(toy) == [toy.eos_token_id, toy.convert_tokens_to_ids("</answer>")]
    # a tokenizer without the tag as a token: only its end-of-sequence stops generation
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", "a", "b"])}
    plain = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>")),
                                    pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    assert sampling.stop_token_ids(plain) == [plain.eos_token_id]


# -- parameters and backends ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be at least 1"),
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_p": 0}, "top_p must be in"),
    ({"top_p": 1.5}, "top_p must be in"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"batch_size": 0}, "batch_size"),
])
def test_sampling_params_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_batch_size_splits_generation_into_calls(sampler, prompts):
    """A batch smaller than n x prompts still returns every sample, grouped by prompt."""
    out = sampler.generate(prompts, SamplingParams(n=3, max_new_tokens=8, seed=0, batch_size=5))
    assert [len(g) for g in out] == [3] * len(prompts)


def test_make_sampler(loaded):
    with pytest.raises(ValueError) as err:
        sampling.make_sampler(loaded, "tgi")
    assert "'tgi'" in str(err.value) and "auto, transformers, vllm" in str(err.value)
    assert isinstance(sampling.make_sampler(loaded, "transformers"), TransformersSampler)
    # toy models always sample with transformers (vLLM would only add start-up time at this size)
    assert isinstance(sampling.make_sampler(loaded, "auto"), TransformersSampler)
