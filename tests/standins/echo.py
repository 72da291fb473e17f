"""A stand-in service that proves the service contract (``oscflow.services``): this module and
its config (``echo.yaml``, copied into the test's ``conf/``) are all it takes to be routed by
the platform, run from the command line (``oscflow echo``) and recorded as an MLflow run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from oscflow.services import Command, Routes
from oscflow.tracking.service_run import service_run

JOB = "echo"
ROUTES = Routes(on_alias=("echo",))


def promotion_overrides(model_uri: str) -> list[str]:
    return [f"model_uri={model_uri}"]


def compute(cfg: DictConfig) -> dict[str, Any]:
    if cfg.fail:
        raise RuntimeError("asked to fail")
    values = [float(v) for v in cfg["values"]]
    return {"model_uri": cfg.model_uri, "values": values, "total": sum(values)}


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    with service_run(cfg, __name__, f"echo-{len(cfg['values'])}", tags) as run:
        result = compute(cfg)
        run.log_metrics({"total": result["total"]})
        run.write_json("echo.json", result)
    return {**result, "mlflow_run_id": run.run_id}


COMMAND = Command(
    summary="the stand-in service of the contract test: sums values=[...]",
    run=lambda cfg: record(cfg, {}) if cfg.record else compute(cfg),
    human=lambda result: f"total {result['total']:g}",
)
