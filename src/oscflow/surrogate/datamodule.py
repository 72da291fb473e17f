"""Lightning DataModule over the spectra datasets of the ``spectra`` DVC stage.

A split that fits in memory (``in_memory``; by default those of at most ``IN_MEMORY_BYTES``,
e.g. the demo dataset's 32 MB) is read once into tensors and each batch is one
``index_select`` of them (``TensorBatches``): no DataLoader, no per-batch memmap read or
conversion, which on 2 cores is a measurable share of a small network's step
(benchmarks/bench_train.py). Larger splits (the full dataset, GBs) stay memory-mapped and
batches are read by index arrays (one fancy-index read per batch through a DataLoader), so
they are never copied into RAM. Both paths draw the same batches: shuffling uses a seeded
generator per epoch, the same seed gives the same batches.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.io import load_array, read_meta
from ..data.spectra import FORMAT, SPLITS
from ..errors import InputError

# Splits up to this size (params + spectra) are held in memory by default.
IN_MEMORY_BYTES = 1 << 30


class DatasetMismatchError(InputError, ValueError):
    """The dataset's metadata does not match what the model expects (an input error: the
    message names the difference and the fix)."""


class _BatchDataset(Dataset):
    """Item = a whole batch: index array → (params float32, spectra float32)."""

    def __init__(self, directory: Path, split: str) -> None:
        self.directory = directory
        self.split = split
        self._params: np.ndarray | None = None
        self._spectra: np.ndarray | None = None
        self.size = int(load_array(directory, f"{split}_params").shape[0])

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._params is None or self._spectra is None:  # lazily: each worker maps its own
            self._params = load_array(self.directory, f"{self.split}_params")
            self._spectra = load_array(self.directory, f"{self.split}_spectra")
        return self._params, self._spectra

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        params, spectra = self._arrays()
        idx = np.sort(np.asarray(index))
        return (
            torch.from_numpy(np.asarray(params[idx], dtype=np.float32)),
            torch.from_numpy(np.asarray(spectra[idx], dtype=np.float32)),
        )


class _BatchSampler(Sampler[np.ndarray]):
    """Index batches; under data parallelism each rank takes every ``world``-th batch of the same
    seeded permutation (so Lightning's DistributedSampler is not needed: ``use_distributed_sampler``
    is off in ``trainer=ddp``)."""

    def __init__(
        self, size: int, batch_size: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1
    ) -> None:
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.rank, self.world = rank, world
        self.epoch = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.shuffle:
            order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size)
            self.epoch += 1
        else:
            order = np.arange(self.size)
        starts = list(range(0, self.size, self.batch_size))
        usable = len(starts) - len(starts) % self.world if self.world > 1 else len(starts)
        for start in starts[self.rank : usable : self.world]:
            yield order[start : start + self.batch_size]

    def __len__(self) -> int:
        n = (self.size + self.batch_size - 1) // self.batch_size
        return n // self.world if self.world > 1 else n


class TensorBatches:
    """The batches of an in-memory split: for each index array of ``order`` (sorted, as the
    memory-mapped path reads them) one ``index_select`` of ``params`` and ``spectra``. An
    iterable with a length, which Lightning takes in place of a DataLoader (the attribute is
    not called ``sampler``: Lightning would inspect it as a DataLoader's)."""

    def __init__(self, params: torch.Tensor, spectra: torch.Tensor, order: _BatchSampler) -> None:
        self.params, self.spectra, self.order = params, spectra, order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in self.order:
            idx = torch.from_numpy(np.sort(index))
            yield self.params.index_select(0, idx), self.spectra.index_select(0, idx)

    def __len__(self) -> int:
        return len(self.order)


class SpectraDataModule(L.LightningDataModule):
    """train/val/test splits of one spectra dataset directory."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        batch_size: int = 256,
        eval_batch_size: int = 4096,
        num_workers: int = 0,
        seed: int = 0,
        in_memory: bool | None = None,
    ) -> None:
        """``in_memory``: hold each split in tensors (True), read batches from the memmaps
        (False), or None: in memory when the split is at most ``IN_MEMORY_BYTES``.
        ``num_workers`` applies to the memory-mapped path only."""
        super().__init__()
        self.directory = Path(directory)
        self.meta: dict[str, Any] = read_meta(self.directory)
        if self.meta.get("format") != FORMAT:
            msg = f"{self.directory}: format {self.meta.get('format')!r} is not {FORMAT!r}; rebuild it with `dvc repro`"
            raise DatasetMismatchError(msg)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.seed = int(seed)
        self.in_memory = in_memory
        self._tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def check_matches(self, expected: Mapping[str, Any]) -> None:
        """Refuse a dataset whose inputs, binning or energy variable differ from ``expected``."""
        problems = []
        if "inputs" in expected and list(expected["inputs"]) != list(self.meta["inputs"]):
            problems.append(
                f"parameter names {self.meta['inputs']} ≠ model's {list(expected['inputs'])}"
            )
        if "bin_edges" in expected:
            mine, theirs = np.asarray(self.meta["bin_edges"]), np.asarray(expected["bin_edges"])
            if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=0, atol=1e-9):
                problems.append(
                    f"binning {len(mine) - 1} bins {mine[0]:g}–{mine[-1]:g} MeV ≠ model's "
                    f"{len(theirs) - 1} bins {theirs[0]:g}–{theirs[-1]:g} MeV"
                )
        if "energy" in expected and expected["energy"] != self.meta["energy"]:
            problems.append(
                f"energy variable {self.meta['energy']!r} ≠ model's {expected['energy']!r}"
            )
        if problems:
            msg = (
                f"dataset {self.directory} does not match the model: {'; '.join(problems)}. "
                "Fix: train on a dataset built with the same binning and inputs (dvc repro with "
                "the model's config), or start a new model instead of resuming this one"
            )
            raise DatasetMismatchError(msg)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(params, spectra) memmaps of a split."""
        if name not in SPLITS:
            msg = f"unknown split {name!r}; splits are {SPLITS}"
            raise ValueError(msg)
        return load_array(self.directory, f"{name}_params"), load_array(
            self.directory, f"{name}_spectra"
        )

    def holds_in_memory(self, split: str) -> bool:
        """Whether ``split``'s batches come from in-memory tensors (see ``in_memory``)."""
        if self.in_memory is not None:
            return bool(self.in_memory)
        params, spectra = self.split(split)
        return params.nbytes + spectra.nbytes <= IN_MEMORY_BYTES

    def tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(params, spectra) of ``split`` as float32 tensors, read once."""
        if split not in self._tensors:
            params, spectra = self.split(split)
            self._tensors[split] = (
                torch.from_numpy(np.array(params, dtype=np.float32)),
                torch.from_numpy(np.array(spectra, dtype=np.float32)),
            )
        return self._tensors[split]

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader | TensorBatches:
        size = int(load_array(self.directory, f"{split}_params").shape[0])
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        if not shuffle and world > 1:  # every rank needs at least one evaluation batch
            batch_size = max(1, min(batch_size, size // world))
        sampler = _BatchSampler(size, batch_size, shuffle, self.seed, rank, world)
        if self.holds_in_memory(split):
            return TensorBatches(*self.tensors(split), sampler)
        return DataLoader(
            _BatchDataset(self.directory, split),
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader | TensorBatches:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader | TensorBatches:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader | TensorBatches:
        return self._loader("test", self.eval_batch_size, shuffle=False)
