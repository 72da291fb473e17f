"""The exclusion plot: (sin²2θμe, Δm²41), limits, expected bands, LSND's region."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {"jsns2_2022": "tab:blue", "jsns2ii_5yr": "tab:green"}


def exclusion(path: Path, result: Mapping[str, Any]) -> Path:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    dm2 = np.asarray(result["grid"]["dm2"])
    fig, ax = plt.subplots(figsize=(7, 6))
    lsnd = result["lsnd"]
    ld = np.asarray(lsnd["dm2"])
    lo = np.asarray(lsnd["sin2_2th_low"], dtype=float)
    hi = np.asarray(lsnd["sin2_2th_high"], dtype=float)
    ok = np.isfinite(hi)
    ax.fill_betweenx(
        ld[ok],
        np.maximum(lo[ok], 1e-5),
        hi[ok],
        color="orange",
        alpha=0.35,
        label=f"LSND ⟨P⟩ = {100 * lsnd['probability']:.3f} ± {lsnd['z']:g}σ %",
    )
    bf = lsnd["best_fit"]
    ax.plot(bf["sin2_2th"], bf["dm2"], "*", color="darkorange", ms=14, label="LSND best fit")
    for name, entry in result["analyses"].items():
        colour = COLOURS.get(name)
        exp = entry["expected"]
        ax.fill_betweenx(
            dm2,
            np.maximum(exp["minus_1sigma"], 1e-5),
            exp["plus_1sigma"],
            color=colour,
            alpha=0.2,
            label=f"{name}: expected ±1σ",
        )
        ax.plot(exp["median"], dm2, "--", color=colour, label=f"{name}: expected median")
        if "observed" in entry:
            ul = np.asarray([np.nan if x is None else x for x in entry["observed"]["upper_limit"]])
            ax.plot(
                ul,
                dm2,
                "-",
                color=colour,
                lw=2.5,
                label=f"{name}: observed ({sum(entry['observed']['counts'])} events)",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1e-4, 1.0)
    ax.set_ylim(dm2.min(), dm2.max())
    ax.set_xlabel(r"$\sin^2 2\theta_{\mu e}$")
    ax.set_ylabel(r"$\Delta m^2_{41}$ [eV$^2$]")
    ax.set_title(
        f"JSNS² {100 * result['cl']:g} % CL (Feldman–Cousins, {result['toys']} toys/point)"
    )
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
