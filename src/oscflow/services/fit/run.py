"""The fit service's computation: config → predictors, observation, fits (both orderings,
referee, toys, scans) → the JSON-ready result. No MLflow recording here (``recording.py``)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ...config import bin_edges
from ...errors import ConfigError
from ...experiments import load_experiment
from ...stats.likelihood import TERMS
from . import observation as obs
from .minimize import FitNotConverged, FitOutcome, minimize
from .model import FitModel, build_parameters
from .predictors import (
    ExactPredictor,
    check_kind,
    exact_predictor,
    surrogate_predictor,
    training_ordering,
)

ABBREV = {"normal": "NO", "inverted": "IO"}


@dataclasses.dataclass
class FitSetup:
    """Everything the fits share: experiment, exposure, binning, model, observation."""

    cfg: DictConfig
    experiment: Any
    exposure: Any
    edges: np.ndarray
    energy: str
    backgrounds: dict[str, np.ndarray]
    model: FitModel  # set by ``setup`` (None only while an exact fit's predictor is built)
    truth: dict[str, float]
    observation: obs.Observation  # set by ``setup``
    _pairs: Any = None
    _exact: dict[str, ExactPredictor] = dataclasses.field(default_factory=dict)

    @property
    def ordering(self) -> str:
        return str(self.experiment.settings.ordering)

    def exact(self, ordering: str | None = None) -> ExactPredictor:
        """The exact predictor for ``ordering`` (built once; MC pairs read or simulated once)."""
        ordering = ordering or self.ordering
        if ordering not in self._exact:
            from .predictors import load_pairs

            need = self.experiment.needs_pairs(self.energy, str(self.cfg.method))
            if need and self._pairs is None:
                self._pairs = load_pairs(self.cfg, self.experiment)
            pairs, src = self._pairs or (None, None)
            exp = self.experiment.with_ordering(ordering)
            # referee a surrogate like for like: the same detector inputs (none for exact fits)
            taken = self.model.predictor.inputs if self.model is not None else ()
            det = tuple(n for n in taken if exp.parameters[n].kind == "detector")
            pred = exact_predictor(
                self.cfg,
                exp,
                self.exposure,
                self.edges,
                self.energy,
                pairs=pairs,
                detector_inputs=det,
                pairs_from=src,
            )
            self._exact[ordering] = pred
        return self._exact[ordering]


def _check(cfg: DictConfig) -> None:
    check_kind(str(cfg.predictor))
    if cfg.observation.kind not in obs.KINDS:
        raise ConfigError(
            "data",
            f"{cfg.observation.kind!r} is unknown",
            "use data=asimov, data=toy, data=real (an experiment's released data) or data=<file>",
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
        predictor: Any = surrogate_predictor(cfg, cfg.model_uri, exposure)
        predictor.surrogate.check_binning(edges, energy)
        if predictor.surrogate.spec.experiment != experiment.name:
            raise ConfigError(
                "model",
                f"the surrogate is for {predictor.surrogate.spec.experiment}, "
                f"the fit for {experiment.name}",
                "use a model registered for this experiment",
            )
        trained = training_ordering(predictor)
        if trained is not None and trained != experiment.settings.ordering:
            raise ConfigError(
                "model",
                f"the surrogate was trained for the {trained} ordering, the fit assumes "
                f"{experiment.settings.ordering}",
                f"set experiment.oscillation.ordering={trained} or use another model",
            )
        predictor.surrogate.check_range(
            {k: v for k, v in truth.items() if cfg.observation.kind not in ("file", "real")}
        )
    else:
        predictor = None
    backgrounds = (
        experiment.background_spectra(edges, exposure.days, energy) if cfg.backgrounds else {}
    )
    fs = FitSetup(cfg, experiment, exposure, edges, energy, backgrounds, None, truth, None)  # type: ignore[arg-type]
    if predictor is None:
        predictor = fs.exact()
    params = build_parameters(cfg, experiment, predictor, backgrounds)
    fs.model = FitModel(predictor, params, backgrounds, experiment.statistics())
    fs.observation = _observation(cfg, fs)
    return fs


def _truth_vector(fs: FitSetup, model: FitModel) -> np.ndarray:
    """Parameter vector of the truth: ``params`` and nominal nuisances."""
    x = model.values_of({k: v for k, v in fs.truth.items() if k in model.index})
    for i, p in enumerate(model.parameters):
        if p.kind in ("flux", "background"):
            x[i] = 1.0
        elif p.kind == "detector":
            x[i] = fs.experiment.parameters[p.name].nominal
    return x


def _observation(cfg: DictConfig, fs: FitSetup) -> obs.Observation:
    kind = str(cfg.observation.kind)
    integer = cfg.statistic == "poisson"
    if kind == "file":
        return obs.from_file(cfg.observation, fs.edges, integer)
    if kind == "real":
        counts, source = fs.experiment.observed_counts()
        return obs.released(counts, fs.edges, source, integer)
    gen_model = fs.model
    if cfg.observation.generator == "exact" and fs.model.predictor.kind != "exact":
        gen_model = fs.model.with_predictor(fs.exact())
    expected = gen_model.expected(_truth_vector(fs, gen_model))
    obs.check_counts(expected, integer=False, key="params")
    if kind == "asimov":
        return obs.asimov(expected, fs.edges, fs.truth)
    return obs.toys(
        expected, fs.edges, fs.truth, int(cfg.observation.n_toys), int(cfg.observation.seed)
    )


def fit_options(cfg: DictConfig) -> dict[str, Any]:
    return {
        "minos": bool(cfg.minos),
        "strategy": int(cfg.strategy),
        "tolerance": float(cfg.tolerance),
        "ncall": None if cfg.max_calls is None else int(cfg.max_calls),
    }


def fit_or_raise(model: FitModel, data: np.ndarray, cfg: DictConfig, what: str) -> FitOutcome:
    """Minimise; a fit that did not converge raises ``FitNotConverged`` with its diagnostics."""
    outcome = minimize(model, data, str(cfg.statistic), **fit_options(cfg))
    if not outcome.valid:
        diag = outcome.to_dict(str(cfg.statistic))
        raise FitNotConverged(what, {**diag, "what": what})
    return outcome


def ordering_models(fs: FitSetup) -> dict[str, FitModel]:
    """Fit model per mass ordering for the Δχ²(IO−NO) comparison (see conf/fit.yaml)."""
    other = "inverted" if fs.ordering == "normal" else "normal"
    if fs.model.predictor.kind == "exact":
        return {fs.ordering: fs.model, other: fs.model.with_predictor(fs.exact(other))}
    if fs.cfg.other_ordering_model:
        pred = surrogate_predictor(fs.cfg, str(fs.cfg.other_ordering_model), fs.exposure)
        pred.surrogate.check_binning(fs.edges, fs.energy)
        trained = training_ordering(pred)
        if trained is not None and trained != other:
            raise ConfigError(
                "other_ordering_model",
                f"that surrogate was trained for the {trained} ordering, not {other}",
                f"give a surrogate trained with experiment.oscillation.ordering={other}",
            )
        return {fs.ordering: fs.model, other: fs.model.with_predictor(pred)}
    return {o: fs.model.with_predictor(fs.exact(o)) for o in (fs.ordering, other)}


def mass_ordering(fs: FitSetup, data: np.ndarray, main: FitOutcome | None) -> dict[str, Any]:
    """Fit both orderings; Δχ²(IO−NO) = min χ²(IO) − min χ²(NO)."""
    models = ordering_models(fs)
    fits: dict[str, FitOutcome] = {}
    for ordering, model in models.items():
        if main is not None and model is fs.model:
            fits[ordering] = main
        else:
            fits[ordering] = fit_or_raise(model, data, fs.cfg, f"{ordering} ordering fit")
    return {
        "delta_chi2_io_minus_no": fits["inverted"].fval - fits["normal"].fval,
        "predictor": "+".join(sorted({m.predictor.kind for m in models.values()})),
        "fits": {
            ABBREV[o]: {
                "statistic": f.fval,
                "parameters": {n: f.value(n) for n in f.free},
                "nfcn": f.nfcn,
                "wall_s": f.wall_s,
            }
            for o, f in fits.items()
        },
    }


def referee(fs: FitSetup, data: np.ndarray, main: FitOutcome) -> dict[str, Any]:
    """The same fit with the exact predictor; shift of each parameter in σ of the exact fit."""
    exact = fit_or_raise(fs.model.with_predictor(fs.exact()), data, fs.cfg, "referee fit")
    start = {n: fs.model.parameters[fs.model.index[n]].start for n in main.free}
    steps = {n: fs.model.parameters[fs.model.index[n]].step for n in main.free}
    own = fs.experiment.own_fit(fs.observation.kind, start, steps)
    return {
        "official": own,
        "predictor": fs.exact().info(),
        "statistic": exact.fval,
        "parameters": {
            n: {
                "exact": exact.value(n),
                "exact_error": exact.error(n),
                "surrogate": main.value(n),
                "shift_sigma": (main.value(n) - exact.value(n)) / exact.error(n),
            }
            for n in main.free
        },
        "max_abs_shift_sigma": max(
            abs(main.value(n) - exact.value(n)) / exact.error(n) for n in main.free
        ),
        "nfcn": exact.nfcn,
        "wall_s": exact.wall_s,
    }


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured fit (or toy ensemble) and return the JSON-ready result."""
    return compute(cfg)[0]


def compute(
    cfg: DictConfig, setup_: FitSetup | None = None
) -> tuple[dict[str, Any], FitSetup, FitOutcome | None]:
    """(JSON-ready result, the setup, the main fit outcome or None for a toy ensemble)."""
    t0 = time.perf_counter()
    fs = setup_ or setup(cfg)
    o = fs.observation
    result: dict[str, Any] = {
        "experiment": fs.experiment.name,
        "predictor": fs.model.predictor.info(),
        "statistic": str(cfg.statistic),
        "data": {"kind": o.kind, "source": o.source, "generator": cfg.observation.get("generator")},
        "truth": fs.truth if o.kind not in ("file", "real") else None,
        "ordering": fs.ordering,
        "exposure": dataclasses.asdict(fs.exposure),
        "bin_edges": fs.edges.tolist(),
        "model_uri": cfg.model_uri if cfg.predictor == "surrogate" else None,
        "model_version": fs.model.predictor.info().get("version"),
    }
    if o.counts.ndim == 2 and len(o.counts) > 1:
        from .toys import ensemble

        result["toys"] = ensemble(fs, o.counts)
        result["wall_s"] = time.perf_counter() - t0
        return result, fs, None
    data = o.counts if o.counts.ndim == 1 else o.counts[0]
    main = fit_or_raise(fs.model, data, cfg, f"{fs.ordering} ordering fit")
    result["fit"] = main.to_dict(str(cfg.statistic))
    result["best_fit"] = {n: main.value(n) for n in main.free}
    result["errors"] = {n: main.error(n) for n in main.free}
    result["relative_precision"] = {
        n: main.error(n) / abs(main.value(n)) for n in main.free if main.value(n) != 0
    }
    if cfg.orderings:
        result["mass_ordering"] = mass_ordering(fs, data, main)
    if cfg.referee and fs.model.predictor.kind == "surrogate":
        result["referee"] = referee(fs, data, main)
    if int(cfg.gof_toys) > 0:
        from .toys import goodness_of_fit

        result["goodness_of_fit"] = goodness_of_fit(
            fs, main, int(cfg.gof_toys), int(cfg.observation.get("seed", 0))
        )
    if cfg.scan.profiles or cfg.scan.contours:
        from .scans import scans

        result["scans"] = scans(main, cfg.scan)
    result["expected"] = fs.model.expected(main.values).tolist()
    result["counts"] = data.tolist()
    result["wall_s"] = time.perf_counter() - t0
    return result, fs, main
