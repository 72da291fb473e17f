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


NPZ_FIX = "save it with numpy.savez(path, counts=<K counts>, bin_edges=<K+1 edges in MeV>)"
CSV_FIX = "write a header e_low,e_high,counts and one row per bin (MeV, MeV, events)"
SHAPE_FIX = "give K counts and K+1 increasing bin edges (MeV) as 1-D arrays of numbers"
ROOT_FIX = "save the spectrum as a TH1 (e.g. uproot: f[name] = (counts, bin_edges))"


def read_file(path: str, fmt: str | None = None, key: str | None = None) -> tuple[NDArray, NDArray]:
    """(counts (K,), bin edges (K+1,)) from a CSV (columns e_low, e_high, counts), an NPZ
    (arrays ``counts`` and ``bin_edges``) or a ROOT file (``key``: a TH1's name).

    Files are untrusted input: anything unreadable (truncated, random bytes, pickled objects,
    wrong arrays or shapes, non-numeric cells, edges not increasing) raises a ConfigError that
    names the file, the problem and the fix; never numpy's or uproot's own exception."""
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
    reader = {"csv": _read_csv, "npz": _read_npz, "root": _read_root}[fmt]
    raw_counts, raw_edges = reader(p, key)
    counts = _numeric_1d(p, raw_counts, "counts")
    edges = _numeric_1d(p, raw_edges, "bin edges")
    if edges.size != counts.size + 1:
        raise ConfigError(
            "observation.path",
            f"{p}: {counts.size} counts need {counts.size + 1} bin edges, got {edges.size}",
            SHAPE_FIX,
        )
    if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
        raise ConfigError(
            "observation.path", f"{p}: bin edges are not finite and increasing", SHAPE_FIX
        )
    return counts, edges


def _read_csv(p: Path, key: str | None) -> tuple[NDArray, NDArray]:  # noqa: ARG001 - one signature
    cols = ("e_low", "e_high", "counts")
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(
            "observation.path", f"{p} is not a readable CSV text file ({exc})", CSV_FIX
        ) from exc
    if not rows or any(c not in rows[0] for c in cols):
        raise ConfigError("observation.path", f"{p} needs a header with columns {cols}", CSV_FIX)
    values: dict[str, list[float]] = {c: [] for c in cols}
    for line, row in enumerate(rows, start=2):
        for c in cols:
            cell = row.get(c)
            try:  # a missing cell is None: float() raises the TypeError handled below
                values[c].append(float(cell))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ConfigError(
                    "observation.path",
                    f"{p} line {line}: {c} is {cell!r}, not a number",
                    "give a number in every cell (" + CSV_FIX + ")",
                ) from None
    lo, hi = np.array(values["e_low"]), np.array(values["e_high"])
    if np.any(np.abs(lo[1:] - hi[:-1]) > 1e-9):
        raise ConfigError(
            "observation.path",
            f"{p}: bins are not contiguous (e_low of a row ≠ e_high of the previous one)",
            "list adjacent bins in increasing energy",
        )
    return np.array(values["counts"]), np.append(lo, hi[-1])


def _read_npz(p: Path, key: str | None) -> tuple[NDArray, NDArray]:  # noqa: ARG001 - one signature
    with p.open("rb") as fh:
        magic = fh.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        what = "is a single .npy array" if magic == b"\x93NUM" else f"starts with {magic!r}"
        raise ConfigError(
            "observation.path", f"{p} is not an NPZ (zip) archive: it {what}", NPZ_FIX
        )
    try:
        # Pickles are refused: a data file must not run code. Any failure below is a damaged
        # or foreign file (truncated zip, bad member, unsupported compression, object arrays).
        # The file is opened here, not by np.load, which leaks it when the zip is unreadable.
        with p.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
            missing = [n for n in ("counts", "bin_edges") if n not in z.files]
            if missing:
                raise ConfigError(
                    "observation.path",
                    f"{p} lacks the arrays {missing} (it has {sorted(z.files)})",
                    NPZ_FIX,
                )
            arrays = [z[name] for name in ("counts", "bin_edges")]
        for name, value in zip(("counts", "bin_edges"), arrays, strict=True):
            if not isinstance(value, np.ndarray):  # np.load returns a non-.npy member as bytes
                raise ConfigError(
                    "observation.path", f"{p}: member {name}.npy is not a NumPy array", NPZ_FIX
                )
        return arrays[0], arrays[1]
    except ConfigError:
        raise
    except Exception as exc:  # untrusted file: every parser failure is the file's
        why = (
            "it holds Python objects (pickles), which oscflow does not load"
            if "allow_pickle" in str(exc)
            else f"damaged or truncated: {type(exc).__name__}: {_short(exc)}"
        )
        raise ConfigError(
            "observation.path", f"{p} is not a readable NPZ archive ({why})", NPZ_FIX
        ) from exc


def _read_root(p: Path, key: str | None) -> tuple[NDArray, NDArray]:
    import uproot

    try:
        with uproot.open(p) as f:
            classes = f.classnames()
            names = [k.split(";")[0] for k, cls in classes.items() if cls.startswith("TH1")]
            if not names:
                held = _short(", ".join(f"{k} ({c})" for k, c in classes.items()) or "nothing")
                raise ConfigError(
                    "observation.path", f"{p} holds no TH1 histogram (it holds {held})", ROOT_FIX
                )
            if key is None:
                if len(names) != 1:
                    raise ConfigError(
                        "observation.key",
                        f"{p} holds {len(names)} TH1 histograms {names}",
                        "name one with observation.key=<name>",
                    )
                key = names[0]
            if key not in names:
                raise ConfigError(
                    "observation.key",
                    f"no TH1 {key!r} in {p}",
                    f"use one of {names}",
                )
            values, edges = f[key].to_numpy()
    except ConfigError:
        raise
    except Exception as exc:  # untrusted file: every parser failure is the file's
        raise ConfigError(
            "observation.path",
            f"{p} is not a readable ROOT file ({type(exc).__name__}: {_short(exc)})",
            ROOT_FIX,
        ) from exc
    return np.asarray(values), np.asarray(edges)


def _short(exc: object, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _numeric_1d(p: Path, values: NDArray, what: str) -> NDArray[np.float64]:
    """``values`` as a non-empty 1-D float64 array (finiteness of counts is checked later)."""
    if values.dtype.kind not in "biuf":
        raise ConfigError(
            "observation.path", f"{p}: {what} have dtype {values.dtype}, not numbers", SHAPE_FIX
        )
    if values.ndim != 1 or values.size == 0:
        raise ConfigError(
            "observation.path",
            f"{p}: {what} have shape {values.shape}, not a non-empty 1-D array",
            SHAPE_FIX,
        )
    return values.astype(np.float64)


def from_file(cfg: Any, edges: NDArray[np.float64], integer: bool) -> Observation:
    """Read ``observation.path`` and check binning and counts."""
    if not cfg.path:
        raise ConfigError(
            "observation.path",
            "observation=file needs a path",
            "give observation.path=<file.csv|.npz|.root>",
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
