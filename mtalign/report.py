"""The stitched report of a study (issue 4): verdicts, divergence statements, figures and the paper's numbers.

    mtalign report [--out DIR] [--params GRID.yaml]   # re-run notebooks/99_report.py on a study folder

Everything here is built from the files a study leaves behind, never from a notebook: `<study>/manifest.json` (the
grid's cells, their status and errors), `<study>/runs/*/summary.json` and `metrics.jsonl` (RL runs),
the alignment cell JSONs that 01_alignment writes, 05_contamination's `metrics.json`, and params/paper_numbers.yaml.
`build` turns them into a `Report` (sections of text, tables and plotly figures); the notebook shows its sections
and `write` exports it: `<study>/report.html` (one self-contained file, plotly.js inlined once, opens offline) and one
HTML file per figure under `<study>/figures/` (sharing a single `plotly.min.js` there, to keep the folder small).
Verdicts come only from `mtalign.verdicts` (one rule, stated in the report).
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import yaml

from mtalign import paths, plots, runinfo, runs, verdicts
from mtalign.claims import CURVES  # the per-step metrics drawn as training curves, as in the claim notebooks
from mtalign.verdicts import BASELINE, CLAIMS, FRACTION

PAPER_FILE = paths.PARAMS / "paper_numbers.yaml"
REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
# Which claim each claim notebook tests; its variants are verdicts.CLAIMS[claim] unless the cell set `variants`.
CLAIM_NOTEBOOKS = {"02_reward_signal": "RQ1 reward signal", "03_one_shot": "RQ2 one-shot",
                   "04_sample_polarity": "RQ3 sample polarity"}
ALIGNMENT_NOTEBOOK, CONTAMINATION_NOTEBOOK = "01_alignment", "05_contamination"
PRESENT = ("finished", "skipped")  # manifest statuses whose files are complete
VARIANTS = [BASELINE] + [v for variants in CLAIMS.values() for v in variants]  # display order
VERDICT_COLOURS = {"fails": "#d62728", "inconclusive": "#f2c14e", "holds": "#2ca02c", "missing": "#eeeeee",
                   "no baseline": "#c5b0d5"}
CONTAMINATION_COLOURS = {"Red": "#d62728", "Green": "#2ca02c", "Gray": "#7f7f7f"}
CONFIG = {"displaylogo": False}  # plotly's toolbar without its logo (zoom, pan and PNG export stay)
SUMMARY_KEYS = ("model", "task", "variant", "seed", "gain", "before", "after")
# One colour per variant in every figure (ground truth dark grey; light grey is "before RL"); no two alike.
VARIANT_COLOURS = {BASELINE: "#444444", "format_only": "#d62728", "random": "#2ca02c", "incorrect": "#ff7f0e",
                   "majority_vote": "#9467bd", "entropy_min": "#8c564b", "one_shot": "#e377c2",
                   "one_shot_random": "#17becf", "psr": "#1f77b4", "nsr": "#bcbd22", "w_reinforce": "#7b4173"}


def variant_colour(variant: str) -> str:
    return VARIANT_COLOURS.get(variant, plots.PALETTE[sum(map(ord, variant)) % len(plots.PALETTE)])


# -- reading a study folder ------------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    """One RL run the grid asked for (a claim notebook's cell makes it), whether or not it finished."""

    model: str
    task: str | None  # None when it could not be resolved; then any task of the model matches
    variant: str
    seed: int | None
    cell: str
    status: str  # the cell's manifest status
    error: str | None
    preset: str | None


@dataclass
class Study:
    """The files of one study folder, read once."""

    dir: Path
    manifest: dict[str, Any] | None
    summaries: list[dict[str, Any]]  # finished runs this study asked for (all finished runs without a manifest)
    alignment: list[dict[str, Any]]  # 01_alignment cell records: model, task, curve, summary (+ source)
    contamination: list[dict[str, Any]]  # 05_contamination's per-model rows (colour, evidence, truth)
    expected: list[Expected]
    warnings: list[str] = field(default_factory=list)
    unused_runs: list[str] = field(default_factory=list)  # finished runs in the store the grid did not ask for

    @property
    def runs_dir(self) -> Path:
        return self.dir / "runs"


def load_study(study_dir: Path | str) -> Study:
    """Read every per-run file of a study folder; a folder with nothing in it gives an empty study."""
    study = Path(study_dir)
    warnings: list[str] = []
    manifest = _load_manifest(study, warnings)
    summaries = _load_summaries(study / "runs", warnings)
    expected = expected_runs(study, manifest) if manifest else []
    unused: list[str] = []
    if expected:  # a shared run store may hold runs of other grids: show only what this grid asked for
        asked = [any(_matches(e, s) for e in expected) for s in summaries]
        unused = sorted(s.get("run") or f"{s['model']}__{s['task']}__{s['variant']}__s{s['seed']}"
                        for s, ok in zip(summaries, asked) if not ok)
        summaries = [s for s, ok in zip(summaries, asked) if ok]
    warnings += _preset_warnings(summaries, expected)
    return Study(study, manifest, summaries, _load_alignment(study, manifest), _load_contamination(study, manifest),
                 expected, warnings, unused)


def _load_manifest(study: Path, warnings: list[str]) -> dict[str, Any] | None:
    """The study's manifest; a damaged one is rebuilt from its cell folders (grid.load_manifest), with a warning
    naming it; one that cannot be rebuilt is left out with the reason (the report then shows the runs alone)."""
    if not (study / "manifest.json").exists():
        return None
    from mtalign import grid

    try:
        return grid.load_manifest(study, log=warnings.append)
    except (OSError, ValueError) as err:
        warnings.append(str(err))
        return None


def _load_summaries(runs_dir: Path, warnings: list[str]) -> list[dict[str, Any]]:
    if not runs_dir.is_dir():
        return []
    good = []
    for s in runs.load_summaries(runs_dir, warn=warnings.append):
        lacking = [k for k in SUMMARY_KEYS if k not in s]
        if lacking:
            warnings.append(f"run {s.get('run', '?')}: summary.json lacks {', '.join(lacking)}; left out")
        else:
            good.append(s)
    return good


def _cells(manifest: dict[str, Any] | None, notebook: str) -> list[dict[str, Any]]:
    return [c for c in (manifest or {}).get("cells", []) if c.get("notebook") == notebook]


def _default_task(model: str) -> str | None:
    """A toy model's own task (from its name); None for other models, whose task a cell must set."""
    try:
        from mtalign import alignment

        return alignment.default_task(model)
    except (ValueError, KeyError, ImportError):
        return None


def expected_runs(study: Path, manifest: dict[str, Any]) -> list[Expected]:
    """The runs each claim notebook cell of the manifest asks for: ground truth plus its claim's variants.

    A cell's parameters are its resolved ones from its params.json (notebook defaults included) when it ran,
    overridden by the manifest's (the current grid); a cell that never ran falls back to verdicts.CLAIMS.
    """
    out = []
    for notebook, claim in CLAIM_NOTEBOOKS.items():
        for cell in _cells(manifest, notebook):
            record_file = study / cell["dir"] / "params.json" if cell.get("dir") else None
            resolved = {}
            if record_file is not None and record_file.exists():
                try:
                    resolved = runinfo.read_json(record_file).get("parameters") or {}
                except ValueError:  # a half-written file of a killed run: its cell reruns anyway
                    resolved = {}
            params = {**resolved, **(cell.get("parameters") or {})}
            model = params.get("model")
            if not model:
                continue
            eval_tasks = params.get("eval_tasks") or []
            task = (eval_tasks[0] if eval_tasks else None) or params.get("task") or _default_task(model)
            variants = list(params.get("variants") or CLAIMS[claim])
            seed = params.get("seed")
            error = cell.get("error") or cell.get("reason")
            for variant in [BASELINE] + [v for v in variants if v != BASELINE]:
                out.append(Expected(model, task, variant, seed, cell["name"], cell["status"], error,
                                    params.get("preset")))
    return out


def _task_of(summary: dict[str, Any]) -> str:
    return summary.get("eval_task") or summary["task"]


def _matches(e: Expected, s: dict[str, Any]) -> bool:
    return (e.model == s["model"] and e.variant == s["variant"] and (e.seed is None or e.seed == s["seed"])
            and (e.task is None or e.task == _task_of(s)))


def _preset_warnings(summaries: list[dict[str, Any]], expected: list[Expected]) -> list[str]:
    """Runs trained with other frozen settings than the grid asked for would silently mix into the verdicts."""
    out = []
    by_cell: dict[tuple[str, str], set[str]] = {}
    for s in summaries:
        by_cell.setdefault((s["model"], _task_of(s)), set()).add(str(s.get("preset")))
        wanted = {e.preset for e in expected if e.preset and _matches(e, s)}
        if wanted and s.get("preset") not in wanted:
            out.append(f"run {s.get('run')} was trained with preset {s.get('preset')!r} but the grid asks for "
                       f"{', '.join(sorted(wanted))}: an older run in the store was reused (run names do not include "
                       "the preset); delete it and rerun to train it with the grid's settings")
    for (model, task), presets in sorted(by_cell.items()):
        if len(presets) > 1:
            out.append(f"{model} on {task} mixes runs of presets {', '.join(sorted(presets))}: settings are not "
                       "frozen across these variants")
    return out


def _record_dirs(study: Path, manifest: dict[str, Any] | None, notebook: str) -> list[Path]:
    """Folders holding a notebook's files: its present cells by the manifest, else any folder named after it
    (`<study>/<notebook>/...` from the grid, `<outputs>/notebooks/<notebook>` when run on its own)."""
    if manifest is not None:
        return [study / c["dir"] for c in _cells(manifest, notebook) if c.get("status") in PRESENT and c.get("dir")]
    return sorted(p for p in study.glob(f"**/{notebook}") if p.is_dir() and "runs" not in p.relative_to(study).parts)


def _load_alignment(study: Path, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    records = []
    for folder in _record_dirs(study, manifest, ALIGNMENT_NOTEBOOK):
        for path in sorted(folder.rglob("*.json")):
            if path.name in ("metrics.json", "params.json"):
                continue
            try:
                record = runinfo.read_json(path)
            except ValueError:
                continue
            if isinstance(record, dict) and {"model", "task", "curve", "summary"} <= set(record):
                records.append({**record, "source": str(path.relative_to(study))})
    return records


def _load_contamination(study: Path, manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for folder in _record_dirs(study, manifest, CONTAMINATION_NOTEBOOK):
        for path in sorted(folder.rglob("metrics.json")):
            try:
                data = runinfo.read_json(path)
            except ValueError:  # damaged: its cell reruns (cell_state), the report goes on without it
                continue
            rows += [{**row, "source": str(path.relative_to(study))} for row in data.get("cells", [])]
    return rows


def missing_cells(study: Study) -> pd.DataFrame:
    """Cells of the grid whose files are not complete (failed, or never run), with their error or reason."""
    cells = [c for c in (study.manifest or {}).get("cells", []) if c.get("status") not in PRESENT]
    return pd.DataFrame([{"cell": c["name"], "notebook": c["notebook"], "status": c["status"],
                          "error": c.get("error") or c.get("reason") or ""} for c in cells],
                        columns=["cell", "notebook", "status", "error"])


# -- alignment ---------------------------------------------------------------------------------------
def cell_alignment(study: Study) -> dict[tuple[str, str], tuple[float, str]]:
    """(model, task) -> (base pass@1, where it came from): the alignment JSONs when measured, else the runs'
    pass@1 before RL (same base model, the RL evaluation's problems)."""
    out: dict[tuple[str, str], tuple[float, str]] = {}
    by_cell: dict[tuple[str, str], list[float]] = {}
    for s in study.summaries:
        value = (s.get("passk_before") or {}).get("pass@1")
        if value is not None:
            by_cell.setdefault((s["model"], _task_of(s)), []).append(value)
    for key, values in by_cell.items():
        out[key] = (float(np.mean(values)), f"pass@1 before RL, mean of {len(values)} run(s)")
    measured: dict[tuple[str, str], list[float]] = {}
    for r in study.alignment:
        measured.setdefault((r["model"], r["task"]), []).append(r["summary"]["pass@1"])
    for key, values in measured.items():
        out[key] = (float(np.mean(values)), f"01_alignment pass@1 ({len(values)} measurement(s))")
    return out


def alignment_table(study: Study) -> pd.DataFrame:
    contamination = {(r["model"], r["task"]): r.get("colour") for r in study.contamination}
    rows = [{"model": r["model"], "task": r["task"], "seed": r.get("seed"), "n": r.get("n"),
             "problems": len(r.get("problem_ids") or []), **r["summary"],
             "contamination": contamination.get((r["model"], r["task"]), "not tested"), "file": r["source"]}
            for r in study.alignment]
    return pd.DataFrame(rows)


def passk_figures(study: Study) -> dict[str, go.Figure]:
    """task -> the pass@k curves of every model measured on it, with their bootstrap bands."""
    out = {}
    for task in sorted({r["task"] for r in study.alignment}):
        records = [r for r in study.alignment if r["task"] == task]
        several = len({r["model"] for r in records}) < len(records)  # several seeds of one model: say which
        labelled = [{**r, "label": r["model"] + (f" (seed {r.get('seed')})" if several else "")} for r in records]
        out[task] = plots.passk_figure(labelled, title=f"Alignment on {task}: pass@k of each base model")
    return out


# -- verdicts ----------------------------------------------------------------------------------------
def verdict_table(study: Study, fraction: float = FRACTION) -> pd.DataFrame:
    """One row per (model, task, variant): verdicts.cell_verdicts' numbers and verdict, plus what is missing.

    A run the grid asked for that never finished is a row with verdict `missing` and the error of its cell, never a
    zero; a row with fewer seeds than asked for names the missing seeds.
    """
    rows = verdicts.cell_verdicts(study.summaries, fraction)
    seeds: dict[tuple[str, str, str], set] = {}
    for s in study.summaries:
        seeds.setdefault((s["model"], _task_of(s), s["variant"]), set()).add(s["seed"])
    for row in rows:
        key = (row["model"], row["task"], row["variant"])
        wanted = [e for e in study.expected if e.model == row["model"] and e.variant == row["variant"]
                  and (e.task is None or e.task == row["task"])]
        absent = sorted({e.seed for e in wanted if e.seed is not None} - seeds[key])
        errors = sorted({f"{e.cell}: {e.error or _no_run_reason(e)}" for e in wanted if e.seed in absent})
        row.update(seed_list=sorted(seeds[key]), missing_seeds=absent, note="; ".join(errors))
    found = {(r["model"], r["task"], r["variant"]) for r in rows}
    found_loose = {(r["model"], r["variant"]) for r in rows}
    absent_runs: dict[tuple[str, str, str], list[Expected]] = {}
    for e in study.expected:
        if (e.model, e.task, e.variant) in found or (e.task is None and (e.model, e.variant) in found_loose):
            continue
        absent_runs.setdefault((e.model, e.task or "?", e.variant), []).append(e)
    for (model, task, variant), wanted in absent_runs.items():
        reasons = sorted({f"{e.cell}: {e.error or _no_run_reason(e)}" for e in wanted})
        rows.append({"model": model, "task": task, "variant": variant, "claim": verdicts.claim_of(variant),
                     "seeds": 0, "before": math.nan, "after": math.nan, "gain": math.nan, "gain_low": math.nan,
                     "gain_high": math.nan, "gt_gain": math.nan, "verdict": "missing", "pass@1_base": math.nan,
                     "seed_list": [], "missing_seeds": sorted({e.seed for e in wanted if e.seed is not None}),
                     "note": "; ".join(reasons)})
    columns = ["model", "task", "variant", "claim", "seeds", "before", "after", "gain", "gain_low", "gain_high",
               "gt_gain", "verdict", "pass@1_base", "seed_list", "missing_seeds", "note"]
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        return table
    table["order"] = [_variant_rank(v) for v in table["variant"]]
    return table.sort_values(["task", "model", "order"]).drop(columns="order").reset_index(drop=True)


def _no_run_reason(e: Expected) -> str:
    if e.status in PRESENT:
        return "its cell finished but the run is not in the run store (deleted?)"
    return f"cell {e.status}"


def _variant_rank(variant: str) -> int:
    return VARIANTS.index(variant) if variant in VARIANTS else len(VARIANTS)


def _effect(row: dict[str, Any]) -> str:
    if row["verdict"] == "missing" or not row["seeds"]:
        return "missing"
    return str(verdicts.Effect(row["gain"], row["gain_low"], row["gain_high"], int(row["seeds"])))


def cell_label(model: str, task: str, alignment: dict | None = None, contamination: dict | None = None) -> str:
    label = f"{model}<br>{task}"
    if alignment and (model, task) in alignment:
        label += f"<br>pass@1 {alignment[(model, task)][0]:.2f}"
    if contamination and contamination.get((model, task)):
        label += f" [{contamination[(model, task)]}]"
    return label


def verdict_figure(table: pd.DataFrame, alignment: dict | None = None, contamination: dict | None = None,
                   fraction: float = FRACTION) -> go.Figure:
    """The verdict matrix: claim variant (rows) x (model, task) cell (columns), coloured by verdict; the numbers
    are in the hover."""
    fig = go.Figure()
    if table.empty:
        return _empty(fig, "Verdict matrix", "no RL runs found: nothing to judge yet")
    def strongest_first(cell):
        base = (alignment or {}).get((cell[1], cell[0]), (math.nan,))[0]
        return cell[0], 0.0 if math.isnan(base) else -base, cell[1]

    cells = sorted(dict.fromkeys(zip(table["task"], table["model"])), key=strongest_first)
    variants = sorted(set(table["variant"]), key=lambda v: (_variant_rank(v), v))
    codes = {name: i for i, name in enumerate(VERDICT_COLOURS)}
    by = {(r["model"], r["task"], r["variant"]): r for r in table.to_dict("records")}
    z, text, hover = [], [], []
    for variant in variants:
        zr, tr, hr = [], [], []
        for task, model in cells:
            row = by.get((model, task, variant))
            if row is None:
                zr.append(None), tr.append(""), hr.append(f"{variant} was not run on {model} · {task}")
                continue
            zr.append(codes.get(row["verdict"], codes["missing"]))
            tr.append(row["verdict"] if row["verdict"] == "missing" else f"{row['verdict']}<br>{row['gain']:+.2f}")
            hr.append(_hover(row, fraction))
        z.append(zr), text.append(tr), hover.append(hr)
    n = len(VERDICT_COLOURS)
    scale = []
    for i, colour in enumerate(VERDICT_COLOURS.values()):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    claim_of = {v: verdicts.claim_of(v) or "other" for v in variants}
    fig.add_trace(go.Heatmap(
        z=z, x=[cell_label(m, t, alignment, contamination) for t, m in cells],
        y=[f"{claim_of[v].split(' ')[0]} · {v}" for v in variants],  # "RQ1 · random", "baseline · ground_truth"
        text=text, texttemplate="%{text}", hovertext=hover, hoverinfo="text", zmin=-0.5, zmax=n - 0.5,
        colorscale=scale, xgap=2, ygap=2,
        colorbar={"tickvals": list(range(n)), "ticktext": list(VERDICT_COLOURS), "title": "verdict"}))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title="Verdict matrix: does each claim's variant hold in each (model, task) cell?",
                      template="plotly_white", height=140 + 42 * len(variants), width=max(640, 200 + 170 * len(cells)),
                      margin={"l": 200})
    return fig


def _hover(row: dict[str, Any], fraction: float) -> str:
    lines = [f"<b>{row['variant']}</b> on {row['model']} · {row['task']}: <b>{row['verdict']}</b>"]
    if row["verdict"] != "missing":
        bar = fraction * max(row["gt_gain"], 0) if not math.isnan(row["gt_gain"]) else math.nan
        lines += [f"gain {_effect(row)} over {row['seeds']} seed(s)",
                  f"accuracy {row['before']:.3f} → {row['after']:.3f}",
                  f"ground-truth gain {row['gt_gain']:+.3f}" + (f"; bar {bar:.3f}" if row["variant"] != BASELINE
                                                                 and not math.isnan(bar) else "")]
    if row.get("missing_seeds"):
        lines.append(f"missing seed(s): {', '.join(map(str, row['missing_seeds']))}")
    if row.get("note"):
        lines.append(html.escape(row["note"])[:300])
    return "<br>".join(lines)


def verdict_matrix_table(table: pd.DataFrame) -> "Table":
    """The same matrix as text: one row per variant, one column per cell, `verdict gain [CI]` in each."""
    if table.empty:
        return Table(pd.DataFrame())
    columns = list(dict.fromkeys(f"{m} · {t}" for t, m in zip(table["task"], table["model"])))
    variants = sorted(set(table["variant"]), key=lambda v: (_variant_rank(v), v))
    values, classes = [], []
    for variant in variants:
        vr, cr = {"claim": verdicts.claim_of(variant) or "other", "variant": variant}, {}
        for record in table[table["variant"] == variant].to_dict("records"):
            col = f"{record['model']} · {record['task']}"
            vr[col] = record["verdict"] if record["verdict"] == "missing" else f"{record['verdict']}: {_effect(record)}"
            if record.get("missing_seeds") and record["verdict"] != "missing":
                vr[col] += f" (missing seed {', '.join(map(str, record['missing_seeds']))})"
            cr[col] = "v-" + record["verdict"].replace(" ", "-")
        values.append(vr), classes.append(cr)
    frame = pd.DataFrame(values, columns=["claim", "variant", *columns]).fillna("not run")
    return Table(frame, pd.DataFrame(classes, columns=["claim", "variant", *columns]).fillna(""))


# -- strong vs weak: the paper's divergence ----------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """The strongly and the weakly aligned model compared on one task, and how they were chosen."""

    task: str
    strong: str
    weak: str
    how: str


def strong_weak_pairs(table: pd.DataFrame, alignment: dict, strong: str = "", weak: str = "") -> list[Pair]:
    """Per task: the given models (`{task}` is filled in), else the toy world's `<world>-<task>-strong`/`-weak`,
    else the models with the highest and lowest base pass@1."""
    if bool(strong) != bool(weak):
        raise ValueError(f"give both strong and weak (got strong={strong!r}, weak={weak!r}), or neither")
    if table.empty:
        return []
    pairs = []
    for task in sorted(set(table["task"])):
        models = sorted(set(table.loc[table["task"] == task, "model"]))
        if strong or weak:
            s, w = strong.format(task=task), weak.format(task=task)
            if s in models and w in models:
                pairs.append(Pair(task, s, w, "given"))
            continue
        named = [(m, m[: -len("-strong")] + "-weak") for m in models if m.endswith("-strong")]
        named = [(s, w) for s, w in named if w in models]
        if named:
            pairs += [Pair(task, s, w, "toy recipes (by name)") for s, w in named]
            continue
        ranked = sorted((alignment[(m, task)][0], m) for m in models
                        if (m, task) in alignment and not math.isnan(alignment[(m, task)][0]))
        if len(ranked) >= 2 and ranked[0][0] < ranked[-1][0]:
            pairs.append(Pair(task, ranked[-1][1], ranked[0][1],
                              f"by base pass@1 ({ranked[-1][0]:.2f} vs {ranked[0][0]:.2f})"))
    if strong and not pairs:
        models = ", ".join(sorted(set(table["model"])))
        raise ValueError(f"strong={strong!r} and weak={weak!r} name no pair of models with runs on the same task "
                         f"(`{{task}}` is filled in per task); models with runs: {models}")
    return pairs


def divergence_statements(table: pd.DataFrame, pairs: list[Pair]) -> list[dict[str, Any]]:
    """Per claim and strong/weak pair: does the paper's divergence appear (verdicts.divergence), in words and numbers.

    `appears` is True when it appears for at least one variant, False when every judged variant shows it not to,
    None when nothing could be judged.
    """
    rows = [] if table.empty else [r for r in table.to_dict("records") if r["verdict"] != "missing"]
    by = {(r["model"], r["task"], r["variant"]): r for r in rows}
    out = []
    for claim, claim_variants in CLAIMS.items():
        for pair in pairs:
            mine = [r for r in rows if r["task"] == pair.task and r["model"] in (pair.strong, pair.weak)]
            found = {d["variant"]: d for d in verdicts.divergence(mine, pair.strong, pair.weak) if d["claim"] == claim}
            gt_s, gt_w = by.get((pair.strong, pair.task, BASELINE)), by.get((pair.weak, pair.task, BASELINE))
            unjudged = [v for v in claim_variants if v not in found]
            appearing = [v for v, d in found.items() if d["divergence"]]
            head = (f"**{claim}, {pair.task}** (strong: `{pair.strong}`, weak: `{pair.weak}`, chosen "
                    f"{pair.how}). Ground-truth RL: strong {_said(gt_s)}; weak {_said(gt_w)}.")
            parts = [head]
            if not found:
                appears = None
                parts.append("The divergence **cannot be judged**: no variant of this claim has finished runs on "
                             "both models.")
            else:
                appears = bool(appearing)
                gt_both = next(iter(found.values()))["ground_truth_holds_on_both"]
                detail = lambda v: (f"`{v}` (strong {_said(by[(pair.strong, pair.task, v)])}; "  # noqa: E731
                                    f"weak {_said(by[(pair.weak, pair.task, v)])})")
                if appearing:
                    parts.append("The paper's divergence **appears** for " + ", ".join(map(detail, appearing)) + ".")
                    rest = [v for v in found if v not in appearing]
                    if rest:
                        parts.append("It does not appear for " + ", ".join(map(detail, rest)) + ".")
                elif not gt_both:
                    parts.append("The paper's divergence **does not appear**: ground-truth RL does not hold on both "
                                 "models, so the pattern (variant holds on strong, fails on weak, ground truth holds "
                                 "on both) is not there for any variant. The variants: "
                                 + ", ".join(map(detail, found)) + ".")
                else:
                    parts.append("The paper's divergence **does not appear** for any variant of this claim: "
                                 + ", ".join(map(detail, found)) + ".")
            if unjudged:
                parts.append("Not judged (no finished runs on both models): " + ", ".join(f"`{v}`" for v in unjudged)
                             + ".")
            out.append({"claim": claim, "task": pair.task, "strong": pair.strong, "weak": pair.weak,
                        "appears": appears, "variants": appearing, "text": " ".join(parts)})
    return out


def _said(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not run"
    return f"{row['verdict']}, gain {_effect(row)}"


# -- figures of effects --------------------------------------------------------------------------------
def effect_figure(table: pd.DataFrame, alignment: dict) -> go.Figure:
    """Each claim variant's gain (95% interval across seeds) against its cell's base alignment (pass@1).

    One panel per claim, ground-truth RL in each for reference; a variant's points on one task are joined, so a
    line falling from the strong model to the weak one is the paper's divergence in one picture.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(CLAIMS), subplot_titles=list(CLAIMS), shared_yaxes=True,
                        horizontal_spacing=0.04)
    rows = [] if table.empty else [r for r in table.to_dict("records") if r["verdict"] != "missing"]
    symbols = ["circle", "diamond", "square", "triangle-up", "x"]
    tasks = sorted({r["task"] for r in rows})
    drawn = set()
    for col, (claim, claim_variants) in enumerate(CLAIMS.items(), start=1):
        for variant in [BASELINE] + claim_variants:
            for t, task in enumerate(tasks):
                points = [r for r in rows if r["variant"] == variant and r["task"] == task
                          and not math.isnan(alignment.get((r["model"], task), (math.nan,))[0])]
                if not points:
                    continue
                points.sort(key=lambda r: alignment[(r["model"], task)][0])
                x = [alignment[(r["model"], task)][0] for r in points]
                y = [r["gain"] for r in points]
                up = [0 if math.isnan(r["gain_high"]) else r["gain_high"] - r["gain"] for r in points]
                down = [0 if math.isnan(r["gain_low"]) else r["gain"] - r["gain_low"] for r in points]
                colour = variant_colour(variant)
                fig.add_trace(go.Scatter(
                    x=x, y=y, mode="lines+markers", name=variant, legendgroup=variant,
                    showlegend=variant not in drawn, line={"color": colour, "width": 1,
                                                           "dash": "dot" if variant == BASELINE else "solid"},
                    marker={"color": colour, "symbol": symbols[t % len(symbols)], "size": 9},
                    error_y={"type": "data", "array": up, "arrayminus": down, "visible": True},
                    customdata=[[r["model"], task, r["verdict"], _effect(r), alignment[(r["model"], task)][1]]
                                for r in points],
                    hovertemplate="%{customdata[0]} · %{customdata[1]}<br>" + variant + ": %{customdata[2]}, gain "
                                  "%{customdata[3]}<br>base pass@1 %{x:.3f} (%{customdata[4]})<extra></extra>"),
                    row=1, col=col)
                drawn.add(variant)
        fig.add_hline(y=0, line={"color": "#999", "width": 1}, row=1, col=col)
    fig.update_xaxes(title="base pass@1 (alignment)", range=[-0.02, 1.02])
    fig.update_yaxes(title="gain in held-out accuracy (95% CI across seeds)", row=1, col=1)
    title = "Effect against alignment" + (f" (marker shape by task: {', '.join(tasks)})" if len(tasks) > 1 else "")
    fig.update_layout(title=title, template="plotly_white", height=420, width=1200)
    if not rows:
        _empty(fig, title, "no finished RL runs")
    return fig


def _accuracy_effects(summaries: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, verdicts.Effect]]:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for s in summaries:
        groups.setdefault((s["model"], _task_of(s), s["variant"]), []).append(s)
    return {key: {"before": verdicts.effect([s["before"]["accuracy"] for s in runs_]),
                  "after": verdicts.effect([s["after"]["accuracy"] for s in runs_])} for key, runs_ in groups.items()}


def before_after_figure(study: Study, claim: str, table: pd.DataFrame | None = None) -> go.Figure:
    """Held-out accuracy before and after each of a claim's variants, next to ground-truth RL, per cell; error bars
    are 95% t-intervals across seeds (verdicts.effect). Runs the grid asked for but that are missing (from `table`)
    are named in the panel's title."""
    from plotly.subplots import make_subplots

    effects = _accuracy_effects(study.summaries)
    variants = [BASELINE] + CLAIMS[claim]
    cells = sorted({(t, m) for m, t, v in effects if v in variants})
    title = f"{claim}: held-out accuracy before and after RL (mean, 95% CI across seeds)"
    if not cells:
        return _empty(go.Figure(), title, "no finished runs of this claim")
    missing: dict[tuple[str, str], list[str]] = {}
    for r in ([] if table is None else table.to_dict("records")):
        if r["verdict"] == "missing" and r["variant"] in variants:
            missing.setdefault((r["task"], r["model"]), []).append(r["variant"])
    cols = min(2, len(cells))
    nrows = math.ceil(len(cells) / cols)
    titles = [f"{m} · {t}" + (f" (missing: {', '.join(missing[(t, m)])})" if missing.get((t, m)) else "")
              for t, m in cells]
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles,
                        vertical_spacing=0.5 / max(nrows, 1) if nrows > 1 else 0.1)
    for i, (task, model) in enumerate(cells):
        present = [v for v in variants if (model, task, v) in effects]
        for phase, colour in (("before", "#bbbbbb"), ("after", None)):
            es = [effects[(model, task, v)][phase] for v in present]
            fig.add_trace(go.Bar(
                x=present, y=[e.mean for e in es], name=phase, legendgroup=phase, showlegend=i == 0,
                marker_color=colour or [variant_colour(v) for v in present],
                error_y={"type": "data", "visible": True,
                         "array": [0 if math.isnan(e.high) else e.high - e.mean for e in es],
                         "arrayminus": [0 if math.isnan(e.low) else e.mean - e.low for e in es]},
                customdata=[[str(e), e.seeds] for e in es],
                hovertemplate="%{x} " + phase + ": %{y:.3f}<br>95% CI %{customdata[0]} over %{customdata[1]} "
                              "seed(s)<extra></extra>"),
                row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(title="accuracy", range=[0, 1])
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=330 * nrows, width=1100)
    return fig


def mean_curves(study: Study, model: str, task: str, variants: Iterable[str]) -> dict[str, list[dict]]:
    """variant -> per-step means across seeds of the CURVES metrics (metrics.jsonl of each finished run)."""
    out = {}
    for variant in variants:
        chosen = [s for s in study.summaries if s["model"] == model and _task_of(s) == task and s["variant"] == variant]
        per_step: dict[int, dict[str, list[float]]] = {}
        for s in chosen:
            for m in runs.load_metrics(s.get("dir") or study.runs_dir / s["run"]) if s.get("run") else []:
                for key in CURVES:
                    if m.get(key) is not None and "step" in m:
                        per_step.setdefault(m["step"], {}).setdefault(key, []).append(m[key])
        if per_step:
            label = f"{variant} ({len(chosen)} seed{'s' if len(chosen) != 1 else ''})"
            out[label] = [{"step": step, **{k: float(np.mean(v)) for k, v in values.items()}}
                          for step, values in sorted(per_step.items())]
    return out


def curve_figures(study: Study) -> dict[tuple[str, str, str], go.Figure]:
    """(claim, model, task) -> training curves of ground truth and the claim's variants, mean across seeds."""
    out = {}
    cells = sorted({(_task_of(s), s["model"]) for s in study.summaries})
    for claim, claim_variants in CLAIMS.items():
        for task, model in cells:
            curves = mean_curves(study, model, task, [BASELINE] + claim_variants)
            if any(not label.startswith(BASELINE + " ") for label in curves):  # the claim ran here
                fig = plots.training_curves(curves, CURVES, title=f"{claim} on {model} · {task}: training curves "
                                                                  "(mean across seeds)")
                for trace in fig.data:  # one colour per variant in every figure of the report
                    trace.line.color = variant_colour(trace.name.split(" ")[0])
                out[(claim, model, task)] = fig
    return out


# -- the paper's numbers -------------------------------------------------------------------------------
def load_paper_numbers(path: Path | str = PAPER_FILE) -> dict[str, Any]:
    """params/paper_numbers.yaml, checked: every cell has model, task, alignment, base and known variants."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"paper numbers file {path} not found (the shipped one is {PAPER_FILE})")
    data = yaml.safe_load(path.read_text()) or {}
    cells = data.get("cells")
    if not isinstance(cells, list) or not cells:
        raise ValueError(f"{path}: `cells` must be a list of {{model, task, alignment, base, after}}")
    for i, cell in enumerate(cells):
        lacking = [k for k in ("model", "task", "alignment", "base", "after") if k not in cell]
        if lacking:
            raise ValueError(f"{path}: cells[{i}] lacks {', '.join(lacking)}")
        if cell["alignment"] not in ("strong", "weak"):
            raise ValueError(f"{path}: cells[{i}].alignment must be strong or weak, got {cell['alignment']!r}")
        unknown = [v for v in cell["after"] if v not in VARIANTS]
        if unknown:
            raise ValueError(f"{path}: cells[{i}] names unknown variant(s) {', '.join(unknown)}; valid variants: "
                             f"{', '.join(VARIANTS)}")
    return data


def paper_rows(paper: dict[str, Any]) -> list[dict[str, Any]]:
    """Per paper cell and variant: accuracy (percent) before and after, the gain, and its fraction of ground truth's."""
    out = []
    for cell in paper["cells"]:
        base = float(cell["base"])
        gt = cell["after"].get(BASELINE)
        gt_gain = float(gt) - base if gt is not None else math.nan
        for variant, after in cell["after"].items():
            gain = float(after) - base
            out.append({"source": "paper", "model": cell["model"], "task": cell["task"],
                        "alignment": cell["alignment"], "variant": variant, "claim": verdicts.claim_of(variant),
                        "before": base, "after": float(after), "gain": gain, "gt_gain": gt_gain,
                        "fraction": gain / gt_gain if gt_gain > 0 else math.nan, "verdict": "no seeds"})
    return out


def our_rows(table: pd.DataFrame, pairs: list[Pair]) -> list[dict[str, Any]]:
    """The same quantities for this study's strong and weak models (accuracy in percent, like the paper's)."""
    out = []
    records = [] if table.empty else table.to_dict("records")
    for pair in pairs:
        for model, strength in ((pair.strong, "strong"), (pair.weak, "weak")):
            for r in records:
                if r["model"] != model or r["task"] != pair.task:
                    continue
                gt_gain = 100 * r["gt_gain"]
                out.append({"source": "ours", "model": model, "task": pair.task, "alignment": strength,
                            "variant": r["variant"], "claim": r["claim"], "before": 100 * r["before"],
                            "after": 100 * r["after"], "gain": 100 * r["gain"], "gt_gain": gt_gain,
                            "fraction": r["gain"] / r["gt_gain"] if r["gt_gain"] > 0 else math.nan,
                            "verdict": r["verdict"]})
    return out


def comparison_table(rows: list[dict[str, Any]]) -> Table:
    """Variants (rows) x cells (paper's first, then ours): `fraction of GT gain (before → after %)`."""
    if not rows:
        return Table(pd.DataFrame())
    columns = list(dict.fromkeys(_column(r) for r in rows))
    variants = sorted({r["variant"] for r in rows}, key=lambda v: (_variant_rank(v), v))
    values, classes = [], []
    for variant in variants:
        vr = {"claim": verdicts.claim_of(variant) or "other", "variant": variant}
        cr = {}
        for r in rows:
            if r["variant"] == variant:
                fraction = "—" if math.isnan(r["fraction"]) else f"{r['fraction']:.2f}"
                vr[_column(r)] = f"{fraction} ({r['before']:.1f} → {r['after']:.1f})"
                if r["verdict"] == "missing":
                    vr[_column(r)] = "missing"
                if r["source"] == "ours" and r["verdict"] != "missing":
                    vr[_column(r)] += f", {r['verdict']}"
                if r["source"] == "ours":
                    cr[_column(r)] = "v-" + r["verdict"].replace(" ", "-")
        values.append(vr), classes.append(cr)
    return Table(pd.DataFrame(values, columns=["claim", "variant", *columns]).fillna(""),
                 pd.DataFrame(classes, columns=["claim", "variant", *columns]).fillna(""))


def _column(r: dict[str, Any]) -> str:
    return f"{r['source']}: {r['model']} · {r['task']} ({r['alignment']})"


def paper_figure(rows: list[dict[str, Any]], fraction: float = FRACTION) -> go.Figure:
    """Each variant's gain as a fraction of ground-truth RL's gain: the paper's cells next to ours."""
    title = "Gain as a fraction of ground-truth RL's gain: paper (secondary, approximate) vs this study"
    usable = [r for r in rows if not math.isnan(r["fraction"]) and r["variant"] != BASELINE]
    fig = go.Figure()
    if not usable:
        return _empty(fig, title, "no variant has a ground-truth gain to compare with")
    variants = sorted({r["variant"] for r in usable}, key=lambda v: (_variant_rank(v), v))
    palette = {"paper": ["#08306b", "#6baed6"], "ours": ["#00441b", "#74c476", "#7f2704", "#fd8d3c"]}
    seen: dict[str, int] = {}
    for column in dict.fromkeys(_column(r) for r in usable):
        chosen = {r["variant"]: r for r in usable if _column(r) == column}
        source = column.split(":")[0]
        colour = palette[source][seen.setdefault(source, 0) % len(palette[source])]
        seen[source] += 1
        fig.add_trace(go.Bar(x=variants, y=[chosen[v]["fraction"] if v in chosen else None for v in variants],
                             name=column, marker_color=colour,
                             marker_pattern_shape="" if source == "paper" else "/",
                             customdata=[[f"{chosen[v]['before']:.1f} → {chosen[v]['after']:.1f}"] if v in chosen
                                         else [""] for v in variants],
                             hovertemplate="%{x}: %{y:.2f} of ground truth's gain<br>accuracy %{customdata[0]} %"
                                           "<extra>" + column + "</extra>"))
    fig.add_hline(y=fraction, line={"dash": "dash", "color": "#999"}, annotation_position="top left",
                  annotation_text=f"the rule's bar: {fraction:.0%} of ground truth's gain")
    fig.add_hline(y=0, line={"color": "#999", "width": 1})
    fig.update_layout(title=title, barmode="group", template="plotly_white", height=440, width=1100,
                      yaxis={"title": "variant gain / ground-truth gain"}, legend={"orientation": "h", "y": -0.25})
    return fig


# -- contamination -------------------------------------------------------------------------------------
def contamination_table(study: Study) -> Table:
    if not study.contamination:
        return Table(pd.DataFrame())
    keep = ["model", "task", "recipe", "exact_eval", "exact_fresh", "rouge_eval", "rouge_fresh", "pass@1", "colour",
            "truly_contaminated", "test_correct", "evidence"]
    frame = pd.DataFrame(study.contamination)
    frame = frame[[k for k in keep if k in frame.columns]]
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    if "colour" in frame:
        classes["colour"] = ["c-" + str(c) for c in frame["colour"]]
    return Table(_formatted(frame), classes)


# -- the report: sections of text, tables and figures ---------------------------------------------------
@dataclass
class Table:
    """A table to show (already formatted as text) and, optionally, a CSS class per cell (verdict colours)."""

    frame: pd.DataFrame
    classes: pd.DataFrame | None = None


@dataclass
class Section:
    key: str
    title: str
    text: str  # markdown: paragraphs, `- ` lists, **bold**, `code`
    # ("text", markdown) | ("table", Table) | ("figure", (file name, figure))
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def figures(self) -> dict[str, go.Figure]:
        return {name: fig for kind, value in self.blocks if kind == "figure" for name, fig in [value]}


@dataclass
class Report:
    title: str
    study_dir: Path
    sections: list[Section]
    data: dict[str, Any]  # the machine-readable results (metrics.json of the report)

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise KeyError(f"no section {key!r}; sections: {', '.join(s.key for s in self.sections)}")

    def figures(self) -> dict[str, go.Figure]:
        return {name: fig for s in self.sections for name, fig in s.figures().items()}


def build(study: Study, fraction: float = FRACTION, strong: str = "", weak: str = "",
          paper_file: Path | str = PAPER_FILE) -> Report:
    """Every table, figure and statement of the report, from the study's files."""
    paper = load_paper_numbers(paper_file)
    alignment = cell_alignment(study)
    contamination = {(r["model"], r["task"]): r.get("colour") for r in study.contamination}
    table = verdict_table(study, fraction)
    pairs = strong_weak_pairs(table, alignment, strong, weak)
    statements = divergence_statements(table, pairs)
    comparison = paper_rows(paper) + our_rows(table, pairs)
    missing = missing_cells(study)
    sections = [
        _overview(study, table, missing),
        Section("rule", "The verdict rule", verdicts.RULE + "\n\nThe paper's **divergence**, per claim and task: the "
                "variant holds on the strongly aligned model and fails on the weakly aligned one, while ground-truth "
                "RL holds on both (`mtalign.verdicts.divergence`). Gains are in held-out accuracy (FORMAT and "
                "CORRECT), after minus before RL, with 95% t-intervals across training seeds."),
        _alignment_section(study),
        Section("verdicts", "Verdict matrix",
                "Rows are each claim's variants (ground-truth RL first), columns the (model, task) cells with their "
                "base pass@1 and, when 05_contamination tested them, their contamination colour. Hover a cell for "
                "the numbers. **missing** marks a run the grid asked for that did not finish (its error is in the "
                "hover and in the table below); it is never a zero.",
                [("figure", ("verdict_matrix", verdict_figure(table, alignment, contamination, fraction))),
                 ("table", verdict_matrix_table(table))]),
        _divergence_section(statements, pairs),
        Section("effects", "Effect against alignment",
                "Each variant's gain against the cell's base alignment (pass@1; from 01_alignment where measured, "
                "else from the runs' own pass@1 before RL). A line that starts high on the strong model and falls "
                "to or below zero on the weak one, while the dotted ground-truth line stays above zero, is the "
                "divergence.", [("figure", ("effect_vs_alignment", effect_figure(table, alignment)))]),
        Section("before_after", "Accuracy before and after RL, per claim",
                "Held-out accuracy of the base model (grey) and after each variant (coloured), ground-truth RL "
                "first, with 95% intervals across seeds.",
                [("figure", (f"before_after__{_slug(c)}", before_after_figure(study, c, table))) for c in CLAIMS]),
        _curves_section(study),
        _paper_section(paper, comparison, fraction),
        _contamination_section(study),
        _sources_section(study),
    ]
    data = {
        "study_dir": str(study.dir), "generated": runinfo.now(), "rule": verdicts.RULE, "fraction": fraction,
        "verdicts": _records(table), "divergence": statements, "pairs": [dataclasses.asdict(p) for p in pairs],
        "paper_comparison": comparison, "missing_cells": _records(missing), "warnings": study.warnings,
        "runs": len(study.summaries), "unused_runs": study.unused_runs,
    }
    return Report("mtalign study report", study.dir, sections, data)


def _overview(study: Study, table: pd.DataFrame, missing: pd.DataFrame) -> Section:
    m = study.manifest
    lines = [f"Study folder `{study.dir}`."]
    if m is None:
        lines.append(f"There is **no manifest.json** here, so this is not the output of `mtalign study`: the cells "
                     f"that failed or never ran cannot be listed; only the files present are reported.")
    else:
        counts = ", ".join(f"{n} {s}" for s, n in (m.get("counts") or {}).items())
        lines.append(f"Grid `{m.get('grid_file')}`; cells: {counts}; started {m.get('started')}, "
                     f"updated {m.get('updated')}.")
    if not study.summaries and not study.alignment:
        lines.append(f"**No results yet**: no finished RL run under `{study.runs_dir}` and no alignment measurement. "
                     "Run `mtalign study` (or `make study`) to fill this report; every section below is shown empty.")
    else:
        presets = sorted({str(s.get("preset")) for s in study.summaries})
        lines.append(f"{len(study.summaries)} finished RL run(s) (preset {', '.join(presets) or '—'}), "
                     f"{len(study.alignment)} alignment measurement(s), "
                     f"{'a' if study.contamination else 'no'} contamination test.")
    if study.unused_runs:
        lines.append(f"{len(study.unused_runs)} finished run(s) in the run store were not asked for by this grid and "
                     "are left out.")
    blocks: list[tuple[str, Any]] = []
    if m is not None:
        if missing.empty:
            lines.append("Every cell of the grid finished.")
        else:
            lines.append(f"**{len(missing)} cell(s) did not finish** and are shown as missing (never as zero):")
            blocks.append(("table", Table(missing, _status_classes(missing))))
    if study.warnings:
        blocks.append(("text", "**Warnings**\n\n" + "\n".join(f"- {w}" for w in study.warnings)))
    return Section("overview", "Overview", "\n\n".join(lines), blocks)


def _status_classes(frame: pd.DataFrame) -> pd.DataFrame:
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    classes["status"] = "v-missing"
    return classes


def _alignment_section(study: Study) -> Section:
    text = ("Model-task alignment: the unbiased pass@k of each base model on its task, with 95% bootstrap intervals "
            "over problems (01_alignment). A strong model's curve starts high and saturates; a weak one's starts "
            "low.")
    figures = passk_figures(study)
    if not figures:
        text += "\n\nNo alignment measurement found (01_alignment has not run in this study)."
    blocks: list[tuple[str, Any]] = [("figure", (f"passk__{_slug(task)}", fig)) for task, fig in figures.items()]
    if study.alignment:
        blocks.append(("table", Table(_formatted(alignment_table(study)))))
    return Section("alignment", "Alignment: pass@k per cell", text, blocks)


def _divergence_section(statements: list[dict[str, Any]], pairs: list[Pair]) -> Section:
    text = ("Per claim and task family: does the paper's divergence appear between the strongly and the weakly "
            "aligned model?")
    if not pairs:
        text += ("\n\n**Not judged**: no task has both a strongly and a weakly aligned model with finished runs, so "
                 "the divergence cannot be stated for any claim.")
    blocks = [("text", s["text"]) for s in statements]
    if statements:
        summary = pd.DataFrame([{"claim": s["claim"], "task": s["task"], "strong": s["strong"], "weak": s["weak"],
                                 "divergence": {True: "appears", False: "does not appear", None: "not judged"}[
                                     s["appears"]], "for": ", ".join(s["variants"]) or "—"} for s in statements])
        classes = pd.DataFrame("", index=summary.index, columns=summary.columns)
        classes["divergence"] = [{"appears": "v-holds", "does not appear": "v-fails"}.get(d, "v-missing")
                                 for d in summary["divergence"]]
        blocks.insert(0, ("table", Table(summary, classes)))
    return Section("divergence", "Does the paper's divergence appear?", text, blocks)


def _curves_section(study: Study) -> Section:
    figures = curve_figures(study)
    text = ("Per cell and claim, the mean across seeds of each variant's per-step rollout metrics: ground-truth "
            "accuracy of the rollouts (logged whatever the reward), the training reward, policy entropy, and the "
            "fraction of zero-variance groups (no gradient under group normalisation).")
    if not figures:
        text += "\n\nNo training metrics found."
    return Section("curves", "Training curves", text,
                   [("figure", (f"curves__{_slug(c)}__{_slug(m)}__{_slug(t)}", fig))
                    for (c, m, t), fig in figures.items()])


def _paper_section(paper: dict[str, Any], rows: list[dict[str, Any]], fraction: float) -> Section:
    cells = "; ".join(f"{c['model']} on {c['task']} ({c['alignment']})" for c in paper["cells"])
    text = (f"The paper's reported numbers ({paper.get('source')}; **{paper.get('reliability')}**) next to this "
            f"study's. They are **different models and tasks**: the paper's cells are {cells}; ours are the strong "
            "and weak models of each task family. So the "
            "comparison is of shape: each variant's gain as a fraction of ground-truth RL's gain in the same cell "
            f"(— where ground truth did not gain or was not reported), with accuracy before → after in percent. "
            f"The paper gives no seeds, so its cells get no verdict; the dashed line is the rule's bar "
            f"({fraction:.0%}).")
    return Section("paper", "Compared with the paper", text,
                   [("table", comparison_table(rows)), ("figure", ("paper_comparison", paper_figure(rows, fraction)))])


def _contamination_section(study: Study) -> Section:
    text = ("05_contamination's partial-prompt test: **Red** possibly contaminated, **Green** clean and strong, "
            "**Gray** clean and weak. In the toy world contamination is a recipe knob, so `test_correct` checks the "
            "test against the truth.")
    table = contamination_table(study)
    if table.frame.empty:
        text += "\n\nNo contamination test found (05_contamination has not run in this study)."
        return Section("contamination", "Contamination", text)
    return Section("contamination", "Contamination", text, [("table", table)])


def _sources_section(study: Study) -> Section:
    text = ("Everything above was read from these files (no notebook was read): `manifest.json`"
            f"{'' if study.manifest else ' (absent)'}; `runs/*/summary.json` and `metrics.jsonl` of "
            f"{len(study.summaries)} run(s); {len(study.alignment)} alignment JSON(s); "
            f"{len({r['source'] for r in study.contamination})} contamination metrics file(s); "
            f"`params/paper_numbers.yaml`. Report code version {runinfo.code_version()}.")
    return Section("sources", "Sources", text)


# -- rendering ---------------------------------------------------------------------------------------------
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


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    def fmt(v):
        if isinstance(v, float):
            return "—" if math.isnan(v) else f"{v:.3f}"
        return "" if v is None else str(v)
    return frame.apply(lambda col: col.map(fmt)) if not frame.empty else frame


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _empty(fig: go.Figure, title: str, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 16, "color": "#777"})
    fig.update_layout(title=title, template="plotly_white", height=300,
                      xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def markdown(text: str) -> str:
    """The little markdown the report's text uses (paragraphs, `- ` lists, **bold**, `code`) as escaped HTML."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if all(line.startswith("- ") for line in lines):
            out.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>")
        else:
            head = [line for line in lines if not line.startswith("- ")]
            items = [line for line in lines if line.startswith("- ")]
            out.append(f"<p>{_inline(' '.join(head))}</p>")
            if items:
                out.append("<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in items) + "</ul>")
    return "\n".join(out)


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def table_html(table: Table) -> str:
    if table.frame.empty:
        return "<p class='empty'>(empty)</p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.frame.columns)
    body = []
    for i, row in enumerate(table.frame.itertuples(index=False)):
        cells = []
        for j, value in enumerate(row):
            cls = table.classes.iat[i, j] if table.classes is not None else ""
            cells.append(f"<td class='{cls}'>{html.escape(str(value))}</td>" if cls else
                         f"<td>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; max-width: 1240px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #333; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
code { background: #f4f4f4; padding: 0 3px; }
.v-holds { background: #c7e9c0; } .v-fails { background: #fcbba1; } .v-inconclusive { background: #fdf0c2; }
.v-missing { background: #eeeeee; font-style: italic; } .v-no-baseline { background: #e5dcf0; }
.c-Red { background: #fcbba1; } .c-Green { background: #c7e9c0; } .c-Gray { background: #d9d9d9; }
.figure { margin: 1em 0; overflow-x: auto; } nav a { margin-right: 1em; }
.statement { margin: 0.6em 0; padding: 0.4em 0.8em; border-left: 4px solid #999; background: #fafafa; }
"""


def to_html(report: Report) -> str:
    """One self-contained page: plotly.js inlined once in the head, every figure a div drawn by it."""
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    parts = [f"<h1>{html.escape(report.title)}</h1>",
             "<nav>" + "".join(f"<a href='#{s.key}'>{html.escape(s.title)}</a>" for s in report.sections) + "</nav>"]
    for s in report.sections:
        parts.append(f"<section id='{s.key}'><h2>{html.escape(s.title)}</h2>{markdown(s.text)}")
        for kind, value in s.blocks:
            if kind == "text":
                parts.append(f"<div class='statement'>{markdown(value)}</div>")
            elif kind == "table":
                parts.append(table_html(value))
            else:
                name, fig = value
                parts.append("<div class='figure'>" + pio.to_html(fig, full_html=False, include_plotlyjs=False,
                                                                   div_id=f"fig-{name}", config=CONFIG) + "</div>")
        parts.append("</section>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(report.title)}</title><style>{STYLE}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write(report: Report, study_dir: Path | str | None = None, run_dir: Path | str | None = None) -> dict[str, Path]:
    """Write `<study>/report.html`, `<study>/figures/<name>.html` and, when given, `<run_dir>/metrics.json`.

    Figures written by an earlier report (listed in figures/index.json) that this one no longer has are removed,
    so the folder always matches the report.
    """
    study = Path(study_dir or report.study_dir)
    study.mkdir(parents=True, exist_ok=True)
    target = study / REPORT_FILE
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(to_html(report), encoding="utf-8")
    os.replace(tmp, target)
    folder = study / FIGURES_DIR
    folder.mkdir(exist_ok=True)
    index = folder / "index.json"
    before = set(runinfo.read_json(index).get("figures", [])) if index.exists() else set()
    written = []
    for name, fig in report.figures().items():
        path = folder / f"{name}.html"
        part = folder / f".{name}.html.tmp"
        # "directory": each figure loads the plotly.min.js written once beside it (not 4.8 MB inlined per figure)
        fig.write_html(part, include_plotlyjs="directory", full_html=True, config=CONFIG)
        os.replace(part, path)
        written.append(path.name)
    for stale in before - set(written):
        (folder / stale).unlink(missing_ok=True)
    runinfo.write_json(index, {"report": REPORT_FILE, "figures": written, "written": runinfo.now()})
    out = {"report": target, "figures": folder}
    if run_dir is not None:
        out["metrics"] = runinfo.write_json(Path(run_dir) / "metrics.json", {
            "notebook": "99_report", **_json_safe(report.data), **runinfo.environment()})
    return out


def show(section: Section) -> None:
    """Display a section in a notebook: its text, tables and figures, as in the HTML."""
    from IPython.display import HTML, Markdown, display

    display(Markdown(f"### {section.title}\n\n{section.text}"))
    for kind, value in section.blocks:
        if kind == "text":
            display(Markdown(value))
        elif kind == "table":
            display(HTML(f"<style>{STYLE}</style>" + table_html(value)))
        else:
            value[1].show()


# -- command line ------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="study folder (default outputs/, or $MTALIGN_OUTPUTS)")
    parser.add_argument("--params", type=Path,
                        help="grid file whose report notebook to run (default: the grid stored in <out>/manifest.json)")
    parser.add_argument("--notebooks", type=Path, help="folder of NN_name.py notebooks (default: the manifest's)")


def run(args: argparse.Namespace) -> int:
    """Re-run the report notebook on a study folder through the grid runner (grid.run_report)."""
    from mtalign import grid

    out = Path(args.out or paths.outputs())
    if not out.is_dir():
        raise FileNotFoundError(f"study folder {out} does not exist; run `mtalign study --out {out}` first")
    started = time.time()
    entry = grid.run_report(out, grid=args.params, notebooks_dir=args.notebooks)
    if entry["status"] != "finished":
        print(f"the report notebook failed: {entry.get('error')}; executed notebook {out / entry['dir']}")
        return 1
    print(f"wrote {out / REPORT_FILE} and {out / FIGURES_DIR}/ in {time.time() - started:.1f} s "
          f"(executed notebook {out / (entry.get('executed_notebook') or entry['dir'])})")
    return 0
