"""JSNS² physics against independent references: μDAR spectra (exact integrals), 3+1
appearance (limits, averaging, an independent 4-flavour propagation), IBD σ at 20–53 MeV
(the full Strumia–Vissani formula, written here), the baseline averaging, the normalisation
inputs (each checked against the published number it is derived from), and bad input."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, linalg

from oscflow.config import load
from oscflow.experiments import load_experiment
from oscflow.experiments.jsns2 import Jsns2Experiment
from oscflow.physics import baselines, decay_at_rest, ibd, oscillation_models
from oscflow.physics.decay_at_rest import E_MAX, M_MUON

STERILE = oscillation_models.get("sterile_3p1_appearance")
HBARC_EV_M = 197.3269804e-9  # eV·m, CODATA 2018


@pytest.fixture(scope="module")
def jsns2() -> Jsns2Experiment:
    exp = load_experiment(load("predict", ["experiment=jsns2"]).experiment)
    assert isinstance(exp, Jsns2Experiment)
    return exp


# ----------------------------------------------------------------------------- μDAR spectra


@pytest.mark.parametrize(
    ("spectrum", "mean_x"),
    [(decay_at_rest.numubar_spectrum, 7 / 10), (decay_at_rest.nue_spectrum, 3 / 5)],
)
def test_michel_spectra_are_normalised_with_exact_mean_energy(
    spectrum: Callable[[float], float], mean_x: float
) -> None:
    """∫ dN/dE dE = 1 and ⟨E⟩ = ⟨x⟩ m_μ/2 with ⟨x⟩ = ∫2x³(3−2x) = 7/10 (ν̄_μ), ∫12x³(1−x) =
    3/5 (ν_e): exact integrals of the Michel polynomials; nothing beyond m_μ/2."""
    norm, _ = integrate.quad(spectrum, 0.0, E_MAX, epsabs=1e-13)
    mean, _ = integrate.quad(lambda e: e * spectrum(e), 0.0, E_MAX, epsabs=1e-11)
    assert norm == pytest.approx(1.0, abs=1e-10)
    assert mean == pytest.approx(mean_x * M_MUON / 2, rel=1e-10)
    assert spectrum(E_MAX + 1e-6) == 0.0
    assert spectrum(-1.0) == 0.0


def test_numubar_spectrum_is_proportional_to_e2_times_3_minus_4e_over_mmu() -> None:
    e = np.array([5.0, 20.0, 37.0, 52.0])
    shape = e**2 * (3 - 4 * e / M_MUON)
    ratio = decay_at_rest.numubar_spectrum(e) / shape
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    assert pytest.approx(52.83, abs=0.005) == E_MAX


def test_timing_efficiency_is_the_integral_of_the_muon_decay_curve() -> None:
    tau = decay_at_rest.TAU_MUON_US
    frac, _ = integrate.quad(lambda t: math.exp(-t / tau) / tau, 1.0, 10.0)
    assert decay_at_rest.timing_efficiency((1.0, 10.0)) == pytest.approx(frac, rel=1e-12)
    with pytest.raises(ValueError, match="t1 < t2"):
        decay_at_rest.timing_efficiency((10.0, 1.0))


# ----------------------------------------------------------------------------- 3+1 appearance


def test_appearance_small_phase_limit() -> None:
    """Δm²L/E → 0: P → sin²2θ (1.26693 Δm² L/E)²."""
    e = np.array([20.0, 40.0])
    p = STERILE.probability(e, 24.0, {"sin2_2th_mue": 0.01, "dm2_41": 1e-4})
    phase = 1.26693 * 1e-4 * 24.0 / e
    np.testing.assert_allclose(p[0], 0.01 * phase**2, rtol=1e-5)
    assert np.all(STERILE.probability(e, 24.0, {"sin2_2th_mue": 0.3, "dm2_41": 0.0}) == 0.0)


def test_appearance_averaging_regime_is_half_sin2_2theta(jsns2: Jsns2Experiment) -> None:
    """Δm² ≫ E/L over JSNS²'s baseline spread: ⟨P⟩ → sin²2θ/2. The finite cylinder's sharp
    edges leave a residual that falls with Δm² (11 % at 50 eV², 5 % at 100, < 0.5 % from
    300 eV², 0.1 % at 1000 eV²)."""
    e = np.linspace(20.0, 52.0, 65)

    def worst(dm2: float) -> float:
        p = STERILE.averaged(e, jsns2.baselines, {"sin2_2th_mue": 0.004, "dm2_41": dm2})
        return float(np.max(np.abs(p[0] / 0.002 - 1)))

    for dm2 in (300.0, 500.0, 1000.0, 2000.0):
        assert worst(dm2) < 5e-3
    assert worst(1000.0) < worst(50.0) / 50
    # …which is not the point-baseline value: the averaging matters at Δm² ≈ 10 eV².
    point = STERILE.probability(e, 24.0, {"sin2_2th_mue": 0.004, "dm2_41": 10.0})[0]
    avg = STERILE.averaged(e, jsns2.baselines, {"sin2_2th_mue": 0.004, "dm2_41": 10.0})[0]
    assert np.max(np.abs(avg - point)) > 0.1 * 0.004


def test_point_distribution_average_equals_the_plain_probability() -> None:
    e = np.linspace(15.0, 52.0, 9)
    p = {"sin2_2th_mue": 0.02, "dm2_41": 3.7}
    avg = STERILE.averaged(e, baselines.BaselineDistribution.point(24.0), p)
    np.testing.assert_allclose(avg, STERILE.probability(e, 24.0, p), rtol=1e-12, atol=1e-15)


def _pmns4(t12: float, t13: float, t23: float, t14: float, t24: float) -> np.ndarray:
    """Real 4×4 mixing U = R24 R14 R23 R13 R12 (θ34 and phases irrelevant for μ→e here),
    flavour rows (e, μ, τ, s), mass columns."""

    def rot(i: int, j: int, th: float) -> np.ndarray:
        r = np.eye(4)
        r[i, i] = r[j, j] = math.cos(th)
        r[i, j] = math.sin(th)
        r[j, i] = -math.sin(th)
        return r

    return rot(1, 3, t24) @ rot(0, 3, t14) @ rot(1, 2, t23) @ rot(0, 2, t13) @ rot(0, 1, t12)


def _four_flavour_mu_to_e(
    u: np.ndarray, dm2: tuple[float, float, float], baseline_m: float, energy: float
) -> float:
    """|⟨ν_e| exp(−i H L) |ν_μ⟩|², H = U diag(0, Δm²21, Δm²31, Δm²41) Uᵀ / 2E in vacuum,
    by matrix exponentiation."""
    masses = np.diag([0.0, *dm2])
    # H L = Δm² L/(2E) in natural units: eV² · m / (2 · E[MeV]·1e6 eV · ħc), ħc in eV·m.
    h = u @ masses @ u.T / (2.0 * energy * 1e6 * HBARC_EV_M)
    amp = linalg.expm(-1j * h * baseline_m)
    return float(abs(amp[0, 1]) ** 2)


@pytest.mark.parametrize(
    ("dm2_41", "energy"), [(0.5, 30.0), (1.2, 40.0), (7.0, 25.0), (40.0, 50.0)]
)
def test_appearance_equals_an_independent_four_flavour_propagation(
    dm2_41: float, energy: float
) -> None:
    """With the three light states degenerate (Δm²21 = Δm²31 = 0, any θ12, θ13, θ23) the 4ν
    vacuum propagation gives exactly sin²2θμe sin²(Δ41), sin²2θμe = 4|U_e4|²|U_μ4|²: agree to
    1e-6 relative."""
    u = _pmns4(0.59, 0.15, 0.80, 0.12, 0.09)
    s2 = 4 * u[0, 3] ** 2 * u[1, 3] ** 2
    exact = _four_flavour_mu_to_e(u, (0.0, 0.0, dm2_41), 24.0, energy)
    ours = STERILE.probability(np.array([energy]), 24.0, {"sin2_2th_mue": s2, "dm2_41": dm2_41})
    assert float(ours[0, 0]) == pytest.approx(exact, rel=1e-6)


def test_appearance_neglects_only_the_light_splittings_at_jsns2() -> None:
    """With PDG splittings the 4ν result differs by the neglected Δm²31 L/E terms: 2.0 % at
    24 m, 30 MeV, this mixing (the one-mass-scale approximation of the model): < 5 %."""
    u = _pmns4(0.59, 0.15, 0.80, 0.12, 0.09)
    s2 = 4 * u[0, 3] ** 2 * u[1, 3] ** 2
    exact = _four_flavour_mu_to_e(u, (7.5e-5, 2.5e-3, 1.2), 24.0, 30.0)
    ours = STERILE.probability(np.array([30.0]), 24.0, {"sin2_2th_mue": s2, "dm2_41": 1.2})
    assert float(ours[0, 0]) == pytest.approx(exact, rel=0.05)
    assert float(ours[0, 0]) != pytest.approx(exact, rel=1e-3)  # the splittings do matter


def test_appearance_refuses_values_outside_the_physical_domain() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        STERILE.probability(np.array([30.0]), 24.0, {"sin2_2th_mue": 1.2, "dm2_41": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        STERILE.probability(np.array([30.0]), 24.0, {"sin2_2th_mue": 0.1, "dm2_41": -1.0})


# ----------------------------------------------------------------------------- baselines


def test_gaussian_baselines_average_matches_the_closed_form() -> None:
    """For L ~ N(L0, σ²): ⟨cos κL⟩ = cos(κL0) e^(−κ²σ²/2); the binned distribution (2 cm
    bins treated as uniform) reproduces it to 1e-4."""
    l0, sd, width = 24.0, 0.8, 0.02
    centres = np.arange(l0 - 8 * sd, l0 + 8 * sd, width) + width / 2
    w = np.exp(-0.5 * ((centres - l0) / sd) ** 2)
    dist = baselines.BaselineDistribution(centres, w / w.sum(), width, 1.0)
    kappa = np.linspace(0.0, 8.0, 81)
    np.testing.assert_allclose(
        dist.mean_cos(kappa), np.cos(kappa * l0) * np.exp(-0.5 * (kappa * sd) ** 2), atol=1e-4
    )


def test_cylinder_baselines_match_a_monte_carlo_of_the_geometry(jsns2: Jsns2Experiment) -> None:
    """Sample the detector cylinder uniformly and the source as a Gaussian (independent of
    the lens-area integral): ⟨1/L²⟩ and ⟨cos κL⟩ (1/L²-weighted) agree within MC errors."""
    rng = np.random.default_rng(2024)
    n = 400_000
    r = 1.6 * np.sqrt(rng.random(n))
    phi = 2 * np.pi * rng.random(n)
    z = 2.5 * (rng.random(n) - 0.5)
    src = 0.15 * rng.standard_normal((n, 3))
    dist = np.sqrt(
        (24.0 + r * np.cos(phi) - src[:, 0]) ** 2
        + (r * np.sin(phi) - src[:, 1]) ** 2
        + (z - src[:, 2]) ** 2
    )
    w = 1 / dist**2
    d = jsns2.baselines
    assert d.flux_factor * 4 * math.pi * 1e4 == pytest.approx(w.mean(), rel=1e-3)
    for kappa in (0.3, 1.0, 2.0, 5.0):
        mc = float((w * np.cos(kappa * dist)).sum() / w.sum())
        assert float(d.mean_cos(kappa)) == pytest.approx(mc, abs=5e-3)


def test_cylinder_baselines_centre_and_flux(jsns2: Jsns2Experiment) -> None:
    """Flux-weighted mean baseline ≈ 24 m and ⟨1/4πL²⟩ ≈ 1/4π(24 m)² (within 1 %: the 1/L²
    weighting of a 3.2 m × 2.5 m cylinder), weights normalised, spread ≈ the detector size."""
    d = jsns2.baselines
    assert d.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert d.mean == pytest.approx(24.0, abs=0.1)
    assert d.flux_factor == pytest.approx(1 / (4 * math.pi * 2400.0**2), rel=0.01)
    # Beyond the cylinder (24 ∓ 1.6 m, corners at 25.9 m) only the source's 15 cm tails.
    outside = (d.baselines < 24.0 - 1.6 - 0.02) | (d.baselines > 25.92)
    assert d.weights[outside].sum() < 0.01
    assert d.weights[(d.baselines > 22.4) & (d.baselines < 23.0)].sum() > 0.02
    with pytest.raises(ValueError, match="must be > 0"):
        baselines.cylinder_baselines(-24.0, 1.6, 2.5)


# ----------------------------------------------------------------------------- IBD σ


M_E, M_P, M_N = 0.51099895, 938.27208816, 939.56542052  # MeV, CODATA 2018
M_PI = 139.57039  # MeV, PDG 2022
G_F_MEV = 1.1663788e-11  # MeV⁻²
COS_CABIBBO = 0.9746  # Strumia–Vissani's value
ALPHA = 1 / 137.035999
HBARC2_CM2 = (197.3269804e-13) ** 2  # (MeV·cm)²


def _sv_full(enu: float, nodes: int = 64) -> float:
    """The full Strumia–Vissani σ(ν̄ₑp→e⁺n), Phys. Lett. B 564, 42 (2003): dσ/dt of eq. 3 with
    |M|² = A − (s−u)B + (s−u)²C (eqs. 5, 10–12), dipole form factors (eq. 7, M_V² = 0.71 GeV²,
    M_A² = 1 GeV², g₁(0) = −1.270, ξ = 3.706), the radiative factor of eq. 14, integrated over
    the kinematic range of t (Gauss–Legendre); cm²."""
    mav, delta = 0.5 * (M_P + M_N), M_N - M_P
    s = M_P**2 + 2 * M_P * enu
    rs = math.sqrt(s)
    e_nu_cm = (s - M_P**2) / (2 * rs)
    e_e_cm = (s - M_N**2 + M_E**2) / (2 * rs)
    p_e_cm = math.sqrt((s - (M_N - M_E) ** 2) * (s - (M_N + M_E) ** 2)) / (2 * rs)
    t_lo = M_E**2 - 2 * e_nu_cm * (e_e_cm + p_e_cm)
    t_hi = M_E**2 - 2 * e_nu_cm * (e_e_cm - p_e_cm)
    x, wx = np.polynomial.legendre.leggauss(nodes)
    t = 0.5 * (t_hi - t_lo) * x + 0.5 * (t_hi + t_lo)
    w = 0.5 * (t_hi - t_lo) * wx
    q = t / (4 * mav**2)
    dv, da = (1 - t / 0.71e6) ** 2, (1 - t / 1.0e6) ** 2
    f1 = (1 - 4.706 * q) / ((1 - q) * dv)
    f2 = 3.706 / ((1 - q) * dv)
    g1 = -1.270 / da
    g2 = 2 * mav**2 * g1 / (M_PI**2 - t)
    m2, me2 = mav**2, M_E**2
    a = (
        (t - me2)
        * (
            4 * f1**2 * (4 * m2 + t + me2)
            + 4 * g1**2 * (-4 * m2 + t + me2)
            + f2**2 * (t**2 / m2 + 4 * t + 4 * me2)
            + 4 * me2 * t * g2**2 / m2
            + 8 * f1 * f2 * (2 * t + me2)
            + 16 * me2 * g1 * g2
        )
        - delta**2
        * (
            (4 * f1**2 + t * f2**2 / m2) * (4 * m2 + t - me2)
            + 4 * g1**2 * (4 * m2 - t + me2)
            + 4 * me2 * g2**2 * (t - me2) / m2
            + 8 * f1 * f2 * (2 * t - me2)
            + 16 * me2 * g1 * g2
        )
        - 32 * me2 * mav * delta * g1 * (f1 + f2)
    ) / 16
    b = (16 * t * g1 * (f1 + f2) + 4 * me2 * delta * (f2**2 + f1 * f2 + 2 * g1 * g2) / mav) / 16
    c = (4 * (f1**2 + g1**2) - t * f2**2 / m2) / 16
    s_minus_u = 2 * s + t - M_P**2 - M_N**2 - me2  # s + t + u = m_p² + m_n² + m_e²
    msq = a - s_minus_u * b + s_minus_u**2 * c
    e_e = (s + t - M_N**2) / (2 * M_P)  # u = m_p² + m_e² − 2 m_p E_e
    rad = ALPHA / math.pi * (6.00 + 1.5 * np.log(M_P / (2 * e_e)) + 1.2 * (M_E / e_e) ** 1.5)
    dsdt = G_F_MEV**2 * COS_CABIBBO**2 / (2 * math.pi * (s - M_P**2) ** 2) * msq * (1 + rad)
    return float(np.sum(w * dsdt)) * HBARC2_CM2


@pytest.mark.parametrize("energy", [20.0, 30.0, 35.0, 40.0, 45.0, 50.0, 52.8])
def test_ibd_cross_section_matches_full_strumia_vissani_at_dar_energies(energy: float) -> None:
    """Eq. 25 (ours) vs the full formula: within 1 % at 20–53 MeV (SV quote per-mille accuracy
    below 300 MeV; found 0.05–0.6 %), while the zeroth-order σ is off by > 5 % here."""
    full = _sv_full(energy)
    assert float(ibd.cross_section(energy)) == pytest.approx(full, rel=0.01)
    ee = energy - (M_N - M_P)
    naive = 0.0952e-42 * ee * math.sqrt(ee**2 - M_E**2)
    assert abs(naive / full - 1) > 0.05


# ----------------------------------------------------------------------------- normalisation


def test_config_inputs_reproduce_their_published_sources(jsns2: Jsns2Experiment) -> None:
    """Each derived number of conf/experiment/jsns2.yaml against the number it comes from."""
    # ν̄μ/POT: 1.8e14 ν/cm²/year at 24 m (EPJC 84 (2024)) over 1.114e23/3 POT per year.
    derived = 1.8e14 / (1.114e23 / 3) * 4 * math.pi * 2400.0**2
    assert jsns2.source.numubar_per_pot == pytest.approx(derived, rel=0.002)
    # 1 MW of 3 GeV protons, 0.8e22 POT ↔ exposure.days of the config.
    days = float(load("predict", ["experiment=jsns2"]).exposure.days)
    assert jsns2.days_for(0.8e22) == pytest.approx(days, rel=1e-4)
    # Resolution through arXiv:2404.04153's two points: 3.3 % at 52.8 MeV, 4.3 % at 8.0 MeV.
    for e, rel in ((52.8, 0.033), (8.0, 0.043)):
        assert float(jsns2.response.sigma(e)) / e == pytest.approx(rel, abs=2e-4)
    # 17 t of LAB: ~1.25e30 free protons; the cylinder holds 17.3 t at 0.86 t/m³.
    assert jsns2.detector.free_protons == pytest.approx(1.25e30, rel=0.01)
    assert math.pi * 1.6**2 * 2.5 * 0.86 == pytest.approx(17.0, rel=0.03)


def test_backgrounds_are_the_seeds_counts(jsns2: Jsns2Experiment) -> None:
    """In the analysis window for the 2022 exposure: 0.6 + 1.0 + 0.6 + 0.08 = 2.28 (seed:
    2.3 ± 0.4), each category its own count."""
    days = jsns2.days_for(0.8e22)
    counts = jsns2.background_spectra(np.array([20.0, 60.0]), days, "prompt")
    assert {k: round(float(v.sum()), 4) for k, v in counts.items()} == {
        "neutrons": 0.6,
        "accidentals": 1.0,
        "intrinsic_nuebar": 0.6,
        "c12_nue_n12gs": 0.08,
    }
    # ¹²C(νe,e)¹²N_gs lies below E_max − Q = 35.5 MeV (+ resolution).
    fine = jsns2.background_spectra(np.array([20.0, 37.0, 60.0]), days, "prompt")
    assert fine["c12_nue_n12gs"][1] < 1e-3 * fine["c12_nue_n12gs"][0]


def test_signal_normalisation_against_an_independent_integral(jsns2: Jsns2Experiment) -> None:
    """LSND's P = 0.264 % (averaged) in the 2022 data: our prediction equals POT · ν̄μ/POT ·
    ⟨1/4πL²⟩ · N_p · ε · P · ∫ φσ over E_ν with E_ν − 0.782 MeV in 20–60 MeV (scipy quad), to
    2 % (resolution and recoil move events across the 20 MeV edge). It is ~4.7 events, not the
    seed's 1.1 ± 0.5: see conf/experiment/jsns2.yaml (reconciliation)."""
    r = jsns2.reconciliation(0.00264)
    integral, _ = integrate.quad(
        lambda e: decay_at_rest.numubar_spectrum(e) * ibd.cross_section(e),
        20.0 + ibd.PROMPT_OFFSET,
        E_MAX,
    )
    expected = (
        0.8e22
        * jsns2.source.numubar_per_pot
        * jsns2.baselines.flux_factor
        * jsns2.detector.free_protons
        * jsns2.source.efficiency
        * 0.00264
        * integral
    )
    assert r["events"] == pytest.approx(expected, rel=0.02)
    assert r["efficiency"] == pytest.approx(0.872 * 0.71 * r["efficiency.beam_timing"])


# ----------------------------------------------------------------------------- bad input


def _predict(tmp_path: Path, *overrides: str) -> tuple[int, str]:
    from oscflow.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["predict", "experiment=jsns2", f"plot={tmp_path}/spectrum.png", *overrides])
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("experiment.detectors.near.distance_m=-24", "experiment.detectors.near.distance_m"),
        ("experiment.oscillation.model=four_flavour", "experiment.oscillation.model"),
        ("params.sin2_2th_mue=1.5", "params.sin2_2th_mue"),
        ("params.sin2_2th_mue=-0.1", "params.sin2_2th_mue"),
        ("binning.emax=150", "binning"),
    ],
)
def test_bad_jsns2_input_is_a_config_error_and_writes_nothing(
    tmp_path: Path, override: str, key: str
) -> None:
    code, err = _predict(tmp_path, override)
    assert code == 1, err
    assert key in err
    assert not list(tmp_path.iterdir())


def test_good_jsns2_prediction_writes_its_plot(tmp_path: Path) -> None:
    """The same command without the bad override succeeds (the bad-input test can fail)."""
    code, err = _predict(tmp_path)
    assert code == 0, err
    assert (tmp_path / "spectrum.png").is_file()
