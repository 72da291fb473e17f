"""The GPU training path on a machine with CUDA: the training job's own pieces (``oscflow.train``'s
datamodule and model, ``surrogate.trainer.make_trainer`` with ``trainer=gpu``) train the default
surrogate on the demo dataset, then the test split's accuracy is measured on the CPU with the
float64 evaluator, as ``oscflow train`` does. No MLflow (the GPU machine of this workplace has
none installed): the run is not logged or registered, everything else is the training job's.

Prints the device, the fit's wall time and epochs/s, and the test split's accuracy metrics
(p99 and max |Δ|/truth over bins with ≥ 1 % of the peak, artefact RMS) as one JSON line. Run
from the repository root with the demo dataset built (``dvc repro spectra``)::

    python benchmarks/gpu_train.py trainer.max_epochs=300 [trainer.precision=bf16-mixed]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(overrides: list[str]) -> dict[str, object]:
    from oscflow import train
    from oscflow.config import load
    from oscflow.surrogate import trainer as trainers
    from oscflow.surrogate.accuracy import evaluate
    from oscflow.surrogate.model import FastSurrogate
    from oscflow.surrogate.threads import float64_evaluator

    cfg = load("train", ["trainer=gpu", "callbacks.progress_bar=false", *overrides])
    dm = train.datamodule(cfg, train.dataset(cfg))
    dm.setup("fit")
    module = train.model(cfg, dm, trained_with={})
    with tempfile.TemporaryDirectory() as out:
        trainer = trainers.make_trainer(cfg, dm, Path(out))
        t0 = time.perf_counter()
        trainers.fit(trainer, module, dm, None)
        wall = time.perf_counter() - t0
    surrogate = module.surrogate.cpu().eval()
    params, spectra = (np.array(a) for a in dm.split("test"))  # writable copies for torch
    metrics, _ = evaluate(float64_evaluator(FastSurrogate(surrogate)), params, spectra)
    return {
        "device": trainers.device_name(trainer),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "precision": str(cfg.trainer.precision),
        "epochs": int(trainer.current_epoch),
        "fit_wall_s": wall,
        "epochs_per_s": trainer.current_epoch / wall,
        "train_spectra": len(dm.split("train")[0]),
        "test_metrics": metrics,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:]), default=float))
