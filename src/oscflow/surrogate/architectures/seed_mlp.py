"""Seed 001's network: inputs → 400 → 400 → outputs, ReLU (322,800 parameters for 4 → 400).

Y. Malyshkin (JUNO), "Novel fitting approach based on a neural network for JUNO" (seed 001):
two hidden dense layers of 400 nodes with ReLU, MSE loss, RMSprop with learning rate 0.02.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from . import activation, register


def mlp(n_in: int, n_out: int, hidden: list[int], act: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [nn.Linear(width, h), activation(act)]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def shape(options: Mapping[str, Any]) -> str:
    """``400x400`` (hidden widths), ``-<activation>`` unless seed 001's ReLU."""
    out = "x".join(str(h) for h in options.get("hidden", [400, 400]))
    act = options.get("activation", "relu")
    return out if act == "relu" else f"{out}-{act}"


@register("seed_mlp", shape=shape)
def build(
    n_in: int,
    n_out: int,
    options: Mapping[str, Any],
    fit_outputs: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    del fit_outputs
    return mlp(
        n_in, n_out, list(options.get("hidden", [400, 400])), options.get("activation", "relu")
    )
