"""Residual MLP: pre-norm residual blocks (LayerNorm → Linear → SiLU → Linear) of constant
width, after He et al. (2016) and the transformer MLP block; trains stably deeper than a plain
MLP and with AdamW is a common strong baseline for smooth regression targets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from . import activation, register


class ResidualBlock(nn.Module):
    def __init__(self, width: int, act: str, expansion: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, expansion * width)
        self.act = activation(act)
        self.fc2 = nn.Linear(expansion * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


class ResMLP(nn.Module):
    def __init__(
        self, n_in: int, n_out: int, width: int, depth: int, act: str, expansion: int
    ) -> None:
        super().__init__()
        self.stem = nn.Linear(n_in, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width, act, expansion) for _ in range(depth)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.stem(x))))


def shape(options: Mapping[str, Any]) -> str:
    """``w256d3``: block width and depth."""
    return f"w{options.get('width', 256)}d{options.get('depth', 3)}"


@register("resmlp", shape=shape)
def build(
    n_in: int,
    n_out: int,
    options: Mapping[str, Any],
    fit_outputs: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    del fit_outputs
    return ResMLP(
        n_in,
        n_out,
        int(options.get("width", 256)),
        int(options.get("depth", 3)),
        str(options.get("activation", "silu")),
        int(options.get("expansion", 2)),
    )
