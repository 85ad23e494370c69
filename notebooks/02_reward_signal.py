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
# # 02 · RQ1: does RL need the right reward?
#
# **Claims under test.** Spurious Rewards: training on a *format-only*, *random* or *incorrect* reward improves
# accuracy almost as much as the true reward. TTRL: *majority vote* over the model's own answers is a good enough
# reward. One-shot EM / RENT / Intuitor: *minimising entropy* (rewarding confidence) works without labels.
# The paper's finding: these hold only when the base model is already strongly aligned with the task; ground-truth
# RL works everywhere (STUDY.md §1, §3).
#
# **This notebook** trains every RQ1 variant next to the ground-truth baseline on one (model, seed) cell and shows
# held-out accuracy before and after, and the training curves that separate the mechanisms. The grid runs it for
# strong and weak models of both toy task families and several seeds; `99_report` gives the verdicts with intervals
# across seeds.
#
# **Parameters.** Scientific: `model` (its alignment with the task) and `variants` (the reward); `probes` are
# mechanism probes run on the same cell and never judged as claims (`random_unclipped`: random without the PPO
# clip). Nuisance: `seed`.
# Fixed: `preset`, the frozen training settings shared by every variant (params/train/*.yaml). The defaults are the
# smoke configuration (a micro model, 2 steps); the study uses `params/grids/toy.yaml`. To see the toy study's real
# runs without training: `model="toy-chain_sum-weak"`, `preset="toy"`, `records_dir="outputs"` (the committed
# study's records).

# %% tags=["parameters"]
model: str = "micro-chain_sum-strong"  # model to train (toy short name, local path or Hugging Face name)
task: str = ""  # training task (empty: the toy model's own task)
eval_tasks: list = []  # held-out evaluation tasks, the first one primary (empty: the training task's eval split)
task_kwargs: dict = {}  # per-task arguments, e.g. {"korbench_cipher": {"data_path": "/data/KOR-Bench"}}
seed: int = 0  # training seed
variants: list = ["format_only", "random", "incorrect", "incorrect_source", "majority_vote", "entropy_min"]  # RQ1 rewards
probes: list = ["random_unclipped"]  # mechanism probes on the same cell, never judged as claims (verdicts.PROBES)
preset: str = "smoke"  # frozen training settings: smoke (tests), toy (CPU study) or paper (8 GPUs)
steps: int = 0  # override the preset's number of steps (0: keep the preset's)
runs_dir: str = ""  # RL run store shared by the grid (default: outputs/runs)
run_dir: str = ""  # this notebook's own files (default: outputs/notebooks/02_reward_signal)
records_dir: str = ""  # a finished study's folder to read the runs from instead of training (e.g. outputs/)

# %%
from mtalign import claims, notebook, parameters, plots

parameters.parse(globals())  # list/dict parameters given as text (papermill -p) become lists/dicts
cell = notebook.setup("02_reward_signal", globals())  # run_dir made, start noted, training arguments

# %% [markdown]
# ## Train
# The ground-truth baseline first, then each variant, all with the same frozen settings. Finished runs are read
# from the run store instead of being trained again.

# %%
summaries = notebook.claim_runs(cell, variants + probes)  # with records_dir: the study's runs, nothing trained
results = claims.table(summaries)
results.round(3)

# %% [markdown]
# ## Before and after
# Held-out accuracy (FORMAT and CORRECT, several samples per problem at temperature 1). Ground truth is the bar
# every variant is compared with. Under strong alignment the self-rewards (majority vote, entropy minimisation)
# and format rewards can approach it; under weak alignment they should not.

# %%
plots.before_after(results, title=f"{model}: held-out accuracy before and after RL (seed {seed})").show()

# %% [markdown]
# ## Training curves
# *Ground-truth accuracy of the rollouts* is logged for every run whatever it is trained on, so a spurious reward
# that sharpens the model toward a wrong answer shows here as falling accuracy with rising reward. *Zero-variance
# groups* get no gradient under group normalisation; *entropy* falling fast means the policy is collapsing.

# %%
plots.training_curves(claims.curves(runs_dir or None, summaries), claims.CURVES,
                      title=f"{model}, seed {seed}").show()

# %% [markdown]
# ## What the figures show, and the verdicts
# The bars compare each reward's held-out accuracy after RL with ground truth's, from the same base model; the
# curves show how it got there (rising reward with falling ground-truth accuracy is a reward that sharpens the model
# toward wrong answers). Majority vote's pseudo-labels are only as good as the model's consensus:
# `pseudo_label_acc` in the table above is the share of groups whose voted answer is correct (last step).
# The verdicts below apply the study's rule (`mtalign/verdicts.py`) to this cell's own runs; the rule needs an
# interval across at least two seeds, so a cell of one seed says **too few seeds**, and `99_report` judges every
# variant across the grid's seeds.

# %%
notebook.print_verdicts(summaries)
notebook.write_claim_metrics(cell, summaries, results)
