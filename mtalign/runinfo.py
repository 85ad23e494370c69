"""What every run writes beside its results: versions, code version, times; and writes that never half-finish.

A report reads these small files, never notebook internals (STYLE.md, rule 4).
"""

from __future__ import annotations

import contextlib
import fcntl
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
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


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

    return {"code_version": code_version(), "packages": package_versions(), "python": platform.python_version(),
            "machine": platform.machine(), "hostname": platform.node(), "cpu": cpu_bf16.cpu_kind(),
            "cpu_bf16": cpu_bf16.kernel()}


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
    before identities existed has none, so it never matches)."""
    if not (directory / "summary.json").exists():
        return False
    try:
        summary = read_json(directory / "summary.json")
    except ValueError as err:  # truncated or not UTF-8: not finished, so it is trained again
        warn(f"{err}; the run counts as not finished")
        return False
    return identity_hash is None or summary.get("identity_hash") == identity_hash


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
