"""One BLAS thread for a block of small linear algebra (a fit's χ² and its network rows).

Products of a few hundred rows are too small to share between threads, and on a loaded
machine OpenBLAS's spinning threads made each Daya Bay χ² evaluation 10–20× slower (17 ms
instead of 1 ms here). ``threadpoolctl`` (installed with mlflow's scikit-learn) where
available, nothing otherwise."""

from __future__ import annotations

import contextlib
from typing import Any

_CONTROLLER: list[Any] = []


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Each loaded BLAS library at one thread inside the block, restored after; nested blocks
    cost nothing. The libraries are looked up once: threadpoolctl's own ``limit`` re-inspects
    every loaded library per call (~35 µs, a tenth of a χ²)."""
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:
            _CONTROLLER.append(None)
        else:
            blas_libs = ThreadpoolController().select(user_api="blas").lib_controllers
            _CONTROLLER.append(_OneThread(blas_libs) if blas_libs else None)
    ctl = _CONTROLLER[0]
    return contextlib.nullcontext() if ctl is None else ctl


class _OneThread:
    """Context: each of ``libs`` (threadpoolctl library controllers) at one thread, restored
    when the outermost block ends."""

    def __init__(self, libs: list[Any]) -> None:
        self.libs = libs
        self.saved: list[int] = []
        self.depth = 0

    def __enter__(self) -> None:
        self.depth += 1
        if self.depth > 1:
            return
        self.saved = [lib.get_num_threads() for lib in self.libs]
        for lib, n in zip(self.libs, self.saved, strict=True):
            if n != 1:
                lib.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        if self.depth > 0:
            return
        for lib, n in zip(self.libs, self.saved, strict=True):
            if n != 1:
                lib.set_num_threads(n)
