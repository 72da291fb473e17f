"""A worker process: the Huey consumer (``workers.count`` threads) plus two background threads,
one heartbeating into the ledger every ``workers.heartbeat_s`` and one running the reconciler at
start and every ``reconcile.interval_s``. They are separate so that a slow reconciler pass (an
MLflow server under load) never makes a live worker look dead to ``oscflow status``."""

from __future__ import annotations

import logging
import threading
import time

from omegaconf import DictConfig

from .ledger import worker_id
from .queue import Queue
from .reconciler import reconcile

log = logging.getLogger("oscflow.worker")


def _heartbeat(queue: Queue, wid: str, started: float, stop: threading.Event) -> None:
    beat = float(queue.cfg.workers.heartbeat_s)
    while not stop.is_set():
        try:
            queue.ledger.heartbeat(wid, started)
        except Exception as exc:  # noqa: BLE001 — the ledger may be restarting; next beat
            log.warning("heartbeat failed: %s", exc)
        stop.wait(beat)


def _reconciler(queue: Queue, stop: threading.Event) -> None:
    cfg = queue.cfg
    interval, beat = float(cfg.reconcile.interval_s), float(cfg.workers.heartbeat_s)
    while not stop.is_set():
        try:
            summary = reconcile(queue)
            if summary["enqueued"]:
                log.info("reconciler enqueued %s", summary["enqueued"])
            wait = interval
        except Exception as exc:  # noqa: BLE001 — MLflow may be starting; try again soon
            log.warning("reconciler pass failed: %s", exc)
            wait = beat
        stop.wait(wait)


def run_worker(cfg: DictConfig) -> None:
    """Consume until SIGINT/SIGTERM (``oscflow worker``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    queue = Queue(cfg)
    wid, started = worker_id(), time.time()
    stop = threading.Event()
    for target, args, name in (
        (_heartbeat, (queue, wid, started, stop), "heartbeat"),
        (_reconciler, (queue, stop), "reconciler"),
    ):
        threading.Thread(target=target, args=args, name=name, daemon=True).start()
    consumer = queue.huey.create_consumer(
        workers=int(cfg.workers.count),
        worker_type="thread",
        initial_delay=float(cfg.workers.poll_s),
        max_delay=max(float(cfg.workers.poll_s), 1.0),
        periodic=False,
    )
    try:
        consumer.run()
    finally:
        stop.set()
        queue.ledger.drop_worker(wid)
