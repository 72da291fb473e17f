"""The experiment contract: everything the platform calls on an experiment plug-in.

An experiment is one plug-in (``experiments/<name>/``, a module with ``build(cfg)``) and one
config group (``conf/experiment/<name>.yaml``). The services, the data stages and the command
line call only what :class:`Experiment` declares here; ``tests/test_experiment_contract.py``
runs the same checks against every registered experiment and a minimal stub.

What a plug-in states (each member documented on :class:`Experiment`):

- identity and parameter space: ``name``, ``cfg``, ``parameters`` (``ParameterSpec`` with
  nominal, σ, bounds, unit, source, kind ``oscillation`` or ``detector``), ``validate_params``;
- oscillation: ``settings`` (``ordering``, ``matter``), ``oscillation_model`` (the name of a
  ``physics.oscillation_models`` model), ``orderings`` and ``with_ordering``;
- exposure: ``exposure(days, efficiency)``;
- sources: ``source_names`` (signal groups of the predictor, then backgrounds);
- the exact predictor: ``energy_variables``, ``methods``, ``check_edges``, ``needs_pairs``,
  ``simulate_pairs`` (detector MC, where the predictor needs it), ``predictor`` and the one
  entry point the platform uses, ``exact_predictor``;
- backgrounds: ``background_spectra``; a prediction by source: ``predict``;
- observation: ``observed_counts`` (released data), ``statistics``, ``own_fit``;
- services: ``services`` (which platform services apply, with their overrides).
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ConfigError
from ..physics.oscillation import ORDERINGS, is_ordering
from ..physics.oscillation_models import DEFAULT_MODEL, OscillationModel
from ..physics.predictors import MCPairs
from ..physics.rates import Exposure

# Longest exposure.days: ~270 years of live time is beyond any experiment; larger values are
# typos (and make the counts overflow).
MAX_DAYS = 100_000.0
_MAX_INT = 2**63 - 1


@dataclass(frozen=True)
class ParameterSpec:
    """One model parameter: its nominal value and 1σ, the sampling range in σ, physical bounds.

    ``kind`` is ``oscillation``, ``detector`` (detector-response parameters are optional
    surrogate inputs) or ``nuisance`` (a fit parameter without prior, fixed unless a fit frees
    it: Daya Bay's ``experiment.nuisances``). ``bounds`` are the physically allowed values (None: unbounded).
    ``by_ordering``: (nominal, sigma) per mass ordering where the two differ (|Δm²32|), see
    :func:`for_ordering`.
    """

    name: str
    nominal: float
    sigma: float
    n_sigma: float
    bounds: tuple[float | None, float | None] = (None, None)
    unit: str = ""
    kind: str = "oscillation"
    source: str = ""
    by_ordering: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    @property
    def prior(self) -> tuple[float, float] | None:
        """(centre, σ) of the Gaussian prior a fit profiles this parameter with: a detector
        parameter's nominal ± sigma; None for the others (free, or fixed)."""
        return (self.nominal, self.sigma) if self.kind == "detector" else None

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
        if not math.isfinite(x) or (lo is not None and x < lo) or (hi is not None and x > hi):
            raise ConfigError(
                key,
                f"{x:g} is outside the allowed range {self.describe_bounds()}"
                + (f" ({self.unit})" if self.unit else ""),
                f"set {key} to a value in {self.describe_bounds()}",
            )
        return x


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def show(value: Any) -> str:
    """A value as the user would write it in an override (``null`` for None)."""
    return "null" if value is None else repr(value)


def finite(value: Any, key: str, fix: str) -> float:
    """``value`` as a finite float, else a ConfigError naming ``key``."""
    if isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not a number", fix)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{show(value)} is not a number", fix) from None
    if not math.isfinite(x):
        raise ConfigError(key, f"{x} is not a finite number", fix)
    return x


def integer(
    value: Any, key: str, lo: int | None = None, hi: int | None = None, why: str = ""
) -> int:
    """``value`` as an int if it is one (``400`` or ``400.0``) in [lo, hi], else a ConfigError
    naming ``key`` (``why``: the reason for the range)."""
    low = "-inf" if lo is None else str(lo)
    high = "inf" if hi is None else str(hi)
    allowed = f"an integer in [{low}, {high}]"
    if isinstance(value, bool) or not is_number(value):
        raise ConfigError(key, f"{show(value)} is not an integer", f"give {allowed}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ConfigError(
                key, f"{value!r} is not an integer (it would be truncated)", f"give {allowed}"
            )
        if abs(value) > _MAX_INT:
            raise ConfigError(key, f"{value:g} is too large for an integer", f"give {allowed}")
        value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(key, f"{value} is outside [{low}, {high}]{why}", f"give {allowed}")
    return int(value)


def check_exposure(days: Any, efficiency: Any) -> None:
    """``exposure.days`` in (0, MAX_DAYS] (or null where a job allows it) and
    ``exposure.efficiency`` in (0, 1]."""
    if days is not None:
        fix = f"give the live time in days, in (0, {MAX_DAYS:g}]"
        d = finite(days, "exposure.days", fix)
        if not d > 0:
            raise ConfigError("exposure.days", f"{d:g} must be > 0 (live days)", fix)
        if d > MAX_DAYS:
            raise ConfigError(
                "exposure.days",
                f"{d:g} is more than {MAX_DAYS:g} days (~270 years of live time, beyond any "
                "experiment)",
                fix,
            )
    if efficiency is not None:
        fix = "give a selection efficiency in (0, 1]"
        e = finite(efficiency, "exposure.efficiency", fix)
        if not 0 < e <= 1:
            raise ConfigError("exposure.efficiency", f"{e:g} is outside (0, 1]", fix)


def _bounds(p: Mapping[str, Any], key: str) -> tuple[float | None, float | None]:
    bounds = p.get("bounds") or (None, None)
    fix = f"give {key} as [low, high] with finite numbers (or null for open ends), low < high"
    if isinstance(bounds, str) or len(bounds) != 2:
        raise ConfigError(key, f"{bounds!r} is not a [low, high] pair", fix)
    lo, hi = (None if b is None else finite(b, f"{key}[{i}]", fix) for i, b in enumerate(bounds))
    if lo is not None and hi is not None and not lo < hi:
        raise ConfigError(key, f"[{lo:g}, {hi:g}] is empty or inverted", fix)
    return lo, hi


def parameter_specs(cfg: Mapping[str, Mapping[str, Any]]) -> dict[str, ParameterSpec]:
    """Parameter specs from the ``experiment.parameters`` config node, validated (finite
    numbers, sigma >= 0, n_sigma >= 0, bounds low < high)."""
    specs = {}
    for name, p in cfg.items():
        path = f"experiment.parameters.{name}"
        bounds = _bounds(p, f"{path}.bounds")
        sigma = finite(p["sigma"], f"{path}.sigma", "give the 1σ uncertainty, a number >= 0")
        n_sigma = finite(
            p.get("n_sigma", 3.0), f"{path}.n_sigma", "give the sampling half-width in σ, >= 0"
        )
        for key, x in (("sigma", sigma), ("n_sigma", n_sigma)):
            if x < 0:
                raise ConfigError(f"{path}.{key}", f"{x:g} is negative", "give a number >= 0")
        specs[name] = ParameterSpec(
            name=name,
            nominal=finite(p["nominal"], f"{path}.nominal", "give the nominal value, a number"),
            sigma=sigma,
            n_sigma=n_sigma,
            bounds=bounds,
            unit=str(p.get("unit", "")),
            kind=str(p.get("kind", "oscillation")),
            source=str(p.get("source", "")),
            by_ordering=_by_ordering(p.get("by_ordering") or {}, f"{path}.by_ordering"),
        )
    return specs


def _by_ordering(cfg: Mapping[str, Any], path: str) -> dict[str, tuple[float, float]]:
    out = {}
    for ordering, v in cfg.items():
        if not is_ordering(ordering):
            raise ConfigError(path, f"{ordering!r} is not a mass ordering", f"use {ORDERINGS}")
        nominal = finite(v["nominal"], f"{path}.{ordering}.nominal", "give a number")
        sigma = finite(v["sigma"], f"{path}.{ordering}.sigma", "give a number >= 0")
        if sigma < 0:
            raise ConfigError(f"{path}.{ordering}.sigma", f"{sigma:g} is negative", "give >= 0")
        out[str(ordering)] = (nominal, sigma)
    return out


def check_oscillation_parameters(
    specs: Mapping[str, ParameterSpec], model: OscillationModel
) -> None:
    """The ``kind: oscillation`` parameters of an experiment must be exactly the parameters of
    its oscillation model (``experiment.oscillation.model``): a ConfigError naming both."""
    declared = [k for k, s in specs.items() if s.kind == "oscillation"]
    if sorted(declared) != sorted(model.parameters):
        raise ConfigError(
            "experiment.parameters",
            f"the oscillation parameters {declared} are not those of the {model.name!r} model "
            f"({list(model.parameters)})",
            "declare exactly the model's parameters with kind: oscillation, or choose the "
            "model in experiment.oscillation.model",
        )


def for_ordering(specs: Mapping[str, ParameterSpec], ordering: str) -> dict[str, ParameterSpec]:
    """``specs`` with the nominal value and σ of ``ordering`` where a parameter has one per
    ordering (``by_ordering``), unchanged otherwise."""
    out = dict(specs)
    for name, spec in specs.items():
        if ordering in spec.by_ordering:
            nominal, sigma = spec.by_ordering[ordering]
            out[name] = dataclasses.replace(spec, nominal=nominal, sigma=sigma)
    return out


class ExperimentSettings(Protocol):
    """The truth model's settings every plug-in reports (``Experiment.settings``)."""

    @property
    def ordering(self) -> str: ...

    @property
    def matter(self) -> bool: ...


class SpectrumPredictor(Protocol):
    """An exact predictor for one binning (``Experiment.predictor``): expected counts of each
    source group for one or a batch of parameter points.

    ``parameters``: every name ``predict`` accepts (the oscillation model's, all required, then
    the optional ``detector_parameters`` that re-run the detector response)."""

    @property
    def edges(self) -> NDArray[np.float64]: ...

    @property
    def energy(self) -> str: ...

    @property
    def groups(self) -> tuple[str, ...]: ...

    @property
    def parameters(self) -> tuple[str, ...]: ...

    @property
    def detector_parameters(self) -> tuple[str, ...]: ...

    def predict(
        self, params: Mapping[str, ArrayLike], exposure: Exposure
    ) -> dict[str, NDArray[np.float64]]: ...


# Where an exact predictor gets detector-MC pairs: a loader called only if the predictor needs
# them (``Experiment.needs_pairs``), returning the pairs and where they came from.
PairsLoader = Callable[[], tuple[MCPairs, str]]


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
    """An experiment plug-in: parameter space, exposure, sources, exact predictors,
    backgrounds, observation and the services that apply (see the module docstring).

    Class/instance attributes every plug-in sets: ``name`` (the plug-in's module name, as in
    ``experiment.name``), ``cfg`` (its ``experiment`` config node), ``parameters`` (name →
    ``ParameterSpec``, from ``parameter_specs(cfg["parameters"])``) and ``settings``
    (``ordering``, ``matter``: recorded with every prediction and surrogate)."""

    name: str
    cfg: Mapping[str, Any]
    parameters: dict[str, ParameterSpec]
    settings: ExperimentSettings
    # What ``predictor`` accepts: energy variables of the binning and computation methods.
    energy_variables: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    # ------------------------------------------------------------------ oscillation, orderings

    @property
    def oscillation_model(self) -> str:
        """The name of the oscillation model (``physics.oscillation_models``) the truth model
        computes, from ``experiment.oscillation.model`` (default ``three_flavour``)."""
        osc = self.cfg.get("oscillation") or {}
        return str(osc.get("model", DEFAULT_MODEL))

    @property
    def orderings(self) -> tuple[str, ...]:
        """The mass orderings ``with_ordering`` accepts (default: only the configured one; an
        experiment insensitive to the ordering keeps that)."""
        return (str(self.settings.ordering),)

    @abc.abstractmethod
    def with_ordering(self, ordering: str) -> Experiment:
        """The same experiment with the given mass ordering (one of ``orderings``), and that
        ordering's nominal values; ConfigError or ValueError for any other."""

    # ------------------------------------------------------------------ exposure and sources

    @abc.abstractmethod
    def exposure(self, days: float, efficiency: float) -> Exposure:
        """The checked exposure (live days, selection efficiency) of a prediction; an exposure
        the experiment cannot take is a ConfigError naming ``exposure``."""

    @abc.abstractmethod
    def source_names(self) -> tuple[str, ...]:
        """Names of all reported sources: the predictor's signal groups, then backgrounds."""

    # ------------------------------------------------------------------ exact predictor

    def check_edges(self, edges: NDArray[np.float64], energy: str) -> None:  # noqa: B027
        """Raise ConfigError if the binning ``edges`` (from ``config.bin_edges``) lie outside
        what the truth model covers. Default: any window ``config.bin_edges`` accepts."""

    def needs_pairs(self, energy: str, method: str) -> bool:  # noqa: ARG002 - the Experiment interface
        """Whether ``predictor(energy=…, method=…)`` needs detector-MC pairs (the DVC
        ``simulate`` stage's output). Default: no detector MC."""
        return False

    def simulate_pairs(
        self,
        n: int,
        seed: int,
        chunk: int = 1_000_000,  # noqa: ARG002 - the Experiment interface
        progress: Callable[[int], None] | None = None,  # noqa: ARG002
    ) -> MCPairs:
        """``n`` detector-MC (E_ν, E_rec) pairs drawn with ``seed`` (the ``simulate`` stage),
        for experiments whose predictor ``needs_pairs``. Default: none (ConfigError)."""
        del n, seed
        raise ConfigError(
            "experiment.name",
            f"{self.name} has no detector Monte Carlo: its exact predictor needs no MC pairs",
            "skip the simulate stage for this experiment",
        )

    @abc.abstractmethod
    def predictor(
        self, edges: ArrayLike, energy: str, method: str, pairs: MCPairs | None
    ) -> SpectrumPredictor:
        """An exact predictor of the signal groups for the binning ``edges`` in the energy
        variable ``energy`` (one of ``energy_variables``) by ``method`` (one of ``methods``);
        ``pairs`` where ``needs_pairs``. Unknown energy or method, or a binning outside the
        model (``check_edges``): ConfigError."""

    def exact_predictor(
        self, edges: ArrayLike, energy: str, method: str, pairs: PairsLoader | None = None
    ) -> tuple[SpectrumPredictor, str | None]:
        """The exact predictor of this experiment for a binning and energy variable, and where
        its MC pairs came from (None: it needs none). The one entry point of the platform: MC
        pairs are loaded (``pairs()``) only if ``needs_pairs(energy, method)`` says so."""
        loaded, origin = (None, None)
        if self.needs_pairs(energy, method) and pairs is not None:
            loaded, origin = pairs()
        return self.predictor(edges, energy, method, loaded), origin

    # ------------------------------------------------------------------ backgrounds, prediction

    @abc.abstractmethod
    def background_spectra(
        self, edges: NDArray[np.float64], days: float, energy: str
    ) -> dict[str, NDArray[np.float64]]:
        """Expected background counts per bin, by background, for ``days`` of exposure (empty
        where the backgrounds are part of the predictor's groups)."""

    def predict(
        self,
        params: Mapping[str, ArrayLike],
        exposure: Exposure,
        predictor: SpectrumPredictor,
        backgrounds: bool = True,
    ) -> Prediction:
        """Expected spectrum by source for one or a batch of parameter points: the predictor's
        signal groups, then (``backgrounds``) each of ``background_spectra`` for the exposure,
        the same for every point of the batch."""
        by_source = dict(predictor.predict(params, exposure))
        if backgrounds:
            size = next(iter(by_source.values())).shape[0]
            for name, counts in self.background_spectra(
                predictor.edges, exposure.days, predictor.energy
            ).items():
                by_source[name] = np.broadcast_to(counts, (size, counts.size)).copy()
        return Prediction(edges=predictor.edges, by_source=by_source, energy=predictor.energy)

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

    # ------------------------------------------------------------------ observation

    def observed_counts(self) -> tuple[NDArray[np.float64], str]:
        """The experiment's released data (counts per bin) and where they came from."""
        raise ConfigError(
            "observation",
            f"{self.name} has no released data in oscflow",
            "use observation=asimov, toy or file",
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

    def nuisance_combination(self, n_out: int, nbins: int) -> Any:
        """For a surrogate with ``n_out`` outputs fitted in ``nbins`` bins: None if it predicts
        the spectrum, else what combines its outputs with free nuisance parameters
        analytically (a plug-in that has such surrogates: Daya Bay's ``nuisances``). Default:
        none (the surrogate's binning is checked as it is)."""
        del n_out, nbins
        return None

    # ------------------------------------------------------------------ services

    @property
    def services(self) -> dict[str, list[str]] | None:
        """The platform services its registered models get, with the overrides of their runs
        (``experiment.services``); None: every routed service, as is. The event workers read the
        same block from the model version's config (``events/jobs.experiment_overrides``)."""
        block = self.cfg.get("services")
        if block is None:
            return None
        return {str(k): [str(o) for o in (v or [])] for k, v in block.items()}
