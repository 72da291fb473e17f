"""A registered surrogate as a predictor of the reactor spectrum: one place for loading it from a
tracking store, checking a requested binning and parameter point against what it was trained on,
and scaling its counts from its reference exposure to any other (``predict`` and ``fit`` use it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import ConfigError
from ..surrogate.model import FastSurrogate


@dataclass(frozen=True)
class ModelVersion:
    """The registry entry a model URI resolved to (``version`` None for ``runs:/`` URIs)."""

    uri: str
    name: str | None
    version: str | None
    run_id: str | None


def resolve_version(uri: str) -> ModelVersion:
    """Resolve ``models:/name@alias``, ``models:/name/latest`` or ``models:/name/N`` to its
    version and training run, so that results can be tagged with what was actually used."""
    from mlflow.tracking import MlflowClient

    if not uri.startswith("models:/"):
        run_id = uri.split("/")[1] if uri.startswith("runs:/") else None
        return ModelVersion(uri, None, None, run_id)
    rest = uri[len("models:/") :]
    client = MlflowClient()
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    else:
        name, _, ver = rest.partition("/")
        if ver in ("", "latest"):
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise ConfigError("model", f"{name!r} has no versions", "register a model first")
            mv = max(versions, key=lambda v: int(v.version))
        else:
            mv = client.get_model_version(name, ver)
    return ModelVersion(uri, mv.name, str(mv.version), mv.run_id)


def float64_evaluator(surrogate: FastSurrogate) -> Any:
    """The surrogate's network in float64 (``FastSurrogate.float64``) on numpy arrays:
    x (B, n_in) float64 → counts (B, K) float64, with one torch thread for small batches."""
    import torch

    fn = surrogate.float64()

    def evaluate(x: NDArray[np.float64]) -> NDArray[np.float64]:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        if surrogate.device.type != "cpu":
            t = t.to(surrogate.device)
        with _threads_for(t.shape[0]):
            return fn(t).cpu().numpy()

    return evaluate


SMALL_BATCH = 64


@contextlib.contextmanager
def _threads_for(batch: int) -> Iterator[None]:
    """One torch thread for a fit's small batches: intra-op threads gain nothing there, and
    their spinning pool slows the BLAS that the statistic uses next (a Daya Bay χ² evaluation,
    546×546 Cholesky included, 12 ms → 5 ms on 2 cores; benchmarks/bench_dayabay.py)."""
    import torch

    n = torch.get_num_threads()
    if batch > SMALL_BATCH or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class SurrogateReactors:
    """Reactor counts (B, K) from a surrogate, for named parameter points and an exposure.

    The surrogate predicts at ``spec.exposure``; counts scale with live days × efficiency
    (the free-proton number is the experiment's, the same in training and use).
    """

    def __init__(self, surrogate: FastSurrogate, uri: str, version: ModelVersion | None = None):
        self.surrogate = surrogate
        self.spec = surrogate.spec
        self.uri = uri
        self.version = version or ModelVersion(uri, None, None, None)
        self._float64: Any = None

    def predict_float64(self, x: NDArray[np.float64], exposure: Any) -> NDArray[np.float64]:
        """Counts (B, K) for inputs (B, n_inputs) computed in double precision (for fits)."""
        if self._float64 is None:
            self._float64 = float64_evaluator(self.surrogate)
        return self._float64(x) * self.scale(exposure)

    @classmethod
    def load(cls, uri: str | None, tracking_uri: str) -> SurrogateReactors:
        """Load ``uri`` from the tracking store ``tracking_uri``; errors name the fix."""
        if not uri:
            raise ConfigError(
                "model",
                "predictor=surrogate needs a model",
                "give model=models:/juno-spectrum@champion (or /<version>)",
            )
        import mlflow

        from .models import load_surrogate

        mlflow.set_tracking_uri(tracking_uri)
        try:
            surrogate = load_surrogate(str(uri))
            version = resolve_version(str(uri))
        except (mlflow.exceptions.MlflowException, OSError) as exc:
            raise ConfigError(
                "model",
                f"cannot load {uri} ({str(exc).splitlines()[0]})",
                "check the URI (name, version or alias) and logger.tracking_uri",
            ) from None
        except TypeError as exc:
            raise ConfigError("model", str(exc), "give the URI of an oscflow surrogate") from None
        return cls(surrogate, str(uri), version)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.spec.inputs

    @property
    def edges(self) -> NDArray[np.float64]:
        return np.asarray(self.spec.bin_edges, dtype=np.float64)

    @property
    def energy(self) -> str:
        return self.spec.energy

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Training range of every input."""
        return {
            k: (float(lo), float(hi))
            for k, (lo, hi) in zip(self.inputs, self.spec.ranges, strict=True)
        }

    def check_binning(self, edges: ArrayLike, energy: str, key: str = "binning") -> None:
        """Refuse a binning or energy variable the surrogate was not trained for."""
        edges = np.asarray(edges, dtype=np.float64)
        spec = self.spec
        if (
            energy != spec.energy
            or len(edges) != len(spec.bin_edges)
            or not np.allclose(edges, spec.bin_edges, atol=1e-9)
        ):
            raise ConfigError(
                key,
                f"the surrogate predicts {spec.energy} energy in {len(spec.bin_edges) - 1} bins "
                f"{spec.bin_edges[0]:g}–{spec.bin_edges[-1]:g} MeV, not the requested binning",
                f"use energy={spec.energy} binning.emin={spec.bin_edges[0]:g} binning.emax={spec.bin_edges[-1]:g} binning.nbins={len(spec.bin_edges) - 1}",
            )

    def check_range(self, params: Mapping[str, float], prefix: str = "params") -> None:
        """Refuse a point outside the training range (the surrogate extrapolates badly)."""
        for name, (lo, hi) in self.ranges().items():
            if name in params and not lo <= params[name] <= hi:
                raise ConfigError(
                    f"{prefix}.{name}",
                    f"{params[name]:g} is outside the surrogate's training range [{lo:g}, {hi:g}]",
                    "stay inside it or use predictor=exact",
                )

    def scale(self, exposure: Any) -> float:
        """Factor from the surrogate's reference exposure to ``exposure`` (days × efficiency)."""
        ref = self.spec.exposure
        return exposure.days * exposure.efficiency / (ref["days"] * ref["efficiency"])

    def predict(self, params: Mapping[str, ArrayLike], exposure: Any) -> NDArray[np.float64]:
        """Counts (B, K) at ``exposure``; inputs not in ``params`` take the training's fixed
        values (``spec.fixed``)."""
        point = {**self.spec.fixed, **params}
        return self.surrogate.predict_named(point) * self.scale(exposure)

    def predict_array(self, x: NDArray[np.float64], exposure: Any) -> NDArray[np.float64]:
        """Counts (B, K) for inputs (B, n_inputs) in the order of ``inputs`` (no dict overhead)."""
        return self.surrogate.predict(x) * self.scale(exposure)

    def info(self) -> dict[str, Any]:
        return {
            "kind": "surrogate",
            "model": self.uri,
            "registered_model": self.version.name,
            "version": self.version.version,
            "training_run_id": self.version.run_id,
            "inputs": list(self.inputs),
        }
