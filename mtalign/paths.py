"""Every path of the project derives from here; nothing else types a path."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "params"
NOTEBOOKS = ROOT / "notebooks"


def outputs() -> Path:
    """Where runs, figures and reports go (MTALIGN_OUTPUTS overrides, e.g. in tests)."""
    return Path(os.environ.get("MTALIGN_OUTPUTS", ROOT / "outputs"))


def cache() -> Path:
    """Where built toy models and generated data are cached (MTALIGN_CACHE overrides)."""
    return Path(os.environ.get("MTALIGN_CACHE", ROOT / ".cache"))
