"""PNG figures of a fit: data vs best-fit prediction with a residual panel, profiles, contours,
toy pulls."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ...plots import save_png


def data_vs_prediction(
    path: str | os.PathLike[str],
    edges: Sequence[float],
    counts: Sequence[float],
    by_source: Mapping[str, Sequence[float]],
    title: str,
) -> Path:
    """Stacked best-fit prediction by source, data points with √n errors; below, the residual
    (data − prediction)/√prediction per bin."""
    e = np.asarray(edges, dtype=float)
    n = np.asarray(counts, dtype=float)
    centres = 0.5 * (e[1:] + e[:-1])
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    base = np.zeros(len(e) - 1)
    for name in sorted(by_source, key=lambda k: float(np.sum(by_source[k]))):
        c = np.asarray(by_source[name], dtype=float)
        top.stairs(base + c, e, baseline=base, fill=True, alpha=0.7, label=name)
        base = base + c
    top.errorbar(
        centres, n, yerr=np.sqrt(np.maximum(n, 1)), fmt=".", ms=2, color="k", lw=0.5, label="data"
    )
    top.set_ylabel(f"events / {np.median(np.diff(e)) * 1000:.0f} keV")
    top.set_title(title)
    top.legend(fontsize=7, ncol=2)
    resid = (n - base) / np.sqrt(np.maximum(base, 1e-12))
    bottom.stairs(resid, e, color="tab:red")
    bottom.axhline(0, color="grey", lw=0.5)
    bottom.set_ylabel("(data − fit)/√fit")
    bottom.set_xlabel("prompt energy [MeV]")
    return save_png(fig, path)


def profiles(path: str | os.PathLike[str], scans: Mapping[str, Any]) -> Path:
    """Δχ² profiles, one panel per parameter, with the 1σ line; grid points whose fit is not
    valid are crossed and left out of the curve."""
    names = list(scans)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        s = scans[name]
        x = np.asarray(s["x"], dtype=float)
        y = np.array(s["delta_chi2"], dtype=float)  # None (not finite) → NaN
        ok = np.asarray(s.get("valid", [True] * len(x)), dtype=bool) & np.isfinite(y)
        ax.plot(x[ok], y[ok], "-o", ms=2, label=s.get("fitter", "iminuit"))
        if (~ok).any():
            ax.plot(x[~ok], np.nan_to_num(y[~ok]), "rx", ms=4, label="fit not valid")
        ax.axhline(1.0, color="grey", ls="--", lw=0.7)
        ax.legend(fontsize=7)
        ax.set_xlabel(name)
        ax.set_ylabel("Δχ²")
    return save_png(fig, path)


def contours(path: str | os.PathLike[str], contours_: Sequence[Mapping[str, Any]]) -> Path:
    """2-D contours (1σ, 2σ for two parameters) around the best fit; over the Δχ² map of a
    batched scan where there is one (grid cells whose fit is not valid are crossed)."""
    fig, axes = plt.subplots(1, len(contours_), figsize=(4.5 * len(contours_), 4), squeeze=False)
    for ax, c in zip(axes[0], contours_, strict=True):
        grid = c.get("map")
        if grid:
            z = np.array(grid["delta_chi2"], dtype=float)  # None (not finite) → NaN
            bad = ~np.asarray(grid["valid"], dtype=bool)
            mesh = ax.pcolormesh(
                grid["x"],
                grid["y"],
                np.ma.masked_array(z, bad | ~np.isfinite(z)),
                shading="nearest",
                cmap="Greys_r",
                vmax=12.0,
            )
            fig.colorbar(mesh, ax=ax, label="Δχ²")
            gx, gy = np.meshgrid(grid["x"], grid["y"])
            if bad.any():
                ax.plot(gx[bad], gy[bad], "rx", ms=4, label="fit not valid")
        for cl, pts in c["points"].items():
            p = np.asarray(pts)
            if p.size:
                ax.fill(p[:, 0], p[:, 1], alpha=0.3, label=f"{float(cl):.0%} CL")
        ax.plot(*c["best_fit"], "k+")
        ax.set_xlabel(c["x"])
        ax.set_ylabel(c["y"])
        ax.set_title(f"fitter: {c.get('fitter', 'iminuit')}", fontsize=8)
        ax.legend(fontsize=7)
    return save_png(fig, path)


def pulls(path: str | os.PathLike[str], pull_values: Mapping[str, Sequence[float]]) -> Path:
    """Histograms of toy pulls with the unit Gaussian."""
    names = list(pull_values)
    fig, axes = plt.subplots(1, len(names), figsize=(3.5 * len(names), 3.2), squeeze=False)
    x = np.linspace(-4, 4, 200)
    for ax, name in zip(axes[0], names, strict=True):
        v = np.asarray(pull_values[name])
        ax.hist(v, bins=np.linspace(-4, 4, 25), density=True, alpha=0.6)
        ax.plot(x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), "k-", lw=0.8)
        ax.set_title(
            f"{name}: {np.mean(v):+.2f} ± {np.std(v, ddof=1) if v.size > 1 else 0:.2f}", fontsize=8
        )
        ax.set_xlabel("pull")
    return save_png(fig, path)
