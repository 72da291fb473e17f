"""One MLflow run per fit (or toy ensemble) in ``logger.experiment_name`` (``juno-fits``):
the config as params, best fits/errors/statistics as metrics, the JSON result and PNG plots as
artifacts, tags linking the model version. A failed or non-converged fit ends FAILED with the
reason (and, if it got that far, its diagnostics as ``fit_diagnostics.json``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from omegaconf import DictConfig

from ...config import to_container
from ...tracking import lineage, runs
from .minimize import FitNotConverged, FitOutcome

SERVICE = "fit"
RESULT_ARTIFACT = "fit_result.json"


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """Numbers worth plotting across runs: best fits, errors, statistic, Δχ²(MO), cost."""
    out: dict[str, float] = {}
    for name, value in (result.get("best_fit") or {}).items():
        out[f"best_fit.{name}"] = value
        out[f"error.{name}"] = result["errors"][name]
    if "fit" in result:
        out["statistic"] = result["fit"]["statistic"]["value"]
        out["ndf"] = result["fit"]["statistic"]["ndf"]
        out["nfcn"] = result["fit"]["nfcn"]
        out["fit_wall_s"] = result["fit"]["wall_s"]
    if "mass_ordering" in result:
        out["delta_chi2_io_minus_no"] = result["mass_ordering"]["delta_chi2_io_minus_no"]
    if "referee" in result:
        out["referee.max_abs_shift_sigma"] = result["referee"]["max_abs_shift_sigma"]
        for name, r in result["referee"]["parameters"].items():
            out[f"referee.shift_sigma.{name}"] = r["shift_sigma"]
    if "toys" in result:
        t = result["toys"]
        out["toys.n_failed"] = t["n_failed"]
        for name, s in t["pulls"].items():
            out[f"pull_mean.{name}"] = s["mean"]
            out[f"pull_width.{name}"] = s["width"]
        if "delta_chi2_io_minus_no" in t and t["delta_chi2_io_minus_no"]["median"] is not None:
            out["toys.delta_chi2_io_minus_no.median"] = t["delta_chi2_io_minus_no"]["median"]
    out["wall_s"] = result["wall_s"]
    return {k: float(v) for k, v in out.items() if v is not None}


def write_plots(
    directory: Path, result: Mapping[str, Any], fs: Any, main: FitOutcome | None
) -> list[str]:
    """PNG figures into ``directory``; returns their file names."""
    from . import plots

    names = []
    if main is not None:
        title = (
            f"{fs.experiment.name} {fs.observation.kind}: {fs.model.predictor.kind} fit, "
            f"{fs.exposure.days:g} d, {result['statistic']} = {main.fval:.1f} / "
            f"{result['fit']['statistic']['ndf']}"
        )
        plots.data_vs_prediction(
            directory / "data_vs_prediction.png",
            fs.edges,
            result["counts"],
            fs.model.by_source(main.values),
            title,
        )
        names.append("data_vs_prediction.png")
    scans = result.get("scans") or {}
    if scans.get("profiles"):
        plots.profiles(directory / "profiles.png", scans["profiles"])
        names.append("profiles.png")
    if scans.get("contours"):
        plots.contours(directory / "contours.png", scans["contours"])
        names.append("contours.png")
    if "toys" in result and result["toys"]["pull_values"]:
        plots.pulls(directory / "pulls.png", result["toys"]["pull_values"])
        names.append("pulls.png")
    return names


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    """Run the fit described by ``cfg`` and record it; returns the result with
    ``mlflow_run_id``. On failure the run ends FAILED with the reason and the error re-raises."""
    from .run import compute

    client, exp_id = runs.service_experiment(cfg)
    resolved = to_container(cfg)
    base_tags = {
        "oscflow.service": SERVICE,
        "oscflow.fit.predictor": str(cfg.predictor),
        "oscflow.fit.data": str(cfg.observation.kind),
        "oscflow.service.config_hash": lineage.service_config_hash(resolved),
        "oscflow.git_commit": lineage.git_commit(cfg.paths.root_dir),
    }
    if cfg.predictor == "surrogate" and cfg.model_uri:
        base_tags["oscflow.model.uri"] = str(cfg.model_uri)
    run = client.create_run(
        exp_id,
        run_name=f"fit-{cfg.predictor}-{cfg.observation.kind}",
        tags={**base_tags, **{k: str(v) for k, v in tags.items()}},
    )
    run_id = run.info.run_id
    try:
        runs.log_params(client, run_id, resolved)
        result, fs, main = compute(cfg)
        info = result["predictor"]
        version_tags = {
            "oscflow.model.name": info.get("registered_model"),
            "oscflow.model.version": info.get("version"),
            "oscflow.model.training_run": info.get("training_run_id"),
        }
        for key, value in version_tags.items():
            if value and key not in tags:
                client.set_tag(run_id, key, str(value))
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, 0, 0) for k, v in metrics_of(result).items()],
        )
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            _write_json(d / RESULT_ARTIFACT, {**result, "mlflow_run_id": run_id})
            if cfg.plots:
                result["plots"] = write_plots(d, result, fs, main)
            client.log_artifacts(run_id, tmp)
        client.set_tag(run_id, "oscflow.fit.status", "converged")
        client.set_terminated(run_id, "FINISHED")
    except FitNotConverged as exc:
        client.set_tag(run_id, "oscflow.fit.status", "not_converged")
        with tempfile.TemporaryDirectory() as tmp:
            _write_json(Path(tmp) / "fit_diagnostics.json", exc.diagnostics)
            client.log_artifacts(run_id, tmp)
        runs.mark_failed(client, run_id, str(exc))
        raise
    except BaseException as exc:
        client.set_tag(run_id, "oscflow.fit.status", "error")
        runs.mark_failed(client, run_id, f"{type(exc).__name__}: {exc}")
        raise
    return {**result, "mlflow_run_id": run_id}


def _write_json(path: Path, payload: Any) -> None:
    """Atomic JSON write (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=float))
    os.replace(tmp, path)
