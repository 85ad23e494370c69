"""One registry of tasks: `get_task(name)` and `list_tasks()`.

Offline tasks (reasoning-gym) are generated on the fly; hub tasks are loaded by real loaders from a local
Hugging Face cache or a file, and fail fast with instructions when the data is not there.
"""

from __future__ import annotations

from typing import Any

from mtalign.tasks.base import INSTRUCTION, Problem, Score, Task, extract_answer, is_formatted
from mtalign.tasks.gym import ChainSum, GymTask, MiniSudoku

OFFLINE_TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (ChainSum, MiniSudoku)}


def _hub_tasks() -> dict[str, Any]:
    try:
        from mtalign.tasks.hub import HUB_TASKS
        from mtalign.tasks.korbench import KORBENCH_TASKS
    except ImportError:  # hub loaders not present in this checkout
        return {}
    return {**HUB_TASKS, **{cls.name: cls for cls in KORBENCH_TASKS}}


def list_tasks() -> list[str]:
    """Every valid task name: offline ones first, then hub ones."""
    return list(OFFLINE_TASKS) + sorted(_hub_tasks())


def get_task(name: str, **kwargs: Any) -> Task:
    """The task called `name`, configured by `kwargs` (difficulty knobs, data paths)."""
    registry = {**OFFLINE_TASKS, **_hub_tasks()}
    if name not in registry:
        raise ValueError(f"unknown task {name!r}; valid tasks: {', '.join(list_tasks())}")
    return registry[name](**kwargs)


__all__ = [
    "INSTRUCTION", "Problem", "Score", "Task", "GymTask", "ChainSum", "MiniSudoku",
    "extract_answer", "is_formatted", "get_task", "list_tasks",
]
