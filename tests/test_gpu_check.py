"""The GPU check script itself, run with --device cpu: the same checks, so the script cannot rot between GPU days."""

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
