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


def batch_size(points: Mapping[str, Any]) -> int:
    """The number of points in a mapping of scalars and (B,) arrays."""
    return max(v.size if isinstance(v, np.ndarray) else int(np.size(v)) for v in points.values())


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

    def _inputs(self, points: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """(B, n_inputs) in the order of ``inputs``: the points' values, else the fixed ones."""
        x = np.empty((batch_size(points), len(self.inputs)))
        for j, k in enumerate(self.inputs):
            x[:, j] = points.get(k, self._fixed.get(k))  # a scalar or (B,): numpy broadcasts
        return x

    def reactors(self, points: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        return self.surrogate.predict_float64(self._inputs(points), self.exposure)

    def reactors_and_jacobian(
        self, points: Mapping[str, NDArray[np.float64]]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Counts (B, K) and ∂counts/∂input (B, K, n_inputs, order of ``inputs``): the
        network's own derivative (torch autograd, float64), not finite differences."""
        return self.surrogate.predict_float64_and_jacobian(self._inputs(points), self.exposure)

    def info(self) -> dict[str, Any]:
        return self.surrogate.info()


class CombinedSurrogatePredictor:
    """A surrogate of the spectrum and its derivatives in free nuisance parameters (outputs:
    (1 + n) blocks of the K bins, inputs: the oscillation parameters), combined analytically
    with the nuisance values by the experiment's ``combination`` (``Experiment.
    nuisance_combination``; Daya Bay: experiments/dayabay/nuisances.py). Its inputs are the
    surrogate's and the nuisances; its counts (B, K)."""

    kind = "surrogate"

    def __init__(
        self,
        inner: SurrogatePredictor,
        combination: Any,
        specs: Mapping[str, Any],
        edges: NDArray[np.float64],
    ) -> None:
        self.inner = inner
        self.surrogate = inner.surrogate
        self.exposure = inner.exposure
        self.combination = combination
        self.nuisances = tuple(n.name for n in combination.nuisances)
        self.inputs = tuple(inner.inputs) + self.nuisances
        self.edges = np.asarray(edges, dtype=np.float64)
        self.energy = inner.energy
        self._nominal = np.array([float(n.nominal) for n in combination.nuisances])
        self._bounds: dict[str, tuple[float, float]] = {
            n: (float(specs[n].bounds[0]), float(specs[n].bounds[1])) for n in self.nuisances
        }

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {**self.inner.ranges(), **self._bounds}

    def _split(
        self, points: Mapping[str, NDArray[np.float64]]
    ) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.float64]]:
        size = batch_size(points)
        theta = {k: points[k] for k in self.inner.inputs if k in points}
        eta = np.empty((size, len(self.nuisances)))
        eta[:] = self._nominal
        for j, n in enumerate(self.nuisances):
            v = points.get(n)
            if v is not None:
                eta[:, j] = v  # a scalar or (size,): numpy broadcasts the assignment
        if not theta:  # every input at the surrogate's fixed values
            theta = {k: np.full(size, v) for k, v in self.inner._fixed.items()}
        return theta, eta

    def _blocks(self, flat: NDArray[np.float64]) -> NDArray[np.float64]:
        k = len(self.edges) - 1
        return flat.reshape(len(flat), 1 + len(self.nuisances), k, *flat.shape[2:])

    def reactors(self, points: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        theta, eta = self._split(points)
        cols = self._blocks(self.inner.reactors(theta))
        return self.combination(cols, eta)

    def reactors_and_jacobian(
        self, points: Mapping[str, NDArray[np.float64]]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Counts (B, K) and ∂counts/∂input (B, K, n_inputs): the surrogate's autograd for
        its inputs through the combination (chain rule), analytic for the nuisances."""
        theta, eta = self._split(points)
        flat, dflat = self.inner.reactors_and_jacobian(theta)
        cols, dcols = self._blocks(flat), self._blocks(dflat)  # (B, 1+n, K), (B, 1+n, K, m)
        d_theta = self.combination.chain(cols, eta, dcols)
        d_eta = self.combination.jacobian(cols, eta)
        return self.combination(cols, eta), np.concatenate([d_theta, d_eta], axis=2)

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "inputs": list(self.inputs), "nuisances": list(self.nuisances)}


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
        # free nuisance parameters the predictor takes (Daya Bay's published fit): fixed at
        # nominal unless the fit frees them
        nuisance = tuple(getattr(predictor, "nuisance_inputs", ()))
        self.inputs = oscillation + nuisance + tuple(detector_inputs)
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
    experiment: Any = None,
) -> SurrogatePredictor | CombinedSurrogatePredictor:
    """The surrogate at ``uri`` from the configured tracking store, refused unless it was
    trained for the fit's request (``SurrogateReactors.check_request``: experiment, binning,
    settings, the parameters it does not take); ``ordering`` overrides the request's mass
    ordering (the model for the other ordering of a Δχ²(IO−NO) comparison). A version trained
    for the other ordering answers through its registered pair (``registry/pairs.py``) unless
    ``follow_pair`` is false (a model the user named for that ordering is used as named).
    With ``experiment``, a surrogate whose outputs are the spectrum and its derivatives in the
    experiment's free nuisances (``Experiment.nuisance_combination``) is combined with them
    (``CombinedSurrogatePredictor``)."""
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
    edges = bin_edges(cfg.binning)
    combination = (
        None
        if experiment is None
        else experiment.nuisance_combination(reactors.spec.n_out, len(edges) - 1)
    )
    if combination is not None and str(cfg.energy) != reactors.spec.energy:
        reactors.check_binning(edges, str(cfg.energy))  # refuses the energy variable
    reactors.check_request(
        cfg.experiment,
        {str(k): float(v) for k, v in cfg.params.items()},
        edges if combination is None else None,
        str(cfg.energy),
        ordering=ordering,
        ranges=False,  # the fit checks its truth point (not for file or released data)
    )
    plain = SurrogatePredictor(reactors, exposure)
    if combination is None:
        return plain
    return CombinedSurrogatePredictor(plain, combination, experiment.parameters, edges)


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
