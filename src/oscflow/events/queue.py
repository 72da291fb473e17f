"""The durable queue: Huey on SQLite (embedded) or Redis (team scale), and the platform's tasks.

``process_event`` turns a persisted registry event into jobs; ``run_job`` runs one job with
retries and exponential back-off (``workers.retries``, ``retry_delay_s``, ``retry_backoff``),
waiting without using up a retry while another worker holds the job's lease."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.exceptions import RetryTask
from omegaconf import DictConfig

from .ledger import Ledger, worker_id
from .routing import JobSpec, effective, jobs_for

log = logging.getLogger("oscflow.events")
BACKENDS = ("sqlite", "redis")


class Queue:
    """A Huey instance bound to the platform config and ledger, with the tasks registered."""

    def __init__(self, cfg: DictConfig, ledger: Ledger | None = None) -> None:
        self.cfg = cfg
        self.ledger = ledger or Ledger(str(cfg.ledger_url))
        self.huey = make_huey(cfg)
        workers = cfg.workers
        huey = self.huey

        @huey.task(name="oscflow.process_event")
        def process_event(event: dict[str, Any]) -> list[str]:
            from .jobs import routed

            return [
                self.enqueue_job(spec)
                for spec in routed(jobs_for(event, effective(cfg.routing)), cfg)
            ]

        @huey.task(
            name="oscflow.run_job",
            retries=int(workers.retries),
            retry_delay=float(workers.retry_delay_s),
            retry_backoff=float(workers.retry_backoff),
            context=True,
        )
        def run_job(spec: dict[str, Any], task: Any = None) -> dict[str, Any]:
            from .jobs import JobBusy, execute, record_failure

            job = JobSpec(**spec)
            final = task is None or task.retries == 0
            try:
                return execute(job, cfg, self.ledger, worker_id(), final)
            except JobBusy:
                raise RetryTask(delay=float(workers.heartbeat_s)) from None
            except Exception as exc:
                log.warning("job %s failed (%s retries left): %s", job, task and task.retries, exc)
                if final:
                    record_failure(cfg, job, f"{type(exc).__name__}: {exc}")
                raise

        self.process_event = process_event
        self.run_job = run_job

    def _enqueue(self, task: Any, *args: Any) -> str:
        message = task.s(*args)
        self.huey.enqueue(message)
        return str(message.id)

    def enqueue_event(self, event: dict[str, Any]) -> str:
        return self._enqueue(self.process_event, event)

    def enqueue_job(self, spec: JobSpec) -> str:
        """Queue a job (and note it in the ledger so ``status`` shows it waiting)."""
        from .jobs import plan

        try:
            planned = plan(spec, self.cfg)
            self.ledger.queued(planned.key, planned.ledger_fields())
        except Exception as exc:  # noqa: BLE001 — the job itself will fail and record why
            log.warning("cannot plan %s yet: %s", spec, exc)
        return self._enqueue(self.run_job, dataclasses.asdict(spec))

    def depth(self) -> int:
        return int(self.huey.pending_count()) + int(self.huey.scheduled_count())


def make_huey(cfg: DictConfig) -> Huey:
    backend = str(cfg.queue.backend)
    name = str(cfg.queue.name)
    if backend == "sqlite":
        path = Path(str(cfg.queue.sqlite_path)).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=False, timeout=30)
    if backend == "redis":
        return RedisHuey(name, url=str(cfg.queue.redis_url), results=False)
    from ..errors import ConfigError

    raise ConfigError("queue.backend", f"{backend!r} is unknown", f"use one of {BACKENDS}")
