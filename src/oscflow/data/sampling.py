"""Space-filling samples of a box of parameters (Latin hypercube, scrambled Sobol, uniform).

Each dimension is sampled on a linear scale, or on a logarithmic one (``SCALES``: ``log``, for
a parameter spanning decades such as JSNS²'s Δm²₄₁ over 0.1–100 eV²: the unit-cube coordinate
u maps to lo·(hi/lo)^u, so each decade gets the same number of points)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.stats import qmc

SAMPLERS = ("lhs", "sobol", "uniform")
SCALES = ("linear", "log")


def sample_box(
    ranges: Sequence[tuple[float, float]],
    n: int,
    sampler: str,
    seed: int,
    scales: Sequence[str] | None = None,
) -> NDArray[np.float64]:
    """n points in the box ``ranges`` (one (low, high) per dimension), shape (n, d); ``scales``
    (one of ``SCALES`` per dimension, default linear): ``log`` dimensions need 0 < low."""
    scales = list(scales) if scales is not None else ["linear"] * len(ranges)
    if len(scales) != len(ranges) or any(s not in SCALES for s in scales):
        msg = f"scales {scales} must give one of {SCALES} per dimension"
        raise ValueError(msg)
    if any(s == "log" and r[0] <= 0 for s, r in zip(scales, ranges, strict=True)):
        msg = "a log-scale dimension needs a range with 0 < low"
        raise ValueError(msg)
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
    log = np.array([s == "log" for s in scales])
    lo = np.array([np.log(r[0]) if g else r[0] for r, g in zip(ranges, log, strict=True)])
    hi = np.array([np.log(r[1]) if g else r[1] for r, g in zip(ranges, log, strict=True)])
    points = lo + unit * (hi - lo)
    points[:, log] = np.exp(points[:, log])
    return points
