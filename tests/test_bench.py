"""`mtalign bench`: the sampling benchmark runs on a micro toy model and prints figures that parse and agree with
each other; the registry dispatches by name; bad input fails before any model is built. No timing assertions: the
speed-up is for a person to read on a quiet machine, not for a shared CI box to enforce.
"""

from __future__ import annotations

import re

import pytest

from mtalign import bench, cli

ROW = re.compile(r"^(naive|generate|sampler)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", re.MULTILINE)
SPEEDUP = re.compile(r"^speed-up: ([\d.]+)x completions/s, ([\d.]+)x tokens/s \(target >= 5x completions/s: "
                     r"(met|NOT met)\); ([\d.]+)x tokens/s over batched generate$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _caches(tmp_path_factory, monkeypatch):
    # one cache for the module, so the micro model is built once
    cache = tmp_path_factory.getbasetemp() / "bench-cache"
    monkeypatch.setenv("MTALIGN_CACHE", str(cache))
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.mark.slow
def test_sampling_benchmark_prints_figures_that_parse_and_agree(capsys):
    prompts, n, budget = 3, 2, 8
    status = cli.main(["bench", "sampling", "--model", "micro-chain_sum-strong", "--prompts", str(prompts),
                       "--n", str(n), "--max-new-tokens", str(budget)])
    out = capsys.readouterr().out
    assert status == 0
    assert "micro-chain_sum-strong on chain_sum, 3 prompts x 2 completions, at most 8 new tokens" in out
    rows = {match[0]: [float(x) for x in match[1:]] for match in ROW.findall(out)}
    assert set(rows) == {"naive", "generate", "sampler"}, out
    # the sampler's decode loop draws the very tokens batched generate draws (same seed and batch)
    assert rows["sampler"][1] == rows["generate"][1] and rows["sampler"][5] == rows["generate"][5]
    for method, (completions, tokens, seconds, per_s, tokens_per_s, reward) in rows.items():
        assert completions == prompts * n  # the same prompts and count for both methods
        assert completions <= tokens <= completions * budget
        assert seconds > 0 and per_s > 0 and tokens_per_s > 0
        # the printed rate matches the printed counts and time, up to the rounding of what is printed
        assert completions / (seconds + 0.0005) - 0.05 <= per_s <= completions / max(seconds - 0.0005, 1e-9) + 0.05
        assert 0 <= reward <= 1
    [(speedup, speedup_tokens, verdict, over_generate)] = SPEEDUP.findall(out)
    assert float(over_generate) > 0
    assert float(speedup) > 0 and float(speedup_tokens) > 0
    low = (rows["sampler"][3] - 0.05) / (rows["naive"][3] + 0.05)
    high = (rows["sampler"][3] + 0.05) / (rows["naive"][3] - 0.05)
    assert low - 0.05 <= float(speedup) <= high + 0.05  # the ratio of the printed rates, up to rounding
    assert verdict == ("met" if float(speedup) >= 5 else "NOT met")


def test_bench_alone_runs_the_default_benchmark_with_its_defaults(monkeypatch):
    seen = []
    monkeypatch.setitem(bench.BENCHMARKS, "sampling",
                        bench.Benchmark("test", bench.add_sampling_arguments, lambda args: seen.append(args) or {}))
    assert cli.main(["bench"]) == 0
    [args] = seen
    assert args.which == "sampling" and args.model == "toy-chain_sum-strong" and args.prompts == 32 and args.n == 8


def test_a_registered_benchmark_gets_its_own_subcommand_and_options(monkeypatch, capsys):
    def add(parser):
        parser.add_argument("--steps", type=int, default=3)

    seen = []
    monkeypatch.setitem(bench.BENCHMARKS, "train", bench.Benchmark("training step", add, seen.append))
    assert cli.main(["bench", "train", "--steps", "5"]) == 0
    assert seen[0].steps == 5 and seen[0].which == "train"
    with pytest.raises(SystemExit):  # sampling's options do not leak into another benchmark
        cli.main(["bench", "train", "--prompts", "4"])


def test_unknown_benchmark_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "nosuch"])
    assert "sampling" in capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--n", "0"], "--n must be at least 1"),
    (["--prompts", "-1"], "--prompts must be at least 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1"),
    (["--task", "nosuch"], "valid tasks: chain_sum"),
    (["--model", "toy-nosuch-strong", "--task", "chain_sum"], "cannot load model"),
])
def test_bad_input_is_one_clear_error_before_any_model_is_built(args, words, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MTALIGN_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # a repeated --model overrides the first, as argparse keeps the last value
    assert cli.main(["bench", "sampling", "--model", "micro-chain_sum-strong", *args]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "empty" / "toy-models").exists()
