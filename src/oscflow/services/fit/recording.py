"""One MLflow run per fit (or toy ensemble) in ``logger.experiment_name`` (``juno-fits``):
the config as params, best fits/errors/statistics as metrics, the JSON result and PNG plots as
artifacts, tags linking the model version. A failed or non-converged fit ends FAILED with the
reason (and, if it got that far, its diagnostics as ``fit_diagnostics.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from .minimize import FitNotConverged, FitOutcome

SERVICE = "fit"
RESULT_ARTIFACT = "fit_result.json"
FIT_STATUS = "oscflow.fit.status"


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """Numbers worth plotting across runs: best fits, errors, statistic, Δχ²(MO), cost."""
    out: dict[str, float | None] = {}
    for name, value in (result.get("best_fit") or {}).items():
        out[f"best_fit.{name}"] = value
        out[f"error.{name}"] = result["errors"][name]
    if "fit" in result:
        out["statistic"] = result["fit"]["statistic"]["value"]
        out["ndf"] = result["fit"]["statistic"]["ndf"]
        out["nfcn"] = result["fit"]["nfcn"]
        out["ngrad"] = result["fit"].get("ngrad", 0)
        out["nhessian"] = result["fit"].get("nhessian", 0)
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


def record(cfg: DictConfig, given_tags: Mapping[str, str]) -> dict[str, Any]:
    """Run the fit described by ``cfg`` and record it; returns the result with
    ``mlflow_run_id``. On failure the run ends FAILED with the reason (a non-converged fit with
    its diagnostics as ``fit_diagnostics.json``) and the error re-raises."""
    from ...tracking import tags
    from ...tracking.service_run import ServiceRun, service_run
    from .run import compute

    extra = {
        "oscflow.fit.predictor": str(cfg.predictor),
        "oscflow.fit.data": str(cfg.observation.kind),
    }
    if cfg.predictor == "surrogate" and cfg.model_uri:
        extra[tags.MODEL_URI] = str(cfg.model_uri)

    def failed(rec: ServiceRun, exc: BaseException) -> str | None:
        if isinstance(exc, FitNotConverged):
            rec.set_tag(FIT_STATUS, "not_converged")
            rec.write_json("fit_diagnostics.json", exc.diagnostics)
            return str(exc)
        rec.set_tag(FIT_STATUS, "error")
        return None

    name = f"fit-{cfg.predictor}-{cfg.observation.kind}"
    with service_run(cfg, SERVICE, name, given_tags, extra, on_failure=failed) as rec:
        result, fs, main = compute(cfg)
        rec.link_version(result["predictor"])
        rec.log_metrics(metrics_of(result))
        rec.write_json(RESULT_ARTIFACT, {**result, "mlflow_run_id": rec.run_id})
        if cfg.plots:
            result["plots"] = write_plots(rec.artifact_dir, result, fs, main)
        rec.set_tag(FIT_STATUS, "converged")
    return {**result, "mlflow_run_id": rec.run_id}
