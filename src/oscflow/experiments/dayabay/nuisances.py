"""The published fit's free nuisance parameters, combined analytically with the spectrum.

The Daya Bay fit of PRL 130, 161802 (2023) frees, besides sin²2θ13 and Δm²32, the global
normalisation g and 19 reactor-antineutrino spectrum scales F_i (``dayabay-model``'s
``parameters.free``). The expected counts are structured in them:

* g multiplies the IBD expectation I and nothing else: N = B + g·I (the backgrounds B are not
  normalised by it), so N is exactly linear in g and ∂N/∂g = I;
* F_i multiply the antineutrino spectrum by S(E) = exp(Σ_i F_i h_i(E)) (the official
  "exponential" mode: log-linear interpolation between the segment edges, h_i the hat function
  of edge i), before the oscillation, the cross-section and the detector response, all linear
  in the spectrum. With D_i = ∂N/∂F_i at F = 0 (= ∫ K h_i, K the linear response), replacing
  exp(Σ F_i h_i) by Σ h_i e^{F_i} (the same at the edges and wherever the F_i are equal; they
  differ by ~(F_{i+1} − F_i)² t(1 − t)/2 inside a segment) gives

      N(θ, g, F) = N0(θ) + (g − 1)·D_g(θ) + g·Σ_i (e^{F_i} − 1)·D_i(θ)

  with N0 = N(θ, 1, 0) and D_g = I(θ, F = 0). This is exact in g, exact for a uniform F
  (a change of the total flux), and its error is second order in the *differences* of
  neighbouring F_i, not in F_i themselves (a first-order expansion in F_i would be off by
  ~F_i²/2 relative). ``linearity`` measures it against the official model.

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
        self.exp = np.array([k == "exp" for k in kinds])

    @property
    def size(self) -> int:
        return len(self.nuisances)

    def coefficients(self, values: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(c (B, n): the factor of each column, g (B, 1)) for nuisance values (B, n)."""
        x = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if x.shape[-1] != self.size:
            msg = f"{x.shape[-1]} nuisance values for {self.size} nuisances"
            raise ValueError(msg)
        g = x[:, [self.norm]] if self.norm is not None else np.ones((len(x), 1))
        c = np.where(self.exp, np.expm1(x) * g, 0.0)
        if self.norm is not None:
            c[:, self.norm] = x[:, self.norm] - 1.0
        return c, g

    def __call__(self, cols: ArrayLike, values: ArrayLike) -> NDArray[np.float64]:
        d = np.asarray(cols, dtype=np.float64)
        c, _ = self.coefficients(values)
        return np.asarray(d[:, 0] + np.einsum("bn,bnk->bk", c, d[:, 1:]), dtype=np.float64)

    def jacobian(self, cols: ArrayLike, values: ArrayLike) -> NDArray[np.float64]:
        """∂N/∂η (B, K, n): analytic (N is linear in g and in e^{F_i})."""
        d = np.asarray(cols, dtype=np.float64)
        x = np.atleast_2d(np.asarray(values, dtype=np.float64))
        _, g = self.coefficients(x)
        factor = np.where(self.exp, np.exp(x) * g, 0.0)  # ∂c_i/∂F_i
        jac = d[:, 1:] * factor[:, :, None]
        if self.norm is not None:
            e = np.where(self.exp, np.expm1(x), 0.0)
            jac[:, self.norm] = d[:, 1 + self.norm] + np.einsum("bn,bnk->bk", e, d[:, 1:])
        return np.asarray(np.moveaxis(jac, 1, 2), dtype=np.float64)


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
