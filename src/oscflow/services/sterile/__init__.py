"""The sterile-neutrino search service (`oscflow sterile`): JSNS²'s Feldman–Cousins exclusion in
(sin²2θμe, Δm²41) — the observed 90 % CL limit of the 2022 data, the expected sensitivity
(median, ±1σ) for that exposure and for JSNS²-II's two baselines, LSND's region — with a
registered surrogate of the spectrum per unit sin²2θμe (or the exact model), as JSON, a PNG and
one MLflow run linked to the model version.

Service contract (``oscflow.services``): ``JOB``, ``promotion_overrides``, ``record``,
``ROUTES`` (on ``champion``, for versions of an experiment whose oscillation model has an
amplitude and Δm²41: a 3+1 appearance model), ``COMMAND`` (``oscflow sterile``). Modules:
``compute`` (the study), ``plots``; the statistics are ``stats/amplitude_fc.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from ...tracking import tags as tag_names
from .. import Command, Routes

JOB = "sterile"


@functools.cache
def _appearance(experiment: str) -> bool:
    from ...config import load
    from ...physics import oscillation_models

    cfg = load(JOB, [f"experiment={experiment}"])
    model = oscillation_models.get((cfg.experiment.get("oscillation") or {}).get("model", ""))
    return model.amplitude is not None and "dm2_41" in model.parameters


def serves(version_tags: Mapping[str, str]) -> bool:
    """A version of an experiment with a 3+1 appearance model (not JUNO's, not Daya Bay's)."""
    name = version_tags.get(tag_names.EXPERIMENT)
    if not name:
        return False
    try:
        return _appearance(str(name))
    except Exception:  # noqa: BLE001 - an experiment this checkout cannot compose: not ours
        return False


ROUTES = Routes(on_alias=("champion",), applies=serves)


def promotion_overrides(model_uri: str) -> list[str]:
    """A promoted version's search at conf/sterile.yaml's defaults, without the exact-model
    timing run (minutes)."""
    return [f"model_uri={model_uri}", "predictor=surrogate", "compare_exact=false"]


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {"wall_s": float(result["wall_s"])}
    for name, entry in result["analyses"].items():
        out[f"{name}.construction_s"] = float(entry["construction_s"])
        if entry.get("expected_median_averaging") is not None:
            out[f"{name}.expected_median_averaging"] = entry["expected_median_averaging"]
        out[f"{name}.expected_median_at_1p2"] = entry["expected_median_at_1p2"]
        obs = entry.get("observed") or {}
        if obs.get("upper_limit_averaging") is not None:
            out[f"{name}.observed_ul_averaging"] = obs["upper_limit_averaging"]
        if obs:
            out[f"{name}.observed_ul_at_1p2"] = obs["upper_limit_at_1p2"]
        timing = entry.get("timing") or {}
        if timing:
            out[f"{name}.construction_exact_s"] = timing["construction_exact_s"]
        for k, c in enumerate(entry.get("coverage") or []):
            out[f"{name}.coverage_{k}"] = c["fraction"]
    return out


def record(cfg: DictConfig, tags: Mapping[str, str]) -> dict[str, Any]:
    """Check the inputs (nothing is recorded for a bad one), run the search, record it as one
    MLflow run in ``<experiment>-sterile``."""
    from ...tracking.service_run import service_run
    from . import plots
    from .compute import prepare, run

    setup = prepare(cfg)
    name = f"sterile-{cfg.predictor}-{int(cfg.sterile.toys)}toys"
    with service_run(cfg, JOB, name, tags) as rec:
        result = run(cfg, setup)
        result["mlflow_run_id"] = rec.run_id
        if setup.surrogate is not None:
            rec.link_version(setup.surrogate.info())
        rec.log_metrics(metrics_of(result))
        rec.write_json("sterile_result.json", result)
        if cfg.plots:
            plots.exclusion(rec.artifact_dir / "sterile_exclusion.png", result)
            result["plots"] = ["sterile_exclusion.png"]
    return result


def _cli(cfg: DictConfig) -> dict[str, Any]:
    if cfg.record:
        return record(cfg, {})
    from .compute import run

    return run(cfg)


def _fmt(x: Any) -> str:
    return "none" if x is None else f"{x:.3g}"


def summary(result: Mapping[str, Any]) -> str:
    lines = [
        (
            f"{result['experiment']} sterile search, {100 * result['cl']:g} % CL Feldman–Cousins, "
            f"{result['predictor']} {result.get('model_uri') or ''} ({result['toys']} toys/point)"
        )
    ]
    for name, e in result["analyses"].items():
        lines.append(
            f"  {name} ({'+'.join(e['detectors'])}, {e['pot']:.3g} POT, background "
            f"{e['background_total']:.2f}): expected median sin²2θ < "
            f"{_fmt(e['expected_median_averaging'])} (Δm² ≥ 10 eV²), "
            f"{_fmt(e['expected_median_at_1p2'])} at 1.2 eV²; excludes LSND's best fit (median): "
            f"{e['excludes_lsnd_best_fit_median']}; construction {e['construction_s']:.1f} s"
        )
        obs = e.get("observed")
        if obs:
            lines.append(
                f"    observed {obs['counts']}: sin²2θ < {_fmt(obs['upper_limit_averaging'])} "
                f"(Δm² ≥ 10 eV²), < {_fmt(obs['upper_limit_at_1p2'])} at 1.2 eV²"
            )
        t = e.get("timing")
        if t:
            lines.append(
                f"    construction: surrogate {t['construction_surrogate_s']:.1f} s, exact "
                f"{t['construction_exact_s']:.1f} s ({t['model_evaluations']} spectra); limits "
                f"differ by ≤ {100 * t['max_rel_diff_upper_limit']:.2f} %"
            )
        for c in e.get("coverage") or []:
            lines.append(
                f"    coverage at ({c['sin2_2th']:.3g}, {c['dm2']:.3g} eV²): "
                f"{c['fraction']:.3f} ± {c['error']:.3f} ({'ok' if c['covers'] else 'UNDER'})"
            )
    bf = result["lsnd"]["best_fit"]
    lines.append(
        f"  LSND best fit: sin²2θ = {bf['sin2_2th']}, Δm² = {bf['dm2']} eV² ({result['lsnd']['source']})"
    )
    if result.get("mlflow_run_id"):
        lines.append(f"  MLflow run {result['mlflow_run_id']}")
    return "\n".join(lines)


COMMAND = Command(
    summary="JSNS² sterile-neutrino search (FC exclusion, expected bands, LSND): "
    "model_uri=<jsns2-spectrum uri> | predictor=exact",
    run=_cli,
    human=summary,
)

__all__ = ["COMMAND", "JOB", "ROUTES", "promotion_overrides", "record", "serves"]
