"""``oscflow train``: train a surrogate on a spectra dataset, log everything to MLflow, register it.

Also a Hydra app for multirun sweeps: ``python -m oscflow.train -m model=seed_mlp,resmlp``.

After lightning-hydra-template's ``train.py``: the config is composed (``cli``/Hydra), then
``run`` is the sequence, each step a function below —

    dataset → datamodule → checkpoint to resume (refused if it does not match the dataset) →
    model (scalers fitted on the training split) → with ``training_run`` (MLflow run: new, or
    the checkpoint's; tags, params; ends FINISHED / FAILED with the reason / KILLED when
    pruned or interrupted): inputs → fit → evaluate → log → register.

What is recorded how lives where it belongs: the run in ``tracking.training_run``, the
Trainer in ``surrogate.trainer``, accuracy and speed in ``surrogate.evaluation``, the model
version in ``registry.models``; run names come from the architecture (``surrogate.
architectures``), so adding one needs no edit here.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from .config import to_container
from .data.spectra import spectra_dir
from .errors import ConfigError
from .tracking import tags as tag_names
from .tracking.ui import ui_link

if TYPE_CHECKING:
    import lightning as L

    from .surrogate.datamodule import SpectraDataModule
    from .surrogate.evaluation import Evaluation
    from .surrogate.lightning_module import SurrogateModule
    from .tracking.training_run import TrainingRun

# Data-parallel workers started by Lightning's launcher re-run the command with LOCAL_RANK > 0;
# rank 0 tells them its run and output directory through these variables.
DDP_RUN_ENV = "OSCFLOW_TRAIN_RUN_ID"
DDP_DIR_ENV = "OSCFLOW_TRAIN_OUTPUT_DIR"


def run(cfg: DictConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Train, evaluate, log, register. Returns a JSON-ready summary (``oscflow train --json``);
    a data-parallel worker (rank > 0) only trains and returns its run and rank."""
    import lightning as L

    from .tracking.training_run import training_run, training_tags

    data_path = dataset(cfg)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    dm = datamodule(cfg, data_path)
    ckpt_path, resume_run_id = checkpoint(cfg, dm)
    module = model(cfg, dm)
    n_params = module.surrogate.n_parameters()
    if ddp_worker():
        return train_as_ddp_worker(cfg, module, dm, ckpt_path)
    # A resumed run keeps writing where it was: <output_dir>/checkpoints/<ckpt>.
    output_dir = (
        Path(ckpt_path).resolve().parent.parent if ckpt_path else Path(cfg.paths.output_dir)
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    resolved = to_container(cfg)
    architecture = module.surrogate.spec.architecture
    tags = training_tags(cfg, architecture, n_params, data_path, resolved, overrides)
    name = run_name(cfg, n_params)
    with training_run(cfg, name, tags, resolved, resume_run_id) as mlrun:
        module.mlflow_run_id = mlrun.run_id
        mlrun.log_inputs(dm, data_path)
        trainer, train_seconds = fit(cfg, module, dm, output_dir, ckpt_path, mlrun)
        evaluation = evaluate(cfg, module, dm)
        metrics = {
            **evaluation.metrics,
            "train_seconds": train_seconds,
            "n_parameters": float(n_params),
            "epochs": float(trainer.current_epoch),
            **evaluation.speed,
        }
        artifacts = output_dir / "artifacts"
        mlrun.log_evaluation(evaluation, metrics, artifacts, cfg, name, cfg.plot_points)
        registered = register(cfg, mlrun, module, metrics, artifacts)
    return {
        "run_id": mlrun.run_id,
        "experiment": mlrun.experiment_name,
        "tracking_uri": mlrun.tracking_uri,
        "ui": ui_link(mlrun.tracking_uri, experiment_id=mlrun.experiment_id, run_id=mlrun.run_id),
        "model_uri": registered["model_uri"],
        "registered_model": registered["name"],
        "version": registered["version"],
        "checkpoint_dir": str(output_dir / "checkpoints"),
        "metrics": metrics,
    }


def dataset(cfg: DictConfig) -> Path:
    """The spectra dataset's directory; refused (ConfigError naming the fix) before anything
    is written if the DVC stage has not built it."""
    data_path = spectra_dir(cfg)
    if not (data_path / "meta.json").is_file():
        raise ConfigError(
            "data",
            f"no spectra dataset at {data_path}",
            f"build it first: dvc repro (params.yaml data: {cfg.data.name})",
        )
    return data_path


def datamodule(cfg: DictConfig, data_path: Path) -> SpectraDataModule:
    """The Lightning DataModule over the dataset's splits (``data.loader``; ``in_memory``
    absent or null: small splits in memory, large ones memory-mapped)."""
    from .surrogate.datamodule import SpectraDataModule

    loader = cfg.data.loader
    return SpectraDataModule(
        data_path,
        loader.batch_size,
        loader.eval_batch_size,
        loader.num_workers,
        int(cfg.seed),
        in_memory=loader.get("in_memory"),
    )


def checkpoint(cfg: DictConfig, dm: SpectraDataModule) -> tuple[str | None, str | None]:
    """``ckpt_path`` to resume from and the MLflow run it trained in (both None for a new
    training): a checkpoint of another dataset (inputs, binning, energy) is refused here,
    before any run or directory is made."""
    if not cfg.ckpt_path:
        return None, None
    from .surrogate.lightning_module import checkpoint_record

    ckpt_path = str(cfg.ckpt_path)
    if not Path(ckpt_path).is_file():
        raise ConfigError(
            "ckpt_path",
            f"no checkpoint at {ckpt_path}",
            "give the path of a .ckpt written by an earlier run",
        )
    run_id, spec = checkpoint_record(ckpt_path)
    if spec:
        dm.check_matches(spec)
    return ckpt_path, run_id


def model(
    cfg: DictConfig, dm: SpectraDataModule, trained_with: dict[str, str] | None = None
) -> SurrogateModule:
    """The LightningModule of architecture ``model.name`` with its options, output scaler
    fitted on the training split, and the settings the dataset was built with recorded in
    its spec (what requests are checked against when the model is used; ``trained_with``
    given: those, e.g. {} for a model that is never registered)."""
    from .surrogate.lightning_module import SurrogateModule
    from .surrogate.model import SpectrumSurrogate, SurrogateSpec

    if trained_with is None:
        from .registry.reactors import trained_settings

        trained_with = trained_settings(dm.meta, cfg.experiment)
    spec = SurrogateSpec.from_meta(
        dm.meta,
        str(cfg.model.name),
        model_options(cfg),
        str(cfg.model.output_transform),
        trained_with=trained_with,
    )
    _params, train_spectra = dm.split("train")
    surrogate = SpectrumSurrogate(spec, train_spectra=train_spectra)
    module = SurrogateModule(surrogate, to_container(cfg.optim), str(cfg.loss))
    module.spec_dict = {
        "inputs": list(spec.inputs),
        "bin_edges": list(spec.bin_edges),
        "energy": spec.energy,
    }
    return module


def model_options(cfg: DictConfig) -> dict[str, Any]:
    """The architecture's options: ``model`` without its name and output transform."""
    return {
        k: v for k, v in to_container(cfg.model).items() if k not in ("name", "output_transform")
    }


def run_name(cfg: DictConfig, n_params: int) -> str:
    """``run_name`` if given, else the architecture's own name for the run
    (``<architecture>-<shape>-<parameters>``, e.g. ``seed_mlp-400x400-silu-323k``)."""
    from .surrogate import architectures

    if cfg.run_name:
        return str(cfg.run_name)
    return architectures.run_name(str(cfg.model.name), model_options(cfg), n_params)


def ddp_worker() -> bool:
    """Whether this process is a data-parallel worker (rank > 0) that rank 0's launcher
    started: it trains in rank 0's run and output directory and logs nothing."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 and DDP_RUN_ENV in os.environ


def train_as_ddp_worker(
    cfg: DictConfig, module: SurrogateModule, dm: SpectraDataModule, ckpt_path: str | None
) -> dict[str, Any]:
    """A worker's share of the fit (no logger: rank 0 records everything)."""
    from .surrogate import trainer as trainers
    from .surrogate.threads import intra_op_threads

    module.mlflow_run_id = os.environ[DDP_RUN_ENV]
    trainer = trainers.make_trainer(cfg, dm, Path(os.environ[DDP_DIR_ENV]))
    with intra_op_threads(training_threads(cfg)):
        trainers.fit(trainer, module, dm, ckpt_path)
    return {"run_id": module.mlflow_run_id, "rank": int(os.environ["LOCAL_RANK"])}


def fit(
    cfg: DictConfig,
    module: SurrogateModule,
    dm: SpectraDataModule,
    output_dir: Path,
    ckpt_path: str | None,
    mlrun: TrainingRun,
) -> tuple[L.Trainer, float]:
    """Fit with the configured Trainer (per-epoch losses to the run, the device as a tag, a
    sweep trial's pruning callback); returns the trainer and the wall time of the fit. The
    run and output directory are passed to data-parallel workers in the environment."""
    from .surrogate import trainer as trainers
    from .surrogate.threads import intra_op_threads

    trainer = trainers.make_trainer(
        cfg, dm, output_dir, mlrun.lightning_logger(), pruning_callbacks(cfg)
    )
    mlrun.set_tag(tag_names.DEVICE, trainers.device_name(trainer))
    t0 = time.perf_counter()
    os.environ[DDP_RUN_ENV], os.environ[DDP_DIR_ENV] = mlrun.run_id, str(output_dir.resolve())
    try:
        with intra_op_threads(training_threads(cfg)):
            trainers.fit(trainer, module, dm, ckpt_path)
    finally:
        os.environ.pop(DDP_RUN_ENV, None)
        os.environ.pop(DDP_DIR_ENV, None)
    return trainer, time.perf_counter() - t0


def training_threads(cfg: DictConfig) -> int | None:
    """torch intra-op threads for the fit (``threads``; 0 or absent: torch's default, one per
    core). Evaluation and the speed metrics run with the default."""
    threads = int(cfg.get("threads") or 0)
    if threads < 0:
        raise ConfigError("threads", f"{threads} threads", "give 1 or more, or 0 for one per core")
    return threads or None


def pruning_callbacks(cfg: DictConfig) -> list[Any]:
    """A sweep trial's pruning: report ``sweep.monitor`` every epoch to the study's trial and
    stop when its pruner says so (none outside sweeps, or for multi-objective studies)."""
    if cfg.sweep.trial_number is None or not cfg.sweep.monitor:
        return []
    from .surrogate.pruning import OptunaPruning, trial_from_storage

    trial = trial_from_storage(
        str(cfg.sweep.study_name), str(cfg.sweep.storage), int(cfg.sweep.trial_number)
    )
    return [OptunaPruning(trial, str(cfg.sweep.monitor))]


def evaluate(cfg: DictConfig, module: SurrogateModule, dm: SpectraDataModule) -> Evaluation:
    """Accuracy against the exact model on the test split, the fit bias in units of each
    parameter's error in a fit that profiles the detector inputs with their priors, and with
    ``timing`` the latency and throughput (``surrogate.evaluation``)."""
    from .experiments.base import parameter_specs
    from .surrogate.accuracy import experiment_priors
    from .surrogate.evaluation import evaluate_surrogate

    surrogate = module.surrogate
    params, spectra = dm.split("test")
    specs, inputs = parameter_specs(cfg.experiment.parameters), surrogate.spec.inputs
    sigmas = {k: specs[k].sigma for k in inputs}
    priors = experiment_priors(specs, inputs)
    return evaluate_surrogate(surrogate, params, spectra, sigmas, bool(cfg.timing), priors)


def register(
    cfg: DictConfig,
    mlrun: TrainingRun,
    module: SurrogateModule,
    metrics: dict[str, float],
    artifacts: Path,
) -> dict[str, Any]:
    """Log the model to the run (signature, input example) and, with ``logger.register``,
    register it as ``<experiment>-spectrum`` with the lineage tags on the version from its
    creation (``registry.models``). Returns {"model_uri", "name", "version"}."""
    from .registry import log_and_register, version_tags

    return log_and_register(
        module.surrogate,
        mlrun.run_id,
        artifacts,
        version_tags(mlrun.run_id, mlrun.tags, metrics),
        register=bool(cfg.logger.register),
    )


def _hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from .config import check_values, config_dir

    @hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")
    def app(cfg: DictConfig) -> dict[str, Any]:
        check_values(cfg)  # what config.load checks for a single run, for each sweep job
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
