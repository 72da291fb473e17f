"""LightningModule: a surrogate fitted to truth spectra with a loss of ``losses`` (seed 001's
MSE by default)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from ..errors import OscflowError
from . import losses
from .model import SpectrumSurrogate

CHECKPOINT_KEY = "oscflow"  # SurrogateModule's own record in a Lightning checkpoint
OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


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


class SurrogateModule(L.LightningModule):
    def __init__(
        self, surrogate: SpectrumSurrogate, optim: Mapping[str, Any], loss: str = "mse"
    ) -> None:
        super().__init__()
        self.surrogate = surrogate
        self.optim_cfg = dict(optim)
        self.loss_fn = losses.get(loss)
        self.mlflow_run_id: str | None = None
        self.spec_dict: dict[str, Any] = {}

    def _memoise(self, on: bool) -> None:
        """Let architectures that can memoise per-row work do so while fitting (the same rows
        come back every epoch; ``deposit_fold``'s fold weights)."""
        for module in self.surrogate.modules():
            if hasattr(module, "memoise"):
                module.memoise = on

    def on_fit_start(self) -> None:
        self._memoise(True)

    def on_fit_end(self) -> None:
        self._memoise(False)

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        params, spectra = batch
        return self.loss_fn(self.surrogate, params, spectra)

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
