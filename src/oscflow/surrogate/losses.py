"""Training losses, selected by ``loss`` (``conf/train.yaml``).

- ``mse`` (seed 001's loss): the mean squared error between the network output and the truth in
  the output scaler's space. Every bin counts by its spread over the dataset, whatever its
  counts.
- ``pearson``: the Pearson χ² of the surrogate's spectrum against the truth,
  χ² = Σ_i (ŷ_i − y_i)²/y_i per spectrum in counts at the dataset's exposure, averaged over the
  batch (bins with y_i ≤ 0 carry no weight, as in ``oscflow.stats.bias``). Bins count as a fit
  of those counts weighs them. For the linearised fit of ``oscflow.stats.bias``, with or
  without Gaussian priors, the shift the error δ causes in any parameter p is

      |Δθ_p| = |e_pᵀ F⁻¹ Jᵀ W δ| ≤ ‖W^½ J F⁻¹ e_p‖ · ‖W^½ δ‖ ≤ σ_p · √χ²

  (Cauchy–Schwarz; ‖W^½ J F⁻¹ e_p‖² = e_pᵀ F⁻¹ (F − P) F⁻¹ e_p ≤ (F⁻¹)_pp with P the priors'
  diagonal), so √χ² of a spectrum bounds its fit bias in σ: the fit-bias gate's 0.1σ holds
  wherever χ² ≤ 0.01. The logged ``train_loss``/``val_loss`` are then the mean χ².
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import ConfigError
from .model import SpectrumSurrogate

Loss = Callable[[SpectrumSurrogate, torch.Tensor, torch.Tensor], torch.Tensor]


def mse(surrogate: SpectrumSurrogate, params: torch.Tensor, spectra: torch.Tensor) -> torch.Tensor:
    """Mean squared error in the output scaler's space."""
    return torch.nn.functional.mse_loss(surrogate.scaled(params), surrogate.output_scaler(spectra))


def pearson(
    surrogate: SpectrumSurrogate, params: torch.Tensor, spectra: torch.Tensor
) -> torch.Tensor:
    """Mean over the batch of Σ_i (ŷ_i − y_i)²/y_i (counts; y_i ≤ 0: no weight)."""
    pred = surrogate(params)
    weight = torch.where(spectra > 0, 1.0 / spectra.clamp_min(torch.finfo(spectra.dtype).tiny), 0)
    return ((pred - spectra) ** 2 * weight).sum(dim=1).mean()


LOSSES: dict[str, Loss] = {"mse": mse, "pearson": pearson}


def get(name: str) -> Loss:
    """The loss ``name``; a ConfigError naming the choices otherwise."""
    if name not in LOSSES:
        raise ConfigError("loss", f"unknown loss {name!r}", f"choose one of {sorted(LOSSES)}")
    return LOSSES[name]
