"""Throughput of the ``spectra`` dataset build on Dask (figures only, no pass/fail).

What it measures, all on one machine in one run, on one JUNO dataset (the demo's sampling and
binning: four oscillation inputs, 400 prompt-energy bins, the response-matrix predictor):

* The BASELINE: the build in this process (``data.spectra.workers=1``), spectra per second of
  the whole ``oscflow spectra`` job (sampling, predictor build, every chunk, the atomic
  publish), the same quantity as every other figure.
* The build through a Dask scheduler with 1 and with 2 worker processes (a ``LocalCluster``
  started untimed before each build, as oscflow starts its own, and given as
  ``data.spectra.scheduler``): spectra per second, and the ratio to the baseline. Each build gets fresh workers, so each includes
  the workers' predictor builds, as a first build on a cluster does.
* The build as users run it by default on this machine (``data.spectra.workers=2``: oscflow
  starts and stops the local cluster itself): spectra per second including the cluster's
  start-up, and the ratio.
* The CPU seconds each build used (this process and its worker processes, start-up of a
  pre-started cluster excluded) and the spectra per CPU second: on a machine whose cores are
  shared with busy neighbours the wall-clock ratios say little, while the CPU figures still
  give Dask's overhead per spectrum.
* Every build's arrays are compared byte for byte with the baseline's (``identical``).

Method: ``time.perf_counter`` around ``oscflow.data.spectra.run``; the configurations are
repeated round-robin (a slow phase of a shared machine hits all of them) and the median is
reported with the min–max spread. The MC pairs are simulated once, untimed.

Run from the repository root::

    .venv/bin/python benchmarks/bench_dask_build.py            # ~3 min on 2 cores
    .venv/bin/python benchmarks/bench_dask_build.py --quick    # ~1 min, smaller and once

The last line printed is a single JSON object with every figure. Worker processes run one
BLAS thread each (Dask's default for its worker processes); the baseline runs with this
process's BLAS threads, echoed in the header: to compare one core with one worker, pin them::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_dask_build.py
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from _timing import cpu_snapshot, describe_threads, environment, fmt_rate, others_cpu
from oscflow.config import load
from oscflow.data import simulate, spectra
from oscflow.data.evaluate import local_cluster


@dataclass(frozen=True)
class Plan:
    n_pairs: int
    train: int  # val and test: a tenth each
    chunk: int
    repeats: int


FULL = Plan(n_pairs=1_000_000, train=10_000, chunk=500, repeats=3)
QUICK = Plan(n_pairs=200_000, train=2_500, chunk=250, repeats=1)


def overrides(root: Path, plan: Plan) -> list[str]:
    return [
        f"paths.root_dir={root}",
        f"data.simulate.n_pairs={plan.n_pairs}",
        f"data.spectra.splits.train={plan.train}",
        f"data.spectra.splits.val={plan.train // 10}",
        f"data.spectra.splits.test={plan.train // 10}",
        f"data.spectra.chunk={plan.chunk}",
    ]


def own_cpu() -> float:
    """CPU seconds of this process, its live descendants and its reaped children."""
    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            c = child.cpu_times()
            total += c.user + c.system
    return total


def arrays(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.npy"))}


def on_cluster(n_workers: int) -> Callable[[list[str]], tuple[list[str], Any]]:
    """A fresh LocalCluster of ``n_workers`` (started untimed) for one build."""

    def start(base: list[str]) -> tuple[list[str], Any]:
        cluster = local_cluster(n_workers, dashboard_address="127.0.0.1:0")
        return [*base, f"data.spectra.scheduler={cluster.scheduler_address}"], cluster

    return start


def plain(extra: list[str]) -> Callable[[list[str]], tuple[list[str], Any]]:
    return lambda base: ([*base, *extra], None)


CONFIGS: dict[str, Callable[[list[str]], tuple[list[str], Any]]] = {
    "in_process": plain(["data.spectra.workers=1"]),  # the baseline
    "dask_1_worker": on_cluster(1),
    "dask_2_workers": on_cluster(2),
    "local_cluster_2_workers_with_startup": plain(["data.spectra.workers=2"]),
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller dataset, built once")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    env = environment()
    n_spectra = plan.train + 2 * (plan.train // 10)
    print(
        f"oscflow Dask dataset-build benchmark ({'quick' if args.quick else 'full'}): "
        f"{n_spectra:,} spectra in chunks of {plan.chunk}, {plan.n_pairs:,} MC pairs; "
        f"oscflow {env['revision']}, {env['cpus_usable']} usable CPUs, "
        f"BLAS threads {describe_threads(env)}, 1-min load {env['loadavg_1min_at_start']}"
    )
    seconds: dict[str, list[float]] = {name: [] for name in CONFIGS}
    cpu: dict[str, list[float]] = {name: [] for name in CONFIGS}
    identical: dict[str, bool] = {}
    t_start = time.perf_counter()
    cpu0 = cpu_snapshot()
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        root = Path(tmp)
        base = overrides(root, plan)
        quiet = io.StringIO()  # the builds' progress lines
        with contextlib.redirect_stderr(quiet):
            simulate.run(load("simulate", base))
        out = root / "data/juno/demo/spectra"
        reference: dict[str, bytes] = {}
        for _ in range(plan.repeats):
            for name, setup in CONFIGS.items():
                cfg_overrides, cluster = setup(base)
                try:
                    cfg = load("spectra", cfg_overrides)
                    with contextlib.redirect_stderr(quiet):
                        c0, t0 = own_cpu(), time.perf_counter()
                        spectra.run(cfg)
                        seconds[name].append(time.perf_counter() - t0)
                        cpu[name].append(own_cpu() - c0)
                finally:
                    if cluster is not None:
                        cluster.close()
                got = arrays(out)
                reference = reference or got
                identical[name] = identical.get(name, True) and got == reference
    cpu1 = cpu_snapshot()

    base_rate = n_spectra / statistics.median(seconds["in_process"])
    base_cpu_rate = n_spectra / statistics.median(cpu["in_process"])
    figures: dict[str, Any] = {}
    for name, secs in seconds.items():
        rate = n_spectra / statistics.median(secs)
        figures[name] = {
            "spectra_per_s": round(rate, 1),
            "spectra_per_s_range": [
                round(n_spectra / max(secs), 1),
                round(n_spectra / min(secs), 1),
            ],
            "seconds": [round(s, 2) for s in secs],
            "ratio_to_in_process": round(rate / base_rate, 2),
            "cpu_s": [round(s, 2) for s in cpu[name]],
            "spectra_per_cpu_s": round(n_spectra / statistics.median(cpu[name]), 1),
            "cpu_ratio_to_in_process": round(
                n_spectra / statistics.median(cpu[name]) / base_cpu_rate, 2
            ),
            "identical_to_in_process": identical[name],
        }
        print(
            f"  {name:38s} {fmt_rate(rate):>8s} spectra/s "
            f"({fmt_rate(n_spectra / max(secs))}–{fmt_rate(n_spectra / min(secs))}), "
            f"{rate / base_rate:4.2f}× in-process; "
            f"{fmt_rate(figures[name]['spectra_per_cpu_s'])} spectra/CPU-s "
            f"({figures[name]['cpu_ratio_to_in_process']:4.2f}×); identical: {identical[name]}"
        )
    others = others_cpu(cpu0, cpu1)
    wall = time.perf_counter() - t_start
    if others is not None:
        print(f"  other processes used {others:.0f} CPU s during the {wall:.0f} s run")
    result = {
        "benchmark": "dask_dataset_build",
        "mode": "quick" if args.quick else "full",
        "environment": env,
        "spectra": n_spectra,
        "chunk": plan.chunk,
        "n_pairs": plan.n_pairs,
        "repeats": plan.repeats,
        "baseline": "in_process",
        "builds": figures,
        "others_cpu_s": None if others is None else round(others, 1),
        "wall_s": round(wall, 1),
    }
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
