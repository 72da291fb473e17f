"""Observed spectra for fits: Asimov (the expectation itself), seeded Poisson toys, or counts
read from a file (CSV, NPZ, or a ROOT TH1 through uproot), each checked against the model's
binning and, for count statistics, for being non-negative integers."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError
from ...stats.likelihood import count_problems

KINDS = ("asimov", "toy", "file", "real")
FORMATS = ("csv", "npz", "root")


@dataclass(frozen=True)
class Observation:
    """Counts per bin (K,), or a toy ensemble (N, K), with where they came from."""

    counts: NDArray[np.float64]
    edges: NDArray[np.float64]
    kind: str
    source: str
    truth: dict[str, float] = field(default_factory=dict)

    @property
    def is_asimov(self) -> bool:
        return self.kind == "asimov"


def asimov(
    expected: NDArray[np.float64], edges: NDArray[np.float64], truth: dict[str, float]
) -> Observation:
    """The expected spectrum as data: a fit returns the truth with χ² = 0."""
    return Observation(np.asarray(expected, dtype=np.float64), edges, "asimov", "asimov", truth)


def toys(
    expected: NDArray[np.float64],
    edges: NDArray[np.float64],
    truth: dict[str, float],
    n: int,
    seed: int,
) -> Observation:
    """n Poisson toys (n, K) around ``expected`` from ``numpy.random.default_rng(seed)``."""
    if n < 1:
        raise ConfigError("observation.n_toys", f"{n} must be >= 1", "ask for at least one toy")
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.broadcast_to(expected, (n, expected.size))).astype(np.float64)
    return Observation(counts, edges, "toy", f"poisson(seed={seed})", truth)


def released(
    counts: NDArray[np.float64], edges: NDArray[np.float64], source: str, integer: bool
) -> Observation:
    """An experiment's released data (``Experiment.observed_counts``), checked like a file's."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.size != len(edges) - 1:
        raise ConfigError(
            "data",
            f"{source} has {counts.size} bins, the model {len(edges) - 1}",
            "fit it with a model of this experiment's binning",
        )
    check_counts(counts, integer)
    return Observation(counts, edges, "real", source)


def read_file(path: str, fmt: str | None = None, key: str | None = None) -> tuple[NDArray, NDArray]:
    """(counts (K,), bin edges (K+1,)) from a CSV (columns e_low, e_high, counts), an NPZ
    (arrays ``counts`` and ``bin_edges``) or a ROOT file (``key``: a TH1's name)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            "observation.path", f"no file {p}", "give the path of a CSV, NPZ or ROOT file"
        )
    fmt = fmt or p.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ConfigError(
            "observation.format", f"{fmt!r} is not a supported format", f"use one of {FORMATS}"
        )
    if fmt == "csv":
        with p.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        cols = ("e_low", "e_high", "counts")
        if not rows or any(c not in rows[0] for c in cols):
            raise ConfigError(
                "observation.path",
                f"{p} needs a header with columns {cols}",
                "write one row per bin: e_low,e_high,counts (MeV, MeV, events)",
            )
        try:
            lo = np.array([float(r["e_low"]) for r in rows])
            hi = np.array([float(r["e_high"]) for r in rows])
            counts = np.array([float(r["counts"]) for r in rows])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                "observation.path", f"{p}: {exc}", "every cell must be a number"
            ) from None
        if np.any(np.abs(lo[1:] - hi[:-1]) > 1e-9):
            raise ConfigError(
                "observation.path",
                f"{p}: bins are not contiguous (e_low of a row ≠ e_high of the previous one)",
                "list adjacent bins in increasing energy",
            )
        return counts, np.append(lo, hi[-1])
    if fmt == "npz":
        with np.load(p) as z:
            if "counts" not in z or "bin_edges" not in z:
                raise ConfigError(
                    "observation.path",
                    f"{p} has arrays {sorted(z.files)}",
                    "save arrays named counts and bin_edges (np.savez)",
                )
            return np.asarray(z["counts"], dtype=np.float64), np.asarray(
                z["bin_edges"], dtype=np.float64
            )
    import uproot

    with uproot.open(p) as f:
        names = [k.split(";")[0] for k, cls in f.classnames().items() if cls.startswith("TH1")]
        if key is None:
            if len(names) != 1:
                raise ConfigError(
                    "observation.key",
                    f"{p} holds {len(names)} TH1 histograms {names}",
                    "name one with observation.key=<name>",
                )
            key = names[0]
        if key not in names:
            raise ConfigError("observation.key", f"no TH1 {key!r} in {p}", f"use one of {names}")
        values, edges = f[key].to_numpy()
    return np.asarray(values, dtype=np.float64), np.asarray(edges, dtype=np.float64)


def from_file(cfg: Any, edges: NDArray[np.float64], integer: bool) -> Observation:
    """Read ``observation.path`` and check binning and counts."""
    if not cfg.path:
        raise ConfigError(
            "observation.path", "data=file needs a path", "give data=<file.csv|.npz|.root>"
        )
    counts, file_edges = read_file(str(cfg.path), cfg.get("format"), cfg.get("key"))
    check_binning(file_edges, edges, str(cfg.path))
    problem = count_problems(counts, integer)
    if problem:
        raise ConfigError(
            "observation.path",
            f"{cfg.path}: {problem}",
            "give event counts (non-negative integers for a Poisson fit; "
            "statistic=pearson/neyman/cnp accept non-integer counts)",
        )
    return Observation(counts, edges, "file", str(cfg.path))


def check_binning(file_edges: NDArray, edges: NDArray, what: str) -> None:
    """The data's bin edges must be the model's (to 1 eV)."""
    if len(file_edges) != len(edges) or not np.allclose(file_edges, edges, rtol=0, atol=1e-6):
        raise ConfigError(
            "observation.path",
            f"{what} has {len(file_edges) - 1} bins {file_edges[0]:g}–{file_edges[-1]:g} MeV, "
            f"the model {len(edges) - 1} bins {edges[0]:g}–{edges[-1]:g} MeV",
            "rebin the data to the model's binning or fit with a model of the data's binning",
        )


def check_counts(counts: NDArray, integer: bool, key: str = "observation") -> None:
    """Raise ConfigError if counts cannot be fitted (NaN, negative, non-integer for Poisson)."""
    problem = count_problems(counts, integer)
    if problem:
        raise ConfigError(key, problem, "give finite, non-negative event counts")
