"""Notebook parameters as papermill delivers them, turned back into the types their parameters cell declares.

`papermill nb.ipynb out.ipynb -p variants '["random", "majority_vote"]'` injects the *string* '["random", ...]'
(papermill's `-p` only recognises numbers, True/False/None), and a notebook that iterates over it walks its characters.
Every notebook's second cell therefore calls `parse(globals())`: each parameter annotated `list` or `dict` that arrived
as text is read as YAML (JSON is YAML), and a value of the wrong type stops the notebook with a one-line error naming
the parameter before any work starts. `-y` (YAML) and the grid runner already pass real lists and dicts; those pass
through untouched.
"""

from __future__ import annotations

import typing
from typing import Any

import yaml

# What each annotation accepts, and an example for the error message.
_EXAMPLES = {list: '\'["random", "majority_vote"]\'', dict: '\'{"chain_sum": {"size": 3}}\''}


def parse(namespace: dict[str, Any]) -> dict[str, Any]:
    """Coerce the annotated parameters in `namespace` (a notebook's globals()) to their declared types, in place.

    Returns the parameters that changed, by name. Raises ValueError naming the first parameter whose value cannot be
    read as its declared type.
    """
    changed = {}
    for name, kind in namespace.get("__annotations__", {}).items():
        if name not in namespace:
            continue
        value = namespace[name]
        new = coerce(name, value, kind)
        if new is not value:
            namespace[name] = changed[name] = new
    return changed


def coerce(name: str, value: Any, kind: type) -> Any:
    """`value` as `kind` (list, dict, str, int, float, bool); text is read as YAML for list, dict and bool."""
    kind = typing.get_origin(kind) or kind  # list[str] checks as list
    if kind in (list, dict):
        if isinstance(value, str):
            try:
                parsed = yaml.safe_load(value) if value.strip() else kind()
            except yaml.YAMLError as err:
                raise ValueError(f"parameter {name!r}: {value!r} is not valid YAML/JSON "
                                 f"({str(err).splitlines()[0]}); give a {kind.__name__} such as "
                                 f"-p {name} {_EXAMPLES[kind]}") from None
            value = kind() if parsed is None else parsed
        if not isinstance(value, kind):
            raise ValueError(f"parameter {name!r} must be a {kind.__name__}, got {type(value).__name__} {value!r}; "
                             f"give it as YAML/JSON text: -p {name} {_EXAMPLES[kind]} (or -y '{name}: ...')")
        return value
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.strip().lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise ValueError(f"parameter {name!r} must be true or false, got {value!r}")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"parameter {name!r} must be an integer, got {value!r}") from None
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        # `-p model 7` arrives as the int 7; a str parameter meant the text.
        return str(value)
    if kind in (int, float) and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        raise ValueError(f"parameter {name!r} must be a number ({kind.__name__}), got {value!r}")
    return value
