"""One MLflow run per sensitivity analysis (experiment ``logger.experiment_name``, by default
``juno-sensitivity``): resolved config as params, headline figures as metrics, the JSON result
and the PNGs as artifacts, tags linking the model version that provided the backgrounds."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

SERVICE = "sensitivity"
RESULT_ARTIFACT = "sensitivity.json"


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """Per window: total b, μ_UL, Φ_lim, P, the spectral limit (MLflow metric names)."""
    out: dict[str, float] = {}
    for name, w in result["windows"].items():
        t = w["total"]
        out.update(
            {
                f"{name}.b": t["b"],
                f"{name}.mu_ul": t["mu_ul"],
                f"{name}.flux_limit": t["flux_limit"],
                f"{name}.p_limit": t["p_limit"],
            }
        )
    for name, s in (result.get("spectral") or {}).items():
        out[f"{name}.spectral.mu_ul"] = s["mu_ul"]
        out[f"{name}.spectral.p_limit"] = s["p_limit"]
    return out


def write_json(path: Path, payload: Any) -> None:
    """Atomic JSON write (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    os.replace(tmp, path)


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    """Run the analysis of ``cfg`` in a new MLflow run carrying ``tags``; returns the result
    with ``mlflow_run_id``. On failure the run ends FAILED with the reason; the error re-raises."""
    from mlflow.entities import Metric

    from ...config import to_container
    from ...tracking import lineage, runs
    from .service import run

    client, exp_id = runs.service_experiment(cfg)
    resolved = to_container(cfg)
    base = {
        "oscflow.service": SERVICE,
        "oscflow.sensitivity.analysis": str(cfg.analysis),
        "oscflow.sensitivity.background": str(cfg.background.source),
        "oscflow.sensitivity.method": str(cfg.limit.method),
        "oscflow.service.config_hash": lineage.service_config_hash(resolved),
        "oscflow.git_commit": lineage.git_commit(cfg.paths.root_dir),
    }
    if cfg.background.source == "model" and cfg.background.predictor == "surrogate":
        base["oscflow.model.uri"] = str(cfg.model_uri)
    run_ = client.create_run(
        exp_id,
        run_name=f"sensitivity-{cfg.analysis}-{cfg.background.source}",
        tags={**base, **{k: str(v) for k, v in tags.items()}},
    )
    run_id = run_.info.run_id
    try:
        runs.log_params(client, run_id, resolved)
        with tempfile.TemporaryDirectory() as tmp:
            local = cfg.copy()
            local.output_dir = tmp  # PNGs straight into the artifact folder
            result = run(local)
            info = result["background"]
            for key, value in {
                "oscflow.model.name": info.get("registered_model"),
                "oscflow.model.version": info.get("version"),
                "oscflow.model.training_run": info.get("training_run_id"),
            }.items():
                if value and key not in tags:
                    client.set_tag(run_id, key, str(value))
            client.log_batch(
                run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics_of(result).items()]
            )
            result["plots"] = {k: Path(v).name for k, v in (result.get("plots") or {}).items()}
            write_json(Path(tmp) / RESULT_ARTIFACT, {**result, "mlflow_run_id": run_id})
            client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id, "FINISHED")
    except BaseException as exc:
        runs.mark_failed(client, run_id, f"{type(exc).__name__}: {exc}")
        raise
    return {**result, "mlflow_run_id": run_id}
