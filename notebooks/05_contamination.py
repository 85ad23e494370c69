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
# The partial-prompt test needs problems long and varied enough that their first part pins down the rest; short
# templated problems (chain_sum's `^5+8+0+7-3=`) are not. So two more probes run beside it, each comparing the
# evaluation problems ("seen") with fresh problems of matched difficulty: **accuracy** (Wu et al. 2025's
# clean-benchmark comparison) and **answer recall** (the answer written with the work removed). A fixed rule, set
# before validation: a probe flags when its one-sided lower bound of seen − fresh is above 0 (family-wise α = 0.05
# over the probes, Bonferroni); it clears when its upper bound is below 0.10 and there are enough problems to say so;
# otherwise it cannot tell. A cell is Red when any probe flags, clean when none flags and one clears, and
# "cannot tell" otherwise (`mtalign.contamination`).
#
# In the toy world contamination is a recipe knob (`eval_exposure` in params/toyworld.yaml): the `contaminated`
# recipe repeats the evaluation problems in pretraining, the others never see them. So here every probe is
# validated against known truth: `contaminated` should be Red, `strong` and `weak` clean.
#
# **Parameters.** Scientific: `recipes`, `fraction` (share of the problem shown), `keep` (share of the work left
# before the answer). Nuisance: `seed`, `problems`, `n`. Fixed: greedy continuation and recall, the matched fresh
# problems, the flag rule (`ALPHA`, `MIN_EFFECT` in mtalign/contamination.py).

# %% tags=["parameters"]
world: str = "micro"  # "micro" (smoke test) or "toy" (the study)
tasks: list = ["chain_sum", "mini_sudoku"]  # task families
recipes: list = ["strong", "weak", "contaminated"]  # exposure recipes to test (params/toyworld.yaml)
fraction: float = 0.6  # share of each problem's characters shown to the model (partial-prompt test)
keep: float = 0.0  # share of the worked solution left before the answer tag (answer recall; 0: the work removed)
problems: int = 20  # evaluation problems tested, and as many fresh ones (0: the whole set the recipe repeats)
n: int = 8  # samples per problem for the accuracy probe (and the pass@1 that decides strong vs weak)
strong_threshold: float = 0.2  # pass@1 at or above this is "strong" (our stated cut; the paper gives none)
seed: int = 0  # sampling seed
run_dir: str = ""  # where this run's files go (default: outputs/notebooks/05_contamination)

# %%
from mtalign import contamination, notebook, parameters, plots

parameters.parse(globals())  # list/dict parameters given as text (papermill -p) become lists/dicts
cell = notebook.setup("05_contamination", globals())  # run_dir made, start noted

# %% [markdown]
# ## Every probe on every model
# For every model, the evaluation problems (exactly those `01_alignment` and the RL evaluations use; their number is
# read from the recipe) and as many fresh problems from the evaluation split that no model ever saw, matched one to
# one in the number of steps of their solution.

# %%
rows = contamination.check_world(world, tasks, recipes, fraction=fraction, problems=problems or None, n=n,
                                 keep=keep, seed=seed, strong_threshold=strong_threshold)
table = contamination.cell_table(rows)
table[contamination.VERDICT_COLUMNS].round(3)

# %% [markdown]
# ## Validation against the recipes
# Each probe, and the combined verdict, against the truth: how many contaminated models it flags, how many clean ones
# it flags (should be none) or clears, and how often it cannot tell.

# %%
validation = contamination.validation_table(rows)
validation

# %% [markdown]
# ## Power: what each test could see
# Problem length, how much is left to predict after the shown prefix, how many evaluation problems share each prefix,
# and per probe the smallest effect it detects with 80% power at this many problems (`min_problems`: fewer seen
# problems than this can never clear a probe). Last, a diagnostic that decides nothing: how many nats more
# log-likelihood the model gives the text of its seen problems than fresh ones (95% interval). Near 0, the exposure
# left no trace in the model for any probe to find.

# %%
table[contamination.POWER_COLUMNS].round(3)

# %% [markdown]
# ## What the models continue
# The first seen problems of each contaminated model: the shown prefix, the true rest and the model's continuation.

# %%
print(contamination.continuations(rows))

# %% [markdown]
# ## Every probe at a glance
# Per probe, each model's seen − fresh difference with its one-sided bounds, coloured by the cell's verdict (diamonds:
# the truly contaminated recipes); the dotted lines are no effect and the smallest effect a probe must rule out to
# clear a cell.

# %%
plots.contamination_figure(rows, contamination.PROBES, contamination.MIN_EFFECT).show()
print(table[["model", "colour", "decided_by", "truly_contaminated", "test_correct"]].to_string(index=False))

# %%
agreement = float(table["test_correct"].mean())
notebook.write_metrics(cell, ["world", "tasks", "recipes", "fraction", "keep", "problems", "n", "strong_threshold",
                              "seed"], rule=contamination.RULE, cells=rows,
                       validation=validation.to_dict(orient="records"), test_accuracy=agreement)
print(f"contamination verdict agrees with the recipe in {agreement:.0%} of cells")
