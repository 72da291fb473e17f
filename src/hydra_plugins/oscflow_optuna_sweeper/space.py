"""Search spaces written in config, validated before any trial, sampled define-by-run.

Entry forms (key = a config key or a config group, e.g. ``optim.lr`` or ``model``):
``{type: float, low, high, log: false, step: null}``, ``{type: int, low, high, log, step}``,
``{type: categorical, choices: [...]}`` (choices may be lists, e.g. layer widths: they are
passed to Optuna as their Hydra override text). ``conditional`` maps a categorical key to
per-choice sub-spaces, sampled only when that choice is drawn (e.g. sizes per architecture).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna

TYPES = ("float", "int", "categorical")


class SearchSpaceError(ValueError):
    """A malformed search-space entry; the message names it and says what is allowed."""


def _check_entry(key: str, spec: Any) -> None:
    where = f"hydra.sweeper.params.{key}"
    if not isinstance(spec, Mapping):
        raise SearchSpaceError(f"{where}: expected a mapping with 'type', got {spec!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise SearchSpaceError(f"{where}: unknown distribution type {kind!r}; use one of {TYPES}")
    allowed = (
        {"type", "low", "high", "log", "step"} if kind != "categorical" else {"type", "choices"}
    )
    extra = set(spec) - allowed
    if extra:
        raise SearchSpaceError(
            f"{where}: unknown fields {sorted(extra)} for type {kind}; allowed {sorted(allowed)}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise SearchSpaceError(f"{where}: categorical needs a non-empty list 'choices'")
        return
    if "low" not in spec or "high" not in spec:
        raise SearchSpaceError(f"{where}: {kind} needs 'low' and 'high'")
    low, high = spec["low"], spec["high"]
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise SearchSpaceError(
            f"{where}: low and high must be numbers ({low!r}, {high!r})"
        ) from None
    if low > high:
        raise SearchSpaceError(f"{where}: low = {low:g} > high = {high:g}; swap them")
    if spec.get("log") and low <= 0:
        raise SearchSpaceError(f"{where}: log scale needs low > 0 (got {low:g})")


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested entries (``optim: {lr: {type: ...}}``) as dotted keys (``optim.lr``); a nested
    entry replaces a dotted one given before it."""
    out: dict[str, Any] = {}
    for key, spec in params.items():
        name = f"{prefix}{key}"
        if (
            isinstance(spec, Mapping)
            and spec
            and "type" not in spec
            and all(isinstance(v, Mapping) for v in spec.values())
        ):
            out.update(flatten(spec, f"{name}."))
        else:
            out[name] = spec
    return out


def validate(params: Mapping[str, Any], conditional: Mapping[str, Any]) -> None:
    """Raise SearchSpaceError for the first malformed entry."""
    if not params:
        raise SearchSpaceError(
            "hydra.sweeper.params: the search space is empty; give at least one parameter"
        )
    for key, spec in params.items():
        _check_entry(key, spec)
    for key, per_choice in conditional.items():
        if key not in params or params[key].get("type") != "categorical":
            raise SearchSpaceError(
                f"hydra.sweeper.conditional.{key}: must name a categorical parameter in params"
            )
        choices = {_encode(c) for c in params[key]["choices"]}
        for choice, sub in (per_choice or {}).items():
            if _encode(choice) not in choices:
                raise SearchSpaceError(
                    f"hydra.sweeper.conditional.{key}.{choice}: not one of the choices of {key}"
                )
            for sub_key, spec in (sub or {}).items():
                _check_entry(sub_key, spec)


def keys(params: Mapping[str, Any], conditional: Mapping[str, Any]) -> list[str]:
    """Every config key the space may set."""
    out = list(params)
    for per_choice in conditional.values():
        for sub in (per_choice or {}).values():
            out.extend(sub or {})
    return out


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(
        list(value) if isinstance(value, list | tuple) else value, separators=(",", ":")
    )


def _suggest_one(trial: optuna.Trial, key: str, spec: Mapping[str, Any]) -> Any:
    kind = spec["type"]
    if kind == "categorical":
        return trial.suggest_categorical(key, [_encode(c) for c in spec["choices"]])
    step = spec.get("step")
    log = bool(spec.get("log", False))
    if kind == "int":
        return trial.suggest_int(
            key, int(spec["low"]), int(spec["high"]), step=int(step or 1), log=log
        )
    return trial.suggest_float(key, float(spec["low"]), float(spec["high"]), step=step, log=log)


def suggest(
    trial: optuna.Trial, params: Mapping[str, Any], conditional: Mapping[str, Any]
) -> dict[str, Any]:
    """Sample a point: top-level entries, then the sub-space of each drawn choice."""
    values = {key: _suggest_one(trial, key, spec) for key, spec in params.items()}
    for key, per_choice in conditional.items():
        chosen = values[key]
        for choice, sub in (per_choice or {}).items():
            if _encode(choice) == chosen:
                for sub_key, spec in (sub or {}).items():
                    values[sub_key] = _suggest_one(trial, sub_key, spec)
    return values


def to_override(key: str, value: Any) -> str:
    """Hydra override text ``key=value`` (lists pass through as their JSON text)."""
    if isinstance(value, float):
        return f"{key}={value!r}"
    return f"{key}={value}"
