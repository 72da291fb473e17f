"""Exact spectra at many parameter points: chunked, on ``dask.distributed``, checkpointed.

A truth model can be slow (Daya Bay's official model: ~25 ms per point), so the ``spectra``
stage evaluates chunks of points on a Dask cluster: a ``LocalCluster`` of worker processes on
this machine (one thread each), or an existing scheduler (``data.spectra.scheduler``, else
``$DASK_SCHEDULER_ADDRESS``) with workers anywhere that can import this oscflow and read the MC
pairs at the same absolute path. Each worker process builds the predictor once per build (a
cache keyed by the spec, which is plain data) and keeps it for the next chunks. The main
process writes each returned chunk into the memory-mapped output and records it in
``<split>.done.json`` after the rows are flushed, so a rerun skips recorded chunks whichever
worker computed them. Chunks are pure functions of their points: a chunk that a dead worker
was computing is rescheduled by Dask on another one and gives the same rows.

``workers`` = 1 without a scheduler evaluates in this process (tests, tiny builds).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np
from numpy.typing import NDArray

from ..errors import ClusterError, ConfigError
from ..progress import console
from .io import write_json

# Seconds to reach a given scheduler (and for it to have a worker) before the build is refused.
CONNECT_TIMEOUT_S = 10.0
# ``workers: null``: one local worker per core, but none (this process) for a build of fewer
# spectra than LOCAL_MAX_SPECTRA, and at most one per CHUNKS_PER_WORKER chunks: a cluster costs
# seconds to start and each worker a predictor build, which a small build does not repay
# (JUNO's matrix predictor: ~4 CPU s for 2 000 spectra in one process).
LOCAL_MAX_SPECTRA = 2000
CHUNKS_PER_WORKER = 2
# Chunks in flight per worker thread: enough to keep every worker busy, few enough that the
# scheduler does not hold a whole split's points and a killed build loses little.
IN_FLIGHT_PER_THREAD = 2
# A build on a cluster without any worker fails after this long (polling every POLL_S): with
# an external scheduler nothing restarts dead workers, and waiting forever helps nobody.
NO_WORKERS_S = 60.0
POLL_S = 1.0
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"

# Per worker process: the predictor of the current build (one entry), and a lock that makes
# the build and each evaluation exclusive (a worker started with several threads would else
# share a predictor that is not thread-safe, e.g. the Daya Bay official model's graph).
_CACHE: dict[str, Predict] = {}
_LOCK = threading.Lock()


class Predict:
    """An exact predictor at a fixed exposure: ``predict(batch)`` is the total spectrum (the sum
    of the signal groups), ``groups`` the names of those groups (meta.json's ``sources``)."""

    def __init__(self, predictor: Any, exposure: Any) -> None:
        self.predictor = predictor
        self.exposure = exposure

    @property
    def groups(self) -> list[str]:
        return list(self.predictor.groups)

    def __call__(self, batch: dict[str, Any]) -> Any:
        return sum(self.predictor.predict(batch, self.exposure).values())


def build_predictor(spec: Mapping[str, Any]) -> Predict:
    """The experiment's exact predictor described by ``spec`` (picklable: plain data)."""
    from ..experiments import load_experiment
    from .simulate import read_pairs

    experiment = load_experiment(spec["experiment"])
    pairs = read_pairs(spec["pairs"]) if spec.get("pairs") else None
    edges = np.asarray(spec["edges"], dtype=np.float64)
    predictor = experiment.predictor(edges, spec["energy"], spec["method"], pairs)
    return Predict(predictor, experiment.exposure(*spec["exposure"]))


def spec_key(spec: Mapping[str, Any]) -> str:
    """A digest of ``spec``: the worker-side cache key of its predictor."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _task(
    names: list[str],
    points: NDArray[np.float64],
    fixed: Mapping[str, float],
    predict: Callable[[dict[str, Any]], Any],
) -> Any:
    batch: dict[str, Any] = {k: points[:, j] for j, k in enumerate(names)}
    batch.update(fixed)
    return predict(batch)


def _cached(key: str, spec: Mapping[str, Any]) -> Predict:
    """This worker's predictor for ``spec`` (built on first use; callers hold ``_LOCK``)."""
    predict = _CACHE.get(key)
    if predict is None:
        _CACHE.clear()  # a long-lived worker keeps only the current build's predictor
        predict = _CACHE[key] = build_predictor(spec)
    return predict


def _remote_task(
    key: str,
    spec: Mapping[str, Any],
    names: list[str],
    points: NDArray[np.float64],
    fixed: Mapping[str, float],
) -> Any:
    """One chunk on a Dask worker, with the worker's cached predictor for ``spec``."""
    with _LOCK:
        return _task(names, points, fixed, _cached(key, spec))


def _remote_groups(key: str, spec: Mapping[str, Any]) -> list[str]:
    """The signal groups of ``spec``'s predictor, built (and cached) on a Dask worker."""
    with _LOCK:
        return _cached(key, spec).groups


class Scheduler(NamedTuple):
    """An existing Dask scheduler: its address, and the setting that named it."""

    address: str
    key: str


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0))


def plan_workers(
    workers: int | None, scheduler: Scheduler | None, spectra: int, chunks: int
) -> int:
    """How many local worker processes a build of ``spectra`` spectra in ``chunks`` chunks
    gets: ``workers`` if given, else one per usable core (see ``LOCAL_MAX_SPECTRA``); 0 with a
    scheduler (its workers are used). 1 means: in this process, no cluster."""
    if scheduler is not None:
        return 0
    if workers is not None:
        return workers
    if spectra < LOCAL_MAX_SPECTRA:
        return 1
    return max(1, min(usable_cores(), chunks // CHUNKS_PER_WORKER))


def configured_scheduler(configured: Any) -> Scheduler | None:
    """``data.spectra.scheduler``, else ``$DASK_SCHEDULER_ADDRESS`` (so that a DVC stage can be
    pointed at a cluster without changing its tracked parameters), else None."""
    key = "data.spectra.scheduler"
    if configured is None:
        configured = os.environ.get(SCHEDULER_ENV) or None
        key = f"${SCHEDULER_ENV}"
    if configured is None:
        return None
    if not isinstance(configured, str) or not configured.strip():
        raise ConfigError(
            key,
            f"{configured!r} is not a scheduler address",
            "give the address `dask scheduler` prints, e.g. tcp://10.0.0.5:8786, or null for a "
            "local cluster",
        )
    return Scheduler(configured.strip(), key)


# Dask's nannies start workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
# dynamic mmap threshold: every large numpy temporary is then a fresh mmap, and the JUNO
# matrix predictor ran 1.6× slower per chunk in a worker than in this process (measured here,
# 5.4 vs 8.7 CPU s for 3 000 spectra). Unset (None) for the workers oscflow starts.
WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def free_or_any(address: str) -> str:
    """``host:port`` if that port can be bound now, else ``host:0`` (any free port)."""
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host or "0.0.0.0", int(port)))
        except OSError:
            return f"{host}:0"
    return address


def local_cluster(n_workers: int, dashboard_address: str) -> Any:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes for spectra."""
    import dask.config
    from distributed import LocalCluster

    with dask.config.set(WORKER_ENVIRON), warnings.catch_warnings():
        # Dask warns when the dashboard port is taken (another build on this machine) and uses
        # a free one; the link printed afterwards is the one it took. Not an error; nor is the
        # socket tornado leaves unclosed after the failed bind (a ResourceWarning that failed a
        # CI run when two builds started at once). A taken port is avoided up front.
        warnings.filterwarnings("ignore", "Port .* is already in use", UserWarning)
        warnings.filterwarnings("ignore", "unclosed <socket", ResourceWarning)
        dashboard_address = free_or_any(dashboard_address)
        return LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=0,  # as the process pool before it: no per-worker limit
            # loopback (a tunnel reaches it from elsewhere); another port if that one is taken
            dashboard_address=dashboard_address,
            silence_logs=logging.ERROR,
        )


def _reach(scheduler: Scheduler) -> Any:
    """A client of ``scheduler`` with at least one worker, or a ConfigError naming the address
    and the fix (within ``CONNECT_TIMEOUT_S``)."""
    from distributed import Client

    address = scheduler.address
    fix = (
        "start a scheduler (`dask scheduler`) and workers (`dask worker <address> "
        "--nthreads 1`) where oscflow is installed and the MC pairs are readable, and give "
        "the address the scheduler prints; or set data.spectra.scheduler=null (and unset "
        f"{SCHEDULER_ENV}) to build on a local cluster"
    )
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(
            scheduler.key, f"no Dask scheduler reachable at {address} ({exc})", fix
        ) from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        client.close()
        raise ConfigError(
            scheduler.key,
            f"the Dask scheduler at {address} has no workers (waited {CONNECT_TIMEOUT_S:g} s)",
            fix,
        ) from None
    return client


class Evaluator:
    """Evaluates chunks of points in this process (``workers`` = 1 and no scheduler) or on a
    Dask cluster kept for all splits: connected on entry, so an unreachable scheduler is
    refused before the build writes anything."""

    def __init__(self, workers: int, scheduler: Scheduler | None = None) -> None:
        self.workers = workers
        self.scheduler = scheduler
        self.spec: Mapping[str, Any] = {}
        self.local: Predict | None = None
        self._client: Any = None
        self._cluster: Any = None
        self._threads = 1

    @property
    def in_process(self) -> bool:
        return self.scheduler is None and self.workers <= 1

    def __enter__(self) -> Self:
        if not self.in_process:
            try:
                self._connect()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def _connect(self) -> None:
        from distributed import Client

        if self.scheduler is None:
            self._cluster = local_cluster(self.workers, dashboard_address="127.0.0.1:8787")
            self._client = Client(self._cluster, set_as_default=False)
            where = f"local Dask cluster of {self.workers} worker processes"
        else:
            self._client = _reach(self.scheduler)
            where = f"Dask scheduler {self.scheduler.address}"
        self._threads = max(1, sum(self._client.nthreads().values()))
        console.print(
            f"spectra: {where} ({self._threads} threads), {self._dashboard()}", soft_wrap=True
        )

    def _dashboard(self) -> str:
        try:
            link = self._client.dashboard_link
        except KeyError:  # a scheduler started with --no-dashboard
            link = None
        return f"dashboard {link}" if link else "no dashboard"

    def prepare(self, spec: Mapping[str, Any], local: Predict | None = None) -> list[str]:
        """Set the predictor to evaluate: ``spec`` (plain data) for Dask workers, ``local`` (or
        one built from ``spec``) in this process. Returns its signal groups: on a cluster, one
        worker builds its predictor to say so, so a predictor that cannot be built fails here,
        before the caller writes anything (and this process never builds one)."""
        self.spec = spec
        self.local = local
        if self.in_process:
            if self.local is None:
                self.local = build_predictor(spec)
            return self.local.groups
        with self._cluster_errors(lambda: "the predictor build on a worker", None):
            groups: list[str] = self._client.submit(_remote_groups, spec_key(spec), spec).result()
        return groups

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
        if self.in_process:
            assert self.local is not None, "prepare() first"
            for s in todo:
                finish(s, _task(names, points[s : s + chunk], fixed, self.local))
            return
        self._fill_on_cluster(names, points, fixed, chunk, todo, finish, done_file)

    def _fill_on_cluster(
        self,
        names: list[str],
        points: NDArray[np.float64],
        fixed: Mapping[str, float],
        chunk: int,
        todo: list[int],
        finish: Callable[[int, Any], None],
        done_file: Path,
    ) -> None:
        key = spec_key(self.spec)
        # pure: a chunk's task key is a digest of its inputs, so a chunk that Dask reschedules
        # after a worker died is the same task, and two builds of one chunk share it.
        executor = self._client.get_executor(pure=True)
        queue = list(reversed(todo))
        running: dict[cf.Future[Any], int] = {}

        def submit() -> None:
            s = queue.pop()
            fut = executor.submit(_remote_task, key, self.spec, names, points[s : s + chunk], fixed)
            running[fut] = s

        for _ in range(min(IN_FLIGHT_PER_THREAD * self._threads, len(queue))):
            submit()
        current, idle_since = todo[0], None
        try:
            with self._cluster_errors(
                lambda: f"the chunk of rows {current}–{current + chunk - 1}", done_file
            ):
                while running:
                    finished, _ = cf.wait(running, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
                    for fut in finished:
                        current = running.pop(fut)
                        finish(current, fut.result())
                        if queue:
                            submit()
                    if finished or self._has_workers():
                        idle_since = None
                        continue
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= NO_WORKERS_S:
                        raise ClusterError(
                            f"the Dask cluster has had no workers for {NO_WORKERS_S:g} s "
                            f"({len(running)} chunks waiting); {_kept(done_file)}. Fix: start "
                            "workers (`dask worker <scheduler address> --nthreads 1`) or check "
                            "why they died (their logs, memory), then rerun the same command: "
                            "it resumes from the recorded chunks"
                        )
        finally:
            for fut in running:
                fut.cancel()

    @contextlib.contextmanager
    def _cluster_errors(self, what: Callable[[], str], done_file: Path | None) -> Iterator[None]:
        """Turn the cluster losing work (a worker killed repeatedly, the scheduler gone) into a
        ClusterError saying what was lost, what is kept and how to resume."""
        from distributed.comm import CommClosedError
        from distributed.scheduler import KilledWorker

        try:
            yield
        except (KilledWorker, cf.CancelledError, CommClosedError) as exc:
            why = str(exc) or "cancelled: the scheduler went away or cancelled it"
            resume = ": it resumes from the recorded chunks" if done_file else ""
            raise ClusterError(
                f"the Dask cluster lost {what()} ({type(exc).__name__}: {why}); "
                f"{_kept(done_file)}. Fix: check the workers and the scheduler (their logs, "
                f"memory) and rerun the same command{resume}"
            ) from exc

    def _has_workers(self) -> bool:
        try:
            return bool(self._client.nthreads())
        except OSError:  # the scheduler is gone: its futures are cancelled, which raises next
            return True


def _kept(done_file: Path | None) -> str:
    if done_file is None:
        return "nothing was written"
    return (
        f"the chunks finished so far are kept, recorded in {done_file}, and no dataset was "
        "published"
    )
