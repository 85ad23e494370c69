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
# # Mirage or method? What this study finds
#
# For each surprising RL claim the study tests (RQ1: the reward need not be right; RQ2: one example is enough;
# RQ3: negative samples alone suffice), does it hold on a model already **strongly aligned** with its task, on a
# **weakly aligned** one, or on neither? The paper's answer is that these claims hold only under strong alignment,
# while RL with the true reward works everywhere. Each coloured cell below is one claim's variant on one (model, task)
# cell, judged against the base model and against ground-truth RL by one rule across training seeds.

# %% tags=["parameters"]
study_dir: str = ""  # the study's output folder (empty: outputs/, or $MTALIGN_OUTPUTS)
run_dir: str = ""  # this notebook's own files (empty: <study_dir>/99_report)
fraction: float = 0.5  # a variant holds only with a mean gain of at least this share of ground-truth RL's
strong: str = ""  # strongly aligned model per task, `{task}` filled in (empty: toy `*-strong`, else highest pass@1)
weak: str = ""  # weakly aligned model per task (empty: toy `*-weak`, else lowest pass@1)
ladder_dir: str = ""  # the alignment ladder's output folder (empty: <study_dir>/ladder)

# %%
from pathlib import Path

from IPython.display import Markdown, display

from mtalign import parameters, paths, report

parameters.parse(globals())  # typed parameters given as text (papermill -p) are converted
study_dir = Path(study_dir) if study_dir else paths.outputs()
run_dir = Path(run_dir) if run_dir else study_dir / "99_report"
ladder_dir = Path(ladder_dir) if ladder_dir else study_dir / "ladder"
rep = report.build(report.load_study(study_dir), fraction=fraction, strong=strong, weak=weak)
report.show(rep.figures["verdict_matrix"], "verdict_matrix")
for name, fig in rep.figures.items():  # every other evaluation task is judged too, in a matrix of its own
    if name.startswith("verdict_matrix__"):
        report.show(fig, name)

# %% [markdown]
# **How to read a cell.** *holds*: the variant's gain is above zero and at least the bar (a share of ground-truth
# RL's gain in the same cell). The other words say which way it falls short: a gain that is real but under the bar,
# a result the seeds cannot tell from zero, or no gain at all (or harm). *missing*: the grid asked for the run and it
# did not finish (see the appendix); never read it as zero. The number is the mean gain in held-out accuracy; hover a
# cell for its interval, the accuracies before and after, and the bar.
#
# ## What the study finds

# %%
display(Markdown("\n".join(f"- {line}" for line in rep.findings) + "\n\n" + report.headline(rep)))
if rep.data.get("multiplicity"):  # how many verdicts, what a few chance flips mean, and why no correction
    display(Markdown(rep.data["multiplicity"]["text"]))

# %% [markdown]
# ## The paper's divergence, claim by claim
# The divergence is a variant that holds on the strongly aligned model and not on the weakly aligned one, in a task
# where ground-truth RL holds on both (`mtalign.verdicts.divergence`).

# %%
report.styled(report.divergence_table(rep))

# %% [markdown]
# ## The evidence, claim by claim
# For each claim: a **forest plot** of the gain in every cell (the diamond is the mean over seeds, coloured by its
# verdict, with its 95% interval; grey dots are the individual seeds; the solid line is no change and the dashed line
# is the bar, the chosen share of ground-truth RL's gain in that cell), then **held-out accuracy during training**
# (mean over seeds, band: their range), **pass@k after RL** against the base model's (the sample-polarity argument
# is about large k: a variant that only sharpens the model lifts pass@1 and lowers pass@64), and the **training
# curves** that separate the mechanisms.
#
# ### RQ1 · does RL need the right reward?
# Format-only, random and incorrect rewards (Spurious Rewards), majority vote over the model's own answers (TTRL),
# entropy minimisation. Watch the ground-truth accuracy of the rollouts: a spurious reward that sharpens the policy
# toward wrong answers shows rising reward with flat or falling accuracy. Majority vote can only be as good as its
# pseudo-labels (their accuracy is drawn). The clip fraction tests the clipping-bias explanation of spurious-reward
# gains: if it stays at 0, the clip never binds and that mechanism cannot act.

# %%
for name, fig in rep.claim_figures("RQ1 reward signal").items():
    report.show(fig, name)

# %% [markdown]
# #### Does the clip act? A mechanism probe, not a claim
# Shao et al. (2025) explain random-reward gains by clipping bias: PPO's clip lets a random reward push the policy
# toward what it already prefers. The toy preset makes two PPO updates per rollout step, as the paper does, so the
# importance ratio departs from 1 and the clip can bind. The table gives the share of tokens clipped per variant (low
# side: ratio under 1 − ε on a negative advantage; high side: over 1 + ε_high on a positive one). Below it, their own
# control: `random_unclipped` is the random reward with the clip removed, on the same cells and seeds as `random`.
# If random's gain were the clip's doing, removing the clip would remove it.

# %%
clips = report.clip_table(rep.steps)
print(report.clip_statement(clips))
report.styled(clips)

# %%
report.styled(report.probe_table(rep.table))

# %% [markdown]
# ### RQ2 · is one example enough?
# One-shot RL trains on a single example (chosen by the historical variance of its accuracy) replicated to fill each
# batch; its control picks the example at random. Its rollout accuracy is measured **on the training example**, so
# it says that the model learned that example, not that it generalises: held-out accuracy does.

# %%
for name, fig in rep.claim_figures("RQ2 one-shot").items():
    report.show(fig, name)

# %% [markdown]
# ### RQ3 · do negative samples alone suffice?
# PSR learns only from correct rollouts, NSR only from incorrect ones, W-REINFORCE down-weights the positives. The
# paper's argument for NSR is that it preserves diversity: its pass@k at large k should stay at or above the base
# model's, where positive-only training narrows it.

# %%
for name, fig in rep.claim_figures("RQ3 sample polarity").items():
    report.show(fig, name)

# %% [markdown]
# ## Alignment: the x-axis of the study
# The unbiased pass@k of each base model on its task before any RL, with 95% bootstrap intervals over problems
# (`01_alignment`). A strongly aligned model's curve starts high; a weakly aligned one starts low but may still find
# a correct answer within many samples, which is what ground-truth RL needs to learn from.

# %%
for name, fig in rep.figures.items():
    if name.startswith("passk__"):
        report.show(fig, name)
report.alignment_table(rep.study).drop(columns=["file"], errors="ignore").round(3)

# %% [markdown]
# ## Where does each claim turn? The alignment ladder
# Two models per family give alignment two values. The ladder (`params/grids/ladder.yaml`, reported in full by
# `06_alignment_ladder`) trains every claim on the rungs of two pretraining dials per family: answer fidelity (the
# weak and strong models among its rungs) and diffuse wrong answers (low pass@1 without a preferred wrong answer).
# Per claim: gain against the base model's alignment with ground truth as the reference curve, the alignment at
# which the variant first reaches half of ground truth's gain, which summary (pass@1, pass@k, its area, maj@k)
# separates holding from failing cells best, and how well `mtalign predict` foresees verdicts on rungs it did not see.

# %%
ladder_results = report.ladder_results(ladder_dir)
display(Markdown(ladder_results.text))
for name, fig in ladder_results.figures.items():
    report.show(fig, name)
ladder_results.validation.round(3) if len(ladder_results.validation) else None

# %% [markdown]
# ## Compared with the paper
# The paper's numbers (a secondary, approximate source: `params/paper_numbers.yaml`) are for other models and tasks,
# so only the shape compares: each variant's gain as a share of ground-truth RL's gain in the same cell, with accuracy
# before → after in percent. The paper reports no seeds, so its cells get no verdict. Read the `caveat` column: the
# paper's released math "incorrect" reward is its ground-truth reward, so that number is not the incorrect reward
# ours is; Spurious Rewards' fixed wrong label is our `incorrect_source`.

# %%
report.show(rep.figures["paper_comparison"], "paper_comparison")
report.styled(report.comparison_table(rep.comparison))

# %% [markdown]
# ## Contamination
# `05_contamination`'s probes (partial prompt, accuracy and answer recall on seen versus fresh problems): **Red**
# possibly contaminated, **Green** clean and strong, **Gray** clean and weak, **cannot tell** when no probe could
# decide; `decided_by` names the probes that did. In the toy world contamination is a recipe knob, so `test_correct`
# checks the verdict against the truth, and the second table validates each probe on its own.

# %%
report.contamination_table(rep.study)

# %%
report.contamination_validation(rep.study)

# %% [markdown]
# ## Appendix: every verdict, what was read, what is missing
# The verdict matrix as text, with each interval; then the study's folder, counts and warnings, and the grid cells
# that did not finish (with their errors).

# %%
report.styled(report.verdict_matrix_table(rep.table, rep.alignment))

# %%
display(report.appendix(rep).style.hide(axis="index"))
report.missing_cells(rep.study)

# %%
written = report.write(rep, study_dir, run_dir)
print(f"wrote {len(rep.figures)} figure pages to {written['figures']} and {written['metrics']}; "
      f"`mtalign report` exports this notebook as {study_dir / report.REPORT_FILE}")
