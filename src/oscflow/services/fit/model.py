"""The fit model: parameters (oscillation, detector, flux and background normalisations) →
expected counts per bin, and the Gaussian pull terms of the constrained ones.

expected(θ) = f_flux · reactors(oscillation, detector) + Σ_b α_b · background_b

``f_flux`` is a reactor-flux normalisation (prior 1 ± σ_flux), ``α_b`` each background's rate
normalisation (prior 1 ± the experiment's relative rate uncertainty), detector parameters have
the experiment's priors (nominal ± σ). Any parameter can carry an extra prior (e.g. sin²θ13).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError
from ...stats.likelihood import TERMS, TermsFn, gaussian_pull
from .predictors import ReactorPredictor

FLUX = "flux_norm"
BKG_PREFIX = "bkg_"
# Central finite-difference step of a predictor input without its own Jacobian, in units of
# the parameter's step (its prior or PDG σ): truncation error ~ (1e-3 σ)² × the third
# derivative, far below the statistical precision; round-off ~ 1e-16 / 1e-3 in float64.
FD_STEP = 1e-3


@dataclass(frozen=True)
class FitParameter:
    """One fit parameter: start value, initial step, limits, fixed or free, optional prior."""

    name: str
    start: float
    step: float
    limits: tuple[float, float]
    fixed: bool = False
    prior: tuple[float, float] | None = None  # (centre, sigma)
    kind: str = "oscillation"  # oscillation | detector | flux | background


class FitModel:
    """Expected spectrum and pulls for a vector of parameter values (order of ``names``)."""

    def __init__(
        self,
        predictor: ReactorPredictor,
        parameters: Sequence[FitParameter],
        backgrounds: Mapping[str, NDArray[np.float64]],
        statistics: Mapping[str, TermsFn] | None = None,
    ) -> None:
        """``statistics``: the experiment's own statistics beside ``stats.likelihood.TERMS``."""
        self.predictor = predictor
        self.statistics = {**TERMS, **(statistics or {})}
        self.parameters = tuple(parameters)
        self.names = tuple(p.name for p in self.parameters)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.backgrounds = {k: np.asarray(v, dtype=np.float64) for k, v in backgrounds.items()}
        self._physics = [n for n in self.names if n in predictor.inputs]
        self._bkg_names = list(self.backgrounds)
        self._bkg_index = [self.index.get(BKG_PREFIX + b) for b in self._bkg_names]
        self._bkg_matrix = (
            np.stack([self.backgrounds[b] for b in self._bkg_names])
            if self._bkg_names
            else np.zeros((0, len(predictor.edges) - 1))
        )
        self._flux = self.index.get(FLUX)
        priors = [(i, p.prior) for i, p in enumerate(self.parameters) if p.prior is not None]
        self._prior_idx = np.array([i for i, _ in priors], dtype=int)
        self._prior_c = np.array([pr[0] for _, pr in priors], dtype=np.float64)
        self._prior_s = np.array([pr[1] for _, pr in priors], dtype=np.float64)

    @property
    def edges(self) -> NDArray[np.float64]:
        return self.predictor.edges

    @property
    def free(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters if not p.fixed)

    def starts(self) -> NDArray[np.float64]:
        return np.array([p.start for p in self.parameters], dtype=np.float64)

    def values_of(self, values: Mapping[str, float]) -> NDArray[np.float64]:
        """Vector from a mapping; parameters not given take their start values."""
        x = self.starts()
        for k, v in values.items():
            x[self.index[k]] = float(v)
        return x

    def _components(self, x: NDArray[np.float64]) -> tuple[NDArray, NDArray, NDArray]:
        """(reactors (B, K), flux factor (B, 1), background weights (B, n_bkg)) for x (B, P)."""
        points = {n: x[:, self.index[n]] for n in self._physics}
        return self._components_of(x, self.predictor.reactors(points))

    def _components_of(
        self, x: NDArray[np.float64], reactors: NDArray[np.float64]
    ) -> tuple[NDArray, NDArray, NDArray]:
        flux = x[:, self._flux][:, None] if self._flux is not None else np.ones((len(x), 1))
        w = np.ones((len(x), len(self._bkg_names)))
        for j, i in enumerate(self._bkg_index):
            if i is not None:
                w[:, j] = x[:, i]
        return reactors, flux, w

    def expected_batch(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expected counts (B, K) for parameter vectors x (B, P)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        reactors, flux, w = self._components(x)
        return flux * reactors + w @ self._bkg_matrix

    def expected_and_jacobian(
        self, x: NDArray[np.float64], *, free_only: bool = False
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Expected counts μ (M, K) and their Jacobian ∂μ/∂x (M, K, P) for parameter vectors
        x (M, P): the batched fitter's model (``stats.batched_fit.fit_batch``).

        With μ = f_flux · R(oscillation, detector) + Σ_b α_b · background_b:

        * ∂μ/∂(oscillation or detector input) = f_flux · ∂R/∂input: the predictor's own
          Jacobian where it has one (``reactors_and_jacobian``: the surrogate's torch autograd
          in float64), otherwise central finite differences of ``predictor.reactors``,
          batched over the M points (two predictor calls per input, step ``FD_STEP`` × the
          parameter's step): the exact predictors;
        * ∂μ/∂f_flux = R and ∂μ/∂α_b = background_b: analytic (μ is linear in them).

        ``free_only``: leave the columns of fixed parameters zero (the finite differences
        then skip them; a fitter never uses them)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        m, p = x.shape
        if p != len(self.names):
            msg = f"x must have {len(self.names)} columns ({', '.join(self.names)}), got {p}"
            raise ValueError(msg)
        points = {n: x[:, self.index[n]] for n in self._physics}
        k = self._bkg_matrix.shape[1]
        jac = np.zeros((m, k, p))
        pred = self.predictor
        if hasattr(pred, "reactors_and_jacobian"):
            reactors, d_r = pred.reactors_and_jacobian(points)
            inputs = list(pred.inputs)
            cols = {n: d_r[:, :, inputs.index(n)] for n in self._physics}
        else:
            reactors = pred.reactors(points)
            cols = {}
            for n in self._physics:
                param = self.parameters[self.index[n]]
                if free_only and param.fixed:
                    continue
                h = FD_STEP * param.step
                up = {**points, n: points[n] + h}
                down = {**points, n: points[n] - h}
                cols[n] = (pred.reactors(up) - pred.reactors(down)) / (2.0 * h)
        _, flux, w = self._components_of(x, reactors)
        for n, col in cols.items():
            jac[:, :, self.index[n]] = flux * col
        if self._flux is not None:
            jac[:, :, self._flux] = reactors
        for j, i in enumerate(self._bkg_index):
            if i is not None:
                jac[:, :, i] = self._bkg_matrix[j]
        if free_only:
            jac[:, :, [i for i, q in enumerate(self.parameters) if q.fixed]] = 0.0
        return flux * reactors + w @ self._bkg_matrix, jac

    def linear(self) -> NDArray[np.bool_]:
        """(P,) True for the reactor-flux and background normalisations: μ above is jointly
        affine in them (the batched fitter's exact Hessian needs no model call for them)."""
        out = np.zeros(len(self.names), dtype=bool)
        for i in [self._flux, *self._bkg_index]:
            if i is not None:
                out[i] = True
        return out

    def expected(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Expected counts (K,) for one parameter vector (P,)."""
        return self.expected_batch(np.asarray(x, dtype=np.float64)[None, :])[0]

    def by_source(self, x: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """Expected counts per source (reactors, then each background) at x (P,)."""
        reactors, flux, w = self._components(np.asarray(x, dtype=np.float64)[None, :])
        out = {"reactors": flux[0] * reactors[0]}
        for j, b in enumerate(self._bkg_names):
            out[b] = w[0, j] * self._bkg_matrix[j]
        return out

    def pulls(self, x: NDArray[np.float64]) -> float | NDArray[np.float64]:
        """Σ ((x − centre)/σ)² over parameters with priors; x (P,) or (B, P)."""
        if not self._prior_idx.size:
            return 0.0 if np.ndim(x) == 1 else np.zeros(len(x))
        xs = np.asarray(x, dtype=np.float64)[..., self._prior_idx]
        return np.sum(gaussian_pull(xs, self._prior_c, self._prior_s), axis=-1)

    def pull_derivatives(
        self, x: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Gradient (P,) and the diagonal of the Hessian (P,) of ``pulls`` at x (P,):
        2(x − c)/σ² and 2/σ² for the parameters with priors, 0 elsewhere."""
        grad = np.zeros(len(self.names))
        hess = np.zeros(len(self.names))
        if self._prior_idx.size:
            x = np.asarray(x, dtype=np.float64)
            inv = 1.0 / self._prior_s**2
            grad[self._prior_idx] = 2.0 * (x[self._prior_idx] - self._prior_c) * inv
            hess[self._prior_idx] = 2.0 * inv
        return grad, hess

    @property
    def prior_names(self) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self._prior_idx)

    def prior_widths(self) -> NDArray[np.float64]:
        return self._prior_s.copy()

    def with_prior_centres(self, centres: NDArray[np.float64]) -> FitModel:
        """The same model with the priors centred elsewhere (order of ``prior_names``): toys
        fluctuate these auxiliary measurements as well as the counts."""
        clone = object.__new__(FitModel)
        clone.__dict__.update(self.__dict__)
        clone._prior_c = np.asarray(centres, dtype=np.float64)
        return clone

    def with_predictor(self, predictor: ReactorPredictor) -> FitModel:
        """The same parameters and backgrounds with another predictor (limits re-derived)."""
        ranges = predictor.ranges()
        params = [
            replace(p, limits=ranges[p.name]) if p.name in ranges else p for p in self.parameters
        ]
        return FitModel(predictor, params, self.backgrounds, self.statistics)

    def terms(self, statistic: str) -> TermsFn:
        """Per-bin terms function of the named statistic."""
        try:
            return self.statistics[statistic]
        except KeyError:
            raise ConfigError(
                "statistic", f"{statistic!r} is unknown", f"use one of {', '.join(self.statistics)}"
            ) from None


def build_parameters(
    cfg: Any,
    experiment: Any,
    predictor: ReactorPredictor,
    backgrounds: Mapping[str, NDArray[np.float64]],
) -> list[FitParameter]:
    """Fit parameters from the config: oscillation parameters the predictor takes (free if in
    ``free``, else fixed at ``start``/``params``), its detector inputs (nuisances with the
    experiment's priors), flux and background normalisations (``nuisances``), extra ``priors``."""
    inputs = tuple(predictor.inputs)
    ranges = predictor.ranges()
    specs = experiment.parameters
    free = [str(n) for n in cfg.free]
    unknown = [n for n in free if n not in specs]
    if unknown:
        raise ConfigError(
            "free",
            f"{unknown} are not parameters of {experiment.name}",
            f"choose from {', '.join(specs)}",
        )
    not_taken = [n for n in free if n not in inputs]
    if not_taken:
        raise ConfigError(
            "free",
            f"the {predictor.kind} predictor does not take {not_taken} as inputs "
            f"(it takes {list(inputs)})",
            "fit only parameters the model takes, or use a model trained with them as inputs",
        )
    foreign = [n for n in inputs if n not in specs]
    if foreign:
        raise ConfigError(
            "model",
            f"the model takes inputs {foreign} that {experiment.name} does not define",
            "use a model trained for this experiment configuration",
        )
    start_cfg = {k: v for k, v in (cfg.start or {}).items() if v is not None}
    bad_start = [k for k in start_cfg if k not in specs]
    if bad_start:
        raise ConfigError("start", f"unknown parameters {bad_start}", f"use {', '.join(specs)}")
    unused = [k for k in start_cfg if k not in inputs]
    if unused:
        raise ConfigError(
            f"start.{unused[0]}",
            f"the {predictor.kind} predictor does not take {unused} (it takes {list(inputs)}): "
            "a start value for it would be ignored",
            f"drop start.{unused[0]}, or use a model trained with it among its inputs",
        )
    params_cfg = dict(cfg.params)
    priors_cfg = {str(k): v for k, v in (cfg.priors or {}).items() if v is not None}
    known = set(inputs) | {FLUX} | {BKG_PREFIX + b for b in backgrounds}
    for k in priors_cfg:
        if k not in known:
            raise ConfigError(
                f"priors.{k}",
                "is not a parameter of this fit",
                f"use one of {', '.join(sorted(known))}",
            )
    nuis = cfg.nuisances
    out: list[FitParameter] = []
    for name in inputs:
        spec = specs[name]
        lo, hi = ranges[name]
        prior = spec.prior
        if spec.kind == "detector":
            start = float(start_cfg.get(name, spec.nominal))
            fixed = not bool(nuis.detector.free)
        else:
            start = float(start_cfg.get(name, params_cfg.get(name, spec.nominal)))
            fixed = name not in free
        if name in priors_cfg:
            prior = _prior(priors_cfg[name], f"priors.{name}")
        if not lo <= start <= hi:
            raise ConfigError(
                f"start.{name}",
                f"{start:g} is outside the allowed range [{lo:g}, {hi:g}] of the "
                f"{predictor.kind} predictor",
                "start inside it",
            )
        out.append(FitParameter(name, start, spec.sigma, (lo, hi), fixed, prior, spec.kind))
    flux_sigma = float(nuis.flux.sigma)
    out.append(
        FitParameter(
            FLUX,
            1.0,
            max(flux_sigma, 0.01),
            (0.5, 1.5),
            fixed=not bool(nuis.flux.free) or flux_sigma <= 0,
            prior=_prior(priors_cfg[FLUX], f"priors.{FLUX}")
            if FLUX in priors_cfg
            else ((1.0, flux_sigma) if flux_sigma > 0 else None),
            kind="flux",
        )
    )
    rate_sigma = {b.name: float(b.rate_uncertainty) for b in getattr(experiment, "backgrounds", ())}
    for b in backgrounds:
        sigma = rate_sigma.get(b, 0.0)
        name = BKG_PREFIX + b
        out.append(
            FitParameter(
                name,
                1.0,
                max(sigma, 0.01),
                (0.0, max(3.0, 1.0 + 5.0 * sigma)),
                fixed=not bool(nuis.backgrounds.free) or sigma <= 0,
                prior=_prior(priors_cfg[name], f"priors.{name}")
                if name in priors_cfg
                else ((1.0, sigma) if sigma > 0 else None),
                kind="background",
            )
        )
    return out


def _prior(node: Any, key: str) -> tuple[float, float]:
    try:
        centre, sigma = float(node["centre"]), float(node["sigma"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            key,
            f"{node!r} is not {{centre, sigma}}",
            f"e.g. {key}={{centre: 0.022, sigma: 0.0007}}",
        ) from None
    if not sigma > 0:
        raise ConfigError(f"{key}.sigma", f"{sigma:g} must be > 0", "give a positive width")
    return centre, sigma
