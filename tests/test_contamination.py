"""The contamination probes (mtalign/contamination.py, STUDY.md §5): ROUGE-L on hand examples, the prefix/rest split,
the bootstrap difference, the scoring of continuations, matched fresh problems, answer recall, the fixed flag rule,
the Red/Green/Gray/"cannot tell" verdict, the validation table, and a real run on a micro model."""

from __future__ import annotations

import pytest

from mtalign import contamination, sampling, toyworld
from mtalign.contamination import bootstrap_difference, rouge_l, split_text
from mtalign.models import LoadedModel
from mtalign.tasks import get_task


# -- ROUGE-L ---------------------------------------------------------------------------------------------
def test_rouge_l_identical_and_disjoint():
    assert rouge_l(list("^7+5-3="), list("^7+5-3=")) == 1.0
    assert rouge_l(list("abc"), list("xyz")) == 0.0
    assert rouge_l([], list("abc")) == 0.0 and rouge_l(list("abc"), []) == 0.0 and rouge_l([], []) == 0.0


def test_rouge_l_worked_examples():
    # LCS("abcbdab", "bdcaba") = 4 (e.g. "bcba"): P = 4/7, R = 4/6, F1 = 2PR / (P + R) = (32/42) / (52/42) = 8/13
    assert rouge_l(list("abcbdab"), list("bdcaba")) == pytest.approx(8 / 13)
    # words: LCS = "the cat on the mat" = 5 of 6 on each side, so P = R = F1 = 5/6
    assert rouge_l("the cat sat on the mat".split(), "the cat is on the mat".split()) == pytest.approx(5 / 6)
    # a prefix: LCS = 3, P = 3/3, R = 3/6, F1 = 2 * 1 * 0.5 / 1.5 = 2/3
    assert rouge_l(list("abc"), list("abcdef")) == pytest.approx(2 / 3)
    # order matters (a subsequence, not a bag): "ba" vs "ab" share only one in order: P = R = 1/2
    assert rouge_l(list("ba"), list("ab")) == pytest.approx(0.5)


def test_rouge_l_is_symmetric():
    a, b = list("^12_4/3_21/"), list("^1234/3421/")
    assert rouge_l(a, b) == rouge_l(b, a)


# -- split --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, fraction, prefix, rest", [
    ("abcdefghij", 0.6, "abcdef", "ghij"),
    ("abcdefghij", 0.5, "abcde", "fghij"),
    ("ab", 0.01, "a", "b"),  # at least one character shown...
    ("ab", 0.99, "a", "b"),  # ...and at least one left to predict
])
def test_split_text(text, fraction, prefix, rest):
    assert split_text(text, fraction) == (prefix, rest)


@pytest.mark.parametrize("fraction", [0, 1, -0.5, 1.5])
def test_split_text_rejects_fractions_outside_0_1(fraction):
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        split_text("abcdef", fraction)


# -- bootstrap difference ----------------------------------------------------------------------------
def test_bootstrap_difference_sign_and_interval():
    high, low = [0.9, 0.8, 1.0, 0.85, 0.95] * 4, [0.2, 0.3, 0.1, 0.25, 0.15] * 4
    diff, lo, hi = bootstrap_difference(high, low)
    assert diff == pytest.approx(0.7) and 0 < lo <= diff <= hi
    diff, lo, hi = bootstrap_difference(low, high)
    assert diff == pytest.approx(-0.7) and lo <= diff <= hi < 0
    assert bootstrap_difference([0.5] * 6, [0.5] * 9) == (0.0, 0.0, 0.0)  # nothing to resample
    assert bootstrap_difference(high, low, seed=1) == bootstrap_difference(high, low, seed=1)


def test_bootstrap_difference_spans_zero_for_overlapping_samples():
    a, b = [0.1, 0.9, 0.4, 0.6, 0.5, 0.3], [0.2, 0.8, 0.5, 0.5, 0.6, 0.4]
    _, lo, hi = bootstrap_difference(a, b)
    assert lo < 0 < hi


# -- scoring continuations ------------------------------------------------------------------------------
def test_partial_prompt_scores_compare_the_continuation_with_the_rest(monkeypatch):
    """The sampler is scripted (to isolate the scoring from a model): problem 0 is continued exactly and then
    rambles on (only the first len(rest) characters count), problem 1 half right, problem 2 wrong."""
    task = get_task("chain_sum")
    problems = task.problems("eval", n=3)
    rests = [split_text(task.prompt(p, "compact"), 0.6)[1] for p in problems]
    continuations = [rests[0] + "<think>1+1=2", rests[1][:len(rests[1]) // 2] + "#" * 20, "#" * 20]
    seen = {}

    class Scripted:
        def __init__(self, model, tokenizer):
            pass

        def generate(self, prompts, params, progress=False):
            seen["prompts"], seen["params"] = prompts, params
            return [[sampling.Sample(text, [], [])] for text in continuations]

    monkeypatch.setattr(sampling, "TransformersSampler", Scripted)
    loaded = LoadedModel("scripted", None, toyworld.build_tokenizer(), "compact", "")
    scores = contamination.partial_prompt_scores(loaded, task, problems, fraction=0.6)
    assert seen["prompts"] == [split_text(task.prompt(p, "compact"), 0.6)[0] for p in problems]
    assert seen["params"].temperature == 0  # greedy
    assert seen["params"].max_new_tokens >= max(len(r) for r in rests)  # one character is one token here
    assert scores["exact"] == [1.0, 0.0, 0.0]
    assert scores["rouge_l"][0] == 1.0 and 0 < scores["rouge_l"][1] < 1 and scores["rouge_l"][2] == 0.0


# -- matched fresh problems ----------------------------------------------------------------------------
def test_seen_and_fresh_are_the_evaluation_set_and_matched_unseen_problems():
    task = get_task("chain_sum")
    seen, fresh = contamination.seen_and_fresh(task, eval_set_size=30, problems=12)
    assert [p.id for p in seen] == [p.id for p in task.problems("eval", n=12)]  # what evaluation (and exposure) use
    evaluation = {p.id for p in task.problems("eval", n=30)}
    assert not evaluation & {p.id for p in fresh} and len({p.id for p in fresh}) == 12  # never seen, no repeats
    assert [contamination.difficulty(task, p) for p in seen] == [contamination.difficulty(task, p) for p in fresh]
    assert contamination.seen_and_fresh(task, 30)[0] == task.problems("eval", n=30)  # problems=None: the whole set


@pytest.mark.parametrize("problems", [-1, 31])
def test_seen_and_fresh_rejects_sizes_outside_the_evaluation_set(problems):
    with pytest.raises(ValueError, match="between 1 and the evaluation set's size 30, got " + str(problems)):
        contamination.seen_and_fresh(get_task("chain_sum"), 30, problems)


# -- answer recall --------------------------------------------------------------------------------------
def test_recall_prompt_removes_or_cuts_the_work():
    task = get_task("chain_sum")
    problem = next(p for p in task.problems("eval", n=50) if len(task.scratchpad(p)) == 4)
    steps = task.scratchpad(problem)
    prompt = task.prompt(problem, "compact")
    assert contamination.recall_prompt(task, problem, prompt) == prompt + "<think></think><answer>"
    assert contamination.recall_prompt(task, problem, prompt, keep=0.5) == \
        prompt + "<think>" + ",".join(steps[:2]) + "</think><answer>"
    with pytest.raises(ValueError, match=r"keep .* must be in \[0, 1\)"):
        contamination.recall_prompt(task, problem, prompt, keep=1.0)


def test_answer_recall_and_accuracy_score_what_the_model_writes(monkeypatch):
    """Scripted samplers: recall reads the answer before `</answer>`; accuracy is the share of correct samples."""
    task = get_task("chain_sum")
    problems = task.problems("eval", n=3)
    seen = {}

    class Scripted:
        def __init__(self, model, tokenizer):
            pass

        def generate(self, prompts, params, progress=False):
            seen.setdefault("prompts", []).append(prompts)
            if params.n == 1:  # recall: right, wrong, junk
                texts = [problems[0].answer + "</answer>", str(int(problems[1].answer) + 1) + "</answer>", "##"]
                return [[sampling.Sample(t, [], [])] for t in texts]
            right = task.completion(problems[0])
            return [[sampling.Sample(right if (i == 0 and j < 3) else "junk", [], []) for j in range(params.n)]
                    for i in range(len(prompts))]

    monkeypatch.setattr(sampling, "TransformersSampler", Scripted)
    loaded = LoadedModel("scripted", None, toyworld.build_tokenizer(), "compact", "")
    assert contamination.answer_recall_scores(loaded, task, problems) == [1.0, 0.0, 0.0]
    assert seen["prompts"][0][0].endswith("=<think></think><answer>")
    assert contamination.accuracy_scores(loaded, task, problems, n=4) == [0.75, 0.0, 0.0]


# -- the flag rule -----------------------------------------------------------------------------------------
def test_the_rule_is_fixed_and_stated():
    assert contamination.ALPHA == 0.05 and contamination.MIN_EFFECT == 0.10
    # (1 - 0.1)^39 = 0.0164 <= 0.05 / 3 < (1 - 0.1)^38 = 0.0182: 39 problems are needed before any probe can clear
    assert contamination.min_problems() == 39


def test_minimum_detectable_effect():
    # 0/1 scores all 0 on 200 fresh problems: d = z^2 (1 - d) / 200 with z = z_{1-0.05/3} + z_0.8 = 2.9698
    z2 = 2.9698 ** 2
    assert contamination.minimum_detectable_effect([0.0] * 200, 200) == pytest.approx(z2 / (200 + z2), abs=2e-3)
    small, large = (contamination.minimum_detectable_effect([0, 1] * n, 2 * n) for n in (20, 100))
    assert 0 < large < small < 1  # more problems, smaller detectable effect
    assert contamination.minimum_detectable_effect([1.0] * 50, 50) == float("inf")  # fresh at the ceiling


HIGH, LOW = [1.0, 0.8, 0.9, 1.0, 0.7] * 12, [0.3, 0.1, 0.2, 0.0, 0.4] * 12  # 60 problems each


@pytest.mark.parametrize("seen, fresh, outcome", [
    (HIGH, LOW, "flag"),  # far better on seen problems
    (LOW, LOW[::-1], "clear"),  # same scores: the upper bound is far below 0.10, and 60 >= 39 problems
    ([0.0] * 60, [0.0] * 60, "clear"),  # nothing on either side, with enough problems to rule out 0.10
    ([0.0] * 20, [0.0] * 20, "cannot tell"),  # ...but 20 problems cannot rule it out
    ([0, 1] * 30, [1, 0] * 30, "cannot tell"),  # noisy: the interval reaches past 0.10
    (LOW, HIGH, "clear"),  # worse on seen problems is not contamination
])
def test_compare(seen, fresh, outcome):
    result = contamination.compare("accuracy", seen, fresh)
    assert result.outcome == outcome
    assert result.low <= result.diff <= result.high and result.alpha == pytest.approx(0.05 / 3)
    assert result.diff == pytest.approx(sum(seen) / len(seen) - sum(fresh) / len(fresh))


def test_compare_rejects_unknown_probes_and_empty_scores():
    with pytest.raises(ValueError, match="unknown probe 'rouge'; valid probes: partial_prompt, accuracy, answer_recall"):
        contamination.compare("rouge", [1.0], [0.0])
    with pytest.raises(ValueError, match="needs scores on seen and fresh problems"):
        contamination.compare("accuracy", [], [0.0])


def _result(probe, outcome):
    return contamination.ProbeResult(probe, 0.5, 0.4, 0.1, 0.05, 0.15, 0.0167, 0.1, outcome)


@pytest.mark.parametrize("outcomes, pass_at_1, colour, decided_by", [
    (("clear", "flag", "cannot tell"), 0.6, "Red", ["accuracy"]),  # one flag is enough, and it is named
    (("flag", "flag", "clear"), 0.05, "Red", ["partial_prompt", "accuracy"]),  # contamination wins over weak
    (("clear", "cannot tell", "clear"), 0.6, "Green", ["partial_prompt", "answer_recall"]),
    (("clear", "clear", "clear"), 0.05, "Gray", list(contamination.PROBES)),
    (("cannot tell",) * 3, 0.6, "cannot tell", []),  # no probe could see anything: never Green by default
])
def test_verdict(outcomes, pass_at_1, colour, decided_by):
    cell = contamination.verdict([_result(p, o) for p, o in zip(contamination.PROBES, outcomes)], pass_at_1)
    assert (cell.colour, cell.decided_by) == (colour, decided_by)
    assert cell.contaminated is {"Red": True, "cannot tell": None}.get(colour, False)
    assert cell.strong is (pass_at_1 >= 0.2) and f"pass@1 {pass_at_1:.3f}" in cell.evidence


def test_validation_table_counts_each_probe_against_the_truth():
    def row(truth, colour, *outcomes):
        return {"truly_contaminated": truth, "colour": colour,
                **{f"{p}_outcome": o for p, o in zip(contamination.PROBES, outcomes)}}

    rows = [row(True, "Red", "clear", "flag", "flag"), row(True, "cannot tell", "cannot tell", "cannot tell",
                                                          "cannot tell"),
            row(False, "Green", "clear", "clear", "cannot tell"), row(False, "Red", "flag", "clear", "clear")]
    table = contamination.validation_table(rows).set_index("probe")
    assert table.loc["partial_prompt"].tolist() == ["0/2", "1/2", "1/2", 1]
    assert table.loc["accuracy"].tolist() == ["1/2", "0/2", "2/2", 1]
    assert table.loc["verdict"].tolist() == ["1/2", "1/2", "1/2", 1]


# -- a real run on a micro model --------------------------------------------------------------------------
def test_check_model_on_a_micro_model(isolated):
    row = contamination.check_model("micro-chain_sum-contaminated", problems=6, n=2, log=lambda *_: None)
    assert row["truly_contaminated"] and row["problems"] == 6 and row["eval_set_size"] == 200  # read from the spec
    assert row["colour"] == "cannot tell" and row["decided_by"] == "no probe"  # 6 < 39 problems: nothing can clear
    assert row["test_correct"] is False
    for probe in contamination.PROBES:
        assert row[f"{probe}_outcome"] in ("flag", "cannot tell") and 0 <= row[f"{probe}_seen"] <= 1
    assert len(row["examples"]) == 5 and row["problem_chars"] > row["rest_chars"] > 0
    assert row["loglik_low"] <= row["loglik_diff"] <= row["loglik_high"] and row["loglik_seen"] < 0
    with pytest.raises(ValueError, match="unknown toy model 'micro-chain_sum-nope'"):
        contamination.check_world("micro", ["chain_sum"], ["strong", "nope"])
    # what 05_contamination shows of the row is in it
    table = contamination.cell_table([row])
    assert set(contamination.VERDICT_COLUMNS + contamination.POWER_COLUMNS) <= set(table.columns)
    assert "examples" not in table.columns and "evidence" not in table.columns


def test_continuations_show_the_contaminated_models_only():
    example = {"prefix": "^5+8", "continuation": "+0=", "rest": "+0+7-3=", "exact": False}
    rows = [{"model": "m-contaminated", "truly_contaminated": True, "examples": [example, example]},
            {"model": "m-strong", "truly_contaminated": False, "examples": [example]}]
    lines = contamination.continuations(rows).splitlines()
    assert lines[0] == "m-contaminated" and len(lines) == 3
    assert lines[1].split() == ["'^5+8'", "->", "'+0='", "(true", "rest", "'+0+7-3=')"]


def test_text_logprobs_is_the_summed_next_token_log_likelihood(isolated):
    import torch

    from mtalign import models

    loaded = models.load("micro-chain_sum-strong", log=lambda *_: None)
    texts = ["^7+5-3=", "^1+2+3+4="]
    for text, value in zip(texts, contamination.text_logprobs(loaded, texts)):
        ids = loaded.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            mean_loss = loaded.model(ids, labels=ids).loss.item()  # mean cross-entropy over the len - 1 predictions
        assert value == pytest.approx(-mean_loss * (ids.shape[1] - 1), rel=1e-4) and value < 0


def test_the_report_and_the_figure_read_the_rows():
    from types import SimpleNamespace

    from mtalign import plots, report

    def row(model, truth, colour, outcome):
        return {"model": model, "truly_contaminated": truth, "colour": colour,
                **{f"{p}_{k}": v for p in contamination.PROBES
                   for k, v in (("outcome", outcome), ("diff", 0.2), ("low", 0.1), ("high", 0.3))}}

    rows = [row("a-contaminated", True, "Red", "flag"), row("a-strong", False, "Green", "clear")]
    table = report.contamination_validation(SimpleNamespace(contamination=rows)).set_index("probe")
    assert table.loc["verdict", "contaminated flagged"] == "1/1" and table.loc["verdict", "clean cleared"] == "1/1"
    old = [{"model": "m", "colour": "Green", "truly_contaminated": False}]  # a metrics.json from before the probes
    assert report.contamination_validation(SimpleNamespace(contamination=old)).empty
    fig = plots.contamination_figure(rows, contamination.PROBES, contamination.MIN_EFFECT)
    assert [t.name for t in fig.data] == ["a-contaminated (Red)", "a-strong (Green)"]
    assert list(fig.data[0].error_y.array) == pytest.approx([0.1] * 3)  # high - diff
    assert list(fig.data[0].error_y.arrayminus) == pytest.approx([0.1] * 3)  # diff - low
