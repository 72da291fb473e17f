"""A lightweight service for platform tests (the issue allows one to stand in for fit and
sensitivity where only the plumbing is under test): it records a FINISHED MLflow run with the
job's tags (after ``sleep`` seconds: ``standins.slow`` sleeps, so a worker can be killed
mid-job)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from oscflow.tracking.runs import ensure_experiment, mark_failed

JOB = "validate"  # borrow a config: the service computes nothing from it


def promotion_overrides(model_uri: str) -> list[str]:
    return [f"model_uri={model_uri}"]


def record(cfg: DictConfig, tags: Mapping[str, str], sleep: float = 0.0) -> dict[str, Any]:
    client = MlflowClient(str(cfg.logger.tracking_uri))
    exp = ensure_experiment(client, "standin", None)
    run = client.create_run(exp, tags=dict(tags))
    try:
        time.sleep(sleep)
        client.log_metric(run.info.run_id, "pid", os.getpid())
        client.set_terminated(run.info.run_id, "FINISHED")
    except Exception as exc:
        mark_failed(client, run.info.run_id, f"{type(exc).__name__}: {exc}")
        raise
    return {"mlflow_run_id": run.info.run_id}
