"""Timing helpers shared by the benchmark scripts in this folder (not a benchmark itself).

``measure`` warms jobs up and times their repeats round-robin; ``Timing`` holds the result
(median and spread); ``environment`` records what the figures were measured on. The scripts
are run as files (``python benchmarks/bench_*.py``), which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Median and spread of repeated timings; each repeat makes ``calls`` calls that do
    ``items`` units of work (pairs or spectra) in all."""

    items: int
    seconds: tuple[float, ...]
    calls: int = 1

    @property
    def median(self) -> float:
        """Median seconds per repeat."""
        return statistics.median(self.seconds)

    @property
    def per_call(self) -> float:
        """Median seconds per call."""
        return self.median / self.calls

    @property
    def rate(self) -> float:
        """Units of work per second at the median time."""
        return self.items / self.median

    @property
    def rate_range(self) -> tuple[float, float]:
        return self.items / max(self.seconds), self.items / min(self.seconds)


@dataclass(frozen=True)
class Job:
    """One measurement: ``fn`` does ``items`` units of work in ``calls`` calls.

    ``settle_s``: an untimed pause after each call of ``fn``. numpy's OpenBLAS threads spin
    for ~0.1 s after a call; on a 2-core machine the next job's own threads (torch's) then
    share a core with them, and a batched torch call takes ~2× longer.
    """

    fn: Callable[[], Any]
    items: int
    repeats: int
    calls: int = 1
    warmup: bool = True
    settle_s: float = 0.0


def measure(jobs: Mapping[str, Job]) -> dict[str, Timing]:
    """Warm every job up once, then time the repeats round-robin across the jobs.

    Interleaving spreads slow phases of a shared machine over all measurements instead of
    letting them land on one, so that ratios between measurements stay meaningful.
    """
    for job in jobs.values():
        if job.warmup:
            job.fn()
            if job.settle_s:
                time.sleep(job.settle_s)
    seconds: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(max(job.repeats for job in jobs.values())):
        for name, job in jobs.items():
            if r < job.repeats:
                t0 = time.perf_counter()
                job.fn()
                seconds[name].append(time.perf_counter() - t0)
                if job.settle_s:
                    time.sleep(job.settle_s)
    return {
        name: Timing(items=job.items, seconds=tuple(seconds[name]), calls=job.calls)
        for name, job in jobs.items()
    }


def source_revision() -> str:
    """Git commit of the checkout, with "+dirty" when src/ has uncommitted changes: the
    predictors change under active development, so every figure says what it measured."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--", "src") else "")


def environment() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    threads = {
        k: os.environ[k]
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        if k in os.environ
    }
    return {
        "revision": source_revision(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus_usable": affinity,
        "thread_env": threads,
        "loadavg_1min_at_start": round(os.getloadavg()[0], 2),
    }


def fmt_rate(x: float) -> str:
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def cpu_snapshot() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process) now, or None
    where ``/proc/stat`` is missing. Two snapshots give the CPU time that OTHER processes
    (and the hypervisor, as steal time) took while a measurement ran: see ``others_cpu``."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy, own.user + own.system


def others_cpu(start: tuple[float, float] | None, end: tuple[float, float] | None) -> float | None:
    """CPU seconds used by other processes between two ``cpu_snapshot``s (≥ 0; None if
    unknown). On a machine with few cores even one busy neighbour skews multi-threaded
    timings (threads wait on a descheduled sibling), so the benchmarks print this."""
    if start is None or end is None:
        return None
    return max(0.0, (end[0] - start[0]) - (end[1] - start[1]))


def describe_threads(env: Mapping[str, Any]) -> str:
    """The BLAS thread settings of ``environment()``, for the benchmark headers."""
    return ", ".join(f"{k}={v}" for k, v in env["thread_env"].items()) or "default"


def warn_if_loaded(env: Mapping[str, Any], hint: str = "") -> None:
    """Print a note when the machine was busy as the benchmark started."""
    if env["loadavg_1min_at_start"] > 0.5:
        print(
            f"note: 1-min load average {env['loadavg_1min_at_start']:.1f} at start: "
            f"other processes may share the CPUs{hint}"
        )
