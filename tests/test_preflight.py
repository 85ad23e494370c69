"""Failures a real user meets on the real path (issue 12): each is one clear line and exit status 2, before any data
is read, any weights are loaded or any run folder is made. No network, no GPU and no SmolLM2 needed.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mtalign import cli, config, models, paths, toyworld, train
from mtalign.tasks import hub

MICRO = "micro-chain_sum-strong"
FIXTURES = paths.ROOT / "tests" / "fixtures" / "hub"
# Llama-3.1-405B's shape: too large for any single device at any preset, and built here on the meta device only
HUGE = dict(hidden_size=16384, intermediate_size=53248, num_hidden_layers=126, num_attention_heads=128,
            num_key_value_heads=8, vocab_size=128256)


@pytest.fixture(autouse=True)
def _offline(isolated, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return isolated


def command(capsys, *args) -> tuple[int, list[str]]:
    """Exit status and the non-empty lines on stderr of `mtalign ARGS` run in this process."""
    status = cli.main([str(a) for a in args])
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def fresh_process(*args, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(home / "hf"), "MTALIGN_CACHE": str(home / "cache"),
           "MTALIGN_OUTPUTS": str(home / "outputs"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mtalign", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=paths.ROOT)


def config_dir(path: Path, **shape) -> Path:
    """A model folder holding only a Llama config.json (no tokenizer, no weights)."""
    from transformers import LlamaConfig

    LlamaConfig(dtype="bfloat16", **shape).save_pretrained(path)
    return path


# -- a model or dataset that is not cached ---------------------------------------------------------------------
def test_the_issues_command_is_one_line_with_the_download_command(isolated):
    """`HF_HUB_OFFLINE=1 mtalign alignment --model Qwen/Qwen2.5-0.5B-Instruct --task math500 --n 2` used to end in
    a 43-line traceback; the uncached model is now named first, with the command that fetches it."""
    result = fresh_process("alignment", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--task", "math500", "--n", 2,
                           home=isolated)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "model 'Qwen/Qwen2.5-0.5B-Instruct' is not in the local Hugging Face cache" in lines[0]
    assert "`hf download Qwen/Qwen2.5-0.5B-Instruct`" in lines[0] and "HF_HUB_OFFLINE is set" in lines[0]


def test_an_uncached_dataset_is_one_line_with_the_download_command(isolated):
    result = fresh_process("alignment", "--model", MICRO, "--task", "math500", "--n", 2, home=isolated)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "dataset HuggingFaceH4/MATH-500, split 'test' is not in the local Hugging Face cache" in lines[0]
    assert "hf download HuggingFaceH4/MATH-500 --repo-type dataset" in lines[0]
    assert not (isolated / "cache" / "toy-models").exists()  # failed before the toy model was built


def test_training_an_uncached_model_fails_before_its_run_folder_exists(capsys, isolated):
    status, lines = command(capsys, "train", "--model", "Qwen/Qwen2.5-0.5B-Instruct", "--task", "deepscaler",
                            "--eval-task", "math500", "--preset", "smoke", "--out", isolated / "run")
    assert status == 2 and len(lines) == 1, lines
    assert "`hf download Qwen/Qwen2.5-0.5B-Instruct`" in lines[0]
    assert not (isolated / "run").exists()


def test_a_model_folder_without_a_config_is_named(capsys, isolated):
    (isolated / "empty").mkdir()
    status, lines = command(capsys, "alignment", "--model", isolated / "empty", "--task", "chain_sum", "--n", 2)
    assert status == 2 and len(lines) == 1 and "has no config.json" in lines[0], lines


# -- a model too large for the device ----------------------------------------------------------------------------
def test_a_model_too_large_to_sample_is_refused_from_its_config_alone(capsys, isolated):
    huge = config_dir(isolated / "huge", **HUGE)
    status, lines = command(capsys, "alignment", "--model", huge, "--task", "chain_sum", "--n", 2, "--problems", 2)
    assert status == 2 and len(lines) == 1, lines
    assert "405.85B parameters x 2 bytes" in lines[0] and "GiB free" in lines[0]


def test_a_model_too_large_to_train_counts_gradients_and_adam(capsys, isolated):
    huge = config_dir(isolated / "huge", **HUGE)
    status, lines = command(capsys, "train", "--model", huge, "--task", "deepscaler", "--eval-task", "math500",
                            "--data-path", f"deepscaler={FIXTURES / 'deepscaler' / 'deepscaler.json'}",
                            "--data-path", f"math500={FIXTURES / 'math500'}", "--preset", "smoke",
                            "--out", isolated / "run")
    assert status == 2 and len(lines) == 1, lines
    assert "for training at preset 'smoke'" in lines[0] and "x 4 (weights, gradients, two AdamW moments)" in lines[0]
    assert not (isolated / "run").exists()


def test_the_memory_estimate(isolated, monkeypatch):
    """Parameters are counted from the config as a built model has them (tied embeddings once), and training needs
    four copies of the weights: the weights, their gradients and AdamW's two moments."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=True)
    folder = config_dir(isolated / "small", **small)
    real = sum(p.numel() for p in AutoModelForCausalLM.from_config(LlamaConfig(**small)).parameters())
    count = models.parameter_count(models.model_config(str(folder)))
    assert count == real
    assert models.bytes_needed(count, 2, training=True) == 8 * count
    assert models.bytes_needed(count, 4, training=False) == 4 * count
    # bf16 checkpoint, CPU: 2 bytes a parameter; room for the weights but not for training
    monkeypatch.setattr(models, "free_memory", lambda: (2 * count + 1, 10 * count, "a test device"))
    models.check_memory(str(folder), training=False)
    with pytest.raises(ValueError, match="a test device has 0.0 GiB free"):
        models.check_memory(str(folder), training=True)


# -- vLLM requested but not installed ------------------------------------------------------------------------------
needs_no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")


@needs_no_vllm
def test_sampling_with_vllm_when_it_is_missing(capsys):
    status, lines = command(capsys, "alignment", "--model", MICRO, "--n", 2, "--backend", "vllm")
    assert status == 2 and len(lines) == 1, lines
    assert "asks for vLLM, which is not installed: pip install -e '.[gpu]'" in lines[0]
    assert "--backend transformers" in lines[0]


@needs_no_vllm
def test_training_at_a_vllm_preset_when_it_is_missing(capsys, isolated):
    status, lines = command(capsys, "train", "--model", MICRO, "--preset", "paper", "--out", isolated / "run")
    assert status == 2 and len(lines) == 1, lines
    assert "training at preset 'paper' asks for vLLM" in lines[0] and "use_vllm: false" in lines[0]
    assert not (isolated / "run").exists()


# -- a chat model without a chat template --------------------------------------------------------------------------
def test_a_chat_model_without_a_chat_template_is_refused(capsys, isolated):
    """A model named as a chat model must bring a template; the same files under a base model's name load as plain."""
    built = toyworld.ensure_model(MICRO, log=lambda _: None)
    chat, base = isolated / "micro-Instruct", isolated / "micro-base"
    shutil.copytree(built, chat)
    shutil.copytree(built, base)
    status, lines = command(capsys, "alignment", "--model", chat, "--task", "chain_sum", "--n", 2, "--problems", 2)
    assert status == 2 and len(lines) == 1, lines
    assert "is a chat model (so its name says) but its tokenizer has no chat template" in lines[0]
    assert models.load(str(base)).style == "plain"


# -- data paths and presets the rehearsal relies on --------------------------------------------------------------
def test_a_relative_data_path_is_read_from_the_project_root_when_not_here(tmp_path, monkeypatch):
    """Grid cells run in their own folders; a grid names the project's fixtures relative to the project root."""
    monkeypatch.chdir(tmp_path)
    assert hub.checked_data_path("tests/fixtures/hub/math500") == paths.ROOT / "tests" / "fixtures" / "hub" / "math500"
    (tmp_path / "tests" / "fixtures" / "hub" / "math500").mkdir(parents=True)  # a local one wins
    assert hub.checked_data_path("tests/fixtures/hub/math500") == Path("tests/fixtures/hub/math500")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        hub.checked_data_path("tests/fixtures/hub/no-such-dataset")


def test_a_preset_inherits_what_it_does_not_set(tmp_path, monkeypatch):
    rehearsal, paper = config.load_preset("rehearsal"), config.load_preset("paper")
    own = _own_settings("rehearsal")
    assert set(rehearsal) == set(paper) | set(own)
    assert all(rehearsal[k] == v for k, v in paper.items() if k not in own)  # the paper's frozen settings
    assert (rehearsal["learning_rate"], rehearsal["updates_per_step"]) == (paper["learning_rate"], 2)
    assert rehearsal["steps"] == 2 and rehearsal["use_vllm"] is False
    train.Settings.from_dict(rehearsal, "rehearsal")  # complete and consistent
    (tmp_path / "a.yaml").write_text("inherits: b\nsteps: 1\n")
    (tmp_path / "b.yaml").write_text("inherits: a\n")
    monkeypatch.setattr(config, "PRESETS_DIR", tmp_path)
    with pytest.raises(ValueError, match="a -> b -> a"):
        config.load_preset("a")


def _own_settings(name: str) -> dict:
    import yaml

    values = yaml.safe_load((config.PRESETS_DIR / f"{name}.yaml").read_text())
    return {k: v for k, v in values.items() if k != "inherits"}
