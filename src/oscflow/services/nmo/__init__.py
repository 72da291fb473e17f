"""The mass-ordering (NMO) service: JUNO's sensitivity to the neutrino mass ordering with a
registered surrogate pair — the Asimov Δχ²(IO−NO) vs exposure and the frequentist test from
toys (median sensitivity, probability to reject the wrong ordering at 3σ), as JSON, figures and
one MLflow run linked to the model version.

Service contract (``oscflow.services``): ``JOB``, ``promotion_overrides``, ``record``,
``ROUTES`` (on ``champion``, for versions with a registered mass-ordering pair: a champion
that covers one ordering gets no NMO job), ``COMMAND`` (``oscflow nmo``). Modules: ``compute``
(the study, every fit the fit service's), ``plots``; the test's statistics are
``stats/mass_ordering.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from ...tracking import tags as tag_names
from .. import Command, Routes

JOB = "nmo"


def has_pair(version_tags: Mapping[str, str]) -> bool:
    """A version paired with the other mass ordering (``registry promote --pair``)."""
    return any(k.startswith(tag_names.PAIR_PREFIX) for k in version_tags)


ROUTES = Routes(on_alias=("champion",), applies=has_pair)


def promotion_overrides(model_uri: str) -> list[str]:
    """A promoted pair's study at the promotion defaults of conf/nmo.yaml (Asimov curve and
    1000 toys per true ordering)."""
    return [f"model_uri={model_uri}", "predictor=surrogate"]


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """Summary numbers (one value each) for MLflow's run table and charts."""
    out: dict[str, float] = {}
    for key, row in (result.get("asimov_nominal") or {}).items():
        out[f"asimov_delta_chi2_true_{key}"] = row["delta_chi2_wrong"]
        out[f"asimov_median_sigma_true_{key}"] = row["median_sigma_gaussian"]
    for key, sens in (result.get("sensitivity") or {}).items():
        short = "NO" if key == "true_normal" else "IO"
        out[f"toys_median_sigma_true_{short}"] = sens["median_sigma_empirical"]
        out[f"toys_median_sigma_gaussian_true_{short}"] = sens["median_sigma_gaussian"]
        out[f"toys_reject_prob_true_{short}"] = sens["rejection_probability"]
    for key, toys in (result.get("toys") or {}).items():
        short = "NO" if key == "normal" else "IO"
        out[f"toys_failed_true_{short}"] = toys["n_failed"]
        out[f"toys_fits_per_s_true_{short}"] = toys["fits_per_s"]
    out["wall_s"] = result["wall_s"]
    return out


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    """Run the study and record it as one MLflow run in ``<experiment>-nmo``."""
    from ...progress import progress_bar
    from ...tracking.service_run import service_run
    from . import plots
    from .compute import run

    name = f"nmo-{cfg.predictor}-{int(cfg.nmo.toys)}toys"
    with service_run(cfg, JOB, name, tags) as rec:
        result = _run_with_progress(cfg, run, progress_bar)
        result["mlflow_run_id"] = rec.run_id
        if cfg.predictor == "surrogate":
            rec.link_version(_version_info(str(cfg.model_uri), cfg))
            rec.set_tag(
                "oscflow.nmo.pair", " ".join(str(v) for v in result["partner_uri"].values() if v)
            )
        rec.log_metrics(metrics_of(result))
        rec.write_json("nmo_result.json", result)
        if cfg.plots:
            result["plots"] = _plots(rec.artifact_dir, result, plots)
    return result


def _version_info(uri: str, cfg: DictConfig) -> dict[str, Any]:
    import mlflow

    from ...registry.reactors import resolve_version
    from ...tracking.runs import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir))
    v = resolve_version(uri)
    return {
        "model": uri,
        "registered_model": v.name,
        "version": v.version,
        "training_run_id": v.run_id,
    }


def _plots(directory: Any, result: Mapping[str, Any], plots: Any) -> list[str]:
    names = []
    if result["asimov"]:
        plots.asimov_vs_exposure(directory / "nmo_asimov_vs_exposure.png", result)
        names.append("nmo_asimov_vs_exposure.png")
    if result.get("toys"):
        plots.toy_distributions(directory / "nmo_toys.png", result)
        names.append("nmo_toys.png")
    return names


def _run_with_progress(cfg: DictConfig, run: Any, progress_bar: Any) -> dict[str, Any]:
    """The study with one progress bar per stage (Asimov fits, toys of each true ordering)."""
    bars: dict[str, Any] = {}
    seen: dict[str, int] = {}
    stack: list[Any] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            cm = progress_bar(f"nmo {stage}", total)
            bars[stage] = cm.__enter__()
            stack.append(cm)
            seen[stage] = 0
        bars[stage](done - seen[stage])
        seen[stage] = done

    try:
        return dict(run(cfg, progress))
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)


def _cli(cfg: DictConfig) -> dict[str, Any]:
    if cfg.record:
        return record(cfg, {})
    from .compute import run

    return run(cfg)


def summary(result: Mapping[str, Any]) -> str:
    """The study for a terminal."""
    lines = [
        (
            f"{result['experiment']} mass ordering: {result['predictor']} "
            f"{result.get('model_uri') or ''} ({result['statistic']}, free {', '.join(result['free'])})"
        )
    ]
    for r in result["asimov"]:
        lines.append(
            f"  Asimov true {'NO' if r['true_ordering'] == 'normal' else 'IO'} "
            f"{r['days']:7.1f} d ({r['gw_th_years']:6.1f} GW_th·yr): "
            f"Δχ²(wrong) = {r['delta_chi2_wrong']:6.2f}  (√ = {max(r['delta_chi2_wrong'], 0) ** 0.5:.2f}σ)"
        )
    for key, s in (result.get("sensitivity") or {}).items():
        bound = "≥ " if s["median_sigma_is_lower_bound"] else ""
        lines.append(
            f"  toys {key.replace('_', ' ')}: median {bound}{s['median_sigma_empirical']:.2f}σ "
            f"(Gaussian fit {s['median_sigma_gaussian']:.2f}σ), P(reject wrong at {s['z']:g}σ) = "
            f"{s['rejection_probability']:.3f} [{s['critical_value_method']} T_c = "
            f"{s['critical_value']:.2f}], {s['n_true']}+{s['n_wrong']} toys"
        )
    pub = result.get("published") or {}
    if pub:
        lines.append(
            f"  published: {pub['median_sigma']}σ median at {pub['years']} yr × {pub['power_gw']} "
            f"GW_th ({pub['source']})"
        )
    if result.get("mlflow_run_id"):
        lines.append(f"  MLflow run {result['mlflow_run_id']}")
    return "\n".join(lines)


COMMAND = Command(
    summary="mass-ordering sensitivity (Asimov vs exposure, toys): model_uri=<uri with an IO "
    "pair> nmo.toys=N",
    run=_cli,
    human=summary,
)

__all__ = ["COMMAND", "JOB", "ROUTES", "has_pair", "promotion_overrides", "record"]
