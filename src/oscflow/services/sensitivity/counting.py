"""Counting analysis (seed 003, Sec. 3): μ_UL from the expected background, then the flux,
the conversion probability and the magnetic moment, with propagated uncertainties.

- μ_UL (events): ``fc`` — Feldman–Cousins sensitivity (mean, FC Table XII, or median upper
  limit over background-only experiments; exact for any b); ``gauss`` — z·√b with seed 003's
  z = 1.28; ``auto`` — FC for b ≤ ``auto_fc_max_b`` (15), Gaussian above (seed 003's rule).
- Φ_lim = μ_UL / (σ̄ T n_p ε) (seed 003 eq. 2); P = Φ_lim / Φ_SSM(E > E_th) (eq. 3);
  μ_ν = c √(P / sin²2θ12) / B⊥[kG] (eq. 4, c = 7.4e-7).
- Uncertainties (seed 003 Table 3): δμ_UL/μ_UL = (d ln μ_UL / d ln b) δb/b (½ δb/b for the
  Gaussian rule); δΦ/Φ adds the detector normalisation δk/k in quadrature, δP/P adds the ⁸B
  flux uncertainty, δμ/μ = ½ δP/P. Per category δb/b is its rate uncertainty; for the window
  total the categories' absolute rate uncertainties and the Poisson term √b add in quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...stats import feldman_cousins as fc
from .inputs import LimitSettings

LARGE_B = 100.0  # above: d ln μ_UL / d ln b of FC taken as its Gaussian value ½


def resolve_method(b: float, settings: LimitSettings) -> str:
    if settings.method == "auto":
        return "fc" if b <= settings.auto_fc_max_b else "gauss"
    return settings.method


def upper_limit(b: float, settings: LimitSettings) -> tuple[float, str]:
    """(μ_UL, the method used) for expected background ``b``."""
    if not b >= 0:
        msg = f"expected background {b} must be >= 0"
        raise ValueError(msg)
    method = resolve_method(b, settings)
    if method == "gauss":
        return settings.gauss_coefficient * math.sqrt(b), "gauss"
    if settings.fc_statistic == "median":
        return fc.median_upper_limit(b, settings.cl), "fc-median"
    return fc.sensitivity(b, settings.cl), "fc-mean"


def log_slope(b: float, settings: LimitSettings) -> float:
    """d ln μ_UL / d ln b at b (for propagating δb/b)."""
    if b <= 0:
        return 0.0
    if resolve_method(b, settings) == "gauss" or b > LARGE_B:
        return 0.5
    h = 0.05
    up, _ = upper_limit(b * (1 + h), settings)
    down, _ = upper_limit(b * (1 - h), settings)
    return (math.log(up) - math.log(down)) / (math.log(1 + h) - math.log(1 - h))


def magnetic_moment(p: float, b_perp_kg: float, coefficient: float, sin2_2theta: float) -> float:
    """μ_ν (μ_B) for conversion probability ``p`` and transverse field ``b_perp_kg`` (kG)."""
    return coefficient * math.sqrt(p / sin2_2theta) / b_perp_kg


@dataclass(frozen=True)
class SignalInputs:
    """Per window: σ̄ (cm²), Φ_SSM above threshold (cm⁻²s⁻¹), T n_p ε (s), where from."""

    sigma_bar: float
    ssm_flux: float
    exposure_factor: float
    source: str


@dataclass(frozen=True)
class Propagation:
    detector: float  # δk/k
    flux: float  # δΦ_SSM/Φ_SSM
    statistical: bool


def propagate(rel_b: float | None, slope: float, prop: Propagation) -> dict[str, float | None]:
    """Relative uncertainties (δb/b, δΦ/Φ, δP/P, δμ/μ) as in seed 003 Table 3, in %."""
    if rel_b is None:
        return {"db_over_b": None, "dphi_over_phi": None, "dp_over_p": None, "dmu_over_mu": None}
    d_mu_ul = slope * rel_b
    d_phi = math.hypot(d_mu_ul, prop.detector)
    d_p = math.hypot(d_phi, prop.flux)
    return {
        "db_over_b": 100 * rel_b,
        "dphi_over_phi": 100 * d_phi,
        "dp_over_p": 100 * d_p,
        "dmu_over_mu": 100 * 0.5 * d_p,
    }


def window_analysis(
    counts: Mapping[str, float],
    rate_unc: Mapping[str, float],
    signal: SignalInputs,
    settings: LimitSettings,
    prop: Propagation,
    b_perp: Sequence[float],
    mm: Mapping[str, float],
    printed_total: float | None = None,
) -> dict[str, Any]:
    """Table 1 (per category and total), Table 2 and Table 3 for one window. With
    ``printed_total`` (the paper's total b, which need not be the sum of its categories) the
    same limits are also given for it as ``paper_total``."""
    k = signal.sigma_bar * signal.exposure_factor

    def limits(b: float) -> dict[str, Any]:
        mu, method = upper_limit(b, settings)
        flux = mu / k
        p = flux / signal.ssm_flux
        return {
            "b": b,
            "mu_ul": mu,
            "method": method,
            "flux_limit": flux,
            "p_limit": p,
            "mu_nu": {
                f"{bp:g}": magnetic_moment(p, bp, mm["coefficient"], mm["sin2_2theta12"])
                for bp in b_perp
            },
        }

    rows = {}
    for cat, b in counts.items():
        row = limits(b)
        rel = rate_unc.get(cat, 0.0) if b > 0 else None
        row["uncertainty"] = propagate(rel, log_slope(b, settings), prop)
        rows[cat] = row
    total_b = float(sum(counts.values()))
    total = limits(total_b)
    abs_sq = sum((rate_unc.get(c, 0.0) * b) ** 2 for c, b in counts.items())
    if prop.statistical:
        abs_sq += total_b
    rel_total = math.sqrt(abs_sq) / total_b if total_b > 0 else None
    total["uncertainty"] = propagate(rel_total, log_slope(total_b, settings), prop)
    out = {
        "sigma_bar_cm2": signal.sigma_bar,
        "ssm_flux_above": signal.ssm_flux,
        "sigma_t_np": k,
        "signal_source": signal.source,
        "categories": rows,
        "total": total,
    }
    if printed_total is not None:
        paper = limits(printed_total)
        rel = math.sqrt(abs_sq - (total_b if prop.statistical else 0.0)) / printed_total
        if prop.statistical:
            rel = math.hypot(rel, 1.0 / math.sqrt(printed_total))
        paper["uncertainty"] = propagate(rel, log_slope(printed_total, settings), prop)
        paper["categories_sum"] = total_b
        out["paper_total"] = paper
    return out


def published_comparison(
    published: Sequence[Mapping[str, Any]],
    juno: Mapping[str, Mapping[str, Any]],
    windows: Mapping[str, str],
    mm: Mapping[str, float],
    fields_kg: Sequence[float] = (50.0, 100.0),
) -> list[dict[str, Any]]:
    """Seed 003 Table 4: published P limits with μ_ν at 50 and 100 kG, then JUNO's rows."""
    rows = []
    for exp in published:
        p = float(exp["p_lim"])
        rows.append(
            {
                "experiment": str(exp["experiment"]),
                "reference": str(exp.get("reference", "")),
                "threshold": str(exp.get("threshold", "")),
                "p_lim": p,
                "flux": None if exp.get("flux") is None else float(exp["flux"]),
                "mu_nu": {
                    f"{b:g}": magnetic_moment(p, b, mm["coefficient"], mm["sin2_2theta12"])
                    for b in fields_kg
                },
            }
        )
    for name, res in juno.items():
        totals = [("categories' sum", res["total"])]
        if "paper_total" in res and abs(res["paper_total"]["b"] - res["total"]["b"]) > 0.5:
            totals.insert(0, ("paper's total", res["paper_total"]))
        elif "paper_total" in res:
            totals = [("paper's total", res["paper_total"])]
        for what, total in totals:
            rows.append(
                {
                    "experiment": f"JUNO (window {name}, {what} b = {total['b']:.0f})",
                    "reference": "oscflow",
                    "threshold": windows[name],
                    "p_lim": total["p_limit"],
                    "flux": total["flux_limit"],
                    "mu_nu": {
                        f"{b:g}": magnetic_moment(
                            total["p_limit"], b, mm["coefficient"], mm["sin2_2theta12"]
                        )
                        for b in fields_kg
                    },
                }
            )
    return rows
