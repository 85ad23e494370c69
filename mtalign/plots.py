"""Figures of the study, drawn with plotly from the per-run files (never from notebook state).

Every figure is responsive: no fixed width (it fills its container, so JupyterLab with the file browser open and a
1024 px screen show every panel), legends below the plot, no toolbar. Colours are Okabe & Ito's palette, which stays
distinguishable under the common colour-vision deficiencies; verdicts are also written out in words wherever they
are coloured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

# Okabe & Ito (2008), "Color Universal Design".
BLACK, ORANGE, SKY_BLUE, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
GREY = "#999999"
PALETTE = [BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY_BLUE, BLACK, GREY]  # yellow is too faint for lines
# Verdict words (mtalign.verdicts) -> fill colour. Both vocabularies: the four-way one and the older three-way one.
VERDICT_COLOURS = {
    "holds": GREEN, "below the bar": YELLOW, "within noise": SKY_BLUE, "no gain / harms": VERMILLION,
    "inconclusive": SKY_BLUE, "fails": VERMILLION, "no baseline": PURPLE, "missing": "#E4E4E4", "not run": "#FFFFFF",
}
# One colour per variant; colours repeat only across claims, which never share a figure (ground truth is black).
VARIANT_COLOURS = {"ground_truth": BLACK, "format_only": ORANGE, "random": SKY_BLUE, "incorrect": VERMILLION,
                   "incorrect_source": GREEN, "majority_vote": BLUE, "entropy_min": PURPLE, "one_shot": BLUE,
                   "one_shot_random": ORANGE,
                   "few_shot": GREEN, "psr": GREEN, "nsr": VERMILLION, "w_reinforce": BLUE}
# Exported figures: no toolbar (its zoom and PNG buttons covered titles), resized with the page.
CONFIG = {"displaylogo": False, "displayModeBar": False, "responsive": True}


def variant_colour(variant: str) -> str:
    return VARIANT_COLOURS.get(variant, PALETTE[sum(map(ord, variant)) % len(PALETTE)])


def verdict_colour(verdict: str) -> str:
    return VERDICT_COLOURS.get(verdict, GREY)


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def responsive(fig: go.Figure, height: int | None = None, legend: bool = True) -> go.Figure:
    """The layout every figure shares: fills its container, legend in rows below the plot, readable fonts."""
    # The legend sits at the very bottom of the figure (container coordinates), under the x-axis titles, in rows.
    fig.update_layout(autosize=True, width=None, template="plotly_white", font={"size": 13},
                      title={"x": 0, "xref": "paper", "xanchor": "left", "font": {"size": 16}},
                      margin={"l": 70, "r": 20, "t": 80, "b": 110 if legend else 50}, showlegend=legend,
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0,
                              "yanchor": "bottom"})
    if height is not None:
        fig.update_layout(height=height)
    return fig


def _empty(fig: go.Figure, title: str, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 16, "color": "#777"})
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    return responsive(fig, 260, legend=False)


def _band(x: list, low: list, high: list, colour: str, group: str) -> go.Scatter:
    """A shaded band between two curves: a closed outline drawn as lines only (markers would litter its edge)."""
    return go.Scatter(x=list(x) + list(x)[::-1], y=list(high) + list(low)[::-1], fill="toself", mode="lines",
                      fillcolor=_rgba(colour, 0.15), line={"width": 0}, hoverinfo="skip", showlegend=False,
                      legendgroup=group)


def passk_figure(results: Iterable[dict], title: str = "Model-task alignment: pass@k") -> go.Figure:
    """pass@k against k (log scale) with a shaded bootstrap confidence band per (model, task) curve."""
    fig = go.Figure()
    for i, result in enumerate(results):
        color = result.get("colour") or PALETTE[i % len(PALETTE)]
        curve = result["curve"]
        name = result.get("label") or f"{result['model']} · {result['task']}"
        ks = curve["k"]
        fig.add_trace(_band(ks, curve["ci_low"], curve["ci_high"], color, name))
        fig.add_trace(go.Scatter(x=ks, y=curve["pass_at_k"], mode="lines+markers", name=name, legendgroup=name,
                                 line={"color": color},
                                 customdata=list(zip(curve["ci_low"], curve["ci_high"])),
                                 hovertemplate="k=%{x}<br>pass@k=%{y:.3f}<br>CI [%{customdata[0]:.3f}, "
                                               "%{customdata[1]:.3f}]<extra>" + name + "</extra>"))
    fig.update_xaxes(type="log", title="k (samples per problem)", dtick=0.30103)  # one tick per power of two
    fig.update_yaxes(title="pass@k (95% CI over problems)", range=[0, 1.02])
    fig.update_layout(title=title, hovermode="closest")
    return responsive(fig, 420)


def write_figure(fig: go.Figure, path, include_plotlyjs: bool | str = True) -> None:
    """A standalone HTML file (plotly.js inlined unless told otherwise) so it opens offline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.write_html(tmp, include_plotlyjs=include_plotlyjs, full_html=True, config=CONFIG, default_width="100%")
    tmp.replace(path)


def training_curves(curves: dict[str, list[dict]], metrics: dict[str, str], title: str = "Training curves") -> go.Figure:
    """One panel per metric (step on x), one line per run label; the same colour per label in every panel."""
    from plotly.subplots import make_subplots

    keys = list(metrics)
    cols = min(len(keys), 2)
    rows = math.ceil(len(keys) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[metrics[k] for k in keys], horizontal_spacing=0.08,
                        vertical_spacing=0.18)
    for i, (label, points_) in enumerate(curves.items()):
        color = variant_colour(label.split(" ")[0]) if label.split(" ")[0] in VARIANT_COLOURS else \
            PALETTE[i % len(PALETTE)]
        for n, key in enumerate(keys):
            points = [(r["step"], r[key]) for r in points_ if r.get(key) is not None]
            if not points:
                continue
            x, y = zip(*points)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label, legendgroup=label, showlegend=n == 0,
                                     line={"color": color}), row=n // cols + 1, col=n % cols + 1)
    fig.update_xaxes(title="step")
    fig.update_layout(title=title)
    return responsive(fig, 260 * rows + 120)


def before_after(table, title: str = "Held-out accuracy before and after RL") -> go.Figure:
    """Grouped bars: accuracy before and after each run (table from mtalign.claims.table)."""
    fig = go.Figure()
    labels = [f"{v} (s{s})" for v, s in zip(table["variant"], table["seed"])]
    fig.add_trace(go.Bar(x=labels, y=table["before"], name="before", marker_color="#BBBBBB"))
    fig.add_trace(go.Bar(x=labels, y=table["after"], name="after",
                         marker_color=[variant_colour(v) for v in table["variant"]]))
    fig.update_layout(barmode="group", title=title, yaxis={"title": "accuracy", "range": [0, 1]})
    return responsive(fig, 400)


# -- the report's figures ---------------------------------------------------------------------------------
def verdict_matrix(table: pd.DataFrame, columns: list[tuple[str, str]], column_labels: list[str],
                   variants: list[str], row_labels: list[str]) -> go.Figure:
    """Variants (rows) x (model, task) cells (columns), each cell coloured by its verdict and showing the verdict word
    and the mean gain; a cell the grid never asked for says "not run". `table` is report.verdict_table's."""
    title = "Verdict matrix"
    fig = go.Figure()
    if table.empty:
        return _empty(fig, title, "no RL runs found: nothing to judge yet")
    by = {(r["model"], r["task"], r["variant"]): r for r in table.to_dict("records")}
    words = list(VERDICT_COLOURS) + sorted(set(table["verdict"]) - set(VERDICT_COLOURS))
    code = {w: i for i, w in enumerate(words)}
    z, text, hover = [], [], []
    for variant in variants:
        zr, tr, hr = [], [], []
        for model, task in columns:
            row = by.get((model, task, variant))
            if row is None:
                zr.append(code["not run"]), tr.append("not run")
                hr.append(f"{variant} was not run on {model} · {task}")
                continue
            zr.append(code[row["verdict"]])
            gain = row.get("gain")
            tr.append(row["verdict"] + ("" if gain is None or math.isnan(gain) else f"<br>{gain:+.2f}"))
            hr.append(row.get("hover") or row["verdict"])
        z.append(zr), text.append(tr), hover.append(hr)
    n = len(words)
    scale = []
    for i, word in enumerate(words):
        colour = verdict_colour(word)
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    fig.add_trace(go.Heatmap(z=z, x=column_labels, y=row_labels, text=text, texttemplate="%{text}",
                             textfont={"color": BLACK, "size": 12}, hovertext=hover, hoverinfo="text",
                             zmin=-0.5, zmax=n - 0.5, colorscale=scale, xgap=3, ygap=3, showscale=False))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="top")
    fig.update_layout(title=title)
    responsive(fig, 150 + 46 * len(variants), legend=False)
    fig.update_layout(margin={"l": 170, "t": 130, "b": 20})
    return fig


def gain_forest(rows: pd.DataFrame, seeds: pd.DataFrame, cells: list[tuple[str, str]], variants: list[str],
                fraction: float, title: str) -> go.Figure:
    """Forest plot, one panel per (model, task) cell: each variant's mean gain (diamond, coloured by verdict) with
    its 95% interval across seeds, every seed's own gain as a dot, a line at 0 and the dashed bar at `fraction` of
    ground-truth RL's mean gain.

    `rows`: report.verdict_table rows (model, task, variant, gain, gain_low, gain_high, gt_gain, verdict);
    `seeds`: report.run_gains (model, task, variant, seed, gain).
    """
    from plotly.subplots import make_subplots

    if rows.empty or not cells:
        return _empty(go.Figure(), title, "no finished runs of this claim")
    cols = min(2, len(cells))
    nrows = math.ceil(len(cells) / cols)
    fig = make_subplots(rows=nrows, cols=cols, shared_xaxes="all", shared_yaxes=True,
                        subplot_titles=[f"{m} · {t}" for m, t in cells], horizontal_spacing=0.04,
                        vertical_spacing=0.12 / max(nrows - 1, 1) if nrows > 1 else 0.1)
    by = {(r["model"], r["task"], r["variant"]): r for r in rows.to_dict("records")}
    shown: set[str] = set()
    for i, (model, task) in enumerate(cells):
        r, c = i // cols + 1, i % cols + 1
        gt = by.get((model, task, "ground_truth"))
        for y, variant in enumerate(variants):
            row = by.get((model, task, variant))
            if row is None:
                continue
            if row["verdict"] == "missing":  # asked for, never finished: said in words, never drawn as a zero
                fig.add_trace(go.Scatter(x=[0], y=[y], mode="text", text=["missing"], textposition="middle right",
                                         textfont={"color": "#777"}, showlegend=False, hoverinfo="skip"), row=r, col=c)
                continue
            verdict = row["verdict"]
            low, high = row["gain_low"], row["gain_high"]
            err = {} if math.isnan(low) else {"error_x": {"type": "data", "array": [high - row["gain"]],
                                                            "arrayminus": [row["gain"] - low], "thickness": 2,
                                                            "color": "#333", "width": 6}}
            fig.add_trace(go.Scatter(
                x=[row["gain"]], y=[y], mode="markers", name=verdict, legendgroup=verdict,
                showlegend=verdict not in shown, **err,
                marker={"symbol": "diamond", "size": 13, "color": verdict_colour(verdict), "line": {"color": "#333",
                                                                                                     "width": 1}},
                hovertemplate=f"{variant} on {model} · {task}: <b>{verdict}</b><br>gain %{{x:+.3f}}"
                              + ("" if math.isnan(low) else f" [{low:+.3f}, {high:+.3f}]")
                              + f" over {row['seeds']} seed(s)<extra></extra>"), row=r, col=c)
            shown.add(verdict)
            mine = seeds[(seeds["model"] == model) & (seeds["task"] == task) & (seeds["variant"] == variant)]
            if not mine.empty:
                fig.add_trace(go.Scatter(
                    x=mine["gain"], y=[y + 0.28] * len(mine), mode="markers", name="one seed", legendgroup="seed",
                    showlegend="seed" not in shown, marker={"size": 6, "color": GREY},
                    customdata=mine["seed"], hovertemplate="seed %{customdata}: gain %{x:+.3f}<extra></extra>"),
                    row=r, col=c)
                shown.add("seed")
        fig.add_vline(x=0, line={"color": "#555", "width": 1}, row=r, col=c)
        if gt is not None and not math.isnan(gt["gain"]):
            bar = fraction * max(gt["gain"], 0.0)
            fig.add_vline(x=bar, line={"color": "#555", "width": 1.5, "dash": "dash"}, row=r, col=c)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"bar: {fraction:.0%} of ground truth's gain",
                             line={"color": "#555", "dash": "dash"}))
    fig.update_yaxes(tickvals=list(range(len(variants))), ticktext=variants, autorange="reversed",
                     range=[len(variants) - 0.5, -0.5])
    fig.update_xaxes(zeroline=False, title_text="gain in held-out accuracy", row=nrows)
    fig.update_layout(title=title)
    return responsive(fig, 90 + nrows * (36 * len(variants) + 70) + 60)


def step_grid(frame: pd.DataFrame, metrics: dict[str, str], title: str, variants: list[str] | None = None,
              band: str = "range across seeds", y_range: tuple[float, float] | None = None) -> go.Figure:
    """Per-step curves: one column per (model, task) cell (up to four side by side), one row per metric, one line
    per variant (the mean across seeds) with a shaded band over the seeds' range.

    `frame`: long format with columns model, task, variant, seed, step, metric, value (report.step_values).
    """
    from plotly.subplots import make_subplots

    frame = frame[frame["metric"].isin(list(metrics))] if not frame.empty else frame
    if frame.empty:
        return _empty(go.Figure(), title, "no per-step values recorded")
    cells = list(dict.fromkeys(zip(frame["model"], frame["task"])))
    keys = [k for k in metrics if k in set(frame["metric"])]
    order = variants or list(dict.fromkeys(frame["variant"]))
    cols = min(len(cells), 4)
    blocks = math.ceil(len(cells) / cols)
    nrows = blocks * len(keys)
    where = {(ci, ki): ((ci // cols) * len(keys) + ki + 1, ci % cols + 1)
             for ci in range(len(cells)) for ki in range(len(keys))}
    titles = [""] * (nrows * cols)
    for ci, (model, task) in enumerate(cells):  # each cell named once, above its first panel
        r, c = where[(ci, 0)]
        titles[(r - 1) * cols + c - 1] = f"{model}<br>{task}"
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=titles, horizontal_spacing=0.05,
                        vertical_spacing=min(0.06 if len(keys) > 1 else 0.12, 0.6 / max(nrows, 1)),
                        shared_xaxes=True)
    shown: set[str] = set()
    for ci, (model, task) in enumerate(cells):
        for ki, key in enumerate(keys):
            r, c = where[(ci, ki)]
            mine = frame[(frame["model"] == model) & (frame["task"] == task) & (frame["metric"] == key)]
            for variant in [v for v in order if v in set(mine["variant"])]:
                stats = mine[mine["variant"] == variant].groupby("step")["value"].agg(["mean", "min", "max"])
                stats = stats.reset_index()
                colour = variant_colour(variant)
                seeds = int(mine[mine["variant"] == variant]["seed"].nunique())
                if seeds > 1:
                    fig.add_trace(_band(stats["step"], stats["min"], stats["max"], colour, variant), row=r, col=c)
                fig.add_trace(go.Scatter(x=stats["step"], y=stats["mean"], mode="lines", name=variant,
                                         legendgroup=variant, showlegend=variant not in shown,
                                         line={"color": colour, "width": 2.5 if variant == "ground_truth" else 1.8},
                                         hovertemplate=f"{variant}, step %{{x}}: %{{y:.3f}} (mean of {seeds} "
                                                       f"seed(s))<extra>{metrics[key]}</extra>"), row=r, col=c)
                shown.add(variant)
            if y_range:
                fig.update_yaxes(range=list(y_range), row=r, col=c)
            if c == 1:
                fig.update_yaxes(title_text=_wrap(metrics[key]), title_font={"size": 12}, row=r, col=c)
    fig.update_xaxes(title_text="step", row=nrows)
    fig.update_annotations(font_size=12)
    fig.update_layout(title=title + (f"<br><sub>line: mean over seeds; band: {band}</sub>" if band else ""))
    responsive(fig, 120 + (180 if len(keys) > 1 else 260) * nrows + 110)
    fig.update_layout(margin={"t": 120})  # room for the subtitle above the cells' names
    return fig


def _wrap(text: str, width: int = 18) -> str:
    """Break an axis title into short lines (plotly does not wrap)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join(lines + [line])


def passk_after(curves: pd.DataFrame, title: str, variants: list[str] | None = None) -> go.Figure:
    """pass@k against k after RL, one line per variant (mean across seeds), against the base model's curve
    (dashed grey), one panel per (model, task) cell. `curves`: report.passk_curves (model, task, variant, seed,
    when = before/after, k, pass_at_k)."""
    from plotly.subplots import make_subplots

    if curves.empty:
        return _empty(go.Figure(), title, "no pass@k curves recorded (final_passk.json)")
    cells = list(dict.fromkeys(zip(curves["model"], curves["task"])))
    cols = min(2, len(cells))
    nrows = math.ceil(len(cells) / cols)
    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[f"{m} · {t}" for m, t in cells],
                        horizontal_spacing=0.07, vertical_spacing=min(0.14, 0.5 / max(nrows, 1)))
    order = variants or list(dict.fromkeys(curves["variant"]))
    shown: set[str] = set()
    for i, (model, task) in enumerate(cells):
        r, c = i // cols + 1, i % cols + 1
        mine = curves[(curves["model"] == model) & (curves["task"] == task)]
        base = mine[mine["when"] == "before"].groupby("k")["pass_at_k"].mean().reset_index()
        if not base.empty:
            fig.add_trace(go.Scatter(x=base["k"], y=base["pass_at_k"], mode="lines+markers", name="base model",
                                     legendgroup="base", showlegend="base" not in shown,
                                     line={"color": GREY, "dash": "dash", "width": 2.5}, marker={"size": 5},
                                     hovertemplate="base, k=%{x}: %{y:.3f}<extra></extra>"), row=r, col=c)
            shown.add("base")
        after = mine[mine["when"] == "after"]
        for variant in [v for v in order if v in set(after["variant"])]:
            stats = after[after["variant"] == variant].groupby("k")["pass_at_k"].agg(["mean", "count"]).reset_index()
            fig.add_trace(go.Scatter(x=stats["k"], y=stats["mean"], mode="lines", name=variant, legendgroup=variant,
                                     showlegend=variant not in shown, line={"color": variant_colour(variant)},
                                     hovertemplate=f"{variant} after RL, k=%{{x}}: %{{y:.3f}}<extra></extra>"),
                          row=r, col=c)
            shown.add(variant)
    fig.update_xaxes(type="log", dtick=0.30103)
    fig.update_xaxes(title_text="k (samples per problem)", row=nrows)
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(title=title)
    return responsive(fig, 90 + 300 * nrows + 60)


def paper_figure(rows: list[dict[str, Any]], variants: list[str], fraction: float, title: str) -> go.Figure:
    """Each variant's gain as a fraction of ground-truth RL's gain: the paper's cells (solid) next to ours (hatched)."""
    usable = [r for r in rows if not (isinstance(r["fraction"], float) and math.isnan(r["fraction"]))
              and r["variant"] != "ground_truth"]
    fig = go.Figure()
    if not usable:
        return _empty(fig, title, "no variant has a ground-truth gain to compare with")
    order = [v for v in variants if v in {r["variant"] for r in usable}]
    colours = {"paper": [BLUE, SKY_BLUE], "ours": [VERMILLION, ORANGE, GREEN, PURPLE]}
    seen: dict[str, int] = {}
    for column in dict.fromkeys(r["column"] for r in usable):
        chosen = {r["variant"]: r for r in usable if r["column"] == column}
        source = next(iter(chosen.values()))["source"]
        colour = colours[source][seen.setdefault(source, 0) % len(colours[source])]
        seen[source] += 1
        fig.add_trace(go.Bar(x=order, y=[chosen[v]["fraction"] if v in chosen else None for v in order],
                             name=column, marker_color=colour,
                             marker_pattern_shape="" if source == "paper" else "/",
                             hovertemplate="%{x}: %{y:.2f} of ground truth's gain<extra>" + column + "</extra>"))
    fig.add_hline(y=fraction, line={"dash": "dash", "color": "#555"}, annotation_position="top left",
                  annotation_text=f"the bar: {fraction:.0%} of ground truth's gain")
    fig.add_hline(y=0, line={"color": "#555", "width": 1})
    fig.update_layout(title=title, barmode="group", yaxis={"title": "variant gain / ground-truth gain"})
    return responsive(fig, 480)


def mean_and_range(values: Iterable[float]) -> tuple[float, float, float]:
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(x):
        return math.nan, math.nan, math.nan
    return float(x.mean()), float(x.min()), float(x.max())


# Contamination colours (mtalign.contamination): the paper's Red/Green/Gray, and "cannot tell".
CONTAMINATION_COLOURS = {"Red": VERMILLION, "Green": GREEN, "Gray": GREY, "cannot tell": ORANGE}


def contamination_figure(rows: list[dict[str, Any]], probes: Iterable[str], min_effect: float) -> go.Figure:
    """Per probe, each cell's seen - fresh score difference with its one-sided bounds (mtalign.contamination),
    coloured by the cell's verdict (diamonds: truly contaminated); dotted lines at no effect and at the smallest
    effect a probe must rule out to clear a cell."""
    probes = list(probes)
    fig = go.Figure()
    for row in rows:
        diffs = [row[f"{p}_diff"] for p in probes]
        fig.add_trace(go.Scatter(
            x=probes, y=diffs, mode="markers", name=f"{row['model']} ({row['colour']})",
            marker={"color": CONTAMINATION_COLOURS.get(row["colour"], BLACK), "size": 10,
                    "symbol": "diamond" if row["truly_contaminated"] else "circle"},
            error_y={"type": "data", "symmetric": False,
                     "array": [row[f"{p}_high"] - d for p, d in zip(probes, diffs)],
                     "arrayminus": [d - row[f"{p}_low"] for p, d in zip(probes, diffs)]},
            customdata=[row[f"{p}_outcome"] for p in probes],
            hovertemplate="%{x}: %{y:+.3f} (%{customdata})<extra>" + row["model"] + "</extra>"))
    for level in (0, min_effect):
        fig.add_hline(y=level, line={"dash": "dot", "color": GREY})
    fig.update_layout(title="Contamination probes: score on seen minus fresh problems", scattermode="group",
                      yaxis={"title": "seen - fresh"})
    return responsive(fig, 420)
