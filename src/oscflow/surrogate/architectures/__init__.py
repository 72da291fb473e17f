"""Architecture plug-ins: one module per architecture, selected by ``model.name``.

An architecture is a ``torch.nn.Module`` mapping scaled inputs (B, n_in) in [−1, 1] to scaled
outputs (B, n_out) (the output scaler's space). It is built by ``build(name, n_in, n_out,
options, fit_outputs)`` where ``fit_outputs`` returns a sample of scaled training outputs for
architectures that fit something to the data at construction (e.g. a PCA basis). Adding an
architecture: a module here that calls ``register`` and a config ``conf/model/<name>.yaml``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

Builder = Callable[[int, int, Mapping[str, Any], Callable[[], torch.Tensor] | None], nn.Module]
ARCHITECTURES: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        ARCHITECTURES[name] = fn
        return fn

    return deco


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def build(
    name: str,
    n_in: int,
    n_out: int,
    options: Mapping[str, Any],
    fit_outputs: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    """Instantiate architecture ``name`` (ValueError naming the choices if unknown)."""
    if not ARCHITECTURES:
        _discover()
    if name not in ARCHITECTURES:
        msg = f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}"
        raise ValueError(msg)
    return ARCHITECTURES[name](n_in, n_out, dict(options), fit_outputs)


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
