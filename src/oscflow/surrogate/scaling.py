"""Input and output scaling, both stored in the model.

Inputs: the dataset's sampling box [lo, hi] per parameter ↦ [−1, 1] (known before training); a
parameter the dataset sampled on a log scale (``meta["scales"]``) is mapped as log x, so that
each decade of it gets the same share of the network's input range.
Outputs: per-bin affine standardisation learned from the training split, in one of two spaces:
``standard`` (counts) or ``log`` (log(counts + ε), ε = 1e-3 of the mean peak bin), streamed over
the memory-mapped spectra in chunks so the full data never sits in RAM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

_Values = TypeVar("_Values", torch.Tensor, NDArray[np.float64])

TRANSFORMS = ("standard", "log")


class LogColumns(nn.Module):
    """x ↦ log x in the columns ``mask`` (a non-persistent buffer: it follows from the spec),
    unchanged elsewhere; NaN-free in both branches (autograd and forward-mode Jacobians)."""

    mask: torch.Tensor

    def __init__(self, mask: Sequence[bool]) -> None:
        super().__init__()
        self.register_buffer("mask", torch.as_tensor(list(mask), dtype=torch.bool), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        safe = torch.where(self.mask, x, torch.ones_like(x))
        return torch.where(self.mask, torch.log(safe), x)


class InputScaler(nn.Module):
    centre: torch.Tensor  # buffers (register_buffer)
    halfwidth: torch.Tensor

    def __init__(
        self, lo: Sequence[float], hi: Sequence[float], log: Sequence[bool] | None = None
    ) -> None:
        """``log``: per input, whether it is mapped as log x (then 0 < lo)."""
        super().__init__()
        lo_a = np.asarray(lo, dtype=np.float64)
        hi_a = np.asarray(hi, dtype=np.float64)
        if np.any(hi_a <= lo_a):
            msg = "input ranges must have hi > lo for every parameter"
            raise ValueError(msg)
        mask = np.zeros(lo_a.shape, dtype=bool) if log is None else np.asarray(log, dtype=bool)
        if np.any(mask & (lo_a <= 0)):
            msg = "a log-scaled input needs a range with 0 < lo"
            raise ValueError(msg)
        lo_a = np.where(mask, np.log(np.where(mask, lo_a, 1.0)), lo_a)
        hi_a = np.where(mask, np.log(np.where(mask, hi_a, 1.0)), hi_a)
        self.log = LogColumns(mask.tolist()) if mask.any() else None
        self.register_buffer("centre", torch.as_tensor((hi_a + lo_a) / 2).float())
        self.register_buffer("halfwidth", torch.as_tensor((hi_a - lo_a) / 2).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.log is not None:
            x = self.log(x)
        return (x - self.centre) / self.halfwidth


class OutputScaler(nn.Module):
    """y_scaled = (f(y) − mean)/std with f = identity or log(y + ε)."""

    mean: torch.Tensor  # buffers (register_buffer)
    std: torch.Tensor
    eps: torch.Tensor

    def __init__(self, n_out: int, transform: str = "standard") -> None:
        super().__init__()
        if transform not in TRANSFORMS:
            msg = f"unknown output transform {transform!r}; choose one of {TRANSFORMS}"
            raise ValueError(msg)
        self.transform = transform
        self.register_buffer("mean", torch.zeros(n_out))
        self.register_buffer("std", torch.ones(n_out))
        self.register_buffer("eps", torch.zeros(()))

    def _f(self, y: _Values) -> _Values:
        if self.transform == "log":
            eps = float(self.eps)
            return torch.log(y + eps) if isinstance(y, torch.Tensor) else np.log(y + eps)
        return y

    def fit(self, spectra: NDArray[np.floating], chunk: int = 65536) -> None:
        """Per-bin mean and std over ``spectra`` (N, K), streamed in chunks (float64 sums)."""
        n, k = spectra.shape
        if self.transform == "log":
            peak = 0.0
            for s in range(0, n, chunk):
                peak += float(
                    np.asarray(spectra[s : s + chunk], dtype=np.float64).max(axis=1).sum()
                )
            self.eps.fill_(1e-3 * peak / n)
        total = np.zeros(k)
        total_sq = np.zeros(k)
        for s in range(0, n, chunk):
            block = np.asarray(self._f(np.asarray(spectra[s : s + chunk], dtype=np.float64)))
            total += block.sum(axis=0)
            total_sq += (block**2).sum(axis=0)
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
        floor = 1e-6 * max(float(std.max()), 1e-12)
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.maximum(std, floor), dtype=torch.float32))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return (self._f(y) - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        y = z * self.std + self.mean
        return torch.exp(y) - self.eps if self.transform == "log" else y
