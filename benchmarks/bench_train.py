"""Training throughput of ``oscflow train`` on the demo dataset: the old default against the new
one, measured in the same run (figures only, no pass/fail).

What it measures: the wall time and this process's CPU time per epoch of the real Lightning
``Trainer`` of a training job (``surrogate.trainer.make_trainer``: checkpoints, validation; no
MLflow logger, no progress bar; the fit inside ``threads``' ``intra_op_threads`` as ``oscflow
train`` runs it), on the demo dataset (``data=demo``: 20,000 training spectra, 400 bins,
batch 256), for these variants —

* ``before``: the old default: batches read through a DataLoader from the memory-mapped splits
  (``data.loader.in_memory=false``), AdamW's per-parameter step (``optim.fused=false``), torch's
  default threads (``threads=0``: one per core);
* ``in-memory``: the same batches from in-memory tensors (``TensorBatches``);
* ``in-memory fused``: and AdamW's fused step (``optim.fused=true``: one kernel for all
  parameters instead of a loop of element-wise ops per parameter);
* ``after, 2 threads``: the new default but torch's default threads;
* ``after``: ``oscflow train``'s default as composed from ``conf/`` now (one thread).

Each variant trains ``--epochs`` epochs (default 4) from a fresh model; the first epoch is a
warm-up, the rest are timed (from the start of the second epoch to the end of the last,
validation and checkpoints included) and give training spectra per second (wall) and per CPU
second of this process. The variants are run round-robin ``--repeats`` times (default 3) so
that a slow phase of the shared machine hits all of them; medians are reported with the
min–max of the wall rate, and each median's ratio to ``before``'s: the RATIOS are the figures
(absolute rates move with the machine and its load; two threads suffer most from other
processes, whose CPU share is printed). Also printed: the projected wall time of the default's
fit (``trainer.max_epochs`` ÷ rate) against 300 epochs of ``before``.

Run from the repository root after building the demo dataset (``dvc repro``, or ``oscflow
simulate data=demo && oscflow spectra data=demo``)::

    .venv/bin/python benchmarks/bench_train.py                # a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_train.py --repeats 1    # quicker, noisier

The last line printed is a single JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from _timing import cpu_snapshot, environment, others_cpu, warn_if_loaded
from oscflow import config, train
from oscflow.surrogate import trainer as trainers
from oscflow.surrogate.threads import intra_op_threads

OLD = ["data.loader.batch_size=256", "trainer.precision=32-true", "threads=0"]
VARIANTS: dict[str, list[str]] = {
    "before": [*OLD, "data.loader.in_memory=false", "optim.fused=false"],
    "in-memory": [*OLD, "data.loader.in_memory=true", "optim.fused=false"],
    "in-memory fused": [*OLD, "data.loader.in_memory=true", "optim.fused=true"],
    "after, 2 threads": ["threads=0"],
    "after": [],
}


class EpochClock(L.Callback):
    """Wall-clock time at the start and end of every training epoch (validation and
    checkpoints of that epoch included: they run before ``on_train_epoch_end``)."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, float]] = []  # (wall, process CPU) seconds
        self.ends: list[tuple[float, float]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        del trainer, pl_module
        self.starts.append((time.perf_counter(), time.process_time()))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        del trainer, pl_module
        self.ends.append((time.perf_counter(), time.process_time()))


def compose(overrides: Sequence[str]) -> Any:
    """The training config of ``data=demo`` with ``overrides`` (``++key=value``: set or add)."""
    return config.load("train", ["data=demo", *overrides])


def epoch_rate(overrides: Sequence[str], epochs: int) -> tuple[float, float, int]:
    """Training spectra per wall-clock second and per CPU second of this process over epochs
    2..``epochs`` of a fresh training with ``overrides``, and the training spectra per epoch."""
    cfg = compose([*overrides, f"trainer.max_epochs={epochs}", "callbacks.progress_bar=false"])
    L.seed_everything(int(cfg.seed), verbose=False)
    dm = train.datamodule(cfg, train.dataset(cfg))
    module = train.model(cfg, dm)
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as tmp, intra_op_threads(train.training_threads(cfg)):
        trainer = trainers.make_trainer(cfg, dm, Path(tmp), extra_callbacks=[clock])
        trainers.fit(trainer, module, dm)
    n_train = int(dm.split("train")[0].shape[0])
    timed = len(clock.ends) - 1
    wall = clock.ends[-1][0] - clock.starts[1][0]
    cpu = clock.ends[-1][1] - clock.starts[1][1]
    return n_train * timed / wall, n_train * timed / cpu, n_train


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    env = environment()
    default = compose([])
    every = int(default.trainer.get("check_val_every_n_epoch", 1))
    epochs = max(2, args.epochs)
    epochs = ((epochs - 1 + every - 1) // every) * every + 1  # warm-up + whole intervals
    print(
        f"bench_train: data=demo, {epochs} epochs per measurement (first untimed), "
        f"{args.repeats} repeats round-robin, {torch.get_num_threads()} torch threads by default, "
        f"revision {env['revision']}"
    )
    warn_if_loaded(env, " (compare the ratios, not the rates)")
    wall: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    n_train = 0
    before_cpu = cpu_snapshot()
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        for name, overrides in VARIANTS.items():
            per_wall, per_cpu, n_train = epoch_rate(overrides, epochs)
            wall[name].append(per_wall)
            cpu[name].append(per_cpu)
    elapsed = time.perf_counter() - t0
    others = others_cpu(before_cpu, cpu_snapshot())
    med = {name: statistics.median(r) for name, r in wall.items()}
    med_cpu = {name: statistics.median(r) for name, r in cpu.items()}
    print(
        f"{'variant':<16} {'spectra/s':>10} {'(min–max)':>16} {'× before':>9} "
        f"{'spectra/CPU-s':>14} {'× before':>9}"
    )
    for name, r in wall.items():
        print(
            f"{name:<16} {med[name]:>10,.0f} {f'{min(r):,.0f}–{max(r):,.0f}':>16} "
            f"{med[name] / med['before']:>9.2f} {med_cpu[name]:>14,.0f} "
            f"{med_cpu[name] / med_cpu['before']:>9.2f}"
        )
    max_epochs = int(default.trainer.max_epochs)
    projected = {
        "before (300 epochs)": 300 * n_train / med["before"],
        f"after ({max_epochs} epochs)": max_epochs * n_train / med["after"],
    }
    for label, seconds in projected.items():
        print(f"projected fit at these rates, {label}: {seconds:,.0f} s")
    if others is not None:
        share = others / (elapsed * (env["cpus_usable"] or 1))
        print(f"other processes used {share:.0%} of the CPUs while this ran")
    print(
        json.dumps(
            {
                "environment": env,
                "torch_threads_default": torch.get_num_threads(),
                "epochs_per_measurement": epochs,
                "spectra_per_s": wall,
                "spectra_per_cpu_s": cpu,
                "ratio_to_before": {k: v / med["before"] for k, v in med.items()},
                "cpu_ratio_to_before": {k: v / med_cpu["before"] for k, v in med_cpu.items()},
                "projected_fit_seconds": projected,
                "others_cpu_seconds": others,
            }
        )
    )


if __name__ == "__main__":
    main()
