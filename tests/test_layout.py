"""The README's "how to add" table against what adding a thing actually takes (issue 10), walked through for a
variant: the places the table lists are enough, and each of them is needed."""

from __future__ import annotations

import re
import shutil

import jupytext
import pytest

from mtalign import config, grid, paths

MICRO = "micro-chain_sum-strong"
README = paths.ROOT / "README.md"


def readme_places(row: str) -> list[str]:
    """The backticked places in the README's "how to add" table row whose first cell is `row`."""
    section = README.read_text().split("## Add a variant, a reward, a task or a claim notebook", 1)[1].split("\n## ")[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == row:
            return re.findall(r"`([^`]+)`", cells[1])
    raise AssertionError(f"no row {row!r} in the README's how-to-add table")


def claim_notebook(claim: str):
    """The claim notebook whose title names `claim` ("# 04 · RQ3: ...")."""
    for source in sorted(paths.NOTEBOOKS.glob("0*.py")):
        title = next(c for c in jupytext.read(source).cells if c.cell_type == "markdown").source.splitlines()[0]
        if re.match(rf"# \d\d · {claim.split(' ')[0]}:", title):
            return source
    raise AssertionError(f"no notebook names {claim}")


def test_the_table_stays_within_the_issues_budget():
    assert len(readme_places("a variant built from existing parts")) <= 3
    assert len(readme_places("a claim notebook")) <= 5


def test_a_new_variant_from_existing_parts_needs_the_places_the_readme_lists_and_no_other(tmp_path):
    places = readme_places("a variant built from existing parts")
    assert places == ["params/variants.yaml", "variants"], places  # the file, and the claim notebook's `variants`

    # 1. params/variants.yaml: one entry built from existing parts
    variants_file = tmp_path / "variants.yaml"
    shutil.copy(config.VARIANTS_FILE, variants_file)
    with variants_file.open("a") as f:
        f.write("\ndummy_nsr:\n  claim: RQ3 sample polarity\n  about: walkthrough dummy, nsr at half weight\n"
                "  advantage: w_reinforce\n  advantage_kwargs: {lam: 0.5}\n")
    claim = config.claims(variants_file)["RQ3 sample polarity"]
    assert claim[-1] == "dummy_nsr"

    # 2. the claim notebook's default `variants`: needed, since a test holds it equal to the claim's variants
    source = claim_notebook("RQ3 sample polarity")
    default = grid.read_notebook(source).parameters["variants"].default
    assert default != claim  # untouched, the notebook would not run the new variant by default
    edited = tmp_path / source.name
    text = source.read_text()
    old = re.search(r"^variants: list = (\[.*?\])", text, re.M)
    edited.write_text(text.replace(old.group(1), repr(claim).replace("'", '"'), 1))
    assert grid.read_notebook(edited).parameters["variants"].default == claim

    # nothing else: it resolves and trains (and the report judges it with its claim: verdicts.CLAIMS is
    # config.claims(), read from the real params/variants.yaml)
    from mtalign import runinfo, train

    run = config.resolve(model=MICRO, variant="dummy_nsr", preset="smoke", out=tmp_path / "run",
                         variants_file=variants_file)
    assert run.variant.claim == "RQ3 sample polarity" and not run.variant.optional
    summary = train.train(model=MICRO, variant="dummy_nsr", preset="smoke", out=tmp_path / "run",
                          variants_file=variants_file, log=lambda _: None)
    assert runinfo.read_json(tmp_path / "run" / "summary.json") == summary


@pytest.mark.parametrize("row", ["a reward", "a toy task", "a claim notebook"])
def test_every_place_the_table_names_exists(row):
    for place in readme_places(row):
        if "/" in place and not place.startswith("mtalign study"):
            assert list(paths.ROOT.glob(place.replace("NN_<claim>", "*"))), f"{row}: {place} does not exist"


def test_a_variants_description_is_not_part_of_its_runs_identity(tmp_path):
    """Editing what a variant says about itself (claim, about, optional) reuses its runs; editing what it trains
    does not."""
    from mtalign import identity

    def planned(text: str) -> str:
        path = tmp_path / f"v{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(text)
        return identity.planned_identity(model=MICRO, variant="v", preset="smoke", variants_file=path)["identity_hash"]

    base = planned("v: {claim: RQ3 sample polarity, about: one, advantage: psr}\n")
    assert planned("v: {claim: probe, about: two, optional: true, advantage: psr}\n") == base
    assert planned("v: {claim: RQ3 sample polarity, about: one, advantage: nsr}\n") != base


# -- what of outputs/ the repository keeps (.gitignore) ------------------------------------------------------------
RUN = "runs/toy/toy-chain_sum-strong__chain_sum__ground_truth__s0"
KEPT = ["manifest.json", f"{RUN}/summary.json", f"{RUN}/metrics.jsonl", f"{RUN}/eval.jsonl", f"{RUN}/run.json",
        f"{RUN}/params.json", f"{RUN}/initial_passk.json", f"{RUN}/final_passk__gsm.json",
        f"{RUN}/example_accuracy.jsonl",
        "02_reward_signal/02_reward_signal__model=m__seed=0/params.json",
        "02_reward_signal/02_reward_signal__model=m__seed=0/metrics.json",
        "01_alignment/01_alignment/toy-chain_sum-strong__chain_sum.json"]
DROPPED = [f"{RUN}/model.safetensors", f"{RUN}/checkpoint-30/optimizer.pt",
           "runs/toy/toy-chain_sum-strong__chain_sum__random__s0/example_accuracy.jsonl",
           "runs/.cache/initial_eval.json",
           "02_reward_signal/02_reward_signal__model=m__seed=0/02_reward_signal.ipynb",
           "02_reward_signal/02_reward_signal__model=m__seed=0/figures/gain.html"]


@pytest.mark.parametrize("root", ["outputs", "outputs/ladder"])
def test_the_repository_keeps_a_studys_compact_records_and_nothing_heavier(tmp_path, root):
    """The README's "Results in the repository": the study's (and the ladder's) records are committed, never weights,
    executed notebooks or caches."""
    import subprocess

    shutil.copy(paths.ROOT / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    ladder = ["06_alignment_ladder/params.json", "06_alignment_ladder/metrics.json",
              "06_alignment_ladder/alignment/toy-chain_sum-fid10__chain_sum.ladder.json"]
    executed = ["report.html", "executed/02_reward_signal__model=m__seed=0.html", "executed/plotly.min.js"]
    if root == "outputs/ladder":  # the ladder's own report (06) and its cells' pages are rebuilt, not committed
        kept, dropped = KEPT + ladder, DROPPED + executed + ["06_alignment_ladder/06_alignment_ladder.ipynb"]
    else:
        kept = KEPT + executed + ["99_report/params.json", "99_report/metrics.json"]
        dropped = DROPPED + ["99_report/99_report.ipynb"]
    for name in kept + dropped:
        (tmp_path / root / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / root / name).write_text("{}")
    listed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", root], cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(line[3:] for line in listed if line) == sorted(f"{root}/{name}" for name in kept)
