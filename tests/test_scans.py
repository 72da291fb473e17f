"""Profiles and contours through the batched fitter (``services/fit/scans.py``), against
MINUIT's mnprofile/mncontour on the same fit, the HESSE/MINOS errors, and bad input.

Tolerances. Both fitters stop a minimisation at MINUIT's EDM goal (EDM < 2e-4 at the default
``tolerance`` 0.1): each statistic is within ~2e-4 of its own minimum, so two profiles of the
same data may differ by a few 1e-4 in Δχ²; 1e-3 + 1 % of Δχ² (for the far points, where the
re-minimised nuisances move most) leaves room for that and nothing more (measured: 1.6e-4). A
contour from the batched map is exact up to the bicubic interpolation of a smooth map and the
stopping rule: its extent within 1 % of mncontour's (measured: 0.02 %). The profile's Δχ² = 1
crossing equals MINOS's interval by definition (the same minimisation) up to the parabolic
interpolation between grid points; HESSE's error equals it where the profile is parabolic
(this vacuum E_ν fit: MINOS and HESSE agree to 0.3 %)."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.stats import chi2

from helpers import CHEAP_FIT
from oscflow.config import load
from oscflow.errors import ConfigError
from oscflow.services.fit import plots
from oscflow.services.fit.run import compute
from oscflow.services.fit.scans import (
    CONTOUR_CL,
    batched_profile,
    contour_lines,
    crossing,
    delta_chi2_2dof,
    iminuit_contour,
    profile_grid,
    scan_fitter,
    scans,
)


@pytest.fixture(scope="module")
def profiled():
    """A 12-parameter Asimov fit with a batched 12-point profile of sin²θ12 (scan.fitter=auto)
    and, on the same fit, the profile by mnprofile through the switch (scan.fitter=iminuit)."""
    cfg = load("fit", [*CHEAP_FIT, "scan.profiles=[sin2_th12]", "scan.points=12"])
    result, fs, main = compute(cfg)
    iminuit_cfg = OmegaConf.merge(cfg, {"scan": {"fitter": "iminuit"}})
    reference = scans(main, fs.observation.counts, iminuit_cfg)
    return result, main, reference


def test_batched_profile_agrees_with_mnprofile(profiled) -> None:
    result, main, reference = profiled
    assert result["scans"]["fitter"] == "batched"
    b = result["scans"]["profiles"]["sin2_th12"]
    i = reference["profiles"]["sin2_th12"]
    assert (b["fitter"], i["fitter"]) == ("batched", "iminuit")
    # mnprofile's grid convention: 12 points over best ± 2 errors, the same grid for both
    best, err = main.value("sin2_th12"), main.error("sin2_th12")
    np.testing.assert_allclose(b["x"], np.linspace(best - 2 * err, best + 2 * err, 12), rtol=1e-12)
    np.testing.assert_array_equal(b["x"], i["x"])
    assert all(b["valid"])
    assert all(i["valid"])
    assert b["convergence"]["n_valid"] == 12
    db, di = np.asarray(b["delta_chi2"]), np.asarray(i["delta_chi2"])
    assert di.max() > 3.0  # the grid reaches ~4 (±2σ): the comparison spans the profile
    assert np.all(np.abs(db - di) <= 1e-3 + 1e-2 * di), np.abs(db - di).max()


def test_profile_crosses_one_at_the_minos_and_hesse_errors(profiled) -> None:
    _, main, _ = profiled
    b = profiled[0]["scans"]["profiles"]["sin2_th12"]
    m = main.minuit
    m.minos("sin2_th12")
    lower, upper = m.merrors["sin2_th12"].lower, m.merrors["sin2_th12"].upper
    best, err = main.value("sin2_th12"), main.error("sin2_th12")
    lo, hi = b["interval_1sigma"]
    assert lo - best == pytest.approx(lower, rel=0.01)
    assert hi - best == pytest.approx(upper, rel=0.01)
    assert best - lo == pytest.approx(err, rel=0.01)
    assert hi - best == pytest.approx(err, rel=0.01)


@pytest.fixture(scope="module")
def contoured():
    """A statistics-only fit of three oscillation parameters (sin²θ13 re-minimised in each cell)
    with a batched 10 × 10 contour of (sin²θ12, Δm²21), and mncontour on the same fit."""
    cfg = load(
        "fit",
        [
            *CHEAP_FIT,
            "fit/nuisances=stat_only",
            "free=[sin2_th12,sin2_th13,dm2_21]",
            "scan.contours=[[sin2_th12,dm2_21]]",
            "scan.points=10",
        ],
    )
    result, _, main = compute(cfg)
    reference = iminuit_contour(main, "sin2_th12", "dm2_21", 12)
    return result, main, reference


def test_batched_contour_agrees_with_mncontour(contoured) -> None:
    result, main, reference = contoured
    c = result["scans"]["contours"][0]
    assert c["fitter"] == "batched"
    assert (c["x"], c["y"]) == ("sin2_th12", "dm2_21")
    assert c["n_not_valid"] == 0
    grid = c["map"]
    assert np.asarray(grid["delta_chi2"]).shape == (10, 10)  # rows: y
    assert np.all(grid["valid"])
    for name, key in (("sin2_th12", "x"), ("dm2_21", "y")):  # ± 3σ of the best fit
        best, err = main.value(name), main.error(name)
        assert grid[key][0] == pytest.approx(best - 3 * err, rel=1e-12)
        assert grid[key][-1] == pytest.approx(best + 3 * err, rel=1e-12)
    for cl in CONTOUR_CL:
        assert c["levels"][str(cl)] == pytest.approx(chi2(2).ppf(cl), rel=1e-4)
        assert c["lines"][str(cl)]["closed"]
        ours, ref = np.asarray(c["points"][str(cl)]), np.asarray(reference["points"][str(cl)])
        for j in (0, 1):
            extent, ref_extent = np.ptp(ours[:, j]), np.ptp(ref[:, j])
            assert extent == pytest.approx(ref_extent, rel=0.01), (cl, j)
            centre = 0.5 * (ours[:, j].max() + ours[:, j].min())
            assert centre == pytest.approx(
                0.5 * (ref[:, j].max() + ref[:, j].min()), abs=0.01 * ref_extent
            )


def test_contour_plot_has_the_map(contoured, tmp_path) -> None:
    result, _, reference = contoured
    path = plots.contours(tmp_path / "c.png", [result["scans"]["contours"][0], reference])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_points_whose_fit_is_not_valid_are_flagged_and_not_used() -> None:
    """The Δχ² = 1 crossing and the contour lines use valid points only."""
    x = np.linspace(-2, 2, 9)
    y = x**2
    ok = np.ones(9, dtype=bool)
    assert crossing(x, y, ok, 0.0) == pytest.approx([-1.0, 1.0], abs=1e-12)  # parabola: exact
    y_bad = y.copy()
    y_bad[6] = 0.2  # x = 1: a fit that stopped low, flagged
    ok[6] = False
    assert crossing(x, y_bad, ok, 0.0) == pytest.approx([-1.0, 1.0], abs=1e-12)
    assert crossing(x, y, np.zeros(9, dtype=bool), 0.0) == [None, None]
    # contour of a quadratic map: bicubic when all valid; a bad cell is masked (linear)
    g = np.linspace(-3, 3, 13)
    xx, yy = np.meshgrid(g, g)
    z = xx**2 + yy**2
    lines = contour_lines(g, g, z, np.ones_like(z, dtype=bool), (0.0, 0.0))
    r = np.hypot(*np.asarray(lines["0.6827"]["points"]).T)
    assert r == pytest.approx(np.sqrt(delta_chi2_2dof(0.6827)), rel=1e-3)
    g3 = np.array([-3.0, 0.0, 3.0])  # scan.points=3: a quadratic spline, still exact here
    x3, y3 = np.meshgrid(g3, g3)
    coarse = contour_lines(g3, g3, x3**2 + y3**2, np.ones((3, 3), dtype=bool), (0.0, 0.0))
    r3 = np.hypot(*np.asarray(coarse["0.9545"]["points"]).T)
    assert r3 == pytest.approx(np.sqrt(delta_chi2_2dof(0.9545)), rel=1e-3)
    bad = np.ones_like(z, dtype=bool)
    bad[6, 9] = False  # (x, y) = (1.5, 0): on the 1σ circle (r = 1.515)
    z_bad = z.copy()
    z_bad[6, 9] = 100.0
    masked = contour_lines(g, g, z_bad, bad, (0.0, 0.0))["0.6827"]
    assert masked["interpolation"] == "linear"
    assert not masked["closed"]  # the line stops at the masked cell instead of using it
    assert np.hypot(*np.asarray(masked["points"]).T).max() < 1.6


def test_grid_fits_that_do_not_converge_are_flagged(profiled, tmp_path) -> None:
    """With no iteration allowed (max_calls=0) the grid fits away from the best fit stop
    unconverged: flagged, counted, no crossing is made up from them, crossed in the plot."""
    result, main, _ = profiled
    grid = profile_grid(main, "sin2_th12", 2.0, 5)
    data = np.asarray(result["counts"])
    out = batched_profile(
        main, data, "sin2_th12", grid, statistic="poisson", tolerance=0.1, max_calls=0
    )
    assert out["valid"][:2] == [False, False]
    assert out["valid"][3:] == [False, False]
    assert out["convergence"]["reached_max_iter"] >= 4
    assert out["n_not_valid"] >= 4
    assert out["interval_1sigma"] == [None, None]
    path = plots.profiles(tmp_path / "p.png", {"sin2_th12": out})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_grid_is_cut_to_the_limits(profiled) -> None:
    _, main, _ = profiled
    grid = profile_grid(main, "flux_norm", 1e3, 5)  # ± 1000σ: beyond the limits (0.5, 1.5)
    assert (grid[0], grid[-1]) == (0.5, 1.5)


def test_unknown_scan_fitter_is_refused_naming_the_choices() -> None:
    cfg = load("fit", [*CHEAP_FIT, "scan.fitter=fast"])
    with pytest.raises(ConfigError, match=r"scan\.fitter.*'fast'.*auto, batched, iminuit"):
        compute(cfg)


def test_profile_of_a_fixed_parameter_is_refused_before_fitting() -> None:
    cfg = load("fit", [*CHEAP_FIT, "fit/nuisances=stat_only", "scan.profiles=[flux_norm]"])
    with pytest.raises(ConfigError, match=r"scan\.profiles.*'flux_norm' is not a free parameter"):
        compute(cfg)


def test_statistics_without_derivatives_fall_back_to_iminuit_or_are_refused() -> None:
    assert scan_fitter(OmegaConf.create({"fitter": "auto"}), "poisson") == "batched"
    assert scan_fitter(OmegaConf.create({"fitter": "auto"}), "own") == "iminuit"
    assert scan_fitter(OmegaConf.create({"fitter": "iminuit"}), "poisson") == "iminuit"
    with pytest.raises(ConfigError, match=r"scan\.fitter.*derivatives"):
        scan_fitter(OmegaConf.create({"fitter": "batched"}), "own")
