"""Place a model on the alignment ladder and predict each claim's verdict (issue 11, part 3).

    mtalign predict --model M [--task T] [--n 64 --problems 100 --ladder DIR]

measures the model's alignment (pass@k and maj@k from n samples per problem: sampling only, `rungs.measure`) and
reads off the ladder's fitted curves, per claim variant: the predicted gain and margin (gain - half of ground truth's
gain), with intervals, the predicted verdict, the chance of "holds", and the evidence (the rungs it lies between,
its distance to the variant's transition). The prediction is transferred from the toy ladder, and says so.

The fit, per variant, over the rungs of the chosen family (both dials): each rung's mean gain, ground-truth gain and
paired margin across seeds, joined piecewise linearly over the alignment summary (rungs at equal alignment are
averaged) and held flat beyond the first and last rung (extrapolation, flagged). Intervals are percentiles over
refits with each rung's paired seeds resampled (with 3 seeds, a rough measure of the fit's uncertainty). The
predicted verdict is mtalign.verdicts' rule applied to the fitted gain and margin, each with the half-width of the 95%
interval its neighbouring rungs measured (what an experiment with as many seeds would show there); p(holds) is the
share of bootstrap refits for which that rule says "holds".

Validation (`leave_one_rung_out`, `cross_family`, `held_out_rungs`): predict each rung's verdict from the other rungs
of its family, or from the other family's ladder, or a rung built between two rungs that no fit saw from its
family's whole ladder, and compare with the verdict measured there: per claim, agreement and a Brier score
against a baseline that ignores alignment (the share of "holds" among the variant's training cells).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from mtalign import alignment, config, ladder, paths, rungs, runinfo, verdicts
from mtalign.ladder import Ladder, Point
from mtalign.rungs import BOOTSTRAP, SUMMARIES
from mtalign.verdicts import BASELINE, FRACTION, HOLDS, Effect

VALIDATION_BOOT = 400  # refits per held-out cell in the validation tables (thousands of cells: kept small)


def default_ladder_dir() -> Path:
    return paths.outputs() / "ladder"


# -- the fit ---------------------------------------------------------------------------------------------------------
def _collapse(points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
    """(distinct alignments ascending, matrix [point, distinct] averaging the points at each alignment)."""
    xs, inverse = np.unique([p.x for p in points], return_inverse=True)
    weights = np.zeros((len(points), len(xs)))
    weights[np.arange(len(points)), inverse] = 1.0
    return xs, weights / weights.sum(axis=0)


def _at(xs: np.ndarray, x0: float) -> tuple[np.ndarray, str]:
    """Linear-interpolation weights over `xs` at x0 (flat beyond the ends) and where x0 lies."""
    weights = np.zeros(len(xs))
    if x0 <= xs[0] or x0 >= xs[-1]:
        end = 0 if x0 <= xs[0] else len(xs) - 1
        weights[end] = 1.0
        inside = xs[0] <= x0 <= xs[-1]  # exactly on the first or last rung
        return weights, "inside" if inside else "below the ladder" if end == 0 else "above the ladder"
    j = int(np.searchsorted(xs, x0, side="right"))
    weights[j - 1], weights[j] = (xs[j] - x0) / (xs[j] - xs[j - 1]), (x0 - xs[j - 1]) / (xs[j] - xs[j - 1])
    return weights, "inside"


def _half_width(values: np.ndarray) -> float:
    e = verdicts.effect(list(values))
    return (e.high - e.low) / 2 if e.seeds >= 2 else math.nan


def predict_variant(points: Sequence[Point], x0: float, n_boot: int = BOOTSTRAP, seed: int = 0,
                    fraction: float = FRACTION) -> dict[str, Any]:
    """The fitted gain, ground-truth gain and margin of one variant at alignment x0, with the evidence."""
    if not points:
        raise ValueError("no rung to fit: the variant and ground truth have no paired runs on the ladder")
    xs, collapse = _collapse(points)
    weights, where = _at(xs, x0)
    at = collapse @ weights  # per point: its weight in the value at x0
    gain, gt_gain = (float(np.array([getattr(p, k).mean() for p in points]) @ at) for k in ("gain", "gt_gain"))
    margin = gain - fraction * gt_gain
    half_gain = float(np.array([_half_width(p.gain) for p in points]) @ at)
    half_margin = float(np.array([_half_width(p.margin(fraction)) for p in points]) @ at)
    seeds = min(len(p.gain) for p, w in zip(points, at) if w > 0)
    boot = ladder.resample(points, n_boot, seed, fraction)
    fitted = {k: boot[k] @ at for k in ("gain", "margin")}
    judged = [verdicts.verdict(Effect(g, g - half_gain, g + half_gain, seeds),
                               Effect(m, m - half_margin, m + half_margin, seeds)) for g, m in
              zip(fitted["gain"], fitted["margin"])]
    judged_gain = Effect(gain, gain - half_gain, gain + half_gain, seeds)
    judged_margin = Effect(margin, margin - half_margin, margin + half_margin, seeds)
    used = [p for p, w in zip(points, at) if w > 0]
    status, transition = ladder.crossing(xs, collapse.T @ np.array([ladder.reached(p, fraction) for p in points]))
    return {
        "x": x0, "position": where,
        "gain": gain, "gain_low": float(np.percentile(fitted["gain"], 2.5)),
        "gain_high": float(np.percentile(fitted["gain"], 97.5)), "gt_gain": gt_gain,
        "relative": gain / gt_gain if gt_gain > 0 else math.nan,
        "margin": margin, "margin_low": float(np.percentile(fitted["margin"], 2.5)),
        "margin_high": float(np.percentile(fitted["margin"], 97.5)),
        # the intervals the predicted verdict judges: what as many seeds would measure at x0 (not the fit's intervals)
        "judged_gain_low": judged_gain.low, "judged_gain_high": judged_gain.high,
        "judged_margin_low": judged_margin.low, "judged_margin_high": judged_margin.high,
        "verdict": verdicts.verdict(judged_gain, judged_margin),
        "p_holds": judged.count(HOLDS) / len(judged) if seeds >= 2 else math.nan,
        "nearest": ", ".join(f"{p.model} ({p.x:.3f})" for p in used),
        "transition_status": status, "transition": transition,
        "to_transition": x0 - transition if status == ladder.IN_LADDER else math.nan,
        "rungs": len(points), "x_min": float(xs[0]), "x_max": float(xs[-1]),
    }


def predict_all(lad: Ladder, x0: float, summary: str, families: Iterable[str] | None = None,
                exclude: Iterable[str] = (), variants: Sequence[str] | None = None, n_boot: int = BOOTSTRAP,
                seed: int = 0) -> pd.DataFrame:
    """One row per claim variant: `predict_variant` on the ladder's rungs of `families` (all when None)."""
    families, exclude = (list(families) if families is not None else None), list(exclude)
    rows = []
    for variant in variants or [v for v in ladder.variants_of(lad) if v != BASELINE]:
        points = lad.points(variant, summary, families=families, exclude=exclude)
        if points:
            rows.append({"claim": verdicts.claim_of(variant), "variant": variant,
                         **predict_variant(points, x0, n_boot, seed)})
    return pd.DataFrame(rows)


# -- validation --------------------------------------------------------------------------------------------------------
def _validate(lad: Ladder, summary: str, scheme: str, splits: Iterable[tuple[str, list[str], list[str]]],
              n_boot: int, seed: int, targets: pd.DataFrame | None = None,
              variants: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """For each (training description, training families, held-out models): predict every held-out cell, a cell
    of the ladder itself or, given `targets`, of those (the held-out rungs' cells); only `variants`' cells when
    given (a store may hold a rung or two of other variants, from elsewhere, which no report analyses)."""
    rows = []
    cells = lad.cells.drop_duplicates(["model", "variant"])
    targets = cells if targets is None else targets.drop_duplicates(["model", "variant"])
    targets = targets[targets["variant"] != BASELINE]
    if variants is not None:
        targets = targets[targets["variant"].isin(list(variants))]
    for trained_on, families, held_out in splits:
        for cell in targets[targets["model"].isin(held_out)].to_dict("records"):
            if cell["verdict"] not in verdicts.VERDICTS or cell["verdict"] == verdicts.FEW or pd.isna(cell[summary]):
                continue
            points = lad.points(cell["variant"], summary, families=families, exclude=[cell["model"]])
            if len(points) < 2:
                continue
            training = cells[cells["model"].isin([p.model for p in points]) & (cells["variant"] == cell["variant"])]
            predicted = predict_variant(points, float(cell[summary]), n_boot, seed)
            rows.append({"scheme": scheme, "trained_on": trained_on, "family": cell["family"], "dial": cell["dial"],
                         "model": cell["model"], "claim": cell["claim"], "variant": cell["variant"],
                         "summary": summary, "x": cell[summary], "position": predicted["position"],
                         "predicted": predicted["verdict"], "p_holds": predicted["p_holds"],
                         "predicted_gain": predicted["gain"], "predicted_low": predicted["gain_low"],
                         "predicted_high": predicted["gain_high"],
                         "predicted_judged_low": predicted["judged_gain_low"],
                         "predicted_judged_high": predicted["judged_gain_high"], "predicted_margin": predicted["margin"],
                         "predicted_margin_low": predicted["judged_margin_low"],
                         "predicted_margin_high": predicted["judged_margin_high"], "measured": cell["verdict"],
                         "measured_gain": cell["gain"], "measured_low": cell["gain_low"],
                         "measured_high": cell["gain_high"], "measured_margin": cell["margin"],
                         "measured_margin_low": cell["margin_low"], "measured_margin_high": cell["margin_high"],
                         "holds": float(cell["verdict"] == HOLDS),
                         "p_baseline": float((training["verdict"] == HOLDS).mean())})
    return rows


def leave_one_rung_out(lad: Ladder, summary: str = "pass@1", n_boot: int = VALIDATION_BOOT, seed: int = 0,
                       variants: Sequence[str] | None = None) -> pd.DataFrame:
    """Each rung of each family predicted from the family's other rungs (both dials)."""
    families = sorted(set(lad.cells["family"]))
    splits = [(f"{family}, other rungs", [family], [m]) for family in families
              for m in sorted(set(lad.cells[lad.cells["family"] == family]["model"]))]
    return pd.DataFrame(_validate(lad, summary, "leave one rung out", splits, n_boot, seed, variants=variants))


def cross_family(lad: Ladder, summary: str = "pass@1", n_boot: int = VALIDATION_BOOT, seed: int = 0,
                 variants: Sequence[str] | None = None) -> pd.DataFrame:
    """Each family's rungs predicted from the other family's whole ladder."""
    families = sorted(set(lad.cells["family"]))
    splits = [(f"{train} ladder", [train], sorted(set(lad.cells[lad.cells["family"] == test]["model"])))
              for train in families for test in families if test != train]
    return pd.DataFrame(_validate(lad, summary, "cross family", splits, n_boot, seed, variants=variants))


def held_out_rungs(lad: Ladder, held: Ladder, summary: str = "pass@1", n_boot: int = VALIDATION_BOOT,
                   seed: int = 0, variants: Sequence[str] | None = None) -> pd.DataFrame:
    """Each held-out rung (`held`: ladder.load(..., held_out=True)) predicted from its family's whole ladder, which
    never saw it: the test closest to placing a new model with `mtalign predict`."""
    if held.cells.empty:
        return pd.DataFrame()
    splits = [(f"{family} ladder", [family], sorted(set(held.cells[held.cells["family"] == family]["model"])))
              for family in sorted(set(held.cells["family"]))]
    return pd.DataFrame(_validate(lad, summary, "held-out rung", splits, n_boot, seed, targets=held.cells,
                                  variants=variants))


HELD_OUT_COLUMNS = ["family", "model", "claim", "variant", "summary", "x", "predicted_gain", "predicted_low",
                    "predicted_high", "predicted_judged_low", "predicted_judged_high", "predicted_margin",
                    "predicted_margin_low", "predicted_margin_high", "predicted",
                    "p_holds", "measured_gain", "measured_low", "measured_high", "measured_margin",
                    "measured_margin_low", "measured_margin_high", "measured"]


def held_out_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The held-out rungs' cells, predicted against measured, one row each (`held_out_rungs`' rows)."""
    # reindex: a report written before the margins were kept (issue 11's first held-out tables) still reads
    return rows.reindex(columns=HELD_OUT_COLUMNS) if len(rows) else pd.DataFrame(columns=HELD_OUT_COLUMNS)


def _gain_and_margin(r: dict[str, Any], side: str) -> str:
    """'gain +g [lo, hi], margin +m [lo, hi]': the intervals the verdict was read from (a prediction's are the fitted
    values with the seed noise of the neighbouring rungs; a report from before they were kept shows the fit's)."""
    low, high = ("measured_low", "measured_high") if side == "measured" else (
        ("predicted_judged_low", "predicted_judged_high") if pd.notna(r.get("predicted_judged_low"))
        else ("predicted_low", "predicted_high"))
    text = f"gain {r[f'{side}_gain']:+.3f} [{r[low]:+.3f}, {r[high]:+.3f}]"
    if pd.notna(r.get(f"{side}_margin")):
        text += (f", margin {r[f'{side}_margin']:+.3f} [{r[f'{side}_margin_low']:+.3f}, "
                 f"{r[f'{side}_margin_high']:+.3f}]")
    return text


def held_out_sentences(rows: pd.DataFrame) -> list[str]:
    """Per held-out rung: how many verdicts the ladder predicted, then each cell's prediction against measurement."""
    out = []
    for model, group in held_out_table(rows).groupby("model", sort=False):
        first = group.iloc[0]
        agree = int((group["predicted"] == group["measured"]).sum())
        out.append(f"{model}, never seen by the {first['family']} ladder, at {first['summary']} {first['x']:.3f}: "
                   f"{agree} of {len(group)} verdicts predicted exactly")
        for r in group.to_dict("records"):
            out.append(f"{model}, {r['variant']}: predicted {_gain_and_margin(r, 'predicted')}, {r['predicted']} "
                       f"(p(holds) {r['p_holds']:.2f}); measured {_gain_and_margin(r, 'measured')}, {r['measured']}")
    return out


def brier(p: Sequence[float], y: Sequence[float]) -> float:
    """Mean squared difference between predicted probabilities and 0/1 outcomes (lower is better)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    keep = np.isfinite(p) & np.isfinite(y)
    return float(((p[keep] - y[keep]) ** 2).mean()) if keep.any() else math.nan


def validation_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per scheme and claim variant, then per scheme and claim, then per scheme: cells predicted, how often the
    predicted verdict equals the measured one, how often "holds or not" agrees, the Brier score of p(holds), the
    baseline's Brier score (the share of holds in the variant's training cells, whatever the alignment), and the
    skill 1 - Brier / baseline Brier (above 0: alignment helps)."""
    columns = ["scheme", "scope", "name", "cells", "verdict_agreement", "holds_agreement", "brier", "brier_baseline",
               "skill", "extrapolated"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = []
    for scheme, by_scheme in rows.groupby("scheme", sort=False):
        scopes = [("variant", v, g) for v, g in by_scheme.groupby("variant", sort=False)]
        scopes += [("claim", c, g) for c, g in by_scheme.groupby("claim", sort=False)]
        for kind, name, group in scopes + [("all claims", "all claims", by_scheme)]:
            b, b0 = brier(group["p_holds"], group["holds"]), brier(group["p_baseline"], group["holds"])
            out.append({"scheme": scheme, "scope": kind, "name": name, "cells": len(group),
                        "verdict_agreement": float((group["predicted"] == group["measured"]).mean()),
                        "holds_agreement": float(((group["predicted"] == HOLDS) == (group["holds"] == 1)).mean()),
                        "brier": b, "brier_baseline": b0, "skill": 1 - b / b0 if b0 > 0 else math.nan,
                        "extrapolated": int((group["position"] != "inside").sum())})
    return pd.DataFrame(out, columns=columns)


def validation_sentences(table: pd.DataFrame) -> list[str]:
    """Per scheme and claim: agreement and Brier score against the baseline, in words."""
    out = []
    for r in table[table["scope"] != "variant"].to_dict("records") if len(table) else []:
        better = "better than" if r["brier"] < r["brier_baseline"] else "no better than"
        out.append(f"{r['scheme']}, {r['name']}: {r['verdict_agreement']:.0%} of {r['cells']} verdicts predicted "
                   f"exactly, holds-or-not right in {r['holds_agreement']:.0%}; Brier {r['brier']:.3f}, {better} "
                   f"the alignment-blind baseline's {r['brier_baseline']:.3f}"
                   + (f" ({r['extrapolated']} predicted by extrapolation)" if r["extrapolated"] else ""))
    return out


# -- mtalign predict ------------------------------------------------------------------------------------------------
def choose_summary(lad: Ladder, asked: str) -> tuple[str, str]:
    """(summary, why): `asked`, or with "auto" the one that separates the ladder's holds from fails best."""
    if asked != "auto":
        if asked not in SUMMARIES:
            raise ValueError(f"unknown alignment summary {asked!r}; valid: auto, {', '.join(SUMMARIES)}")
        return asked, "asked for"
    best = ladder.best_summaries(ladder.separation(lad.cells))
    pooled = best[best["scope"] == "all claims"].to_dict("records")
    if not pooled:
        return "pass@1", "no claim both holds and fails on the ladder, so no summary can separate them: pass@1"
    row = pooled[0]
    return row["summary"], (f"it separates the ladder's holding from failing cells best (rank AUC {row['rank_auc']:.2f}"
                            f" over {row['holds']} holding and {row['fails']} failing cells)")


def predict(model: str, task: str | None = None, ladder_dir: Path | str | None = None, n: int = 64,
            problems: int = 100, summary: str = "auto", family: str | None = None, seed: int = 0,
            backend: str = "auto", n_boot: int = BOOTSTRAP, log=print) -> dict[str, Any]:
    """Check everything, measure the model (sampling), and place it on the ladder: `place`'s result."""
    ladder_dir = Path(ladder_dir) if ladder_dir else default_ladder_dir()
    task = task or config.default_task(model)
    alignment.validate(model, task, n, None)
    if summary != "auto" and summary not in SUMMARIES:
        raise ValueError(f"unknown alignment summary {summary!r}; valid: auto, {', '.join(SUMMARIES)}")
    if problems < 1:
        raise ValueError(f"--problems must be at least 1, got {problems}")
    if not ladder_dir.is_dir():
        raise FileNotFoundError(f"no ladder results in {ladder_dir} (no such folder). Run "
                                f"`{ladder.RUN_FIRST.format(dir=ladder_dir)}` first, or pass --ladder DIR")
    lad = ladder.load(ladder_dir)
    ladder.require_results(lad, ladder_dir)
    k_max = min(n, int(lad.rungs["n"].min()))
    if k_max != int(lad.rungs["k_max"].max()):
        lad = ladder.load(ladder_dir, k_max=k_max)
    families = sorted(set(lad.cells["family"]))
    if family is not None and family not in families:
        raise ValueError(f"--family {family!r} is not on the ladder in {ladder_dir}; its families: "
                         f"{', '.join(families)}")
    log(f"sampling {model} on {task}: {n} samples x {problems} problems")
    measured = rungs.measure(model, task, n=n, problems=problems, seed=seed, backend=backend, log=log)
    return place(measured, lad, summary, family, k_max, n_boot, seed, ladder_dir)


def place(measured: dict[str, Any], lad: Ladder, summary: str = "auto", family: str | None = None,
          k_max: int | None = None, n_boot: int = BOOTSTRAP, seed: int = 0,
          ladder_dir: Path | str = "") -> dict[str, Any]:
    """Predictions for a measured model (`rungs.measure`'s record) on a ladder, with what to trust them for."""
    k_max = k_max or int(lad.rungs["k_max"].max())
    values = rungs.summarize(measured, k_max, seed=seed)
    summary, why = choose_summary(lad, summary)
    families = sorted(set(lad.cells["family"]))
    used = [family] if family else [measured["task"]] if measured["task"] in families else families
    x0 = values[summary]
    rows = predict_all(lad, x0, summary, used, n_boot=n_boot, seed=seed)
    loro = leave_one_rung_out(lad, summary, n_boot=200, seed=seed)
    loro = loro[loro["family"].isin(used)] if not loro.empty else loro
    return {"model": measured["model"], "task": measured["task"], "n": measured["n"],
            "problems": len(measured["problem_ids"]), "k_max": k_max, "alignment": values, "summary": summary,
            "summary_reason": why, "x": x0, "families": used, "ladder": str(ladder_dir),
            "predictions": rows.to_dict("records"),
            "statements": trust(measured, lad, summary, x0, used, rows, loro), "created": runinfo.now()}


def trust(measured: dict[str, Any], lad: Ladder, summary: str, x0: float, used: list[str], rows: pd.DataFrame,
          loro: pd.DataFrame) -> list[str]:
    """Plain sentences on where the prediction comes from and how far it goes."""
    rung_rows = lad.rungs[lad.rungs["family"].isin(used)]
    seeds = lad.cells[lad.cells["family"].isin(used)]["seeds"]
    low, high = float(rung_rows[summary].min()), float(rung_rows[summary].max())
    model, task = measured["model"], measured["task"]
    out = [f"Transferred from the toy ladder: each prediction is what the toy world's {' and '.join(used)} ladder "
           f"({len(rung_rows)} rungs, up to {int(seeds.max()) if len(seeds) else 0} seeds each) showed at {summary} = "
           f"{x0:.3f}. It is a hypothesis about {model} on {task}, not a verdict: run the claim notebooks on it "
           "(mtalign study) to know."]
    if x0 < low or x0 > high:
        out.append(f"EXTRAPOLATION: {summary} = {x0:.3f} lies {'below' if x0 < low else 'above'} every rung of the "
                   f"ladder ({low:.3f} to {high:.3f}); the curves are held flat at the nearest rung, so these "
                   "predictions should not be trusted.")
    else:
        out.append(f"Within the ladder: {summary} = {x0:.3f} lies between rungs the ladder measured ({low:.3f} to "
                   f"{high:.3f}); the prediction interpolates between the two nearest.")
    if task not in set(lad.cells["family"]):
        out.append(f"{task} is not one of the ladder's task families ({', '.join(sorted(set(lad.cells['family'])))}):"
                   " the curves are pooled over them, a transfer across tasks, which the ladder cannot validate.")
    elif model not in set(lad.cells["model"]):
        out.append(f"{model} is not a rung of the ladder: same task family, another model; larger models, other "
                   "training settings and real data may move the transition.")
    near = rows[rows["to_transition"].abs() < 0.05] if not rows.empty else rows
    if len(near):
        out.append(f"Near a transition (within 0.05 of it): {', '.join(near['variant'])}; their verdicts could go "
                   "either way.")
    if not loro.empty:
        b, b0 = brier(loro["p_holds"], loro["holds"]), brier(loro["p_baseline"], loro["holds"])
        agree = float((loro["predicted"] == loro["measured"]).mean())
        out.append(f"On the ladder itself, leaving each rung out, the predicted verdict matched the measured one in "
                   f"{agree:.0%} of {len(loro)} cells, Brier score {b:.3f} against {b0:.3f} for a baseline that "
                   f"ignores alignment ({'better' if b < b0 else 'no better'}).")
    return out


def format_prediction(result: dict[str, Any]) -> str:
    values = result["alignment"]
    k = result["k_max"]
    lines = [f"{result['model']} on {result['task']} ({result['n']} samples x {result['problems']} problems): "
             f"pass@1 {values['pass@1']:.3f}, pass@{k} {values['pass@k_max']:.3f}, AUC over log k "
             f"{values['auc_log_k']:.3f}, maj@{k} {values['maj@k_max']:.3f}",
             f"placed on the {' and '.join(result['families'])} ladder by {result['summary']} = {result['x']:.3f} "
             f"({result['summary_reason']})", ""]
    table = pd.DataFrame(result["predictions"])
    if table.empty:
        lines.append("no claim variant has paired runs on the ladder")
    else:
        shown = pd.DataFrame({
            "claim": table["claim"], "variant": table["variant"],
            "gain [95%]": [f"{r['gain']:+.3f} [{r['gain_low']:+.3f}, {r['gain_high']:+.3f}]" for _, r in table.iterrows()],
            "of GT's": [f"{v:.2f}" if math.isfinite(v) else "-" for v in table["relative"]],
            "margin [fit 95%]": [f"{r['margin']:+.3f} [{r['margin_low']:+.3f}, {r['margin_high']:+.3f}]"
                                 for _, r in table.iterrows()],
            # the verdict reads the margin with the seed noise its neighbouring rungs measured, not the fit's interval
            "verdict read from: gain, margin": [
                f"[{r['judged_gain_low']:+.3f}, {r['judged_gain_high']:+.3f}], "
                f"[{r['judged_margin_low']:+.3f}, {r['judged_margin_high']:+.3f}]" for _, r in table.iterrows()],
            "verdict": table["verdict"], "p(holds)": [f"{p:.2f}" for p in table["p_holds"]],
            "to transition": [f"{d:+.3f}" if math.isfinite(d) else s for d, s in
                              zip(table["to_transition"], table["transition_status"])],
            "nearest rungs": table["nearest"]})
        lines.append(shown.to_string(index=False))
    return "\n".join(lines + [""] + [f"- {s}" for s in result["statements"]])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model short name, local path or Hugging Face name")
    parser.add_argument("--task", help="task name (default: a toy model's own task)")
    parser.add_argument("--n", type=int, default=64, help="samples per problem (default 64)")
    parser.add_argument("--problems", type=int, default=100, help="evaluation problems (default 100)")
    parser.add_argument("--ladder", type=Path, help="a ladder study's folder (default outputs/ladder)")
    parser.add_argument("--summary", default="auto", choices=["auto", *SUMMARIES],
                        help="alignment summary to place the model by (auto: the ladder's best separator)")
    parser.add_argument("--family", help="fit on this task family's ladder only (default: the model's task if it is "
                                         "a ladder family, else both)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    parser.add_argument("--backend", default="auto", choices=["auto", "transformers", "vllm"])
    parser.add_argument("--out", type=Path, help="write the prediction here (default outputs/predict/<model>__<task>"
                                                 ".json)")


def run(args: argparse.Namespace) -> int:
    result = predict(args.model, args.task, args.ladder, n=args.n, problems=args.problems, summary=args.summary,
                     family=args.family, seed=args.seed, backend=args.backend)
    print(format_prediction(result))
    out = args.out or paths.outputs() / "predict" / f"{alignment.cell_name(result['model'], result['task'])}.json"
    runinfo.write_json(out, result)
    print(f"wrote {out}")
    return 0
