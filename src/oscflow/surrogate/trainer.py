"""The Lightning ``Trainer`` of a training job, from its config: ``trainer`` (accelerator,
devices, strategy, epochs, precision), ``callbacks`` (checkpoints, early stopping, progress
bar) and any extra callbacks (a sweep trial's pruning), and ``fit`` (also resuming from a
checkpoint). No MLflow here: the caller passes its logger in."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    EarlyStopping,
    ModelCheckpoint,
    RichProgressBar,
    TQDMProgressBar,
)
from omegaconf import DictConfig

from ..config import to_container


def make_trainer(
    cfg: DictConfig,
    dm: L.LightningDataModule,
    output_dir: Path,
    logger: Any = None,
    extra_callbacks: Sequence[L.Callback] = (),
) -> L.Trainer:
    """Checkpoints under ``output_dir/checkpoints`` (``epochNNN.ckpt``, ``last.ckpt``), early
    stopping if enabled, ``extra_callbacks``, a progress bar (rich on a terminal, a few tqdm
    lines per epoch in logs) if enabled; ``logger`` None logs nothing (data-parallel workers)."""
    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=output_dir / "checkpoints",
            filename="epoch{epoch:03d}",
            auto_insert_metric_name=False,
            monitor=cfg.callbacks.checkpoint.monitor,
            save_last=cfg.callbacks.checkpoint.save_last,
            save_top_k=cfg.callbacks.checkpoint.save_top_k,
        )
    ]
    if cfg.callbacks.early_stopping.enabled:
        callbacks.append(
            EarlyStopping(
                monitor=cfg.callbacks.early_stopping.monitor,
                patience=cfg.callbacks.early_stopping.patience,
            )
        )
    callbacks.extend(extra_callbacks)
    if cfg.callbacks.progress_bar:
        callbacks.append(
            RichProgressBar()
            if sys.stderr.isatty()
            else TQDMProgressBar(refresh_rate=max(1, len(dm.train_dataloader()) // 4))
        )
    return L.Trainer(
        **to_container(cfg.trainer),
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        default_root_dir=str(output_dir),
        enable_progress_bar=bool(cfg.callbacks.progress_bar),
        enable_model_summary=False,
    )


def device_name(trainer: L.Trainer) -> str:
    """What the trainer runs on: ``cpu``, ``cuda:<GPU name>``, ``mps``, …"""
    kind = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    if kind == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return kind


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    dm: L.LightningDataModule,
    ckpt_path: str | None = None,
) -> None:
    """``trainer.fit``, resuming from ``ckpt_path`` if given. Ctrl-C raises KeyboardInterrupt:
    Lightning shuts down gracefully on it and then exits with ``sys.exit(1)``, which would
    read as an ordinary failure."""
    with warnings.catch_warnings():
        if ckpt_path:  # resuming writes into the run's own, non-empty checkpoint directory
            warnings.filterwarnings(
                "ignore", message="Checkpoint directory .* exists and is not empty"
            )
        try:
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        except SystemExit as exc:
            if trainer.interrupted:
                raise KeyboardInterrupt from exc
            raise
