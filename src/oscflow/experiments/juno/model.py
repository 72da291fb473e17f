"""The JUNO experiment plug-in: configuration → exact truth model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ...errors import ConfigError
from ...physics import reactor
from ...physics.backgrounds import SHAPES, BackgroundCategory
from ...physics.detector import DetectorConfig, EventSample, simulate_events
from ...physics.ibd import PROMPT_OFFSET
from ...physics.oscillation import ORDERINGS
from ...physics.predictors import (
    ENERGY_VARIABLES,
    MCPairs,
    OscillationSettings,
    ReactorSource,
    ResponseMatrixPredictor,
    ReweightPredictor,
)
from ...physics.rates import Exposure
from ..base import Experiment, Prediction, parameter_specs

METHODS = ("matrix", "reweight")
ProgressFn = Callable[[int], None]


def _number(
    cfg: Mapping[str, Any], key: str, path: str, positive: bool = False, nonneg: bool = False
) -> float:
    try:
        value = float(cfg[key])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{path}.{key}", f"missing or not a number ({cfg.get(key)!r})", "give a number"
        ) from None
    if positive and not value > 0:
        raise ConfigError(
            f"{path}.{key}", f"{value:g} must be > 0", f"set {path}.{key} to a positive value"
        )
    if nonneg and not value >= 0:
        raise ConfigError(
            f"{path}.{key}", f"{value:g} must be >= 0", f"set {path}.{key} to a value >= 0"
        )
    return value


def _cores(cfg: Mapping[str, Any]) -> tuple[reactor.Core, ...]:
    fractions = dict(cfg["fission_fractions"])
    unknown = set(fractions) - set(reactor.ISOTOPES)
    if unknown:
        raise ConfigError(
            "experiment.fission_fractions",
            f"unknown isotopes {sorted(unknown)}",
            f"use {reactor.ISOTOPES}",
        )
    total = sum(float(v) for v in fractions.values())
    if any(float(v) < 0 for v in fractions.values()) or abs(total - 1.0) > 1e-6:
        raise ConfigError(
            "experiment.fission_fractions",
            f"{fractions} must be >= 0 and sum to 1 (sum {total:g})",
            "adjust the fractions",
        )
    cores = []
    for i, c in enumerate(cfg["cores"]):
        path = f"experiment.cores[{i}]"
        cores.append(
            reactor.Core(
                name=str(c["name"]),
                power_gw=_number(c, "power_gw", path, nonneg=True),
                baseline_km=_number(c, "baseline_km", path, positive=True),
                group=str(c["group"]),
                fission_fractions={
                    k: float(v) for k, v in (c.get("fission_fractions") or fractions).items()
                },
            )
        )
    if not cores:
        raise ConfigError(
            "experiment.cores", "no reactor cores configured", "list at least one core"
        )
    return tuple(cores)


def _detector(cfg: Mapping[str, Any]) -> DetectorConfig:
    unknown = set(cfg) - set(DetectorConfig.field_names())
    if unknown:
        raise ConfigError(
            "experiment.detector",
            f"unknown keys {sorted(unknown)}",
            f"use {DetectorConfig.field_names()}",
        )
    try:
        return DetectorConfig(**{k: float(v) for k, v in cfg.items()})
    except ValueError as exc:
        raise ConfigError(
            "experiment.detector", str(exc), "correct the detector parameters"
        ) from None


def _backgrounds(
    cfg: Mapping[str, Any], detector: DetectorConfig
) -> tuple[BackgroundCategory, ...]:
    out = []
    for name, b in cfg.items():
        path = f"experiment.backgrounds.{name}"
        if b.get("shape") not in SHAPES:
            raise ConfigError(
                f"{path}.shape",
                f"unknown shape {b.get('shape')!r}",
                f"choose one of {sorted(SHAPES)}",
            )
        window = tuple(float(x) for x in b.get("norm_window", (0.8, 12.0)))
        if not window[0] < window[1]:
            raise ConfigError(
                f"{path}.norm_window", f"{window} is inverted", "give [low, high] with low < high"
            )
        out.append(
            BackgroundCategory(
                name=str(name),
                rate_per_day=_number(b, "rate_per_day", path, nonneg=True),
                rate_uncertainty=_number(b, "rate_uncertainty", path, nonneg=True),
                shape=str(b["shape"]),
                shape_params=dict(b.get("shape_params") or {}),
                norm_window=window,  # type: ignore[arg-type]
                resolution=detector.sigma if b.get("smear", False) else None,
            )
        )
    return tuple(out)


class JunoExperiment(Experiment):
    """JUNO truth model: cores × Huber–Mueller flux × σ_IBD × P_ee × MC detector + backgrounds."""

    name = "juno"

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = cfg
        self.parameters = parameter_specs(cfg["parameters"])
        extrapolation = str(cfg.get("spectrum_extrapolation", "exponential"))
        if extrapolation not in reactor.EXTRAPOLATIONS:
            raise ConfigError(
                "experiment.spectrum_extrapolation",
                f"{extrapolation!r} unknown",
                f"use one of {reactor.EXTRAPOLATIONS}",
            )
        self.source = ReactorSource(_cores(cfg), extrapolation)
        self.detector = _detector(cfg["detector"])
        osc = cfg["oscillation"]
        ordering = str(osc.get("ordering", "normal"))
        if ordering not in ORDERINGS:
            raise ConfigError(
                "experiment.oscillation.ordering",
                f"{ordering!r} unknown",
                f"use one of {ORDERINGS}",
            )
        self.settings = OscillationSettings(
            ordering=ordering,  # type: ignore[arg-type]
            matter=bool(osc.get("matter", True)),
            density=_number(osc, "density", "experiment.oscillation", nonneg=True),
            electron_fraction=_number(
                osc, "electron_fraction", "experiment.oscillation", nonneg=True
            ),
        )
        self.backgrounds = _backgrounds(cfg.get("backgrounds") or {}, self.detector)
        self.free_protons = _number(cfg, "free_protons", "experiment", positive=True)
        self.emax_nu = _number(cfg, "neutrino_energy_max", "experiment", positive=True)
        self.response_fine_bins = int(cfg.get("response_fine_bins", 1500))

    def with_ordering(self, ordering: str) -> JunoExperiment:
        """The same experiment with the other (or given) mass ordering."""
        clone = object.__new__(JunoExperiment)
        clone.__dict__.update(self.__dict__)
        clone.settings = dataclasses.replace(self.settings, ordering=ordering)  # type: ignore[arg-type]
        return clone

    def source_names(self) -> tuple[str, ...]:
        return self.source.groups + tuple(b.name for b in self.backgrounds)

    def exposure(self, days: float, efficiency: float) -> Exposure:
        if not days > 0:
            raise ConfigError(
                "exposure.days", f"{days:g} must be > 0", "give the live time in days"
            )
        if not 0 < efficiency <= 1:
            raise ConfigError(
                "exposure.efficiency",
                f"{efficiency:g} is outside (0, 1]",
                "give a selection efficiency in (0, 1]",
            )
        return Exposure(days=days, efficiency=efficiency, free_protons=self.free_protons)

    def simulate_pairs(
        self, n: int, seed: int, chunk: int = 1_000_000, progress: ProgressFn | None = None
    ) -> MCPairs:
        """n detector-MC events with E_ν drawn from the unoscillated total rate (all cores)."""
        if n <= 0:
            raise ConfigError(
                "data.simulate.n_pairs", f"{n} must be > 0", "ask for at least one event"
            )
        pdf = self.source.sampling_pdf(self.emax_nu)
        rng = np.random.default_rng(seed)
        parts = []
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            parts.append(simulate_events(pdf.sample(size, rng), self.detector, rng))
            if progress:
                progress(size)
        events = EventSample(
            *(
                np.concatenate([getattr(p, f.name) for p in parts])
                for f in dataclasses.fields(EventSample)
            )
        )
        return MCPairs(events=events, pdf=pdf)

    def needs_pairs(self, energy: str, method: str) -> bool:
        return energy == "prompt" or method == "reweight"

    def predictor(
        self,
        edges: ArrayLike,
        energy: str = "prompt",
        method: str = "matrix",
        pairs: MCPairs | None = None,
    ) -> ResponseMatrixPredictor | ReweightPredictor:
        """An exact predictor of the reactor groups for the given binning."""
        if energy not in ENERGY_VARIABLES:
            raise ConfigError("energy", f"{energy!r} unknown", f"use one of {ENERGY_VARIABLES}")
        if method not in METHODS:
            raise ConfigError("method", f"{method!r} unknown", f"use one of {METHODS}")
        if (method == "reweight" or energy == "prompt") and pairs is None:
            raise ConfigError(
                "pairs",
                "this predictor needs MC pairs",
                "run the simulate stage or simulate on the fly",
            )
        if method == "reweight":
            return ReweightPredictor(
                self.source, pairs, edges, energy, self.settings, self.detector
            )  # type: ignore[arg-type]
        return ResponseMatrixPredictor(
            self.source,
            edges,
            energy,
            pairs,
            self.settings,
            self.detector,  # type: ignore[arg-type]
            emax_nu=self.emax_nu,
            fine_bins=self.response_fine_bins,
        )

    def background_spectra(
        self, edges: NDArray[np.float64], days: float, energy: str
    ) -> dict[str, NDArray[np.float64]]:
        """Expected background counts per bin. Shapes live in prompt energy; in E_ν binning
        they are shown at the IBD-equivalent E_ν = E_prompt + 0.782 MeV (as seed 003 does)."""
        shift = PROMPT_OFFSET if energy == "neutrino" else 0.0
        return {b.name: b.expected(edges - shift, days) for b in self.backgrounds}

    def predict(
        self,
        params: Mapping[str, ArrayLike],
        exposure: Exposure,
        predictor: ResponseMatrixPredictor | ReweightPredictor,
        backgrounds: bool = True,
    ) -> Prediction:
        """Expected spectrum by source for one or a batch of parameter points."""
        reactors = predictor.predict(params, exposure)
        by_source = dict(reactors)
        if backgrounds:
            size = next(iter(reactors.values())).shape[0]
            for name, counts in self.background_spectra(
                predictor.edges, exposure.days, predictor.energy
            ).items():
                by_source[name] = np.broadcast_to(counts, (size, counts.size)).copy()
        return Prediction(edges=predictor.edges, by_source=by_source, energy=predictor.energy)


def build(cfg: Mapping[str, Any]) -> JunoExperiment:
    return JunoExperiment(cfg)
