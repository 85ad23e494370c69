"""The report page and the executed notebooks as HTML pages that open offline (issue 4).

The report page `<study>/report.html` is the 99_report notebook executed and exported without its code
(`export_html`: nbconvert's lab template, plotly.js inlined once); `export_notebooks` writes every finished cell's
executed notebook, code included, under `<study>/executed/`, the pages sharing one plotly.min.js and one stylesheet.
In the notebook, `show` displays a figure tagged with its name, which the exported page keeps as its div's id.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display
from plotly.offline import get_plotlyjs

from mtalign import plots, runinfo
from mtalign.manifests import PRESENT

REPORT_FILE = "report.html"
EXECUTED_DIR = "executed"
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
    # here, not at the top: nbconvert and nbformat take seconds to import, and the notebook importing this module to
    # show its figures never exports
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

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


def export_notebooks(study_dir: Path | str) -> list[Path]:
    """Every finished grid cell's executed notebook (the manifest's), code included, as `<study>/executed/<cell>.html`,
    the pages sharing one plotly.min.js: the claim notebooks as they ran, readable without Jupyter. Pages of cells
    that are no longer finished are removed; a finished cell whose executed notebook is not here (the committed
    records of a fresh clone keep the pages, not the notebooks) keeps its page."""
    study = Path(study_dir)
    manifest = runinfo.read_json(study / "manifest.json") if (study / "manifest.json").exists() else {}
    folder = study / EXECUTED_DIR
    written, present = [], set()
    for cell in manifest.get("cells", []):
        if cell.get("status") not in PRESENT:
            continue
        page = folder / f"{cell['name']}.html"
        present.add(page)
        executed = cell.get("executed_notebook")  # None where the notebook is not here (the manifest says so)
        source = study / cell["dir"] / Path(executed).name if executed and cell.get("dir") else None
        if source is not None and source.exists():
            written.append(export_html(source, page, code=True, plotlyjs="plotly.min.js"))
    for stale in set(folder.glob("*.html")) - present if folder.is_dir() else ():
        stale.unlink()
    return written


def show(fig: go.Figure, name: str) -> None:
    """Display a figure in the notebook, tagged with its name (the exported page gives its div the id fig-<name>)."""
    bundle = {**json.loads(pio.to_json(fig)), "config": plots.CONFIG}
    display({PLOTLY_MIME: bundle, "text/plain": f"<figure {name}>"}, raw=True, metadata={"figure": name})
