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
# # 99 · The study's report
#
# **What this shows.** For every claim the study tests (RQ1 reward signal, RQ2 one-shot, RQ3 sample polarity), whether
# each variant holds, fails or is inconclusive in each (model, task) cell, by one rule stated below
# (`mtalign/verdicts.py`); whether the paper's divergence appears (the variant helps the strongly aligned model and not
# the weakly aligned one, while ground-truth RL helps both); and the numbers behind it, next to the paper's.
#
# **Reads only files** the study wrote: `manifest.json` (cells, status, errors), the RL runs' `summary.json` and
# `metrics.jsonl`, 01_alignment's cell JSONs and 05_contamination's `metrics.json` (`mtalign/report.py`). A cell that
# failed or never ran shows as missing, never as zero. It writes `<study_dir>/report.html` (self-contained, opens
# offline), one HTML file per figure under `<study_dir>/figures/`, and `<run_dir>/metrics.json`.
#
# **Parameters.** Scientific: `fraction` (the share of ground-truth RL's gain a variant must reach; the rule's
# default). Fixed: everything else. The defaults read `outputs/` (or `$MTALIGN_OUTPUTS`), the folder `mtalign study`
# writes; on a fresh clone it holds no study, and the report says so and renders its empty structure in seconds.
# The runner (`mtalign study`, `mtalign report --out DIR`) injects `study_dir` and `run_dir`.

# %% tags=["parameters"]
study_dir: str = ""  # the study's output folder (empty: outputs/, or $MTALIGN_OUTPUTS)
run_dir: str = ""  # this notebook's own files (empty: <study_dir>/99_report)
fraction: float = 0.5  # a variant holds only with a mean gain of at least this share of ground-truth RL's
strong: str = ""  # strongly aligned model per task, `{task}` filled in (empty: toy `*-strong`, else highest pass@1)
weak: str = ""  # weakly aligned model per task (empty: toy `*-weak`, else lowest pass@1)

# %%
from pathlib import Path

from mtalign import parameters, paths, report

parameters.parse(globals())  # typed parameters given as text (papermill -p) are converted
study_dir = Path(study_dir) if study_dir else paths.outputs()
run_dir = Path(run_dir) if run_dir else study_dir / "99_report"
study = report.load_study(study_dir)
rep = report.build(study, fraction=fraction, strong=strong, weak=weak)
report.show(rep.section("overview"))

# %% [markdown]
# ## The rule
# Stated once in `mtalign/verdicts.py` and applied to every cell; nothing in this notebook judges on its own.

# %%
report.show(rep.section("rule"))

# %% [markdown]
# ## Alignment
# The x-axis of everything that follows: how well each base model already does its task before RL.

# %%
report.show(rep.section("alignment"))

# %% [markdown]
# ## Verdicts and the divergence
# Green holds, red fails, amber inconclusive, grey missing. The statements below the matrix answer the study's
# question per claim: the paper's divergence is a green cell on the strong model above a red one on the weak model, in
# a task where ground-truth RL is green on both.

# %%
report.show(rep.section("verdicts"))

# %%
report.show(rep.section("divergence"))

# %% [markdown]
# ## Effects, accuracies and training curves
# The numbers behind each verdict. In the training curves, a spurious reward that sharpens the policy toward wrong
# answers shows as rising reward with flat or falling ground-truth accuracy; zero-variance groups near 1 mean
# group-normalised RL has almost no signal.

# %%
report.show(rep.section("effects"))
report.show(rep.section("before_after"))

# %%
report.show(rep.section("curves"))

# %% [markdown]
# ## The paper's numbers, and contamination
# Different models and tasks than ours, so only the shape compares: each variant's gain as a share of ground truth's.

# %%
report.show(rep.section("paper"))
report.show(rep.section("contamination"))
report.show(rep.section("sources"))

# %%
written = report.write(rep, study_dir, run_dir)
print(f"wrote {written['report']} ({written['report'].stat().st_size / 1e6:.1f} MB), "
      f"{len(rep.figures())} figures in {written['figures']}, and {written['metrics']}")
