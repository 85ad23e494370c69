"""A run's identity: every resolved parameter its numbers depend on, and the hashes that decide when a finished run
may be reused (only on an exact match) and which runs the report may pool or pair."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from mtalign import models, toyworld
from mtalign.config import RUN_KEYS, Run, definition, resolve


def model_build(model: str) -> dict[str, Any]:
    """What names a model's weights before it is loaded (as `model_identity` names them once loaded from files): a toy
    model's content key (its cached folder name, known without building it), a local file or folder's sizes and
    modification times, an installed SmolLM2's GGUF file, else the hub name as given (its revision is known only
    once loaded)."""
    if models.is_toy(model):
        return {"toy_model": toyworld.model_dir(toyworld.spec(model)).name}
    path = Path(model)
    if model == models.SMOLLM:
        try:
            path = models.smollm_gguf()
        except (ModuleNotFoundError, FileNotFoundError):
            return {"smollm": "not installed"}
    if path.is_file():
        stat = path.stat()
        return {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.is_dir():
        return {"folder": str(path.resolve()),
                "files": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(path.iterdir()) if f.is_file()]}
    return {"hub": model}


def run_identity(run: Run, build: dict[str, Any]) -> dict[str, Any]:
    """Every resolved parameter a run's numbers depend on, as plain JSON: the model and its build, the tasks with
    their arguments, the evaluation tasks, the preset's full settings (overrides applied), the variant's definition
    (semantics included; not its claim, description or optional mark), the strict regex, the seed, the role, and for a variance-selected one_shot the content
    digest of the accuracy log it ranks by. Not where files go, nor the cache of step-0 evaluations."""
    log = None
    if run.accuracy_log is not None and run.variant.data.get("selection", "variance") == "variance" \
            and run.variant.data["kind"] != "full":
        log = hashlib.sha1(Path(run.accuracy_log).read_bytes()).hexdigest()
    identity = {"model": run.model, "model_build": build, "task": run.task, "task_kwargs": run.task_kwargs,
                "eval_tasks": list(run.eval_tasks), "preset": run.preset, "settings": dataclasses.asdict(run.settings),
                "strict_paper_regex": run.strict_paper_regex, "role": run.role,
                "variant": definition(run.variant), "seed": run.seed, "ranking_log": log}
    return json.loads(json.dumps(identity, default=str))  # as it reads back from params.json


# Seeds of one condition pool only when everything but these agrees; a variant is compared only with the ground
# truth of the same settings (everything but these and the variant).
PER_SEED = ("seed", "ranking_log")


def identity_hashes(identity: dict[str, Any]) -> dict[str, str]:
    """`identity_hash` (a run is reused only on an exact match), `settings_hash` (everything a cell's variants and
    seeds share: model and build, tasks, settings, regex, role) and `variant_hash` (the variant's definition)."""
    shared = {k: v for k, v in identity.items() if k not in PER_SEED and k != "variant"}
    return {"identity_hash": _digest(identity), "settings_hash": _digest(shared),
            "variant_hash": _digest(identity["variant"])}


def identity_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The parameters in which two identities differ, as `name: a -> b` (settings and variant fields one by one)."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict) and key in ("settings", "variant"):
            out += [f"{key}.{k}: {x.get(k)!r} -> {y.get(k)!r}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            out.append(f"{key}: {x!r} -> {y!r}")
    return out


def planned_identity(**kwargs: Any) -> dict[str, Any]:
    """The identity (and its hashes) the run `train(**kwargs)` would have, without loading anything."""
    resolvable = {k: v for k, v in kwargs.items() if k in RUN_KEYS or k == "params"}
    run = resolve(resolvable.pop("params", None), **resolvable)
    identity = run_identity(run, model_build(run.model))
    return {"identity": identity, **identity_hashes(identity)}


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


