"""Every MLflow tag oscflow writes or reads, in one place: the lineage conventions of DESIGN.md
(dataset → training run → model version → service runs) spelled once.

Run tags go on MLflow runs, version tags on registered model versions; some (the lineage
ones) go on both, so that a service run can be traced without a second lookup."""

from __future__ import annotations

# Lineage shared by training runs, model versions and service runs.
EXPERIMENT = "oscflow.experiment"
DATASET = "oscflow.dataset"
DATASET_NAME = "oscflow.dataset.name"
DATASET_SPECTRA_MD5 = "oscflow.dataset.spectra_md5"  # DVC md5 of the spectra dataset
DATASET_PAIRS_MD5 = "oscflow.dataset.pairs_md5"  # DVC md5 of the MC pairs it was built from
UNTRACKED = "untracked"  # the value of a dataset md5 that dvc.lock does not record
GIT_COMMIT = "oscflow.git_commit"
CONFIG_HASH = "oscflow.config_hash"
TRAINING_RUN = "oscflow.training_run"
ARCHITECTURE = "oscflow.architecture"
N_PARAMETERS = "oscflow.n_parameters"
DEVICE = "oscflow.device"
HYDRA_OVERRIDES = "oscflow.hydra_overrides"
ORDERING = "oscflow.ordering"  # the mass ordering of the training data, where it has one

# A version's partner for the other mass ordering (``oscflow.pair.<ordering>`` = its version
# number in the same registered model), set by ``registry promote --pair``.
PAIR_PREFIX = "oscflow.pair."

# MLflow's own run tags that oscflow sets.
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_PARENT_RUN = "mlflow.parentRunId"
MLFLOW_NOTE = "mlflow.note.content"  # a run's description (markdown) on its UI page
# The kind of an experiment (MLflow 3): oscflow's experiments are model development, so that
# UIs that read the tag open them on the training runs (see tracking/ui.py for 3.17).
MLFLOW_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"

# Service runs (one per service, model version, config; see services/ and events/).
SERVICE = "oscflow.service"
SERVICE_CONFIG_HASH = "oscflow.service.config_hash"
MODEL_NAME = "oscflow.model.name"
MODEL_VERSION = "oscflow.model.version"
MODEL_URI = "oscflow.model.uri"
MODEL_TRAINING_RUN = "oscflow.model.training_run"
EVENT_ID = "oscflow.event_id"
JOB_KEY = "oscflow.job_key"
WORKER = "oscflow.worker"
STARTED_AT = "oscflow.started_at"
FAILURE_REASON = "oscflow.failure_reason"

# Model versions: training-time metrics, validation, promotion.
METRIC_PREFIX = "oscflow.metric."
VALIDATION_PREFIX = "oscflow.validation."
VALIDATION_RUN = "oscflow.validation.run"
PROMOTION_PREFIX = "oscflow.promotion."
PROMOTION_ALIAS = "oscflow.promotion.alias"
PROMOTION_FORCED = "oscflow.promotion.forced"
PROMOTION_REASON = "oscflow.promotion.reason"
PROMOTION_FAILED_GATES = "oscflow.promotion.failed_gates"
PROMOTION_BY = "oscflow.promotion.by"
PROMOTION_AT = "oscflow.promotion.at"

# Sweeps (the Optuna sweeper) and pruning.
SWEEP = "oscflow.sweep"  # "parent" on a sweep's parent run
SWEEP_STUDY = "oscflow.sweep.study"
SWEEP_TRIAL = "oscflow.sweep.trial"
PRUNED = "oscflow.pruned"
PRUNED_REASON = "oscflow.pruned_reason"

# Comparison runs (``oscflow compare``, in ``<experiment or model>-comparisons``) and the runs
# that link to them.
COMPARISON_OF = "oscflow.comparison.of"  # the experiment or registered model compared
COMPARISON_KIND = "oscflow.comparison.kind"  # experiment | model | sweep
COMPARISON_RUNS = "oscflow.comparison.runs"  # the compared run ids, comma-separated
COMPARISON_SWEEP = "oscflow.comparison.sweep"  # the sweep parent run whose trials were compared
COMPARISON_RUN = "oscflow.comparison.run"  # on a sweep parent: its latest comparison run
COMPARISON_UI = "oscflow.comparison.ui"  # on a sweep parent: that run's UI link
