"""The data behind the study's report (issues 4, 9): verdicts, findings, per-seed gains, per-step curves, pass@k.

    mtalign report [--out DIR] [--params GRID.yaml]   # re-run notebooks/99_report.py on a study folder

Everything here is built from the files a study leaves behind, never from a notebook: `<study>/manifest.json` (the
grid's cells, their status and errors), each run's `summary.json`, `metrics.jsonl`, `eval.jsonl`, `run.json` and
`initial_passk.json`/`final_passk.json`, the alignment cell JSONs that 01_alignment writes, 05_contamination's
`metrics.json`, and params/paper_numbers.yaml. `build` turns them into a `Report` of data frames, plotly figures
(drawn by mtalign.plots) and a few sentences generated from the numbers (`findings`, `headline`); the prose is the
99_report notebook's markdown. The report page `<study>/report.html` is that notebook executed and exported without
its code (`export_html`, plotly.js inlined once, opens offline); `write` adds one HTML file per figure under
`<study>/figures/` (sharing a single `plotly.min.js`) and the report's metrics.json.
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
from mtalign.verdicts import BASELINE, CLAIMS, FRACTION

PAPER_FILE = paths.PARAMS / "paper_numbers.yaml"
REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
# Which claim each claim notebook tests; its variants are verdicts.CLAIMS[claim] unless the cell set `variants`.
CLAIM_NOTEBOOKS = {"02_reward_signal": "RQ1 reward signal", "03_one_shot": "RQ2 one-shot",
                   "04_sample_polarity": "RQ3 sample polarity"}
ALIGNMENT_NOTEBOOK, CONTAMINATION_NOTEBOOK = "01_alignment", "05_contamination"
PRESENT = ("finished", "skipped")  # manifest statuses whose files are complete
VARIANTS = [BASELINE] + [v for variants in [*CLAIMS.values(), *verdicts.PROBES.values()] for v in variants]  # display order
SUMMARY_KEYS = ("model", "task", "variant", "seed", "gain", "before", "after")
# Per-step values drawn from each run's files: metrics.jsonl (rollouts, every step) and eval.jsonl (held out).
STEP_METRICS = ("gt_accuracy", "reward_mean", "entropy", "zero_variance_frac", "clip_fraction", "pseudo_label_accuracy",
                "clip_low_fraction", "clip_high_fraction")
CLIP_INACTIVE = 0.001  # issue 11: a clip that binds on under 0.1% of tokens is said to be inactive at this scale
variant_colour = plots.variant_colour


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
    """The study's manifest; a damaged one is rebuilt from its cell folders (manifests.load_manifest), with a warning
    naming it; one that cannot be rebuilt is left out with the reason (the report then shows the runs alone)."""
    if not (study / "manifest.json").exists():
        return None
    from mtalign import manifests

    try:
        return manifests.load_manifest(study, log=warnings.append)
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
        elif s.get("role", "study") == "study":  # one_shot's ranking runs rank examples; they are never judged
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
            variants = list(params.get("variants") or CLAIMS[claim]) + list(params.get("probes") or [])
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
    for mixed in verdicts.mixed_settings(summaries):
        out.append(f"{mixed['model']} on {mixed['task']} mixes runs of different settings "
                   f"({'; '.join(mixed['settings'])}), differing in {'; '.join(mixed['differences'])[:400]}: they "
                   "are judged separately (one row per settings), never pooled or paired across settings")
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
    for row in rows:
        wanted = [e for e in study.expected if e.model == row["model"] and e.variant == row["variant"]
                  and (e.task is None or e.task == row["task"])]
        absent = sorted({e.seed for e in wanted if e.seed is not None} - set(row["seed_list"]))
        errors = sorted({f"{e.cell}: {e.error or _no_run_reason(e)}" for e in wanted if e.seed in absent})
        row.update(missing_seeds=absent, note="; ".join(errors))
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
                     "primary": True, "seeds": 0, "paired_seeds": 0, "verdict": "missing",
                     "seed_list": [], "missing_seeds": sorted({e.seed for e in wanted if e.seed is not None}),
                     "note": "; ".join(reasons)})
    columns = ["model", "task", "variant", "claim", "primary", "semantics", "settings", "seeds", "paired_seeds",
               "before", "after", "gain", "gain_low", "gain_high", "gt_gain", "gt_gain_low", "gt_gain_high",
               "margin", "margin_low", "margin_high", "margin_boot_low", "margin_boot_high", "verdict", "pass@1_base",
               "seed_list", "missing_seeds", "note", "train_task", "settings_key"]
    table = pd.DataFrame(rows, columns=columns)
    if table.empty:
        return table
    numeric = [c for c in columns if c.startswith(("gain", "gt_gain", "margin", "before", "after", "pass@1"))]
    table[numeric] = table[numeric].astype(float)
    table["order"] = [_variant_rank(v) for v in table["variant"]]
    # every evaluation task is judged; each run's primary one first
    table["secondary"] = ~table["primary"].fillna(True).astype(bool)
    return (table.sort_values(["secondary", "task", "model", "order"]).drop(columns=["order", "secondary"])
            .reset_index(drop=True))


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


def _margin(row: dict[str, Any]) -> str:
    """The paired margin over the bar (variant gain - FRACTION x ground truth's, per seed), or '' if none."""
    if row["verdict"] == "missing" or not row.get("paired_seeds") or pd.isna(row.get("margin")):
        return ""
    return str(verdicts.Effect(row["margin"], row["margin_low"], row["margin_high"], int(row["paired_seeds"])))


def cell_label(model: str, task: str, alignment: dict | None = None, contamination: dict | None = None) -> str:
    label = f"{model}<br>{task}"
    if alignment and (model, task) in alignment:
        label += f"<br>pass@1 {alignment[(model, task)][0]:.2f}"
    if contamination and contamination.get((model, task)):
        label += f" [{contamination[(model, task)]}]"
    return label


def matrix_columns(table: pd.DataFrame, alignment: dict | None = None) -> list[tuple[str, str]]:
    """The (model, task) cells in reading order: by task, the most strongly aligned model first."""
    def strongest_first(cell):
        base = (alignment or {}).get(cell, (math.nan,))[0]
        return cell[1], 0.0 if math.isnan(base) else -base, cell[0]

    return sorted(dict.fromkeys(zip(table["model"], table["task"])), key=strongest_first) if not table.empty else []


def matrix_variants(table: pd.DataFrame) -> list[str]:
    return sorted(set(table["variant"]), key=lambda v: (_variant_rank(v), v)) if not table.empty else []


def verdict_figure(table: pd.DataFrame, alignment: dict | None = None, contamination: dict | None = None,
                   fraction: float = FRACTION) -> go.Figure:
    """The verdict matrix: claim variant (rows) x (model, task) cell (columns), each cell coloured by its verdict and
    showing the word and the mean gain; the interval and seeds are in the hover."""
    columns = matrix_columns(table, alignment)
    variants = matrix_variants(table)
    shown = table.assign(hover=[_hover(r, fraction) for r in table.to_dict("records")]) if not table.empty else table
    rows = [f"{(verdicts.claim_of(v) or 'other').split(' ')[0]} · {v}" for v in variants]  # "RQ1 · random"
    return plots.verdict_matrix(shown, columns, [cell_label(m, t, alignment, contamination) for m, t in columns],
                                variants, rows)


def _hover(row: dict[str, Any], fraction: float) -> str:
    lines = [f"<b>{row['variant']}</b> on {row['model']} · {row['task']}: <b>{row['verdict']}</b>"]
    if row["verdict"] != "missing":
        lines += [f"gain {_effect(row)} over {row['seeds']} seed(s)",
                  f"accuracy {row['before']:.3f} → {row['after']:.3f}",
                  f"ground-truth gain {row['gt_gain']:+.3f}"]
        if _margin(row):
            lines.append(f"margin over {fraction:.0%} of ground truth's gain, paired by seed: {_margin(row)} over "
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


def verdict_matrix_table(table: pd.DataFrame, alignment: dict | None = None) -> pd.DataFrame:
    """The same matrix as text: one row per variant, one column per cell, `verdict: gain [CI]` in each."""
    if table.empty:
        return pd.DataFrame()
    cells = matrix_columns(table, alignment)
    by: dict[tuple[str, str, str], list[dict]] = {}
    for r in table.to_dict("records"):
        by.setdefault((r["model"], r["task"], r["variant"]), []).append(r)
    values = []
    for variant in matrix_variants(table):
        row = {"claim": verdicts.claim_of(variant) or "other", "variant": variant}
        for model, task in cells:
            records = by.get((model, task, variant)) or [None]
            texts = []
            for record in records:  # several only where the study mixes settings (a warning lists them)
                text = "not run" if record is None else record["verdict"]
                if record is not None and record["verdict"] != "missing":
                    text += f": gain {_effect(record)}" + (f", margin {_margin(record)}" if _margin(record) else "")
                    if record.get("missing_seeds"):
                        text += f" (missing seed {', '.join(map(str, record['missing_seeds']))})"
                    if len(records) > 1:
                        text += f" [{record['settings']}, semantics {record.get('semantics')}]"
                texts.append(text)
            row[f"{model} · {task}"] = "; ".join(texts)
        values.append(row)
    return pd.DataFrame(values)


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
    rows = _main_settings(rows)
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
                                 "models, so the pattern (variant holds on strong, falls below the bar or gains "
                                 "nothing on weak, ground truth holds on both) is not there for any variant. The "
                                 "variants: "
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
    return f"{row['verdict']}, gain {_effect(row)}" + (f", margin {_margin(row)}" if _margin(row) else "")


def _main_settings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, task), only the rows of its most used settings (most runs): a statement across variants must
    compare runs of the same settings. Cells that mix settings are named in the report's warnings."""
    count: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        keys = count.setdefault((r["model"], r["task"]), {})
        keys[r.get("settings_key")] = keys.get(r.get("settings_key"), 0) + int(r.get("seeds") or 0)
    main = {cell: max(keys, key=lambda k: (keys[k], str(k))) for cell, keys in count.items()}
    return [r for r in rows if r.get("settings_key") == main[(r["model"], r["task"])]]


# -- the evidence behind the verdicts: per-seed gains, per-step curves, pass@k after RL ---------------
def run_gains(study: Study) -> pd.DataFrame:
    """One row per finished run: model, task, variant, seed, gain (the dots of the forest plot)."""
    rows = [{"model": s["model"], "task": _task_of(s), "variant": s["variant"], "seed": s["seed"], "gain": s["gain"]}
            for s in study.summaries]
    return pd.DataFrame(rows, columns=["model", "task", "variant", "seed", "gain"])


def _run_dir(study: Study, summary: dict[str, Any]) -> Path | None:
    """A run's folder: where summary.json was found (runs.load_summaries records it), else by name in the store."""
    if summary.get("dir") and Path(summary["dir"]).is_dir():
        return Path(summary["dir"])
    return study.runs_dir / summary["run"] if summary.get("run") else None


def step_values(study: Study) -> pd.DataFrame:
    """Per-step values of every finished run, long format (model, task, variant, seed, step, metric, value):
    the STEP_METRICS of metrics.jsonl (rollouts, every step) and `heldout_accuracy` from eval.jsonl (the primary
    evaluation task: before training, every eval_every steps, after)."""
    rows = []
    for s in study.summaries:
        folder = _run_dir(study, s)
        if folder is None:
            continue
        key = {"model": s["model"], "task": _task_of(s), "variant": s["variant"], "seed": s["seed"]}
        for m in runs.load_metrics(folder) if (folder / "metrics.jsonl").exists() else []:
            for metric in STEP_METRICS:
                if m.get(metric) is not None and "step" in m:
                    rows.append({**key, "step": m["step"], "metric": metric, "value": float(m[metric])})
        if (folder / "eval.jsonl").exists():
            for e in runinfo.read_jsonl(folder / "eval.jsonl"):
                if e.get("accuracy") is not None and (e.get("eval_task") or key["task"]) == key["task"]:
                    rows.append({**key, "step": e["step"], "metric": "heldout_accuracy", "value": e["accuracy"]})
    return pd.DataFrame(rows, columns=["model", "task", "variant", "seed", "step", "metric", "value"])


def passk_curves(study: Study) -> pd.DataFrame:
    """pass@k of every finished run on its primary evaluation task before (initial_passk.json) and after RL
    (final_passk.json), long format: model, task, variant, seed, when, k, pass_at_k."""
    rows = []
    for s in study.summaries:
        folder = _run_dir(study, s)
        for when, name in (("before", "initial_passk.json"), ("after", "final_passk.json")):
            if folder is None or not (folder / name).exists():
                continue
            try:
                curve = runinfo.read_json(folder / name)
            except ValueError:  # damaged: a curve missing from the figure, not a failed report
                continue
            for k, value in zip(curve.get("k", []), curve.get("pass_at_k", [])):
                rows.append({"model": s["model"], "task": _task_of(s), "variant": s["variant"], "seed": s["seed"],
                             "when": when, "k": k, "pass_at_k": value})
    return pd.DataFrame(rows, columns=["model", "task", "variant", "seed", "when", "k", "pass_at_k"])


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


# -- the paper's numbers -------------------------------------------------------------------------------
def clip_table(steps: pd.DataFrame) -> pd.DataFrame:
    """Per variant, the share of tokens whose PPO ratio was clipped (TRL's clip_ratio, mean over every step of every
    run; low side: ratio under 1 - eps on a negative advantage, high side: over 1 + eps_high on a positive one)."""
    columns = ["variant", "runs", "clip_fraction", "clip_low_fraction", "clip_high_fraction", "max_step"]
    if steps.empty:
        return pd.DataFrame(columns=columns)
    clip = steps[steps["metric"].isin(["clip_fraction", "clip_low_fraction", "clip_high_fraction"])]
    rows = []
    for variant, part in clip.groupby("variant", sort=False):
        mean = part.groupby("metric")["value"].mean()
        total = part[part["metric"] == "clip_fraction"]
        rows.append({"variant": variant, "runs": len(total.groupby(["model", "task", "seed"])),
                     **{m: mean.get(m, math.nan) for m in columns[2:5]},
                     "max_step": total["value"].max() if not total.empty else math.nan})
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("variant", key=lambda v: v.map(_variant_rank)).reset_index(drop=True)


def clip_statement(clips: pd.DataFrame, inactive: float = CLIP_INACTIVE) -> str:
    """One sentence on whether the clip acted, from clip_table (the words the report shows)."""
    clips = clips.dropna(subset=["clip_fraction"])
    if clips.empty:
        return "No run logged a clip fraction, so whether the clip acted cannot be said."
    top = clips.loc[clips["clip_fraction"].idxmax()]
    if top["clip_fraction"] < inactive:
        return (f"The clip bound on under {inactive:.1%} of tokens in every variant (at most {top['clip_fraction']:.3%} "
                f"on average, `{top['variant']}`): **the clipping mechanism is inactive at this scale**, so a "
                f"clipping-bias explanation of spurious-reward gains cannot act here.")
    return (f"The clip bound on up to {top['clip_fraction']:.2%} of tokens on average (`{top['variant']}`), above the "
            f"{inactive:.1%} under which it would be called inactive: the clipping mechanism can act at this scale.")


def probe_table(table: pd.DataFrame) -> pd.DataFrame:
    """Each mechanism probe next to the claim variant it modifies, per cell: random with and without the clip."""
    columns = ["model", "task", "variant", "gain", "gain_low", "gain_high", "seeds"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    keep = {v for pairs in verdicts.PROBES.values() for pair in pairs.items() for v in pair}
    primary = table[table["primary"].fillna(True).astype(bool) & table["variant"].isin(keep)]
    return primary.reindex(columns=columns).sort_values(["model", "task", "variant"]).reset_index(drop=True)


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
    caveats = data.setdefault("caveats", {}) or {}
    if not isinstance(caveats, dict) or any(v not in VARIANTS for v in caveats):
        raise ValueError(f"{path}: `caveats` must map variant names to text; valid variants: {', '.join(VARIANTS)}")
    data["caveats"] = caveats
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
                        "fraction": gain / gt_gain if gt_gain > 0 else math.nan, "verdict": "no seeds",
                        "caveat": (paper.get("caveats") or {}).get(variant)})
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


def comparison_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Variants (rows) x cells (paper's first, then ours): `fraction of GT gain (before → after %)`."""
    if not rows:
        return pd.DataFrame()
    columns = list(dict.fromkeys(_column(r) for r in rows))
    variants = sorted({r["variant"] for r in rows}, key=lambda v: (_variant_rank(v), v))
    values = []
    for variant in variants:
        vr = {"claim": verdicts.claim_of(variant) or "other", "variant": variant}
        for r in rows:
            if r["variant"] == variant:
                fraction = "—" if math.isnan(r["fraction"]) else f"{r['fraction']:.2f}"
                vr[_column(r)] = f"{fraction} ({r['before']:.1f} → {r['after']:.1f})"
                if r["verdict"] == "missing":
                    vr[_column(r)] = "missing"
                elif r["source"] == "ours":
                    vr[_column(r)] += f", {r['verdict']}"
                if r.get("caveat"):  # e.g. the paper's math "incorrect" reward is its ground truth (STUDY.md §3)
                    vr[_column(r)] += " (see caveat)"
                    vr["caveat"] = r["caveat"]
        values.append(vr)
    extra = ["caveat"] if any(r.get("caveat") for r in rows) else []
    return pd.DataFrame(values, columns=["claim", "variant", *columns, *extra]).fillna("")


def _column(r: dict[str, Any]) -> str:
    return f"{r['source']}: {r['model']} · {r['task']} ({r['alignment']})"


def paper_figure(rows: list[dict[str, Any]], fraction: float = FRACTION) -> go.Figure:
    """Each variant's gain as a fraction of ground-truth RL's gain: the paper's cells next to ours."""
    return plots.paper_figure([{**r, "column": _column(r)} for r in rows], VARIANTS, fraction,
                              "Gain as a share of ground-truth RL's: the paper vs this study")


# -- contamination -------------------------------------------------------------------------------------
def contamination_table(study: Study) -> pd.DataFrame:
    if not study.contamination:
        return pd.DataFrame()
    keep = ["model", "task", "recipe", "problems", "pass@1", "colour", "decided_by", "truly_contaminated",
            "test_correct", "exact_eval", "exact_fresh", "rouge_eval", "rouge_fresh", "evidence"]
    frame = pd.DataFrame(study.contamination)
    return _formatted(frame[[k for k in keep if k in frame.columns]])


def contamination_validation(study: Study) -> pd.DataFrame:
    """Each contamination probe, and the combined verdict, against the toy recipes' truth (05_contamination's
    rows; rows from before the probes existed have no per-probe outcomes and give no table)."""
    from mtalign import contamination

    rows = [r for r in study.contamination if all(f"{p}_outcome" in r for p in contamination.PROBES)]
    return contamination.validation_table(rows) if rows else pd.DataFrame()


# -- the report: data frames, figures and the findings drawn from them ----------------------------------
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


def seed_counts(study: Study) -> list[int]:
    """The distinct numbers of seeds behind the verdicts (one value when every cell has the same)."""
    per_cell: dict[tuple[str, str, str], set] = {}
    for s in study.summaries:
        per_cell.setdefault((s["model"], _task_of(s), s["variant"]), set()).add(s["seed"])
    return sorted({len(v) for v in per_cell.values()})


def study_code_versions(study: Study) -> dict[str, int]:
    """Code version -> number of runs trained by it (from each run's run.json)."""
    out: dict[str, int] = {}
    for s in study.summaries:
        folder = _run_dir(study, s)
        info = runinfo.read_json(folder / "run.json") if folder and (folder / "run.json").exists() else {}
        version = info.get("code_version") or (info.get("environment") or {}).get("code_version") or "unknown"
        out[version] = out.get(version, 0) + 1
    return out


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
                           key=_variant_rank)
        tasks = sorted({s["task"] for s in statements if s["claim"] == claim and s["appears"]})
        cells = {(r["model"], r["task"]) for r in judged}
        everywhere = [v for v in variants if sum(r["variant"] == v and r["verdict"] == "holds" for r in mine)
                      == len(cells) and v not in appearing]
        nowhere = [v for v in variants if sum(r["variant"] == v for r in mine) > 1
                   and not any(r["variant"] == v and r["verdict"] == "holds" for r in mine)]
        judgeable = [s for s in statements if s["claim"] == claim and s["appears"] is not None]
        parts = []
        if appearing:
            they = "it holds" if len(appearing) == 1 else "they hold"
            parts.append(f"the paper's divergence appears for {_names(appearing)} on {_names(tasks)}: "
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


# -- writing: figures, metrics.json, and the report page (the executed notebook) ---------------------------
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


PLOTLY_MIME = "application/vnd.plotly.v1+json"
# nbconvert's lab template, less what it fetches from a CDN (require.js, MathJax, mermaid): the report needs none of
# them and must open offline.
PAGE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
# Pages of one folder (the executed notebooks) share the lab stylesheet instead of inlining its 260 kB each.
SHARED_CSS = "notebook.css"
SHARED_TEMPLATE = PAGE_TEMPLATE + """{%- block notebook_css -%}<link rel="stylesheet" href=\"""" + SHARED_CSS + """\">
{%- endblock notebook_css -%}
"""
PAGE_STYLE = """<style>
.jp-Notebook { max-width: 1240px; margin: 0 auto; } body { font-size: 15px; }
.jp-RenderedHTMLCommon table { font-size: 13px; } .plotly-graph-div { width: 100%; }
</style>"""


def export_html(notebook: Path | str, target: Path | str, code: bool = False, plotlyjs: str | None = None) -> Path:
    """An executed notebook as one page that opens offline: nbconvert's lab template without prompts (and without
    input cells unless `code`); each plotly output drawn by plotly.js, inlined once in the page, or with `plotlyjs`
    (a file name) loaded from that file beside the page, written there once (pages of one folder share it)."""
    import nbformat
    import plotly.io as pio
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    nb = nbformat.read(str(notebook), as_version=4)
    if not code:  # code cells that show nothing (parameters, imports) would leave gaps once their input is hidden
        nb.cells = [c for c in nb.cells if c.cell_type != "code" or c.get("outputs")]
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            if PLOTLY_MIME in data:
                fig = go.Figure(data[PLOTLY_MIME])
                count += 1
                name = (output.get("metadata") or {}).get("figure") or f"figure-{count}"
                output["data"] = {"text/html": pio.to_html(fig, full_html=False, include_plotlyjs=False,
                                                           config=plots.CONFIG, default_width="100%",
                                                           div_id=f"fig-{name}")}
    template = SHARED_TEMPLATE if plotlyjs else PAGE_TEMPLATE
    exporter = HTMLExporter(extra_loaders=[DictLoader({"mtalign_report.html.j2": template})],
                            template_file="mtalign_report.html.j2", exclude_input=not code,
                            exclude_input_prompt=not code, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if plotlyjs:
        if not (target.parent / plotlyjs).exists():
            (target.parent / plotlyjs).write_text(get_plotlyjs(), encoding="utf-8")
        if not (target.parent / SHARED_CSS).exists():
            env = exporter.environment
            css = "\n".join(env.loader.get_source(env, name)[0] for name in ("static/index.css",
                                                                            "static/theme-light.css"))
            (target.parent / SHARED_CSS).write_text(css, encoding="utf-8")
        head = f"<script type=\"text/javascript\" src=\"{plotlyjs}\"></script>{PAGE_STYLE}"
    else:
        head = f"<script type=\"text/javascript\">{get_plotlyjs()}</script>{PAGE_STYLE}"
    body = body.replace("</head>", head + "</head>", 1)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, target)
    return target


EXECUTED_DIR = "executed"


def export_notebooks(study_dir: Path | str) -> list[Path]:
    """Every finished grid cell's executed notebook (the manifest's), code included, as `<study>/executed/<cell>.html`,
    the pages sharing one plotly.min.js: the claim notebooks as they ran, readable without Jupyter. Pages of cells
    that are no longer finished are removed."""
    study = Path(study_dir)
    manifest = runinfo.read_json(study / "manifest.json") if (study / "manifest.json").exists() else {}
    folder = study / EXECUTED_DIR
    written = []
    for cell in manifest.get("cells", []):
        executed = cell.get("executed_notebook")
        if cell.get("status") not in PRESENT or not cell.get("dir") or not executed:
            continue
        source = study / cell["dir"] / Path(executed).name
        if source.exists():
            written.append(export_html(source, folder / f"{cell['name']}.html", code=True, plotlyjs="plotly.min.js"))
    for stale in set(folder.glob("*.html")) - set(written) if folder.is_dir() else ():
        stale.unlink()
    return written


def show(fig: go.Figure, name: str) -> None:
    """Display a figure in the notebook, tagged with its name (the exported page gives its div the id fig-<name>)."""
    import json

    import plotly.io as pio
    from IPython.display import display

    bundle = {**json.loads(pio.to_json(fig)), "config": plots.CONFIG}
    display({PLOTLY_MIME: bundle, "text/plain": f"<figure {name}>"}, raw=True, metadata={"figure": name})


# -- command line ------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="study folder (default outputs/, or $MTALIGN_OUTPUTS)")
    parser.add_argument("--params", type=Path,
                        help="grid file whose report notebook to run (default: the grid stored in <out>/manifest.json)")
    parser.add_argument("--notebooks", type=Path, help="folder of NN_name.py notebooks (default: the manifest's)")


def run(args: argparse.Namespace) -> int:
    """Re-run the report notebook on a study folder through the grid runner (runner.run_report)."""
    from mtalign import runner

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
