"""The exact gradient and Hessian of a fit's cost, for MIGRAD and HESSE (``derivatives=analytic``).

    cost(x) = F(n, μ(x)) + Σ_p ((x_p − c_p)/σ_p)²
    ∇cost   = Jᵀ ∂F/∂μ + 2(x − c)/σ²
    ∇²cost  = Jᵀ (∂²F/∂μ∂μ) J + Σ_b (∂F/∂μ_b) ∂²μ_b/∂x∂x + diag(2/σ²)

J = ∂μ/∂x comes from the model (``FitModel.expected_and_jacobian``: a surrogate's autograd, a
nuisance combination's analytic columns), F's derivatives from the statistic
(``stats.likelihood.differentiable``: the per-bin statistics, or the covariance χ²'s exact
ones), ∂²μ from forward differences of J: one batched model call for every free parameter
not declared linear (``FitModel.linear``), step ``FD_STEP`` × the parameter's step, inwards at
an upper limit. Their error enters weighted by ∂F/∂μ, small at the minimum (the batched
fitter's exact Hessian does the same, ``stats.batched_fit``).

Why: MINUIT's numerical derivatives cost 2P calls per gradient and O(P²) per Hessian (HESSE
of the 21-parameter Daya Bay fit: ~300 calls). With iminuit's ``grad`` and ``hessian`` a
MIGRAD step is one gradient call and HESSE one Hessian call. A network whose output is only
piecewise smooth in its inputs (ReLU) has no useful ∂²μ: use it with smooth activations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError
from ...stats.likelihood import Differentiable, differentiable
from .model import FitModel

DERIVATIVES = ("numerical", "analytic", "auto")
FD_STEP = 1e-4  # forward-difference step of ∂²μ, in units of each parameter's step


def cost_derivatives(
    model: FitModel, data: NDArray[np.float64], statistic: str, derivatives: str
) -> CostDerivatives | None:
    """The exact derivatives for ``derivatives``: numerical → None (MINUIT's own); analytic →
    ``CostDerivatives`` or a ConfigError saying what is missing; auto → analytic where the
    predictor has a Jacobian and the statistic derivatives, else None."""
    if derivatives not in DERIVATIVES:
        raise ConfigError(
            "derivatives", f"{derivatives!r} is unknown", f"use one of {', '.join(DERIVATIVES)}"
        )
    if derivatives == "numerical":
        return None
    try:
        return CostDerivatives(model, data, statistic)
    except ConfigError:
        if derivatives == "auto":
            return None
        raise


class CostDerivatives:
    """``gradient(x)`` and ``hessian(x)`` of ``minimize.cost_function(model, data, statistic)``
    (module docstring), x (P,) in the order of ``model.names``; the last model evaluation is
    kept, so a gradient and a Hessian at the same point share it."""

    def __init__(self, model: FitModel, data: NDArray[np.float64], statistic: str) -> None:
        stat = differentiable(statistic, model.terms(statistic))
        if stat is None:
            raise ConfigError(
                "derivatives",
                f"derivatives=analytic needs the statistic's derivatives; {statistic!r} has none",
                "use derivatives=numerical (or auto), or a statistic of stats.likelihood",
            )
        if not hasattr(model.predictor, "reactors_and_jacobian"):
            raise ConfigError(
                "derivatives",
                f"derivatives=analytic needs the model's own Jacobian; the {model.predictor.kind} "
                "predictor has none (its derivatives would be finite differences, as MINUIT's)",
                "use derivatives=numerical (or auto) with this predictor",
            )
        self.model = model
        self.stat: Differentiable = stat
        self.data = np.asarray(data, dtype=np.float64)
        params = model.parameters
        self.free = np.array([not p.fixed for p in params])
        self.free_index = np.flatnonzero(self.free)
        self.curved = np.flatnonzero(self.free & ~model.linear())
        self.steps = FD_STEP * np.array([p.step for p in params])
        self.upper = np.array([p.limits[1] for p in params])
        self._last: tuple[bytes, NDArray[np.float64], NDArray[np.float64]] | None = None
        self._hessian: tuple[bytes, NDArray[np.float64]] | None = None

    def _at(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        x = np.asarray(x, dtype=np.float64)
        key = x.tobytes()
        if self._last is None or self._last[0] != key:
            mu, jac = self.model.expected_and_jacobian(x[None, :], free_only=True)
            self._last = (key, mu[0], jac[0])
        return self._last[1], self._last[2]

    def gradient(self, x: Any) -> NDArray[np.float64]:
        x = np.asarray(x, dtype=np.float64)
        mu, jac = self._at(x)
        _, d_mu, _ = self.stat.derivatives(self.data, mu)
        pull, _ = self.model.pull_derivatives(x)
        return np.asarray(jac.T @ d_mu + pull, dtype=np.float64)

    def hessian(self, x: Any) -> NDArray[np.float64]:
        x = np.asarray(x, dtype=np.float64)
        if self._hessian is not None and self._hessian[0] == x.tobytes():
            return self._hessian[1].copy()  # MIGRAD's last and HESSE's: the same point
        out = self._compute_hessian(x)
        self._hessian = (x.tobytes(), out.copy())
        return out

    def g2(self, x: Any) -> NDArray[np.float64]:
        """The Hessian's diagonal: MIGRAD asks for it on some paths (a line search that found
        no descent) even with the full Hessian at hand, and fails without it."""
        return np.asarray(np.diag(self.hessian(x)), dtype=np.float64)

    def minuit_hessian(self, x: Any) -> NDArray[np.float64]:
        """``hessian`` laid out as iminuit 2.33 reads it: it takes the top-left n_free × n_free
        block as the free parameters' Hessian (its internal numbering), so with a fixed
        parameter before a free one the full matrix would give wrong steps and errors (found
        on the published Daya Bay fit: σ(F₀) 1.5 instead of 0.23; ``tests/test_fit_jacobian``
        fixes a parameter in the middle to hold this)."""
        full = self.hessian(x)
        out = np.zeros_like(full)
        n = self.free_index.size
        out[:n, :n] = full[np.ix_(self.free_index, self.free_index)]
        return out

    def _compute_hessian(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        mu, jac = self._at(x)
        _, d_mu, curvature = self.stat.derivatives(self.data, mu, jac)
        assert curvature is not None
        out = curvature + np.diag(self.model.pull_derivatives(x)[1])
        if self.curved.size:
            out += self._second_order(x, jac, d_mu)
        return np.asarray(out, dtype=np.float64)

    def _second_order(
        self, x: NDArray[np.float64], jac: NDArray[np.float64], d_mu: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Σ_b (∂F/∂μ_b) ∂²μ_b/∂x∂x: forward differences of J along each curved free
        parameter (one batched call), the rest by symmetry (linear-linear terms vanish)."""
        idx = self.curved
        h = self.steps[idx]
        h = np.where(x[idx] + h > self.upper[idx], -h, h)
        shifted = np.repeat(x[None, :], idx.size, axis=0)
        shifted[np.arange(idx.size), idx] += h
        h = shifted[np.arange(idx.size), idx] - x[idx]  # the step represented in floating point
        _, jacs = self.model.expected_and_jacobian(shifted, free_only=True)
        p = len(x)
        second = np.zeros((p, p))
        second[idx] = ((jacs - jac[None]) / h[:, None, None]).transpose(0, 2, 1) @ d_mu
        lin = np.flatnonzero(self.free & ~np.isin(np.arange(p), idx))
        second[np.ix_(lin, idx)] = second[np.ix_(idx, lin)].T
        block = np.ix_(idx, idx)
        second[block] = 0.5 * (second[block] + second[block].T)
        return second
