"""One fit: the statistic of data vs the model plus pull terms, minimised by iminuit's MIGRAD,
errors by HESSE (and MINOS on request); with ``derivatives="analytic"`` both get the cost's exact
gradient and Hessian (``derivatives.CostDerivatives``) instead of MINUIT's finite differences. A fit that MIGRAD/HESSE do not declare valid, or that
ends on the edge of a surrogate's training range, is not a result: ``FitNotConverged``."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import OscflowError
from ...stats.blas_threads import one_blas_thread
from ...stats.likelihood import total_function
from .derivatives import cost_derivatives
from .model import FitModel


class FitNotConverged(OscflowError):
    """The minimiser did not converge: the diagnostics say how (never reported as a result)."""

    def __init__(self, what: str, diagnostics: dict[str, Any]) -> None:
        self.diagnostics = diagnostics
        bad = [k for k, v in diagnostics.get("flags", {}).items() if v not in (False, [], None)]
        super().__init__(
            f"{what}: the fit did not converge (flags: {', '.join(bad) or 'none'}). Fix: start "
            "closer to the minimum (start.<name>=...), fix poorly constrained parameters "
            "(free=[...]), or check that the data match the model"
        )


@dataclass
class FitOutcome:
    """Best fit, errors, validity and cost of one minimisation."""

    model: FitModel
    values: NDArray[np.float64]
    errors: NDArray[np.float64]
    fval: float
    data_stat: float
    pulls: float
    valid: bool
    flags: dict[str, Any]
    nfcn: int
    wall_s: float
    correlation: NDArray[np.float64]
    free: tuple[str, ...]
    minos: dict[str, tuple[float, float]] = field(default_factory=dict)
    minuit: Any = None
    ngrad: int = 0
    nhessian: int = 0

    def value(self, name: str) -> float:
        return float(self.values[self.model.index[name]])

    def error(self, name: str) -> float:
        return float(self.errors[self.model.index[name]])

    def to_dict(self, statistic: str) -> dict[str, Any]:
        n_bins = len(self.model.edges) - 1
        n_priors = sum(1 for p in self.model.parameters if p.prior is not None and not p.fixed)
        return {
            "valid": self.valid,
            "flags": self.flags,
            "parameters": {
                p.name: {
                    "value": float(self.values[i]),
                    "error": float(self.errors[i]),
                    "minos": list(self.minos[p.name]) if p.name in self.minos else None,
                    "fixed": p.fixed,
                    "kind": p.kind,
                    "prior": list(p.prior) if p.prior else None,
                    "limits": [float(p.limits[0]), float(p.limits[1])],
                }
                for i, p in enumerate(self.model.parameters)
            },
            "correlation": {"names": list(self.free), "matrix": self.correlation.tolist()},
            "statistic": {
                "name": statistic,
                "value": self.fval,
                "data": self.data_stat,
                "pulls": self.pulls,
                # bins + pull terms of free parameters − free parameters
                "ndf": n_bins + n_priors - len(self.free),
            },
            "nfcn": self.nfcn,
            "ngrad": self.ngrad,
            "nhessian": self.nhessian,
            "wall_s": self.wall_s,
        }


def cost_function(model: FitModel, data: NDArray[np.float64], statistic: str) -> Any:
    """x (P,) → statistic(data, expected(x)) + pulls(x), on one BLAS thread (a fit's products
    are a few hundred rows: ``stats.blas_threads``; once per evaluation, not per product)."""
    total = total_function(model.terms(statistic))
    data = np.asarray(data, dtype=np.float64)

    def cost(x: NDArray[np.float64]) -> float:
        with one_blas_thread():
            return float(total(data, model.expected(x)) + model.pulls(x))

    return cost


@dataclass(frozen=True)
class Prescan:
    """The grid of the Δm²32 pre-scan (± ``width`` steps of the parameter, ``n`` points), shared
    by the one-at-a-time and the batched fitters."""

    name: str = "dm2_32"
    n: int = 161
    width: float = 8.0


PRESCAN = Prescan()


def prescan_start(
    model: FitModel,
    data: NDArray[np.float64],
    statistic: str,
    start: NDArray[np.float64],
    name: str = PRESCAN.name,
    n: int = PRESCAN.n,
    width: float = PRESCAN.width,
) -> NDArray[np.float64]:
    """Start value of ``name`` from a batched 1-D scan (± ``width`` steps): the χ² in Δm²31 has
    many local minima (one per oscillation period), MIGRAD alone may stop in the wrong one."""
    if name not in model.index or model.parameters[model.index[name]].fixed:
        return start
    p_i = model.index[name]
    p = model.parameters[p_i]
    grid = np.linspace(start[p_i] - width * p.step, start[p_i] + width * p.step, n)
    grid = np.clip(grid, p.limits[0], p.limits[1])
    x = np.repeat(start[None, :], n, axis=0)
    x[:, p_i] = grid
    stat = model.terms(statistic)(data[None, :], model.expected_batch(x)).sum(axis=1) + model.pulls(
        x
    )
    out = start.copy()
    out[p_i] = grid[int(np.argmin(stat))]
    return out


def training_range_edges(model: FitModel, values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """(N, P): free oscillation or detector parameters of a surrogate's fit within 1e-3 of
    the training range's width of its edge (the surrogate is not trusted there)."""
    values = np.atleast_2d(values)
    out = np.zeros(values.shape, dtype=bool)
    if model.predictor.kind != "surrogate":
        return out
    for i, p in enumerate(model.parameters):
        if p.fixed or p.kind not in ("oscillation", "detector"):
            continue
        lo, hi = p.limits
        tol = 1e-3 * (hi - lo)
        out[:, i] = (values[:, i] - lo < tol) | (hi - values[:, i] < tol)
    return out


def at_training_range_edge(model: FitModel, values: NDArray[np.float64]) -> NDArray[np.bool_]:
    """(N,): some parameter of the fit is at a training-range edge (``training_range_edges``)."""
    return np.asarray(training_range_edges(model, values).any(axis=1))


def _migrad_hesse(
    m: Any, kind: str, exact: bool, ncall: int | None, retry: bool, minos: bool
) -> dict[str, tuple[float, float]]:
    """MIGRAD, HESSE (twice for a surrogate with numerical derivatives), one careful retry,
    MINOS on request: its errors."""
    m.migrad(ncall=ncall)
    if m.valid:
        m.hesse()
        if kind == "surrogate" and not exact:
            # A ReLU network is piecewise linear in its inputs: a first HESSE can straddle a
            # kink and return errors ~10× too small (~1 % of toy fits); a second, careful
            # HESSE from the steps the first one refined gave the right errors in every case.
            # (Exact derivatives have no steps to refine: their HESSE is final.)
            m.strategy = 2
            m.hesse()
    if retry and not (m.valid and m.fmin.has_accurate_covar) and not m.fmin.has_reached_call_limit:
        # One more MIGRAD from where it stopped with the most careful strategy (full Hessian
        # at every step), then HESSE: recovers fits that stopped on a rough (surrogate) surface.
        m.strategy = 2
        m.migrad(ncall=ncall)
        if m.valid:
            m.hesse()
    if minos and m.valid:
        m.minos()
        return {k: (float(v.lower), float(v.upper)) for k, v in m.merrors.items()}
    return {}


def minimize(
    model: FitModel,
    data: NDArray[np.float64],
    statistic: str,
    *,
    minos: bool = False,
    strategy: int = 1,
    tolerance: float = 0.1,
    ncall: int | None = None,
    start: NDArray[np.float64] | None = None,
    prescan: bool = True,
    retry: bool = True,
    derivatives: str = "numerical",
) -> FitOutcome:
    """Minimise; ``valid`` says whether the result can be used (see module docstring)."""
    from iminuit import Minuit

    t0 = time.perf_counter()
    x0 = model.starts() if start is None else np.asarray(start, dtype=np.float64)
    if prescan:
        x0 = prescan_start(model, data, statistic, x0)
    cost = cost_function(model, data, statistic)
    exact = cost_derivatives(model, data, statistic, derivatives)
    with warnings.catch_warnings():
        # iminuit 2.33 warns that a Hessian makes g2 unused, yet its MIGRAD calls g2 on some
        # paths and fails without one ("'NoneType' object is not callable": the 21-parameter
        # Daya Bay fit): both are given, the warning is wrong here.
        warnings.filterwarnings("ignore", "hessian overrides g2", category=RuntimeWarning)
        m = Minuit(
            cost,
            x0,
            name=model.names,
            grad=None if exact is None else exact.gradient,
            hessian=None if exact is None else exact.minuit_hessian,
            g2=None if exact is None else exact.g2,
        )
    m.errordef = Minuit.LEAST_SQUARES  # χ²-like: Δ = 1 is one σ
    m.errors = [p.step for p in model.parameters]
    m.limits = [p.limits for p in model.parameters]
    for p in model.parameters:
        m.fixed[p.name] = p.fixed
    m.strategy = strategy
    m.tol = tolerance
    # Surrogates are evaluated in float64 for fits (registry/reactors.py): Minuit's default
    # double-precision assumption holds for every predictor. One BLAS thread for the whole fit
    # (the cost's own block is then free: no thread switching per evaluation).
    with one_blas_thread():
        merrors = _migrad_hesse(m, model.predictor.kind, exact is not None, ncall, retry, minos)
    free = tuple(p.name for p in model.parameters if not p.fixed)
    fmin = m.fmin
    values = np.array(m.values, dtype=np.float64)
    edges = training_range_edges(model, values[None, :])[0]
    at_edge = [p.name for p, e in zip(model.parameters, edges, strict=True) if e]
    flags = {
        "is_valid": bool(fmin.is_valid),
        "has_accurate_covar": bool(fmin.has_accurate_covar),
        "has_posdef_covar": bool(fmin.has_posdef_covar),
        "hesse_failed": bool(fmin.hesse_failed),
        "is_above_max_edm": bool(fmin.is_above_max_edm),
        "has_reached_call_limit": bool(fmin.has_reached_call_limit),
        "has_parameters_at_limit": bool(fmin.has_parameters_at_limit),
        "at_training_range_edge": at_edge,
    }
    valid = bool(
        fmin.is_valid
        and fmin.has_accurate_covar
        and fmin.has_posdef_covar
        and not fmin.hesse_failed
        and not at_edge
    )
    if m.covariance is not None and free:
        corr_full = np.asarray(m.covariance.correlation())
        idx = [model.index[n] for n in free]
        corr = corr_full[np.ix_(idx, idx)]
    else:
        corr = np.zeros((len(free), len(free)))
    pulls = float(model.pulls(values))
    return FitOutcome(
        model=model,
        values=values,
        errors=np.array(m.errors, dtype=np.float64),
        fval=float(m.fval),
        data_stat=float(m.fval) - pulls,
        pulls=pulls,
        valid=valid,
        flags=flags,
        nfcn=int(m.nfcn),
        wall_s=time.perf_counter() - t0,
        correlation=corr,
        free=free,
        minos=merrors,
        minuit=m,
        ngrad=int(m.ngrad),
        nhessian=int(m.nhessian),
    )
