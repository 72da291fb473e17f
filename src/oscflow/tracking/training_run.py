"""The MLflow run of one training job, recorded the same way every time.

``training_run`` creates the run, or continues the run of the checkpoint being resumed (its
params were logged when it began; its tags are set again, to what this job trains with), sets
its tags, hands the job a ``TrainingRun`` to log into, and ends it FINISHED, KILLED (tagged
``oscflow.pruned`` when a sweep's pruner stopped the trial, ``oscflow.failure_reason``
``interrupted`` on Ctrl-C) or FAILED (with the reason as ``oscflow.failure_reason``). The
error always re-raises: the sweeper tells the study, the CLI prints the message.

``training_tags`` spells the lineage of DESIGN.md on the run: architecture, experiment, dataset
(path, name, DVC md5s), config hash, overrides, git commit, and a sweep trial's parent run."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.entities import Metric, RunTag
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from . import lineage, runs, tags
from .summary import SUMMARY_STEP, description

if TYPE_CHECKING:
    from ..surrogate.datamodule import SpectraDataModule
    from ..surrogate.evaluation import Evaluation

BATCH = 1000  # MLflow's limit of metrics or tags per log_batch call


@dataclasses.dataclass
class TrainingRun:
    """The open run a training job logs into."""

    client: MlflowClient
    run_id: str
    experiment_name: str
    tracking_uri: str
    resumed: bool
    tags: Mapping[str, str]  # the run tags it was opened with (``training_tags``)
    experiment_id: str = ""

    def set_tags(self, values: Mapping[str, Any]) -> None:
        batch = [RunTag(k, str(v)) for k, v in values.items()]
        for start in range(0, len(batch), BATCH):
            self.client.log_batch(self.run_id, tags=batch[start : start + BATCH])

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, str(value))

    def log_metrics(self, metrics: Mapping[str, float], step: int = SUMMARY_STEP) -> None:
        """Metrics at ``step``: summary metrics (one value per run) at step 0, so that MLflow's
        chart view compares runs as bars (``tracking.summary``), not dots on a step axis."""
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        for start in range(0, len(batch), BATCH):
            self.client.log_batch(self.run_id, metrics=batch[start : start + BATCH])

    def log_inputs(self, dm: SpectraDataModule, data_path: Path) -> None:
        """The dataset's splits as the run's inputs (``mlflow.log_input``), with the
        dataset's DVC md5 as their digest: the MLflow UI links every run to the data it saw."""
        md5 = self.tags.get(tags.DATASET_SPECTRA_MD5)
        for split in ("train", "val", "test"):
            params, _ = dm.split(split)
            name = f"{dm.meta['experiment']}/{dm.meta['dataset']}/{split}"
            digest = None if md5 == tags.UNTRACKED else md5
            runs.log_dataset(self.run_id, params, str(data_path), name, digest, split)

    def log_artifacts(self, directory: Path) -> None:
        """Every file of ``directory`` at the top of the run's artifacts."""
        for f in sorted(directory.iterdir()):
            self.client.log_artifact(self.run_id, str(f))

    def log_evaluation(
        self,
        evaluation: Evaluation,
        metrics: Mapping[str, float],
        directory: Path,
        cfg: DictConfig,
        title: str,
        plot_points: int = 3,
    ) -> None:
        """``metrics`` at step 0 (``tracking.summary``) with their units in the run's
        description, and the artifacts of the test-split evaluation, written to ``directory``
        and uploaded: the resolved config (``config.yaml``), ``predictions_sample.npz`` (the
        first 64 test points: ``params``, ``predictions``, the exact ``truth``, ``bin_edges``,
        ``inputs`` and ``energy``: the residuals ``oscflow compare`` overlays),
        ``accuracy.json`` (``metrics``) and ``prediction_vs_truth.png`` (``plot_points`` test
        spectra, the figure's title starting with ``title``)."""
        from omegaconf import OmegaConf

        from ..plots.accuracy import plot_prediction_vs_truth

        self.log_metrics(metrics)
        self.set_tag(tags.MLFLOW_NOTE, description(title, metrics))
        directory.mkdir(exist_ok=True)
        (directory / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        spec, params, preds = evaluation.spec, evaluation.params, evaluation.predictions
        n_sample = min(64, len(params))
        np.savez(
            directory / "predictions_sample.npz",
            params=np.asarray(params[:n_sample]),
            predictions=preds[:n_sample],
            truth=np.asarray(evaluation.truth[:n_sample], dtype=np.float64),
            bin_edges=np.asarray(spec.bin_edges, dtype=np.float64),
            inputs=np.asarray(list(spec.inputs)),
            energy=np.asarray(str(spec.energy)),
        )
        (directory / "accuracy.json").write_text(
            json.dumps(
                {"test": dict(metrics), "definitions": "oscflow.surrogate.accuracy"}, indent=2
            )
        )
        idx = np.linspace(0, len(params) - 1, min(int(plot_points), len(params))).astype(int)
        labels = [
            ", ".join(f"{k}={v:.4g}" for k, v in zip(spec.inputs, params[i], strict=True))
            for i in idx
        ]
        peak = metrics["max_rel_dev_peak1"]
        plot_prediction_vs_truth(
            directory / "prediction_vs_truth.png",
            spec.bin_edges,
            preds[idx],
            np.asarray(evaluation.truth[idx]),
            labels,
            title=f"{title}: test spectra, max |Δ|/truth (≥1 % peak) = {peak:.2e}",
        )
        self.log_artifacts(directory)

    def lightning_logger(self) -> Any:
        """Lightning's MLflow logger writing the per-epoch losses into this run."""
        from lightning.pytorch.loggers import MLFlowLogger

        return MLFlowLogger(
            experiment_name=self.experiment_name,
            tracking_uri=self.tracking_uri,
            run_id=self.run_id,
            log_model=False,
        )


def training_tags(
    cfg: DictConfig,
    architecture: str,
    n_params: int,
    data_path: Path,
    resolved: Mapping[str, Any],
    overrides: Sequence[str],
) -> dict[str, str]:
    """The tags of a training run of ``architecture`` (``n_params`` trainable parameters) on
    the dataset at ``data_path`` with config ``cfg`` (``resolved``: the same as plain
    containers, what the config hash is of) and its command-line ``overrides``."""
    root = Path(cfg.paths.root_dir).resolve()
    meta = _dataset_meta(data_path)
    spectra_md5 = lineage.dataset_md5(root, data_path)
    pairs_md5 = lineage.dataset_md5(root, _pairs_path(root, data_path, meta))
    out = {
        tags.ARCHITECTURE: architecture,
        # what the event workers compose the version's services with (events/jobs.py)
        tags.EXPERIMENT: str(cfg.experiment.name),
        tags.DATASET_NAME: str(cfg.data.name),
        tags.N_PARAMETERS: str(n_params),
        tags.DATASET: str(data_path),
        tags.DATASET_SPECTRA_MD5: spectra_md5 or tags.UNTRACKED,
        tags.DATASET_PAIRS_MD5: pairs_md5 or tags.UNTRACKED,
        tags.CONFIG_HASH: lineage.config_hash(resolved),
        tags.HYDRA_OVERRIDES: " ".join(overrides) or "(none)",
        tags.MLFLOW_GIT_COMMIT: lineage.git_commit(root),
    }
    if meta.get("ordering"):
        out[tags.ORDERING] = str(meta["ordering"])
    if cfg.sweep.trial_number is not None:
        out[tags.MLFLOW_PARENT_RUN] = str(cfg.sweep.parent_run_id)
        out[tags.SWEEP_STUDY] = str(cfg.sweep.study_name)
        out[tags.SWEEP_TRIAL] = str(cfg.sweep.trial_number)
    return out


def _dataset_meta(data_path: Path) -> dict[str, Any]:
    path = data_path / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _pairs_path(root: Path, data_path: Path, meta: Mapping[str, Any]) -> Path:
    """The MC pairs the dataset was built from (its meta's record; a dataset may share its
    twin's, ``paths.pairs_dir``), else the dataset's own ``pairs`` beside it."""
    recorded = (meta.get("pairs") or {}).get("path")
    if recorded:
        path = Path(recorded) if Path(recorded).is_absolute() else root / recorded
        if path.is_dir():
            return path
    return data_path.parent / "pairs"


def open_store(cfg: DictConfig) -> tuple[MlflowClient, str, str]:
    """Client, tracking URI and experiment id of ``cfg.logger`` (a relative SQLite path is
    the repository's, ``paths.root_dir``); also makes the store MLflow's current one (the
    fluent calls of input logging and model registration use it)."""
    uri = runs.tracking_uri(str(cfg.logger.tracking_uri), Path(cfg.paths.root_dir).resolve())
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = runs.ensure_experiment(
        client, str(cfg.logger.experiment_name), str(cfg.logger.artifact_location)
    )
    return client, uri, experiment_id


@contextlib.contextmanager
def training_run(
    cfg: DictConfig,
    run_name: str,
    run_tags: Mapping[str, str],
    params: Mapping[str, Any],
    resume_run_id: str | None = None,
) -> Iterator[TrainingRun]:
    """Record the block as the MLflow run ``run_name`` in ``logger.experiment_name`` (or, with
    ``resume_run_id``, as the continuation of that run): ``params`` (the resolved config,
    flattened; new runs only), ``run_tags``, then whatever the block logs."""
    client, uri, experiment_id = open_store(cfg)
    if resume_run_id is None:
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    else:
        run_id = resume_run_id
        client.update_run(run_id, status="RUNNING")
    run = TrainingRun(
        client,
        run_id,
        str(cfg.logger.experiment_name),
        uri,
        resumed=resume_run_id is not None,
        tags=dict(run_tags),
        experiment_id=experiment_id,
    )
    try:
        if not run.resumed:
            runs.log_params(client, run_id, params)
        run.set_tags(run_tags)
        yield run
    except BaseException as exc:
        end_interrupted(client, run_id, exc)
        raise
    client.set_terminated(run_id, status="FINISHED")


def end_interrupted(client: MlflowClient, run_id: str, exc: BaseException) -> None:
    """End a run that ``exc`` stopped: KILLED if a sweep's pruner stopped it (Optuna's
    ``TrialPruned``: a pruned trial is not a failure) or on Ctrl-C, else FAILED with the reason."""
    if type(exc).__name__ == "TrialPruned":  # by name: no optuna import outside sweeps
        client.set_tag(run_id, tags.PRUNED, "true")
        client.set_tag(run_id, tags.PRUNED_REASON, str(exc))
        client.set_terminated(run_id, status="KILLED")
    elif isinstance(exc, KeyboardInterrupt):
        client.set_tag(run_id, tags.FAILURE_REASON, "interrupted")
        client.set_terminated(run_id, status="KILLED")
    else:
        runs.mark_failed(client, run_id, f"{type(exc).__name__}: {exc}")
