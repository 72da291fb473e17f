"""Lightning callback that reports each epoch's monitored value to an Optuna trial and stops
the run when the study's pruner says so. The trial lives in the study's storage, so the
sweep process and the training job may be different processes (or machines)."""

from __future__ import annotations

from typing import Any

import lightning as L
import optuna

PRUNERS = {
    "none": optuna.pruners.NopPruner,
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "threshold": optuna.pruners.ThresholdPruner,
}
PRUNER_ATTR = "oscflow.pruner"


def make_pruner(cfg: dict[str, Any]) -> optuna.pruners.BasePruner:
    """An Optuna pruner from ``{name: ..., **kwargs}``."""
    cfg = dict(cfg)
    name = cfg.pop("name", "none")
    if name not in PRUNERS:
        msg = f"hydra.sweeper.pruner.name: unknown pruner {name!r}; use one of {sorted(PRUNERS)}"
        raise ValueError(msg)
    return PRUNERS[name](**cfg)


def trial_from_storage(study_name: str, storage: str, number: int) -> optuna.Trial:
    """The running trial ``number`` of a study, as a live ``optuna.Trial``, judged by the pruner
    the sweep stored on the study (pruners are not part of Optuna's storage)."""
    pruner = make_pruner(_study_attr(study_name, storage, PRUNER_ATTR) or {"name": "none"})
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=pruner)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.Trial(study, trial_id)


def _study_attr(study_name: str, storage: str, key: str) -> Any:
    return optuna.load_study(study_name=study_name, storage=storage).user_attrs.get(key)


class OptunaPruning(L.Callback):
    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss") -> None:
        self.trial = trial
        self.monitor = monitor
        self.pruned_at: int | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        del pl_module
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            msg = (
                f"sweep.monitor {self.monitor!r} is not a logged metric; use val_loss or train_loss"
            )
            raise KeyError(msg)
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            msg = f"trial {self.trial.number} pruned at epoch {epoch} ({self.monitor}={float(value):.4g})"
            raise optuna.TrialPruned(msg)
