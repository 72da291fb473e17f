"""Figures of the mass-ordering study: the Asimov Δχ² of the wrong ordering vs exposure (with
JUNO's published 3σ exposure), and the toy distributions of T = χ²(IO) − χ²(NO) under each
true ordering with their medians and the critical values."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...plots import save_png


def asimov_vs_exposure(path: str | Path, result: Mapping[str, Any]) -> Path:
    """Δχ²(wrong ordering) vs GW_th · years, both true orderings; Δχ² = 9 (3σ median,
    Gaussian approximation) and the published exposure for 3σ marked."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for truth, style in (("normal", "o-"), ("inverted", "s--")):
        rows = sorted(
            (r for r in result["asimov"] if r["true_ordering"] == truth),
            key=lambda r: r["gw_th_years"],
        )
        if rows:
            ax.plot(
                [r["gw_th_years"] for r in rows],
                [r["delta_chi2_wrong"] for r in rows],
                style,
                label=f"true {'NO' if truth == 'normal' else 'IO'} (Asimov)",
            )
    ax.axhline(9.0, color="grey", lw=0.8, ls=":", label=r"$\Delta\chi^2 = 9$ (3σ median)")
    pub = result.get("published") or {}
    if pub:
        ax.axvline(
            float(pub["years"]) * float(pub["power_gw"]),
            color="tab:red",
            lw=0.8,
            ls="-.",
            label=f"published 3σ: {pub['years']} yr × {pub['power_gw']} GW$_{{th}}$",
        )
    ax.set_xlabel(r"exposure (GW$_{th}$ · years)")
    ax.set_ylabel(r"$|\Delta\chi^2_{\min}|$ of the wrong ordering")
    ax.set_title(
        f"{result['experiment']} mass ordering, {result['predictor']} ({result['statistic']})"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_png(fig, path)


def toy_distributions(path: str | Path, result: Mapping[str, Any]) -> Path:
    """Histograms of T under true NO and true IO, medians (solid) and the critical values of
    the test at ``z`` σ (dashed)."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    toys, sens = result["toys"], result["sensitivity"]
    no, io = np.asarray(toys["normal"]["values"]), np.asarray(toys["inverted"]["values"])
    both = np.concatenate([no, io])
    bins = np.linspace(np.min(both), np.max(both), 60).tolist()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.hist(no, bins, histtype="step", lw=1.5, label=f"true NO ({no.size} toys)")
    ax.hist(io, bins, histtype="step", lw=1.5, label=f"true IO ({io.size} toys)")
    s_no, s_io = sens["true_normal"], sens["true_inverted"]
    ax.axvline(np.median(no), color="tab:blue", lw=1)
    ax.axvline(np.median(io), color="tab:orange", lw=1)
    ax.axvline(s_no["critical_value"], color="tab:orange", ls="--", lw=1)
    ax.axvline(-s_io["critical_value"], color="tab:blue", ls="--", lw=1)
    ax.set_xlabel(r"$T = \chi^2_{\min}(\mathrm{IO}) - \chi^2_{\min}(\mathrm{NO})$")
    ax.set_ylabel("toys")
    ax.set_title(
        f"median sensitivity: true NO {s_no['median_sigma_empirical']:.2f}σ, "
        f"true IO {s_io['median_sigma_empirical']:.2f}σ; "
        f"P(reject at {s_no['z']:g}σ) {s_no['rejection_probability']:.2f} / "
        f"{s_io['rejection_probability']:.2f}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    return save_png(fig, path)
