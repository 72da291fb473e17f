"""A registered surrogate as a predictor of the reactor spectrum: one place for loading it from a
tracking store, checking a request against what it was trained for (``check_request``: the
experiment, binning, every experiment setting, the parameters it does not take, the training
ranges), and scaling its counts from its reference exposure to any other (exactly). ``predict``,
``fit``, ``sensitivity`` and ``validate`` all go through ``check_request``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..config import to_container
from ..errors import ConfigError
from ..surrogate.model import FastSurrogate
from ..surrogate.threads import float64_evaluator, float64_jacobian_evaluator
from ..tracking.lineage import flatten

PREFIX = "experiment."
# Experiment settings a surrogate's prediction does not depend on, or that are honoured
# exactly: the parameter table (ranges and fixed values are checked from the model's own
# record), promotion gates and service routing (platform), the backgrounds (computed by the
# exact background model at request time), the free-proton number and the exposure (counts
# scale exactly: ``SurrogateReactors.scale``), and the name (checked on its own).
EXEMPT = (
    "experiment.name",
    "experiment.parameters.",
    "experiment.gates.",
    "experiment.services.",
    "experiment.backgrounds.",
    "experiment.free_protons",
    "experiment.exposure_days",
)
SHOWN = 6  # mismatches listed in one error


def trained_settings(meta: Mapping[str, Any], experiment: Mapping[str, Any]) -> dict[str, str]:
    """The experiment settings a spectra dataset was built with, flat
    (``{"experiment.oscillation.ordering": "normal", …}``): the full experiment config its
    ``meta.json`` records (``experiment_config``), or else ``experiment`` (the training job's)
    with what the dataset does record (ordering, matter) taking precedence."""
    full = meta.get("experiment_config")
    exp = _plain(full if isinstance(full, Mapping) else experiment)
    osc = dict(exp.get("oscillation") or {})
    for key in ("ordering", "matter"):
        if key in meta:
            osc[key] = meta[key]
    exp["oscillation"] = osc
    return flatten(exp, PREFIX)


def _same(a: str, b: str) -> bool:
    """Equal as numbers (relative 1e-9) where both are numbers, else as text."""
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-300) or (math.isnan(x) and math.isnan(y))


def _shown(value: str) -> str:
    """A recorded value as one writes it in an override (``true``, not ``True``)."""
    return value.lower() if value in ("True", "False", "None") else value


def _exempt(key: str) -> bool:
    return any(key == e or (e.endswith(".") and key.startswith(e)) for e in EXEMPT)


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


class SurrogateReactors:
    """Reactor counts (B, K) from a surrogate, for named parameter points and an exposure.

    The surrogate predicts at ``spec.exposure``; counts scale exactly with live days ×
    efficiency × free protons. ``check_request`` refuses anything else it was not trained for.
    """

    def __init__(self, surrogate: FastSurrogate, uri: str, version: ModelVersion | None = None):
        self.surrogate = surrogate
        self.spec = surrogate.spec
        self.uri = uri
        self.version = version or ModelVersion(uri, None, None, None)
        self._float64: Any = None
        self._jacobian: Any = None
        self._legacy: dict[str, str] | None = None

    def predict_float64(self, x: NDArray[np.float64], exposure: Any) -> NDArray[np.float64]:
        """Counts (B, K) for inputs (B, n_inputs) computed in double precision (for fits)."""
        if self._float64 is None:
            self._float64 = float64_evaluator(self.surrogate)
        counts = self._float64(x)
        factor = self.scale(exposure)
        return counts if factor == 1.0 else counts * factor

    def predict_float64_and_jacobian(
        self, x: NDArray[np.float64], exposure: Any
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Counts (B, K) and their Jacobian ∂counts/∂x (B, K, n_inputs), inputs in the order
        of ``inputs``, in double precision from torch autograd (the batched fitter's model)."""
        if self._jacobian is None:
            self._jacobian = float64_jacobian_evaluator(self.surrogate)
        counts, jac = self._jacobian(x)
        factor = self.scale(exposure)
        return counts * factor, jac * factor

    @classmethod
    def load(cls, uri: str | None, tracking_uri: str) -> SurrogateReactors:
        """Load ``uri`` from the tracking store ``tracking_uri``; errors name the fix (a
        corrupt artifact: ``models.ModelArtifactError``)."""
        if not uri:
            raise ConfigError(
                "model",
                "predictor=surrogate needs a model",
                "give model_uri=models:/juno-spectrum@champion (or /<version>)",
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
            ) from exc  # the cause tells the event workers whether a retry can help
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
        """Factor from the surrogate's reference exposure to ``exposure``: live days ×
        efficiency × free protons (counts are proportional to each: exact)."""
        ref = self.spec.exposure
        factor = exposure.days * exposure.efficiency / (ref["days"] * ref["efficiency"])
        protons = getattr(exposure, "free_protons", None)
        if protons is not None and ref.get("free_protons"):
            factor *= float(protons) / float(ref["free_protons"])
        return factor

    # -- what the surrogate was trained for ------------------------------------------------

    def trained_settings(self) -> dict[str, str]:
        """The experiment settings of its training data (``spec.trained_with``); for models
        saved before oscflow recorded them, the ``experiment.*`` params of the training run."""
        if self.spec.trained_with:
            return dict(self.spec.trained_with)
        if self._legacy is None:
            self._legacy = {}
            if self.version.run_id:
                from mlflow.exceptions import MlflowException
                from mlflow.tracking import MlflowClient

                try:
                    params = MlflowClient().get_run(self.version.run_id).data.params
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise
                    params = {}
                self._legacy = {k: v for k, v in params.items() if k.startswith(PREFIX)}
        return dict(self._legacy)

    def trained_ordering(self) -> str | None:
        """Mass ordering of the training data, if known."""
        return self.trained_settings().get(f"{PREFIX}oscillation.ordering")

    def _trained_value(self, name: str, settings: Mapping[str, str]) -> str | None:
        """What a parameter that is not an input was in training: its fixed value, else the
        experiment setting of that name (e.g. ``experiment.detector.escale``: detector
        parameters default to the detector configuration), else its nominal value."""
        if name in self.spec.fixed:
            return repr(float(self.spec.fixed[name]))
        found = [v for k, v in settings.items() if k.rsplit(".", 1)[-1] == name and not _exempt(k)]
        if len(found) == 1:
            return found[0]
        return settings.get(f"{PREFIX}parameters.{name}.nominal")

    def check_request(
        self,
        experiment: Mapping[str, Any],
        params: Mapping[str, float] | None = None,
        edges: ArrayLike | None = None,
        energy: str | None = None,
        *,
        ordering: str | None = None,
        ranges: bool = True,
        prefix: str = "params",
        binning_key: str = "binning",
    ) -> None:
        """Refuse any request the surrogate was not trained for (one check for every caller):
        another experiment; another binning or energy variable (``edges``/``energy`` given);
        any experiment setting (``experiment``: the request's config node; ordering, matter,
        detector, reactors, …; all but ``EXEMPT``) other than its training data's; a value
        for a parameter it does not take other than the one it was trained with; with
        ``ranges``, a point outside its training ranges. ``ordering`` overrides the request's
        ordering (a fit's model for the other ordering). Exposure is honoured exactly."""
        exp = _plain(experiment)
        if str(exp.get("name")) != self.spec.experiment:
            raise ConfigError(
                "model",
                f"{self.uri} is a surrogate of {self.spec.experiment}, the request is for "
                f"{exp.get('name')}",
                f"use a model registered for {exp.get('name')} (e.g. "
                f"models:/{exp.get('name')}-spectrum@champion) or predictor=exact",
            )
        if edges is not None and energy is not None:
            self.check_binning(edges, energy, binning_key)
        if ordering is not None:
            exp.setdefault("oscillation", {})["ordering"] = ordering
        trained = self.trained_settings()
        if not trained:
            raise ConfigError(
                "model",
                f"{self.uri} records no training settings (ordering, matter, detector, …) and "
                "its training run cannot be read, so no request can be checked against them",
                "re-train and register the model with this oscflow, or use predictor=exact",
            )
        asked = flatten(exp, PREFIX)
        wrong = [
            (k, trained[k], v)
            for k, v in asked.items()
            if k in trained and not _exempt(k) and not _same(trained[k], v)
        ]
        if wrong:
            listed = "; ".join(f"{k}={_shown(t)} (asked: {_shown(v)})" for k, t, v in wrong[:SHOWN])
            more = f" and {len(wrong) - SHOWN} more" if len(wrong) > SHOWN else ""
            key, want = wrong[0][0], _shown(wrong[0][1])
            raise ConfigError(
                key,
                f"the surrogate {self.uri} was trained with {listed}{more}; it cannot answer "
                "for other settings",
                f"use predictor=exact, set {key}={want}, or use a model trained with the "
                "settings you ask for (build its dataset with them: dvc repro, then "
                "oscflow train)",
            )
        for name, value in (params or {}).items():
            if name in self.inputs:
                continue
            was = self._trained_value(name, trained)
            if was is None or not _same(was, repr(float(value))):
                shown = "an unrecorded value" if was is None else f"{name}={was}"
                raise ConfigError(
                    f"{prefix}.{name}",
                    f"the surrogate {self.uri} takes {list(self.inputs)}, not {name}: it was "
                    f"trained with {shown}, the request asks for {float(value):g}",
                    f"drop {prefix}.{name}"
                    + (f" (or set it to {was})" if was is not None else "")
                    + ", use predictor=exact, or a model trained with "
                    f"{name} among its inputs (data.spectra.inputs)",
                )
        if ranges and params:
            self.check_range(params, prefix)

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


def _plain(node: Mapping[str, Any]) -> dict[str, Any]:
    """A config node (DictConfig or mapping) as plain, resolved Python containers."""
    from omegaconf import DictConfig

    if isinstance(node, DictConfig):
        return to_container(node)
    return copy.deepcopy(dict(node))
