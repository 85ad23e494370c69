"""The cost of a run and of a grid (issue 7): `mtalign bench run` splits a real micro run into its parts and checks
the two generation paths agree on it; `mtalign.cost` estimates cells and grids from params/costs.yaml (which runs
they train, the shared baseline once, finished runs free, longest-first scheduling); `mtalign study --dry-run`
prints the estimates and `mtalign study` runs the costliest cells first."""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil

import pytest

from mtalign import cost, grid, paths, runner

MICRO = "micro-chain_sum-strong"


@pytest.fixture(scope="module", autouse=True)
def _isolated(isolated_module):
    return isolated_module


def test_run_benchmark_splits_a_micro_run_and_the_two_generation_paths_agree(capsys):
    from mtalign import bench_run

    parser = argparse.ArgumentParser()
    bench_run.add_arguments(parser)
    f = bench_run.run(parser.parse_args(["--model", MICRO, "--preset", "smoke"]))
    parts = f["parts"]
    assert set(parts) == set(bench_run.PARTS)
    assert sum(p["seconds"] for p in parts.values()) == pytest.approx(f["total_seconds"])
    for name in ("set-up", "rollout generation", "policy forward/backward", "optimiser", "held-out evaluation"):
        assert parts[name]["seconds"] > 0, name
    for name in ("rollout generation", "policy forward/backward", "held-out evaluation"):
        assert parts[name]["gflop"] > 0 and 0 < parts[name]["floor_seconds"] < parts[name]["seconds"], name
    assert parts["reward scoring"]["gflop"] == 0
    assert 0 < f["floor_fraction"] < 1 and f["matmul_gflop_per_s"]["decode"] > 0 and f["read_gb_per_s"] > 0
    for name in ("rollout generation", "held-out evaluation"):  # decoding's cache reads add to its matmuls' floor
        assert parts[name]["cache_gb"] > 0 and parts[name]["floor_seconds"] > parts[name]["matmul_floor_seconds"]
    assert parts["policy forward/backward"]["cache_gb"] == 0
    entry = f["cost_entry"]  # the FLOPs per unit that move the costs to another machine's matmul rates
    assert entry["rollout_gflop"] > 0 and entry["update_gflop"] > entry["rollout_gflop"] and entry["eval_gflop"] > 0
    # both paths ran on every generation call, from the same random state, and gave the same tokens
    assert f["generation_paths"]["rollout"]["calls"] >= 2 and f["generation_paths"]["evaluation"]["calls"] >= 2
    assert f["token_mismatches"] == 0
    out = capsys.readouterr().out
    assert "dominant part:" in out and "transformers generate" in out and "of floor" in out
    assert "decoding reads each row's KV cache once per token" in out
    positions = f["update_positions"]  # every update forward pass counted, padding included
    assert 0 < positions["real"] < positions["computed"] and "% padding" in out
    assert f["trim_micro_batch"] is None and "CANDIDATE LEVER" not in out

    # the candidate lever, measured on the same run: fewer positions computed, the same real ones
    trimmed = bench_run.run(parser.parse_args(["--model", MICRO, "--preset", "smoke", "--no-compare",
                                               "--trim-micro-batch", "4"]))
    out = capsys.readouterr().out
    assert "CANDIDATE LEVER, not the study's engine" in out and trimmed["trim_micro_batch"] == 4
    assert trimmed["update_positions"]["computed"] < positions["computed"]


def test_trimmed_micro_batches_give_every_real_position_its_log_prob_and_skip_the_padding():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mtalign import bench_run

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=2, intermediate_size=64, vocab_size=40))
    computed = []

    def per_token_logps(self, model, input_ids, attention_mask, logits_to_keep, compute_entropy=False):
        computed.append(input_ids.numel())  # as TRL's: log-probs of the last logits_to_keep tokens
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, -logits_to_keep - 1:-1]
        logps = logits.log_softmax(-1).gather(-1, input_ids[:, -logits_to_keep:, None])[..., 0]
        entropies = -(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1) if compute_entropy else None
        return logps, entropies, None

    prompts, completions = [3, 5, 2, 4, 5], [6, 1, 4, 2, 3]  # real lengths; prompts left-padded, completions right
    width_p, width_c = max(prompts), max(completions)
    ids = torch.randint(1, 40, (len(prompts), width_p + width_c))
    mask = torch.zeros_like(ids)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        mask[row, width_p - p:width_p + c] = 1
    whole, whole_entropy, _ = per_token_logps(None, model, ids, mask, width_c, compute_entropy=True)
    lever = bench_run.trimmed_micro_batches(per_token_logps, rows=2)
    cut, cut_entropy, _ = lever(None, model, ids, mask, width_c, compute_entropy=True)
    real = mask[:, width_p:].bool()
    assert cut.shape == whole.shape and torch.allclose(cut[real], whole[real], atol=1e-5)
    assert torch.allclose(cut_entropy[real], whole_entropy[real], atol=1e-5)
    # sorted by length, two rows a batch: completions of (6, 4), (3, 2) and (1) tokens, each batch cut to its longest
    assert computed[1:] == [2 * (width_p + 6), 2 * (width_p + 3), 1 * (width_p + 1)]
    # what lies beyond its batch's longest is not computed (zero; the loss's mask ignores it, as it ignores padding)
    assert not cut[4, 3:].any() and not cut[3, 3:].any() and not cut[1, 1:].any() and cut[0].all()


def test_cache_reads_count_the_keys_and_values_the_decode_loop_attends_over(monkeypatch):
    """Generation's memory floor: `cache_reads` is what mtalign.decode's attention reads for its running rows."""
    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    from mtalign import bench_run, decode

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=64, vocab_size=12)
    shapes = bench_run._Shapes(LlamaForCausalLM(config))
    assert shapes.cache_bytes_per_position == 2 * 2 * 2 * (32 // 4) * 4  # K and V, 2 layers, 2 kv heads, float32
    assert shapes.cache_reads([3], [2]) == 7 * shapes.cache_bytes_per_position  # after tokens 1, 2: 3 + 4 positions
    assert shapes.cache_reads([1, 0], [5, 5]) == 0  # a one-token completion needs no decoding step

    model = LlamaForCausalLM(config).eval()
    attended = []
    sdpa = F.scaled_dot_product_attention

    def counting(q, k, v, **kw):
        if q.shape[2] == 1:  # a decoding step (the prompt's forward pass is counted in FLOPs)
            attended.append(k.shape[0] * k.shape[2])  # rows x positions; grouped heads repeat the same cache
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(decode.F, "scaled_dot_product_attention", counting)
    for rows, prompt_len in ((1, 4), (2, 3)):  # two rows: the one that stops first leaves the batch at once
        attended.clear()
        ids = torch.randint(2, 12, (rows, prompt_len))
        out = decode.sample(model, ids, torch.ones_like(ids), max_new_tokens=12, stop_ids=[1], pad_id=0,
                            temperature=3.0)
        lengths = [row.tolist().index(1) + 1 if 1 in row.tolist() else len(row) for row in out.tokens]  # to the stop
        read = shapes.cache_reads(lengths, [prompt_len] * rows)
        assert sum(attended) / config.num_hidden_layers * shapes.cache_bytes_per_position == read, (lengths, attended)


def test_run_benchmark_rejects_bad_input_before_training():
    from mtalign import bench_run

    parser = argparse.ArgumentParser()
    bench_run.add_arguments(parser)
    with pytest.raises(ValueError, match="--steps must be at least 1"):
        bench_run.run(parser.parse_args(["--model", MICRO, "--steps", "0"]))
    with pytest.raises(ValueError, match="--trim-micro-batch must be at least 1"):
        bench_run.run(parser.parse_args(["--model", MICRO, "--trim-micro-batch", "0"]))
    with pytest.raises(ValueError, match="valid variants"):
        bench_run.run(parser.parse_args(["--model", MICRO, "--variant", "nope"]))


# -- the cost model ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("jobs, workers, expected", [
    ([5, 4, 3, 3, 3], 1, 18),  # one lane: the sum
    ([5, 4, 3, 3, 3], 2, 10),  # longest first: 5+3+... vs 4+3+3 (greedy, not the optimum 9)
    ([5, 4, 3], 8, 5),  # more lanes than jobs: the longest job
    ([], 2, 0),
])
def test_makespan_of_longest_first_scheduling(jobs, workers, expected):
    assert cost.makespan(jobs, workers) == expected


@pytest.fixture
def toy_plan(tmp_path):
    return grid.plan(grid.load_grid(paths.PARAMS / "grids" / "toy.yaml"), tmp_path / "out")


def test_toy_grid_estimates_train_the_shared_baseline_once_per_model_and_seed(toy_plan):
    costs = cost.load_costs()
    estimates = {e.name: e for e in cost.estimate_cells(toy_plan, toy_plan.cells, costs)}
    assert all(e.seconds and e.seconds > 0 for e in estimates.values()), [e.note for e in estimates.values()]
    for model in ("toy-chain_sum-weak", "toy-mini_sudoku-strong"):
        cells = {nb: estimates[f"{nb}__model={model}__seed=1"] for nb in
                 ("02_reward_signal", "03_one_shot", "04_sample_polarity")}
        assert cells["02_reward_signal"].runs[0] == "ground_truth"  # the first cell of the plan trains it
        assert cells["02_reward_signal"].runs[-1] == "random_unclipped"  # its probe is a run too
        assert "ground_truth" not in cells["03_one_shot"].runs + cells["04_sample_polarity"].runs
    # a mini_sudoku run generates longer completions than a chain_sum one: it costs more
    assert estimates["04_sample_polarity__model=toy-mini_sudoku-weak__seed=0"].seconds > \
        estimates["04_sample_polarity__model=toy-chain_sum-weak__seed=0"].seconds


def test_more_steps_seeds_or_variants_cost_more_and_finished_runs_cost_nothing(toy_plan, tmp_path):
    from mtalign import runinfo, runs

    costs = cost.load_costs()
    cell = next(c for c in toy_plan.cells if c.name == "04_sample_polarity__model=toy-chain_sum-strong__seed=0")
    (base,) = cost.estimate_cells(toy_plan, [cell], costs)
    longer = dataclasses.replace(cell, overrides={**cell.overrides, "steps": 60})
    (more_steps,) = cost.estimate_cells(toy_plan, [longer], costs)
    fewer = dataclasses.replace(cell, overrides={**cell.overrides, "variants": ["psr"]})
    (fewer_variants,) = cost.estimate_cells(toy_plan, [fewer], costs)
    assert more_steps.seconds > base.seconds > fewer_variants.seconds
    assert base.runs == ["ground_truth", "psr", "nsr", "w_reinforce"]
    runs_dir = tmp_path / "runs"
    done = runs.run_dir(runs_dir, "toy-chain_sum-strong", "chain_sum", "nsr", 0, "toy")
    runinfo.write_json(done / "summary.json", {"status": "finished"})
    (with_done,) = cost.estimate_cells(toy_plan, [cell], costs, runs_dir=runs_dir)
    assert with_done.runs == ["ground_truth", "psr", "w_reinforce"] and with_done.seconds < base.seconds
    # a finished run of another engine (other code or packages) is trained anew (runinfo.is_finished), and paid for
    runinfo.write_json(done / "run.json", {**runinfo.environment(), "engine": "0123456789abcdef"})
    (with_outdated,) = cost.estimate_cells(toy_plan, [cell], costs, runs_dir=runs_dir)
    assert with_outdated.runs == base.runs and with_outdated.seconds == base.seconds


def test_dry_run_prints_each_cells_estimate_and_the_grids_wall_time_for_n_workers(toy_plan):
    text = runner.dry_run(toy_plan, toy_plan.cells, workers=4)
    assert "estimated cost:" in text and "4 workers" in text and "1 worker " in text
    line = next(l for l in text.splitlines() if "02_reward_signal__model=toy-chain_sum-strong__seed=0" in l)
    assert re.search(r"\(about \d+ (min|s)\)$", line), line


def test_cells_without_a_measured_cost_are_named_not_guessed(tmp_path):
    smoke = grid.plan(grid.load_grid(paths.PARAMS / "grids" / "smoke.yaml"), tmp_path / "out")
    costs = dataclasses.replace(cost.load_costs(), families={}, notebooks={})
    estimates = cost.estimate_cells(smoke, smoke.cells, costs)
    assert all(e.seconds is None and e.note.startswith("no measured cost") for e in estimates)
    assert "not estimated" in "\n".join(cost.summary_lines(estimates, [1, 2], costs))


def test_longest_first_orders_the_cells_to_run_by_their_estimate(toy_plan):
    here = cost.on_this_machine(cost.load_costs())  # the runner's estimates are this machine's
    estimates = {e.name: e.seconds for e in cost.estimate_cells(toy_plan, toy_plan.cells, here)}
    assert runner.cell_estimates(toy_plan, toy_plan.cells) == pytest.approx(estimates)
    ordered = runner.longest_first(toy_plan.cells, estimates)
    seconds = [estimates[c.name] for c in ordered]
    assert seconds == sorted(seconds, reverse=True) and len(ordered) == len(toy_plan.cells)


MEASURED = cost.Rates(generation=100.0, update_bfloat16=400.0, update_float32=100.0)


def test_a_part_moves_to_another_machine_by_the_time_its_flops_take_there():
    part = cost.PartCosts(setup_s=0.1, rollout_s=0.002, update_s=0.003, eval_s=0.002, generation_batches=2.0,
                          rollout_gflop=0.1, update_gflop=0.4, eval_gflop=0.1)
    assert part.on(MEASURED, MEASURED, bf16=True) == part  # the same machine: as measured
    assert part.on(MEASURED, None, bf16=True) == part and part.on(None, MEASURED, bf16=True) == part
    # no bf16 instructions: bf16 updates at 50 GFLOP/s where they ran at 400; generation half as fast
    slower = cost.Rates(generation=50.0, update_bfloat16=50.0, update_float32=100.0)
    moved = part.on(MEASURED, slower, bf16=True)
    assert moved.update_s == pytest.approx(0.003 + 0.4 * (1 / 50 - 1 / 400))
    assert moved.rollout_s == pytest.approx(0.002 + 0.1 * (1 / 50 - 1 / 100))
    assert moved.eval_s == pytest.approx(0.002 + 0.1 * (1 / 50 - 1 / 100))
    assert (moved.setup_s, moved.generation_batches) == (0.1, 2.0)
    assert part.on(MEASURED, slower, bf16=False).update_s == pytest.approx(0.003)  # float32 updates: same rate
    # a faster machine never costs less than nothing
    assert part.on(MEASURED, cost.Rates(1e9, 1e9, 1e9), bf16=True).update_s >= 0
    unknown = dataclasses.replace(part, rollout_gflop=0.0, update_gflop=0.0, eval_gflop=0.0)
    assert unknown.on(MEASURED, slower, bf16=True) == unknown  # no FLOPs measured: nothing to move


def test_a_grid_on_a_machine_without_bf16_instructions_is_estimated_at_its_rates(toy_plan):
    measured = dataclasses.replace(cost.load_costs(), rates=MEASURED)
    same = cost.on_this_machine(measured, rates=MEASURED)
    slower = cost.on_this_machine(measured, rates=cost.Rates(100.0, 50.0, 100.0))
    cells = [c for c in toy_plan.cells if c.notebook in ("01_alignment", "04_sample_polarity")]
    as_measured, on_same, on_slower = ({e.name: e.seconds for e in cost.estimate_cells(toy_plan, cells, c)}
                                       for c in (measured, same, slower))
    assert on_same == pytest.approx(as_measured)
    assert all(on_slower[name] > seconds for name, seconds in as_measured.items()), "builds and updates cost more"
    lines = cost.summary_lines(cost.estimate_cells(toy_plan, cells, slower), [2], slower)
    assert "this machine's matmul rates: 100 GFLOP/s generation (float32), 50 bf16" in "\n".join(lines)
    assert "0.12x bf16 update speed" in "\n".join(lines)
    assert cost.on_this_machine(dataclasses.replace(measured, rates=None)).here is None  # no rates: as measured


def test_a_claim_cell_pays_for_building_its_model_when_it_is_the_first_to_use_it(toy_plan):
    """A grid without 01_alignment (`--only '02_*'`) on a fresh cache builds each toy model in the first cell that
    uses it; with 01_alignment first in the plan, that cell pays for every build and the claim cells for none."""
    costs = cost.load_costs()
    claim = [c for c in toy_plan.cells if c.name.startswith("04_sample_polarity__model=toy-chain_sum-weak__seed=")]
    alone = cost.estimate_cells(toy_plan, claim, costs)
    assert [e.note for e in alone] == ["builds toy-chain_sum-weak", "", ""]
    assert alone[0].seconds - alone[1].seconds == pytest.approx(cost._build_seconds("toy-chain_sum-weak", costs), rel=0.05)
    alignment = next(c for c in toy_plan.cells if c.notebook == "01_alignment")
    after_alignment = cost.estimate_cells(toy_plan, [alignment, *claim], costs)[1:]
    assert [e.note for e in after_alignment] == ["", "", ""]
    assert after_alignment[0].seconds < alone[0].seconds


def test_a_malformed_cost_table_is_one_clear_error(tmp_path):
    bad = tmp_path / "costs.yaml"
    bad.write_text("families: {toy-chain_sum: {setup_s: 1}}\n")
    with pytest.raises(ValueError, match="malformed cost table"):
        cost.load_costs(bad)


def test_the_alignment_cell_pays_for_building_only_the_toy_models_not_in_the_cache(toy_plan):
    """01_alignment measures every model of its cell and builds those the cache lacks: with the four toy models
    cached it costs their measurement alone (a cached model is its folder, as `ensure_model` decides; the test's
    cache is empty, so the folders are made here rather than the models built for minutes)."""
    from mtalign import toyworld

    costs = cost.load_costs()
    world = costs.notebooks["01_alignment:toy"]
    cell = next(c for c in toy_plan.cells if c.notebook == "01_alignment")
    names = [f"toy-{task}-{recipe}" for task in ("chain_sum", "mini_sudoku") for recipe in ("strong", "weak")]
    (empty,) = cost.estimate_cells(toy_plan, [cell], costs)
    assert empty.seconds == pytest.approx(4 * (world.measure_s + world.build_s))
    folders = [toyworld.model_dir(toyworld.spec(name)) for name in names]
    try:
        folders[0].mkdir(parents=True)
        (folders[0] / "config.json").write_text("{}")
        (one_built,) = cost.estimate_cells(toy_plan, [cell], costs)
        assert one_built.seconds == pytest.approx(empty.seconds - world.build_s)
        for folder in folders[1:]:
            folder.mkdir(parents=True)
            (folder / "config.json").write_text("{}")
        (cached,) = cost.estimate_cells(toy_plan, [cell], costs)
        assert cached.seconds == pytest.approx(4 * world.measure_s)
        # fewer samples cost proportionally less to measure
        halved = dataclasses.replace(cell, overrides={**cell.overrides, "n": 32})
        assert cost.estimate_cells(toy_plan, [halved], costs)[0].seconds == pytest.approx(2 * world.measure_s)
    finally:  # the module's cache is shared: no other test may find these empty models
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def test_a_family_measured_on_this_machine_is_estimated_as_measured_there(toy_plan, tmp_path):
    """`mtalign bench run --save-costs` keeps a family's entry in the cache folder; the estimates use it unmoved for
    that family (and move the others), and a table measured on another CPU is ignored."""
    local = tmp_path / "costs.json"
    entry = {"setup_s": 0.3, "rollout_s": 0.004, "update_s": 0.01, "eval_s": 0.004, "generation_batches": 2.0,
             "rollout_gflop": 0.07, "update_gflop": 0.3, "eval_gflop": 0.07}
    assert cost.save_local("toy-chain_sum", entry, local) == local
    slow = cost.Rates(generation=50.0, update_bfloat16=50.0, update_float32=100.0)
    costs = cost.on_this_machine(dataclasses.replace(cost.load_costs(local=local), rates=MEASURED), rates=slow)
    assert costs.family("toy-chain_sum", bf16=True) == cost.PartCosts(**entry, source=costs.local["toy-chain_sum"].source)
    assert costs.family("toy-mini_sudoku", bf16=True) == costs.families["toy-mini_sudoku"].on(MEASURED, slow, True)
    note = costs.speed_note()
    assert "measured on this machine (mtalign bench run --save-costs): toy-chain_sum" in note
    assert "toy-mini_sudoku moved by" in note and "toy-chain_sum moved" not in note
    cell = next(c for c in toy_plan.cells if c.name == "04_sample_polarity__model=toy-chain_sum-strong__seed=0")
    (estimate,) = cost.estimate_cells(toy_plan, [cell], costs)
    # 4 runs of 30 steps x 16 x 8 at the local units, the step-0 evaluation once
    completions = 30 * 16 * 8
    run = 0.3 + completions * (0.004 * 2.0 + 0.01) + 0.004 * 100 * (8 + 4 * 2)
    build = cost._build_seconds("toy-chain_sum-strong", costs)  # the test's toy-model cache is empty
    assert build == pytest.approx(costs.notebooks["01_alignment:toy"].build_s * 0.01 / costs.families["toy-chain_sum"].update_s)
    assert estimate.seconds == pytest.approx(costs.kernel_s + build + 4 * run + 0.004 * 100 * 8)
    assert estimate.note == "builds toy-chain_sum-strong"
    # another CPU's table is not this machine's
    local.write_text(local.read_text().replace(cost.cpu_name(), "Some Other CPU"))
    assert cost.load_costs(local=local).local == {}
    assert cost.load_costs(local=tmp_path / "absent.json").local == {}


def test_a_store_with_runs_from_another_kind_of_cpu_is_named_before_the_grid_runs(toy_plan):
    """Toy models built on two kinds of CPU differ, and a run names its model by recipe: the dry run (and the study,
    on stderr) warns when the store holds finished runs trained on another kind; runs from this kind, unfinished ones
    and those that record no CPU are not counted."""
    from mtalign import cpu_bf16, runinfo

    store = toy_plan.out / "runs" / "toy"
    for name, info in {"a": {"status": "finished", "cpu": "Other CPU; bf16 instructions: True"},
                       "b": {"status": "finished", "cpu": "Other CPU; bf16 instructions: True"},
                       "c": {"status": "running", "cpu": "Other CPU; bf16 instructions: True"},
                       "d": {"status": "finished", "cpu": cpu_bf16.cpu_kind()},
                       "e": {"status": "finished"}}.items():
        runinfo.write_json(store / name / "run.json", info)
    assert runner.other_cpu_runs(toy_plan.out / "runs") == {"Other CPU; bf16 instructions: True": 2}
    text = runner.dry_run(toy_plan, toy_plan.cells[:1])
    assert "warning: 2 finished run(s)" in text and "Other CPU" in text and cpu_bf16.cpu_kind() in text
    runinfo.write_json(store / "a" / "run.json", {"status": "finished", "cpu": cpu_bf16.cpu_kind()})
    runinfo.write_json(store / "b" / "run.json", {"status": "failed", "cpu": "Other CPU; bf16 instructions: True"})
    assert runner.other_cpu_runs(toy_plan.out / "runs") == {} and "warning" not in runner.dry_run(toy_plan, toy_plan.cells[:1])


def test_two_benchmarks_saving_at_once_each_keep_their_entry(tmp_path):
    """`--save-costs` from two processes at once (two families benchmarked side by side): one writer at a time,
    so neither entry is lost to the other's read-modify-write."""
    import subprocess
    import sys
    import time

    local, go = tmp_path / "costs.json", tmp_path / "go"
    code = ("import sys, time; from pathlib import Path; from mtalign import cost\n"
            "entry = {'setup_s': 0.1, 'rollout_s': 0.001, 'update_s': 0.002, 'eval_s': 0.001, 'generation_batches': 2}\n"
            "while not Path(sys.argv[3]).exists(): time.sleep(0.001)\n"  # both start writing together
            "for i in range(150): cost.save_local(f'{sys.argv[1]}-{i}', entry, Path(sys.argv[2]))\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, name, str(local), str(go)]) for name in ("a", "b")]
    time.sleep(3)  # both imported and waiting
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert set(cost.load_costs(local=local).local) == {f"{n}-{i}" for n in "ab" for i in range(150)}
