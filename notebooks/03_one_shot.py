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
# # 03 · RQ2: is one training example enough?
#
# **Claim under test.** 1-shot RLVR (Wang et al. 2025): RL with the ground-truth reward on *one* example, replicated
# to fill every batch, matches RL on the whole dataset. The example is chosen by its *historical variance score*:
# the variance of its training accuracy across epochs of a full-data run; a random example is the control. The
# paper's finding: it works under strong alignment only (STUDY.md §3, RQ2).
#
# **This notebook** trains the full-data baseline, the ranking step (a ground-truth run on the preset's
# `ranking_problems` for `ranking_epochs`, whose per-example accuracy log the selection reads; on the toy preset it is
# the baseline itself), the selected example and a random one from the same ranked pool, on one (model, seed) cell,
# then looks at generalisation within and
# across the task's sub-types (chain_sum: number of terms; mini_sudoku: number of blanks).
#
# **Parameters.** Scientific: `model` and `variants` (the data). Nuisance: `seed`. Fixed: `preset`. `records_dir`
# reads a finished study's runs instead of training (the toy study's: `records_dir="outputs"`, `preset="toy"`).

# %% tags=["parameters"]
model: str = "micro-chain_sum-strong"  # model to train (toy short name, local path or Hugging Face name)
task: str = ""  # training task (empty: the toy model's own task)
eval_tasks: list = []  # held-out evaluation tasks, the first one primary (empty: the training task's eval split)
task_kwargs: dict = {}  # per-task arguments, e.g. {"korbench_cipher": {"data_path": "/data/KOR-Bench"}}
seed: int = 0  # training seed
variants: list = ["one_shot", "one_shot_random"]  # RQ2 variants (data), besides the full-data baseline
subtype: str = ""  # problem metadata field that splits sub-types (empty: the task's own, if any)
preset: str = "smoke"  # frozen training settings: smoke (tests), toy (CPU study) or paper (8 GPUs)
steps: int = 0  # override the preset's number of steps (0: keep the preset's)
runs_dir: str = ""  # RL run store shared by the grid (default: outputs/runs)
run_dir: str = ""  # this notebook's own files (default: outputs/notebooks/03_one_shot)
records_dir: str = ""  # a finished study's folder to read the runs from instead of training (e.g. outputs/)

# %%
from mtalign import claims, notebook, parameters, plots

parameters.parse(globals())  # list/dict parameters given as text (papermill -p) become lists/dicts
cell = notebook.setup("03_one_shot", globals())  # run_dir made, start noted, training arguments
eval_task = notebook.eval_task(cell)  # the primary evaluation task, whose problems are split by sub-type
subtype = subtype or notebook.subtype_key(eval_task)

# %% [markdown]
# ## Train
# Full data first, then the ranking step (its `example_accuracy.jsonl` is the history the selection reads), then one
# example.

# %%
summaries = notebook.claim_runs(cell, variants)  # with records_dir: the study's runs, nothing trained
results = claims.table(summaries)
results.round(3)

# %%
plots.before_after(results, title=f"{model}: full data vs one example (seed {seed})").show()
plots.training_curves(claims.curves(runs_dir or None, summaries), claims.CURVES, title=f"{model}, seed {seed}").show()

# %% [markdown]
# ## Within and across sub-types
# Held-out accuracy after training, split by sub-type. If one example teaches the task rather than the example,
# accuracy rises on every sub-type, not only on the example's own.

# %%
by_type = notebook.heldout_by_subtype(cell, summaries, subtype, eval_task)
if subtype:
    display(by_type.pivot(index=subtype, columns="variant", values="accuracy").round(3))
else:
    print(f"{eval_task.name} has no sub-types to split by")

# %% [markdown]
# ## What the figures show, and the verdicts
# The bars compare held-out accuracy after RL on the full data, on the selected example and on a random one, from
# the same base model; the curves show the rollouts (on one example, rollout accuracy is accuracy on that example),
# and the sub-type table says whether what one example taught reached the other sub-types. The verdicts below apply
# the study's rule (`mtalign/verdicts.py`) to this cell's own runs; the rule needs an interval across at least two
# seeds, so a cell of one seed says **too few seeds**, and `99_report` judges every variant across the grid's seeds.

# %%
notebook.print_verdicts(summaries)
notebook.write_claim_metrics(cell, summaries, results, by_subtype=by_type.to_dict(orient="records"))
