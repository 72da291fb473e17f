"""Reactor-spectrum predictors for fits: a registered surrogate or an exact predictor, both
returning reactor counts (B, K) at the fit's exposure for a batch of named parameter points."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from omegaconf import DictConfig

from ...errors import ConfigError
from ...experiments.base import Experiment
from ...physics.rates import Exposure

PREDICTORS = ("surrogate", "exact")


class ReactorPredictor(Protocol):
    """What a fit needs: the parameters taken, their allowed ranges, counts for a batch.

    A predictor may also offer ``reactors_and_jacobian(points) -> (counts (B, K), ∂counts/
    ∂input (B, K, n_inputs))`` (the surrogate: autograd); ``FitModel.expected_and_jacobian``
    falls back to batched central finite differences of ``reactors`` for those that do not."""

    kind: str
    inputs: tuple[str, ...]
    edges: NDArray[np.float64]
    energy: str

    def ranges(self) -> dict[str, tuple[float, float]]: ...

    def reactors(self, points: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]: ...

    def info(self) -> dict[str, Any]: ...


class SurrogatePredictor:
    """A registered surrogate (``registry.reactors.SurrogateReactors``) at a fixed exposure."""

    kind = "surrogate"

    def __init__(self, surrogate: Any, exposure: Exposure) -> None:
        self.surrogate = surrogate
        self.exposure = exposure
        self.inputs = tuple(surrogate.inputs)
        self.edges = surrogate.edges
        self.energy = surrogate.energy
        self._fixed = dict(surrogate.spec.fixed)
        self._scale = surrogate.scale(exposure)

    def ranges(self) -> dict[str, tuple[float, float]]:
        return self.surrogate.ranges()

    def reactors(self, points: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        size = max(np.size(v) for v in points.values())
        cols = [
            np.broadcast_to(np.asarray(points.get(k, self._fixed.get(k)), dtype=np.float64), size)
            for k in self.inputs
        ]
        return self.surrogate.predict_float64(np.stack(cols, axis=1), self.exposure)

    def reactors_and_jacobian(
        self, points: Mapping[str, NDArray[np.float64]]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Counts (B, K) and ∂counts/∂input (B, K, n_inputs, order of ``inputs``): the
        network's own derivative (torch autograd, float64), not finite differences."""
        size = max(np.size(v) for v in points.values())
        cols = [
            np.broadcast_to(np.asarray(points.get(k, self._fixed.get(k)), dtype=np.float64), size)
            for k in self.inputs
        ]
        return self.surrogate.predict_float64_and_jacobian(np.stack(cols, axis=1), self.exposure)

    def info(self) -> dict[str, Any]:
        return self.surrogate.info()


class ExactPredictor:
    """The experiment's exact predictor (response matrix or event re-weighting)."""

    kind = "exact"

    def __init__(
        self,
        experiment: Experiment,
        predictor: Any,
        exposure: Exposure,
        info: dict[str, Any],
        detector_inputs: tuple[str, ...] = (),
    ) -> None:
        """``detector_inputs``: detector parameters to take as inputs (each change re-runs the
        detector reconstruction of the MC pairs: slow, used to referee surrogates that take
        them)."""
        allowed = tuple(getattr(predictor, "detector_parameters", ()))
        bad = [k for k in detector_inputs if k not in allowed]
        if bad:
            raise ConfigError(
                "model",
                f"the exact predictor cannot vary {bad}",
                f"use {allowed}" if allowed else "take no detector inputs",
            )
        self.experiment = experiment
        self.predictor = predictor
        self.exposure = exposure
        oscillation = tuple(k for k, s in experiment.parameters.items() if s.kind == "oscillation")
        self.inputs = oscillation + tuple(detector_inputs)
        self.edges = np.asarray(predictor.edges, dtype=np.float64)
        self.energy = str(predictor.energy)
        self._info = info

    def ranges(self) -> dict[str, tuple[float, float]]:
        out = {}
        for k in self.inputs:
            lo, hi = self.experiment.parameters[k].bounds
            out[k] = (-np.inf if lo is None else float(lo), np.inf if hi is None else float(hi))
        return out

    def reactors(self, points: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        by_group = self.predictor.predict(dict(points), self.exposure)
        return np.sum(list(by_group.values()), axis=0)

    def info(self) -> dict[str, Any]:
        return dict(self._info)


def load_pairs(cfg: DictConfig, experiment: Any) -> tuple[Any, str]:
    """MC pairs for the exact prompt-energy predictors (as ``oscflow predict`` finds them)."""
    from ...data.simulate import load_pairs as _load

    return _load(cfg, experiment)


def exact_predictor(
    cfg: DictConfig,
    experiment: Any,
    exposure: Exposure,
    edges: NDArray[np.float64],
    energy: str,
    method: str | None = None,
    pairs: Any = None,
    detector_inputs: tuple[str, ...] = (),
    pairs_from: str | None = None,
) -> ExactPredictor:
    """An exact predictor for ``experiment`` (its ordering; ``Experiment.exact_predictor``),
    with the given MC pairs (from ``pairs_from``) or, where it needs some, the configured ones
    read or simulated once."""
    method = str(method or cfg.method)
    given = pairs

    def loader() -> tuple[Any, str]:
        return (given, str(pairs_from)) if given is not None else load_pairs(cfg, experiment)

    predictor, origin = experiment.exact_predictor(edges, energy, method, loader)
    info = {"kind": "exact", "method": method, "mc_pairs": origin}
    return ExactPredictor(experiment, predictor, exposure, info, detector_inputs)


def surrogate_predictor(
    cfg: DictConfig,
    uri: str | None,
    exposure: Exposure,
    ordering: str | None = None,
    follow_pair: bool = True,
) -> SurrogatePredictor:
    """The surrogate at ``uri`` from the configured tracking store, refused unless it was
    trained for the fit's request (``SurrogateReactors.check_request``: experiment, binning,
    settings, the parameters it does not take); ``ordering`` overrides the request's mass
    ordering (the model for the other ordering of a Δχ²(IO−NO) comparison). A version trained
    for the other ordering answers through its registered pair (``registry/pairs.py``) unless
    ``follow_pair`` is false (a model the user named for that ordering is used as named)."""
    from omegaconf import OmegaConf

    from ...config import bin_edges
    from ...registry.pairs import partner_uri
    from ...registry.reactors import SurrogateReactors
    from ...tracking.runs import tracking_uri

    store = tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir)
    reactors = SurrogateReactors.load(uri, store)
    wanted = ordering or OmegaConf.select(cfg, "experiment.oscillation.ordering")
    trained = reactors.trained_ordering()
    if follow_pair and wanted and trained and trained != wanted:
        partner = partner_uri(str(uri), str(wanted), store)
        if partner is not None:
            reactors = SurrogateReactors.load(partner, store)
    reactors.check_request(
        cfg.experiment,
        {str(k): float(v) for k, v in cfg.params.items()},
        bin_edges(cfg.binning),
        str(cfg.energy),
        ordering=ordering,
        ranges=False,  # the fit checks its truth point (not for file or released data)
    )
    return SurrogatePredictor(reactors, exposure)


def other_ordering_uri(cfg: DictConfig, ordering: str) -> str | None:
    """The surrogate for ``ordering`` beside ``cfg.model_uri``: ``other_ordering_model`` if
    given, else the version's registered pair (None: the model covers one ordering)."""
    from ...registry.pairs import partner_uri
    from ...tracking.runs import tracking_uri

    if cfg.other_ordering_model:
        return str(cfg.other_ordering_model)
    if not cfg.model_uri:
        return None
    store = tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir)
    return partner_uri(str(cfg.model_uri), ordering, store)


def check_kind(kind: str) -> str:
    if kind not in PREDICTORS:
        raise ConfigError("predictor", f"{kind!r} is unknown", f"use one of {PREDICTORS}")
    return kind
