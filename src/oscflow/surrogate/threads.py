"""Torch threading for surrogate evaluation: a surrogate's network in float64 on numpy arrays
(what fits, the fit-bias metric and the validate service call), and with its Jacobian (the
batched fitter), with one torch thread for small batches.

Intra-op threads gain nothing on a fit's small batches, and their spinning pool slows the BLAS
that the statistic uses next (a Daya Bay χ² evaluation, 546×546 Cholesky included, 12 ms →
5 ms on 2 cores; benchmarks/bench_dayabay.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
import torch
from numpy.typing import NDArray

from ..stats.blas_threads import one_blas_thread
from .model import FastSurrogate

SMALL_BATCH = 64


def float64_evaluator(
    surrogate: FastSurrogate,
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """The surrogate's network in float64 (``FastSurrogate.float64``) on numpy arrays:
    x (B, n_in) float64 → counts (B, K) float64, with one torch thread for small batches (or,
    for a plain chain, numpy on one BLAS thread: ``FastSurrogate.float64_rows``)."""
    fn = surrogate.float64()
    rows = surrogate.float64_rows()

    def evaluate(x: NDArray[np.float64]) -> NDArray[np.float64]:
        if rows is not None and len(x) <= SMALL_BATCH:
            with one_blas_thread():
                return np.asarray(rows(np.asarray(x, dtype=np.float64)), dtype=np.float64)
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        if surrogate.device.type != "cpu":
            t = t.to(surrogate.device)
        with threads_for(t.shape[0]):
            return fn(t).cpu().numpy()

    return evaluate


def float64_jacobian_evaluator(
    surrogate: FastSurrogate,
) -> Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """x (B, n_in) float64 → (counts (B, K), ∂counts/∂x (B, K, n_in)), float64 numpy, from
    torch forward-mode autograd (``FastSurrogate.float64_jacobian``)."""
    fn = surrogate.float64_jacobian()

    def evaluate(x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
        if surrogate.device.type != "cpu":
            t = t.to(surrogate.device)
        with threads_for(t.shape[0]):
            y, jac = fn(t)
            return y.cpu().numpy(), jac.cpu().numpy()

    return evaluate


@contextlib.contextmanager
def intra_op_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block (None: left as it is),
    restored after. Training the default MLP (batch 256) on one thread was 30–38 k spectra/s
    on this 2-core machine against 4–8 k on two while other processes ran (each step is
    hundreds of small kernels, and two threads wait on each other at every one whenever
    either is descheduled); benchmarks/bench_train.py."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def threads_for(batch: int) -> Iterator[None]:
    """One torch thread while evaluating a batch of at most ``SMALL_BATCH`` rows (the caller's
    thread count is restored after); larger batches keep every thread."""
    n = torch.get_num_threads()
    if batch > SMALL_BATCH or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
