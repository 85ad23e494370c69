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
# # 05 · Contamination or alignment?
#
# **Claim under test.** A strong base model may look "aligned" only because it saw the evaluation problems. The paper
# separates the two with a partial-prompt test: show the model the first part of each evaluation problem and score
# how well it reproduces the rest (exact match and ROUGE-L). Cells are coloured **Red** (possibly contaminated),
# **Green** (clean, strong) or **Gray** (clean, weak); the paper finds the shortcuts also work in Green cells, so
# contamination alone does not explain them.
#
# In the toy world contamination is a recipe knob (`eval_exposure` in params/toyworld.yaml): the `contaminated`
# recipe repeats the evaluation problems in pretraining, the others never see them. So here the test is validated
# against known truth: it should colour `contaminated` Red and leave `strong` and `weak` clean.
#
# **Parameters.** Scientific: `recipes`, `fraction` (share of the problem shown). Nuisance: `seed`, `problems`.
# Fixed: greedy continuation, the comparison against fresh problems of the same distribution, the colour rule
# (`mtalign.contamination.classify`).

# %% tags=["parameters"]
world: str = "micro"  # "micro" (smoke test) or "toy" (the study)
tasks: list = ["chain_sum", "mini_sudoku"]  # task families
recipes: list = ["strong", "weak", "contaminated"]  # exposure recipes to test (params/toyworld.yaml)
fraction: float = 0.6  # share of each problem's characters shown to the model
problems: int = 20  # evaluation problems (the ones evaluation uses) and as many fresh reference problems
n: int = 8  # samples per problem for the pass@1 that decides strong vs weak
strong_threshold: float = 0.2  # pass@1 at or above this is "strong" (our stated cut; the paper gives none)
seed: int = 0  # sampling seed
run_dir: str = ""  # where this run's files go (default: outputs/notebooks/05_contamination)

# %%
from pathlib import Path

import pandas as pd
import plotly.express as px

from mtalign import alignment, contamination, models, parameters, paths, runinfo
from mtalign.tasks import get_task
from mtalign import toyworld

parameters.parse(globals())  # list/dict parameters given as text (papermill -p) become lists/dicts
run_dir = Path(run_dir) if run_dir else paths.outputs() / "notebooks" / "05_contamination"
run_dir.mkdir(parents=True, exist_ok=True)
started = runinfo.now()

# %% [markdown]
# ## Partial-prompt scores
# For every model, the evaluation problems (exactly those `01_alignment` and the RL evaluations use) and the same
# number of fresh problems from the evaluation split that no model ever saw. A contaminated model continues the
# first set better than the second.

# %%
rows, verdicts = [], []
for task_name in tasks:
    task = get_task(task_name, **toyworld.load_config()["tasks"][task_name])
    pool = task.problems("eval", n=2 * max(problems, 200), seed=0)
    evaluated, fresh = pool[:problems], pool[-problems:]  # the toy world contaminates only the first 200
    for recipe in recipes:
        name = f"{world}-{task_name}-{recipe}"
        loaded = models.load(name)
        scores = contamination.partial_prompt_scores(loaded, task, evaluated, fraction)
        reference = contamination.partial_prompt_scores(loaded, task, fresh, fraction)
        record = alignment.measure(name, task_name, n=n, problems=problems, seed=seed, out=run_dir, progress=False)
        verdict = contamination.classify(scores["rouge_l"], record["summary"]["pass@1"], reference["rouge_l"],
                                         strong_threshold=strong_threshold)
        truth = toyworld.spec(name).stage.eval_exposure > 0
        rows.append({"model": name, "task": task_name, "recipe": recipe,
                     "exact_eval": sum(scores["exact"]) / problems, "exact_fresh": sum(reference["exact"]) / problems,
                     "rouge_eval": sum(scores["rouge_l"]) / problems,
                     "rouge_fresh": sum(reference["rouge_l"]) / problems,
                     "pass@1": record["summary"]["pass@1"], "colour": verdict.colour,
                     "truly_contaminated": truth, "test_correct": verdict.contaminated == truth,
                     "evidence": verdict.evidence})
table = pd.DataFrame(rows)
table.drop(columns=["evidence"]).round(3)

# %% [markdown]
# ## Colours
# Each cell's colour with the evidence behind it. `test_correct` compares the test's contamination call with the
# truth we know from the recipe.

# %%
fig = px.scatter(table, x="rouge_fresh", y="rouge_eval", color="colour", symbol="task", hover_name="model",
                 color_discrete_map={"Red": "#d62728", "Green": "#2ca02c", "Gray": "#7f7f7f"},
                 title="Partial-prompt ROUGE-L: evaluation problems vs fresh problems")
fig.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dot", "color": "#999"})
fig.update_layout(template="plotly_white")
fig.show()
print(table[["model", "colour", "truly_contaminated", "test_correct", "evidence"]].to_string(index=False))

# %%
runinfo.write_json(run_dir / "metrics.json", {
    "notebook": "05_contamination", "started": started, "finished": runinfo.now(),
    "parameters": {"world": world, "tasks": tasks, "recipes": recipes, "fraction": fraction, "problems": problems,
                   "n": n, "strong_threshold": strong_threshold, "seed": seed},
    "cells": table.to_dict(orient="records"),
    "test_accuracy": float(table["test_correct"].mean()), **runinfo.environment(),
})
print(f"contamination test agrees with the recipe in {table['test_correct'].mean():.0%} of cells")
