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
# # 04 · RQ3: are negative samples alone enough?
#
# **Claim under test.** Zhu et al. (2025): training only on negative samples (NSR) matches full RL and keeps the
# policy's entropy (and pass@k) higher, while positive samples alone (PSR) sharpen it. W-REINFORCE (+0.1 on correct,
# -1 on wrong) is their recommended mix. The paper's finding: NSR's success needs strong alignment; under weak
# alignment most groups are all wrong and masked group-normalised advantages give them no gradient (STUDY.md §3).
#
# **This notebook** trains full GRPO (the ground-truth baseline), PSR, NSR and W-REINFORCE on one (model, seed) cell
# and compares accuracy and entropy curves.
#
# **Parameters.** Scientific: `model` and `variants` (the advantage). Nuisance: `seed`. Fixed: `preset`. `records_dir`
# reads a finished study's runs instead of training (the toy study's: `records_dir="outputs"`, `preset="toy"`).

# %% tags=["parameters"]
model: str = "micro-chain_sum-strong"  # model to train (toy short name, local path or Hugging Face name)
task: str = ""  # training task (empty: the toy model's own task)
eval_tasks: list = []  # held-out evaluation tasks, the first one primary (empty: the training task's eval split)
task_kwargs: dict = {}  # per-task arguments, e.g. {"korbench_cipher": {"data_path": "/data/KOR-Bench"}}
seed: int = 0  # training seed
variants: list = ["psr", "nsr", "w_reinforce"]  # RQ3 variants (advantage), besides full GRPO
preset: str = "smoke"  # frozen training settings: smoke (tests), toy (CPU study) or paper (8 GPUs)
steps: int = 0  # override the preset's number of steps (0: keep the preset's)
runs_dir: str = ""  # RL run store shared by the grid (default: outputs/runs)
run_dir: str = ""  # this notebook's own files (default: outputs/notebooks/04_sample_polarity)
records_dir: str = ""  # a finished study's folder to read the runs from instead of training (e.g. outputs/)

# %%
from mtalign import claims, notebook, parameters, plots

parameters.parse(globals())  # list/dict parameters given as text (papermill -p) become lists/dicts
cell = notebook.setup("04_sample_polarity", globals())  # run_dir made, start noted, training arguments

# %% [markdown]
# ## Train

# %%
summaries = notebook.claim_runs(cell, variants)  # with records_dir: the study's runs, nothing trained
results = claims.table(summaries)
results.round(3)

# %% [markdown]
# ## Accuracy and entropy
# PSR should lower entropy fastest (it only reinforces what the model already gets right); NSR should keep it high.
# Under weak alignment watch the zero-variance groups: with group-normalised advantages they carry no gradient for
# any of these variants.

# %%
plots.before_after(results, title=f"{model}: sample polarity (seed {seed})").show()
plots.training_curves(claims.curves(runs_dir or None, summaries), claims.CURVES, title=f"{model}, seed {seed}").show()

# %% [markdown]
# pass@k after training (from each run's `final_passk.json`): Zhu et al. report NSR preserving pass@k at large k.

# %%
print(results[["variant", "before", "after", "gain"]].round(3).to_string(index=False))
for s in summaries:
    print(s["variant"], "pass@k after:", {k: round(v, 3) for k, v in (s.get("passk_after") or {}).items()})

# %% [markdown]
# ## What the figures show, and the verdicts
# The bars compare held-out accuracy after full GRPO, PSR, NSR and W-REINFORCE from the same base model; the curves
# show each one's rollout accuracy, entropy and zero-variance groups, and the pass@k lines above say whether a
# variant kept the model's coverage at large k. The verdicts below apply the study's rule (`mtalign/verdicts.py`) to
# this cell's own runs; the rule needs an interval across at least two seeds, so a cell of one seed says **too few
# seeds**, and `99_report` judges every variant across the grid's seeds.

# %%
notebook.print_verdicts(summaries)
notebook.write_claim_metrics(cell, summaries, results)
