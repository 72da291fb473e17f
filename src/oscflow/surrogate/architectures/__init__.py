"""Architecture plug-ins: one module per architecture, selected by ``model.name``.

An architecture is a ``torch.nn.Module`` mapping scaled inputs (B, n_in) in [−1, 1] to scaled
outputs (B, n_out) (the output scaler's space). It is built by ``build(name, n_in, n_out,
options, fit_outputs)`` where ``fit_outputs`` returns a sample of scaled training outputs for
architectures that fit something to the data at construction (e.g. a PCA basis).

A *physical* architecture (``register(..., physical=True)``) instead maps the inputs in their
own units (B, n_in) to counts (B, n_out), for models whose structure is physics: it is built by
``build(axes, edges, options, fit_counts)`` with each input's ``Axis`` (name, training range,
log scale), the output bin edges (n_out + 1, in the dataset's energy variable) and a sample of
training spectra in counts; the surrogate applies the output scaler after it for the loss.
``phase_kernel`` (an oscillation spectrum as a linear functional of the L/E distribution) and
``deposit_fold`` (the analytic detector fold of a learned deposit spectrum) are two.

Adding an architecture: a module here (or anywhere imported before training) that decorates
its builder with ``register(name, shape=...)``, and a config ``conf/model/<name>.yaml``.
``shape(options)`` says in a few characters what distinguishes one configuration from another
(``400x400-silu``, ``w256d3``); training runs are named ``<name>-<shape>-<parameters>``
(``run_name``), so the MLflow UI tells runs apart without opening them. Nothing else (the
training job, the registry) names architectures.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Builder = Callable[[int, int, Mapping[str, Any], Callable[[], torch.Tensor] | None], nn.Module]
Shape = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Axis:
    """One input of a surrogate as a physical architecture sees it: its name, training range
    and whether the dataset sampled it on a log scale."""

    name: str
    lo: float
    hi: float
    log: bool = False


def custom_shape(options: Mapping[str, Any]) -> str:
    """The shape of an architecture that does not describe its own: ``custom``."""
    del options
    return "custom"


@dataclass(frozen=True)
class Architecture:
    """A registered architecture: its builder and how its runs are named."""

    name: str
    build: Callable[..., nn.Module]
    shape: Shape = custom_shape
    physical: bool = False

    def run_name(self, options: Mapping[str, Any], n_params: int) -> str:
        """``<name>-<shape>-<parameters in thousands>k``, e.g. ``seed_mlp-400x400-silu-323k``."""
        return f"{self.name}-{self.shape(options)}-{n_params / 1000:.0f}k"


ARCHITECTURES: dict[str, Architecture] = {}
_discovered = False


def register(
    name: str, shape: Shape | None = None, physical: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder as architecture ``name`` (a later registration of the
    same name replaces it); ``shape(options)`` names its configurations (default ``custom``);
    ``physical``: the builder takes ``(axes, edges, options, fit_counts)`` (module docstring)."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ARCHITECTURES[name] = Architecture(name, fn, shape or custom_shape, physical)
        return fn

    return deco


def _discover() -> None:
    """Import every module of this package once (each registers its architecture)."""
    global _discovered  # noqa: PLW0603 - discovery happens once per process
    if _discovered:
        return
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    _discovered = True


def get(name: str) -> Architecture:
    """Architecture ``name`` (ValueError naming the choices if unknown)."""
    _discover()
    if name not in ARCHITECTURES:
        msg = f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}"
        raise ValueError(msg)
    return ARCHITECTURES[name]


def build(
    name: str,
    n_in: int,
    n_out: int,
    options: Mapping[str, Any],
    fit_outputs: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    """Instantiate architecture ``name`` (ValueError naming the choices if unknown)."""
    arch = get(name)
    if arch.physical:
        msg = f"architecture {name!r} works in physical units: build it with build_physical"
        raise ValueError(msg)
    return arch.build(n_in, n_out, dict(options), fit_outputs)


def build_physical(
    name: str,
    axes: Sequence[Axis],
    edges: Sequence[float],
    options: Mapping[str, Any],
    fit_counts: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    """Instantiate the physical architecture ``name`` (module docstring)."""
    return get(name).build(tuple(axes), tuple(edges), dict(options), fit_counts)


def run_name(name: str, options: Mapping[str, Any], n_params: int) -> str:
    """The name of a training run of architecture ``name`` with ``options`` and ``n_params``
    trainable parameters (``Architecture.run_name``)."""
    return get(name).run_name(options, n_params)


def activation(name: str) -> nn.Module:
    table: dict[str, type[nn.Module]] = {
        "relu": nn.ReLU,
        "silu": nn.SiLU,
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
    }
    if name not in table:
        msg = f"unknown activation {name!r}; choose one of {sorted(table)}"
        raise ValueError(msg)
    return table[name]()
