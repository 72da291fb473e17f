"""One MLflow run per sensitivity analysis (experiment ``logger.experiment_name``, by default
``juno-sensitivity``): resolved config as params, headline figures as metrics, the JSON result
and the PNGs as artifacts, tags linking the model version that provided the backgrounds."""

from __future__ import annotations

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


def record(cfg: DictConfig, given_tags: Mapping[str, str]) -> dict[str, Any]:
    """Run the analysis of ``cfg`` in a new MLflow run carrying ``given_tags``; returns the
    result with ``mlflow_run_id``. On failure the run ends FAILED with the reason; the error
    re-raises (``tracking.service_run``)."""
    from ...tracking import tags
    from ...tracking.service_run import service_run
    from .service import run

    extra = {
        "oscflow.sensitivity.analysis": str(cfg.analysis),
        "oscflow.sensitivity.background": str(cfg.background.source),
        "oscflow.sensitivity.method": str(cfg.limit.method),
    }
    if cfg.background.source == "model" and cfg.background.predictor == "surrogate":
        extra[tags.MODEL_URI] = str(cfg.model_uri)
    name = f"sensitivity-{cfg.analysis}-{cfg.background.source}"
    with service_run(cfg, SERVICE, name, given_tags, extra) as rec:
        local = cfg.copy()
        local.output_dir = str(rec.artifact_dir)  # PNGs straight into the artifacts
        result = run(local)
        rec.link_version(result["background"])
        rec.log_metrics(metrics_of(result))
        result["plots"] = {k: Path(v).name for k, v in (result.get("plots") or {}).items()}
        rec.write_json(RESULT_ARTIFACT, {**result, "mlflow_run_id": rec.run_id})
    return {**result, "mlflow_run_id": rec.run_id}
