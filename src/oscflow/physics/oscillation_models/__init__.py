"""Oscillation models as plug-ins: one module per model, selected by name.

An experiment's config names its model (``experiment.oscillation.model``, default
``three_flavour``); the exact predictors take the model's parameter list (``parameters``)
from it, not from module constants. Adding a model: a module here that decorates an
:class:`OscillationModel` subclass with ``@register``; nothing else names models.

A model turns energies (MeV), parameter batches and settings into a *propagator*: a function
of the baseline (km) returning the oscillation probability of the model's channel, shape (B, N)
for B parameter points and N energies. Expensive baseline-independent work (the matter
eigensystem of the three-flavour model) is done once per propagator, so that a predictor with
many cores or many baselines pays it once. ``grouped`` sums the probability over baselines
with weights (a predictor's cores and their shares); by default through the propagator
(``grouped_by_propagator``, the reference), and a model may override it with a faster exact
form (``three_flavour`` does: ``physics/survival_sums.py``).

Registered models (see each module for units and sources):

- ``three_flavour``: P(ν̄ₑ → ν̄ₑ), three flavours in vacuum or constant matter
  (``physics/oscillation.py``, unchanged numerically).
- ``sterile_3p1_appearance``: P(ν̄_μ → ν̄ₑ) = sin²2θ_μe sin²(1.267 Δm²₄₁ L/E) of 3+1 mixing at
  short baselines, with closed-form averaging over a baseline distribution.
"""

from __future__ import annotations

import abc
import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ...errors import ConfigError

DEFAULT_MODEL = "three_flavour"
MODEL_KEY = "experiment.oscillation.model"
Propagator = Callable[[float], NDArray[np.float64]]


class OscillationModel(abc.ABC):
    """An oscillation model: its parameters (names, in order) and its probability.

    ``channel``: the flavour transition it computes, e.g. ``"antinu_e->antinu_e"``.
    ``parameters``: the names a predictor requires in every parameter batch.
    ``settings``: model settings the experiment supplies (mass ordering, matter), or None.
    ``amplitude``: a parameter the probability is proportional to (P = a · f(others)), or None;
    a spectrum computed at a = 1 gives every a exactly by multiplication (surrogates of such a
    model learn the spectrum per unit amplitude).
    """

    name: ClassVar[str]
    channel: ClassVar[str]
    parameters: ClassVar[tuple[str, ...]]
    amplitude: ClassVar[str | None] = None

    @abc.abstractmethod
    def propagator(
        self, energy: ArrayLike, params: Mapping[str, NDArray[np.float64]], settings: Any
    ) -> Propagator:
        """P(baseline_km) of shape (B, N) for energies ``energy`` (N,) in MeV and parameter
        arrays of shape (B,) (or scalars)."""

    def grouped(
        self,
        energy: ArrayLike,
        params: Mapping[str, NDArray[np.float64]],
        settings: Any,
        baselines: WeightedBaselines,
    ) -> NDArray[np.float64]:
        """Σ_{c: group_index[c] = g} weights[c] · P(km[c]) of ``baselines``, shape (G, B, N).
        Default: ``grouped_by_propagator``; overrides must equal it to rounding."""
        return grouped_by_propagator(self, energy, params, settings, baselines)

    def check(self, params: Mapping[str, ArrayLike]) -> None:
        """Raise ValueError naming the parameter if a value lies outside the model's physical
        domain (default: every value finite)."""
        for k in self.parameters:
            if k in params and not np.all(np.isfinite(np.asarray(params[k], dtype=np.float64))):
                msg = f"oscillation parameter {k!r} must be finite"
                raise ValueError(msg)


@dataclass(frozen=True)
class WeightedBaselines:
    """Where ``OscillationModel.grouped`` evaluates P: baselines (km), their weights (C, N) at
    the N energies, and their grouping (``group_index[c]`` in [0, n_groups), every group with
    a baseline)."""

    km: Sequence[float]
    weights: NDArray[np.float64]
    group_index: Sequence[int]
    n_groups: int


def grouped_by_propagator(
    model: OscillationModel,
    energy: ArrayLike,
    params: Mapping[str, NDArray[np.float64]],
    settings: Any,
    baselines: WeightedBaselines,
) -> NDArray[np.float64]:
    """The reference of ``OscillationModel.grouped``: P per baseline by the model's propagator,
    times its weight, added up per group in the order of the baselines."""
    probability = model.propagator(energy, params, settings)
    out: list[NDArray[np.float64] | None] = [None] * baselines.n_groups
    for c, baseline in enumerate(baselines.km):
        term = baselines.weights[c] * probability(baseline)
        g = baselines.group_index[c]
        prev = out[g]
        out[g] = term if prev is None else prev + term
    if any(x is None for x in out):
        msg = (
            f"group_index {list(baselines.group_index)} leaves one of {baselines.n_groups} "
            "groups empty"
        )
        raise ValueError(msg)
    return np.stack([x for x in out if x is not None])


M = TypeVar("M", bound=type[OscillationModel])
MODELS: dict[str, type[OscillationModel]] = {}
_discovered = False


def register(cls: M) -> M:
    """Class decorator registering an :class:`OscillationModel` under ``cls.name`` (a later
    registration of the same name replaces it)."""
    MODELS[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of this package once (each registers its model)."""
    global _discovered  # noqa: PLW0603 - discovery happens once per process
    if _discovered:
        return
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    _discovered = True


def known() -> tuple[str, ...]:
    """Names of the registered models, sorted."""
    _discover()
    return tuple(sorted(MODELS))


def get(name: Any, key: str = MODEL_KEY) -> OscillationModel:
    """The model registered as ``name``; a ConfigError naming ``key`` and the known models
    if there is none."""
    _discover()
    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(
            key,
            f"unknown oscillation model {name!r}",
            f"choose one of {', '.join(known())}",
        )
    return MODELS[name]()
