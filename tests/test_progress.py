"""`mtalign study` progress a person can read (issue 9): cells done of total, failures so far, and the time left
estimated from the measured durations (mtalign/grid.py Progress), in the log and in the manifest."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mtalign import cost, executors, grid


def _cell(name: str, notebook: str) -> grid.Cell:
    return grid.Cell(notebook=notebook, name=name, point={}, overrides={}, parameters={},
                     resources=grid.Resources(), slurm={}, dir=Path("/nonexistent") / name)


def test_eta_uses_each_notebooks_measured_durations_over_the_workers(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    progress = executors.Progress(total=6, workers=2)
    a, b = _cell("a", "01_alignment"), _cell("b", "02_reward_signal")
    assert progress.eta_s([b], []) is None and "time left unknown yet" in progress.line(None)
    for cell, seconds in ((a, 600.0), (b, 60.0)):
        progress.start(cell)
        progress.finish(cell, "finished", seconds)
    running = _cell("c", "02_reward_signal")
    progress.start(running)
    now[0] += 20  # it has spent 20 of its expected 60 s
    waiting = [_cell("d", "02_reward_signal"), _cell("e", "02_reward_signal"), _cell("f", "03_one_shot")]
    # 60 + 60 (own notebook), 330 (no 03 cell measured yet: the mean of all), 40 left of the running one; 2 lanes
    assert progress.eta_s(waiting, [running]) == pytest.approx((60 + 60 + 330 + 40) / 2)
    assert progress.line(245.0) == "[2/6 done, 0 failed, about 4 min left]"


def test_eta_starts_from_the_cost_models_estimates_and_follows_the_measured_pace(monkeypatch):
    """Before any cell finishes the time left is the cost model's; after, each estimate is scaled by how the finished
    cells ran against theirs, so a first cell of another kind (01_alignment) does not stand for the RL cells."""
    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    cells = [_cell("align", "01_alignment"), _cell("rl_long", "02_reward_signal"), _cell("rl_short", "02_reward_signal"),
             _cell("unestimated", "02_reward_signal")]
    progress = executors.Progress(total=4, workers=2, estimates={"align": 100.0, "rl_long": 600.0, "rl_short": 200.0})
    assert progress.eta_s(cells[:3], []) == pytest.approx((100 + 600 + 200) / 2)
    assert progress.eta_s(cells, []) is None  # a cell with neither an estimate nor a measured notebook mean
    progress.start(cells[0])
    progress.finish(cells[0], "finished", 150.0)  # 1.5 x its estimate: this machine runs slower today
    assert progress.pace() == pytest.approx(1.5)
    progress.start(cells[1])
    now[0] += 300  # spent 300 of its expected 900 s
    # rl_short 200 x 1.5; the unestimated cell has no 02 mean yet, so every finished cell's mean (150); 600 left of
    # the running one; 2 lanes
    assert progress.eta_s(cells[2:], [cells[1]]) == pytest.approx((300 + 150 + 600) / 2)
    progress.start(cells[2])
    progress.finish(cells[2], "failed", 20.0)  # a failed cell's duration says nothing about the pace
    assert progress.pace() == pytest.approx(1.5)


def test_failures_are_counted_and_recorded():
    progress = executors.Progress(total=2, workers=1)
    for name, status in (("x", "failed"), ("y", "finished")):
        cell = _cell(name, "02_reward_signal")
        progress.start(cell)
        progress.finish(cell, status, 10.0)
    assert progress.line(0.0) == "[2/2 done, 1 failed]"
    record = progress.record(0.0)
    assert record["done"] == 2 and record["failed"] == 1 and record["cells_to_run"] == 2 and record["eta_s"] == 0


@pytest.mark.parametrize("seconds, text", [(42, "42 s"), (600, "10 min"), (3 * 3600 + 5 * 60, "3 h 05 min")])
def test_durations_read_naturally(seconds, text):
    assert cost.duration(seconds) == text
