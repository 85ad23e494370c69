"""Did a change move the science? Compare two finished studies gain by gain.

    python scripts/compare_studies.py OLD_STUDY NEW_STUDY [--markdown]

For every (model, task, variant) both studies judged, it prints the old gain with its 95% interval across seeds, the
new gain, whether the new gain lies inside the old interval, and both verdicts; then how many gains moved outside.
A change meant to keep the science (issue 7's speed-ups) should move few: with 95% intervals from 3 seeds, about one
gain in twenty lands outside by chance alone, more when the new study's own seeds differ from the old ones.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from mtalign import study_files, tables


def compare(old_dir: Path, new_dir: Path) -> pd.DataFrame:
    old, new = (tables.verdict_table(study_files.load_study(d)) for d in (old_dir, new_dir))
    keys = ["model", "task", "variant"]
    columns = keys + ["gain", "gain_low", "gain_high", "verdict", "seeds"]
    both = old[columns].merge(new[columns], on=keys, suffixes=("_old", "_new"))
    both = both.dropna(subset=["gain_old", "gain_new"])
    both["inside"] = (both["gain_low_old"] <= both["gain_new"]) & (both["gain_new"] <= both["gain_high_old"])
    both["shift"] = both["gain_new"] - both["gain_old"]
    order = both["variant"].map(tables.variant_rank)
    return both.assign(_order=order).sort_values(["model", "_order"]).drop(columns="_order").reset_index(drop=True)


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def print_table(table: pd.DataFrame, markdown: bool) -> None:
    if markdown:
        print("| model | variant | old gain [95%] | new gain | inside | old → new verdict |")
        print("|---|---|---|---|---|---|")
        for r in table.itertuples():
            print(f"| {r.model.removeprefix('toy-')} | {r.variant} | {_signed(r.gain_old)} "
                  f"[{_signed(r.gain_low_old)}, {_signed(r.gain_high_old)}] | {_signed(r.gain_new)} | "
                  f"{'yes' if r.inside else '**no**'} | {r.verdict_old} → {r.verdict_new} |")
    else:
        print(f"{'model':<24} {'variant':<18} {'old gain [95%]':>24} {'new gain':>9} {'inside':>7}  verdicts")
        for r in table.itertuples():
            interval = f"{r.gain_old:+.3f} [{r.gain_low_old:+.3f}, {r.gain_high_old:+.3f}]"
            print(f"{r.model:<24} {r.variant:<18} {interval:>24} {r.gain_new:>+9.3f} {'yes' if r.inside else 'NO':>7}"
                  f"  {r.verdict_old} -> {r.verdict_new}")
    moved = table[~table["inside"]]
    same = int((table["verdict_old"] == table["verdict_new"]).sum())
    print(f"\n{len(table)} gains compared: {len(table) - len(moved)} inside the old study's 95% interval, {len(moved)} "
          f"outside ({', '.join(f'{m} {v} {_signed(s)}' for m, v, s in zip(moved['model'], moved['variant'], moved['shift'])) or 'none'}); "
          f"verdicts unchanged: {same} of {len(table)}; mean shift {table['shift'].mean():+.3f}, "
          f"mean |shift| {table['shift'].abs().mean():.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the earlier study's folder (its runs/ and manifest.json)")
    parser.add_argument("new", type=Path, help="the later study's folder")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table (for the README)")
    args = parser.parse_args(argv)
    for d in (args.old, args.new):
        if not (d / "runs").is_dir():
            parser.error(f"{d} is not a finished study: it has no runs/ folder (run `mtalign study --out {d}`)")
    table = compare(args.old, args.new)
    if table.empty:
        print("no (model, task, variant) has a gain in both studies", file=sys.stderr)
        return 1
    print_table(table, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
