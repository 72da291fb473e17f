"""The reconciler: what the registry says should have happened vs what MLflow recorded.

For every registered model: each version without a finished validation, and the version
holding the routed alias without a finished run of each alias service, gets its job enqueued
(unless one is queued or running). This is what makes a dropped webhook, an intake that was
down, or a worker killed mid-job harmless: the next pass finds the gap. A job that failed
because its version lacked lineage (``jobs.LineageMissing``: recorded under an ``unplanned``
key) is enqueued again as soon as the tags appear: its plan then names a job not yet run."""

from __future__ import annotations

import time
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from .jobs import done, plan, routed
from .queue import Queue
from .routing import JobSpec, effective


def expected_jobs(client: MlflowClient, cfg: DictConfig) -> list[JobSpec]:
    """Every job the registry's current state calls for under the platform's routing."""
    routing = effective(cfg.routing)
    specs: list[JobSpec] = []
    for model in client.search_registered_models():
        name = model.name
        if routing["on_version_created"]:
            for mv in client.search_model_versions(f"name = '{name}'"):
                specs += [
                    JobSpec(str(s), name, str(mv.version)) for s in routing["on_version_created"]
                ]
        for alias, services in routing["on_alias"].items():
            try:
                target = client.get_model_version_by_alias(name, str(alias))
            except MlflowException:
                continue
            specs += [JobSpec(str(s), name, str(target.version)) for s in services]
    return routed(specs, cfg)


def reconcile(queue: Queue) -> dict[str, Any]:
    """One pass; returns what was found and enqueued (JSON-ready)."""
    cfg = queue.cfg
    client = MlflowClient(str(cfg.tracking_uri))
    started = time.time()
    enqueued, satisfied, busy, unplannable = [], 0, 0, []
    for spec in expected_jobs(client, cfg):
        try:
            planned = plan(spec, cfg)
        except Exception as exc:  # noqa: BLE001 — a job for it will record the failure
            unplannable.append(f"{spec.service} {spec.model} v{spec.version}: {exc}")
            planned = None
        if planned is not None:
            if done(client, planned):
                satisfied += 1
                continue
            job = queue.ledger.job(planned.key)
            if job and job["state"] in ("queued", "running") and _recent(job, cfg):
                busy += 1
                continue
            if job and job["state"] in ("failed", "superseded") and not cfg.reconcile.retry_failed:
                continue  # failed for good: shown by `status` until retried by hand
        elif _failed_before(queue, spec) and not cfg.reconcile.retry_failed:
            continue
        queue.enqueue_job(JobSpec(spec.service, spec.model, spec.version, "reconciler"))
        enqueued.append(f"{spec.service} {spec.model} v{spec.version}")
    return {
        "enqueued": enqueued,
        "already_done": satisfied,
        "in_progress": busy,
        "unplannable": unplannable,
        "seconds": round(time.time() - started, 3),
    }


def _recent(job: dict[str, Any], cfg: DictConfig) -> bool:
    """A queued/running job is trusted while its lease is live or it was queued recently."""
    now = time.time()
    if job["lease_until"] and job["lease_until"] > now:
        return True
    return job["state"] == "queued" and now - float(job["queued_at"] or 0) < float(
        cfg.reconcile.stale_run_s
    )


def _failed_before(queue: Queue, spec: JobSpec) -> bool:
    return any(
        j["service"] == spec.service and j["model"] == spec.model and j["version"] == spec.version
        for j in queue.ledger.jobs(limit=1000, state="failed")
    )
