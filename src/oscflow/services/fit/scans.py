"""Likelihood scans around a fit: 1-D profiles (``mnprofile``: every other free parameter
re-minimised at each point) and 2-D contours (``mncontour``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ConfigError
from .minimize import FitOutcome

CONTOUR_CL = (0.6827, 0.9545)  # 1σ and 2σ for two parameters (χ² with 2 dof)


def scans(fit: FitOutcome, cfg: Any) -> dict[str, Any]:
    """Profiles and contours named in ``cfg`` (``scan`` node) around ``fit``."""
    m = fit.minuit
    free = set(fit.free)
    points = int(cfg.points)
    if points < 3:
        raise ConfigError("scan.points", f"{points} must be >= 3", "ask for at least 3 points")
    out: dict[str, Any] = {"profiles": {}, "contours": []}
    for name in cfg.profiles:
        if name not in free:
            raise ConfigError(
                "scan.profiles", f"{name!r} is not a free parameter", f"use one of {sorted(free)}"
            )
        x, y, ok = m.mnprofile(name, size=points, bound=2, subtract_min=True)
        out["profiles"][name] = {
            "x": np.asarray(x).tolist(),
            "delta_chi2": np.asarray(y).tolist(),
            "valid": np.asarray(ok).astype(bool).tolist(),
        }
    for pair in cfg.contours:
        if len(pair) != 2 or any(p not in free for p in pair):
            raise ConfigError(
                "scan.contours",
                f"{list(pair)} is not a pair of free parameters",
                f"e.g. [[sin2_th12, dm2_21]]; free: {sorted(free)}",
            )
        x, y = str(pair[0]), str(pair[1])
        pts = {
            str(cl): np.asarray(m.mncontour(x, y, cl=cl, size=points)).tolist() for cl in CONTOUR_CL
        }
        out["contours"].append(
            {"x": x, "y": y, "best_fit": [fit.value(x), fit.value(y)], "points": pts}
        )
    return out
