"""The JUNO experiment plug-in: configuration → exact truth model."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ...errors import ConfigError
from ...physics import reactor
from ...physics.backgrounds import SHAPES, BackgroundCategory
from ...physics.detector import DetectorConfig, EventSample, simulate_events
from ...physics.ibd import PROMPT_OFFSET
from ...physics.oscillation import ORDERINGS, is_ordering
from ...physics.predictors import (
    ENERGY_VARIABLES,
    MCPairs,
    OscillationSettings,
    ReactorSource,
    ResponseMatrixPredictor,
    ReweightPredictor,
    is_energy_variable,
)
from ...physics.rates import Exposure
from ..base import (
    Experiment,
    check_exposure,
    check_oscillation_parameters,
    for_ordering,
    integer,
    parameter_specs,
)

METHODS = ("matrix", "reweight")
# Sane ranges of the configuration's physical numbers: far outside them a value is a typo, and
# the spectrum would overflow to inf/NaN (which oscflow never reports as a result).
MAX_POWER_GW = 1000.0  # a core's thermal power is a few GW
BASELINE_KM = (0.001, 13_000.0)  # from 1 m to the Earth's diameter
MAX_FREE_PROTONS = 1e36  # ~700 × JUNO's 20 kt
MAX_DENSITY = 20.0  # g/cm³; the Earth's core is ~13
MAX_RESOLUTION = 1.0  # a resolution term of 100 %
MAX_RATE_PER_DAY = 1e6  # background events per day (JUNO's IBD rate is ~50/day)
# The E_ν range of the model, above the IBD threshold (1.806 MeV): reactor spectra end near
# 12 MeV, the default (16.8) is seed 003's window; larger ranges only cost time.
NEUTRINO_ENERGY_MAX = (1.9, 30.0)
FINE_BINS = (100, 100_000)
WINDOW_FACTOR = 2.0  # binning.emax <= this × neutrino_energy_max
SHAPE_PARAM_MAX = 1000.0  # background-shape parameters are MeV energies, widths or fractions
SHAPE_SCALES = frozenset({"slope", "widths"})  # divide the energy: must be > 0
SHAPE_SCALE_MIN = 1e-3  # MeV
SHAPE_RATIOS = frozenset({"th_u_mass_ratio"})  # mass ratios (geoneutrino Th/U): must be >= 0
REACTOR_CORRECTIONS = ("non_equilibrium", "spent_fuel")  # experiment.reactor switches
ProgressFn = Callable[[int], None]


def _number(
    cfg: Mapping[Any, Any],
    key: str | int,
    path: str,
    positive: bool = False,
    nonneg: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    why: str = "",
) -> float:
    """``cfg[key]`` as a finite float in range, else a ConfigError naming ``path.key``, the
    value, the allowed range (``why``: the reason for it) and the fix."""
    name = f"{path}.{key}"
    raw: Any = cfg.get(key)
    try:
        value = float(raw)
    except (KeyError, TypeError, ValueError):
        raise ConfigError(name, f"missing or not a number ({raw!r})", "give a number") from None
    if isinstance(raw, bool) or not math.isfinite(value):
        raise ConfigError(name, f"{raw!r} is not a finite number", f"give a finite {name}")
    if positive and not value > 0:
        raise ConfigError(name, f"{value:g} must be > 0", f"set {name} to a positive value")
    if nonneg and not value >= 0:
        raise ConfigError(name, f"{value:g} must be >= 0", f"set {name} to a value >= 0")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        if minimum is None and (positive or nonneg):
            lo = "0"
        hi = "+inf" if maximum is None else f"{maximum:g}"
        span = f"{'(' if positive and minimum is None else '['}{lo}, {hi}]"
        raise ConfigError(
            name, f"{value:g} is outside {span}{why}", f"set {name} to a value in {span}"
        )
    return value


def _reactor_corrections(cfg: Mapping[str, Any]) -> dict[str, bool]:
    """``experiment.reactor``: the flux corrections (physics/reactor.py), each true or false;
    a missing key is false (the equilibrium flux)."""
    unknown = set(cfg) - set(REACTOR_CORRECTIONS)
    if unknown:
        raise ConfigError(
            "experiment.reactor", f"unknown keys {sorted(unknown)}", f"use {REACTOR_CORRECTIONS}"
        )
    out = {}
    for key in REACTOR_CORRECTIONS:
        value = cfg.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(
                f"experiment.reactor.{key}", f"{value!r} is not true/false", "set true or false"
            )
        out[key] = value
    return out


def _cores(cfg: Mapping[str, Any]) -> tuple[reactor.Core, ...]:
    corrections = _reactor_corrections(cfg.get("reactor") or {})
    fractions = dict(cfg["fission_fractions"])
    unknown = set(fractions) - set(reactor.ISOTOPES)
    if unknown:
        raise ConfigError(
            "experiment.fission_fractions",
            f"unknown isotopes {sorted(unknown)}",
            f"use {reactor.ISOTOPES}",
        )
    for k in fractions:
        _number(fractions, k, "experiment.fission_fractions", nonneg=True)
    total = sum(float(v) for v in fractions.values())
    if abs(total - 1.0) > 1e-6:
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
                power_gw=_number(c, "power_gw", path, nonneg=True, maximum=MAX_POWER_GW, why=" GW"),
                baseline_km=_number(
                    c,
                    "baseline_km",
                    path,
                    positive=True,
                    minimum=BASELINE_KM[0],
                    maximum=BASELINE_KM[1],
                    why=" km (1 m to the Earth's diameter)",
                ),
                group=str(c["group"]),
                fission_fractions={
                    k: float(v) for k, v in (c.get("fission_fractions") or fractions).items()
                },
                **corrections,
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
    values = {
        k: _number(
            cfg,
            k,
            "experiment.detector",
            nonneg=k.startswith("res_"),
            maximum=MAX_RESOLUTION if k.startswith("res_") else None,
            why=" (a resolution term of at most 100 %)" if k.startswith("res_") else "",
        )
        for k in cfg
    }
    try:
        return DetectorConfig(**values)
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
        raw_window = b.get("norm_window", (0.8, 12.0))
        if isinstance(raw_window, str) or len(raw_window) != 2:
            raise ConfigError(
                f"{path}.norm_window", f"{raw_window!r} is not [low, high]", "give [low, high]"
            )
        ends = dict(enumerate(raw_window))
        window = (
            _number(ends, 0, f"{path}.norm_window"),
            _number(ends, 1, f"{path}.norm_window"),
        )
        if not window[0] < window[1]:
            raise ConfigError(
                f"{path}.norm_window", f"{window} is inverted", "give [low, high] with low < high"
            )
        out.append(
            BackgroundCategory(
                name=str(name),
                rate_per_day=_number(
                    b, "rate_per_day", path, nonneg=True, maximum=MAX_RATE_PER_DAY, why=" per day"
                ),
                rate_uncertainty=_number(b, "rate_uncertainty", path, nonneg=True),
                shape=str(b["shape"]),
                shape_params=_checked_shape(
                    str(b["shape"]),
                    _shape_params(b.get("shape_params") or {}, f"{path}.shape_params"),
                    f"{path}.shape_params",
                ),
                norm_window=window,
                resolution=detector.sigma if b.get("smear", False) else None,
            )
        )
    return tuple(out)


def _checked_shape(shape: str, params: dict[str, Any], path: str) -> dict[str, Any]:
    """``params`` after one evaluation of the shape on a test grid: parameters it cannot take
    (a list for a number, lists of different lengths, a name it does not know, a value its
    physics refuses) are a ConfigError here, not an internal error in a later job."""
    try:
        with np.errstate(all="ignore"):
            SHAPES[shape](np.linspace(0.5, 12.0, 8), **params)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            path,
            f"{params} do not fit the shape {shape!r}: {err}",
            f"give {shape}'s parameters (physics/backgrounds.py), numbers or lists as it takes",
        ) from None
    return params


def _shape_params(cfg: Mapping[str, Any], path: str) -> dict[str, Any]:
    """A background shape's parameters (energies in MeV, widths, fractions): finite numbers
    or lists of them, |x| <= SHAPE_PARAM_MAX; scales (``SHAPE_SCALES``) >= SHAPE_SCALE_MIN,
    ratios (``SHAPE_RATIOS``) >= 0."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        scale = k in SHAPE_SCALES
        low = SHAPE_SCALE_MIN if scale else 0.0 if k in SHAPE_RATIOS else -SHAPE_PARAM_MAX
        why = " MeV (a scale of the shape: at least 1 keV)" if scale else ""
        if k in SHAPE_RATIOS:
            why = " (a mass ratio: chondritic Th/U is 3.9)"
        if isinstance(v, str) or not hasattr(v, "__len__"):
            out[k] = _number(cfg, k, path, minimum=low, maximum=SHAPE_PARAM_MAX, why=why)
        else:
            items = dict(enumerate(v))
            out[k] = [
                _number(items, i, f"{path}.{k}", minimum=low, maximum=SHAPE_PARAM_MAX, why=why)
                for i in items
            ]
    return out


class JunoExperiment(Experiment):
    """JUNO truth model: cores × Huber–Mueller flux × σ_IBD × P_ee × MC detector + backgrounds."""

    name = "juno"
    settings: OscillationSettings
    energy_variables = ENERGY_VARIABLES
    methods = METHODS

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
        if not is_ordering(ordering):
            raise ConfigError(
                "experiment.oscillation.ordering",
                f"{ordering!r} unknown",
                f"use one of {ORDERINGS}",
            )
        self.settings = OscillationSettings(
            ordering=ordering,
            matter=bool(osc.get("matter", True)),
            density=_number(
                osc,
                "density",
                "experiment.oscillation",
                nonneg=True,
                maximum=MAX_DENSITY,
                why=" g/cm³ (the Earth's core is ~13)",
            ),
            electron_fraction=_number(
                osc, "electron_fraction", "experiment.oscillation", minimum=0.0, maximum=1.0
            ),
            model=self.oscillation_model,
        )
        check_oscillation_parameters(self.parameters, self.settings.oscillation)
        self.backgrounds = _backgrounds(cfg.get("backgrounds") or {}, self.detector)
        self.free_protons = _number(
            cfg, "free_protons", "experiment", positive=True, maximum=MAX_FREE_PROTONS
        )
        self.emax_nu = _number(
            cfg,
            "neutrino_energy_max",
            "experiment",
            minimum=NEUTRINO_ENERGY_MAX[0],
            maximum=NEUTRINO_ENERGY_MAX[1],
            why=" MeV (above the IBD threshold; reactor spectra end near 12 MeV)",
        )
        self.response_fine_bins = integer(
            cfg.get("response_fine_bins", 1500), "experiment.response_fine_bins", *FINE_BINS
        )

    @property
    def orderings(self) -> tuple[str, ...]:
        """Both mass orderings (the three-flavour ν̄ₑ survival depends on it)."""
        return ORDERINGS

    def with_ordering(self, ordering: str) -> JunoExperiment:
        """The same experiment with the other (or given) mass ordering, and that ordering's
        nominal values and σ where they differ (|Δm²32|: ``by_ordering`` in the config)."""
        if not is_ordering(ordering):
            msg = f"ordering {ordering!r} is not one of {ORDERINGS}"
            raise ValueError(msg)
        clone = object.__new__(JunoExperiment)
        clone.__dict__.update(self.__dict__)
        clone.settings = dataclasses.replace(self.settings, ordering=ordering)
        clone.parameters = for_ordering(self.parameters, ordering)
        return clone

    def source_names(self) -> tuple[str, ...]:
        return self.source.groups + tuple(b.name for b in self.backgrounds)

    def exposure(self, days: float, efficiency: float) -> Exposure:
        """Live days in (0, config.MAX_DAYS] and a selection efficiency in (0, 1]."""
        check_exposure(days, efficiency)
        return Exposure(
            days=float(days), efficiency=float(efficiency), free_protons=self.free_protons
        )

    def check_edges(self, edges: NDArray[np.float64], energy: str) -> None:
        """The binning must end below WINDOW_FACTOR × experiment.neutrino_energy_max: there
        are no events above the model's E_ν range (a wider window catches the resolution
        tails), and the background shapes are folded on a grid as wide as the window."""
        top = float(np.asarray(edges)[-1])
        limit = WINDOW_FACTOR * self.emax_nu
        if top > limit + 1e-9:
            raise ConfigError(
                "binning.emax",
                f"{top:g} MeV is above {limit:g} MeV, {WINDOW_FACTOR:g} × the model's E_ν range "
                f"(experiment.neutrino_energy_max = {self.emax_nu:g} MeV; {energy} energy): no "
                "events lie there",
                f"set binning.emax <= {limit:g}, or raise experiment.neutrino_energy_max "
                f"(at most {NEUTRINO_ENERGY_MAX[1]:g} MeV)",
            )

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
        if not is_energy_variable(energy):
            raise ConfigError("energy", f"{energy!r} unknown", f"use one of {ENERGY_VARIABLES}")
        if method not in METHODS:
            raise ConfigError("method", f"{method!r} unknown", f"use one of {METHODS}")
        self.check_edges(np.asarray(edges, dtype=np.float64), energy)
        if pairs is None:
            if method == "reweight" or energy == "prompt":
                raise ConfigError(
                    "pairs",
                    "this predictor needs MC pairs",
                    "run the simulate stage or simulate on the fly",
                )
        elif method == "reweight":
            return ReweightPredictor(
                self.source, pairs, edges, energy, self.settings, self.detector
            )
        return ResponseMatrixPredictor(
            self.source,
            edges,
            energy,
            pairs,
            self.settings,
            self.detector,
            emax_nu=self.emax_nu,
            fine_bins=self.response_fine_bins,
        )

    def background_spectra(
        self, edges: NDArray[np.float64], days: float, energy: str
    ) -> dict[str, NDArray[np.float64]]:
        """Expected background counts per bin. Shapes live in prompt energy; in E_ν binning
        they are shown at the IBD-equivalent E_ν = E_prompt + 0.782 MeV (as seed 003 does)."""
        self.check_edges(edges, energy)
        shift = PROMPT_OFFSET if energy == "neutrino" else 0.0
        return {b.name: b.expected(edges - shift, days) for b in self.backgrounds}


def build(cfg: Mapping[str, Any]) -> JunoExperiment:
    return JunoExperiment(cfg)
