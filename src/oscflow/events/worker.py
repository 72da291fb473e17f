"""A worker process: the Huey consumer (``workers.count`` threads) plus one background thread
that heartbeats into the ledger and runs the reconciler at start and every
``reconcile.interval_s``."""

from __future__ import annotations

import logging
import threading
import time

from omegaconf import DictConfig

from .ledger import worker_id
from .queue import Queue
from .reconciler import reconcile

log = logging.getLogger("oscflow.worker")


def _background(queue: Queue, wid: str, started: float, stop: threading.Event) -> None:
    cfg = queue.cfg
    interval = float(cfg.reconcile.interval_s)
    beat = float(cfg.workers.heartbeat_s)
    next_reconcile = 0.0
    while not stop.is_set():
        try:
            queue.ledger.heartbeat(wid, started)
            if time.time() >= next_reconcile:
                summary = reconcile(queue)
                if summary["enqueued"]:
                    log.info("reconciler enqueued %s", summary["enqueued"])
                next_reconcile = time.time() + interval
        except Exception as exc:  # noqa: BLE001 — MLflow may be starting; try again next beat
            log.warning("reconciler pass failed: %s", exc)
            next_reconcile = time.time() + beat
        stop.wait(beat)


def run_worker(cfg: DictConfig) -> None:
    """Consume until SIGINT/SIGTERM (``oscflow worker``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    queue = Queue(cfg)
    wid, started = worker_id(), time.time()
    stop = threading.Event()
    thread = threading.Thread(
        target=_background, args=(queue, wid, started, stop), name="reconciler", daemon=True
    )
    thread.start()
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
