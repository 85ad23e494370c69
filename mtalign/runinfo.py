"""What every run writes beside its results: versions, code version, times; and writes that never half-finish.

A report reads these small files, never notebook internals (STYLE.md, rule 4).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mtalign import paths

PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "reasoning-gym", "math-verify", "vllm", "papermill")


def package_versions() -> dict[str, str | None]:
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> tuple[tuple[str, str | None], ...]:  # read once: a study checks every run's record
    versions = []
    for name in PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, None))
    return tuple(versions)


def code_version() -> str:
    """The git commit of the project, with `+dirty` when the work tree has uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=paths.ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit or "unknown") + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Versions and machine facts to store with a run."""
    from mtalign import cpu_bf16

    return {"code_version": code_version(), "engine": engine_digest(), "packages": package_versions(),
            "python": platform.python_version(), "machine": platform.machine(), "hostname": platform.node(),
            "cpu": cpu_bf16.cpu_kind(), "cpu_bf16": cpu_bf16.kernel()}


# -- the engine: the code and packages a run's numbers come from -------------------------------------------------
# A run is reused only when it was computed by the same engine as this process's: its identity (mtalign/identity.py)
# names its settings, model and data, not the code that trained it, so without this check a change to the sampler or
# the trainer would be served runs of the code before it. The files are the package's modules that compute a run's
# or a measurement's numbers (tests/test_report.py adds the run store's own modules and the study's parameter files
# for its provenance check); `mtalign/cpu_bf16.py` is not among them: it computes only on CPUs without bf16
# instructions, each run records which kernel it used, and runs from another kind of CPU are what
# `mtalign study` warns about.
ENGINE_FILES = ("mtalign/train.py", "mtalign/config.py", "mtalign/data.py", "mtalign/evaluate.py",
                "mtalign/trainer.py", "mtalign/precision.py", "mtalign/rewards.py", "mtalign/advantages.py",
                "mtalign/toyworld.py", "mtalign/models.py", "mtalign/sampling.py", "mtalign/decode.py",
                "mtalign/passk.py", "mtalign/tasks")
ENGINE_PACKAGES = tuple(name for name in PACKAGES if name != "papermill")  # those that compute: not the notebook runner


def _engine_paths() -> list[Path]:
    found = []
    for name in ENGINE_FILES:
        path = paths.ROOT / name
        found.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    return found


@functools.lru_cache(maxsize=1)
def engine_digest() -> str:
    """Digest of the engine's source files (ENGINE_FILES), by content: the same on every clone of the same code."""
    digest = hashlib.sha1()
    for path in _engine_paths():
        digest.update(str(path.relative_to(paths.ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def engine_changed_since(commit: str) -> tuple[str, ...] | None:
    """The engine files that differ between `commit` and the working tree, or None where git cannot tell (not a git
    clone, the commit not in it, or a version recorded from uncommitted code)."""
    if not commit or commit == "unknown" or commit.endswith("+dirty"):
        return None
    try:
        done = subprocess.run(["git", "diff", "--name-only", commit, "--", *ENGINE_FILES], cwd=paths.ROOT,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return tuple(done.stdout.split())


def engine_differences(info: dict[str, Any]) -> list[str] | None:
    """How the engine that computed a recorded result (a run's run.json, a cell's `environment`) differs from this
    process's: [] when it is the same, a line per difference, or None when it cannot be told. A record names its
    engine by `engine` (its digest); one written before records had it, by the commit it was computed at, which git
    compares with the working tree."""
    differences = []
    recorded = info.get("packages") or {}
    current = package_versions()
    for name in ENGINE_PACKAGES:
        if name in recorded and recorded[name] != current[name]:
            differences.append(f"{name} {recorded[name]} (now {current[name]})")
    if info.get("engine"):
        if info["engine"] != engine_digest():
            differences.append(f"study code {info['engine']} (now {engine_digest()}; files: "
                               f"{', '.join(ENGINE_FILES)})")
        return differences
    changed = engine_changed_since(str(info.get("code_version") or ""))
    if changed is None:
        return differences or None
    return differences + [f"{name} changed since {info['code_version']}" for name in changed]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_json(path: Path | str, data: Any) -> Path:
    """Write JSON atomically (temporary file, then rename): a reader sees the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600; colleagues sharing the folder must read what we write
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, default=_jsonable)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def umask() -> int:
    """This process's umask, read without changing it (os.umask can only be read by setting it, which races)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)  # no /proc (macOS): set and restore at once
    os.umask(current)
    return current


class DamagedFile(ValueError):
    """A file that exists but cannot be read as what it should be (truncated, not UTF-8, not JSON)."""


def read_json(path: Path | str) -> Any:
    """The JSON in `path`; a damaged file (truncated, not UTF-8) raises DamagedFile naming the path."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedFile(f"{path} is damaged ({type(err).__name__}: {err})") from None


def append_jsonl(path: Path | str, record: dict[str, Any]) -> None:
    """Append one line and flush it, so an interrupted run keeps every finished line readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record, default=_jsonable) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Every complete line of a JSONL file: a torn last line from a killed run, or a line with a byte that is not
    UTF-8, is skipped (each line is decoded on its own, so one bad byte costs one line, not the file)."""
    records = []
    for line in Path(path).read_bytes().splitlines():
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
    return records


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# -- a run folder: finished, and one writer at a time ------------------------------------------------------------
def is_finished(directory: Path, identity_hash: str | None = None) -> bool:
    """A finished run is there; with `identity_hash`, one whose resolved parameters are exactly those (a run recorded
    before identities existed has none, so it never matches) and that the same engine computed
    (`engine_differences`: a run of other code or package versions is trained anew, and the warning says why; one
    whose engine cannot be told, recorded from uncommitted code before runs named their engine, is reused)."""
    if not (directory / "summary.json").exists():
        return False
    try:
        summary = read_json(directory / "summary.json")
    except ValueError as err:  # truncated or not UTF-8: not finished, so it is trained again
        warn(f"{err}; the run counts as not finished")
        return False
    if identity_hash is None:
        return True
    if summary.get("identity_hash") != identity_hash:
        return False
    stale = stale_engine(directory)
    if stale:
        warn(f"{directory}: its run was computed by another engine ({'; '.join(stale)[:500]}); it is not reused")
    return not stale


def stale_engine(directory: Path) -> list[str]:
    """How the engine that trained the run in `directory` differs from this process's ([] when the same or when it
    cannot be told: `engine_differences`)."""
    try:
        info = read_json(directory / "run.json")
    except (OSError, ValueError):
        return []
    return (engine_differences(info) or []) if isinstance(info, dict) else []


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


_held: dict[Path, int] = {}  # run-folder locks this process holds (ensure_run holds one while train takes it again)


@contextlib.contextmanager
def run_lock(directory: Path | str, wait: bool = True):
    """One writer per run folder: an exclusive lock on `<parent>/.<name>.lock` while a run is written there.

    `wait`: block until the other writer is done (the run store: a second notebook then reads the finished run);
    else stop at once with a message naming the folder (`mtalign train`: two runs writing one folder would mix their
    files). Re-entrant within a process, so `ensure_run` can hold it around `train`, which takes it too.
    """
    directory = Path(directory).resolve()
    if _held.get(directory):
        _held[directory] += 1
        try:
            yield
        finally:
            _held[directory] -= 1
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_file = directory.parent / f".{directory.name}.lock"
    with open(lock_file, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise ValueError(f"another process is writing a run in {directory} (it holds {lock_file}); wait for it "
                             "to finish or choose another --out") from None
        _held[directory] = 1
        try:
            yield
        finally:
            _held.pop(directory, None)
            fcntl.flock(handle, fcntl.LOCK_UN)
