"""The published fit's free nuisance parameters, combined analytically with the spectrum.

The Daya Bay fit of PRL 130, 161802 (2023) frees, besides sin²2θ13 and Δm²32, the global
normalisation g and 19 reactor-antineutrino spectrum scales F_i (``dayabay-model``'s
``parameters.free``). The expected counts are structured in them:

* g multiplies the IBD expectation I and nothing else: N = B + g·I (the backgrounds B are not
  normalised by it), so N is exactly linear in g and ∂N/∂g = I;
* F_i multiply the antineutrino spectrum by S(E) = exp(Σ_i F_i h_i(E)) (the official
  "exponential" mode: log-linear interpolation between the segment edges, linear
  extrapolation beyond them; h_i the hat function of edge i, Σ_i h_i = 1), before the
  oscillation, the cross-section and the detector response, all linear in the spectrum. So
  N = B + g·(I_snf + ∫ K exp(Σ_i F_i h_i)), where I_snf (spent fuel, non-equilibrium) is
  not scaled and K is the linear response. With D_i = ∂N/∂F_i at F = 0 (= ∫ K h_i) and
  A = Σ_i D_i (= ∫ K, the scaled part, per bin), each bin's weights w_i = D_i / A (Σ w_i = 1)
  say where in neutrino energy the bin's counts come from, and

      N(θ, g, F) = N0(θ) + (g − 1)·D_g(θ) + g·A(θ)·(exp(Σ_i w_i(θ) F_i) − 1)

  with N0 = N(θ, 1, 0), D_g = ∂N/∂g = I(θ, F = 0). This is exact in g, exact for a uniform
  F (a change of the total flux), and exact for a bin fed by one neutrino energy (then
  Σ w_i F_i is the log-linear interpolation itself); its error is second order in the
  spread of the neutrino energies feeding a bin times the differences of neighbouring F_i.
  Measured against the official model (README): Δχ² = +1.1 at the official best fit (χ² 555),
  within ±2 at draws from the fit's 1σ covariance, up to ~3 % in ~1 % of the bins; a
  combination linear in e^{F_i} (Σ_i D_i e^{F_i}) was about twice as far off (Δχ² +2.1 at the
  best fit, +53 instead of −20 at a 3σ draw).

``columns`` computes [N0, D_g, D_0 … D_18] at a point θ with the official model (forward
differences of step ``STEP``: truncation ~STEP/2 relative, round-off ~1e-16/STEP); a nuisance
surrogate predicts these 21 × 546 numbers from θ and ``combine`` puts them together.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ...errors import ConfigError

COMBINE = ("norm", "exp")
STEP = 1e-6  # forward-difference step of the derivative columns (in g and in F_i)


@dataclasses.dataclass(frozen=True)
class Nuisance:
    """One free nuisance parameter: our name, its path under the official model's
    ``parameters.free``, its nominal value and how it enters (``COMBINE``)."""

    name: str
    official: str
    nominal: float
    combine: str


def parse(cfg: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Nuisance]:
    """``experiment.nuisances`` → name → Nuisance (validated: a known ``combine``, an
    ``official`` path, at most one ``norm``, the nominal value its combination assumes)."""
    out = {}
    for name, node in (cfg or {}).items():
        key = f"experiment.nuisances.{name}"
        combine = str(node.get("combine", ""))
        if combine not in COMBINE:
            raise ConfigError(f"{key}.combine", f"{combine!r} is unknown", f"use one of {COMBINE}")
        if not node.get("official"):
            raise ConfigError(
                f"{key}.official",
                "is missing",
                "give its path under the official model's parameters.free",
            )
        nominal = float(node["nominal"])
        want = 1.0 if combine == "norm" else 0.0
        if nominal != want:
            raise ConfigError(
                f"{key}.nominal",
                f"{nominal:g}: a {combine} nuisance is combined around {want:g}",
                f"set nominal: {want:g}",
            )
        out[str(name)] = Nuisance(str(name), str(node["official"]), nominal, combine)
    if sum(n.combine == "norm" for n in out.values()) > 1:
        raise ConfigError(
            "experiment.nuisances", "more than one norm nuisance", "keep one global normalisation"
        )
    return out


def columns(
    official: Any, point: Mapping[str, float], nuisances: Sequence[Nuisance], step: float = STEP
) -> NDArray[np.float64]:
    """(1 + n, K): the official spectrum N0 at ``point`` (ours: the oscillation parameters,
    nuisances nominal) and its forward-difference derivative in each nuisance, in order
    (``official``: an ``official.OfficialModel`` whose names include the nuisances')."""
    n0 = official.spectrum(point)
    out = np.empty((1 + len(nuisances), n0.size))
    out[0] = n0
    for j, nu in enumerate(nuisances, start=1):
        out[j] = (official.spectrum({**point, nu.name: nu.nominal + step}) - n0) / step
    official.reset()
    return out


class Combination:
    """N(θ, η) from the columns [N0, D_1 … D_n](θ) and the nuisance values η (module
    docstring), batched: columns (B, 1 + n, K), values (B, n) → counts (B, K)."""

    def __init__(self, nuisances: Sequence[Nuisance]) -> None:
        self.nuisances = tuple(nuisances)
        kinds = [n.combine for n in self.nuisances]
        self.norm = kinds.index("norm") if "norm" in kinds else None
        self.exp = np.flatnonzero([k == "exp" for k in kinds])
        # their columns (after N0): a slice where they are contiguous (a view, not a copy)
        cols = 1 + self.exp
        contiguous = cols.size and (np.diff(cols) == 1).all()
        self._exp_cols: slice | NDArray[np.intp] = (
            slice(int(cols[0]), int(cols[-1]) + 1) if contiguous else cols
        )

    @property
    def size(self) -> int:
        return len(self.nuisances)

    def _parts(self, cols: ArrayLike, values: ArrayLike) -> _Parts:
        d = np.asarray(cols, dtype=np.float64)
        x = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if x.shape[-1] != self.size or d.shape[1] != 1 + self.size:
            msg = (
                f"{x.shape[-1]} nuisance values and {d.shape[1]} columns for {self.size} "
                "nuisances (1 + n columns)"
            )
            raise ValueError(msg)
        g = x[:, self.norm, None] if self.norm is not None else np.ones((len(x), 1))
        d_exp = d[:, self._exp_cols]  # (B, m, K)
        a = d_exp.sum(axis=1)  # the part the scales act on, at F = 0
        z = np.matmul(x[:, None, self.exp], d_exp)[:, 0]  # Σ F_i D_i
        r = np.divide(z, a, out=np.zeros_like(z), where=a != 0.0)  # Σ w_i F_i, w_i = D_i / A
        return _Parts(d, x, g, a, r, np.exp(r))

    def __call__(self, cols: ArrayLike, values: ArrayLike) -> NDArray[np.float64]:
        p = self._parts(cols, values)
        out = p.d[:, 0] + p.g * p.a * np.expm1(p.r)
        if self.norm is not None:
            out = out + (p.g - 1.0) * p.d[:, 1 + self.norm]
        return np.asarray(out, dtype=np.float64)

    def jacobian(self, cols: ArrayLike, values: ArrayLike) -> NDArray[np.float64]:
        """∂N/∂η (B, K, n), analytic: ∂N/∂F_i = g e^{Σ w F} D_i, ∂N/∂g = D_g + A(e^{Σ w F} − 1)."""
        p = self._parts(cols, values)
        jac = np.zeros((len(p.d), p.d.shape[2], self.size))
        jac[:, :, self.exp] = np.moveaxis(p.d[:, self._exp_cols], 1, 2) * (p.g * p.e)[:, :, None]
        if self.norm is not None:
            jac[:, :, self.norm] = p.d[:, 1 + self.norm] + p.a * np.expm1(p.r)
        return jac

    def chain(self, cols: ArrayLike, values: ArrayLike, dcols: ArrayLike) -> NDArray[np.float64]:
        """∂N/∂θ (B, K, q) from the columns' derivatives dcols (B, 1 + n, K, q) in the inputs
        θ of whatever predicts them (a surrogate's autograd): the chain rule through N."""
        p = self._parts(cols, values)
        dd = np.asarray(dcols, dtype=np.float64)
        d_a = dd[:, self._exp_cols].sum(axis=1)  # (B, K, q)
        d_z = np.einsum("bm,bmkq->bkq", p.x[:, self.exp], dd[:, self._exp_cols])
        # f = A (e^r − 1), r = z / A:  df = dA (e^r − 1 − r e^r) + e^r dz
        df = d_a * (np.expm1(p.r) - p.r * p.e)[:, :, None] + p.e[:, :, None] * d_z
        out = dd[:, 0] + p.g[:, :, None] * df
        if self.norm is not None:
            out = out + (p.g - 1.0)[:, :, None] * dd[:, 1 + self.norm]
        return np.asarray(out, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class _Parts:
    """Intermediate arrays of a ``Combination`` at one batch of columns and values."""

    d: NDArray[np.float64]  # columns (B, 1 + n, K)
    x: NDArray[np.float64]  # values (B, n)
    g: NDArray[np.float64]  # normalisation (B, 1)
    a: NDArray[np.float64]  # A = Σ D_i over the scales (B, K)
    r: NDArray[np.float64]  # Σ w_i F_i (B, K)
    e: NDArray[np.float64]  # e^r


def check_layout(n_out: int, nbins: int, nuisances: Sequence[Nuisance], what: str) -> None:
    """A nuisance surrogate's outputs must be (1 + n) blocks of the spectrum's bins."""
    want = (1 + len(nuisances)) * nbins
    if n_out != want:
        blocks = n_out / nbins
        raise ConfigError(
            "model",
            f"{what} predicts {n_out} numbers = {blocks:g} blocks of {nbins} bins, not "
            f"1 + {len(nuisances)} (the spectrum and its derivative in each of "
            f"experiment.nuisances)",
            "use a nuisance surrogate trained with this experiment.nuisances "
            "(data=dayabay_nuisances_demo), or a plain one without free nuisances",
        )


def relative_error(exact: ArrayLike, approx: ArrayLike) -> float:
    """max |approx/exact − 1| over the bins."""
    e, a = np.asarray(exact, float), np.asarray(approx, float)
    return float(np.max(np.abs(a / e - 1.0))) if e.size else math.nan
