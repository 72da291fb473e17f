"""LightningModule: MSE between network output and scaled truth spectra (seed 001's loss),
optionally weighted per bin by the statistical weight of its counts (``loss_weights``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from ..errors import OscflowError
from .model import SpectrumSurrogate

CHECKPOINT_KEY = "oscflow"  # SurrogateModule's own record in a Lightning checkpoint
OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
LOSS_WEIGHTS = ("uniform", "poisson")


class NonFiniteLossError(OscflowError, FloatingPointError):
    """The training loss became NaN or infinite."""


class ResumableOneCycleLR(torch.optim.lr_scheduler.OneCycleLR):
    """OneCycleLR whose cycle length is the current run's: a checkpoint's state (step count,
    learning rates) is restored, but not its ``total_steps``, so resuming with a larger
    ``trainer.max_epochs`` stretches the cycle to the new total instead of failing with
    "Tried to step … times"."""

    total_steps: int  # set by OneCycleLR.__init__
    _schedule_phases: list[dict[str, Any]]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        total, phases = self.total_steps, self._schedule_phases
        super().load_state_dict(state_dict)
        self.total_steps, self._schedule_phases = total, phases


def poisson_weights(surrogate: SpectrumSurrogate, floor: float = 0.0) -> torch.Tensor:
    """Per-bin weights of the squared error in the output scaler's space that make the loss
    the statistical χ² of the error at the training mean, Σ_b δ_b²/μ_b (δ in counts): a
    unit of scaled error is d_b counts, so w_b ∝ d_b²/μ_b. That χ² bounds the fit bias the
    error causes (|Δθ_i|/σ_i ≤ √(δᵀWδ), W = diag(1/μ); ``oscflow.stats.bias``), so training on
    it spends the network's accuracy where fits look. Normalised to mean 1, raised to at
    least ``floor`` (bins the fit barely weighs keep some share: their relative accuracy is
    gated too) and normalised again; bins without counts get ``floor``."""
    scaler = surrogate.output_scaler
    with torch.no_grad():
        zero = torch.zeros(1, surrogate.spec.n_out)
        mu = scaler.inverse(zero)[0].double()
        d = (scaler.inverse(zero + 1)[0].double() - mu).abs()
        w = torch.where(mu > 0, d**2 / mu.clamp(min=1e-30), torch.zeros_like(mu))
        w = w / w[mu > 0].mean()
        w = w.clamp(min=float(floor))
        return (w / w.mean()).float()


class SurrogateModule(L.LightningModule):
    loss_weight: torch.Tensor | None

    def __init__(
        self,
        surrogate: SpectrumSurrogate,
        optim: Mapping[str, Any],
        loss_weights: str = "uniform",
        loss_floor: float = 0.0,
    ) -> None:
        """``loss_weights``: ``uniform`` (plain MSE in the scaled space, every bin alike) or
        ``poisson`` (``poisson_weights`` with ``loss_floor``)."""
        super().__init__()
        if loss_weights not in LOSS_WEIGHTS:
            msg = f"unknown loss weights {loss_weights!r}; choose one of {LOSS_WEIGHTS}"
            raise ValueError(msg)
        self.surrogate = surrogate
        self.optim_cfg = dict(optim)
        self.loss_fn = nn.MSELoss()
        weight = poisson_weights(surrogate, loss_floor) if loss_weights == "poisson" else None
        # not persistent: derived from the scaler, and checkpoints stay loadable either way
        self.register_buffer("loss_weight", weight, persistent=False)
        self.mlflow_run_id: str | None = None
        self.spec_dict: dict[str, Any] = {}

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        params, spectra = batch
        pred = self.surrogate.scaled(params)
        target = self.surrogate.output_scaler(spectra)
        if self.loss_weight is None:
            return self.loss_fn(pred, target)
        return torch.mean(self.loss_weight * (pred - target) ** 2)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        del batch_idx
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            msg = (
                f"training loss is {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}: lower optim.lr or check the data"
            )
            raise NonFiniteLossError(msg)
        self.log(
            "train_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch[0].shape[0],
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        del batch_idx
        loss = self._loss(batch)
        self.log(
            "val_loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch[0].shape[0],
            sync_dist=True,
        )

    def configure_optimizers(self) -> Any:
        cfg = dict(self.optim_cfg)
        name = cfg.pop("name")
        if name not in OPTIMIZERS:
            msg = f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}"
            raise ValueError(msg)
        scheduler = cfg.pop("scheduler", None)
        pct_start = float(cfg.pop("pct_start", 0.05))
        optimizer = OPTIMIZERS[name](self.surrogate.net.parameters(), **cfg)
        if scheduler in (None, "none"):
            return optimizer
        sched: torch.optim.lr_scheduler.LRScheduler
        if scheduler == "cosine":
            epochs = max(int(self.trainer.max_epochs or 1), 1)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": sched, "interval": "epoch"},
            }
        if scheduler == "onecycle":
            # Smith & Topin (2019): warm up to ``lr`` over ``pct_start`` of the steps, then
            # cosine-anneal to lr/(div_factor·final_div_factor); stepped per batch.
            sched = ResumableOneCycleLR(
                optimizer,
                max_lr=cfg["lr"],
                total_steps=max(int(self.trainer.estimated_stepping_batches), 1),
                pct_start=pct_start,
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": sched, "interval": "step"},
            }
        if scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"},
            }
        msg = f"unknown scheduler {scheduler!r}; use none, cosine, onecycle or plateau"
        raise ValueError(msg)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {"mlflow_run_id": self.mlflow_run_id, "spec": self.spec_dict}


def checkpoint_record(path: str | os.PathLike[str]) -> tuple[str | None, dict[str, Any] | None]:
    """What ``SurrogateModule`` wrote into a checkpoint besides Lightning's state: the MLflow
    run it trained in (a resumed training continues that run) and the spec of its data
    (inputs, binning, energy; the dataset must match it). (None, None) for checkpoints
    without them."""
    saved = torch.load(path, map_location="cpu", weights_only=False)
    record = saved.get(CHECKPOINT_KEY) or {}
    return record.get("mlflow_run_id"), record.get("spec") or None
