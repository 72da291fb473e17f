"""The fit service's setup: the config parsed into the experiment, exposure, binning, predictor,
fit model and observation that every fit of a run shares (``FitSetup``), and the fit options.
``run.py`` computes with it, ``toys.py`` refits it per toy; neither is imported here."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ...config import bin_edges
from ...errors import ConfigError
from ...experiments import load_experiment
from ...stats.likelihood import TERMS
from . import observation as obs
from .model import FitModel, build_parameters
from .predictors import (
    ExactPredictor,
    check_kind,
    exact_predictor,
    other_ordering_uri,
    surrogate_predictor,
)


@dataclasses.dataclass
class ExactPredictors:
    """The experiment's exact predictor per mass ordering, built on first use (the MC pairs
    read or simulated once for all orderings). ``detector_inputs``: the detector parameters
    the predictor takes as inputs, so that a surrogate is refereed like for like."""

    cfg: DictConfig
    experiment: Any
    exposure: Any
    edges: np.ndarray
    energy: str
    detector_inputs: tuple[str, ...] = ()
    _pairs: Any = None
    _built: dict[str, ExactPredictor] = dataclasses.field(default_factory=dict)

    def __call__(self, ordering: str) -> ExactPredictor:
        if ordering not in self._built:
            from .predictors import load_pairs

            # Loaded once for all orderings, and only if the predictor needs MC pairs
            # (Experiment.exact_predictor asks ``needs_pairs``).
            if self._pairs is None and self.experiment.needs_pairs(
                self.energy, str(self.cfg.method)
            ):
                self._pairs = load_pairs(self.cfg, self.experiment)
            pairs, src = self._pairs or (None, None)
            self._built[ordering] = exact_predictor(
                self.cfg,
                self.experiment.with_ordering(ordering),
                self.exposure,
                self.edges,
                self.energy,
                pairs=pairs,
                detector_inputs=self.detector_inputs,
                pairs_from=src,
            )
        return self._built[ordering]


@dataclasses.dataclass
class FitSetup:
    """Everything the fits of one run share: experiment, exposure, binning, fit model,
    observation, and the exact predictors (for the referee, the exact generator, orderings)."""

    cfg: DictConfig
    experiment: Any
    exposure: Any
    edges: np.ndarray
    energy: str
    backgrounds: dict[str, np.ndarray]
    model: FitModel
    truth: dict[str, float]
    observation: obs.Observation
    exacts: ExactPredictors
    by_ordering: dict[str, FitModel] = dataclasses.field(default_factory=dict)

    @property
    def ordering(self) -> str:
        return str(self.experiment.settings.ordering)

    def exact(self, ordering: str | None = None) -> ExactPredictor:
        """The exact predictor for ``ordering`` (default: the fit's)."""
        return self.exacts(ordering or self.ordering)


def _check(cfg: DictConfig) -> None:
    check_kind(str(cfg.predictor))
    if cfg.observation.kind not in obs.KINDS:
        raise ConfigError(
            "observation.kind",
            f"{cfg.observation.kind!r} is unknown",
            "use observation=asimov, toy, real (an experiment's released data) or file "
            "(with observation.path=<file>)",
        )
    if cfg.observation.get("generator", "exact") not in ("exact", "model"):
        raise ConfigError(
            "observation.generator",
            f"{cfg.observation.generator!r} is unknown",
            "use exact or model",
        )


def setup(cfg: DictConfig) -> FitSetup:
    """Build the predictor, fit model and observation described by ``cfg``."""
    _check(cfg)
    experiment = load_experiment(cfg.experiment)
    statistics = {**TERMS, **experiment.statistics()}
    if cfg.statistic not in statistics:
        raise ConfigError(
            "statistic", f"{cfg.statistic!r} is unknown", f"use one of {', '.join(statistics)}"
        )
    truth = experiment.validate_params(dict(cfg.params))
    exposure = experiment.exposure(float(cfg.exposure.days), float(cfg.exposure.efficiency))
    edges = bin_edges(cfg.binning)
    energy = str(cfg.energy)
    if cfg.predictor == "surrogate":
        predictor: Any = surrogate_predictor(cfg, cfg.model_uri, exposure, experiment=experiment)
        predictor.surrogate.check_range(
            {k: v for k, v in truth.items() if cfg.observation.kind not in ("file", "real")}
        )
    else:
        predictor = None
    backgrounds = (
        experiment.background_spectra(edges, exposure.days, energy) if cfg.backgrounds else {}
    )
    taken = predictor.inputs if predictor is not None else tuple(cfg.detector_inputs or ())
    _check_detector_inputs(experiment, taken)
    exacts = ExactPredictors(
        cfg,
        experiment,
        exposure,
        edges,
        energy,
        tuple(n for n in taken if experiment.parameters[n].kind == "detector"),
    )
    if predictor is None:
        predictor = exacts(str(experiment.settings.ordering))
    params = build_parameters(cfg, experiment, predictor, backgrounds)
    model = FitModel(predictor, params, backgrounds, experiment.statistics())
    observation = _observation(cfg, experiment, model, exacts, truth)
    return FitSetup(
        cfg, experiment, exposure, edges, energy, backgrounds, model, truth, observation, exacts
    )


def _check_detector_inputs(experiment: Any, names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in experiment.parameters]
    if unknown:
        raise ConfigError(
            "detector_inputs",
            f"{unknown} are not parameters of {experiment.name}",
            f"choose from {sorted(k for k, s in experiment.parameters.items() if s.kind == 'detector')}",
        )


def truth_vector(fs: FitSetup, model: FitModel) -> np.ndarray:
    """Parameter vector of the truth: ``params`` (detector parameters too, where given:
    ``+params.escale=1.005``) and nominal nuisances otherwise."""
    return _truth(fs.experiment, model, fs.truth)


def _truth(experiment: Any, model: FitModel, truth: dict[str, float]) -> np.ndarray:
    x = model.values_of({k: v for k, v in truth.items() if k in model.index})
    for i, p in enumerate(model.parameters):
        if p.kind in ("flux", "background"):
            x[i] = 1.0
        elif p.kind == "detector" and p.name not in truth:
            x[i] = experiment.parameters[p.name].nominal
    return x


def _observation(
    cfg: DictConfig,
    experiment: Any,
    model: FitModel,
    exacts: ExactPredictors,
    truth: dict[str, float],
) -> obs.Observation:
    kind = str(cfg.observation.kind)
    integer = cfg.statistic == "poisson"
    edges = exacts.edges
    if kind == "file":
        return obs.from_file(cfg.observation, edges, integer)
    if kind == "real":
        counts, source = experiment.observed_counts()
        return obs.released(counts, edges, source, integer)
    gen_model = model
    if cfg.observation.generator == "exact" and model.predictor.kind != "exact":
        gen_model = model.with_predictor(exacts(str(experiment.settings.ordering)))
    expected = gen_model.expected(_truth(experiment, gen_model, truth))
    obs.check_counts(expected, integer=False, key="params")
    if kind == "asimov":
        return obs.asimov(expected, edges, truth)
    return obs.toys(expected, edges, truth, int(cfg.observation.n_toys), int(cfg.observation.seed))


def fit_options(cfg: DictConfig) -> dict[str, Any]:
    return {
        "minos": bool(cfg.minos),
        "strategy": int(cfg.strategy),
        "tolerance": float(cfg.tolerance),
        "ncall": None if cfg.max_calls is None else int(cfg.max_calls),
        "prescan": bool(cfg.get("prescan", True)),
        "derivatives": str(cfg.get("derivatives", "numerical")),
    }


def ordering_models(fs: FitSetup) -> dict[str, FitModel]:
    """Fit model per mass ordering for the Δχ²(IO−NO) comparison (see conf/fit.yaml): the
    surrogate and its pair (or ``other_ordering_model``); the exact predictor for both
    orderings where the surrogate covers one. Built once per setup."""
    if not fs.by_ordering:
        fs.by_ordering.update(_ordering_models(fs))
    return fs.by_ordering


def _ordering_models(fs: FitSetup) -> dict[str, FitModel]:
    other = "inverted" if fs.ordering == "normal" else "normal"
    if fs.model.predictor.kind == "exact":
        return {fs.ordering: fs.model, other: fs.model.with_predictor(fs.exact(other))}
    uri = other_ordering_uri(fs.cfg, other)
    if uri is not None:
        named = bool(fs.cfg.other_ordering_model)
        pred = surrogate_predictor(fs.cfg, uri, fs.exposure, ordering=other, follow_pair=not named)
        return {fs.ordering: fs.model, other: fs.model.with_predictor(pred)}
    return {o: fs.model.with_predictor(fs.exact(o)) for o in (fs.ordering, other)}
