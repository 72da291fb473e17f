"""Seed-001-Figure-4-style plot: surrogate vs truth, with the relative difference below."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

from . import save_png


def plot_prediction_vs_truth(
    path: str | os.PathLike[str],
    edges: ArrayLike,
    pred: ArrayLike,
    true: ArrayLike,
    labels: Sequence[str],
    title: str = "",
) -> Path:
    """One column per parameter point: counts (truth, prediction) and (pred − truth)/truth."""
    edges = np.asarray(edges, dtype=float)
    pred, true = np.atleast_2d(pred), np.atleast_2d(true)
    n = pred.shape[0]
    fig, axes = plt.subplots(
        2,
        n,
        figsize=(5 * n, 5.5),
        sharex=True,
        gridspec_kw={"height_ratios": [2.5, 1]},
        squeeze=False,
    )
    for i in range(n):
        top, bottom = axes[0, i], axes[1, i]
        top.stairs(true[i], edges, color="tab:red", lw=1.2, label="truth (exact model)")
        top.stairs(pred[i], edges, color="tab:blue", lw=0.9, label="surrogate")
        top.set_title(labels[i], fontsize=8)
        rel = np.divide(
            pred[i] - true[i], true[i], out=np.zeros_like(true[i], dtype=float), where=true[i] > 0
        )
        mask = true[i] >= 0.01 * true[i].max()
        bottom.stairs(np.where(mask, rel * 100, np.nan), edges, color="tab:blue")
        bottom.axhline(0, color="grey", lw=0.5)
        bottom.set_xlabel("prompt energy [MeV]")
        if i == 0:
            top.set_ylabel("events per bin")
            bottom.set_ylabel("(NN − truth)/truth [%]")
            top.legend(fontsize=8)
    fig.suptitle(title)
    return save_png(fig, path, dpi=110)
