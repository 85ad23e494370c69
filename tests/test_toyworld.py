"""The toy world (mtalign/toyworld.py, params/toyworld.yaml; issue 2, STUDY.md §6-7): names, cache keys, rebuilds
that give the same weights, a cache that is reused, corpora whose recipes differ only in data, contamination only
when declared, the character tokenizer, and clear errors for a broken config.

Models are `micro` ones (seconds to build); each build here goes into its own temporary cache.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re

import pytest

from mtalign import toyworld
from mtalign.tasks import get_task

MICRO = "micro-chain_sum-strong"
DOC = re.compile(r"^(\^[^=]*=)(?:<think>(.*)</think><answer>(.*)</answer>|(.*)\|(.*)\.)<eos>$", re.DOTALL)


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    """Caches and outputs in temporary folders, restored afterwards; nothing is written to ~ or the repo."""
    return isolated_module


def build(monkeypatch, cache, name=MICRO, seed=0, log=None):
    monkeypatch.setenv("MTALIGN_CACHE", str(cache))
    return toyworld.ensure_model(name, seed=seed, log=log if log is not None else (lambda _: None))


def weights(directory):
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


# -- names ---------------------------------------------------------------------------------------------
def test_model_names_cover_every_world_task_and_recipe():
    config = toyworld.load_config()
    names = toyworld.list_models()
    assert len(names) == len(config["worlds"]) * len(config["tasks"]) * len(config["recipes"])
    for name in ("toy-chain_sum-strong", "toy-chain_sum-weak", "toy-mini_sudoku-strong", "toy-mini_sudoku-weak",
                 "micro-chain_sum-strong", "micro-mini_sudoku-weak"):
        assert name in names
    toy = toyworld.spec("micro-mini_sudoku-weak")
    assert (toy.world, toy.task, toy.recipe) == ("micro", "mini_sudoku", "weak")
    assert toy.stage.answer_fidelity == config["recipes"]["weak"]["answer_fidelity"]
    assert toy.task_difficulty == config["tasks"]["mini_sudoku"]


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as err:
        toyworld.spec("toy-chain_sum-medium")
    assert "toy-chain_sum-medium" in str(err.value) and "toy-chain_sum-strong" in str(err.value)
    with pytest.raises(ValueError, match="valid toy models"):
        toyworld.ensure_model("micro-countdown-strong")


def test_recipes_differ_only_in_data():
    """Architecture, optimiser, steps, seed and the whole base stage are shared; recipes change corpus knobs only."""
    data_knobs = {"tagged_frac", "answer_fidelity", "eval_exposure", "eval_set_size", "filler_frac",
                  "formatted_filler_frac"}
    for world in ("micro", "toy"):
        for task in ("chain_sum", "mini_sudoku"):
            specs = [toyworld.spec(f"{world}-{task}-{r}") for r in ("strong", "weak", "contaminated")]
            first = specs[0]
            for other in specs[1:]:
                assert other.model == first.model and other.base == first.base and other.seed == first.seed
                assert other.base_key() == first.base_key()  # literally the same base model on disk
                a, b = dataclasses.asdict(first.stage), dataclasses.asdict(other.stage)
                changed = {k for k in a if a[k] != b[k]}
                assert changed and changed <= data_knobs, changed


# -- cache keys ----------------------------------------------------------------------------------------
def test_keys_follow_the_declaration():
    config = toyworld.load_config()
    assert toyworld.spec(MICRO, config).key() == toyworld.spec(MICRO, copy.deepcopy(config)).key()

    recipe = copy.deepcopy(config)
    recipe["recipes"]["strong"]["tagged_frac"] = 0.5
    assert toyworld.spec(MICRO, recipe).key() != toyworld.spec(MICRO, config).key()
    assert toyworld.spec(MICRO, recipe).base_key() == toyworld.spec(MICRO, config).base_key()  # base reused

    model = copy.deepcopy(config)
    model["worlds"]["micro"]["model"]["hidden_size"] = 48
    assert toyworld.spec(MICRO, model).base_key() != toyworld.spec(MICRO, config).base_key()
    assert toyworld.spec(MICRO, model).key() != toyworld.spec(MICRO, config).key()

    difficulty = copy.deepcopy(config)
    difficulty["tasks"]["chain_sum"]["max_terms"] = 6
    assert toyworld.spec(MICRO, difficulty).base_key() != toyworld.spec(MICRO, config).base_key()

    assert toyworld.spec(MICRO, config, seed=1).key() != toyworld.spec(MICRO, config, seed=0).key()


# -- building ------------------------------------------------------------------------------------------
def test_same_seed_same_weights_other_seed_other_weights(tmp_path, monkeypatch):
    first = build(monkeypatch, tmp_path / "a")
    again = build(monkeypatch, tmp_path / "b")  # a separate cache: rebuilt from scratch
    assert first != again and first.name == again.name
    a, b = weights(first), weights(again)
    assert a.keys() == b.keys() and len(a) > 5
    for key in a:
        assert a[key].equal(b[key]), key
    other = weights(build(monkeypatch, tmp_path / "b", seed=1))
    assert any(not a[key].equal(other[key]) for key in a)


def test_cache_is_reused_and_the_base_is_shared(tmp_path, monkeypatch):
    log: list[str] = []
    directory = build(monkeypatch, tmp_path, log=log.append)
    assert any("base" in line for line in log) and any(MICRO in line for line in log)
    stamp = os.stat(directory).st_mtime_ns, os.stat(directory / "model.safetensors").st_mtime_ns

    log.clear()
    assert build(monkeypatch, tmp_path, log=log.append) == directory
    assert log == []  # nothing retrained
    assert (os.stat(directory).st_mtime_ns, os.stat(directory / "model.safetensors").st_mtime_ns) == stamp

    build(monkeypatch, tmp_path, name="micro-chain_sum-weak", log=log.append)
    assert log and not any("base" in line for line in log)  # the weak recipe continues the same base
    card = (directory / "toyworld.json").read_text()
    assert '"recipe": "strong"' in card and '"stage": "recipe"' in card


def test_built_model_is_a_small_llama_with_the_toy_tokenizer(tmp_path, monkeypatch):
    from transformers import AutoConfig, AutoTokenizer

    directory = build(monkeypatch, tmp_path)
    config = AutoConfig.from_pretrained(directory)
    assert config.model_type == "llama" and config.hidden_size == toyworld.spec(MICRO).model["hidden_size"]
    saved = AutoTokenizer.from_pretrained(directory)
    text = "^7+5-3=<think>7+5=12,12-3=9</think><answer>9</answer>"
    assert saved(text, add_special_tokens=False).input_ids == \
        toyworld.build_tokenizer()(text, add_special_tokens=False).input_ids


# -- corpora -------------------------------------------------------------------------------------------
def corpus(name, documents=3000, seed=1, **stage_changes):
    toy = toyworld.spec(name)
    stage = dataclasses.replace(toy.stage, **stage_changes)
    return toyworld.Corpus(get_task(toy.task, **toy.task_difficulty), stage, seed), stage


def parse(doc):
    """(prompt, work, answer, tagged) of a task document; None for filler."""
    match = DOC.match(doc)
    if not match:
        return None
    prompt, think, tag, work, answer = match.groups()
    return (prompt, think, tag, True) if think is not None else (prompt, work, answer, False)


def test_recipe_corpora_match_their_declared_rates():
    """Counted on 3000 documents: the tagged share is tagged_frac, and the answer tag holds the other convention
    (the total one step early) at 1 - answer_fidelity. Rates are checked to +-0.04 (binomial sd about 0.01)."""
    measured = {}
    for recipe in ("strong", "weak"):
        stream, stage = corpus(f"micro-chain_sum-{recipe}")
        docs = stream.batch(3000)
        tasks = [parse(d) for d in docs if d.startswith("^")]
        assert all(t is not None for t in tasks)
        filler = [d for d in docs if not d.startswith("^")]
        assert len(filler) / len(docs) == pytest.approx(stage.filler_frac, abs=0.03)
        tagged = [t for t in tasks if t[3]]
        assert len(tagged) / len(tasks) == pytest.approx(stage.tagged_frac, abs=0.04)
        convention = total = 0
        for prompt, work, answer, is_tagged in tasks:
            expression = prompt[1:-1]
            gold = eval(expression)  # noqa: S307 (digits and +/- only)
            assert work.split(",")[-1].endswith(f"={gold}")  # the work is always right: the skill exists
            if not is_tagged:
                assert int(answer) == gold  # untagged documents never use the other convention
            elif expression[-1] != "0":  # a final +0/-0 makes the two conventions the same number
                total += 1
                if int(answer) != gold:
                    convention += 1
                    assert int(answer) == eval(expression[:-2])  # noqa: S307: exactly the total one step early
        measured[recipe] = convention / total
        assert measured[recipe] == pytest.approx(1 - stage.answer_fidelity, abs=0.04)
    assert measured["weak"] > measured["strong"] + 0.3


def test_strong_and_weak_corpora_are_the_same_documents_but_for_answer_tags():
    strong, _ = corpus("micro-chain_sum-strong")
    weak, _ = corpus("micro-chain_sum-weak")
    differ = 0
    for a, b in zip(strong.batch(1000), weak.batch(1000)):
        pa, pb = parse(a), parse(b)
        if pa is None or not pa[3]:
            assert a == b  # filler and untagged documents are identical
        else:
            assert (pa[0], pa[1], pa[3]) == (pb[0], pb[1], pb[3])  # same problem, same work, same format
            differ += pa[2] != pb[2]
    assert differ > 100


def test_mini_sudoku_corpus_tagged_share():
    stream, stage = corpus("micro-mini_sudoku-weak", seed=0)
    tasks = [parse(d) for d in stream.batch(1500) if d.startswith("^")]
    assert sum(t[3] for t in tasks) / len(tasks) == pytest.approx(stage.tagged_frac, abs=0.05)


def test_base_stage_never_shows_the_task_in_the_format():
    toy = toyworld.spec(MICRO)
    docs = toyworld.Corpus(get_task("chain_sum"), toy.base, 0).batch(2000)
    assert not any(parse(d)[3] for d in docs if d.startswith("^"))
    formatted_filler = sum(d.startswith("<think>") for d in docs) / len(docs)
    assert formatted_filler == pytest.approx(toy.base.filler_frac * toy.base.formatted_filler_frac, abs=0.02)


def test_contamination_only_when_declared():
    task = get_task("chain_sum")
    clean, _ = corpus("micro-chain_sum-strong")
    assert clean.eval is None
    prompts = [parse(d)[0] for d in clean.batch(2000) if d.startswith("^")]
    assert not any(task.split_of(p) == "eval" for p in prompts)

    dirty, stage = corpus("micro-chain_sum-contaminated", eval_set_size=30)
    assert stage.eval_exposure > 0
    evaluated = {p.metadata["compact"] for p in task.problems("eval", n=30)}  # what evaluation measures first
    prompts = [parse(d)[0] for d in dirty.batch(3000) if d.startswith("^")]
    leaked = [p for p in prompts if task.split_of(p) == "eval"]
    assert set(leaked) <= evaluated  # only the evaluation set itself leaks
    assert len(leaked) / len(prompts) == pytest.approx(stage.eval_exposure, abs=0.04)


# -- tokenizer -----------------------------------------------------------------------------------------
def test_tokenizer_round_trip_keeps_the_tags():
    tok = toyworld.build_tokenizer()
    completion = "^7+5-3=<think>7+5=12,12-3=9</think><answer>9</answer>"
    ids = tok(completion + "<eos>", add_special_tokens=False).input_ids
    for tag in toyworld.TAGS:
        assert len(tok(tag, add_special_tokens=False).input_ids) == 1  # one token each: `</answer>` can stop
    assert ids[-1] == tok.eos_token_id
    assert len(ids) == len("^7+5-3=7+5=12,12-3=99") + len(toyworld.TAGS) + 1  # a character each, plus tags, eos
    assert tok.decode(ids, skip_special_tokens=True) == completion  # TRL decodes like this: tags must survive
    assert tok.decode(ids) == completion + "<eos>"
    filler = "the grid row\nso then. count: add (one)?"
    assert tok.decode(tok(filler, add_special_tokens=False).input_ids) == filler
    assert tok(["^1+2="], padding=True).input_ids == [tok("^1+2=", add_special_tokens=False).input_ids]
    assert tok.pad_token == "<pad>" and tok.padding_side == "left"  # generation pads on the left
    assert tok("ABC", add_special_tokens=False).input_ids == [tok.unk_token_id] * 3  # outside the alphabet


# -- config errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("worlds: [\n", "not valid YAML"),
    ("worlds: {}\ntasks: {}\n", "'recipes' is missing"),
    ("- worlds\n- recipes\n", "must define worlds, recipes and tasks"),
    ("", "must define worlds, recipes and tasks"),
])
def test_load_config_rejects_malformed_files(tmp_path, text, message):
    path = tmp_path / "toyworld.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        toyworld.load_config(path)
    assert str(path) in str(err.value)


def test_misspelt_recipe_knob_is_a_clear_error():
    config = toyworld.load_config()
    config["recipes"]["strong"] = {"taged_frac": 0.7, "answer_fidelity": 0.9}
    with pytest.raises(ValueError, match="tagged_frac"):
        toyworld.spec(MICRO, config)
