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
# # 06 · The alignment ladder: where does each claim turn from mirage to method?
#
# **Claim under test.** The paper's thesis is about a *quantity*: the surprising RL results hold only when the base
# model's alignment with the task, measured by its pass@k, is already strong (STUDY.md §1-2). Two models per task
# family (strong, weak) cannot say where a claim starts to hold. This notebook climbs a ladder of toy models whose
# pretraining differs along one dial (params/toyworld.yaml `ladders:`): **fidelity**, where an unfaithful answer tag
# holds the task's one systematic wrong answer (a wrong answer the model comes to prefer), and **diffuse**, where it
# holds a fresh random wrong answer (no preferred wrong mode). Per claim variant it shows the gain against
# alignment with ground-truth RL as the reference curve, locates the transition (the alignment at which the
# variant's gain first reaches half of ground truth's), asks which alignment summary (pass@1, pass@k_max, the area
# under pass@k over log k, or maj@k_max, the majority answer's accuracy) separates holding from failing cells, and
# validates `mtalign predict`, which places any model on these curves.
#
# **Parameters.** Scientific: the rungs (`dials`, `rungs_per_dial`) and `summary`, the alignment summary on the x
# axis. Nuisance: `seeds`, `problems`, `n`, `bootstrap`. Fixed: `preset` (the frozen training settings) and the
# verdict rule (mtalign.verdicts). The defaults are a smoke configuration: `micro` models (untrained, seconds to
# build), two rungs per dial of chain_sum, two seeds of ground truth and majority vote at the smoke preset; its
# numbers are noise and prove only that the pieces meet. The study is `params/grids/ladder.yaml`, whose report this
# notebook is: it sets `study_dir`, and then the notebook reads that study's runs and trains nothing. To read a
# finished ladder study by hand: `study_dir="outputs/ladder"`, `world="toy"`, `tasks=["chain_sum", "mini_sudoku"]`,
# `rungs_per_dial=0`, `n=64`, `problems=100`.

# %% tags=["parameters"]
world: str = "micro"  # toy world of the rungs: "micro" (smoke) or "toy" (the study)
tasks: list = ["chain_sum"]  # task families; each has every dial's rungs
dials: list = ["fidelity", "diffuse"]  # dials of params/toyworld.yaml's `ladders:`
rungs_per_dial: int = 2  # rungs of each dial, spread from its first to its last (0: every rung)
n: int = 4  # samples per problem for pass@k and maj@k (the study: 64)
problems: int = 4  # evaluation problems per rung (the study: 100)
k_max: int = 0  # the k of pass@k_max and maj@k_max (0: n)
seeds: list = [0, 1]  # RL seeds per rung, trained here when study_dir is empty (two at least, for an interval)
variants: list = ["majority_vote"]  # claim variants analysed (and trained here when study_dir is empty)
preset: str = "smoke"  # frozen training settings of runs trained here: smoke (tests) or toy
steps: int = 0  # override the preset's number of steps (0: keep the preset's)
summary: str = "pass@1"  # alignment on the x axis and for transitions: pass@1, pass@k_max, auc_log_k or maj@k_max
bootstrap: int = 200  # resamples for every interval here (problems for alignment, seeds for transitions)
measure: bool = True  # sample the rungs that have no maj@k record yet (False: 01_alignment's pass@k only)
workers: int = 1  # processes measuring rungs in parallel (one thread each)
study_dir: str = ""  # a ladder study's folder: read its runs and records instead of training (the grid sets it)
runs_dir: str = ""  # RL run store for runs trained here (default: outputs/runs)
run_dir: str = ""  # this notebook's own files (default: outputs/notebooks/06_alignment_ladder)

# %%
import pandas as pd
from IPython.display import Markdown, display

from mtalign import claims, ladder, notebook, parameters, predict, rungs, verdicts

parameters.parse(globals())  # list/dict parameters given as text (papermill -p) become lists/dicts
cell = notebook.setup("06_alignment_ladder", globals())  # run_dir made, start time noted, training arguments
run_dir = cell.run_dir
ladder_rungs = rungs.rungs(world, tasks, dials, per_dial=rungs_per_dial)
print(f"{len(ladder_rungs)} rungs: {', '.join(r.model for r in ladder_rungs)}; files in {run_dir}")


def say(lines):  # numbers turned into sentences by mtalign, shown as a list
    display(Markdown("\n".join(f"- {line}" for line in lines) or "_(nothing to say: no rows)_"))


# %% [markdown]
# ## Alignment of every rung
# Each rung's base model is sampled `n` times on each held-out problem (`rungs.measure`: the same samples as
# 01_alignment draws, whose pass@k it reproduces, with each sample's answer kept for maj@k). A study's existing
# records are reused; with `study_dir` only rungs without one are sampled. A study's held-out rungs
# (params/toyworld.yaml `held_out:`, built between two rungs and left out of every fit) are measured too when it
# has runs on them: they test the predictions at the end.

# %%
have = {r["model"] for r in rungs.load_records(study_dir)} if study_dir else set()
trained = ladder.trained_models(study_dir) if study_dir else set()
held_rungs = [r for r in rungs.held_out_rungs(world, tasks) if r.model in trained]
todo = [r for r in ladder_rungs + held_rungs if r.model not in have] if measure else []
records = rungs.measure_rungs(todo, run_dir / "alignment", n=n, problems=problems, workers=workers)

# %% [markdown]
# ## RL on every rung
# Without `study_dir`: ground truth and each of `variants` on every rung and seed, at the frozen `preset`, in the
# run store (finished runs are reused). With it: the study's finished runs, nothing trained.

# %%
if study_dir:
    lad = ladder.load(study_dir, k_max or None, bootstrap, records=records)
    held = ladder.load(study_dir, k_max or None, bootstrap, records=records, held_out=True)
else:
    summaries = [s for r in ladder_rungs for seed in seeds
                 for s in claims.run_claim(r.model, seed, variants, runs_dir or None, log=lambda message: None,
                                           **cell.train_kwargs)]
    lad = ladder.build(summaries, records, k_max or None, bootstrap)
    held = ladder.build([], [], held_out=True)  # held-out rungs are read from a study, never trained here
for warning in lad.warnings:
    print(f"warning: {warning}")
analysed = [v for v in ladder.variants_of(lad) if v == verdicts.BASELINE or v in variants]
cells = lad.cells[lad.cells["variant"].isin(analysed)]
lad.rungs[["family", "dial", "recipe", "model", "pass@1", "pass@k_max", "auc_log_k", "maj@k_max", "source"]].round(3)

# %% [markdown]
# The table is the ladder: one row per rung, in dial order within each family. `pass@k_max` and `maj@k_max` are at
# k = `k_max` (default n); `source` says whether maj@k was measured (a rung read from 01_alignment alone has pass@k
# only). On a good ladder pass@1 climbs from under 0.05 to above 0.5 along the fidelity dial, and the diffuse dial's
# rungs sit at pass@1 values the fidelity dial also has, with a higher maj@k: their wrong answers do not agree.

# %%
steps_table = pd.concat([ladder.monotone_steps(lad.rungs, s) for s in rungs.SUMMARIES], ignore_index=True)
falls = [f for s in rungs.SUMMARIES for f in ladder.not_monotone(lad.rungs, s)]
say(falls or [f"every summary rises (or stays flat within its 95% interval) along every dial: "
              f"{len(steps_table)} steps checked"])
ladder.alignment_figure(lad.rungs).show()

# %% [markdown]
# **Is alignment monotone along the dial?** A step *falls* when the later rung is below the earlier one and their
# 95% bootstrap intervals do not overlap; a smaller dip is *flat within noise*. Lines are dials (solid: fidelity,
# dashed: diffuse), colours families. A fall on the fidelity dial would mean the dial does not order alignment, and
# every transition below would have to be read along measured alignment rather than dial position (which is what
# this notebook does anyway: x is always the measured summary).

# %% [markdown]
# ## Gain against alignment, claim by claim
# One figure per claim with runs here: each variant's mean gain in held-out accuracy over the base model (bars: 95%
# t-interval across seeds) against the base model's `summary`, with ground-truth RL in black as the reference curve
# and half of it dotted: the bar a variant must clear to hold (mtalign.verdicts, paired by seed). Solid lines and
# circles are the fidelity dial, dashed lines and diamonds the diffuse dial; hover a point for its rung and verdict.

# %%
for claim in verdicts.CLAIMS:
    if claim in set(cells["claim"]):
        ladder.gain_figure(cells, claim, summary).show()

# %% [markdown]
# Read each panel left to right: where a variant's curve climbs through the dotted bar is its transition. A variant
# whose curve stays under the bar on every rung never turns into a method on this ladder; one above it from the
# first rung holds whatever the alignment (as ground truth should). Where the two dials' curves part at equal
# alignment, the claim depends on something pass@k does not measure, for majority vote whether the model's wrong
# answers agree with each other.

# %% [markdown]
# ## Transitions
# Per family, dial and variant: the alignment at which the variant's mean gain first reaches half of ground truth's
# (and is above 0), linearly interpolated between the two rungs around the crossing, with a 95% percentile interval
# from resampling each rung's paired seeds (`in_ladder`: the share of resamples that cross inside the ladder; an
# upper bound beyond the ladder means some resamples never cross). Only rungs where ground truth itself holds locate
# a transition: where RL with the true reward learns nothing, half of its gain is no bar, and any variant's noise
# around zero would reach it (`left_out` names those rungs).

# %%
transitions = ladder.transitions(lad, summary, [v for v in analysed if v != verdicts.BASELINE], n_boot=bootstrap)
say(ladder.transition_sentences(transitions))
transitions.round(3) if len(transitions) else transitions

# %% [markdown]
# A transition inside the ladder with a narrow interval locates the claim: below it the claim is a mirage on this
# family, above it a method. "Holds from the lowest rung" puts any transition below the ladder (the claim needs
# little alignment); "no transition" puts it above, or nowhere. With three seeds per rung the intervals are rough:
# a resample of three seeds has at most three distinct values. The same variant's transitions on the two dials, at
# matched pass@1, say whether pass@1 is the right axis for it.

# %% [markdown]
# ## Which summary puts the transition at one value whatever the dial?
# The dials reach alignment by different recipes. If a claim depends on what a summary measures, its transition
# sits at the same value of that summary on both dials; a summary that misses what the claim needs places it at
# different values. Per variant and summary: each dial's transition, and whether they agree (95% intervals that
# overlap; a dial without a transition agrees only if its rungs never reached the other's interval).

# %%
agreement = ladder.dial_agreement(lad, [v for v in analysed if v != verdicts.BASELINE], n_boot=bootstrap)
say(ladder.dial_agreement_sentences(agreement) or ["needs two dials with RL runs in one family"])
agreement

# %% [markdown]
# This is the sharper test of the paper's thesis than the separation below: a summary can separate holding from
# failing cells on one dial merely by rising with it, but only the summary the claim depends on lines the two dials
# up. With three seeds per rung, intervals are rough and near a summary's ceiling (pass@64 close to 1) small
# differences in alignment cover a wide range of gains: read an agreement there with that in mind.

# %% [markdown]
# ## Which alignment summary separates holds from fails?
# Every (rung, variant) cell with a verdict of *holds* against those that fail (*below the bar* or *no gain /
# harms*; cells *within noise* are left out and counted), per variant, per claim and over all claims: the rank AUC
# (the chance that a holding cell is more aligned than a failing one; 0.5 is no separation) and the accuracy of the
# best single threshold "holds when alignment is at least t".

# %%
separation = ladder.separation(cells)
say(ladder.separation_sentences(separation))
ladder.best_summaries(separation).round(3)

# %% [markdown]
# The paper reads alignment off pass@k; this table tests that. If pass@k_max or its area separates a claim's cells
# as well as anything, the paper's measure suffices for it; if maj@k_max separates majority vote (or entropy
# minimisation) clearly better, what those claims need is a majority that is right, which the diffuse dial gives
# at low pass@1. An AUC near 1 with few cells is weak evidence: look at the counts.

# %% [markdown]
# ## Does the ladder predict verdicts it did not see?
# `mtalign predict` fits, per variant, the rungs' gains and margins piecewise linearly over `summary` and reads off a
# verdict and p(holds) for any alignment. Validated three ways: **leave one rung out** (each rung's verdicts
# predicted from the other rungs of its family, both dials), **cross family** (one family's ladder predicts the
# other's) and **held-out rung** (a rung built between two ladder rungs, which no fit saw, predicted from its
# family's whole ladder: what `mtalign predict` does for a new model). The Brier score of p(holds) is set against a
# baseline that ignores alignment: the share of the variant's training cells that hold.

# %%
# only the variants analysed here: the store may hold runs of others (a rung or two of them, from elsewhere)
held_out_rows = predict.held_out_rungs(lad, held, summary, n_boot=bootstrap, variants=analysed)
validation = pd.concat([predict.leave_one_rung_out(lad, summary, n_boot=bootstrap, variants=analysed),
                        predict.cross_family(lad, summary, n_boot=bootstrap, variants=analysed), held_out_rows],
                       ignore_index=True)
validation_table = predict.validation_summary(validation)
say(predict.validation_sentences(validation_table))
if len(set(lad.cells["family"])) < 2:
    print("cross family: needs both task families on the ladder; only", ", ".join(sorted(set(lad.cells["family"]))))
validation_table.round(3)

# %% [markdown]
# Each held-out rung's cells, predicted against measured: the alignment it was placed at, the gain the ladder's
# curves gave there and the gain its seeds measured, the predicted verdict (with p(holds)) and the measured one.
# Each verdict is read from its margin interval (gain minus half of ground truth's): the measured one is the
# t-interval across the rung's seeds; the predicted one is the fitted margin with the seed noise its neighbouring
# rungs measured, which is why it is wider than the fit's own interval of the gain.

# %%
say(predict.held_out_sentences(held_out_rows) or ["no held-out rung has runs in this study "
                                                  "(params/grids/ladder_heldout.yaml trains them)"])
predict.held_out_table(held_out_rows).round(3)

# %% [markdown]
# A skill above 0 (a Brier score below the baseline's) means alignment carries information about whether the claim
# holds; a skill at or below 0 means the ladder predicts that claim no better than its overall rate, which is what
# to expect for a claim that holds (or fails) everywhere, and a warning for any other. Cross-family rows are the
# honest test of `mtalign predict`'s transfer: the toy families differ from each other far less than a toy model
# differs from a real one, so a weak cross-family score bounds how far a prediction for a real model can be trusted.
# Predictions at the ladder's ends are extrapolations (`extrapolated`), flat at the nearest rung.

# %%
notebook.write_metrics(
    cell, ["world", "tasks", "dials", "rungs_per_dial", "n", "problems", "k_max", "seeds", "variants", "preset",
           "steps", "summary", "bootstrap", "study_dir"],
    rungs=lad.rungs.to_dict(orient="records"), cells=cells.to_dict(orient="records"), monotone_falls=falls,
    transitions=transitions.to_dict(orient="records"), dial_agreement=agreement.to_dict(orient="records"),
    separation=separation.to_dict(orient="records"),
    validation=validation_table.to_dict(orient="records"),
    held_out=predict.held_out_table(held_out_rows).to_dict(orient="records"), warnings=lad.warnings + held.warnings)
