"""Promotion gates: thresholds on a model version's accuracy against the exact model.

A gate ``{metric: {max: x}}`` (or ``min``) reads the version tag
``oscflow.validation.<metric>`` (written by the validate service on fresh parameter points)
or, if the version was not validated yet, ``oscflow.metric.<metric>`` (the training run's
held-out split). Both are measured against the exact predictor (oscflow.surrogate.accuracy)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

SOURCES = ("oscflow.validation.", "oscflow.metric.")


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    value: float | None
    bound: str  # "<= 0.05" or ">= 0.9"
    margin: float | None  # how far inside (+) or outside (−) the bound, in the metric's units
    source: str | None  # the tag the value came from
    what: str = ""

    def describe(self) -> str:
        if self.value is None:
            return (
                f"{self.gate}: not measured (no {' or '.join(s + self.gate for s in SOURCES)} tag)"
            )
        verdict = "pass" if self.passed else f"FAIL by {abs(self.margin or 0):.4g}"
        return f"{self.gate} = {self.value:.4g} (needs {self.bound}): {verdict}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_config(gates: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The platform's gates with an experiment's own merged over them, validated."""
    merged = {**dict(gates), **dict(extra or {})}
    for name, gate in merged.items():
        if not isinstance(gate, Mapping) or ("max" in gate) == ("min" in gate):
            raise ConfigError(
                f"gates.{name}", "needs exactly one of max or min", f"e.g. gates.{name}.max=0.05"
            )
    return merged


def evaluate(tags: Mapping[str, str], gates: Mapping[str, Any]) -> list[GateResult]:
    """Every gate's result for a version with these tags."""
    results = []
    for name, gate in gates.items():
        value, source = None, None
        for prefix in SOURCES:
            raw = tags.get(prefix + name)
            if raw is not None:
                try:
                    value, source = float(raw), prefix + name
                except ValueError:
                    continue
                break
        if "max" in gate:
            limit, bound = float(gate["max"]), f"<= {float(gate['max']):g}"
            margin = None if value is None else limit - value
        else:
            limit, bound = float(gate["min"]), f">= {float(gate['min']):g}"
            margin = None if value is None else value - limit
        passed = value is not None and not math.isnan(value) and margin is not None and margin >= 0
        results.append(
            GateResult(name, passed, value, bound, margin, source, str(gate.get("what", "")))
        )
    return results
