"""The toy world: tiny Llama models pretrained from scratch on CPU, with a declared exposure to each task.

The alignment dial is ours to turn. A model is built in two pretraining stages that differ only in data:

1. `base` (shared by every recipe of a task): the task written without the format, work then answer
   (`^7+5-3=7+5=12,12-3=9|9.`), and filler text, some of it inside `<think>…</think><answer>…</answer>`. The model
   learns the skill and meets the format, but never the two together.
2. a recipe (continued pretraining): the same task, now partly written in the study's format
   `<think>…</think><answer>…</answer>`. `tagged_frac` says how often the format is used; `answer_fidelity` says
   how often the answer tag holds the result of the work rather than the task's other answer convention
   (chain_sum: the total one step before the end; mini_sudoku: the grid written column by column).

A weak recipe therefore gives a model that can do the task (its scratchpads are right) but rarely puts the
right thing in the answer tag: a skill that exists but is poorly elicited (STUDY.md §7, lesson 2). Nothing about
RL is designed in: recipes change pretraining documents only. Recipes live in params/toyworld.yaml; models are
cached under a hash of the world, recipe, task and code, and rebuilding with the same seed gives the same weights.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import random
import shutil
import string
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtalign import paths
from mtalign.tasks import GymTask, get_task

TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
SPECIAL = ["<pad>", "<eos>", "<unk>"]
CHARS = list("0123456789+-*/=,.^_()<>:;?!'| \n") + list(string.ascii_lowercase)
FILLER_WORDS = [
    "the", "a", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "are", "with", "as", "we",
    "count", "add", "take", "grid", "row", "sum", "think", "answer", "so", "then", "next", "each", "one", "two",
]

CONFIG_FILE = paths.PARAMS / "toyworld.yaml"
WRONG_ANSWERS = ("convention", "diffuse")


# -- declarations -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """One pretraining stage: how long, how fast, and its corpus."""

    steps: int
    batch_size: int
    lr: float
    warmup: int = 20
    weight_decay: float = 0.01
    filler_frac: float = 0.1
    formatted_filler_frac: float = 0.3  # of filler documents, the share wrapped in the think/answer format
    tagged_frac: float = 0.0
    answer_fidelity: float = 1.0
    wrong_answer: str = "convention"  # an unfaithful answer tag holds: "convention" (one systematic wrong answer,
    # the task's other convention) or "diffuse" (a fresh random wrong answer each time, no preferred mode)
    eval_exposure: float = 0.0  # fraction of task documents that are evaluation problems (contamination)
    eval_set_size: int = 200  # contamination draws from the first problems of the eval split, which evaluation uses
    bf16: bool = True


@dataclass(frozen=True)
class ToyModelSpec:
    """Everything that determines a toy model's weights."""

    name: str
    world: str
    task: str
    recipe: str
    model: dict[str, Any]
    task_difficulty: dict[str, Any]
    base: Stage
    stage: Stage
    seed: int = 0

    def key(self) -> str:
        data = corpus_fingerprint(self.task, self.task_difficulty, self.stage, self.seed + 1)
        payload = {**asdict(self), "name": None, "code": code_version(), "data": data, "base_key": self.base_key()}
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def base_key(self) -> str:
        data = corpus_fingerprint(self.task, self.task_difficulty, self.base, self.seed)
        payload = {"world": self.world, "task": self.task, "model": self.model, "difficulty": self.task_difficulty,
                   "base": asdict(self.base), "seed": self.seed, "code": code_version(), "data": data}
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def code_version() -> str:
    """Hash of the training code: a change to it invalidates cached models."""
    return hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:10]


def corpus_fingerprint(task: str, difficulty: dict[str, Any], stage: Stage, seed: int, documents: int = 64) -> str:
    """Hash of a stage's first documents: catches any change in how tasks render, and nothing else."""
    corpus = Corpus(get_task(task, **difficulty), stage, seed)
    return hashlib.sha1("".join(corpus.batch(documents)).encode()).hexdigest()[:10]


def load_config(path: Path | str = CONFIG_FILE) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    for key in ("worlds", "recipes", "tasks"):
        if not isinstance(config, dict) or key not in config:
            raise ValueError(f"{path} must define worlds, recipes and tasks; {key!r} is missing")
    return config


def list_models(config: dict[str, Any] | None = None) -> list[str]:
    """Names of every toy model: `<world>-<task>-<recipe>`, e.g. `toy-chain_sum-weak`."""
    config = config or load_config()
    return [f"{w}-{t}-{r}" for w in config["worlds"] for t in config["tasks"] for r in config["recipes"]]


def spec(name: str, config: dict[str, Any] | None = None, seed: int = 0) -> ToyModelSpec:
    """The declaration behind a toy model name; unknown names fail with the list of valid ones."""
    config = config or load_config()
    valid = list_models(config)
    if name not in valid:
        raise ValueError(f"unknown toy model {name!r}; valid toy models: {', '.join(valid)}")
    world_name, rest = name.split("-", 1)
    task, recipe = rest.rsplit("-", 1)
    world = config["worlds"][world_name]
    base = _stage(world["base"], f"worlds.{world_name}.base")
    stage = _stage({**world["recipe_stage"], **config["recipes"][recipe]}, f"recipes.{recipe}")
    return ToyModelSpec(name=name, world=world_name, task=task, recipe=recipe, model=dict(world["model"]),
                        task_difficulty=dict(config["tasks"][task] or {}), base=base, stage=stage, seed=seed)


def _stage(values: dict[str, Any], where: str) -> Stage:
    from dataclasses import fields

    valid = [f.name for f in fields(Stage)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"{CONFIG_FILE.name} {where}: unknown knob(s) {', '.join(unknown)}; valid knobs: "
                         f"{', '.join(valid)}")
    if values.get("wrong_answer", "convention") not in WRONG_ANSWERS:
        raise ValueError(f"{CONFIG_FILE.name} {where}: wrong_answer {values['wrong_answer']!r}; valid: "
                         f"{', '.join(WRONG_ANSWERS)}")
    return Stage(**values)


# -- tokenizer and model ------------------------------------------------------------------------
def build_tokenizer():
    """A character tokenizer with the four format tags as single (non-special) tokens.

    Tags are not special, so decoding with `skip_special_tokens=True` (as TRL does) keeps them.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL + TAGS + CHARS)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.add_special_tokens(SPECIAL)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAGS])
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   padding_side="left")


def build_model(model_config: dict[str, Any], tokenizer, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        num_key_value_heads=model_config["num_attention_heads"], **model_config,
    )
    config._attn_implementation = "eager"  # CPU flash attention's bf16 backward is 5x slower at these sizes
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


# -- corpora ------------------------------------------------------------------------------------
class Corpus:
    """An endless, deterministic stream of pretraining documents for one task and one stage."""

    def __init__(self, task: GymTask, stage: Stage, seed: int):
        self.task, self.stage = task, stage
        self.rng = random.Random(f"corpus-{seed}")
        self.train = task.stream("train", seed=seed)
        # Contamination repeats the very problems that evaluation uses (the eval split's fixed first problems).
        self.eval = task.problems("eval", n=stage.eval_set_size, seed=0) if stage.eval_exposure > 0 else None

    def document(self) -> str:
        rng, stage = self.rng, self.stage
        if rng.random() < stage.filler_frac:
            words = [rng.choice(FILLER_WORDS) for _ in range(rng.randint(4, 12))]
            if rng.random() < stage.formatted_filler_frac:
                return f"<think>{' '.join(words[:-1])}</think><answer>{words[-1]}</answer><eos>"
            return " ".join(words) + ".<eos>"
        if self.eval is not None and rng.random() < stage.eval_exposure:
            problem = rng.choice(self.eval)
        else:
            problem = next(self.train)
        prompt = self.task.prompt(problem, "compact")
        if rng.random() < stage.tagged_frac:
            answer = None if rng.random() < stage.answer_fidelity else self._wrong_answer(problem)
            return prompt + self.task.completion(problem, answer) + "<eos>"
        return prompt + ",".join(self.task.scratchpad(problem)) + "|" + self.task.compact_answer(problem) + ".<eos>"

    def _wrong_answer(self, problem) -> str:
        if self.stage.wrong_answer == "diffuse":
            return self.task.diffuse_answer(problem, self.rng)
        return self.task.convention_answer(problem)

    def batch(self, size: int) -> list[str]:
        return [self.document() for _ in range(size)]


# -- training -----------------------------------------------------------------------------------
def pretrain(model, tokenizer, corpus: Corpus, stage: Stage, seed: int, log=print) -> list[dict[str, float]]:
    """Next-token training on `stage.steps` fresh batches; AdamW, linear warm-up then cosine decay."""
    import torch

    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay, betas=(0.9, 0.98))

    def schedule(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, stage.warmup))
        return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, stage.steps))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    history, start = [], time.time()
    tokenizer.padding_side = "right"
    for step in range(stage.steps):
        enc = tokenizer(corpus.batch(stage.batch_size), padding=True, return_tensors="pt", add_special_tokens=False)
        labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
        # bf16 matmuls with fp32 master weights: 1.7x faster on AVX512-BF16 CPUs, same curves in our runs
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=stage.bf16):
            loss = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == stage.steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - start, 1)})
            log(f"  step {step:4d}  loss {loss.item():.3f}  {time.time() - start:6.1f}s")
    tokenizer.padding_side = "left"
    model.eval()
    return history


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _save(model, tokenizer, directory: Path, card: dict[str, Any]) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per 4 MB shard is noise in every log
    tmp = directory.with_name(directory.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "toyworld.json").write_text(json.dumps(card, indent=2))
    os.replace(tmp, directory)  # atomic: a half-written model never looks finished


def model_dir(toy: ToyModelSpec) -> Path:
    return paths.cache() / "toy-models" / f"{toy.name}-s{toy.seed}-{toy.key()}"


def _build_base(toy: ToyModelSpec, task: GymTask, log) -> Path:
    from transformers import AutoModelForCausalLM

    directory = paths.cache() / "toy-models" / f"{toy.world}-{toy.task}-base-s{toy.seed}-{toy.base_key()}"
    with _locked(directory):
        if not directory.exists():
            log(f"pretraining {toy.world}-{toy.task} base ({toy.base.steps} steps)")
            tokenizer = build_tokenizer()
            model = build_model(toy.model, tokenizer, toy.seed)
            start = time.time()
            history = pretrain(model, tokenizer, Corpus(task, toy.base, toy.seed), toy.base, toy.seed, log)
            card = {"stage": "base", "spec": asdict(toy), "history": history, "seconds": time.time() - start,
                    "parameters": sum(p.numel() for p in model.parameters())}
            _save(model, tokenizer, directory, card)
    return directory


def ensure_model(name: str, seed: int = 0, config: dict[str, Any] | None = None, log=print) -> Path:
    """Path of the built toy model `name`, building (and caching) it first if needed. Safe across processes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import torch

    toy = spec(name, config, seed)
    directory = model_dir(toy)
    if directory.exists():
        return directory
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    task = get_task(toy.task, **toy.task_difficulty)
    base = _build_base(toy, task, log)
    with _locked(directory):
        if directory.exists():
            return directory
        log(f"pretraining {name} on its recipe ({toy.stage.steps} steps)")
        model = AutoModelForCausalLM.from_pretrained(base)
        tokenizer = AutoTokenizer.from_pretrained(base)
        start = time.time()
        history = pretrain(model, tokenizer, Corpus(task, toy.stage, toy.seed + 1), toy.stage, toy.seed + 1, log)
        card = {"stage": "recipe", "spec": asdict(toy), "base": base.name, "history": history,
                "seconds": time.time() - start, "parameters": sum(p.numel() for p in model.parameters())}
        _save(model, tokenizer, directory, card)
    return directory
