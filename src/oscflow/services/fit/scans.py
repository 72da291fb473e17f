"""Likelihood scans around a fit: 1-D profiles (at each grid value of one parameter, the
statistic minimised over every other free parameter) and 2-D contours (the 1σ/2σ regions of
two parameters), made by one of two fitters (``scan.fitter``, conf/fit.yaml):

* ``batched`` (``auto``'s choice when the statistic has derivatives): every grid point is one
  fit with the scanned parameter(s) fixed at the grid value and all other free parameters
  re-minimised, all points solved at once by ``stats.batched_fit.fit_batch`` through
  ``batched.fit_toys`` — the toys' machinery: same statistic, priors, bounds, EDM criterion
  and validity rule; each fit starts from the best fit with the scanned column(s) at the grid
  value. A contour is a (points × points) grid over ± ``contour_bound`` σ of the two
  parameters: the Δχ² map, whose 1σ/2σ lines (Δχ² = 2.30, 6.18 for 2 dof) are extracted
  with ``contourpy`` (matplotlib's contour generator) from a bicubic interpolation of the map;
* ``iminuit``: MINUIT's ``mnprofile`` and ``mncontour``, one minimisation at a time (kept for
  comparison and for statistics without derivatives).

Both fitters share the profile grid (mnprofile's convention: ``points`` values over ± ``bound``
σ of the best fit, σ = the fit's error, cut to the parameter's limits) and report Δχ² relative
to the best fit's statistic. A grid point whose fit is not valid is reported (``valid``) and
never used: it is left out of the 1σ interval and masked out of the contour map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError
from ...stats.likelihood import DERIVATIVES
from .batched import ToyFits, fit_toys
from .minimize import FitOutcome
from .model import FitModel

CONTOUR_CL = (0.6827, 0.9545)  # 1σ and 2σ for two parameters (χ² with 2 dof)
SCAN_FITTERS = ("auto", "batched", "iminuit")
# The batched contour map is interpolated on a grid REFINE times finer, with at least FINE
# points per axis (linear interpolation between those is then ~1e-4 of a contour's extent)
REFINE = 8
FINE = 201


def delta_chi2_2dof(cl: float) -> float:
    """Δχ² of the ``cl`` region of two parameters: the χ²(2 dof) quantile, −2 ln(1 − cl)
    (2.2957 for 68.27 %, 6.1801 for 95.45 %)."""
    return float(-2.0 * np.log1p(-cl))


def scan_fitter(scan: Any, statistic: str) -> str:
    """The fitter of the scans: ``scan.fitter`` (auto → batched when ``statistic`` has
    derivatives, iminuit otherwise)."""
    name = str(scan.get("fitter", "auto"))
    if name not in SCAN_FITTERS:
        raise ConfigError(
            "scan.fitter", f"{name!r} is unknown", f"use one of {', '.join(SCAN_FITTERS)}"
        )
    if name == "iminuit":
        return "iminuit"
    if statistic in DERIVATIVES:
        return "batched"
    if name == "batched":
        raise ConfigError(
            "scan.fitter",
            f"the batched fitter needs the derivatives of the statistic; {statistic!r} has none "
            f"(batched statistics: {', '.join(DERIVATIVES)})",
            "use scan.fitter=iminuit (or auto) for this statistic",
        )
    return "iminuit"


def check_scans(scan: Any, free: Sequence[str], statistic: str) -> str:
    """Refuse a bad ``scan`` node before any fit runs; returns the fitter."""
    free_set = set(free)
    points = int(scan.points)
    if points < 3:
        raise ConfigError("scan.points", f"{points} must be >= 3", "ask for at least 3 points")
    for key in ("bound", "contour_bound"):
        value = float(scan.get(key, 2.0))
        if not value > 0:
            raise ConfigError(
                f"scan.{key}", f"{value:g} must be > 0", "give a positive number of σ"
            )
    for name in scan.profiles:
        if name not in free_set:
            raise ConfigError(
                "scan.profiles",
                f"{name!r} is not a free parameter of this fit (a fixed parameter has no profile)",
                f"profile one of {sorted(free_set)}, or free it (free=[...])",
            )
    for pair in scan.contours:
        if len(pair) != 2 or pair[0] == pair[1] or any(p not in free_set for p in pair):
            raise ConfigError(
                "scan.contours",
                f"{list(pair)} is not a pair of two different free parameters",
                f"e.g. [[sin2_th12, dm2_21]]; free: {sorted(free_set)}",
            )
    return scan_fitter(scan, statistic)


def scans(fit: FitOutcome, data: NDArray[np.float64], cfg: Any) -> dict[str, Any]:
    """Profiles and contours named in ``cfg.scan`` around ``fit`` of ``data`` (``cfg``: the
    fit config: its statistic, tolerance and call limit apply to the batched fits)."""
    scan = cfg.scan
    statistic = str(cfg.statistic)
    fitter = check_scans(scan, fit.free, statistic)
    points = int(scan.points)
    bound = float(scan.get("bound", 2.0))
    contour_bound = float(scan.get("contour_bound", 3.0))
    batch = {
        "statistic": statistic,
        "tolerance": float(cfg.tolerance),
        "max_calls": None if cfg.max_calls is None else int(cfg.max_calls),
    }
    out: dict[str, Any] = {"fitter": fitter, "profiles": {}, "contours": []}
    for key in scan.profiles:
        name = str(key)
        grid = profile_grid(fit, name, bound, points)
        if fitter == "batched":
            out["profiles"][name] = batched_profile(fit, data, name, grid, **batch)
        else:
            out["profiles"][name] = iminuit_profile(fit, name, grid)
    for pair in scan.contours:
        x, y = str(pair[0]), str(pair[1])
        if fitter == "batched":
            c = batched_contour(fit, data, x, y, points, contour_bound, **batch)
        else:
            c = iminuit_contour(fit, x, y, points)
        out["contours"].append(c)
    return out


def profile_grid(fit: FitOutcome, name: str, bound: float, points: int) -> NDArray[np.float64]:
    """mnprofile's grid: ``points`` values over best ± ``bound`` × error, cut to the limits."""
    lo, hi = fit.model.parameters[fit.model.index[name]].limits
    best, err = fit.value(name), fit.error(name)
    return np.linspace(max(lo, best - bound * err), min(hi, best + bound * err), points)


def _finite(values: NDArray[np.float64]) -> list[float | None]:
    """JSON-ready list: non-finite numbers (a fit that stalled) become None."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def grid_fits(
    fit: FitOutcome,
    data: NDArray[np.float64],
    names: Sequence[str],
    values: NDArray[np.float64],
    *,
    statistic: str,
    tolerance: float,
    max_calls: int | None,
) -> ToyFits:
    """N fits of ``data`` with ``names`` fixed at the rows of ``values`` (N, len(names)), every
    other free parameter re-minimised from the best fit, all at once (``batched.fit_toys``,
    no Δm²32 pre-scan: the best fit already chose the period; Fisher curvature for the
    errors, which a scan does not use, and for the positive-definiteness check of
    ``valid``). Returns its ``ToyFits``."""
    base = fit.model
    scanned = set(names)
    # The scanned parameters fixed in the model itself (they are fixed in every grid fit): the
    # finite-difference Jacobian of an exact predictor then skips them, and the training-range
    # edge rule, which applies to free parameters, leaves the scan's own values out.
    model = FitModel(
        base.predictor,
        [replace(p, fixed=True) if p.name in scanned else p for p in base.parameters],
        base.backgrounds,
        base.statistics,
    )
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    starts = np.repeat(fit.values[None, :], len(values), axis=0)
    starts[:, [model.index[n] for n in names]] = values
    counts = np.broadcast_to(np.asarray(data, dtype=np.float64), (len(values), len(data)))
    return fit_toys(
        model,
        counts,
        statistic,
        start=starts,
        tolerance=tolerance,
        max_calls=max_calls,
        prescan=False,
        hessian="fisher",  # only the statistic is used: no exact-Hessian calls
    )


def crossing(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    ok: NDArray[np.bool_],
    best: float,
    level: float = 1.0,
) -> list[float | None]:
    """[lower, upper] where the profile (valid points only) crosses ``level`` on each side of
    ``best``: the root of the parabola through the three valid points around the crossing
    (exact for a parabolic profile), None where the valid profile does not reach ``level``."""
    y = np.asarray(y, dtype=np.float64)
    use = np.asarray(ok, dtype=bool) & np.isfinite(y)
    xv, yv = np.asarray(x, dtype=np.float64)[use], y[use]
    out: list[float | None] = []
    for side in (-1, 1):
        sel = (xv - best) * side >= 0
        xs, ys = xv[sel], yv[sel]
        order = np.argsort(np.abs(xs - best))
        xs, ys = xs[order], ys[order]
        above = np.flatnonzero(ys >= level)
        if not above.size or above[0] == 0:
            out.append(None)
            continue
        j = int(above[0])
        k = slice(max(0, j - 1), j + 2) if j + 1 < len(xs) else slice(max(0, j - 2), j + 1)
        xk, yk = xs[k], ys[k]
        root: float | None = None
        if len(xk) == 3:
            c = np.polyfit(xk - best, yk - level, 2)
            roots = np.roots(c)
            real = roots[np.isreal(roots)].real + best
            lo, hi = sorted((xs[j - 1], xs[j]))
            inside = real[(real >= lo) & (real <= hi)]
            root = float(inside[0]) if inside.size else None
        if root is None:  # linear between the two points that bracket the level
            t = (level - ys[j - 1]) / (ys[j] - ys[j - 1])
            root = float(xs[j - 1] + t * (xs[j] - xs[j - 1]))
        out.append(root)
    return out


def _profile_result(
    fit: FitOutcome, name: str, x: NDArray, dchi2: NDArray, ok: NDArray, fitter: str
) -> dict[str, Any]:
    best = fit.value(name)
    return {
        "fitter": fitter,
        "x": np.asarray(x, dtype=np.float64).tolist(),
        "delta_chi2": _finite(dchi2),
        "valid": np.asarray(ok, dtype=bool).tolist(),
        "n_not_valid": int((~np.asarray(ok, dtype=bool)).sum()),
        "best_fit": best,
        "error": fit.error(name),
        "interval_1sigma": crossing(x, dchi2, ok, best, 1.0),
        # < 0 beyond the stopping rule (~1e-3): a grid fit went below the best fit, which was
        # then not the minimum (refit from there)
        "min_delta_chi2": _min_valid(dchi2, ok),
    }


def _min_valid(dchi2: NDArray[np.float64], ok: NDArray[np.bool_]) -> float | None:
    """The smallest Δχ² of the valid grid points (None if none is valid)."""
    values = np.asarray(dchi2, dtype=np.float64)[np.asarray(ok, dtype=bool)]
    values = values[np.isfinite(values)]
    return float(values.min()) if values.size else None


def batched_profile(
    fit: FitOutcome, data: NDArray[np.float64], name: str, grid: NDArray[np.float64], **batch: Any
) -> dict[str, Any]:
    """The profile of ``name`` on ``grid``: one batched fit per grid value."""
    fits = grid_fits(fit, data, [name], grid[:, None], **batch)
    dchi2 = fits.fval - fit.fval
    out = _profile_result(fit, name, grid, dchi2, fits.valid, "batched")
    out["convergence"] = fits.convergence()
    out["nfcn"] = fits.nfcn
    out["wall_s"] = fits.wall_s
    return out


def iminuit_profile(fit: FitOutcome, name: str, grid: NDArray[np.float64]) -> dict[str, Any]:
    """The profile of ``name`` on ``grid`` by MINUIT's mnprofile (one MIGRAD per value)."""
    import time

    t0 = time.perf_counter()
    x, y, ok = fit.minuit.mnprofile(name, grid=grid)
    out = _profile_result(
        fit, name, x, np.asarray(y) - fit.fval, np.asarray(ok, dtype=bool), "iminuit"
    )
    out["wall_s"] = time.perf_counter() - t0
    return out


def iminuit_contour(fit: FitOutcome, x: str, y: str, points: int) -> dict[str, Any]:
    """MINUIT's mncontour at each ``CONTOUR_CL`` (``points`` points on each line)."""
    import time

    t0 = time.perf_counter()
    m = fit.minuit
    pts = {str(cl): np.asarray(m.mncontour(x, y, cl=cl, size=points)).tolist() for cl in CONTOUR_CL}
    return {
        "fitter": "iminuit",
        "x": x,
        "y": y,
        "best_fit": [fit.value(x), fit.value(y)],
        "points": pts,
        "levels": {str(cl): delta_chi2_2dof(cl) for cl in CONTOUR_CL},
        "wall_s": time.perf_counter() - t0,
    }


def batched_contour(
    fit: FitOutcome,
    data: NDArray[np.float64],
    x: str,
    y: str,
    points: int,
    bound: float,
    **batch: Any,
) -> dict[str, Any]:
    """The Δχ² map of (``x``, ``y``) on a ``points`` × ``points`` grid over ± ``bound`` σ
    (cut to the limits), one batched fit per cell, and its 1σ/2σ lines (``contour_lines``)."""
    gx = profile_grid(fit, x, bound, points)
    gy = profile_grid(fit, y, bound, points)
    xx, yy = np.meshgrid(gx, gy)  # (ny, nx): row = y
    fits = grid_fits(fit, data, [x, y], np.column_stack([xx.ravel(), yy.ravel()]), **batch)
    dchi2 = (fits.fval - fit.fval).reshape(xx.shape)
    ok = fits.valid.reshape(xx.shape)
    best = (fit.value(x), fit.value(y))
    lines = contour_lines(gx, gy, dchi2, ok, best)
    return {
        "fitter": "batched",
        "x": x,
        "y": y,
        "best_fit": list(best),
        "points": {cl: line["points"] for cl, line in lines.items()},
        "levels": {str(cl): delta_chi2_2dof(cl) for cl in CONTOUR_CL},
        "lines": {
            cl: {k: v for k, v in line.items() if k != "points"} for cl, line in lines.items()
        },
        "map": {
            "x": gx.tolist(),
            "y": gy.tolist(),
            "delta_chi2": [_finite(row) for row in dchi2],
            "valid": ok.tolist(),
        },
        "n_not_valid": int((~ok).sum()),
        "min_delta_chi2": _min_valid(dchi2, ok),
        "convergence": fits.convergence(),
        "nfcn": fits.nfcn,
        "wall_s": fits.wall_s,
    }


def contour_lines(
    gx: NDArray[np.float64],
    gy: NDArray[np.float64],
    dchi2: NDArray[np.float64],
    ok: NDArray[np.bool_],
    best: tuple[float, float],
) -> dict[str, dict[str, Any]]:
    """The ``CONTOUR_CL`` lines of a Δχ² map (ny, nx) on the grid (``gx``, ``gy``).

    With every cell valid the map is interpolated bicubically (``RectBivariateSpline``, exact
    for the quadratic map of a Gaussian likelihood) on a finer grid (``REFINE``, ``FINE``) before
    ``contourpy`` extracts the lines, so that a coarse grid still gives the extent of a
    contour to a fraction of a per cent; with cells not valid those are masked out and the
    lines come from the raw map (linear interpolation, ``interpolation: "linear"``), never
    through a cell that is not valid. Per level: the line enclosing the best fit (else the
    longest), whether it is closed (a line open at the grid's edge: widen
    ``scan.contour_bound``), and how many separate lines the level has."""
    import contourpy
    from matplotlib.path import Path

    if ok.all():
        from scipy.interpolate import RectBivariateSpline

        # cubic, or the highest degree the grid allows (a spline of degree k needs k + 1 points)
        kx, ky = min(3, len(gx) - 1), min(3, len(gy) - 1)
        spline = RectBivariateSpline(gy, gx, dchi2, kx=kx, ky=ky)
        fx = np.linspace(gx[0], gx[-1], max(FINE, REFINE * (len(gx) - 1) + 1))
        fy = np.linspace(gy[0], gy[-1], max(FINE, REFINE * (len(gy) - 1) + 1))
        z: Any = spline(fy, fx)
        kind = "bicubic"
    else:
        fx, fy = gx, gy
        z = np.ma.masked_array(dchi2, mask=~ok | ~np.isfinite(dchi2))
        kind = "linear"
    gen = contourpy.contour_generator(x=fx, y=fy, z=z, line_type=contourpy.LineType.Separate)
    out: dict[str, dict[str, Any]] = {}
    for cl in CONTOUR_CL:
        raw = gen.lines(delta_chi2_2dof(cl))
        lines = [np.asarray(seg, dtype=np.float64) for seg in raw]
        lines = [seg for seg in lines if len(seg) >= 2]
        chosen = np.zeros((0, 2))
        encloses = False
        if lines:
            around = [seg for seg in lines if len(seg) >= 3 and Path(seg).contains_point(best)]
            encloses = bool(around)
            chosen = max(around or lines, key=len)
        closed = bool(len(chosen) >= 3 and np.allclose(chosen[0], chosen[-1]))
        out[str(cl)] = {
            "points": chosen.tolist(),
            "closed": closed and encloses,
            "n_lines": len(lines),
            "interpolation": kind,
        }
    return out
