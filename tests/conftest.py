"""Shared test isolation: caches, outputs and the Hugging Face home in temporary folders, one thread per process.

Nothing a test builds (toy models, runs, datasets) is written to ~ or the repository. Modules that share one built
micro model across their tests use `isolated_module`; the others use `isolated` (a fresh folder per test).
"""

from pathlib import Path

import pytest


def isolate(mp: pytest.MonkeyPatch, base: Path) -> Path:
    mp.setenv("MTALIGN_CACHE", str(base / "cache"))
    mp.setenv("MTALIGN_OUTPUTS", str(base / "outputs"))
    mp.setenv("HF_HOME", str(base / "hf"))
    mp.setenv("OMP_NUM_THREADS", "1")
    return base


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    return isolate(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def isolated_module(request, tmp_path_factory):
    """One set of folders for the whole module (restored afterwards), so its micro model is built once."""
    with pytest.MonkeyPatch.context() as mp:
        yield isolate(mp, tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))


def pytest_configure(config):
    # As the command line and the notebooks do: bf16 autocast at float32 speed where the CPU has no bf16 instructions
    # (a no-op where it has them; tests/test_cpu_bf16.py checks the kernels against torch's own)
    from mtalign import cpu_bf16

    cpu_bf16.install()
