"""Scans (beyond seed 003): the counting limit versus exposure and versus the window's lower
edge (which threshold gives the best P limit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...physics import solar
from .backgrounds import Spectra
from .counting import upper_limit
from .inputs import LimitSettings

SECONDS_PER_YEAR = 365.25 * 86400.0


def exposure_scan(
    counts: Mapping[str, Mapping[str, float]],
    signal: Mapping[str, Any],
    seconds: float,
    years: Sequence[float],
    settings: LimitSettings,
) -> dict[str, list[dict[str, float | str]]]:
    """Per window: b, μ_UL, Φ_lim and P for each live time in ``years``; backgrounds and
    signal scale linearly with the live time from the configured ``seconds``."""
    out: dict[str, list[dict[str, float | str]]] = {}
    for name, cats in counts.items():
        b0 = float(sum(cats.values()))
        sig = signal[name]
        rows: list[dict[str, float | str]] = []
        for y in years:
            scale = float(y) * SECONDS_PER_YEAR / seconds
            mu, method = upper_limit(b0 * scale, settings)
            flux = mu / (sig.sigma_bar * sig.exposure_factor * scale)
            rows.append(
                {
                    "years": float(y),
                    "b": b0 * scale,
                    "mu_ul": mu,
                    "method": method,
                    "flux_limit": flux,
                    "p_limit": flux / sig.ssm_flux,
                }
            )
        out[name] = rows
    return out


def threshold_scan(
    spectra: Spectra,
    thresholds: Sequence[float],
    emax: float,
    exposure_factor: float,
    total_flux: float,
    settings: LimitSettings,
    shape_sigma: float = 0.0,
) -> dict[str, Any]:
    """P limit for windows [E_th, emax] in E_ν from the model spectra (σ̄ and Φ_SSM(E > E_th)
    computed from the ⁸B spectrum); the threshold with the smallest P is ``best``."""
    rows: list[dict[str, Any]] = []
    for e_th in thresholds:
        lo = float(e_th)
        if lo < spectra.edges[0] - 1e-9 or emax > spectra.edges[-1] + 1e-9 or not lo < emax:
            continue
        b = float(sum(spectra.window_counts(lo, emax).values()))
        mu, method = upper_limit(b, settings)
        sigma_bar = solar.mean_cross_section(lo, emax, shape_sigma)
        ssm = solar.flux_in_window(total_flux, lo, shape_sigma=shape_sigma)
        flux = mu / (sigma_bar * exposure_factor)
        rows.append(
            {
                "threshold": lo,
                "b": b,
                "mu_ul": mu,
                "method": method,
                "sigma_bar_cm2": sigma_bar,
                "ssm_flux_above": ssm,
                "flux_limit": flux,
                "p_limit": flux / ssm,
            }
        )
    best = min(rows, key=lambda r: r["p_limit"]) if rows else None
    return {"emax": emax, "rows": rows, "best": best}
