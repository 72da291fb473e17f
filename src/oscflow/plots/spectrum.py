"""Expected spectrum by source, with a residual panel against a reference spectrum."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import ArrayLike

from . import save_png


def plot_spectrum(
    path: str | os.PathLike[str],
    edges: ArrayLike,
    by_source: Mapping[str, Sequence[float]],
    reference: Sequence[float] | None = None,
    reference_label: str = "reference",
    title: str = "",
    energy_label: str = "prompt energy [MeV]",
) -> Path:
    """Stacked counts per bin by source; below, (total − reference)/reference in per cent.

    Written atomically (temporary file, then rename).
    """
    edges = np.asarray(edges, dtype=float)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    base = np.zeros(len(edges) - 1)
    order = sorted(by_source, key=lambda k: -float(np.sum(by_source[k])))
    for name in reversed(order):
        counts = np.asarray(by_source[name], dtype=float)
        top.stairs(base + counts, edges, baseline=base, fill=True, alpha=0.8, label=name)
        base = base + counts
    top.stairs(base, edges, color="black", lw=0.8, label="total")
    top.set_ylabel(f"events / {np.median(np.diff(edges)) * 1000:.0f} keV")
    top.set_title(title)
    top.legend(fontsize=8, ncol=2)
    if reference is not None:
        ref = np.asarray(reference, dtype=float)
        ratio = np.divide(base - ref, ref, out=np.zeros_like(ref), where=ref > 0) * 100
        bottom.stairs(ratio, edges, color="tab:red")
        bottom.axhline(0, color="grey", lw=0.5)
        bottom.set_ylabel(f"vs {reference_label} [%]")
    bottom.set_xlabel(energy_label)
    return save_png(fig, path, dpi=120)
