"""The report's tables (issues 4, 9, 11), computed from a `Study` that mtalign/study_files.py reads.

One row per (model, task, variant) with its verdict (`verdict_table`; verdicts come only from mtalign.verdicts),
the verdict matrix as text, the strongly and weakly aligned model of each task and whether the paper's divergence
appears between them, the paper's numbers (params/paper_numbers.yaml) beside this study's, the PPO clip and the
mechanism probes, alignment and contamination, and the cells whose files are missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mtalign import paths, verdicts
from mtalign.manifests import PRESENT
from mtalign.study_files import Expected, Study
from mtalign.verdicts import BASELINE, CLAIMS, FRACTION

PAPER_FILE = paths.PARAMS / "paper_numbers.yaml"
VARIANTS = [BASELINE] + [v for variants in [*CLAIMS.values(), *verdicts.PROBES.values()] for v in variants]  # display order
CLIP_INACTIVE = 0.001  # issue 11: a clip that binds on under 0.1% of tokens is said to be inactive at this scale


# -- verdicts -----------------------------------------------------------------------------------------------------
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
    table["order"] = [variant_rank(v) for v in table["variant"]]
    # every evaluation task is judged; each run's primary one first
    table["secondary"] = ~table["primary"].fillna(True).astype(bool)
    return (table.sort_values(["secondary", "task", "model", "order"]).drop(columns=["order", "secondary"])
            .reset_index(drop=True))


def _no_run_reason(e: Expected) -> str:
    if e.status in PRESENT:
        return "its cell finished but the run is not in the run store (deleted?)"
    return f"cell {e.status}"


def variant_rank(variant: str) -> int:
    return VARIANTS.index(variant) if variant in VARIANTS else len(VARIANTS)


def effect_text(row: dict[str, Any]) -> str:
    if row["verdict"] == "missing" or not row["seeds"]:
        return "missing"
    return str(verdicts.Effect(row["gain"], row["gain_low"], row["gain_high"], int(row["seeds"])))


def margin_text(row: dict[str, Any]) -> str:
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
    return sorted(set(table["variant"]), key=lambda v: (variant_rank(v), v)) if not table.empty else []


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
                    margin = margin_text(record)
                    text += f": gain {effect_text(record)}" + (f", margin {margin}" if margin else "")
                    if record.get("missing_seeds"):
                        text += f" (missing seed {', '.join(map(str, record['missing_seeds']))})"
                    if len(records) > 1:
                        text += f" [{record['settings']}, semantics {record.get('semantics')}]"
                texts.append(text)
            row[f"{model} · {task}"] = "; ".join(texts)
        values.append(row)
    return pd.DataFrame(values)


# -- strong vs weak: the paper's divergence -----------------------------------------------------------------------
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
    return f"{row['verdict']}, gain {effect_text(row)}" + (f", margin {margin_text(row)}" if margin_text(row) else "")


def _main_settings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (model, task), only the rows of its most used settings (most runs): a statement across variants must
    compare runs of the same settings. Cells that mix settings are named in the report's warnings."""
    count: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        keys = count.setdefault((r["model"], r["task"]), {})
        keys[r.get("settings_key")] = keys.get(r.get("settings_key"), 0) + int(r.get("seeds") or 0)
    main = {cell: max(keys, key=lambda k: (keys[k], str(k))) for cell, keys in count.items()}
    return [r for r in rows if r.get("settings_key") == main[(r["model"], r["task"])]]


# -- the PPO clip and the mechanism probes ------------------------------------------------------------------------
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
    return frame.sort_values("variant", key=lambda v: v.map(variant_rank)).reset_index(drop=True)


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


# -- the paper's numbers ------------------------------------------------------------------------------------------
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
    columns = list(dict.fromkeys(paper_column(r) for r in rows))
    variants = sorted({r["variant"] for r in rows}, key=lambda v: (variant_rank(v), v))
    values = []
    for variant in variants:
        vr = {"claim": verdicts.claim_of(variant) or "other", "variant": variant}
        for r in rows:
            if r["variant"] == variant:
                fraction = "—" if math.isnan(r["fraction"]) else f"{r['fraction']:.2f}"
                vr[paper_column(r)] = f"{fraction} ({r['before']:.1f} → {r['after']:.1f})"
                if r["verdict"] == "missing":
                    vr[paper_column(r)] = "missing"
                elif r["source"] == "ours":
                    vr[paper_column(r)] += f", {r['verdict']}"
                if r.get("caveat"):  # e.g. the paper's math "incorrect" reward is its ground truth (STUDY.md §3)
                    vr[paper_column(r)] += " (see caveat)"
                    vr["caveat"] = r["caveat"]
        values.append(vr)
    extra = ["caveat"] if any(r.get("caveat") for r in rows) else []
    return pd.DataFrame(values, columns=["claim", "variant", *columns, *extra]).fillna("")


def paper_column(r: dict[str, Any]) -> str:
    return f"{r['source']}: {r['model']} · {r['task']} ({r['alignment']})"


# -- alignment, contamination, and what is missing ----------------------------------------------------------------
def alignment_table(study: Study) -> pd.DataFrame:
    contamination = {(r["model"], r["task"]): r.get("colour") for r in study.contamination}
    rows = [{"model": r["model"], "task": r["task"], "seed": r.get("seed"), "n": r.get("n"),
             "problems": len(r.get("problem_ids") or []), **r["summary"],
             "contamination": contamination.get((r["model"], r["task"]), "not tested"), "file": r["source"]}
            for r in study.alignment]
    return pd.DataFrame(rows)


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
    from mtalign import contamination  # here, not at the top: it pulls in torch and transformers for one table

    rows = [r for r in study.contamination if all(f"{p}_outcome" in r for p in contamination.PROBES)]
    return contamination.validation_table(rows) if rows else pd.DataFrame()


def _formatted(frame: pd.DataFrame) -> pd.DataFrame:
    def fmt(v):
        if isinstance(v, float):
            return "—" if math.isnan(v) else f"{v:.3f}"
        return "" if v is None else str(v)
    return frame.apply(lambda col: col.map(fmt)) if not frame.empty else frame


def missing_cells(study: Study) -> pd.DataFrame:
    """Cells of the grid whose files are not complete (failed, or never run), with their error or reason."""
    cells = [c for c in (study.manifest or {}).get("cells", []) if c.get("status") not in PRESENT]
    return pd.DataFrame([{"cell": c["name"], "notebook": c["notebook"], "status": c["status"],
                          "error": c.get("error") or c.get("reason") or ""} for c in cells],
                        columns=["cell", "notebook", "status", "error"])
