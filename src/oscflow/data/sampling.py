"""Space-filling samples of a box of parameters (Latin hypercube, scrambled Sobol, uniform)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.stats import qmc

SAMPLERS = ("lhs", "sobol", "uniform")


def sample_box(
    ranges: Sequence[tuple[float, float]], n: int, sampler: str, seed: int
) -> NDArray[np.float64]:
    """n points in the box ``ranges`` (one (low, high) per dimension), shape (n, d)."""
    if sampler not in SAMPLERS:
        msg = f"unknown sampler {sampler!r}; choose one of {SAMPLERS}"
        raise ValueError(msg)
    d = len(ranges)
    if sampler == "lhs":
        unit = qmc.LatinHypercube(d=d, rng=np.random.default_rng(seed)).random(n)
    elif sampler == "sobol":
        with warnings.catch_warnings():
            # Sobol's balance is exact only for powers of two; any n is still low-discrepancy.
            warnings.filterwarnings(
                "ignore", message=".*balance properties.*", category=UserWarning
            )
            unit = qmc.Sobol(d=d, scramble=True, rng=np.random.default_rng(seed)).random(n)
    else:
        unit = np.random.default_rng(seed).random((n, d))
    lo = np.array([r[0] for r in ranges])
    hi = np.array([r[1] for r in ranges])
    return lo + unit * (hi - lo)
