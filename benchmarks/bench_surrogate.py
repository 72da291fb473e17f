"""Latency and throughput of the surrogate fast path, ``FastSurrogate`` (figures only, no
pass/fail).

What it measures, all on one machine in one run, every baseline measured in the same run (the
RATIOS are the figures: absolute rates move with the machine and its load):

* Single-spectrum latency of ``FastSurrogate.predict`` (batch 1: a (1, 4) float32 array of
  oscillation parameters in, a (1, 400) float64 array of counts out), repeated on successive
  parameter points; and batched throughput, one ``predict`` call on B = 4,096 and 65,536.
* The PLAIN baseline for both: the seed_mlp network as a bare torch GEMM chain of the same
  shapes and weights, x·W1 + b1 → relu → ·W2 + b2 → relu → ·W3 + b3 with ``torch.addmm`` on
  float32 tensors that need no gradient (W the Linear weights' transposed views, as
  ``nn.Linear`` passes them to ``addmm``), tensor in and tensor out. "÷ plain" is the fast
  path's time per spectrum over the plain chain's: the cost of everything around the GEMMs
  (array → tensor, dispatch, the float64 output). A second variant, "plain + numpy I/O"
  (``torch.from_numpy`` in, ``.double().numpy()`` out), shows how much of that is the
  conversions that ``predict``'s signature requires.
* Speed-up over the exact predictors of the foundation code, built from the same MC pairs
  (``mc.n_pairs`` of ``conf/predict.yaml``), binning (400 bins, 0.8–8.8 MeV prompt energy),
  exposure, oscillation settings (the config's, matter effects included if on) and parameter
  points: the event-reweighting predictor (``ReweightPredictor``, single; "× reweight") and the
  response-matrix predictor (``ResponseMatrixPredictor``; "× matrix": single against single,
  batched against batched). The matrix predictor splits batches into chunks of 512, so its
  batched rate does not depend on B beyond one chunk; it is timed at B = 1,024 (512 quick).
* Three architectures, untrained (timing does not depend on the weights): seed_mlp
  (4 → 400 → 400 → 400, ReLU, 322,800 parameters; ``FastSurrogate`` folds the input and output
  scalings into the first and last layers), resmlp and pca_mlp (not plain Sequential MLPs:
  ``FastSurrogate`` calls the whole module, scalers included). The surrogate spec is built from
  the same config as the exact predictors (sampling ranges, bin edges, exposure).
* The issue's targets, printed next to the seed_mlp figures: single ≤ 40 µs and batched
  ≥ 150,000 spectra/s, on a 2-core CPU (the usable CPU count is printed in the header).
* Agreement, so that the ratios compare like with like: the fast path against the module
  (every architecture) and against the plain chain with the scalings applied outside
  (seed_mlp), on 256 points. The output scaler gets a non-trivial per-bin mean and std first,
  so that a wrong fold would show.

Two thread pools, one pair of cores: numpy's OpenBLAS threads (the exact predictors) spin
for ~0.1 s after each call, and a 2-thread torch call started in that window shares a core
with them (B = 4,096 took 2× longer here). The exact-predictor jobs therefore pause 0.2 s,
untimed, after each call (``_timing.Job.settle_s``). Likewise one busy neighbour process makes
a batched torch call take up to ~5× longer (bimodal timings, a wide min–max): the script
prints the CPU time other processes took while it measured (from ``/proc/stat``) and flags
the figures when that exceeds 5 % of the CPUs.

Method: as ``bench_predictors.py`` (``_timing.measure``): ``time.perf_counter``; every
measurement is warmed up once, then its repeats are taken round-robin with all the others
(so a slow phase of a shared machine hits surrogate and baselines alike) and the median is
reported, min–max spread alongside. Parameter points are drawn uniformly from the sampling
ranges (seeded). ``--quick`` takes fewer repeats, times resmlp and pca_mlp at B = 4,096 only
and does not warm the 65,536 batch up separately (the 4,096 one runs the same code).

Run from the repository root::

    .venv/bin/python benchmarks/bench_surrogate.py            # ~1 min on 2 cores
    .venv/bin/python benchmarks/bench_surrogate.py --quick    # ~16 s, fewer repeats

The last line printed is a single JSON object with every figure (for scripts and logs).

Threads: torch's intra-op thread count (``torch.get_num_threads()``: by default one per
usable core, or ``OMP_NUM_THREADS``) is printed in the header, next to the BLAS thread
variables that the exact predictors' numpy follows. ``--torch-threads N`` sets torch's alone
(surrogates and plain chains; the exact predictors keep theirs). The batched figures scale
with it (about 2× from 1 to 2 threads here); the batch-1 latency did not change. Compare::

    .venv/bin/python benchmarks/bench_surrogate.py --quick --torch-threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from _timing import (
    Job,
    Timing,
    cpu_snapshot,
    describe_threads,
    environment,
    fmt_rate,
    measure,
    others_cpu,
    warn_if_loaded,
)
from oscflow.config import bin_edges, load
from oscflow.experiments import load_experiment
from oscflow.physics.oscillation_models import get as oscillation_model

OSCILLATION_PARAMETERS = oscillation_model("three_flavour").parameters

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "seed_mlp": {"hidden": [400, 400], "activation": "relu"},
    "resmlp": {"width": 256, "depth": 3, "activation": "silu", "expansion": 2},
    "pca_mlp": {"hidden": [256, 256], "activation": "silu", "components": 32},
}
PLAIN_OF = "seed_mlp"  # the architecture that the plain GEMM chain reproduces
TARGET_SINGLE_S = 40e-6  # the targets for seed_mlp on a 2-core CPU
TARGET_BATCHED_PER_S = 150_000
AGREEMENT_POINTS = 256
BLAS_SETTLE_S = 0.2  # untimed pause after each exact-predictor call (see _timing.Job)


@dataclass(frozen=True)
class Plan:
    """How much work each measurement does."""

    single_calls: int  # batch-1 predict calls per repeat (surrogates and plain chains)
    single_repeats: int
    batch_sizes: tuple[int, ...]  # seed_mlp and the plain chains
    other_batch_sizes: tuple[int, ...]  # resmlp, pca_mlp (resmlp: ~3 s a call at 65,536)
    batch_repeats: int
    warm_largest: bool  # warm up the largest batch too (the smaller ones run the same code)
    matrix_single_calls: int
    matrix_batch: int
    exact_repeats: int  # reweight single and matrix batched (~1 s a call each)


FULL = Plan(
    single_calls=1000,
    single_repeats=9,
    batch_sizes=(4096, 65536),
    other_batch_sizes=(4096, 65536),
    batch_repeats=7,
    warm_largest=True,
    matrix_single_calls=50,
    matrix_batch=1024,
    exact_repeats=5,
)
QUICK = Plan(
    single_calls=300,
    single_repeats=5,
    batch_sizes=(4096, 65536),
    other_batch_sizes=(4096,),
    batch_repeats=3,
    warm_largest=False,
    matrix_single_calls=20,
    matrix_batch=512,
    exact_repeats=2,
)


def loop(fn: Callable[[Any], Any], args: Sequence[Any]) -> Callable[[], None]:
    """A closure calling ``fn`` once on each of ``args`` (prepared outside the timing)."""

    def run() -> None:
        for a in args:
            fn(a)

    return run


def plain_chain(net: Any) -> Callable[[Any], Any]:
    """seed_mlp's layers as a bare ``addmm``/``relu`` chain on detached float32 tensors."""
    import torch
    from torch import nn

    modules = list(net)
    linears = [m for m in modules if isinstance(m, nn.Linear)]
    acts = [m for m in modules if not isinstance(m, nn.Linear)]
    if not (
        isinstance(net, nn.Sequential)
        and len(modules) == 2 * len(linears) - 1
        and all(isinstance(m, nn.ReLU) for m in acts)
    ):
        msg = f"{PLAIN_OF} is no longer a Sequential of Linear and ReLU layers: {net}"
        raise TypeError(msg)
    *hidden, (w_out, b_out) = [(m.weight.detach().t(), m.bias.detach()) for m in linears]

    def run(x: torch.Tensor) -> torch.Tensor:
        for w, b in hidden:
            x = torch.relu(torch.addmm(b, x, w))
        return torch.addmm(b_out, x, w_out)

    return run


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (~20 s)")
    parser.add_argument("--seed", type=int, default=1, help="MC, weight and point seed")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    t_start = time.perf_counter()

    import torch

    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)

    from oscflow.surrogate.model import FastSurrogate, SpectrumSurrogate, SurrogateSpec

    # ---- exact predictors (foundation code), as in bench_predictors.py -----------------
    cfg = load("predict")
    exp = load_experiment(cfg.experiment)
    edges = bin_edges(cfg.binning)
    days, efficiency = float(cfg.exposure.days), float(cfg.exposure.efficiency)
    exposure = exp.exposure(days, efficiency)
    n_pairs = int(cfg.mc.n_pairs)
    matter = bool(cfg.experiment.oscillation.matter)
    env = environment()
    env["torch"] = {
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
    }
    print(
        f"oscflow surrogate benchmark ({'quick' if args.quick else 'full'}): "
        f"{len(edges) - 1} bins [{edges[0]:g}, {edges[-1]:g}] MeV; exact predictors from "
        f"{n_pairs:,} MC pairs, {'matter' if matter else 'vacuum'} oscillations; "
        f"oscflow {env['revision']}, python {env['python']}, numpy {env['numpy']}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"{env['cpus_usable']} usable CPUs, BLAS threads " + describe_threads(env)
    )
    warn_if_loaded(env)
    build: dict[str, float] = {}
    t0 = time.perf_counter()
    pairs = exp.simulate_pairs(n_pairs, seed=args.seed)
    build["mc_pairs"] = time.perf_counter() - t0
    exact: dict[str, Any] = {}
    for method in ("reweight", "matrix"):
        t0 = time.perf_counter()
        exact[method] = exp.predictor(edges, "prompt", method, pairs)
        build[method] = time.perf_counter() - t0

    # ---- parameter points: the same for every measurement -----------------------------
    ranges = tuple(
        (float(lo), float(hi))
        for lo, hi in (exp.parameters[k].sampling_range for k in OSCILLATION_PARAMETERS)
    )
    n_points = max(*plan.batch_sizes, plan.single_calls, plan.matrix_batch, AGREEMENT_POINTS)
    rng = np.random.default_rng(args.seed)
    lo, hi = np.array(ranges).T
    points = rng.uniform(lo, hi, size=(n_points, len(ranges)))
    x32 = points.astype(np.float32)

    def named(start: int, size: int) -> dict[str, np.ndarray]:
        return {k: points[start : start + size, j] for j, k in enumerate(OSCILLATION_PARAMETERS)}

    rows = [x32[i : i + 1] for i in range(plan.single_calls)]

    # ---- surrogates -------------------------------------------------------------------
    torch.manual_seed(args.seed)
    models: dict[str, Any] = {}
    fast: dict[str, Any] = {}
    n_params: dict[str, int] = {}
    agreement: dict[str, float] = {}
    probe = x32[:AGREEMENT_POINTS]
    for arch, options in ARCHITECTURES.items():
        spec = SurrogateSpec(
            experiment=str(cfg.experiment.name),
            inputs=OSCILLATION_PARAMETERS,
            ranges=ranges,
            bin_edges=tuple(float(e) for e in edges),
            energy="prompt",
            exposure={
                "days": days,
                "efficiency": efficiency,
                "free_protons": float(cfg.experiment.free_protons),
            },
            architecture=arch,
            options=options,
            output_transform="standard",
        )
        model = SpectrumSurrogate(spec).eval()
        n_params[arch] = model.n_parameters()
        n_out = spec.n_out
        with torch.no_grad():  # a trained model's scaler is far from the identity
            model.output_scaler.mean.copy_(torch.from_numpy(rng.uniform(1e2, 1e4, n_out)))
            model.output_scaler.std.copy_(torch.from_numpy(rng.uniform(1.0, 1e2, n_out)))
        models[arch] = model
        fast[arch] = FastSurrogate(model)
        got = fast[arch].predict(probe)
        with torch.no_grad():
            agreement[f"{arch} fast vs module"] = rel_diff(
                got, model(torch.from_numpy(probe)).double().numpy()
            )
    plain = plain_chain(models[PLAIN_OF].net)
    with torch.no_grad():
        scaled = models[PLAIN_OF].input_scaler(torch.from_numpy(probe))
        ref = models[PLAIN_OF].output_scaler.inverse(plain(scaled)).double().numpy()
    agreement[f"{PLAIN_OF} fast vs plain chain"] = rel_diff(fast[PLAIN_OF].predict(probe), ref)

    def plain_io(x: np.ndarray) -> np.ndarray:
        return plain(torch.from_numpy(x)).double().numpy()

    # ---- jobs, all timed round-robin together ----------------------------------------
    jobs: dict[str, Job] = {}

    largest = max(*plan.batch_sizes, *plan.other_batch_sizes)

    def add_family(
        name: str,
        fn: Callable[[Any], Any],
        to_input: Callable[[np.ndarray], Any],
        batch_sizes: tuple[int, ...],
    ) -> None:
        """Single and batched jobs of ``fn``; inputs prepared by ``to_input`` beforehand."""
        jobs[f"{name}/single"] = Job(
            loop(fn, [to_input(r) for r in rows]),
            plan.single_calls,
            plan.single_repeats,
            calls=plan.single_calls,
        )
        for b in batch_sizes:
            jobs[f"{name}/batch{b}"] = Job(
                loop(fn, [to_input(x32[:b])]),
                b,
                plan.batch_repeats,
                warmup=plan.warm_largest or b < largest,
            )

    for arch in ARCHITECTURES:
        sizes = plan.batch_sizes if arch == PLAIN_OF else plan.other_batch_sizes
        add_family(arch, fast[arch].predict, np.asarray, sizes)
    add_family("plain", plain, torch.from_numpy, plan.batch_sizes)
    add_family("plain_io", plain_io, np.asarray, plan.batch_sizes)
    jobs["reweight/single"] = Job(
        lambda: exact["reweight"].predict(named(0, 1), exposure),
        1,
        plan.exact_repeats,
        settle_s=BLAS_SETTLE_S,
    )
    jobs["matrix/single"] = Job(
        loop(
            lambda i: exact["matrix"].predict(named(i, 1), exposure),
            range(plan.matrix_single_calls),
        ),
        plan.matrix_single_calls,
        plan.exact_repeats,
        calls=plan.matrix_single_calls,
        settle_s=BLAS_SETTLE_S,
    )
    matrix_batch = named(0, plan.matrix_batch)
    jobs[f"matrix/batch{plan.matrix_batch}"] = Job(
        lambda: exact["matrix"].predict(matrix_batch, exposure),
        plan.matrix_batch,
        plan.exact_repeats,
        settle_s=BLAS_SETTLE_S,
    )
    t_measure, cpu_start = time.perf_counter(), cpu_snapshot()
    timings = measure(jobs)
    t_measure, cpu_end = time.perf_counter() - t_measure, cpu_snapshot()
    others_s = others_cpu(cpu_start, cpu_end)
    n_cpus = int(env["cpus_usable"] or 1)
    others_share = None if others_s is None else others_s / (t_measure * n_cpus)

    # ---- ratios ----------------------------------------------------------------------
    def per_spectrum(t: Timing) -> float:
        return t.median / t.items

    reweight_rate = timings["reweight/single"].rate
    matrix_rate = {
        "single": timings["matrix/single"].rate,
        "batched": timings[f"matrix/batch{plan.matrix_batch}"].rate,
    }
    over_plain: dict[str, float] = {}
    speedup_matrix: dict[str, float] = {}
    speedup_reweight: dict[str, float] = {}
    targets: dict[str, bool] = {}
    for key, t in timings.items():
        name, mode = key.split("/")
        if name in ("reweight", "matrix"):
            continue
        if name in (PLAIN_OF, "plain_io"):
            over_plain[key] = per_spectrum(t) / per_spectrum(timings[f"plain/{mode}"])
        kind = "single" if mode == "single" else "batched"
        speedup_matrix[key] = t.rate / matrix_rate[kind]
        speedup_reweight[key] = t.rate / reweight_rate
        if name == PLAIN_OF:
            targets[key] = (
                t.per_call <= TARGET_SINGLE_S
                if mode == "single"
                else t.rate >= TARGET_BATCHED_PER_S
            )

    # ---- table -----------------------------------------------------------------------
    labels = {
        **{a: f"FastSurrogate {a}" for a in ARCHITECTURES},
        "plain": f"plain chain ({PLAIN_OF}) [BASE]",
        "plain_io": "plain + numpy I/O",
        "reweight": "exact reweight [BASE]",
        "matrix": "exact matrix [BASE]",
    }
    header = (
        f"{'measurement':<32} {'batch':>6} {'calls×reps':>10} {'µs/spectrum':>11} "
        f"{'spectra/s, median (min–max)':>34} {'÷ plain':>7} {'× matrix':>9} "
        f"{'× reweight':>10}  target"
    )
    print()
    print(header)
    print("-" * len(header))
    for key, t in timings.items():
        name, mode = key.split("/")
        b = 1 if mode == "single" else int(mode.removeprefix("batch"))
        lo_rate, hi_rate = t.rate_range
        per_s = f"{fmt_rate(t.rate)} ({fmt_rate(lo_rate)}–{fmt_rate(hi_rate)})"
        target = ""
        if key in targets:
            bound = (
                f"≤ {TARGET_SINGLE_S * 1e6:.0f} µs"
                if mode == "single"
                else f"≥ {TARGET_BATCHED_PER_S:,}/s"
            )
            target = f"{bound}: {'met' if targets[key] else 'NOT met'}"
        ratio = over_plain.get(key)
        sm, sr = speedup_matrix.get(key), speedup_reweight.get(key)
        print(
            f"{labels[name]:<32} {b:>6,} {f'{t.calls}×{len(t.seconds)}':>10} "
            f"{per_spectrum(t) * 1e6:>11.2f} {per_s:>34} "
            f"{'' if ratio is None else f'{ratio:.2f}':>7} "
            f"{'' if sm is None else f'{sm:,.0f}':>9} "
            f"{'' if sr is None else f'{sr:,.0f}':>10}  {target}"
        )
    print()
    single = timings[f"{PLAIN_OF}/single"]
    print(
        f"{PLAIN_OF} single: {single.per_call * 1e6:.1f} µs per spectrum = "
        f"{over_plain[f'{PLAIN_OF}/single']:.2f} × the plain chain's "
        f"({timings['plain/single'].per_call * 1e6:.1f} µs; with numpy I/O "
        f"{timings['plain_io/single'].per_call * 1e6:.1f} µs); "
        f"{speedup_reweight[f'{PLAIN_OF}/single']:,.0f} × faster than exact reweight"
    )
    for b in plan.batch_sizes:
        key = f"{PLAIN_OF}/batch{b}"
        print(
            f"{PLAIN_OF} batch {b:,}: {fmt_rate(timings[key].rate)} spectra/s, time "
            f"{over_plain[key]:.2f} × the plain chain's (with numpy I/O "
            f"{over_plain[f'plain_io/batch{b}']:.2f} ×); "
            f"{speedup_matrix[key]:,.0f} × faster than exact matrix (batched)"
        )
    print(
        f"parameters: {', '.join(f'{a} {n:,}' for a, n in n_params.items())}; "
        f"folded (plain Sequential + standard outputs): {PLAIN_OF} only"
    )
    print("set-up (one-off, s): " + ", ".join(f"{k} {v:.2f}" for k, v in build.items()))
    print(
        f"agreement on {AGREEMENT_POINTS} points, max |Δ| / max |y|: "
        + ", ".join(f"{k} {v:.1e}" for k, v in agreement.items())
    )
    if others_s is not None and others_share is not None:
        print(
            f"other processes used {others_s:.1f} CPU-s during the {t_measure:.0f} s of timing "
            f"({others_share:.0%} of {n_cpus} CPUs)"
            + (
                ": the figures are CONTAMINATED, threads wait on descheduled siblings; "
                "re-run on a quiet machine"
                if others_share > 0.05
                else ""
            )
        )
    elapsed = time.perf_counter() - t_start
    print(f"total wall time {elapsed:.1f} s")

    # ---- JSON ------------------------------------------------------------------------
    def entry(t: Timing) -> dict[str, Any]:
        return {
            "per_s": round(t.rate, 3),
            "s_per_spectrum": float(f"{per_spectrum(t):.4g}"),
            "median_s": round(t.median, 6),
            "items_per_repeat": t.items,
            "calls_per_repeat": t.calls,
            "repeats": len(t.seconds),
        }

    figures: dict[str, Any] = {
        "benchmark": "bench_surrogate",
        "mode": "quick" if args.quick else "full",
        "n_bins": len(edges) - 1,
        "n_pairs": n_pairs,
        "matter": matter,
        "n_parameters": n_params,
        "spectra_per_s": {k: entry(t) for k, t in timings.items()},
        "ratio_time_over_plain": {k: round(v, 3) for k, v in over_plain.items()},
        "speedup_over_matrix": {k: round(v, 1) for k, v in speedup_matrix.items()},
        "speedup_over_reweight": {k: round(v, 1) for k, v in speedup_reweight.items()},
        "targets": {
            "single_s_max": TARGET_SINGLE_S,
            "batched_per_s_min": TARGET_BATCHED_PER_S,
            "met": targets,
        },
        "agreement_rel": agreement,
        "build_s": {k: round(v, 3) for k, v in build.items()},
        "environment": env,
        "others_cpu_s": None if others_s is None else round(others_s, 2),
        "others_cpu_share": None if others_share is None else round(others_share, 4),
        "wall_s": round(elapsed, 1),
    }
    print(json.dumps(figures, sort_keys=True))
    return figures


if __name__ == "__main__":
    main()
