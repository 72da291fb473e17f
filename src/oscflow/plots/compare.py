"""Figures of ``oscflow compare``: accuracy against parameter count and latency with the Pareto
front, the fit bias per oscillation parameter, and the residual pattern (relative deviation
vs energy) of each run at the same parameter points. Inputs are plain lists (the comparison's
rows), one colour per run throughout."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from . import save_png

ACCURACY_LABEL = "p99 |surrogate/exact − 1|, bins ≥ 1 % of peak"
PARAMETER_LABELS = {
    "sin2_th12": "sin²θ₁₂",
    "sin2_th13": "sin²θ₁₃",
    "dm2_21": "Δm²₂₁",
    "dm2_32": "|Δm²₃₂|",
}


def colours(n: int) -> list[Any]:
    """One colour per run (tab10, tab20 beyond ten)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _legend(ax: Any, **kwargs: Any) -> None:
    """A legend where the axes have labelled artists (matplotlib warns on an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best", **kwargs)


def _ok(x: Any) -> bool:
    return x is not None and math.isfinite(float(x)) and float(x) > 0


def pareto_axes(
    ax: Any,
    labels: Sequence[str],
    cost: Sequence[float | None],
    accuracy: Sequence[float | None],
    front: Sequence[bool],
    xlabel: str,
    scale: float = 1.0,
) -> None:
    """Accuracy (log) against ``cost`` × ``scale`` (log), every run a coloured point, the front
    circled and joined; runs missing either value are counted in the corner."""
    cols = colours(len(labels))
    shown = [
        (i, float(c) * scale, float(a))
        for i, (c, a) in enumerate(zip(cost, accuracy, strict=True))
        if c is not None and a is not None and _ok(c) and _ok(a)
    ]
    missing = len(labels) - len(shown)
    for i, x, y in shown:
        ax.scatter(x, y, color=cols[i], s=40, zorder=3, label=labels[i])
        if front[i]:
            ax.scatter(x, y, s=160, facecolors="none", edgecolors="black", zorder=4)
    pts = sorted((x, y) for i, x, y in shown if front[i])
    if pts:
        xs, ys = zip(*pts, strict=True)
        ax.step(xs, ys, where="post", color="black", lw=1, ls="--", zorder=2, label="Pareto front")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ACCURACY_LABEL, fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
    if missing:
        ax.text(
            0.98,
            0.02,
            f"{missing} run(s) without these metrics",
            transform=ax.transAxes,
            ha="right",
            fontsize=7,
            color="grey",
        )


def fit_bias_axes(
    ax: Any,
    labels: Sequence[str],
    per_parameter: Sequence[Mapping[str, float]],
    limit: float | None = None,
) -> None:
    """Grouped bars: for each oscillation parameter, each run's max fit shift in σ; the gate
    as a dashed line."""
    cols = colours(len(labels))
    names = sorted({k for p in per_parameter for k in p}, key=_parameter_order)
    if not names:
        ax.text(0.5, 0.5, "no run has per-parameter fit bias", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    width = 0.8 / max(len(labels), 1)
    x = np.arange(len(names))
    for i, (label, values) in enumerate(zip(labels, per_parameter, strict=True)):
        heights = [values.get(n, np.nan) for n in names]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, color=cols[i], label=label)
    if limit is not None:
        ax.axhline(limit, color="tab:red", ls="--", lw=1, label=f"gate ≤ {limit:g}σ")
    ax.set_xticks(x, [PARAMETER_LABELS.get(n, n) for n in names])
    ax.set_ylabel("max |fit shift| / stat. error [σ]")
    ax.grid(True, axis="y", alpha=0.25)


def _parameter_order(name: str) -> tuple[int, str]:
    order = list(PARAMETER_LABELS)
    return (order.index(name) if name in order else len(order), name)


def residual_axes(
    ax: Any, residuals: Mapping[str, Any], labels: Sequence[str], point: int = 0
) -> None:
    """Relative deviation [%] vs energy at ``residuals["points"][point]``, one line per run
    (colours by the order of ``labels``)."""
    cols = dict(zip(labels, colours(len(labels)), strict=True))
    edges = np.asarray(residuals.get("bin_edges") or [], dtype=float)
    curves = residuals.get("curves") or {}
    points = residuals.get("points") or []
    if edges.size == 0 or not curves or point >= len(points):
        ax.text(0.5, 0.5, "no residuals logged", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    for label, rows in curves.items():
        dev = np.array([np.nan if v is None else v for v in rows[point]], dtype=float)
        ax.stairs(dev * 100, edges, color=cols.get(label, "grey"), lw=1, label=label)
    ax.axhline(0, color="grey", lw=0.5)
    energy = residuals.get("energy") or "prompt"
    ax.set_xlabel(f"{energy} energy [MeV]")
    ax.set_ylabel("(surrogate − exact)/exact [%]")
    inputs = residuals.get("inputs") or []
    ax.set_title(
        ", ".join(f"{k}={v:.4g}" for k, v in zip(inputs, points[point], strict=False)), fontsize=7
    )
    ax.grid(True, alpha=0.25)


def plot_report(
    path: str | os.PathLike[str],
    labels: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    residuals: Mapping[str, Any],
    fit_bias_limit: float | None,
    title: str,
) -> Path:
    """The comparison at a glance (2 × 2): accuracy vs parameters and vs latency with their
    Pareto fronts, fit bias per parameter, residuals at the central point."""
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5))
    accuracy = [r.get("p99_rel_dev_peak1") for r in rows]
    pareto_axes(
        axes[0, 0],
        labels,
        [r.get("n_parameters") for r in rows],
        accuracy,
        [bool((r.get("pareto") or {}).get("n_parameters")) for r in rows],
        "trainable parameters",
    )
    axes[0, 0].set_title("accuracy vs size (circled: Pareto front)", fontsize=10)
    pareto_axes(
        axes[0, 1],
        labels,
        [r.get("latency_single_s") for r in rows],
        accuracy,
        [bool((r.get("pareto") or {}).get("latency_single_s")) for r in rows],
        "latency, one spectrum [ms]",
        scale=1e3,
    )
    axes[0, 1].set_title("accuracy vs latency (circled: Pareto front)", fontsize=10)
    fit_bias_axes(axes[1, 0], labels, [r.get("fit_bias_sigma") or {} for r in rows], fit_bias_limit)
    axes[1, 0].set_title("fit bias per oscillation parameter", fontsize=10)
    residual_axes(axes[1, 1], residuals, labels)
    _legend(axes[0, 0])
    _legend(axes[1, 0])
    fig.suptitle(title)
    return save_png(fig, path, dpi=100)


def plot_residuals(
    path: str | os.PathLike[str], residuals: Mapping[str, Any], labels: Sequence[str], title: str
) -> Path:
    """The residual pattern of each run at every compared parameter point (one panel each)."""
    n = max(len(residuals.get("points") or []), 1)
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.8 * n + 0.8), sharex=True, squeeze=False)
    for i in range(n):
        residual_axes(axes[i, 0], residuals, labels, i)
        if i < n - 1:
            axes[i, 0].set_xlabel("")
    _legend(axes[0, 0], ncol=2)
    fig.suptitle(title)
    return save_png(fig, path, dpi=100)
