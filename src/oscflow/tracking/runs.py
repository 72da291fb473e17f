"""MLflow experiments and runs the oscflow way: explicit logging, names that say what a run is."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient

from . import tags
from .lineage import flatten

PARAM_BATCH = 100


def tracking_uri(uri: str, root: str | os.PathLike[str]) -> str:
    """Resolve a relative ``sqlite:///`` path against ``root`` (jobs may run anywhere)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str((Path(root) / uri[len(prefix) :]).resolve())
    return uri


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (at ``artifact_location``) if it does not exist;
    tagged as model development (``mlflow.experimentKind``, see ``tracking.ui``) unless it
    already has a kind."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if tags.MLFLOW_EXPERIMENT_KIND not in (exp.tags or {}):
            _set_kind(client, exp.experiment_id)
        return exp.experiment_id
    location = None
    if artifact_location:
        location = (
            Path(artifact_location).resolve().as_uri()
            if "://" not in artifact_location
            else artifact_location
        )
    kind = {tags.MLFLOW_EXPERIMENT_KIND: tags.EXPERIMENT_KIND_TRAINING}
    try:
        return client.create_experiment(name, artifact_location=location, tags=kind)
    except mlflow.exceptions.MlflowException:  # another process created it meanwhile
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _set_kind(client: MlflowClient, experiment_id: str) -> None:
    """Tag an experiment made elsewhere (or by an older oscflow) as model development; a
    store that refuses (permissions) keeps it as it is: the UI links carry the view anyway."""
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.set_experiment_tag(
            experiment_id, tags.MLFLOW_EXPERIMENT_KIND, tags.EXPERIMENT_KIND_TRAINING
        )


def service_experiment(cfg: Any, name: str | None = None) -> tuple[MlflowClient, str]:
    """Client and experiment id for a job's run, from its ``logger`` and ``paths`` config
    (``name`` overrides ``logger.experiment_name``); also makes it mlflow's current store."""
    uri = tracking_uri(str(cfg.logger.tracking_uri), cfg.paths.root_dir)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp_id = ensure_experiment(
        client, name or str(cfg.logger.experiment_name), cfg.logger.get("artifact_location")
    )
    return client, exp_id


def log_params(client: MlflowClient, run_id: str, cfg: Mapping[str, Any]) -> None:
    """The resolved config, flattened, as params (in batches of 100, MLflow's limit)."""
    from mlflow.entities import Param

    params = [Param(k, v) for k, v in flatten(cfg).items()]
    for start in range(0, len(params), PARAM_BATCH):
        client.log_batch(run_id, params=params[start : start + PARAM_BATCH])


def log_dataset(
    run_id: str, params: np.ndarray, source: str, name: str, digest: str | None, context: str
) -> None:
    """Record a dataset split as a run input (``mlflow.log_input``) with its DVC md5 as digest."""
    from mlflow.data.numpy_dataset import from_numpy
    from mlflow.data.sources import LocalArtifactDatasetSource

    dataset = from_numpy(
        features=np.asarray(params[:1]),
        source=LocalArtifactDatasetSource(str(Path(source).resolve())),
        name=name,
        digest=(digest or "unknown")[:36],
    )
    with mlflow.start_run(run_id=run_id, nested=False):
        mlflow.log_input(dataset, context=context)


def mark_failed(client: MlflowClient, run_id: str, reason: str) -> None:
    """Record why a run failed and end it FAILED."""
    client.set_tag(run_id, tags.FAILURE_REASON, reason[:5000])
    client.set_terminated(run_id, status="FAILED")
