"""scripts/compare_studies.py: a rerun's gains against an earlier study's 95% intervals, on the committed study's
records (a copy of them with one variant's gains moved must show that variant, and only it, outside)."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from mtalign import paths

RECORDS = paths.ROOT / "outputs"
SCRIPT = paths.ROOT / "scripts" / "compare_studies.py"
needs_records = pytest.mark.skipif(not (RECORDS / "runs").is_dir() or not (RECORDS / "manifest.json").exists(),
                                   reason="no toy study records under outputs/ (README: Results in the repository)")


def _script():
    spec = importlib.util.spec_from_file_location("compare_studies", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_records
def test_a_study_against_itself_moves_nothing_and_a_moved_variant_is_named(tmp_path, capsys):
    compare = _script()
    same = compare.compare(RECORDS, RECORDS)
    assert len(same) > 0 and same["inside"].all() and (same["shift"] == 0).all()

    moved = tmp_path / "moved"
    shutil.copytree(RECORDS / "runs", moved / "runs")
    shutil.copy(RECORDS / "manifest.json", moved / "manifest.json")
    for summary in (moved / "runs").glob("*/toy-chain_sum-weak__chain_sum__psr__s*/summary.json"):
        record = json.loads(summary.read_text())
        record["gain"] -= 0.5  # far outside any interval the three seeds gave
        for numbers in (record.get("by_eval_task") or {}).values():  # where the verdicts read each task's gain
            numbers["gain"] -= 0.5
        summary.write_text(json.dumps(record))
    table = compare.compare(RECORDS, moved)
    outside = table[~table["inside"]]
    assert list(zip(outside["model"], outside["variant"])) == [("toy-chain_sum-weak", "psr")]
    assert outside["shift"].iloc[0] == pytest.approx(-0.5)
    assert compare.main([str(RECORDS), str(moved), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| chain_sum-weak | psr |" in out and "**no**" in out and "1 outside (toy-chain_sum-weak psr −0.50)" in out


def test_a_folder_that_is_not_a_study_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        _script().main([str(tmp_path), str(tmp_path)])
