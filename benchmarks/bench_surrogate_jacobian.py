"""Time per point of the surrogate's float64 Jacobian (∂counts/∂inputs, 4 inputs → 400 bins)
by each torch autograd route, on CPU (figures only, no pass/fail).

Routes, all on the folded float64 layers of ``FastSurrogate`` (seed 001's topology, 4 → 400 →
400 → 400, untrained weights: the cost does not depend on their values):

* ``vmap(jacfwd)``: forward mode, n_in tangents per row (what ``float64_jacobian`` uses);
* ``vmap(jacrev)``: reverse mode, one backward pass per output bin per row, vectorised;
* ``autograd.functional.jacobian``: of the batch-summed outputs (rows are independent, so the
  Jacobian of Σ_rows is every row's), ``vectorize=True``, reverse ("rev") and forward-mode
  strategies. Those and ``vmap(jacrev)`` are timed only up to ``REVERSE_MAX_ROWS`` rows.

Run from the repository root::

    .venv/bin/python benchmarks/bench_surrogate_jacobian.py     # ~1 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

# Reverse mode costs one backward pass per output bin (~25 ms per row here), and
# functional.jacobian's forward mode one tangent per input element (B × n_in: 50 GB at
# B = 2048), so those routes are timed only up to this many rows.
REVERSE_MAX_ROWS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[1, 64, 2048])
    parser.add_argument("--activation", default="silu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    from torch.autograd.functional import jacobian
    from torch.func import jacfwd, jacrev, vmap

    from oscflow.surrogate.model import FastSurrogate, SpectrumSurrogate, SurrogateSpec

    spec = SurrogateSpec(
        experiment="juno",
        inputs=("sin2_th12", "sin2_th13", "dm2_21", "dm2_32"),
        ranges=((0.27, 0.35), (0.018, 0.026), (7.0e-5, 8.1e-5), (2.35e-3, 2.55e-3)),
        bin_edges=tuple(np.linspace(0.8, 8.8, 401)),
        energy="prompt",
        exposure={"days": 2191.0, "efficiency": 0.822},
        architecture="seed_mlp",
        options={"hidden": [400, 400], "activation": args.activation},
    )
    torch.manual_seed(0)
    fast = FastSurrogate(SpectrumSurrogate(spec))
    f = fast._fn.double().functional()

    def single(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = f(x[None, :])[0]
        return y, y

    routes: dict[str, Callable[[torch.Tensor], Any]] = {
        "vmap(jacfwd)": vmap(jacfwd(single, has_aux=True)),
        "vmap(jacrev)": vmap(jacrev(single, has_aux=True)),
        "functional.jacobian rev": lambda x: jacobian(lambda z: f(z).sum(0), x, vectorize=True),
        "functional.jacobian forward": lambda x: jacobian(
            lambda z: f(z).sum(0), x, vectorize=True, strategy="forward-mode"
        ),
    }
    lo, hi = np.array(spec.ranges).T
    figures: dict[str, Any] = {"threads": torch.get_num_threads(), "activation": args.activation}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.activation}")
    print(f"{'route':<30}" + "".join(f"{f'B={b} [µs/pt]':>18}" for b in args.rows))
    ref: dict[int, np.ndarray] = {}
    for name, fn in routes.items():
        line, figures[name] = f"{name:<30}", {}
        for b in args.rows:
            if ("rev" in name or "functional" in name) and b > REVERSE_MAX_ROWS:
                line += f"{'(skipped)':>18}"
                continue
            x = torch.from_numpy(lo + (hi - lo) * np.random.default_rng(b).random((b, 4)))
            out = fn(x)
            jac = out[0] if isinstance(out, tuple) else out
            jac = jac.numpy() if jac.shape[0] == b else jac.permute(1, 0, 2).numpy()
            ref.setdefault(b, jac)
            assert np.abs(jac - ref[b]).max() <= 1e-10 * np.abs(ref[b]).max(), name
            laps = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn(x)
                laps.append(time.perf_counter() - t0)
            per = float(np.median(laps)) / b
            figures[name][b] = per
            line += f"{per * 1e6:>18.1f}"
        print(line)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
