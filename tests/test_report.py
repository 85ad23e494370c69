"""The stitched report (mtalign/report.py, notebooks/99_report.py, scripts/screenshot_report.py; issue 4).

The report is a reader, so its input here is a small synthetic study written by hand in a temporary folder: run
summaries and metrics whose gains are chosen to give known verdicts, two alignment JSONs, a contamination result, and
the cells' params.json, with a manifest made by the real grid runner (some cells failed, one never ran).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mtalign import cli, grid, manifests, paths, plots, report, runinfo, runner, toyworld, verdicts

STRONG, WEAK, TASK = "toy-chain_sum-strong", "toy-chain_sum-weak", "chain_sum"
SEEDS = (0, 1, 2)
JITTER = (0.0, 0.02, -0.02)  # per seed, so every interval has width
CHROMIUM = Path("/usr/bin/chromium")
# (model, variant) -> gain per seed (before: strong 0.5, weak 0.1). Chosen for known verdicts, bar = 0.5 x GT's gain.
GAINS = {
    (STRONG, "ground_truth"): [0.30 + j for j in JITTER],     # holds
    (WEAK, "ground_truth"): [0.20 + j for j in JITTER],       # holds
    (STRONG, "majority_vote"): [0.25 + j for j in JITTER],    # holds (bar 0.15)
    (WEAK, "majority_vote"): [-0.05 + j / 4 for j in JITTER],  # fails: the divergence
    (STRONG, "entropy_min"): [0.22 + j for j in JITTER],      # holds
    (WEAK, "entropy_min"): [-0.08 + j / 4 for j in JITTER],   # fails: the divergence
    (STRONG, "random"): [-0.20 + j for j in JITTER],          # fails
    (WEAK, "random"): [-0.05 + j / 4 for j in JITTER],        # fails
    (STRONG, "format_only"): [0.02 + j / 4 for j in JITTER],  # fails: positive but under the bar
    (WEAK, "format_only"): [0.0 + j / 4 for j in JITTER],     # fails
    (STRONG, "incorrect"): [0.30, -0.10, 0.10],               # inconclusive: the interval spans 0 and the bar
    (WEAK, "incorrect"): [-0.04 + j / 4 for j in JITTER],     # fails
    (STRONG, "one_shot"): [0.20 + j for j in JITTER],         # holds; on the weak model its cells failed
    (STRONG, "one_shot_random"): [0.05 + j / 4 for j in JITTER],
    (STRONG, "psr"): [0.28 + j for j in JITTER],              # holds
    (WEAK, "psr"): [0.15 + j for j in JITTER],                # holds too: no divergence
    (STRONG, "nsr"): [0.26 + j for j in JITTER],              # holds (seed 2's cell never ran)
    (WEAK, "nsr"): [-0.02 + j / 4 for j in JITTER],           # fails: the divergence
    (STRONG, "w_reinforce"): [0.27 + j for j in JITTER],
    (WEAK, "w_reinforce"): [0.18 + j for j in JITTER],
}
BEFORE = {STRONG: 0.5, WEAK: 0.1}
GRID = {
    "defaults": {"preset": "toy"},
    "notebooks": {
        "01_alignment": {"params": {"world": "toy"}},
        "02_reward_signal": {"grid": {"model": [STRONG, WEAK], "seed": list(SEEDS)}},
        "03_one_shot": {"grid": {"model": [STRONG, WEAK], "seed": list(SEEDS)}},
        "04_sample_polarity": {"grid": {"model": [STRONG, WEAK], "seed": list(SEEDS)}},
        "05_contamination": {"params": {"world": "toy"}},
    },
    "report": "99_report",
}
FAILED = {f"03_one_shot__model={WEAK}__seed={s}": "RuntimeError: boom in one_shot" for s in SEEDS}
NEVER_RAN = {f"04_sample_polarity__model={STRONG}__seed=2"}


def _summary(model: str, variant: str, seed: int, gain: float, preset: str = "toy") -> dict:
    before = BEFORE.get(model, 0.3)
    return {"run": f"{model}__{TASK}__{variant}__s{seed}", "status": "finished", "model": model, "task": TASK,
            "eval_task": TASK, "variant": variant, "semantics": "paper", "seed": seed, "preset": preset, "steps": 3,
            "before": {"accuracy": before, "format_rate": 0.9, "samples": 4},
            "after": {"accuracy": before + gain, "format_rate": 0.9, "samples": 4}, "gain": gain,
            "passk_before": {"pass@1": before, "pass@16": min(1.0, 3 * before), "auc_log_k": before},
            "passk_after": {"pass@1": before + gain}, "mean_zero_variance_frac": 0.2}


def _write_run(runs_dir: Path, summary: dict) -> None:
    folder = runs_dir / summary["run"]
    for step in (1, 2, 3):
        runinfo.append_jsonl(folder / "metrics.jsonl", {
            "step": step, "reward_mean": 0.1 * step, "gt_accuracy": summary["before"]["accuracy"] + summary["gain"]
            * step / 3, "format_rate": 0.9, "zero_variance_frac": 0.5 / step, "entropy": 1.0 - 0.1 * step})
    runinfo.write_json(folder / "summary.json", summary)


def _alignment_record(model: str, pass1: float) -> dict:
    ks = [1, 2, 4, 8, 16]
    curve = [min(1.0, pass1 * (1 + math.log2(k))) for k in ks]
    return {"model": model, "task": TASK, "n": 16, "k": ks, "seed": 0, "problem_ids": ["a", "b", "c"],
            "correct": [1, 2, 3], "curve": {"k": ks, "pass_at_k": curve, "ci_low": [max(0, c - 0.05) for c in curve],
                                            "ci_high": [min(1, c + 0.05) for c in curve], "n": 16, "problems": 3},
            "summary": {"pass@1": pass1, "pass@16": curve[-1], "auc_log_k": sum(curve) / len(curve)}}


def make_study(out: Path) -> grid.Plan:
    """A finished-looking study folder: runs, alignment and contamination files, cells' params.json, manifest."""
    plan_ = grid.plan(grid.parse_grid(GRID, "test grid"), out)
    ran = {}
    for cell in plan_.cells:
        if cell.name in NEVER_RAN:
            continue
        status = "failed" if cell.name in FAILED else "finished"
        ran[cell.name] = status
        runinfo.write_json(cell.dir / "params.json", {
            "notebook": cell.notebook, "cell": cell.name, "status": status, "error": FAILED.get(cell.name),
            "injected": cell.parameters, "parameters": cell.parameters, "finished": runinfo.now()})
    for (model, variant), gains in GAINS.items():
        for seed, gain in zip(SEEDS, gains):
            if model == STRONG and variant in ("psr", "nsr", "w_reinforce") and seed == 2:
                continue  # its 04 cell never ran
            _write_run(out / "runs", _summary(model, variant, seed, gain))
    align_dir = out / "01_alignment" / "01_alignment"
    for model, pass1 in ((STRONG, 0.52), (WEAK, 0.08)):
        runinfo.write_json(align_dir / f"{model}__{TASK}.json", _alignment_record(model, pass1))
    runinfo.write_json(out / "05_contamination" / "05_contamination" / "metrics.json", {"cells": [
        {"model": STRONG, "task": TASK, "recipe": "strong", "rouge_eval": 0.3, "rouge_fresh": 0.3, "pass@1": 0.52,
         "colour": "Green", "truly_contaminated": False, "test_correct": True, "evidence": "clean"},
        {"model": WEAK, "task": TASK, "recipe": "weak", "rouge_eval": 0.2, "rouge_fresh": 0.2, "pass@1": 0.08,
         "colour": "Gray", "truly_contaminated": False, "test_correct": True, "evidence": "clean, weak"}]})
    entries = {c.name: manifests.disk_entry(c, out, "not run yet") for c in plan_.cells}
    manifests.write_manifest(plan_, entries, runinfo.now())
    return plan_


@pytest.fixture(autouse=True)
def _isolated(isolated):
    """Caches and outputs in a temporary folder per test; one thread per process."""


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study") / "out"
    make_study(out)
    return out


@pytest.fixture(scope="module")
def table(study_dir):
    return report.verdict_table(report.load_study(study_dir))


def _row(table, model, variant) -> dict:
    rows = table[(table["model"] == model) & (table["variant"] == variant)].to_dict("records")
    assert len(rows) == 1, (model, variant, rows)
    return rows[0]


# -- the verdict matrix -----------------------------------------------------------------------------
@pytest.mark.parametrize("model, variant, expected", [
    (STRONG, "ground_truth", "holds"), (WEAK, "ground_truth", "holds"),
    (STRONG, "majority_vote", "holds"), (WEAK, "majority_vote", "no gain / harms"),
    (STRONG, "format_only", "below the bar"),  # a gain, but under half of ground truth's on every seed
    (STRONG, "incorrect", "within noise"),  # the paired margin's interval contains 0
    (WEAK, "psr", "holds"),
    (STRONG, "nsr", "holds"),              # two of three seeds
    (WEAK, "one_shot", "missing"),         # every cell that would train it failed
])
def test_verdict_matrix_contents(table, model, variant, expected):
    assert _row(table, model, variant)["verdict"] == expected


def test_verdicts_are_those_of_the_rule(study_dir, table):
    """The report adds rows for missing runs but judges nothing itself: its verdicts are verdicts.cell_verdicts'."""
    study = report.load_study(study_dir)
    direct = {(r["model"], r["variant"]): r["verdict"] for r in verdicts.cell_verdicts(study.summaries)}
    mine = {(r["model"], r["variant"]): r["verdict"] for r in table.to_dict("records") if r["verdict"] != "missing"}
    assert mine == direct


def test_missing_runs_are_missing_not_zero(table):
    row = _row(table, WEAK, "one_shot")
    assert row["seeds"] == 0 and math.isnan(row["gain"]) and math.isnan(row["after"])
    assert "RuntimeError: boom in one_shot" in row["note"] and row["missing_seeds"] == [0, 1, 2]
    partial = _row(table, STRONG, "nsr")
    assert partial["seeds"] == 2 and partial["missing_seeds"] == [2]
    assert f"04_sample_polarity__model={STRONG}__seed=2" in partial["note"]


def test_verdict_figure_shows_missing_as_missing(study_dir, table):
    fig = report.verdict_figure(table)
    heat = fig.data[0]
    y = list(heat.y)
    col = [i for i, x in enumerate(heat.x) if x.startswith(WEAK)][0]
    one_shot = y.index("RQ2 · one_shot")
    assert heat.text[one_shot][col] == "missing"
    assert heat.z[one_shot][col] == list(plots.VERDICT_COLOURS).index("missing")
    assert "boom in one_shot" in heat.hovertext[one_shot][col]
    majority = y.index("RQ1 · majority_vote")
    weak_verdict = _row(table, WEAK, "majority_vote")["verdict"]
    assert heat.text[majority][col] == f"{weak_verdict}<br>-0.05"  # the word and the gain in every cell
    assert y[0] == "baseline · ground_truth"
    assert all(t for row in heat.text for t in row)  # no blank cell: "not run" where the grid asked for nothing


def test_verdict_colours_are_okabe_ito_and_the_figures_are_responsive(study_dir):
    rep = report.build(report.load_study(study_dir))
    okabe_ito = {plots.BLACK, plots.ORANGE, plots.SKY_BLUE, plots.GREEN, plots.YELLOW, plots.BLUE, plots.VERMILLION,
                 plots.PURPLE}
    assert {plots.verdict_colour(v) for v in set(rep.table["verdict"]) - {"missing"}} <= okabe_ito
    for name, fig in rep.figures.items():
        assert fig.layout.width is None and fig.layout.autosize, name  # fills its container: legible at 1024 px
        legend = fig.layout.legend  # in rows at the figure's bottom, under the plot and its axis titles
        assert (legend.orientation, legend.yref, legend.y, legend.yanchor) == ("h", "container", 0, "bottom"), name
        for trace in fig.data:  # bands are outlines drawn as lines, never with markers on their edge
            if getattr(trace, "fill", None) == "toself":
                assert trace.mode == "lines", name
    assert plots.CONFIG["displayModeBar"] is False


def test_forest_plot_has_every_seed_the_zero_line_and_the_bar(study_dir, table):
    study = report.load_study(study_dir)
    gains = report.run_gains(study)
    fig = report.forest_figure(table, gains, "RQ1 reward signal", report.cell_alignment(study))
    assert [a.text for a in fig.layout.annotations] == [f"{STRONG} · {TASK}", f"{WEAK} · {TASK}"]
    seeds = [t for t in fig.data if t.name == "one seed"]
    assert sum(len(t.x) for t in seeds) == 2 * 6 * len(SEEDS)  # every seed of ground truth + 5 variants, both cells
    assert sorted(seeds[0].x) == sorted(GAINS[(STRONG, "ground_truth")])
    lines = [(shape.x0, shape.line.dash) for shape in fig.layout.shapes]
    bar = 0.5 * (sum(GAINS[(STRONG, "ground_truth")]) / 3)
    assert (0, None) in lines and any(d == "dash" and x == pytest.approx(bar) for x, d in lines)
    means = {t.hovertemplate.split(" on ")[0]: t.x[0] for t in fig.data if t.marker.symbol == "diamond"
             and f"on {STRONG}" in t.hovertemplate}
    assert means["majority_vote"] == pytest.approx(0.25)


def test_evidence_figures_read_eval_metrics_and_passk(tmp_path):
    out = tmp_path / "out"
    make_study(out)
    folder = out / "runs" / f"{STRONG}__{TASK}__majority_vote__s0"
    runinfo.append_jsonl(folder / "eval.jsonl", {"step": 0, "eval_task": TASK, "accuracy": 0.5})
    runinfo.append_jsonl(folder / "eval.jsonl", {"step": 3, "eval_task": TASK, "accuracy": 0.75})
    for when, values in (("initial", [0.5, 0.7]), ("final", [0.75, 0.8])):
        runinfo.write_json(folder / f"{when}_passk.json", {"k": [1, 2], "pass_at_k": values})
    runinfo.append_jsonl(folder / "metrics.jsonl", {"step": 4, "pseudo_label_accuracy": 0.6, "clip_fraction": 0.0})
    study = report.load_study(out)
    steps = report.step_values(study)
    held = steps[(steps["metric"] == "heldout_accuracy") & (steps["variant"] == "majority_vote")]
    assert list(held["value"]) == [0.5, 0.75]
    curves = report.passk_curves(study)
    assert list(curves[curves["when"] == "after"]["pass_at_k"]) == [0.75, 0.8]
    figures = report.evidence_figures(study, "RQ1 reward signal", steps, curves)
    assert set(figures) == {"heldout__RQ1", "passk_after__RQ1", "training__RQ1"}
    def axis_titles(fig):  # each metric's name is its row's y-axis title (wrapped onto short lines)
        return " ".join((axis.title.text or "").replace("<br>", " ") for axis in fig.select_yaxes())

    titles = axis_titles(figures["training__RQ1"])
    assert "pseudo-label accuracy (majority vote)" in titles and "clip fraction" in titles
    after = [t for t in figures["passk_after__RQ1"].data if t.name == "majority_vote"]
    assert list(after[0].y) == [0.75, 0.8]
    one_shot = report.evidence_figures(study, "RQ2 one-shot", steps, curves)["training__RQ2"]
    assert "rollout accuracy on the training example" in axis_titles(one_shot)


def test_findings_are_drawn_from_the_verdicts(study_dir):
    rep = report.build(report.load_study(study_dir))
    assert 4 <= len(rep.findings) <= 6
    text = "\n".join(rep.findings)
    assert "**Ground-truth RL holds on all 2 (model, task) cells** (gains +0.20 to +0.30)" in text
    assert "divergence appears for majority_vote and entropy_min on chain_sum" in text
    assert "**RQ2 one-shot**: The paper's divergence cannot be judged" in text
    assert "psr and w_reinforce hold on every model" in text
    assert "random on 2 cells (-0.20 to -0.05)" in text
    line = report.headline(rep)
    assert "2-3 training seeds per cell" in line and "50% of ground-truth RL's gain" in line


def test_a_divergence_on_some_tasks_names_them_per_variant():
    """Where variants show the divergence on different tasks, the finding says which variant on which task, never
    all of them on all of them."""
    statements = [{"claim": "RQ1 reward signal", "task": "chain_sum", "appears": True,
                   "variants": ["majority_vote", "entropy_min"]},
                  {"claim": "RQ1 reward signal", "task": "mini_sudoku", "appears": True, "variants": ["majority_vote"]}]
    rows = [{"model": f"toy-{task}-{level}", "task": task, "variant": variant, "verdict": verdict,
             "gain": 0.1, "gain_low": 0.0, "gain_high": 0.2}
            for task in ("chain_sum", "mini_sudoku") for level in ("strong", "weak")
            for variant, verdict in (("ground_truth", "holds"), ("majority_vote", "holds"),
                                     ("entropy_min", "holds" if level == "strong" and task == "chain_sum"
                                      else "within noise"))]
    text = "\n".join(report.findings(report.pd.DataFrame(rows), [], statements))
    assert "appears for majority_vote on chain_sum and mini_sudoku, and for entropy_min on chain_sum: they hold" in text
    one_task = [statements[0], {**statements[1], "variants": ["majority_vote", "entropy_min"]}]
    assert "appears for majority_vote and entropy_min on chain_sum and mini_sudoku" in "\n".join(
        report.findings(report.pd.DataFrame(rows), [], one_task))


def test_missing_cells_listed_with_their_errors(study_dir):
    missing = report.missing_cells(report.load_study(study_dir))
    by_cell = dict(zip(missing["cell"], missing["status"]))
    assert {name: "failed" for name in FAILED}.items() <= by_cell.items()
    assert by_cell[next(iter(NEVER_RAN))] == "pending"
    assert set(missing.loc[missing["status"] == "failed", "error"]) == {"RuntimeError: boom in one_shot"}


def test_runs_the_grid_did_not_ask_for_are_left_out(tmp_path):
    out = tmp_path / "out"
    make_study(out)
    _write_run(out / "runs", _summary("toy-mini_sudoku-strong", "ground_truth", 0, 0.1))
    study = report.load_study(out)
    assert study.unused_runs == [f"toy-mini_sudoku-strong__{TASK}__ground_truth__s0"]
    assert all(s["model"] != "toy-mini_sudoku-strong" for s in study.summaries)


def test_a_run_of_another_preset_is_flagged(tmp_path):
    out = tmp_path / "out"
    make_study(out)
    _write_run(out / "runs", _summary(STRONG, "random", 0, -0.2, preset="smoke"))  # overwrites seed 0's summary
    warnings = report.load_study(out).warnings
    assert any("preset 'smoke'" in w and "asks for toy" in w for w in warnings)
    assert any("mixes runs of presets smoke, toy" in w for w in warnings)


# -- the divergence statements ------------------------------------------------------------------------
def test_divergence_statements(study_dir, table):
    study = report.load_study(study_dir)
    pairs = report.strong_weak_pairs(table, report.cell_alignment(study))
    assert pairs == [report.Pair(TASK, STRONG, WEAK, "toy recipes (by name)")]
    by_claim = {s["claim"]: s for s in report.divergence_statements(table, pairs)}
    rq1, rq2, rq3 = by_claim["RQ1 reward signal"], by_claim["RQ2 one-shot"], by_claim["RQ3 sample polarity"]
    assert rq1["appears"] is True and rq1["variants"] == ["majority_vote", "entropy_min"]
    assert "The paper's divergence **appears** for `majority_vote` (strong holds, gain +0.250 [" in rq1["text"]
    assert "It does not appear for `format_only` (strong below the bar, gain +0.020 [" in rq1["text"]
    assert ", margin -0.140 [" in rq1["text"]  # format_only on the weak model: 0 - 0.5 x 0.20, paired by seed
    assert "Ground-truth RL: strong holds, gain +0.300 [" in rq1["text"]
    assert rq2["appears"] is None and "**cannot be judged**" in rq2["text"]
    assert "Not judged (no finished runs on both models): `one_shot`, `one_shot_random`." in rq2["text"]
    assert rq3["appears"] is True and rq3["variants"] == ["nsr"]


def test_divergence_does_not_appear_when_ground_truth_fails_on_the_weak_model():
    summaries = []
    for seed, j in zip(SEEDS, JITTER):
        summaries += [_summary(STRONG, "ground_truth", seed, 0.3 + j), _summary(WEAK, "ground_truth", seed, j / 4),
                      _summary(STRONG, "majority_vote", seed, 0.25 + j), _summary(WEAK, "majority_vote", seed, -0.05)]
    study = report.Study(Path("."), None, summaries, [], [], [])
    table = report.verdict_table(study)
    pairs = report.strong_weak_pairs(table, report.cell_alignment(study))
    rq1 = report.divergence_statements(table, pairs)[0]
    assert rq1["appears"] is False
    assert "**does not appear**: ground-truth RL does not hold on both models" in rq1["text"]
    assert "weak within noise, gain +0.000" in rq1["text"]


def test_pairs_by_alignment_when_names_do_not_say():
    summaries = [_summary(STRONG, "ground_truth", 0, 0.3), _summary(WEAK, "ground_truth", 0, 0.2)]
    for s, model in zip(summaries, ("Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B-Instruct")):
        s["model"] = model
    study = report.Study(Path("."), None, summaries, [], [], [])
    pairs = report.strong_weak_pairs(report.verdict_table(study), report.cell_alignment(study))
    assert [(p.strong, p.weak) for p in pairs] == [("Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B-Instruct")]
    assert pairs[0].how.startswith("by base pass@1 (0.50 vs 0.10)")


def test_strong_and_weak_given_by_hand(table):
    pairs = report.strong_weak_pairs(table, {}, strong="toy-{task}-strong", weak="toy-{task}-weak")
    assert pairs == [report.Pair(TASK, STRONG, WEAK, "given")]
    with pytest.raises(ValueError, match="models with runs: toy-chain_sum-strong, toy-chain_sum-weak"):
        report.strong_weak_pairs(table, {}, strong="qwen", weak="llama")
    with pytest.raises(ValueError, match="give both strong and weak"):
        report.strong_weak_pairs(table, {}, strong="toy-{task}-strong")


# -- the paper's numbers ------------------------------------------------------------------------------
def test_paper_rows_from_study_md_numbers():
    rows = {(r["model"], r["task"], r["variant"]): r for r in report.paper_rows(report.load_paper_numbers())}
    random_math = rows[("Qwen2.5-7B", "MATH-500", "random")]
    assert random_math["gain"] == pytest.approx(57.5 - 40.8)
    assert random_math["fraction"] == pytest.approx((57.5 - 40.8) / (71.0 - 40.8))
    assert rows[("Qwen2.5-7B", "SynLogic", "psr")]["fraction"] == pytest.approx((24.8 - 1.5) / (42.6 - 1.5))
    assert rows[("Qwen2.5-7B", "SynLogic", "nsr")]["fraction"] == 0
    llama = rows[("Llama-3.1-8B-Instruct", "MATH-500", "random")]
    assert llama["gain"] == pytest.approx(26.8 - 32.5) and math.isnan(llama["fraction"])  # no GT number quoted


def test_comparison_puts_ours_next_to_the_papers(study_dir, table):
    study = report.load_study(study_dir)
    pairs = report.strong_weak_pairs(table, report.cell_alignment(study))
    ours = report.our_rows(table, pairs)
    mv = next(r for r in ours if r["model"] == STRONG and r["variant"] == "majority_vote")
    assert mv["fraction"] == pytest.approx(0.25 / 0.30) and mv["before"] == pytest.approx(50.0)
    shown = report.comparison_table(report.paper_rows(report.load_paper_numbers()) + ours)
    row = shown[shown["variant"] == "majority_vote"].iloc[0]
    assert row["paper: Qwen2.5-7B · MATH-500 (strong)"] == "0.71 (40.8 → 62.1)"  # 21.3 / 30.2
    assert row[f"ours: {STRONG} · {TASK} (strong)"] == "0.83 (50.0 → 75.0), holds"
    assert row["paper: Qwen2.5-7B · SynLogic (weak)"] == ""  # not reported
    one_shot = shown[shown["variant"] == "one_shot"].iloc[0]
    assert one_shot[f"ours: {WEAK} · {TASK} (weak)"] == "missing"


def test_paper_comparison_carries_the_incorrect_reward_caveat():
    rows = report.paper_rows(report.load_paper_numbers())
    incorrect = [r for r in rows if r["variant"] == "incorrect"]
    assert incorrect and all("equals the ground-truth reward" in r["caveat"] for r in incorrect)
    shown = report.comparison_table(rows)
    row = shown[shown["variant"] == "incorrect"].iloc[0]
    assert row["paper: Qwen2.5-7B · MATH-500 (strong)"].endswith("(see caveat)")
    assert "incorrect_source" in row["caveat"]
    assert shown[shown["variant"] == "random"].iloc[0]["caveat"] == ""


def test_a_store_mixing_step_counts_or_semantics_is_never_pooled_and_is_named(tmp_path):
    runs_dir = tmp_path / "runs"
    for seed, j in zip(SEEDS, JITTER):
        for steps, folder in ((3, "toy"), (30, "toy-30steps")):
            for variant, gain in (("ground_truth", 0.3 + j), ("nsr", 0.25 + j)):
                _write_run(runs_dir / folder, {**_summary(STRONG, variant, seed, gain), "steps": steps})
        _write_run(runs_dir / "toy-source", {**_summary(STRONG, "nsr", seed, -0.1 + j), "semantics": "source",
                                             "steps": 3})
    study = report.load_study(tmp_path)
    table = report.verdict_table(study)
    assert sorted(zip(table["variant"], table["semantics"], table["seeds"], table["settings"].str[:13])) == [
        ("ground_truth", "paper", 3, "toy, 3 steps "), ("ground_truth", "paper", 3, "toy, 30 steps"),
        ("nsr", "paper", 3, "toy, 3 steps "), ("nsr", "paper", 3, "toy, 30 steps"),
        ("nsr", "source", 3, "toy, 3 steps ")]
    assert set(table[table["semantics"] == "source"]["verdict"]) == {"no gain / harms"}
    warning = next(w for w in study.warnings if "mixes runs of different settings" in w)
    assert STRONG in warning and "steps: 3 vs 30" in warning and "never pooled" in warning
    text = report.verdict_matrix_table(table).iloc[0][f"{STRONG} · {TASK}"]  # ground truth: both, each named
    assert "toy, 3 steps" in text and "toy, 30 steps" in text


def test_extra_seeds_go_to_the_cells_whose_verdicts_are_within_noise(study_dir):
    """`mtalign study --extra-seeds`: seeds 3 and 4 for every claim cell of a model with a verdict within noise on
    that claim; here only incorrect on the strong model is, so only 02_reward_signal on it gets them, and the cells
    are exactly those a grid sweeping seeds 0-4 would have made."""
    import copy

    plan_ = grid.plan(grid.parse_grid(GRID, "test grid"), study_dir)
    noisy = report.verdict_table(report.load_study(study_dir))
    assert list(zip(noisy[noisy["verdict"] == "within noise"]["model"],
                    noisy[noisy["verdict"] == "within noise"]["variant"])) == [(STRONG, "incorrect")]
    extra = runner.extra_seed_cells(plan_, log=lambda _: None)
    wider = copy.deepcopy(GRID)
    wider["notebooks"]["02_reward_signal"]["grid"]["seed"] = [0, 1, 2, *runner.EXTRA_SEEDS]
    expected = {c.name: c for c in grid.plan(grid.parse_grid(wider, "test grid"), study_dir).cells
                if c.overrides.get("model") == STRONG and c.overrides.get("seed") in runner.EXTRA_SEEDS}
    assert sorted(c.name for c in extra) == sorted(expected)
    for cell in extra:
        want = expected[cell.name]
        assert (cell.parameters, cell.dir, cell.overrides) == (want.parameters, want.dir, want.overrides)


def test_every_evaluation_task_gets_its_verdict_matrix_primary_first(tmp_path):
    for seed, j in zip(SEEDS, JITTER):
        for variant, gain in (("ground_truth", 0.3 + j), ("random", 0.0 + j / 4)):
            s = _summary(STRONG, variant, seed, gain)
            s["by_eval_task"] = {TASK: {k: s[k] for k in ("before", "after", "gain", "passk_before")},
                                 "mini_sudoku": {"before": {"accuracy": 0.2}, "after": {"accuracy": 0.2 + gain / 2},
                                                 "gain": gain / 2, "passk_before": {"pass@1": 0.2}}}
            _write_run(tmp_path / "runs", s)
    rep = report.build(report.load_study(tmp_path))
    assert list(rep.table["task"].drop_duplicates()) == [TASK, "mini_sudoku"]  # the runs' primary task first
    assert list(rep.table["primary"].drop_duplicates()) == [True, False]
    assert {"verdict_matrix", "verdict_matrix__mini_sudoku"} <= set(rep.figures)
    other = rep.table[rep.table["task"] == "mini_sudoku"].set_index("variant")["verdict"]
    assert other["ground_truth"] == "holds" and len(rep.figures["verdict_matrix__mini_sudoku"].data[0].x) == 1


def test_paper_numbers_file_is_checked(tmp_path):
    bad = tmp_path / "paper.yaml"
    bad.write_text("cells:\n  - {model: M, task: T, alignment: strong, base: 1, after: {randm: 2}}\n")
    with pytest.raises(ValueError, match=r"unknown variant\(s\) randm; valid variants: ground_truth, format_only"):
        report.load_paper_numbers(bad)


# -- the whole report -----------------------------------------------------------------------------------
def test_empty_study_renders_its_structure(tmp_path):
    rep = report.build(report.load_study(tmp_path / "nothing"))
    assert rep.table.empty and rep.findings == [
        "No RL run has finished yet, so nothing can be concluded: run `mtalign study` (or `make study`)."]
    assert "no RL runs found: nothing to judge yet" in rep.figures["verdict_matrix"].layout.annotations[0].text
    written = report.write(rep, tmp_path / "nothing", tmp_path / "nothing" / "99_report")
    assert json.loads(written["metrics"].read_text())["verdicts"] == []
    assert (written["figures"] / "verdict_matrix.html").exists()


def test_report_py_holds_no_prose():
    """The report's text lives in the notebook's markdown cells; report.py returns data frames and figures (and the
    findings and headline, sentences generated from the data)."""
    source = (paths.ROOT / "mtalign" / "report.py").read_text()
    for gone in ("class Section", "def to_html", "def markdown(", "\nSTYLE = ", "<h1>"):
        assert gone not in source


def test_mtalign_report_runs_the_notebook(study_dir, capsys):
    """`mtalign report --out DIR`: the real 99_report notebook, executed by papermill in-process (grid.run_report),
    then exported with nbconvert without its code: report.html is the executed notebook. The study ran in another
    checkout (as the committed study does on a fresh clone): its notebooks folder is not here, this project's is used."""
    manifest_file = study_dir / "manifest.json"
    runinfo.write_json(manifest_file, {**json.loads(manifest_file.read_text()),
                                       "notebooks_dir": "/elsewhere/mtalign/notebooks"})
    assert cli.main(["report", "--out", str(study_dir)]) == 0, capsys.readouterr()
    assert "notebooks folder /elsewhere/mtalign/notebooks is not here; using this project's" in capsys.readouterr().out
    page = (study_dir / "report.html").read_text()
    assert page.count("plotly.js v") == 1  # plotly.js inlined exactly once
    assert "cdnjs.cloudflare.com" not in page and "require.min.js" not in page  # opens offline
    assert "report.build(" not in page and "parameters.parse(" not in page  # no input cells
    top = page.index('id="fig-verdict_matrix"')
    assert top < page.index("What the study finds") < page.index("Ground-truth RL holds on all 2") \
        < page.index('id="fig-forest__RQ1"') < page.index("Appendix")  # the answer first, counts last
    figures = json.loads((study_dir / "figures" / "index.json").read_text())["figures"]
    assert "verdict_matrix.html" in figures and (study_dir / "figures" / "plotly.min.js").exists()
    for name in figures:
        assert f'id="fig-{name[:-5]}"' in page
        assert "plotly.min.js" in (study_dir / "figures" / name).read_text()  # shared, not inlined per figure
    assert '"displayModeBar": false' in page or '"displayModeBar":false' in page  # no toolbar
    assert "boom in one_shot" in page and "missing" in page
    assert "No alignment ladder has run next to this study" in page  # and the command that runs it
    assert "secondary source, approximate" in page and "[Green]" in page
    metrics = json.loads((study_dir / "99_report" / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert {d["claim"]: d["appears"] for d in metrics["divergence"]} == {
        "RQ1 reward signal": True, "RQ2 one-shot": None, "RQ3 sample polarity": True}
    assert metrics["findings"] == report.build(report.load_study(study_dir)).findings
    assert (study_dir / "99_report" / "99_report.ipynb").exists()
    manifest = manifests.load_manifest(study_dir)
    assert manifest["report"]["status"] == "finished"
    assert manifest["counts"]["failed"] == len(FAILED)  # rebuilding the report reran no cell


def test_executed_pages_stay_for_finished_cells_whose_notebooks_are_not_here(tmp_path):
    """A fresh clone has the committed pages of the study's cells but not their executed notebooks: rebuilding the
    report keeps those pages, rewrites the ones it has a notebook for and removes only cells no longer finished."""
    import nbformat

    from mtalign import pages

    def cell(name: str, status: str) -> dict:
        folder = tmp_path / "02_reward_signal" / name
        folder.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {name}")]),
                       str(folder / "02_reward_signal.ipynb"))
        return {"name": name, "status": status, "dir": f"02_reward_signal/{name}",
                "executed_notebook": "02_reward_signal.ipynb"}

    cells = [cell("kept", "finished"), cell("cloned", "finished"), cell("redone", "finished")]
    runinfo.write_json(tmp_path / "manifest.json", {"cells": cells})
    assert sorted(p.stem for p in pages.export_notebooks(tmp_path)) == ["cloned", "kept", "redone"]
    (tmp_path / "02_reward_signal" / "cloned" / "02_reward_signal.ipynb").unlink()  # as in a fresh clone, whose
    cells[1]["executed_notebook"] = None  # manifest, rewritten by `mtalign report`, then names no notebook
    cells[2]["status"] = "failed"  # rerun since, and failed: its old page must not pass for it
    runinfo.write_json(tmp_path / "manifest.json", {"cells": cells})
    assert [p.stem for p in pages.export_notebooks(tmp_path)] == ["kept"]
    folder = tmp_path / pages.EXECUTED_DIR
    assert sorted(p.name for p in folder.glob("*.html")) == ["cloned.html", "kept.html"]
    assert 'id="cloned"' in (folder / "cloned.html").read_text()  # the page written before, untouched


@pytest.mark.parametrize("recorded", ["/w/params/grids/toy.yaml", "/o/manifest.json (grid of /w/params/grids/toy.yaml)",
                                      "/o/manifest.json (grid of /o/manifest.json (grid of /w/params/grids/toy.yaml))"])
def test_a_rebuilt_report_names_the_grid_file_the_study_ran_from(recorded):
    """Each `mtalign report` reads the grid from the manifest and records where it came from; rebuilding it again
    must not nest that note once more per rebuild."""
    assert runner.grid_file_of({"grid_file": recorded}) == "/w/params/grids/toy.yaml"


def test_mtalign_report_without_a_study_says_so(tmp_path, capsys):
    assert cli.main(["report", "--out", str(tmp_path / "none")]) == 2
    assert "does not exist; run `mtalign study --out" in capsys.readouterr().err


# -- headless Chromium ---------------------------------------------------------------------------------
SCRIPT = paths.ROOT / "scripts" / "screenshot_report.py"
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium "
                                    "(Debian: apt-get install -y chromium); the browser check cannot run")


def _screenshot(*args) -> subprocess.CompletedProcess:
    # A 5 MB page with 16 figures took 85 s to load and draw in Chromium on the busy 2-core machine.
    return subprocess.run([sys.executable, str(SCRIPT), "--timeout", "240", *map(str, args)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


@needs_chromium
def test_report_opens_in_chromium_and_the_matrix_is_photographed(study_dir, tmp_path):
    """At 1024 px: every figure draws, the verdict matrix, the findings and the forest plots are there, nothing is
    fetched from the network; the matrix and the top of the report are photographed."""
    if not (study_dir / "report.html").exists():  # when run alone
        assert cli.main(["report", "--out", str(study_dir)]) == 0
    png, top = tmp_path / "verdict_matrix.png", tmp_path / "top.png"
    done = _screenshot(study_dir / "report.html", "--png", png, "--top", top, "--width", 1024,
                       "--require", "fig-verdict_matrix", "--require", "fig-forest__RQ1",
                       "--require-text", "What the study finds", "--require-text", "Ground-truth RL holds on all 2")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    report_page, figure_page = summary["pages"]
    assert report_page["figures"] == report_page["drawn"] >= 12 and not report_page["errors"]
    assert report_page["missing"] == [] and report_page["page_width"] <= 1024  # nothing wider than the window
    assert figure_page["page"].endswith("verdict_matrix.html") and figure_page["drawn"] == 1
    assert not report_page["network_requests"] and not figure_page["network_requests"]
    for path, size in ((png, summary["png_size"]), (top, summary["top_size"])):
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == tuple(size) and width > 400 and height > 300
    assert summary["top_size"][0] == 1024


@needs_chromium
def test_chromium_check_fails_when_a_required_part_is_absent(study_dir):
    if not (study_dir / "report.html").exists():
        assert cli.main(["report", "--out", str(study_dir)]) == 0
    done = _screenshot(study_dir / "report.html", "--require", "fig-no_such_figure", "--require-text", "no such words")
    assert done.returncode == 1
    assert json.loads(done.stdout)["pages"][0]["missing"] == ["fig-no_such_figure", "text: no such words"]


@needs_chromium
def test_chromium_check_fails_on_a_broken_page(tmp_path):
    """The check can fail: a page whose script throws and whose figure never draws."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><div class='plotly-graph-div' id='fig-x'></div>"
                    "<script>console.error('drawing failed'); undefined_function();</script></body></html>")
    done = _screenshot(page, "--timeout", "5")
    assert done.returncode == 1
    result = json.loads(done.stdout)["pages"][0]
    assert result["drawn"] == 0 and result["figures"] == 1
    assert any("drawing failed" in e for e in result["errors"])
    assert any("undefined_function" in e for e in result["errors"])


def test_claim_notebook_reads_a_studys_records_without_training(study_dir, tmp_path):
    """`records_dir`: 02_reward_signal draws a finished study's runs in seconds; nothing is trained or built."""
    import jupytext
    import papermill

    source = tmp_path / "02_reward_signal.ipynb"
    jupytext.write(jupytext.read(paths.NOTEBOOKS / "02_reward_signal.py"), source, fmt="ipynb")
    run_dir = tmp_path / "run"
    papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name="python3", progress_bar=False,
                               parameters={"model": STRONG, "preset": "toy", "seed": 1, "records_dir": str(study_dir),
                                           "variants": ["majority_vote", "random"], "probes": [],
                                           "run_dir": str(run_dir)})
    results = {r["variant"]: r["gain"] for r in json.loads((run_dir / "metrics.json").read_text())["results"]}
    assert results == pytest.approx({"ground_truth": GAINS[(STRONG, "ground_truth")][1],
                                     "majority_vote": GAINS[(STRONG, "majority_vote")][1],
                                     "random": GAINS[(STRONG, "random")][1]})
    assert not (paths.cache() / "toy-models").exists()  # no model was built: the records were only read


def test_records_name_what_is_missing(study_dir):
    from mtalign import claims

    with pytest.raises(ValueError, match=r"no finished run of one_shot for toy-chain_sum-weak on chain_sum, seed 0"):
        claims.recorded(study_dir, WEAK, 0, ["one_shot"])
    with pytest.raises(FileNotFoundError, match="has no runs/ folder"):
        claims.recorded(study_dir / "nothing", WEAK, 0, [])


# -- the committed toy study (outputs/): records and report agree ---------------------------------------------------
RECORDS = paths.ROOT / "outputs"
# What the study's numbers depend on: the engine every run records (runinfo.ENGINE_FILES), the run store's reuse rules
# and the study's parameter files; the report's own code (report.py, plots.py, verdicts.py) is checked by rebuilding.
STUDY_CODE = (*runinfo.ENGINE_FILES, "mtalign/identity.py", "mtalign/runs.py", "params/variants.yaml",
              "params/grids/toy.yaml")
# params/toyworld.yaml is compared by what the study's models read from it (their ToyModelSpec), not byte for byte:
# a recipe added for another study (a held-out ladder rung) changes no model of this one.


def _preset_files(preset: str) -> list[str]:
    """The preset's file and every file it inherits from: of params/train/, all that a run at `preset` reads (the
    other presets, e.g. rehearsal.yaml, cannot change the study's numbers)."""
    files = []
    while preset:
        files.append(f"params/train/{preset}.yaml")
        preset = yaml.safe_load((paths.ROOT / files[-1]).read_text()).get("inherits")
    return files


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True, timeout=60)


committed_records = pytest.mark.skipif(
    _git("ls-files", "--error-unmatch", "outputs/manifest.json", "outputs/99_report/metrics.json").returncode != 0,
    reason="no toy study records are committed under outputs/ yet (README: Results in the repository)")


@committed_records
def test_committed_report_is_built_from_the_committed_records():
    """The committed report says what the current code makes of the committed records, and its runs were trained by
    a commit whose study code is HEAD's."""
    import html as html_module
    import re

    metrics = json.loads((RECORDS / "99_report" / "metrics.json").read_text())
    rep = report.build(report.load_study(RECORDS), fraction=metrics["fraction"])
    assert rep.findings == metrics["findings"]
    ours = [(r["model"], r["task"], r["variant"], r["verdict"]) for r in rep.data["verdicts"]]
    assert ours == [(r["model"], r["task"], r["variant"], r["verdict"]) for r in metrics["verdicts"]]
    # compared without tags or whitespace: markdown's **bold** and `code` become tags on the page
    text = "".join(html_module.unescape(re.sub(r"<[^>]+>", " ", (RECORDS / "report.html").read_text())).split())
    for finding in rep.findings:
        assert "".join(re.sub(r"[*`]", "", finding).split()) in text, finding
    versions = metrics["code_versions"]
    assert len(versions) == 1, f"the runs were trained by several code versions: {versions}"
    version = next(iter(versions))
    assert not version.endswith("+dirty"), f"the runs were trained from uncommitted code ({version})"
    if _git("cat-file", "-e", f"{version}^{{commit}}").returncode != 0:
        pytest.skip(f"commit {version} that trained the runs is not in this clone (a shallow clone?): the study-code "
                    "comparison needs the history")
    summaries = report.load_study(RECORDS).summaries
    presets = sorted({s["preset"] for s in summaries})
    preset_files = sorted({f for p in presets for f in _preset_files(p)})
    assert "params/train/toy.yaml" in preset_files and "params/train/_base.yaml" in preset_files, preset_files
    changed = _git("diff", "--name-only", version, "HEAD", "--", *STUDY_CODE, *preset_files)
    assert changed.returncode == 0 and not changed.stdout.strip(), (
        f"study code changed since the runs were trained ({version}): {changed.stdout or changed.stderr}")
    then = yaml.safe_load(_git("show", f"{version}:params/toyworld.yaml").stdout)
    for model in sorted({s["model"] for s in summaries}):
        assert toyworld.spec(model, then) == toyworld.spec(model, toyworld.load_config()), (
            f"{model}'s recipe, world or task difficulty in params/toyworld.yaml changed since {version}")


@needs_chromium
def test_make_lab_shows_each_notebook_once_and_opens_it_with_its_figures(study_dir, tmp_path):
    """JupyterLab as `make lab` configures it (configs/jupyter): the .py listed and its .ipynb hidden, the .py opened
    as a notebook by default, its figures (from a study's records) drawn; photographed at 1024 px."""
    png = tmp_path / "lab.png"
    done = subprocess.run([sys.executable, str(paths.ROOT / "scripts" / "screenshot_lab.py"), "--records",
                           str(study_dir), "--model", STRONG, "--seed", "1", "--set", "probes=[]",
                           "--set", "variants=[format_only, random, incorrect, majority_vote, entropy_min]",
                           "--min-figures", "2",
                           "--png", str(png)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["file_browser"] == ["02_reward_signal.py"]
    assert summary["default_viewer_for_py"] == "Jupytext Notebook"
    assert summary["lab"]["figures"] >= 2 and summary["lab"]["drawn"] == summary["lab"]["figures"]
    assert summary["png_size"] == [1024, 900] and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
