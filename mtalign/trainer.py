"""The study's RL engine: TRL's GRPOTrainer with every reward, advantage and DAPO trick of STUDY.md §3-4.

TRL computes rollouts, the clipped token-mean loss and the optimiser step; this subclass changes five private hooks
of trl==1.16.0 (pinned exactly in pyproject.toml; each override has a smoke test in tests/test_train.py, the
generation hook in tests/test_decode.py):

- `_generate`: after TRL generates a batch, score it with `mtalign.rewards` on the *whole* batch gathered from every
  rank (a group can straddle ranks, and majority vote must see all of its votes), then apply DAPO dynamic sampling
  (Yu et al. 2025, STUDY.md §4): drop groups that carry no gradient (for GRPO: all rewards equal), draw up to
  `max_generation_batches` batches, then fill the batch by repeating kept groups. An extra batch takes the next
  prompts of its own seeded pass over the training set, without replacement and skipping prompts already drawn this
  step (see `_draw_rows` for why not the next prompts of TRL's loader itself). TRL tokenises the final batch and
  computes its log-probabilities once, so dropped groups cost generation only.
- `_calculate_rewards`: hand TRL the rewards computed above (already global, as TRL's own gather would make them).
- `_generate_and_score_completions`: replace TRL's advantages by `mtalign.advantages` (grpo, psr, nsr, w_reinforce).
- `_generate_single_turn`: sample rollouts with `mtalign.decode` instead of `model.generate` where it stands in
  exactly (plain Llama models such as the toy world: the same tokens from the same random stream, in 0.7-0.9 of
  the time; `mtalign bench run`); anything else goes to TRL's own generation.
- `_get_per_token_logps_and_entropies`: with the preset's `bf16` on a CPU, the policy's forward passes (loss, old
  log-probs, token signals) autocast its blocks to bf16 (`mtalign.precision`); TRL's own computation otherwise.

One-shot EM (entropy_min, semantics source) has no reward: its advantages are zero and TRL's entropy term, with a
negative coefficient, is the whole loss. Everything the study logs per step is collected here and written by
`RunFiles` (see mtalign/train.py for the files).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from accelerate.utils import gather_object
from transformers import TrainerCallback
from trl import GRPOTrainer

from mtalign import advantages as advantages_lib
from mtalign import precision
from mtalign import rewards as rewards_lib
from mtalign import runinfo
from mtalign.tasks import Problem, Task, graders
from mtalign.config import TOKEN_SIGNALS  # Rollouts fields computed by a forward pass of the policy


@dataclass
class EngineSpec:
    """What the engine does with each batch: the variant's reward and advantage, and the frozen DAPO settings."""

    task: Task
    problems: dict[str, Problem]  # problem id -> problem, for every id the dataset can yield
    reward: str
    reward_kwargs: dict[str, Any]
    semantics: str
    advantage: str
    advantage_kwargs: dict[str, Any]
    group_size: int
    prompts_per_step: int
    updates_per_step: int  # optimizer steps per rollout step (PPO mini-batches)
    seed: int = 0
    dynamic_sampling: bool = True
    max_generation_batches: int = 2
    entropy_loss: bool = False  # One-shot EM: no reward, the entropy term is the loss
    n_votes: int | None = None  # TTRL: completions per prompt that vote (group + extra)
    wrong_labels: dict[str, str] | None = None
    strict_paper_regex: bool = False
    needs: set[str] = field(default_factory=set)
    bf16_blocks: bool = False  # CPU bf16: the policy's forward passes autocast its blocks (mtalign/precision.py)


# -- pure pieces (unit-tested without a trainer) -----------------------------------------------------------------
def select_groups(no_signal: Sequence[np.ndarray], groups_needed: int) -> list[tuple[int, int]]:
    """DAPO dynamic sampling: which (batch, group) pairs make the training batch.

    `no_signal` flags, per drawn batch, the groups to drop (see `no_signal_groups`). The others are kept in the order
    they were drawn, truncated to `groups_needed`; when fewer were kept, kept groups are repeated in that order until
    the batch is full (the paper's "fill by repeating kept groups"). No kept group at all gives an empty list: the
    caller keeps the batch but gives it no signal.

    >>> select_groups([np.array([True, False, True]), np.array([False, True, True])], 3)
    [(0, 1), (1, 0), (0, 1)]
    """
    kept = [(b, int(g)) for b, flags in enumerate(no_signal) for g in np.flatnonzero(~np.asarray(flags))]
    if not kept:
        return []
    return [kept[i % len(kept)] for i in range(groups_needed)]


def advantages_of(spec: EngineSpec, rewards: np.ndarray) -> np.ndarray:
    """The variant's advantages of a whole batch (global, group order); zero everywhere for an entropy loss."""
    if spec.entropy_loss:
        return np.zeros(len(rewards))
    kwargs = dict(spec.advantage_kwargs)
    if "semantics" in advantages_lib.options(spec.advantage):
        kwargs["semantics"] = spec.semantics
    return advantages_lib.compute(spec.advantage, rewards, spec.group_size, **kwargs)


def no_signal_groups(spec: EngineSpec, rewards: np.ndarray) -> np.ndarray:
    """Per group: True where every advantage is zero, so the group cannot move the policy (DAPO drops these).

    For GRPO and the paper's PSR/NSR this is exactly "all rewards equal" (STUDY.md §4); Zhu et al.'s unnormalised
    estimators (nsr/psr source, w_reinforce) give an all-wrong group a gradient by definition, so it is kept.

    >>> spec = EngineSpec(None, {}, "ground_truth", {}, "paper", "grpo", {}, 2, 2, 1)
    >>> no_signal_groups(spec, np.array([0., 0., 1., 0.])).tolist()
    [True, False]
    """
    return (advantages_lib.group_view(advantages_of(spec, rewards), spec.group_size) == 0).all(axis=1)


def gather_rows(local: list[Any], gather: Callable[[list[Any]], list[Any]] = gather_object) -> list[Any]:
    """Every rank's rows in rank order (accelerate's `gather_object` concatenates per-rank lists).

    Group-level rewards need this: with 2 ranks and 8 completions per group, a batch of 12 rows per rank puts group 1
    half on each rank, so voting on local rows would elect a label from half the votes.
    """
    return list(gather(list(local)))


def local_slice(rows: Sequence[Any], rank: int, n_local: int) -> list[Any]:
    """The rows of `rank` when a global batch is cut into equal consecutive shares (TRL's `process_slice`)."""
    return list(rows[rank * n_local:(rank + 1) * n_local])


@dataclass
class Row:
    """What one completion contributes to scoring; rows travel between ranks, so they hold plain data only."""

    text: str
    problem_id: str
    n_tokens: int
    signals: dict[str, list[float]]  # per-token values named as Rollouts fields (token_logprobs, ...)
    votes: list[str] | None = None  # TTRL: this row's extra voters (they vote for the row's group)
    stopped: bool = True  # ended with a stop token; False: cut at max_completion_length (logged as truncated_frac)


@dataclass
class ScoredBatch:
    """One generation batch: global rewards and verdicts, plus (in a trainer) this rank's share of TRL's outputs."""

    rewards: np.ndarray  # global, one per completion
    correct: np.ndarray  # global: FORMAT and CORRECT
    formatted: np.ndarray  # global
    lengths: np.ndarray  # global completion lengths in tokens
    problem_ids: list[str]  # global
    metrics: dict[str, float]  # reward metrics (pseudo-label accuracy, ...)
    zero_variance: np.ndarray  # per global group: all rewards equal (logged as zero_variance_frac)
    no_signal: np.ndarray  # per global group: all advantages zero (dynamic sampling drops these)
    rows: list[dict[str, Any]] | None = None  # this rank's dataset rows, one per completion
    generated: tuple | None = None  # TRL's `_generate` return value for this rank


def score_rows(spec: EngineSpec, rows: list[Row], step: int, draw: int) -> ScoredBatch:
    """Rewards and verdicts of a whole batch, from every rank's rows in rank order (see `gather_rows`).

    A group's TTRL voters are the extra votes of all its rows, wherever those rows were generated.
    """
    group = spec.group_size
    extra_votes = None
    if any(r.votes is not None for r in rows):
        extra_votes = [[v for r in rows[g:g + group] for v in (r.votes or [])] for g in range(0, len(rows), group)]
    signals = {name: [r.signals[name] for r in rows] for name in (rows[0].signals if rows else {})}
    rollouts = rewards_lib.Rollouts(
        completions=[r.text for r in rows], problems=[spec.problems[r.problem_id] for r in rows], task=spec.task,
        group_size=group, seed=spec.seed, step=step, draw=draw, extra_votes=extra_votes,
        wrong_labels=spec.wrong_labels, strict_paper_regex=spec.strict_paper_regex, **signals,
    )
    if spec.entropy_loss:  # One-shot EM: no reward at all; the loss is TRL's entropy term
        output = rewards_lib.RewardOutput(np.zeros(len(rows)), {})
    else:
        output = rewards_lib.compute(spec.reward, rollouts, spec.semantics, **spec.reward_kwargs)
    scores = rollouts.scores
    return ScoredBatch(
        rewards=np.asarray(output.rewards, dtype=np.float64), correct=np.array([x.reward for x in scores]),
        formatted=np.array([x.formatted for x in scores], dtype=float),
        lengths=np.array([r.n_tokens for r in rows], dtype=float), problem_ids=[r.problem_id for r in rows],
        metrics={**output.metrics, "truncated_frac": float(np.mean([not r.stopped for r in rows])) if rows else 0.0},
        zero_variance=advantages_lib.zero_variance_groups(output.rewards, group),
        no_signal=no_signal_groups(spec, np.asarray(output.rewards, dtype=np.float64)),
    )


class RunFiles:
    """The per-step files of a run; only the main process writes."""

    def __init__(self, out: Path | None, is_main: bool):
        self.out, self.is_main = (Path(out) if out else None), is_main

    def append(self, name: str, record: dict[str, Any]) -> None:
        if self.out is not None and self.is_main:
            runinfo.append_jsonl(self.out / name, record)


class StudyGRPOTrainer(GRPOTrainer):
    """GRPOTrainer with the study's rewards, advantages, dynamic sampling and logging (module docstring)."""

    def __init__(self, *args, spec: EngineSpec, run_files: RunFiles | None = None, **kwargs):
        self.spec = spec
        super().__init__(*args, **kwargs)
        self.files = run_files or RunFiles(None, self.accelerator.is_main_process)
        self._gather = gather_object  # every rank's rows in rank order (tests substitute a fake 2-rank gather)
        self._batch_rows: list[dict[str, Any]] | None = None
        self._final_rewards: np.ndarray | None = None
        self._no_signal = False  # dynamic sampling kept nothing: this step trains on zero advantages
        self.rollout_metrics: dict[str, Any] = {}  # the last rollout step's statistics, read by the metrics callback
        self.trl_advantages: torch.Tensor | None = None  # TRL's own advantages of the last batch (tests compare)
        self.last_advantages: torch.Tensor | None = None  # the engine's, which replace them
        self.rollout_step = 0  # rollout steps generated so far
        self._extra_order: list[int] = []  # dynamic sampling's extra prompts: a seeded pass over the training set
        self._extra_cursor, self._extra_pass = 0, 0
        self._epoch_accuracy: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self._epoch = 0

    # -- TRL hooks ---------------------------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        self._batch_rows = inputs
        output = super()._generate_and_score_completions(inputs)
        self.trl_advantages = output["advantages"].detach().clone()
        output["advantages"] = self._local_advantages(len(inputs), output["advantages"])
        return output

    def _get_per_token_logps_and_entropies(self, model, *args, **kwargs):
        with precision.bf16_blocks(model, enabled=self.spec.bf16_blocks):
            return super()._get_per_token_logps_and_entropies(model, *args, **kwargs)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        if self._final_rewards is None:  # only evaluation would get here, and the engine does not evaluate via TRL
            raise RuntimeError("the study engine scores rollouts in _generate; no rewards were prepared for this batch")
        rewards = torch.tensor(self._final_rewards, dtype=torch.float32, device=self.accelerator.device)
        return rewards.unsqueeze(1)  # [global batch, one reward function], as TRL's gather would return

    def _generate(self, prompts: list):
        if not self.model.training:
            return super()._generate(prompts)
        spec, rows = self.spec, self._batch_rows
        draw_started = time.perf_counter()
        ungradable_before = graders.ungradable_count()
        batches = [self._score(rows, super()._generate(prompts), draw=0)]
        groups_needed = len(batches[0].rewards) // spec.group_size
        use_ds = spec.dynamic_sampling and not spec.entropy_loss
        while use_ds and len(batches) < spec.max_generation_batches and \
                sum(int((~b.no_signal).sum()) for b in batches) < groups_needed:
            extra = self._draw_rows(len(rows), {pid for b in batches for pid in b.problem_ids})
            batches.append(self._score(extra, super()._generate([r["prompt"] for r in extra]), draw=len(batches)))
        self._record(batches, time.perf_counter() - draw_started)
        # grader calls refused or stopped at the hard limit while scoring this step's rollouts (mtalign/tasks/graders;
        # scoring runs on the gathered batch, so every rank counts the whole step)
        self.rollout_metrics["ungradable"] = graders.ungradable_count() - ungradable_before
        if not use_ds:
            self._final_rewards, self._no_signal = batches[0].rewards, False
            return batches[0].generated
        selection = select_groups([b.no_signal for b in batches], groups_needed)
        self._no_signal = not selection
        # groups repeated to fill the batch (0 when enough groups were kept), and steps left without any signal
        self.rollout_metrics.update(ds_groups_filled=len(selection) - len(set(selection)),
                                    ds_no_signal=int(self._no_signal))
        if not selection:
            self._final_rewards = batches[0].rewards
            return batches[0].generated
        return self._assemble(batches, selection, len(rows))

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        """TRL's plain-transformers generation, with `mtalign.decode.sample` in place of `model.generate` when it
        can stand in exactly: same tokens from the same random stream, same stop and truncation (decode's docstring).
        Anything it does not cover (vLLM, continuous batching, images, models other than Llama, logits processors
        beyond temperature/top-k/top-p) goes to TRL unchanged."""
        if not self._fast_decode_ok(images, multimodal_fields):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        from trl.models import unwrap_model_for_generation
        from trl.trainer.utils import pad

        from mtalign import decode

        prompts = [torch.tensor(ids) for ids in prompt_ids]
        padded = pad(prompts, padding_value=self._tokenizer.pad_token_id, padding_side="left",
                     pad_to_multiple_of=self.pad_to_multiple_of)
        mask = pad([torch.ones_like(t) for t in prompts], padding_value=0, padding_side="left",
                   pad_to_multiple_of=self.pad_to_multiple_of)
        config = self.generation_config
        with unwrap_model_for_generation(self.model_wrapped, self.accelerator,
                                         gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                                         generation_kwargs=self.generation_kwargs,
                                         gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs) \
                as model, torch.no_grad(), self._dist.summon_full_params(self.model_wrapped, recurse=False):
            completion = decode.sample(model, padded, mask, max_new_tokens=config.max_new_tokens,
                                       stop_ids=self.eos_token_ids, pad_id=self._tokenizer.pad_token_id,
                                       temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
                                       do_sample=config.do_sample).tokens.cpu()
        # TRL's masking: everything up to and including the first stop token
        is_eos = torch.isin(completion, torch.tensor(self.eos_token_ids))
        eos_idx = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), completion.size(1))
        keep = torch.arange(completion.size(1))[None, :] <= eos_idx[:, None]
        return [c[m].tolist() for c, m in zip(completion, keep)], None

    fast_decode = True  # False: TRL's own generate everywhere (benchmarks compare the two)

    def _fast_decode_ok(self, images, multimodal_fields) -> bool:
        from mtalign import decode

        if not self.fast_decode or self.use_vllm or self.use_transformers_continuous_batching:
            return False
        if images is not None or multimodal_fields or self.tools or self.args.generation_kwargs:
            return False
        c = self.generation_config
        neutral = (c.repetition_penalty in (None, 1.0) and c.min_p is None and c.top_h is None
                   and c.typical_p in (None, 1.0) and c.cache_implementation is None and not c.suppress_tokens
                   and c.num_beams in (None, 1) and c.max_new_tokens is not None)
        return neutral and decode.unsupported(self.accelerator.unwrap_model(self.model)) is None

    # -- scoring -------------------------------------------------------------------------------------------------
    def _score(self, rows: list[dict[str, Any]], generated: tuple, draw: int) -> ScoredBatch:
        """Rewards of one batch, computed on the batch gathered from every rank (identical on every rank)."""
        spec = self.spec
        prompt_ids, completion_ids, _, completions = generated[:4]
        if generated[2] is not None or generated[5] or generated[6] is not None:
            raise RuntimeError("the study engine does not support tools, rollout functions or images")
        signals = self._token_signals(prompt_ids, completion_ids) if spec.needs & set(TOKEN_SIGNALS) else {}
        votes = self._extra_votes(prompt_ids) if "extra_votes" in spec.needs else None
        local = [Row(_text(c), row["problem_id"], len(ids), {k: v[i] for k, v in signals.items()},
                     votes[i] if votes is not None else None, stopped=bool(ids) and ids[-1] in self.eos_token_ids)
                 for i, (c, row, ids) in enumerate(zip(completions, rows, completion_ids))]
        scored = score_rows(spec, gather_rows(local, self._gather), step=self.rollout_step, draw=draw)
        return dataclasses.replace(scored, rows=list(rows), generated=generated)

    @torch.no_grad()
    def _token_signals(self, prompt_ids: list[list[int]],
                       completion_ids: list[list[int]]) -> dict[str, list[list[float]]]:
        """Per-token log-prob, entropy and self-certainty of each completion under the current policy.

        The paper's released code read log-probs before they existed (STUDY.md §3); here they are computed from a
        forward pass of the policy that sampled them, at the sampling temperature.
        """
        device = self.accelerator.device
        pad = self._tokenizer.pad_token_id
        width_p = max(map(len, prompt_ids))
        width_c = max(1, max(map(len, completion_ids)))
        ids = torch.full((len(prompt_ids), width_p + width_c), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
            ids[i, width_p - len(p):width_p] = torch.tensor(p)
            mask[i, width_p - len(p):width_p] = 1
            ids[i, width_p:width_p + len(c)] = torch.tensor(c, dtype=torch.long)
            mask[i, width_p:width_p + len(c)] = 1
        ids, mask = ids.to(device), mask.to(device)
        chunk = self.args.per_device_train_batch_size
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            self.model, ids, mask, width_c, batch_size=chunk, compute_entropy=True)
        out = {"token_logprobs": logps, "token_entropies": entropies}
        if "token_self_certainty" in self.spec.needs:
            # Intuitor's self-certainty: KL(uniform || p) = -log V - mean_v log p_v, per token
            parts = []
            for start in range(0, len(ids), chunk):
                with self.accelerator.autocast(), precision.bf16_blocks(self.model, self.spec.bf16_blocks):
                    logits = self.model(input_ids=ids[start:start + chunk], attention_mask=mask[start:start + chunk],
                                        logits_to_keep=width_c + 1).logits[:, :-1].float() / self.temperature
                logp = torch.log_softmax(logits, dim=-1)
                parts.append(-math.log(logp.shape[-1]) - logp.mean(dim=-1))
            out["token_self_certainty"] = torch.cat(parts)
        return {name: [values[i, :len(c)].float().cpu().tolist() for i, c in enumerate(completion_ids)]
                for name, values in out.items() if name in self.spec.needs}

    def _extra_votes(self, prompt_ids: list[list[int]]) -> list[list[str]]:
        """TTRL's extra voters: (n_votes / group_size - 1) more completions per row, sampled like the group."""
        per_row = self.spec.n_votes // self.spec.group_size - 1
        repeated = [ids for ids in prompt_ids for _ in range(per_row)]
        completion_ids, _ = self._generate_single_turn(repeated, None, {}, per_row)
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        return [texts[i * per_row:(i + 1) * per_row] for i in range(len(prompt_ids))]

    # -- dynamic sampling ----------------------------------------------------------------------------------------
    def _draw_rows(self, n_local: int, drawn: set[str]) -> list[dict[str, Any]]:
        """This rank's share of a fresh generation batch: the next prompts of a seeded pass over the training set
        (reshuffled each pass, without replacement), skipping prompts already `drawn` this step; each repeated
        group_size times. Only when the set has too few distinct prompts (one_shot) do prompts repeat.

        DAPO draws the next batch of its own loader. TRL's loader belongs to transformers' training loop, which fixes
        the steps of an epoch and prefetches a step's batch before generation; consuming from it inside this hook would
        shift every later step's data and the epoch accounting, so the extra prompts come from a second, independent
        pass instead. Like DAPO's they are fresh prompts in a fixed order, and no prompt repeats within a step.
        Every rank draws the same global batch (same order), then keeps its share, as TRL's sampler does.
        """
        dataset = self.train_dataset
        ids = dataset["problem_id"]
        n_prompts = n_local * self.accelerator.num_processes // self.spec.group_size
        picks, seen, scanned = [], set(drawn), 0
        while len(picks) < n_prompts:
            if self._extra_cursor >= len(self._extra_order):
                rng = np.random.default_rng([self.spec.seed, 0xDA90, self._extra_pass])
                self._extra_order, self._extra_cursor = rng.permutation(len(dataset)).tolist(), 0
                self._extra_pass += 1
            i = self._extra_order[self._extra_cursor]
            self._extra_cursor += 1
            scanned += 1
            if ids[i] in seen and scanned <= len(dataset):  # after a whole pass, too few distinct prompts: repeat
                continue
            picks.append(i)
            seen.add(ids[i])
        rows = [dataset[int(i)] for i in picks for _ in range(self.spec.group_size)]
        return local_slice(rows, self.accelerator.process_index, n_local)

    def _assemble(self, batches: list[ScoredBatch], selection: list[tuple[int, int]], n_local: int) -> tuple:
        """The generation outputs of the selected groups, as this rank's share (TRL's `_generate` return value)."""
        group, rank = self.spec.group_size, self.accelerator.process_index
        # (prompt_ids, completion_ids, completion, sampler logprobs) of every completion of every batch, globally:
        # a kept group may have been generated on another rank (one process: the gather is the identity)
        per_batch = []
        for b in batches:
            prompt_ids, completion_ids, _, completions, logprobs = b.generated[:5]
            logprobs = logprobs if logprobs is not None else [None] * len(completion_ids)
            per_batch.append(gather_rows(list(zip(prompt_ids, completion_ids, completions, logprobs)), self._gather))
        chosen = [row for b, g in selection for row in per_batch[b][g * group:(g + 1) * group]]
        self._final_rewards = np.concatenate([batches[b].rewards[g * group:(g + 1) * group] for b, g in selection])
        mine = local_slice(chosen, rank, n_local)
        prompt_ids, completion_ids, completions, logprobs = (list(x) for x in zip(*mine))
        has_logprobs = batches[0].generated[4] is not None
        return (prompt_ids, completion_ids, None, completions, logprobs if has_logprobs else None, {}, None, [])

    def _local_advantages(self, n_local: int, like: torch.Tensor) -> torch.Tensor:
        rewards = self._final_rewards
        values = np.zeros(len(rewards)) if self._no_signal else advantages_of(self.spec, rewards)
        mine = local_slice(values, self.accelerator.process_index, n_local)
        self.last_advantages = torch.tensor(mine, dtype=like.dtype, device=like.device)
        return self.last_advantages

    # -- logging -------------------------------------------------------------------------------------------------
    def _record(self, batches: list[ScoredBatch], seconds: float) -> None:
        """Statistics of everything drawn this step (before dynamic sampling filters it) and per-example accuracy."""
        self.rollout_step += 1
        rewards = np.concatenate([b.rewards for b in batches])
        zero = np.concatenate([b.zero_variance for b in batches])
        metrics = defaultdict(list)
        for b in batches:
            for k, v in b.metrics.items():
                metrics[k].append(v)
        self.rollout_metrics = {
            "reward_mean": None if self.spec.entropy_loss else float(rewards.mean()),
            "gt_accuracy": float(np.concatenate([b.correct for b in batches]).mean()),
            "format_rate": float(np.concatenate([b.formatted for b in batches]).mean()),
            "zero_variance_frac": None if self.spec.entropy_loss else float(zero.mean()),  # no reward, no groups
            "response_length": float(np.concatenate([b.lengths for b in batches]).mean()),
            "ds_generation_batches": len(batches),
            "ds_groups_drawn": int(zero.size),
            "ds_groups_dropped": int(sum(b.no_signal.sum() for b in batches))
            if self.spec.dynamic_sampling and not self.spec.entropy_loss else 0,
            "ds_groups_filled": 0,
            "ds_no_signal": 0,
            "generation_seconds": seconds,
            **{k: float(np.mean(v)) for k, v in metrics.items()},
        }
        self._track_examples(batches)

    def _track_examples(self, batches: list[ScoredBatch]) -> None:
        """Per-example training accuracy per epoch (1-shot RLVR's historical variance score reads it).

        An epoch is one pass of TRL's sampler over the training set (len // prompts_per_step steps; it drops a
        partial last batch); extra dynamic-sampling draws count in the epoch they happen in.
        """
        epoch = (self.rollout_step - 1) // self.steps_per_epoch  # _record has counted this step already
        if epoch > self._epoch:
            self.flush_example_accuracy(complete=True)
            self._epoch = epoch
        group = self.spec.group_size
        for b in batches:
            for start in range(0, len(b.problem_ids), group):
                tally = self._epoch_accuracy[b.problem_ids[start]]
                tally[0] += int(b.correct[start:start + group].sum())
                tally[1] += group

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.train_dataset) // self.spec.prompts_per_step)

    def flush_example_accuracy(self, complete: bool | None = None) -> None:
        """Write the current epoch's per-example accuracy; `complete=None`: complete if the epoch's last step ran."""
        if complete is None:
            complete = self.rollout_step > 0 and self.rollout_step % self.steps_per_epoch == 0
        for problem_id, (correct, total) in sorted(self._epoch_accuracy.items()):
            self.files.append("example_accuracy.jsonl", {
                "epoch": self._epoch, "problem_id": problem_id, "accuracy": correct / total, "samples": total,
                "complete": complete, "step": self.rollout_step})
        self._epoch_accuracy.clear()


def _text(completion: Any) -> str:
    """A TRL completion as text: conversational completions are lists of messages."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") if isinstance(m.get("content"), str) else "" for m in completion)
    return completion


class StepMetricsCallback(TrainerCallback):
    """Writes one `metrics.jsonl` line per rollout step: the engine's rollout statistics plus TRL's loss terms."""

    def __init__(self, trainer: StudyGRPOTrainer, started: float, log: Callable[[str], None] | None = None):
        self.trainer, self.started, self.log = trainer, started, log

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:  # the end-of-training summary log
            return
        t = self.trainer
        record = {
            "step": state.global_step // t.spec.updates_per_step,
            **t.rollout_metrics,
            "entropy": logs.get("entropy"),
            "clip_fraction": logs.get("clip_ratio/region_mean"),
            # the two sides separately: low = ratio under 1 - eps on a negative advantage, high = over 1 + eps_high
            # on a positive one; both stay 0 when a rollout step makes one update (the ratio is exactly 1)
            "clip_low_fraction": logs.get("clip_ratio/low_mean"),
            "clip_high_fraction": logs.get("clip_ratio/high_mean"),
            "learning_rate": logs.get("learning_rate"),
            "loss": logs.get("loss"),
            "grad_norm": logs.get("grad_norm"),
            "wall_time": time.time() - self.started,
        }
        t.files.append("metrics.jsonl", record)
        if self.log is not None and t.accelerator.is_main_process:
            f = lambda key, digits=3: "-" if record.get(key) is None else f"{record[key]:.{digits}f}"  # noqa: E731
            self.log(f"step {record['step']}/{state.max_steps // t.spec.updates_per_step}: reward {f('reward_mean')}, "
                     f"gt accuracy {f('gt_accuracy')}, format {f('format_rate')}, zero-variance groups "
                     f"{f('zero_variance_frac', 2)}, entropy {f('entropy')}, loss {f('loss', 4)} "
                     f"({f('wall_time', 1)}s)")


def trl_reward_function(task: Task, problems: dict[str, Problem], strict_paper_regex: bool = False):
    """The ground-truth reward as a plain TRL reward function (used by the benchmark's plain-TRL baseline).

    >>> from mtalign.tasks import get_task
    >>> task = get_task("chain_sum"); p = Problem("p", "7+5=", "12")
    >>> reward = trl_reward_function(task, {"p": p})
    >>> reward(prompts=["^7+5="], completions=["<think>7+5=12</think><answer>12</answer>"], problem_id=["p"])
    [1.0]
    """
    def ground_truth(prompts, completions, problem_id, **_):
        return [task.score(_text(c), problems[i], strict_paper_regex).reward for c, i in zip(completions, problem_id)]

    return ground_truth
