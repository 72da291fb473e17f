"""PCA-compressed output head: an MLP predicts k principal-component coefficients of the
(scaled) spectrum; a fixed linear decoder, the top-k right singular vectors of the scaled
training outputs, maps them back to all bins. Spectra of oscillation parameters live close to a
low-dimensional manifold, so k ≪ n_bins; the decoder's smooth basis also suppresses the
bin-to-bin "oscillatory artefacts" seed 001 reports for direct-output networks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from . import register
from .seed_mlp import mlp


class PCAHead(nn.Module):
    basis: torch.Tensor  # buffers (register_buffer)
    offset: torch.Tensor

    def __init__(self, n_in: int, n_out: int, hidden: list[int], act: str, k: int) -> None:
        super().__init__()
        self.body = mlp(n_in, k, hidden, act)
        self.register_buffer("basis", torch.zeros(k, n_out))
        self.register_buffer("offset", torch.zeros(n_out))

    def fit(self, outputs: torch.Tensor) -> float:
        """Set the basis from scaled training outputs; returns the explained variance fraction."""
        k = self.basis.shape[0]
        mean = outputs.mean(0)
        centred = (outputs - mean).double()
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        self.offset.copy_(mean)
        self.basis.copy_(vh[:k].float())
        return float((s[:k] ** 2).sum() / (s**2).sum())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) @ self.basis + self.offset

    def sequential(self) -> nn.Sequential:
        """The same map as a Sequential of Linear layers and activations (the decoder a
        Linear of weight basisᵀ): inference (``FastSurrogate``) folds the scalers into it and
        runs it as a plain chain, with its cheap forward-mode Jacobian."""
        k, n_out = self.basis.shape
        decoder = nn.Linear(k, n_out, device=self.basis.device)
        with torch.no_grad():
            decoder.weight.copy_(self.basis.t())
            decoder.bias.copy_(self.offset)
        return nn.Sequential(*self.body, decoder)


def shape(options: Mapping[str, Any]) -> str:
    """``256x256-k32``: hidden widths and the number of principal components."""
    hidden = "x".join(str(h) for h in options.get("hidden", [256, 256]))
    return f"{hidden}-k{options.get('components', 32)}"


@register("pca_mlp", shape=shape)
def build(
    n_in: int,
    n_out: int,
    options: Mapping[str, Any],
    fit_outputs: Callable[[], torch.Tensor] | None = None,
) -> nn.Module:
    k = int(options.get("components", 32))
    if not 1 <= k <= n_out:
        msg = f"model.components = {k} must be in [1, {n_out}]"
        raise ValueError(msg)
    head = PCAHead(
        n_in,
        n_out,
        list(options.get("hidden", [256, 256])),
        str(options.get("activation", "silu")),
        k,
    )
    if fit_outputs is not None:
        head.fit(fit_outputs())
    return head
