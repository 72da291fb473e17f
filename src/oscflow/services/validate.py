"""The validate service: a registered surrogate against the exact model at fresh points.

Fresh Latin-hypercube points in the surrogate's training ranges (not its training or test
splits), exact spectra from the experiment's predictor with the same MC pairs the dataset was
built from (their DVC md5 must match the version's ``oscflow.dataset.pairs_md5``: otherwise
the exact model differs by MC noise and the comparison would mean nothing). Metrics as in
``oscflow.surrogate.accuracy``; tagged on the version as ``oscflow.validation.<metric>`` for
the promotion gates, among them the linearised fit bias in σ (``oscflow.stats.bias``) with the
exact model's Jacobian. A model whose artifact is missing or corrupt fails here, recorded; so
does one trained with other experiment settings than the requested exact model's
(``SurrogateReactors.check_request``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from ..errors import ConfigError
from ..tracking import lineage
from . import Routes

JOB = "validate"
ROUTES = Routes(on_version_created=True)
GATE_METRICS = (
    "max_rel_dev_peak1",
    "p99_rel_dev_peak1",
    "max_rel_dev_all",
    "p99_rel_dev_all",
    "artefact_rms_median",
    "artefact_rms_max",
    "pearson_chi2_max",
    "fit_bias_max_sigma",
    "fit_bias_rms_sigma",
)


def promotion_overrides(model_uri: str) -> list[str]:
    return [f"model_uri={model_uri}"]


def _name_version(uri: str) -> tuple[str, str]:
    parts = uri.removeprefix("models:/").split("/")
    if not uri.startswith("models:/") or len(parts) != 2 or not parts[1].isdigit():
        raise ConfigError("model", f"{uri!r} is not models:/<name>/<version>", "give a version URI")
    return parts[0], parts[1]


def _check_pairs(cfg: DictConfig, version_tags: Mapping[str, str]) -> Path:
    from ..data.simulate import pairs_dir

    path = pairs_dir(cfg)
    if not (path / "meta.json").is_file():
        raise ConfigError(
            "data",
            f"no MC pairs at {path} (the dataset this version was trained on)",
            "run `dvc repro` (or `dvc pull`) for that dataset, or select it with data=<name>",
        )
    wanted = version_tags.get("oscflow.dataset.pairs_md5")
    have = lineage.dataset_md5(cfg.paths.root_dir, path)
    if wanted and wanted not in ("untracked", have):
        raise ConfigError(
            "data",
            f"MC pairs at {path} have md5 {have}, the version was trained with {wanted}",
            "check out the matching dvc.lock and run `dvc checkout`, or select data=<name>",
        )
    return path


def compute(
    cfg: DictConfig, surrogate: Any, pairs_path: Path | None
) -> tuple[dict[str, float], Any]:
    """Metrics and (points, exact, predicted) arrays. The fit-bias metrics use the exact
    model's Jacobian at the first ``bias_points`` points (2 exact spectra per input each)."""
    from ..data.sampling import sample_box
    from ..data.simulate import read_pairs
    from ..experiments import load_experiment
    from ..surrogate.accuracy import accuracy_metrics, experiment_priors, fit_bias

    spec = surrogate.spec
    experiment = load_experiment(cfg.experiment)
    edges = np.asarray(spec.bin_edges)
    exposure = experiment.exposure(spec.exposure["days"], spec.exposure["efficiency"])
    pairs = read_pairs(pairs_path) if pairs_path is not None else None
    predictor = experiment.predictor(edges, spec.energy, str(cfg.method), pairs)
    chunk = int(cfg.chunk)

    def exact_counts(x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), len(edges) - 1))
        for start in range(0, len(x), chunk):
            batch = {k: x[start : start + chunk, j] for j, k in enumerate(spec.inputs)}
            batch.update({k: v for k, v in spec.fixed.items() if k not in batch})
            out[start : start + chunk] = sum(predictor.predict(batch, exposure).values())
        return out

    points = sample_box(spec.ranges, int(cfg.n_points), "lhs", int(cfg.seed))
    exact = exact_counts(points)
    predicted = surrogate.predict(points)
    metrics = accuracy_metrics(predicted, exact)
    n_bias = min(int(cfg.bias_points), len(points))
    if n_bias > 0:
        sigmas = {k: experiment.parameters[k].sigma for k in spec.inputs}
        priors = experiment_priors(experiment.parameters, spec.inputs)
        metrics.update(
            fit_bias(
                exact_counts, points[:n_bias], exact[:n_bias], predicted[:n_bias], sigmas, priors
            )
        )
    return metrics, (points, exact, predicted)


def record(cfg: DictConfig, given_tags: Mapping[str, str]) -> dict[str, Any]:
    """Validate ``cfg.model_uri``; one run in ``<experiment>-validation``; version tagged."""
    from ..experiments import load_experiment
    from ..plots.accuracy import plot_prediction_vs_truth
    from ..registry import load_surrogate
    from ..registry.reactors import SurrogateReactors, resolve_version
    from ..tracking import tags
    from ..tracking.service_run import service_run

    if not cfg.model_uri:
        raise ConfigError(
            "model_uri", "no model to validate", "give model_uri=models:/<name>/<version>"
        )
    name, version = _name_version(str(cfg.model_uri))
    version_tags = {tags.MODEL_NAME: name, tags.MODEL_VERSION: version}
    with service_run(
        cfg,
        "validate",
        f"validate-{name}-v{version}",
        {**version_tags, **given_tags},
        experiment_name=str(cfg.experiment_name),
    ) as rec:
        client = rec.client
        mv = client.get_model_version(name, version)
        # A missing or corrupt artifact: ModelArtifactError (permanent, names the file).
        surrogate = load_surrogate(str(cfg.model_uri))
        # The exact model is the request's experiment: refused unless the surrogate was
        # trained with the same settings (ordering, matter, detector, …).
        SurrogateReactors(
            surrogate, str(cfg.model_uri), resolve_version(str(cfg.model_uri))
        ).check_request(cfg.experiment)
        experiment = load_experiment(cfg.experiment)
        needs = experiment.needs_pairs(surrogate.spec.energy, str(cfg.method))
        pairs_path = _check_pairs(cfg, mv.tags) if needs else None
        metrics, (points, exact, predicted) = compute(cfg, surrogate, pairs_path)
        rec.log_metrics(metrics)
        result = {
            "model": name,
            "version": version,
            "model_uri": str(cfg.model_uri),
            "metrics": metrics,
            "n_points": int(cfg.n_points),
            "mc_pairs": None if pairs_path is None else str(pairs_path),
        }
        rec.write_json("validation.json", result)
        worst = np.argsort(np.abs(predicted / np.maximum(exact, 1e-12) - 1).max(axis=1))[-3:]
        plot_prediction_vs_truth(
            rec.artifact_dir / "validation.png",
            surrogate.spec.bin_edges,
            predicted[worst],
            exact[worst],
            [
                ", ".join(f"{k}={v:.4g}" for k, v in zip(surrogate.spec.inputs, p, strict=True))
                for p in points[worst]
            ],
            title=f"{name} v{version}: worst of {len(points)} fresh points vs exact",
        )
        for key in (k for k in GATE_METRICS if k in metrics):
            client.set_model_version_tag(
                name, version, f"{tags.VALIDATION_PREFIX}{key}", f"{metrics[key]:.6g}"
            )
        client.set_model_version_tag(name, version, tags.VALIDATION_RUN, rec.run_id)
    return {**result, "mlflow_run_id": rec.run_id}
