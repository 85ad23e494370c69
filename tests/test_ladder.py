"""The alignment ladder (mtalign/ladder.py; issue 11, part 2): its rungs come from params/toyworld.yaml alone, maj@k
is pinned by hand, a rung's measurement draws 01_alignment's very samples, and the analyses (gains against
alignment, transitions, the separating summary, monotonicity) recover what a synthetic ladder store was built to
show. `synthetic_ladder` is shared with tests/test_predict.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mtalign import alignment, ladder, paths, rungs, runinfo, toyworld, verdicts
from mtalign.ladder import FROM_LOWEST, IN_LADDER, NO_TRANSITION, Point

JITTER = (0.0, 0.02, -0.02)  # per seed: every interval has width and the mean is unchanged
N, PROBLEMS = 20, 10  # per synthetic rung record: pass@1 in steps of 1/200


def pass1_of(dial: str, position: int) -> float:
    """The synthetic ladder's alignment: rises along each dial; the diffuse dial at the fidelity dial's values."""
    return {"fidelity": [0.05, 0.1, 0.15, 0.3, 0.45, 0.6, 0.75], "diffuse": [0.05, 0.15, 0.3, 0.45]}[dial][position]


def synthetic_record(model: str, task: str, pass1: float, diffuse: bool) -> dict:
    """A rung record as rungs.measure writes it: correct counts giving `pass1` exactly, and votes whose wrong answers
    are one preferred value (the fidelity dial) or all different (the diffuse dial)."""
    total = round(pass1 * N * PROBLEMS)
    correct = [total // PROBLEMS + (i < total % PROBLEMS) for i in range(PROBLEMS)]
    votes = [[["right", c, True]] + ([[f"w{j}", 1, False] for j in range(N - c)] if diffuse else
                                     [["wrong", N - c, False]] if c < N else []) for c in correct]
    for v in votes:
        v[:] = [e for e in v if e[1] > 0]
    return {"model": model, "task": task, "n": N, "k": [1, 2, 4, 8, 16, 20], "seed": 0,
            "problem_ids": [f"p{i}" for i in range(PROBLEMS)], "correct": correct, "votes": votes,
            "unvoted": [0] * PROBLEMS}


# variant -> gain per seed's mean as a function of the rung (pass@1 x, diffuse?); ground truth gains 0.3 everywhere
GAINS = {
    "ground_truth": lambda x, diffuse: 0.30,
    "psr": lambda x, diffuse: x - 0.15,  # margin x - 0.30: the transition is at pass@1 = 0.30 exactly
    "nsr": lambda x, diffuse: 0.30,  # holds from the lowest rung
    "random": lambda x, diffuse: -0.05,  # never
    # holds where the majority answer is right: every diffuse rung, the fidelity rungs from pass@1 0.6 on
    "majority_vote": lambda x, diffuse: 0.28 if diffuse or x >= 0.6 else -0.03,
}


def run_summary(model: str, task: str, variant: str, seed: int, gain: float) -> dict:
    return {"run": f"{model}__{task}__{variant}__s{seed}", "status": "finished", "model": model, "task": task,
            "eval_task": task, "variant": variant, "semantics": "paper", "seed": seed, "preset": "toy", "steps": 30,
            "settings_hash": f"synthetic-{model}", "before": {"accuracy": 0.2}, "after": {"accuracy": 0.2 + gain},
            "gain": gain, "passk_before": {"pass@1": 0.2}}


def synthetic_ladder(out: Path, families=("chain_sum", "mini_sudoku"), gains=None, seeds=(0, 1, 2)) -> Path:
    """A ladder study folder: rung records under 06_alignment_ladder/ and run summaries under runs/, for the toy
    world's ladders on `families`. `gains` overrides GAINS per family: {family: {variant: f(x, diffuse)}}."""
    for rung in rungs.rungs("toy", families):
        x, diffuse = pass1_of(rung.dial, rung.position), rung.dial == "diffuse"
        rungs.write_record(synthetic_record(rung.model, rung.task, x, diffuse), out / "06_alignment_ladder")
        for variant, f in {**GAINS, **((gains or {}).get(rung.task) or {})}.items():
            for seed in seeds:
                summary = run_summary(rung.model, rung.task, variant, seed, f(x, diffuse) + JITTER[seed % 3])
                runinfo.write_json(out / "runs" / "toy" / summary["run"] / "summary.json", summary)
    return out


def add_held_out_rungs(out: Path, pass1: float = 0.5, families=("chain_sum",), variants=None, seeds=(0, 1, 2),
                       dials=None) -> Path:
    """The held-out rungs (params/toyworld.yaml `held_out:`) of `families` (and `dials`, default all) written into a
    synthetic ladder study at pass@1 `pass1`, with runs of `variants` (default every GAINS variant) following GAINS."""
    for rung in rungs.held_out_rungs("toy", families):
        if dials and rung.dial not in dials:
            continue
        diffuse = rung.dial == "diffuse"
        rungs.write_record(synthetic_record(rung.model, rung.task, pass1, diffuse), out / "06_alignment_ladder")
        for variant in variants or GAINS:
            for seed in seeds:
                summary = run_summary(rung.model, rung.task, variant, seed, GAINS[variant](pass1, diffuse) + JITTER[seed])
                runinfo.write_json(out / "runs" / "toy" / summary["run"] / "summary.json", summary)
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return synthetic_ladder(tmp_path_factory.mktemp("ladder") / "study")


@pytest.fixture(scope="module")
def lad(store) -> ladder.Ladder:
    return ladder.load(store, n_boot=200)


def test_a_ladder_folder_is_read_whole_whichever_batch_grid_ran_last(tmp_path, lad):
    """A ladder folder is filled by batch grids, and its manifest names only the last one's cells (here one cell of
    the held-out batch): the ladder still reads every run in the store."""
    store = synthetic_ladder(tmp_path / "study")
    cell = {"name": "02_reward_signal__model=toy-chain_sum-fid60__seed=0", "notebook": "02_reward_signal",
            "status": "finished", "dir": None, "parameters": {"model": "toy-chain_sum-fid60", "seed": 0,
                                                               "variants": ["majority_vote"]}}
    runinfo.write_json(store / "manifest.json", {"grid": {}, "cells": [cell]})
    assert len(ladder.load(store, n_boot=20).cells) == len(lad.cells) == 2 * 11 * len(GAINS)


# -- the rungs come from params/toyworld.yaml only ---------------------------------------------------------------
def test_ladders_are_read_from_toyworld_yaml():
    config = toyworld.load_config()
    assert rungs.ladders() == config["ladders"]
    assert all(recipe in config["recipes"] for recipes in config["ladders"].values() for recipe in recipes)
    micro = rungs.rungs("micro", ["chain_sum"])
    assert [r.model for r in micro] == [f"micro-chain_sum-{r}" for rs in config["ladders"].values() for r in rs]
    assert all(r.model in toyworld.list_models() for r in rungs.rungs("toy"))


def test_held_out_rungs_are_recipes_built_on_a_dial_that_no_ladder_fit_sees():
    config = toyworld.load_config()
    held = rungs.held_out_rungs("toy", ["chain_sum"])
    assert [(r.model, r.dial, r.held_out) for r in held] == [
        (f"toy-chain_sum-{recipe}", dial, True) for dial, recipes in config["held_out"].items() for recipe in recipes]
    assert all(r.model in toyworld.list_models() for r in held)
    ladder_models, held_models = set(rungs.rung_index()), set(rungs.rung_index(held_out=True))
    assert held_models and not ladder_models & held_models
    # a held-out rung sits between two rungs of its dial: its answer fidelity lies inside the dial's range
    for dial, recipes in config["held_out"].items():
        fidelities = [config["recipes"][r]["answer_fidelity"] for r in config["ladders"][dial]]
        assert all(min(fidelities) < config["recipes"][r]["answer_fidelity"] < max(fidelities) for r in recipes)
    for bad, message in (({"fidelity": ["fid50"]}, "not on its ladder"), ({"fidelity": ["nope"]}, "must be recipes"),
                         ({"sideways": ["fid60"]}, "not a ladder; ladders: fidelity, diffuse"),
                         (["fid60"], "must map a dial")):
        with pytest.raises(ValueError, match=message):
            rungs.held_out({**config, "held_out": bad})
    with pytest.raises(ValueError, match=r"unknown task\(s\) sudoku9; valid: chain_sum, mini_sudoku"):
        rungs.held_out_rungs("toy", ["sudoku9"])
    with pytest.raises(ValueError, match=r"unknown world\(s\) huge; valid: toy, micro"):
        rungs.held_out_rungs("huge")


def test_a_smoke_ladder_keeps_each_dials_ends():
    assert rungs.spread(7, 3) == [0, 3, 6] and rungs.spread(4, 2) == [0, 3] and rungs.spread(4, 0) == [0, 1, 2, 3]
    per_dial = rungs.rungs("micro", ["chain_sum"], per_dial=2)
    assert [(r.dial, r.position) for r in per_dial] == [("fidelity", 0), ("fidelity", 6), ("diffuse", 0),
                                                        ("diffuse", 3)]


def test_unknown_names_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown dial.*valid: fidelity, diffuse"):
        rungs.rungs("toy", dials=["fidelty"])
    with pytest.raises(ValueError, match="unknown world"):
        rungs.rungs("huge")


def test_ladder_grid_runs_every_rung_variant_and_seed():
    """params/grids/ladder.yaml has to list rungs and models as literals (a grid cannot read toyworld.yaml): this
    keeps those lists equal to the ladders, so the two cannot drift apart."""
    grid = yaml.safe_load((paths.PARAMS / "grids" / "ladder.yaml").read_text())
    config = toyworld.load_config()
    toy = rungs.rungs("toy")
    assert grid["notebooks"]["01_alignment"]["params"]["recipes"] == list(dict.fromkeys(r.recipe for r in toy))
    assert grid["notebooks"]["01_alignment"]["grid"]["tasks"] == [[t] for t in config["tasks"]]
    for notebook, claim in (("02_reward_signal", "RQ1 reward signal"), ("03_one_shot", "RQ2 one-shot"),
                            ("04_sample_polarity", "RQ3 sample polarity")):
        entry = grid["notebooks"][notebook]
        assert sorted(entry["grid"]["model"]) == sorted(r.model for r in toy), notebook
        assert entry["grid"]["seed"] == [0, 1, 2]
        assert entry.get("params", {}).get("variants", verdicts.CLAIMS[claim]) == verdicts.CLAIMS[claim]
    report = grid["report"]
    assert report["notebook"] == "06_alignment_ladder" and report["params"]["world"] == "toy"


# -- maj@k, pinned by hand ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("votes, unvoted, k, expected", [
    ([["12", 4, True]], 0, 4, 1.0),  # one answer, right
    ([["9", 4, False]], 0, 2, 0.0),  # one answer, wrong
    ([["12", 1, True]], 3, 4, 1.0),  # blanks do not vote: one vote decides
    ([], 4, 4, 0.0),  # nobody answered: wrong
    ([["12", 2, True], ["9", 2, False]], 0, 4, 0.5),  # a tie at k = n: either, at random
    ([["12", 1, True], ["9", 3, False]], 0, 1, 0.25),  # k = 1: the share of right answers
])
def test_maj_at_k_by_hand(votes, unvoted, k, expected):
    n = sum(v[1] for v in votes) + unvoted
    value = rungs.majority_table([votes], [unvoted], n, [k], draws=4000)[0, 0]
    assert value == pytest.approx(expected, abs=0.03)


def test_maj_at_k_separates_a_preferred_wrong_answer_from_diffuse_ones():
    """40% right: with the other 60% on one wrong answer the majority is wrong; spread over many, it is right."""
    preferred = [["right", 26, True], ["lagging", 38, False]]
    diffuse = [["right", 26, True]] + [[f"w{i}", 1, False] for i in range(38)]
    table = rungs.majority_table([preferred, diffuse], [0, 0], 64, [1, 64])
    assert table[:, 0] == pytest.approx([26 / 64, 26 / 64], abs=0.06)  # maj@1: both 0.41
    assert table[:, 1].tolist() == [0.0, 1.0]


def test_a_record_votes_in_canonical_form_without_the_format_gate():
    from mtalign.tasks import Problem, get_task

    task = get_task("chain_sum")
    problem = Problem("p", "^7+5=", "12")
    texts = ["<think>7+5=12</think><answer>12</answer>", "<answer>012</answer>",  # unformatted: votes, not pass@k
             "<think>x</think><answer>13</answer>", "no answer at all"]
    result = rungs.record("m", task, [problem], [texts])
    assert result["correct"] == [1]  # only the formatted right one counts for pass@k, as in 01_alignment
    assert result["votes"] == [[["12", 2, True], ["13", 1, False]]] and result["unvoted"] == [1]
    assert result["summary"]["maj@4"] == pytest.approx(1.0)


def test_summaries_with_intervals():
    result = synthetic_record("toy-chain_sum-fid10", "chain_sum", 0.3, diffuse=False)
    values = rungs.summarize(result, n_boot=300)
    assert values["pass@1"] == pytest.approx(0.3) and values["k_max"] == N
    assert values["pass@1_low"] <= 0.3 <= values["pass@1_high"]
    mean_curve = alignment.passk.per_problem(N, result["correct"], alignment.passk.default_ks(N)).mean(axis=0)
    by_curve = alignment.passk.summaries({"k": alignment.passk.default_ks(N), "pass_at_k": mean_curve})
    assert values["auc_log_k"] == pytest.approx(by_curve["auc_log_k"])  # the mean of per-problem areas
    assert values["maj@k_max"] == 0.0  # the preferred wrong answer always outvotes 6 right ones of 20
    assert rungs.summarize(result, k_max=4)["pass@k_max"] > values["pass@1"]
    with pytest.raises(ValueError, match="k_max 40 needs"):
        rungs.summarize(result, k_max=40)
    without_votes = {k: v for k, v in result.items() if k not in ("votes", "unvoted")}  # 01_alignment's record
    assert math.isnan(rungs.summarize(without_votes, n_boot=50)["maj@k_max"])


def test_a_rung_measurement_draws_01_alignments_samples(isolated):
    """Same model, problems, settings and seed: the correct counts equal mtalign.alignment's, votes cover n."""
    model = "micro-chain_sum-fid10"
    mine = rungs.measure(model, n=4, problems=3, seed=1, out=isolated / "rungs", log=lambda m: None)
    theirs = alignment.measure(model, n=4, problems=3, seed=1, progress=False, log=lambda m: None)
    assert mine["correct"] == theirs["correct"] and mine["problem_ids"] == theirs["problem_ids"]
    assert all(sum(v[1] for v in votes) + blank == 4 for votes, blank in zip(mine["votes"], mine["unvoted"]))
    assert rungs.load_records(isolated / "rungs")[0]["model"] == model
    again = rungs.measure_rungs(rungs.rungs("micro", ["chain_sum"], ["fidelity"], per_dial=1), isolated / "rungs",
                                 n=4, problems=3, seed=1, log=lambda m: pytest.fail("measured again"))
    assert again[0]["correct"] == mine["correct"]  # reused, not measured again


# -- a ladder study's data ------------------------------------------------------------------------------------------
def test_the_store_gives_one_cell_per_rung_and_variant(lad):
    assert len(lad.rungs) == 2 * 11 and set(lad.rungs["source"]) == {"ladder record (pass@k and maj@k)"}
    assert len(lad.cells) == 2 * 11 * len(GAINS)
    fid = lad.rungs[(lad.rungs["family"] == "chain_sum") & (lad.rungs["dial"] == "fidelity")]
    assert fid["pass@1"].tolist() == pytest.approx([0.05, 0.1, 0.15, 0.3, 0.45, 0.6, 0.75])
    # the paired statistics are mtalign.verdicts', row for row
    row = lad.cells[(lad.cells["model"] == "toy-chain_sum-fid100") & (lad.cells["variant"] == "psr")].iloc[0]
    gains = [0.75 - 0.15 + j for j in JITTER]
    assert row["gain"] == pytest.approx(np.mean(gains)) and row["verdict"] == verdicts.HOLDS
    margins = [g - 0.5 * (0.30 + j) for g, j in zip(gains, JITTER)]  # paired with ground truth's seed
    assert row["margin_low"] == pytest.approx(verdicts.effect(margins).low)
    assert lad.seeds[("toy-chain_sum-fid100", "psr")] == pytest.approx(dict(enumerate(gains)))


def test_runs_of_other_settings_are_left_out_and_named(store):
    other = {**run_summary("toy-chain_sum-fid10", "chain_sum", "psr", 0, 0.9), "settings_hash": "other"}
    longer = {**run_summary("toy-chain_sum-fid20", "chain_sum", "psr", 0, 0.8), "steps": 300}
    lad = ladder.build([other, longer] + _summaries(store), rungs.load_records(store), n_boot=50)
    assert lad.warnings == [
        "the ladder: runs of 2 presets and step counts; only the most common (('toy', 30), 331 runs) is analysed, the "
        "other 1 runs are left out",
        "toy-chain_sum-fid10: runs of 2 settings; only the most common (synthetic-toy-chain_sum-, 15 runs) is "
        "analysed, the other 1 runs are left out"]
    assert lad.seeds[("toy-chain_sum-fid10", "psr")][0] == pytest.approx(0.05 - 0.15)  # not the other run's 0.9
    assert lad.seeds[("toy-chain_sum-fid20", "psr")][0] == pytest.approx(0.10 - 0.15)
    assert len(lad.cells) == 2 * 11 * len(GAINS)  # every rung still judged, on its own settings


def _summaries(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "runs").rglob("summary.json"))]


# -- monotone along a dial --------------------------------------------------------------------------------------
def _table(values, lows=None, highs=None, dial="fidelity"):
    return pd.DataFrame({"family": "chain_sum", "dial": dial, "position": range(len(values)),
                         "recipe": [f"r{i}" for i in range(len(values))], "pass@1": values,
                         "pass@1_low": lows or [v - 0.01 for v in values],
                         "pass@1_high": highs or [v + 0.01 for v in values]})


def test_monotone_along_the_dial_on_synthetic_tables(lad):
    assert ladder.not_monotone(_table([0.02, 0.05, 0.2, 0.4])) == []
    falls = ladder.not_monotone(_table([0.02, 0.3, 0.2, 0.4]))
    assert falls == ["chain_sum fidelity: pass@1 falls from r1 (0.300) to r2 (0.200)"]
    # a fall inside the intervals is noise, not a fall
    wide = _table([0.02, 0.3, 0.29, 0.4], lows=[0, 0.25, 0.24, 0.35], highs=[0.05, 0.35, 0.34, 0.45])
    assert ladder.not_monotone(wide) == []
    assert ladder.monotone_steps(wide)["step"].tolist() == ["rises", "flat within noise", "rises"]
    # order is the dial's (position), never the values'
    assert ladder.not_monotone(_table([0.4, 0.2, 0.05]).assign(position=[2, 1, 0])) == []
    assert ladder.not_monotone(lad.rungs) == []  # the synthetic store was built monotone


def test_the_measured_ladder_is_monotone_along_each_dial():
    """The real check, on the ladder's committed records (`mtalign study --params params/grids/ladder.yaml --out
    outputs/ladder`, its 01_alignment cells first); skipped until some are committed."""
    study = paths.ROOT / "outputs" / "ladder"
    if not rungs.load_records(study) and not (study / "01_alignment").is_dir():
        pytest.skip(f"the ladder is not measured yet ({study})")
    rung_rows = ladder.load(study, n_boot=300).rungs
    if rung_rows.empty:
        pytest.skip(f"no rung records in {study}")
    for summary in ("pass@1", "pass@k_max", "auc_log_k"):
        assert ladder.not_monotone(rung_rows, summary) == []  # both dials, both families


# -- transitions ------------------------------------------------------------------------------------------------------
def _point(x, gain, gt=0.3):
    return Point(x, f"m{x}", "chain_sum", "fidelity", np.array([gain + j for j in JITTER]),
                 np.array([gt + j for j in JITTER]))


def test_crossing_by_hand():
    assert ladder.crossing([0.1, 0.2, 0.4], [-0.1, -0.05, 0.05]) == (IN_LADDER, pytest.approx(0.3))
    assert ladder.crossing([0.1, 0.2], [0.01, 0.2]) == (FROM_LOWEST, 0.1)
    status, x = ladder.crossing([0.1, 0.2], [-0.1, -0.2])
    assert status == NO_TRANSITION and math.isnan(x)


def test_transition_needs_a_positive_gain_as_well_as_the_bar():
    """Where ground truth gains nothing, a variant that gains nothing is not 'above half of it'."""
    flat = [_point(x, 0.0, gt=0.0) for x in (0.1, 0.2, 0.3)]
    assert ladder.transition(flat, n_boot=50)["status"] == NO_TRANSITION


def test_a_rung_where_ground_truth_learns_nothing_locates_no_transition(tmp_path):
    """mini_sudoku's lowest diffuse rungs: ground truth gains nothing, so a variant's +0.005 of noise is 'half of
    it' there. Such rungs are left out (and named), and the transition is found where ground truth holds."""
    gains = {"ground_truth": lambda x, diffuse: 0.0 if x <= 0.05 else 0.30,
             "one_shot": lambda x, diffuse: 0.005 if x <= 0.05 else (0.25 if x >= 0.3 else -0.05)}
    lad = ladder.load(synthetic_ladder(tmp_path / "study", families=("chain_sum",), gains={"chain_sum": gains}),
                      n_boot=50)
    assert set(ladder.without_signal(lad)) == {"toy-chain_sum-fid10", "toy-chain_sum-diffuse10"}
    table = ladder.transitions(lad, "pass@1", ["one_shot"], n_boot=100).set_index("dial")
    assert table.loc["fidelity", "status"] == IN_LADDER and 0.15 < table.loc["fidelity", "transition"] < 0.3
    assert table.loc["fidelity", "left_out"] == "toy-chain_sum-fid10"
    lines = ladder.transition_sentences(table.reset_index())
    assert any("leaving out toy-chain_sum-fid10, where ground truth itself does not hold" in line for line in lines)
    # with the rung kept, its noise would have read as "holds from the lowest rung"
    kept = lad.points("one_shot", "pass@1", families=["chain_sum"], dials=["fidelity"])
    assert ladder.transition(kept, n_boot=50)["status"] == FROM_LOWEST


def test_transitions_recover_the_known_crossing(lad):
    table = ladder.transitions(lad, "pass@1", n_boot=300)
    row = lambda f, d, v: table[(table["family"] == f) & (table["dial"] == d) & (table["variant"] == v)].iloc[0]
    psr = row("chain_sum", "fidelity", "psr")
    assert psr["status"] == IN_LADDER and psr["transition"] == pytest.approx(0.30)
    assert psr["low"] <= 0.30 <= psr["high"] and psr["high"] < 0.45 and psr["in_ladder"] > 0.9
    assert row("chain_sum", "fidelity", "nsr")["status"] == FROM_LOWEST
    random = row("mini_sudoku", "diffuse", "random")
    assert random["status"] == NO_TRANSITION and math.isinf(random["high"]) and random["in_ladder"] == 0
    assert "beyond the ladder" in random["interval"]
    # majority vote turns on the fidelity dial, and holds from the lowest rung of the diffuse one
    assert row("chain_sum", "fidelity", "majority_vote")["transition"] == pytest.approx(0.45 + 0.15 * 0.18 / 0.31)
    assert row("chain_sum", "diffuse", "majority_vote")["status"] == FROM_LOWEST
    pooled = ladder.transitions(lad, "pass@1", by=("family",), n_boot=50)
    assert set(pooled.columns) >= {"family", "variant"} and "dial" not in pooled.columns


# -- the separating summary ---------------------------------------------------------------------------------------
def test_rank_auc_and_best_threshold_by_hand():
    assert ladder.rank_auc([0.5, 0.6], [0.1, 0.2]) == 1.0
    assert ladder.rank_auc([0.1], [0.1]) == 0.5
    assert ladder.rank_auc([0.1, 0.5], [0.3]) == 0.5
    assert math.isnan(ladder.rank_auc([], [0.3]))
    threshold, accuracy = ladder.best_threshold([0.5, 0.6], [0.1, 0.2, 0.55])
    assert accuracy == pytest.approx(0.8) and 0.2 < threshold <= 0.5


def test_maj_at_k_separates_majority_vote_where_pass_at_1_cannot(lad):
    """Majority vote was built to hold where the majority answer is right: maj@k tells those cells apart perfectly,
    pass@1 cannot (diffuse rungs hold at low pass@1, fidelity rungs fail at the same pass@1)."""
    table = ladder.separation(lad.cells)
    mv = table[(table["scope"] == "variant") & (table["name"] == "majority_vote")].set_index("summary")
    assert mv.loc["maj@k_max", "rank_auc"] == 1.0 and mv.loc["maj@k_max", "accuracy"] == 1.0
    assert mv.loc["pass@1", "rank_auc"] < 0.8 and mv.loc["pass@1", "accuracy"] < 1.0
    assert mv.loc["pass@1", "holds"] + mv.loc["pass@1", "fails"] == 22
    best = ladder.best_summaries(table)
    assert best[(best["scope"] == "variant") & (best["name"] == "majority_vote")]["summary"].item() == "maj@k_max"
    assert "ground_truth" not in set(table["name"])  # the reference, never a scope
    assert {"RQ1 reward signal", "RQ3 sample polarity", "all claims"} <= set(table["name"])


def test_ladder_grid_plans(tmp_path):
    """The runner accepts the grid before running anything (names, values, the report's parameters): 2 alignment
    cells, 3 claim notebooks x 22 rungs x 3 seeds, and 06 as its report."""
    from mtalign import grid

    plan = grid.plan(grid.load_grid(paths.PARAMS / "grids" / "ladder.yaml"), tmp_path / "out")
    assert len(plan.cells) == 2 + 3 * 22 * 3
    assert plan.report.notebook == "06_alignment_ladder"
    assert plan.report.parameters["study_dir"] == str(tmp_path / "out")  # the runner points it at the study


def test_the_self_rewards_batch_is_a_subset_of_the_ladder_grid(tmp_path):
    """params/grids/ladder_self_rewards.yaml, the ladder's first batch, asks for runs the full ladder grid also asks
    for (every rung of both families, the same seeds and preset, variants of 02's), so the full grid reuses them."""
    from mtalign import grid

    ladder = yaml.safe_load((paths.PARAMS / "grids" / "ladder.yaml").read_text())
    batch = yaml.safe_load((paths.PARAMS / "grids" / "ladder_self_rewards.yaml").read_text())
    full, first = ladder["notebooks"]["02_reward_signal"], batch["notebooks"]["02_reward_signal"]
    assert first["grid"]["model"] == full["grid"]["model"]
    assert first["grid"]["seed"] == full["grid"]["seed"] and batch["defaults"] == ladder["defaults"]
    assert set(first["params"]["variants"]) <= set(full["params"]["variants"])
    assert set(batch["report"]["params"]["variants"]) <= set(ladder["report"]["params"]["variants"])
    plan = grid.plan(grid.load_grid(paths.PARAMS / "grids" / "ladder_self_rewards.yaml"), tmp_path / "out")
    assert len(plan.cells) == 22 * 3 and plan.report.notebook == "06_alignment_ladder"


@pytest.mark.parametrize("name, per_claim", [("ladder_one_per_claim", 1), ("ladder_second_variant", 2)])
def test_the_per_claim_batches_are_subsets_of_the_ladder_grid(tmp_path, name, per_claim):
    """params/grids/ladder_one_per_claim.yaml and ladder_second_variant.yaml: every rung, the ladder's seeds and
    preset, at least `per_claim` variants of each claim, each a variant its notebook runs in the full grid (so the
    full grid reuses every run), and the second batch keeps every variant of the first (so it reuses its runs)."""
    from mtalign import grid

    ladder_grid = yaml.safe_load((paths.PARAMS / "grids" / "ladder.yaml").read_text())
    first = yaml.safe_load((paths.PARAMS / "grids" / "ladder_one_per_claim.yaml").read_text())
    batch = yaml.safe_load((paths.PARAMS / "grids" / f"{name}.yaml").read_text())
    assert batch["defaults"] == ladder_grid["defaults"]
    for notebook, entry in batch["notebooks"].items():
        full = ladder_grid["notebooks"][notebook]
        assert entry["grid"] == full["grid"], notebook
        assert set(entry["params"]["variants"]) <= set(full["params"]["variants"]), notebook
        assert set(first["notebooks"][notebook]["params"]["variants"]) <= set(entry["params"]["variants"]), notebook
    ran = {v for entry in batch["notebooks"].values() for v in entry["params"]["variants"]}
    assert all(len(ran & set(variants)) >= per_claim for variants in verdicts.CLAIMS.values()), "a claim short"
    assert set(batch["report"]["params"]["variants"]) == ran
    plan = grid.plan(grid.load_grid(paths.PARAMS / "grids" / f"{name}.yaml"), tmp_path / "out")
    assert len(plan.cells) == 3 * 22 * 3 and plan.report.notebook == "06_alignment_ladder"


def test_the_held_out_batch_trains_the_held_out_rungs_only(tmp_path):
    """params/grids/ladder_heldout.yaml lists params/toyworld.yaml's held-out rungs (never a ladder rung), with the
    ladder grid's seeds and preset, the variants the one-per-claim batch runs on every rung (so each held-out cell has
    a ladder to be predicted from), and reports through 06 like the ladder."""
    from mtalign import grid

    ladder_grid = yaml.safe_load((paths.PARAMS / "grids" / "ladder.yaml").read_text())
    per_claim = yaml.safe_load((paths.PARAMS / "grids" / "ladder_one_per_claim.yaml").read_text())
    batch = yaml.safe_load((paths.PARAMS / "grids" / "ladder_heldout.yaml").read_text())
    held = [r.model for r in rungs.held_out_rungs("toy")]
    assert {r.dial for r in rungs.held_out_rungs("toy")} == {"fidelity", "diffuse"}
    assert batch["defaults"] == ladder_grid["defaults"]
    assert set(batch["notebooks"]) == set(per_claim["notebooks"])
    for name, entry in batch["notebooks"].items():
        full = ladder_grid["notebooks"][name]
        assert entry["grid"]["model"] == held, name
        assert not set(entry["grid"]["model"]) & set(full["grid"]["model"]), name
        assert entry["grid"]["seed"] == full["grid"]["seed"], name
        assert entry["params"]["variants"] == per_claim["notebooks"][name]["params"]["variants"], name
    assert batch["report"]["params"]["variants"] == per_claim["report"]["params"]["variants"]
    plan = grid.plan(grid.load_grid(paths.PARAMS / "grids" / "ladder_heldout.yaml"), tmp_path / "out")
    assert len(plan.cells) == 3 * 4 * 3 and plan.report.notebook == "06_alignment_ladder"


@pytest.mark.parametrize("a, b, agree", [
    # two transitions: overlapping intervals agree, disjoint ones do not
    ({"status": "transition", "low": 0.10, "high": 0.20}, {"status": "transition", "low": 0.15, "high": 0.30}, True),
    ({"status": "transition", "low": 0.05, "high": 0.07}, {"status": "transition", "low": 0.14, "high": 0.21}, False),
    # a dial that never crossed agrees only if it never reached the other's interval
    ({"status": "no transition within the ladder", "x_min": 0.04, "x_max": 0.27},
     {"status": "transition", "low": 0.28, "high": 0.35}, True),
    ({"status": "no transition within the ladder", "x_min": 0.04, "x_max": 0.98},
     {"status": "transition", "low": 0.97, "high": 0.98}, False),
    # holding from its lowest rung contradicts a transition above that rung
    ({"status": "holds from the lowest rung", "x_min": 0.10, "x_max": 0.9},
     {"status": "transition", "low": 0.3, "high": 0.4}, False),
    ({"status": "no transition within the ladder", "x_min": 0.1, "x_max": 0.5},
     {"status": "no transition within the ladder", "x_min": 0.0, "x_max": 0.6}, True),
])
def test_two_dials_transitions_agree_by_hand(a, b, agree):
    assert ladder._consistent(a, b) is agree
    assert ladder._consistent(b, a) is agree


def test_dial_agreement_on_the_synthetic_ladder(lad):
    """Every (family, variant, summary) gets a row; with two dials crossing, `agree` is a bool and the sentences
    name the summaries the dials agree on."""
    table = ladder.dial_agreement(lad, n_boot=200)
    assert set(table["summary"]) <= set(rungs.SUMMARIES) and len(table) > 0
    two = table[table["dials"] >= 2]
    assert two["agree"].map(lambda v: isinstance(v, bool)).all()
    sentences = ladder.dial_agreement_sentences(table)
    assert len(sentences) == len(two.groupby(["family", "variant"]))
    assert all("the dials agree on" in s for s in sentences)
