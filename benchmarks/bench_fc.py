"""Time of the exact Feldman–Cousins construction (figures only, no pass/fail).

What it measures (``oscflow.stats.feldman_cousins``, 90 % CL):

* the FC sensitivity (mean upper limit over background-only experiments, FC Table XII) for
  b = 0, 0.5, …, 4, 5, …, 15 — one call per b, with the b-monotonicity correction (the
  upper limits of every count n with non-negligible Poisson(b) probability, each maximised
  over backgrounds b' in [b, b + 1]);
* the same for b = 10³ with the exact construction, without the correction (the default
  above b = 100, where it changes the mean by < 0.05 %), with the default stride over counts
  (limits at every k-th count, k = ⌊√b/10⌋ = 3, interpolated) and with every count;
* one FC interval (n0 = 10, b = 3) with the correction, as the unit cost.

Each figure is the median of the repeats (min–max alongside), after one untimed warm-up;
repeats are taken round-robin across the measurements (``_timing.measure``). The values are
printed with the times, so a figure always says what it computed (Table XII: 2.44 … 7.99).

Run from the repository root::

    .venv/bin/python benchmarks/bench_fc.py            # ~3 min on 2 cores
    .venv/bin/python benchmarks/bench_fc.py --quick    # ~1 min, one repeat

The last line printed is a single JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _timing import Job, describe_threads, environment, measure, warn_if_loaded
from oscflow.stats import feldman_cousins as fc

TABLE_XII_B = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, *range(5, 16))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer b values")
    args = parser.parse_args()
    repeats = 1 if args.quick else 3
    env = environment()
    print(f"bench_fc: revision {env['revision']}, numpy {env['numpy']}, "
          f"{env['cpus_usable']} CPUs, BLAS threads: {describe_threads(env)}")  # fmt: skip
    warn_if_loaded(env)
    b_values = TABLE_XII_B[::3] if args.quick else TABLE_XII_B
    values: dict[str, float] = {}

    def sens(b: float, **kw: object) -> None:
        values[f"b={b:g}{'/' + ','.join(kw) if kw else ''}"] = fc.sensitivity(b, **kw)

    jobs = {f"sensitivity b={b:g}": Job(lambda b=b: sens(float(b)), 1, repeats) for b in b_values}
    jobs["interval n0=10 b=3"] = Job(lambda: fc.interval(10, 3.0), 1, repeats)
    jobs["sensitivity b=1000 (stride 3)"] = Job(lambda: sens(1000.0), 1, repeats)

    def full_1000() -> None:
        saved = fc.STRIDE_FROM_B
        fc.STRIDE_FROM_B = np.inf
        try:
            values["b=1000/every count"] = fc.sensitivity(1000.0)
        finally:
            fc.STRIDE_FROM_B = saved

    jobs["sensitivity b=1000 (every count)"] = Job(full_1000, 1, repeats)
    t0 = time.perf_counter()
    timings = measure(jobs)
    total_s = time.perf_counter() - t0
    print(f"{'measurement':<36}{'median s':>10}{'min–max s':>18}   value")
    labels = [*[f"b={b:g}" for b in b_values], None, "b=1000", "b=1000/every count"]
    keys = dict(zip(jobs, labels, strict=True))
    for name, t in timings.items():
        key = keys.get(name)
        value = f"{values[key]:.4f}" if key in values else ""
        print(f"{name:<36}{t.median:>10.3f}{min(t.seconds):>9.3f}–{max(t.seconds):<8.3f}  {value}")
    table_total = sum(timings[f"sensitivity b={b:g}"].median for b in b_values)
    print(f"FC sensitivity for all {len(b_values)} b values: {table_total:.1f} s (sum of medians)")
    print(json.dumps({
        "environment": env,
        "repeats": repeats,
        "seconds": {k: t.median for k, t in timings.items()},
        "seconds_range": {k: [min(t.seconds), max(t.seconds)] for k, t in timings.items()},
        "values": values,
        "table_xii_total_s": table_total,
        "wall_s": total_s,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
