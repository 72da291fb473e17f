"""χ² with pull terms: CNP statistical χ² plus Gaussian constraints of nuisance parameters.

χ² = Σᵢ (μᵢ − nᵢ)² / [3 / (1/nᵢ + 2/μᵢ)]  +  Σ_g ‖L_g⁻¹ (x_g − c_g)‖²

The first sum is the combined Neyman–Pearson χ² (X. Ji et al., Nucl. Instrum. Meth. A 961
(2020) 163677); the second the Gaussian constraints of the nuisance parameters, in independent
groups g with central values c_g and either standard deviations σ_g (uncorrelated: L_g =
diag σ_g) or the lower Cholesky factor L_g of their covariance. This is ``dayabay-model``'s
``statistic.full.pull.chi2cnp`` (= ``statistic.stat.chi2cnp`` + ``statistic.nuisance.all``;
dag-modelling's ``NormalizeCorrelatedVarsTwoWays`` computes L⁻¹(x − c), ``ElSumSq`` sums the
squares). The published Daya Bay fit (PRL 130, 161802 (2023)) uses the covariance-matrix form
(``stats.covariance``) instead; both are offered by the official model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import solve_triangular

from .covariance import cnp_variance

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class GaussianConstraints:
    """Gaussian constraints of P named parameters in groups.

    ``names`` (P,) and ``central`` (P,) in group order; group g covers
    ``names[starts[g]:starts[g+1]]``; ``factors[g]`` is σ (n_g,) for an uncorrelated group or
    the lower Cholesky factor (n_g, n_g) of the group's covariance. Units: the parameters'.
    """

    names: tuple[str, ...]
    central: FloatArray
    starts: NDArray[np.int64]
    factors: tuple[FloatArray, ...]
    _single_index: NDArray[np.int64] = field(init=False, repr=False, compare=False)
    _single_sigma: FloatArray = field(init=False, repr=False, compare=False)
    _matrix_groups: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = len(self.names)
        if self.central.shape != (p,):
            msg = f"{p} names but central values of shape {self.central.shape}"
            raise ValueError(msg)
        if self.starts.ndim != 1 or self.starts[0] != 0 or self.starts[-1] != p:
            msg = f"group starts must run from 0 to {p}, got {self.starts[:1]}…{self.starts[-1:]}"
            raise ValueError(msg)
        if np.any(np.diff(self.starts) <= 0) or len(self.factors) != len(self.starts) - 1:
            msg = "every group needs at least one parameter and one factor"
            raise ValueError(msg)
        for g, f in enumerate(self.factors):
            n = int(self.starts[g + 1] - self.starts[g])
            if f.shape not in ((n,), (n, n)):
                msg = f"group {g} ({self.names[self.starts[g]]}…) has {n} parameters, factor {f.shape}"
                raise ValueError(msg)
            diag = f if f.ndim == 1 else np.diag(f)
            if not np.all(np.isfinite(f)) or np.any(diag <= 0):
                msg = (
                    f"group {g} ({self.names[self.starts[g]]}…): σ / Cholesky diagonal must be > 0"
                )
                raise ValueError(msg)
        # vectorised path for the single-σ groups
        single = [g for g, f in enumerate(self.factors) if f.ndim == 1]
        idx = np.concatenate(
            [np.arange(self.starts[g], self.starts[g + 1]) for g in single] or [np.empty(0, int)]
        )
        sig = np.concatenate([self.factors[g] for g in single] or [np.empty(0)])
        object.__setattr__(self, "_single_index", idx.astype(np.int64))
        object.__setattr__(self, "_single_sigma", sig.astype(np.float64))
        matrix = tuple(g for g, f in enumerate(self.factors) if f.ndim == 2)
        object.__setattr__(self, "_matrix_groups", matrix)

    @property
    def size(self) -> int:
        return len(self.names)

    def vector(self, values: Mapping[str, float]) -> FloatArray:
        """(P,) parameter values: ``values`` where given, central values elsewhere."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            msg = f"no constrained parameters {unknown[:5]}{'…' if len(unknown) > 5 else ''}"
            raise KeyError(msg)
        x = self.central.copy()
        where = {n: i for i, n in enumerate(self.names)}
        for name, value in values.items():
            x[where[name]] = float(value)
        return x

    def normalized(self, values: ArrayLike) -> FloatArray:
        """L⁻¹(x − c) per group, concatenated (P,); ``values`` (..., P)."""
        x = np.asarray(values, dtype=np.float64)
        if x.shape[-1] != self.size:
            msg = f"{x.shape[-1]} values for {self.size} constrained parameters"
            raise ValueError(msg)
        d = x - self.central
        out = np.empty_like(d)
        idx = self._single_index
        out[..., idx] = d[..., idx] / self._single_sigma
        for g in self._matrix_groups:
            a, b = int(self.starts[g]), int(self.starts[g + 1])
            sol = solve_triangular(self.factors[g], np.moveaxis(d[..., a:b], -1, 0), lower=True)
            out[..., a:b] = np.moveaxis(sol, 0, -1)
        return out

    def chi2(self, values: ArrayLike) -> FloatArray | float:
        """Σ_g ‖L_g⁻¹(x_g − c_g)‖² for ``values`` (..., P)."""
        total = np.square(self.normalized(values)).sum(axis=-1)
        return float(total) if np.ndim(total) == 0 else np.asarray(total, dtype=np.float64)

    # flat arrays for storage (numpy .npz, no pickles)
    def to_arrays(self) -> dict[str, NDArray[np.generic]]:
        flat = np.concatenate([f.ravel() for f in self.factors])
        offsets = np.cumsum([0] + [f.size for f in self.factors])
        return {
            "names": np.array(self.names, dtype=str),
            "central": self.central,
            "starts": self.starts,
            "factor_values": flat,
            "factor_offsets": np.asarray(offsets, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[np.generic]]) -> GaussianConstraints:
        starts = np.asarray(arrays["starts"], dtype=np.int64)
        flat = np.asarray(arrays["factor_values"], dtype=np.float64)
        offsets = np.asarray(arrays["factor_offsets"], dtype=np.int64)
        factors = []
        for g in range(len(starts) - 1):
            n = int(starts[g + 1] - starts[g])
            f = flat[offsets[g] : offsets[g + 1]]
            factors.append(f.copy() if f.size == n else f.reshape(n, n).copy())
        return cls(
            tuple(str(s) for s in arrays["names"]),
            np.asarray(arrays["central"], dtype=np.float64),
            starts,
            tuple(factors),
        )


def cnp_stat_chi2(data: ArrayLike, expected: ArrayLike) -> FloatArray | float:
    """Σ (μ − n)² / [3 / (1/n + 2/μ)] over the last axis (needs n > 0 and μ > 0)."""
    n = np.asarray(data, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    if np.any(n <= 0) or np.any(mu <= 0):
        msg = "the CNP χ² needs positive data and expectation in every bin"
        raise ValueError(msg)
    total = (np.square(mu - n) / cnp_variance(n, mu)).sum(axis=-1)
    return float(total) if np.ndim(total) == 0 else np.asarray(total, dtype=np.float64)


def cnp_pull_chi2(
    data: ArrayLike,
    expected: ArrayLike,
    constraints: GaussianConstraints,
    values: ArrayLike | Mapping[str, float] | Sequence[float],
) -> float:
    """CNP χ² of one spectrum plus the constraints' pull terms at ``values`` (a mapping of
    constrained parameter names, the others central, or the full (P,) vector)."""
    x = constraints.vector(values) if isinstance(values, Mapping) else np.asarray(values, float)
    return float(cnp_stat_chi2(data, expected)) + float(constraints.chi2(x))
