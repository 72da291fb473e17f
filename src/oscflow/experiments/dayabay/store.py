"""What a Daya Bay fit needs from the collaboration's model, computed once and stored.

A surrogate fit of the released data needs, of the official model, only the systematic
covariance (``covariance.covmat_syst.sum``, 546×546, from the Jacobian of ~1000 constrained
parameters at the nominal point: ~1 min), the released data, and for pull-term statistics the
parameters' Gaussian constraints. Building the model for them took ~40 s of every fit; the DVC
stage ``dayabay_official`` (``python -m oscflow.data.dayabay_official``) writes them to
``data/dayabay/official/inputs.npz`` (plain arrays, no pickles; ~3 MB, loaded in milliseconds),
and the plug-in reads them from there when ``experiment.official_inputs`` names the file
(conf/fit/experiment/dayabay.yaml). The file records the versions of ``dayabay-model`` and
``dayabay-data-official`` and the model options it was computed with; a file that does not
match the installed ones, or has the wrong shapes, is refused with the command that remakes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import tempfile
import zipfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ...errors import ConfigError
from ...stats.pull import GaussianConstraints

FORMAT = 1
PACKAGES = ("dayabay-model", "dayabay-data-official")
REMAKE = "remake it: dvc repro dayabay_official (or python -m oscflow.data.dayabay_official)"
KEY = "experiment.official_inputs"


def installed_versions() -> dict[str, str]:
    """Installed versions of the official packages ('absent' where not installed)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def options_key(options: Mapping[str, Any]) -> str:
    """The official model's constructor options, canonically (as ``official_model`` caches)."""
    return repr(sorted((str(k), repr(v)) for k, v in options.items()))


@dataclasses.dataclass(frozen=True)
class OfficialInputs:
    """The official model's systematic covariance (K, K; events²), the released data (K,;
    IBD candidates), the nominal expectation (K,; events), block names (``detector.period``)
    and reconstructed-energy edges (MeV) of the concatenated spectrum, and the Gaussian
    constraints of its nuisance parameters; ``provenance``: package versions and options."""

    syst_covariance: NDArray[np.float64]
    data: NDArray[np.float64]
    nominal: NDArray[np.float64]
    segments: tuple[str, ...]
    erec_edges: NDArray[np.float64]
    constraints: GaussianConstraints
    provenance: dict[str, str]
    md5: str = ""

    def __post_init__(self) -> None:
        nb = self.erec_edges.size - 1
        k = len(self.segments) * nb
        problems = []
        if nb < 1 or not np.all(np.diff(self.erec_edges) > 0):
            problems.append("the energy edges are not increasing")
        for name, arr in (("data", self.data), ("nominal", self.nominal)):
            if arr.shape != (k,):
                problems.append(
                    f"{name} has shape {arr.shape}, not ({k},) = {len(self.segments)} blocks × "
                    f"{nb} bins"
                )
        if self.syst_covariance.shape != (k, k):
            problems.append(
                f"the covariance has shape {self.syst_covariance.shape}, not ({k}, {k})"
            )
        elif not np.allclose(self.syst_covariance, self.syst_covariance.T, rtol=1e-10):
            problems.append("the covariance is not symmetric")
        if not problems and (
            not np.all(np.isfinite(self.syst_covariance)) or not np.all(self.data >= 0)
        ):
            problems.append("the covariance is not finite or the data are negative")
        if problems:
            raise ConfigError(KEY, "official-model inputs: " + "; ".join(problems), REMAKE)

    @property
    def nbins(self) -> int:
        return int(self.data.size)

    def source(self) -> str:
        """Where the data come from, for fit results."""
        where = f"{self.md5[:12]}" if self.md5 else "computed in-process"
        return (
            f"dayabay-data-official {self.provenance.get('dayabay-data-official', '?')} ({where})"
        )

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write ``path`` (.npz) atomically; returns its md5."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "format": np.array(FORMAT),
            "syst_covariance": self.syst_covariance,
            "data": self.data,
            "nominal": self.nominal,
            "segments": np.array(self.segments, dtype=str),
            "erec_edges": self.erec_edges,
            "provenance_keys": np.array(list(self.provenance), dtype=str),
            "provenance_values": np.array(list(self.provenance.values()), dtype=str),
        }
        arrays.update({f"constraints.{k}": v for k, v in self.constraints.to_arrays().items()})
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 is for the temporary file only
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return _md5(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> OfficialInputs:
        """Read a file written by :meth:`save`; refuse anything else with a ConfigError."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(KEY, f"no official-model inputs at {path}", REMAKE)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ConfigError(
                KEY, f"{path} is not an official-model inputs file ({exc})", REMAKE
            ) from None
        if arrays.get("format") is None or int(arrays["format"]) != FORMAT:
            raise ConfigError(
                KEY, f"{path} has format {arrays.get('format')}, not {FORMAT}", REMAKE
            )
        try:
            prefix = "constraints."
            constraints = GaussianConstraints.from_arrays(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            )
            provenance = dict(
                zip(
                    (str(s) for s in arrays["provenance_keys"]),
                    (str(s) for s in arrays["provenance_values"]),
                    strict=True,
                )
            )
            return cls(
                np.asarray(arrays["syst_covariance"], dtype=np.float64),
                np.asarray(arrays["data"], dtype=np.float64),
                np.asarray(arrays["nominal"], dtype=np.float64),
                tuple(str(s) for s in arrays["segments"]),
                np.asarray(arrays["erec_edges"], dtype=np.float64),
                constraints,
                provenance,
                _md5(path),
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(KEY, f"{path}: {exc}", REMAKE) from None

    def check_provenance(self, options: Mapping[str, Any], where: str) -> None:
        """Refuse inputs computed with other packages or options than the installed ones
        (an absent package is not compared: a surrogate fit does not need it)."""
        now = installed_versions()
        wrong = [
            f"{name} {self.provenance.get(name)} (installed: {now[name]})"
            for name in PACKAGES
            if now[name] != "absent" and self.provenance.get(name) != now[name]
        ]
        if self.provenance.get("options") != options_key(options):
            wrong.append(
                f"options {self.provenance.get('options')} (configured: {options_key(options)})"
            )
        if wrong:
            raise ConfigError(KEY, f"{where} was computed with {', '.join(wrong)}", REMAKE)


def from_official(official: Any, options: Mapping[str, Any]) -> OfficialInputs:
    """Compute the inputs from an ``official.OfficialModel`` (its covariance: ~1 min)."""
    names, central, factors = official.constraints()
    starts = np.cumsum([0] + [f.shape[0] for f in factors]).astype(np.int64)
    official.reset()
    edges = official.erec_edges()
    segments = official.segments()
    return OfficialInputs(
        official.systematic_covariance(),
        official.real_data(),
        official.spectrum({}),
        tuple(segments),
        edges,
        GaussianConstraints(
            tuple(names), np.asarray(central, dtype=np.float64), starts, tuple(factors)
        ),
        {**installed_versions(), "options": options_key(options)},
    )


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
