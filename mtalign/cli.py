"""The `mtalign` command (also `python -m mtalign`). Each subcommand lives in the module named for what it does.

A subcommand module defines `add_arguments(parser)` and `run(args) -> int`; this file only wires them up, so
`mtalign --help` stays fast (modules are imported when their command runs or asks for help).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from mtalign import cpu_bf16, signals

# name -> (module, one-line help). Order is the order of the study: measure, train, run the grid, report.
COMMANDS = {
    "alignment": ("mtalign.alignment", "measure model-task alignment: the pass@k curve of a model on a task"),
    "train": ("mtalign.train", "train one (model, task, variant, seed) RL run"),
    "study": ("mtalign.runner", "run a grid of claim notebooks with papermill, then the report"),
    "report": ("mtalign.report", "rebuild the report from per-run files"),
    "predict": ("mtalign.predict", "place a model on the alignment ladder: each claim's predicted verdict"),
    "bench": ("mtalign.bench", "benchmarks that print their figures (sampling, training step)"),
}


def _available() -> dict[str, tuple[str, str]]:
    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def main(argv: list[str] | None = None) -> int:
    # One thread per process on small CPUs; parallelism comes from processes (see ENVIRONMENT facts in README).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    argv = sys.argv[1:] if argv is None else argv
    commands = _available()
    parser = argparse.ArgumentParser(prog="mtalign", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name = argv[0]
    if name not in commands:
        parser.error(f"unknown command {name!r}; valid commands: {', '.join(commands)}")
    module = importlib.import_module(commands[name][0])
    cpu_bf16.install()  # bf16 autocast at float32 speed where the CPU has no bf16 instructions (mtalign/cpu_bf16.py)
    command_parser = argparse.ArgumentParser(prog=f"mtalign {name}", description=commands[name][1])
    module.add_arguments(command_parser)
    args = command_parser.parse_args(argv[1:])
    try:
        with signals.sigterm_as_interrupt():  # `kill`, `timeout`, SLURM: stop as cleanly as Ctrl-C does
            return int(module.run(args) or 0)
    except (ValueError, FileNotFoundError, ModuleNotFoundError) as err:
        # Bad input is reported as one clear line, not a traceback.
        print(f"mtalign {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mtalign {name}: interrupted; files written so far are kept", file=sys.stderr)
        return 128 + (signals.received or 2)  # 130 for SIGINT, 143 for SIGTERM, as the shell reports them
