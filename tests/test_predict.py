"""`mtalign predict` and its validation (mtalign/predict.py; issue 11, part 3): the fit interpolates between rungs and
says when it extrapolates, its verdicts follow mtalign.verdicts' rule, leave-one-rung-out and cross-family validation
recover what a synthetic ladder was built to show (and fail where the families were built to differ), and bad input
stops with one line saying what to run, before any sampling."""

from __future__ import annotations

import json
import re
import math

import numpy as np
import pandas as pd
import pytest

from mtalign import cli, ladder, predict, verdicts
from mtalign.ladder import Point
from test_ladder import JITTER, add_held_out_rungs, synthetic_ladder


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synthetic_ladder(tmp_path_factory.mktemp("ladder") / "study")


@pytest.fixture(scope="module")
def lad(store):
    return ladder.load(store, n_boot=100)


def _point(x, gain, gt=0.3, model=None):
    return Point(x, model or f"rung{x}", "chain_sum", "fidelity", np.array([gain + j for j in JITTER]),
                 np.array([gt + j for j in JITTER]))


# -- the fit --------------------------------------------------------------------------------------------------------------
def test_the_fit_interpolates_between_rungs_and_holds_flat_beyond_them():
    points = [_point(0.1, -0.05), _point(0.3, 0.15), _point(0.5, 0.30)]  # margins -0.20, 0.00, +0.15
    mid = predict.predict_variant(points, 0.4, n_boot=200)
    assert mid["position"] == "inside" and mid["gain"] == pytest.approx(0.225)
    assert mid["margin"] == pytest.approx(0.225 - 0.15) and mid["gt_gain"] == pytest.approx(0.3)
    assert mid["relative"] == pytest.approx(0.75)
    assert mid["nearest"] == "rung0.3 (0.300), rung0.5 (0.500)"
    assert mid["transition_status"] == ladder.IN_LADDER and mid["to_transition"] == pytest.approx(0.4 - 0.3)
    assert mid["gain_low"] <= mid["gain"] <= mid["gain_high"]
    below, above = predict.predict_variant(points, 0.02, n_boot=50), predict.predict_variant(points, 0.9, n_boot=50)
    assert below["position"] == "below the ladder" and below["gain"] == pytest.approx(-0.05)
    assert above["position"] == "above the ladder" and above["gain"] == pytest.approx(0.30)
    assert predict.predict_variant(points, 0.5, n_boot=50)["position"] == "inside"  # on the last rung


def test_predicted_verdicts_follow_the_verdict_rule():
    points = [_point(0.1, -0.05), _point(0.3, 0.15), _point(0.5, 0.30)]
    high, low = predict.predict_variant(points, 0.5, n_boot=300), predict.predict_variant(points, 0.1, n_boot=300)
    assert high["verdict"] == verdicts.HOLDS and high["p_holds"] > 0.9
    assert low["verdict"] == verdicts.NO_GAIN and low["p_holds"] < 0.1
    # on a rung, the prediction is that rung's own verdict under the rule
    g, m = points[2].gain, points[2].margin()
    assert high["verdict"] == verdicts.verdict(verdicts.effect(list(g)), verdicts.effect(list(m)))


def test_rungs_at_equal_alignment_are_averaged():
    points = [_point(0.1, 0.0), _point(0.3, 0.1, model="a"), _point(0.3, 0.3, model="b"), _point(0.5, 0.4)]
    assert predict.predict_variant(points, 0.3, n_boot=20)["gain"] == pytest.approx(0.2)


def test_no_rung_no_prediction():
    with pytest.raises(ValueError, match="no rung to fit"):
        predict.predict_variant([], 0.3)


# -- validation on a synthetic ladder ----------------------------------------------------------------------------
def test_leave_one_rung_out_recovers_a_known_transition(lad):
    rows = predict.leave_one_rung_out(lad, "pass@1", n_boot=100)
    assert set(rows["family"]) == {"chain_sum", "mini_sudoku"} and (rows["variant"] != "ground_truth").all()
    psr = rows[rows["variant"] == "psr"]
    far = psr[(psr["x"] - 0.30).abs() > 0.1]  # rungs away from psr's transition at 0.30
    assert (far["predicted"] == far["measured"]).all()
    summary = predict.validation_summary(rows)
    by = summary[summary["scope"] == "variant"].set_index("name")
    assert by.loc["psr", "brier"] < by.loc["psr", "brier_baseline"] and by.loc["psr", "skill"] > 0
    assert by.loc["nsr", "brier"] < 0.05 and by.loc["random", "brier"] < 0.05  # constant behaviours are easy
    # majority vote follows the majority answer, which pass@1 does not see: worse than ignoring alignment
    assert by.loc["majority_vote", "skill"] < 0
    overall = summary[summary["scope"] == "all claims"].iloc[0]
    assert overall["cells"] == len(rows) == 2 * 11 * 4
    assert overall["extrapolated"] == int((rows["position"] != "inside").sum()) > 0  # each family's ends


def test_maj_at_k_predicts_majority_vote_better_than_pass_at_1(lad):
    """Majority vote was built to follow the majority answer's correctness: placed by maj@k it is predicted
    better than by pass@1, where diffuse and fidelity rungs of equal pass@1 disagree."""
    skill = {}
    for summary in ("pass@1", "maj@k_max"):
        rows = predict.leave_one_rung_out(lad, summary, n_boot=100)
        table = predict.validation_summary(rows[rows["variant"] == "majority_vote"])
        skill[summary] = table[table["scope"] == "variant"].iloc[0]
    assert skill["maj@k_max"]["brier"] < skill["pass@1"]["brier"] and skill["maj@k_max"]["skill"] > 0
    assert skill["maj@k_max"]["holds_agreement"] > skill["pass@1"]["holds_agreement"]


def test_cross_family_transfers_a_shared_pattern_and_misses_a_different_one(tmp_path):
    # on mini_sudoku psr holds on every rung; on chain_sum it turns at pass@1 0.30
    store = synthetic_ladder(tmp_path / "study", gains={"mini_sudoku": {"psr": lambda x, diffuse: 0.3}})
    rows = predict.cross_family(ladder.load(store, n_boot=50), "pass@1", n_boot=100)
    assert set(rows["trained_on"]) == {"chain_sum ladder", "mini_sudoku ladder"}
    shared = rows[rows["variant"] == "nsr"]
    assert (shared["predicted"] == shared["measured"]).all()  # nsr holds everywhere on both
    low = rows[(rows["variant"] == "psr") & (rows["family"] == "mini_sudoku") & (rows["x"] < 0.2)]
    assert len(low) and (low["measured"] == verdicts.HOLDS).all() and (low["predicted"] != verdicts.HOLDS).all()
    summary = predict.validation_summary(rows)
    psr = summary[(summary["scope"] == "variant") & (summary["name"] == "psr")].iloc[0]
    nsr = summary[(summary["scope"] == "variant") & (summary["name"] == "nsr")].iloc[0]
    assert psr["brier"] > nsr["brier"]


def test_a_held_out_rung_is_predicted_from_the_ladder_that_never_saw_it(tmp_path):
    """The held-out rungs (fid60, diffuse20) written into the synthetic study: the ladder leaves them out of every
    fit, and their verdicts are predicted from their family's rungs: psr (transition at pass@1 0.30) holds above it
    and fails below; majority vote holds on every diffuse rung and fails on fidelity rungs below pass@1 0.6."""
    store = add_held_out_rungs(synthetic_ladder(tmp_path / "study", families=("chain_sum",)), pass1=0.5,
                               variants=("ground_truth", "psr", "majority_vote"))
    lad, out = ladder.load(store, n_boot=50), ladder.load(store, n_boot=50, held_out=True)
    held = {"toy-chain_sum-fid60", "toy-chain_sum-diffuse20"}
    assert not held & set(lad.cells["model"])  # no fit sees them
    assert set(out.cells["model"]) == held and held <= set(ladder.trained_models(store))
    rows = predict.held_out_rungs(lad, out, "pass@1", n_boot=100)
    assert set(rows["scheme"]) == {"held-out rung"} and set(rows["variant"]) == {"psr", "majority_vote"}
    by = rows[rows["model"] == "toy-chain_sum-fid60"].set_index("variant")
    assert by.loc["psr", "x"] == pytest.approx(0.5) and by.loc["psr", "position"] == "inside"
    assert by.loc["psr", "predicted"] == by.loc["psr", "measured"] == verdicts.HOLDS
    assert by.loc["psr", "predicted_gain"] == pytest.approx(0.35, abs=1e-9)  # x - 0.15, linear between rungs
    # majority vote turns at 0.6 on the fidelity dial: at 0.5 it measured no gain, on the diffuse dial it holds
    assert by.loc["majority_vote", "measured"] != verdicts.HOLDS
    diffuse = rows[rows["model"] == "toy-chain_sum-diffuse20"].set_index("variant")
    assert diffuse.loc["majority_vote", "measured"] == verdicts.HOLDS
    table = predict.held_out_table(rows)
    assert list(table.columns) == predict.HELD_OUT_COLUMNS and len(table) == 4
    lines = predict.held_out_sentences(rows)
    assert any(line.startswith("toy-chain_sum-fid60, never seen by the chain_sum ladder, at pass@1 0.500: ")
               for line in lines)
    assert any(line.startswith("toy-chain_sum-diffuse20, never seen by the chain_sum ladder, at pass@1 0.500: ")
               for line in lines)
    assert any("psr: predicted gain +0.350" in line and "measured gain +0.350" in line for line in lines)
    # every verdict is shown with the intervals it was read from: the rule applied to them gives it back,
    # measured and predicted alike
    for side, gain in (("predicted", "predicted_judged"), ("measured", "measured")):
        for r in table.to_dict("records"):
            shown = verdicts.verdict(verdicts.Effect(r[f"{side}_gain"], r[f"{gain}_low"], r[f"{gain}_high"], 3),
                                     verdicts.Effect(r[f"{side}_margin"], r[f"{side}_margin_low"],
                                                     r[f"{side}_margin_high"], 3))
            assert r[side] == shown, (side, r)
    only = predict.held_out_rungs(lad, out, "pass@1", n_boot=20, variants=["psr"])
    assert set(only["variant"]) == {"psr"} and len(only) == 2
    assert predict.held_out_rungs(lad, ladder.build([], [], held_out=True)).empty


def test_brier_and_the_summary_by_hand():
    assert predict.brier([1.0, 0.0, 0.5], [1, 0, 1]) == pytest.approx(0.25 / 3)
    assert predict.brier([math.nan, 0.2], [1, 0]) == pytest.approx(0.04)
    rows = pd.DataFrame({"scheme": "s", "claim": "RQ1 reward signal", "variant": ["random", "random"],
                         "predicted": [verdicts.HOLDS, verdicts.NO_GAIN], "measured": [verdicts.HOLDS, verdicts.BELOW],
                         "p_holds": [0.9, 0.2], "holds": [1.0, 0.0], "p_baseline": [0.5, 0.5],
                         "position": ["inside", "above the ladder"]})
    table = predict.validation_summary(rows)
    row = table[table["scope"] == "all claims"].iloc[0]
    assert row["verdict_agreement"] == 0.5 and row["holds_agreement"] == 1.0 and row["extrapolated"] == 1
    assert row["brier"] == pytest.approx((0.01 + 0.04) / 2) and row["brier_baseline"] == pytest.approx(0.25)
    assert row["skill"] == pytest.approx(1 - 0.025 / 0.25)
    assert predict.validation_summary(rows.iloc[:0]).empty


def test_the_summary_is_chosen_by_separation_unless_asked(lad):
    best = ladder.best_summaries(ladder.separation(lad.cells))
    pooled = best[best["scope"] == "all claims"].iloc[0]
    summary, why = predict.choose_summary(lad, "auto")
    assert summary == pooled["summary"] and "rank AUC" in why
    assert predict.choose_summary(lad, "pass@1") == ("pass@1", "asked for")
    with pytest.raises(ValueError, match="unknown alignment summary 'pass@2'"):
        predict.choose_summary(lad, "pass@2")


def test_a_measured_model_is_placed_with_what_to_trust(lad, store):
    """`place` on a record: one row per claim variant, and plain statements (transfer, extrapolation)."""
    from test_ladder import synthetic_record

    measured = synthetic_record("toy-chain_sum-fid10", "chain_sum", 0.02, diffuse=False)  # below every rung
    result = predict.place(measured, lad, "pass@1", k_max=20, n_boot=50, ladder_dir=store)
    assert result["x"] == pytest.approx(0.02) and result["families"] == ["chain_sum"]
    assert [r["variant"] for r in result["predictions"]] == ["random", "majority_vote", "psr", "nsr"]
    text = " ".join(result["statements"])
    assert text.startswith("Transferred from the toy ladder") and "EXTRAPOLATION" in text
    assert "leaving each rung out" in text
    inside = predict.place(synthetic_record("toy-chain_sum-fid10", "chain_sum", 0.35, False), lad, "pass@1",
                           k_max=20, n_boot=50, ladder_dir=store)
    assert "Within the ladder" in " ".join(inside["statements"])
    shown = predict.format_prediction(inside)
    assert "psr" in shown and "placed on the chain_sum ladder by pass@1 = 0.350" in shown


# -- the command line -----------------------------------------------------------------------------------------------
@pytest.fixture
def no_sampling(monkeypatch):
    """Bad input must be refused before any sampling: a sampler made here fails the test."""
    import mtalign.sampling

    monkeypatch.setattr(mtalign.sampling, "make_sampler", lambda *a, **k: pytest.fail("sampled before refusing"))


@pytest.mark.parametrize("argv, message", [
    (["--model", "toy-chain_sum-nonsense"], "unknown model 'toy-chain_sum-nonsense'"),
    (["--model", "micro-chain_sum-strong", "--task", "chain_summ"], "unknown task 'chain_summ'"),
    (["--model", "micro-chain_sum-strong", "--ladder", "{empty}"], "no ladder results in .*: no rung's alignment is "
                                                                   "measured there. Run `mtalign study --params "
                                                                   "params/grids/ladder.yaml"),
    (["--model", "micro-chain_sum-strong", "--ladder", "{missing}"], "no ladder results in .* \\(no such folder\\)"),
    (["--model", "{no_config}", "--task", "chain_sum", "--ladder", "{store}"], "has no config.json"),
    (["--model", "{broken}", "--task", "chain_sum", "--ladder", "{store}"], "cannot load model"),
    (["--model", "micro-chain_sum-strong", "--ladder", "{store}", "--family", "countdown"],
     "--family 'countdown' is not on the ladder"),
])
def test_bad_input_is_one_line_before_any_sampling(isolated, store, no_sampling, capsys, argv, message):
    (isolated / "empty").mkdir()
    (isolated / "no_config").mkdir()
    (isolated / "broken").mkdir()
    (isolated / "broken" / "config.json").write_text('{"model_type": "llama", "hidden_size": "many"}')
    places = {"empty": isolated / "empty", "missing": isolated / "missing", "store": store,
              "no_config": isolated / "no_config", "broken": isolated / "broken"}
    code = cli.main(["predict", *[a.format(**places) for a in argv]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("mtalign predict: error: ")
    assert re.search(message, err), err


@pytest.mark.slow
def test_predict_end_to_end_on_a_micro_model(isolated, store, capsys):
    """Sampling a micro model (seconds), then its placement on the synthetic ladder, printed and written."""
    out = isolated / "prediction.json"
    code = cli.main(["predict", "--model", "micro-chain_sum-strong", "--n", "4", "--problems", "4", "--ladder",
                     str(store), "--summary", "pass@1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    result = json.loads(out.read_text())
    assert result["k_max"] == 4 and result["n"] == 4 and result["problems"] == 4  # the ladder read at k = 4
    assert {r["variant"] for r in result["predictions"]} == {"random", "majority_vote", "psr", "nsr"}
    assert "Transferred from the toy ladder" in text and "micro-chain_sum-strong is not a rung" in text
    assert "pass@1" in text and "p(holds)" in text
