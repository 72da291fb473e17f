"""Structured config of the sweeper, registered as ``hydra/sweeper: oscflow_optuna``.

No ``from __future__ import annotations`` and ``typing`` generics on purpose: Hydra loads
plugin modules outside ``sys.modules`` and OmegaConf reads these annotations at runtime.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class OscflowOptunaSweeperConf:
    _target_: str = "hydra_plugins.oscflow_optuna_sweeper.sweeper.OscflowOptunaSweeper"
    study_name: str = "oscflow"
    # SQLAlchemy URL of the study storage: sqlite:///optuna.db (embedded) or
    # postgresql+psycopg2://user@host:5432/db (team scale). Relative sqlite paths are taken
    # from the directory the sweep is started in.
    storage: str = "sqlite:///optuna.db"
    # Objectives: metric names returned by the training job, with their directions.
    objectives: List[str] = field(default_factory=lambda: ["max_rel_dev_peak1"])
    directions: List[str] = field(default_factory=lambda: ["minimize"])
    # Target number of finished (complete or pruned) trials in the study, across processes.
    n_trials: int = 20
    # Trials asked per launcher batch (parallel with a parallel launcher, e.g. joblib).
    n_jobs: int = 1
    sampler: Dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": None})
    pruner: Dict[str, Any] = field(default_factory=lambda: {"name": "none"})
    # Intermediate value reported every epoch (a metric the training job logs).
    monitor: str = "val_loss"
    # Heartbeats (seconds): a trial without one for grace_period is failed and retried.
    heartbeat_interval: int = 10
    grace_period: int = 30
    max_retry: int = 2
    # Abort the sweep after this many trials whose job raised (a broken config, not a death).
    max_failures: int = 3
    # Search space: "key": {type: float|int|categorical, low, high, log, step, choices}.
    params: Dict[str, Any] = field(default_factory=dict)
    # Parameters that only exist for one choice of another: {key: {choice: {params...}}}.
    conditional: Dict[str, Any] = field(default_factory=dict)
    # MLflow experiment of the parent run (default: the training logger's experiment).
    mlflow_experiment: Optional[str] = None
    # After the sweep, compare its finished trials (`oscflow compare <experiment> sweep=<parent>`):
    # the table, Pareto fronts and residual patterns, logged in <experiment>-comparisons; the
    # parent run is tagged with (and its description links to) that run.
    compare: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper", name="oscflow_optuna", node=OscflowOptunaSweeperConf, provider="oscflow"
)
