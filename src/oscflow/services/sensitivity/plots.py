"""Figures: seed 003's Figure 1 (P limits versus B⊥ with the μ_ν colour map), and the
spectral-analysis spectrum (backgrounds stacked, the signal at its upper limit)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...plots import save_png


def figure1(
    path: str | Path,
    published: Sequence[Mapping[str, Any]],
    juno: Mapping[str, float],
    b_range_kg: Sequence[float],
    p_range: Sequence[float],
    benchmarks_kg: Mapping[str, float],
    coefficient: float,
    sin2_2theta: float,
) -> Path:
    """P(ν_e → ν̄_e) vs B⊥ (log–log) coloured by μ_ν = c √(P / sin²2θ12) / B⊥, with the
    published limits and JUNO's (dashed) and benchmark fields (dotted). P does not depend on
    B⊥: the abscissa only maps each P to a μ_ν."""

    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    b = np.geomspace(b_range_kg[0], b_range_kg[1], 300)
    p = np.geomspace(p_range[0], p_range[1], 300)
    bb, pp = np.meshgrid(b, p)
    mu = coefficient * np.sqrt(pp / sin2_2theta) / bb
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    mesh = ax.pcolormesh(bb, pp, mu, norm=LogNorm(), shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=r"$\mu_\nu$ [$\mu_B$]")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(published):
        pl = float(row["p_lim"])
        if p_range[0] <= pl <= p_range[1]:
            ax.axhline(pl, ls="--", lw=1.2, color=colours[i % len(colours)])
            ax.text(b[0] * 1.1, pl * 1.05, f"{row['experiment']} ({pl:.1e})", fontsize=7,
                    color="white")  # fmt: skip
    for name, pl in juno.items():
        ax.axhline(pl, ls="-", lw=2.0, color="red")
        ax.text(b[-1] / 1.1, pl * 1.05, f"JUNO {name} ({pl:.2e})", fontsize=8, color="red",
                ha="right")  # fmt: skip
    for label, value in benchmarks_kg.items():
        ax.axvline(value, ls=":", color="white", lw=1.0)
        ax.text(value * 1.05, p[0] * 1.2, label, rotation=90, fontsize=7, color="white")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"$B_\perp$ [kG]")
    ax.set_ylabel(r"$P(\nu_e \to \bar\nu_e)$, 90 % CL")
    ax.set_title(
        r"Limits on $P(\nu_e\to\bar\nu_e)$ and the implied $\mu_\nu$ (after seed 003 Fig. 1)"
    )
    return save_png(fig, path)


def spectrum(
    path: str | Path,
    edges: np.ndarray,
    backgrounds: Mapping[str, np.ndarray],
    signal: np.ndarray,
    title: str,
    energy_label: str,
) -> Path:
    """Backgrounds stacked per bin with the signal at its spectral upper limit on top."""

    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    bottom = np.zeros(len(edges) - 1)
    for name, counts in sorted(backgrounds.items(), key=lambda kv: kv[1].sum()):
        ax.stairs(bottom + counts, edges, baseline=bottom, fill=True, label=name, alpha=0.8)
        bottom = bottom + counts
    ax.stairs(bottom + signal, edges, baseline=bottom, color="red", lw=1.5,
              label="⁸B ν̄ signal at the upper limit")  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(max(1e-2, 0.5 * float(np.min(bottom[bottom > 0], initial=1.0))), None)
    ax.set_xlabel(energy_label)
    ax.set_ylabel("events per bin")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_png(fig, path)
