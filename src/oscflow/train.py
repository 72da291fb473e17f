"""``oscflow train``: train a surrogate on a spectra dataset, log everything to MLflow, register it.

Also a Hydra app for multirun sweeps: ``python -m oscflow.train -m model=seed_mlp,resmlp``.

Sequence: dataset (refused if it does not match a resumed model) → model with scalers fitted on
the training split → MLflow run (new, or the checkpoint's run when resuming) → Lightning fit
(per-epoch losses to MLflow) → accuracy on the test split against the exact model, timing,
plots, accuracy JSON → model logged with signature and input example, registered as
``<experiment>-spectrum`` with lineage tags. Any failure ends the run FAILED with the reason.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .config import to_container
from .data.spectra import spectra_dir
from .errors import ConfigError


def _run_name(cfg: DictConfig, n_params: int) -> str:
    if cfg.run_name:
        return str(cfg.run_name)
    m = cfg.model
    if m.name == "seed_mlp":
        shape = "x".join(str(h) for h in m.hidden)
        if m.get("activation", "relu") != "relu":
            shape += f"-{m.activation}"
    elif m.name == "resmlp":
        shape = f"w{m.width}d{m.depth}"
    elif m.name == "pca_mlp":
        shape = f"{'x'.join(str(h) for h in m.hidden)}-k{m.components}"
    else:
        shape = "custom"
    return f"{m.name}-{shape}-{n_params / 1000:.0f}k"


def _model_options(cfg: DictConfig) -> dict[str, Any]:
    return {
        k: v for k, v in to_container(cfg.model).items() if k not in ("name", "output_transform")
    }


def _device(trainer: Any) -> str:
    import torch

    kind = type(trainer.accelerator).__name__.replace("Accelerator", "").lower()
    if kind == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return kind


DDP_RUN_ENV = "OSCFLOW_TRAIN_RUN_ID"
DDP_DIR_ENV = "OSCFLOW_TRAIN_OUTPUT_DIR"


def _fit(
    cfg: DictConfig,
    module: Any,
    dm: Any,
    output_dir: Path,
    logger: Any,
    ckpt_path: str | None,
    client: Any = None,
    run_id: str | None = None,
    extra_callbacks: Sequence[Any] = (),
) -> Any:
    """Build the Lightning Trainer from the config and fit; returns the trainer."""
    import lightning as L
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        ModelCheckpoint,
        RichProgressBar,
        TQDMProgressBar,
    )

    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=output_dir / "checkpoints",
            filename="epoch{epoch:03d}",
            auto_insert_metric_name=False,
            monitor=cfg.callbacks.checkpoint.monitor,
            save_last=cfg.callbacks.checkpoint.save_last,
            save_top_k=cfg.callbacks.checkpoint.save_top_k,
        )
    ]
    if cfg.callbacks.early_stopping.enabled:
        callbacks.append(
            EarlyStopping(
                monitor=cfg.callbacks.early_stopping.monitor,
                patience=cfg.callbacks.early_stopping.patience,
            )
        )
    callbacks.extend(extra_callbacks)
    if cfg.callbacks.progress_bar:
        callbacks.append(
            RichProgressBar()
            if sys.stderr.isatty()
            else TQDMProgressBar(refresh_rate=max(1, len(dm.train_dataloader()) // 4))
        )
    trainer = L.Trainer(
        **to_container(cfg.trainer),
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        default_root_dir=str(output_dir),
        enable_progress_bar=bool(cfg.callbacks.progress_bar),
        enable_model_summary=False,
    )
    if client is not None and run_id is not None:
        client.set_tag(run_id, "oscflow.device", _device(trainer))
    with warnings.catch_warnings():
        if ckpt_path:  # resuming writes into the run's own, non-empty checkpoint directory
            warnings.filterwarnings(
                "ignore", message="Checkpoint directory .* exists and is not empty"
            )
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer


def run(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Train, evaluate, log, register. Returns a JSON-ready summary."""
    import lightning as L
    import torch
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    from .plots.accuracy import plot_prediction_vs_truth
    from .registry import log_and_register
    from .registry.reactors import float64_evaluator, trained_settings
    from .surrogate.accuracy import evaluate, fit_bias
    from .surrogate.datamodule import SpectraDataModule
    from .surrogate.lightning_module import SurrogateModule
    from .surrogate.model import FastSurrogate, SpectrumSurrogate, SurrogateSpec
    from .tracking import lineage, runs

    root = Path(cfg.paths.root_dir).resolve()
    data_path = spectra_dir(cfg)
    if not (data_path / "meta.json").is_file():
        raise ConfigError(
            "data",
            f"no spectra dataset at {data_path}",
            f"build it first: dvc repro (params.yaml data: {cfg.data.name})",
        )
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = SpectraDataModule(
        data_path,
        cfg.data.loader.batch_size,
        cfg.data.loader.eval_batch_size,
        cfg.data.loader.num_workers,
        int(cfg.seed),
    )
    spec = SurrogateSpec.from_meta(
        dm.meta,
        str(cfg.model.name),
        _model_options(cfg),
        str(cfg.model.output_transform),
        trained_with=trained_settings(dm.meta, cfg.experiment),
    )

    client_uri = runs.tracking_uri(str(cfg.logger.tracking_uri), root)
    import mlflow

    mlflow.set_tracking_uri(client_uri)
    client = MlflowClient(client_uri)
    experiment_id = runs.ensure_experiment(
        client, str(cfg.logger.experiment_name), str(cfg.logger.artifact_location)
    )

    ckpt_path = str(cfg.ckpt_path) if cfg.ckpt_path else None
    if ckpt_path:
        if not Path(ckpt_path).is_file():
            raise ConfigError(
                "ckpt_path",
                f"no checkpoint at {ckpt_path}",
                "give the path of a .ckpt written by an earlier run",
            )
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        saved_spec = (saved.get("oscflow") or {}).get("spec")
        if saved_spec:
            dm.check_matches(saved_spec)
        run_id = (saved.get("oscflow") or {}).get("mlflow_run_id")
    else:
        run_id = None

    _train_params, train_spectra = dm.split("train")
    surrogate = SpectrumSurrogate(spec, train_spectra=train_spectra)
    module = SurrogateModule(surrogate, to_container(cfg.optim))
    n_params = surrogate.n_parameters()
    resolved = to_container(cfg)
    # Data-parallel workers started by Lightning's launcher re-run this command with
    # LOCAL_RANK > 0: they train in the parent's run and output directory and log nothing.
    worker = int(os.environ.get("LOCAL_RANK", "0")) > 0 and DDP_RUN_ENV in os.environ
    if worker:
        run_id = os.environ[DDP_RUN_ENV]
    elif run_id is None:
        run = client.create_run(experiment_id, run_name=_run_name(cfg, n_params))
        run_id = run.info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    module.mlflow_run_id = run_id
    module.spec_dict = {
        "inputs": list(spec.inputs),
        "bin_edges": list(spec.bin_edges),
        "energy": spec.energy,
    }

    # A resumed run keeps writing where it was: <output_dir>/checkpoints/<ckpt>.
    output_dir = (
        Path(ckpt_path).resolve().parent.parent if ckpt_path else Path(cfg.paths.output_dir)
    )
    if worker:
        output_dir = Path(os.environ[DDP_DIR_ENV])
        _fit(cfg, module, dm, output_dir, None, ckpt_path)
        return {"run_id": run_id, "rank": int(os.environ["LOCAL_RANK"])}
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not ckpt_path:
            runs.log_params(client, run_id, resolved)
        spectra_md5 = lineage.dataset_md5(root, data_path)
        pairs_md5 = lineage.dataset_md5(root, data_path.parent / "pairs")
        tags = {
            "oscflow.architecture": spec.architecture,
            # what the event workers compose the version's services with (events/jobs.py)
            "oscflow.experiment": str(cfg.experiment.name),
            "oscflow.dataset.name": str(cfg.data.name),
            "oscflow.n_parameters": str(n_params),
            "oscflow.dataset": str(data_path),
            "oscflow.dataset.spectra_md5": spectra_md5 or "untracked",
            "oscflow.dataset.pairs_md5": pairs_md5 or "untracked",
            "oscflow.config_hash": lineage.config_hash(resolved),
            "oscflow.hydra_overrides": " ".join(overrides) or "(none)",
            "mlflow.source.git.commit": lineage.git_commit(root),
        }
        if cfg.sweep.trial_number is not None:
            tags["mlflow.parentRunId"] = str(cfg.sweep.parent_run_id)
            tags["oscflow.sweep.study"] = str(cfg.sweep.study_name)
            tags["oscflow.sweep.trial"] = str(cfg.sweep.trial_number)
        for k, v in tags.items():
            client.set_tag(run_id, k, v)
        for split in ("train", "val", "test"):
            params, _ = dm.split(split)
            runs.log_dataset(
                run_id,
                params,
                str(data_path),
                f"{spec.experiment}/{dm.meta['dataset']}/{split}",
                spectra_md5,
                split,
            )

        logger = MLFlowLogger(
            experiment_name=str(cfg.logger.experiment_name),
            tracking_uri=client_uri,
            run_id=run_id,
            log_model=False,
        )
        pruning = []
        if cfg.sweep.trial_number is not None and cfg.sweep.monitor:  # None: multi-objective
            from .surrogate.pruning import OptunaPruning, trial_from_storage

            trial = trial_from_storage(
                str(cfg.sweep.study_name), str(cfg.sweep.storage), int(cfg.sweep.trial_number)
            )
            pruning.append(OptunaPruning(trial, str(cfg.sweep.monitor)))
        t0 = time.perf_counter()
        os.environ[DDP_RUN_ENV], os.environ[DDP_DIR_ENV] = run_id, str(output_dir.resolve())
        try:
            trainer = _fit(cfg, module, dm, output_dir, logger, ckpt_path, client, run_id, pruning)
        finally:
            os.environ.pop(DDP_RUN_ENV, None)
            os.environ.pop(DDP_DIR_ENV, None)
        train_seconds = time.perf_counter() - t0

        surrogate = module.surrogate.cpu().eval()
        fast = FastSurrogate(surrogate)
        test_params, test_spectra = dm.split("test")
        metrics, preds = evaluate(fast.predict, test_params, test_spectra)
        metrics.update(
            fit_bias(
                float64_evaluator(fast),
                test_params,
                test_spectra,
                preds,
                {k: float(cfg.experiment.parameters[k].sigma) for k in spec.inputs},
            )
        )
        metrics["train_seconds"] = train_seconds
        metrics["n_parameters"] = float(n_params)
        metrics["epochs"] = float(trainer.current_epoch)
        if cfg.timing:
            metrics.update(fast.timing())
        for k, v in metrics.items():
            client.log_metric(run_id, k, float(v), step=int(trainer.global_step))

        art = output_dir / "artifacts"
        art.mkdir(exist_ok=True)
        (art / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
        n_sample = min(64, len(test_params))
        np.savez(
            art / "predictions_sample.npz",
            params=np.asarray(test_params[:n_sample]),
            predictions=preds[:n_sample],
        )
        (art / "accuracy.json").write_text(
            json.dumps({"test": metrics, "definitions": "oscflow.surrogate.accuracy"}, indent=2)
        )
        n_plot = min(int(cfg.plot_points), len(test_params))
        idx = np.linspace(0, len(test_params) - 1, n_plot).astype(int)
        labels = [
            ", ".join(f"{k}={v:.4g}" for k, v in zip(spec.inputs, test_params[i], strict=True))
            for i in idx
        ]
        plot_prediction_vs_truth(
            art / "prediction_vs_truth.png",
            spec.bin_edges,
            preds[idx],
            np.asarray(test_spectra[idx]),
            labels,
            title=f"{_run_name(cfg, n_params)}: test spectra, max |Δ|/truth (≥1 % peak) = {metrics['max_rel_dev_peak1']:.2e}",
        )
        for f in sorted(art.iterdir()):
            client.log_artifact(run_id, str(f))

        version_tags = {
            "oscflow.training_run": run_id,
            "oscflow.dataset.spectra_md5": tags["oscflow.dataset.spectra_md5"],
            "oscflow.dataset.pairs_md5": tags["oscflow.dataset.pairs_md5"],
            "oscflow.config_hash": tags["oscflow.config_hash"],
            "oscflow.git_commit": tags["mlflow.source.git.commit"],
            "oscflow.architecture": spec.architecture,
            "oscflow.experiment": tags["oscflow.experiment"],
            "oscflow.dataset.name": tags["oscflow.dataset.name"],
            **{
                f"oscflow.metric.{k}": f"{metrics[k]:.6g}"
                for k in (
                    "max_rel_dev_peak1",
                    "p99_rel_dev_peak1",
                    "max_rel_dev_all",
                    "artefact_rms_median",
                    "fit_bias_max_sigma",
                )
            },
        }
        registered = log_and_register(
            surrogate, run_id, art, version_tags, register=bool(cfg.logger.register)
        )
        client.set_terminated(run_id, status="FINISHED")
    except BaseException as exc:
        if type(exc).__name__ == "TrialPruned":  # optuna's; a pruned trial is not a failure
            client.set_tag(run_id, "oscflow.pruned", "true")
            client.set_tag(run_id, "oscflow.pruned_reason", str(exc))
            client.set_terminated(run_id, status="KILLED")
        else:
            runs.mark_failed(client, run_id, f"{type(exc).__name__}: {exc}")
        raise
    return {
        "run_id": run_id,
        "experiment": str(cfg.logger.experiment_name),
        "tracking_uri": client_uri,
        "model_uri": registered["model_uri"],
        "registered_model": registered["name"],
        "version": registered["version"],
        "checkpoint_dir": str(output_dir / "checkpoints"),
        "metrics": metrics,
    }


def _hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from .config import config_dir

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def app(cfg: DictConfig) -> dict[str, Any]:
        result = run(cfg, overrides=list(HydraConfig.get().overrides.task))
        if result.get("rank", 0) > 0:
            return result
        print(
            json.dumps(
                {k: v for k, v in result.items() if k != "metrics"}
                | {"max_rel_dev_peak1": result["metrics"]["max_rel_dev_peak1"]}
            )
        )
        return result

    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    app()


if __name__ == "__main__":
    _hydra_main()
