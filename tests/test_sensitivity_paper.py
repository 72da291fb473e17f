"""Seed 003 (Ventura & Panibra) reproduced by `oscflow sensitivity solar` with
background.source=paper: Tables 1, 2, 4 (JUNO rows and the μ_ν columns) and Table 3's totals,
compared with the printed values to their printed precision.

The paper is not fully self-consistent at its printed precision; where it is not, the test
names the entry, says why, and asserts our value (from the paper's own inputs and formulas)
exactly as well as its distance to the printed one. Each such case is shown to be an
inconsistency *inside* the paper, not a difference of method.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from oscflow.config import load
from oscflow.services.sensitivity import run

FAST = ["record=false", "plot.enabled=false", "spectral.enabled=false", "scans.enabled=false"]

# Table 1 rows: category → (b, μ_UL, Φ_lim, P) as printed.
TABLE1_A = {
    "near_reactors": (98671, 402.1, 5.21e2, 9.07e-5),
    "far_reactors": (11205, 135.5, 1.76e2, 3.07e-5),
    "geoneutrinos": (837, 37.0, 4.80e1, 8.36e-6),
    "world_reactors": (1756, 53.6, 6.95e1, 1.21e-5),
    "accidentals": (798, 36.2, 4.68e1, 8.15e-6),
    "li9_he8": (2143, 59.3, 7.68e1, 1.34e-5),
    "atmospheric_nc": (247, 20.1, 2.61e1, 4.55e-6),
    "fast_neutrons": (247, 20.1, 2.61e1, 4.55e-6),
    "c13_alpha_n": (91, 12.2, 1.58e1, 2.75e-6),
}
TABLE1_B = {
    "near_reactors": (712, 34.15, 2.27e1, 1.17e-5),
    "far_reactors": (52, 9.23, 6.13, 3.16e-6),
    "li9_he8": (1294, 46.04, 3.06e1, 1.58e-5),
    "fast_neutrons": (145, 15.41, 1.02e1, 5.26e-6),
    "atmospheric_nc": (145, 15.41, 1.02e1, 5.26e-6),
    "world_reactors": (20, 5.72, 3.80, 1.96e-6),
    "geoneutrinos": (0, 2.44, 1.62, 8.36e-7),
    "accidentals": (0, 2.44, 1.62, 8.36e-7),
    "c13_alpha_n": (0, 2.44, 1.62, 8.36e-7),
}
TOTALS = {"A": (115995, 435.9, 5.65e2, 9.84e-5), "B": (2223, 60.35, 4.01e1, 2.07e-5)}
# P entries the paper evidently computed from its *rounded* Φ_lim (e.g. far reactors:
# 1.76e2 / 5.74e6 = 3.07e-5, while 175.5 / 5.74e6 = 3.06e-5), and the b = 0 rows (2.44 /
# 1.506 / 1.94e6 = 8.35e-7 at best; printed 8.36e-7): our unrounded values, 3 digits.
P_FROM_ROUNDED_PHI = {
    ("A", "far_reactors"): 3.06e-5,
    ("A", "accidentals"): 8.16e-6,
    ("A", "atmospheric_nc"): 4.54e-6,
    ("A", "fast_neutrons"): 4.54e-6,
    ("A", "c13_alpha_n"): 2.76e-6,
    ("B", "fast_neutrons"): 5.28e-6,
    ("B", "atmospheric_nc"): 5.28e-6,
    ("B", "geoneutrinos"): 8.34e-7,
    ("B", "accidentals"): 8.34e-7,
    ("B", "c13_alpha_n"): 8.34e-7,
}


def _sig(x: float, digits: int = 3) -> float:
    """``x`` rounded to ``digits`` significant figures."""
    return float(f"{x:.{digits - 1}e}")


def _half_unit(x: float, digits: int = 3) -> float:
    """Half a unit of the last of ``digits`` significant figures of ``x``."""
    return 0.5 * 10 ** (math.floor(math.log10(abs(x))) - digits + 1)


def _decimals(printed: float) -> int:
    """Decimal places of a printed μ_UL (402.1 → 1, 34.15 → 2)."""
    text = repr(printed)
    return len(text.split(".")[1]) if "." in text else 0


@pytest.fixture(scope="module")
def paper() -> dict[str, Any]:
    return run(load("sensitivity", FAST))


@pytest.mark.parametrize(("window", "table"), [("A", TABLE1_A), ("B", TABLE1_B)])
def test_table1_per_category(paper: dict[str, Any], window: str, table: dict) -> None:
    rows = paper["windows"][window]["categories"]
    assert set(rows) == set(table)
    for cat, (b, mu, phi, p) in table.items():
        row = rows[cat]
        assert row["b"] == b
        assert round(row["mu_ul"], _decimals(mu)) == pytest.approx(mu), cat
        assert _sig(row["flux_limit"]) == pytest.approx(phi), cat
        expected_p = P_FROM_ROUNDED_PHI.get((window, cat), p)
        assert _sig(row["p_limit"]) == pytest.approx(expected_p), cat
        assert abs(row["p_limit"] - p) <= 5 * _half_unit(p), cat  # ≤ 2.5 units, 3rd digit
    # Seed 003's rule: FC sensitivity 2.44 for b = 0, 1.28 √b otherwise.
    assert {r["method"] for r in rows.values() if r["b"] == 0} <= {"fc-mean"}
    assert {r["method"] for r in rows.values() if r["b"] > 0} == {"gauss"}


@pytest.mark.parametrize("window", ["A", "B"])
def test_table1_totals(paper: dict[str, Any], window: str) -> None:
    b, mu, phi, p = TOTALS[window]
    w = paper["windows"][window]
    total = w["paper_total"]
    assert total["b"] == b
    assert round(total["mu_ul"], _decimals(mu)) == pytest.approx(mu)
    assert _sig(total["flux_limit"]) == pytest.approx(phi)
    assert _sig(total["p_limit"]) == pytest.approx(p)
    # σ̄ T n_p: 0.772 and 1.506 (Table 1 header).
    assert round(w["sigma_t_np"], 3) == {"A": 0.772, "B": 1.506}[window]


def test_window_b_total_is_not_the_sum_of_its_categories(paper: dict[str, Any]) -> None:
    """Table 1 B's categories sum to 2368, its total is 2223 = 2368 − 145: one of the two
    145-event categories is missing. The service reports both; `total` is the sum."""
    w = paper["windows"]["B"]
    assert w["total"]["b"] == 2368
    assert w["paper_total"]["b"] == 2223
    assert w["total"]["b"] - w["paper_total"]["b"] == TABLE1_B["fast_neutrons"][0]
    assert paper["windows"]["A"]["total"]["b"] == paper["windows"]["A"]["paper_total"]["b"]


def test_table2(paper: dict[str, Any]) -> None:
    """Table 2: Φ_lim, P [1e-5], μ_ν at 600 G and 7 MG. The 7 MG entries are reproduced. The
    600 G entries are not: by eq. 4, μ_ν(600 G)/μ_ν(7 MG) = 7000/0.6 = 11667 exactly, but the
    printed pairs give 1.33e-8/1.13e-12 ≥ 1.325/1.135e4 = 11674 and 6.07e-9/5.18e-13 ≥ 11697:
    no P reproduces both. Ours satisfy eq. 4 and lie within 1 % of the printed 600 G values."""
    printed = {"A": (5.65e2, 9.84, 1.33e-8, 1.13e-12), "B": (4.01e1, 2.07, 6.07e-9, 5.18e-13)}
    for window, (phi, p5, mu600, mu7mg) in printed.items():
        t = paper["windows"][window]["paper_total"]
        assert _sig(t["flux_limit"]) == pytest.approx(phi)
        assert round(t["p_limit"] * 1e5, 2) == pytest.approx(p5)
        assert _sig(t["mu_nu"]["7000"]) == pytest.approx(mu7mg)
        assert t["mu_nu"]["0.6"] / t["mu_nu"]["7000"] == pytest.approx(7000 / 0.6)
        assert t["mu_nu"]["0.6"] == pytest.approx(mu600, rel=0.01)
        # The printed pair, even at the extremes of its rounding, violates eq. 4.
        assert (mu600 - _half_unit(mu600)) / (mu7mg + _half_unit(mu7mg)) > 7000 / 0.6


def test_table4(paper: dict[str, Any]) -> None:
    """Table 4: μ_ν at 50 and 100 kG recomputed from each published P reproduce every printed
    value; JUNO's window A row too. JUNO's window B row prints 7.27e-11 and 3.64e-11, which
    need P ≈ 2.075e-5 (3.64e-11 needs P ≥ 2.0752e-5, i.e. "2.08e-5"), not the printed
    2.07e-5 = Φ_lim/Φ_SSM = 40.07/1.94e6; from that P we get 7.25e-11 and 3.63e-11."""
    printed = {
        "CTF": (2.20e-9, 1.10e-9),
        "SNO": (1.44e-9, 7.18e-10),
        "Super-Kamiokande": (3.46e-10, 1.73e-10),
        "KamLAND (2004)": (2.67e-10, 1.33e-10),
        "Borexino (2011; high thr.)": (2.08e-10, 1.04e-10),
        "Borexino (2011; combined)": (1.82e-10, 9.10e-11),
        "KamLAND (2012)": (1.16e-10, 5.81e-11),
        "KamLAND (2022)": (9.44e-11, 4.72e-11),
    }
    rows = {r["experiment"]: r for r in paper["published_comparison"]}
    for name, (mu50, mu100) in printed.items():
        assert _sig(rows[name]["mu_nu"]["50"]) == pytest.approx(mu50), name
        assert _sig(rows[name]["mu_nu"]["100"]) == pytest.approx(mu100), name
    juno_a = next(r for k, r in rows.items() if k.startswith("JUNO (window A"))
    assert _sig(juno_a["p_lim"]) == pytest.approx(9.84e-5)
    assert _sig(juno_a["flux"]) == pytest.approx(565)
    assert _sig(juno_a["mu_nu"]["50"]) == pytest.approx(1.58e-10)
    assert _sig(juno_a["mu_nu"]["100"]) == pytest.approx(7.91e-11)
    juno_b = rows["JUNO (window B, paper's total b = 2223)"]
    assert _sig(juno_b["p_lim"]) == pytest.approx(2.07e-5)
    assert _sig(juno_b["flux"]) == pytest.approx(40.1)
    assert _sig(juno_b["mu_nu"]["50"]) == pytest.approx(7.25e-11)
    assert _sig(juno_b["mu_nu"]["100"]) == pytest.approx(3.63e-11)
    needed = (3.635e-11 * 100 / 7.4e-7) ** 2 * 0.86  # P for μ_ν(100 kG) to print 3.64
    assert needed > 2.075e-5 > juno_b["p_lim"]
    assert "JUNO (window B, categories' sum b = 2368)" in rows


def test_table3_totals_and_rows(paper: dict[str, Any]) -> None:
    """Table 3. Window A total (δb/b, δΦ/Φ, δP/P, δμ/μ) = (2.0, 1.9, 11.2, 5.6): reproduced
    with the categories' rate uncertainties and √b in quadrature, δk/k = 1.6 %, 11 % ⁸B flux.
    Every per-category row is reproduced except B's ⁹Li/⁸He δΦ/Φ (printed 10.2; the same
    inputs give 10.1, as the paper prints for window A). Window B's total (11.1, 5.9, 12.5,
    6.2) is not derivable from the paper's inputs: the ⁹Li/⁸He term alone is 0.2 · 1294 / 2223
    = 11.6 % > 11.1 %, and its δΦ/Φ = 5.9 does not follow from its δb/b = 11.1 (that gives
    5.8). We assert our value and that bound."""

    def pct(u: dict[str, float | None]) -> tuple[float, ...]:
        return tuple(round(float(u[k]), 1) for k in ("db_over_b", "dphi_over_phi",
                                                      "dp_over_p", "dmu_over_mu"))  # fmt: skip

    a = paper["windows"]["A"]
    assert pct(a["paper_total"]["uncertainty"]) == (2.0, 1.9, 11.2, 5.6)
    rows_a = {
        "near_reactors": (2.2, 1.9, 11.2, 5.6),
        "far_reactors": (2.0, 1.9, 11.2, 5.6),
        "world_reactors": (2.0, 1.9, 11.2, 5.6),
        "geoneutrinos": (30.0, 15.1, 18.7, 9.3),
        "accidentals": (1.0, 1.7, 11.1, 5.6),
        "li9_he8": (20.0, 10.1, 15.0, 7.5),
        "fast_neutrons": (100.0, 50.0, 51.2, 25.6),
        "c13_alpha_n": (50.0, 25.1, 27.4, 13.7),
        "atmospheric_nc": (50.0, 25.1, 27.4, 13.7),
    }
    for cat, expected in rows_a.items():
        assert pct(a["categories"][cat]["uncertainty"]) == expected, cat
    b = paper["windows"]["B"]
    assert pct(b["categories"]["fast_neutrons"]["uncertainty"]) == (100.0, 50.0, 51.2, 25.6)
    assert pct(b["categories"]["atmospheric_nc"]["uncertainty"]) == (50.0, 25.1, 27.4, 13.7)
    assert pct(b["categories"]["li9_he8"]["uncertainty"]) == (20.0, 10.1, 15.0, 7.5)
    ours = b["paper_total"]["uncertainty"]
    li9_alone = 100 * 0.2 * 1294 / 2223
    assert li9_alone > 11.1
    assert ours["db_over_b"] > li9_alone
    assert pct(ours) == (13.9, 7.1, 13.1, 6.6)


def test_exposure_scaling_of_paper_counts() -> None:
    """Twice the live time doubles every count: μ_UL grows by √2, Φ_lim falls by √2."""
    one = run(load("sensitivity", FAST))["windows"]["A"]["total"]
    two = run(load("sensitivity", [*FAST, "exposure.seconds=3.1536e8"]))["windows"]["A"]["total"]
    assert two["b"] == pytest.approx(2 * one["b"])
    assert two["mu_ul"] == pytest.approx(math.sqrt(2) * one["mu_ul"])
    assert two["flux_limit"] == pytest.approx(one["flux_limit"] / math.sqrt(2))
