"""The study's report (issues 4, 9): the 99_report notebook's data, figures and findings, and `mtalign report`.

    mtalign report [--out DIR] [--params GRID.yaml]   # re-run notebooks/99_report.py on a study folder

Everything here is built from the files a study leaves behind, never from a notebook: `load_study`
(mtalign/study_files.py) reads them, mtalign/tables.py computes the tables, and `build` turns both into a `Report` of
data frames, plotly figures (drawn by mtalign.plots) and a few sentences generated from the numbers (`findings`,
`headline`); the prose is the 99_report notebook's markdown. The report page `<study>/report.html` is that notebook
executed and exported without its code (mtalign/pages.py); `write` adds one HTML file per figure under
`<study>/figures/` (sharing a single `plotly.min.js`) and the report's metrics.json.
Verdicts come only from `mtalign.verdicts` (one rule, stated in the report).

notebooks/99_report.py imports this module alone: the names it calls that live in study_files, tables and pages are
imported here under the same names.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import plotly.graph_objects as go

from mtalign import paths, plots, runinfo, runner, verdicts
from mtalign.pages import EXECUTED_DIR, REPORT_FILE
from mtalign.study_files import (Study, cell_alignment, passk_curves, run_gains, seed_counts, step_values,
                                 study_code_versions)
from mtalign.tables import (PAPER_FILE, VARIANTS, Pair, cell_label, divergence_statements, effect_text,
                            load_paper_numbers, margin_text, matrix_columns, matrix_variants, missing_cells, our_rows,
                            paper_column, paper_rows, strong_weak_pairs, variant_rank, verdict_table)
from mtalign.verdicts import BASELINE, CLAIMS, FRACTION

# What notebooks/99_report.py calls as report.<name> and that lives in the modules this one builds on.
from mtalign.pages import show  # noqa: F401
from mtalign.study_files import load_study  # noqa: F401
from mtalign.tables import (alignment_table, clip_statement, clip_table, comparison_table,  # noqa: F401
                            contamination_table, contamination_validation, probe_table, verdict_matrix_table)

FIGURES_DIR = "figures"
variant_colour = plots.variant_colour


# -- figures: the verdict matrix, the gains, the evidence, pass@k, the paper's numbers ----------------------------
def verdict_figure(table: pd.DataFrame, alignment: dict | None = None, contamination: dict | None = None,
                   fraction: float = FRACTION) -> go.Figure:
    """The verdict matrix: claim variant (rows) x (model, task) cell (columns), each cell coloured by its verdict and
    showing the word and the mean gain; the interval and seeds are in the hover."""
    columns = matrix_columns(table, alignment)
    variants = matrix_variants(table)
    shown = table.assign(hover=[_hover(r, fraction) for r in table.to_dict("records")]) if not table.empty else table
    rows = [f"{(verdicts.claim_of(v) or 'other').split(' ')[0].rstrip(':')} · {v}" for v in variants]  # "RQ1 · random"
    return plots.verdict_matrix(shown, columns, [cell_label(m, t, alignment, contamination) for m, t in columns],
                                variants, rows)


def _hover(row: dict[str, Any], fraction: float) -> str:
    lines = [f"<b>{row['variant']}</b> on {row['model']} · {row['task']}: <b>{row['verdict']}</b>"]
    if row["verdict"] != "missing":
        lines += [f"gain {effect_text(row)} over {row['seeds']} seed(s)",
                  f"accuracy {row['before']:.3f} → {row['after']:.3f}",
                  f"ground-truth gain {row['gt_gain']:+.3f}"]
        if margin_text(row):
            lines.append(f"margin over {fraction:.0%} of ground truth's gain, paired by seed: {margin_text(row)} over "
                         f"{row['paired_seeds']} seed(s)")
            if not pd.isna(row.get("margin_boot_low")):
                lines.append(f"bootstrap over problems: [{row['margin_boot_low']:+.3f}, {row['margin_boot_high']:+.3f}]")
        if row.get("settings"):
            lines.append(f"settings {row['settings']}, semantics {row.get('semantics')}")
    if row.get("missing_seeds"):
        lines.append(f"missing seed(s): {', '.join(map(str, row['missing_seeds']))}")
    if row.get("note"):
        lines.append(html.escape(row["note"])[:300])
    return "<br>".join(lines)


def _of_claim(frame: pd.DataFrame, claim: str) -> pd.DataFrame:
    variants = [BASELINE] + CLAIMS[claim]
    return frame[frame["variant"].isin(variants)] if not frame.empty else frame


def forest_figure(table: pd.DataFrame, gains: pd.DataFrame, claim: str, alignment: dict | None = None,
                  fraction: float = FRACTION) -> go.Figure:
    """The gain forest plot of one claim: its variants and ground-truth RL in every (model, task) cell."""
    rows = _of_claim(table, claim)
    variants = [v for v in [BASELINE] + CLAIMS[claim] if v in set(rows["variant"])] if not rows.empty else []
    cells = matrix_columns(rows, alignment)
    return plots.gain_forest(rows, gains, cells, variants, fraction,
                             f"{claim}: gain over the base model (mean, 95% interval, seeds)")


def evidence_figures(study: Study, claim: str, steps: pd.DataFrame, curves: pd.DataFrame) -> dict[str, go.Figure]:
    """The figures a reader checks a claim's verdicts against, by name: held-out accuracy against step, pass@k after
    RL against the base model's, and the training diagnostics this claim's mechanism turns on."""
    variants = [BASELINE] + CLAIMS[claim]
    mine = _of_claim(steps, claim)
    slug = _slug(claim.split(" ")[0])
    out = {
        f"heldout__{slug}": plots.step_grid(mine, {"heldout_accuracy": "held-out accuracy"},
                                            f"{claim}: held-out accuracy during RL", variants, y_range=(0, 1)),
        f"passk_after__{slug}": plots.passk_after(_of_claim(curves, claim),
                                                  f"{claim}: pass@k after RL vs the base model", variants),
    }
    rollout = ("rollout accuracy on the training example" if claim == "RQ2 one-shot"
               else "ground-truth accuracy of the rollouts")
    diagnostics = {"gt_accuracy": rollout, "reward_mean": "training reward", "entropy": "policy entropy",
                   "zero_variance_frac": "zero-variance groups", "clip_fraction": "clip fraction"}
    if claim == "RQ1 reward signal":
        diagnostics["pseudo_label_accuracy"] = "pseudo-label accuracy (majority vote)"
    present = set(mine["metric"]) if not mine.empty else set()
    out[f"training__{slug}"] = plots.step_grid(mine, {k: v for k, v in diagnostics.items() if k in present},
                                               f"{claim}: training curves", variants)
    return out


def passk_figures(study: Study) -> dict[str, go.Figure]:
    """task -> the pass@k curves of every model measured on it, with their bootstrap bands."""
    out = {}
    for task in sorted({r["task"] for r in study.alignment}):
        records = [r for r in study.alignment if r["task"] == task]
        several = len({r["model"] for r in records}) < len(records)  # several seeds of one model: say which
        labelled = [{**r, "label": r["model"] + (f" (seed {r.get('seed')})" if several else "")} for r in records]
        out[task] = plots.passk_figure(labelled, title=f"Alignment on {task}: pass@k of each base model")
    return out


def paper_figure(rows: list[dict[str, Any]], fraction: float = FRACTION) -> go.Figure:
    """Each variant's gain as a fraction of ground-truth RL's gain: the paper's cells next to ours."""
    return plots.paper_figure([{**r, "column": paper_column(r)} for r in rows], VARIANTS, fraction,
                              "Gain as a share of ground-truth RL's: the paper vs this study")


# -- the report: data frames, figures and the findings drawn from them --------------------------------------------
@dataclass
class Report:
    """Everything the report notebook shows, computed once from a study's files (no prose: that is the notebook's)."""

    study: Study
    fraction: float
    table: pd.DataFrame  # verdict_table: one row per (model, task, variant)
    alignment: dict[tuple[str, str], tuple[float, str]]
    pairs: list[Pair]
    divergence: list[dict[str, Any]]
    findings: list[str]
    paper: dict[str, Any]
    comparison: list[dict[str, Any]]
    gains: pd.DataFrame
    steps: pd.DataFrame
    curves: pd.DataFrame
    figures: dict[str, go.Figure]
    data: dict[str, Any]  # the machine-readable results (the report's metrics.json)

    def claim_figures(self, claim: str) -> dict[str, go.Figure]:
        slug = _slug(claim.split(" ")[0])
        return {name: fig for name, fig in self.figures.items() if name.endswith("__" + slug)}


def build(study: Study, fraction: float = FRACTION, strong: str = "", weak: str = "",
          paper_file: Path | str = PAPER_FILE) -> Report:
    """Every table, figure and finding of the report, from the study's files."""
    paper = load_paper_numbers(paper_file)
    alignment = cell_alignment(study)
    contamination = {(r["model"], r["task"]): r.get("colour") for r in study.contamination}
    table = verdict_table(study, fraction)
    pairs = strong_weak_pairs(table, alignment, strong, weak)
    statements = divergence_statements(table, pairs)
    comparison = paper_rows(paper) + our_rows(table, pairs)
    gains, steps, curves = run_gains(study), step_values(study), passk_curves(study)
    # a verdict matrix per evaluation task: the runs' primary tasks first (one figure), then each other task's
    primary = table[table["primary"].fillna(True).astype(bool)] if not table.empty else table
    figures: dict[str, go.Figure] = {"verdict_matrix": verdict_figure(primary, alignment, contamination, fraction)}
    if not table.empty:
        others = table[~table["primary"].fillna(True).astype(bool)]
        for task in sorted(set(others["task"])):
            figures[f"verdict_matrix__{_slug(task)}"] = verdict_figure(others[others["task"] == task], alignment,
                                                                        contamination, fraction)
    for claim in CLAIMS:
        figures[f"forest__{_slug(claim.split(' ')[0])}"] = forest_figure(table, gains, claim, alignment, fraction)
        figures.update(evidence_figures(study, claim, steps, curves))
    figures.update({f"passk__{_slug(task)}": fig for task, fig in passk_figures(study).items()})
    figures["paper_comparison"] = paper_figure(comparison, fraction)
    found = findings(table, pairs, statements)
    data = {
        "study_dir": str(study.dir), "generated": runinfo.now(), "rule": verdicts.RULE, "fraction": fraction,
        "seeds": seed_counts(study), "code_versions": study_code_versions(study), "findings": found,
        "verdicts": _records(table), "divergence": statements, "pairs": [dataclasses.asdict(p) for p in pairs],
        "paper_comparison": comparison, "missing_cells": _records(missing_cells(study)), "warnings": study.warnings,
        "runs": len(study.summaries), "unused_runs": study.unused_runs,
        "multiplicity": verdicts.multiplicity(table.to_dict("records")) if not table.empty else None,
    }
    return Report(study, fraction, table, alignment, pairs, statements, found, paper, comparison, gains, steps,
                  curves, figures, data)


def _names(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _span(rows: list[dict[str, Any]]) -> str:
    gains = [r["gain"] for r in rows]
    return f"{min(gains):+.2f}" if len(gains) == 1 else f"{min(gains):+.2f} to {max(gains):+.2f}"


def findings(table: pd.DataFrame, pairs: list[Pair], statements: list[dict[str, Any]]) -> list[str]:
    """The report's answer in a few plain sentences (markdown), each derived from the verdict table: ground-truth RL,
    then per claim whether the paper's divergence appears, which variants hold everywhere or nowhere, then harm and
    what is missing. Words are verdicts.py's; nothing is judged here."""
    if table.empty:
        return ["No RL run has finished yet, so nothing can be concluded: run `mtalign study` (or `make study`)."]
    judged = [r for r in table.to_dict("records") if r["verdict"] not in ("missing", "no baseline")]
    out = []
    gt = [r for r in judged if r["variant"] == BASELINE]
    if gt:
        holds = [r for r in gt if r["verdict"] == "holds"]
        where = (f"all {len(gt)}" if len(holds) == len(gt) > 1 else f"{len(holds)} of {len(gt)}")
        out.append(f"**Ground-truth RL holds on {where} (model, task) cell{'s' if len(gt) > 1 else ''}** "
                   f"(gains {_span(gt)}): the yardstick every claim is measured against.")
    for claim, variants in CLAIMS.items():
        mine = [r for r in judged if r["variant"] in variants]
        if not mine:
            continue
        appearing = sorted({v for s in statements if s["claim"] == claim for v in s["variants"]},
                           key=variant_rank)
        # the tasks on which each appearing variant shows it: one list when they share it, else per variant
        tasks_of = {v: sorted({s["task"] for s in statements if s["claim"] == claim and v in s["variants"]})
                    for v in appearing}
        cells = {(r["model"], r["task"]) for r in judged}
        everywhere = [v for v in variants if sum(r["variant"] == v and r["verdict"] == "holds" for r in mine)
                      == len(cells) and v not in appearing]
        nowhere = [v for v in variants if sum(r["variant"] == v for r in mine) > 1
                   and not any(r["variant"] == v and r["verdict"] == "holds" for r in mine)]
        judgeable = [s for s in statements if s["claim"] == claim and s["appears"] is not None]
        parts = []
        if appearing:
            they = "it holds" if len(appearing) == 1 else "they hold"
            if len({tuple(tasks) for tasks in tasks_of.values()}) == 1:
                where = f"{_names(appearing)} on {_names(tasks_of[appearing[0]])}"
            else:
                where = ", and for ".join(f"{v} on {_names(tasks_of[v])}" for v in appearing)
            parts.append(f"the paper's divergence appears for {where}: "
                         f"{they} on the strongly aligned model and not on the weakly aligned one")
        elif judgeable:
            parts.append("the paper's divergence does not appear for any variant")
        elif pairs:
            parts.append("the paper's divergence cannot be judged (no variant has runs on both the strong and the "
                         "weak model)")
        if everywhere:
            parts.append(f"{_names(everywhere)} hold{'s' if len(everywhere) == 1 else ''} on every model, strong or "
                         "weak")
        if nowhere:
            parts.append(f"{_names(nowhere)} hold{'s' if len(nowhere) == 1 else ''} on no model")
        if parts:
            sentence = "; ".join(parts)
            out.append(f"**{claim}**: {sentence[0].upper() + sentence[1:]}.")
    harmful = [r for r in judged if not math.isnan(r["gain_high"]) and r["gain_high"] < 0]
    if harmful:
        by_variant: dict[str, list[dict]] = {}
        for r in harmful:
            by_variant.setdefault(r["variant"], []).append(r)
        worst = sorted(by_variant.items(), key=lambda item: min(r["gain"] for r in item[1]))
        named = [f"{v} on {len(rs)} cell{'s' if len(rs) > 1 else ''} ({_span(rs)})" for v, rs in worst[:3]]
        more = f", and {len(worst) - 3} more variant(s)" if len(worst) > 3 else ""
        out.append("**Harm** (the whole interval below zero): " + "; ".join(named) + more
                   + " lower held-out accuracy below the base model's.")
    missing = [r for r in table.to_dict("records") if r["verdict"] == "missing"]
    if missing:
        out.append(f"**Not judged**: {len(missing)} (model, task, variant) combination(s) the grid asked for have no "
                   "finished run (listed in the appendix); they are shown as missing, never as zero.")
    return out[:6]


def headline(rep: Report) -> str:
    """One line: the rule's bar, the seeds behind every verdict, the code that trained the runs, and when."""
    seeds = rep.data["seeds"]
    seeds_text = ("no seeds yet" if not seeds else f"{seeds[0]} training seed{'s' if seeds[0] != 1 else ''} per cell"
                  if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]} training seeds per cell")
    versions = rep.data["code_versions"]
    code = ", ".join(f"`{v}`" for v in versions) or "—"
    manifest = rep.study.manifest or {}
    when = manifest.get("updated") or manifest.get("started") or "not recorded (no manifest)"
    judged = rep.data.get("multiplicity") or {}
    chance = (f" {judged['judged']} verdicts were judged, so about {judged['expected_chance_misses']:.1f} of their "
              f"95% intervals would miss by chance; no multiplicity correction is applied (see the rule)."
              if judged.get("judged") else "")
    return (f"Gains are in held-out accuracy, after minus before RL, with 95% t-intervals over {seeds_text}; a "
            f"variant holds when its gain and its paired margin over {rep.fraction:.0%} of ground-truth RL's gain on "
            f"the same seed are both above 0, and is within noise when the margin's interval contains 0 "
            f"(`mtalign/verdicts.py`).{chance} Runs trained by code {code}; study last updated {when}; report "
            f"built by code `{runinfo.code_version()}` on {runinfo.now()[:10]}.")


def appendix(rep: Report) -> pd.DataFrame:
    """Counts and paths: what the report read, and what it left out."""
    study, m = rep.study, rep.study.manifest
    rows = [("study folder", str(study.dir)),
            ("manifest", "absent: not the output of `mtalign study`, so cells that never ran cannot be listed"
             if m is None else f"grid {m.get('grid_file')}; started {m.get('started')}, updated {m.get('updated')}"),
            ("cells", "—" if m is None else ", ".join(f"{n} {s}" for s, n in (m.get("counts") or {}).items())),
            ("RL runs read", f"{len(study.summaries)} (preset "
                             f"{', '.join(sorted({str(s.get('preset')) for s in study.summaries})) or '—'})"),
            ("runs in the store not asked for by this grid (left out)", str(len(study.unused_runs))),
            ("alignment measurements", str(len(study.alignment))),
            ("contamination test files", str(len({r['source'] for r in study.contamination}))),
            ("paper's numbers", f"params/paper_numbers.yaml ({rep.paper.get('reliability')})")]
    rows += [("warning", w) for w in study.warnings]
    return pd.DataFrame(rows, columns=["what", "value"])


def divergence_table(rep: Report) -> pd.DataFrame:
    return pd.DataFrame([{"claim": s["claim"], "task": s["task"], "strong": s["strong"], "weak": s["weak"],
                          "divergence": {True: "appears", False: "does not appear", None: "not judged"}[s["appears"]],
                          "for": ", ".join(s["variants"]) or "—"} for s in rep.divergence],
                        columns=["claim", "task", "strong", "weak", "divergence", "for"])


def styled(frame: pd.DataFrame):
    """A table whose cells start with a verdict word get that verdict's colour (the matrix's palette)."""
    words = sorted(plots.VERDICT_COLOURS, key=len, reverse=True)

    def colour(value: Any) -> str:
        text = str(value)
        word = next((w for w in words if text.startswith(w)), None)
        return f"background-color: {plots.verdict_colour(word)}; color: #000" if word else ""

    return frame.style.map(colour).hide(axis="index")


# -- the alignment ladder, as its own report (06_alignment_ladder) recorded it ------------------------------------
LADDER_REPORT = "06_alignment_ladder"  # the ladder grid's report notebook, whose record this section reads


@dataclass
class LadderResults:
    """What the report says of the alignment ladder: found or not, its sentences, its figures and validation table."""

    found: bool
    text: str
    figures: dict[str, go.Figure]
    validation: pd.DataFrame


def ladder_results(ladder_dir: Path | str) -> LadderResults:
    """The ladder's transitions, separating summary and predictor validation, in the words and figures of its
    report notebook (`<ladder_dir>/06_alignment_ladder/metrics.json`), or what to run where no ladder has."""
    from mtalign import ladder, predict  # here, not at the top: predict imports the sampling code

    folder = Path(ladder_dir)
    metrics = folder / LADDER_REPORT / "metrics.json"
    if not metrics.exists():
        return LadderResults(False, (
            f"No alignment ladder has run next to this study (`{folder}`), so alignment has two points per family "
            f"here. `{ladder.RUN_FIRST.format(dir=folder)}` runs it (resumable; "
            f"`--only '*chain_sum*'` first), and this section then shows where each claim turns."), {}, pd.DataFrame())
    data = runinfo.read_json(metrics)
    summary = (data.get("parameters") or {}).get("summary", "pass@1")
    cells = pd.DataFrame(data.get("cells", []))
    validation = pd.DataFrame(data.get("validation", []))
    rung_rows = pd.DataFrame(data.get("rungs", []))
    figures = {"ladder_alignment": ladder.alignment_figure(rung_rows)} if len(rung_rows) else {}
    if cells.empty:
        return LadderResults(True, (
            f"{len(rung_rows)} rungs measured (pass@k and maj@k, below), no RL runs on them yet: "
            f"`{ladder.RUN_FIRST.format(dir=folder)}` trains them (resumable), and this section then shows where "
            "each claim turns."), figures, validation)
    lines = [f"{len(rung_rows)} rungs, {cells['model'].nunique()} of them with RL runs; x is the base model's "
             f"{summary}."]
    lines += ladder.transition_sentences(pd.DataFrame(data.get("transitions", [])))
    lines += ladder.dial_agreement_sentences(pd.DataFrame(data.get("dial_agreement", [])))
    lines += ladder.separation_sentences(pd.DataFrame(data.get("separation", [])))
    lines += predict.validation_sentences(validation)
    lines += predict.held_out_sentences(pd.DataFrame(data.get("held_out", [])))
    lines += [f"warning: {w}" for w in data.get("warnings", [])]
    figures.update({f"ladder__{_slug(claim.split(' ')[0])}": ladder.gain_figure(cells, claim, summary)
                    for claim in CLAIMS if claim in set(cells["claim"])})
    return LadderResults(True, "\n".join(f"- {line}" for line in lines), figures, validation)


# -- writing: figures and metrics.json (the report page is the executed notebook, mtalign/pages.py) ---------------
def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return _json_safe(frame.to_dict("records"))


def _json_safe(value: Any) -> Any:
    """NaN (not measured, missing) becomes null, so metrics.json stays valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def write(rep: Report, study_dir: Path | str | None = None, run_dir: Path | str | None = None) -> dict[str, Path]:
    """Write `<study>/figures/<name>.html` (one page per figure, sharing one plotly.min.js) and, when given,
    `<run_dir>/metrics.json`. Figures of an earlier report (figures/index.json) that this one lacks are removed.
    The report page itself is the executed notebook, exported by `export_html` once it has run."""
    study = Path(study_dir or rep.study.dir)
    folder = study / FIGURES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "index.json"
    before = set(runinfo.read_json(index).get("figures", [])) if index.exists() else set()
    written = []
    for name, fig in rep.figures.items():
        # "directory": each figure loads the plotly.min.js written once beside it (not 4.8 MB inlined per figure)
        plots.write_figure(fig, folder / f"{name}.html", include_plotlyjs="directory")
        written.append(f"{name}.html")
    for stale in before - set(written):
        (folder / stale).unlink(missing_ok=True)
    runinfo.write_json(index, {"report": REPORT_FILE, "figures": written, "written": runinfo.now()})
    out = {"figures": folder}
    if run_dir is not None:
        out["metrics"] = runinfo.write_json(Path(run_dir) / "metrics.json", {
            "notebook": "99_report", **_json_safe(rep.data), **runinfo.environment()})
    return out


# -- command line -------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="study folder (default outputs/, or $MTALIGN_OUTPUTS)")
    parser.add_argument("--params", type=Path,
                        help="grid file whose report notebook to run (default: the grid stored in <out>/manifest.json)")
    parser.add_argument("--notebooks", type=Path, help="folder of NN_name.py notebooks (default: the manifest's)")


def run(args: argparse.Namespace) -> int:
    """Re-run the report notebook on a study folder through the grid runner (runner.run_report)."""
    out = Path(args.out or paths.outputs())
    if not out.is_dir():
        raise FileNotFoundError(f"study folder {out} does not exist; run `mtalign study --out {out}` first")
    started = time.time()
    entry = runner.run_report(out, grid=args.params, notebooks_dir=args.notebooks)
    if entry["status"] != "finished":
        print(f"the report notebook failed: {entry.get('error')}; executed notebook {out / entry['dir']}")
        return 1
    print(f"wrote {out / REPORT_FILE}, {out / FIGURES_DIR}/ and {out / EXECUTED_DIR}/ in "
          f"{time.time() - started:.1f} s (executed notebook {out / (entry.get('executed_notebook') or entry['dir'])})")
    return 0
