"""The alignment ladder (issue 11, part 2): where along alignment does each claim turn from mirage to method?

The toy world's `ladders:` (params/toyworld.yaml) are dials of pretraining exposure, each a list of recipes in dial
order: `fidelity` (an unfaithful answer tag holds the task's one systematic wrong answer) and `diffuse` (a fresh
random wrong answer each time: no wrong answer the model comes to prefer). A rung is one recipe of one dial on one
task family; its model is `<world>-<task>-<recipe>`. mtalign/rungs.py reads those ladders (the only reader: rung
names are typed nowhere else) and measures each rung; from a ladder study's files this module computes:

- per rung, the alignment summaries of the base model (`SUMMARIES`): pass@1, pass@k_max, the area under pass@k over
  log2 k (passk.summaries), and maj@k_max, the accuracy of the majority answer among k samples (what majority-vote
  self-reward trains toward; TTRL's pseudo-label accuracy at group size k), from `rungs.measure`'s records;
- per family x dial x claim variant, the gain and paired margin across seeds (mtalign.verdicts' statistics and
  verdicts, never re-implemented) against alignment, ground truth as the reference curve;
- per variant, the transition: the alignment at which the variant's mean gain first reaches half of ground truth's
  (interpolated between rungs), with a percentile interval from resampling seeds, or no transition in the ladder;
- which alignment summary separates the cells where a claim holds from those where it fails (rank AUC and the best
  single-threshold accuracy);
- whether alignment rises monotonically along a dial (`monotone_steps`).
mtalign/predict.py fits these curves and places a new model on them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from mtalign import verdicts
from mtalign.rungs import BOOTSTRAP, SUMMARIES, Rung, load_records, rung_index, summarize
from mtalign.verdicts import BASELINE, CLAIMS, FRACTION, HOLDS

IN_LADDER, FROM_LOWEST, NO_TRANSITION = "transition", "holds from the lowest rung", "no transition within the ladder"
RUN_FIRST = "mtalign study --params params/grids/ladder.yaml --out {dir}"


# -- a ladder's data: alignment per rung, gains per rung and variant --------------------------------------------
@dataclass
class Ladder:
    """What a ladder study measured. `rungs`: one row per rung (family, dial, position, recipe, model, SUMMARIES with
    intervals, where they came from); `cells`: one row per (rung, variant) with verdicts.cell_verdicts' numbers and
    verdict and the rung's columns; `seeds`: (model, variant) -> {seed: gain}, the paired statistics' input."""

    rungs: pd.DataFrame
    cells: pd.DataFrame
    seeds: dict[tuple[str, str], dict[int, float]]
    warnings: list[str] = field(default_factory=list)

    def points(self, variant: str, summary: str, families: Iterable[str] | None = None,
               dials: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> list["Point"]:
        """The rungs where `variant` and ground truth both have runs, as (alignment, seed gains) points."""
        rows = self.cells[(self.cells["variant"] == variant) & self.cells[summary].notna()]
        if families is not None:
            rows = rows[rows["family"].isin(list(families))]
        if dials is not None:
            rows = rows[rows["dial"].isin(list(dials))]
        rows = rows[~rows["model"].isin(list(exclude))]
        points = []
        for row in rows.drop_duplicates("model").to_dict("records"):
            mine, gt = self.seeds.get((row["model"], variant), {}), self.seeds.get((row["model"], BASELINE), {})
            paired = sorted(set(mine) & set(gt))
            if paired:
                points.append(Point(float(row[summary]), row["model"], row["family"], row["dial"],
                                    np.array([mine[s] for s in paired]), np.array([gt[s] for s in paired])))
        return sorted(points, key=lambda p: p.x)


@dataclass(frozen=True)
class Point:
    """One rung of one variant: its alignment and, per paired seed, the variant's and ground truth's gains."""

    x: float
    model: str
    family: str
    dial: str
    gain: np.ndarray
    gt_gain: np.ndarray

    def margin(self, fraction: float = FRACTION) -> np.ndarray:
        return self.gain - fraction * self.gt_gain


def load(study_dir: Path | str, k_max: int | None = None, n_boot: int = BOOTSTRAP,
         records: Sequence[dict[str, Any]] = (), held_out: bool = False) -> Ladder:
    """The ladder a study folder holds: every finished run in its run store (whichever batch grid trained it), the
    rung records that 06_alignment_ladder measured (`*.ladder.json`, and `records` measured elsewhere) and, for rungs
    without one, 01_alignment's records. With `held_out`, the held-out rungs' runs instead (rungs.held_out): what
    the ladder never saw, to validate predictions on."""
    from mtalign import study_files

    study = study_files.load_study(study_dir)
    # the whole run store, not only the runs the last grid asked for: the ladder is filled by batch grids (each a
    # subset of params/grids/ladder.yaml) and the manifest names only the last one's cells (a damaged summary is
    # already among load_study's warnings)
    summaries = study_files.store_summaries(study_dir)
    return build(summaries, [*records, *load_records(study_dir), *study.alignment], k_max, n_boot,
                 warnings=list(study.warnings), held_out=held_out)


def build(summaries: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]], k_max: int | None = None,
          n_boot: int = BOOTSTRAP, warnings: list[str] | None = None, held_out: bool = False) -> Ladder:
    """A `Ladder` from run summaries and rung records (only models that are rungs of a declared ladder count; with
    `held_out`, only the held-out rungs)."""
    warnings = list(warnings or [])
    index = rung_index(held_out=held_out)
    rung_rows = rung_table(index, records, k_max, n_boot, warnings)
    cells, seeds = gain_table(summaries, rung_rows, warnings, index)
    return Ladder(rung_rows, cells, seeds, warnings)


def rung_table(index: dict[str, list[Rung]], records: Sequence[dict[str, Any]], k_max: int | None = None,
               n_boot: int = BOOTSTRAP, warnings: list[str] | None = None) -> pd.DataFrame:
    """One row per measured rung. A rung record with votes (maj@k) is preferred over 01_alignment's; several
    records of one rung: the one with the most samples. k_max: the k of pass@k_max and maj@k_max (default: each
    record's n; a record with fewer samples than k_max is left out, with a warning)."""
    best: dict[str, tuple[tuple, dict[str, Any]]] = {}
    for r in records:
        if r.get("model") not in index or r.get("task") != index[r["model"]][0].task:
            continue
        rank = (r.get("votes") is not None, int(r["n"]) * len(r["problem_ids"]))
        if r["model"] not in best or rank > best[r["model"]][0]:
            best[r["model"]] = (rank, r)
    rows = []
    for model, (_, r) in sorted(best.items()):
        if k_max and int(r["n"]) < k_max:
            (warnings if warnings is not None else []).append(
                f"{model}: measured with n = {r['n']} < k_max = {k_max}; left out of the ladder")
            continue
        values = summarize(r, k_max, n_boot)
        source = "ladder record (pass@k and maj@k)" if r.get("votes") is not None else "01_alignment (pass@k only)"
        for rung in index[model]:
            rows.append({"family": rung.task, "dial": rung.dial, "position": rung.position, "recipe": rung.recipe,
                         "model": model, "world": rung.world, "n": int(r["n"]), "problems": len(r["problem_ids"]),
                         **values, "source": source})
    columns = ["family", "dial", "position", "recipe", "model", "world", "n", "problems", "k_max", "source"]
    frame = pd.DataFrame(rows, columns=columns + [c for s in SUMMARIES for c in (s, f"{s}_low", f"{s}_high")])
    return frame.sort_values(["family", "dial", "position"]).reset_index(drop=True)


def gain_table(summaries: Sequence[dict[str, Any]], rung_rows: pd.DataFrame, warnings: list[str] | None = None,
               index: dict[str, list[Rung]] | None = None) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[int, float]]]:
    """verdicts.cell_verdicts on the runs of rung models (each run's primary evaluation task), joined with the rung
    table, and the per-seed gains behind them. Per rung, only the settings most of its runs share are analysed, and
    across rungs only the most common preset and step count (the ladder grid's frozen settings); what is left out
    is named in `warnings`, never pooled."""
    warnings = warnings if warnings is not None else []
    index = index if index is not None else rung_index()
    mine = [s for s in summaries if s.get("model") in index and s.get("role", "study") == "study"]
    mine = _most_common(mine, lambda s: (s.get("preset"), s.get("steps")), "the ladder", "presets and step counts",
                        warnings)
    for model in sorted({s["model"] for s in mine}):
        theirs = [s for s in mine if s["model"] == model]
        kept = _most_common(theirs, verdicts.settings_key, model, "settings", warnings)
        mine = [s for s in mine if s["model"] != model] + kept
    seeds: dict[tuple[str, str], dict[int, float]] = {}
    for s in mine:
        primary = [r for r in verdicts.per_eval_task(s) if r["primary"]][0]
        seeds.setdefault((s["model"], s["variant"]), {})[int(s["seed"])] = float(primary["gain"])
    rows = [r for r in verdicts.cell_verdicts(mine, bootstrap=False) if r["primary"]]
    cells = pd.DataFrame(rows)
    columns = ["model", "variant", "claim", "seeds", "paired_seeds", "gain", "gain_low", "gain_high", "gt_gain",
               "gt_gain_low", "gt_gain_high", "margin", "margin_low", "margin_high", "verdict", "before"]
    cells = cells[columns] if len(cells) else pd.DataFrame(columns=columns)
    merged = rung_rows.drop(columns=["world"]).merge(cells, on="model", how="inner")
    return merged.sort_values(["family", "dial", "position", "variant"]).reset_index(drop=True), seeds


def _most_common(runs: list[dict], key, where: str, what: str, warnings: list[str]) -> list[dict]:
    """The runs sharing the most common `key`; a warning names how many others are left out."""
    counts = Counter(key(s) for s in runs)
    if len(counts) < 2:
        return runs
    best, kept = counts.most_common(1)[0]
    warnings.append(f"{where}: runs of {len(counts)} {what}; only the most common ({str(best)[:24]}, {kept} runs) "
                    f"is analysed, the other {len(runs) - kept} runs are left out")
    return [s for s in runs if key(s) == best]


def trained_models(study_dir: Path | str) -> set[str]:
    """The models with finished RL runs in a study folder's run store."""
    from mtalign import study_files

    return {s["model"] for s in study_files.store_summaries(study_dir)}


def require_results(lad: Ladder, study_dir: Path | str) -> None:
    """Refuse, saying what to run, when a folder holds no ladder to fit (no rung with alignment and runs)."""
    if lad.rungs.empty:
        raise FileNotFoundError(f"no ladder results in {study_dir}: no rung's alignment is measured there. Run "
                                f"`{RUN_FIRST.format(dir=study_dir)}` first (or point --ladder at its folder)")
    judged = lad.cells[lad.cells["variant"] != BASELINE]
    if judged.empty or judged["model"].nunique() < 2:
        raise FileNotFoundError(f"no ladder results in {study_dir}: RL runs of a claim variant and ground truth on "
                                f"at least two rungs are needed, found {judged['model'].nunique()}. Run "
                                f"`{RUN_FIRST.format(dir=study_dir)}` first")


# -- is alignment monotone along a dial? --------------------------------------------------------------------------
def monotone_steps(rung_rows: pd.DataFrame, summary: str = "pass@1", tolerance: float = 0.0) -> pd.DataFrame:
    """Each step between consecutive rungs of a dial (in dial order): the change of `summary` and a word. A step
    `falls` when the later rung is below the earlier one by more than `tolerance` and, where both have intervals,
    the intervals do not overlap; a smaller or overlapping fall is `flat within noise`; else `rises`."""
    rows = []
    for (family, dial), group in rung_rows.groupby(["family", "dial"], sort=True):
        group = group.sort_values("position").to_dict("records")
        for a, b in zip(group, group[1:]):
            delta = b[summary] - a[summary]
            separated = not (b.get(f"{summary}_high", math.nan) >= a.get(f"{summary}_low", math.nan))
            word = "rises" if delta >= 0 else "falls" if (delta < -tolerance and separated) else "flat within noise"
            rows.append({"family": family, "dial": dial, "summary": summary, "from": a["recipe"], "to": b["recipe"],
                         "from_value": a[summary], "to_value": b[summary], "change": delta, "step": word})
    return pd.DataFrame(rows, columns=["family", "dial", "summary", "from", "to", "from_value", "to_value", "change",
                                       "step"])


def not_monotone(rung_rows: pd.DataFrame, summary: str = "pass@1", dials: Iterable[str] | None = None,
                 tolerance: float = 0.0) -> list[str]:
    """The falls along each dial (empty: alignment is monotone along them), one sentence each."""
    steps = monotone_steps(rung_rows, summary, tolerance)
    if dials is not None:
        steps = steps[steps["dial"].isin(list(dials))]
    return [f"{s['family']} {s['dial']}: {summary} falls from {s['from']} ({s['from_value']:.3f}) to {s['to']} "
            f"({s['to_value']:.3f})" for s in steps[steps["step"] == "falls"].to_dict("records")]


# -- transitions ----------------------------------------------------------------------------------------------------
def reached(point: Point, fraction: float = FRACTION) -> float:
    """How far a rung's variant is past the bar: min(mean paired margin, mean gain); positive when its gain reaches
    `fraction` of ground truth's and is above 0."""
    return float(min(point.margin(fraction).mean(), point.gain.mean()))


def resample(points: Sequence[Point], n_boot: int, seed: int = 0, fraction: float = FRACTION) -> dict[str, np.ndarray]:
    """Each rung's mean gain, ground-truth gain and paired margin when its paired seeds are resampled with
    replacement (rungs independently): arrays [resample, point]."""
    rng = np.random.default_rng(seed)
    out = {"gain": np.empty((n_boot, len(points))), "gt_gain": np.empty((n_boot, len(points)))}
    for j, p in enumerate(points):
        picks = rng.integers(0, len(p.gain), size=(n_boot, len(p.gain)))
        out["gain"][:, j], out["gt_gain"][:, j] = p.gain[picks].mean(axis=1), p.gt_gain[picks].mean(axis=1)
    return {**out, "margin": out["gain"] - fraction * out["gt_gain"]}


def crossing(xs: Sequence[float], values: Sequence[float]) -> tuple[str, float]:
    """Where `values` (over ascending `xs`) first turn positive, linearly interpolated from the rung before:
    (IN_LADDER, x), (FROM_LOWEST, first x) or (NO_TRANSITION, nan)."""
    for i, value in enumerate(values):
        if value > 0:
            if i == 0:
                return FROM_LOWEST, float(xs[0])
            x0, x1, v0 = xs[i - 1], xs[i], values[i - 1]
            return IN_LADDER, float(x0 + (0 - v0) * (x1 - x0) / (value - v0))
    return NO_TRANSITION, math.nan


def transition(points: Sequence[Point], n_boot: int = BOOTSTRAP, seed: int = 0,
               fraction: float = FRACTION) -> dict[str, Any]:
    """A variant's transition over `points` (sorted by alignment), with a 95% percentile interval from resampling
    each rung's paired seeds. In the bootstrap, holding from the lowest rung counts as the lowest rung's alignment
    and no transition as beyond the highest (an infinite bound); `in_ladder` is the share of resamples with a
    transition inside the ladder."""
    xs = [p.x for p in points]
    status, estimate = crossing(xs, [reached(p, fraction) for p in points])
    boot = resample(points, n_boot, seed, fraction)
    values = np.minimum(boot["margin"], boot["gain"])  # `reached` of every resample and rung
    found = np.empty(n_boot)
    statuses = []
    for b in range(n_boot):
        word, x = crossing(xs, values[b])
        statuses.append(word)
        found[b] = math.inf if word == NO_TRANSITION else x
    # order statistics, not interpolation, which an infinite bound would turn into NaN
    low, high = np.percentile(found, [2.5, 97.5], method="inverted_cdf") if n_boot else (math.nan, math.nan)
    return {"status": status, "transition": estimate, "low": float(low), "high": float(high),
            "in_ladder": statuses.count(IN_LADDER) / max(1, n_boot), "rungs": len(points),
            "x_min": min(xs) if xs else math.nan, "x_max": max(xs) if xs else math.nan}


def without_signal(lad: Ladder) -> list[str]:
    """The rungs (models) where ground truth itself does not hold: RL with the true reward finds nothing to learn
    there (mini_sudoku's lowest diffuse rungs: a group of 8 almost never holds a right answer), so half of its gain
    is no bar, and a variant's noise around zero would "reach" it. They locate no transition."""
    base = lad.cells[lad.cells["variant"] == BASELINE] if len(lad.cells) else lad.cells
    return sorted(set(base[base["verdict"] != HOLDS]["model"])) if len(base) else []


def transitions(lad: Ladder, summary: str = "pass@1", variants: Sequence[str] | None = None,
                by: Sequence[str] = ("family", "dial"), n_boot: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """One row per group (`by`: family and dial by default; ("family",) pools a family's dials) and variant, over
    the rungs where ground truth holds (`without_signal`: the others are named in `left_out`)."""
    variants = variants or [v for v in variants_of(lad) if v != BASELINE]
    silent = without_signal(lad)
    rows = []
    groups = lad.cells[list(by)].drop_duplicates().to_dict("records") if len(lad.cells) else []
    for group in groups:
        for variant in variants:
            points = lad.points(variant, summary, families=[group["family"]] if "family" in group else None,
                                dials=[group["dial"]] if "dial" in group else None)
            left_out = [p.model for p in points if p.model in silent]
            points = [p for p in points if p.model not in silent]
            if points:
                rows.append({**group, "claim": verdicts.claim_of(variant), "variant": variant, "summary": summary,
                             **transition(points, n_boot, seed), "left_out": ", ".join(left_out)})
    frame = pd.DataFrame(rows)
    return frame if frame.empty else frame.assign(interval=[_interval(r) for r in frame.to_dict("records")])


def dial_agreement(lad: Ladder, variants: Sequence[str] | None = None, summaries: Sequence[str] = SUMMARIES,
                   n_boot: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """Which alignment summary puts a claim's transition at one value whatever the dial? Per family, variant and
    summary: each dial's transition, and whether the dials agree. If a claim depends on what a summary measures,
    its transition sits at the same value of that summary on every dial (the dials reach that value by different
    recipes); a summary that misses what the claim needs places it at different values. The dials agree when every
    pair is consistent: two transitions whose 95% intervals overlap, or a dial without a transition whose rungs
    all lie below the other's interval (it never reached that alignment). They disagree when two intervals are
    disjoint, or when a dial without a transition covered the other's transition (its top rung is at or above the
    other's interval) or already holds on its lowest rung below it. `agree` is None with fewer than two dials."""
    rows = []
    for summary in summaries:
        table = transitions(lad, summary, variants, n_boot=n_boot, seed=seed)
        if table.empty:
            continue
        for (family, variant), group in table.groupby(["family", "variant"], sort=False):
            dials = group.to_dict("records")
            agree = None if len(dials) < 2 else all(
                _consistent(a, b) for i, a in enumerate(dials) for b in dials[i + 1:])
            rows.append({"family": family, "variant": variant, "claim": verdicts.claim_of(variant),
                         "summary": summary, "dials": len(dials), "agree": agree,
                         "transitions": "; ".join(f"{d['dial']} {_where(d)}" for d in dials)})
    return pd.DataFrame(rows, columns=["family", "variant", "claim", "summary", "dials", "agree", "transitions"])


def _consistent(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two dials' transitions of one variant on one summary (see `dial_agreement`)."""
    crossed = [d for d in (a, b) if d["status"] == IN_LADDER]
    if len(crossed) == 2:
        return max(a["low"], b["low"]) <= min(a["high"], b["high"])
    if not crossed:
        return a["status"] == b["status"]  # both never cross, or both hold from their lowest rungs
    at = crossed[0]
    other = b if at is a else a
    if other["status"] == NO_TRANSITION:
        return other["x_max"] < at["low"]
    return other["x_min"] >= at["low"]  # holds from its lowest rung: consistent only if that rung is not below


def _where(row: dict[str, Any]) -> str:
    if row["status"] == IN_LADDER:
        return f"{row['transition']:.3f} {_interval(row)}"
    if row["status"] == FROM_LOWEST:
        return f"holds from its lowest rung ({row['x_min']:.3f})"
    return f"none up to {row['x_max']:.3f}"


def dial_agreement_sentences(table: pd.DataFrame) -> list[str]:
    """Per family and variant with two dials: the summaries on which the dials agree, and the transitions."""
    out = []
    if table.empty:
        return out
    for (family, variant), group in table[table["dials"] >= 2].groupby(["family", "variant"], sort=False):
        agreeing = list(group[group["agree"] == True]["summary"])  # noqa: E712 (None is neither)
        detail = " | ".join(f"{r['summary']}: {r['transitions']}" for r in group.to_dict("records"))
        verdict = (f"the dials agree on {', '.join(agreeing)} only" if agreeing and len(agreeing) < len(group)
                   else "the dials agree on every summary" if agreeing else "the dials agree on no summary")
        out.append(f"{family}, {variant}: {verdict} ({detail})")
    return out


def _interval(row: dict[str, Any]) -> str:
    if math.isinf(row["low"]):
        return "[beyond the ladder]"
    high = "beyond the ladder" if math.isinf(row["high"]) else f"{row['high']:.3f}"
    return f"[{row['low']:.3f}, {high}]"


def variants_of(lad: Ladder) -> list[str]:
    """Variants present, in the claims' order."""
    order = [BASELINE] + [v for vs in CLAIMS.values() for v in vs]
    present = set(lad.cells["variant"]) if len(lad.cells) else set()
    return [v for v in order if v in present] + sorted(present - set(order))


# -- which alignment summary separates holds from fails -----------------------------------------------------------
def rank_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a holding cell's alignment > a failing cell's), ties counting half (the Mann-Whitney AUC)."""
    pos, neg = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def best_threshold(positive: Sequence[float], negative: Sequence[float]) -> tuple[float, float]:
    """(threshold, accuracy) of the best rule "holds when alignment >= threshold" on these cells."""
    x = np.concatenate([np.asarray(positive, float), np.asarray(negative, float)])
    y = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    if len(x) == 0:
        return math.nan, math.nan
    values = np.unique(x)
    candidates = np.concatenate([[values[0] - 1], (values[1:] + values[:-1]) / 2, [values[-1] + 1]])
    accuracy = [((x >= t) == y).mean() for t in candidates]
    best = int(np.argmax(accuracy))
    return float(candidates[best]), float(accuracy[best])


def separation(cells: pd.DataFrame, summaries: Sequence[str] = SUMMARIES) -> pd.DataFrame:
    """Per scope (each variant, each claim, all claims) and alignment summary: how well the summary separates cells
    that hold from cells that fail (below the bar, or no gain / harms; cells within noise are left out and counted),
    as rank AUC and best single-threshold accuracy. Ground truth, the reference, is not a scope."""
    judged = cells[(cells["variant"] != BASELINE) & cells["claim"].isin(list(CLAIMS))]
    scopes = [("variant", v, judged[judged["variant"] == v]) for v in dict.fromkeys(judged["variant"])]
    scopes += [("claim", c, judged[judged["claim"] == c]) for c in dict.fromkeys(judged["claim"])]
    scopes.append(("all claims", "all claims", judged))
    rows = []
    for kind, name, group in scopes:
        for summary in summaries:
            usable = group[group[summary].notna()]
            pos = usable[usable["verdict"] == HOLDS][summary]
            neg = usable[usable["verdict"].isin(verdicts.FAILS)][summary]
            threshold, accuracy = best_threshold(pos, neg)
            rows.append({"scope": kind, "name": name, "summary": summary, "holds": len(pos), "fails": len(neg),
                         "left_out": len(group) - len(pos) - len(neg), "rank_auc": rank_auc(pos, neg),
                         "threshold": threshold, "accuracy": accuracy})
    return pd.DataFrame(rows, columns=["scope", "name", "summary", "holds", "fails", "left_out", "rank_auc",
                                       "threshold", "accuracy"])


def best_summaries(table: pd.DataFrame) -> pd.DataFrame:
    """Per scope, the summary with the highest rank AUC (ties: the best threshold accuracy, then SUMMARIES order)."""
    usable = table[table["rank_auc"].notna()].copy()
    if usable.empty:
        return usable
    usable["order"] = usable["summary"].map({s: i for i, s in enumerate(SUMMARIES)})
    usable = usable.sort_values(["rank_auc", "accuracy", "order"], ascending=[False, False, True])
    return usable.drop_duplicates(["scope", "name"]).drop(columns="order").reset_index(drop=True)


# -- what the tables say, in words --------------------------------------------------------------------------------
def transition_sentences(table: pd.DataFrame) -> list[str]:
    """One line per (family, dial, variant) of `transitions`' table."""
    out = []
    for r in table.to_dict("records") if len(table) else []:
        where = f"{r['family']}{' ' + r['dial'] if 'dial' in r else ''}, {r['variant']}"
        if r["status"] == IN_LADDER:
            line = (f"{where}: reaches half of ground truth's gain at {r['summary']} {r['transition']:.3f} "
                    f"{_interval(r)} ({r['in_ladder']:.0%} of seed resamples cross inside the ladder)")
        elif r["status"] == FROM_LOWEST:
            line = (f"{where}: already at half of ground truth's gain on the lowest rung ({r['summary']} "
                    f"{r['x_min']:.3f}): any transition lies below the ladder")
        else:
            line = (f"{where}: no transition within the ladder (up to {r['summary']} {r['x_max']:.3f}; "
                    f"{r['in_ladder']:.0%} of seed resamples cross inside it)")
        if r.get("left_out"):
            line += f"; leaving out {r['left_out']}, where ground truth itself does not hold"
        out.append(line)
    return out


def separation_sentences(table: pd.DataFrame) -> list[str]:
    """Per claim and for all claims: the best separating summary against pass@1, with their numbers."""
    out = []
    best = best_summaries(table)
    for row in best[best["scope"] != "variant"].to_dict("records"):
        pass1 = table[(table["scope"] == row["scope"]) & (table["name"] == row["name"])
                      & (table["summary"] == "pass@1")].iloc[0]
        versus = ("" if row["summary"] == "pass@1" else
                  f"; pass@1: AUC {pass1['rank_auc']:.2f}, accuracy {pass1['accuracy']:.2f}")
        out.append(f"{row['name']}: {row['summary']} separates best ({row['holds']} holding, {row['fails']} failing "
                   f"cells; rank AUC {row['rank_auc']:.2f}, best threshold {row['threshold']:.3f} classifies "
                   f"{row['accuracy']:.0%} right{versus})")
    undecided = table[(table["scope"] != "variant") & table["rank_auc"].isna()]["name"].unique()
    out += [f"{name}: no summary can separate, the ladder has no holding or no failing cell" for name in undecided]
    return out


# -- figures --------------------------------------------------------------------------------------------------------
DIAL_SYMBOLS = ["circle", "diamond", "square", "triangle-up"]


def alignment_figure(rung_rows: pd.DataFrame, summaries: Sequence[str] = SUMMARIES):
    """Each alignment summary along each dial (position on x), one line per family and dial, 95% intervals."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from mtalign import plots

    fig = make_subplots(rows=1, cols=len(summaries), subplot_titles=list(summaries), shared_yaxes=True)
    dials = list(dict.fromkeys(rung_rows["dial"]))
    for i, ((family, dial), group) in enumerate(rung_rows.groupby(["family", "dial"], sort=False)):
        colour, name = plots.PALETTE[sorted(set(rung_rows["family"])).index(family)], f"{family} · {dial}"
        for col, summary in enumerate(summaries, start=1):
            fig.add_trace(go.Scatter(
                x=group["position"], y=group[summary], mode="lines+markers", name=name, legendgroup=name,
                showlegend=col == 1, text=group["recipe"], line={"color": colour, "dash": "solid" if
                                                                 dials.index(dial) == 0 else "dash"},
                marker={"symbol": DIAL_SYMBOLS[dials.index(dial) % len(DIAL_SYMBOLS)], "size": 8},
                error_y={"type": "data", "symmetric": False, "array": group[f"{summary}_high"] - group[summary],
                         "arrayminus": group[summary] - group[f"{summary}_low"], "thickness": 1},
                hovertemplate="%{text}: %{y:.3f}<extra>" + name + "</extra>"), row=1, col=col)
    fig.update_xaxes(title="rung (dial position)", dtick=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1, title="alignment (95% CI over problems)")
    fig.update_layout(title="Alignment along each dial of the ladder")
    return plots.responsive(fig, 420)


def gain_figure(cells: pd.DataFrame, claim: str, summary: str = "pass@1", fraction: float = FRACTION):
    """Gain in held-out accuracy against alignment, one panel per task family: ground truth (black, the reference
    curve, and half of it dotted: the bar) and each variant of `claim`; marker shape and dash tell the dials apart,
    bars are 95% intervals across seeds, hover gives the verdict."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from mtalign import plots

    families = sorted(set(cells["family"]))
    dials = list(dict.fromkeys(cells["dial"]))
    fig = make_subplots(rows=1, cols=max(1, len(families)), subplot_titles=families, shared_yaxes=True)
    variants = [BASELINE] + [v for v in dict.fromkeys(cells[cells["claim"] == claim]["variant"])]
    for col, family in enumerate(families, start=1):
        for variant in variants:
            for dial in dials:
                rows = cells[(cells["family"] == family) & (cells["dial"] == dial) & (cells["variant"] == variant)]
                rows = rows.sort_values(summary)
                if rows.empty:
                    continue
                name, colour = f"{variant} · {dial}", plots.variant_colour(variant)
                line = {"color": colour, "dash": "solid" if dials.index(dial) == 0 else "dash"}
                fig.add_trace(go.Scatter(
                    x=rows[summary], y=rows["gain"], mode="lines+markers", name=name, legendgroup=name,
                    showlegend=col == 1, line=line, customdata=np.stack([rows["recipe"], rows["verdict"]], axis=1),
                    marker={"symbol": DIAL_SYMBOLS[dials.index(dial) % len(DIAL_SYMBOLS)], "size": 8},
                    error_y={"type": "data", "symmetric": False, "array": rows["gain_high"] - rows["gain"],
                             "arrayminus": rows["gain"] - rows["gain_low"], "thickness": 1},
                    hovertemplate="%{customdata[0]}: gain %{y:+.3f}, %{customdata[1]}<extra>" + name + "</extra>"),
                    row=1, col=col)
                if variant == BASELINE:
                    fig.add_trace(go.Scatter(x=rows[summary], y=fraction * rows["gain"], mode="lines",
                                             name=f"{fraction:g} x ground truth · {dial}", showlegend=col == 1,
                                             line={"color": colour, "dash": "dot", "width": 1}, hoverinfo="skip"),
                                  row=1, col=col)
        fig.add_hline(y=0, line={"color": plots.GREY, "width": 1}, row=1, col=col)
    fig.update_xaxes(title=f"base model's {summary}")
    fig.update_yaxes(title="gain in held-out accuracy", row=1, col=1)
    fig.update_layout(title=f"{claim}: gain against alignment, ground truth as the reference")
    return plots.responsive(fig, 460)
