"""Figures of the study, drawn with plotly from the per-run JSON files (never from notebook state)."""

from __future__ import annotations

from typing import Iterable

import plotly.graph_objects as go

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def passk_figure(results: Iterable[dict], title: str = "Model-task alignment: pass@k") -> go.Figure:
    """pass@k against k (log scale) with a shaded bootstrap confidence band per (model, task) curve."""
    fig = go.Figure()
    for i, result in enumerate(results):
        color = PALETTE[i % len(PALETTE)]
        curve = result["curve"]
        name = result.get("label") or f"{result['model']} · {result['task']}"
        ks = curve["k"]
        fig.add_trace(go.Scatter(x=ks + ks[::-1], y=curve["ci_high"] + curve["ci_low"][::-1], fill="toself",
                                 fillcolor=_rgba(color, 0.15), line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(x=ks, y=curve["pass_at_k"], mode="lines+markers", name=name, legendgroup=name,
                                 line={"color": color},
                                 customdata=list(zip(curve["ci_low"], curve["ci_high"])),
                                 hovertemplate="k=%{x}<br>pass@k=%{y:.3f}<br>CI [%{customdata[0]:.3f}, "
                                               "%{customdata[1]:.3f}]<extra>" + name + "</extra>"))
    fig.update_xaxes(type="log", title="k (samples per problem)", dtick=0.30103)  # one tick per power of two
    fig.update_yaxes(title="pass@k (unbiased, 95% bootstrap CI over problems)", range=[0, 1.02])
    fig.update_layout(title=title, template="plotly_white", hovermode="closest", legend={"orientation": "v"})
    return fig


def write_figure(fig: go.Figure, path) -> None:
    """A standalone HTML file (plotly.js inlined) so it opens offline."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.write_html(tmp, include_plotlyjs=True, full_html=True)
    tmp.replace(path)


def training_curves(curves: dict[str, list[dict]], metrics: dict[str, str], title: str = "Training curves") -> go.Figure:
    """One panel per metric (step on x), one line per run label; the same colour per label in every panel."""
    from plotly.subplots import make_subplots

    keys = list(metrics)
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[metrics[k] for k in keys], horizontal_spacing=0.06)
    for i, (label, rows) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        for col, key in enumerate(keys, start=1):
            points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
            if not points:
                continue
            x, y = zip(*points)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label, legendgroup=label, showlegend=col == 1,
                                     line={"color": color}), row=1, col=col)
    fig.update_xaxes(title="step")
    fig.update_layout(title=title, template="plotly_white", height=340, width=max(700, 300 * len(keys)))
    return fig


def before_after(table, title: str = "Held-out accuracy before and after RL") -> go.Figure:
    """Grouped bars: accuracy before and after each run (table from mtalign.claims.table)."""
    fig = go.Figure()
    labels = [f"{v} (s{s})" for v, s in zip(table["variant"], table["seed"])]
    fig.add_trace(go.Bar(x=labels, y=table["before"], name="before", marker_color="#bbbbbb"))
    fig.add_trace(go.Bar(x=labels, y=table["after"], name="after", marker_color=PALETTE[0]))
    fig.update_layout(barmode="group", title=title, template="plotly_white", yaxis={"title": "accuracy", "range": [0, 1]})
    return fig
