"""Exact spectra at many parameter points: chunked, in parallel worker processes, checkpointed.

A truth model can be slow (Daya Bay's official model: ~25 ms per point), so the ``spectra``
stage evaluates chunks of points in ``workers`` spawned processes (each builds its own
experiment and predictor once) and records each finished chunk in ``<split>.done.json`` after
its rows are flushed to the memory-mapped output; a rerun skips the recorded chunks.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from .io import write_json

_WORKER: dict[str, Any] = {}


def build_predictor(spec: Mapping[str, Any]) -> Any:
    """The experiment's exact predictor described by ``spec`` (picklable: plain data)."""
    from ..experiments import load_experiment
    from .simulate import read_pairs

    experiment = load_experiment(spec["experiment"])
    pairs = read_pairs(spec["pairs"]) if spec.get("pairs") else None
    edges = np.asarray(spec["edges"], dtype=np.float64)
    predictor = experiment.predictor(edges, spec["energy"], spec["method"], pairs)
    exposure = experiment.exposure(*spec["exposure"])
    return lambda batch: sum(predictor.predict(batch, exposure).values())


def _init(spec: Mapping[str, Any]) -> None:
    _WORKER["predict"] = build_predictor(spec)


def _task(
    names: list[str],
    points: NDArray[np.float64],
    fixed: Mapping[str, float],
    predict: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    batch: dict[str, Any] = {k: points[:, j] for j, k in enumerate(names)}
    batch.update(fixed)
    return (predict or _WORKER["predict"])(batch)


class Evaluator:
    """Evaluates chunks of points in this process (``workers`` ≤ 1, with ``local`` if given)
    or in a pool of spawned workers kept for all splits (each worker builds its predictor once).
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        workers: int,
        local: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.spec = spec
        self.workers = workers
        self.local = local
        self._pool: cf.ProcessPoolExecutor | None = None
        self._predict: Callable[[dict[str, Any]], Any] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _pool_or_none(self) -> cf.ProcessPoolExecutor | None:
        if self.workers <= 1:
            if self._predict is None:
                self._predict = self.local or build_predictor(self.spec)
            return None
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = cf.ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init, initargs=(self.spec,)
            )
        return self._pool

    def fill(
        self,
        names: list[str],
        points: NDArray[np.float64],
        fixed: Mapping[str, float],
        out: np.memmap[Any, np.dtype[Any]],
        done_file: Path,
        chunk: int,
        advance: Callable[[int], None],
    ) -> None:
        """Fill ``out`` (N, K) with spectra at ``points`` (N, d), skipping recorded chunks."""
        done = set(json.loads(done_file.read_text())) if done_file.is_file() else set()
        starts = list(range(0, len(points), chunk))
        advance(sum(min(chunk, len(points) - s) for s in starts if s in done))
        todo = [s for s in starts if s not in done]

        def finish(start: int, counts: Any) -> None:
            out[start : start + len(counts)] = counts
            out.flush()
            done.add(start)
            write_json(done_file, sorted(done))
            advance(len(counts))

        if not todo:
            return
        pool = self._pool_or_none()
        if pool is None:
            for s in todo:
                finish(s, _task(names, points[s : s + chunk], fixed, self._predict))
            return
        futures = {pool.submit(_task, names, points[s : s + chunk], fixed): s for s in todo}
        try:
            for fut in cf.as_completed(futures):
                finish(futures[fut], fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
