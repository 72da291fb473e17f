"""What every experiment plug-in provides: a parameter space and an exact truth model."""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError


@dataclass(frozen=True)
class ParameterSpec:
    """One model parameter: its nominal value and 1σ, the sampling range in σ, physical bounds.

    ``kind`` is ``oscillation`` or ``detector`` (detector-response parameters are optional
    surrogate inputs). ``bounds`` are the physically allowed values (None: unbounded).
    """

    name: str
    nominal: float
    sigma: float
    n_sigma: float
    bounds: tuple[float | None, float | None] = (None, None)
    unit: str = ""
    kind: str = "oscillation"
    source: str = ""

    @property
    def sampling_range(self) -> tuple[float, float]:
        """nominal ± n_sigma·sigma, clipped to the physical bounds."""
        lo = self.nominal - self.n_sigma * self.sigma
        hi = self.nominal + self.n_sigma * self.sigma
        if self.bounds[0] is not None:
            lo = max(lo, self.bounds[0])
        if self.bounds[1] is not None:
            hi = min(hi, self.bounds[1])
        return lo, hi

    def describe_bounds(self) -> str:
        lo = "-inf" if self.bounds[0] is None else f"{self.bounds[0]:g}"
        hi = "+inf" if self.bounds[1] is None else f"{self.bounds[1]:g}"
        return f"[{lo}, {hi}]"

    def check(self, value: Any, key: str | None = None) -> float:
        """Return ``value`` as float, or raise ConfigError naming the key and allowed range."""
        key = key or f"params.{self.name}"
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                key, f"{value!r} is not a number", f"give a number in {self.describe_bounds()}"
            ) from None
        lo, hi = self.bounds
        if math.isnan(x) or (lo is not None and x < lo) or (hi is not None and x > hi):
            raise ConfigError(
                key,
                f"{x:g} is outside the allowed range {self.describe_bounds()}"
                + (f" ({self.unit})" if self.unit else ""),
                f"set {key} to a value in {self.describe_bounds()}",
            )
        return x


def parameter_specs(cfg: Mapping[str, Mapping[str, Any]]) -> dict[str, ParameterSpec]:
    """Parameter specs from the ``experiment.parameters`` config node."""
    specs = {}
    for name, p in cfg.items():
        bounds = p.get("bounds") or (None, None)
        specs[name] = ParameterSpec(
            name=name,
            nominal=float(p["nominal"]),
            sigma=float(p["sigma"]),
            n_sigma=float(p.get("n_sigma", 3.0)),
            bounds=(bounds[0], bounds[1]),
            unit=str(p.get("unit", "")),
            kind=str(p.get("kind", "oscillation")),
            source=str(p.get("source", "")),
        )
    return specs


@dataclass(frozen=True)
class Prediction:
    """A binned expected spectrum, split by source, for one or a batch of parameter points."""

    edges: NDArray[np.float64]
    by_source: dict[str, NDArray[np.float64]]  # each (B, K)
    energy: str

    @property
    def counts(self) -> NDArray[np.float64]:
        return sum(
            (v for v in self.by_source.values()),
            start=np.zeros_like(next(iter(self.by_source.values()))),
        )


class Experiment(abc.ABC):
    """An experiment plug-in: parameters, MC generation and exact truth predictors."""

    name: str
    parameters: dict[str, ParameterSpec]

    def validate_params(
        self, values: Mapping[str, Any], prefix: str = "params"
    ) -> dict[str, float]:
        """Check every value against its parameter's bounds; unknown names are errors."""
        out = {}
        for key, value in values.items():
            if key not in self.parameters:
                raise ConfigError(
                    f"{prefix}.{key}",
                    f"{self.name} has no parameter {key!r}",
                    f"use one of {', '.join(self.parameters)}",
                )
            out[key] = self.parameters[key].check(value, f"{prefix}.{key}")
        return out

    def needs_pairs(self, energy: str, method: str) -> bool:  # noqa: ARG002 - the Experiment interface
        """Whether ``predictor(energy=…, method=…)`` needs detector-MC pairs (the DVC
        ``simulate`` stage's output)."""
        return False

    def observed_counts(self) -> tuple[NDArray[np.float64], str]:
        """The experiment's released data (counts per bin) and where they came from."""
        raise ConfigError(
            "data", f"{self.name} has no released data in oscflow", "use data=asimov or a file"
        )

    def statistics(self) -> dict[str, Any]:
        """Experiment-specific test statistics {name: per-bin terms (data, expected)}, used by
        fits beside ``stats.likelihood.TERMS``."""
        return {}

    def own_fit(
        self,
        kind: str,  # noqa: ARG002 - for plug-ins
        start: Mapping[str, float],  # noqa: ARG002
        steps: Mapping[str, float],  # noqa: ARG002
    ) -> dict[str, Any] | None:
        """The truth model's own fit of ``kind`` data (a referee beside ours), if it has one."""
        return None

    @abc.abstractmethod
    def source_names(self) -> tuple[str, ...]:
        """Names of all reported sources (signal groups and backgrounds)."""
