"""Published numbers: seed 003's reactor counts and JUNO's daily IBD rate."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import NOMINAL
from oscflow.config import load
from oscflow.experiments import load_experiment

FIVE_YEARS = 1.5768e8 / 86400.0  # seed 003: T = 1.5768e8 s
# Seed 003's reactor model is the equilibrium Huber–Mueller flux: its numbers are compared with
# ours without the non-equilibrium and spent-fuel corrections (they would add +0.82 % in
# 1.8–16.8 MeV, nothing above 4.5 MeV; tests/test_reactor.py).
SEED003_FLUX = ["experiment.reactor.non_equilibrium=false", "experiment.reactor.spent_fuel=false"]


def _counts(overrides: list[str], edges: list[float]) -> dict[str, np.ndarray]:
    exp = load_experiment(load("predict", overrides).experiment)
    pred = exp.predictor(np.array(edges), "neutrino", "matrix")
    return {k: v[0] for k, v in pred.predict(NOMINAL, exp.exposure(FIVE_YEARS, 1.0)).items()}


def test_seed003_near_and_far_reactor_counts() -> None:
    """Seed 003 (Ventura & Panibra), Table 1: 5 yr, 20 kt, 1.44e33 protons, ε = 1,
    E_ν 1.8–16.8 MeV, three-flavour vacuum oscillation at PDG values: near 98,671, far 11,205.

    We get 102,258 and 11,581 (+3.6 %, +3.4 %). The ratio near/far agrees with theirs to 0.3 %,
    so the remaining difference is a common normalisation: seed 003 does not list its energy per
    fission, cross-section constants or spectrum integration; e.g. mean energy per fission of
    212 MeV instead of Kopeikin's 205.1 MeV for this fuel would account for it.
    """
    counts = _counts(["experiment.oscillation.matter=false", *SEED003_FLUX], [1.8, 16.8])
    near, far = counts["near_reactors"][0], counts["far_reactors"][0]
    assert near == pytest.approx(98_671, rel=0.08)
    assert far == pytest.approx(11_205, rel=0.15)
    assert near / far == pytest.approx(98_671 / 11_205, rel=0.01)


def test_seed003_high_energy_window_with_polynomial_continuation() -> None:
    """Seed 003's 8–16.8 MeV counts (near 712, far 52) follow from continuing the Huber–Mueller
    polynomials above 8 MeV; with that choice we reproduce them within 2 % (near) and 5 % (far,
    52 is a rounded small number). Our default log-linear continuation gives ~25 % more."""
    poly = _counts(
        [
            "experiment.oscillation.matter=false",
            "experiment.spectrum_extrapolation=polynomial",
            *SEED003_FLUX,
        ],
        [8.0, 16.8],
    )
    assert poly["near_reactors"][0] == pytest.approx(712, rel=0.02)
    assert poly["far_reactors"][0] == pytest.approx(52, rel=0.05)
    expo = _counts(["experiment.oscillation.matter=false", *SEED003_FLUX], [8.0, 16.8])
    assert 1.1 < expo["near_reactors"][0] / poly["near_reactors"][0] < 1.5


def test_daily_ibd_rate_before_selection_has_the_published_size() -> None:
    """Nominal JUNO (26.6 GW near + Daya Bay + Huizhou), no selection, with the non-equilibrium
    and spent-fuel corrections: 63.5 IBD/day (63.0 without them). Published:
    47.1/day after the 82.2 % selection (JUNO, Chin. Phys. C 46, 123001 (2022)), i.e. ~57/day
    before it, for slightly different fission fractions and with reactor duty cycles; seed
    003's near + far counts give 60.2/day (its equilibrium flux: our 63.0, +4.7 %). We require
    55–68/day, and the corrections' +0.8 %."""

    def per_day(overrides: list[str]) -> float:
        exp = load_experiment(load("predict", overrides).experiment)
        pred = exp.predictor(np.array([1.8, 16.8]), "neutrino", "matrix")
        return sum(v.sum() for v in pred.predict(NOMINAL, exp.exposure(1.0, 1.0)).values())

    corrected, equilibrium = per_day([]), per_day(SEED003_FLUX)
    assert 55.0 < corrected < 68.0
    assert corrected / equilibrium - 1 == pytest.approx(0.0083, abs=0.0005)
    seed003 = (98_671 + 11_205) / FIVE_YEARS
    assert equilibrium == pytest.approx(seed003, rel=0.06)
